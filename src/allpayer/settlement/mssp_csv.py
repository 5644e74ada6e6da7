"""CSV input and output of the MSSP settlement (`allpayer mssp settle`).

Input: one row per ACO and performance year. Required columns (a value may be empty where the
rules do not need it; see `allpayer.settlement.mssp.MsspInput`): ``performance_year, aco_id,
track, benchmark_total, expenditure_total, msr, mlr, quality_score, met_quality_standard,
met_alt_quality_standard``. Optional columns: ``assigned_beneficiaries, reduced_savings_eligible,
disaster_adjustment, participant_revenue, agreement_year, payment_year``. Rates are fractions,
dollars plain numbers, flags ``1``/``0`` (also ``true``/``false``). Any other column is carried
through to the output unchanged.

A file that cannot be read, or lacks a required column, raises `InputFileError`. A row that
cannot be settled is rejected with its line number and reason; the other rows still settle.

Output: ``performance_year, aco_id, generated_savings_losses, earned_savings_losses`` (negative:
losses owed), then the working (`WORKING_COLUMNS`), then the extra input columns.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

from allpayer.errors import AllpayerError, InputFileError
from allpayer.money import CENT
from allpayer.settlement.mssp import Line, MsspInput, MsspInputError, MsspSettlement, settle
from allpayer.settlement.mssp_terms import MsspRules

REQUIRED_COLUMNS = (
    "performance_year",
    "aco_id",
    "track",
    "benchmark_total",
    "expenditure_total",
    "msr",
    "mlr",
    "quality_score",
    "met_quality_standard",
    "met_alt_quality_standard",
)
OPTIONAL_COLUMNS = (
    "assigned_beneficiaries",
    "reduced_savings_eligible",
    "disaster_adjustment",
    "participant_revenue",
    "agreement_year",
    "payment_year",
)
RESULT_COLUMNS = ("performance_year", "aco_id", "generated_savings_losses", "earned_savings_losses")
# The working: each column is the value of the settlement line of the same name (empty when the
# settlement did not reach that step), except rule_set and notes.
WORKING_COLUMNS = (
    "track",
    "rule_set",
    "gross_savings_losses",
    "savings_rate",
    "threshold_rate",
    "threshold_met",
    "quality_path",
    "final_sharing_rate",
    "loss_rate",
    "shared_before_limit",
    "limit_amount",
    "cap_applied",
    "sequestration_rate",
    "sequestration_amount",
    "disaster_adjustment_applied",
    "notes",
)
OUTPUT_COLUMNS = RESULT_COLUMNS + WORKING_COLUMNS
_MONEY_COLUMNS = {"benchmark_total", "expenditure_total", "disaster_adjustment", "participant_revenue"}
_RATE_COLUMNS = {"msr", "mlr", "quality_score"}
_FLAG_COLUMNS = {"met_quality_standard", "met_alt_quality_standard", "reduced_savings_eligible"}
_INT_COLUMNS = {"performance_year", "assigned_beneficiaries", "agreement_year", "payment_year"}
_MANDATORY_VALUES = ("performance_year", "aco_id", "track", "benchmark_total", "expenditure_total", "msr")
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}
SAVINGS_RATE_PLACES = Decimal("0.00000001")


@dataclass(frozen=True)
class InputRow:
    """A parsed input row: its line in the file, the ACO's input and its extra columns."""

    line: int
    aco: MsspInput
    extras: dict[str, str]


@dataclass(frozen=True)
class RejectedRow:
    """A row left out of the results, with its line in the file and why."""

    line: int
    aco_id: str
    reason: str


@dataclass(frozen=True)
class SettledRow:
    """A settled row: where it came from, its settlement and its extra columns."""

    line: int
    settlement: MsspSettlement
    extras: dict[str, str]


@dataclass(frozen=True)
class SettleResult:
    """The outcome of settling a file: settled rows, rejected rows, and the extra column names."""

    settled: list[SettledRow]
    rejected: list[RejectedRow]
    extra_columns: list[str]


