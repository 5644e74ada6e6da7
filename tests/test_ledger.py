"""The payments ledger: double entry, idempotent batches, reversals, balances by account and period."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allpayer.ledger import Entry, Ledger, LedgerError, periods_within
from allpayer.store import default_store_url, open_store


def new_ledger(url="sqlite:///:memory:"):
    return Ledger(open_store(url))


def fpp(amount, period="2024-01", hospital=None, rule="fpp.payer_to_aco"):
    if hospital:
        return Entry(f"hospital:{hospital}", "aco:onecare", amount, "medicaid_2024", period, "fpp.aco_to_hospital")
    return Entry("aco:onecare", "payer:dvha", amount, "medicaid_2024", period, rule)


def balance_map(led, **kw):
    return {(b.account, b.period): b.balance_cents for b in led.balances(**kw) if b.balance_cents}


# -- hand-checked cases --------------------------------------------------------------------------


def test_post_then_same_again_is_a_no_op():
    led = new_ledger()
    entries = [fpp(1_000_00), fpp(600_00, hospital="h1"), fpp(300_00, hospital="h2")]
    r1 = led.post("fpp:medicaid_2024:2024-01", entries, run_id="run-1")
    assert (r1.status, r1.entries_posted) == ("posted", 3)
    r2 = led.post("fpp:medicaid_2024:2024-01", list(reversed(entries)), run_id="run-2")
    assert r2.status == "unchanged"
    assert len(led.entries()) == 3
    # payer paid 1,000.00; the ACO received 1,000.00 and passed 900.00 on, so it keeps 100.00
    assert led.balance_of("payer:dvha") == -1_000_00
    assert led.balance_of("aco:onecare") == 100_00
    assert led.balance_of("hospital:h1") == 600_00
    assert led.total_imbalance() == 0


def test_changed_amounts_reverse_the_old_batch_and_reference_both_runs():
    led = new_ledger()
    led.post("fpp:m:2024-01", [fpp(1_000_00), fpp(900_00, hospital="h1")], run_id="run-1")
    # eligibility restated: 2024-01 is worth 1,050.00 now
    r = led.post("fpp:m:2024-01", [fpp(1_050_00), fpp(945_00, hospital="h1")], run_id="run-2")
    assert (r.status, r.entries_reversed, r.entries_posted, r.prior_run_id) == ("replaced", 2, 2, "run-1")
    rows = led.entries(batch_key="fpp:m:2024-01")
    assert [e.kind for e in rows] == ["entry", "entry", "reversal", "reversal", "entry", "entry"]
    rev = [e for e in rows if e.kind == "reversal"]
    assert {e.reverses_entry_id for e in rev} == {1, 2}
    assert all(e.run_id == "run-2" and e.prior_run_id == "run-1" for e in rows[2:])
    # a reversal swaps the accounts of the entry it reverses
    first = rows[0]
    rev_of_first = next(e for e in rev if e.reverses_entry_id == first.entry_id)
    assert (rev_of_first.debit_account, rev_of_first.credit_account) == (first.credit_account, first.debit_account)
    assert led.balance_of("payer:dvha") == -1_050_00
    assert led.balance_of("aco:onecare") == 105_00
    assert [h["state"] for h in led.batch_history("fpp:m:2024-01")] == ["posted", "posted"]


def test_reverse_restores_and_a_later_post_starts_afresh():
    led = new_ledger()
    led.post("k", [fpp(500_00)], run_id="r1")
    r = led.reverse("k", run_id="r2")
    assert (r.status, r.entries_reversed) == ("reversed", 1)
    assert balance_map(led) == {}
    assert led.reverse("k", run_id="r3").status == "unchanged"
    again = led.post("k", [fpp(500_00)], run_id="r4")
    assert (again.status, again.prior_run_id) == ("posted", None)
    assert led.balance_of("payer:dvha") == -500_00


def test_empty_batch_over_a_posting_reverses_it_and_zero_entries_are_dropped():
    led = new_ledger()
    led.post("k", [fpp(10)], run_id="r1")
    r = led.post("k", [fpp(0)], run_id="r2")
    assert r.status == "replaced" and r.entries_posted == 0 and r.entries_reversed == 1
    assert led.total_imbalance() == 0 and balance_map(led) == {}
    assert led.post("never", [], run_id="r3").status == "unchanged"


def test_balances_by_account_and_period_and_within_a_period():
    led = new_ledger()
    for m, amt in (("2024-01", 100), ("2024-02", 200), ("2024-04", 400), ("2025-01", 1000)):
        led.post(f"fpp:{m}", [fpp(amt, period=m)], run_id="r")
    by = balance_map(led)
    assert by[("aco:onecare", "2024-02")] == 200
    q1 = led.balances(period="2024-Q1", account="aco:onecare", by_period=False)
    assert [(b.debit_cents, b.credit_cents, b.balance_cents) for b in q1] == [(300, 0, 300)]
    assert led.balance_of("payer:dvha", period="2024") == -700
    assert led.balance_of("payer:dvha", period="2024-04") == -400
    assert led.balance_of("payer:dvha") == -1700
    # deterministic order: account, then period
    keys = [(b.account, b.period) for b in led.balances()]
    assert keys == sorted(keys)


def test_entry_validation():
    with pytest.raises(LedgerError, match="bad ledger account"):
        Entry("bank:x", "payer:dvha", 1, "p", "2024-01", "r")
    with pytest.raises(LedgerError, match="bad ledger period"):
        Entry("aco:a", "payer:dvha", 1, "p", "2024-13", "r")
    with pytest.raises(LedgerError, match="negative"):
        Entry("aco:a", "payer:dvha", -1, "p", "2024-01", "r")
    with pytest.raises(LedgerError, match="whole cents"):
        Entry("aco:a", "payer:dvha", 1.5, "p", "2024-01", "r")
    with pytest.raises(LedgerError, match="to itself"):
        Entry("aco:a", "aco:a", 1, "p", "2024-01", "r")
    back = Entry.transfer("aco:a", "hospital:h", -250, "p", "2024-Q1", "fpp.true_up")
    assert (back.debit_account, back.credit_account, back.amount_cents) == ("aco:a", "hospital:h", 250)
    fwd = Entry.transfer("aco:a", "hospital:h", 250, "p", "2024", "fpp.true_up")
    assert (fwd.debit_account, fwd.credit_account) == ("hospital:h", "aco:a")


def test_periods_within():
    assert periods_within("2024-03") == ["2024-03"]
    assert periods_within("2024-Q4") == ["2024-Q4", "2024-10", "2024-11", "2024-12"]
    assert "2024-Q3" in periods_within("2024") and "2024-12" in periods_within("2024")


def test_the_store_refuses_updates_and_deletes(tmp_path):
    url = default_store_url(tmp_path / "x.duckdb")
    led = new_ledger(url)
    led.post("k", [fpp(100)], run_id="r1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        led.store.execute("UPDATE ledger_entries SET amount_cents = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        led.store.execute("DELETE FROM ledger_batches")
    # a second process sees the same ledger in the same file
    assert new_ledger(url).balance_of("payer:dvha") == -100


def test_failed_posting_leaves_nothing_behind(monkeypatch):
    led = new_ledger()
    led.post("k", [fpp(100)], run_id="r1")

    def broken(rows):
        raise RuntimeError("disk full")

    monkeypatch.setattr(led, "_insert", broken)
    with pytest.raises(RuntimeError):
        led.post("k", [fpp(200)], run_id="r2")
    monkeypatch.undo()
    assert led.balance_of("payer:dvha") == -100
    assert [h["version"] for h in led.batch_history("k")] == [1]


# -- properties ----------------------------------------------------------------------------------

ACCOUNTS = ["payer:dvha", "payer:bcbsvt", "aco:onecare", "aco_reserve:onecare", "hospital:h1", "practice:p1", "employer:e1"]
entry_st = st.builds(
    lambda pair, amt, period, rule: Entry(pair[0], pair[1], amt, "prog", period, rule),
    st.sampled_from([(a, b) for a in ACCOUNTS for b in ACCOUNTS if a != b]),
    st.integers(min_value=0, max_value=10**11),
    st.sampled_from(["2024-01", "2024-02", "2024-Q1", "2024"]),
    st.sampled_from(["fpp", "cpr"]),
)
batch_st = st.lists(entry_st, max_size=5)
op_st = st.tuples(st.sampled_from(["post", "reverse"]), st.sampled_from(["a", "b", "c"]), batch_st)


def expected_balances(entries):
    out = Counter()
    for e in entries:
        out[e.debit_account] += e.amount_cents
        out[e.credit_account] -= e.amount_cents
    return {k: v for k, v in out.items() if v}


def account_totals(led):
    return {b.account: b.balance_cents for b in led.balances(by_period=False) if b.balance_cents}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op_st, max_size=12))
def test_ledger_balances_after_every_posting_and_matches_the_live_batches(ops):
    led = new_ledger()
    live: dict[str, list[Entry]] = {}
    for i, (op, key, entries) in enumerate(ops):
        if op == "post":
            led.post(key, entries, run_id=f"r{i}")
            live[key] = entries
        else:
            led.reverse(key, run_id=f"r{i}")
            live.pop(key, None)
        assert led.total_imbalance() == 0
        assert account_totals(led) == expected_balances([e for es in live.values() for e in es])


@settings(max_examples=60, deadline=None)
@given(batch_st, st.randoms(use_true_random=False))
def test_posting_is_idempotent(entries, rnd):
    led = new_ledger()
    led.post("k", entries, run_id="r1")
    before = (balance_map(led), len(led.entries()))
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert led.post("k", shuffled, run_id="r2").status == "unchanged"
    assert (balance_map(led), len(led.entries())) == before


@settings(max_examples=60, deadline=None)
@given(batch_st, batch_st, batch_st)
def test_a_reversal_restores_the_previous_balances(base, first, second):
    led = new_ledger()
    led.post("base", base, run_id="r0")
    before = balance_map(led)
    led.post("k", first, run_id="r1")
    led.post("k", second, run_id="r2")  # replaced (or unchanged) batch
    led.reverse("k", run_id="r3")
    assert balance_map(led) == before


@pytest.mark.skipif(not os.environ.get("ALLPAYER_TEST_POSTGRES_URL"), reason="set ALLPAYER_TEST_POSTGRES_URL to test PostgreSQL")
def test_ledger_on_postgres():
    s = open_store(os.environ["ALLPAYER_TEST_POSTGRES_URL"])
    s.execute("DROP TABLE IF EXISTS ledger_entries")
    s.execute("DROP TABLE IF EXISTS ledger_batches")
    s.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    s.execute("CREATE TABLE IF NOT EXISTS schema_migrations (component VARCHAR(100) NOT NULL, version BIGINT NOT NULL, applied_at VARCHAR(40) NOT NULL, PRIMARY KEY (component, version))")
    s.execute("DELETE FROM schema_migrations WHERE component = ?", ("ledger",))
    led = Ledger(s)
    led.post("k", [fpp(1_000_00), fpp(900_00, hospital="h1")], run_id="run-1")
    assert led.post("k", [fpp(900_00, hospital="h1"), fpp(1_000_00)], run_id="run-2").status == "unchanged"
    r = led.post("k", [fpp(1_050_00), fpp(945_00, hospital="h1")], run_id="run-3")
    assert (r.status, r.prior_run_id, r.entries_reversed) == ("replaced", "run-1", 2)
    assert led.balance_of("aco:onecare") == 105_00 and led.total_imbalance() == 0
    assert led.balance_of("payer:dvha", period="2024") == -1_050_00
    with pytest.raises(Exception, match="append-only"):
        s.execute("UPDATE ledger_entries SET amount_cents = 1")
