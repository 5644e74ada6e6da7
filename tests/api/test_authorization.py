"""The authorization matrix: every role against every endpoint, allowed or denied as designed
(docs/api.md), and the rows an allowed organization role gets belong to that organization."""

from __future__ import annotations

import pytest

from allpayer.api.auth import ROLES

ALL = set(ROLES)
ACO = {"aco_admin", "aco_analyst"}

# The design, written out by hand (docs/api.md): endpoint -> roles allowed.
MATRIX = {
    "/api/v1/me": ALL,
    "/api/v1/runs": ALL,
    "/api/v1/reports": ALL,
    "/api/v1/overview": ALL,
    "/api/v1/rosters": ACO | {"payer", "practice", "hospital"},
    "/api/v1/care-gaps": ACO | {"payer", "practice"},
    "/api/v1/claims": ACO | {"payer"},
    "/api/v1/risk/scores": ACO | {"payer", "practice"},
    "/api/v1/risk/factors": ACO | {"payer", "practice"},
    "/api/v1/tcoc": ALL,
    "/api/v1/tcoc/high-cost-claimants": ACO | {"payer", "practice"},
    "/api/v1/targets": ACO | {"payer", "regulator"},
    "/api/v1/quality/rates": ACO | {"payer", "practice", "hospital", "regulator"},
    "/api/v1/quality/scores": ACO | {"payer", "regulator"},
    "/api/v1/payments/fpp": ACO | {"payer", "hospital"},
    "/api/v1/payments/fixed-performance": ACO | {"payer", "hospital", "regulator"},
    "/api/v1/payments/invoices": ACO | {"payer", "employer"},
    "/api/v1/settlements": ACO | {"payer", "regulator"},
    "/api/v1/settlements/lines": ACO | {"payer", "regulator"},
    "/api/v1/settlements/distribution": ACO | {"payer", "hospital"},
    "/api/v1/ledger/balances": ACO | {"payer", "employer", "practice", "hospital"},
}
# Tables a stage may not have written in the test world (quality runs separately): an allowed
# role then gets 404 (not in the snapshot), a denied one still 403.
MAY_BE_ABSENT = {"/api/v1/care-gaps": "care_gaps", "/api/v1/quality/rates": "quality_rates",
                 "/api/v1/quality/scores": "quality_program_scores"}
MEMBER_LEVEL = {"/api/v1/rosters", "/api/v1/care-gaps", "/api/v1/claims", "/api/v1/risk/scores", "/api/v1/risk/factors",
                "/api/v1/tcoc/high-cost-claimants"}


def test_every_role_has_a_user(world):
    assert set(world.keys) == ALL


def test_openapi_lists_every_endpoint_of_the_matrix(client):
    paths = set(client.get("/openapi.json").json()["paths"])
    assert set(MATRIX) <= paths
    # every data endpoint of the published API is in the matrix (a new one must be added here)
    data_paths = {p for p in paths if p.startswith("/api/v1/") and "{" not in p and p not in ("/api/v1/login", "/api/v1/logout")}
    assert data_paths == set(MATRIX)


@pytest.mark.parametrize("role", sorted(ALL))
@pytest.mark.parametrize("endpoint", sorted(MATRIX))
def test_matrix(world, as_role, endpoint, role):
    r = as_role(role, endpoint)
    tables = {t for (t,) in world.sql("SELECT table_name FROM duckdb_tables()")}
    if role in MATRIX[endpoint]:
        absent = MAY_BE_ABSENT.get(endpoint)
        expected = 404 if absent and absent not in tables else 200
        assert r.status_code == expected, r.text
    else:
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")


def test_employer_never_reaches_member_level_data(as_role):
    for endpoint in MEMBER_LEVEL:
        assert as_role("employer", endpoint).status_code == 403
    assert as_role("regulator", "/api/v1/rosters").status_code == 403


@pytest.mark.parametrize("endpoint", sorted(MATRIX))
def test_no_credentials_is_401(client, endpoint):
    r = client.get(endpoint)
    assert r.status_code == 401
    assert r.json()["status"] == 401


def test_bad_key_is_401(client, world):
    good = world.keys["aco_admin"]
    assert client.get("/api/v1/me", headers={"X-API-Key": good[:-2] + "xx"}).status_code == 401
    assert client.get("/api/v1/me", headers={"X-API-Key": "nonsense"}).status_code == 401


