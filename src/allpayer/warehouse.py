"""The Spark backend's database: a warehouse folder of Parquet tables, published as snapshots.

With ``--backend spark``, ``--db PATH`` names a folder instead of a DuckDB file::

    PATH/
      manifest.json              the published snapshot: every table and the Parquet folder holding it
      data/<table>/<run_id>/     the Parquet files of <table> as written by run <run_id>
    PATH.lock                    writer lock (as for a DuckDB file)
    PATH.runs.jsonl              every run attempt, failed and killed ones included (as for a DuckDB file)

``manifest.json`` is ``{"format": "allpayer-warehouse/1", "seq": N, "run_id": ..., "tables":
{"<table>": "data/<table>/<run_id>"}}``. A run never changes a published folder: it writes the
tables it computes into new folders named by its run id, and publishes by replacing
``manifest.json`` atomically (`os.replace`). A table the run does not touch keeps its folder, so
a snapshot costs only the tables it rewrites. A failed or killed run leaves the manifest as it was;
the next run deletes folders no manifest names. Readers read the manifest once and then only
folders it names, which no later run changes.

The run records are the same as a DuckDB database's: the ``runs`` table (one row per published
run, same columns, `seq` 1, 2, 3...) is a table of the warehouse like any other, written through
DuckDB from the previous snapshot's rows plus the new record.

``load`` validates a delivery with the same code as for a DuckDB file: the warehouse's input tables,
quarantine, load reconciliation and run records are read into a scratch DuckDB file, the load runs
there, and the tables it wrote are published to the warehouse as Parquet. ``run``, ``quality``,
``payments`` and ``settle`` compute on Spark over the warehouse's Parquet tables (`begin`);
``report`` reads them through a DuckDB file of views (`duckdb_session`); ``export`` copies a
table's Parquet files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import ibis
import ibis.expr.types as ir

from allpayer import backend, runs
from allpayer.errors import RunError

FORMAT = "allpayer-warehouse/1"
MANIFEST = "manifest.json"


def is_warehouse(path: str | Path) -> bool:
    """True when `path` is a warehouse folder (it has a manifest)."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | Path) -> dict:
    """The published manifest of warehouse `path` (an empty one for a new folder)."""
    path = Path(path)
    m = path / MANIFEST
    if not m.exists():
        if path.exists() and any(path.iterdir()):
            raise RunError(f"{path}: not an allpayer warehouse (no {MANIFEST}, and the folder is not empty)")
        return {"format": FORMAT, "seq": 0, "run_id": None, "tables": {}}
    try:
        manifest = json.loads(m.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{m}: cannot read the warehouse manifest: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise RunError(f"{m}: format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def table_path(path: str | Path, table: str, manifest: dict | None = None) -> Path:
    """The Parquet folder of `table` in the published snapshot of warehouse `path`."""
    path = Path(path)
    manifest = manifest if manifest is not None else read_manifest(path)
    rel = manifest["tables"].get(table)
    if rel is None:
        raise RunError(f"{path}: unknown table {table!r}; available: {', '.join(sorted(manifest['tables'])) or 'none'}")
    return path / rel


def parquet_glob(folder: Path) -> str:
    """The DuckDB glob of a table folder's Parquet files."""
    return str(folder / "*.parquet")


def _publish(path: Path, manifest: dict) -> None:
    tmp = path / f".{MANIFEST}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / MANIFEST)
    runs._fsync_path(path)


def _clean_unpublished(path: Path, manifest: dict) -> None:
    """Delete table folders and scratch files no manifest names (left by failed or killed runs).
    Call only while holding the writer lock."""
    named = {str(path / rel) for rel in manifest["tables"].values()}
    data = path / "data"
    if data.is_dir():
        for table_dir in data.iterdir():
            for version in table_dir.iterdir():
                if str(version) not in named:
                    runs._remove(version)
    for scratch in path.glob(".scratch-*"):
        runs._remove(scratch)
    with contextlib.suppress(FileNotFoundError):
        (path / f".{MANIFEST}.tmp").unlink()


def _duckdb_copy_to_parquet(raw, sql: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = str(folder / "part-0.parquet").replace("'", "''")
    raw.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)").fetchall()


_quote = backend.sql_identifier


def _publish_from_duckdb(path: Path, manifest: dict, raw, names: Sequence[str], run_id: str, seq: int,
                         new: dict[str, str]) -> None:
    """Publish tables `names` of the DuckDB connection `raw` to warehouse `path`: each is copied to
    ``data/<table>/<run_id>/`` (``runs`` in `seq` order) and one new manifest (`seq`, `run_id`)
    names them with the snapshot's other tables. `new` receives each folder as it is written, so
    the caller can remove them if anything fails before the manifest is replaced. The common tail
    of a load and of a command run through `duckdb_session`."""
    for name in names:
        order = " ORDER BY seq" if name == "runs" else ""
        rel = f"data/{name}/{run_id}"
        _duckdb_copy_to_parquet(raw, f"SELECT * FROM {_quote(name)}{order}", path / rel)
        new[name] = rel
    _publish(path, {"format": FORMAT, "seq": int(seq), "run_id": run_id, "tables": {**manifest["tables"], **new}})


def _runs_with_record(path: Path, manifest: dict, run: runs.Run, folder: Path) -> None:
    """Write the ``runs`` table of the new snapshot: the published rows plus `run`'s record."""
    con = backend.connect_duckdb()
    try:
        raw = con.con
        raw.execute(runs.RUNS_TABLE_DDL).fetchall()
        if "runs" in manifest["tables"]:
            src = parquet_glob(path / manifest["tables"]["runs"]).replace("'", "''")
            raw.execute(f"INSERT INTO runs SELECT * FROM read_parquet('{src}')").fetchall()
        runs._insert_record(con, run)
        _duckdb_copy_to_parquet(raw, "SELECT * FROM runs ORDER BY seq", folder)
    finally:
        con.disconnect()


def next_seq(path: Path, manifest: dict) -> int:
    if "runs" not in manifest["tables"]:
        return 1
    import duckdb

    src = parquet_glob(path / manifest["tables"]["runs"]).replace("'", "''")
    return int(duckdb.sql(f"SELECT coalesce(max(seq), 0) + 1 FROM read_parquet('{src}')").fetchall()[0][0])


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: the Spark backend's --db names a warehouse folder, and this is a file "
                       f"(a DuckDB database? use --backend duckdb)")
    if not path.parent.is_dir():
        raise RunError(f"{path}: folder {path.parent} does not exist")
    path.mkdir(exist_ok=True)
    return path


class SparkRun(runs.Run):
    """A computing run on a warehouse: `con` is an Ibis PySpark connection on which every table of
    the snapshot is a view; `write` is the output writer `pipeline.run_core` takes."""

    warehouse: Path
    manifest: dict
    new_tables: dict

    def write(self, con, name: str, expr: ir.Table, year: int, run_id: str, year_column: str | None, *,
              keep_run_ids: bool = False) -> int:
        """Replace the rows of `year` in table `name` by `expr` tagged with the run id (rows whose
        run id is set keep it with `keep_run_ids`, as `pipeline.tag_run_id`): write the new table
        version (the other years' rows kept) to the run's folder and register it."""
        from allpayer.pipeline import tag_run_id, union_aligned

        expr = tag_run_id(expr, run_id, keep_run_ids)
        if year_column is not None and year_column not in expr.columns:
            raise RunError(f"internal: stage {name} lacks its year column {year_column}")
        out = expr
        if name in self.manifest["tables"] or name in self.new_tables:
            existing = con.table(name)
            if year_column is None:
                out = expr
            else:
                clash = [c for c, t in existing.schema().items() if c in expr.columns and expr[c].type() != t]
                if clash:
                    raise RunError(
                        f"table {name}: columns {', '.join(clash)} changed type since the last run; "
                        f"re-run every year into a new warehouse"
                    )
                keep = existing.filter(existing[year_column] != year)
                out = union_aligned([expr, keep]).select(*expr.columns)
        t = self.replace_table(con, name, out)
        if year_column is None:
            return t.count().to_pyarrow().as_py()
        return t.filter(t[year_column] == year).count().to_pyarrow().as_py()

    def replace_table(self, con, name: str, expr: ir.Table) -> ir.Table:
        """Write `expr` as the whole new version of table `name` (the rows it keeps from the
        published version included) to the run's folder, register it as `name` and return it.

        Every column is written with its type in `expr`'s schema, as a DuckDB table declares its
        columns. Spark's own result type can differ where Ibis leaves out a cast it considers
        done (a quality rate typed DECIMAL(18, 10) came out of Spark as DECIMAL(37, 10)), and the
        next run of the stage then found the table's column "changed type"."""
        from ibis.backends.pyspark.datatypes import PySparkType

        rel = f"data/{name}/{self.run_id}"
        folder = self.warehouse / rel
        df = backend.spark_frame(con, expr)
        df = df.select(*[
            df[c] if t.is_decimal() and t.precision is None  # a DECIMAL of no declared size: as Spark typed it
            else df[c].cast(PySparkType.from_ibis(t)).alias(c)
            for c, t in expr.schema().items()
        ])
        df.write.format("parquet").save(str(folder))
        self.new_tables[name] = rel
        return con.read_parquet(str(folder), table_name=name)


def register_tables(con, path: Path, manifest: dict, names: Sequence[str] | None = None) -> None:
    """Register the snapshot's tables (or `names` of them) as views of the Spark connection."""
    for name, rel in sorted(manifest["tables"].items()):
        if names is None or name in names:
            con.read_parquet(str(path / rel), table_name=name)


def open_spark(path: str | Path, *, spark_master: str = "local[2]", spark_remote: str | None = None, con=None):
    """An Ibis PySpark connection (`con`, or a new local or Spark Connect session) on which every
    table of warehouse `path`'s published snapshot is a view: for computing without writing (a
    settlement what-if)."""
    path = Path(path)
    if not is_warehouse(path):
        raise RunError(f"{path}: warehouse not found (load data first with `allpayer load --backend spark`)")
    con = con if con is not None else backend.connect_spark(spark_master, spark_remote)
    register_tables(con, path, read_manifest(path))
    return con


@contextlib.contextmanager
def begin(
    path: str | Path,
    *,
    kind: str,
    paid_through: dt.date | None = None,
    inputs: Sequence[dict] = (),
    terms: dict | list | None = None,
    parameters: dict | None = None,
    spark_master: str = "local[2]",
    spark_remote: str | None = None,
    con=None,
) -> Iterator[SparkRun]:
    """Start a computing run on warehouse `path` with Spark; publish its tables atomically on success.

    Yields a `SparkRun` whose `con` (an Ibis PySpark connection; `con` if given, else a new local
    or Spark Connect session) sees every table of the published snapshot. Tables written with
    `run.write` go to new folders; on normal exit the run record is added to ``runs`` and the new
    manifest replaces the old one. On an exception the new folders are deleted and the failure is
    logged in ``PATH.runs.jsonl``; the published snapshot is untouched.
    """
    if kind not in runs.RUN_KINDS:
        raise RunError(f"unknown run kind {kind!r}: expected one of {', '.join(runs.RUN_KINDS)}")
    path = _prepare(path)
    lock = runs._WriterLock(path)
    lock.acquire()
    run_con = None
    try:
        manifest = read_manifest(path)
        _clean_unpublished(path, manifest)
        started = runs._utcnow()
        run = SparkRun(
            run_id=runs.new_run_id(started), kind=kind, db=path, temp_path=path / "data", con=None,
            started_at=started, code_version=runs.code_version(), paid_through=paid_through,
            inputs=list(inputs), terms=terms, parameters=dict(parameters or {}),
        )
        run.warehouse, run.manifest, run.new_tables = path, manifest, {}
        run.parameters.setdefault("backend", "spark")
        runs._append_sidecar(path, {"event": "started", **run.record()})
        try:
            run.seq = next_seq(path, manifest)
            run.con = con if con is not None else backend.connect_spark(spark_master, spark_remote)
            run_con = run.con
            register_tables(run.con, path, manifest)
            yield run
            run.status = "succeeded"
            run.finished_at = runs._utcnow()
            rel = f"data/runs/{run.run_id}"
            _runs_with_record(path, manifest, run, path / rel)
            tables = {**manifest["tables"], **run.new_tables, "runs": rel}
            _publish(path, {"format": FORMAT, "seq": run.seq, "run_id": run.run_id, "tables": tables})
        except BaseException as exc:
            run.status = "failed"
            run.finished_at = runs._utcnow()
            run.error = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
            for rel in run.new_tables.values():
                runs._remove(path / rel)
            runs._remove(path / f"data/runs/{run.run_id}")
            runs._append_sidecar(path, {"event": "finished", **run.record()})
            raise
        runs._append_sidecar(path, {"event": "finished", **run.record()})
    finally:
        if run_con is not None:
            backend.release_checkpoints(run_con)  # the run's intermediate rows, kept by the Spark session
        lock.release()
    _render_on_publish(path, None, run.kind, run.parameters)


# Tables a load reads and writes (the input contract's, the rows later loads replaced in them,
# quarantine, reconciliation, run records).
def _load_tables() -> set[str]:
    from allpayer.inputs.schema import TABLES, replaced_table

    return set(TABLES) | {replaced_table(t) for t in TABLES} | {"quarantine", "load_reconciliation", "runs"}


def load_folder(folder: str | Path, path: str | Path, *, paid_through: dt.date | None = None, progress=None,
                fmt: str | None = None):
    """Validate and load a delivery folder into warehouse `path` (see the module docstring); `fmt`: the
    delivery format, as ``allpayer.inputs.load.load_folder`` takes it (default: detected).

    Returns the `LoadResult` of `allpayer.inputs.load.load_folder`, with `db` the warehouse."""
    from allpayer.inputs import load as load_mod

    path = _prepare(path)
    lock = runs._WriterLock(path)
    lock.acquire()
    scratch = None
    new: dict[str, str] = {}
    try:
        manifest = read_manifest(path)
        _clean_unpublished(path, manifest)
        scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=path))
        db = scratch / "load.duckdb"
        con = backend.connect_duckdb(db)
        try:
            raw = con.con
            raw.execute(runs.RUNS_TABLE_DDL).fetchall()
            for name in sorted(_load_tables() & set(manifest["tables"])):
                src = parquet_glob(path / manifest["tables"][name]).replace("'", "''")
                if name == "runs":
                    raw.execute(f"INSERT INTO runs SELECT * FROM read_parquet('{src}')").fetchall()
                else:
                    raw.execute(f'CREATE TABLE "{name}" AS SELECT * FROM read_parquet(\'{src}\')').fetchall()
            raw.execute("CHECKPOINT").fetchall()
        finally:
            con.disconnect()
        try:
            result = load_mod.load_folder(folder, db, paid_through=paid_through, progress=progress, fmt=fmt)
        finally:
            sidecar = runs.sidecar_path(db)
            if sidecar.exists():
                with open(runs.sidecar_path(path), "a", encoding="utf-8") as f:
                    f.write(sidecar.read_text(encoding="utf-8"))
        con = backend.connect_duckdb(db, read_only=True)
        try:
            raw = con.con
            seq = int(raw.execute("SELECT max(seq) FROM runs").fetchall()[0][0])
            _publish_from_duckdb(path, manifest, raw, sorted(load_mod.table_names(raw)), result.run_id, seq, new)
        finally:
            con.disconnect()
        result.db = str(path)
        return result
    except BaseException:
        for rel in new.values():
            runs._remove(path / rel)
        raise
    finally:
        if scratch is not None:
            runs._remove(scratch)
        lock.release()


