"""The published snapshot as the server sees it.

The server reads only the published DuckDB file, read-only. A run writes a private copy and
swaps it in atomically, so the server is never blocked by a run: it keeps its connection to the
snapshot it opened and, when the file on disk has been replaced (a new inode or modification
time), opens the new snapshot for the next request. Queries on the shared connection are
serialized by a lock (DuckDB connections are not to be used by two threads at once).
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import threading
from pathlib import Path

from allpayer import runs
from allpayer.api.tenancy import Context


def _identity(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def jsonable(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class Snapshot:
    def __init__(self, db: str | Path):
        self.db = Path(db)
        self.lock = threading.RLock()
        self._con = None
        self._ident = None
        self._ctx: Context | None = None

    def context(self) -> Context | None:
        """The scoping context of the current snapshot (reopened when a run published a new one);
        None when no snapshot has been published yet. Call with `lock` held."""
        ident = _identity(self.db)
        if ident is None:
            return None
        if ident != self._ident or self._ctx is None:
            # The previous snapshot's connection is dropped, not closed: requests still running on
            # its cursors finish on the snapshot they started with.
            self._con = runs.open_snapshot(self.db)
            self._ident = ident
            self._ctx = Context(con=self._con, program_payer=_program_payer(self._con),
                                hospital_hsa=_hospital_hsa(self._con))
        return self._ctx

    def run(self, ctx: Context, sql: str, as_dicts: bool = False) -> list:
        """Execute compiled SQL on a cursor of `ctx`'s snapshot (no lock: a cursor is a
        connection of its own to the same database)."""
        cur = ctx.con.con.cursor()
        try:
            res = cur.execute(sql)
            if as_dicts:
                return res.fetch_arrow_table().to_pylist()
            return res.fetchall()
        finally:
            cur.close()

    def rows(self, expr) -> list[dict]:
        with self.lock:
            return [jsonable(r) for r in self._con.to_pyarrow(expr).to_pylist()]

    def scalar(self, expr):
        with self.lock:
            return jsonable(self._con.execute(expr))

    def close(self) -> None:
        with self.lock:
            if self._con is not None:
                self._con.disconnect()
                self._con = None
                self._ctx = None


def _program_payer(con) -> dict[str, str]:
    """program_id -> payer, from the snapshot's own tables (``tcoc_summary`` and
    ``settlement_statements`` carry both) and the terms recorded with its runs."""
    out: dict[str, str] = {}
    tables = set(con.list_tables())
    for table in ("tcoc_summary", "settlement_statements"):
        if table in tables and "payer" in con.table(table).columns:
            for pid, payer in con.con.execute(f"SELECT DISTINCT program_id, payer FROM {table}").fetchall():
                if pid and payer:
                    out[pid] = payer
    if "runs" in tables:
        import json

        for (terms,) in con.con.execute("SELECT terms FROM runs WHERE terms IS NOT NULL").fetchall():
            try:
                data = json.loads(terms)
            except (TypeError, ValueError):
                continue
            items = data if isinstance(data, list) else []
            for t in items:
                if isinstance(t, dict) and t.get("program_id") and t.get("payer"):
                    out[t["program_id"]] = t["payer"]
    return out


def _hospital_hsa(con) -> dict[str, str]:
    if "provider_roster" not in set(con.list_tables()):
        return {}
    rows = con.con.execute(
        "SELECT organization_id, min(hsa) FROM provider_roster WHERE practice_type = 'hospital' "
        "AND organization_id IS NOT NULL GROUP BY 1"
    ).fetchall()
    return {r[0]: r[1] for r in rows if r[1] is not None}
