"""Benchmark `allpayer load` against one read of the same Parquet files, measured in the same run.

    .venv/bin/python benchmarks/bench_load.py --members 10000 25000 [--baseline-src DIR] [--repeat 2]

For each population size it generates the synthetic population once (seed 1, Parquet) and then,
alternating, loads it into a new database with this checkout and (with ``--baseline-src``, e.g. the
``src`` folder of another checkout) with that code, each load in its own child process. It reports
per load the CPU seconds of the child (user + system), its peak RSS, the wall seconds, and the
ratio of the CPU seconds to the floor: one DuckDB read of every column of every input Parquet file
(into memory), measured in a child process of the same run. The per-member slope is the CPU
seconds between the two smallest sizes divided by the members between them.

CPU seconds are the steadier measure on a shared machine; the load average is printed with each
row. The best (lowest CPU) of ``--repeat`` loads is kept per size and code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLPAYER = [sys.executable, "-m", "allpayer.cli"]

FLOOR_SCRIPT = r"""
import sys, duckdb
from pathlib import Path
con = duckdb.connect()
for i, f in enumerate(sorted(Path(sys.argv[1]).glob("*.parquet"))):
    con.execute(f"CREATE TEMP TABLE t{i} AS SELECT * FROM read_parquet('{f}')")
    con.execute(f"DROP TABLE t{i}")
"""


def child(cmd: list[str], env: dict | None = None) -> dict:
    """Run `cmd` as a child process; its own CPU seconds (user + system), peak RSS (MB) and wall
    seconds (`os.wait4` gives the resource usage of that child alone)."""
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{stderr[-3000:]}")
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(wall, 2),
        "load_avg": round(load0, 2),
        "stdout": stdout,
    }


def generate(members: int, out: Path) -> None:
    if (out / "manifest.json").exists():
        return
    child(ALLPAYER + ["generate", "--members", str(members), "--seed", "1", "--out", str(out)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, nargs="+", default=[10000, 25000])
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="src folder of the code to measure (default: this checkout's)")
    ap.add_argument("--baseline-src", type=Path, default=None, help="src folder of the code to compare with")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="folder for populations and databases, kept (default: a temporary folder, removed at the end)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.work is None:  # a folder of its own, removed at the end
        with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
            run(args, Path(tmp))
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        run(args, args.work)


def run(args: argparse.Namespace, work: Path) -> None:
    codes = {"this": str(args.src.resolve())}
    if args.baseline_src:
        codes["baseline"] = str(args.baseline_src.resolve())
    rows = []
    for members in args.members:
        data = work / f"pop_{members}"
        generate(members, data)
        floor = min(child([sys.executable, "-c", FLOOR_SCRIPT, str(data)])["cpu_s"] for _ in range(args.repeat))
        best: dict[str, dict] = {}
        for rep in range(args.repeat):
            for name, src in codes.items():
                db = work / f"{name}_{members}.duckdb"
                for p in work.glob(db.name + "*"):
                    p.unlink()
                env = {**os.environ, "PYTHONPATH": src}
                r = child(ALLPAYER + ["load", str(data), "--db", str(db), "--json"], env=env)
                counts = json.loads(r.pop("stdout"))
                r["reconciles"] = all(t["read"] == t["loaded"] + t["already_loaded"] + t["quarantined"]
                                      for t in counts["tables"])
                print(f"{members:>7,} {name:9s} rep {rep}: {r}", flush=True)
                if name not in best or r["cpu_s"] < best[name]["cpu_s"]:
                    best[name] = r
        for name, r in best.items():
            rows.append({"members": members, "code": name, "floor_cpu_s": floor,
                         "x_floor": round(r["cpu_s"] / floor, 1) if floor else None, **r})
    print()
    print("| members | code | cpu s | peak RSS MB | wall s | floor cpu s | x floor | load avg |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['members']:,} | {r['code']} | {r['cpu_s']} | {r['peak_rss_mb']} | {r['wall_s']} | "
              f"{r['floor_cpu_s']} | {r['x_floor']} | {r['load_avg']} |")
    sizes = sorted(args.members)
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[1]
        for name in codes:
            ra = next(r for r in rows if r["members"] == a and r["code"] == name)
            rb = next(r for r in rows if r["members"] == b and r["code"] == name)
            slope = (rb["cpu_s"] - ra["cpu_s"]) / ((b - a) / 1000)
            print(f"{name}: slope {slope:.3f} CPU s per 1,000 members ({a:,} -> {b:,}); "
                  f"at 650,000 members about {ra['cpu_s'] + slope * (650000 - a) / 1000:.0f} CPU s")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
