"""`reports.base.rows_by` and `sums_by` answer the same inside a batch (one query for every
organization, split in memory) as outside (filtered in the database)."""

from __future__ import annotations

import ibis

from allpayer.reports.base import batch, rows_by, sums_by


def _panel():
    return ibis.memtable({
        "practice_id": ["p1", "p1", "p2", None, "p2", "p1"],
        "hsa": ["burlington", "rutland", "burlington", "rutland", None, "burlington"],
        "program_id": ["a", "a", "a", "a", "b", "b"],
        "cost": [100, 20, 7, 5, None, 1],
        "mm": [3, 1, 1, 2, 4, 1],
    })


def _answers():
    t = _panel()
    asked = [("practice_id", "p1"), ("practice_id", "p2"), ("practice_id", "p9"), ("hsa", "burlington"),
             ("hsa", "rutland")]
    out = {(c, v): sums_by(t, c, v, ["program_id"], ["cost", "mm"], key="panel") for c, v in asked}
    for v in ("p1", "p2"):
        out[("rows", v)] = rows_by(t, "practice_id", v, ["program_id", "cost"], key="rows")
    return out


def test_sums_by_rolls_up_the_other_columns_and_skips_nulls():
    got = _answers()
    assert got[("practice_id", "p1")] == {("a",): {"cost": 120, "mm": 4}, ("b",): {"cost": 1, "mm": 1}}
    assert got[("practice_id", "p2")] == {("a",): {"cost": 7, "mm": 1}, ("b",): {"cost": 0, "mm": 4}}
    assert got[("practice_id", "p9")] == {}
    assert got[("hsa", "burlington")] == {("a",): {"cost": 107, "mm": 4}, ("b",): {"cost": 1, "mm": 1}}
    assert got[("hsa", "rutland")] == {("a",): {"cost": 25, "mm": 3}}


def test_a_batch_answers_as_the_database_does():
    outside = _answers()
    with batch():
        inside = _answers()
    assert inside == outside


def test_people_by_counts_each_person_once_per_value_and_once_in_all():
    from allpayer.reports.regulator import people_by

    t = ibis.memtable({
        "person_id": ["a", "a", "b", "c", "c", "d"],
        "payer_type": ["medicare", "medicaid", "medicare", "commercial", "commercial", None],
    })
    by, total = people_by(t, "payer_type")
    assert by == {"commercial": 1, "medicaid": 1, "medicare": 2} and total == 4
    by, total = people_by(t, "payer_type", ["medicare", "self_funded"])
    assert by == {"medicare": 2, "self_funded": 0} and total == 4
