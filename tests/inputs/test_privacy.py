"""Data-sharing limits on the hand-checked base delivery.

Base delivery (tests/fixtures/bad_data/base): member MD002 (person P002, medicaid, Jan-Jun 2024)
declined data sharing; claim C4 (P002 as BC003, bcbsvt, three rows: original and two
adjustments) is redacted under 42 CFR Part 2. Medical claim rows: C1 (2 lines, MC001), C2 and C3
(MD002), C4 (3 rows), C5 (MD004): 8 rows.
"""

from __future__ import annotations

import datetime as dt

import pytest

from allpayer.cli import main
from allpayer.core import tcoc
from allpayer.core.claims import medical_claim_lines
from allpayer.core.member_months import eligibility_months
from allpayer.core.programs import program_months
from allpayer.inputs import privacy
from allpayer.inputs.load import load_folder
from allpayer.runs import open_snapshot
from allpayer.terms import load_programs, programs_dir

from .conftest import build_delivery


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("privacy")
    db = tmp / "db.duckdb"
    load_folder(build_delivery(tmp / "d"), db)
    return db


@pytest.fixture
def con(db):
    c = open_snapshot(db)
    yield c
    c.disconnect()


def ids(t, *cols):
    df = t.select(*cols).execute()
    return sorted(tuple(r) for r in df.itertuples(index=False))


def test_releasable_and_withheld_rows(con):
    m, e = con.table("medical_claim"), con.table("eligibility")
    assert ids(privacy.releasable(m, e, m), "claim_id", "claim_line_number", "adjustment_sequence") == [
        ("C1", 1, 0), ("C1", 2, 0), ("C5", 1, 0),
    ]
    w = privacy.withheld(m, e, m)
    assert ids(w, "claim_id", "withheld_reason") == [
        ("C2", privacy.REASON_OPT_OUT), ("C3", privacy.REASON_OPT_OUT),
        ("C4", privacy.REASON_PART2), ("C4", privacy.REASON_PART2), ("C4", privacy.REASON_PART2),
    ]
    assert privacy.withheld_counts(m, e, m) == {privacy.REASON_OPT_OUT: 2, privacy.REASON_PART2: 3}


def test_opt_out_is_per_payer(con):
    """P002 declined sharing as a Medicaid member (MD002); as BC003 with bcbsvt the opt-out does
    not apply (C4 is withheld for Part 2 only)."""
    e = con.table("eligibility")
    assert ids(privacy.opted_out_members(e), "member_id", "payer") == [("MD002", "medicaid")]


