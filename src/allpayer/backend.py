"""Connect to the compute backend: DuckDB (embedded default) or Spark. The one place that does.

Every stage takes Ibis tables and returns Ibis tables, so the same code runs on either backend.
Spark runs with its session time zone set to UTC so dates and timestamps agree with DuckDB.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from pathlib import Path

import ibis
import ibis.expr.types as ir

from allpayer.errors import RunError


def sql_identifier(name: str) -> str:
    """An SQL identifier, double-quoted (DuckDB and Spark SQL with ANSI quoting)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text) -> str:
    """An SQL string literal of `text`'s string, single-quoted."""
    return "'" + str(text).replace("'", "''") + "'"


def _memoize_select_complexity() -> None:
    """Make Ibis's SQL compilation of large expressions cheaper, with the same SQL.

    When Ibis 12 compiles an expression it merges each Select into the Select below it when that
    does not make the expression more complex (``merge_select_select``), and it scores the
    complexity of both candidates by walking their whole subtrees (``rewrites.complexity``). A
    stage's expression has hundreds of Selects over shared subtrees, so the same subtrees are
    walked again for every merge: about a third of compiling attribution (1 to 2 s per program).
    Here the score is kept per node while the node exists (a weak reference: nothing is held alive)
    and a node's score is worked out from its children's kept scores, which is the same number
    as Ibis's walk (1 per Field, the maximum for impure calls, else 1 plus the children's scores,
    a child counted once per time it is an argument). The compiled SQL is unchanged
    (tests/test_pipeline.py compiles stages of a run both ways and compares the SQL and the
    scores of their nodes; tests/test_backend.py small expressions); if Ibis's internals are not
    as expected, nothing is changed.
    """
    import weakref

    try:
        import ibis.backends.sql.rewrites as rewrites
        import ibis.expr.operations as ops
    except ImportError:  # pragma: no cover - another Ibis layout: keep its own scoring
        return
    original = getattr(rewrites, "complexity", None)
    if original is None or getattr(original, "_allpayer_memoized", False):
        return
    scores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    field, impure = ops.Field, ops.Impure
    most = sys.maxsize

    def complexity(node):
        hit = scores.get(node)
        if hit is not None:
            return hit
        # This walk's scores, held strongly while it lasts. The kept scores are read only through
        # ``get``: nodes compare by structure, so a kept entry may belong to an equal node that
        # the garbage collector frees at any moment, between a test for the entry and a read.
        known = {}

        def score_of(n):
            v = known.get(n)
            if v is None:
                v = scores.get(n)
                if v is not None:
                    known[n] = v
            return v

        stack = [node]
        while stack:
            n = stack[-1]
            if score_of(n) is None:
                if isinstance(n, field):
                    v = 1
                elif isinstance(n, impure):
                    v = most
                else:
                    todo = [c for c in n.__children__ if score_of(c) is None]
                    if todo:  # score the children first, then come back to n
                        stack.extend(todo)
                        continue
                    v = 1 + sum(known[c] for c in n.__children__)
                known[n] = scores[n] = v
            stack.pop()
        return known[node]

    complexity._allpayer_memoized = True
    complexity._ibis_original = original
    rewrites.complexity = complexity


_memoize_select_complexity()

BACKENDS = ("duckdb", "spark")

# Spark settings for a local session: small shuffles (the default of 200 partitions is meant for
# a cluster), no web UI, UTC session time. A Spark Connect session takes the server's settings
# apart from the session time zone, which every session sets.
LOCAL_SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.adaptive.enabled": "true",
    # A stage's plan is large (attribution compiles to about 200 KB of SQL); Spark renders every
    # executed plan as text for its listeners, which costs time and driver memory. Cut the text.
    "spark.sql.maxPlanStringLength": "8192",
    "spark.sql.ui.explainMode": "simple",
}

