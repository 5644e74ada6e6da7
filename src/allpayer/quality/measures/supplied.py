"""Supplied results: risk-standardized measures that CMS (or the state) computes, loaded, never
recomputed.

CMS risk-standardizes the hospital-wide 30-day all-cause unplanned readmission rate (QID 479) and
the acute admission rate for patients with multiple chronic conditions (QID 484) with models and
national data the ACO does not have, so the engine does not compute them: it loads the published
figures from a small CSV the user passes (``allpayer quality --supplied-results FILE``) and
reports them labelled ``supplied: risk-standardized``. (The local all-cause readmission rate in
`readmissions.py` is a different, unadjusted observed figure.) The Medicaid program's
risk-standardized MCC admission rate (18+) is loaded the same way.

File format (CSV with a header; one row per program, measure and year):

================ =================================================================================
program_id       the program (as in the terms, e.g. ``vt-2024-medicare``)
measure_id       one of `SUPPLIED_MEASURE_IDS`
performance_year the year the result is for
rate             the published figure, a decimal number as text (``15.42``)
unit             ``percent`` (stored as a proportion: 15.42 -> 0.1542), ``proportion``,
                 ``per_100_person_years`` or ``per_1000_person_years`` (stored as given)
denominator      optional: the eligible count the publisher reports (stays, person-years)
source           required: the document the figure comes from (report, table, release date)
================ =================================================================================

A row that breaks the format stops the load with a message naming the file and line. The measures
registered here return no per-member rows; `supplied_rates` gives their ``quality_rates`` rows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from allpayer.errors import InputFileError
from allpayer.quality.framework import RATE_TYPE, RESULT_COLUMNS, Measure, MeasureContext, register

SUPPLIED_MEASURE_IDS: dict[str, str] = {
    "qid479_readmission": "Hospital-wide 30-day all-cause unplanned readmission, risk-standardized (QID 479)",
    "qid484_mcc_admissions": "Risk-standardized acute admissions for patients with multiple chronic conditions (QID 484)",
    "mcc_admissions_18plus": "Risk-standardized hospital admissions for people with multiple chronic conditions, 18+",
}
UNITS = ("percent", "proportion", "per_100_person_years", "per_1000_person_years")
COLUMNS = ("program_id", "measure_id", "performance_year", "rate", "unit", "denominator", "source")
REQUIRED = ("program_id", "measure_id", "performance_year", "rate", "unit", "source")
LABEL = "supplied: risk-standardized"
MAX_RATE = Decimal(10) ** 8


@dataclass(frozen=True)
class SuppliedResult:
    program_id: str
    measure_id: str
    performance_year: int
    rate: Decimal  # as stored: percent converted to a proportion
    unit: str
    denominator: int | None
    source: str
    line: int


def read_supplied(path: str | Path) -> list[SuppliedResult]:
    """Read and check a supplied-results CSV (see the module docstring)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise InputFileError(str(path), f"supplied-results file lacks column(s) {', '.join(missing)} "
                                                f"(expected {', '.join(COLUMNS)})")
            unknown = [c for c in header if c not in COLUMNS]
            if unknown:
                raise InputFileError(str(path), f"unknown supplied-results column(s) {', '.join(unknown)} "
                                                f"(expected {', '.join(COLUMNS)})")
            out: list[SuppliedResult] = []
            seen: dict[tuple[str, str, int], int] = {}
            for line, row in enumerate(reader, start=2):
                out.append(_row(path, line, row, seen))
            return out
    except OSError as exc:
        raise InputFileError(str(path), f"cannot read supplied-results file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputFileError(str(path), "not a UTF-8 text file") from None


def _row(path: Path, line: int, row: dict, seen: dict) -> SuppliedResult:
    def bad(msg: str) -> InputFileError:
        return InputFileError(str(path), f"line {line}: {msg}")

    v = {k: (row.get(k) or "").strip() for k in COLUMNS}
    for k in REQUIRED:
        if not v[k]:
            raise bad(f"{k} is required")
    if v["measure_id"] not in SUPPLIED_MEASURE_IDS:
        raise bad(f"measure_id {v['measure_id']!r} is not a supplied measure ({', '.join(SUPPLIED_MEASURE_IDS)})")
    if v["unit"] not in UNITS:
        raise bad(f"unit {v['unit']!r} is not one of {', '.join(UNITS)}")
    if not v["performance_year"].isdigit() or len(v["performance_year"]) != 4:
        raise bad(f"performance_year {v['performance_year']!r} is not a year")
    try:
        rate = Decimal(v["rate"])
    except InvalidOperation:
        raise bad(f"rate {v['rate']!r} is not a number") from None
    if not rate.is_finite() or rate < 0 or rate >= MAX_RATE:
        raise bad(f"rate {v['rate']!r} is out of range")
    if v["unit"] == "percent":
        rate = rate / 100
    if v["unit"] in ("percent", "proportion") and rate > 1:
        raise bad(f"rate {v['rate']!r} is above 100% ({v['unit']})")
    den = None
    if v["denominator"]:
        if not v["denominator"].isdigit():
            raise bad(f"denominator {v['denominator']!r} is not a whole number")
        den = int(v["denominator"])
    key = (v["program_id"], v["measure_id"], int(v["performance_year"]))
    if key in seen:
        raise bad(f"{key[1]} for {key[0]} {key[2]} is also on line {seen[key]}")
    seen[key] = line
    return SuppliedResult(v["program_id"], v["measure_id"], int(v["performance_year"]), rate, v["unit"], den,
                          v["source"], line)


RATE_COLUMNS = {
    "program_id": "string", "measure_id": "string", "level": "string", "level_id": "string",
    "performance_year": "int32", "denominator": "int64", "exclusions": "int64", "numerator": "int64",
    "rate": RATE_TYPE, "inverse": "boolean", "small_denominator": "boolean", "certified": "boolean",
    "label": "string", "reportable": "boolean", "note": "string",
}
"""The ``quality_rates`` columns (as `framework.rates` writes them)."""


def supplied_rates(path: str | Path | None, year: int, program_ids: Iterable[str] | None = None) -> ir.Table:
    """The ``quality_rates`` rows (level ``program``) of the supplied results of `year` for the
    given programs (all when None). No file: no rows. A row for a program not in `program_ids`
    is an error (a misspelt program id would otherwise be ignored)."""
    recs = []
    if path is not None:
        known = set(program_ids) if program_ids is not None else None
        for r in read_supplied(path):
            if r.performance_year != year:
                continue
            if known is not None and r.program_id not in known:
                raise InputFileError(str(path), f"line {r.line}: program_id {r.program_id!r} is not a program of "
                                                f"{year} ({', '.join(sorted(known))})")
            unit = "proportion (published as percent)" if r.unit == "percent" else r.unit.replace("_", " ")
            recs.append({
                "program_id": r.program_id, "measure_id": r.measure_id, "level": "program", "level_id": r.program_id,
                "performance_year": year, "denominator": r.denominator, "exclusions": 0 if r.denominator is not None else None,
                "numerator": None, "rate": r.rate.quantize(Decimal("1E-10")), "inverse": True,
                "small_denominator": False, "certified": True, "label": LABEL, "reportable": True,
                "note": f"{unit}; source: {r.source}",
            })
    return _table(recs, RATE_COLUMNS)


def _table(records: list[dict], columns: dict[str, str]) -> ir.Table:
    schema = ibis.schema(columns)
    data = pa.table({c: [r[c] for r in records] for c in schema.names}, schema=schema.to_pyarrow())
    return ibis.memtable(data)


def _no_rows(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    """Supplied measures have no per-member rows."""
    return _table([], RESULT_COLUMNS)


for _id, _name in SUPPLIED_MEASURE_IDS.items():
    register(Measure(
        id=_id,
        name=_name,
        kind="event",
        compute=_no_rows,
        inverse=True,
        enrollment=None,
        label=LABEL,
        description="Loaded from the supplied-results file; never recomputed",
        source="CMS (or state) published risk-standardized result, as named on each supplied row",
    ))