def open_views(path: str | Path):
    """An in-memory DuckDB (Ibis) connection with one view per table of the warehouse's published
    snapshot, reading its Parquet files: lets DuckDB-side commands (export) read a warehouse."""
    import ibis

    path = Path(path)
    if not is_warehouse(path):
        raise RunError(f"{path}: warehouse not found (load data first with `allpayer load --backend spark`)")
    manifest = read_manifest(path)
    con = ibis.duckdb.connect()
    for table in sorted(manifest["tables"]):
        src = parquet_glob(table_path(path, table, manifest)).replace("'", "''")
        name = _quote(table)
        con.con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{src}')").fetchall()
    return con


def published_runs(path: str | Path) -> list[dict[str, Any]]:
    """The records of the warehouse's ``runs`` table, in `seq` order (like `runs.published_runs`)."""
    import duckdb

    path = Path(path)
    if not is_warehouse(path):
        return []
    manifest = read_manifest(path)
    if "runs" not in manifest["tables"]:
        return []
    src = parquet_glob(path / manifest["tables"]["runs"]).replace("'", "''")
    cur = duckdb.connect().execute(f"SELECT * FROM read_parquet('{src}') ORDER BY seq")
    names = [d[0] for d in cur.description]
    return [runs._decode(dict(zip(names, r))) for r in cur.fetchall()]


