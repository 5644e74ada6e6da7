"""`allpayer run` end to end on a small generated population: the core stages, their invariants,
and that a re-run with the same paid-through date and inputs gives identical tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import ibis
import pytest

from allpayer import backend, pipeline
from allpayer.cli import main
from allpayer.runs import open_snapshot

# one worker builds this module's fixture once (--dist loadgroup; see tests/test_xdist_groups.py)
pytestmark = pytest.mark.xdist_group("pipeline_run")

YEAR = 2024


STAGE_EXPRESSIONS: dict = {}
"""The expression of every stage of the `db` fixture's run, as written (compiled again by the
complexity-score tests at the end of this module)."""

WORK_TABLES_AT: dict = {}
"""For every stage of the `db` fixture's run, the run's working tables (`pipeline.WORK_TABLES`)
that existed when the stage's table was written."""

OPTIMIZERS_OFF_AT: dict = {}
"""For every stage of the `db` fixture's run, DuckDB's ``disabled_optimizers`` as the stage's table
was written."""


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    data, db = base / "data", base / "allpayer.duckdb"
    assert main(["generate", "--members", "800", "--seed", "11", "--out", str(data)]) == 0
    assert main(["load", str(data), "--db", str(db)]) == 0
    write = pipeline._write

    def capture(con, name, expr, year, run_id, year_column):
        STAGE_EXPRESSIONS[name] = expr
        names = {r[0] for r in con.con.execute("select table_name from duckdb_tables()").fetchall()}
        WORK_TABLES_AT[name] = {w for w in pipeline.WORK_TABLES if pipeline.WORK_PREFIX + w in names}
        OPTIMIZERS_OFF_AT[name] = backend.disabled_optimizers(con)
        return write(con, name, expr, year, run_id, year_column)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "_write", capture)
        assert main(["run", "--db", str(db), "--year", str(YEAR), "--paid-through", "2025-03-31"]) == 0
    return db


def rows(db, sql):
    con = open_snapshot(db)
    try:
        return con.con.execute(sql).fetchall()
    finally:
        con.disconnect()


def test_every_stage_wrote_rows_for_the_year(db):
    for table in ("member_months", "attribution", "tcoc_member_month", "tcoc_summary", "utilization", "leakage"):
        ((n,),) = rows(db, f"select count(*) from {table}")
        assert n > 0, table


def test_risk_ratios_show_the_terms_cap_next_to_the_raw_ratio(db):
    """vt-2024-medicare caps the ratio's increase at 3%: every cell shows the cap, and its ratio is the
    raw ratio limited by it (the targets apply the same cap to the raw ratio)."""
    got = rows(db, "select cell_id, raw_ratio, cap, ratio, limited_by from risk_ratios where program_id = 'vt-2024-medicare'")
    assert got and {r[2] for r in got} == {1.03}
    for cell, raw, cap, ratio, limited_by in got:
        assert ratio == min(raw, cap) and (limited_by == "cap") == (raw > cap), cell


def test_each_risk_score_shows_its_work(db):
    """Every published score can be rebuilt from the published detail: each model's raw score is the
    sum of its factors (demographic cell and interactions, HCCs after hierarchies, disease
    interactions, the HCC count), and the blended score is the sum over models of raw score /
    normalization factor x blend weight. Members left unscored are listed with the reason."""
    keys = "program_id, person_id, payment_year, scored_for"
    scores = rows(db, f"select {keys}, blended_score from risk_scores")
    assert len(scores) > 100
    raw_vs_factors = rows(db, f"""
        with f as (select {keys}, model_version, sum(value) as total, count(*) filter (factor_type = 'demographic') as cells,
                          count(*) filter (factor_type = 'hcc') as hccs
                   from risk_score_factors group by all)
        select m.raw_score, f.total, m.hcc_count, f.hccs, f.cells
        from risk_model_scores m left join f using ({keys}, model_version)""")
    assert len(raw_vs_factors) == 2 * len(scores)  # V24 and V28 for every member of the 2024 blend
    for raw, total, hcc_count, hccs, cells in raw_vs_factors:
        assert total == pytest.approx(raw, abs=1e-9) and cells == 1 and hccs == hcc_count
    assert sum(1 for r in raw_vs_factors if r[3]) > len(raw_vs_factors) / 4  # many members have HCCs
    blended = dict(((r[:4]), r[4]) for r in rows(
        db, f"select {keys}, sum(raw_score / normalization_factor * blend_weight) from risk_model_scores group by all"))
    for *key, score in scores:
        assert blended[tuple(key)] == pytest.approx(score, abs=1e-12), key
    # an HCC's coefficient is the segment's; a new enrollee's HCCs are listed without one (value 0)
    hcc_rows = rows(db, "select segment, coefficient, value from risk_score_factors where factor_type = 'hcc'")
    for segment, coefficient, value in hcc_rows:
        if segment == "NE":
            assert coefficient is None and value == 0
        else:
            assert coefficient.startswith(segment + "_HCC") and value >= 0  # (a few V24 coefficients are 0)
    # each HCC carries CMS's description; the other factors have none
    labels = rows(db, "select model_version, factor, factor_type, label from risk_score_factors")
    assert all((label is not None) == (kind == "hcc") for _m, _f, kind, label in labels)
    assert {label for m, f, _k, label in labels if (m, f) == ("V24", "HCC85")} <= {"Congestive Heart Failure"}
    # members left unscored are listed with the reason (tests/core/test_risk_esrd.py), never also scored
    excluded = rows(db, f"select {keys}, reason from risk_exclusions")
    assert not {r[:4] for r in excluded} & {r[:4] for r in scores}


