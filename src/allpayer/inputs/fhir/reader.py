"""Read a FHIR R4 bulk-data export (NDJSON) into the input contract's tables.

A folder holds ``*.ndjson`` (or ``*.ndjson.gz``) files, one resource a line, as a Bulk Data
``$export`` writes them. A file whose name contains a resource type (``Patient.ndjson``,
``ExplanationOfBenefit_002.ndjson``, ``1.Observation.ndjson``) must hold only that type; a file
whose name names none may hold any of the types read.

Two passes: the directory resources (Patient, Coverage, Practitioner, Organization) first, then
ExplanationOfBenefit and Observation, which refer to them. Every non-blank line is one record:
it is mapped (to one or more contract rows) or quarantined with its file, line, rule and message,
so that ``read = mapped + quarantined`` per resource type. Reader rules:

====================== ==============================================================================
invalid_json           the line is not valid JSON
not_a_resource         valid JSON, but not an object with a ``resourceType``
unsupported_resource   a resource type this reader does not map
wrong_resource_type    a resource of another type than the file's name says
missing_element        an element the mapping needs is absent (``id``, ``Coverage.beneficiary``,
                       ``ExplanationOfBenefit.patient``/``item``/``insurance``, ``Observation.subject``/``code``)
inactive_status        an ExplanationOfBenefit or Coverage whose status is cancelled, entered-in-error or draft:
                       no payment, no eligibility span; an Observation whose status is cancelled or
                       entered-in-error: no result
unresolved_reference   a reference to a resource not in the delivery (a Coverage's Patient, an EOB's Coverage)
duplicate_resource     a second resource of the same type and id (the first is kept)
no_coverage            a Patient no Coverage refers to: there is no eligibility span to load
====================== ==============================================================================

Rows are then validated by the loader like any delivery (dates, codes, amounts, keys). Each row's
``source_file`` is the NDJSON file, followed, for rows taken from one element of a resource, by
``#`` and that element (``#item[2]``, ``#component[0]``); ``line_number`` is the line. The table
``fhir_resource`` keeps, for every row, the resource type and id it came from.
"""

from __future__ import annotations

import gzip
import json
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from allpayer.errors import InputFileError
from allpayer.inputs import readers
from allpayer.inputs.fhir import mapping
from allpayer.inputs.formats import REJECT_SCHEMA, MappedDelivery, RecordCount, fhir_files
from allpayer.inputs.schema import TABLES

DIRECTORY_TYPES = ("Patient", "Practitioner", "Organization", "Coverage")
EVENT_TYPES = ("ExplanationOfBenefit", "Observation")
RESOURCE_TYPES = DIRECTORY_TYPES + EVENT_TYPES
RAW_CHARS = 4000
"""How much of a quarantined line the quarantine keeps."""
RULES = (
    "invalid_json",
    "not_a_resource",
    "unsupported_resource",
    "wrong_resource_type",
    "missing_element",
    "inactive_status",
    "unresolved_reference",
    "duplicate_resource",
    "no_coverage",
)
"""The reader's quarantine rules (see the module docstring)."""
CHUNK_ROWS = 50_000
"""Mapped rows are turned into Arrow tables this many at a time (bounded Python memory)."""

_TYPE_IN_NAME = re.compile("|".join(sorted(RESOURCE_TYPES, key=len, reverse=True)))


def expected_type(name: str) -> str | None:
    """The resource type a file's name promises (None when it names none)."""
    m = _TYPE_IN_NAME.search(name)
    return m.group(0) if m else None


def _lines(path: Path):
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                yield number, line
    except (OSError, EOFError) as exc:
        raise InputFileError(str(path), f"cannot be read (truncated or corrupt compressed file?): {exc}") from exc


