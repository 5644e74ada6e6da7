"""Amounts travel exactly: any amount in cents written in an EOB's JSON comes out as the same
decimal (never through a binary float), and the writer's JSON numbers read back unchanged."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from allpayer.inputs.fhir import mapping
from allpayer.inputs.fhir.reader import _parse
from allpayer.synth.fhir_writer import _as_read, _num

from .test_reader import _adj, carin_eob

COVERAGES = {"cov1": {"member_id": "M1", "payer": "medicare", "plan": "part_b"}}
cents = st.integers(min_value=-10**13, max_value=10**13)


def _text(c: int) -> str:
    sign = "-" if c < 0 else ""
    return f"{sign}{abs(c) // 100}.{abs(c) % 100:02d}"


@settings(max_examples=200, deadline=None)
@given(paid=cents, allowed=cents)
def test_amounts_in_json_map_exactly(paid, allowed):
    eob = carin_eob()
    eob["item"] = [{"sequence": 1, "adjudication": [_adj("benefit", "PAID"), _adj("eligible", "ALLOWED")]}]
    line = json.dumps(eob).replace('"PAID"', _text(paid)).replace('"ALLOWED"', _text(allowed))
    resource = _parse(line.encode())  # as the reader parses a line
    _, ((_, row),) = mapping.eob(resource, COVERAGES, {})
    assert Decimal(row["paid_amount"]) * 100 == paid
    assert Decimal(row["allowed_amount"]) * 100 == allowed


@settings(max_examples=200, deadline=None)
@given(amount=cents)
def test_writer_numbers_read_back_unchanged(amount):
    text = _text(amount)
    assert _as_read({"v": _num(text)})["v"] == Decimal(text)
    assert str(_as_read({"v": _num(text)})["v"]) == text
