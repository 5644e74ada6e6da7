"""Load a delivery folder into the database: stage, validate, de-duplicate, store, reconcile.

Every row read ends in exactly one place, and each load records it per table in
``load_reconciliation``::

    read = loaded + already_loaded + quarantined

- ``loaded``: rows stored in the table with proper types and provenance columns
  (``source_file``, ``line_number``, ``load_run_id``): new keys and restatements.
- ``already_loaded``: rows identical to a row already stored (same key, same typed content in
  every contract column): a re-delivered file or claim changes nothing.
- ``quarantined``: rows that break the contract, stored in ``quarantine`` with the file, line,
  rules, messages and the row as delivered (JSON text). A key delivered twice in one delivery
  keeps its first valid row (by file, then line): a later identical row is a ``duplicate_row``,
  a later different one a ``conflicting_duplicate``.

A delivered row whose key is already stored with different content depends on the table:

- in a ``restated`` table (`allpayer.inputs.schema.Table.restated`: eligibility spans, roster
  and employer-group periods, designations, exclusion events, which payers send again with
  their end dates changed) it *restates* the stored row: it is loaded, and the stored row is
  moved to the table's `allpayer.inputs.schema.replaced_table` with the id of the load that
  replaced it. ``restated`` on the reconciliation line counts these loaded rows, so that the
  table grows by ``loaded - restated`` rows;
- in any other table (claims keep their adjustment convention) it is a ``conflicting_duplicate``:
  the stored row stays.

A CCLF delivery is read with the CCLF records earlier loads stored, and the stored rows it
supersedes are moved to the `replaced_table` the same way before its rows are loaded
(`allpayer.inputs.formats.replace_superseded`).

A format reader may also withdraw stored rows before the tables are loaded (`replace_rows`
without a successor: the eligibility span of a cancelled FHIR Coverage), or add reversal rows of
stored claims to its tables (a cancelled FHIR ExplanationOfBenefit); see
`allpayer.inputs.fhir.cancellations`.

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
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import duckdb
import ibis
import ibis.expr.types as ir

from allpayer import runs
from allpayer.backend import is_duckdb, sql_identifier, sql_literal
from allpayer.errors import InputFileError, RunError
from allpayer.inputs import codes, readers, validate
from allpayer.inputs.schema import REPLACED_BY, REQUIRED_TABLES, TABLES, Table, replaced_table

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

PROVENANCE_COLUMNS = ("source_file", "line_number", "load_run_id")

OBSOLETE_COLUMNS = ("row_hash",)
"""Provenance columns of earlier versions, dropped from a stored table when a load meets them:
``row_hash`` was an MD5 of every row's typed content, computed for every row delivered (about a
third of the validation's time) to compare the few rows whose key repeats; `decide` now compares
those rows' contents only."""

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
    table_rows BIGINT NOT NULL,
    restated BIGINT
)
"""
RECONCILIATION_COLUMNS = (
    "run_id", "table_name", "files", "read", "loaded", "already_loaded", "quarantined", "outside_eligibility",
    "data_sharing_opt_out", "substance_use_redacted", "table_rows", "restated",
)
"""The columns of ``load_reconciliation``, named by every insert: ``restated`` came after the
others, and a database made before it has it added last (`ensure_tables`)."""


ProgressFn = Callable[[str, int, int], None]
"""progress(description, steps_done, steps_total)."""


# --------------------------------------------------------------------------------------------
# Storage


_q = sql_identifier
_lit = sql_literal


def stored_columns(spec: Table) -> dict[str, str]:
    """Column name -> SQL type of a stored contract table (contract columns, then provenance)."""
    cols = {c.name: validate.SQL_TYPES[c.kind] for c in spec.columns}
    cols.update(source_file="VARCHAR", line_number="BIGINT", load_run_id="VARCHAR")
    if spec.name in CLAIM_TABLES:
        cols["outside_eligibility"] = "BOOLEAN"
    return cols


def replaced_columns(spec: Table) -> dict[str, str]:
    """Column name -> SQL type of the `replaced_table` of a table: the stored table's columns
    (`stored_columns`) and `REPLACED_BY`."""
    return {**stored_columns(spec), REPLACED_BY: "VARCHAR"}


def _ensure_table(raw, name: str, cols: dict[str, str], existing: set[str]) -> None:
    """Create the stored table `name` with `cols` where missing; else add the columns of `cols` it
    lacks (a newer contract) and drop `OBSOLETE_COLUMNS`."""
    if name not in existing:
        body = ", ".join(f"{_q(n)} {t}" for n, t in cols.items())
        raw.execute(f"CREATE TABLE {_q(name)} ({body})").fetchall()
        return
    have = {r[0] for r in raw.execute(f"DESCRIBE {_q(name)}").fetchall()}
    for n, t in cols.items():
        if n not in have:
            raw.execute(f"ALTER TABLE {_q(name)} ADD COLUMN {_q(n)} {t}").fetchall()
    for n in OBSOLETE_COLUMNS:
        if n in have and n not in cols:
            try:
                raw.execute(f"ALTER TABLE {_q(name)} DROP COLUMN {_q(n)}").fetchall()
            except duckdb.Error:
                # e.g. an index of the user's on the table: the column stays, unused (the
                # inserts name their columns, so it is empty on the rows loaded from now on)
                pass


def ensure_tables(raw) -> None:
    """Create the contract tables, ``quarantine`` and ``load_reconciliation`` where missing, add
    any contract column a stored table lacks (a newer contract) and drop `OBSOLETE_COLUMNS`. The
    `replaced_table` of a table is kept in step the same way once a load has made it
    (`replace_rows`)."""
    existing = table_names(raw)
    for spec in TABLES.values():
        _ensure_table(raw, spec.name, stored_columns(spec), existing)
        if replaced_table(spec.name) in existing:
            _ensure_table(raw, replaced_table(spec.name), replaced_columns(spec), existing)
    raw.execute(QUARANTINE_DDL).fetchall()
    raw.execute(RECONCILIATION_DDL).fetchall()
    raw.execute("ALTER TABLE load_reconciliation ADD COLUMN IF NOT EXISTS restated BIGINT").fetchall()


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
    restated: int | None = None
    """Of the rows loaded, those that restate a stored row (``restated`` tables only)."""
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


def _stage_schema(spec: Table, native: tuple[str, ...] = ()) -> dict[str, str]:
    types = {
        c.name: validate.NATIVE_TYPES[c.kind] if c.name in native else "string" for c in spec.columns
    }
    return {**types, "source_file": "string", "line_number": "int64"}


def _sql(expr) -> str:
    """DuckDB SQL of a validation step, its anchored regular expressions run as full matches."""
    from ibis.backends.sql.compilers.duckdb import compiler

    tree = compiler.to_sqlglot(expr.unbind())
    return tree.transform(anchored_search_as_full_match).sql(dialect="duckdb", pretty=False)


def _top_level_alternation(pattern: str) -> bool:
    """Whether `pattern` has a ``|`` outside every group and character class."""
    depth, in_class, i = 0, False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "^":
                i += 1
            if pattern[i + 1:i + 2] == "]":  # a ] first in a class is a literal
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return True
        i += 1
    return False


def anchored_search_as_full_match(node):
    """``regexp_matches(x, '^P$')`` as ``regexp_full_match(x, 'P')`` (a sqlglot transform).

    The two agree on every value: RE2's ``$`` matches only at the end of the text, and the
    pattern has no top-level ``|`` (``^a|b$`` searches for either anchor, so it is left alone).
    DuckDB runs the full match several times faster: the validation of 24 million claim lines
    has 17 such checks per line (code formats, numbers, dates).
    """
    import sqlglot.expressions as exp

    if not isinstance(node, exp.RegexpLike) or node.args.get("flag") is not None:
        return node
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return node
    text = pattern.this
    inner = text[1:-1]
    trailing_escapes = len(inner) - len(inner.rstrip("\\"))
    if (len(text) < 2 or not text.startswith("^") or not text.endswith("$") or trailing_escapes % 2
            or _top_level_alternation(inner)):
        return node
    return exp.RegexpFullMatch(this=node.this.copy(), expression=exp.Literal.string(inner))


STEPS = ("clean", "parsed", "checked", "verdict")


Failing = tuple[tuple[str, tuple[int, ...]], ...]
"""Column -> the numbers of its values that fail their check digit (`validate.checks`'s
``failing_numbers``), as a tuple so that the compiled SQL can be cached."""


@lru_cache(maxsize=256)
def _step_sql(
    table: str, columns: tuple[str, ...], as_of: dt.date | None = None, native: tuple[str, ...] = (),
    failing: Failing = (), negative_originals: validate.NegativeOriginals = (),
) -> tuple[str, ...]:
    """SQL of the validation steps of one table restricted to `columns`; step k reads the table
    of step k-1 (``_stage_<table>``, ``_clean_<table>``, ``_parsed_<table>``, ``_checked_<table>``).
    `native`: the columns staged typed rather than as text (`readers.parquet_source`). `failing`:
    see `_number_check_failures`. `negative_originals`: see `validate.checks`."""
    spec = validate.restrict(TABLES[table], columns)
    expr = ibis.table(_stage_schema(spec, native), name=f"_stage_{table}")
    typed = frozenset(native)
    out = []
    for name, fn in zip(STEPS, (validate.clean, validate.parse, validate.check, validate.verdict)):
        if fn is validate.check:
            step = fn(expr, spec, as_of, typed, dict(failing), negative_originals)
        elif fn is validate.verdict:
            step = fn(expr, spec, as_of, typed)
        else:
            step = fn(expr, spec, typed)
        out.append(_sql(step))
        expr = ibis.table(step.schema(), name=f"_{name}_{table}")
    return tuple(out)


@lru_cache(maxsize=256)
def _validation_sql(
    table: str, columns: tuple[str, ...], as_of: dt.date | None = None, native: tuple[str, ...] = (),
    failing: Failing = (), negative_originals: validate.NegativeOriginals = (),
) -> str:
    """The validation steps of `_step_sql` as one query over ``_stage_<table>``: each step is a
    projection of the one before, so DuckDB evaluates them in one pass over the staged rows
    without storing the intermediate tables."""
    steps = _step_sql(table, columns, as_of, native, failing, negative_originals)
    sql = steps[0]
    for name, step in zip(STEPS, steps[1:]):
        ref = f'"_{name}_{table}"'
        if step.count(ref) != 1:  # pragma: no cover - the compiled steps read their input once
            raise AssertionError(f"{table}: step after {name} reads {ref} {step.count(ref)} times")
        sql = step.replace(ref, f"({sql})")
    # Room for the flags set later on the (few) rows decided not new and on the (few) claims
    # outside eligibility: every claim starts inside, so that only those outside are updated.
    # The delivered text of the failing rows is not carried through this pass (a struct of every
    # column on every row, for the few rows that fail): `_row_text` reads it again for those only.
    flag = ", FALSE AS outside_eligibility" if table in CLAIM_TABLES else ""
    return f"SELECT *, FALSE AS _not_new{flag} FROM ({sql})"


MAX_LISTED_FAILURES = 32
"""At most this many failing numbers per column are listed for `_number_check_failures`; with
more, the column's check digits are computed row by row."""


