"""Delivery formats: which format a folder holds, and how each one reaches the loader.

=========  =====================================================================================
format     what the folder holds
=========  =====================================================================================
native     one file (or folder of parts) per contract table, named ``<table>.csv``,
           ``.csv.gz`` or ``.parquet`` (see `allpayer.inputs.readers`).
tuva       the same file names, holding the Tuva input layer (the pinned version in
           ``reference/data/tuva_input_layer_columns.csv``). Columns the contract does not define
           (``file_name``, ``ingest_datetime``, names, addresses...) are not loaded and are listed
           on the load report. ``medical_claim.payment_arrangement`` (not a Tuva column) is
           ``ffs`` for the rows of a file that lacks the column. ``provider_roster`` (not a Tuva
           table) is loaded when the folder has one but is not required.
fhir       FHIR R4 bulk data: ``*.ndjson`` (or ``.ndjson.gz``) files, one resource a line
           (`allpayer.inputs.fhir`). Contract tables no FHIR resource carries
           (``provider_roster``, ``employer_group``) may sit beside them as native files.
cclf       CMS CCLF files (``P.A<ACO>.ACO.ZC<n>...`` names, or their monthly zip), read by
           `allpayer.inputs.cclf.read_cclf_folder` together with the CCLF records earlier loads
           stored in the database (`CclfDelivery`), so a month loads on its own.
=========  =====================================================================================

`detect_format` decides from file names (and, between native and tuva, from the headers);
``allpayer load --format`` overrides it.

A format reader that maps records itself (FHIR, CCLF) returns a `MappedDelivery`: contract tables
as Arrow tables of text (plus ``source_file`` and ``line_number``), the records it could not map
(each with file, line, rule and message), and its record counts. The loader validates the mapped
rows exactly like native rows, and stores the rejects in ``quarantine`` and the record counts in
``load_reconciliation`` (``read = loaded + already_loaded + quarantined`` per record kind, where
``loaded`` counts the records mapped to contract rows, and ``already_loaded`` those that change
nothing stored: a FHIR cancellation of a claim already reversed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from allpayer.errors import AllpayerError, InputFileError
from allpayer.inputs import readers
from allpayer.inputs.schema import REQUIRED_TABLES

FORMATS = ("native", "tuva", "fhir", "cclf")

FHIR_SUFFIXES = (".ndjson", ".ndjson.gz")
CCLF_NAME = re.compile(r"(^[PT]\.[A-Z0-9]+\.ACO\.ZC[0-9AB]?[YR]\d{2}\.)|(^CCLF[0-9AB])", re.IGNORECASE)
"""CMS CCLF file names: ``P.A1234.ACO.ZC1Y24.D240115.T1234567``, run-out ``ZC1R24``, test files
``T.A1234...``, monthly zips ``P.A1234.ACO.ZCY24.D240115.T1234567.zip``, or files a team renamed
``CCLF1...``."""

TUVA_REQUIRED = ("eligibility", "medical_claim")
TUVA_DEFAULTS = {"medical_claim": {"payment_arrangement": "ffs"}}
"""Contract columns the Tuva input layer lacks, and the value a Tuva file's rows take."""

REJECT_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("rule", pa.string()),
        ("message", pa.string()),
        ("raw_row", pa.string()),
    ]
)


@dataclass
class RecordCount:
    """How many source records of one kind (e.g. ``fhir:Patient``) a reader read, mapped and
    quarantined."""

    name: str
    files: list[str]
    read: int = 0
    mapped: int = 0
    quarantined: int = 0
    already_loaded: int = 0
    """Records that change nothing the database holds (a FHIR cancellation of a claim already
    reversed, of a span already withdrawn)."""