# Tables of the input contract that a computing command only reads: the DuckDB session below sees
# them as views of their Parquet files instead of copies. ``lab_result`` is not among them (the
# quality stage's --supplemental loads into it), nor are quarantine and load reconciliation.
def _view_tables() -> set[str]:
    from allpayer.inputs.schema import TABLES

    return set(TABLES) - {"lab_result"}


def _fingerprint(raw, name: str) -> tuple:
    """The columns, types, row count and an order-independent hash of every row of table `name`:
    equal before and after a command exactly when the command left the table as it was (up to a
    64-bit hash collision)."""
    q = _quote(name)
    cols = tuple(raw.execute(f"DESCRIBE {q}").fetchall())
    n, h = raw.execute(f"SELECT count(*), bit_xor(hash(t)) FROM {q} AS t").fetchall()[0]
    return cols, n, h


def _base_tables(raw) -> list[str]:
    return [r[0] for r in raw.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE' "
        "ORDER BY table_name").fetchall()]


@contextlib.contextmanager
def _no_render_in_scratch(write: bool) -> Iterator[None]:
    """While a command runs in a scratch copy (`write`), its runs' publish does not render reports
    (they would be written beside the scratch file and deleted with it); `duckdb_session` renders
    them for the warehouse once the snapshot is published."""
    from allpayer.reports.publish import no_rendering_on_publish

    with no_rendering_on_publish() if write else contextlib.nullcontext():
        yield


