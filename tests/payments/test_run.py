"""`allpayer payments` and `allpayer ledger` end to end on a small generated population:
postings balance, re-running a period posts nothing, a restated month is trued up, the ACO's
books close per program and month.

The tests share one database (built once per worker, kept on one worker with `--dist loadgroup`
to build it once); each depends on the posted quarter through the `quarter` fixture, not on the
order the tests run in."""

from __future__ import annotations

import csv
import datetime as dt

import duckdb
import pytest

from allpayer.cli import main
from allpayer.ledger import Ledger
from allpayer.payments.common import parse_period
from allpayer.payments.run import run_payments
from allpayer.runs import open_snapshot
from allpayer.store import default_store_url, open_store

YEAR = 2024

pytestmark = pytest.mark.xdist_group("payments_run")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    base = tmp_path_factory.mktemp("payments")
    data, db = base / "data", base / "allpayer.duckdb"
    assert main(["generate", "--members", "800", "--seed", "11", "--out", str(data)]) == 0
    assert main(["load", str(data), "--db", str(db)]) == 0
    assert main(["run", "--db", str(db), "--year", str(YEAR), "--paid-through", "2025-03-31"]) == 0
    return db


@pytest.fixture(scope="module")
def quarter(db):
    """2024-Q1 paid and posted once: what every test below builds on, whatever order they run in."""
    return run_payments(db, parse_period(quarter="2024-Q1"), paid_through=dt.date(2025, 3, 31))


def ledger(db):
    return Ledger(open_store(default_store_url(db)))


def q(db, sql):
    con = open_snapshot(db)
    try:
        return con.con.execute(sql).fetchall()
    finally:
        con.disconnect()


def test_quarter_posts_balanced_entries_and_a_rerun_posts_nothing(db, quarter):
    first = quarter
    assert first.postings and {p["status"] for p in first.postings} == {"posted"}
    led = ledger(db)
    assert led.total_imbalance() == 0
    n = len(led.entries())
    again = run_payments(db, parse_period(quarter="2024-Q1"), paid_through=dt.date(2025, 3, 31))
    assert {p["status"] for p in again.postings} == {"unchanged"}
    assert len(ledger(db).entries()) == n
    # the snapshot tables carry the run id and the year
    ((rid,),) = q(db, "select distinct run_id from fpp_payments where performance_year = 2024")
    assert rid == again.run_id


def test_the_aco_books_close_per_program_and_month(db, quarter):
    led = ledger(db)
    entries = [e for e in led.entries() if e.period.startswith("2024-0")]
    books = {}
    for e in entries:
        key = (e.program_id, e.period)
        b = books.setdefault(key, {"received": 0, "paid_out": 0})
        if e.debit_account.startswith("aco:"):
            b["received"] += e.amount_cents
        if e.credit_account.startswith("aco:"):
            b["paid_out"] += e.amount_cents
    for (pid, period), b in books.items():
        retained = led.balance_of("aco:onecare_vermont", period=period, program_id=pid)
        assert b["paid_out"] + retained == b["received"], (pid, period)
    # FPP split by historical share: the hospitals receive exactly what the payer paid
    fpp = q(db, """select f.program_id, f.month, f.net, h.paid from
                   (select program_id, month, sum(net_cents) net from fpp_payments group by all) f
                   join (select program_id, month, sum(amount_cents) paid from fpp_hospital_payments group by all) h
                   using (program_id, month)""")
    assert fpp and all(net == paid for _, _, net, paid in fpp)


