"""Benchmark the whole annual cycle, stage by stage, at several population sizes.

For each population size, in its own child process (so memory figures are that size's alone):

1. generate the synthetic population over the default span (service 2022-2024, paid through
   2025-03-31), Parquet, seed 1, Dartmouth-Hitchcock paid by FPP (so the hospital report has a
   hospital), into a temporary folder deleted afterwards;
2. the floor: one DuckDB scan-and-aggregate of the same medical claims Parquet (paid amount by
   person and month of service), timed in the same child just before the cycle;
3. the cycle, each stage through the public command line (`allpayer.cli.main`, in the child's
   process): ``load`` (validate, quarantine, publish) -> ``run --year`` -> ``quality --year`` ->
   ``payments --year`` -> ``settle --year`` -> one ``report`` per audience (employer, practice,
   hospital, payer, regulator; the first organization of each, HTML and CSV). As a script running
   the year in one go would (and as `allpayer demo` does), ``run``, ``quality`` and ``payments``
   publish with ``--no-reports`` and ``settle`` with ``--reports``: every audience's reports are
   rendered once, when the settlement is published. ``--reports-every-publish`` renders them on
   each of the four publishes instead (the commands' default, and this benchmark's before
   2026-12-07); the CSV's ``reports`` column says which.

Per stage: wall seconds, CPU seconds of the child (DuckDB's threads included), peak resident
memory (the process's high-water mark VmHWM, reset before each stage through
/proc/self/clear_refs), medical claim lines per second, and the ratio to the floor. The cycle's
totals are the sums over the stages (peak memory: the largest stage peak). Inside the ``run`` stage, the
wall seconds and rows of each table it writes (from ``allpayer run --json``), and the core total
(attribution + risk + TCOC + targets, the stages of the core-pipeline issue's 10x goal) against the floor.

Across sizes: a scaling curve (cycle seconds against members, least-squares line and R^2; the
seconds per member at each size), and the per-claim-line throughput ratio against the Tuva
Project on dbt-duckdb (269.5 s for 5,000 members and 1.04M claim lines on a 2-core machine, the
figure given in the scale issue; Tuva itself is not run here).

With ``--spark``, each size also runs on Spark local (``local[2]``) for the stages whose command
takes ``--backend spark``; the other stages are listed as skipped.

    .venv/bin/python benchmarks/bench_cycle.py                       # 10k and 50k members
    .venv/bin/python benchmarks/bench_cycle.py 10000 50000 100000 650000
    .venv/bin/python benchmarks/bench_cycle.py 10000 --spark
    .venv/bin/python benchmarks/bench_cycle.py --render-only         # rebuild markdown and SVG from the CSV

Results: benchmarks/results/cycle.csv (one row per size, backend and stage, plus the cycle
total), benchmarks/results/cycle.md and benchmarks/results/cycle.svg. The CSV is rewritten after
each size, so a long run keeps what it measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_pipeline import CORE_STAGES, CORE_WITH_WORK_ROW, CORE_WORK, core_seconds, core_with_work, _num, environment  # the same stages, versions table and CSV reading as the pipeline benchmark
from bench_pipeline import write_csv as pipeline_write_csv

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = (10_000, 50_000)
YEAR = 2024
TUVA_SECONDS = 269.5
TUVA_CLAIM_LINES = 1_040_000
TUVA_MEMBERS = 5_000
GOAL_SECONDS = 180
GOAL_MEMORY_MB = 8 * 1024
GOAL_FLOOR_RATIO = 30
AUDIENCES = ("employer", "practice", "hospital", "payer", "regulator")
CORE_ROW = "core (attribution+risk+tcoc+targets)"

CHILD = r"""
import contextlib, io, json, os, resource, sys, time
from pathlib import Path

members, work, backend, year = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
result_path = Path(sys.argv[5])
AUDIENCES = json.loads(sys.argv[6])
EVERY_PUBLISH = sys.argv[7] == "every publish"  # else rendered on the settlement's publish only


def hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def cpu_now():
    u = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime + c.ru_utime + c.ru_stime


out = {"members": members, "backend": backend, "stages": [], "skipped": [], "reports": sys.argv[7]}


def save():
    result_path.write_text(json.dumps(out))


from allpayer.cli import main as cli