def _render_on_publish(path: Path, db: Path | None, kind: str | None, parameters: dict | None) -> None:
    """Render the reports of a run just published to warehouse `path`, as a DuckDB file's publish
    does (`allpayer.runs`, `allpayer.reports.publish.on_publish`): every audience's reports of the
    run's year into ``PATH.reports/<run_id>/``, the practice reports with the warehouse's ledger
    store. `db` is a DuckDB file holding the published snapshot (None: one of views is made). Same
    conditions: a run with a year, the report tables written, ``ALLPAYER_RENDER_REPORTS`` not 0. A
    failure to render is a warning: the run stays published."""
    import sys

    from allpayer.reports import publish

    year = publish.publish_year(parameters)
    if kind != "run" or year is None or not publish.rendering_on_publish():
        return
    try:
        if db is None:
            with duckdb_session(path, write=False) as views:
                _render_on_publish(path, views, kind, parameters)
            return
        from allpayer.reports.base import has
        from allpayer.store import default_store_url

        formats = publish.parse_formats(os.environ.get(publish.FORMATS_SETTING, "html,csv"))
        con = backend.connect_duckdb(db, read_only=True)
        try:
            if not has(con, "runs", "employer_group", "tcoc_member_month", "targets", "attribution", "member_months"):
                return
            publish.render_all(db, year, formats, out=publish.reports_dir(path), store_url=default_store_url(path),
                               con=con)
        finally:
            con.disconnect()
    except Exception as exc:  # noqa: BLE001 - reports never undo a publish
        print(f"warning: the reports of the run published to {path} were not rendered: {exc}", file=sys.stderr)