def test_restated_eligibility_is_trued_up_by_a_reversal_and_the_difference(db, quarter):
    led = ledger(db)
    key = "fpp:vt-2024-medicaid:2024-01"
    before = -led.balance_of("payer:medicaid", period="2024-01")
    # the payer restates January: ten attributed members were not eligible after all
    con = duckdb.connect(str(db))
    con.execute("""update attribution set eligible = false where (program_id, member_id, month) in (
                     select program_id, member_id, month from attribution where program_id = 'vt-2024-medicaid'
                     and month = date '2024-01-01' and attributed and eligible order by member_id limit 10)""")
    con.close()
    res = run_payments(db, parse_period(quarter="2024-Q1"), paid_through=dt.date(2025, 3, 31))
    status = {p["batch_key"]: p for p in res.postings}
    assert status[key]["status"] == "replaced"
    assert status["fpp:vt-2024-medicaid:2024-02"]["status"] == "unchanged"
    after = -ledger(db).balance_of("payer:medicaid", period="2024-01")
    ((net,),) = q(db, "select sum(net_cents) from fpp_payments where program_id = 'vt-2024-medicaid' and month = date '2024-01-01'")
    ((cpr,),) = q(db, "select coalesce(sum(amount_cents), 0) from cpr_payments where program_id = 'vt-2024-medicaid' and month = date '2024-01-01'")
    assert after == net + cpr and after < before
    hist = ledger(db).batch_history(key)
    assert [h["state"] for h in hist] == ["posted", "posted"] and hist[-1]["prior_run_id"] == hist[0]["run_id"]
    rev = [e for e in ledger(db).entries(batch_key=key) if e.kind == "reversal"]
    assert rev and all(e.run_id == res.run_id and e.prior_run_id == hist[0]["run_id"] for e in rev)
    assert ledger(db).total_imbalance() == 0


def test_ledger_commands(db, quarter, tmp_path, capsys):
    assert main(["ledger", "balance", "--db", str(db)]) == 0
    one = capsys.readouterr().out
    assert main(["ledger", "balance", "--db", str(db)]) == 0
    assert capsys.readouterr().out == one  # deterministic
    assert one.splitlines()[-1].split()[-1] == "0.00"
    assert main(["ledger", "balance", "--db", str(db), "--period", "2024-13"]) == 2
    # one account: its total is its balance, labelled as such; an account without entries is an error
    acct = next(line.split()[0] for line in one.splitlines() if line.startswith("practice:"))
    capsys.readouterr()
    assert main(["ledger", "balance", "--db", str(db), "--account", acct]) == 0
    mine = capsys.readouterr().out.splitlines()
    assert mine[-1].startswith(f"total of {acct}") and mine[-1].split()[-1] == mine[2].split()[-1] != "0.00"
    assert main(["ledger", "balance", "--db", str(db), "--account", "practice:pc-nowhere"]) == 2
    assert "--account practice:pc-nowhere: no entries for this account" in capsys.readouterr().err
    # remittance advice of a practice paid in March
    led = ledger(db)
    practice = next(e.debit_account for e in led.entries(period="2024-03") if e.rule == "phm.base")
    out = tmp_path / "rem.csv"
    assert main(["ledger", "remittance", "--db", str(db), "--payee", practice, "--month", "2024-03", "--out", str(out)]) == 0
    lines = list(csv.DictReader(out.open()))
    posted = [r for r in lines if r["line"] == "posted" and r["rule"] == "phm.base"]
    members = [r for r in lines if r["line"] == "member" and r["rule"] == "phm.base"]
    from decimal import Decimal
    # the member lines add up to the posted PHM amounts
    assert sum(Decimal(r["amount"]) for r in members) == sum(Decimal(r["amount"]) for r in posted) > 0
    # reconciliation of received payments: one matched, one short, one quarantined
    exp = -led.balance_of("payer:medicaid", period="2024-02", program_id="vt-2024-medicaid")
    rec = tmp_path / "received.csv"
    rec.write_text("payer,program_id,period,amount\n"
                   f"medicaid,vt-2024-medicaid,2024-02,{exp // 100}.{exp % 100:02d}\n"
                   "medicaid,vt-2024-medicaid,2024-03,1.00\n"
                   "medicaid,vt-2024-medicaid,March,1.00\n"
                   "medicaid,vt-2024-medicaid,2024-04,1.005\n")
    rout = tmp_path / "recon.csv"
    capsys.readouterr()
    assert main(["ledger", "reconcile", "--db", str(db), "--received", str(rec), "--out", str(rout)]) == 0
    got = [r["status"] for r in csv.DictReader(rout.open())]
    assert got[0] == "matched" and got[1] == "short" and got[2].startswith("quarantined: bad ledger period")
    # a fraction of a cent is quarantined, not rounded to 1.01
    assert got[3] == "quarantined: 1.005 is not a whole number of cents"
    assert "4 rows read, 2 quarantined; 1 matched, 1 with a difference" in " ".join(capsys.readouterr().out.split())
    assert main(["ledger", "reconcile", "--db", str(db), "--received", str(tmp_path / "none.csv"), "--out", str(rout)]) == 2


