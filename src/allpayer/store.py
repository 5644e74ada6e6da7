"""The transactional store: a small SQL database for state that is appended to, never replaced.

The analytic snapshot (the DuckDB file behind ``--db``) is rebuilt and swapped by every run. Some
state must outlive runs and grow one transaction at a time: the payments ledger, and later the
users and API keys of the web API. That state lives here, in SQLite by default
(``<db>.store.sqlite`` beside the snapshot) or in PostgreSQL when the URL says so.

`Store` is deliberately generic: ``execute``, ``executemany``, ``query``, ``transaction`` and
per-component schema migrations. SQL is written once with ``?`` placeholders and portable types
(BIGINT, VARCHAR, TEXT); the store rewrites the placeholders for PostgreSQL.

Migrations are registered per component (``"ledger"``, ``"users"``...) as an ordered list of
SQL scripts; ``store.migrate(component)`` applies the ones not yet recorded in
``schema_migrations`` inside one transaction, so two processes that migrate at once apply each
script once.

    >>> s = open_store("sqlite:///:memory:")
    >>> register_migrations("example", ["CREATE TABLE example_t (k VARCHAR PRIMARY KEY, v BIGINT)"])
    >>> s.migrate("example")
    1
    >>> with s.transaction():
    ...     _ = s.execute("INSERT INTO example_t VALUES (?, ?)", ("a", 1))
    >>> s.query("SELECT k, v FROM example_t")
    [('a', 1)]
    >>> s.migrate("example")
    0
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from allpayer.errors import AllpayerError


class StoreError(AllpayerError):
    """The transactional store cannot be opened, migrated or written."""


_MIGRATIONS: dict[str, list[str]] = {}

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component VARCHAR(100) NOT NULL,
    version BIGINT NOT NULL,
    applied_at VARCHAR(40) NOT NULL,
    PRIMARY KEY (component, version)
)
"""


def register_migrations(component: str, scripts: Sequence[str]) -> None:
    """Declare the schema of `component` as an ordered list of SQL scripts (version = position + 1).

    Registering again with the same first scripts and more appended is how a component evolves
    its schema; changing an already registered script is an error, because stores that applied
    it would disagree with stores that did not.
    """
    scripts = list(scripts)
    old = _MIGRATIONS.get(component)
    if old is not None and scripts[: len(old)] != old:
        raise StoreError(f"migrations of component {component!r} changed an already registered script")
    _MIGRATIONS[component] = scripts


def registered_components() -> list[str]:
    return sorted(_MIGRATIONS)


def default_store_url(db: str | Path) -> str:
    """The store that belongs to a snapshot database: ``sqlite:///<db path>.store.sqlite``.

    >>> default_store_url("/tmp/x/allpayer.duckdb")
    'sqlite:////tmp/x/allpayer.duckdb.store.sqlite'
    """
    p = Path(db).expanduser().absolute()
    return f"sqlite:///{p.with_name(p.name + '.store.sqlite')}"


def _split_statements(script: str) -> list[str]:
    """Split a migration script on semicolons that end a line (no procedural bodies)."""
    parts = re.split(r";\s*(?:\n|$)", script)
    return [p.strip() for p in parts if p.strip()]


