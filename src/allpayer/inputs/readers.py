"""Readers: find a delivery's files and stage them, as text, into DuckDB with their line numbers.

A delivery is a folder with one file per table, named ``<table>.csv``, ``<table>.csv.gz`` or
``<table>.parquet``, or a subfolder ``<table>/`` of part files in those formats. Other files
(a ``manifest.json``, a README) are ignored and listed.

Every file is read as text columns (one per contract column, NULL where the file lacks an
optional column) plus ``source_file`` (the path relative to the delivery folder) and
``line_number``: a CSV file is staged into a temporary table of them, a Parquet file is read in
place by a query that turns its columns to text (`parquet_source`), once, by the validation:

- CSV: comma-separated, double-quote quoting (RFC 4180), UTF-8 (a byte-order mark is allowed),
  first line the header. Header names are matched case-insensitively. ``line_number`` is the
  physical line on which the row starts (the header is line 1). Rows that cannot be split into
  the header's columns are kept as structural rejects (rule ``malformed_row``) with their line.
- Parquet: columns are read with their own types and turned to text, except, for the loader,
  those whose type gives exactly what their text would (DATE, BOOLEAN, money as a DECIMAL with
  2 decimals, 32-bit whole numbers), which are validated typed; ``line_number`` is the 1-based
  row number in the file. A column whose Parquet type cannot hold its kind exactly (a
  float money column, for instance) stops the load.

A file that cannot be read at all (empty, not UTF-8, not Parquet, an unterminated quote, a
missing required column) raises `InputFileError` naming the file and the problem.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from allpayer.backend import sql_identifier, sql_literal
from allpayer.errors import InputFileError
from allpayer.inputs import validate
from allpayer.inputs.schema import TABLES, Table

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES

SCAN_CHUNK_BYTES = 1 << 24

PROVENANCE_COLUMNS = ("source_file", "line_number")

_counter = itertools.count(1)


@dataclass(frozen=True)
class InputFile:
    """One file of a delivery."""

    table: str
    path: Path
    relpath: str  # relative to the delivery folder, recorded as `source_file`

    @property
    def format(self) -> str:
        return "parquet" if self.path.name.endswith(PARQUET_SUFFIXES) else "csv"


@dataclass
class Delivery:
    """The files of one delivery folder, by table, and the files that were not recognised."""

    folder: Path
    files: dict[str, list[InputFile]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def all_files(self) -> list[InputFile]:
        return [f for fs in self.files.values() for f in fs]


def _table_of(name: str) -> str | None:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def discover(folder: str | Path) -> Delivery:
    """List the files of a delivery folder by table. Raises `InputFileError` on an ambiguous layout."""
    folder = Path(folder)
    if not folder.exists():
        raise InputFileError(str(folder), "folder not found")
    if not folder.is_dir():
        raise InputFileError(str(folder), "not a folder: expected a folder with one file per table")
    delivery = Delivery(folder=folder)
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if entry.name not in TABLES:
                delivery.ignored.append(entry.name + "/")
                continue
            parts = sorted(p for p in entry.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES) and not p.name.startswith("."))
            if not parts:
                raise InputFileError(str(entry), f"no part files: expected {entry.name}/*.csv, *.csv.gz or *.parquet")
            files = [InputFile(entry.name, p, p.relative_to(folder).as_posix()) for p in parts]
        else:
            table = _table_of(entry.name)
            if table not in TABLES:
                delivery.ignored.append(entry.name)
                continue
            files = [InputFile(table, entry, entry.name)]
        table = files[0].table
        if table in delivery.files:
            others = ", ".join(f.relpath for f in delivery.files[table])
            raise InputFileError(
                str(files[0].path), f"table {table} is delivered more than once (also {others}): keep one file or one folder per table"
            )
        delivery.files[table] = files
    return delivery


# --------------------------------------------------------------------------------------------
# CSV layout scan


@dataclass
class CsvLayout:
    """Where the records of a CSV file start: byte offsets and 1-based physical line numbers."""

    header: list[str]
    record_offsets: np.ndarray  # int64, 0-based byte offset of each data record's first byte
    record_lines: np.ndarray  # int64, physical line number on which each data record starts

    @property
    def n_records(self) -> int:
        return int(self.record_offsets.size)


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _read_header(path: Path) -> list[str]:
    try:
        with _open_bytes(path) as f:
            first = f.readline(1 << 22)
    except (OSError, EOFError) as exc:
        raise InputFileError(str(path), f"cannot be read (truncated or corrupt compressed file?): {exc}") from exc
    if not first.strip(b"\r\n\t \xef\xbb\xbf"):
        if not first:
            raise InputFileError(str(path), "empty file: expected a header line naming the columns")
        raise InputFileError(str(path), "line 1 is blank: expected a header line naming the columns")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError(str(path), "line 1 is not valid UTF-8 text: save the file as UTF-8") from None
    names = next(csv.reader(io.StringIO(text)))
    names = [n.strip().lower() for n in names]
    if any(not n for n in names):
        raise InputFileError(str(path), "the header has an empty column name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputFileError(str(path), f"the header names column {dupes[0]} more than once")
    return names


def scan_csv(path: Path) -> CsvLayout:
    """Find the start of every record with vectorized byte scans (newlines and quote parity).

    A newline starts a new record when the number of double quotes before it is even (outside a
    quoted field) and the line is not blank. An odd number of quotes at the end of the file means
    a quoted field is never closed: the file is truncated or has a stray quote.
    """
    header = _read_header(path)
    nl_parts, parity_parts, cr_parts = [], [], []
    offset = 0
    quotes = 0
    last_byte = -1
    try:
        with _open_bytes(path) as f:
            while True:
                chunk = f.read(SCAN_CHUNK_BYTES)
                if not chunk:
                    break
                a = np.frombuffer(chunk, dtype=np.uint8)
                nl = np.flatnonzero(a == 10)
                q = np.flatnonzero(a == 34)
                parity_parts.append(((quotes + np.searchsorted(q, nl)) & 1).astype(bool))
                prev = np.where(nl > 0, a[np.maximum(nl - 1, 0)], last_byte)
                cr_parts.append(prev == 13)
                nl_parts.append(nl.astype(np.int64) + offset)
                quotes += int(q.size)
                offset += int(a.size)
                last_byte = int(a[-1])
    except (OSError, EOFError) as exc:
        raise InputFileError(str(path), f"cannot be read (truncated or corrupt compressed file?): {exc}") from exc
    nls = np.concatenate(nl_parts) if nl_parts else np.zeros(0, np.int64)
    parity_at_nl = np.concatenate(parity_parts) if parity_parts else np.zeros(0, bool)
    cr_at_nl = np.concatenate(cr_parts) if cr_parts else np.zeros(0, bool)
    total = offset

    # Lines: line i (0-based) starts after newline i-1; a last line may lack its newline.
    starts = np.concatenate([[0], nls + 1]).astype(np.int64)
    ends = np.concatenate([nls, [total]]).astype(np.int64)
    parity_at_start = np.concatenate([[False], parity_at_nl])
    lengths = ends - starts - np.concatenate([cr_at_nl, [False]]).astype(np.int64)
    if starts[-1] >= total:  # the file ends with a newline: no trailing partial line
        starts, ends, parity_at_start, lengths = starts[:-1], ends[:-1], parity_at_start[:-1], lengths[:-1]
    line_numbers = np.arange(1, starts.size + 1, dtype=np.int64)

    if starts.size > 1 and parity_at_start[1]:
        raise InputFileError(str(path), "line 1 (the header) has an unterminated double quote")
    # Line endings outside quoted fields must be all LF or all CRLF (the parser needs one kind).
    outside = ~parity_at_nl
    if outside.any():
        endings = cr_at_nl[outside]
        if endings.any() and not endings.all():
            first_other = int(np.flatnonzero(outside)[np.flatnonzero(endings != endings[0])[0]]) + 1
            raise InputFileError(
                str(path), f"line {first_other}: mixed line endings (CRLF and LF): save the file with one kind"
            )
    is_record = (~parity_at_start) & (lengths > 0)
    is_record[:1] = False  # the header
    offsets = starts[is_record]
    lines = line_numbers[is_record]
    if quotes % 2 == 1:
        where = int(lines[-1]) if lines.size else 1
        raise InputFileError(
            str(path), f"line {where}: a quoted field is never closed (truncated file or stray double quote)"
        )
    return CsvLayout(header=header, record_offsets=offsets, record_lines=lines)


# --------------------------------------------------------------------------------------------
# Staging


_q = sql_identifier
_lit = sql_literal


def _duck_message(exc: Exception, path: Path) -> str:
    """DuckDB's error as one short line, without its category prefix or the file's path."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    msg = re.sub(r"^[A-Za-z ]+ Error: ", "", msg)
    return msg.replace(f" '{path}'", "").replace(f'"{path}"', "").replace(str(path), "the file")