def _number_check_failures(raw, spec: Table, native: tuple[str, ...] = ()) -> Failing:
    """For each column of `spec` whose code format has a check digit (NPIs, LOINC codes), the
    numbers of the values staged in ``_stage_<table>`` that have the format's shape but fail its
    check digit, found on the column's distinct values; a column with more than
    `MAX_LISTED_FAILURES` of them is left out (checked row by row).

    The check digit, computed on every row, was the costliest rule of a load: at 650,000 members
    the three NPI columns of 24 million claim lines take about 11 s of the 35 s validation query,
    for about 1,700 distinct NPIs. The distinct values are stored first, so that the test runs on
    them: as one query, DuckDB moves a filter on the values below the ``DISTINCT`` and tests
    every row."""
    cols = [c.name for c in spec.columns
            if c.code_format and codes.code_format(c.code_format).number_check is not None]
    if not cols:
        return ()
    part = validate.restrict(spec, cols)
    typed = tuple(n for n in native if n in part.column_names)
    stage = ibis.table(_stage_schema(part, typed), name=f"_stage_{spec.name}")
    parsed = validate.parse(validate.clean(stage, part, frozenset(typed)), part, frozenset(typed))
    # .distinct() rather than a distinct union: a union of one part (one such column) drops it
    values = ibis.union(*[parsed.select(column=ibis.literal(c), code=parsed[c]) for c in cols]).distinct()
    name = f"_numbered_{spec.name}"
    raw.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {_sql(values)}").fetchall()
    try:
        found = ibis.table({"column": "string", "code": "string"}, name=name)
        tests = [found.filter((found.column == c) & codes.number_check_failures(spec.column(c).code_format, found.code))
                 .select("column", number=codes.as_number(spec.column(c).code_format, found.code)) for c in cols]
        rows = raw.execute(_sql(ibis.union(*tests, distinct=False).distinct())).fetchall()
    finally:
        raw.execute(f"DROP TABLE IF EXISTS {name}").fetchall()
    failing = {c: sorted(n for col, n in rows if col == c) for c in cols}
    return tuple((c, tuple(ns)) for c, ns in failing.items() if len(ns) <= MAX_LISTED_FAILURES)


