"""Load a delivery folder into the database: stage, validate, de-duplicate, store, reconcile.

Every row read ends in exactly one place, and each load records it per table in
``load_reconciliation``::

    read = loaded + already_loaded + quarantined

- ``loaded``: new rows, stored in the table with proper types and provenance columns
  (``source_file``, ``line_number``, ``load_run_id``, ``row_hash``).
- ``already_loaded``: rows identical to a row already stored (same key, same content): a
  re-delivered file or claim changes nothing.
- ``quarantined``: rows that break the contract, stored in ``quarantine`` with the file, line,
  rules, messages and the row as delivered (JSON text). A key delivered twice in one delivery
  keeps its first valid row (by file, then line): a later identical row is a ``duplicate_row``,
  a later different one a ``conflicting_duplicate``. A delivered row whose key is already stored
  with different content is a ``conflicting_duplicate`` too: the stored row stays.

Claims (medical and pharmacy) outside every eligibility span of their member with that payer are
valid data: they are stored with ``outside_eligibility = true`` and counted on the reconciliation
line. The flag is recomputed for every claim when a load adds eligibility.

A file that cannot be read, lacks a required column, or a required table absent from both the
delivery and the database stops the load: nothing is published.

The load is one run (`allpayer.runs`): it writes a private copy of the database and publishes it
atomically, recording the input file hashes and the paid-through date (the latest paid date
loaded unless one is given).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import ibis
import ibis.expr.types as ir

from allpayer import runs
from allpayer.errors import InputFileError, RunError
from allpayer.inputs import readers, validate
from allpayer.inputs.schema import REQUIRED_TABLES, TABLES, Table

TABLE_ORDER = (
    "eligibility",
    "employer_group",
    "provider_roster",
    "medical_claim",
    "pharmacy_claim",
    "lab_result",
    "observation",
    "payer_attribution",
    "payer_target",
    "voluntary_alignment",
    "exclusion_event",
)
"""Load order: eligibility first, so claims are checked against the eligibility of the same delivery."""

CLAIM_TABLES = ("medical_claim", "pharmacy_claim")

SERVICE_DATE_SQL = {
    "medical_claim": "coalesce(c.claim_line_start_date, c.claim_start_date)",
    "pharmacy_claim": "c.dispensing_date",
}
"""The date a claim row is matched to eligibility spans on."""

PROVENANCE_COLUMNS = ("source_file", "line_number", "load_run_id", "row_hash")

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    run_id VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    line_number BIGINT,
    rule VARCHAR NOT NULL,
    rules VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    raw_row VARCHAR
)
"""

RECONCILIATION_DDL = """
CREATE TABLE IF NOT EXISTS load_reconciliation (
    run_id VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    files BIGINT NOT NULL,
    read BIGINT NOT NULL,
    loaded BIGINT NOT NULL,
    already_loaded BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    outside_eligibility BIGINT,
    data_sharing_opt_out BIGINT,
    substance_use_redacted BIGINT,
    table_rows BIGINT NOT NULL
)
"""

ProgressFn = Callable[[str, int, int], None]
"""progress(description, steps_done, steps_total)."""


# --------------------------------------------------------------------------------------------
# Storage


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def stored_columns(spec: Table) -> dict[str, str]:
    """Column name -> SQL type of a stored contract table (contract columns, then provenance)."""
    cols = {c.name: validate.SQL_TYPES[c.kind] for c in spec.columns}
    cols.update(source_file="VARCHAR", line_number="BIGINT", load_run_id="VARCHAR", row_hash="VARCHAR")
    if spec.name in CLAIM_TABLES:
        cols["outside_eligibility"] = "BOOLEAN"
    return cols


def ensure_tables(raw) -> None:
    """Create the contract tables, ``quarantine`` and ``load_reconciliation`` where missing, and
    add any contract column a stored table lacks (a newer contract)."""
    existing = table_names(raw)
    for spec in TABLES.values():
        cols = stored_columns(spec)
        if spec.name not in existing:
            body = ", ".join(f"{_q(n)} {t}" for n, t in cols.items())
            raw.execute(f"CREATE TABLE {_q(spec.name)} ({body})").fetchall()
            continue
        have = {r[0] for r in raw.execute(f"DESCRIBE {_q(spec.name)}").fetchall()}
        for n, t in cols.items():
            if n not in have:
                raw.execute(f"ALTER TABLE {_q(spec.name)} ADD COLUMN {_q(n)} {t}").fetchall()
    raw.execute(QUARANTINE_DDL).fetchall()
    raw.execute(RECONCILIATION_DDL).fetchall()