def _scalar(con, sql: str):
    """The single value of a one-row, one-column query (the result is fully consumed)."""
    return con.execute(sql).fetchall()[0][0]


def create_stage(con, spec: Table, name: str | None = None) -> str:
    """Create the empty text staging table for one contract table (``_stage_<table>`` unless
    `name` is given); returns its name."""
    name = name or f"_stage_{spec.name}"
    cols = ", ".join(f"{_q(c)} VARCHAR" for c in spec.column_names)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({cols}, source_file VARCHAR, line_number BIGINT)")
    return name


def create_rejects(con) -> str:
    """Create the empty table of structural rejects (rows no parser could split); returns its name."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _stage_rejects (table_name VARCHAR, source_file VARCHAR, "
        "line_number BIGINT, rule VARCHAR, message VARCHAR, raw_row VARCHAR)"
    )
    return "_stage_rejects"


def _check_columns(path: Path, spec: Table, present: list[str]) -> None:
    missing = [c for c in spec.required_columns if c not in present]
    if missing:
        hint = ""
        if len(present) == 1 and re.search(r"[;\t|]", present[0]):
            hint = " (is the file comma-separated?)"
        plural = "s" if len(missing) > 1 else ""
        raise InputFileError(
            str(path), f"missing required column{plural} {', '.join(missing)} for table {spec.name}{hint}"
        )


@dataclass
class StagedFile:
    """What staging one file produced."""

    file: InputFile
    rows: int  # rows staged as text
    rejects: int  # structural rejects
    columns: list[str]  # contract columns present in the file
    extra_columns: list[str]  # columns in the file that the contract does not define
    native: tuple[str, ...] = ()  # contract columns read typed, not as text (see `parquet_source`)

    @property
    def read(self) -> int:
        return self.rows + self.rejects


def stage_csv(con, f: InputFile, spec: Table, stage: str, rejects: str) -> StagedFile:
    """Stage one CSV file (text columns, line numbers, structural rejects)."""
    layout = scan_csv(f.path)
    header = layout.header
    _check_columns(f.path, spec, header)
    n = next(_counter)
    raw, rt, rs, lines = f"_raw_{n}", f"_rej_{n}", f"_rejscan_{n}", f"_lines_{n}"
    columns = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in header) + "}"
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT row_number() OVER () AS __ordinal, * "
            f"FROM read_csv({_lit(str(f.path))}, columns={columns}, header=true, auto_detect=false, "
            f"delim=',', quote='\"', escape='\"', strict_mode=true, parallel=false, "
            f"store_rejects=true, rejects_table={_lit(rt)}, rejects_scan={_lit(rs)})"
        )
    except Exception as exc:  # duckdb raises its own exception types for unreadable files
        raise InputFileError(str(f.path), f"cannot be read as CSV: {_duck_message(exc, f.path)}") from exc
    try:
        rej = con.execute(
            f"SELECT line_byte_position, bool_or(error_type = 'INVALID ENCODING') FROM {rt} "
            f"GROUP BY line_byte_position ORDER BY line_byte_position"
        ).fetchnumpy()
        positions = np.asarray(rej["line_byte_position"], dtype=np.int64)
        bad_encoding = np.asarray(rej[list(rej.keys())[1]], dtype=bool)
        idx = np.searchsorted(layout.record_offsets, positions - 1, side="left")
        idx = np.minimum(idx, max(layout.n_records - 1, 0))
        reject_lines = layout.record_lines[idx] if layout.n_records else np.zeros(0, np.int64)
        if bad_encoding.any():
            line = int(reject_lines[bad_encoding][0])
            raise InputFileError(str(f.path), f"line {line} is not valid UTF-8 text: save the file as UTF-8")
        n_rows = _scalar(con, f"SELECT count(*) FROM {raw}")
        reject_idx = np.unique(idx)
        if n_rows + reject_idx.size != layout.n_records:
            raise InputFileError(
                str(f.path),
                f"cannot be split into rows consistently ({layout.n_records} rows by line structure, "
                f"{n_rows + reject_idx.size} parsed): check for stray double quotes",
            )
        accepted = np.setdiff1d(np.arange(layout.n_records, dtype=np.int64), reject_idx, assume_unique=True)
        con.register(
            lines,
            pa.table({"__ordinal": np.arange(1, n_rows + 1, dtype=np.int64), "__line": layout.record_lines[accepted]}),
        )
        present = [c for c in header if c in spec.column_names]
        cols = ", ".join(_q(c) for c in present)
        con.execute(
            f"INSERT INTO {stage} ({cols}{', ' if cols else ''}source_file, line_number) "
            f"SELECT {', '.join(f'r.{_q(c)}' for c in present)}{', ' if cols else ''}{_lit(f.relpath)}, l.__line "
            f"FROM {raw} r JOIN {lines} l USING (__ordinal)"
        )
        con.register(f"{lines}_rej", pa.table({"line_byte_position": positions, "__line": reject_lines}))
        con.execute(
            f"""
            INSERT INTO {rejects}
            WITH e AS (
                SELECT l.__line, e.error_type::VARCHAR AS error_type, e.error_message, e.csv_line,
                       TRY_CAST(regexp_extract(e.error_message, 'Found: (\\d+)', 1) AS BIGINT) AS found
                FROM {rt} e JOIN {lines}_rej l USING (line_byte_position)
            )
            SELECT {_lit(spec.name)}, {_lit(f.relpath)}, __line, 'malformed_row',
                   CASE
                       WHEN bool_or(error_type = 'MISSING COLUMNS') THEN
                           'expected {len(header)} fields, found ' || min(found) FILTER (WHERE error_type = 'MISSING COLUMNS')
                           || ' (truncated or malformed row)'
                       WHEN bool_or(error_type = 'TOO MANY COLUMNS') THEN
                           'expected {len(header)} fields, found ' || max(found) FILTER (WHERE error_type = 'TOO MANY COLUMNS')
                           || ' (unquoted comma or malformed row)'
                       WHEN bool_or(error_type = 'UNQUOTED VALUE') THEN 'misplaced double quote in a field'
                       WHEN bool_or(error_type = 'LINE SIZE OVER MAXIMUM') THEN 'row longer than the maximum line size'
                       ELSE lower(first(error_type)) || ': ' || first(error_message)
                   END,
                   to_json({{'csv_line': trim(first(csv_line), chr(10) || chr(13))}})::VARCHAR
            FROM e GROUP BY __line ORDER BY __line
            """
        )
        return StagedFile(f, int(n_rows), int(reject_idx.size), present, [c for c in header if c not in spec.column_names])
    finally:
        for view in (lines, f"{lines}_rej"):
            try:
                con.unregister(view)
            except Exception:
                pass
        con.execute(f"DROP TABLE IF EXISTS {raw}")
        con.execute(f"DROP TABLE IF EXISTS {rt}")
        con.execute(f"DROP TABLE IF EXISTS {rs}")


# DuckDB type families accepted from Parquet, by contract kind.
_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_FLOAT_TYPES = ("FLOAT", "DOUBLE")


def _parquet_type_ok(kind: str, code: bool, dtype: str) -> bool:
    base = dtype.split("(")[0].upper()
    if base == "VARCHAR":
        return True
    if kind == "date":
        return base == "DATE"
    if kind == "bool":
        return base == "BOOLEAN" or base in _INT_TYPES
    if kind in ("int", "money"):
        return base in _INT_TYPES or base == "DECIMAL"
    if kind == "decimal":
        return base in _INT_TYPES or base == "DECIMAL" or base in _FLOAT_TYPES
    if code or kind == "code":
        return base in _INT_TYPES
    return base in _INT_TYPES or base in ("DECIMAL", "DATE", "BOOLEAN") or base in _FLOAT_TYPES


_EXPECTED = {
    "date": "DATE or text",
    "bool": "BOOLEAN, integer or text",
    "int": "an integer or text",
    "money": "DECIMAL (at most 2 decimals), integer or text; floats are not exact",
    "decimal": "a number or text",
    "code": "text or an integer",
    "string": "text or a number",
}


@dataclass
class ParquetSource:
    """A Parquet file as a query of text columns (see `parquet_source`)."""

    file: InputFile
    sql: str  # SELECT <contract columns as text>, source_file, line_number FROM read_parquet(...)
    rows: int
    columns: list[str]  # contract columns present in the file
    extra_columns: list[str]  # columns in the file that the contract does not define
    native: tuple[str, ...] = ()  # contract columns read typed, not as text (see `parquet_source`)


def parquet_source(
    con, f: InputFile, spec: Table, defaults: dict[str, str] | None = None, native: bool = False
) -> ParquetSource:
    """Check a Parquet file's schema against the contract and return the query that reads it as
    staged text: every contract column of `spec` (as text; a column the file lacks is its value
    in `defaults`, else NULL), ``source_file`` and ``line_number`` (the 1-based row number).

    With `native`, a column whose Parquet type gives exactly the value and the text its text
    would (`allpayer.inputs.validate.native_kind`: DATE, BOOLEAN, DECIMAL with 2 decimals for
    money, 32-bit integers) is read typed instead, as `validate.NATIVE_TYPES` of its kind; the
    result's ``native`` names those columns, which the validation then neither trims nor parses.

    Only the file's footer is read here; the query reads the rows once, where it is used."""
    path = _lit(str(f.path))
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()
    except Exception as exc:
        if f.path.stat().st_size == 0:
            raise InputFileError(str(f.path), "empty file: expected a Parquet file") from exc
        raise InputFileError(str(f.path), f"not a readable Parquet file ({_duck_message(exc, f.path)})") from exc
    names = [row[0] for row in described]
    lowered = [n.strip().lower() for n in names]
    dupes = sorted({n for n in lowered if lowered.count(n) > 1})
    if dupes:
        raise InputFileError(str(f.path), f"column {dupes[0]} appears more than once")
    _check_columns(f.path, spec, lowered)
    by_lower = dict(zip(lowered, names))
    types = dict(zip(lowered, (row[1] for row in described)))
    present = [c for c in spec.column_names if c in by_lower]
    for c in present:
        col = spec.column(c)
        if not _parquet_type_ok(col.kind, col.code_format is not None, types[c]):
            raise InputFileError(
                str(f.path), f"column {c} has Parquet type {types[c]}; expected {_EXPECTED[col.kind]}"
            )
    defaults = defaults or {}
    select = []
    typed = []
    for c in spec.column_names:
        col = spec.column(c)
        if (
            native and c in by_lower and not col.code_format and not col.allowed
            and validate.native_kind(col.kind, types[c])
        ):
            select.append(f"CAST({_q(by_lower[c])} AS {validate.SQL_TYPES[col.kind]}) AS {_q(c)}")
            typed.append(c)
        elif c in by_lower:
            select.append(f"CAST({_q(by_lower[c])} AS VARCHAR) AS {_q(c)}")
        elif c in defaults:
            select.append(f"CAST({_lit(defaults[c])} AS VARCHAR) AS {_q(c)}")
        else:
            select.append(f"CAST(NULL AS VARCHAR) AS {_q(c)}")
    try:
        rows = int(_scalar(con, f"SELECT sum(num_rows) FROM parquet_file_metadata({path})") or 0)
    except Exception as exc:
        raise InputFileError(str(f.path), f"cannot be read: {_duck_message(exc, f.path)}") from exc
    sql = (
        f"SELECT {', '.join(select)}{', ' if select else ''}CAST({_lit(f.relpath)} AS VARCHAR) AS source_file, "
        f"CAST(file_row_number + 1 AS BIGINT) AS line_number FROM read_parquet({path}, file_row_number=true)"
    )
    return ParquetSource(f, sql, rows, present, [n for n in lowered if n not in spec.column_names], tuple(typed))


