"""The broken-input folder (tests/fixtures/bad_data): every case either stops the load with one
line naming the file and the problem, or quarantines exactly the broken rows with a specific rule
and message while the rest loads and the counts reconcile."""

from __future__ import annotations

import pytest

from allpayer.errors import InputFileError
from allpayer.inputs import load as loader

from .conftest import BAD_DATA, build_delivery, query

# case -> (file named in the error, text the error must contain)
FILE_ERRORS = {
    "empty_file": ("medical_claim.csv", "empty file: expected a header line naming the columns"),
    "missing_column": ("medical_claim.csv", "missing required column paid_amount for table medical_claim"),
    "wrong_encoding": ("eligibility.csv", "line 3 is not valid UTF-8 text: save the file as UTF-8"),
    "unterminated_quote": ("medical_claim.csv", "line 3: a quoted field is never closed (truncated file or stray double quote)"),
    "semicolon_delimited": ("provider_roster.csv", "for table provider_roster (is the file comma-separated?)"),
    "not_parquet": ("medical_claim.parquet", "not a readable Parquet file (Parquet magic bytes not found in footer"),
    "float_money": (
        "medical_claim.parquet",
        "column paid_amount has Parquet type DOUBLE; expected DECIMAL (at most 2 decimals), integer or text; floats are not exact",
    ),
    "corrupt_gzip": ("pharmacy_claim.csv.gz", "cannot be read (truncated or corrupt compressed file?)"),
    "duplicate_header": ("lab_result.csv", "the header names column result more than once"),
    "missing_table": ("", "missing required table provider_roster: expected provider_roster.csv"),
    "two_formats": ("medical_claim.parquet", "table medical_claim is delivered more than once (also medical_claim.csv)"),
}

# case -> {table: [(line, rules, message), ...]} : the quarantined rows, exactly
QUARANTINED = {
    "payer_files": {
        "payer_attribution": [
            (3, "month_start", "month 2024-02-15 is not the first day of a month"),
            (4, "code_format", "npi: '1234567890' is not a valid NPI (10 digits with a valid check digit)"),
            (
                5,
                "conflicting_duplicate",
                "same key (program_id, member_id, month) as payer_attribution.csv line 2 in this delivery, "
                "with different content",
            ),
        ],
        "payer_target": [
            (3, "money_format", "target_pmpm: '510.123' has fractions of a cent (more than 2 decimals)"),
            (4, "out_of_range", "member_months -3 is below 0"),
            (5, "required", "target_pmpm is required"),
        ],
        "voluntary_alignment": [
            (3, "date_order", "end_date 2023-03-01 is before designation_date 2023-09-01"),
            (4, "required", "npi is required"),
        ],
        "exclusion_event": [
            (3, "allowed_value", "reason: 'moved_away' is not one of death, lost_coverage, medicare_advantage, practice_left, other_coverage, aged_into_medicare, moved_out_of_area, no_part_a_or_b, medicare_secondary_payer, esrd, hospice, employer_opt_out"),
            (4, "date_order", "end_date 2024-07-01 is before event_date 2024-08-01"),
        ],
    },
    "bad_dates": {
        "medical_claim": [
            (3, "type_date", "claim_start_date: '2024-02-30' is not a date (YYYY-MM-DD)"),
            (4, "type_date", "claim_start_date: '02/05/2024' is not a date (YYYY-MM-DD)"),
            (5, "date_range", "paid_date: 1899-12-31 is outside 1900-01-01..2099-12-31"),
            (
                6,
                "date_order,date_order",
                "claim_end_date 2024-02-01 is before claim_start_date 2024-02-05; "
                "claim_line_end_date 2024-02-01 is before claim_line_start_date 2024-02-05",
            ),
            (7, "required", "claim_start_date is required"),
        ]
    },
    "wrong_types": {
        "medical_claim": [
            (3, "type_int", "claim_line_number: 'one' is not a whole number"),
            (4, "type_int", "adjustment_sequence: '1.5' is not a whole number"),
            (5, "type_bool", "substance_use_redacted: 'maybe' is not true or false"),
            (6, "out_of_range", "claim_line_number 0 is below 1"),
        ],
        "pharmacy_claim": [
            (3, "type_decimal", "quantity: 'abc' is not a number with at most 4 decimals"),
            (4, "type_int", "days_supply: '30 days' is not a whole number"),
            (5, "type_decimal", "quantity: '1.23456' is not a number with at most 4 decimals"),
        ],
    },
    "malformed_codes": {
        "medical_claim": [
            (3, "code_format", "diagnosis_code_1: 'XYZ' is not a valid ICD-10-CM code (e.g. E11.9 or E119)"),
            (4, "code_format", "rendering_npi: '1234567890' is not a valid NPI (10 digits with a valid check digit)"),
            (5, "code_format", "hcpcs_code: '9921' is not a valid HCPCS/CPT code (5 characters, e.g. 99213 or G0439)"),
            (6, "code_format", "billing_tin: '12345' is not a valid TIN (9 digits)"),
            (7, "code_format", "place_of_service_code: 'ABC' is not a valid place of service code (2 digits)"),
            (8, "code_format", "diagnosis_code_2: '250.00' is not a valid ICD-10-CM code (e.g. E11.9 or E119)"),
        ],
        "lab_result": [
            (3, "code_format", "normalized_code: '4548-5' is not a valid LOINC code (digits, hyphen, valid check digit, e.g. 4548-4)"),
            (4, "code_format", "normalized_code: '4548' is not a valid LOINC code (digits, hyphen, valid check digit, e.g. 4548-4)"),
        ],
        "pharmacy_claim": [
            (3, "code_format", "ndc_code: '1234-567-89' is not a valid NDC (11 digits, or 10 digits hyphenated)"),
        ],
    },
    "bad_amounts": {
        "medical_claim": [
            (3, "negative_amount", "paid_amount is negative (-10.00) on an original line (adjustment_sequence 0)"),
            (4, "money_format", "paid_amount: '12.5O' is not an amount in dollars"),
            (5, "money_format", "paid_amount: '$12.00' is not an amount in dollars"),
            (6, "money_format", "allowed_amount: '1,200.00' is not an amount in dollars"),
            (7, "money_format", "paid_amount: '12.345' has fractions of a cent (more than 2 decimals)"),
            (8, "shadow_claim_paid", "paid_amount 100.00 on a shadow claim (payment_arrangement fpp) must be 0"),
            (10, "required", "allowed_amount is required"),
        ]
    },
    "truncated_csv": {
        "medical_claim": [(4, "malformed_row", "expected 31 fields, found 9 (truncated or malformed row)")],
    },
    "ragged_rows": {
        "eligibility": [
            (3, "malformed_row", "expected 14 fields, found 15 (unquoted comma or malformed row)"),
            (4, "malformed_row", "expected 14 fields, found 5 (truncated or malformed row)"),
        ]
    },
    "duplicates": {
        "medical_claim": [
            (3, "duplicate_row", "exact copy of medical_claim.csv line 2"),
            (
                5,
                "conflicting_duplicate",
                "same key (claim_id, claim_line_number, adjustment_sequence) as medical_claim.csv line 4 "
                "in this delivery, with different content",
            ),
        ]
    },
    "missing_values": {
        "eligibility": [
            (3, "required", "member_id is required"),
            (4, "required", "birth_date is required"),
            (5, "allowed_value", "gender: 'M' is not one of male, female, unknown"),
            (6, "allowed_value", "payer_type: 'private' is not one of medicare, medicaid, commercial, self_funded"),
        ]
    },
}


