"""Fast checks of the report parts that need no database: docstring examples, charts, CSV, disputes."""

from __future__ import annotations

import doctest
import datetime as dt

import pytest

from allpayer.reports import charts, csvout, disputes, render, suppression
from allpayer.reports import base
from allpayer.reports.base import Period, Report, Table, pct, pmpm_cents, usd
from allpayer.reports.publish import parse_formats, parse_period
from allpayer.reports.regulator import load_inputs
from allpayer.reports.base import ReportError
from allpayer.store import open_store


@pytest.mark.parametrize("module", [suppression, charts, base, render])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted and not result.failed


def test_money_and_rates_are_rounded_half_up():
    assert pmpm_cents(1001, 2) == 501  # 500.5 cents -> 501
    assert pmpm_cents(5, 0) is None
    assert usd(-123456) == "-$1,234.56" and usd(0) == "$0.00"
    assert pct("0.0345") == "3.5%" and pct("0.043", 1) == "4.3%"


def test_charts_draw_a_gap_for_a_hidden_value_and_keep_the_title():
    svg = charts.line_chart("PMPM vs target over time", ["a", "b", "c"], {"x": [1, None, 3]})
    assert "PMPM vs target over time" in svg and "polyline" not in svg  # no line across the gap
    bars = charts.bar_chart("Payments by type", ["m1", "m2"], {"CPR": [10, -5]})
    assert bars.count("<rect") == 2 + 1  # two bars and one legend key


def test_csv_rows_carry_run_and_section():
    rep = Report(kind="payer", org="p", year=2024, run_id="R1", title="t", subtitle="s",
                 totals=[("Net", "$1.00")], tables=[Table("lines", "Lines", ["line", "amount"], [["1", "$1.00"]])])
    recs = csvout.records(rep)
    assert recs[0] == ["payer", "p", "2024", "2024", "R1", "totals", "Net", "value", "$1.00"]
    assert recs[1] == ["payer", "p", "2024", "2024", "R1", "lines", "1", "amount", "$1.00"]
    rep.period = Period.parse("2024-Q2")
    assert csvout.records(rep)[0][:5] == ["payer", "p", "2024", "2024-Q2", "R1"]
    assert rep.slug == "payer-p-2024-Q2"


def _awkward_report() -> Report:
    """A report whose organization, values and labels need quoting in CSV and escaping in HTML."""
    from markupsafe import Markup

    return Report(kind="employer", org='Acme, "East"', year=2024, run_id="R1", title="<t>", subtitle="s & s",
                  totals=[("Net, all", "$1,000.00"), ("Line\nbreak", "")],
                  tables=[Table("members", "Members", ["member", "note", "amount"],
                                [["M1", 'said "hi"', "$1.00"], ["M<2>", "a & b's", ""], ["M3", Markup("<b>x</b>"), None],
                                 []]),
                          Table("empty", "Empty", ["x"], [])],
                  provenance=[("run id", "R1"), ("source", "a,b")])


def test_csv_file_is_what_a_csv_writer_makes_of_the_records(tmp_path):
    # The file writes the five leading fields once per report and puts them before each row;
    # its bytes must be those of writing every record in full.
    import csv
    import io

    rep = _awkward_report()
    path = csvout.write_csv(rep, tmp_path)
    want = io.StringIO(newline="")
    w = csv.writer(want)
    w.writerow(csvout.HEADER)
    w.writerows(csvout.records(rep))
    assert path.read_bytes() == want.getvalue().encode("utf-8")
    back = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert back[1][:5] == ["employer", 'Acme, "East"', "2024", "2024", "R1"]
    assert ["Line\nbreak", "value", ""] in [r[6:] for r in back]


def test_html_table_rows_escape_values_as_the_template_does():
    # The table bodies are built outside the template loop; the page must be the one the loop made.
    from jinja2 import Environment

    rep = _awkward_report()
    loop = Environment(autoescape=True).from_string(
        "{% for row in rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>\n{% endfor %}")
    for t in rep.tables:
        assert str(render.rows_html(t.rows)) == loop.render(rows=t.rows)
    page = render.html(rep)
    assert "<td>M&lt;2&gt;</td><td>a &amp; b&#39;s</td><td></td></tr>" in page
    assert "<td><b>x</b></td><td>None</td>" in page and "&lt;t&gt;" in page


