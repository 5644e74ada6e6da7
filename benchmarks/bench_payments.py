"""Benchmark a full year of monthly payments: twelve `allpayer payments --month` runs.

Setup (not timed): generate a population, load it, run the core stages of the year (kept in
`--work` as ``core-<M>.duckdb`` and reused), then copy that snapshot to a fresh benchmark
database with an empty ledger. With ``--from-members M`` the population is generated and run at
M members and the copy's member-level tables (`inflate.PAYMENT_TABLES`) are multiplied to
``--members`` (a multiple of M): a state-sized year of payments without the hours a state-sized
core run takes. Then, each in its own process so peak memory is the step's own: a baseline (one
DuckDB scan of `member_months`: member months per program and month), and the twelve monthly
payment runs (each computes the year to date, publishes a snapshot and posts its month to the
ledger). Wall time, CPU time (user + system: the better measure when other work shares the
machine) and peak memory are reported, each also as a ratio to the baseline measured in the
same run. An inflated run also checks that its payment totals are N times those of the M-member
snapshot (one year-to-date run on an uninflated copy), and prints and records the check.

    .venv/bin/python benchmarks/bench_payments.py --members 20000
    .venv/bin/python benchmarks/bench_payments.py --members 650000 --from-members 25000 --work /big/disk
    .venv/bin/python benchmarks/bench_payments.py --members 650000 --from-members 25000 --months 12

``--months`` makes only some of the monthly runs (each computes the year to date, so month 12 is
the largest); the row's ``months`` column says which.

Results: benchmarks/results/payments.csv (one row per run; appends).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from inflate import PAYMENT_TABLES  # noqa: E402

RESULTS = HERE / "results" / "payments.csv"
YEAR = 2024

CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
kind, db = sys.argv[1], sys.argv[2]
per_month = []
limit = os.environ.get("BENCH_DUCKDB_MEMORY_LIMIT")
if limit:
    # every DuckDB connection the run opens gets the same cap (the run opens them through backend)
    import allpayer.backend as backend
    _connect = backend.connect_duckdb
    def connect_duckdb(*a, **k):
        con = _connect(*a, **k)
        con.raw_sql(f"SET memory_limit = '{limit}'")
        return con
    backend.connect_duckdb = connect_duckdb
if kind == "baseline":
    import duckdb
    con = duckdb.connect(db, read_only=True, config={"memory_limit": limit} if limit else {})
    con.execute("select program_id, month, count(*) from member_months group by all").fetchall()
    con.close()
elif kind == "ytd":
    from allpayer.payments.common import parse_period
    from allpayer.payments.run import run_payments
    run_payments(db, parse_period(month=sys.argv[3]))
else:
    from allpayer.payments.common import parse_period
    from allpayer.payments.run import run_payments
    profile = sys.argv[5] if len(sys.argv) > 5 else ""
    for m in [int(x) for x in sys.argv[4].split(",")]:
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
        print(f"month {m}: {per_month[-1]} s wall; {ru.ru_utime + ru.ru_stime:.1f} CPU s and peak "
              f"{ru.ru_maxrss / 1024:.0f} MB so far", file=sys.stderr, flush=True)
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": ru.ru_utime + ru.ru_stime,
                  "peak_mb": ru.ru_maxrss / 1024, "per_month": per_month}))
"""