class _Collector:
    """Accumulates rows, rejects and counts."""

    def __init__(self):
        self.rows: dict[str, list[dict]] = {}
        self.chunks: dict[str, list[pa.Table]] = {}
        self.sources: dict[str, set[str]] = {}
        self.rejects: list[tuple] = []
        self.counts: dict[str, RecordCount] = {}
        self.provenance: list[tuple] = []

    def count(self, kind: str, relpath: str) -> RecordCount:
        name = f"fhir:{kind}"
        rc = self.counts.get(name)
        if rc is None:
            rc = self.counts[name] = RecordCount(name=name, files=[])
        if relpath not in rc.files:
            rc.files.append(relpath)
        return rc

    def reject(self, kind: str, relpath: str, line: int, rule: str, message: str, raw: str) -> None:
        rc = self.count(kind, relpath)
        rc.read += 1
        rc.quarantined += 1
        self.rejects.append((f"fhir:{kind}", relpath, line, rule, message, raw[:RAW_CHARS]))

    def mapped(self, kind: str, relpath: str) -> None:
        rc = self.count(kind, relpath)
        rc.read += 1
        rc.mapped += 1

    def add(self, table: str, relpath: str, fragment: str | None, line: int, row: dict, rtype: str, rid: str) -> None:
        source = relpath + ("#" + fragment if fragment else "")
        row["source_file"] = source
        row["line_number"] = line
        rows = self.rows.setdefault(table, [])
        rows.append(row)
        if len(rows) >= CHUNK_ROWS:
            self.chunks.setdefault(table, []).append(_arrow(table, rows))
            self.rows[table] = []
        self.sources.setdefault(table, set()).add(relpath)
        self.provenance.append((table, source, line, rtype, rid))


def _parse(raw: bytes):
    return json.loads(raw, parse_float=Decimal)