def test_the_run_records_the_reference_tables_each_program_scored_with(db):
    """Each scored program names the files its CMS-HCC tables and HCC names came from, with their
    SHA-256, so that a score can be traced to the tables that made it."""
    import hashlib

    from allpayer.reference import hcc

    got = rows(db, "select program_id, models, \"table\", payment_year, origin, file, sha256, rows, note "
                   "from risk_reference order by program_id, \"table\"")
    medicare = [r for r in got if r[0] == "vt-2024-medicare"]
    assert {r[2] for r in medicare} == {"coefficients", "dx_edits", "dx_to_cc", "eligible_procedures",
                                        "hierarchies", "hcc_labels", "diagnosis_claims"}
    # whose claims the diagnoses came from: the program's terms leave diagnosis_claims out (payer)
    (claims,) = [r for r in medicare if r[2] == "diagnosis_claims"]
    assert claims[4:] == ("terms: target.risk_adjustment.diagnosis_claims", "medicare.yaml", None, None,
                          "the diagnoses of the claims of payer medicare (the program's payer) only")
    folder = hcc.package_data_dir()
    for _program, models, table, year, origin, file, sha, n, note in medicare:
        if table == "diagnosis_claims":
            continue
        assert origin == hcc.package_origin() and n > 0
        assert sha == hashlib.sha256((folder / file).read_bytes()).hexdigest(), file
        if table != "hcc_labels":
            assert (models, year) == ("V24,V28", 2025)  # PY2024 scores with the 2025 tables (its terms)
    hierarchies = next(r for r in medicare if r[2] == "hierarchies")
    assert hierarchies[5] == "ra_hierarchies_2025.csv" and hierarchies[8].startswith("corrected:")
    # every program that scores has its rows; no other program has any
    scored = {r[0] for r in rows(db, "select distinct program_id from risk_scores")}
    assert {r[0] for r in got} == scored


def test_the_runs_working_tables_are_not_published(db):
    # attribution writes each of its steps as a working table of the run; none is left behind
    assert rows(db, "select table_name from information_schema.tables where table_name like '%run_work%'") == []


def test_working_tables_are_dropped_once_no_later_stage_reads_them(db):
    # At state scale the working tables do not fit in DuckDB's memory together: each is dropped
    # after the last stage that reads it, so the stages after it have that memory.
    at = WORK_TABLES_AT
    # on DuckDB the eligibility months are never written: each reader expands the months it reads
    assert not any("eligibility_months" in tables for tables in at.values())
    # what attribution reads of the eligibility months is stored before the claim lines are read
    assert {"claim_sums", "base_months"} <= at["attribution"]
    assert "claim_sums" in at["leakage"]
    assert "claim_sums" not in at["risk_scores"]
    # on DuckDB each stage nets the loaded rows it reads against the stored sums: the netted
    # lines themselves are never written (Spark stores them, tests/spark)
    assert not any("claim_lines" in tables for tables in at.values())
    assert "claim_sums" in at["tcoc_member_month"] and "base_member_month_cost" not in at["tcoc_member_month"]
    # the pharmacy lines too are netted against sums stored once, dropped with the medical ones
    assert "pharmacy_claim_sums" in at["tcoc_member_month"] and "pharmacy_claim_sums" in at["tcoc_reconciliation"]
    assert "pharmacy_claim_sums" not in at["risk_scores"]
    assert "risk_diagnoses" in at["risk_scores"]
    assert at["targets"] == {"base_months", "base_member_month_cost"}


