import datetime as dt
from decimal import Decimal

import ibis
import pytest

from allpayer.core.claims import medical_claim_lines

D = dt.date
COLS = {
    "claim_id": "string", "claim_line_number": "int64", "adjustment_sequence": "int64", "claim_type": "string",
    "person_id": "string", "member_id": "string", "payer": "string", "plan": "string",
    "claim_start_date": "date", "claim_end_date": "date", "claim_line_start_date": "date",
    "bill_type_code": "string", "revenue_center_code": "string", "place_of_service_code": "string",
    "hcpcs_code": "string", "rendering_npi": "string", "paid_date": "date",
    "paid_amount": "decimal(18, 2)", "allowed_amount": "decimal(18, 2)", "claim_status": "string",
}


def claims(rows):
    base = dict(claim_type="professional", person_id="P1", member_id="M1", payer="medicaid", plan="vmng",
                claim_start_date=D(2024, 3, 5), claim_end_date=D(2024, 3, 5), claim_line_start_date=None,
                bill_type_code=None, revenue_center_code=None, place_of_service_code="11", hcpcs_code="99213",
                rendering_npi="1234567893", adjustment_sequence=0, claim_status="paid")
    rows = [dict(base, **r) for r in rows]
    for r in rows:
        r["paid_amount"] = Decimal(r["paid_amount"])
        r["allowed_amount"] = Decimal(r["allowed_amount"])
    return ibis.memtable({c: [r.get(c) for r in rows] for c in COLS}, schema=ibis.schema(COLS))


def lines(table, paid_through=None):
    con = ibis.duckdb.connect()
    out = con.to_pyarrow(medical_claim_lines(table, paid_through)).to_pylist()
    return {(r["claim_id"], r["claim_line_number"]): r for r in out}


def test_adjustment_rows_net_by_claim_line_in_cents():
    t = claims([
        dict(claim_id="C1", claim_line_number=1, paid_date=D(2024, 3, 20), paid_amount="100.10", allowed_amount="120.15"),
        dict(claim_id="C1", claim_line_number=1, adjustment_sequence=1, paid_date=D(2024, 4, 20),
             paid_amount="-20.05", allowed_amount="-20.05", hcpcs_code="99214"),
        dict(claim_id="C1", claim_line_number=2, paid_date=D(2024, 3, 20), paid_amount="5.00", allowed_amount="5.00"),
    ])
    out = lines(t)
    assert out["C1", 1]["paid_cents"] == 8005 and out["C1", 1]["allowed_cents"] == 10010
    assert out["C1", 1]["hcpcs_code"] == "99214"  # descriptive columns from the latest row
    assert out["C1", 1]["adjustment_rows"] == 2
    assert out["C1", 2]["paid_cents"] == 500


def test_paid_through_cutoff_ignores_later_adjustments():
    t = claims([
        dict(claim_id="C1", claim_line_number=1, paid_date=D(2024, 3, 20), paid_amount="100.00", allowed_amount="100.00"),
        dict(claim_id="C1", claim_line_number=1, adjustment_sequence=1, paid_date=D(2024, 5, 1),
             paid_amount="-100.00", allowed_amount="-100.00"),
        dict(claim_id="C2", claim_line_number=1, paid_date=D(2024, 6, 1), paid_amount="7.00", allowed_amount="7.00"),
    ])
    out = lines(t, D(2024, 4, 30))
    assert set(out) == {("C1", 1)} and out["C1", 1]["paid_cents"] == 10000
    assert lines(t)["C1", 1]["paid_cents"] == 0


@pytest.mark.parametrize(
    "row,category",
    [
        (dict(claim_type="institutional", bill_type_code="111", revenue_center_code="0120", place_of_service_code=None), "inpatient"),
        (dict(claim_type="institutional", bill_type_code="0131", revenue_center_code="0450", place_of_service_code=None), "ed"),
        (dict(claim_type="institutional", bill_type_code="131", revenue_center_code="0300", place_of_service_code=None), "outpatient"),
        (dict(claim_type="institutional", bill_type_code="211", revenue_center_code="0100", place_of_service_code=None), "snf"),
        (dict(hcpcs_code="99284", place_of_service_code="23"), "ed"),
        (dict(hcpcs_code="99213"), "professional"),
        (dict(claim_type="dme", hcpcs_code="E0601"), "dme"),
    ],
)
def test_service_category(row, category):
    t = claims([dict(claim_id="C", claim_line_number=1, paid_date=D(2024, 3, 9), paid_amount="1", allowed_amount="1", **row)])
    assert lines(t)["C", 1]["service_category"] == category