def test_year_run_adds_after_year_items_and_notes(db, quarter, tmp_path):
    assert main(["payments", "--db", str(db), "--year", "2024", "--paid-through", "2025-03-31"]) == 0
    notes = q(db, "select program_id, stage, note from payment_notes where performance_year = 2024")
    assert any(s == "phm" and "base PMPM only" in n for _, s, n in notes)
    ((n,),) = q(db, "select count(*) from payment_accruals where performance_year = 2024")
    assert n > 0
    out = tmp_path / "acc.csv"
    assert main(["ledger", "accruals", "--db", str(db), "--year", "2024", "--out", str(out)]) == 0
    assert out.read_text().startswith("program_id,performance_year,payer,month,lag")
    assert ledger(db).total_imbalance() == 0
    assert main(["payments", "--db", str(db), "--month", "2024-1"]) == 2


def test_employer_invoice_reconciles_to_the_census(db, quarter, tmp_path):
    ((emp, month, mm, amount),) = q(db, """select employer_id, month, member_months, amount_cents from value_payment_invoices
                                            where performance_year = 2024 and month = date '2024-03-01'
                                            order by member_months desc, employer_id limit 1""")
    # census: attributed eligible member months in March of the employer's groups
    ((census,),) = q(db, f"""select count(*) from attribution a join member_months m using (program_id, member_id, month)
                             join (select distinct group_id, employer_id from employer_group) g on g.group_id = m.group_id
                             where a.performance_year = 2024 and a.month = date '2024-03-01' and a.attributed and a.eligible
                             and g.employer_id = '{emp}' and a.program_id in (select distinct program_id from value_payment_invoices)""")
    assert mm == census
    out = tmp_path / "inv.html"
    assert main(["ledger", "invoice", "--db", str(db), "--employer", emp, "--month", "2024-03", "--out", str(out)]) == 0
    text = out.read_text()
    assert f"{mm} attributed member months x $" in text and "Quarterly PMPM adjustment" in text
    csv_out = tmp_path / "inv.csv"
    assert main(["ledger", "invoice", "--db", str(db), "--employer", emp, "--month", "2024-03", "--out", str(csv_out)]) == 0
    last = list(csv.reader(csv_out.open()))[-1]
    from decimal import Decimal
    assert last[2] == "TOTAL" and Decimal(last[6]) * 100 == amount


PAID_THROUGH = dt.date(2025, 3, 31)
MEDICAID = "vt-2024-medicaid"
FPP_ROWS = f"""select month, cell_id, member_months, net_cents, run_id from fpp_payments
               where performance_year = 2024 and program_id = '{MEDICAID}' order by month, cell_id"""
YEAR_TOTALS = f"""select months, fpp_paid_cents, shadow_value_cents, performance_cents from fixed_payment_performance
                  where performance_year = 2024 and program_id = '{MEDICAID}' and hospital_id = 'ALL'"""


def months_of(rows):
    return sorted({r[0] for r in rows})


