"""Run records and atomic snapshot publishing.

A database file (``--db FILE``) is the *published snapshot*. A run never writes to it: it copies
the snapshot to a temporary file in the same folder (or starts an empty one), writes there,
checkpoints and closes, then swaps the temporary file onto FILE with `os.replace`, which is
atomic. A reader that opened FILE keeps reading the snapshot it opened; a run that fails or is
killed (even with SIGKILL) leaves FILE as it was. The next run removes the temporary files of
killed runs. Writers are serialized by an advisory lock on ``FILE.lock``.

Each run has a record: id, kind (``load`` or ``run``), status, start and finish times (UTC),
code version, the claims paid-through date, its input files with SHA-256 hashes, the versions of
its contract terms, its parameters and a summary. The record of every published run is a row of
the ``runs`` table inside the snapshot; every attempt, failed or killed ones included, is also
appended to the sidecar ``FILE.runs.jsonl`` (one JSON object per line, never rewritten).

Run ids are ``YYYYMMDDTHHMMSSZ-xxxxxx`` (UTC start time and 6 random hex digits): they sort by
start time, and nothing computed depends on them. ``seq`` numbers published runs 1, 2, 3...
within a database and orders them exactly.

Usage by a computing stage::

    with runs.begin(db, kind="run", paid_through=pt, inputs=files, terms=versions) as run:
        con = run.con            # an Ibis DuckDB connection to the run's private copy
        ...                      # write output tables, tagging rows with run.run_id
    # published here; an exception discards the copy and re-raises
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

from allpayer import __version__, backend
from allpayer.errors import RunError

RUN_KINDS = ("load", "run")

RUNS_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    seq BIGINT NOT NULL,
    kind VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    code_version VARCHAR NOT NULL,
    paid_through DATE,
    inputs VARCHAR,
    terms VARCHAR,
    parameters VARCHAR,
    summary VARCHAR
)
"""

JSON_COLUMNS = ("inputs", "terms", "parameters", "summary")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_run_id(now: dt.datetime | None = None) -> str:
    """A new run id: UTC start time to the second plus 6 random hex digits."""
    now = now or _utcnow()
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the source checkout allpayer runs from, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def code_version() -> str:
    """allpayer's version, plus the git commit when running from a checkout (``0.1.0+g<sha>``)."""
    commit = git_commit()
    return f"{__version__}+g{commit[:12]}" if commit else __version__


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_inputs(paths: Sequence[str | Path], **extra: Any) -> list[dict]:
    """Input records for a run: path, size and SHA-256 of each file (plus `extra` keys)."""
    out = []
    for p in paths:
        p = Path(p)
        out.append({"path": str(p), "bytes": p.stat().st_size, "sha256": file_sha256(p), **extra})
    return out


def parse_date(value: str | None, what: str = "--paid-through") -> dt.date | None:
    """Parse an ISO date given on the command line (None stays None). Raises `RunError`."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise RunError(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


def sidecar_path(db: str | Path) -> Path:
    """The append-only log of every run attempt on a database: ``<db>.runs.jsonl``."""
    db = Path(db)
    return db.with_name(db.name + ".runs.jsonl")


def lock_path(db: str | Path) -> Path:
    db = Path(db)
    return db.with_name(db.name + ".lock")


def _temp_prefix(db: Path) -> str:
    return f".{db.name}."


def _temp_path(db: Path, run_id: str) -> Path:
    return db.with_name(f"{_temp_prefix(db)}{run_id}.tmp")


def _append_sidecar(db: Path, entry: dict) -> None:
    line = json.dumps(entry, default=_json_default, sort_keys=True) + "\n"
    fd = os.open(sidecar_path(db), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale_temp_files(db: str | Path) -> list[Path]:
    """Remove temporary files left by killed runs. Call only while holding the writer lock."""
    db = Path(db)
    removed = []
    for p in sorted(db.parent.glob(_temp_prefix(db) + "*.tmp*")):
        _remove(p)
        removed.append(p)
    return removed


@dataclass
class Run:
    """A run in progress: its record and its private connection (`con`)."""

    run_id: str
    kind: str
    db: Path
    temp_path: Path
    con: Any
    started_at: dt.datetime
    code_version: str
    paid_through: dt.date | None = None
    inputs: list[dict] = field(default_factory=list)
    terms: dict | list | None = None
    parameters: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    seq: int | None = None
    status: str = "running"
    finished_at: dt.datetime | None = None
    error: str | None = None
    # wall seconds of the steps around the caller's work: "publish" (record, checkpoint, close,
    # swap) and "reports" (rendered after the publish); filled as the run ends, not recorded in it
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict:
        """The run record as a plain dict (JSON-ready apart from dates)."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "kind": self.kind,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "code_version": self.code_version,
            "paid_through": self.paid_through,
            "inputs": self.inputs,
            "terms": self.terms,
            "parameters": self.parameters,
            "summary": self.summary,
            "db": str(self.db),
            "error": self.error,
        }