def table_names(raw) -> set[str]:
    """Names of the stored (not temporary) tables of a DuckDB connection."""
    return {r[0] for r in raw.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}


def _count(raw, sql: str) -> int:
    return int(raw.execute(sql).fetchall()[0][0])


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class TableLoad:
    """What one load did to one table."""

    table: str
    files: list[str]
    read: int = 0
    loaded: int = 0
    already_loaded: int = 0
    quarantined: int = 0
    outside_eligibility: int | None = None
    data_sharing_opt_out: int | None = None
    substance_use_redacted: int | None = None
    table_rows: int = 0
    extra_columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.read == self.loaded + self.already_loaded + self.quarantined


@dataclass
class LoadResult:
    """The outcome of `load_folder`."""

    run_id: str
    db: str
    folder: str
    paid_through: dt.date | None
    tables: list[TableLoad]
    quarantine_by_rule: list[dict]
    ignored_files: list[str]
    format: str = "native"

    def table(self, name: str) -> TableLoad:
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["paid_through"] = self.paid_through.isoformat() if self.paid_through else None
        return out


# --------------------------------------------------------------------------------------------
# Steps (the SQL of the per-table validation steps depends only on the contract: compile once)


def _stage_schema(spec: Table) -> dict[str, str]:
    return {**{c: "string" for c in spec.column_names}, "source_file": "string", "line_number": "int64"}


def _sql(expr) -> str:
    return ibis.to_sql(expr, dialect="duckdb", pretty=False)


STEPS = ("clean", "parsed", "checked", "verdict")


@lru_cache(maxsize=None)
def _step_sql(table: str, columns: tuple[str, ...], as_of: dt.date | None = None) -> tuple[str, ...]:
    """SQL of the validation steps of one table restricted to `columns`; step k reads the temp
    table of step k-1 (``_stage_<table>``, ``_clean_<table>``, ``_parsed_<table>``,
    ``_checked_<table>``)."""
    spec = validate.restrict(TABLES[table], columns)
    expr = ibis.table(_stage_schema(spec), name=f"_stage_{table}")
    out = []
    for name, fn in zip(STEPS, (validate.clean, validate.parse, validate.check, validate.verdict)):
        step = fn(expr, spec, as_of) if fn is validate.check else fn(expr, spec)
        out.append(_sql(step))
        expr = ibis.table(step.schema(), name=f"_{name}_{table}")
    return tuple(out)


def _validate_table(raw, spec: Table, as_of: dt.date | None = None) -> str:
    """Run the validation steps on `_stage_<table>`; returns the name of the verdict temp table."""
    t = spec.name
    previous = None
    for name, sql in zip(STEPS, _step_sql(t, tuple(spec.column_names), as_of)):
        raw.execute(f"CREATE OR REPLACE TEMP TABLE _{name}_{t} AS {sql}").fetchall()
        if previous:
            raw.execute(f"DROP TABLE {previous}").fetchall()
        previous = f"_{name}_{t}"
    return previous


def stored_schema(spec: Table) -> ibis.Schema:
    """The Ibis schema of a stored contract table (see `stored_columns`)."""
    cols = {c.name: validate.KIND_TYPES[c.kind] for c in spec.columns}
    cols.update(source_file="string", line_number="int64", load_run_id="string", row_hash="string")
    if spec.name in CLAIM_TABLES:
        cols["outside_eligibility"] = "boolean"
    return ibis.schema(cols)


@lru_cache(maxsize=None)
def _decide_sql(table: str, columns: tuple[str, ...]) -> str:
    """SQL of `decide` for one table restricted to `columns`, reading ``_verdict_<table>`` and
    the stored table."""
    spec = validate.restrict(TABLES[table], columns)
    cols = {c.name: validate.KIND_TYPES[c.kind] for c in spec.columns}
    cols.update(source_file="string", line_number="int64", rules="string", message="string")
    checked = ibis.table(cols, name=f"_verdict_{table}")
    existing = ibis.table(stored_schema(TABLES[table]), name=table)
    return _sql(decide(spec, checked, existing))


