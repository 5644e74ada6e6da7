"""Compile size and time of attribution's queries: one program's roster as a single expression
against the same roster in stored steps.

Works on a copy of a database that `allpayer run` has written (it reads ``member_months`` and the
loaded inputs), so the database itself is not changed.

    .venv/bin/python benchmarks/bench_attribution_sql.py DB [--year 2024] [--program vt-medicare-2024]

Prints, for the single expression, the seconds to compile it to SQL and the SQL's size; for the
stored steps, the number of steps, the slowest step's compile time, the total SQL size and the
seconds to compute them all (CPU seconds too), and whether both give the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ibis

from allpayer.core.attribution import Options, attribute
from allpayer.core.claims import medical_claim_lines
from allpayer.core.member_months import eligibility_months
from allpayer.pipeline import WorkTables, _exclusion_events, _voluntary_alignment, latest_load_run, loaded_as_of
from allpayer.reference.primary_care import primary_care_codes_for
from allpayer.terms import load_programs, programs_dir


class TimedWork(WorkTables):
    """Working tables that also record each step's compile time and SQL size."""

    def __init__(self, con, temp=None):
        super().__init__(con, temp=temp)
        self.compiled: list[tuple[str, float, int]] = []
        self.compile_cpu = 0.0

    def __call__(self, name, expr, key=None):
        if key is None or key not in self._by_key:
            t0, c0 = time.perf_counter(), _cpu()
            sql = str(self.con.compile(expr))
            self.compiled.append((name, time.perf_counter() - t0, len(sql)))
            self.compile_cpu += _cpu() - c0
        return super().__call__(name, expr, key)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--year", type=int, default=2024)
    ap.add_argument("--program", default=None, help="program id (default: the first with claims-based steps)")
    ap.add_argument("--file-tables", action="store_true", help="store the steps in the database file, not as "
                    "temporary tables")
    ap.add_argument("--stored-only", action="store_true", help="skip the single expression")
    a = ap.parse_args(argv)
    progs = [p for p in load_programs([programs_dir() / "vermont"]) if p.performance_year == a.year]
    prog = next(p for p in progs if (a.program is None and p.attribution.primary_care_codes) or p.program_id == a.program)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "db.duckdb"
        shutil.copy(a.db, db)
        con = ibis.duckdb.connect(str(db))
        load = latest_load_run(con)
        elig, med_rows, roster = (loaded_as_of(con, t, load) for t in ("eligibility", "medical_claim", "provider_roster"))
        work = TimedWork(con, temp=False if a.file_tables else None)
        paid = con.table("medical_claim").paid_date.max().to_pyarrow().as_py()
        em = work("eligibility_months", eligibility_months(elig, dt.date(a.year - 1, 1, 1), dt.date(a.year, 12, 31)))
        med = work("claim_lines", medical_claim_lines(med_rows, paid))
        pm = con.table("member_months").filter(lambda t: t.performance_year == a.year)
        tables = set(con.list_tables())
        kw = dict(
            voluntary_alignment=_voluntary_alignment(con.table("voluntary_alignment"), prog)
            if "voluntary_alignment" in tables else None,
            eligibility_months=em,
            exclusion_events=_exclusion_events(con.table("exclusion_event"), prog) if "exclusion_event" in tables else None,
            as_of=paid,
            options=Options(claims_payers=tuple(prog.attribution.claims_payers or ()) or None),
        )
        codes = primary_care_codes_for(prog.attribution.primary_care_codes)
        print(f"program {prog.program_id}, year {a.year}, load average {os.getloadavg()[0]:.2f}")

        one = None
        if not a.stored_only:
            t0, c0 = time.perf_counter(), _cpu()
            single = attribute(prog, pm, med, roster, codes, **kw)
            sql = str(con.compile(single))
            print(f"single expression: compile {time.perf_counter() - t0:.2f} s (CPU {_cpu() - c0:.2f} s), "
                  f"SQL {len(sql) / 1024:.0f} KB")
            t0, c0 = time.perf_counter(), _cpu()
            one = con.to_pyarrow(single)
            print(f"single expression: compile and execute {time.perf_counter() - t0:.2f} s "
                  f"(CPU {_cpu() - c0:.2f} s), {one.num_rows} rows")

        work.compiled.clear()
        work.compile_cpu = 0.0
        t0, c0 = time.perf_counter(), _cpu()
        stored = attribute(prog, pm, med, roster, codes, **kw, store=work)
        got = con.to_pyarrow(stored)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        slow = max(work.compiled, key=lambda x: x[1])
        print(f"stored steps: {len(work.compiled)} steps, slowest compile {slow[1] * 1000:.0f} ms ({slow[0]}), "
              f"median {sorted(x[1] for x in work.compiled)[len(work.compiled) // 2] * 1000:.0f} ms, "
              f"largest SQL {max(x[2] for x in work.compiled) / 1024:.1f} KB, "
              f"total SQL {sum(x[2] for x in work.compiled) / 1024:.0f} KB")
        print(f"stored steps: compute {wall:.2f} s (CPU {cpu:.2f} s, of which {work.compile_cpu:.2f} s compiling "
              f"each step a second time for this report), {got.num_rows} rows")
        same = True
        if one is not None:
            cols = [c for c in one.column_names]
            same = sorted(map(repr, one.select(cols).to_pylist())) == sorted(map(repr, got.select(cols).to_pylist()))
            print(f"same rows: {same}")
        work.drop_all()
        con.disconnect()
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