class Store:
    """A connection to the transactional store. Not shared between threads without its lock."""

    dialect: str = "sqlite"

    def __init__(self, url: str):
        self.url = url
        self._lock = threading.RLock()
        self._depth = 0

    # -- to be provided by a dialect -------------------------------------------------------
    def _raw_execute(self, sql: str, params: Sequence[Any]) -> list[tuple]:  # pragma: no cover
        raise NotImplementedError

    def _raw_executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _begin(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def _commit(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def _rollback(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- generic API ----------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """One atomic unit of work. Nested calls join the outer transaction.

        On SQLite the transaction takes the write lock at once (``BEGIN IMMEDIATE``), so
        concurrent writers queue instead of failing half-way.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            else:
                self._depth = 0
                self._commit()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement (``?`` placeholders); returns its rows (empty for DML)."""
        with self._lock:
            if self._depth:
                return self._raw_execute(sql, params)
            with self.transaction():
                return self._raw_execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock:
            if self._depth:
                self._raw_executemany(sql, rows)
                return
            with self.transaction():
                self._raw_executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a read-only statement and return its rows as tuples (no write lock taken)."""
        with self._lock:
            return self._raw_execute(sql, params)

    def applied_versions(self, component: str) -> list[int]:
        rows = self.query(
            "SELECT version FROM schema_migrations WHERE component = ? ORDER BY version", (component,)
        )
        return [int(r[0]) for r in rows]

    def migrate(self, component: str) -> int:
        """Apply the registered scripts of `component` not yet applied here; returns how many."""
        if component not in _MIGRATIONS:
            raise StoreError(f"no migrations registered for component {component!r}")
        scripts = _MIGRATIONS[component]
        self.execute(SCHEMA_MIGRATIONS_DDL)
        applied = 0
        with self.transaction():
            self._lock_component(component)
            done = set(self.applied_versions(component))
            for version, script in enumerate(scripts, start=1):
                if version in done:
                    continue
                for stmt in self._dialect_script(script):
                    self._raw_execute(stmt, ())
                self._raw_execute(
                    "INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)",
                    (component, version, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")),
                )
                applied += 1
        return applied

    def _lock_component(self, component: str) -> None:
        """Serialize migrations of a component (SQLite already holds the write lock)."""

    def _dialect_script(self, script: str) -> list[str]:
        return _split_statements(script)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, url: str, path: str):
        super().__init__(url)
        self.path = path
        if path != ":memory:":
            parent = Path(path).parent
            if not parent.exists():
                raise StoreError(f"{path}: folder {parent} does not exist")
        try:
            self._con = sqlite3.connect(path, isolation_level=None, timeout=60.0, check_same_thread=False)
            self._con.execute("PRAGMA foreign_keys = ON")
            if path != ":memory:":
                self._con.execute("PRAGMA journal_mode = WAL")
            self._con.execute("PRAGMA busy_timeout = 60000")
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc

    def _raw_execute(self, sql, params):
        try:
            cur = self._con.execute(sql, tuple(params))
            return cur.fetchall()
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def _raw_executemany(self, sql, rows):
        try:
            self._con.executemany(sql, [tuple(r) for r in rows])
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def _begin(self):
        self._con.execute("BEGIN IMMEDIATE")

    def _commit(self):
        self._con.execute("COMMIT")

    def _rollback(self):
        if self._con.in_transaction:
            self._con.execute("ROLLBACK")

    def _dialect_script(self, script: str) -> list[str]:
        # SQLite triggers contain `;` inside BEGIN ... END: keep each trigger body in one statement.
        text = _select_dialect(script, "sqlite")
        stmts, buf = [], []
        for line in text.splitlines():
            buf.append(line)
            joined = "\n".join(buf).strip()
            if not joined:
                buf = []
                continue
            if sqlite3.complete_statement(joined):
                stmts.append(joined.rstrip(";").strip())
                buf = []
        rest = "\n".join(buf).strip()
        if rest:
            stmts.append(rest)
        return [s for s in stmts if s]

    def close(self):
        self._con.close()


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str):
        super().__init__(url)
        try:
            import psycopg  # noqa: PLC0415
        except ImportError as exc:
            raise StoreError("a postgresql:// store needs the psycopg package (pip install 'psycopg[binary]')") from exc
        self._psycopg = psycopg
        try:
            self._con = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store: {exc}") from exc
        self._tx = None

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _raw_execute(self, sql, params):
        with self._con.cursor() as cur:
            if params:
                cur.execute(self._sql(sql), tuple(params))
            else:
                cur.execute(sql)
            return cur.fetchall() if cur.description else []

    def _raw_executemany(self, sql, rows):
        with self._con.cursor() as cur:
            cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    def _begin(self):
        self._con.execute("BEGIN")

    def _commit(self):
        self._con.execute("COMMIT")

    def _rollback(self):
        self._con.execute("ROLLBACK")

    def _lock_component(self, component):
        self._raw_execute("SELECT pg_advisory_xact_lock(hashtext(?))", ("migrate:" + component,))

    def _dialect_script(self, script):
        # Scripts may carry dialect sections: lines between `-- sqlite-only` / `-- postgresql-only`
        # and `-- end` apply to that dialect alone.
        return _split_statements(_select_dialect(script, "postgresql"))

    def close(self):
        self._con.close()


def _select_dialect(script: str, dialect: str) -> str:
    out, keep = [], True
    for line in script.splitlines():
        s = line.strip().lower()
        if s in ("-- sqlite-only", "-- postgresql-only"):
            keep = s == f"-- {dialect}-only"
            continue
        if s == "-- end":
            keep = True
            continue
        if keep:
            out.append(line)
    return "\n".join(out)




def open_store(url: str) -> Store:
    """Open the store at `url`: ``sqlite:///path`` (or ``sqlite:///:memory:``) or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(url, url[len("sqlite:///"):])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise StoreError(f"unsupported store URL {url!r}: expected sqlite:///PATH or postgresql://...")