def test_every_program_has_attributed_members_with_their_deciding_charges(db):
    got = rows(db, "select program_id, count(*), count(winner_allowed_cents), count(decided_by) "
                   "from attribution where attributed and basis = 'allowed_charges' group by all order by 1")
    assert len(got) == 5
    for program_id, n, cents, decided in got:
        assert n > 0 and cents == n and decided == n, program_id


def test_a_member_is_attributed_at_most_once_per_program_and_month(db):
    dup = rows(db, "select program_id, member_id, month, count(*) from attribution group by all having count(*) > 1")
    assert dup == []


def test_tcoc_rows_match_member_months_and_amounts_reconcile(db):
    ((mm,),) = rows(db, "select count(*) from member_months where performance_year = 2024")
    ((tm,),) = rows(db, "select count(*) from tcoc_member_month where performance_year = 2024")
    assert mm == tm
    # What the programs' TCOC counts equals the in-program lines of the reconciliation.
    ((total,),) = rows(db, "select sum(allowed_cents) from tcoc_member_month where performance_year = 2024")
    ((rec,),) = rows(db, "select sum(allowed_cents) from tcoc_reconciliation where disposition = 'in_program'")
    assert total == rec


def test_a_performance_year_panel_target_is_built_on_the_attributed_members_base_years(db):
    """Medicaid's ``base_population: performance_year_panel`` is the year's attributed members (VMNG:
    the historical claims of the prospectively attributed population, domain.md R2.2): its target
    PMPMs are those of the base-year cost of the people attributed and eligible in 2024, not of
    every eligible member of the plan (who cost less a month here, as members without a practice
    do)."""
    from allpayer.core import targets, tcoc
    from allpayer.core.claims import medical_claim_lines, pharmacy_claim_lines
    from allpayer.core.member_months import eligibility_months
    from allpayer.terms import load_program, programs_dir

    p = load_program(programs_dir() / "vermont" / "2024" / "medicaid.yaml")
    assert p.target.base_population == "performance_year_panel"
    con = open_snapshot(db)
    try:
        through = dt.date(2025, 3, 31)
        lines = ibis.union(tcoc.cost_lines(medical_claim_lines(con.table("medical_claim"), through)),
                           tcoc.cost_lines(None, pharmacy_claim_lines(con.table("pharmacy_claim"), through)))
        months = eligibility_months(con.table("eligibility"), dt.date(2022, 1, 1), dt.date(2022, 12, 31))
        pm = con.table("member_months").filter(lambda t: (t.performance_year == YEAR) & (t.program_id == p.program_id))
        att = con.table("attribution").filter(lambda t: (t.performance_year == YEAR) & (t.program_id == p.program_id)
                                              & t.attributed & t.eligible)

        def target_pmpm(panel):
            base = targets.base_population_months(months, p, performance_months=panel)
            t = targets.expected_cost(p, performance_months=pm, base_member_month_cost=tcoc.member_month_cost(lines, base))
            return {r["cell_id"]: r["risk_adjusted_pmpm"] for r in con.to_pyarrow(t.cells).to_pylist()}

        run = {c: v for c, v in con.con.execute(
            "select cell_id, max(target_pmpm) from targets where program_id = ? and performance_year = ? group by 1",
            [p.program_id, YEAR]).fetchall()}
        attributed, eligible = target_pmpm(att), target_pmpm(pm)
    finally:
        con.disconnect()
    assert run == attributed
    assert attributed != eligible  # the test world tells the two apart


def test_program_pmpm_times_member_months_gives_the_dollar_total(db):
    got = rows(db, "select program_id, sum(allowed_cents), count(*) from tcoc_member_month group by all")
    assert got
    for _, cents, months in got:
        pmpm = cents / months
        assert round(pmpm * months) == cents


