"""Benchmark `allpayer generate`: wall time, peak memory and rows per second by population size.

Each size runs in its own child process (so peak RSS is that run's alone, read with os.wait4),
writes into a temporary folder that is deleted afterwards, and is compared with the first size of
the same run: `time_per_member_ratio` near 1.0 at every size means time grows linearly.

    .venv/bin/python benchmarks/bench_generate.py                 # 10k 50k 100k 250k 650k
    .venv/bin/python benchmarks/bench_generate.py 10000 100000    # chosen sizes

Results: benchmarks/results/generate.csv and benchmarks/results/generate.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = (10_000, 50_000, 100_000, 250_000, 650_000)

CHILD = r"""
import json, sys, time
from pathlib import Path
from allpayer.synth import generate
members, seed, fmt, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
t0 = time.perf_counter()
m = generate(members, seed, out, fmt=fmt)
seconds = time.perf_counter() - t0
size = sum(p.stat().st_size for p in out.iterdir())
print(json.dumps({"seconds": seconds, "rows": m.row_counts, "bytes": size}))
"""


def run_with_rss(members: int, seed: int, fmt: str, workdir: Path) -> dict:
    """Run one size in a child and measure its own peak RSS with os.wait4."""
    out = workdir / f"gen_{members}"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: exec a fresh interpreter writing its result to the pipe
        os.close(r)
        os.dup2(w, 1)
        os.execv(sys.executable, [sys.executable, "-c", CHILD, str(members), str(seed), fmt, str(out)])
    os.close(w)
    with os.fdopen(r) as f:
        stdout = f.read()
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"generate {members} failed (exit {os.waitstatus_to_exitcode(status)})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    shutil.rmtree(out, ignore_errors=True)
    return result


def render(rows_out: list[dict], env: dict, md: Path) -> None:
    """Write (and print) the markdown table of a run, with a least-squares line through the times."""
    import numpy

    cols = ["members", "seconds", "cpu_seconds", "peak_rss_mb", "total_rows", "rows_per_second", "ms_per_1000_members",
            "time_per_member_ratio", "load_avg_1m_at_start"]
    lines = [
        f"`allpayer generate` ({env['format']}, seed {env['seed']}, default span 2022-2024 + run-out); "
        f"{env['cpus']} CPUs, Python {env['python']}, numpy {env['numpy']}, pyarrow {env['pyarrow']}.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---:" for _ in cols) + "|",
    ]
    for row in rows_out:
        lines.append("| " + " | ".join(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in cols) + " |")
    if len(rows_out) >= 3:
        xs = numpy.array([r["members"] for r in rows_out], dtype=float)
        ys = numpy.array([r["seconds"] for r in rows_out], dtype=float)
        slope, intercept = numpy.polyfit(xs, ys, 1)
        pred = intercept + slope * xs
        r2 = 1 - ((ys - pred) ** 2).sum() / ((ys - ys.mean()) ** 2).sum()
        lines += [
            "",
            f"Least-squares line: seconds = {intercept:.2f} + {slope * 1e6:.1f} x (members / 1,000,000); "
            f"R^2 = {r2:.4f}. Peak RSS stays flat because people are generated and written in chunks of 50,000.",
        ]
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def render_from_csv(path: Path) -> None:
    """Re-render the markdown of an earlier run from its CSV."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    env_keys = ("format", "seed", "cpus", "python", "numpy", "pyarrow", "machine")
    env = {k: rows[0][k] for k in env_keys}
    out = []
    for r in rows:
        row = {}
        for k, v in r.items():
            if k in env_keys:
                continue
            row[k] = int(v) if v.lstrip("-").isdigit() else float(v)
        out.append(row)
    render(out, env, path.with_suffix(".md"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES), help="population sizes (people)")
    ap.add_argument("--seed", type=int, default=1, help="seed for every run")
    ap.add_argument("--format", default="parquet", choices=("parquet", "csv"), help="output format")
    ap.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temporary folder)")
    ap.add_argument("--results", type=Path, default=HERE / "results" / "generate.csv", help="CSV of results")
    ap.add_argument("--render-only", action="store_true", help="only rebuild the markdown from the results CSV")
    args = ap.parse_args(argv)
    if args.render_only:
        render_from_csv(args.results)
        return 0

    import numpy
    import pyarrow

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_generate_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows_out = []
    base = None
    for members in args.sizes:
        load = os.getloadavg()[0]
        r = run_with_rss(members, args.seed, args.format, workdir)
        total = sum(r["rows"].values())
        per_member = r["seconds"] / members
        base = base or per_member
        row = {
            "members": members,
            "seconds": round(r["seconds"], 2),
            "cpu_seconds": round(r["cpu_seconds"], 2),
            "peak_rss_mb": round(r["peak_rss_mb"], 1),
            "total_rows": total,
            "medical_claim_rows": r["rows"]["medical_claim"],
            "pharmacy_claim_rows": r["rows"]["pharmacy_claim"],
            "rows_per_second": round(total / r["seconds"]),
            "output_mb": round(r["bytes"] / 2**20, 1),
            "ms_per_1000_members": round(per_member * 1e6, 1),
            "time_per_member_ratio": round(per_member / base, 3),
            "load_avg_1m_at_start": round(load, 2),
        }
        rows_out.append(row)
        print(json.dumps(row), flush=True)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)

    env = {
        "format": args.format,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
        "machine": platform.machine(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows_out[0]) + list(env))
        w.writeheader()
        for row in rows_out:
            w.writerow(row | env)
    render(rows_out, env, args.results.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
