"""Dated and noted values: the three ways to write them, provenance, resolution by date."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from allpayer.terms.dated import Dated, Entry, Noted, Reference, parse_reference
from allpayer.terms.values import Count, Rate

D = dt.date
RATE = TypeAdapter(Dated[Rate])
NOTED = TypeAdapter(Noted[Count])


def _errors(adapter, value):
    with pytest.raises(ValidationError) as info:
        adapter.validate_python(value)
    return info.value.errors()


def test_plain_value_holds_for_any_date():
    d = RATE.validate_python("0.03")
    assert d.value == Decimal("0.03")
    assert d.at(D(1999, 1, 1)) == Decimal("0.03")
    assert not d.is_dated and not d.is_assumption and not d.sourced


def test_annotated_value_carries_provenance():
    d = RATE.validate_python({"value": "0.80", "reference": {"document": "S12", "page": 4}, "note": "NGACO"})
    (e,) = d.entries
    assert e.value == Decimal("0.80") and e.start is None
    assert e.reference == Reference("S12", page="4")
    assert str(e.reference) == "S12, p. 4"
    assert d.sourced and not d.is_assumption


def test_dated_list_resolves_by_date():
    d = RATE.validate_python(
        [
            {"from": "2022-01-01", "value": "0.50"},
            {"from": D(2022, 7, 1), "value": "0.60", "basis": "INF"},
        ]
    )
    assert d.is_dated
    assert d.at(D(2022, 1, 1)) == Decimal("0.50")
    assert d.at(D(2022, 6, 30)) == Decimal("0.50")
    assert d.at(D(2022, 7, 1)) == Decimal("0.60")
    assert d.entry_at(D(2022, 12, 31)).basis == "INF"
    assert d.is_assumption and not d.sourced  # the first entry has no provenance
    with pytest.raises(ValueError, match="changes on 2022-01-01, 2022-07-01"):
        d.value
    with pytest.raises(ValueError, match="no value holds on 2021-12-31"):
        d.at(D(2021, 12, 31))


def test_segments_cover_the_period_exactly():
    d = RATE.validate_python([{"from": "2022-01-01", "value": "0.5"}, {"from": "2022-04-01", "value": "0.6"}])
    assert d.segments(D(2022, 3, 15), D(2022, 5, 31)) == [
        (D(2022, 3, 15), D(2022, 3, 31), Decimal("0.5")),
        (D(2022, 4, 1), D(2022, 5, 31), Decimal("0.6")),
    ]
    assert d.segments(D(2022, 5, 1), D(2022, 5, 31)) == [(D(2022, 5, 1), D(2022, 5, 31), Decimal("0.6"))]


@given(
    offsets=st.lists(st.integers(min_value=1, max_value=364), unique=True, max_size=6),
    probe=st.integers(min_value=0, max_value=364),
)
def test_at_agrees_with_segments(offsets, probe):
    start, end = D(2022, 1, 1), D(2022, 12, 31)
    starts = [start] + [start + dt.timedelta(days=o) for o in sorted(offsets)]
    d = Dated(tuple(Entry(s, i) for i, s in enumerate(starts)))
    segs = d.segments(start, end)
    assert segs[0][0] == start and segs[-1][1] == end
    for (_, a_end, _), (b_start, _, _) in zip(segs, segs[1:]):
        assert b_start == a_end + dt.timedelta(days=1)
    when = start + dt.timedelta(days=probe)
    (value,) = [v for s, e, v in segs if s <= when <= e]
    assert d.at(when) == value


@pytest.mark.parametrize(
    "value, message",
    [
        ({"value": "0.1", "basis": "DOC"}, "a value with basis DOC needs a reference"),
        ({"value": "0.1", "basis": "DERIVED", "reference": "S19", "assumption": True}, "cannot be marked assumption: true"),
        ({"value": "0.1", "basis": "INF", "assumption": False}, "basis INF marks an assumption"),
        ({"from": "2022-01-01", "value": "0.1"}, "must be an item of a list"),
    ],
)
def test_contradictory_or_misplaced_entries(value, message):
    assert message in _errors(RATE, value)[0]["msg"]


def test_unknown_key_inside_an_entry():
    (err,) = _errors(RATE, [{"from": "2022-01-01", "value": "0.1", "refrence": "S1"}])
    assert err["type"] == "extra_forbidden" and err["loc"][-1] == "refrence"


def test_inf_and_brief_mark_assumptions():
    assert RATE.validate_python({"value": "0.1", "basis": "BRIEF"}).is_assumption
    assert RATE.validate_python({"value": "0.1", "assumption": True}).sourced


def test_noted_values_cannot_change_during_the_year():
    assert NOTED.validate_python({"value": 24, "basis": "INF"}).value == 24
    msg = _errors(NOTED, [{"from": "2022-01-01", "value": 24}])[0]["msg"]
    assert "cannot change during the year" in msg
    assert "cannot change during the year" in _errors(NOTED, {"from": "2022-01-01", "value": 24})[0]["msg"]


def test_to_data_writes_the_shortest_faithful_form():
    assert RATE.validate_python("0.03").to_data() == "0.03"
    assert RATE.validate_python({"value": "0.03", "basis": "INF"}).to_data() == {
        "value": "0.03",
        "assumption": True,
        "basis": "INF",
    }
    dated = RATE.validate_python([{"from": "2022-01-01", "value": "0.5", "reference": {"document": "C", "page": 2}}])
    assert dated.to_data() == [{"from": "2022-01-01", "value": "0.5", "reference": {"document": "C", "page": "2"}}]
    assert dated.to_data(at=D(2022, 3, 1)) == "0.5"
    assert RATE.validate_python(dated.to_data()) == dated


def test_equality_hash_and_repr():
    a = RATE.validate_python("0.5")
    assert a == Dated.of(Decimal("0.5")) and hash(a) == hash(Dated.of(Decimal("0.5")))
    assert a != Noted.of(Decimal("0.5"))
    assert repr(a) == "Dated(Decimal('0.5'))"


def test_reference_forms():
    assert parse_reference("S4") == Reference("S4")
    assert parse_reference({"document": "Contract", "section": "4.2", "url": "https://x"}).to_data() == {
        "document": "Contract",
        "section": "4.2",
        "url": "https://x",
    }
    (err,) = _errors(RATE, {"value": "0.1", "reference": {"doc": "S4"}})
    assert "unknown key 'doc' in reference" in err["msg"]


def test_values_built_in_python_are_checked_too():
    assert RATE.validate_python(Dated.of(Decimal("0.5"))) == Dated.of(Decimal("0.5"))
    assert "between 0 and 1" in _errors(RATE, Dated.of(Decimal("5")))[0]["msg"]
    dated = Dated((Entry(D(2022, 1, 1), Decimal("0.5")), Entry(D(2022, 6, 1), Decimal("0.6"))))
    assert RATE.validate_python(dated) == dated
    assert "cannot change during the year" in _errors(TypeAdapter(Noted[Rate]), dated)[0]["msg"]