def child(*args: str, memory_limit: str | None = None, render_reports: bool = False) -> dict:
    # A published run renders every audience's reports unless ALLPAYER_RENDER_REPORTS=0: that is
    # the reports' cost (benchmarks/bench_reports.py), off here unless --render-reports.
    env = dict(os.environ, ALLPAYER_RENDER_REPORTS="1" if render_reports else "0")
    if memory_limit:
        env["BENCH_DUCKDB_MEMORY_LIMIT"] = memory_limit
    # stderr (the months' progress, or the error) goes straight to this process's stderr
    out = subprocess.run([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"benchmark child {args[0]} failed (exit {out.returncode}; its error is above)")
    return json.loads(out.stdout.strip().splitlines()[-1])


#: Totals checked on an inflated run: (table, filter, column). Each should be N times the source's.
SCALE_TOTALS = (
    ("fpp_payments", "", "member_months"),
    ("fpp_payments", "", "gross_cents"),
    ("fpp_payments", "", "net_cents"),
    ("shadow_claims", "", "claim_lines"),
    ("shadow_claims", "", "shadow_value_cents"),
    ("cpr_payments", "", "member_months"),
    ("cpr_payments", "", "amount_cents"),
    ("phm_payments", "rule = 'phm.base'", "member_months"),
    ("phm_payments", "rule = 'phm.base'", "amount_cents"),
    ("value_payment_invoices", "", "member_months"),
    ("value_payment_invoices", "", "amount_cents"),
)


def payment_totals(db: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for table, where, col in SCALE_TOTALS:
            cond = f"performance_year = {YEAR}" + (f" AND {where}" if where else "")
            out[f"{table}.{col}" + (f"[{where}]" if where else "")] = int(
                con.execute(f'SELECT coalesce(sum("{col}"), 0) FROM "{table}" WHERE {cond}').fetchone()[0])
        return out
    finally:
        con.close()


def scale_check(base: dict[str, int], big: dict[str, int], factor: int) -> tuple[list[str], bool]:
    """Lines 'name: base x N = expected, got G (ratio)'; True when every total is exactly N times."""
    lines, ok = [], True
    for k in base:
        exp, got = base[k] * factor, big[k]
        ratio = f"{got / base[k]:.6f}" if base[k] else "n/a"
        exact = got == exp
        ok &= exact
        lines.append(f"{k}: {base[k]:,} x {factor} = {exp:,}; inflated run {got:,} (x{ratio}) "
                     f"{'exact' if exact else 'DIFFERS by ' + format(got - exp, ',')}")
    return lines, ok


def fresh_copy(src: Path, dest: Path) -> None:
    """`dest` as a copy of snapshot `src` with no ledger store, run log or reports of its own."""
    for extra in (dest, Path(f"{dest}.store.sqlite"), Path(f"{dest}.runs.jsonl"), Path(f"{dest}.lock"),
                  Path(f"{dest}.wal")):
        extra.unlink(missing_ok=True)
    shutil.rmtree(f"{dest}.reports", ignore_errors=True)
    shutil.copy(src, dest)


def _code_version() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=20_000, help="members of the measured population")
    ap.add_argument("--from-members", type=int, default=0, metavar="M",
                    help="generate and run the core stages at M members, then inflate the member-level tables "
                         "to --members (a multiple of M)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="folder for data and database (default: a temp folder)")
    ap.add_argument("--memory-limit", default="3GB",
                    help="DuckDB memory_limit of the measured runs and the inflation ('' for DuckDB's default)")
    ap.add_argument("--render-reports", action="store_true",
                    help="let each monthly run render the reports on publish, as a plain `allpayer payments` does "
                         "(off by default: the reports have their own benchmark)")
    ap.add_argument("--months", default="1-12", metavar="FIRST-LAST|M,M",
                    help="the monthly runs to make, in order (default 1-12, the year); e.g. 12 makes only the "
                         "December run, which computes the whole year to date")
    ap.add_argument("--profile-month", type=int, default=0, metavar="M",
                    help="profile the run of month M (cProfile, cumulative) into results/payments_profile_<members>.txt")
    a = ap.parse_args()
    if "-" in a.months:
        lo, hi = (int(x) for x in a.months.split("-"))
        months = list(range(lo, hi + 1))
    else:
        months = [int(x) for x in a.months.split(",")]
    if not months or any(not 1 <= m <= 12 for m in months):
        sys.exit(f"--months: months 1 to 12, got {a.months!r}")
    base_members = a.from_members or a.members
    if a.members % base_members:
        sys.exit(f"--members {a.members} is not a multiple of --from-members {base_members}")
    factor = a.members // base_members

    def cli(args: list[str]) -> int:
        # setup runs in child processes: this process stays small, so the measured children do
        # not inherit a large peak RSS (Linux keeps ru_maxrss across fork and exec)
        return subprocess.run([sys.executable, "-m", "allpayer", *args], check=False,
                              env=dict(os.environ, ALLPAYER_RENDER_REPORTS="0")).returncode

    work = a.work or Path(tempfile.mkdtemp(prefix="bench_payments_"))
    work.mkdir(parents=True, exist_ok=True)
    data, core, db = work / f"data-{base_members}", work / f"core-{base_members}.duckdb", work / "bench.duckdb"
    if not (data / "manifest.json").exists():
        assert cli(["generate", "--members", str(base_members), "--seed", str(a.seed), "--out", str(data)]) == 0
    if not core.exists():
        tmp = work / "core-setup.duckdb"
        for extra in (tmp, Path(f"{tmp}.store.sqlite"), Path(f"{tmp}.runs.jsonl")):
            extra.unlink(missing_ok=True)
        assert cli(["load", str(data), "--db", str(tmp)]) == 0
        assert cli(["run", "--db", str(tmp), "--year", str(YEAR)]) == 0
        shutil.copy(tmp, core)
    inflate_seconds = None
    if factor > 1:
        inflated = work / f"core-{base_members}-x{factor}.duckdb"  # kept and reused, like the core snapshot
        if not inflated.exists():
            t0 = time.perf_counter()
            part = work / "inflating.duckdb"
            part.unlink(missing_ok=True)
            # in a child process, like the setup: the measured children must not inherit this
            # process's peak RSS (Linux carries ru_maxrss over fork and exec)
            code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                    "from inflate import PAYMENT_TABLES, inflate, limit_memory; limit_memory(sys.argv[5] or None); "
                    "inflate(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), tables=PAYMENT_TABLES)")
            subprocess.run([sys.executable, "-c", code, str(HERE), str(core), str(part), str(factor),
                            a.memory_limit or ""], check=True)
            os.replace(part, inflated)
            inflate_seconds = round(time.perf_counter() - t0, 1)
            print(f"inflated {', '.join(PAYMENT_TABLES)} x{factor} ({base_members:,} -> {a.members:,} members) "
                  f"in {inflate_seconds} s", flush=True)
        fresh_copy(inflated, db)
    else:
        fresh_copy(core, db)
    load = os.getloadavg()[0]
    base = child("baseline", str(db), memory_limit=a.memory_limit)
    prof = []
    if a.profile_month:
        prof = [f"{a.profile_month}:{HERE / 'results' / f'payments_profile_{a.members}.txt'}"]
    pay = child("payments", str(db), str(YEAR), ",".join(map(str, months)), *prof, memory_limit=a.memory_limit, render_reports=a.render_reports)
    load_end = os.getloadavg()[0]
    check, check_ok = [], None
    if factor > 1:
        # the same year to date on the uninflated snapshot: every total should be N times its own
        small = work / "scale-check.duckdb"
        fresh_copy(core, small)
        child("ytd", str(small), f"{YEAR}-12", memory_limit=a.memory_limit)
        check, check_ok = scale_check(payment_totals(small), payment_totals(db), factor)
        print(f"scale check (inflated totals against {factor} x the {base_members:,}-member run):")
        for line in check:
            print("  " + line)
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
        "load_avg_1m_at_end": round(load_end, 1),
        "per_month_seconds": " ".join(str(x) for x in pay["per_month"]),
        "months": a.months,
        "code": _code_version(),
        "population": (f"inflated x{factor} from {base_members} generated members" if factor > 1
                       else "generated"),
        "inflate_seconds": inflate_seconds if inflate_seconds is not None else "",
        "duckdb_memory_limit": a.memory_limit,
        "reports_on_publish": "rendered" if a.render_reports else "off",
        "scale_check": "" if check_ok is None else ("all totals exactly x%d" % factor if check_ok
                                                    else "DIFFERS: " + "; ".join(x for x in check if "DIFFERS" in x)),
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