def _all_items(as_role, role, endpoint, **params):
    items, offset = [], 0
    while True:
        r = as_role(role, endpoint, params={**params, "limit": 1000, "offset": offset})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        offset += 1000
        if offset >= body["total"]:
            return items, body["total"]


def test_payer_sees_only_its_programs(world, as_role):
    payer = world.users["payer"]["org_id"]
    items, total = _all_items(as_role, "payer", "/api/v1/tcoc")
    all_items, all_total = _all_items(as_role, "aco_admin", "/api/v1/tcoc")
    assert 0 < total < all_total
    mine = {r[0] for r in world.sql("SELECT DISTINCT program_id FROM tcoc_summary WHERE payer = ?", (payer,))}
    assert {i["program_id"] for i in items} <= mine
    assert {i["program_id"] for i in all_items} - mine  # other payers' programs exist and were hidden


def test_practice_sees_only_its_patients(world, as_role):
    practice = world.users["practice"]["org_id"]
    items, total = _all_items(as_role, "practice", "/api/v1/rosters")
    assert total > 0 and {i["practice_id"] for i in items} == {practice}
    # asking for another practice's rows by filter yields nothing, not their rows
    other = world.sql("SELECT min(practice_id) FROM attribution WHERE practice_id <> ?", (practice,))[0][0]
    r = as_role("practice", "/api/v1/rosters", params={"practice_id": other})
    assert r.status_code == 200 and r.json()["total"] == 0


def test_practice_sees_the_risk_scores_and_factors_of_its_attributed_patients_only(world, as_role):
    practice = world.users["practice"]["org_id"]
    scores, total = _all_items(as_role, "practice", "/api/v1/risk/scores")
    everyone, all_total = _all_items(as_role, "aco_admin", "/api/v1/risk/scores")
    mine = {(r[0], r[1]) for r in world.sql(
        "SELECT DISTINCT program_id, person_id FROM attribution WHERE attributed AND practice_id = ?", (practice,))}
    scored = {(i["program_id"], i["person_id"]) for i in everyone}
    assert 0 < total < all_total
    assert {(i["program_id"], i["person_id"]) for i in scores} == mine & scored
    held = {r[0] for r in world.sql("SELECT person_id FROM medical_claim WHERE substance_use_redacted "
                                    "UNION SELECT person_id FROM eligibility WHERE data_sharing_opt_out")}
    person = sorted({i["person_id"] for i in scores} - held)[0]  # (factors withheld: the next test)
    factors, _ = _all_items(as_role, "practice", "/api/v1/risk/factors", person_id=person)
    assert factors and {i["person_id"] for i in factors} == {person}
    assert {i["factor_type"] for i in factors} >= {"demographic"}
    # another practice's patient: nothing, not their rows
    other = sorted({p for _, p in scored} - {p for _, p in mine})[0]
    assert as_role("practice", "/api/v1/risk/factors", params={"person_id": other}).json()["total"] == 0
    assert as_role("aco_admin", "/api/v1/risk/factors", params={"person_id": other}).json()["total"] > 0


def test_risk_factors_withhold_persons_with_a_part2_claim_or_an_opt_out(world, as_role):
    held = {r[0] for r in world.sql(
        "SELECT person_id FROM medical_claim WHERE substance_use_redacted "
        "UNION SELECT person_id FROM eligibility WHERE data_sharing_opt_out")}
    factored = {r[0] for r in world.sql("SELECT DISTINCT person_id FROM risk_score_factors")}
    assert held & factored  # the world has such persons with factors
    released = world.sql("SELECT count(*) FROM risk_score_factors WHERE person_id NOT IN "
                         "(SELECT person_id FROM medical_claim WHERE substance_use_redacted "
                         "UNION SELECT person_id FROM eligibility WHERE data_sharing_opt_out)")[0][0]
    body = as_role("aco_admin", "/api/v1/risk/factors", params={"limit": 1}).json()
    assert body["total"] == released
    person = sorted(held & factored)[0]
    assert as_role("aco_admin", "/api/v1/risk/factors", params={"person_id": person}).json()["total"] == 0
    # their scores stay (a number, like the aggregates)
    assert as_role("aco_admin", "/api/v1/risk/scores", params={"person_id": person}).json()["total"] > 0


HELD = ("SELECT person_id FROM medical_claim WHERE substance_use_redacted "
        "UNION SELECT person_id FROM eligibility WHERE data_sharing_opt_out")


