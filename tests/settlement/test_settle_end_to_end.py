"""generate -> load -> run -> settle on a small synthetic population, through the CLI."""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pytest

from allpayer.cli import main
from allpayer.store import default_store_url, open_store
from allpayer.ledger import Ledger

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("settle_end_to_end")]  # one worker builds the module fixtures once


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("settle")
    data, db = tmp / "data", tmp / "a.duckdb"
    assert main(["generate", "--members", "500", "--seed", "11", "--out", str(data)]) == 0
    assert main(["load", str(data), "--db", str(db)]) == 0
    assert main(["run", "--db", str(db), "--year", "2024"]) == 0
    return db


def rows(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


@pytest.fixture(scope="module")
def settled(db, tmp_path_factory):
    out = tmp_path_factory.mktemp("statements")
    assert main(["settle", "--db", str(db), "--year", "2024", "--html", str(out / "html"), "--csv", str(out / "csv")]) == 0
    return db, out


def test_statement_lines_are_consistent(settled):
    db, _ = settled
    st = rows(db, "SELECT * FROM settlement_statements WHERE version = 'initial' ORDER BY program_id")
    assert {s["program_id"] for s in st} == {"vt-2024-medicaid", "vt-2024-medicare", "vt-2024-mvp-qhp",
                                             "vt-2024-sov-employees", "vt-2024-uvmmc-employees"}
    pmpm = {r["program_id"]: (r["lo"], r["hi"]) for r in rows(
        db, "SELECT program_id, min(target_pmpm) lo, max(target_pmpm) hi FROM targets WHERE performance_year = 2024 "
            "AND member_months > 0 GROUP BY 1")}
    # the settlement population: attributed and eligible months only (the core tables cover every eligible month)
    att = {r["program_id"]: r for r in rows(
        db, "SELECT m.program_id, count(*) mm, sum(m.ffs_paid_cents) c FROM tcoc_member_month m "
            "JOIN (SELECT DISTINCT program_id, member_id, month FROM attribution WHERE attributed AND eligible "
            "AND performance_year = 2024) a USING (program_id, member_id, month) "
            "WHERE m.performance_year = 2024 GROUP BY 1")}
    eligible = {r["program_id"]: r["n"] for r in rows(db, "SELECT program_id, count(*) n FROM tcoc_member_month "
                                                          "WHERE performance_year = 2024 GROUP BY 1")}
    costs = {k: v["c"] for k, v in att.items()}
    for s in st:
        lines = {ln["line_id"]: ln for ln in rows(db, f"SELECT * FROM settlement_lines WHERE program_id = "
                                                      f"'{s['program_id']}' AND version = 'initial' ORDER BY line_no")}
        pid = s["program_id"]
        assert s["target_cents"] == lines["target"]["amount_cents"]
        assert s["member_months"] == att[pid]["mm"] < eligible[pid]
        assert Decimal(lines["eligible_member_months"]["rate"]) == eligible[pid]
        lo, hi = pmpm[pid]
        assert lo <= Decimal(lines["target_pmpm"]["rate"]) <= hi
        assert lines["actual_ffs"]["amount_cents"] == costs[s["program_id"]]
        truncated = lines["truncated_amount"]["amount_cents"] if "truncated_amount" in lines else 0
        assert s["actual_cents"] == costs[s["program_id"]] + truncated
        assert s["gross_cents"] == s["target_cents"] - s["actual_cents"] == lines["gross_result"]["amount_cents"]
        extras = sum(lines[k]["amount_cents"] for k in ("withhold_returned", "advance_payments", "sequestration")
                     if k in lines)
        assert s["net_cents"] == s["shared_cents"] + extras == lines["net"]["amount_cents"]
        assert s["combined_cents"] == s["net_cents"] + s["fixed_payment_performance_cents"]
        assert [ln["line_no"] for ln in lines.values()] == list(range(1, len(lines) + 1))
        assert s["quality_note"] == "quality not yet measured: assumed full credit"
        # distribution: participants + reserve = net, to the cent; nobody over its limit
        d = rows(db, f"SELECT * FROM distribution WHERE program_id = '{s['program_id']}' AND version = 'initial'")
        assert sum(r["final_cents"] for r in d) == s["net_cents"]
        assert all(abs(r["final_cents"]) <= r["limit_cents"] for r in d if r["role"] == "participant")


def test_employer_statement_shows_the_aco_share(settled):
    db, out = settled
    emp = rows(db, "SELECT * FROM employer_statements WHERE version = 'initial' ORDER BY employer_id")
    nets = {r["program_id"]: r["net_cents"] for r in rows(db, "SELECT * FROM settlement_statements")}
    assert {e["employer_id"] for e in emp} == {"EMP-SOV", "EMP-UVMMC"}
    for e in emp:
        assert e["aco_share_cents"] == nets[e["program_id"]]  # one employer per program: the whole net
        with open(out / "csv" / f"employer_{e['employer_id']}_2024_initial.csv") as f:
            items = dict(csv.reader(f))
        assert Decimal(items["aco_share_of_settlement"]) * 100 == e["aco_share_cents"]
        assert e["employer_id"] in (out / "html" / f"employer_{e['employer_id']}_2024_initial.html").read_text()


def test_postings_balance_and_a_second_version_replaces(settled):
    db, _ = settled
    led = Ledger(open_store(default_store_url(db)))
    assert led.total_imbalance() == 0
    nets = {r["program_id"]: r["net_cents"] for r in rows(db, "SELECT * FROM settlement_statements")}
    assert led.balance_of("payer:medicaid") == -nets["vt-2024-medicaid"]
    assert led.balance_of("aco:onecare_vermont") == 0  # everything passed on to participants and the reserve
    assert main(["settle", "--db", str(db), "--year", "2024", "--version", "final"]) == 0
    assert led.balance_of("payer:medicaid") == -nets["vt-2024-medicaid"]  # same amounts: not posted twice
    v = rows(db, "SELECT version, count(*) n FROM settlement_statements GROUP BY 1 ORDER BY 1")
    assert [r["version"] for r in v] == ["final", "initial"]


def test_what_if_changes_nothing_published_and_shows_the_difference(settled, capsys):
    db, _ = settled
    before = rows(db, "SELECT * FROM settlement_lines ORDER BY program_id, version, line_no")
    capsys.readouterr()
    # both sharing rates change, so the result moves whether the program lands in savings or losses
    assert main(["settle", "--db", str(db), "--year", "2024", "--what-if", "--program", "vt-2024-medicare",
                 "--set", "settlement.savings_rate=0.6", "--set", "settlement.loss_rate=0.6"]) == 0
    text = capsys.readouterr().out
    assert "nothing written" in text and "sharing_rate" in text
    assert rows(db, "SELECT * FROM settlement_lines ORDER BY program_id, version, line_no") == before


def test_forecast_range_and_diff(settled, capsys):
    db, _ = settled
    assert main(["settle", "--db", str(db), "--year", "2024", "--version", "forecast"]) == 0
    for s in rows(db, "SELECT * FROM settlement_statements WHERE version = 'forecast'"):
        assert s["forecast_low_net_cents"] <= s["net_cents"] <= s["forecast_high_net_cents"]
    capsys.readouterr()
    assert main(["settle", "--db", str(db), "--year", "2024", "--version", "initial", "--diff-against", "forecast",
                 "--program", "vt-2024-medicaid"]) == 0
    assert "forecast -> initial" in capsys.readouterr().out


def test_payer_report_comparison(settled, tmp_path, capsys):
    db, _ = settled
    net = rows(db, "SELECT net_cents FROM settlement_statements WHERE program_id = 'vt-2024-medicaid' "
                   "AND version = 'initial'")[0]["net_cents"]
    report = tmp_path / "dvha.csv"
    report.write_text(f"line_id,amount\nnet,{Decimal(net + 100) / 100}\n")
    capsys.readouterr()
    assert main(["settle", "--db", str(db), "--year", "2024", "--payer-report", str(report),
                 "--program", "vt-2024-medicaid"]) == 0
    assert "0 lines match, 1 differ" in capsys.readouterr().out


def test_settle_without_core_run_is_one_clear_error(tmp_path, capsys):
    assert main(["settle", "--db", str(tmp_path / "none.duckdb"), "--year", "2024"]) == 2
    assert "database not found" in capsys.readouterr().err


def test_medicare_through_the_benchmark_report(settled, tmp_path, capsys):
    db, _ = settled
    report = tmp_path / "cms.csv"
    report.write_text("enrollment_type,updated_benchmark_per_capita,track,msr,mlr,agreement_year,participant_revenue\n"
                      + "".join(f"{et},20000.00,ENHANCED,0.02,0.02,1,\n"
                                for et in ("esrd", "disabled", "aged_dual", "aged_nondual")))
    assert main(["settle", "--db", str(db), "--year", "2024", "--version", "restated", "--no-post",
                 "--benchmark-report", f"vt-2024-medicare={report}"]) == 0
    st = rows(db, "SELECT * FROM settlement_statements WHERE version = 'restated' AND program_id = 'vt-2024-medicare'")[0]
    assert st["method"] == "mssp"
    mm = rows(db, "SELECT count(*) n FROM tcoc_member_month m JOIN (SELECT DISTINCT member_id, month FROM attribution "
                  "WHERE program_id = 'vt-2024-medicare' AND performance_year = 2024 AND attributed AND eligible) a "
                  "USING (member_id, month) WHERE program_id = 'vt-2024-medicare' AND performance_year = 2024")[0]["n"]
    # every enrollment type at $20,000 per capita: benchmark = $20,000 x person-years
    assert st["target_cents"] == int((Decimal(2_000_000 * mm) / 12).quantize(Decimal(1), ROUND_HALF_UP))
    lines = {r["line_id"]: r for r in rows(db, "SELECT * FROM settlement_lines WHERE version = 'restated' "
                                               "AND program_id = 'vt-2024-medicare'")}
    assert lines["shared"]["amount_cents"] == lines["mssp_earned_savings_losses"]["amount_cents"]
    # the program's advanced shared savings ($8,400,000 in the terms) are netted (domain.md R8.1 step 8)
    assert lines["advance_payments"]["amount_cents"] == -840_000_000
    assert lines["net"]["amount_cents"] == lines["shared"]["amount_cents"] - 840_000_000 == st["net_cents"]
    d = rows(db, "SELECT sum(final_cents) s FROM distribution WHERE version = 'restated' AND program_id = 'vt-2024-medicare'")
    assert d[0]["s"] == st["net_cents"]


def test_each_statement_says_its_claims_cutoff_against_the_run_out(settled):
    """`settlement.runout_months`: each statement notes the run's claims paid-through date against the
    end of the contract's run-out (the Vermont programs: 3 months, Medicaid 6)."""
    db, _ = settled
    core = rows(db, "SELECT max(paid_through) p FROM settlement_statements WHERE version = 'initial'")[0]["p"]
    for s in rows(db, "SELECT program_id, notes FROM settlement_statements WHERE version = 'initial'"):
        end = "2025-06-30" if s["program_id"].endswith("medicaid") else "2025-03-31"
        assert f"claims paid through {core}; the contract's run-out" in s["notes"], s
        assert f"ends {end}" in s["notes"], s


def _mssp_benchmark_copy(db, tmp_path):
    """A copy of `db` and of the Vermont terms whose Medicare program takes CMS's MSSP benchmark
    (``target.method: mssp_benchmark``), and a benchmark report for it: (copy, terms, report)."""
    import shutil

    import yaml

    from allpayer.terms import programs_dir

    terms = tmp_path / "terms"
    shutil.copytree(programs_dir() / "vermont", terms)
    medicare = terms / "2024" / "medicare.yaml"
    data = yaml.safe_load(medicare.read_text())
    target = data["target"]
    assert target["method"] == "trended_base"
    target.update(method="mssp_benchmark", mssp_rules="mssp_py2024")
    for key in ("trend", "risk_adjustment"):  # CMS's benchmark is trended and risk adjusted by CMS
        target.pop(key)
    medicare.write_text(yaml.safe_dump(data, sort_keys=False))
    copy = tmp_path / "mssp.duckdb"
    shutil.copy(db, copy)
    report = tmp_path / "cms.csv"
    report.write_text("enrollment_type,updated_benchmark_per_capita,track,msr,mlr,agreement_year,participant_revenue\n"
                      + "".join(f"{et},20000.00,ENHANCED,0.02,0.02,1,\n"
                                for et in ("esrd", "disabled", "aged_dual", "aged_nondual")))
    return copy, terms, report


def test_a_program_on_cmss_mssp_benchmark_runs_without_targets_and_settles_on_the_benchmark_report(
        db, tmp_path, capsys):
    """``target.method: mssp_benchmark``: the run computes everything but the program's targets
    (CMS computes the benchmark) and says so; the settlement needs CMS's benchmark report and says
    so, naming the program and the option."""
    copy, terms, report = _mssp_benchmark_copy(db, tmp_path)
    capsys.readouterr()
    assert main(["run", "--db", str(copy), "--year", "2024", "--terms", str(terms), "--no-reports"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("note: vt-2024-medicare: no targets computed: target method mssp_benchmark takes CMS's benchmark at "
            "settlement (allpayer settle --benchmark-report vt-2024-medicare=REPORT.csv)") in out
    targets = {r["program_id"]: r["n"] for r in rows(copy, "SELECT program_id, count(*) n FROM targets "
                                                           "WHERE performance_year = 2024 GROUP BY 1")}
    assert "vt-2024-medicare" not in targets and targets["vt-2024-medicaid"] > 0
    assert rows(copy, "SELECT count(*) n FROM tcoc_member_month WHERE program_id = 'vt-2024-medicare'")[0]["n"] > 0

    assert main(["settle", "--db", str(copy), "--year", "2024", "--terms", str(terms), "--no-post",
                 "--no-reports"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "vt-2024-medicare: its target is CMS's MSSP benchmark" in err
    assert "--benchmark-report vt-2024-medicare=REPORT.csv" in err

    assert main(["settle", "--db", str(copy), "--year", "2024", "--terms", str(terms), "--no-post", "--no-reports",
                 "--benchmark-report", f"vt-2024-medicare={report}"]) == 0
    # the copy holds the statements the module's other tests settled; this run's is the latest
    st = rows(copy, "SELECT * FROM settlement_statements WHERE program_id = 'vt-2024-medicare' AND performance_year = 2024 "
                    "AND version = 'initial' ORDER BY run_id DESC LIMIT 1")
    assert st and st[0]["method"] == "mssp" and st[0]["target_cents"] > 0


def test_what_if_settles_with_the_benchmark_report_and_participant_revenue_given(db, tmp_path, capsys):
    """``--what-if`` takes ``--benchmark-report`` and ``--participant-revenue`` as the settlement
    does: a program on CMS's MSSP benchmark cannot settle without its report, and the what-if must
    settle it the way the published settlement did (through the MSSP calculator)."""
    copy, terms, report = _mssp_benchmark_copy(db, tmp_path)
    assert main(["run", "--db", str(copy), "--year", "2024", "--terms", str(terms), "--no-reports"]) == 0
    capsys.readouterr()
    assert main(["settle", "--db", str(copy), "--year", "2024", "--terms", str(terms), "--what-if",
                 "--program", "vt-2024-medicare", "--set", "payments.advance_payments[0].annual_amount=0.00",
                 "--benchmark-report", f"vt-2024-medicare={report}",
                 "--participant-revenue", "vt-2024-medicaid=1000000.00"]) == 0
    text = capsys.readouterr().out
    assert "nothing written" in text
    # the $8,400,000 advance payment is no longer netted, from the MSSP calculator's earned amount
    changed = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
               for line in text.splitlines() if line.count("│") == 6}
    assert changed["advance_payments"] == ["-8,400,000.00", "0.00", "8,400,000.00"]
    assert "mssp_earned_savings_losses" not in changed  # the calculator's lines, the same on both sides
    # the revenue given reaches both settlements: a misspelt program id is refused as by `settle`
    assert main(["settle", "--db", str(copy), "--year", "2024", "--terms", str(terms), "--what-if",
                 "--program", "vt-2024-medicare", "--set", "savings_rate=0.6",
                 "--benchmark-report", f"vt-2024-medicare={report}", "--participant-revenue", "vt-2024-nope=1.00"]) == 2
    assert "participant revenue for unknown program(s): vt-2024-nope" in capsys.readouterr().err