def _stage_view(raw, spec: Table, source_sql: str) -> str:
    """Define ``_stage_<table>`` (what the validation query reads) as a view over `source_sql`
    (staged text columns, ``source_file``, ``line_number``)."""
    name = f"_stage_{spec.name}"
    raw.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM ({source_sql})").fetchall()
    return name


VERDICT_COLUMNS = {"rules": "VARCHAR", "message": "VARCHAR", "_not_new": "BOOLEAN"}
"""The columns a verdict has besides the stored table's: the failing rules and their messages
(NULL on a valid row), and whether a valid row is not new (set by `decide`)."""


def _validate_into(
    raw,
    spec: Table,
    as_of: dt.date | None,
    first: bool,
    native: tuple[str, ...] = (),
    in_place: str | None = None,
    negative_originals: validate.NegativeOriginals = (),
) -> str:
    """Validate the rows of the view ``_stage_<table>`` into the temp table ``_verdict_<table>``
    (typed contract columns, provenance, ``rules``, ``message``),
    created by the first call of a load and appended to by the next; returns its name.
    Rows are appended in the order the view yields them.

    `in_place`: a load's run id, when the stored table is empty (`_stored_in_place`): the rows go
    to the stored table ``_loading_<table>`` instead, with the stored table's columns and the
    verdict's (`VERDICT_COLUMNS`), and this load's id; `_store_in_place` later makes it the
    stored table."""
    t = spec.name
    typed = tuple(c for c in spec.column_names if c in native)
    failing = _number_check_failures(raw, spec, typed)
    sql = _validation_sql(t, tuple(spec.column_names), as_of, typed, failing, negative_originals)
    if in_place is not None:
        name = _q(f"_loading_{t}")
        if first:
            raw.execute(f"CREATE OR REPLACE TABLE {name} ({_stored_body(t, spec.column_names, VERDICT_COLUMNS)})").fetchall()
        raw.execute(f"INSERT INTO {name} BY NAME SELECT *, {_lit(in_place)} AS load_run_id FROM ({sql})").fetchall()
        return name
    if first:
        raw.execute(f"CREATE OR REPLACE TEMP TABLE _verdict_{t} AS {sql}").fetchall()
    else:
        raw.execute(f"INSERT INTO _verdict_{t} {sql}").fetchall()
    return f"_verdict_{t}"


UNSTORED = "GENERATED ALWAYS AS (NULL) VIRTUAL"
"""The clause that makes a stored column unstored: a virtual column, NULL (of the column's type)
in every row, that takes no room and costs little to write.

A first load declares so the contract columns its delivery lacks (`_stored_body`): at 650,000
members the medical claim lines lack about 100 of the contract's columns, and writing 24 million
NULLs into each took more time than the rest of the insert. A later delivery that has such a
column stores it first (`_store_columns`)."""


def _stored_body(table: str, delivered, extra: dict[str, str] | None = None) -> str:
    """The column list of a new stored `table` (and `extra` columns) for a delivery of the contract
    columns `delivered`: the contract columns it lacks are unstored."""
    lacking = set(TABLES[table].column_names) - set(delivered)
    cols = {**stored_columns(TABLES[table]), **(extra or {})}
    return ", ".join(f"{_q(n)} {typ}" + (f" {UNSTORED}" if n in lacking else "") for n, typ in cols.items())


def _catalog_where(table: str) -> str:
    """``WHERE`` clause of DuckDB's catalog functions (`duckdb_columns()`, `duckdb_indexes()`, ...)
    for the stored `table` of the open database."""
    return f"WHERE database_name = current_database() AND schema_name = 'main' AND table_name = {_lit(table)}"


def unstored_columns(raw, table: str) -> list[str]:
    """The columns of the stored `table` that are unstored (`UNSTORED`), in table order.

    DuckDB's catalog shows a virtual column's expression as its default; the default of our
    clause, as this DuckDB writes it, is read from a probe table with one such column per type.
    (A plain column whose default the user set to that same typed NULL reads the same, and is
    listed too: `_store_columns` checks that a column is empty before it rebuilds it.)"""
    where = _catalog_where(table)
    have = raw.execute(
        f"SELECT column_name, data_type, column_default FROM duckdb_columns() {where} AND column_default IS NOT NULL "
        "ORDER BY column_index"
    ).fetchall()
    if not have:
        return []
    types = sorted({typ for _, typ, _ in have})
    probe = "".join(f", c{i} {typ} {UNSTORED}" for i, typ in enumerate(types))
    raw.execute(f"CREATE OR REPLACE TEMP TABLE _unstored_probe (stored BOOLEAN{probe})").fetchall()
    try:
        defaults = raw.execute(
            "SELECT column_default FROM duckdb_columns() WHERE table_name = '_unstored_probe' AND database_name = 'temp' "
            "AND column_name <> 'stored' ORDER BY column_index"
        ).fetchall()
    finally:
        raw.execute("DROP TABLE _unstored_probe").fetchall()
    unstored = {typ: d for typ, (d,) in zip(types, defaults)}
    return [name for name, typ, default in have if default == unstored[typ]]