def stage_parquet(con, f: InputFile, spec: Table, stage: str) -> StagedFile:
    """Stage one Parquet file: its columns as text, line_number = 1-based row number."""
    source = parquet_source(con, f, spec)
    cols = ", ".join(_q(c) for c in source.columns)
    select = ", ".join(_q(c) for c in source.columns)
    try:
        con.execute(
            f"INSERT INTO {stage} ({cols}{', ' if cols else ''}source_file, line_number) "
            f"SELECT {select}{', ' if select else ''}source_file, line_number FROM ({source.sql})"
        )
    except Exception as exc:
        raise InputFileError(str(f.path), f"cannot be read: {_duck_message(exc, f.path)}") from exc
    return StagedFile(f, source.rows, 0, source.columns, source.extra_columns)


def check_columns(f: InputFile, spec: Table) -> list[str]:
    """Read only a file's header (CSV) or schema (Parquet) and check its required columns.

    A quick check of every file before any row is read, so that a missing column stops the load
    at once. Returns the file's column names (lower-cased).
    """
    names = file_columns(f)
    _check_columns(f.path, spec, names)
    return names


def file_columns(f: InputFile) -> list[str]:
    """A file's column names (lower-cased), from its header (CSV) or schema (Parquet)."""
    if not f.path.exists():
        raise InputFileError(str(f.path), "file not found")
    if f.format == "csv":
        names = _read_header(f.path)
    else:
        if f.path.stat().st_size == 0:
            raise InputFileError(str(f.path), "empty file: expected a Parquet file")
        try:
            names = [n.strip().lower() for n in pq.read_schema(f.path).names]
        except Exception as exc:
            raise InputFileError(str(f.path), f"not a readable Parquet file ({_duck_message(exc, f.path)})") from exc
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputFileError(str(f.path), f"column {dupes[0]} appears more than once")
    return names