def test_a_month_or_quarter_after_the_year_leaves_the_other_months_in_place(db, quarter):
    """The reviewer's case: after `--year`, `--month 2024-03` and `--quarter 2024-Q1` once replaced
    the year's tables with January-March, and `settle` then failed. The other months stay, as the
    runs that paid them wrote them; the year-level tables still cover twelve months."""
    year = run_payments(db, parse_period(year="2024"), paid_through=PAID_THROUGH)
    rows_year, totals_year = q(db, FPP_ROWS), q(db, YEAR_TOTALS)
    ((ladder,),) = q(db, "select count(*) from phm_payments where performance_year = 2024 and rule = 'phm.ladder'")
    ((bonus_notes,),) = q(db, "select count(*) from payment_notes where performance_year = 2024 "
                              "and stage = 'cpr.quality_bonus'")
    ((adjustments,),) = q(db, "select count(*) from value_payment_adjustments where performance_year = 2024")
    n_entries = len(ledger(db).entries())
    assert len(months_of(rows_year)) == 12 and totals_year[0][0] == 12 and bonus_notes > 0

    march = run_payments(db, parse_period(month="2024-03"), paid_through=PAID_THROUGH)
    assert {p["batch_key"].rsplit(":", 1)[1] for p in march.postings} == {"2024-03"}
    assert {p["status"] for p in march.postings} == {"unchanged"}
    rows = q(db, FPP_ROWS)
    # the same rows; March's recomputed by this run, the eleven others still the year run's
    assert [r[:4] for r in rows] == [r[:4] for r in rows_year]
    assert {r[4] for r in rows if r[0] == dt.date(2024, 3, 1)} == {march.run_id}
    assert {r[4] for r in rows if r[0] != dt.date(2024, 3, 1)} == {year.run_id}
    assert q(db, YEAR_TOTALS) == totals_year
    ((mm,),) = q(db, f"select member_months from tcoc_fixed_payment where performance_year = 2024 "
                     f"and program_id = '{MEDICAID}'")
    assert mm == sum(r[2] for r in rows_year)
    # the after-year items stay as the year run left them
    assert q(db, "select count(*) from phm_payments where performance_year = 2024 and rule = 'phm.ladder'") == [(ladder,)]
    assert q(db, "select count(*) from payment_notes where performance_year = 2024 "
                 "and stage = 'cpr.quality_bonus'") == [(bonus_notes,)]
    assert q(db, "select count(*) from value_payment_adjustments where performance_year = 2024") == [(adjustments,)]

    q1 = run_payments(db, parse_period(quarter="2024-Q1"), paid_through=PAID_THROUGH)
    assert {p["status"] for p in q1.postings} == {"unchanged"}
    assert [r[:4] for r in q(db, FPP_ROWS)] == [r[:4] for r in rows_year] and q(db, YEAR_TOTALS) == totals_year
    for table in ("fpp_hospital_payments", "shadow_claims", "cpr_payments", "phm_payments", "value_payment_invoices",
                  "value_payment_pass_through"):
        ((n,),) = q(db, f"select count(distinct month) from {table} where performance_year = 2024")
        assert n == 12, table
    assert len(ledger(db).entries()) == n_entries
    # settlement reads the twelve months again
    assert main(["settle", "--db", str(db), "--year", "2024"]) == 0