def stage(name, args):
    # One public command, in this process; its console output is discarded.
    out["running"] = name
    save()
    reset_hwm()
    c0, t0 = cpu_now(), time.perf_counter()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        rc = cli([str(a) for a in args])
    secs = time.perf_counter() - t0
    row = {"stage": name, "seconds": round(secs, 3), "cpu_seconds": round(cpu_now() - c0, 2),
           "peak_rss_mb": round(hwm_kib() / 1024, 1), "rc": rc}
    if rc != 0:
        row["error"] = sink.getvalue()[-2000:]
    out["stages"].append(row)
    out["running"] = None
    save()
    if rc != 0:
        raise SystemExit(f"{name} failed (exit {rc}): {sink.getvalue()[-2000:]}")
    return sink.getvalue()


data = work / "in"
t0 = time.perf_counter()
cli(["generate", "--members", str(members), "--seed", "1", "--out", str(data), "--format", "parquet", "--dhmc-fpp"])
out["generate_seconds"] = round(time.perf_counter() - t0, 3)
out["input_rows"] = json.loads((data / "manifest.json").read_text()).get("row_counts", {})

import duckdb

med = data / "medical_claim.parquet"
glob = str(med) if med.exists() else str(data / "medical_claim" / "*.parquet")
floor_sql = (f"SELECT person_id, date_trunc('month', claim_start_date) AS month, sum(paid_amount) AS paid, "
             f"count(*) AS n FROM read_parquet('{glob}') GROUP BY ALL")
con = duckdb.connect()
out["medical_claim_rows"] = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall()[0][0]
con.execute(f"SELECT count(*) FROM ({floor_sql})").fetchall()  # warm the file cache
c0, t0 = cpu_now(), time.perf_counter()
con.execute(f"SELECT count(*) FROM ({floor_sql})").fetchall()
out["floor_seconds"] = round(time.perf_counter() - t0, 4)
out["floor_cpu_seconds"] = round(cpu_now() - c0, 3)
con.close()
save()

if backend == "spark":
    db = work / "warehouse"
    spark = ["--backend", "spark", "--spark-master", "local[2]"]
else:
    db = work / "db.duckdb"
    spark = []


def takes_backend(command):
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        cli([command, "--help"])
    return "--backend" in sink.getvalue()


def step(name, command, args):
    if spark and not takes_backend(command):
        out["skipped"].append(name)
        save()
        return None
    return stage(name, [command, *args, *spark])


step("load", "load", [data, "--db", db])
# `run --json` reports each table's wall seconds and rows: the core stages inside the run.
intermediate = ["--reports" if EVERY_PUBLISH else "--no-reports"]
printed = step("run", "run", ["--db", db, "--year", year, "--json", *intermediate])
report = json.loads(printed[printed.index("{"):printed.rindex("}") + 1])
out["run_tables"] = {k: {"seconds": report["seconds"][k], "rows": report["rows"].get(k)} for k in report["seconds"]}
# ... and the seconds of the run outside those tables (working tables, opening, publishing, reports)
out["run_other"] = {k: v for k, v in report.get("other_seconds", {}).items() if k != "total"}
save()
step("quality", "quality", ["--db", db, "--year", year, *intermediate])
step("payments", "payments", ["--db", db, "--year", year, *intermediate])
step("settle", "settle", ["--db", db, "--year", year, "--reports"])
if not spark:
    from allpayer.reports.publish import organizations
    from allpayer.runs import open_snapshot

    snap = open_snapshot(db)
    try:
        orgs = {k: organizations(snap, k, year) for k in AUDIENCES}
    finally:
        snap.disconnect()
    for kind in AUDIENCES:
        if not orgs[kind]:
            out["skipped"].append(f"report {kind} (no organization)")
            continue
        stage(f"report {kind}", ["report", kind, "--db", db, "--for", orgs[kind][0], "--period", year,
                                 "--format", "html,csv", "--out", work / "reports" / kind])
else:
    out["skipped"].extend(f"report {k}" for k in AUDIENCES)