def test_opted_out_members_still_count_in_member_months_and_tcoc(con):
    """The engine's member months and TCOC read the tables whole: MD002's six months (Jan-Jun)
    and its claims C2 and C3 are in them (BC003's group is in no 2024 program, so C4 has no
    program month to count in)."""
    programs = [p for p in load_programs([programs_dir() / "vermont"]) if p.performance_year == 2024]
    months = eligibility_months(con.table("eligibility"), dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    pm = program_months(months, programs, con.table("employer_group"))
    md002 = pm.filter(pm.member_id == "MD002")
    assert md002.count().execute() == 6
    assert bool(md002.data_sharing_opt_out.min().execute())
    lines = tcoc.cost_lines(medical_claim_lines(con.table("medical_claim")))
    cost = tcoc.member_month_cost(lines, pm, {p.program_id: tcoc.scope_for(p.kind) for p in programs})
    by_member = cost.group_by("member_id").aggregate(n=cost.claim_lines.sum()).execute()
    counts = dict(zip(by_member.member_id, by_member.n))
    assert counts["MD002"] == 2  # C2 and C3
    assert counts["MC001"] == 2  # C1's two lines, for comparison


def test_export_withholds_claim_detail_and_says_so(db, tmp_path, capsys):
    out = tmp_path / "medical_claim.csv"
    assert main(["export", "medical_claim", "--db", str(db), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "wrote 3 rows of medical_claim" in err
    assert f"withheld 2 rows: {privacy.REASON_OPT_OUT}" in err
    assert f"withheld 3 rows: {privacy.REASON_PART2}" in err
    text = out.read_text()
    assert "MD002" not in text and "C4" not in text
    # a table without claim detail is exported whole
    out2 = tmp_path / "eligibility.csv"
    assert main(["export", "eligibility", "--db", str(db), "--out", str(out2)]) == 0
    assert "MD002" in out2.read_text()


def test_redaction_status_and_measure_note(con):
    bcbs = privacy.redaction_status(con, "bcbsvt", 2024)
    assert (bcbs.claim_lines, bcbs.redacted_claim_lines, bcbs.members, bcbs.opted_out_members) == (3, 3, 1, 0)
    assert bcbs.status == "part2_redacted"
    medicaid = privacy.redaction_status(con, "medicaid", 2024)
    assert (medicaid.claim_lines, medicaid.redacted_claim_lines, medicaid.members, medicaid.opted_out_members) == (2, 0, 2, 1)  # C5 starts in 2025
    assert medicaid.complete
    assert privacy.measure_note(medicaid, needs_part2_data=True) is None
    assert privacy.measure_note(bcbs, needs_part2_data=False) is None
    assert "3 claim lines of bcbsvt 2024 redacted under 42 CFR Part 2" in privacy.measure_note(bcbs, needs_part2_data=True)


def test_export_of_the_quarantine_withholds_the_same_claims(tmp_path, capsys):
    """Two quarantined claim rows: one of MD002 (opted out), one of MC001. The export of the
    quarantine leaves out MD002's and says so; other quarantined rows stay."""
    folder = build_delivery(tmp_path / "d")
    path = folder / "medical_claim.csv"
    lines = path.read_text().splitlines()
    lines.append(lines[3].replace("C2,1,0", "C9,1,0").replace("2024-03-10", "2024-13-10", 1))  # MD002, bad date
    lines.append(lines[1].replace("C1,1,0", "C8,1,0").replace("2024-02-05", "2024-02-31", 1))  # MC001, bad date
    path.write_text("\n".join(lines) + "\n")
    db = tmp_path / "db.duckdb"
    load_folder(folder, db)
    out = tmp_path / "q.csv"
    assert main(["export", "quarantine", "--db", str(db), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "wrote 1 rows of quarantine" in err
    assert f"withheld 1 rows: {privacy.REASON_OPT_OUT}" in err
    text = out.read_text()
    assert "C8" in text and "C9" not in text


def _with_table(db, tmp_path, create_sql: str):
    """A copy of the database with one more table, made by `create_sql`."""
    import shutil

    import duckdb

    copy = tmp_path / "with_table.duckdb"
    shutil.copy(db, copy)
    c = duckdb.connect(str(copy))
    c.execute(create_sql)
    c.close()
    return copy


def _with_risk_factors(db, tmp_path):
    """A copy of the database with a ``risk_score_factors`` table: one HCC row each for P001
    (nothing to withhold) and P002 (opted out as MD002, and C4 is redacted under Part 2), and two
    for a person the inputs do not know."""
    return _with_table(db, tmp_path, """CREATE TABLE risk_score_factors AS SELECT * FROM (VALUES
        ('P001', 'V28', 'hcc', 'HCC38'), ('P002', 'V28', 'hcc', 'HCC137'),
        ('P999', 'V28', 'hcc', 'HCC38'), ('P999', 'V28', 'demographic', 'F70_74'))
        AS f(person_id, model_version, factor_type, factor)""")


def test_export_of_high_cost_claimants_withholds_persons_with_a_part2_claim_or_an_opt_out(db, tmp_path, capsys):
    """A high-cost claimant's row is the year's cost by service category, from all of the person's
    claims: withheld by person, as a score's factors are."""
    copy = _with_table(db, tmp_path, """CREATE TABLE high_cost_claimants AS SELECT * FROM (VALUES
        ('prog', 'MD001', 2024, 'P001', 12000000), ('prog', 'MD002', 2024, 'P002', 11000000))
        AS h(program_id, member_id, year, person_id, cost_cents)""")
    assert privacy.is_clinical_detail("high_cost_claimants", ["program_id", "member_id", "person_id"])
    out = tmp_path / "claimants.csv"
    assert main(["export", "high_cost_claimants", "--db", str(copy), "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "wrote 1 rows of high_cost_claimants" in err
    assert f"withheld 1 rows: {privacy.REASON_OPT_OUT}; {privacy.REASON_PART2}" in err
    assert "P002" not in out.read_text() and "P001" in out.read_text()


def test_risk_factors_are_withheld_by_person(db, tmp_path):
    """A score's factors name the member's conditions and are not traced to their claims: a person
    with a Part 2 claim of any payer, or an opt-out with any payer, is withheld whole."""
    c = open_snapshot(_with_risk_factors(db, tmp_path))
    try:
        f, e, m = c.table("risk_score_factors"), c.table("eligibility"), c.table("medical_claim")
        assert privacy.is_clinical_detail("risk_score_factors", f.columns)
        assert not privacy.is_clinical_detail("risk_scores", ["person_id", "risk_score"])
        assert ids(privacy.person_releasable(f, e, m), "person_id", "factor") == [
            ("P001", "HCC38"), ("P999", "F70_74"), ("P999", "HCC38")]
        assert privacy.person_withheld_counts(f, e, m) == {f"{privacy.REASON_OPT_OUT}; {privacy.REASON_PART2}": 1}
    finally:
        c.disconnect()


def test_export_of_risk_factors_withholds_those_persons_and_says_so(db, tmp_path, capsys):
    out = tmp_path / "factors.csv"
    assert main(["export", "risk_score_factors", "--db", str(_with_risk_factors(db, tmp_path)), "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "wrote 3 rows of risk_score_factors" in err
    assert f"withheld 1 rows: {privacy.REASON_OPT_OUT}; {privacy.REASON_PART2}" in err
    assert "P002" not in out.read_text() and "P001" in out.read_text()


@pytest.mark.parametrize("table, columns", [
    ("care_gaps", "program_id, practice_id, person_id, gap_id, gap_type"),
    ("quality_measure_results", "program_id, practice_id, person_id, measure_id, evidence_id"),
])
def test_export_of_care_gaps_and_quality_results_withholds_those_persons(db, tmp_path, capsys, table, columns):
    """A member's care gaps and quality results name the conditions, visits and tests read from
    their claims (with the claims as evidence): a person who opted out of data sharing, or has a
    Part 2 claim, is withheld whole, as a score's factors are (both were exported whole)."""
    copy = _with_table(db, tmp_path, f"""CREATE TABLE {table} AS SELECT * FROM (VALUES
        ('prog', 'pr1', 'P001', 'x', 'C1'), ('prog', 'pr1', 'P002', 'x', 'C4')) AS g({columns})""")
    out = tmp_path / f"{table}.csv"
    assert main(["export", table, "--db", str(copy), "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"wrote 1 rows of {table}" in err
    assert f"withheld 1 rows: {privacy.REASON_OPT_OUT}; {privacy.REASON_PART2}" in err
    assert "P002" not in out.read_text() and "P001" in out.read_text()
