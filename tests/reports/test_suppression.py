"""Small-cell suppression: no shown count from 1 to 10, and no hidden count derivable from totals."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from allpayer.reports.suppression import THRESHOLD, column, grid, is_small, suppress, suppress_columns


def derivable(values, constraints, hidden) -> set:
    """Hidden keys whose value the shown values and the constraints pin down exactly: e_k lies in
    the row space of the constraint matrix restricted to the hidden unknowns."""
    unknown = sorted(hidden, key=str)
    if not unknown:
        return set()
    idx = {k: i for i, k in enumerate(unknown)}
    a = []
    for total, cells in constraints:
        row = [0.0] * len(unknown)
        for k, sign in [(total, -1.0)] + [(c, 1.0) for c in cells]:
            if k in idx:
                row[idx[k]] += sign
        if any(row):
            a.append(row)
    if not a:
        return set()
    a = np.array(a)
    r = np.linalg.matrix_rank(a)
    out = set()
    for k, i in idx.items():
        e = np.zeros(len(unknown))
        e[i] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, e])) == r:
            out.add(k)
    return out


def check(values, constraints, hidden):
    shown_small = [k for k, v in values.items() if k not in hidden and is_small(v)]
    assert not shown_small, f"small counts shown: {shown_small}"
    assert not derivable(values, constraints, hidden), "a hidden count can be derived from the totals"
    for total, cells in constraints:  # a hidden part whose partner sum is small is narrowed to a small count
        hid = [c for c in cells if c in hidden]
        if hid and total not in hidden:
            assert not is_small(sum(values[c] for c in hid))


counts = st.integers(min_value=0, max_value=60)


@settings(max_examples=300, deadline=None)
@given(st.lists(counts, min_size=1, max_size=12))
def test_one_column_with_a_total(cells):
    values = {i: v for i, v in enumerate(cells)} | {"total": sum(cells)}
    cons = column(list(range(len(cells))))
    check(values, cons, suppress(values, cons))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.data())
def test_two_way_table_with_margins(nr, nc, data):
    rows_, cols = list(range(nr)), list(range(nc))
    cell = {(r, c): data.draw(counts) for r in rows_ for c in cols}
    values = dict(cell)
    for r in rows_:
        values[(r, "total")] = sum(cell[(r, c)] for c in cols)
    for c in cols:
        values[("total", c)] = sum(cell[(r, c)] for r in rows_)
    values[("total", "total")] = sum(cell.values())
    cons = grid(rows_, cols)
    check(values, cons, suppress(values, cons))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 80), min_size=1, max_size=5), st.data())
def test_persons_across_payers(per_payer, data):
    """The regulator's layout: payer counts add up to a sum, and the sum = distinct persons + those
    counted twice; the distinct count stays shown when something else can protect."""
    total = sum(per_payer)
    overlap = data.draw(st.integers(0, total))
    values = {("att", i): v for i, v in enumerate(per_payer)}
    values |= {("att", "sum"): total, ("att", "distinct"): total - overlap, ("att", "overlap"): overlap}
    cons = [(("att", "sum"), [("att", i) for i in range(len(per_payer))]),
            (("att", "sum"), [("att", "distinct"), ("att", "overlap")])]
    check(values, cons, suppress(values, cons, keep_shown=[("att", "distinct")]))


def test_hand_checked_complement():
    # 4 is small; 25 is the smallest other cell, so it is hidden too: 4 + 25 = 29 cannot be split
    values = {"a": 4, "b": 30, "c": 25, "total": 59}
    assert suppress(values, column(["a", "b", "c"])) == {"a", "c"}
    # two small cells summing to 7 (< 11): a third cell is needed, else 7 would be known
    values = {"a": 3, "b": 4, "c": 40, "d": 50, "total": 97}
    assert suppress(values, column(["a", "b", "c", "d"])) == {"a", "b", "c"}
    # zero is shown and is no complement
    assert suppress({"a": 0, "b": 20, "total": 20}, column(["a", "b"])) == set()


def test_suppress_columns_hides_a_complement_in_each_column():
    rows = [{"mm": 40, "opt": 3}, {"mm": 41, "opt": 0}, {"mm": 39, "opt": 12}]
    hidden, totals = suppress_columns(rows, ["mm", "opt"])
    assert hidden == {(0, "opt"), (2, "opt")} and totals == set()


def test_a_total_under_the_threshold_is_hidden_with_its_cells():
    values = {"a": 3, "b": 5, "total": 8}
    assert suppress(values, column(["a", "b"])) == {"a", "b", "total"}
    assert THRESHOLD == 11


# -- joint suppression across the tables of one employer report ---------------------------------------------------

months_st = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(-15, 3), st.booleans()),
                     min_size=1, max_size=12)
wellness_st = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=2)


def employer_layout(spec, wellness_spec, invoiced):
    """The employer report's counts as one system: every value a reader sees, every difference of
    two nested counts a reader can compute (implicit: never printed), and every sum that ties them,
    within a table or across tables."""
    import datetime as dt

    from allpayer.reports.employer import joint_suppression

    months, invoices = [], []
    for i, (mm, opt, delta, billed) in enumerate(spec):
        m = dt.date(2024, i + 1, 1)
        months.append({"month": m, "member_months": mm, "opt_out_mm": min(opt, mm)})
        if invoiced and billed:
            invoices.append({"month": m, "member_months": max(0, mm + delta)})
    wellness = [{"measure_id": f"w{i}", "denominator": d, "numerator": min(n, d)} for i, (d, n) in enumerate(wellness_spec)]
    persons = max(m["member_months"] for m in months)
    hidden = joint_suppression(months, invoices, wellness, persons)
    values, cons, shown, implicit = {}, [], set(), set()

    def cell(key, value, is_hidden):
        values[key] = value
        if not is_hidden:
            shown.add(key)

    def diff(key, whole, part):
        values[key] = values[whole] - values[part]
        implicit.add(key)
        cons.append((whole, [part, key]))

    for col, k in (("member_months", "mm"), ("opt_out_mm", "opt")):
        for m in months:
            cell((k, m["month"]), m[col], (k, m["month"]) in hidden)
        cell((k, "total"), sum(m[col] for m in months), (k, "total") in hidden)
        cons.append(((k, "total"), [(k, m["month"]) for m in months]))
    for m in months:
        diff(("share", m["month"]), ("mm", m["month"]), ("opt", m["month"]))
    mm_of = {m["month"]: m["member_months"] for m in months}
    for r in invoices:
        cell(("invcell", r["month"]), r["member_months"], ("invrow", r["month"]) in hidden)
        if r["member_months"] <= mm_of[r["month"]]:  # attributed member months within all member months
            diff(("uninv", r["month"]), ("mm", r["month"]), ("invcell", r["month"]))
    if invoices:
        cell(("invtot",), sum(r["member_months"] for r in invoices), ("inv", "total") in hidden)
        cons.append((("invtot",), [("invcell", r["month"]) for r in invoices]))
    for w in wellness:
        i = w["measure_id"]
        cell(("wd", i), w["denominator"], ("wd", i) in hidden)
        cell(("wn", i), w["numerator"], ("wn", i) in hidden)
        diff(("wm", i), ("wd", i), ("wn", i))
    return values, cons, shown, implicit


@settings(max_examples=300, deadline=None)
@given(months_st, wellness_st, st.booleans())
def test_employer_report_counts_are_protected_across_its_tables(spec, wellness_spec, invoiced):
    values, cons, shown, implicit = employer_layout(spec, wellness_spec, invoiced)
    assert not [k for k in shown if is_small(values[k])], "a small count is shown"
    unknown = set(values) - shown
    fixed = derivable(values, cons, unknown)
    assert not (fixed - implicit), f"hidden counts derivable from the report's tables: {sorted(fixed - implicit, key=str)}"
    assert not [k for k in fixed & implicit if is_small(values[k])], "a small difference follows from two shown counts"
    for total, cells in cons:  # a sum shown over hidden parts must not narrow them to a small count
        hid = [c for c in cells if c in unknown]
        if hid and total in shown:
            assert not is_small(sum(values[c] for c in hid))


def test_a_month_hidden_in_one_table_is_hidden_in_the_other():
    """March: 4 member months, hidden in the month table; the invoices show March's 4 attributed
    member months too. Hidden there as well, with a second month in each table."""
    import datetime as dt

    from allpayer.reports.employer import joint_suppression

    months = [{"month": dt.date(2024, m, 1), "member_months": v, "opt_out_mm": 0}
              for m, v in ((1, 30), (2, 25), (3, 4))]
    invoices = [{"month": dt.date(2024, m, 1), "member_months": v} for m, v in ((1, 30), (2, 25), (3, 4))]
    hidden = joint_suppression(months, invoices, [], 40)
    assert {("mm", dt.date(2024, 3, 1)), ("inv", dt.date(2024, 3, 1))} <= hidden
    assert ("mm", dt.date(2024, 2, 1)) in hidden and ("inv", dt.date(2024, 2, 1)) in hidden
    assert ("mm", dt.date(2024, 1, 1)) not in hidden and ("inv", "total") not in hidden
    # 30 member months of which 24 attributed: both shown would tell that 6 were not; one of them goes
    months = [{"month": dt.date(2024, 1, 1), "member_months": 30, "opt_out_mm": 0},
              {"month": dt.date(2024, 2, 1), "member_months": 40, "opt_out_mm": 0}]
    invoices = [{"month": dt.date(2024, 1, 1), "member_months": 24}, {"month": dt.date(2024, 2, 1), "member_months": 40}]
    hidden = joint_suppression(months, invoices, [], 40)
    assert {("mm", dt.date(2024, 1, 1)), ("inv", dt.date(2024, 1, 1))} & hidden