def _store_columns(raw, table: str, columns) -> None:
    """Make the unstored columns of `table` among `columns` ordinary columns (empty in the rows
    already stored), so that a delivery that has them can be inserted. DuckDB cannot turn a virtual
    column into a stored one in place: the column is dropped and added again, so it moves to the
    end of the table (readers name their columns, never their positions). DuckDB alters no table
    that has an index, so the table's indexes (a user's) are dropped first and created again."""
    wanted = set(columns)
    types = stored_columns(TABLES[table])
    names = [
        name for name in unstored_columns(raw, table)
        if name in wanted
        and not _count(raw, f"SELECT count(*) FROM (SELECT 1 FROM {_q(table)} WHERE {_q(name)} IS NOT NULL LIMIT 1)")
    ]
    if not names:
        return
    indexes = raw.execute(
        f"SELECT index_name, sql FROM duckdb_indexes() {_catalog_where(table)} AND sql IS NOT NULL ORDER BY index_oid"
    ).fetchall()
    for index, _ in indexes:
        raw.execute(f"DROP INDEX {_q(index)}").fetchall()
    for name in names:
        raw.execute(f"ALTER TABLE {_q(table)} DROP COLUMN {_q(name)}").fetchall()
        raw.execute(f"ALTER TABLE {_q(table)} ADD COLUMN {_q(name)} {types[name]}").fetchall()
    for _, sql in indexes:
        raw.execute(sql).fetchall()


def _stored_in_place(raw, table: str) -> bool:
    """True when a load may validate `table`'s rows straight into a new stored table and put it
    in the place of the stored one (`_store_in_place`): the stored table is a plain table of the
    contract's columns (in order, with their types, no defaults), without rows, indexes,
    constraints or a comment, so that replacing it loses nothing. Its unstored columns
    (`unstored_columns`) count as plain ones: they hold nothing.

    At 650,000 members, validating the 24 million medical claim lines into a temporary verdict
    and then inserting the valid ones into the stored table took 54 + 72 s (the verdict, larger
    than the load's memory limit, spills to disk and is read back); validating them into the new
    stored table 85 s."""
    where = _catalog_where(table)
    want = [(n, typ, None) for n, typ in stored_columns(TABLES[table]).items()]
    have = raw.execute(
        f"SELECT column_name, data_type, column_default FROM duckdb_columns() {where} ORDER BY column_index"
    ).fetchall()
    unstored = set(unstored_columns(raw, table))
    if [(n, typ, None if n in unstored else default) for n, typ, default in have] != want:
        return False
    extras = _count(
        raw,
        f"SELECT (SELECT count(*) FROM duckdb_indexes() {where}) + (SELECT count(*) FROM duckdb_constraints() {where})"
        f" + (SELECT count(*) FROM duckdb_tables() {where} AND comment IS NOT NULL)",
    )
    return extras == 0 and _count(raw, f"SELECT count(*) FROM {_q(table)}") == 0


def _store_in_place(raw, table: str, verdict: str) -> int:
    """Make the verdict `_validate_into` wrote in place the stored `table`: its rows that fail a
    rule or are not new are deleted, the verdict's own columns dropped, and the (empty) stored
    table replaced by it. Returns the rows it keeps."""
    raw.execute(f"DELETE FROM {verdict} WHERE rules IS NOT NULL OR _not_new").fetchall()
    for col in VERDICT_COLUMNS:
        raw.execute(f"ALTER TABLE {verdict} DROP COLUMN {_q(col)}").fetchall()
    raw.execute(f"DROP TABLE {_q(table)}").fetchall()
    raw.execute(f"ALTER TABLE {verdict} RENAME TO {_q(table)}").fetchall()
    return _count(raw, f"SELECT count(*) FROM {_q(table)}")


def stored_schema(spec: Table) -> ibis.Schema:
    """The Ibis schema of a stored contract table (see `stored_columns`)."""
    cols = {c.name: validate.KIND_TYPES[c.kind] for c in spec.columns}
    cols.update(source_file="string", line_number="int64", load_run_id="string")
    if spec.name in CLAIM_TABLES:
        cols["outside_eligibility"] = "boolean"
    return ibis.schema(cols)


KEY_HASH_SQL = "hash({keys})"
"""SQL of the 64-bit hash of a row's key columns (``{keys}``) that `decide` groups by first."""


def _content_hash_sql(spec: Table) -> str:
    """DuckDB SQL of an MD5 of a row's typed content (its `spec` columns, by contract name):
    ``name=value`` for every column that is not empty, in contract order, so that a column empty
    in a row, or absent from its delivery, changes nothing. Computed only for the rows `decide`
    compares (a key repeated in the delivery or already stored).

    Every column but the first contributes ``<sep>name=value`` where it is not NULL; the first
    contributes ``name=value`` when it is a key column (never empty on a valid row), else the
    separator too and the leading separator is dropped."""
    sep = "\x1f"
    parts = []
    cols = list(spec.columns)
    first_key = bool(cols) and cols[0].name in spec.key
    for i, col in enumerate(cols):
        v = _q(col.name)
        text = v if col.kind in ("string", "code") else f"CAST({v} AS VARCHAR)"
        if i == 0 and first_key:
            parts.append(f"{_lit(col.name + '=')} || {text}")
        else:
            parts.append(f"CASE WHEN {v} IS NULL THEN NULL ELSE {_lit(sep + col.name + '=')} END")
            parts.append(text)
    if not parts:
        return "md5('')"
    body = f"concat({', '.join(parts)})"
    return f"md5({body})" if first_key else f"md5(substr({body}, 2))"


