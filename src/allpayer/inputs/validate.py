"""Validation: vectorized Ibis checks that type every staged row or say why it cannot be loaded.

Four steps, each a projection of the whole table: `clean` trims the staged text (empty text is
NULL); `parse` casts each column to its kind and normalizes codes and enumerations; `check`
evaluates every rule (a flag per check, true where it fails); `verdict` folds the flags into the
list of failing rules and their messages, written only for the rows that fail. A row that fails
any rule is quarantined with all its failing rules (``rules``), the first of them (``rule``) and
one message per failure (``message``). The loader compares the typed content of valid rows
whose key repeats or is already stored (`allpayer.inputs.load.decide`), which tells an identical
re-delivery from a conflicting one.

Rules (ids are stable and appear in the quarantine table):

==================== ==========================================================================
malformed_row        CSV row that does not split into the header's columns (from the reader)
required             a required column (or a key column) is empty
type_int             not a whole number
type_decimal         not a number, or more than 4 decimals
type_date            not an ISO date YYYY-MM-DD (or not a real calendar date)
type_bool            not true/false (1/0, yes/no, y/n, t/f are accepted)
money_format         not an amount in dollars with at most 2 decimals (no currency signs,
                     no thousands separators, no exponents)
date_range           a date outside 1900-01-01 .. 2099-12-31
date_order           an end date before its start date
allowed_value        a value outside the column's allowed list (compared case-insensitively)
code_format          a code that does not match its format or fails its check digit
negative_amount      a negative amount on a row that is not an adjustment (adjustment_sequence 0),
                     but for the columns (and lines) a format's originals may carry negative
                     (`NegativeOriginals`: a CCLF delivery's paid amounts and claim-level lines)
out_of_range         claim_line_number < 1; adjustment_sequence, days_supply or refills < 0;
                     a column marked non-negative below 0
shadow_claim_paid    a shadow claim (payment_arrangement other than ffs) with paid_amount not 0
                     on its original line
duplicate_row        an exact copy of another row of the same delivery (the first is kept)
conflicting_duplicate same key as another row of the delivery, or as a loaded row, with
                     different content
non_numeric_result   lab_result: a result that is not a number (at most 4 decimals)
unknown_unit         lab_result: units (source or normalized) not in `LAB_UNITS`
future_date          lab_result, observation: a result, collection or observation date after the
                     load's as-of date (the paid-through date given to the load, else the latest
                     paid date of the claims loaded), never the clock
==================== ==========================================================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.inputs import codes
from allpayer.inputs.schema import PAYMENT_ARRANGEMENTS, Table

MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2099, 12, 31)

MONEY_TYPE = "decimal(18, 2)"
DECIMAL_TYPE = "decimal(18, 4)"
DECIMAL_PLACES = 4

KIND_TYPES = {
    "string": "string",
    "code": "string",
    "date": "date",
    "int": "int64",
    "decimal": DECIMAL_TYPE,
    "money": MONEY_TYPE,
    "bool": "boolean",
}

SQL_TYPES = {
    "string": "VARCHAR",
    "code": "VARCHAR",
    "date": "DATE",
    "int": "BIGINT",
    "decimal": "DECIMAL(18,4)",
    "money": "DECIMAL(18,2)",
    "bool": "BOOLEAN",
}

RULES = (
    "malformed_row",
    "required",
    "type_int",
    "type_decimal",
    "type_date",
    "type_bool",
    "money_format",
    "date_range",
    "date_order",
    "allowed_value",
    "code_format",
    "negative_amount",
    "out_of_range",
    "shadow_claim_paid",
    "month_start",
    "duplicate_row",
    "conflicting_duplicate",
    "non_numeric_result",
    "unknown_unit",
    "future_date",
)

TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")

# (start, end) pairs checked by `date_order` where both columns exist in a table.
DATE_PAIRS = (
    ("enrollment_start_date", "enrollment_end_date"),
    ("claim_start_date", "claim_end_date"),
    ("claim_line_start_date", "claim_line_end_date"),
    ("admission_date", "discharge_date"),
    ("effective_start_date", "effective_end_date"),
    ("birth_date", "death_date"),
    ("designation_date", "end_date"),
    ("event_date", "end_date"),
)

# Date columns that name a month: they must hold its first day.
MONTH_COLUMNS = ("month",)

# Lab results must be numbers in a known unit (UCUM codes and common spellings, compared in
# lower case); clinical dates may not lie after the load's as-of date.
NUMERIC_RESULT_TABLES = ("lab_result",)
UNIT_COLUMNS = {"lab_result": ("source_units", "normalized_units")}
LAB_UNITS = (
    "%", "1", "{ratio}", "ratio", "{index}", "{score}", "mmol/mol", "mg/dl", "mmol/l", "umol/l", "meq/l",
    "g/dl", "g/l", "mg/l", "ug/ml", "ug/dl", "ng/ml", "ng/dl", "pg/ml", "u/l", "iu/l", "miu/l", "miu/ml",
    "uiu/ml", "mosm/kg", "10*3/ul", "10*6/ul", "10*9/l", "10*12/l", "fl", "pg", "mg/g", "mg/mmol",
    "ml/min/{1.73_m2}", "ml/min/1.73m2", "s", "sec", "mm/h", "mm[hg]", "kg", "g", "cm", "kg/m2", "/min",
    "cel", "[degf]",
)
FUTURE_DATE_COLUMNS = {
    "lab_result": ("result_date", "collection_date"),
    "observation": ("observation_date",),
}

NegativeOriginals = tuple[tuple[str, int | None], ...]
"""The money columns that an original row (adjustment_sequence 0) of a delivery may carry
negative, as ``(column, claim_line_number)`` pairs, the line None for every line (for example
`allpayer.inputs.cclf.NEGATIVE_ORIGINALS`); empty for a native file, whose originals are never
negative. A tuple, so that the validation SQL built for it can be cached."""

# Lower bounds on integer columns beyond the contract's `nonnegative` flag.
MIN_VALUES = {"claim_line_number": 1, "adjustment_sequence": 0, "days_supply": 0, "refills": 0}

# Key columns with a default when empty (the adjustment convention: 0 is the original line).
KEY_DEFAULTS = {"adjustment_sequence": 0}

SHOW_CHARS = 40  # how much of an offending value a message quotes

INT_PATTERN = r"^[+-]?[0-9]{1,18}$"
NUMBER_PATTERN = r"^[+-]?([0-9]{1,14}(\.[0-9]*)?|\.[0-9]+)$"
DECIMAL_PLACES_PATTERN = r"^[^.]*(\.[0-9]{0,%d}0*)?$" % DECIMAL_PLACES
MONEY_PATTERN = r"^[+-]?([0-9]{1,16}(\.[0-9]*)?|\.[0-9]+)$"
CENTS_PATTERN = r"^[^.]*(\.[0-9]{0,2}0*)?$"


@dataclass(frozen=True)
class Check:
    """One rule evaluated on every row: where it fails and what to say."""

    rule: str
    failed: ir.BooleanValue
    message: ir.StringValue


def restrict(spec: Table, columns) -> Table:
    """The contract of a table restricted to the given columns (plus its key columns), in
    contract order. A delivery validates only the columns its files have: the others are empty,
    and an empty optional column passes every rule."""
    keep = set(columns) | set(spec.key)
    return dataclasses.replace(spec, columns=tuple(c for c in spec.columns if c.name in keep))


PASSTHROUGH = ("source_file", "line_number")
"""Columns every step carries as they are: the provenance of the row."""


def _carried(t: ir.Table) -> dict[str, ir.Value]:
    return {c: t[c] for c in PASSTHROUGH if c in t.columns}


def one_of(value: ir.StringValue, values) -> ir.BooleanValue:
    """True when `value` is one of the strings `values` (NULL when it is NULL).

    A list's membership test, not ``IN (...)``: DuckDB (1.5) plans an ``IN`` of five or more
    constants as a join against them, and a query with a join does not keep its rows in the
    order read, so a file's rows would reach the stored table out of line order. `values` are
    strings, and so must `value` be (no implicit cast, unlike ``IN``)."""
    return ibis.literal(list(values), type="array<string>").contains(value)


def _null_str() -> ir.StringValue:
    return ibis.null("string")


def _quoted(v: ir.StringValue) -> ir.StringValue:
    return "'" + v.substr(0, SHOW_CHARS) + "'"


@ibis.udf.scalar.builtin(name="trim")
def trim(value: str) -> str:
    """The SQL ``trim``: leading and trailing spaces removed (about twice as fast as trimming a
    set of characters, which is what Ibis's ``strip`` compiles to)."""


NATIVE_TYPES = {"date": "date", "money": MONEY_TYPE, "int": "int64", "bool": "boolean"}
"""Contract kinds a staged column may hold typed instead of as text (a *native* column, see
`native_kind`), and the type it is staged as."""

NATIVE_MIN_DATE = dt.date(1, 1, 1)
NATIVE_MAX_DATE = dt.date(9999, 12, 31)
"""The dates whose text is ``YYYY-MM-DD``: a native date outside them is not a date, as its text
would not be."""


def native_kind(kind: str, dtype: str) -> bool:
    """True when a column of contract `kind` delivered typed as the DuckDB type `dtype` can be
    validated without its text: staged as `NATIVE_TYPES[kind]`, its value is the one its text
    would parse to and its text (``CAST(value AS VARCHAR)``) is the text it would be staged as, so
    every rule and message comes out the same. Money must be a DECIMAL with 2 decimals that fits
    the contract's 16 whole digits; whole numbers must have at most 10 digits (32 bits)."""
    base = dtype.split("(")[0].strip().upper()
    if kind == "date":
        return base == "DATE"
    if kind == "bool":
        return base == "BOOLEAN"
    if kind == "int":
        return base in ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER")
    if kind == "money":
        m = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", dtype.strip().upper())
        return bool(m) and int(m.group(2)) == 2 and int(m.group(1)) <= 18
    return False


def trimmed(value: ir.StringValue) -> ir.StringValue:
    """`value` without the spaces around it, NULL when empty. Only a value that begins or ends with
    a space (U+0020) is trimmed: testing the first and last byte costs much less than trimming
    every value (at 650,000 members, the 32 text columns of 24 million claim lines cleaned in
    3.5-3.6 s against 5.6-5.9 s on 2 threads; 2.5 s without any trimming), and most values have
    nothing to trim. A value padded only with other spaces
    (a no-break space, say) is kept as delivered, as Spark's ``trim`` keeps it."""
    return ibis.ifelse(value.like(" %") | value.like("% "), trim(value), value).nullif("")


def clean(raw: ir.Table, spec: Table, native: frozenset[str] = frozenset()) -> ir.Table:
    """Trim spaces around every text column (`trimmed`); empty text becomes NULL. Native columns
    (typed, see `native_kind`) and provenance columns pass through."""
    cols = {}
    for col in spec.columns:
        cols[col.name] = raw[col.name] if col.name in native else trimmed(raw[col.name])
    return raw.select(**cols, **_carried(raw))


def keeps_text(col) -> bool:
    """True when a column's stored value differs from its delivered text (parsed or normalized)."""
    return col.kind not in ("string", "code") or bool(col.code_format) or bool(col.allowed)


TEXT_SUFFIX = "__text"
NUMBER_SUFFIX = "__number"
"""A code column whose format has a check digit (`allpayer.inputs.codes.CodeFormat.number_check`)
is also parsed as a number, ``<name>__number``: converted once here rather than once per digit
in its check."""


def parse(cleaned: ir.Table, spec: Table, native: frozenset[str] = frozenset()) -> ir.Table:
    """Parse each cleaned column to its kind (NULL where it does not parse).

    Codes are normalized as `allpayer.inputs.codes` describes and values of a column with an
    allowed list are lower-cased. Columns whose value is parsed or normalized keep their cleaned
    text alongside as ``<name>__text`` so that the checks can quote what was delivered, and codes
    with a check digit their number as ``<name>__number`` (`NUMBER_SUFFIX`).

    A native column (`native`, see `native_kind`) is already typed: ``<name>__text`` keeps the
    delivered value, whose text the checks take only where they quote it.
    """
    cols = {}
    for col in spec.columns:
        v = cleaned[col.name]
        if col.name in spec.key and col.name in KEY_DEFAULTS:
            v = v.fill_null(KEY_DEFAULTS[col.name] if col.name in native else str(KEY_DEFAULTS[col.name]))
        if keeps_text(col):
            cols[col.name + TEXT_SUFFIX] = v
        if col.name in native:
            if col.kind == "date":
                in_range = v.between(NATIVE_MIN_DATE, NATIVE_MAX_DATE)
                cols[col.name] = ibis.ifelse(in_range, v, ibis.null("date"))
            else:
                cols[col.name] = v
        elif col.kind in ("string", "code"):
            if col.code_format:
                v = codes.normalize(col.code_format, v)
                number = codes.as_number(col.code_format, v)
                if number is not None:
                    cols[col.name + NUMBER_SUFFIX] = number
            elif col.allowed:
                v = v.lower()
            cols[col.name] = v
        elif col.kind == "date":
            shaped = v.re_search(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
            cols[col.name] = ibis.ifelse(shaped, v.try_cast("date"), ibis.null("date"))
        elif col.kind == "int":
            shaped = v.re_search(INT_PATTERN)
            cols[col.name] = ibis.ifelse(shaped, v.try_cast("int64"), ibis.null("int64"))
        elif col.kind == "decimal":
            ok = v.re_search(NUMBER_PATTERN) & v.re_search(DECIMAL_PLACES_PATTERN)
            cols[col.name] = ibis.ifelse(ok, v.try_cast(DECIMAL_TYPE), ibis.null(DECIMAL_TYPE))
        elif col.kind == "money":
            ok = v.re_search(MONEY_PATTERN) & v.re_search(CENTS_PATTERN)
            cols[col.name] = ibis.ifelse(ok, v.try_cast(MONEY_TYPE), ibis.null(MONEY_TYPE))
        elif col.kind == "bool":
            low = v.lower()
            cols[col.name] = ibis.cases(
                (one_of(low, TRUE_WORDS), True), (one_of(low, FALSE_WORDS), False), else_=ibis.null("boolean")
            )
        else:  # pragma: no cover - the contract only uses the kinds above
            raise ValueError(f"{spec.name}.{col.name}: unknown kind {col.kind!r}")
    return cleaned.select(**cols, **_carried(cleaned))


def checks(
    parsed: ir.Table,
    spec: Table,
    as_of: dt.date | None = None,
    native: frozenset[str] = frozenset(),
    failing_numbers: Mapping[str, Sequence[int]] | None = None,
    negative_originals: NegativeOriginals = (),
) -> list[Check]:
    """Every rule of a table as a list of `Check`s on a parsed table (see `parse`). `as_of`: the
    load's as-of date for `future_date` (no future-date check without it). `native`: the columns
    staged typed (see `native_kind`). `failing_numbers`: column -> the numbers of its values
    that fail their code format's check digit, found beforehand on the column's distinct values
    (`codes.number_check_failures`); a column listed is checked by membership in that list
    (`codes.is_valid`), the others by the arithmetic on every row. `negative_originals`: the
    money columns (on the claim lines given) whose negative values on an original row are not a
    ``negative_amount`` (`NegativeOriginals`); every other money column of an original row is
    still checked."""
    failing_numbers = failing_numbers or {}
    out: list[Check] = []
    names = spec.column_names

    def text(name: str) -> ir.StringValue:
        if name in native:
            return parsed[name + TEXT_SUFFIX].cast("string")
        return parsed[name + TEXT_SUFFIX] if keeps_text(spec.column(name)) else parsed[name]

    def as_number(name: str) -> ir.IntegerValue | None:
        return parsed[name + NUMBER_SUFFIX] if name + NUMBER_SUFFIX in parsed.columns else None

    for col in spec.columns:
        name, v, t = col.name, parsed[col.name], text(col.name)
        # Emptiness and presence from the delivered value itself (a native value is NULL exactly
        # where its text is), so a native column's text is made only for a message.
        delivered = parsed[name + TEXT_SUFFIX] if name in native else t
        present = delivered.notnull()
        if col.required or name in spec.key:
            missing = delivered.isnull()
            if col.required_unless and col.required_unless[0] in names and name not in spec.key:
                other, values = col.required_unless
                missing = missing & ~one_of(text(other).strip().lower(), values).fill_null(False)
                out.append(Check("required", missing, ibis.literal(f"{name} is required (except where {other} is {', '.join(values)})")))
            else:
                out.append(Check("required", missing, ibis.literal(f"{name} is required")))
        if col.kind == "date":
            out.append(Check("type_date", present & v.isnull(), name + ": " + _quoted(t) + " is not a date (YYYY-MM-DD)"))
            out.append(
                Check(
                    "date_range",
                    v.notnull() & ((v < MIN_DATE) | (v > MAX_DATE)),
                    name + ": " + t + f" is outside {MIN_DATE.isoformat()}..{MAX_DATE.isoformat()}",
                )
            )
        elif col.kind == "int":
            out.append(Check("type_int", present & v.isnull(), name + ": " + _quoted(t) + " is not a whole number"))
        elif col.kind == "decimal":
            out.append(
                Check(
                    "type_decimal",
                    present & v.isnull(),
                    name + ": " + _quoted(t) + f" is not a number with at most {DECIMAL_PLACES} decimals",
                )
            )
        elif col.kind == "money":
            # A native amount (DECIMAL with 2 decimals, at most 16 whole digits) is always one.
            number = ibis.literal(True) if name in native else t.re_search(MONEY_PATTERN)
            out.append(Check("money_format", present & ~number, name + ": " + _quoted(t) + " is not an amount in dollars"))
            out.append(
                Check(
                    "money_format",
                    present & number & v.isnull(),
                    name + ": " + _quoted(t) + " has fractions of a cent (more than 2 decimals)",
                )
            )
        elif col.kind == "bool":
            out.append(Check("type_bool", present & v.isnull(), name + ": " + _quoted(t) + " is not true or false"))
        if col.code_format:
            fmt = codes.code_format(col.code_format)
            out.append(
                Check(
                    "code_format",
                    present & ~codes.is_valid(col.code_format, v, number=as_number(name),
                                              failing=failing_numbers.get(name)),
                    name + ": " + _quoted(t) + f" is not a valid {fmt.description}",
                )
            )
        if col.allowed:
            out.append(
                Check(
                    "allowed_value",
                    present & ~one_of(v, col.allowed),
                    name + ": " + _quoted(t) + f" is not one of {', '.join(col.allowed)}",
                )
            )

    for start, end in DATE_PAIRS:
        if start in names and end in names:
            a, b = parsed[start], parsed[end]
            out.append(
                Check(
                    "date_order",
                    a.notnull() & b.notnull() & (b < a),
                    f"{end} " + b.cast("string") + f" is before {start} " + a.cast("string"),
                )
            )

    adjusting = "adjustment_sequence" in names
    original = (parsed["adjustment_sequence"] == 0) if adjusting else ibis.literal(True)
    for col in spec.columns:
        v = parsed[col.name]
        if col.kind == "money":
            where = " on an original line (adjustment_sequence 0)" if adjusting else ""
            out.append(
                Check(
                    "negative_amount",
                    v.notnull() & (v < 0) & original & ~_may_be_negative(parsed, col.name, negative_originals),
                    f"{col.name} is negative (" + v.cast("string") + ")" + where,
                )
            )
        low = MIN_VALUES.get(col.name, 0 if col.nonnegative else None)
        if low is not None and col.kind in ("int", "decimal", "money"):
            out.append(
                Check("out_of_range", v.notnull() & (v < low), f"{col.name} " + v.cast("string") + f" is below {low}")
            )

    for name in MONTH_COLUMNS:
        if name in names:
            v = parsed[name]
            out.append(
                Check("month_start", v.notnull() & (v.day() != 1), f"{name} " + v.cast("string") + " is not the first day of a month")
            )

    if spec.name == "medical_claim" and "payment_arrangement" in names and "paid_amount" in names:
        arrangement, paid = parsed["payment_arrangement"], parsed["paid_amount"]
        shadow = one_of(arrangement, [a for a in PAYMENT_ARRANGEMENTS if a != "ffs"])
        out.append(
            Check(
                "shadow_claim_paid",
                shadow & original & paid.notnull() & (paid != 0),
                "paid_amount " + paid.cast("string") + " on a shadow claim (payment_arrangement " + arrangement
                + ") must be 0",
            )
        )
    out.extend(clinical_checks(parsed, spec, as_of))
    return out


def _may_be_negative(parsed: ir.Table, column: str, negative_originals: NegativeOriginals) -> ir.BooleanValue:
    """Whether `column` of a row of `parsed` may be negative on an original row: on the lines that
    `negative_originals` names for it (every line for None; a table without ``claim_line_number``
    has no line to name)."""
    lines = [line for name, line in negative_originals if name == column]
    if None in lines:
        return ibis.literal(True)
    if not lines or "claim_line_number" not in parsed.columns:
        return ibis.literal(False)
    return parsed["claim_line_number"].isin(lines)


def clinical_checks(parsed: ir.Table, spec: Table, as_of: dt.date | None = None) -> list[Check]:
    """Lab results: numeric result, known unit; lab and observation dates not after `as_of`."""
    out: list[Check] = []
    names = spec.column_names
    if spec.name in NUMERIC_RESULT_TABLES and "result" in names:
        v = parsed["result"]
        number = v.re_search(NUMBER_PATTERN) & v.re_search(DECIMAL_PLACES_PATTERN)
        out.append(Check("non_numeric_result", v.notnull() & ~number,
                         "result: " + _quoted(v) + f" is not a number with at most {DECIMAL_PLACES} decimals"))
    for col in UNIT_COLUMNS.get(spec.name, ()):
        if col in names:
            u = parsed[col]
            out.append(Check("unknown_unit", u.notnull() & ~one_of(u.lower(), LAB_UNITS),
                             col + ": " + _quoted(u) + " is not a known unit"))
    if as_of is not None:
        for col in FUTURE_DATE_COLUMNS.get(spec.name, ()):
            if col in names:
                d = parsed[col]
                out.append(Check("future_date", d.notnull() & (d > as_of),
                                 col + " " + d.cast("string") + f" is after the as-of date {as_of.isoformat()}"))
    return out


FLAG_PREFIX = "_f"


def check(
    parsed: ir.Table,
    spec: Table,
    as_of: dt.date | None = None,
    native: frozenset[str] = frozenset(),
    failing_numbers: Mapping[str, Sequence[int]] | None = None,
    negative_originals: NegativeOriginals = (),
) -> ir.Table:
    """Evaluate every rule on a parsed table: the parsed columns and one boolean column per check,
    true where the row fails it.

    The flag columns are named ``_f<nnn>_<rule>``; `verdict` folds them into ``rules`` and
    ``message``, building the messages only for the rows that fail (which is why the parsed
    columns the messages quote, ``<name>__text``, are kept). A flag is one byte per row where a
    message column would be a string: on a valid delivery every message would be NULL, and
    writing 78 NULL strings for each of 24 million claim lines cost more than testing the rules.
    `failing_numbers`, `negative_originals`: see `checks`.
    """
    found = checks(parsed, spec, as_of, native, failing_numbers, negative_originals)
    flags = {f"{FLAG_PREFIX}{i:03d}_{c.rule}": c.failed.fill_null(False) for i, c in enumerate(found)}
    return parsed.mutate(**flags)


def verdict(
    checked: ir.Table,
    spec: Table,
    as_of: dt.date | None = None,
    native: frozenset[str] = frozenset(),
) -> ir.Table:
    """Fold a checked table's flag columns into the verdict (`as_of` and `native` as given to
    `check`, which decide the messages).

    Returns the typed contract columns, ``source_file``, ``line_number``, ``rules`` (failing
    rule ids, comma-separated; NULL when the row is valid) and ``message`` (one message per
    failure, ``; ``-separated). `with_first_rule` adds ``rule``.
    """
    cols = [c for c in checked.columns if c.startswith(FLAG_PREFIX)]
    found = checks(checked, spec, as_of, native)
    if len(found) != len(cols):  # pragma: no cover - the same rules as `check` evaluated
        raise AssertionError(f"{spec.name}: {len(cols)} flags for {len(found)} checks")
    rules, messages = [], []
    for c, chk in zip(cols, found):
        flag = checked[c]
        rules.append(ibis.ifelse(flag, c.split("_", 2)[2], _null_str()))
        messages.append(ibis.ifelse(flag, chk.message, _null_str()))
    if cols:
        # Most rows pass every rule: that is tested once (any flag set), and the rules and
        # messages are folded only for the rows that fail.
        failed = ibis.or_(*[checked[c] for c in cols])
        rules_col = ibis.ifelse(failed, ibis.literal(",").join(rules).nullif(""), _null_str())
        message_col = ibis.ifelse(failed, ibis.literal("; ").join(messages).nullif(""), _null_str())
    else:
        rules_col = message_col = _null_str()
    return checked.select(*spec.column_names, **_carried(checked), rules=rules_col, message=message_col)


def with_first_rule(checked: ir.Table) -> ir.Table:
    """Add ``rule``, the first failing rule of a row (NULL when the row is valid)."""
    return checked.mutate(rule=checked.rules.split(",")[0])


def validate(raw: ir.Table, spec: Table, materialize=None, as_of: dt.date | None = None) -> ir.Table:
    """Clean, parse and check a staged text table (`verdict`'s columns plus ``rule``).

    `materialize(expr) -> table` is called between the steps (the loader stores each step as a
    temporary table, which keeps every query small); by default the steps are one expression.
    """
    step = materialize or (lambda expr: expr)
    parsed = step(parse(step(clean(raw, spec)), spec))
    return with_first_rule(step(verdict(step(check(parsed, spec, as_of)), spec, as_of)))
