"""The provider reports' payments by month and type (`reports.panel.add_payments`) on small
hand-made payment tables: every amount the ledger posts to the organization, each on its line."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
import pytest

from allpayer.reports.base import Period, Report
from allpayer.reports.panel import add_payments

JAN, FEB, DEC = dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 12, 1)


def _table(con, name, rows):
    con.create_table(name, pa.Table.from_pylist(rows))


@pytest.fixture()
def con():
    con = ibis.duckdb.connect()
    y = {"performance_year": 2024}
    _table(con, "cpr_payments", [
        {**y, "program_id": "p", "month": JAN, "practice_id": "P1", "cell_id": "adult", "amount_cents": 100_000},
        {**y, "program_id": "p", "month": FEB, "practice_id": "P1", "cell_id": "adult", "amount_cents": 90_000},
        {**y, "program_id": "p", "month": JAN, "practice_id": "P2", "cell_id": "adult", "amount_cents": 7_00}])
    _table(con, "phm_payments", [
        {**y, "program_id": "p", "month": JAN, "practice_id": "P1", "rule": "phm.base", "amount_cents": 5_000},
        {**y, "program_id": "p", "month": DEC, "practice_id": "P1", "rule": "phm.ladder", "amount_cents": 12_000}])
    _table(con, "value_payment_pass_through", [
        {**y, "program_id": "v", "month": JAN, "pool": "phm", "payee": "practice:P1", "amount_cents": 1_234,
         "rule": "vp.pass_through"},
        {**y, "program_id": "v", "month": JAN, "pool": "fpp", "payee": "hospital:P1", "amount_cents": 66,
         "rule": "vp.pass_through"},
        {**y, "program_id": "v", "month": FEB, "pool": "phm", "payee": "practice:P1", "amount_cents": 1_111,
         "rule": "vp.pass_through"},
        # not paid to P1: another practice, the ACO's admin share, a pool with no payee
        {**y, "program_id": "v", "month": JAN, "pool": "phm", "payee": "practice:P2", "amount_cents": 999,
         "rule": "vp.pass_through"},
        {**y, "program_id": "v", "month": JAN, "pool": "admin", "payee": "aco:a", "amount_cents": 500,
         "rule": "vp.admin"},
        {**y, "program_id": "v", "month": JAN, "pool": "cpr", "payee": "aco:a", "amount_cents": 400,
         "rule": "vp.unallocated"}])
    _table(con, "cpr_quality_bonus", [{**y, "program_id": "p", "practice_id": "P1", "amount_cents": 30_000}])
    _table(con, "pay_for_improvement", [{**y, "program_id": "p", "practice_id": "P1", "bonus_cents": 6_300}])
    return con


def test_every_payment_to_the_practice_is_on_its_line(con):
    rep = Report(kind="practice", org="P1", year=2024, run_id="R", title="t", subtitle="s")
    pay = add_payments(con, rep, Period(2024), practice_id="P1", hospital_id="P1")
    # 1,234 + 66 (its hospital account's fpp pool) + 1,111; P2's, admin and unallocated left out
    assert pay == {"CPR": 190_000, "PHM": 17_000, "VP pass-through": 2_411, "CPR quality bonus": 30_000,
                   "pay-for-improvement": 6_300}
    (table,) = rep.tables
    assert table.columns == ["month", "CPR", "PHM", "VP pass-through", "CPR quality bonus", "pay-for-improvement",
                             "total"]
    by_month = {r[0]: r[1:] for r in table.rows}
    assert by_month["2024-01"] == ["$1,000.00", "$50.00", "$13.00", "$0.00", "$0.00", "$1,063.00"]
    assert by_month["2024-12"] == ["$0.00", "$120.00", "$0.00", "$300.00", "$63.00", "$483.00"]
    assert by_month["Total"][-1] == "$2,457.11"  # 1,900 + 170 + 24.11 + 300 + 63


def test_a_quarter_leaves_out_the_year_end_items(con):
    rep = Report(kind="practice", org="P1", year=2024, run_id="R", title="t", subtitle="s")
    pay = add_payments(con, rep, Period.parse("2024-Q1"), practice_id="P1", hospital_id=None)
    assert pay == {"CPR": 190_000, "PHM": 5_000, "VP pass-through": 2_345}