class _WriterLock:
    """An exclusive advisory lock on ``<db>.lock``; released by the OS if the process dies."""

    def __init__(self, db: Path):
        self.path = lock_path(db)
        self.fd: int | None = None

    def acquire(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise RunError(f"{self.path.with_suffix('')}: another run is writing to this database; try again when it ends") from None

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def is_locked(db: str | Path) -> bool:
    """True while some process holds the writer lock of `db` (a run is in progress)."""
    path = lock_path(db)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _next_seq(con) -> int:
    rows = con.con.execute("SELECT coalesce(max(seq), 0) + 1 FROM runs").fetchall()
    return int(rows[0][0])


def _insert_record(con, run: Run) -> None:
    rec = run.record()
    values = [
        rec["run_id"],
        rec["seq"],
        rec["kind"],
        rec["status"],
        rec["started_at"],
        rec["finished_at"],
        rec["code_version"],
        rec["paid_through"],
        *[json.dumps(rec[c], default=_json_default, sort_keys=True) for c in JSON_COLUMNS],
    ]
    con.con.execute(
        "INSERT INTO runs (run_id, seq, kind, status, started_at, finished_at, code_version, paid_through, "
        "inputs, terms, parameters, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        values,
    ).fetchall()


FICLONE = 0x40049409
"""Linux ioctl that makes a file share another's blocks (copy-on-write: Btrfs, XFS, ...)."""


def copy_snapshot(src: Path, dst: Path) -> None:
    """Copy the snapshot `src` to the run's private file `dst`.

    On a copy-on-write file system the copy shares the snapshot's blocks and costs next to
    nothing whatever the database's size; elsewhere the bytes are copied by the kernel.
    """
    try:
        with open(src, "rb") as s, open(dst, "wb") as d:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
        return
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dst)
    shutil.copyfile(src, dst)


@contextlib.contextmanager
def begin(
    db: str | Path,
    *,
    kind: str,
    paid_through: dt.date | None = None,
    inputs: Sequence[dict] = (),
    terms: dict | list | None = None,
    parameters: dict | None = None,
) -> Iterator[Run]:
    """Start a run on a private copy of the snapshot `db`; publish it atomically on success.

    Yields a `Run` whose `con` is an Ibis DuckDB connection to the copy. The caller may set
    `run.paid_through` and `run.summary` before the block ends. On normal exit the record is
    written to the ``runs`` table, the copy is checkpointed, closed and swapped onto `db`. On an
    exception the copy is deleted, the failure is appended to the sidecar and the exception
    propagates; `db` is untouched.
    """
    if kind not in RUN_KINDS:
        raise RunError(f"unknown run kind {kind!r}: expected one of {', '.join(RUN_KINDS)}")
    db = Path(db)
    if not db.parent.is_dir():
        raise RunError(f"{db}: folder {db.parent} does not exist")
    if db.exists() and not db.is_file():
        raise RunError(f"{db}: not a database file")
    lock = _WriterLock(db)
    lock.acquire()
    try:
        clean_stale_temp_files(db)
        started = _utcnow()
        run_id = new_run_id(started)
        tmp = _temp_path(db, run_id)
        if db.exists():
            copy_snapshot(db, tmp)
        run = Run(
            run_id=run_id,
            kind=kind,
            db=db,
            temp_path=tmp,
            con=None,
            started_at=started,
            code_version=code_version(),
            paid_through=paid_through,
            inputs=list(inputs),
            terms=terms,
            parameters=dict(parameters or {}),
        )
        _append_sidecar(db, {"event": "started", **run.record()})
        try:
            run.con = backend.connect_duckdb(tmp)
            run.con.con.execute(RUNS_TABLE_DDL).fetchall()
            run.seq = _next_seq(run.con)
            yield run
            t_publish = time.perf_counter()
            run.status = "succeeded"
            run.finished_at = _utcnow()
            _insert_record(run.con, run)
            run.con.con.execute("CHECKPOINT").fetchall()
            run.con.disconnect()
            run.con = None
            _fsync_path(tmp)
            os.replace(tmp, db)
            _fsync_path(db.parent)
            run.seconds["publish"] = round(time.perf_counter() - t_publish, 3)
        except BaseException as exc:
            run.status = "failed"
            run.finished_at = _utcnow()
            run.error = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
            if run.con is not None:
                with contextlib.suppress(Exception):
                    run.con.disconnect()
                run.con = None
            clean_stale_temp_files(db)
            _append_sidecar(db, {"event": "finished", **run.record()})
            raise
        _append_sidecar(db, {"event": "finished", **run.record()})
    finally:
        lock.release()
    t_reports = time.perf_counter()
    _after_publish(db, run)
    run.seconds["reports"] = round(time.perf_counter() - t_reports, 3)