def test_options_are_checked():
    assert parse_formats("html, PDF") == ["html", "pdf"]
    with pytest.raises(ReportError):
        parse_formats("docx")
    assert parse_period("2024") == Period(2024)
    assert parse_period("2024-q3") == Period(2024, 7, 9, "quarter")
    assert parse_period("2024-02") == Period(2024, 2, 2, "month")
    assert parse_period("2024-05-YTD") == Period(2024, 1, 5, "ytd")
    assert parse_period("2024-05-YTD").months() == [dt.date(2024, m, 1) for m in range(1, 6)]
    assert Period.parse("2024-Q4").quarters() == ["2024-Q4"] and Period.parse("2024-05-YTD").quarters() == [
        "2024-Q1", "2024-Q2"]
    for bad in ("24", "2024-13", "2024-Q5", "2024-00", "Q2", "2024-05-MTD"):
        with pytest.raises(ReportError, match="a quarter"):
            parse_period(bad)
    with pytest.raises(ReportError):
        parse_period("2024-13")


def test_regulator_inputs_reject_unknown_keys(tmp_path):
    f = tmp_path / "in.yaml"
    f.write_text("statewide_lives: {all_payer: 600000}\nnational_medicare_growth: '0.031'\n")
    got = load_inputs(f)
    assert got.statewide_lives.all_payer == 600000 and str(got.national_medicare_growth) == "0.031"
    f.write_text("statewide_live: {all_payer: 1}\n")
    with pytest.raises(ReportError, match="in.yaml"):
        load_inputs(f)


def test_disputes_are_kept_per_practice():
    s = open_store("sqlite:///:memory:")
    now = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    d1 = disputes.flag(s, "vt-2024-medicaid", "M1", "2024-03", "pc-a", "moved away", now=now)
    disputes.flag(s, "vt-2024-medicaid", "M2", "2024-04", "pc-b", "never seen", now=now)
    got = disputes.for_practice(s, "pc-a")
    assert [g["dispute_id"] for g in got] == [d1] and got[0]["status"] == "open"
    assert got[0]["flagged_at"] == "2025-01-02T03:04:05+00:00"
    with pytest.raises(disputes.DisputeError):
        disputes.flag(s, "p", "M1", "2024-3", "pc-a", "x")
    with pytest.raises(disputes.DisputeError):
        disputes.flag(s, "p", "M1", "2024-03", "pc-a", "  ")


def test_regulator_growth_reads_the_reports_year_and_the_years_before_it():
    """The TCOC growth table of a report for 2024 leaves out a later year that has also been run."""
    import ibis

    from allpayer.reports.base import Report
    from allpayer.reports.regulator import RegulatorInputs, _growth

    con = ibis.duckdb.connect()
    con.create_table("tcoc_member_month", ibis.memtable({
        "performance_year": [2023] * 12 + [2024] * 12 + [2025] * 12,
        "payer": ["medicaid"] * 36,
        "ffs_paid_cents": [10_000] * 12 + [11_000] * 12 + [50_000] * 12,
    }))
    rep = Report(kind="regulator", org="GMCB", year=2024, run_id="r", title="t", subtitle="s")
    _growth(con, rep, 2024, {"tcoc_growth": {"target": "0.035", "ceiling": "0.043"}}, RegulatorInputs())
    (growth,) = [t for t in rep.tables if t.key == "tcoc_growth"]
    assert [r[:2] for r in growth.rows] == [["2023", "medicaid"], ["2024", "medicaid"]]
    assert dict(rep.totals)["TCOC per capita growth (programs' members)"].startswith(
        "10.00% average annual growth 2023-2024")