SESSION_SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # Spark 4.0's optimizer failed on the unions of quality's care gaps at 10,000 members ("key
    # not found" while inferring a union's constraints). Constraints are inferred to prune and
    # filter plans; no result depends on them.
    "spark.sql.constraintPropagation.enabled": "false",
}
"""Settings every Spark session gets when `allpayer` connects, a Spark Connect session included
(they are runtime SQL settings)."""

SPARK_LOG_LEVEL_ENV = "ALLPAYER_SPARK_LOG_LEVEL"
"""The log level of a local Spark session (default ``ERROR``). At ``WARN``, Spark's own default, a
run prints hundreds of lines that need no action: each plan whose text the setting above cuts, and
each local checkpoint freed at the end of a run."""


MEMORY_ENV = "ALLPAYER_DUCKDB_MEMORY"
DEFAULT_MEMORY_FRACTION = 0.25
"""DuckDB's memory limit, as a share of the machine's memory, unless `MEMORY_ENV` says otherwise
(DuckDB's own default, 80%, lets one large stage take most of a shared machine)."""


DUCKDB_STORAGE_VERSION = "v1.5.0"
"""The storage format of the database files this package creates (DuckDB's
``storage_compatibility_version``, which applies only when a file is created: a file keeps the
format it was created with). DuckDB's default for a new file is still the 1.0 format, readable by
every DuckDB since 1.0; the 1.5 format, readable by DuckDB 1.5 and later (the locked version is
1.5), stores empty and sparse columns far more cheaply. The contract tables are wide and mostly
empty (medical claims have 155 columns; the synthetic delivery fills 50), so storing 3.7 million
medical claim lines costs about a third less (`benchmarks/README.md`, "Loading and validation")."""

NEW_FILE_SETTINGS = {"storage_compatibility_version": DUCKDB_STORAGE_VERSION}
"""The DuckDB settings of a connection that may create a database file (`DUCKDB_STORAGE_VERSION`)."""


def duckdb_settings(path: str | Path | None = None) -> dict[str, str]:
    """The DuckDB settings of a connection: ``memory_limit`` (`MEMORY_ENV`, a DuckDB size such as
    ``4GB`` or ``512MB``; default `DEFAULT_MEMORY_FRACTION` of physical memory), and for a database
    file ``temp_directory`` beside it (``FILE.tmp``), where joins, sorts, aggregates and temporary
    tables larger than the limit spill instead of growing the process, and the storage format of a
    file created by the connection (`DUCKDB_STORAGE_VERSION`; an existing file keeps its own)."""
    out = {}
    limit = os.environ.get(MEMORY_ENV, "").strip()
    if not limit:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # not every platform reports it
            total = 0
        if total > 0:
            limit = f"{max(1, int(total * DEFAULT_MEMORY_FRACTION) // 2**20)}MB"
    if limit:
        out["memory_limit"] = limit
    if path is not None:
        out["temp_directory"] = f"{path}.tmp"
        out.update(NEW_FILE_SETTINGS)
    return out


def connect_duckdb(path: str | Path | None = None, *, read_only: bool = False, threads: int | None = None):
    """Open a DuckDB database file (or an in-memory one when `path` is None), with
    `duckdb_settings`."""
    kwargs = {}
    if threads:
        kwargs["threads"] = threads
    if path is None:
        return _connect_duckdb(None, duckdb_settings(None), **kwargs)
    path = Path(path)
    if read_only and not path.exists():
        raise RunError(f"{path}: database not found (load data first with `allpayer load`)")
    try:
        return _connect_duckdb(str(path), duckdb_settings(path), read_only=read_only, **kwargs)
    except RunError:
        raise
    except Exception as exc:  # duckdb raises IOException for a locked or corrupt file
        raise RunError(f"{path}: cannot open database: {exc}") from exc


JOINS_AS_WRITTEN = "build_side_probe_side"
"""The DuckDB optimizer `joins_as_written` turns off: the one that picks each hash join's build side
from estimated row counts."""


def disabled_optimizers(con) -> str:
    """DuckDB's ``disabled_optimizers`` setting on `con` (an Ibis DuckDB backend): a comma list."""
    return con.con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0] or ""