def test_high_cost_claimants_are_the_members_whose_years_cost_reaches_the_threshold(db):
    """``high_cost_claimants`` lists, per program, every member whose performance year's cost (FFS
    paid, before truncation) reaches the run's threshold ($100,000 by default), ranked by cost,
    with the share of the program's cost and the category amounts that add up to it."""
    expected = rows(db, """
        with m as (select program_id, member_id, min(person_id) AS person_id, count(*) AS months,
                          sum(ffs_paid_cents) AS cost, sum(inpatient_ffs_paid_cents) AS inpatient
                   from tcoc_member_month where performance_year = 2024 group by all),
             p as (select program_id, sum(cost) AS program_cost from m group by all)
        select m.program_id, m.member_id, m.person_id, m.months, m.cost, m.inpatient, p.program_cost
        from m join p using (program_id) where m.cost >= 10000000""")
    got = rows(db, """
        select program_id, member_id, person_id, eligible_months, cost_cents, inpatient_ffs_paid_cents,
               program_cost_cents, rank, threshold_cents, share_of_program_cost,
               inpatient_ffs_paid_cents + outpatient_ffs_paid_cents + ed_ffs_paid_cents
                 + professional_ffs_paid_cents + pharmacy_ffs_paid_cents + other_ffs_paid_cents
        from high_cost_claimants where year = 2024""")
    assert len(expected) >= 3  # the 800 generated members have some (the Medicare ones above all)
    assert sorted(r[:7] for r in got) == sorted(expected)
    for r in got:
        assert r[8] == pipeline.HIGH_COST_THRESHOLD_CENTS and r[10] == r[4]
        assert abs(float(r[9]) - r[4] / r[6]) < 1e-9
    by_program: dict = {}
    for r in got:
        by_program.setdefault(r[0], []).append((r[7], -r[4], r[1]))
    for ranks in by_program.values():  # 1 = costliest, ties by member id
        assert [x[0] for x in sorted(ranks)] == list(range(1, len(ranks) + 1))
        assert sorted(ranks) == sorted(ranks, key=lambda x: (x[1], x[2]))


def test_the_high_cost_threshold_is_an_option_of_the_run(tmp_path, db, capsys):
    import shutil

    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    assert main(["run", "--db", str(copy), "--year", str(YEAR), "--paid-through", "2025-03-31",
                 "--high-cost-threshold", "$25,000.00"]) == 0
    ((n, low),) = rows(copy, "select count(*), min(cost_cents) from high_cost_claimants where year = 2024")
    ((default,),) = rows(db, "select count(*) from high_cost_claimants where year = 2024")
    assert n > default and low >= 2500000
    assert {r[0] for r in rows(copy, "select distinct threshold_cents from high_cost_claimants")} == {2500000}
    ((params,),) = rows(copy, "select parameters from runs where kind = 'run' order by seq desc limit 1")
    assert json.loads(params)["high_cost_threshold_cents"] == 2500000
    capsys.readouterr()
    assert main(["run", "--db", str(copy), "--year", str(YEAR), "--high-cost-threshold", "0"]) != 0
    assert "--high-cost-threshold takes an amount in dollars above zero" in capsys.readouterr().err


def test_a_through_month_outside_the_year_is_refused_and_the_year_stays(db, capsys):
    before = rows(db, "select count(*) from attribution where performance_year = 2024")
    for month in ("2023-06", "2025-02"):
        capsys.readouterr()
        assert main(["run", "--db", str(db), "--year", str(YEAR), "--through", month]) != 0
        assert f"--through {month} is not a month of 2024: give one from 2024-01 to 2024-12" in capsys.readouterr().err
    assert rows(db, "select count(*) from attribution where performance_year = 2024") == before != [(0,)]


def without_run_ids(db, tables) -> dict:
    """The rows of `tables`, every column but ``run_id``, sorted."""
    out = {}
    for t in tables:
        cols = [r[0] for r in rows(db, f"select column_name from information_schema.columns where table_name = '{t}'")]
        keep = ", ".join(c for c in cols if c != "run_id")
        out[t] = sorted(rows(db, f"select {keep} from {t}"), key=repr)
    return out


