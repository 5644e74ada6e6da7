"""Rounding of member months x PMPM (`allpayer.payments.common.pmpm_cents`)."""

from __future__ import annotations

import ibis
import pytest

from allpayer.payments.common import pmpm_cents, py_pmpm_cents


@pytest.mark.parametrize(("member_months", "micro", "cents"), [
    (3, 1_665_000, 500),     # 3 x $1.665 = $4.995 -> $5.00, half up
    (1, 14_999, 1),          # $0.014999 -> 1 cent
    (1, 4_999, 0),           # $0.004999 -> 0 cents
    (3, -1_665_000, -500),   # a negative amount rounds as its positive does: -$4.995 -> -$5.00
    (1, -4_999, 0),          # -$0.004999 -> 0
    (1, -5_000, -1),         # -$0.005 -> -1 cent (floor division gave 0)
    (1, -15_000, -2),        # -$0.015 -> -2 cents (floor division gave -1)
])
def test_pmpm_cents_round_half_away_from_zero(member_months, micro, cents):
    assert py_pmpm_cents(member_months, micro) == cents
    expr = pmpm_cents(ibis.literal(member_months, "int64"), ibis.literal(micro, "int64"))
    assert ibis.duckdb.connect().execute(expr) == cents
