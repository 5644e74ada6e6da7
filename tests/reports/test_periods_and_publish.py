"""Report periods (quarter, month, year to date), the employer's wellness rates and completed cost,
batch rendering equal to one-by-one rendering, and reports rendered when a run is published."""

from __future__ import annotations

import csv
import json
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pytest

from allpayer.cli import main
from allpayer.reports.base import HIDDEN

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report_periods")]  # one worker builds the module fixtures once

YEAR = 2024


def sql(db, q):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(q).fetchall()
    finally:
        con.close()


def report_csv(db, tmp_path, kind, org, period):
    out = tmp_path / f"{kind}-{period}"
    assert main(["report", kind, "--db", str(db), "--for", org, "--period", period, "--out", str(out),
                 "--format", "csv"]) == 0
    files = list(out.glob("*.csv"))
    assert [f.name for f in files] == [f"{kind}-{org}-{period.upper()}.csv"]
    with files[0].open(newline="") as f:
        return list(csv.DictReader(f))


def cell(rows, section, row, column):
    got = [r["value"] for r in rows if (r["section"], r["row"], r["column"]) == (section, row, column)]
    assert len(got) == 1, (section, row, column, len(got))
    return got[0]


def number(text):
    return int(text.replace(",", "").replace("$", "").replace(".", ""))


@pytest.fixture(scope="module")
def big_employer(published):
    """The employer with the most member months (its months are not suppressed)."""
    return sql(published, f"""SELECT g.employer_id FROM tcoc_member_month m JOIN employer_group g USING (group_id)
        WHERE m.performance_year = {YEAR} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1""")[0][0]


@pytest.fixture(scope="module")
def big_practice(published):
    return sql(published, "SELECT practice_id FROM attribution WHERE attributed AND eligible AND practice_id IS NOT "
                          "NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")[0][0]


def test_a_quarter_is_the_sum_of_its_months(published, tmp_path, big_employer, big_practice):
    for kind, org, section, cols in (
            ("employer", big_employer, "members_and_cost_by_month", ["member months", "TCOC paid (FFS basis)"]),
            ("practice", big_practice, "panel_cost", ["members", "TCOC paid (FFS basis)", "target"]),
            ("practice", big_practice, "payments", ["total"])):
        quarter = report_csv(published, tmp_path, kind, org, f"{YEAR}-Q2")
        months = [report_csv(published, tmp_path, kind, org, f"{YEAR}-{m:02d}") for m in (4, 5, 6)]
        for col in cols:
            q = cell(quarter, section, "Total", col)
            parts = [cell(m, section, "Total", col) for m in months]
            assert HIDDEN not in (q, *parts), f"{kind} {org}: pick a population whose months are shown"
            assert number(q) == sum(number(p) for p in parts), f"{kind} {section}/{col}: {q} != {' + '.join(parts)}"
        assert {r["row"] for r in quarter if r["section"] == section} - {"Total"} <= {f"{YEAR}-0{m}" for m in (4, 5, 6)}
    # and the quarter's employer member months and cost are those of the database, independently
    mm, cost = sql(published, f"""SELECT count(*), sum(m.ffs_paid_cents) FROM tcoc_member_month m
        WHERE m.performance_year = {YEAR} AND month(m.month) BETWEEN 4 AND 6
          AND m.group_id IN (SELECT group_id FROM employer_group WHERE employer_id = '{big_employer}')""")[0]
    q = report_csv(published, tmp_path / "again", "employer", big_employer, f"{YEAR}-Q2")
    assert cell(q, "totals", "Member months", "value") == f"{mm:,}"
    assert cell(q, "totals", "TCOC paid (FFS basis)", "value") == f"${cost / 100:,.2f}"


