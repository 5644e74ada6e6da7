import datetime as dt
from decimal import Decimal

import ibis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def reference_net(rows):
    """The adjustment convention worked out row by row: per line, amounts summed, descriptive
    columns from the row with the highest sequence (missing counts as 0), rows without a key left out."""
    by_line = {}
    for r in rows:
        if r["claim_id"] is None or r["claim_line_number"] is None:
            continue
        by_line.setdefault((r["claim_id"], r["claim_line_number"]), []).append(r)
    out = {}
    for k, rs in by_line.items():
        latest = max(rs, key=lambda r: r["adjustment_sequence"] or 0)
        out[k] = {
            "hcpcs_code": latest["hcpcs_code"],
            "paid_cents": int(sum(Decimal(r["paid_amount"]) for r in rs) * 100),
            "allowed_cents": int(sum(Decimal(r["allowed_amount"]) for r in rs) * 100),
            "adjustment_rows": len(rs),
            "first_paid_date": min(r["paid_date"] for r in rs), "last_paid_date": max(r["paid_date"] for r in rs),
        }
    return out


def test_lines_delivered_once_adjusted_reversed_or_only_as_an_adjustment_net_as_the_convention_says():
    rows = [
        # delivered once
        dict(claim_id="A", claim_line_number=1, paid_date=D(2024, 3, 1), paid_amount="10.00", allowed_amount="12.00"),
        # no sequence given (the original), then two adjustments: the latest carries the codes
        dict(claim_id="B", claim_line_number=1, adjustment_sequence=None, paid_date=D(2024, 3, 1),
             paid_amount="50.00", allowed_amount="60.00", hcpcs_code="99213"),
        dict(claim_id="B", claim_line_number=1, adjustment_sequence=2, paid_date=D(2024, 5, 1),
             paid_amount="5.00", allowed_amount="5.00", hcpcs_code="99215"),
        dict(claim_id="B", claim_line_number=1, adjustment_sequence=1, paid_date=D(2024, 4, 1),
             paid_amount="-10.00", allowed_amount="-10.00", hcpcs_code="99214"),
        # reversed to nothing
        dict(claim_id="C", claim_line_number=1, paid_date=D(2024, 3, 1), paid_amount="80.00", allowed_amount="80.00"),
        dict(claim_id="C", claim_line_number=1, adjustment_sequence=1, paid_date=D(2024, 3, 9),
             paid_amount="-80.00", allowed_amount="-80.00"),
        # only an adjustment row is present (its original was never delivered)
        dict(claim_id="D", claim_line_number=3, adjustment_sequence=4, paid_date=D(2024, 6, 1),
             paid_amount="7.25", allowed_amount="7.25", hcpcs_code="G0439"),
        # another line of an adjusted claim, delivered once; and a row with no claim id
        dict(claim_id="B", claim_line_number=2, paid_date=D(2024, 3, 1), paid_amount="1.10", allowed_amount="1.10"),
        dict(claim_id=None, claim_line_number=1, paid_date=D(2024, 3, 1), paid_amount="9.00", allowed_amount="9.00"),
    ]
    t = claims(rows)
    got = lines(t)
    want = reference_net([dict(r, **{k: v for k, v in dict(claim_type="professional", hcpcs_code="99213",
                                                               adjustment_sequence=0).items() if k not in r})
                          for r in rows])
    assert set(got) == set(want)
    for k, w in want.items():
        g = got[k]
        for c in ("hcpcs_code", "paid_cents", "allowed_cents", "adjustment_rows", "first_paid_date", "last_paid_date"):
            assert g[c] == w[c], (k, c)
    assert got["B", 1]["hcpcs_code"] == "99215" and got["B", 1]["paid_cents"] == 4500
    assert got["C", 1]["paid_cents"] == 0 and got["D", 3]["adjustment_rows"] == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["C1", "C2", "C3"]), st.integers(1, 3), st.integers(0, 3),
                          st.integers(-5000, 5000), st.integers(1, 28)),
                min_size=1, max_size=25, unique_by=lambda r: r[:3]))
def test_netting_equals_the_convention_worked_out_row_by_row(spec):
    rows = [dict(claim_id=c, claim_line_number=n, adjustment_sequence=s, paid_date=D(2024, 4, day),
                 paid_amount=str(Decimal(cents) / 100), allowed_amount=str(Decimal(cents) / 100),
                 hcpcs_code=f"9921{s}") for c, n, s, cents, day in spec]
    got = lines(claims(rows))
    want = reference_net(rows)
    assert set(got) == set(want)
    for k, w in want.items():
        assert {c: got[k][c] for c in w} == w


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["C1", "C2", "C3"]), st.integers(1, 2), st.integers(0, 2),
                          st.integers(-5000, 5000), st.sampled_from(["medicare", "medicaid"]), st.integers(1, 28)),
                min_size=1, max_size=20, unique_by=lambda r: r[:3]),
       st.sampled_from([None, D(2024, 4, 14)]))