@contextlib.contextmanager
def duckdb_session(path: str | Path, *, write: bool = True) -> Iterator[Path]:
    """A DuckDB database file holding the published snapshot of warehouse `path`, for what runs
    through a DuckDB database on a warehouse (reports; a supplemental lab file's load; the stages
    themselves where Spark is not installed, as the tests do): yields the file's path, to pass as
    their ``--db``.

    The input contract's tables (except ``lab_result``) are views of their Parquet files; every
    other table (the computed ones, ``runs``) is a copy (a view too without `write`), which the command's own runs
    (`allpayer.runs.begin`) replace or extend exactly as in a DuckDB file. With `write`, on normal
    exit every table the command changed (columns, rows) is published to the warehouse as a new
    folder named by the command's last run id, in one new manifest, and the runs it recorded
    become the warehouse's; the run log lines are appended to ``PATH.runs.jsonl``. On an exception,
    or without `write` (reports), nothing is published. The writer lock is held throughout with
    `write`; the scratch folder is deleted at the end (and by the next writer if killed).
    """
    import duckdb

    path = Path(path)
    if not is_warehouse(path):
        raise RunError(f"{path}: warehouse not found (load data first with `allpayer load --backend spark`)")
    lock = runs._WriterLock(path) if write else None
    if lock is not None:
        lock.acquire()
    scratch = None
    new: dict[str, str] = {}
    try:
        manifest = read_manifest(path)
        if write:
            _clean_unpublished(path, manifest)
            scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=path))
        else:
            scratch = Path(tempfile.mkdtemp(prefix="allpayer-warehouse-"))
        db = scratch / "snapshot.duckdb"
        views = _view_tables()
        raw = duckdb.connect(str(db), config=dict(backend.NEW_FILE_SETTINGS))
        try:
            raw.execute(runs.RUNS_TABLE_DDL).fetchall()
            for name in sorted(manifest["tables"]):
                src = parquet_glob(path / manifest["tables"][name]).replace("'", "''")
                q = _quote(name)
                if name == "runs":
                    raw.execute(f"INSERT INTO runs SELECT * FROM read_parquet('{src}')").fetchall()
                elif name in views or not write:
                    raw.execute(f"CREATE VIEW {q} AS SELECT * FROM read_parquet('{src}')").fetchall()
                else:
                    raw.execute(f"CREATE TABLE {q} AS SELECT * FROM read_parquet('{src}')").fetchall()
            before = {name: _fingerprint(raw, name) for name in _base_tables(raw)} if write else {}
            raw.execute("CHECKPOINT").fetchall()
        finally:
            raw.close()
        try:
            with _no_render_in_scratch(write):
                yield db
        finally:
            sidecar = runs.sidecar_path(db)
            if write and sidecar.exists():
                with open(runs.sidecar_path(path), "a", encoding="utf-8") as f:
                    f.write(sidecar.read_text(encoding="utf-8"))
        if not write:
            return
        raw = duckdb.connect(str(db), read_only=True)
        try:
            last = raw.execute("SELECT seq, run_id, kind, parameters FROM runs ORDER BY seq DESC LIMIT 1").fetchall()
            seq, run_id, kind, parameters = last[0] if last else (0, None, None, None)
            if int(seq) <= int(manifest.get("seq") or 0):
                return  # no run published (a what-if, a comparison): the snapshot stays as it was
            changed = [name for name in _base_tables(raw) if before.get(name) != _fingerprint(raw, name)]
            _publish_from_duckdb(path, manifest, raw, changed, run_id, seq, new)
        finally:
            raw.close()
        # The scratch file holds exactly the snapshot just published: render its reports from it.
        _render_on_publish(path, db, kind, json.loads(parameters) if isinstance(parameters, str) else parameters)
    except BaseException:
        for rel in new.values():
            runs._remove(path / rel)
        raise
    finally:
        if scratch is not None:
            runs._remove(scratch)
        if lock is not None:
            lock.release()