out["db_mb"] = round(sum(p.stat().st_size for p in ([db] if db.is_file() else db.rglob("*")) if p.is_file()) / 2**20, 1)
save()
"""


def run_child(members: int, backend: str, workdir: Path, timeout: float | None = None,
              reports: str = "settle publish") -> dict:
    work = workdir / f"{backend}_{members}"
    work.mkdir(parents=True, exist_ok=True)
    result_path = workdir / f"{backend}_{members}.json"
    load_avg = os.getloadavg()[0]
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(members), str(work), backend, str(YEAR), str(result_path),
             json.dumps(AUDIENCES), reports],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:  # the child is killed; keep the stages it finished
        proc = subprocess.CompletedProcess([], returncode=-9, stderr=f"stopped after the time budget ({timeout:.0f} s)\n")
    shutil.rmtree(work, ignore_errors=True)
    result = json.loads(result_path.read_text()) if result_path.exists() else {"members": members, "backend": backend,
                                                                               "stages": [], "reports": reports}
    result["load_avg_1m_at_start"] = round(load_avg, 2)
    result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    result["complete"] = proc.returncode == 0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        result["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
        if result.get("running"):
            result["error"] += f" (during {result['running']})"
    return result


COLUMNS = ["members", "backend", "stage", "seconds", "cpu_seconds", "peak_rss_mb", "output_rows", "medical_claim_rows",
           "claim_rows_per_second", "floor_seconds", "ratio_to_floor", "seconds_per_1000_members",
           "tuva_throughput_ratio", "load_avg_1m_at_start", "load_avg_1m_at_end", "complete", "reports"]


def rows_of(result: dict) -> list[dict]:
    """One CSV row per stage, plus the cycle total."""
    claims = result.get("medical_claim_rows") or result.get("input_rows", {}).get("medical_claim", 0)
    floor = result.get("floor_seconds")
    common = {"members": result["members"], "backend": result["backend"], "medical_claim_rows": claims,
              "floor_seconds": floor, "load_avg_1m_at_start": result["load_avg_1m_at_start"],
              "load_avg_1m_at_end": result["load_avg_1m_at_end"], "complete": result["complete"],
              "reports": result.get("reports")}

    def row(stage, secs, cpu, mem):
        return {**common, "stage": stage, "seconds": round(secs, 3), "cpu_seconds": cpu, "peak_rss_mb": mem,
                "claim_rows_per_second": round(claims / secs) if secs else None,
                "ratio_to_floor": round(secs / floor, 1) if floor else None,
                "seconds_per_1000_members": round(1000 * secs / result["members"], 4)}

    tables = result.get("run_tables") or {}
    # wall seconds only for the run's tables: CPU and memory are the run stage's as a whole
    inside = [{**row(f"run: {name}", t["seconds"], None, None), "output_rows": t.get("rows")}
              for name, t in tables.items()]
    inside += [row(f"run: {name}", secs, None, None) for name, secs in (result.get("run_other") or {}).items()]
    if tables and all(name in tables for name in CORE_STAGES):
        stage_seconds = {n: t["seconds"] for n, t in tables.items()}
        inside.append(row(CORE_ROW, core_seconds(stage_seconds), None, None))
        inside.append(row(CORE_WITH_WORK_ROW, core_with_work(stage_seconds, result.get("run_other") or {}), None, None))
    out = []
    for s in result["stages"]:
        out.append(row(s["stage"], s["seconds"], s["cpu_seconds"], s["peak_rss_mb"]))
        if s["stage"] == "run":
            out.extend(inside)
    if result["stages"]:
        total = row("cycle", sum(s["seconds"] for s in result["stages"]),
                    round(sum(s["cpu_seconds"] for s in result["stages"]), 2),
                    max(s["peak_rss_mb"] for s in result["stages"]))
        total["tuva_throughput_ratio"] = tuva_ratio(claims, total["seconds"])
        out.append(total)
    return out


def is_sub_row(r: dict) -> bool:
    """A table inside the run stage (or the core total), not a stage of its own."""
    return str(r["stage"]).startswith("run: ") or r["stage"] in (CORE_ROW, CORE_WITH_WORK_ROW)


def tuva_ratio(claim_lines: int, seconds: float) -> float | None:
    """Claim lines per second of the cycle divided by Tuva's (1.04M lines in 269.5 s)."""
    if not seconds:
        return None
    return round((claim_lines / seconds) / (TUVA_CLAIM_LINES / TUVA_SECONDS), 2)