def decide(spec: Table, checked: ir.Table, existing: ir.Table) -> ir.Table:
    """Decide the fate of every valid row: ``new``, ``already`` (identical to a stored row) or
    ``quarantine``.

    The first valid row of a key (by file, then line) is the delivery's row for that key; a later
    row with the same key is a ``duplicate_row`` when identical to it and a
    ``conflicting_duplicate`` when not. The delivery's row is then compared with the stored row of
    the same key, if any: identical is ``already`` loaded, different is a
    ``conflicting_duplicate`` (the stored row stays). Returns the valid rows with ``row_hash``,
    ``outcome``, ``rule`` and ``message``.
    """
    key = list(spec.key)
    good = checked.filter(checked.rules.isnull()).drop("rules", "message")
    good = good.mutate(row_hash=validate.row_hash(good, spec))
    ordered = ibis.window(group_by=key, order_by=[good.source_file, good.line_number])
    g = good.mutate(
        _n=ibis.row_number().over(ordered),
        _first_hash=good.row_hash.first().over(ordered),
        _first_file=good.source_file.first().over(ordered),
        _first_line=good.line_number.first().over(ordered),
    )
    ex = existing.select(
        *[existing[k].name(f"_ex_{k}") for k in key],
        _ex_hash=existing.row_hash,
        _ex_file=existing.source_file,
        _ex_line=existing.line_number,
        _ex_run=existing.load_run_id,
    )
    j = g.left_join(ex, [g[k] == ex[f"_ex_{k}"] for k in key])
    key_names = ", ".join(key)
    later = j._n > 0
    copy = later & (j.row_hash == j._first_hash)
    conflict_stored = ~later & j._ex_hash.notnull() & (j._ex_hash != j.row_hash)
    outcome = ibis.cases(
        (later, "quarantine"),
        (j._ex_hash.isnull(), "new"),
        (j._ex_hash == j.row_hash, "already"),
        else_="quarantine",
    )
    rule = ibis.cases(
        (copy, "duplicate_row"),
        (later, "conflicting_duplicate"),
        (conflict_stored, "conflicting_duplicate"),
        else_=ibis.null("string"),
    )
    first = j._first_file + " line " + j._first_line.cast("string")
    message = ibis.cases(
        (copy, "exact copy of " + first),
        (later, f"same key ({key_names}) as " + first + " in this delivery, with different content"),
        (
            conflict_stored,
            f"same key ({key_names}) as a loaded row (" + j._ex_file + " line " + j._ex_line.cast("string")
            + ", run " + j._ex_run + ") with different content",
        ),
        else_=ibis.null("string"),
    )
    return j.select(*spec.column_names, "source_file", "line_number", "row_hash", outcome=outcome, rule=rule, message=message)


_NULL_KEYS = r'"[a-z0-9_]+":null,?'


def _raw_json(alias: str, spec: Table) -> str:
    """SQL: the staged text of a row as JSON, empty columns left out."""
    body = ", ".join(f"{_lit(c)}: {alias}.{_q(c)}" for c in spec.column_names)
    return f"regexp_replace(regexp_replace(to_json({{{body}}})::VARCHAR, '{_NULL_KEYS}', '', 'g'), ',}}$', '}}')"