def decide(raw, spec: Table, verdict: str, stored_rows: int) -> str:
    """Decide the fate of every valid row of the temp table `verdict`: ``new``, ``already``
    (identical to a stored row), ``restates`` (a stored row) or ``quarantine``.

    The first valid row of a key (by file, then line) is the delivery's row for that key; a later
    row with the same key is a ``duplicate_row`` when identical to it and a
    ``conflicting_duplicate`` when not. The delivery's row is then compared with the stored row of
    the same key, if any: identical is ``already`` loaded; different ``restates`` the stored row
    in a ``restated`` table (`allpayer.inputs.schema.Table.restated`; the row is loaded and
    `_replace_restated` moves the stored one aside) and is a ``conflicting_duplicate`` in any other
    (the stored row stays). Identical means the same typed content in
    every contract column (`_content_hash_sql`): a value spelled differently but parsed to the same
    (``92.5`` and ``92.50``, ``e11.9`` and ``E119``) is the same, and a column the delivery lacks
    must be empty in the stored row.

    Only the rows that are not ``new`` are written, to the temp table ``_decided_<table>``
    (``source_file``, ``line_number``, ``outcome``, ``rule``, ``message``), whose name is returned:
    keys delivered more than once are found by aggregation, and the stored table (joined on the
    key) is read only when it has rows (`stored_rows`). Contents are hashed only for the rows
    whose key repeats or is stored, never for every row delivered.

    The aggregation groups the rows by a 64-bit hash of their key (`KEY_HASH_SQL`), and only the
    rows whose hash occurs more than once (the repeated keys, and the rare rows whose different
    keys share a hash) are ranked within their key: grouping 24 million claim lines by their text
    keys under the load's memory limit cost 13-19 s at 650,000 members, by the hash 4 s. The
    rows found are the same, since two rows with the same key always share its hash and the
    ranking is by the key itself.
    """
    t = spec.name
    key = [_q(k) for k in spec.key]
    keys = ", ".join(key)
    key_names = ", ".join(spec.key)
    key_hash = KEY_HASH_SQL.format(keys=keys)
    # Contents are hashed only for the rows compared, and every join below carries keys, file,
    # line and that hash, never the rows' columns (a reload of every stored key stays narrow).
    parts = [
        f"""
        repeated AS (
            SELECT {keys}, source_file, line_number, {_content_hash_sql(spec)} AS _h FROM {verdict}
            WHERE rules IS NULL AND {key_hash} IN (
                SELECT {key_hash} FROM {verdict} WHERE rules IS NULL GROUP BY 1 HAVING count(*) > 1
            )
        ),
        ranked AS (
            SELECT *, row_number() OVER w - 1 AS _n, first(_h) OVER w AS _first_h,
                   first(source_file) OVER w AS _first_file, first(line_number) OVER w AS _first_line
            FROM repeated WINDOW w AS (PARTITION BY {keys} ORDER BY source_file, line_number)
        ),
        later AS (
            SELECT source_file, line_number, 'quarantine' AS outcome,
                   CASE WHEN _h = _first_h THEN 'duplicate_row' ELSE 'conflicting_duplicate' END AS rule,
                   CASE WHEN _h = _first_h
                        THEN 'exact copy of ' || _first_file || ' line ' || CAST(_first_line AS VARCHAR)
                        ELSE 'same key ({key_names}) as ' || _first_file || ' line ' || CAST(_first_line AS VARCHAR)
                             || ' in this delivery, with different content'
                   END AS message
            FROM ranked WHERE _n > 0
        )"""
    ]
    select = "SELECT * FROM later"
    if stored_rows:
        on = " AND ".join(f"g.{k} = x.{k}" for k in key)
        # The stored row's hash over the delivered columns and every other contract column that
        # has a value in the stored table (one the delivery lacks must be empty in the row): the
        # columns empty in every stored row add nothing to a hash, and reading them all at once
        # would cost memory.
        # (`EXISTS ... IS NOT NULL` per column: DuckDB answers it from the segments' statistics,
        # where counting the values would scan every row of every such column.)
        delivered_columns = set(spec.column_names)
        lacking = [c for c in TABLES[t].column_names if c not in delivered_columns]
        filled = set()
        if lacking:
            tests = ", ".join(f"EXISTS (SELECT 1 FROM {_q(t)} WHERE {_q(c)} IS NOT NULL)" for c in lacking)
            filled = {c for c, any_value in zip(lacking, raw.execute(f"SELECT {tests}").fetchall()[0]) if any_value}
        stored_spec = validate.restrict(TABLES[t], delivered_columns | filled)
        if spec.restated:  # loaded; the stored row is moved aside (`_replace_restated`)
            outcome, rule, message = "'restates'", "NULL", "NULL"
        else:
            outcome, rule = "'quarantine'", "'conflicting_duplicate'"
            message = (
                f"'same key ({key_names}) as a loaded row (' || x.source_file || ' line ' "
                "|| CAST(x.line_number AS VARCHAR) || ', run ' || x.load_run_id || ') with different content'"
            )
        parts.append(
            f"""
        delivered AS (
            SELECT {keys}, source_file, line_number, {_content_hash_sql(spec)} AS _h
            FROM (SELECT * FROM {verdict} WHERE rules IS NULL) g SEMI JOIN (SELECT {keys} FROM {_q(t)}) x ON {on}
        ),
        kept AS (
            SELECT {keys}, source_file, line_number, load_run_id, {_content_hash_sql(stored_spec)} AS _h
            FROM {_q(t)} x SEMI JOIN (SELECT {keys} FROM {verdict} WHERE rules IS NULL) g ON {on}
        ),
        stored AS (
            SELECT g.source_file, g.line_number,
                   CASE WHEN x._h = g._h THEN 'already' ELSE {outcome} END AS outcome,
                   CASE WHEN x._h = g._h THEN NULL ELSE {rule} END AS rule,
                   CASE WHEN x._h = g._h THEN NULL ELSE {message} END AS message
            FROM delivered g JOIN kept x ON {on}
            ANTI JOIN later l ON g.source_file = l.source_file AND g.line_number = l.line_number
        )"""
        )
        select += " UNION ALL SELECT * FROM stored"
    raw.execute(f"CREATE OR REPLACE TEMP TABLE _decided_{t} AS WITH {','.join(parts)} {select}").fetchall()
    return f"_decided_{t}"


def _replace_restated(raw, spec: Table, verdict: str, decided: str, run_id: str) -> None:
    """Move the stored rows of `spec`'s table that rows of `verdict` restate (`decide`'s outcome
    ``restates`` in `decided`) to its `replaced_table` (`replace_rows`); the rows that restate them
    are then inserted like new rows."""
    keys = ", ".join(_q(k) for k in spec.key)
    restating = (
        f"(SELECT {keys} FROM {verdict} c SEMI JOIN {decided} d "
        f"ON d.source_file = c.source_file AND d.line_number = c.line_number AND d.outcome = 'restates')"
    )
    replace_rows(raw, spec.name, restating, key_match(spec.name), run_id)


def key_match(table: str) -> str:
    """The condition of `replace_rows` that matches a stored row ``x`` of `table` to a row ``r``
    with the same key."""
    return " AND ".join(f"x.{_q(k)} = r.{_q(k)}" for k in TABLES[table].key)


