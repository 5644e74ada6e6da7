"""Helpers of the payments tests: shipped terms with small changes, attributed-month tables."""

from __future__ import annotations

import copy
import datetime as dt
from functools import lru_cache

import ibis
import pyarrow as pa
import yaml

from allpayer.terms import parse_program, programs_dir

CON = ibis.duckdb.connect()

ATT_SCHEMA = {"program_id": "string", "member_id": "string", "person_id": "string", "month": "date",
              "practice_id": "string", "hsa": "string", "group_id": "string", "cell_id": "string"}


@lru_cache(maxsize=None)
def _shipped(name: str) -> dict:
    return yaml.safe_load((programs_dir() / "vermont" / "2024" / name).read_text())


def program(name: str = "medicaid.yaml", edit=None):
    """A shipped 2024 program, optionally edited (a function of the plain data) before loading."""
    data = copy.deepcopy(_shipped(name))
    if edit:
        edit(data)
    return parse_program(data, f"<{name} edited>")


def table(records, schema):
    sch = ibis.schema(schema)
    data = pa.table({c: [r.get(c) for r in records] for c in sch.names}, schema=sch.to_pyarrow())
    return ibis.memtable(data)


def att_months(rows):
    """rows: (member_id, month, cell_id, practice_id, hsa[, group_id][, program_id])."""
    recs = []
    for r in rows:
        member, month, cell, practice, hsa = r[:5]
        group = r[5] if len(r) > 5 else None
        pid = r[6] if len(r) > 6 else "vt-2024-medicaid"
        recs.append({"program_id": pid, "member_id": member, "person_id": "p-" + member, "month": month,
                     "practice_id": practice, "hsa": hsa, "group_id": group, "cell_id": cell})
    return table(recs, ATT_SCHEMA)


def many_months(n: int, month: dt.date, cell: str, pid: str = "vt-2024-medicaid", practice="pr1", hsa="h"):
    """n attributed member months in one cell and month (built column-wise: fast for large n)."""
    sch = ibis.schema(ATT_SCHEMA)
    cols = {
        "program_id": [pid] * n, "member_id": [f"m{i}" for i in range(n)], "person_id": [f"p{i}" for i in range(n)],
        "month": [month] * n, "practice_id": [practice] * n, "hsa": [hsa] * n, "group_id": [None] * n,
        "cell_id": [cell] * n,
    }
    return ibis.memtable(pa.table(cols, schema=sch.to_pyarrow()))


def rows(expr, key=None):
    out = CON.to_pyarrow(expr).to_pylist()
    return sorted(out, key=key) if key else out


JAN, FEB, MAR = dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)