def load_table(
    con,
    raw,
    spec: Table,
    files: list[readers.InputFile],
    run_id: str,
    progress=None,
    columns=None,
    mapped=None,
    defaults: dict[str, str] | None = None,
    as_of: dt.date | None = None,
) -> TableLoad:
    """Stage, validate, de-duplicate and store one table's files; returns its counts.

    `columns`: the contract columns the files have (default: read from their headers). Only
    those (and the key) are staged and validated; the others are stored empty.

    `mapped`: this table's rows as a format reader mapped them to the contract (an Arrow table,
    see `allpayer.inputs.formats.MappedDelivery`), staged instead of reading `files` (which then
    only name the source files).

    `defaults`: column -> value for the rows of a file that lacks that column (a format whose
    files lack a contract column, see `allpayer.inputs.formats.TUVA_DEFAULTS`).

    `as_of`: the date clinical dates may not pass (`future_date`).
    """
    t = spec.name
    defaults = defaults or {}
    if mapped is not None:
        columns = set(mapped.column_names) & set(spec.column_names)
    if columns is None:
        columns = set().union(*(readers.check_columns(f, with_defaults(spec, defaults)) for f in files))
    spec = validate.restrict(spec, set(columns) | set(defaults))
    result = TableLoad(table=t, files=[f.relpath for f in files])
    stage = readers.create_stage(raw, spec)
    rejects = readers.create_rejects(raw)
    if mapped is not None:
        result.read += readers.stage_arrow(raw, mapped, spec, stage)
        if progress:
            progress(f"read {t}")
    for f in files if mapped is None else ():
        staged = readers.stage_file(raw, f, with_defaults(spec, defaults), stage, rejects)
        for column, value in defaults.items():
            if column not in staged.columns:
                raw.execute(
                    f"UPDATE {stage} SET {_q(column)} = {_lit(value)} WHERE source_file = {_lit(f.relpath)}"
                ).fetchall()
        result.read += staged.read
        if staged.extra_columns:
            result.extra_columns[f.relpath] = staged.extra_columns
        if progress:
            progress(f"read {f.relpath}")
    checked = _validate_table(raw, spec, as_of)
    if progress:
        progress(f"validated {t}")

    raw.execute(f"CREATE OR REPLACE TEMP TABLE _decided_{t} AS {_decide_sql(t, tuple(spec.column_names))}").fetchall()

    cols = ", ".join(_q(c) for c in spec.column_names)
    raw.execute(
        f"INSERT INTO {_q(t)} ({cols}, source_file, line_number, load_run_id, row_hash) "
        f"SELECT {cols}, source_file, line_number, {_lit(run_id)}, row_hash FROM _decided_{t} "
        f"WHERE outcome = 'new' ORDER BY source_file, line_number"
    ).fetchall()

    raw_json = _raw_json("s", spec)
    raw.execute(
        f"""
        INSERT INTO quarantine
        SELECT {_lit(run_id)}, {_lit(t)}, r.source_file, r.line_number, r.rule, r.rule, r.message, r.raw_row
        FROM {rejects} r
        UNION ALL
        SELECT {_lit(run_id)}, {_lit(t)}, c.source_file, c.line_number, split_part(c.rules, ',', 1), c.rules,
               c.message, {raw_json}
        FROM {checked} c JOIN {stage} s USING (source_file, line_number)
        WHERE c.rules IS NOT NULL
        UNION ALL
        SELECT {_lit(run_id)}, {_lit(t)}, d.source_file, d.line_number, d.rule, d.rule, d.message, {raw_json}
        FROM _decided_{t} d JOIN {stage} s USING (source_file, line_number)
        WHERE d.outcome = 'quarantine'
        ORDER BY 3, 4
        """
    ).fetchall()

    counts = raw.execute(
        f"SELECT count(*) FILTER (WHERE outcome = 'new'), count(*) FILTER (WHERE outcome = 'already') FROM _decided_{t}"
    ).fetchall()[0]
    result.loaded, result.already_loaded = int(counts[0]), int(counts[1])
    result.quarantined = _count(raw, f"SELECT count(*) FROM quarantine WHERE run_id = {_lit(run_id)} AND table_name = {_lit(t)}")
    if not result.reconciles:
        raise RunError(
            f"{t}: counts do not reconcile (read {result.read} != loaded {result.loaded} + already loaded "
            f"{result.already_loaded} + quarantined {result.quarantined})"
        )
    for tmp in (f"_decided_{t}", checked, stage, rejects):
        raw.execute(f"DROP TABLE IF EXISTS {tmp}").fetchall()
    if progress:
        progress(f"stored {t}")
    return result


def flag_outside_eligibility(raw, table: str, run_id: str | None = None) -> None:
    """Set ``outside_eligibility`` on claims: true when no eligibility span of the claim's member
    with the claim's payer covers its service date. Only rows of `run_id` when given."""
    where = f"WHERE c.load_run_id = {_lit(run_id)}" if run_id else ""
    raw.execute(
        f"""
        UPDATE {table} AS c SET outside_eligibility = NOT EXISTS (
            SELECT 1 FROM eligibility e
            WHERE e.member_id = c.member_id AND e.payer = c.payer
              AND {SERVICE_DATE_SQL[table]} BETWEEN e.enrollment_start_date AND e.enrollment_end_date
        ) {where}
        """
    ).fetchall()