def _parse_decimal(raw: str, name: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{name} is not a number: {raw!r}") from None
    if not value.is_finite():
        raise ValueError(f"{name} is not a finite number: {raw!r}")
    return value


def _parse_int(raw: str, name: str) -> int:
    value = _parse_decimal(raw, name)
    if value != value.to_integral_value():
        raise ValueError(f"{name} must be a whole number, got {raw!r}")
    return int(value)


def _parse_flag(raw: str, name: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{name} must be 1 or 0, got {raw!r}")


def _parse_value(name: str, raw: str):
    if name in _MONEY_COLUMNS or name in _RATE_COLUMNS:
        return _parse_decimal(raw, name)
    if name in _INT_COLUMNS:
        return _parse_int(raw, name)
    if name in _FLAG_COLUMNS:
        return _parse_flag(raw, name)
    if name == "track":
        return raw.upper()
    return raw


def parse_row(values: dict[str, str]) -> MsspInput:
    """Build an `MsspInput` from one row's raw strings; raise `MsspInputError` listing every problem."""
    problems: list[str] = []
    parsed: dict[str, object] = {}
    for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
        raw = (values.get(name) or "").strip()
        if raw == "":
            if name in _MANDATORY_VALUES:
                problems.append(f"{name} is missing")
            continue
        try:
            parsed[name] = _parse_value(name, raw)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise MsspInputError(problems)
    if "reduced_savings_eligible" not in parsed:
        parsed["reduced_savings_eligible"] = False
    if "disaster_adjustment" not in parsed:
        parsed["disaster_adjustment"] = Decimal(0)
    return MsspInput(**parsed)  # type: ignore[arg-type]


def _row_key(aco: MsspInput, rules: MsspRules | None) -> tuple[str, str, str]:
    """What makes a row unique: year, performance period (PY2019 had two) and ACO."""
    year = rules.for_year(aco.performance_year) if rules is not None else None
    found = year.period(aco.track) if year is not None else None
    return str(aco.performance_year), found[0] if found else "", aco.aco_id


def read_input(
    path: str | Path, rules: MsspRules | None = None
) -> tuple[list[InputRow], list[RejectedRow], list[str]]:
    """Read an input CSV: parsed rows, rejected rows (with line numbers) and the extra column names.

    With `rules`, a performance year of several performance periods (PY2019) may hold one row per
    ACO and period; otherwise ``performance_year`` and ``aco_id`` are unique.
    """
    p = Path(path)
    try:
        handle = p.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputFileError(str(path), f"cannot open the file ({exc.strerror or exc})") from exc
    rows: list[InputRow] = []
    rejected: list[RejectedRow] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise InputFileError(
                    str(path), "the file is empty; expected a header row with " + ", ".join(REQUIRED_COLUMNS)
                )
            header = [h.strip() for h in header]
            _check_header(path, header)
            extras = [h for h in header if h not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            seen: dict[tuple[str, str, str], int] = {}
            line = reader.line_num
            for record in reader:
                start, line = line + 1, reader.line_num
                if not record or all(not v.strip() for v in record):
                    continue
                values = dict(zip(header, record))
                aco_id = (values.get("aco_id") or "").strip()
                if len(record) != len(header):
                    problem = f"{len(record)} fields but the header has {len(header)}"
                    rejected.append(RejectedRow(start, aco_id, problem))
                    continue
                try:
                    aco = parse_row(values)
                except MsspInputError as exc:
                    rejected.append(RejectedRow(start, aco_id, str(exc)))
                    continue
                key = _row_key(aco, rules)
                if key in seen:
                    same = "performance_year, performance period and aco_id" if key[1] else "performance_year and aco_id"
                    rejected.append(RejectedRow(start, aco_id, f"duplicate of line {seen[key]} (same {same})"))
                    continue
                seen[key] = start
                rows.append(InputRow(start, aco, {h: values[h] for h in extras}))
        except UnicodeDecodeError as exc:
            raise InputFileError(str(path), f"not UTF-8 text ({exc.reason})") from exc
        except csv.Error as exc:
            raise InputFileError(str(path), f"not a readable CSV file near line {reader.line_num}: {exc}") from exc
    if not rows and not rejected:
        raise InputFileError(str(path), "no data rows after the header")
    return rows, rejected, extras


def _check_header(path, header: list[str]) -> None:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputFileError(str(path), f"repeated column(s): {', '.join(dupes)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputFileError(
            str(path), f"missing required column(s): {', '.join(missing)} (values may be empty where not applicable)"
        )
    clash = [h for h in header if h in OUTPUT_COLUMNS and h not in REQUIRED_COLUMNS]
    if clash:
        raise InputFileError(
            str(path), f"column(s) {', '.join(clash)} would be overwritten by the results; rename them"
        )


def settle_file(path: str | Path, rules: MsspRules) -> SettleResult:
    """Read and settle every row of an input CSV under `rules`."""
    rows, rejected, extras = read_input(path, rules)
    settled: list[SettledRow] = []
    for row in rows:
        try:
            settled.append(SettledRow(row.line, settle(row.aco, rules), row.extras))
        except MsspInputError as exc:
            rejected.append(RejectedRow(row.line, row.aco.aco_id, str(exc)))
    rejected.sort(key=lambda r: r.line)
    return SettleResult(settled, rejected, extras)


def format_value(value, unit: str = "") -> str:
    """Text for a CSV cell: money with at least two decimals, rates exact, flags 1/0."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        if unit == "usd":
            cents = value.quantize(CENT)
            return f"{cents:f}" if cents == value else f"{value.normalize():f}"
        text = f"{value.normalize():f}"
        return "0" if text in ("-0", "0") else text
    return str(value)


def display_value(line: Line) -> str:
    """Text for one settlement line; the savings rate (a quotient) is shown to 8 decimal places."""
    value = line.value
    if line.name == "savings_rate" and isinstance(value, Decimal):
        value = value.quantize(SAVINGS_RATE_PLACES)
    return format_value(value, line.unit)


def result_row(row: SettledRow) -> dict[str, str]:
    """One output row: results, working, then the extra input columns unchanged."""
    s = row.settlement
    out: dict[str, str] = {
        "performance_year": str(s.aco.performance_year),
        "aco_id": s.aco.aco_id,
        "generated_savings_losses": format_value(s.generated_savings_losses, "usd"),
        "earned_savings_losses": format_value(s.earned_savings_losses, "usd"),
        "track": s.aco.track,
        "rule_set": s.rule_set,
        "notes": " | ".join(s.notes),
    }
    for name in WORKING_COLUMNS:
        if name in out:
            continue
        out[name] = display_value(s.line(name)) if s.has(name) else ""
    out.update(row.extras)
    return out


def write_results(path: str | Path, result: SettleResult, columns: Iterable[str] | None = None) -> None:
    """Write the output CSV atomically (a temporary file renamed into place).

    `columns`: the output columns in order (default: `OUTPUT_COLUMNS`, then the extra input columns).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise AllpayerError(f"{path}: the output folder does not exist")
    columns = list(columns) if columns is not None else list(OUTPUT_COLUMNS) + list(result.extra_columns)
    fd, tmp = tempfile.mkstemp(prefix=".mssp-", suffix=".csv", dir=folder)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in result.settled:
                writer.writerow(result_row(row))
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def totals(settled: Iterable[SettledRow]) -> tuple[Decimal, Decimal]:
    """Total earned savings (positive) and total owed losses (as a negative amount)."""
    earned = [r.settlement.earned_savings_losses for r in settled]
    return sum((e for e in earned if e > 0), Decimal("0.00")), sum((e for e in earned if e < 0), Decimal("0.00"))
