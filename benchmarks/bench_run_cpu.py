"""CPU seconds of `allpayer run` part by part, this code against a baseline, on loaded databases.

For each loaded DuckDB database given (e.g. from `allpayer generate` and `allpayer load` at two
population sizes), each repeat runs `run_year(copy, YEAR)` twice in child processes, on a fresh
copy of the database each time: once with the baseline's sources (``--baseline-src``, a folder
holding an ``allpayer`` package, e.g. made with ``git archive <commit> src | tar -x -C DIR``) and
once with this code, alternating which goes first so that both see the same machine load. Each
child reports the CPU seconds of the process (DuckDB's threads included) of every stage, of every
working table of the run (``allpayer.pipeline._work_table``), of Ibis compilation (all queries)
and of the whole run, with its wall seconds and peak resident memory.

    .venv/bin/python benchmarks/bench_run_cpu.py --baseline-src /tmp/base/src DB_10K DB_25K [--repeats 2]

Prints a markdown table (medians over the repeats) and the per-member slope of the whole run
between the smallest and the largest population (CPU seconds per 1,000 members), for both codes,
and writes the table to ``--out`` when given. Ratios compare the two codes within this one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_pipeline import child_json  # the same child-process runner as the pipeline benchmark

CHILD = r"""
import json, os, resource, shutil, sys, time
src, dst, year = sys.argv[1], sys.argv[2], int(sys.argv[3])
shutil.copy(src, dst)


def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


from ibis.backends.sql.compilers.base import SQLGlotCompiler

compiled = {"cpu": 0.0, "depth": 0}
_to_sqlglot = SQLGlotCompiler.to_sqlglot


def to_sqlglot(self, *a, **k):
    if compiled["depth"]:
        return _to_sqlglot(self, *a, **k)
    compiled["depth"] += 1
    c0 = cpu()
    try:
        return _to_sqlglot(self, *a, **k)
    finally:
        compiled["cpu"] += cpu() - c0
        compiled["depth"] -= 1


SQLGlotCompiler.to_sqlglot = to_sqlglot

from allpayer import pipeline

parts, started = {}, {}
_work_table = pipeline._work_table


def work_table(con, name, expr):
    c0 = cpu()
    out = _work_table(con, name, expr)
    parts[f"working table {name}"] = round(cpu() - c0, 2)
    return out


pipeline._work_table = work_table


def progress(description, done, total):
    name = description.split(": ", 1)[-1]
    if name not in started:
        started[name] = cpu()
    else:
        parts[name] = round(cpu() - started[name], 2)


import duckdb

members = duckdb.connect(src, read_only=True).execute("SELECT count(DISTINCT person_id) FROM eligibility").fetchone()[0]
c0, w0 = cpu(), time.perf_counter()
pipeline.run_year(dst, year, progress=progress)
parts["Ibis compilation, all queries"] = round(compiled["cpu"], 2)
parts["whole run_year"] = round(cpu() - c0, 2)
print(json.dumps({"members": members, "parts": parts, "wall": round(time.perf_counter() - w0, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def run_child(db: Path, year: int, pythonpath: str | None, tmp: Path) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    copy = tmp / f"run_{os.getpid()}.duckdb"
    try:
        return child_json(CHILD, [db, copy, year], f"run on {db}", env=env)
    finally:
        for p in tmp.glob(f"{copy.name}*"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("databases", nargs="+", type=Path, help="loaded DuckDB databases (one per population size)")
    ap.add_argument("--baseline-src", required=True, type=Path, help="folder holding the baseline's allpayer package")
    ap.add_argument("--year", type=int, default=2024)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args()
    if not (args.baseline_src / "allpayer" / "__init__.py").exists():
        raise SystemExit(f"{args.baseline_src}: no allpayer package there")
    results: dict[tuple[Path, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_run_cpu_") as tmp:
        for rep in range(args.repeats):
            for db in args.databases:
                order = [("baseline", str(args.baseline_src)), ("this code", None)]
                if rep % 2:
                    order.reverse()
                for label, path in order:
                    r = run_child(db, args.year, path, Path(tmp))
                    results.setdefault((db, label), []).append(r)
                    print(f"{db.name} {label}: {r['parts']['whole run_year']} CPU s, {r['wall']} s wall, "
                          f"load {r['load_avg_1m_at_start']}", file=sys.stderr)
    lines = _table(results, args.databases)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


def _median(rs: list[dict], part: str):
    vals = [r["parts"][part] for r in rs if part in r["parts"]]
    return round(statistics.median(vals), 2) if vals else None


def _table(results: dict, dbs: list[Path]) -> list[str]:
    members = {db: results[(db, "baseline")][0]["members"] for db in dbs}
    parts: list[str] = []
    for rs in results.values():
        for r in rs:
            parts += [p for p in r["parts"] if p not in parts]
    head = "| part | " + " | ".join(f"{members[db]:,} baseline | {members[db]:,} this code" for db in dbs) + " |"
    lines = [head, "|---|" + "---:|" * (2 * len(dbs))]
    for part in parts:
        cells = []
        for db in dbs:
            for label in ("baseline", "this code"):
                v = _median(results[(db, label)], part)
                cells.append("" if v is None else f"{v:.2f}")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    for what, key in (("wall seconds", "wall"), ("peak RSS MB", "peak_rss_mb"), ("load average at start", "load_avg_1m_at_start")):
        cells = [str(statistics.median(r[key] for r in results[(db, label)])) for db in dbs for label in ("baseline", "this code")]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    if len(dbs) > 1:
        lo, hi = min(dbs, key=lambda d: members[d]), max(dbs, key=lambda d: members[d])
        span = (members[hi] - members[lo]) / 1000
        lines.append("")
        for label in ("baseline", "this code"):
            slope = (_median(results[(hi, label)], "whole run_year") - _median(results[(lo, label)], "whole run_year")) / span
            lines.append(f"Slope of the whole run, {label}: {slope:.3f} CPU s per 1,000 members "
                         f"({members[lo]:,} to {members[hi]:,}).")
    return lines


if __name__ == "__main__":
    main()