def test_every_fixture_case_is_asserted():
    cases = {p.name for p in BAD_DATA.iterdir() if p.is_dir()} - {"base", "header_only"}
    assert cases == set(FILE_ERRORS) | set(QUARANTINED)


@pytest.mark.parametrize("case", sorted(FILE_ERRORS))
def test_unreadable_input_stops_the_load_with_one_line(tmp_path, case):
    folder = build_delivery(tmp_path / "in", case, only_required=True)
    db = tmp_path / "a.duckdb"
    expected_file, expected_text = FILE_ERRORS[case]
    with pytest.raises(InputFileError) as err:
        loader.load_folder(folder, db)
    message = str(err.value)
    assert "\n" not in message
    assert err.value.path == str(folder / expected_file).rstrip("/")
    assert message.startswith(err.value.path + ": ")
    assert expected_text in message
    assert not db.exists()  # nothing published


@pytest.mark.parametrize("case", sorted(QUARANTINED))
def test_broken_rows_are_quarantined_with_their_rule(tmp_path, case):
    folder = build_delivery(tmp_path / "in", case, only_required=True)
    db = tmp_path / "a.duckdb"
    result = loader.load_folder(folder, db)
    expected = QUARANTINED[case]
    for t in result.tables:
        assert t.reconciles, t
        assert t.quarantined == len(expected.get(t.table, [])), t.table
    got = query(
        db,
        "SELECT table_name, line_number, rules, message, source_file, raw_row FROM quarantine ORDER BY table_name, line_number",
    )
    assert {(r[0], r[1], r[2], r[3]) for r in got} == {
        (table, line, rules, message) for table, rows in expected.items() for line, rules, message in rows
    }
    assert all(r[4] == f"{r[0]}.csv" and r[5].startswith("{") for r in got)
    # the loaded rows are exactly the others
    for t in result.tables:
        assert t.loaded + t.already_loaded == t.read - t.quarantined
        loaded_lines = {r[0] for r in query(db, f"SELECT line_number FROM {t.table}")}
        assert not loaded_lines & {line for line, _, _ in expected.get(t.table, [])}


def test_a_header_only_file_is_no_data_not_an_error(tmp_path):
    result = loader.load_folder(build_delivery(tmp_path / "in", "header_only"), tmp_path / "a.duckdb")
    assert (result.table("medical_claim").read, result.table("medical_claim").loaded) == (0, 0)
    assert result.table("eligibility").loaded == 4