def _flag_counts(raw, result: TableLoad, run_id: str) -> None:
    t, run = result.table, _lit(run_id)
    if t in CLAIM_TABLES:
        result.outside_eligibility = _count(raw, f"SELECT count(*) FROM {t} WHERE load_run_id = {run} AND outside_eligibility")
    if t == "eligibility":
        result.data_sharing_opt_out = _count(
            raw, f"SELECT count(*) FROM eligibility WHERE load_run_id = {run} AND data_sharing_opt_out"
        )
    if t == "medical_claim":
        result.substance_use_redacted = _count(
            raw, f"SELECT count(*) FROM medical_claim WHERE load_run_id = {run} AND substance_use_redacted"
        )
    result.table_rows = _count(raw, f"SELECT count(*) FROM {_q(t)}")


def with_defaults(spec: Table, defaults: dict[str, str]) -> Table:
    """The contract of a table with the columns that take a default no longer required of a file."""
    if not defaults:
        return spec
    cols = tuple(dataclasses.replace(c, required=False) if c.name in defaults else c for c in spec.columns)
    return dataclasses.replace(spec, columns=cols)


def load_delivery(
    con,
    delivery: readers.Delivery,
    run_id: str,
    progress=None,
    mapped=None,
    required=REQUIRED_TABLES,
    defaults: dict[str, dict[str, str]] | None = None,
    as_of: dt.date | None = None,
) -> list[TableLoad]:
    """Load every table of a delivery through an open (writable) Ibis connection.

    `mapped`: a `allpayer.inputs.formats.MappedDelivery` (FHIR, CCLF): its tables are loaded
    with the delivery's own files, its unmappable records go to the quarantine and its record
    counts to ``load_reconciliation``. `required`: the tables that must be in the delivery or
    already in the database. `defaults`: table -> column -> value for files that lack the column.
    `as_of`: the date lab and observation dates may not pass; default: the latest paid date of
    the claims in the database once this delivery's claims are stored (none: not checked).
    """
    raw = con.con
    defaults = defaults or {}
    columns = {
        t: set().union(*(readers.check_columns(f, with_defaults(TABLES[t], defaults.get(t, {}))) for f in files))
        for t, files in delivery.files.items()
    }
    tables = dict(delivery.files)
    if mapped is not None:
        for t in mapped.tables:
            if t in delivery.files:
                others = ", ".join(f.relpath for f in delivery.files[t])
                raise InputFileError(
                    str(delivery.folder), f"table {t} comes both from {mapped.format} files and from {others}: keep one"
                )
            tables[t] = mapped.files_of(t)
    ensure_tables(raw)
    if mapped is not None:
        mapped.prepare(raw, run_id)
    for t in required:
        if t not in tables and _count(raw, f"SELECT count(*) FROM {_q(t)}") == 0:
            raise InputFileError(
                str(delivery.folder),
                f"missing required table {t}: expected {t}.csv, {t}.csv.gz, {t}.parquet or a {t}/ folder of parts",
            )
    results = []
    eligibility_changed = False
    for t in TABLE_ORDER:
        if t not in tables:
            continue
        rows = mapped.tables.get(t) if mapped is not None else None
        when = None
        if t in validate.FUTURE_DATE_COLUMNS:
            when = as_of or latest_paid_date(con)
        res = load_table(
            con, raw, TABLES[t], tables[t], run_id, progress, columns.get(t), rows, defaults.get(t), when
        )
        if t == "eligibility" and res.loaded:
            eligibility_changed = True
        results.append(res)
    for t in CLAIM_TABLES:
        if eligibility_changed:
            flag_outside_eligibility(raw, t)
        elif t in tables:
            flag_outside_eligibility(raw, t, run_id)
    for res in results:
        _flag_counts(raw, res, run_id)
        raw.execute(
            "INSERT INTO load_reconciliation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                res.table,
                len(res.files),
                res.read,
                res.loaded,
                res.already_loaded,
                res.quarantined,
                res.outside_eligibility,
                res.data_sharing_opt_out,
                res.substance_use_redacted,
                res.table_rows,
            ],
        ).fetchall()
    if mapped is not None:
        results.extend(mapped.store_records(raw, run_id))
    return results


def quarantine_summary(raw, run_id: str) -> list[dict]:
    """Quarantined rows of one run by table and first rule."""
    rows = raw.execute(
        "SELECT table_name, rule, count(*) FROM quarantine WHERE run_id = ? GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2",
        [run_id],
    ).fetchall()
    return [{"table": t, "rule": r, "rows": int(n)} for t, r, n in rows]