def test_high_cost_claimants_by_role_without_withheld_persons(world, as_role):
    endpoint = "/api/v1/tcoc/high-cost-claimants"
    held = {r[0] for r in world.sql(HELD)}
    table = world.sql("SELECT program_id, year, member_id, person_id, cost_cents, threshold_cents, rank "
                      "FROM high_cost_claimants")
    assert len(table) >= 20 and held & {r[3] for r in table}  # claimants for each role, some withheld
    released = {(r[0], r[1], r[2]) for r in table if r[3] not in held}
    everyone, total = _all_items(as_role, "aco_admin", endpoint)
    assert total == len(released) and {(i["program_id"], i["year"], i["member_id"]) for i in everyone} == released
    assert all(i["cost_cents"] >= i["threshold_cents"] for i in everyone)
    assert [i["rank"] for i in everyone if i["program_id"] == everyone[0]["program_id"]][:3] == [1, 2, 3]
    # the year filter is the table's year
    year = everyone[0]["year"]
    assert as_role("aco_admin", endpoint, params={"performance_year": year}).json()["total"] == total
    assert as_role("aco_admin", endpoint, params={"performance_year": year - 1}).json()["total"] == 0

    payer = world.users["payer"]["org_id"]
    own = {r[0] for r in world.sql("SELECT DISTINCT program_id FROM tcoc_member_month WHERE payer = ?", (payer,))}
    theirs, _ = _all_items(as_role, "payer", endpoint)
    assert theirs and {(i["program_id"], i["year"], i["member_id"]) for i in theirs} == {k for k in released if k[0] in own}

    practice = world.users["practice"]["org_id"]
    attributed = {(r[0], r[1], r[2]) for r in world.sql(
        "SELECT DISTINCT program_id, performance_year, person_id FROM attribution WHERE attributed AND practice_id = ?",
        (practice,))}
    mine, _ = _all_items(as_role, "practice", endpoint)
    expected = {(i["program_id"], i["year"], i["member_id"]) for i in everyone
                if (i["program_id"], i["year"], i["person_id"]) in attributed}
    assert {(i["program_id"], i["year"], i["member_id"]) for i in mine} == expected
    assert 0 < len(expected) < len(released)


def test_high_cost_claimants_withhold_persons_with_a_part2_claim_or_an_opt_out(world, tmp_path):
    """The query layer withholds a claimant who opted out of data sharing (with any payer), as it
    does a risk score's factors; the world's claimants have no such person, so a copy marks one."""
    import shutil

    import duckdb

    from allpayer.api import tenancy
    from allpayer.api.auth import Principal
    from allpayer.api.snapshot import Snapshot

    copy = tmp_path / "opted.duckdb"
    shutil.copy(world.db, copy)
    con = duckdb.connect(str(copy))
    program, person = con.execute(f"SELECT program_id, person_id FROM high_cost_claimants WHERE person_id NOT IN "
                                  f"({HELD}) ORDER BY cost_cents DESC LIMIT 1").fetchone()
    con.execute("UPDATE eligibility SET data_sharing_opt_out = TRUE WHERE person_id = ?", (person,))
    released = con.execute(f"SELECT count(*) FROM high_cost_claimants WHERE person_id NOT IN ({HELD})").fetchone()[0]
    con.close()
    assert released < world.sql(f"SELECT count(*) FROM high_cost_claimants WHERE person_id NOT IN ({HELD})")[0][0]
    snap = Snapshot(copy)
    try:
        with snap.lock:
            ctx = snap.context()
            for who in (Principal("x", "aco_admin", None), Principal("x", "payer", ctx.program_payer[program])):
                t = tenancy.scoped(who, "high_cost_claimants", ctx)
                persons = set(ctx.con.to_pyarrow(t.select("person_id")).column("person_id").to_pylist())
                assert persons and person not in persons
            everyone = tenancy.scoped(Principal("x", "aco_admin", None), "high_cost_claimants", ctx)
            assert int(ctx.con.execute(everyone.count())) == released
    finally:
        snap.close()


def test_hospital_sees_only_its_payments(world, as_role):
    hospital = world.users["hospital"]["org_id"]
    items, total = _all_items(as_role, "hospital", "/api/v1/payments/fpp")
    assert total > 0 and {i["hospital_id"] for i in items} == {hospital}
    items, _ = _all_items(as_role, "hospital", "/api/v1/payments/fixed-performance")
    assert {i["hospital_id"] for i in items} == {hospital}