def replace_rows(raw, table: str, rows: str, on: str, run_id: str) -> int:
    """Move the stored rows ``x`` of `table` that match a row ``r`` of the relation `rows` (SQL) on
    the equality condition `on` to its `replaced_table`, created when missing, with their
    provenance and `run_id` as their `REPLACED_BY`: the rows a load restates, the rows a CCLF
    delivery supersedes (`allpayer.inputs.formats.replace_superseded`), the spans a FHIR export
    withdraws (`allpayer.inputs.fhir.cancellations`). Returns the number of rows moved."""
    replaced = replaced_table(table)
    cols = replaced_columns(TABLES[table])
    _ensure_table(raw, replaced, cols, table_names(raw))
    stored = ", ".join(f"x.{_q(c)}" for c in cols if c != REPLACED_BY)
    raw.execute(
        f"INSERT INTO {_q(replaced)} ({', '.join(_q(c) for c in cols)}) "
        f"SELECT {stored}, {_lit(run_id)} FROM {_q(table)} x SEMI JOIN {rows} r ON {on} "
        "ORDER BY x.source_file, x.line_number"
    ).fetchall()
    n = raw.execute(f"DELETE FROM {_q(table)} x USING {rows} r WHERE {on}").fetchall()
    return int(n[0][0]) if n else 0


_NULL_KEYS = r'"[a-z0-9_]+":null,?'


def _json_text(struct_sql: str) -> str:
    """SQL: a struct of a row's staged text as JSON, empty columns left out."""
    return f"regexp_replace(regexp_replace(to_json({struct_sql})::VARCHAR, '{_NULL_KEYS}', '', 'g'), ',}}$', '}}')"


def _raw_json(alias: str, spec: Table) -> str:
    """SQL: the staged text of a row as JSON, empty columns left out (a column staged typed, see
    `readers.parquet_source`, as its text)."""
    body = ", ".join(f"{_lit(c)}: CAST({alias}.{_q(c)} AS VARCHAR)" for c in spec.column_names)
    return _json_text(f"{{{body}}}")


