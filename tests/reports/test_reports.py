"""Each audience's report from a small published cycle: HTML, CSV and PDF, totals read back from
the PDF equal to the CSV's, employer reports with only their own members, nothing small shown."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pytest

from allpayer.cli import main
from allpayer.reports import KINDS
from allpayer.reports.base import HIDDEN, usd
from allpayer.reports.publish import organizations
from allpayer.runs import open_snapshot
from tests.reports.conftest import ARTIFACTS, chromium_or_skip

pytestmark = pytest.mark.slow

YEAR = 2024
CHART_TITLES = {
    "employer": ["PMPM vs target over time"],
    "practice": ["Attribution over time", "PMPM vs target over time", "Payments by type"],
    "hospital": ["FPP vs shadow claims by month", "Payments by type", "Attribution over time"],
    "payer": ["PMPM vs target over time"],
    "regulator": ["Attributed lives by payer"],
}
# columns (and totals) that count people or events: none may show 1..10 in employer/regulator reports
COUNT_COLUMNS = {"member months", "member months opted out of data sharing", "members", "events", "denominator",
                 "numerator", "attributed persons", "persons loaded"}


def sql(db, q):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(q).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def orgs(published):
    con = open_snapshot(published)
    try:
        got = {k: organizations(con, k, YEAR) for k in KINDS}
    finally:
        con.disconnect()
    # the practice with the largest panel shows the most
    busiest = sql(published, "SELECT practice_id FROM attribution WHERE attributed AND eligible AND practice_id IS NOT "
                             "NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")[0][0]
    return {"employer": got["employer"][0], "practice": busiest, "hospital": got["hospital"][0],
            "payer": got["payer"][0], "regulator": "GMCB", "all": got}


def render(published, tmp_path, kind, org, fmt="html,csv"):
    out = tmp_path / kind
    assert main(["report", kind, "--db", str(published), "--for", org, "--period", str(YEAR), "--out", str(out),
                 "--format", fmt]) == 0
    return out


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", KINDS)
def test_report_renders_as_html_csv_and_pdf_with_totals_readable(published, orgs, tmp_path, kind):
    chromium_or_skip()
    out = render(published, tmp_path, kind, orgs[kind], "html,pdf,csv")
    slug = f"{kind}-{orgs[kind]}-{YEAR}"
    html = (out / f"{slug}.html").read_text()
    rows = read_csv(out / f"{slug}.csv")
    totals = [(r["row"], r["value"]) for r in rows if r["section"] == "totals"]
    assert totals, "a report without totals"
    pdf = out / f"{slug}.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = re.sub(r"\s+", " ", text)
    for label, value in totals:
        assert value in flat, f"{kind}: total {label} = {value} (CSV) not in the PDF text"
        assert value in html
    for title in CHART_TITLES[kind]:
        assert title in flat, f"{kind}: chart title {title!r} not in the PDF"
        assert "<svg" in html
    art = ARTIFACTS / kind
    art.mkdir(parents=True, exist_ok=True)
    for old in art.glob("*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(art / "page")], check=True)
    pages = sorted(art.glob("page*.png"))
    assert pages and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pages)
    print(f"{kind}: PDF pages as PNG in {art}")


def test_employer_report_holds_only_that_employers_members(published, orgs, tmp_path):
    emp = orgs["employer"]
    out = render(published, tmp_path, "employer", emp)
    rows = read_csv(out / f"employer-{emp}-{YEAR}.csv")
    got = {r["row"]: r["value"] for r in rows if r["section"] == "totals"}
    mm, cost, opted = sql(published, f"""
        SELECT count(*), sum(m.ffs_paid_cents), count(*) FILTER (WHERE m.data_sharing_opt_out)
        FROM tcoc_member_month m WHERE m.performance_year = {YEAR}
          AND m.group_id IN (SELECT group_id FROM employer_group WHERE employer_id = '{emp}')""")[0]
    everyone = sql(published, f"SELECT count(*) FROM tcoc_member_month WHERE performance_year = {YEAR}")[0][0]
    assert mm < everyone
    assert got["Member months"] == f"{mm:,}"
    assert got["TCOC paid (FFS basis)"] == f"${cost / 100:,.2f}"
    text = (out / f"employer-{emp}-{YEAR}.html").read_text()
    # no member is named: none of the member ids of the population appears in the report
    ids = [r[0] for r in sql(published, f"SELECT DISTINCT member_id FROM tcoc_member_month WHERE performance_year = {YEAR}")]
    assert not [i for i in ids if i in text]
    if opted:
        assert "TCOC is incomplete" in text


def test_employer_report_shows_its_programs_settlement_figures_when_it_is_the_only_employer(published, orgs,
                                                                                            tmp_path):
    """An employer alone in its program gets the program statement's target, actual (truncated as
    the program truncates) and gross to the cent, in employer_statements and on its report."""
    alone = sql(published, f"""SELECT e.employer_id, e.program_id, e.suppressed, e.target_cents, e.actual_cents,
            e.gross_cents, s.target_cents, s.actual_cents, s.gross_cents
        FROM employer_statements e JOIN settlement_statements s USING (program_id, performance_year, version)
        WHERE e.performance_year = {YEAR}
          AND (SELECT count(*) FROM employer_statements o WHERE o.program_id = e.program_id
               AND o.version = e.version AND o.performance_year = e.performance_year) = 1""")
    assert alone and not all(r[2] for r in alone)  # at least one employer shows its figures
    for emp, pid, suppressed, *figures in alone:
        ours, program = figures[:3], figures[3:]
        assert ours == ([None] * 3 if suppressed else program), f"{emp} in {pid}"
        out = render(published, tmp_path / emp, "employer", emp, "csv")
        shown = {r["column"]: r["value"] for r in read_csv(out / f"employer-{emp}-{YEAR}.csv")
                 if r["section"] == "settlement_share" and r["row"] == pid}
        want = [HIDDEN] * 3 if suppressed else [
            (f"-${abs(c) / 100:,.2f}" if c < 0 else f"${c / 100:,.2f}") for c in program]
        assert [shown["target"], shown["actual"], shown["gross result"]] == want


def test_opt_outs_flag_tcoc_incomplete(published, orgs, tmp_path):
    withopt = [r[0] for r in sql(published, f"""
        SELECT DISTINCT g.employer_id FROM tcoc_member_month m JOIN employer_group g USING (group_id)
        WHERE m.performance_year = {YEAR} AND m.data_sharing_opt_out ORDER BY 1""")]
    if not withopt:
        pytest.skip("the generated population has no opted-out employer members")
    out = render(published, tmp_path, "employer", withopt[0])
    assert "TCOC is incomplete" in (out / f"employer-{withopt[0]}-{YEAR}.html").read_text()


@pytest.mark.parametrize("kind", ["employer", "regulator"])
def test_no_small_count_shown_or_derivable(published, orgs, tmp_path, kind):
    for org in orgs["all"][kind]:
        out = render(published, tmp_path / org, kind, org, "csv")
        rows = read_csv(out / f"{kind}-{org}-{YEAR}.csv")
        shown = [(r["section"], r["row"], r["column"], r["value"]) for r in rows
                 if (r["column"] in COUNT_COLUMNS or (r["section"] == "totals" and
                     re.match(r"(members|member months|distinct persons|attributed lives)", r["row"], re.I)))]
        assert shown
        for section, row, col, value in shown:
            if value == HIDDEN:
                continue
            n = int(value.replace(",", ""))
            assert not 0 < n < 11, f"{kind} {org}: {section}/{row}/{col} shows {n}"
        # a table column with a total: the hidden cells are never exactly one, and add up to 11+
        by = {}
        for r in rows:
            if r["column"] in COUNT_COLUMNS and r["section"] in ("members_and_cost_by_month", "value_payment_invoices"):
                by.setdefault((r["section"], r["column"]), []).append(r)
        for (section, col), cells in by.items():
            body = [c for c in cells if c["row"] != "Total"]
            total = [c for c in cells if c["row"] == "Total"]
            hidden = [c for c in body if c["value"] == HIDDEN]
            if total and total[0]["value"] != HIDDEN:
                assert len(hidden) != 1, f"{kind} {org}: one hidden cell in {section}/{col} is the total less the rest"
        if kind == "employer":  # the same month's member months in two tables: hidden in both or in neither
            true_mm = dict(sql(published, f"""SELECT strftime(m.month, '%Y-%m'), count(*) FROM tcoc_member_month m
                WHERE m.performance_year = {YEAR} AND m.group_id IN (SELECT group_id FROM employer_group
                WHERE employer_id = '{org}') GROUP BY 1"""))
            true_inv = dict(sql(published, f"""SELECT strftime(month, '%Y-%m'), sum(member_months) FROM
                value_payment_invoices WHERE performance_year = {YEAR} AND employer_id = '{org}' GROUP BY 1"""))
            shown = {(r["section"], r["row"]): r["value"] for r in rows if r["column"] == "member months"}
            for month, n in true_inv.items():
                if true_mm.get(month) == n:
                    assert (shown[("members_and_cost_by_month", month)] == HIDDEN) == \
                        (shown[("value_payment_invoices", month)] == HIDDEN), f"{org} {month}: hidden in one table only"


def test_payer_statement_shows_every_settlement_line(published, orgs, tmp_path):
    payer = orgs["payer"]
    out = render(published, tmp_path, "payer", payer)
    rows = read_csv(out / f"payer-{payer}-{YEAR}.csv")
    lines = sql(published, f"""SELECT l.program_id, l.line_no, l.line_id, l.amount_cents FROM settlement_lines l
        JOIN settlement_statements s USING (program_id, performance_year, version)
        WHERE s.payer = '{payer}' AND l.performance_year = {YEAR} ORDER BY 1, 2""")
    shown = {(r["section"], r["row"], r["column"]): r["value"] for r in rows if r["section"].startswith("lines:")}
    assert lines
    for pid, no, line_id, cents in lines:
        assert shown[(f"lines:{pid}", str(no), "id")] == line_id
        want = "" if cents is None else (f"-${abs(cents) / 100:,.2f}" if cents < 0 else f"${cents / 100:,.2f}")
        assert shown[(f"lines:{pid}", str(no), "amount")] == want
    run_ids = {r[0] for r in sql(published, f"SELECT run_id FROM settlement_statements WHERE payer = '{payer}'")}
    prov = {r["row"]: r["value"] for r in rows if r["section"] == "provenance"}
    assert run_ids <= set(prov.values())


def test_payer_statement_shows_its_programs_high_cost_claimants(published, orgs, tmp_path):
    payer = orgs["payer"]
    out = render(published, tmp_path, "payer", payer, fmt="csv")
    shown = {(r["row"], r["column"]): r["value"] for r in read_csv(out / f"payer-{payer}-{YEAR}.csv")
             if r["section"] == "high_cost_claimants"}
    want = sql(published, f"""SELECT s.program_id, count(h.member_id), coalesce(sum(h.cost_cents), 0),
        max(h.program_cost_cents), max(h.cost_cents)
        FROM settlement_statements s LEFT JOIN high_cost_claimants h ON h.program_id = s.program_id AND h.year = {YEAR}
        WHERE s.payer = '{payer}' AND s.performance_year = {YEAR} GROUP BY 1 ORDER BY 1""")
    assert want and any(n for _, n, *_ in want)
    usd = lambda c: f"${c / 100:,.2f}"  # noqa: E731
    for pid, n, cost, program_cost, top in want:
        assert shown[(pid, "threshold")] == "$10,000.00"
        assert shown[(pid, "claimants")] == f"{n:,}"
        assert shown[(pid, "their cost")] == usd(cost)
        if n:
            share = (Decimal(cost) * 100 / Decimal(program_cost)).quantize(Decimal("0.1"), ROUND_HALF_UP)
            assert shown[(pid, "share of the program's cost")] == f"{share}%"
            assert shown[(pid, "mean per claimant")] == usd((cost * 2 + n) // (2 * n))
            assert shown[(pid, "costliest claimant")] == usd(top)
            assert cost >= n * 1_000_000


def test_dispute_is_recorded_and_listed_on_the_practice_report(published, orgs, tmp_path, capsys):
    practice = orgs["practice"]
    program, member = sql(published, f"SELECT program_id, member_id FROM attribution WHERE practice_id = '{practice}' "
                                      f"AND attributed ORDER BY 1, 2 LIMIT 1")[0]
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    assert main(["dispute", "--db", str(published), "--store", store, "--program", program, "--member", member,
                 "--month", "2024-03", "--practice", practice, "--reason", "patient moved to another practice"]) == 0
    assert main(["dispute", "--db", str(published), "--store", store, "--program", program, "--member", member,
                 "--month", "March", "--practice", practice, "--reason", "x"]) == 2
    # a program, member month or practice the snapshot does not have is refused, naming it
    for opts, message in (({"--program": "vt-2024-nope"}, "--program vt-2024-nope: no such program"),
                          ({"--member": "NOPE-1"}, f"--member NOPE-1: not a member of {program} in 2024-03"),
                          ({"--practice": "pc-nowhere"}, "--practice pc-nowhere: no practice of that id")):
        args = {"--program": program, "--member": member, "--practice": practice, **opts}
        capsys.readouterr()
        assert main(["dispute", "--db", str(published), "--store", store, "--month", "2024-03", "--reason", "x",
                     *[x for kv in args.items() for x in kv]]) == 2
        assert message in capsys.readouterr().err
    out = tmp_path / "p"
    assert main(["report", "practice", "--db", str(published), "--for", practice, "--period", str(YEAR),
                 "--out", str(out), "--format", "csv", "--store", store]) == 0
    rows = read_csv(out / f"practice-{practice}-{YEAR}.csv")
    disputed = [r for r in rows if r["section"] == "attribution_disputes"]
    assert {r["value"] for r in disputed} >= {member, "2024-03", "patient moved to another practice", "open"}


def test_report_all_renders_every_audience_into_the_runs_folder(published, orgs):
    assert main(["report", "--all", "--db", str(published), "--year", str(YEAR), "--format", "csv"]) == 0
    run_id = sql(published, "SELECT run_id FROM runs ORDER BY seq DESC LIMIT 1")[0][0]
    folder = published.with_name(published.name + ".reports") / run_id
    index = json.loads((folder / "index.json").read_text())
    assert index["run_id"] == run_id
    assert {r["kind"] for r in index["reports"]} == set(KINDS)
    assert len(index["reports"]) == sum(len(v) for v in orgs["all"].values())
    for r in index["reports"]:
        assert (folder / r["files"]["csv"]).exists()
    assert (folder / "index.html").exists()


def test_unknown_organization_is_one_clear_error(published, tmp_path):
    assert main(["report", "employer", "--db", str(published), "--for", "EMP-NOPE", "--period", str(YEAR),
                 "--out", str(tmp_path), "--format", "csv"]) == 2
    assert main(["report", "employer", "--db", str(published), "--for", "EMP-SOV", "--period", "last year",
                 "--out", str(tmp_path)]) == 2


def test_practice_payments_agree_with_the_ledger_pass_through_included(published, tmp_path):
    """The practice report's payments are what the ledger posts to the practice, to the cent: CPR,
    PHM (the ladder in December) and the employers' Value Payment pass-through on its own line
    (once left out: the demo's pc-bennington-fq1 showed $11,329.75 against the ledger's $12,290.23,
    the $960.48 of its pass-through)."""
    from allpayer.ledger import Ledger
    from allpayer.store import default_store_url, open_store

    ((payee, passed),) = sql(published, "SELECT payee, sum(amount_cents) FROM value_payment_pass_through WHERE "
                                        "rule = 'vp.pass_through' AND payee LIKE 'practice:%' GROUP BY 1 "
                                        "ORDER BY 2 DESC, 1 LIMIT 1")
    practice = payee.split(":", 1)[1]
    ((jan_passed,),) = sql(published, f"SELECT sum(amount_cents) FROM value_payment_pass_through WHERE payee = "
                                      f"'{payee}' AND rule = 'vp.pass_through' AND month = DATE '2024-01-01'")
    out = render(published, tmp_path, "practice", practice, fmt="csv")
    rows = read_csv(out / f"practice-{practice}-{YEAR}.csv")
    totals = {r["row"]: r["value"] for r in rows if r["section"] == "totals"}
    pay = {(r["row"], r["column"]): r["value"] for r in rows if r["section"] == "payments"}
    led = Ledger(open_store(default_store_url(published)))
    try:
        paid = led.balance_of(payee, period=str(YEAR))
        jan = led.balance_of(payee, period=f"{YEAR}-01")
        rules = {e.rule for e in led.entries(account=payee)}
    finally:
        led.store.close()
    assert rules <= {"cpr.monthly", "phm.base", "phm.ladder", "vp.pass_through"}  # nothing else paid to it
    assert passed > 0 and totals["VP pass-through payments"] == usd(passed)
    assert pay[("Total", "VP pass-through")] == usd(passed)
    assert totals["Total payments"] == pay[("Total", "total")] == usd(paid)
    assert pay[(f"{YEAR}-01", "VP pass-through")] == usd(jan_passed)
    assert pay[(f"{YEAR}-01", "total")] == usd(jan)