def test_regulator_sees_aggregates_only(as_role):
    items, _ = _all_items(as_role, "regulator", "/api/v1/payments/fixed-performance")
    assert items and {i["hospital_id"] for i in items} == {"ALL"}
    items, _ = _all_items(as_role, "regulator", "/api/v1/tcoc")
    assert items and all(i["hsa"] is None and i["practice_id"] is None and i["employer_id"] is None for i in items)


def test_regulator_tcoc_is_the_program_totals_only(world, as_role):
    """A row with no hsa, practice_id nor employer_id is also the remainder of the members with no
    HSA, practice or employer (a few members of a program): the regulator reads only the programs'
    totals, one row per program and year, which the overview's totals equal."""
    items, _ = _all_items(as_role, "regulator", "/api/v1/tcoc")
    assert items and {i["level"] for i in items} == {"program"}
    assert len({(i["program_id"], i["year"]) for i in items}) == len(items)
    remainders = world.sql("SELECT count(*) FROM tcoc_summary WHERE level <> 'program' AND hsa IS NULL "
                           "AND practice_id IS NULL AND employer_id IS NULL")[0][0]
    assert remainders > 0  # the world has the rows that were served
    totals = {(i["program_id"], i["year"]): i["member_months"] for i in items}
    overview = as_role("regulator", "/api/v1/overview").json()["items"]
    assert {(o["program_id"], o["performance_year"]): o["member_months"] for o in overview} == totals


def test_regulator_quality_rates_are_its_reports(world, as_role):
    """The regulator reads the ACO and program rates with the suppression of its report: a rate
    whose denominator, numerator or their difference is a count from 1 to 10 is withheld with its
    counts, no count from 1 to 10 is readable (exclusions and the eligible members left included),
    and an ACO row is withheld where a program row of its measure is."""
    from allpayer.reports.employer import rate_hidden
    from allpayer.reports.suppression import is_small

    items, _ = _all_items(as_role, "regulator", "/api/v1/quality/rates")
    assert items and {i["level"] for i in items} == {"aco", "program"}
    raw = {(r[0], r[1], r[2], r[3]): r[4:] for r in world.sql(
        "SELECT program_id, measure_id, level, performance_year, denominator, numerator, rate FROM quality_rates "
        "WHERE level IN ('aco', 'program')")}
    hidden_programs = set()
    for i in items:
        d, n, rate = raw[(i["program_id"], i["measure_id"], i["level"], i["performance_year"])]
        if i["level"] == "program" and rate_hidden(d, n):
            hidden_programs.add((i["measure_id"], i["performance_year"]))
            assert (i["denominator"], i["numerator"], i["rate"], i["exclusions"]) == (None, None, None, None)
        elif i["level"] == "program":
            assert (i["denominator"], i["numerator"]) == (d, n)
    assert hidden_programs, "the world has no small rate: the test would prove nothing"
    for i in items:
        if i["level"] == "aco" and (i["measure_id"], i["performance_year"]) in hidden_programs:
            assert (i["denominator"], i["numerator"], i["rate"]) == (None, None, None)
        d, n, e = i["denominator"], i["numerator"], i["exclusions"]
        shown = [v for v in (d, n, e) if v is not None]
        if d is not None and n is not None:
            shown.append(d - n)
        if d is not None and e is not None:
            shown.append(d - e)
        assert not any(is_small(v) for v in shown), i


def test_employer_summary_is_its_own_only(world, as_role):
    emp = world.users["employer"]["org_id"]
    assert as_role("employer", f"/api/v1/employers/{emp}/summary").status_code == 200
    assert as_role("employer", "/api/v1/employers/someone-else/summary").status_code == 403
    # the ACO may ask for any employer, and one the snapshot does not have is not found
    missing = as_role("aco_admin", "/api/v1/employers/EMP-NOPE/summary")
    assert (missing.status_code, missing.json()["detail"]) == (404, "no such employer in this snapshot")
    items, _ = _all_items(as_role, "employer", "/api/v1/payments/invoices")
    assert {i["employer_id"] for i in items} <= {emp}


def test_employer_summary_suppresses_small_cells(world, as_role):
    emp = world.users["employer"]["org_id"]
    body = as_role("aco_admin", f"/api/v1/employers/{emp}/summary").json()
    for t in body["totals"]:
        if not t["suppressed"]:
            assert t["member_months"] >= 11
            shown = sum(r["member_months"] for r in body["items"] if r["program_id"] == t["program_id"] and not r["suppressed"])
            assert t["member_months"] - shown == 0 or t["member_months"] - shown >= 11
    for r in body["items"]:
        if r["suppressed"]:
            assert r["member_months"] is None and r["amount_cents"] is None
        else:
            assert r["member_months"] >= 11