def test_regulator_growth_is_taken_over_the_payers_of_both_years():
    """A payer in the last year only (a commercial program with cheaper members) would lower the
    per-capita cost by its mix alone: the growth is that of the payers in both years, and the note
    says so."""
    import ibis

    from allpayer.reports.base import Report
    from allpayer.reports.regulator import RegulatorInputs, _growth

    con = ibis.duckdb.connect()
    con.create_table("tcoc_member_month", ibis.memtable({
        "performance_year": [2022] * 24 + [2024] * 36,
        "payer": ["medicare"] * 12 + ["medicaid"] * 12 + ["medicare"] * 12 + ["medicaid"] * 12 + ["bcbsvt"] * 12,
        "ffs_paid_cents": [100_000] * 12 + [50_000] * 12 + [121_000] * 12 + [60_500] * 12 + [1_000] * 12,
    }))
    rep = Report(kind="regulator", org="GMCB", year=2024, run_id="r", title="t", subtitle="s")
    _growth(con, rep, 2024, {"tcoc_growth": {"target": "0.035", "ceiling": "0.043"}}, RegulatorInputs())
    (growth,) = [t for t in rep.tables if t.key == "tcoc_growth"]
    assert [r[1] for r in growth.rows] == ["medicaid, medicare", "bcbsvt, medicaid, medicare"]
    # medicare and medicaid: $9,000 -> $10,890 per member year over two years, 10% a year (all
    # three payers would give $7,300 and a fall)
    assert [r[-1] for r in growth.rows] == ["$9,000.00", "$7,300.00"]
    assert dict(rep.totals)["TCOC per capita growth (programs' members)"] == "10.00% average annual growth 2022-2024"
    assert "growth is that of the payers in both (medicaid, medicare)" in growth.note


def test_the_high_cost_threshold_is_the_core_runs_even_when_nobody_reached_it():
    import json

    import ibis
    import pyarrow as pa

    con = ibis.duckdb.connect()
    con.create_table("high_cost_claimants", pa.Table.from_pylist([
        {"program_id": "P", "year": 2023, "threshold_cents": 5_000_000}]))
    con.create_table("tcoc_member_month", pa.Table.from_pylist([
        {"performance_year": 2024, "run_id": "R2"}, {"performance_year": 2023, "run_id": "R1"}]))
    con.create_table("runs", pa.Table.from_pylist([
        {"run_id": "R1", "parameters": json.dumps({"high_cost_threshold_cents": 5_000_000})},
        {"run_id": "R2", "parameters": json.dumps({"high_cost_threshold_cents": 25_000_000, "year": 2024})},
        {"run_id": "R3", "parameters": json.dumps({"stage": "quality"})}]))
    assert base.high_cost_threshold(con, 2023) == 5_000_000  # from its rows
    assert base.high_cost_threshold(con, 2024) == 25_000_000  # no rows: the core run's parameters
    assert base.high_cost_threshold(con, 2022) is None  # no core run of 2022


def test_a_measure_without_a_rate_says_why_in_the_regulator_and_employer_quality_tables():
    import ibis

    from allpayer.reports import regulator
    from allpayer.reports.employer import rate_text

    con = ibis.duckdb.connect()
    con.raw_sql("CREATE TABLE member_months AS SELECT 'p1' AS program_id, 2024 AS performance_year")
    con.raw_sql("""CREATE TABLE quality_rates AS SELECT * FROM (VALUES
        ('p1', 'hedis_fua_30d', 'program', 'p1', 2024, 120, 40, NULL::DECIMAL(18, 10), 'not reportable: redacted data'),
        ('p1', 'hedis_wcv', 'program', 'p1', 2024, 200, 120, 0.6::DECIMAL(18, 10), NULL))
        t(program_id, measure_id, level, level_id, performance_year, denominator, numerator, rate, note)""")
    rep = Report(kind="regulator", org="GMCB", year=2024, run_id="R1", title="t", subtitle="s")
    regulator._quality(con, rep, 2024)
    (q,) = [t for t in rep.tables if t.key == "quality"]
    assert [r[-1] for r in q.rows] == ["not reportable: redacted data", "60.0%"]
    assert rate_text({"rate": None, "note": None}) == "no rate"
