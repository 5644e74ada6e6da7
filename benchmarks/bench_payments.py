"""Benchmark a full year of monthly payments: twelve `allpayer payments --month` runs.

Setup (not timed): generate a population, load it, run the core stages of the year. Then, each
in its own process so peak memory is the step's own: a baseline (one DuckDB scan of
`member_months`: member months per program and month), and the twelve monthly payment runs
(each computes the year to date, publishes a snapshot and posts its month to the ledger). Wall
time, CPU time (user + system: the better measure when other work shares the machine) and peak
memory are reported, each also as a ratio to the baseline measured in the same run.

    .venv/bin/python benchmarks/bench_payments.py --members 20000
    .venv/bin/python benchmarks/bench_payments.py --members 650000 --work /big/disk

Results: benchmarks/results/payments.csv (one row per run; appends).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "payments.csv"
YEAR = 2024

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
kind, db = sys.argv[1], sys.argv[2]
if kind == "baseline":
    import duckdb
    con = duckdb.connect(db, read_only=True)
    con.execute("select program_id, month, count(*) from member_months group by all").fetchall()
    con.close()
else:
    from allpayer.payments.common import parse_period
    from allpayer.payments.run import run_payments
    import datetime as dt
    per_month = []
    profile = sys.argv[4] if len(sys.argv) > 4 else ""
    for m in range(1, 13):
        t1 = time.perf_counter()
        period = parse_period(month=f"{sys.argv[3]}-{m:02d}")
        if profile and m == int(profile.split(":")[0]):
            import cProfile, pstats, io
            pr = cProfile.Profile()
            pr.enable()
            run_payments(db, period)
            pr.disable()
            s = io.StringIO()
            pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(45)
            open(profile.split(":", 1)[1], "w").write(s.getvalue())
        else:
            run_payments(db, period)
        per_month.append(round(time.perf_counter() - t1, 2))
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": ru.ru_utime + ru.ru_stime,
                  "peak_mb": ru.ru_maxrss / 1024, "per_month": per_month if kind != "baseline" else []}))
"""


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _code_version() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="folder for data and database (default: a temp folder)")
    ap.add_argument("--profile-month", type=int, default=0, metavar="M",
                    help="profile the run of month M (cProfile, cumulative) into results/payments_profile_<members>.txt")
    a = ap.parse_args()
    def cli(args: list[str]) -> int:
        # setup runs in child processes: this process stays small, so the measured children do
        # not inherit a large peak RSS (Linux keeps ru_maxrss across fork and exec)
        return subprocess.run([sys.executable, "-m", "allpayer", *args], check=False).returncode

    work = a.work or Path(tempfile.mkdtemp(prefix="bench_payments_"))
    data, db = work / "data", work / "bench.duckdb"
    if not (data / "manifest.json").exists():
        assert cli(["generate", "--members", str(a.members), "--seed", str(a.seed), "--out", str(data)]) == 0
    if not db.exists():
        assert cli(["load", str(data), "--db", str(db)]) == 0
        assert cli(["run", "--db", str(db), "--year", str(YEAR)]) == 0
    load = os.getloadavg()[0]
    base = child("baseline", str(db))
    prof = []
    if a.profile_month:
        prof = [f"{a.profile_month}:{HERE / 'results' / f'payments_profile_{a.members}.txt'}"]
    pay = child("payments", str(db), str(YEAR), *prof)
    row = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "members": a.members, "cpus": os.cpu_count(), "python": platform.python_version(),
        "baseline_seconds": round(base["seconds"], 3), "baseline_peak_mb": round(base["peak_mb"], 1),
        "year_of_months_seconds": round(pay["seconds"], 2), "year_of_months_peak_mb": round(pay["peak_mb"], 1),
        "baseline_cpu_seconds": round(base["cpu_seconds"], 2),
        "year_of_months_cpu_seconds": round(pay["cpu_seconds"], 2),
        "time_ratio": round(pay["seconds"] / base["seconds"], 1),
        "cpu_ratio": round(pay["cpu_seconds"] / base["cpu_seconds"], 1),
        "memory_ratio": round(pay["peak_mb"] / base["peak_mb"], 2),
        "load_avg_1m_at_start": round(load, 1),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 1),
        "per_month_seconds": " ".join(str(x) for x in pay["per_month"]),
        "code": _code_version(),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    old = list(csv.DictReader(RESULTS.open())) if RESULTS.exists() else []
    fields = list(dict.fromkeys([*(old[0].keys() if old else []), *row]))
    with open(RESULTS, "w", newline="") as f:  # earlier rows kept; new columns blank for them
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in [*old, row]:
            w.writerow(r)
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