def _row_text(raw, spec: Table, sources: list[tuple[str | None, str]], verdict: str, decided: str | None) -> str:
    """The delivered text (``raw_row``, see `_raw_json`) of the rows to quarantine: those of the
    temp table `verdict` that fail a rule and, with `decided`, the valid rows decided
    ``quarantine`` (duplicates). Read again from their `sources` ((source_file, query), as
    validated; only the files that have such rows, only when there are any) into the temp table
    ``_rowtext_<table>`` (``source_file``, ``line_number``, ``raw_row``), whose name is returned."""
    name = f"_rowtext_{spec.name}"
    raw.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} (source_file VARCHAR, line_number BIGINT, raw_row VARCHAR)"
    ).fetchall()
    wanted = f"SELECT source_file, line_number FROM {verdict} WHERE rules IS NOT NULL"
    if decided:
        wanted += f" UNION ALL SELECT source_file, line_number FROM {decided} WHERE outcome = 'quarantine'"
    files_with = {r[0] for r in raw.execute(f"SELECT DISTINCT source_file FROM ({wanted})").fetchall()}
    for source_file, source_sql in sources if files_with else ():
        if source_file is not None and source_file not in files_with:
            continue
        raw.execute(
            f"INSERT INTO {name} SELECT s.source_file, s.line_number, {_raw_json('s', spec)} "
            f"FROM ({source_sql}) s SEMI JOIN ({wanted}) w USING (source_file, line_number)"
        ).fetchall()
    return name


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
    negative_originals: validate.NegativeOriginals = (),
) -> TableLoad:
    """Stage, validate, de-duplicate and store one table's files; returns its counts.

    `columns`: the contract columns the files have (default: read from their headers). Only
    those (and the key) are staged and validated; the others are stored empty.

    `mapped`: this table's rows as a format reader mapped them to the contract (an Arrow table,
    see `allpayer.inputs.formats.MappedDelivery`), staged instead of reading `files` (which then
    only name the source files).

    `defaults`: column -> value for the rows of a file that lacks that column (a format whose
    files lack a contract column, see `allpayer.inputs.formats.TUVA_DEFAULTS`).

    `as_of`: the date clinical dates may not pass (`future_date`). `negative_originals`: the money
    columns original rows may carry negative (`validate.NegativeOriginals`; a CCLF delivery's).
    """
    t = spec.name
    defaults = defaults or {}
    if mapped is not None:
        columns = set(mapped.column_names) & set(spec.column_names)
    if columns is None:
        columns = set().union(*(readers.check_columns(f, with_defaults(spec, defaults)) for f in files))
    spec = validate.restrict(spec, set(columns) | set(defaults))
    file_spec = with_defaults(spec, defaults)
    result = TableLoad(table=t, files=[f.relpath for f in files])
    rejects = readers.create_rejects(raw)
    text = None  # the text table of the CSV files and mapped rows (Parquet files are read in place)
    sources: list[tuple[str | None, str]] = []  # (source_file, query of its staged text), as validated
    extra: dict[str, list[str]] = {}
    # Rows reach the verdict file by file in `source_file` order and, within a Parquet file, in
    # row order: the stored table then needs no sort. CSV and mapped rows are sorted on insert.
    # (DuckDB keeps the order read only while the validation is a projection of the scan: a rule
    # that joins, or an `IN` of many constants (which it plans as a join), would lose it; see
    # `validate.one_of` and test_a_file_of_several_row_groups_is_stored_in_line_order.)
    ordered = True
    # Parquet files into an empty stored table: the verdict is written as the new stored table.
    in_place = (
        run_id
        if mapped is None and files and all(f.format == "parquet" for f in files) and _stored_in_place(raw, t)
        else None
    )

    def validate_source(source_file: str | None, source_sql: str, path: Path | None, native=()) -> None:
        _stage_view(raw, spec, source_sql)
        try:
            _validate_into(raw, spec, as_of, first=not sources, native=native, in_place=in_place,
                           negative_originals=negative_originals)
        except duckdb.Error as exc:
            if path is None:
                raise
            raise InputFileError(str(path), f"cannot be read: {readers._duck_message(exc, path)}") from exc
        sources.append((source_file, source_sql))

    if mapped is not None:
        text = readers.create_stage(raw, spec, name=f"_text_{t}")
        result.read += readers.stage_arrow(raw, mapped, spec, text)
        ordered = False
        validate_source(None, f"SELECT * FROM {text}", None)
        if progress:
            progress(f"read {t}")
    for f in sorted(files, key=lambda f: f.relpath) if mapped is None else ():
        if not f.path.exists():
            raise InputFileError(str(f.path), "file not found")
        if f.format == "parquet":
            source = readers.parquet_source(raw, f, file_spec, defaults, native=True)
            result.read += source.rows
            extras, source_sql, native = source.extra_columns, source.sql, source.native
        else:
            native = ()
            if text is None:
                text = readers.create_stage(raw, spec, name=f"_text_{t}")
            staged = readers.stage_csv(raw, f, file_spec, text, rejects)
            result.read += staged.read
            extras = staged.extra_columns
            select = ", ".join(
                f"CAST({_lit(defaults[c])} AS VARCHAR) AS {_q(c)}" if c in defaults and c not in staged.columns else _q(c)
                for c in spec.column_names
            )
            source_sql = f"SELECT {select}, source_file, line_number FROM {text} WHERE source_file = {_lit(f.relpath)}"
            ordered = False
        if extras:
            extra[f.relpath] = extras
        validate_source(f.relpath, source_sql, f.path, native)
        if progress:
            progress(f"read {f.relpath}")
    if not sources:  # pragma: no cover - a table is loaded only when it has files or mapped rows
        text = readers.create_stage(raw, spec, name=f"_text_{t}")
        validate_source(None, f"SELECT * FROM {text}", None)
    result.extra_columns = {f.relpath: extra[f.relpath] for f in files if f.relpath in extra}
    checked = _q(f"_loading_{t}") if in_place is not None else f"_verdict_{t}"
    if progress:
        progress(f"validated {t}")

    stored_rows = _count(raw, f"SELECT count(*) FROM {_q(t)}")
    decided = decide(raw, spec, checked, stored_rows)
    counts = raw.execute(
        f"SELECT count(*) FILTER (WHERE outcome <> 'restates'), count(*) FILTER (WHERE outcome = 'already'), "
        f"count(*) FILTER (WHERE outcome = 'quarantine'), count(*) FILTER (WHERE outcome = 'restates') FROM {decided}"
    ).fetchall()[0]
    not_new, result.already_loaded, dup_quarantined, restates = (int(n) for n in counts)
    if spec.restated:
        result.restated = restates

    # Flags are set on the verdict in place, so the insert below is a filtered scan of it: rows
    # keep their order (a join would not promise that). Only the rows whose flag changes are
    # updated: an update of every row of a large verdict costs more than the scan that finds them.
    if not_new:
        raw.execute(
            f"UPDATE {checked} AS c SET _not_new = TRUE FROM {decided} d "
            f"WHERE d.source_file = c.source_file AND d.line_number = c.line_number AND d.outcome <> 'restates'"
        ).fetchall()
    if restates:
        _replace_restated(raw, spec, checked, decided, run_id)
    flag = ""
    if t in CLAIM_TABLES:
        outside = _outside_rows_sql(t, checked, "c.rules IS NULL AND NOT c._not_new")
        raw.execute(f"UPDATE {checked} SET outside_eligibility = TRUE WHERE rowid IN ({outside})").fetchall()
        flag = ", outside_eligibility"
    if in_place is None:
        if not stored_rows and _stored_in_place(raw, t):
            # an empty plain table (a first load of CSV or mapped rows): made anew with the
            # columns this delivery lacks unstored, as a first load in place makes it
            raw.execute(f"CREATE OR REPLACE TABLE {_q(t)} ({_stored_body(t, spec.column_names)})").fetchall()
        else:
            _store_columns(raw, t, spec.column_names)
        cols = ", ".join(_q(c) for c in spec.column_names)
        order = "" if ordered else " ORDER BY source_file, line_number"
        inserted = raw.execute(
            f"INSERT INTO {_q(t)} ({cols}, source_file, line_number, load_run_id{flag}) "
            f"SELECT {cols}, source_file, line_number, {_lit(run_id)}{flag} FROM {checked} "
            f"WHERE rules IS NULL AND NOT _not_new{order}"
        ).fetchall()
        result.loaded = int(inserted[0][0])

    row_text = _row_text(raw, spec, sources, checked, decided if dup_quarantined else None)

    quarantined = raw.execute(
        f"""
        INSERT INTO quarantine
        SELECT {_lit(run_id)}, {_lit(t)}, r.source_file, r.line_number, r.rule, r.rule, r.message, r.raw_row
        FROM {rejects} r
        UNION ALL
        SELECT {_lit(run_id)}, {_lit(t)}, c.source_file, c.line_number, split_part(c.rules, ',', 1), c.rules,
               c.message, s.raw_row
        FROM {checked} c JOIN {row_text} s USING (source_file, line_number)
        WHERE c.rules IS NOT NULL
        UNION ALL
        SELECT {_lit(run_id)}, {_lit(t)}, d.source_file, d.line_number, d.rule, d.rule, d.message, s.raw_row
        FROM {decided} d JOIN {row_text} s USING (source_file, line_number)
        WHERE d.outcome = 'quarantine'
        ORDER BY 3, 4
        """
    ).fetchall()

    result.quarantined = int(quarantined[0][0])
    if in_place is not None:
        result.loaded = _store_in_place(raw, t, checked)
        checked = None  # it is the stored table now
    if not result.reconciles:
        raise RunError(
            f"{t}: counts do not reconcile (read {result.read} != loaded {result.loaded} + already loaded "
            f"{result.already_loaded} + quarantined {result.quarantined})"
        )
    raw.execute(f"DROP VIEW IF EXISTS _stage_{t}").fetchall()
    for tmp in (decided, checked, row_text, text, rejects):
        if tmp:
            raw.execute(f"DROP TABLE IF EXISTS {tmp}").fetchall()
    if progress:
        progress(f"stored {t}")
    return result


def _outside_rows_sql(table: str, source: str, where: str = "") -> str:
    """SQL of the ``rowid`` of the claim rows of `source` (a table of claim table `table`'s rows,
    named ``c``; those for which `where` holds) that no eligibility span of their member with
    their payer covers on their service date (`SERVICE_DATE_SQL`).

    An anti join: DuckDB joins on member and payer by hash and tests the dates on the pairs. The
    same test as a correlated ``NOT EXISTS`` took 4.6-6.7 s for the 24 million medical claim lines
    of 650,000 members, the anti join 0.5-0.8 s (NULL member, payer or date: never covered, as
    with ``NOT EXISTS``)."""
    filter_ = f" WHERE {where}" if where else ""
    return (
        f"SELECT c.rowid FROM {source} AS c ANTI JOIN eligibility e ON e.member_id = c.member_id "
        f"AND e.payer = c.payer AND {SERVICE_DATE_SQL[table]} BETWEEN e.enrollment_start_date AND e.enrollment_end_date"
        f"{filter_}"
    )