def test_year_to_date_runs_from_january(published, tmp_path, big_employer):
    ytd = report_csv(published, tmp_path, "employer", big_employer, f"{YEAR}-03-YTD")
    rows = [r["row"] for r in ytd if r["section"] == "members_and_cost_by_month" and r["column"] == "member months"]
    assert rows == [f"{YEAR}-01", f"{YEAR}-02", f"{YEAR}-03", "Total"]
    q1 = report_csv(published, tmp_path, "employer", big_employer, f"{YEAR}-Q1")
    assert cell(ytd, "totals", "TCOC paid (FFS basis)", "value") == cell(q1, "totals", "TCOC paid (FFS basis)", "value")


def test_a_year_only_report_refuses_a_quarter(published, tmp_path):
    for kind, org in (("payer", "medicaid"), ("regulator", "GMCB")):
        assert main(["report", kind, "--db", str(published), "--for", org, "--period", f"{YEAR}-Q2",
                     "--out", str(tmp_path), "--format", "csv"]) == 2
    assert main(["report", "employer", "--db", str(published), "--for", "EMP-SOV", "--period", f"{YEAR}-Q5",
                 "--out", str(tmp_path), "--format", "csv"]) == 2


def test_employer_wellness_rates_and_completed_cost_match_the_database(published, tmp_path, big_employer):
    rows = report_csv(published, tmp_path, "employer", big_employer, str(YEAR))
    tables = {r[0] for r in sql(published, "SELECT table_name FROM information_schema.tables")}
    # AWV / WCV: the employer's members who share data, eligible in the measure, with a visit
    for measure, label in [] if "quality_measure_results" not in tables else (("awv", "Annual wellness visit (AWV)"), ("hedis_wcv", "Well-care visits ages 3-21 (WCV)")):
        den, num = sql(published, f"""
            WITH mine AS (SELECT DISTINCT m.program_id, m.person_id FROM tcoc_member_month m
                          WHERE m.performance_year = {YEAR} AND NOT coalesce(m.data_sharing_opt_out, false)
                            AND m.group_id IN (SELECT group_id FROM employer_group WHERE employer_id = '{big_employer}')),
                 per AS (SELECT q.person_id, bool_or(q.in_denominator AND NOT coalesce(q.excluded, false)) AS e,
                                bool_or(q.in_denominator AND NOT coalesce(q.excluded, false) AND q.in_numerator) AS n
                         FROM quality_measure_results q JOIN mine USING (program_id, person_id)
                         WHERE q.performance_year = {YEAR} AND q.measure_id = '{measure}' GROUP BY 1)
            SELECT count(*) FILTER (WHERE e), count(*) FILTER (WHERE n) FROM per""")[0]
        got = [r for r in rows if r["section"] == "wellness" and r["row"] == label]
        if not den and not got:
            continue
        shown = {r["column"]: r["value"] for r in got}
        if shown["denominator"] != HIDDEN:
            assert shown["denominator"] == f"{den:,}"
        if shown["rate"] != HIDDEN:
            assert shown["numerator"] == f"{num:,}"
            rate = (Decimal(num) / Decimal(den) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            assert shown["rate"] == f"{rate}%"
    # completed estimate: each (payer, month) paid x the payer's development factor at its lag to the valuation month
    if "completion_factors" not in tables:
        pytest.skip("no completion factors in this run")
    paid_through = sql(published, "SELECT paid_through FROM runs WHERE paid_through IS NOT NULL ORDER BY seq DESC "
                                  "LIMIT 1")[0][0]
    from allpayer.pipeline import valuation_date

    v = valuation_date(paid_through)
    cdf = {(p, lag): Decimal(str(f)) for p, lag, f in sql(published, f"""SELECT payer, lag, cumulative_development_factor
        FROM completion_factors WHERE performance_year = {YEAR}""")}
    max_lag = max(lag for _, lag in cdf)
    total = 0
    for payer, month, paid in sql(published, f"""SELECT m.payer, m.month, sum(m.ffs_paid_cents) FROM tcoc_member_month m
            WHERE m.performance_year = {YEAR}
              AND m.group_id IN (SELECT group_id FROM employer_group WHERE employer_id = '{big_employer}')
            GROUP BY 1, 2"""):
        lag = max(0, min((v.year - month.year) * 12 + v.month - month.month, max_lag))
        total += int((Decimal(int(paid)) * cdf.get((payer, lag), Decimal(1))).quantize(Decimal(1), ROUND_HALF_UP))
    assert cell(rows, "totals", "TCOC completed estimate (IBNR)", "value") == f"${total / 100:,.2f}"


def test_report_all_equals_reports_one_by_one(published, tmp_path):
    """`report --all` answers from queries run once for every organization; each report equals the
    same report rendered alone."""
    out = tmp_path / "all"
    assert main(["report", "--all", "--db", str(published), "--period", f"{YEAR}", "--format", "csv",
                 "--out", str(out)]) == 0
    run_dir = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    index = json.loads((run_dir / "index.json").read_text())
    assert index["period"] == str(YEAR)
    picked = {}
    for r in index["reports"]:
        picked.setdefault(r["kind"], []).append(r)
    for kind, reps in picked.items():
        for r in reps[:3]:
            alone = tmp_path / "alone" / kind
            assert main(["report", kind, "--db", str(published), "--for", r["organization"], "--period", str(YEAR),
                         "--out", str(alone), "--format", "csv"]) == 0
            name = r["files"]["csv"].split("/")[-1]
            assert (run_dir / r["files"]["csv"]).read_text() == (alone / name).read_text(), f"{kind} {r['organization']}"


def test_publishing_a_run_renders_its_reports(published, tmp_path, monkeypatch):
    import shutil

    from allpayer import runs

    db = tmp_path / "p.duckdb"
    shutil.copyfile(published, db)
    monkeypatch.setenv("ALLPAYER_RENDER_REPORTS", "1")
    with runs.begin(db, kind="run", parameters={"stage": "test", "year": YEAR}) as run:
        pass
    index = json.loads((tmp_path / "p.duckdb.reports" / run.run_id / "index.json").read_text())
    assert index["run_id"] == run.run_id and {r["kind"] for r in index["reports"]} == {
        "employer", "practice", "hospital", "payer", "regulator"}
    assert all(set(r["files"]) == {"html", "csv"} for r in index["reports"])
    # a load publishes no reports; switched off, a run publishes none either
    with runs.begin(db, kind="load", parameters={"year": YEAR}) as load:
        pass
    monkeypatch.setenv("ALLPAYER_RENDER_REPORTS", "0")
    with runs.begin(db, kind="run", parameters={"year": YEAR}) as off:
        pass
    assert sorted(p.name for p in (tmp_path / "p.duckdb.reports").iterdir()) == [run.run_id]
    assert load.run_id != off.run_id


def test_reports_option_overrides_the_setting_for_one_command(published, tmp_path, monkeypatch):
    """`--no-reports` renders nothing on publish where the setting says render; `--reports` renders
    where it says not; without either the setting decides. The setting is as before afterwards."""
    import os
    import shutil

    from allpayer.runs import published_runs

    db = tmp_path / "p.duckdb"
    shutil.copyfile(published, db)
    reports = tmp_path / "p.duckdb.reports"

    def settle(*flag):
        assert main(["settle", "--db", str(db), "--year", str(YEAR), "--no-post", *flag]) == 0
        return published_runs(db)[-1]["run_id"]

    def rendered():
        return sorted(p.name for p in reports.iterdir()) if reports.exists() else []

    monkeypatch.setenv("ALLPAYER_RENDER_REPORTS", "1")
    quiet = settle("--no-reports")
    assert rendered() == [] and os.environ["ALLPAYER_RENDER_REPORTS"] == "1"
    default_on = settle()
    assert rendered() == [default_on]
    monkeypatch.setenv("ALLPAYER_RENDER_REPORTS", "0")
    forced = settle("--reports")
    assert rendered() == sorted([default_on, forced]) and os.environ["ALLPAYER_RENDER_REPORTS"] == "0"
    settle()
    assert rendered() == sorted([default_on, forced]) and quiet not in rendered()
