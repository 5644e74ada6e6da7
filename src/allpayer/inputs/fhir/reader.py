"""Read a FHIR R4 bulk-data export (NDJSON) into the input contract's tables.

A folder holds ``*.ndjson`` (or ``*.ndjson.gz``) files, one resource a line, as a Bulk Data
``$export`` writes them. A file whose name contains a resource type (``Patient.ndjson``,
``ExplanationOfBenefit_002.ndjson``, ``1.Observation.ndjson``) must hold only that type; a file
whose name names none may hold any of the types read.

Two passes: the directory resources (Patient, Coverage, Practitioner, Organization) first, then
ExplanationOfBenefit and Observation, which refer to them. Every non-blank line is one record:
it is mapped (to one or more contract rows) or quarantined with its file, line, rule and message,
so that ``read = mapped + quarantined`` per resource type (a cancellation the load finds
already applied is ``already_loaded`` instead, see `FhirDelivery`). Reader rules:

====================== ==============================================================================
invalid_json           the line is not valid JSON
not_a_resource         valid JSON, but not an object with a ``resourceType``
unsupported_resource   a resource type this reader does not map
wrong_resource_type    a resource of another type than the file's name says
missing_element        an element the mapping needs is absent (``id``, ``Coverage.beneficiary``,
                       ``ExplanationOfBenefit.patient``/``item``/``insurance``, ``Observation.subject``/``code``)
inactive_status        an ExplanationOfBenefit or Coverage whose status is cancelled, entered-in-error or draft:
                       no payment, no eligibility span (but a cancelled or entered-in-error one that
                       withdraws a claim or span an earlier load stored: see `FhirDelivery`); an
                       Observation whose status is cancelled or entered-in-error: no result
unresolved_reference   a reference to a resource not in the delivery (a Coverage's Patient, an EOB's Coverage)
duplicate_resource     a second resource of the same type and id (the first is kept)
no_coverage            a Patient no Coverage refers to: there is no eligibility span to load
====================== ==============================================================================

Rows are then validated by the loader like any delivery (dates, codes, amounts, keys). Each row's
``source_file`` is the NDJSON file, followed, for rows taken from one element of a resource, by
``#`` and that element (``#item[2]``, ``#component[0]``), or, for the reversal row of a claim line
a cancelled EOB reverses, ``#reversal[<claim line number>]``; ``line_number`` is the line. The table
``fhir_resource`` keeps, for every row, the resource type and id it came from.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from allpayer.errors import InputFileError
from allpayer.inputs import readers
from allpayer.inputs.fhir import cancellations, mapping
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
PROVENANCE_SCHEMA = pa.schema(
    [(name, pa.int64() if name == "line_number" else pa.string())
     for name in ("table_name", "source_file", "line_number", "resource_type", "resource_id")]
)
"""The columns of ``fhir_resource`` (less ``load_run_id``)."""
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


@dataclass
class Withdrawal:
    """A resource whose status withdraws what an earlier load stored (`mapping.REVERSING_STATUSES`):
    its type (`kind`), file, line and id; `key`: `mapping.eob_cancellation` of an EOB, the
    eligibility row of a Coverage; `reject`: the index of its quarantine row among the rejects."""

    kind: str
    relpath: str
    line: int
    rid: str
    key: dict
    reject: int


class _Collector:
    """Accumulates rows, rejects and counts."""

    def __init__(self):
        self.rows: dict[str, list[dict]] = {}
        self.chunks: dict[str, list[pa.Table]] = {}
        self.sources: dict[str, set[str]] = {}
        self.rejects: list[tuple] = []
        self.counts: dict[str, RecordCount] = {}
        self.provenance: list[tuple] = []
        self.withdrawals: list[Withdrawal] = []

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

    def withdraw(self, kind: str, relpath: str, line: int, message: str, raw: str, rid: str, key: dict) -> None:
        """A cancelled or entered-in-error EOB or Coverage: quarantined ``inactive_status`` unless
        the load finds what it withdraws (`FhirDelivery.prepare`); `key` names it."""
        self.reject(kind, relpath, line, "inactive_status", message, raw)
        self.withdrawals.append(Withdrawal(kind, relpath, line, rid, key, len(self.rejects) - 1))

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
        if person is not None:
            usable_coverages[rid] = row  # claims adjudicated under it take their member, payer and plan from it
        if status in mapping.REVERSING_STATUSES:  # withdraws a stored span by its key: no Patient needed
            out.withdraw("Coverage", relpath, line, f"Coverage.status is {status}: not an enrollment, no eligibility span", text, rid, row)
            continue
        if person is None:
            out.reject("Coverage", relpath, line, "unresolved_reference", f"beneficiary Patient/{row['person_id']} is not in the delivery", text)
            continue
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
            status = resource.get("status")
            if rtype == "ExplanationOfBenefit" and status in mapping.REVERSING_STATUSES:
                out.withdraw(rtype, f.relpath, line, f"ExplanationOfBenefit.status is {status}: not an active claim, not loaded",
                             text, rid, mapping.eob_cancellation(resource))
                continue
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
        {f.name: pa.array([p[i] for p in out.provenance], type=f.type) for i, f in enumerate(PROVENANCE_SCHEMA)},
        schema=PROVENANCE_SCHEMA,
    )
    return FhirDelivery(
        format="fhir",
        folder=folder,
        files=files,
        tables=tables,
        sources={t: sorted(s) for t, s in out.sources.items()},
        rejects=rejects,
        records=sorted(out.counts.values(), key=lambda r: RESOURCE_TYPES.index(r.name[5:]) if r.name[5:] in RESOURCE_TYPES else 99),
        side_tables={"fhir_resource": provenance},
        withdrawals=out.withdrawals,
    )


@dataclass
class FhirDelivery(MappedDelivery):
    """A FHIR delivery (`read_fhir_folder`). Its `withdrawals` (cancelled or entered-in-error
    EOBs and Coverages) are quarantined ``inactive_status`` as read; when the load begins
    (`prepare`) those that withdraw a stored claim or span become reversal rows or a withdrawn
    span (`allpayer.inputs.fhir.cancellations`), and are counted loaded (already loaded when the
    claim or span was withdrawn before)."""

    withdrawals: list[Withdrawal] = field(default_factory=list)

    def prepare(self, raw, run_id: str) -> None:
        if not self.withdrawals:
            return
        loaded, already = self._reverse_claims(raw)
        spans, before = self._withdraw_spans(raw, run_id)
        loaded |= spans
        already |= before
        counts = {r.name: r for r in self.records}
        settled = set()
        for w in self.withdrawals:
            where = (w.relpath, w.line)
            if where in loaded or where in already:
                rc = counts[f"fhir:{w.kind}"]
                rc.quarantined -= 1
                if where in loaded:
                    rc.mapped += 1
                else:
                    rc.already_loaded += 1
                settled.add(w.reject)
        if settled:
            keep = [i not in settled for i in range(self.rejects.num_rows)]
            self.rejects = self.rejects.filter(pa.array(keep, pa.bool_()))

    def _reverse_claims(self, raw) -> tuple[set, set]:
        """The reversal rows of the claims the delivery's cancelled EOBs cancel, added to the
        claim tables; returns the (file, line) of the EOBs that reverse a claim, and of those
        whose claim is already reversed (or cancelled again after the delivery's first
        cancellation of it)."""
        eobs = [w for w in self.withdrawals if w.kind == "ExplanationOfBenefit"]
        if not eobs:
            return set(), set()
        first: dict[tuple, Withdrawal] = {}
        for w in sorted(eobs, key=lambda w: (w.relpath, w.line)):
            first.setdefault((w.key["claim_id"], w.key["table_name"]), w)
        wanted = pa.Table.from_pylist(
            [{**w.key, "resource_id": w.rid, "source_file": w.relpath, "line_number": w.line} for w in first.values()],
            schema=cancellations.CANCELLATION_SCHEMA,
        )
        loaded, found = set(), set()
        for t in cancellations.CLAIM_TABLES:
            rows, stored, reversing = cancellations.reversals(raw, t, wanted)
            found |= stored
            loaded |= reversing
            if not rows.num_rows:
                continue
            ids = rows.column(cancellations.RESOURCE_ID)
            rows = rows.drop_columns([cancellations.RESOURCE_ID])
            self.tables[t] = _concat(t, [self.tables[t], rows]) if t in self.tables else rows
            self.sources[t] = sorted(set(self.sources.get(t, ())) | {f for f, _ in reversing})
            provenance = pa.table(
                {
                    "table_name": pa.array([t] * rows.num_rows, pa.string()),
                    "source_file": rows.column("source_file"),
                    "line_number": rows.column("line_number"),
                    "resource_type": pa.array(["ExplanationOfBenefit"] * rows.num_rows, pa.string()),
                    "resource_id": ids,
                },
                schema=PROVENANCE_SCHEMA,
            )
            self.side_tables["fhir_resource"] = pa.concat_tables([self.side_tables["fhir_resource"], provenance])
        # A claim's later cancellations in the delivery change nothing after its first one.
        found |= {(w.relpath, w.line) for w in eobs
                  if (first[(w.key["claim_id"], w.key["table_name"])].relpath,
                      first[(w.key["claim_id"], w.key["table_name"])].line) in found}
        return loaded, found - loaded

    def _withdraw_spans(self, raw, run_id: str) -> tuple[set, set]:
        """Withdraw the stored spans of the delivery's cancelled Coverages; returns the (file,
        line) of the Coverages that withdraw a span, and of those whose span was withdrawn before."""
        covs = [w for w in self.withdrawals if w.kind == "Coverage"]
        if not covs:
            return set(), set()
        keys = ("member_id", "payer", "plan", "enrollment_start_date")
        spans = pa.table(
            {
                **{k: pa.array([w.key.get(k) for w in covs], pa.string()) for k in keys},
                "source_file": pa.array([w.relpath for w in covs], pa.string()),
                "line_number": pa.array([w.line for w in covs], pa.int64()),
            }
        )
        withdrawn, before = cancellations.withdraw_spans(raw, run_id, spans)
        if withdrawn:
            self.withdrawn["eligibility"] = self.withdrawn.get("eligibility", 0) + len(withdrawn)
        return withdrawn, before


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