def _after_publish(db: Path, run: Run) -> None:
    """Render the reports of a published run (`allpayer.reports.publish.on_publish`; off with
    ``ALLPAYER_RENDER_REPORTS=0``). A failure to render is a warning: the run stays published."""
    import sys

    try:
        from allpayer.reports.publish import on_publish

        on_publish(db, run.kind, run.parameters)
    except Exception as exc:  # noqa: BLE001 - reports never undo a publish
        print(f"warning: the reports of run {run.run_id} were not rendered: {exc}", file=sys.stderr)


def open_snapshot(db: str | Path):
    """A read-only Ibis connection to the published snapshot `db` (never blocks, never sees a run
    in progress). Close it with ``con.disconnect()`` to see a later snapshot in the same process."""
    return backend.connect_duckdb(db, read_only=True)


def _decode(row: dict) -> dict:
    for c in JSON_COLUMNS:
        if isinstance(row.get(c), str):
            row[c] = json.loads(row[c])
    for c in ("started_at", "finished_at"):
        if isinstance(row.get(c), dt.datetime):
            row[c] = row[c].isoformat()
    if isinstance(row.get("paid_through"), dt.date):
        row["paid_through"] = row["paid_through"].isoformat()
    return row


def published_runs(db: str | Path) -> list[dict]:
    """The records in the snapshot's ``runs`` table, in `seq` order."""
    db = Path(db)
    if not db.exists():
        return []
    if db.is_dir():  # a Spark warehouse folder (allpayer.warehouse)
        from allpayer import warehouse

        return warehouse.published_runs(db)
    con = open_snapshot(db)
    try:
        found = con.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'runs'").fetchall()
        if not found[0][0]:
            return []
        cur = con.con.execute("SELECT * FROM runs ORDER BY seq")
        names = [d[0] for d in cur.description]
        return [_decode(dict(zip(names, r))) for r in cur.fetchall()]
    finally:
        con.disconnect()


def attempted_runs(db: str | Path) -> list[dict]:
    """Every attempt in the sidecar, latest event per run id, in start order.

    A run whose start was logged without a finish is ``killed`` (or ``running`` while the
    writer lock is held).
    """
    path = sidecar_path(db)
    if not path.exists():
        return []
    latest: dict[str, dict] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            latest[entry["run_id"]] = entry
    locked = is_locked(db)
    out = []
    for entry in latest.values():
        entry = dict(entry)
        if entry.pop("event", None) == "started":
            entry["status"] = "running" if locked else "killed"
        out.append(entry)
    return sorted(out, key=lambda e: (e["started_at"], e["run_id"]))


def list_runs(db: str | Path) -> list[dict]:
    """All runs of a database: the published ones (with `seq`) and the failed or killed attempts
    from the sidecar, in start order. Each has ``published`` True/False."""
    published = {r["run_id"]: r for r in published_runs(db)}
    out = []
    seen = set()
    for entry in attempted_runs(db):
        rec = published.get(entry["run_id"], entry)
        rec = dict(rec)
        rec.setdefault("error", entry.get("error"))
        rec["published"] = entry["run_id"] in published
        out.append(rec)
        seen.add(entry["run_id"])
    for run_id, rec in published.items():
        if run_id not in seen:
            out.append({**rec, "published": True})
    return sorted(out, key=lambda e: (str(e["started_at"]), e["run_id"]))


def get_run(db: str | Path, run_id: str) -> dict:
    """One run's record by id (a unique prefix is enough). Raises `RunError` when not found."""
    matches = [r for r in list_runs(db) if r["run_id"] == run_id]
    if not matches:
        matches = [r for r in list_runs(db) if r["run_id"].startswith(run_id)]
    if not matches:
        raise RunError(f"{db}: no run {run_id!r} (see `allpayer runs list --db {db}`)")
    if len(matches) > 1:
        raise RunError(f"{db}: run id {run_id!r} is ambiguous: {', '.join(r['run_id'] for r in matches)}")
    return matches[0]