def test_rerun_gives_identical_tables_apart_from_run_ids(db, capsys):
    tables = ("attribution", "tcoc_member_month", "tcoc_summary", "leakage")
    before = without_run_ids(db, tables)
    capsys.readouterr()
    assert main(["run", "--db", str(db), "--year", str(YEAR), "--paid-through", "2025-03-31", "--json"]) == 0
    assert without_run_ids(db, tables) == before
    _the_run_accounts_for_its_whole_time(json.loads(capsys.readouterr().out))


def _the_run_accounts_for_its_whole_time(report: dict) -> None:
    """`run --json` times every part of the run, not only the stages' tables: the working tables,
    opening the snapshot, publishing it and rendering the reports add up with them to the whole."""
    other = dict(report["other_seconds"])
    for part in ("inputs", "working table base_months", "working table claim_sums",
                 "working table base_member_month_cost", "drop working tables", "open", "publish", "reports"):
        assert other[part] >= 0, part
    total = other.pop("total")
    parts = sum(report["seconds"].values()) + sum(other.values())
    assert parts <= total + 0.05
    assert parts >= 0.97 * total - 0.05  # the little between the parts (a lock, a log line) is not timed


def test_every_stage_is_written_with_its_joins_planned_as_written(db):
    assert OPTIMIZERS_OFF_AT and set(OPTIMIZERS_OFF_AT) >= {"attribution", "tcoc_member_month", "utilization"}
    for name, off in OPTIMIZERS_OFF_AT.items():
        assert backend.JOINS_AS_WRITTEN in off.split(","), name


def test_joins_planned_by_duckdb_give_the_same_tables(db, monkeypatch):
    """Planning the joins as written changes only which side of each hash join is built: with
    DuckDB's own choice the run writes the same rows."""
    tables = ("attribution", "tcoc_member_month", "tcoc_reconciliation", "utilization", "leakage", "targets")
    before = without_run_ids(db, tables)
    seen = []
    write = pipeline._write

    def check(con, name, expr, year, run_id, year_column):
        seen.append(backend.disabled_optimizers(con))
        return write(con, name, expr, year, run_id, year_column)

    monkeypatch.setattr(pipeline, "joins_as_written", lambda con: contextlib.nullcontext())
    monkeypatch.setattr(pipeline, "_write", check)
    assert main(["run", "--db", str(db), "--year", str(YEAR), "--paid-through", "2025-03-31"]) == 0
    assert seen and all(backend.JOINS_AS_WRITTEN not in s for s in seen)
    assert without_run_ids(db, tables) == before


def test_run_needs_terms_for_the_year(db, capsys):
    assert main(["run", "--db", str(db), "--year", "2031"]) == 2
    assert "no contract terms for performance year 2031" in capsys.readouterr().err


# Ibis's select-merge complexity score, kept per node by allpayer.backend: the compiled SQL of the
# largest stages is the same as with Ibis's own scoring, and so is the score of their nodes.

SCORED_STAGES = ("attribution", "risk_scores", "targets", "tcoc_summary")


def test_stages_compile_to_the_same_sql_with_the_kept_complexity_score(db, monkeypatch):
    import ibis
    import ibis.backends.sql.rewrites as rewrites

    kept = rewrites.complexity
    assert kept._allpayer_memoized
    # attribution and targets take half a minute to compile with Ibis's own score (it walks each
    # subtree again for every merge): their nodes' scores are compared below instead
    for name in ("risk_scores", "tcoc_summary"):
        expr = STAGE_EXPRESSIONS[name]
        ours = ibis.to_sql(expr, dialect="duckdb")
        monkeypatch.setattr(rewrites, "complexity", kept._ibis_original)
        theirs = ibis.to_sql(expr, dialect="duckdb")
        monkeypatch.setattr(rewrites, "complexity", kept)
        assert ours == theirs, name


def test_the_kept_complexity_score_of_stage_nodes_is_ibis_score(db):
    import random

    import ibis.backends.sql.rewrites as rewrites
    import ibis.expr.operations as ops

    original = rewrites.complexity._ibis_original
    rng = random.Random(7)
    compared = 0
    for name in SCORED_STAGES:
        nodes = list(STAGE_EXPRESSIONS[name].op().find(ops.Node))
        relations = [n for n in nodes if isinstance(n, (ops.Project, ops.Filter, ops.Aggregate))]
        for node in relations[:40] + rng.sample(nodes, min(60, len(nodes))):
            assert rewrites.complexity(node) == original(node), (name, type(node).__name__)
            compared += 1
    assert compared > 200