@dataclass
class MappedDelivery:
    """What a mapping reader (FHIR, CCLF) made of a folder.

    - ``tables``: contract table -> Arrow table with some of its columns (any type, staged as
      text) and ``source_file``, ``line_number``.
    - ``sources``: contract table -> the relative paths of the files its rows came from.
    - ``rejects``: records that could not be mapped (`REJECT_SCHEMA`; ``table_name`` is the
      record kind, e.g. ``fhir:Coverage``).
    - ``records``: counts per record kind; ``read = mapped + already_loaded + quarantined``.
    - ``side_tables``: provenance tables stored as they are, with ``load_run_id`` added (e.g.
      ``fhir_resource``).
    """

    format: str
    folder: Path
    files: list[readers.InputFile]
    tables: dict[str, pa.Table]
    sources: dict[str, list[str]]
    rejects: pa.Table
    records: list[RecordCount]
    side_tables: dict[str, pa.Table] = field(default_factory=dict)
    negative_originals: tuple = ()
    """The money columns (and claim lines) that an original row (adjustment_sequence 0) may carry
    negative (`allpayer.inputs.validate.NegativeOriginals`); none by default."""
    withdrawn: dict[str, int] = field(default_factory=dict)
    """Stored rows that `prepare` moved to their table's ``<table>_replaced`` without a row to
    take their place (FHIR: the eligibility spans of cancelled Coverages), per table."""

    def all_files(self) -> list[readers.InputFile]:
        return list(self.files)

    def prepare(self, raw, run_id: str) -> None:
        """Called by the loader in the run's database before any table is loaded: a reader that
        needs what earlier loads stored (CCLF, FHIR cancellations) reads its delivery here, and
        may add tables. Nothing to do by default."""

    def files_of(self, table: str) -> list[readers.InputFile]:
        wanted = set(self.sources.get(table, ()))
        return [f for f in self.files if f.relpath in wanted]

    def store_records(self, raw, run_id: str) -> list:
        """Store the rejects, record counts and side tables of this delivery in the run's
        database; returns one `TableLoad` per record kind (for the load report)."""
        from allpayer.inputs.load import TableLoad, insert_reconciliation

        view = "_mapped_rejects"
        raw.register(view, self.rejects)
        try:
            raw.execute(
                f"INSERT INTO quarantine SELECT ?, table_name, source_file, line_number, rule, rule, message, raw_row "
                f"FROM {view} ORDER BY source_file, line_number",
                [run_id],
            ).fetchall()
        finally:
            raw.unregister(view)
        out = []
        for r in self.records:
            if r.read != r.mapped + r.already_loaded + r.quarantined:
                raise AllpayerError(
                    f"{r.name}: record counts do not reconcile (read {r.read} != mapped {r.mapped} + already loaded "
                    f"{r.already_loaded} + quarantined {r.quarantined})"
                )
            record = TableLoad(table=r.name, files=list(r.files), read=r.read, loaded=r.mapped,
                               already_loaded=r.already_loaded, quarantined=r.quarantined, table_rows=r.mapped)
            insert_reconciliation(raw, run_id, record)
            out.append(record)
        for name, table in self.side_tables.items():
            view = f"_side_{name}"
            raw.register(view, table)
            try:
                raw.execute(
                    f'CREATE TABLE IF NOT EXISTS "{name}" AS SELECT CAST(NULL AS VARCHAR) AS load_run_id, * FROM {view} LIMIT 0'
                ).fetchall()
                cols = ", ".join(f'"{c}"' for c in table.column_names)
                raw.execute(f'INSERT INTO "{name}" (load_run_id, {cols}) SELECT ?, {cols} FROM {view}', [run_id]).fetchall()
            finally:
                raw.unregister(view)
        return out


def _top_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def fhir_files(folder: Path) -> list[Path]:
    """The NDJSON files of a folder (top level), sorted by name."""
    return [p for p in _top_files(folder) if p.name.lower().endswith(FHIR_SUFFIXES)]


def cclf_files(folder: Path) -> list[Path]:
    """The files of a folder with CCLF names (top level)."""
    return [p for p in _top_files(folder) if CCLF_NAME.search(p.name)]


def tuva_only_columns() -> dict[str, set[str]]:
    """Per contract table, the columns of the pinned Tuva input layer the contract does not
    define (``file_name``, ``ingest_datetime``, names and addresses...)."""
    from allpayer.inputs.schema import TABLES
    from allpayer.reference import tuva_input_layer_columns

    return {t: set(cols) - set(TABLES[t].column_names) for t, cols in tuva_input_layer_columns().items()}


