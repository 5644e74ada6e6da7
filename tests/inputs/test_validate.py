"""Validation rules, one at a time, on small staged tables (text columns as a reader stages them)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import pytest

from allpayer.inputs import validate
from allpayer.inputs.schema import TABLES

CON = ibis.duckdb.connect()

GOOD_CLAIM = dict(
    claim_id="C1", claim_line_number="1", adjustment_sequence="0", claim_type="professional",
    person_id="P1", member_id="M1", payer="medicaid", plan="vmng",
    claim_start_date="2024-02-05", claim_end_date="2024-02-05", paid_date="2024-02-20",
    paid_amount="92.50", allowed_amount="92.50", diagnosis_code_1="E11.9", hcpcs_code="99213",
    rendering_npi="1234567893", payment_arrangement="ffs", data_source="test",
)


def staged(table: str, rows: list[dict]) -> ibis.Table:
    spec = TABLES[table]
    data = {c: [r.get(c) for r in rows] for c in spec.column_names}
    data["source_file"] = ["f.csv"] * len(rows)
    data["line_number"] = list(range(2, len(rows) + 2))
    schema = {**{c: "string" for c in spec.column_names}, "source_file": "string", "line_number": "int64"}
    return ibis.memtable(data, schema=schema)


def _clean(v):
    return v if isinstance(v, str) else None


def checked(table: str, rows: list[dict]) -> ibis.Table:
    """Validate staged rows, storing each step as a temporary table (as the loader does)."""
    counter = iter(range(1000))
    return validate.validate(
        staged(table, rows), TABLES[table], materialize=lambda e: CON.create_table(f"_step{next(counter)}", e, temp=True, overwrite=True)
    )


def run(table: str, rows: list[dict]):
    """The validated rows (a DataFrame in input order)."""
    return CON.execute(checked(table, rows).order_by("line_number"))


def verdicts(table: str, rows: list[dict]):
    """(rules, message) per row, in order."""
    out = run(table, rows)
    return [(_clean(r), _clean(m)) for r, m in zip(out.rules, out.message)]


def claim(**changes) -> dict:
    return {**GOOD_CLAIM, **changes}


def test_a_valid_row_passes_with_typed_values(claims):
    row = extra(claims, 0)
    assert _clean(row.rules) is None and _clean(row.message) is None and _clean(row.rule) is None
    assert row.paid_amount == Decimal("92.50")
    assert row.claim_start_date.date() == dt.date(2024, 2, 5)
    assert row.claim_line_number == 1
    assert row.diagnosis_code_1 == "E119"  # normalized: dot removed


CASES = [
        ({"claim_id": "  "}, "required", "claim_id is required"),
        ({"claim_start_date": "2024-02-30"}, "type_date", "claim_start_date: '2024-02-30' is not a date (YYYY-MM-DD)"),
        ({"paid_date": "20240220"}, "type_date", "paid_date: '20240220' is not a date (YYYY-MM-DD)"),
        ({"paid_date": "2100-01-01"}, "date_range", "paid_date: 2100-01-01 is outside 1900-01-01..2099-12-31"),
        (
            {"claim_end_date": "2024-02-04"},
            "date_order",
            "claim_end_date 2024-02-04 is before claim_start_date 2024-02-05",
        ),
        ({"claim_line_number": "1.0"}, "type_int", "claim_line_number: '1.0' is not a whole number"),
        ({"claim_line_number": "0"}, "out_of_range", "claim_line_number 0 is below 1"),
        ({"adjustment_sequence": "-1"}, "out_of_range", "adjustment_sequence -1 is below 0"),
        ({"paid_amount": "1e3"}, "money_format", "paid_amount: '1e3' is not an amount in dollars"),
        ({"paid_amount": "92.505"}, "money_format", "paid_amount: '92.505' has fractions of a cent (more than 2 decimals)"),
        ({"paid_amount": "-1.00"}, "negative_amount", "paid_amount is negative (-1.00) on an original line (adjustment_sequence 0)"),
        ({"claim_type": "dental"}, "allowed_value", "claim_type: 'dental' is not one of professional, institutional, dme"),
        ({"rendering_npi": "1234567894"}, "code_format", "rendering_npi: '1234567894' is not a valid NPI (10 digits with a valid check digit)"),
        ({"in_network_flag": "maybe"}, "type_bool", "in_network_flag: 'maybe' is not true or false"),
        ({"service_unit_quantity": "1.00001"}, "type_decimal", "service_unit_quantity: '1.00001' is not a number with at most 4 decimals"),
        (
            {"payment_arrangement": "capitated", "paid_amount": "5.00"},
            "shadow_claim_paid",
            "paid_amount 5.00 on a shadow claim (payment_arrangement capitated) must be 0",
        ),
]

EXTRA = [
    claim(),  # valid
    claim(claim_id="", paid_amount="x", hcpcs_code="123"),  # several failures
    claim(adjustment_sequence="1", paid_amount="-92.50", allowed_amount="-92.50"),  # a reversal
    claim(adjustment_sequence=None),  # the original line by default
    claim(paid_amount="+92.500", allowed_amount=".5", in_network_flag="Y", claim_type="Professional",
          place_of_service_code="2", billing_tin="12-3456789"),  # accepted spellings
    claim(paid_amount="9" * 30 + "x" * 30),  # a long value
    claim(paid_amount="92.5"),  # same typed content as the valid row
    claim(paid_amount="92.51"),
    claim(diagnosis_code_1="e119"),
]


@pytest.fixture(scope="module")
def claims():
    """All medical-claim test rows validated in one pass: the parametrized cases, then EXTRA."""
    rows = [claim(**changes) for changes, _, _ in CASES] + EXTRA
    t = checked("medical_claim", rows)
    return CON.execute(t.order_by("line_number"))


def extra(claims, i):
    return claims.iloc[len(CASES) + i]


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[1] + "-" + next(iter(c[0])) for c in CASES])
def test_each_rule_names_itself_and_quotes_the_value(claims, case):
    _, rules, message = CASES[case]
    row = claims.iloc[case]
    assert (_clean(row.rules), _clean(row.message)) == (rules, message)
    assert _clean(row.rule) == rules.split(",")[0]


def test_every_failing_rule_is_listed_in_column_order(claims):
    row = extra(claims, 1)
    rules, message = row.rules, row.message
    assert rules == "required,code_format,money_format"
    assert message == (
        "claim_id is required; hcpcs_code: '123' is not a valid HCPCS/CPT code (5 characters, e.g. 99213 or G0439); "
        "paid_amount: 'x' is not an amount in dollars"
    )


def test_adjustment_rows_may_carry_negative_amounts(claims):
    row = extra(claims, 2)
    assert _clean(row.rules) is None
    assert row.paid_amount == Decimal("-92.50")


def test_a_missing_adjustment_sequence_means_the_original_line(claims):
    row = extra(claims, 3)
    assert row.adjustment_sequence == 0
    assert _clean(row.rules) is None


def test_accepted_spellings_are_normalized(claims):
    row = extra(claims, 4)
    assert _clean(row.rules) is None
    assert (row.paid_amount, row.allowed_amount) == (Decimal("92.50"), Decimal("0.50"))
    assert bool(row.in_network_flag) is True
    assert (row.claim_type, row.place_of_service_code, row.billing_tin) == ("professional", "02", "123456789")


def test_eligibility_rules():
    good = dict(person_id="P1", member_id="M1", gender="female", birth_date="1950-03-02",
                enrollment_start_date="2024-01-01", enrollment_end_date="2024-12-31", payer="medicare",
                payer_type="medicare", plan="medicare_ffs", data_sharing_opt_out="false", data_source="cms")
    rows = [
        good,
        {**good, "birth_date": None},
        {**good, "enrollment_end_date": "2023-12-31"},
        {**good, "death_date": "1949-01-01"},
        {**good, "data_sharing_opt_out": "opted"},
    ]
    assert verdicts("eligibility", rows) == [
        (None, None),
        ("required", "birth_date is required"),
        ("date_order", "enrollment_end_date 2023-12-31 is before enrollment_start_date 2024-01-01"),
        ("date_order", "death_date 1949-01-01 is before birth_date 1950-03-02"),
        ("type_bool", "data_sharing_opt_out: 'opted' is not true or false"),
    ]


def test_lab_result_loinc_check_digit():
    good = dict(lab_result_id="L1", person_id="P1", normalized_code="4548-4", result="7.2",
                result_date="2024-03-01", data_source="lab")
    assert verdicts("lab_result", [good, {**good, "lab_result_id": "L2", "normalized_code": "4548-3"}]) == [
        (None, None),
        ("code_format", "normalized_code: '4548-3' is not a valid LOINC code (digits, hyphen, valid check digit, e.g. 4548-4)"),
    ]


def test_long_values_are_cut_in_messages(claims):
    row = extra(claims, 5)
    rules, message = row.rules, row.message
    assert rules == "money_format"
    assert message == "paid_amount: '" + "9" * 30 + "x" * 10 + "' is not an amount in dollars"


def test_respellings_parse_to_the_same_typed_content(claims):
    """What the loader compares when a key repeats (`allpayer.inputs.load.decide`)."""
    first, same_amount, other_amount, same_code = (extra(claims, i) for i in (0, 6, 7, 8))
    assert same_amount.paid_amount == first.paid_amount == Decimal("92.50")  # 92.5 = 92.50
    assert other_amount.paid_amount != first.paid_amount
    assert same_code.diagnosis_code_1 == first.diagnosis_code_1 == "E119"  # e119 = E11.9 once normalized


def test_a_dme_line_may_lack_a_diagnosis_but_other_lines_may_not():
    # Medicare's DME claim file (CCLF6) carries no diagnosis: such lines load; a professional or
    # institutional line without one is still quarantined.
    rows = [
        claim(claim_type="dme", diagnosis_code_1=None, hcpcs_code="E0601"),
        claim(claim_type="DME ", diagnosis_code_1=None, hcpcs_code="E0601"),
        claim(claim_type="professional", diagnosis_code_1=None),
        claim(claim_type="institutional", diagnosis_code_1=None, bill_type_code="131", revenue_center_code="0450"),
    ]
    got = verdicts("medical_claim", rows)
    assert got[0] == (None, None)
    assert got[1] == (None, None)
    assert got[2] == ("required", "diagnosis_code_1 is required (except where claim_type is dme)")
    assert got[3][0].split(",")[0] == "required"


def test_spaces_around_a_value_are_trimmed_and_other_padding_is_kept():
    """`validate.trimmed`: a value beginning or ending with a space loses the spaces around it
    (whatever else they are); one padded only with a no-break space keeps it, so a code so padded
    fails its format and its row is quarantined with the value quoted."""
    nbsp = "\u00a0"
    rows = [
        claim(claim_id=" C1 ", diagnosis_code_1="E11.9  ", plan=" vmng"),
        claim(claim_id="C2", person_id=f" {nbsp}P1"),
        claim(claim_id="C3", diagnosis_code_1=f"{nbsp}E11.9"),
        claim(claim_id="C4", payer="   ", member_id=""),
    ]
    out = run("medical_claim", rows)
    assert list(out.claim_id) == ["C1", "C2", "C3", "C4"]
    assert out.diagnosis_code_1[0] == "E119" and out.plan[0] == "vmng" and _clean(out.rules[0]) is None
    # begun with a space, so trimmed: DuckDB's trim takes the no-break space after it too
    assert out.person_id[1] == "P1" and _clean(out.rules[1]) is None
    assert out.rules[2] == "code_format" and f"'{nbsp}E11.9'" in out.message[2]
    assert out.rules[3] == "required,required"
    assert out.message[3] == "member_id is required; payer is required"
