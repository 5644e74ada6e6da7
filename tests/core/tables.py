"""Small helpers shared by the core-stage tests: build Ibis tables from records, read results."""

from __future__ import annotations

import ibis
import pyarrow as pa

CON = ibis.duckdb.connect()


def rows(expr, key=None):
    """The rows of an expression as dicts (sorted by `key` when given)."""
    out = CON.to_pyarrow(expr).to_pylist()
    return sorted(out, key=key) if key else out


def table(records, schema):
    """An Ibis memtable from a list of dicts and a schema (missing keys are NULL)."""
    schema = ibis.schema(schema)
    data = pa.table({c: [r.get(c) for r in records] for c in schema.names}, schema=schema.to_pyarrow())
    return ibis.memtable(data)
