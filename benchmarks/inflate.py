"""Make a larger snapshot from a smaller one, for benchmarks of the stages that read a finished run.

``inflate(src, dest, factor)`` copies the DuckDB snapshot `src` to `dest` and multiplies the rows of
its member-level tables: copy k (1 .. factor-1) of a row has ``~k`` appended to each identifier
column (member, person, claim ids), so the copies are distinct members with the same history.
Summary tables are left as they are unless named. Generating and running a state-sized
population takes hours on a small machine; an inflated copy takes minutes, and every result that
uses one says so (its label records the factor).

    .venv/bin/python benchmarks/inflate.py demo/allpayer.duckdb /tmp/x13.duckdb 13
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

#: The tables the API benchmark serves member by member.
MEMBER_TABLES = ("attribution", "care_gaps", "medical_claim", "eligibility")
#: Columns that identify a member or a claim; each copy gets its own values.
ID_COLUMNS = ("member_id", "person_id", "claim_id")
#: The member-level tables the payment stage reads (`allpayer.payments`): attribution and member
#: months (every PMPM payment), eligibility (CPR history rates), the claims (shadow claims, FPP
#: hospital shares, CPR history), the TCOC member months (fixed-payment TCOC, Value Payment cost,
#: IBNR accrual) and the targets (Value Payment cost index: scaled with the costs, so the index,
#: and with it every PMPM, is the same as in the source). Program- and practice-level tables
#: (quality scores and rates, completion factors, roster, employer groups) are left as they are.
PAYMENT_TABLES = ("attribution", "member_months", "eligibility", "medical_claim", "tcoc_member_month", "targets")


#: DuckDB settings of the inflating connection (see `limit_memory`).
_CONFIG: dict[str, str] = {}


def limit_memory(limit: str | None) -> None:
    """Cap DuckDB's memory (e.g. ``"3GB"``) in the connections `inflate` opens from now on; None
    restores DuckDB's default (80% of the machine's memory)."""
    _CONFIG.pop("memory_limit", None)
    if limit:
        _CONFIG["memory_limit"] = limit


def inflate(src: Path, dest: Path, factor: int, tables: tuple[str, ...] = MEMBER_TABLES,
            id_columns: tuple[str, ...] = ID_COLUMNS) -> Path:
    """Copy snapshot `src` to `dest` with `tables` holding `factor` times their rows (see the
    module docstring). A report folder beside `src` is copied too. Tables absent from `src` are
    skipped. Returns `dest`."""
    import duckdb

    if factor < 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    src, dest = Path(src), Path(dest)
    shutil.copy(src, dest)
    if Path(str(src) + ".reports").is_dir():
        shutil.copytree(str(src) + ".reports", str(dest) + ".reports", dirs_exist_ok=True)
    con = duckdb.connect(str(dest), config=_CONFIG)
    try:
        for table in tables:
            if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                               [table]).fetchone()[0]:
                continue
            cols = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
            sel = ", ".join(f'"{c}" || \'~\' || k::VARCHAR AS "{c}"' if c in id_columns else f'"{c}"'
                            for c in cols)
            con.execute(f'INSERT INTO "{table}" SELECT {sel} FROM "{table}", range(1, {factor}) AS r(k)')
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    inflate(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