def read_fhir_folder(folder: str | Path) -> MappedDelivery:
    """Read every NDJSON file of `folder` (see the module docstring); returns the mapped tables,
    rejects and counts as a `MappedDelivery` for the loader."""
    folder = Path(folder)
    paths = fhir_files(folder)
    if not paths:
        raise InputFileError(str(folder), "no FHIR files: expected <ResourceType>.ndjson files (FHIR bulk data)")
    files = [readers.InputFile(f"fhir:{expected_type(p.name) or 'mixed'}", p, p.name) for p in paths]
    out = _Collector()
    patients: dict[str, tuple[dict, str, int, str]] = {}
    coverages: dict[str, tuple[dict, str, int, str]] = {}
    parties: dict[str, mapping.Party] = {}
    seen: dict[tuple[str, str], tuple[str, int]] = {}

    def records(f: readers.InputFile, phase: tuple[str, ...]):
        """(line, raw text, resource) of the valid resources of `phase` in a file; rejects the
        rest (once: an untyped file's bad lines are rejected in the first pass only)."""
        expected = expected_type(f.path.name)
        first_pass = phase is DIRECTORY_TYPES
        for line, raw in _lines(f.path):
            if not raw.strip():
                continue
            kind = expected or "unknown"
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            try:
                resource = _parse(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                if first_pass or expected:
                    out.reject(kind, f.relpath, line, "invalid_json", f"not valid JSON: {exc}", text)
                continue
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            if not isinstance(rtype, str):
                if first_pass or expected:
                    out.reject(kind, f.relpath, line, "not_a_resource", "not a FHIR resource (no resourceType)", text)
                continue
            if expected and rtype != expected:
                out.reject(expected, f.relpath, line, "wrong_resource_type", f"a {rtype} resource in a file of {expected} resources", text)
                continue
            if rtype not in RESOURCE_TYPES:
                if first_pass or expected:
                    out.reject(rtype, f.relpath, line, "unsupported_resource", f"resource type {rtype} is not read (reads {', '.join(RESOURCE_TYPES)})", text)
                continue
            if rtype not in phase:
                continue
            rid = resource.get("id")
            if not isinstance(rid, str) or not rid:
                out.reject(rtype, f.relpath, line, "missing_element", f"{rtype}.id is missing", text)
                continue
            key = (rtype, rid)
            if key in seen:
                first_file, first_line = seen[key]
                out.reject(rtype, f.relpath, line, "duplicate_resource", f"{rtype}/{rid} appears again (first at {first_file} line {first_line})", text)
                continue
            seen[key] = (f.relpath, line)
            yield line, text, rtype, rid, resource

    typed_later = [f for f in files if expected_type(f.path.name) in EVENT_TYPES]
    first = [f for f in files if f not in typed_later]
    for f in first:
        for line, text, rtype, rid, resource in records(f, DIRECTORY_TYPES):
            try:
                if rtype == "Patient":
                    patients[rid] = (mapping.patient(resource), f.relpath, line, text)
                elif rtype == "Coverage":
                    coverages[rid] = (mapping.coverage(resource), f.relpath, line, text, resource.get("status"))
                else:
                    parties[f"{rtype}/{rid}"] = mapping.party(resource)
                    out.mapped(rtype, f.relpath)
            except mapping.Unmappable as exc:
                out.reject(rtype, f.relpath, line, exc.rule, exc.message, text)

    covered: set[str] = set()
    usable_coverages: dict[str, dict] = {}
    for rid, (row, relpath, line, text, status) in coverages.items():
        person = patients.get(row["person_id"])
        if person is None:
            out.reject("Coverage", relpath, line, "unresolved_reference", f"beneficiary Patient/{row['person_id']} is not in the delivery", text)
            continue
        usable_coverages[rid] = row  # claims adjudicated under it take their member, payer and plan from it
        if status in mapping.INACTIVE_STATUSES:
            out.reject("Coverage", relpath, line, "inactive_status", f"Coverage.status is {status}: not an enrollment, no eligibility span", text)
            continue
        covered.add(row["person_id"])
        out.mapped("Coverage", relpath)
        merged = {**person[0], **{k: v for k, v in row.items() if v is not None or k not in person[0]}}
        out.add("eligibility", relpath, None, line, merged, "Coverage", rid)
    for rid, (_row, relpath, line, text) in patients.items():
        if rid in covered:
            out.mapped("Patient", relpath)
        else:
            out.reject("Patient", relpath, line, "no_coverage", f"no Coverage in the delivery refers to Patient/{rid}: no eligibility span", text)

    for f in [f for f in files if f in typed_later or expected_type(f.path.name) is None]:
        for line, text, rtype, rid, resource in records(f, EVENT_TYPES):
            try:
                if rtype == "ExplanationOfBenefit":
                    table, rows = mapping.eob(resource, usable_coverages, parties)
                else:
                    table, rows = mapping.observation(resource)
            except mapping.Unmappable as exc:
                out.reject(rtype, f.relpath, line, exc.rule, exc.message, text)
                continue
            out.mapped(rtype, f.relpath)
            for fragment, row in rows:
                out.add(table, f.relpath, fragment, line, row, rtype, rid)

    tables = {}
    for t in TABLES:
        parts = out.chunks.get(t, []) + ([_arrow(t, out.rows[t])] if out.rows.get(t) else [])
        if parts:
            tables[t] = _concat(t, parts)
    rejects = pa.Table.from_pylist(
        [dict(zip(REJECT_SCHEMA.names, r)) for r in out.rejects], schema=REJECT_SCHEMA
    )
    provenance = pa.table(
        {
            name: pa.array([p[i] for p in out.provenance], type=pa.int64() if name == "line_number" else pa.string())
            for i, name in enumerate(("table_name", "source_file", "line_number", "resource_type", "resource_id"))
        }
    )
    return MappedDelivery(
        format="fhir",
        folder=folder,
        files=files,
        tables=tables,
        sources={t: sorted(s) for t, s in out.sources.items()},
        rejects=rejects,
        records=sorted(out.counts.values(), key=lambda r: RESOURCE_TYPES.index(r.name[5:]) if r.name[5:] in RESOURCE_TYPES else 99),
        side_tables={"fhir_resource": provenance},
    )


def _arrow(table: str, rows: list[dict]) -> pa.Table:
    """Rows of one table as an Arrow table of text columns (contract columns only, in contract
    order) plus ``source_file`` and ``line_number``."""
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    columns = [c for c in TABLES[table].column_names if c in present]
    data = {c: pa.array([_text(r.get(c)) for r in rows], type=pa.string()) for c in columns}
    data["source_file"] = pa.array([r["source_file"] for r in rows], type=pa.string())
    data["line_number"] = pa.array([r["line_number"] for r in rows], type=pa.int64())
    return pa.table(data)


def _concat(table: str, parts: list[pa.Table]) -> pa.Table:
    """Chunks with possibly different column sets as one table (missing columns NULL), in
    contract order."""
    if len(parts) == 1:
        return parts[0]
    names = set().union(*(p.column_names for p in parts))
    order = [c for c in TABLES[table].column_names if c in names] + ["source_file", "line_number"]
    filled = []
    for p in parts:
        for c in order:
            if c not in p.column_names:
                p = p.append_column(c, pa.nulls(p.num_rows, pa.string()))
        filled.append(p.select(order))
    return pa.concat_tables(filled)


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