@contextlib.contextmanager
def joins_as_written(con):
    """Within the block, DuckDB builds each hash join's table on the side the query names second
    (the right side) instead of the side it estimates smaller; on Spark, nothing changes.

    The core stages join claim lines (millions) to program months and other small tables, and
    write the claim lines on the left. DuckDB estimates the lines after their date filters and
    netting at a small fraction of their number (193,535 rows against 23.8 million at 650,000
    members) and so builds its hash table on the lines and probes it with the program months: the
    join of the base years' lines to the base months took 6.3 CPU s that way and 2.3 CPU s the
    other way round. Only the physical plan changes, never a result. Whatever optimizers were
    already off stay off, and the setting is restored when the block ends."""
    if not is_duckdb(con):
        yield
        return
    raw = con.con
    before = disabled_optimizers(con)
    off = [o for o in before.split(",") if o.strip()]
    if JOINS_AS_WRITTEN not in off:
        raw.execute("SET disabled_optimizers = ?", [",".join([*off, JOINS_AS_WRITTEN])]).fetchall()
    try:
        yield
    finally:
        raw.execute("SET disabled_optimizers = ?", [before]).fetchall()


def _connect_duckdb(path: str | None, settings: dict[str, str], **kwargs):
    import duckdb

    try:
        if path is None:
            return ibis.duckdb.connect(**settings, **kwargs)
        return ibis.duckdb.connect(path, **settings, **kwargs)
    except (duckdb.InvalidInputException, duckdb.ParserException) as exc:
        if "memory_limit" in settings and os.environ.get(MEMORY_ENV, "").strip() and "memory" in str(exc).lower():
            raise RunError(f"{MEMORY_ENV}={settings['memory_limit']!r} is not a DuckDB memory size "
                           f"(e.g. 4GB, 512MB): {str(exc).splitlines()[0]}") from exc
        raise


def _add_spark_compile_rules() -> None:
    """Two gaps of Ibis 12's PySpark backend, closed here (the one place that knows about backends):

    - ``BitOr`` (the OR of integers over a group, used for CMS-HCC hierarchy masks) has no compile
      rule; it is Spark's ``bit_or`` aggregate (Spark 3.0+), as Ibis's Databricks compiler maps it.
    - An in-memory table (``ibis.memtable``) reaches Spark through pandas, where a NULL in a string
      column that also holds strings becomes the string ``'NaN'`` (so a NULL selector such as "any
      employer group" silently matched nothing). Rows are passed as Python values instead: NULL
      stays NULL, decimals and dates keep their types. Memtables here are small (reference tables,
      program selectors), so this costs nothing measurable.
    """
    from ibis.backends.pyspark import Backend
    from ibis.backends.pyspark.datatypes import PySparkSchema
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    if getattr(PySparkCompiler, "_allpayer_rules", False):
        return

    def visit_BitOr(self, op, *, arg, where):
        return self.agg.bit_or(arg, where=where)

    def register_in_memory_table(self, op) -> None:
        schema = op.schema
        table = op.data.to_pyarrow(schema)
        rows = [tuple(r.values()) for r in table.to_pylist()]
        df = self._session.createDataFrame(rows, schema=PySparkSchema.from_ibis(schema))
        df.createOrReplaceTempView(op.name)

    PySparkCompiler.visit_BitOr = visit_BitOr
    Backend._register_in_memory_table = register_in_memory_table
    PySparkCompiler._allpayer_rules = True