def detect_format(folder: str | Path) -> str:
    """The format of a delivery folder, from its file names.

    NDJSON files: ``fhir``; CCLF file names: ``cclf`` (both at once is an error). Contract file
    names: ``tuva`` when no medical_claim file has ``payment_arrangement`` and some file has a
    column only the Tuva input layer defines (``file_name``, ``ingest_datetime``...); otherwise
    ``native``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        readers.discover(folder)  # raises the folder error
    fhir, cclf = fhir_files(folder), cclf_files(folder)
    if fhir and cclf:
        raise InputFileError(
            str(folder),
            f"holds both FHIR files ({fhir[0].name}) and CCLF files ({cclf[0].name}): deliver them in separate folders",
        )
    if fhir:
        return "fhir"
    if cclf:
        return "cclf"
    delivery = readers.discover(folder)
    headers = {t: [readers.file_columns(f) for f in files] for t, files in delivery.files.items()}
    if any("payment_arrangement" in h for h in headers.get("medical_claim", [])):
        return "native"
    tuva_only = tuva_only_columns()
    if any(set(h) & tuva_only.get(t, set()) for t, hs in headers.items() for h in hs):
        return "tuva"
    return "native"


def resolve_format(folder: str | Path, fmt: str | None) -> str:
    """`fmt` checked against `FORMATS`, or the detected format when `fmt` is None or ``auto``."""
    if fmt is None or fmt == "auto":
        return detect_format(folder)
    if fmt not in FORMATS:
        raise AllpayerError(f"--format {fmt}: expected one of {', '.join(FORMATS)} (or leave it out to detect)")
    return fmt


def _without(delivery: readers.Delivery, names: set[str]) -> readers.Delivery:
    delivery.ignored = [n for n in delivery.ignored if n not in names]
    return delivery


def open_delivery(folder: str | Path, fmt: str):
    """Open a folder in format `fmt`: ``(delivery, mapped, required, defaults)``.

    ``delivery`` holds the native contract files of the folder, ``mapped`` the `MappedDelivery`
    of a mapping reader (or None), ``required`` the tables the load needs and ``defaults``
    (table -> column -> value) the values of contract columns a format lacks.
    """
    folder = Path(folder)
    delivery = readers.discover(folder)
    if fmt == "native":
        return delivery, None, REQUIRED_TABLES, {}
    if fmt == "tuva":
        return delivery, None, TUVA_REQUIRED, TUVA_DEFAULTS
    if fmt == "fhir":
        from allpayer.inputs.fhir import read_fhir_folder

        mapped = read_fhir_folder(folder)
        _without(delivery, {f.relpath for f in mapped.files})
        return delivery, mapped, REQUIRED_TABLES, {}
    if fmt == "cclf":
        try:
            from allpayer.inputs.cclf import read_cclf_folder
        except ImportError:
            raise AllpayerError("--format cclf: this build has no CCLF reader (allpayer.inputs.cclf)") from None
        mapped = CclfDelivery.open(folder)
        _without(delivery, {f.relpath for f in mapped.files})
        return delivery, mapped, REQUIRED_TABLES, {}
    raise AllpayerError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")


CCLF_TABLES = ("eligibility", "medical_claim", "pharmacy_claim")


@dataclass
class CclfDelivery(MappedDelivery):
    """A CCLF delivery, read when the load begins (`prepare`) together with the CCLF records that
    earlier loads stored in the database, so that loading one month after the others gives the
    same tables as loading every month at once (`allpayer.inputs.cclf.read_cclf_folder` with
    ``history=True``). Rows the earlier loads stored that the new delivery changes are replaced:
    they move, whole, to the table's `allpayer.inputs.schema.replaced_table` with the id of this
    load (`replace_superseded`), and their new form is loaded."""

    superseded: dict[str, int] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path) -> "CclfDelivery":
        """The CCLF files of `folder`, to be read by `prepare`; their original claims may carry
        the negative amounts of `allpayer.inputs.cclf.NEGATIVE_ORIGINALS`."""
        from allpayer.inputs.cclf import NEGATIVE_ORIGINALS

        folder = Path(folder)
        files = [readers.InputFile("cclf", p, p.name) for p in cclf_files(folder)]
        names = [f.relpath for f in files]
        return cls(
            format="cclf", folder=folder, files=files, tables={t: None for t in CCLF_TABLES},
            sources={t: names for t in CCLF_TABLES}, rejects=REJECT_SCHEMA.empty_table(), records=[],
            negative_originals=NEGATIVE_ORIGINALS,
        )

    def prepare(self, raw, run_id: str) -> None:
        from allpayer.inputs.cclf import read_cclf_folder

        result = read_cclf_folder(self.folder, con=raw, history=True, run_id=run_id)
        read = as_mapped_delivery(result, self.folder, "cclf")
        self.tables, self.rejects, self.records = read.tables, read.rejects, read.records
        self.side_tables = read.side_tables
        if "cclf_final_action" in self.side_tables and _has_table(raw, "cclf_final_action"):
            raw.execute("DELETE FROM cclf_final_action").fetchall()  # re-derived in full from every stored record
        self.superseded = replace_superseded(raw, run_id, result.superseded)


def _has_table(raw, name: str) -> bool:
    return bool(raw.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [name]).fetchall()[0][0])


def replace_superseded(raw, run_id: str, superseded: dict[str, pa.Table]) -> dict[str, int]:
    """Move the stored rows that a CCLF delivery supersedes (same key, same source file and line
    as a row the stored CCLF records gave before) to the table's `replaced_table`, with `run_id`
    as the load that replaced them (`allpayer.inputs.load.replace_rows`), so that a run as of an
    earlier load reads them back. Returns the number of rows moved per table."""
    from allpayer.inputs.load import replace_rows, stored_columns
    from allpayer.inputs.schema import TABLES

    out = {}
    for t, rows in superseded.items():
        if rows is None or rows.num_rows == 0 or not _has_table(raw, t):
            continue
        key = TABLES[t].key + ("source_file", "line_number")
        types = stored_columns(TABLES[t])
        view = "_cclf_superseded_arrow"
        raw.register(view, rows.select(list(key)))
        try:
            typed = ", ".join(f'CAST(s."{c}" AS {types[c]}) AS "{c}"' for c in key)
            on = " AND ".join(f'x."{c}" IS NOT DISTINCT FROM r."{c}"' for c in key)
            out[t] = replace_rows(raw, t, f"(SELECT {typed} FROM {view} s)", on, run_id)
        finally:
            raw.unregister(view)
    return out


def as_mapped_delivery(result, folder: Path, fmt: str) -> MappedDelivery:
    """A reader's result as a `MappedDelivery`: as it is, or adapted from the CCLF reader's
    `CclfRead` (its tables as they are; its unusable lines quarantined as ``cclf:<file type>``
    records, counted per file type: read = parsed + quarantined)."""
    if isinstance(result, MappedDelivery):
        return result
    if fmt == "cclf" and hasattr(result, "files") and hasattr(result, "quarantine"):
        folder = Path(folder)
        paths = [p for p in _top_files(folder) if CCLF_NAME.search(p.name)]
        files = [readers.InputFile("cclf", p, p.name) for p in paths]
        names = [f.relpath for f in files]
        counts: dict[str, RecordCount] = {}
        for fc in result.files:
            rc = counts.setdefault(fc.file_type, RecordCount(name=f"cclf:{fc.file_type}", files=[]))
            rc.files.append(fc.source_file)
            rc.read += fc.read
            rc.mapped += fc.parsed
            rc.quarantined += fc.quarantined
        q = result.quarantine
        rejects = pa.table(
            {
                "table_name": pa.array([f"cclf:{t}" for t in q.column("file_type").to_pylist()], pa.string()),
                **{c: q.column(c).cast(REJECT_SCHEMA.field(c).type) for c in ("source_file", "line_number", "rule", "message", "raw_row")},
            }
        )
        side = {}
        if getattr(result, "final_action", None) is not None and result.final_action.num_rows:
            side["cclf_final_action"] = result.final_action
        return MappedDelivery(
            format="cclf",
            folder=folder,
            files=files,
            tables=dict(result.tables),
            sources={t: names for t in result.tables},
            rejects=rejects,
            records=sorted(counts.values(), key=lambda r: r.name),
            side_tables=side,
        )
    raise AllpayerError(f"--format {fmt}: the reader returned {type(result).__name__}, expected a MappedDelivery")