def stage_file(con, f: InputFile, spec: Table, stage: str, rejects: str) -> StagedFile:
    """Stage one file of either format into `stage` (text) and `rejects` (structural rejects)."""
    if not f.path.exists():
        raise InputFileError(str(f.path), "file not found")
    if f.format == "parquet":
        return stage_parquet(con, f, spec, stage)
    return stage_csv(con, f, spec, stage, rejects)


def stage_arrow(con, rows: pa.Table, spec: Table, stage: str) -> int:
    """Stage rows a format reader has already mapped to the contract (FHIR, CCLF): an Arrow
    table with some of the contract's columns (any type; turned to text) and ``source_file``,
    ``line_number``. Returns the number of rows staged."""
    for c in PROVENANCE_COLUMNS:
        if c not in rows.column_names:
            raise ValueError(f"mapped rows of {spec.name} lack the provenance column {c}")
    present = [c for c in spec.column_names if c in rows.column_names]
    view = f"_mapped_{next(_counter)}"
    con.register(view, rows)
    try:
        repeated = con.execute(
            f"SELECT source_file, line_number FROM {view} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
        ).fetchall()
        if repeated:
            raise ValueError(
                f"mapped rows of {spec.name} repeat source_file {repeated[0][0]} line {repeated[0][1]}: "
                "each staged row needs its own (source_file, line_number)"
            )
        cols = ", ".join(_q(c) for c in present)
        select = ", ".join(f"CAST({_q(c)} AS VARCHAR)" for c in present)
        sep = ", " if present else ""
        con.execute(
            f"INSERT INTO {stage} ({cols}{sep}source_file, line_number) "
            f"SELECT {select}{sep}CAST(source_file AS VARCHAR), CAST(line_number AS BIGINT) FROM {view}"
        )
    finally:
        con.unregister(view)
    return rows.num_rows
