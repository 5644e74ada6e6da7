"""Deliberate errors for testing validation (`--inject-errors RATE`).

A share `rate` of the rows of every table is made bad, one error per bad row, the kind drawn
among those that apply to the table:

- ``bad_date``: a required date that is not a date (``2023-02-30``);
- ``malformed_code``: a code that breaks its format (an ICD-10-CM code with punctuation, a
  9-digit NPI, an NDC with a letter, a LOINC code with a letter);
- ``negative_amount``: a negative allowed amount on an original line (adjustment_sequence 0);
- ``non_numeric_amount``: a money value that is not a number (``n/a``);
- ``missing_required_key``: a key column left empty;
- ``conflicting_duplicate_line``: an extra copy of a row with the same key and different
  content (the original row stays valid; the copy is counted as the bad row).

Bad values need text columns, so a run with errors writes date, money and quantity columns as
text in Parquet too (CSV is text anyway). Every bad row is listed in ``injected_errors.csv``
(table, row number in the table's file counting from 0, kind, column) and counted in the manifest.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from allpayer.inputs.schema import TABLES

KINDS = (
    "bad_date",
    "malformed_code",
    "negative_amount",
    "non_numeric_amount",
    "missing_required_key",
    "conflicting_duplicate_line",
)

# Per table: the column each kind breaks, and how (None = the kind does not apply).
TARGETS: dict[str, dict[str, tuple[str, str] | None]] = {
    "eligibility": {
        "bad_date": ("enrollment_start_date", "2023-02-30"),
        "missing_required_key": ("member_id", None),
        "conflicting_duplicate_line": ("gender", "flip"),
    },
    "medical_claim": {
        "bad_date": ("claim_start_date", "2023-02-30"),
        "malformed_code": ("diagnosis_code_1", "E11.9!"),
        "negative_amount": ("allowed_amount", "-125.00"),
        "non_numeric_amount": ("paid_amount", "n/a"),
        "missing_required_key": ("claim_id", None),
        "conflicting_duplicate_line": ("allowed_amount", "plus_one_dollar"),
    },
    "pharmacy_claim": {
        "bad_date": ("dispensing_date", "2023-02-30"),
        "malformed_code": ("ndc_code", "12345-678-9A"),
        "negative_amount": ("allowed_amount", "-42.00"),
        "non_numeric_amount": ("paid_amount", "n/a"),
        "missing_required_key": ("claim_id", None),
        "conflicting_duplicate_line": ("allowed_amount", "plus_one_dollar"),
    },
    "lab_result": {
        "bad_date": ("result_date", "2023-02-30"),
        "malformed_code": ("normalized_code", "4548-X"),
        "missing_required_key": ("lab_result_id", None),
        "conflicting_duplicate_line": ("result", "prefix1"),
    },
    "observation": {
        "bad_date": ("observation_date", "2023-02-30"),
        "malformed_code": ("normalized_code", "8480-X"),
        "missing_required_key": ("observation_id", None),
        "conflicting_duplicate_line": ("result", "prefix1"),
    },
    "provider_roster": {
        "bad_date": ("effective_start_date", "2023-02-30"),
        "malformed_code": ("npi", "123456789"),
        "missing_required_key": ("npi", None),
        "conflicting_duplicate_line": ("provider_name", "suffix"),
    },
    "employer_group": {
        "bad_date": ("effective_start_date", "2023-02-30"),
        "missing_required_key": ("group_id", None),
        "conflicting_duplicate_line": ("employer_name", "suffix"),
    },
}

TEXT_KINDS = ("date", "money", "decimal")


def as_text(table: pa.Table, name: str) -> pa.Table:
    """Dates, money and quantities as text (ISO dates, plain decimals), dictionaries decoded."""
    spec = TABLES[name]
    cols = []
    for field, col in zip(table.schema, table.columns):
        kind = spec.column(field.name).kind
        if pa.types.is_dictionary(col.type) or kind in TEXT_KINDS:
            col = col.cast(pa.string())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def _set(col: pa.ChunkedArray, mask: np.ndarray, value: str | None) -> pa.ChunkedArray:
    m = pa.array(mask)
    return pc.if_else(m, pa.scalar(value, col.type), col)


def _changed(col: pa.Array, how: str) -> pa.Array:
    if how == "flip":
        return pc.if_else(pc.equal(col, "female"), pa.scalar("male"), pa.scalar("female"))
    if how == "plus_one_dollar":
        money = pa.decimal128(18, 2)
        return pc.add(col.cast(money), pa.scalar(1, money)).cast(money).cast(pa.string())
    if how == "prefix1":
        return pc.binary_join_element_wise(pa.scalar("1"), col, "")
    if how == "suffix":
        return pc.binary_join_element_wise(col, pa.scalar(" (duplicate)"), "")
    raise ValueError(how)


def inject(table: pa.Table, name: str, rate: float, rng: np.random.Generator, row_offset: int):
    """Corrupt about `rate` of the rows of a text-mode table.

    Returns the new table and a list of (row number in the file, kind, column) for each bad row.
    """
    n = table.num_rows
    targets = {k: v for k, v in TARGETS.get(name, {}).items() if v is not None}
    n_bad = int(np.floor(rate * n + rng.random()))
    if n_bad == 0 or not targets:
        return table, []
    kinds = list(targets)
    # rows eligible per kind: negative amounts only on original lines
    eligible_neg = None
    if "adjustment_sequence" in table.column_names:
        eligible_neg = np.asarray(table.column("adjustment_sequence").to_numpy(zero_copy_only=False)) == 0
    rows = rng.choice(n, size=min(n_bad, n), replace=False)
    rows.sort()
    kind_of = rng.integers(0, len(kinds), size=len(rows))
    if eligible_neg is not None and "negative_amount" in kinds:
        neg = kinds.index("negative_amount")
        bad = (kind_of == neg) & ~eligible_neg[rows]
        kind_of[bad] = kinds.index("non_numeric_amount")
    report: list[tuple[int, str, str]] = []
    cols = {c: table.column(c) for c in table.column_names}
    dup_rows = rows[np.array([kinds[k] == "conflicting_duplicate_line" for k in kind_of], dtype=bool)]
    for ki, kind in enumerate(kinds):
        if kind == "conflicting_duplicate_line":
            continue
        sel = rows[kind_of == ki]
        if len(sel) == 0:
            continue
        col, value = targets[kind]
        mask = np.zeros(n, dtype=bool)
        mask[sel] = True
        cols[col] = _set(cols[col], mask, value)
        report += [(row_offset + int(r), kind, col) for r in sel]
    out = pa.table(cols)
    if len(dup_rows):
        col, how = targets["conflicting_duplicate_line"]
        dups = table.take(pa.array(dup_rows))
        i = dups.column_names.index(col)
        dups = dups.set_column(i, col, _changed(dups.column(col).combine_chunks(), how))
        out = pa.concat_tables([out, dups.cast(out.schema)])
        report += [(row_offset + n + j, "conflicting_duplicate_line", col) for j in range(len(dup_rows))]
    return out, report
