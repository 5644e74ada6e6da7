"""Benchmark CCLF parsing: lines per second, against reading the same bytes from disk.

A synthetic population is generated and its Medicare members written as one monthly CCLF delivery
(`allpayer.synth.cclf_writer`). Then, in the same run and on the same files:

- ``read_bytes``: the baseline: read every file's bytes and count its lines (a NumPy newline
  scan), the least any parser has to do;
- ``parse``: `allpayer.inputs.cclf.parse.parse_file` on every file: lines cut, every field of the
  layout sliced, checked and typed in DuckDB, bad lines set aside;
- ``read_cclf_folder``: the whole reader: CCLF0 check, version detection, parsing, MBI chains,
  final action, netting and the contract tables as Arrow.

Each is run `--repeat` times (after one warm-up read, so the files are in the page cache) and the
median is kept. ``ratio_to_read_bytes`` is the step's seconds over the baseline's seconds.

    .venv/bin/python benchmarks/bench_cclf.py                 # 10,000 people
    .venv/bin/python benchmarks/bench_cclf.py --members 50000

With ``--monthly``, the delivery is instead split into monthly deliveries by the claims' IDR load
month (`allpayer.synth.cclf_writer.split_by_month`) and, in the same run, loaded with
``allpayer load --format cclf`` two ways: the folder of every month at once (the baseline), and one
month after the other into one database (each load reads the stored records of the earlier
months). Wall and CPU seconds (``time.process_time``: every thread of the process) are reported,
with the ratio of month by month to all at once. Results: benchmarks/results/cclf_monthly.csv.

Results: benchmarks/results/cclf.csv (one row per step; appends).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cclf.csv"


def _timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=10_000, help="people to generate (about a quarter are Medicare)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each step; the median is kept")
    ap.add_argument("--monthly", action="store_true", help="time month-by-month loads against one load of every month")
    args = ap.parse_args(argv)
    if args.monthly:
        return monthly(args)

    from allpayer.inputs.cclf import read_cclf_folder
    from allpayer.inputs.cclf.files import discover
    from allpayer.inputs.cclf.layouts import layouts
    from allpayer.inputs.cclf.parse import parse_file
    from allpayer.synth import generate
    from allpayer.synth.cclf_writer import write_cclf

    with tempfile.TemporaryDirectory(prefix="bench-cclf-") as tmp:
        tmp = Path(tmp)
        generate(args.members, args.seed, tmp / "native")
        write_cclf(tmp / "native", tmp / "cclf", performance_year=2024, file_date=dt.date(2025, 3, 31))
        files = [f for f in discover(tmp / "cclf", tmp / "work").files if f.file_type != "CCLF0"]
        total_bytes = sum(f.path.stat().st_size for f in files)

        def read_bytes():
            n = 0
            for f in files:
                n += int(np.count_nonzero(np.frombuffer(f.path.read_bytes(), dtype=np.uint8) == 10))
            return n

        lines = read_bytes()  # warm-up: files in the page cache
        lay = layouts(36)

        def parse():
            con = duckdb.connect()
            for f in files:
                parse_file(con, f.path, f.relpath, lay[f.file_type])
            con.close()

        def whole():
            read_cclf_folder(tmp / "cclf")

        base = _timed(read_bytes, args.repeat)
        steps = [("read_bytes", base), ("parse", _timed(parse, args.repeat)), ("read_cclf_folder", _timed(whole, args.repeat))]

    load = os.getloadavg()[0]
    row_common = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "members": args.members,
        "cclf_files": len(files),
        "lines": lines,
        "megabytes": round(total_bytes / 1e6, 1),
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(load, 2),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists()
    with open(RESULTS, "a", newline="") as fh:
        fields = ["date", "step", "members", "cclf_files", "lines", "megabytes", "seconds", "lines_per_second",
                  "megabytes_per_second", "ratio_to_read_bytes", "repeat", "cpus", "load_avg_1m", "python", "duckdb"]
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        for step, seconds in steps:
            row = {
                **row_common,
                "step": step,
                "seconds": round(seconds, 3),
                "lines_per_second": round(lines / seconds),
                "megabytes_per_second": round(total_bytes / 1e6 / seconds, 1),
                "ratio_to_read_bytes": round(seconds / base, 1),
            }
            w.writerow(row)
            print(f"{step:>17}: {seconds:8.3f} s  {row['lines_per_second']:>12,} lines/s  "
                  f"{row['megabytes_per_second']:>8} MB/s  x{row['ratio_to_read_bytes']} the byte read")
    print(f"{lines:,} lines, {total_bytes / 1e6:.1f} MB in {len(files)} files; load average {load:.2f}; results: {RESULTS}")
    return 0


def monthly(args) -> int:
    import shutil

    from allpayer.inputs.load import load_folder
    from allpayer.synth import generate
    from allpayer.synth.cclf_writer import split_by_month, write_cclf

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cclf-monthly-") as tmp:
        tmp = Path(tmp)
        generate(args.members, args.seed, tmp / "native", years=(2024,))
        write_cclf(tmp / "native", tmp / "cclf", performance_year=2024, file_date=dt.date(2025, 3, 31))
        folders = split_by_month(tmp / "cclf", tmp / "months")
        everything = tmp / "all"
        everything.mkdir()
        for f in folders:
            for p in f.iterdir():
                shutil.copy(p, everything / p.name)
        roster = tmp / "native" / "provider_roster.parquet"
        shutil.copy(roster, everything / roster.name)
        shutil.copy(roster, folders[0] / roster.name)
        lines = sum(len(p.read_bytes().splitlines()) for p in everything.iterdir() if ".ZC0" not in p.name and p.suffix != ".parquet")

        def timed(fn):
            w, c = time.perf_counter(), time.process_time()
            fn()
            return time.perf_counter() - w, time.process_time() - c

        at_once = timed(lambda: load_folder(everything, tmp / "all.duckdb", fmt="cclf"))
        per_month = []
        for f in folders:
            per_month.append(timed(lambda f=f: load_folder(f, tmp / "monthly.duckdb", fmt="cclf")))
        by_month = (sum(x[0] for x in per_month), sum(x[1] for x in per_month))
    load = os.getloadavg()
    for step, (wall, cpu) in (("all_at_once", at_once), ("month_by_month", by_month), ("last_month", per_month[-1])):
        rows.append({
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "step": step,
            "members": args.members, "months": len(folders), "lines": lines, "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3), "wall_ratio_to_all_at_once": round(wall / at_once[0], 2),
            "cpu_ratio_to_all_at_once": round(cpu / at_once[1], 2), "cpus": os.cpu_count(),
            "load_avg_1m": round(load[0], 2), "python": platform.python_version(), "duckdb": duckdb.__version__,
        })
    out = HERE / "results" / "cclf_monthly.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with open(out, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(f"{r['step']:>15}: wall {r['wall_seconds']:8.2f} s  cpu {r['cpu_seconds']:8.2f} s  "
              f"x{r['wall_ratio_to_all_at_once']} wall, x{r['cpu_ratio_to_all_at_once']} cpu of all at once")
    print(f"{lines:,} CCLF lines in {len(folders)} monthly deliveries; load average {load[0]:.2f}; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