def test_a_payers_lines_netted_with_sums_computed_once_for_every_payer(spec, paid_through):
    """The quality stage nets each payer's lines with the adjusted lines' sums computed once over
    every payer's rows (`adjusted_line_sums`): a payer's line is then netted exactly as when all
    rows are netted together and the payer's lines picked afterwards, also for a line whose rows
    name different payers."""
    from allpayer.core.claims import adjusted_line_sums, claims_as_of

    rows = [dict(claim_id=c, claim_line_number=n, adjustment_sequence=s, paid_date=D(2024, 4, day),
                 paid_amount=str(Decimal(cents) / 100), allowed_amount=str(Decimal(cents) / 100),
                 payer=payer, hcpcs_code=f"9921{s}") for c, n, s, cents, payer, day in spec]
    t = claims(rows)
    whole = lines(t, paid_through)
    sums = adjusted_line_sums(claims_as_of(t, paid_through))
    con = ibis.duckdb.connect()
    for payer in ("medicare", "medicaid"):
        got = con.to_pyarrow(medical_claim_lines(t, paid_through, sums=sums).filter(lambda x: x.payer == payer))
        got = {(r["claim_id"], r["claim_line_number"]): r for r in got.to_pylist()}
        assert got == {k: r for k, r in whole.items() if r["payer"] == payer}


def test_empty_columns_are_those_without_a_value_in_any_row(tmp_path):
    """One value in one row keeps a column; NULLs in every row (or no rows) make it empty. On a
    stored DuckDB table too, whose empty columns are answered from segment statistics."""
    from allpayer.core.claims import OPTIONAL_CODE_COLUMNS, empty_columns

    schema = ibis.schema({"claim_id": "string", "diagnosis_code_1": "string", "diagnosis_code_2": "string",
                          "diagnosis_code_3": "string", "procedure_code_1": "string"})
    data = {"claim_id": ["C1", "C2", "C3"], "diagnosis_code_1": ["E119", "I10", None],
            "diagnosis_code_2": [None, None, "Z794"], "diagnosis_code_3": [None, None, None],
            "procedure_code_1": [None, None, None]}
    t = ibis.memtable(data, schema=schema)
    assert "diagnosis_code_1" not in OPTIONAL_CODE_COLUMNS  # the principal diagnosis is always read
    assert empty_columns(t, OPTIONAL_CODE_COLUMNS) == ("diagnosis_code_3", "procedure_code_1")
    assert empty_columns(t, ["diagnosis_code_2", "not_a_column"]) == ()
    assert empty_columns(t, []) == ()
    assert empty_columns(t.limit(0), ["diagnosis_code_2"]) == ("diagnosis_code_2",)
    con = ibis.duckdb.connect(tmp_path / "c.duckdb")
    big = con.create_table("mc", ibis.memtable(
        {c: v * 50_000 for c, v in data.items()}, schema=schema))  # several row groups
    assert empty_columns(big, OPTIONAL_CODE_COLUMNS) == ("diagnosis_code_3", "procedure_code_1")
    con.disconnect()


def reference_category(claim_type, bill, rev, pos, hcpcs):
    """The module's rules worked out in Python: first match wins."""
    bill = bill or ""
    fac = (bill[1:4] if len(bill) == 4 else bill)[:2]
    institutional = claim_type == "institutional"
    ed = (rev or "").startswith("045") or pos == "23" or (hcpcs or "") in ("99281", "99282", "99283", "99284", "99285")
    for codes, category in ((("11", "12"), "inpatient"), (("21", "22"), "snf"), (("32", "33", "34"), "home_health"),
                            (("81", "82"), "hospice")):
        if institutional and fac in codes:
            return category
    if ed:
        return "ed"
    if institutional:
        return "outpatient"
    return "dme" if claim_type == "dme" else "professional"


def test_service_category_of_every_combination_follows_the_rules():
    import itertools

    from allpayer.core.claims import service_category

    combos = list(itertools.product(
        ["institutional", "professional", "dme", None],
        ["111", "0121", "211", "0221", "321", "331", "341", "811", "0821", "131", "1", "", None],
        ["0450", "0459", "0120", None],
        ["23", "11", None],
        ["99283", "99213", None],
    ))
    names = ("claim_type", "bill_type_code", "revenue_center_code", "place_of_service_code", "hcpcs_code")
    t = ibis.memtable({n: [c[i] for c in combos] for i, n in enumerate(names)},
                      schema={n: "string" for n in names})
    got = ibis.duckdb.connect().to_pyarrow(t.select(*names, category=service_category(t))).to_pylist()
    assert len(got) == len(combos)
    for r in got:
        assert r["category"] == reference_category(*(r[n] for n in names)), r
