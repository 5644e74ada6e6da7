"""`allpayer run` with the payer inputs loaded: voluntary alignment overrides claims, exclusion
events exclude by month or for the whole year as the terms say, and the payer's attribution list
and targets are reconciled with ours, member by member and cell by cell, with reasons.

A small generated population is loaded without its payer files and run once; hand-made payer
files about chosen members are then loaded as a second delivery and the year is run again.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest

from allpayer.cli import main
from allpayer.runs import open_snapshot

# one worker builds this module's fixture once (--dist loadgroup; see tests/test_xdist_groups.py)
pytestmark = pytest.mark.xdist_group("pipeline_payer_inputs")

YEAR = 2024
MEDICARE = "vt-2024-medicare"
PAYER_FILES = ("payer_attribution", "voluntary_alignment", "exclusion_event", "payer_target")
MONTHS = [dt.date(YEAR, m, 1) for m in range(1, 13)]


def rows(db, sql, params=None):
    con = open_snapshot(db)
    try:
        cur = con.con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.disconnect()


def write_csv(path, header, records):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in records:
            w.writerow(["" if v is None else v for v in r])


def run(db):
    assert main(["run", "--db", str(db), "--year", str(YEAR), "--paid-through", "2025-03-31"]) == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("payer_inputs")
    data, db = base / "data", base / "allpayer.duckdb"
    assert main(["generate", "--members", "900", "--seed", "7", "--out", str(data)]) == 0
    for t in PAYER_FILES:
        (data / f"{t}.parquet").unlink()
    assert main(["load", str(data), "--db", str(db)]) == 0
    run(db)

    # members our claims-based roster attributes all year, in an eligible month every month
    full = rows(db, """
        select member_id, min(practice_id) as practice_id, min(npi) as npi, min(tin) as tin
        from attribution where program_id = ? and performance_year = ? and attributed and eligible
          and step = 'claims_plurality'
        group by member_id having count(*) = 12 and count(distinct practice_id) = 1
        order by member_id""", [MEDICARE, YEAR])
    assert len(full) >= 6
    a, b, c, d, e, g = full[:6]
    # a Medicare program member our roster does not list
    (h,) = rows(db, """
        select min(member_id) as member_id from member_months m
        where program_id = ? and performance_year = ?
          and member_id not in (select member_id from attribution where program_id = ? and performance_year = ?)""",
                [MEDICARE, YEAR, MEDICARE, YEAR])
    # a participating primary care physician of another practice, in force all year
    (other,) = rows(db, """
        select npi, tin, practice_id from provider_roster
        where payer = 'medicare' and participation = 'participant' and primary_care_flag
          and provider_type = 'physician' and practice_id <> ?
          and effective_start_date <= date '2024-01-01'
          and (effective_end_date is null or effective_end_date >= date '2024-12-31')
        order by npi limit 1""", [a["practice_id"]])
    targets = {r["cell_id"]: r for r in rows(db, """
        select cell_id, min(target_pmpm) as pmpm, sum(member_months) as mm from targets
        where program_id = ? and performance_year = ? and month = date '2024-01-01' group by cell_id""",
                                             [MEDICARE, YEAR])}

    delivery = base / "payer"
    delivery.mkdir()
    write_csv(delivery / "voluntary_alignment.csv",
              ["payer", "member_id", "npi", "tin", "designation_date", "end_date", "data_source"],
              [("medicare", a["member_id"], other["npi"], other["tin"], "2023-06-01", None, "test")])
    write_csv(delivery / "exclusion_event.csv",
              ["payer", "member_id", "reason", "event_date", "end_date", "program_id", "data_source"],
              [("medicare", b["member_id"], "moved_out_of_area", "2024-08-10", None, None, "test"),
               ("medicare", c["member_id"], "medicare_advantage", "2024-05-01", "2024-08-31", MEDICARE, "test"),
               ("medicare", d["member_id"], "hospice", "2024-03-01", None, None, "test"),
               ("medicare", d["member_id"], "medicare_advantage", "2024-03-01", None, "another-program", "test")])
    listed = []
    for m in MONTHS:
        listed.append(("medicare", MEDICARE, e["member_id"], m.isoformat(), e["practice_id"], None, None, "test"))
        listed.append(("medicare", MEDICARE, g["member_id"], m.isoformat(), other["practice_id"], None, None, "test"))
        listed.append(("medicare", MEDICARE, h["member_id"], m.isoformat(), None, None, None, "test"))
        listed.append(("medicare", MEDICARE, b["member_id"], m.isoformat(), b["practice_id"], None, None, "test"))
    write_csv(delivery / "payer_attribution.csv",
              ["payer", "program_id", "member_id", "month", "practice_id", "npi", "tin", "data_source"], listed)

    def cents(pmpm):
        return Decimal(pmpm).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    nondual, disabled = targets["aged_nondual"], targets["disabled"]
    assert nondual["pmpm"] is not None and disabled["pmpm"] is not None
    write_csv(delivery / "payer_target.csv",
              ["payer", "program_id", "cell_id", "month", "target_pmpm", "member_months", "data_source"],
              [("medicare", MEDICARE, "aged_nondual", "2024-01-01", cents(nondual["pmpm"]), nondual["mm"], "test"),
               ("medicare", MEDICARE, "disabled", "2024-01-01", cents(disabled["pmpm"]) + 1, None, "test"),
               ("medicare", MEDICARE, "aged_nondual", "2024-02-01", cents(nondual["pmpm"]), 1, "test"),
               ("medicare", MEDICARE, "no_such_cell", "2024-01-01", "100.00", None, "test")])
    assert main(["load", str(delivery), "--db", str(db)]) == 0
    run(db)
    return dict(db=db, a=a, b=b, c=c, d=d, e=e, g=g, h=h, other=other, targets=targets)


def roster_of(world, member):
    got = rows(world["db"], """
        select month, attributed, exclusion_reason, step, basis, practice_id, npi from attribution
        where program_id = ? and performance_year = ? and member_id = ? order by month""",
               [MEDICARE, YEAR, member["member_id"]])
    return {r["month"]: r for r in got}


def test_voluntary_alignment_overrides_claims(world):
    got = roster_of(world, world["a"])
    assert list(got) == MONTHS
    assert {(r["step"], r["basis"], r["practice_id"], r["npi"]) for r in got.values()} == {
        ("voluntary_alignment", "voluntary_alignment", world["other"]["practice_id"], world["other"]["npi"])}
    assert world["other"]["practice_id"] != world["a"]["practice_id"]
    assert all(r["attributed"] for r in got.values())


def test_year_scope_exclusion_checked_quarterly_removes_the_whole_year(world):
    # 2024 Medicare terms: moved_out_of_area, scope year, checked quarterly: an August move
    # removes the member from every month of the year.
    got = roster_of(world, world["b"])
    assert [(r["attributed"], r["exclusion_reason"]) for r in got.values()] == [(False, "moved_out_of_area")] * 12


def test_month_scope_exclusion_applies_in_its_months_only(world):
    # medicare_advantage, scope month, checked monthly: May to August excluded, then requalified.
    got = roster_of(world, world["c"])
    assert [(m.month, r["attributed"], r["exclusion_reason"]) for m, r in got.items()] == (
        [(m, True, None) for m in range(1, 5)] + [(m, False, "medicare_advantage") for m in range(5, 9)]
        + [(m, True, None) for m in range(9, 13)])
    changes = rows(world["db"], """
        select month, change, reason from attribution_changes
        where program_id = ? and performance_year = ? and member_id = ? order by month""",
                   [MEDICARE, YEAR, world["c"]["member_id"]])
    assert [(r["month"].month, r["change"], r["reason"]) for r in changes] == [
        (5, "dropped", "medicare_advantage"), (9, "added", "requalified")]


def test_events_the_terms_do_not_name_or_of_another_program_change_nothing(world):
    # hospice is no exclusion reason of these terms; the MA event names another program.
    got = roster_of(world, world["d"])
    assert all(r["attributed"] for r in got.values()) and len(got) == 12


def test_payer_list_reconciled_member_by_member_with_reasons(world):
    rec = rows(world["db"], """
        select member_id, month, status, reason, our_practice_id, payer_practice_id, our_exclusion_reason
        from attribution_reconciliation where program_id = ? and performance_year = ?""", [MEDICARE, YEAR])
    by = {}
    for r in rec:
        by.setdefault(r["member_id"], set()).add((r["status"], r["reason"]))
    w = world
    assert by[w["e"]["member_id"]] == {("both", "match")}
    assert by[w["g"]["member_id"]] == {("both", "practice_differs")}
    assert by[w["h"]["member_id"]] == {("only_payer", "not_listed_by_us")}
    assert by[w["b"]["member_id"]] == {("only_payer", "excluded_by_us")}
    assert by[w["a"]["member_id"]] == {("only_ours", "not_on_payer_list")}
    # every attributed month of ours is reconciled, and every month of the payer's list
    ((attributed,),) = [tuple(r.values()) for r in rows(w["db"], """
        select count(*) from attribution where program_id = ? and performance_year = ? and attributed""",
                                                            [MEDICARE, YEAR])]
    ours = [r for r in rec if r["status"] in ("both", "only_ours")]
    assert len(ours) == attributed
    assert len([r for r in rec if r["status"] in ("both", "only_payer")]) == 4 * 12
    # no other program had a list, so no other program has reconciliation rows
    assert {r["program_id"] for r in rows(w["db"], "select distinct program_id from attribution_reconciliation")} == {
        MEDICARE}


def test_payer_targets_reconciled_cell_by_cell(world):
    rec = {(r["cell_id"], r["month"]): r for r in rows(world["db"], """
        select * from target_reconciliation where program_id = ? and performance_year = ?""", [MEDICARE, YEAR])}
    jan, feb = dt.date(YEAR, 1, 1), dt.date(YEAR, 2, 1)
    match = rec[("aged_nondual", jan)]
    assert (match["status"], match["reason"]) == ("both", "match")
    assert match["difference_cents"] == match["our_target_cents"] - match["payer_target_cents"]
    differs = rec[("disabled", jan)]
    assert (differs["status"], differs["reason"]) == ("both", "pmpm_differs")
    # the payer's PMPM is ours rounded to cents plus $1.00, priced on our member months
    mm = differs["our_member_months"]
    assert differs["payer_target_cents"] == (differs["our_target_pmpm_cents"] + 100) * mm
    assert (rec[("aged_nondual", feb)]["reason"]) == "member_months_differ"
    assert (rec[("no_such_cell", jan)]["status"], rec[("no_such_cell", jan)]["reason"]) == (
        "only_payer", "not_a_program_cell_or_month")
    assert (rec[("aged_dual", jan)]["status"], rec[("aged_dual", jan)]["reason"]) == (
        "only_ours", "not_in_payer_targets")