def test_a_restated_month_trued_up_after_the_year_agrees_with_the_ledger(db, quarter):
    """A true-up of one month after the year: that month's rows and ledger batch are replaced, the
    year-level tables add the new month to the eleven others, and the payer's ledger balance for
    the year equals the FPP and CPR in the tables, to the cent; a second run changes nothing."""
    run_payments(db, parse_period(year="2024"), paid_through=PAID_THROUGH)
    rows_year, totals_year = q(db, FPP_ROWS), q(db, YEAR_TOTALS)
    # the payer restates May: ten attributed members were not eligible after all
    con = duckdb.connect(str(db))
    con.execute(f"""update attribution set eligible = false where (program_id, member_id, month) in (
                      select program_id, member_id, month from attribution where program_id = '{MEDICAID}'
                      and month = date '2024-05-01' and attributed and eligible order by member_id limit 10)""")
    con.close()
    res = run_payments(db, parse_period(month="2024-05"), paid_through=PAID_THROUGH)
    status = {p["batch_key"]: p["status"] for p in res.postings}
    assert status[f"fpp:{MEDICAID}:2024-05"] == "replaced"
    rows = q(db, FPP_ROWS)
    may = dt.date(2024, 5, 1)
    assert [r for r in rows if r[0] != may] == [r for r in rows_year if r[0] != may]
    mm_may = sum(r[2] for r in rows if r[0] == may)
    assert mm_may == sum(r[2] for r in rows_year if r[0] == may) - 10
    net = sum(r[3] for r in rows)
    ((months, paid, shadow, perf),) = q(db, YEAR_TOTALS)
    assert months == 12 and paid == net and perf == paid - shadow
    assert paid < totals_year[0][1]
    ((mm,),) = q(db, f"select member_months from tcoc_fixed_payment where performance_year = 2024 "
                     f"and program_id = '{MEDICAID}'")
    ((attributed,),) = q(db, f"select count(*) from attribution where performance_year = 2024 "
                             f"and program_id = '{MEDICAID}' and attributed and eligible")
    assert mm == attributed == sum(r[2] for r in rows)
    ((cpr,),) = q(db, f"select coalesce(sum(amount_cents), 0) from cpr_payments where performance_year = 2024 "
                      f"and program_id = '{MEDICAID}'")
    # what the ledger says the payer paid the ACO for FPP and CPR in the year (reversals count back)
    posted = sum(e.amount_cents * ((e.credit_account == "payer:medicaid") - (e.debit_account == "payer:medicaid"))
                 for e in ledger(db).entries(program_id=MEDICAID, period="2024")
                 if e.rule in ("fpp.payer_to_aco", "cpr.payer_to_aco"))
    assert posted == net + cpr
    # idempotent: the same month again posts nothing and writes the same rows
    n_entries = len(ledger(db).entries())
    again = run_payments(db, parse_period(month="2024-05"), paid_through=PAID_THROUGH)
    assert {p["status"] for p in again.postings} == {"unchanged"}
    assert len(ledger(db).entries()) == n_entries
    assert [r[:4] for r in q(db, FPP_ROWS)] == [r[:4] for r in rows]
    assert ledger(db).total_imbalance() == 0



def test_a_month_trued_up_to_nothing_reverses_its_posted_batch(db, quarter):
    """docs/payments.md (how a run works, step 2): re-running a period is the true-up, and what a
    run writes is what it posts. When the payer restates a month so that a program pays nothing
    in it (here every Value Payment member month of August), the tables hold no row for the month
    and the batch posted before must be reversed: the employer's ledger balance for the month goes
    back to 0, not the amount of the first run."""
    pid = "vt-2024-sov-employees"
    key = f"vp:{pid}:2024-08"
    first = run_payments(db, parse_period(month="2024-08"), paid_through=PAID_THROUGH)
    assert {p["batch_key"]: p["status"] for p in first.postings}.get(key) in ("posted", "unchanged")
    ((invoiced,),) = q(db, f"select sum(amount_cents) from value_payment_invoices where performance_year = 2024 "
                           f"and program_id = '{pid}' and month = date '2024-08-01'")
    assert invoiced > 0
    posted = sum(e.amount_cents for e in ledger(db).entries(program_id=pid, period="2024-08") if e.rule == "vp.invoice"
                 and e.kind == "entry")
    assert posted >= invoiced
    con = duckdb.connect(str(db))
    con.execute(f"update attribution set eligible = false where program_id = '{pid}' and month = date '2024-08-01'")
    con.close()
    res = run_payments(db, parse_period(month="2024-08"), paid_through=PAID_THROUGH)
    assert q(db, f"select count(*) from value_payment_invoices where performance_year = 2024 "
                 f"and program_id = '{pid}' and month = date '2024-08-01'") == [(0,)]
    assert {p["batch_key"]: p["status"] for p in res.postings}.get(key) == "replaced"
    led = ledger(db)
    assert [b for b in led.balances(period="2024-08", program_id=pid, by_period=False) if b.balance_cents] == []
    assert led.batch_history(key)[-1]["n_entries"] == 0 and led.total_imbalance() == 0