def test_ledger_balances_are_the_organizations_account_only(world, as_role):
    for role in ("payer", "hospital", "practice", "employer"):
        items, _ = _all_items(as_role, role, "/api/v1/ledger/balances")
        assert {i["account"] for i in items} <= {f"{role}:{world.users[role]['org_id']}"}
    items, _ = _all_items(as_role, "aco_admin", "/api/v1/ledger/balances")
    assert len({i["account"] for i in items}) > 1
    bad = as_role("payer", "/api/v1/ledger/balances", params={"period": "P00123"})
    assert bad.status_code == 400 and "P00123" not in bad.text  # an answer never echoes the caller's value


def test_claims_withhold_opted_out_members(world, as_role):
    opted = world.sql("SELECT count(DISTINCT member_id) FROM eligibility WHERE data_sharing_opt_out")[0][0]
    body = as_role("aco_admin", "/api/v1/claims", params={"limit": 1}).json()
    held = world.sql(
        "SELECT count(*) FROM medical_claim c WHERE EXISTS (SELECT 1 FROM eligibility e WHERE e.data_sharing_opt_out "
        "AND e.member_id = c.member_id AND e.payer = c.payer) OR c.claim_id IN "
        "(SELECT claim_id FROM medical_claim WHERE substance_use_redacted)"
    )[0][0]
    everything = world.sql("SELECT count(*) FROM medical_claim")[0][0]
    assert body["total"] == everything - held
    if opted:
        assert held > 0
        opted_ids = {r[0] for r in world.sql("SELECT DISTINCT member_id FROM eligibility WHERE data_sharing_opt_out")}
        items, _ = _all_items(as_role, "aco_admin", "/api/v1/claims")
        assert not {i["member_id"] for i in items} & opted_ids


def test_query_layer_scopes_without_routes(world):
    """Tenant isolation lives in the query layer: scoped() itself filters and denies."""
    from allpayer.api import tenancy
    from allpayer.api.auth import Principal
    from allpayer.api.snapshot import Snapshot

    snap = Snapshot(world.db)
    with snap.lock:
        ctx = snap.context()
        practice = world.users["practice"]["org_id"]
        t = tenancy.scoped(Principal("x", "practice", practice), "rosters", ctx)
        ids = {r[0] for r in ctx.con.to_pyarrow(t.select("practice_id").distinct()).to_pylist() for r in [tuple(r.values())]}
        assert ids == {practice}
        with pytest.raises(tenancy.Denied):
            tenancy.scoped(Principal("x", "employer", "E1"), "rosters", ctx)
        with pytest.raises(tenancy.Denied):
            tenancy.scoped(Principal("x", "payer", None), "tcoc", ctx)
        nothing = tenancy.scoped(Principal("x", "payer", "no-such-payer"), "tcoc", ctx)
        assert int(ctx.con.execute(nothing.count())) == 0
    snap.close()


def test_control_characters_are_refused_not_a_server_error(as_role):
    """Found by the schema properties: a NUL in a filter once reached the SQL text."""
    for url in ("/api/v1/rosters?practice_id=%00", "/api/v1/tcoc?program_id=a%0Ab", "/api/v1/employers/%00/summary"):
        r = as_role("aco_admin", url)
        assert r.status_code == 422, (url, r.status_code)


def test_runs_show_organizations_no_other_programs_inputs(world, as_role):
    """A run's parameters hold the ACO's inputs: the files it read (paths on the server) and, for
    a settlement, each program's participant revenue and benchmark reports. An organization role
    or the regulator reads what identifies a run (year, period, stage, version), not those."""
    full = as_role("aco_admin", "/api/v1/runs").json()["items"]
    assert any("terms" in r["parameters"] for r in full)
    assert any("participant_revenue_cents" in r["parameters"] for r in full)
    for role in ("payer", "employer", "practice", "hospital", "regulator"):
        items = as_role(role, "/api/v1/runs").json()["items"]
        assert [r["run_id"] for r in items] == [r["run_id"] for r in full], role
        for r in items:
            assert set(r["parameters"]) <= {"as_of_load", "period", "stage", "through", "version", "year"}, (role, r)
            assert str(world.db.parent) not in str(r), role