def flag_outside_eligibility(raw, table: str, run_id: str | None = None, *, except_run: str | None = None) -> None:
    """Set ``outside_eligibility`` on claims: true when no eligibility span of the claim's member
    with the claim's payer covers its service date. Only rows of `run_id` when given; not the
    rows of `except_run` (a load sets the flag of its own claims as it stores them). Only the
    rows whose flag changes are written (`_outside_rows_sql` finds the rows outside)."""
    where = []
    if run_id:
        where.append(f"load_run_id = {_lit(run_id)}")
    if except_run:
        where.append(f"load_run_id <> {_lit(except_run)}")
    # The rows outside, found once for both updates (the flags they write do not change them).
    outside = f"_outside_{table}"
    raw.execute(
        f"CREATE OR REPLACE TEMP TABLE {outside} AS SELECT rowid AS claim_row FROM ("
        + _outside_rows_sql(table, table, " AND ".join(f"c.{w}" for w in where)) + ")"
    ).fetchall()
    scope = "".join(f" AND {w}" for w in where)
    try:
        raw.execute(
            f"UPDATE {table} SET outside_eligibility = TRUE "
            f"WHERE outside_eligibility IS NOT TRUE{scope} AND rowid IN (SELECT claim_row FROM {outside})"
        ).fetchall()
        raw.execute(
            f"UPDATE {table} SET outside_eligibility = FALSE "
            f"WHERE outside_eligibility IS NOT FALSE{scope} AND rowid NOT IN (SELECT claim_row FROM {outside})"
        ).fetchall()
    finally:
        raw.execute(f"DROP TABLE IF EXISTS {outside}").fetchall()


def insert_reconciliation(raw, run_id: str, res: TableLoad) -> None:
    """Write the ``load_reconciliation`` line of one table (or record kind) of a load."""
    values = [
        run_id, res.table, len(res.files), res.read, res.loaded, res.already_loaded, res.quarantined,
        res.outside_eligibility, res.data_sharing_opt_out, res.substance_use_redacted, res.table_rows, res.restated,
    ]
    raw.execute(
        f"INSERT INTO load_reconciliation ({', '.join(RECONCILIATION_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in RECONCILIATION_COLUMNS)})",
        values,
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


LOAD_MEMORY_LIMIT = "4GB"
"""DuckDB memory limit of a load (lowered to it, never raised): above it the verdicts of large
tables spill to the database's temporary folder instead of growing the process. A limit the user
set with ``ALLPAYER_DUCKDB_MEMORY`` (see `allpayer.backend.duckdb_settings`) is kept as it is."""

_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _size_bytes(text: str) -> float | None:
    """Bytes of a DuckDB size such as ``4GB`` or ``18.8 GiB`` (None when it is not one)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]+)\s*", str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        return None
    return float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def bound_memory(raw, wanted: str = LOAD_MEMORY_LIMIT) -> None:
    """Lower the connection's DuckDB memory limit to `wanted` (default `LOAD_MEMORY_LIMIT`), unless
    the user chose the limit with ``ALLPAYER_DUCKDB_MEMORY``."""
    from allpayer.backend import MEMORY_ENV

    if os.environ.get(MEMORY_ENV, "").strip():
        return
    limit = _size_bytes(wanted)
    if limit is None:
        raise ValueError(f"{wanted!r}: expected a DuckDB size such as 4GB or 512MB")
    current = _size_bytes(raw.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    if current is None or limit < current:
        raw.execute(f"SET memory_limit = {_lit(wanted)}").fetchall()


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
    bound_memory(raw)
    defaults = defaults or {}
    columns = {
        t: set().union(*(readers.check_columns(f, with_defaults(TABLES[t], defaults.get(t, {}))) for f in files))
        for t, files in delivery.files.items()
    }
    tables = dict(delivery.files)
    ensure_tables(raw)
    if mapped is not None:
        # A reader that needs what earlier loads stored (CCLF history, FHIR cancellations) reads
        # it here, and may add tables.
        mapped.prepare(raw, run_id)
        for t in mapped.tables:
            if t in delivery.files:
                others = ", ".join(f.relpath for f in delivery.files[t])
                raise InputFileError(
                    str(delivery.folder), f"table {t} comes both from {mapped.format} files and from {others}: keep one"
                )
            tables[t] = mapped.files_of(t)
    for t in required:
        if t not in tables and _count(raw, f"SELECT count(*) FROM {_q(t)}") == 0:
            raise InputFileError(
                str(delivery.folder),
                f"missing required table {t}: expected {t}.csv, {t}.csv.gz, {t}.parquet or a {t}/ folder of parts",
            )
    results = []
    eligibility_changed = mapped is not None and bool(mapped.withdrawn.get("eligibility"))
    for t in TABLE_ORDER:
        if t not in tables:
            continue
        rows = mapped.tables.get(t) if mapped is not None else None
        when = None
        if t in validate.FUTURE_DATE_COLUMNS:
            when = as_of or latest_paid_date(con)
        res = load_table(
            con, raw, TABLES[t], tables[t], run_id, progress, columns.get(t), rows, defaults.get(t), when,
            negative_originals=mapped.negative_originals if mapped is not None else (),
        )
        if t == "eligibility" and res.loaded:
            eligibility_changed = True
        results.append(res)
    # This load's claims were flagged as they were stored (eligibility is loaded first); a load
    # that adds eligibility re-flags the claims of earlier loads.
    if eligibility_changed:
        for t in CLAIM_TABLES:
            flag_outside_eligibility(raw, t, except_run=run_id)
    for res in results:
        _flag_counts(raw, res, run_id)
        insert_reconciliation(raw, run_id, res)
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
                t.table: {k: getattr(t, k) for k in ("read", "loaded", "already_loaded", "quarantined", "restated",
                                                     "outside_eligibility")}
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
    raw = getattr(con, "con", None)
    for t in CLAIM_TABLES:
        if t not in tables:
            continue
        if is_duckdb(con):  # one small query, without a DataFrame round trip
            value = raw.execute(f"SELECT max(paid_date) FROM {_q(t)}").fetchall()[0][0]
        else:
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