def least_squares(xs: list[float], ys: list[float]) -> tuple[float, float, float] | None:
    """Intercept, slope and R^2 of the line y = a + b x (None with fewer than two sizes)."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
    r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
    return a, b, r2


def _fmt(v) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def totals(rows: list[dict]) -> list[dict]:
    return sorted((r for r in rows if r["stage"] == "cycle"), key=lambda r: (r["backend"], r["members"]))


def render(rows: list[dict], env: dict, md: Path, svg: Path) -> None:
    lines = [
        f"Whole annual cycle, performance year {YEAR}, shipped Vermont terms; synthetic population seed 1, default "
        f"span, Dartmouth-Hitchcock paid by FPP; {env['cpus']} CPUs, Python {env['python']}, DuckDB {env['duckdb']}, "
        f"Ibis {env['ibis']}" + (f", PySpark {env['pyspark']}" if env.get("pyspark") else "") + ".",
        "",
        "`ratio_to_floor`: seconds divided by one DuckDB scan-and-aggregate of the same medical claims Parquet, "
        "measured in the same child process. `tuva_throughput_ratio`: medical claim lines per second of the whole "
        f"cycle divided by Tuva's on dbt-duckdb ({TUVA_CLAIM_LINES:,} claim lines in {TUVA_SECONDS} s for "
        f"{TUVA_MEMBERS:,} members, as given in the scale issue; not run here). CPU seconds count the benchmark's "
        "own process only, which is the better measure when the machine is shared (compare the load averages); on "
        "Spark that leaves out the JVM's CPU and memory, so compare Spark with DuckDB in wall seconds.",
        "",
        "## Cycle by size",
        "",
        "| members | backend | medical lines | seconds | cpu_seconds | peak MB | floor s | x floor | s per 1k members "
        "| lines/s | x Tuva | load avg | complete | reports rendered on |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in totals(rows):
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in (
            "members", "backend", "medical_claim_rows", "seconds", "cpu_seconds", "peak_rss_mb", "floor_seconds",
            "ratio_to_floor", "seconds_per_1000_members", "claim_rows_per_second", "tuva_throughput_ratio")) +
            f" | {_fmt(r.get('load_avg_1m_at_start'))}-{_fmt(r.get('load_avg_1m_at_end'))} | {_fmt(r.get('complete'))} "
            f"| {r.get('reports') or 'every publish'} |")
    lines.append("")
    two_sizes = False  # a line fitted through two points says nothing by its R^2
    for backend in sorted({r["backend"] for r in totals(rows)}):
        done = [r for r in totals(rows) if r["backend"] == backend and r.get("complete") in (True, "True", "yes")]
        two_sizes = two_sizes or len(done) == 2
        for measure, label in (("cpu_seconds", "CPU seconds"), ("seconds", "wall seconds")):
            fit = least_squares([r["members"] for r in done], [r[measure] for r in done])
            if fit:
                a, b, r2 = fit
                lines.append(f"Scaling ({backend}, {label}): {a:.2f} + {b * 1e6:.1f} x (members / 1,000,000); "
                             f"R^2 = {r2:.4f}; at 650,000 members this line gives {a + b * 650_000:.0f} s "
                             f"(goal {GOAL_SECONDS} s wall).")
                lines.append("")
    if two_sizes:
        lines.append("With two sizes the line passes through both points (R^2 = 1 says nothing).")
    lines.append("Wall seconds are comparable across sizes only at similar load averages; CPU seconds are the "
                 "steadier measure.")
    lines.append("")
    lines += ["## Stages", ""]
    for key in sorted({(r["members"], r["backend"]) for r in rows}):
        sub = [r for r in rows if (r["members"], r["backend"]) == key]
        lines += [f"### {key[0]:,} members, {key[1]}", "",
                  "| stage | seconds | cpu_seconds | peak_rss_mb | output rows | claim_rows_per_second | ratio_to_floor |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in sub:
            lines.append("| " + " | ".join(_fmt(r.get(c)) for c in (
                "stage", "seconds", "cpu_seconds", "peak_rss_mb", "output_rows", "claim_rows_per_second",
                "ratio_to_floor")) + " |")
        if any(is_sub_row(r) for r in sub):
            lines.append("\nRows `run: TABLE` are the tables the `run` stage writes, with the wall seconds `allpayer run "
                         "--json` reports for each, then the run's other parts (its working tables, opening and publishing "
                         "the snapshot, the reports; with the tables they add up to the run), in wall seconds too "
                         "(CPU and memory are the run stage's as a whole); the core row sums "
                         f"{', '.join(CORE_STAGES)}, the stages whose ratio to the floor the core-pipeline issue sets "
                         "a goal for (10 times), and the row after it adds the working tables they read ("
                         f"{', '.join(CORE_WORK)}): the figure to hold against that goal.")
        lines.append(f"\nfloor: {sub[0]['floor_seconds']} s; load average {sub[0]['load_avg_1m_at_start']} at start, "
                     f"{sub[0]['load_avg_1m_at_end']} at end\n")
    md.write_text("\n".join(lines) + "\n")
    svg.write_text(chart(rows))
    print("\n".join(lines))


def chart(rows: list[dict]) -> str:
    """An SVG chart: cycle seconds against members per backend, the least-squares line, and the
    3-minute goal."""
    w, h, left, right, top, bottom = 640, 400, 70, 20, 40, 50
    pts = [r for r in totals(rows) if r.get("seconds")]
    xmax = max([r["members"] for r in pts] + [1]) * 1.05
    ymax = max([r["seconds"] for r in pts] + [GOAL_SECONDS]) * 1.1

    def sx(x):
        return left + (w - left - right) * x / xmax

    def sy(y):
        return h - bottom - (h - top - bottom) * y / ymax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">Whole annual cycle: seconds by members</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>']
    for i in range(6):
        x, y = xmax * i / 5, ymax * i / 5
        out.append(f'<text x="{sx(x):.1f}" y="{h - bottom + 16}" text-anchor="middle">{x / 1000:,.0f}k</text>')
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:,.0f}</text>')
        out.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{w - right}" y2="{sy(y):.1f}" stroke="#eee"/>')
    out.append(f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">members</text>')
    out.append(f'<text x="16" y="{h / 2}" text-anchor="middle" transform="rotate(-90 16 {h / 2})">seconds</text>')
    out.append(f'<line x1="{left}" y1="{sy(GOAL_SECONDS):.1f}" x2="{w - right}" y2="{sy(GOAL_SECONDS):.1f}" '
               'stroke="#c00" stroke-dasharray="6 4"/>')
    out.append(f'<text x="{w - right - 4}" y="{sy(GOAL_SECONDS) - 4:.1f}" text-anchor="end" fill="#c00">'
               f'goal {GOAL_SECONDS} s</text>')
    colors = {"duckdb": "#1f5fa8", "spark": "#d07a00"}
    for n, backend in enumerate(sorted({r["backend"] for r in pts})):
        color = colors.get(backend, "#555")
        mine = sorted((r for r in pts if r["backend"] == backend), key=lambda r: r["members"])
        fit = least_squares([r["members"] for r in mine], [r["seconds"] for r in mine])
        if fit:
            a, b, r2 = fit
            out.append(f'<line x1="{sx(0):.1f}" y1="{sy(max(a, 0)):.1f}" x2="{sx(xmax):.1f}" '
                       f'y2="{sy(min(a + b * xmax, ymax)):.1f}" stroke="{color}" stroke-width="1" '
                       'stroke-dasharray="3 3"/>')
        for r in mine:
            fill = color if r.get("complete") in (True, "True", "yes") else "white"
            out.append(f'<circle cx="{sx(r["members"]):.1f}" cy="{sy(r["seconds"]):.1f}" r="4" fill="{fill}" '
                       f'stroke="{color}"><title>{r["members"]:,} members: {r["seconds"]} s</title></circle>')
        label = backend + (f" (fit R^2 {fit[2]:.3f})" if fit else "")
        out.append(f'<text x="{left + 10}" y="{top + 16 + 16 * n}" fill="{color}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    pipeline_write_csv(path, rows, COLUMNS, extrasaction="ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES), help="population sizes")
    ap.add_argument("--spark", action="store_true", help="also run each size on Spark local[2]")
    ap.add_argument("--render-only", action="store_true", help="rebuild the markdown and SVG from the CSV")
    ap.add_argument("--append", action="store_true", help="keep the sizes already in the CSV (others replaced)")
    ap.add_argument("--budget", type=float, help="stop after this many seconds in all, keeping the stages finished "
                    "(a size cut short is marked incomplete)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    ap.add_argument("--reports-every-publish", action="store_true",
                    help="render every audience's reports on each stage's publish (the commands' default), not only "
                    "on the settlement's")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, svg_path = args.out / "cycle.csv", args.out / "cycle.md", args.out / "cycle.svg"
    env = environment()
    rows: list[dict] = []
    if args.render_only or args.append:
        if csv_path.exists():
            with open(csv_path, newline="") as f:
                rows = [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]
        if args.render_only:
            render(rows, env, md_path, svg_path)
            return
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench_cycle_") as tmp:
        for members in args.sizes:
            for backend in ("duckdb", "spark") if args.spark else ("duckdb",):
                left = args.budget - (time.monotonic() - start) if args.budget else None
                if left is not None and left <= 0:
                    print(f"time budget spent: {members:,} members on {backend} not run", flush=True)
                    continue
                result = run_child(members, backend, Path(tmp), left,
                                   "every publish" if args.reports_every_publish else "settle publish")
                rows = [r for r in rows if (r["members"], r["backend"]) != (members, backend)] + rows_of(result)
                print(json.dumps({k: v for k, v in result.items() if k != "stages"}), flush=True)
                write_csv(csv_path, rows)
                render(rows, env, md_path, svg_path)


if __name__ == "__main__":
    main()