def spark_session(master: str = "local[2]", remote: str | None = None, app_name: str = "allpayer",
                  conf: dict[str, str] | None = None):
    """Start (or reuse) a Spark session: local (`master`, e.g. ``local[2]``) or through Spark Connect
    (`remote`, ``sc://HOST:PORT``). Python workers use this interpreter."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RunError("the Spark backend needs the optional extra `spark` (./dev setup installs it; "
                       "pip install 'allpayer[spark]')") from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if remote:
        builder = builder.remote(remote).config("spark.sql.session.timeZone", "UTC")
    else:
        builder = builder.master(master)
        for key, value in {**LOCAL_SPARK_CONF, **(conf or {})}.items():
            builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # Java missing, a server that does not answer, a bad master URL
        where = remote or master
        raise RunError(f"cannot start Spark ({where}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if not remote:
        session.sparkContext.setLogLevel(os.environ.get(SPARK_LOG_LEVEL_ENV) or "ERROR")
    return session


def connect_spark(master: str = "local[2]", remote: str | None = None, app_name: str = "allpayer",
                  conf: dict[str, str] | None = None, session=None):
    """An Ibis PySpark connection (UTC session time) over `session` or a new one (see `spark_session`)."""
    _add_spark_compile_rules()
    if session is None:
        session = spark_session(master, remote, app_name, conf)
    for key, value in SESSION_SPARK_CONF.items():
        session.conf.set(key, value)
    return ibis.pyspark.connect(session)


def connect(
    db: str | Path | None = None,
    *,
    backend: str = "duckdb",
    read_only: bool = False,
    spark_master: str = "local[2]",
    spark_remote: str | None = None,
):
    """Connect to the named backend. `db` is the DuckDB file (ignored by Spark, whose tables are
    registered from a warehouse folder by `allpayer.warehouse`)."""
    if backend == "duckdb":
        return connect_duckdb(db, read_only=read_only)
    if backend == "spark":
        return connect_spark(spark_master, spark_remote)
    raise RunError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")


def is_duckdb(con) -> bool:
    """Whether `con` is an Ibis DuckDB connection (the embedded default backend)."""
    return getattr(con, "name", None) == "duckdb"


def is_spark(con) -> bool:
    """Whether `con` is an Ibis PySpark connection (a local session or Spark Connect)."""
    return getattr(con, "name", None) == "pyspark"


def _duckdb_insert_sql(con, target: str, expr: ir.Table) -> str:
    """``INSERT INTO target (columns) <expr's query>``, the query compiled once.

    Ibis's own ``create_table`` and ``insert`` cost more in Python than the statement needs: the
    first deep-copies the compiled query tree (and copies it again to print it), the second prints
    the query, parses that text back into a tree and prints it once more. For a stage's expression
    (thousands of nodes, up to a few hundred kilobytes of SQL) that is seconds per run."""
    con._run_pre_execute_hooks(expr)  # registers the in-memory tables the query reads
    columns = ", ".join(sql_identifier(c) for c in expr.columns)
    return f"INSERT INTO {sql_identifier(target)} ({columns}) {compiled_query(con, expr)}"


COMPILED_KEPT = 256
"""How many compiled queries `compiled_query` keeps per connection (the most recently used)."""


def compiled_query(con, expr: ir.Table) -> str:
    """``con.compile(expr)``, kept per connection for an expression built again.

    Ibis expressions compare by structure: the same operations over the same tables (by name and
    schema) and literals are equal, and compile to the same SQL. The quality run builds the
    same measure queries for each program of a payer, and for each payer, over tables of the same
    names (`allpayer.quality.run`), so most of its queries are compiled once instead of once per
    program (compiling is most of the Python time of a stage). A query that differs in anything
    (a literal, a column, a table's name or schema) is compiled afresh."""
    from collections import OrderedDict

    kept = getattr(con, "_allpayer_compiled", None)
    if kept is None:
        kept = OrderedDict()
        con._allpayer_compiled = kept
    op = expr.op()
    sql = kept.get(op)
    if sql is None:
        sql = con.compile(expr)
        kept[op] = sql
        while len(kept) > COMPILED_KEPT:
            kept.popitem(last=False)
    else:
        kept.move_to_end(op)
    return sql


def create_table(con, name: str, expr: ir.Table, *, temp: bool = False, overwrite: bool = False) -> ir.Table:
    """Table `name` of `con` holding `expr`'s rows, with `expr`'s column types; `overwrite`
    replaces a table of that name (else one is an error), `temp` makes a temporary table.

    On DuckDB the table is declared with the schema's columns and the rows inserted, as Ibis's
    ``create_table`` does, without its copies of the compiled query (see `_duckdb_insert_sql`); a
    replaced table is kept until the new one holds every row, except a temporary one, which is
    dropped first (Ibis writes a replaced temporary table twice: into another name, then copied).
    Other backends get ``con.create_table``."""
    if not is_duckdb(con):
        return con.create_table(name, expr, temp=temp, overwrite=overwrite)
    schema = expr.schema()
    if schema.null_fields:
        raise RunError(f"internal: table {name}: columns without a type: {', '.join(schema.null_fields)}")
    columns = ", ".join(d.sql(con.dialect) for d in schema.to_sqlglot_column_defs(con.dialect))
    target = f"_allpayer_new_{name}" if overwrite and not temp else name
    if temp and overwrite:
        con.drop_table(name, force=True)
    elif target != name:
        con.raw_sql(f"DROP TABLE IF EXISTS {sql_identifier(target)}")  # left by a failed replacement
    con.raw_sql(f"CREATE {'TEMP ' if temp else ''}TABLE {sql_identifier(target)} ({columns})")
    try:
        con.raw_sql(_duckdb_insert_sql(con, target, expr)).fetchall()
    except BaseException:
        con.raw_sql(f"DROP TABLE IF EXISTS {sql_identifier(target)}")
        raise
    if target != name:
        con.raw_sql(f"DROP TABLE IF EXISTS {sql_identifier(name)}")
        con.raw_sql(f"ALTER TABLE {sql_identifier(target)} RENAME TO {sql_identifier(name)}")
    return con.table(name, database=("temp", "main") if temp else (con.current_catalog, con.current_database))


def insert_rows(con, name: str, expr: ir.Table) -> None:
    """Append `expr`'s rows to table `name`, column by column name (`expr`'s columns must be
    columns of the table). On DuckDB one statement with the query compiled once (see
    `_duckdb_insert_sql`); other backends get ``con.insert``."""
    if not is_duckdb(con):
        con.insert(name, expr)
        return
    con.raw_sql(_duckdb_insert_sql(con, name, expr)).fetchall()


def replace_temp_table(con, name: str, expr: ir.Table) -> ir.Table:
    """A temporary table `name` of `con` holding `expr`'s rows, replacing any table of that name
    (on DuckDB the old table is dropped first and the rows written once; see `create_table`).

    On Spark, which has no temporary tables, the rows are computed now and kept by the session
    (a local checkpoint, as `checkpoint` keeps them) under a temporary view named `name`; the rows
    of a view it replaces are freed. Drop it with `drop_temp_table`; what is left is freed by
    `release_checkpoints` when the run ends."""
    if is_spark(con):
        return _spark_keep(con, expr, name)
    return create_table(con, name, expr, temp=True, overwrite=True)


def drop_temp_table(con, name: str) -> None:
    """Drop the temporary table `name` of `con` (`replace_temp_table`'s), if there is one; on
    Spark, its view, and free its rows."""
    if is_spark(con):
        _spark_forget(con, name)
        return
    con.drop_table(name, force=True)


def cache(expr: ir.Table, name: str = "cached") -> ir.Table:
    """`expr`'s rows kept by the backend until `release`: ``expr.cache()`` (Ibis) on DuckDB; on
    Spark a local checkpoint (`checkpoint`, labelled `name`). Ibis's own cache does not serve on
    Spark: it caches the compiled query without registering the in-memory tables it reads, and on
    Spark Connect a cached DataFrame is analyzed again at each use, so it fails once a view it
    reads has been dropped; a checkpoint holds the rows themselves."""
    try:
        con = expr._find_backend(use_default=False)
    except Exception:  # an expression over in-memory tables only
        return expr.cache()
    if is_spark(con):
        return checkpoint(expr, name)
    return expr.cache()


def release(t: ir.Table) -> None:
    """Free the rows `cache` kept for `t` (nothing for any other table)."""
    if isinstance(t, ir.CachedTable):
        t.release()
        return
    try:
        con = t._find_backend(use_default=False)
    except Exception:
        return
    if is_spark(con):
        _spark_forget(con, t.op().name)


# Names of the Spark views that `checkpoint` registers (one counter per process: names never repeat).
CHECKPOINT_PREFIX = "_allpayer_checkpoint_"
_checkpoint_ids = itertools.count(1)


def checkpoint(expr: ir.Table, name: str = "step") -> ir.Table:
    """`expr` computed once where that cuts planning: on Spark, its rows are computed now and kept
    by the session (a local checkpoint, registered as a temporary view) and the returned table reads
    them; on DuckDB (and any other backend) `expr` is returned unchanged.

    Spark inlines every common table expression of a query at each place it is referenced, and its
    optimizer's time grows much faster than the plan: a derived table that several branches of a
    stage use (the persons of a risk score, the HCCs kept after hierarchies) is planned and run once
    per branch. Checkpointed, each branch reads one stored result, and the stage's plan shrinks to
    what is left. DuckDB plans such queries in milliseconds and runs them best as one query, so it
    keeps the expression (its results do not depend on this call). `name` labels the view (letters,
    digits and underscores). Release the rows with `release_checkpoints` when the run ends.
    """
    try:
        con = expr._find_backend(use_default=False)
    except Exception:  # an expression over in-memory tables only: nothing to plan around
        return expr
    if not is_spark(con):
        return expr
    if not name.replace("_", "").isalnum():
        raise RunError(f"internal: bad checkpoint name {name!r}")
    return _spark_keep(con, expr, f"{CHECKPOINT_PREFIX}{next(_checkpoint_ids)}_{name}")


def spark_frame(con, expr: ir.Table):
    """`expr` as a DataFrame of `con`'s Spark session, the in-memory tables it reads registered
    first (Ibis registers them only when it executes an expression itself)."""
    con._run_pre_execute_hooks(expr)
    return con._session.sql(con.compile(expr))


def _spark_keep(con, expr: ir.Table, view: str) -> ir.Table:
    """`expr`'s rows computed now and kept by `con`'s Spark session (a local checkpoint) as the
    temporary view `view` (replacing one of that name, whose rows are freed); a table reading them."""
    df = spark_frame(con, expr)
    try:
        df = df.localCheckpoint(eager=True)
    except Exception:  # a server that cannot checkpoint: cache, and compute the cache now
        df = df.cache()
        df.count()
    _spark_forget(con, view)
    df.createOrReplaceTempView(view)
    if not hasattr(con, "_allpayer_checkpoints"):
        con._allpayer_checkpoints = []
    con._allpayer_checkpoints.append((view, df))
    return con.table(view)


def _spark_forget(con, view: str) -> None:
    """Drop the view `view` that `_spark_keep` registered on `con`, if any, and free its rows."""
    held = getattr(con, "_allpayer_checkpoints", None) or []
    for i in reversed([i for i, (v, _) in enumerate(held) if v == view]):
        _, df = held.pop(i)
        con._session.catalog.dropTempView(view)
        _free(df)


def release_checkpoints(con) -> int:
    """Drop the views `checkpoint` registered on `con` and free their rows; returns how many."""
    held = getattr(con, "_allpayer_checkpoints", None) or []
    for view, df in reversed(held):
        con._session.catalog.dropTempView(view)
        _free(df)
    n = len(held)
    held.clear()
    return n


def _free(df) -> None:
    if df.is_cached:
        df.unpersist()
    else:
        _free_local_checkpoint(df)


def _free_local_checkpoint(df) -> None:
    """Unpersist the blocks of a local checkpoint (classic Spark; a Spark Connect server frees
    them with the session)."""
    try:
        df._jdf.queryExecution().logical().rdd().unpersist(False)
    except Exception:  # Spark Connect (no JVM handle) or a plan that is not a checkpoint
        pass