def load_folder(
    folder: str | Path,
    db: str | Path,
    *,
    paid_through: dt.date | None = None,
    progress: ProgressFn | None = None,
    fmt: str | None = None,
) -> LoadResult:
    """Validate and load a delivery folder into the database `db`, as one published run.

    `fmt` is the delivery's format (``native``, ``tuva``, ``fhir``, ``cclf``); by default it is
    detected from the folder's file names (`allpayer.inputs.formats.detect_format`).
    `paid_through` is recorded on the run; it defaults to the latest paid date of the claims in
    the database after the load (never to today).
    """
    from allpayer.inputs import formats

    fmt = formats.resolve_format(folder, fmt)
    delivery, mapped, required, defaults = formats.open_delivery(folder, fmt)
    files = delivery.all_files() + (mapped.all_files() if mapped is not None else [])
    n_tables = len(delivery.files) + (len(mapped.tables) if mapped is not None else 0)
    total = 2 * len(files) + 2 * n_tables + 1
    done = 0

    def step(description: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(description, done, total)

    inputs = []
    for f in files:
        inputs.extend(runs.describe_inputs([f.path], table=f.table, source_file=f.relpath))
        step(f"hashed {f.relpath}")
    with runs.begin(
        db,
        kind="load",
        paid_through=paid_through,
        inputs=inputs,
        parameters={
            "folder": str(Path(folder)),
            "format": fmt,
            "paid_through": paid_through.isoformat() if paid_through else None,
        },
    ) as run:
        tables = load_delivery(
            run.con, delivery, run.run_id, step, mapped=mapped, required=required, defaults=defaults,
            as_of=paid_through,
        )
        run.paid_through = paid_through or latest_paid_date(run.con)
        by_rule = quarantine_summary(run.con.con, run.run_id)
        run.summary = {
            "format": fmt,
            "tables": {
                t.table: {k: getattr(t, k) for k in ("read", "loaded", "already_loaded", "quarantined", "outside_eligibility")}
                for t in tables
            },
            "ignored_files": delivery.ignored,
        }
        step("publishing")
    return LoadResult(
        run_id=run.run_id,
        db=str(db),
        folder=str(folder),
        paid_through=run.paid_through,
        tables=tables,
        quarantine_by_rule=by_rule,
        ignored_files=delivery.ignored,
        format=fmt,
    )


# --------------------------------------------------------------------------------------------
# Claims as of a paid-through date


def latest_paid_date(con) -> dt.date | None:
    """The latest paid_date of any loaded medical or pharmacy claim (None when there are none)."""
    tables = set(con.list_tables())
    dates = []
    for t in CLAIM_TABLES:
        if t in tables:
            value = con.table(t).paid_date.max().execute()
            if value is not None and value == value:  # not NULL/NaT
                dates.append(value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else value.date())
    return max(dates) if dates else None


def resolve_paid_through(con, requested: dt.date | None = None) -> dt.date:
    """The paid-through date of a computing run: the one requested, else the latest paid date
    loaded. Never today's date. Raises `RunError` when there is no claim to take it from."""
    if requested is not None:
        return requested
    latest = latest_paid_date(con)
    if latest is None:
        raise RunError("no claims loaded: cannot default --paid-through; load claims or pass --paid-through")
    return latest


def claims_as_of(con, paid_through: dt.date, table: str = "medical_claim", through_run: str | None = None) -> ir.Table:
    """Claim rows known at a paid-through date: ``paid_date <= paid_through``.

    With `through_run`, only rows loaded by that run or an earlier published one (by ``seq``), so
    that an old run re-run after later deliveries sees exactly the rows it saw.
    """
    if table not in CLAIM_TABLES:
        raise RunError(f"{table} is not a claim table: expected one of {', '.join(CLAIM_TABLES)}")
    claims = con.table(table)
    rows = claims.filter(claims.paid_date <= paid_through)
    if through_run is not None:
        r = con.table("runs")
        upto = r.filter(r.run_id == through_run).seq.max()
        loaded_by = r.filter(r.seq <= upto).select(load_run_id=r.run_id)
        rows = rows.semi_join(loaded_by, "load_run_id")
    return rows


def net_claim_lines(claims: ir.Table, table: str = "medical_claim") -> ir.Table:
    """Apply the adjustment convention to claim rows as loaded: one row per claim line with every
    money column of the table summed exactly (see `allpayer.core.claims.net_claim_rows`)."""
    from allpayer.core.claims import net_claim_rows

    return net_claim_rows(claims, [c.name for c in TABLES[table].columns if c.kind == "money"])
