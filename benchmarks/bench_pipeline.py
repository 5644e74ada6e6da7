"""Benchmark the core pipeline: load and `run` of a performance year, stage by stage.

For each population size, in its own child process (so memory figures are that size's alone):

1. generate the synthetic population over the default span (service 2022-2024, paid through
   2025-03-31), Parquet, seed 1, into a temporary folder deleted afterwards;
2. the floor: one DuckDB scan-and-aggregate of the same medical claims Parquet (paid amount by
   person and month of service), timed in the same child just before the pipeline;
3. `allpayer load` into a DuckDB file (validation, quarantine, publish);
4. `allpayer run --year 2024` (every program of the shipped Vermont terms), with the time, peak
   resident memory (the process's high-water mark, reset before each stage through
   /proc/self/clear_refs) and output rows of each stage;
5. with ``--spark``, the same load and run on Spark local (``local[2]``) into a warehouse folder,
   timed the same way (peak memory there is the Spark JVM's, read from its /proc entry).

The ratio that the core-pipeline issue sets a goal for (<= 10x) is
``core_ratio = (attribution + risk + TCOC + targets seconds) / floor seconds``: the stages
``attribution``, ``risk_scores`` (with the work behind the scores: ``risk_model_scores``,
``risk_score_factors`` and ``risk_exclusions``), ``risk_ratios``, ``tcoc_member_month`` and
``targets``, each of which computes its table from the loaded claims (the other stages are
reported too).

    .venv/bin/python benchmarks/bench_pipeline.py                    # 10k and 50k members, DuckDB
    .venv/bin/python benchmarks/bench_pipeline.py 10000 --spark      # also Spark local, for ratio (c)
    .venv/bin/python benchmarks/bench_pipeline.py --render-only      # rebuild the markdown from the CSV

Results: benchmarks/results/pipeline.csv (one row per size, backend and stage) and
benchmarks/results/pipeline.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = (10_000, 50_000)
YEAR = 2024
CORE_STAGES = ("attribution", "risk_scores", "risk_model_scores", "risk_score_factors", "risk_exclusions",
               "risk_ratios", "tcoc_member_month", "targets")
CORE_WORK = ("attribution eligibility facts", "working table claim_sums", "working table pharmacy_claim_sums",
             "working table base_months", "working table base_member_month_cost", "working table risk_diagnoses")
"""The run's other parts (``other_seconds`` of `allpayer run --json`) that build inputs the core
stages read: the facts attribution reads of eligibility, the claims' adjusted-line sums, the base
months and their cost (targets, risk ratios) and the risk diagnoses (scores)."""
CORE_WITH_WORK_ROW = "core with the working tables it reads"


def core_seconds(stage_seconds: dict) -> float:
    """The core stages' seconds (`CORE_STAGES`; a stage not in `stage_seconds` counts 0)."""
    return sum(stage_seconds.get(n, 0.0) for n in CORE_STAGES)


def core_with_work(stage_seconds: dict, other_seconds: dict) -> float:
    """The core stages' seconds plus those of the working tables they read (`CORE_WORK`)."""
    return round(core_seconds(stage_seconds) + sum(other_seconds.get(n, 0.0) for n in CORE_WORK), 3)

CHILD = r"""
import json, os, sys, time
from pathlib import Path

members, work, backend = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
YEAR = int(sys.argv[4])


def hwm_kib(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def reset_hwm(pid="self"):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


out = {"members": members, "backend": backend}
data = work / "in"
t0 = time.perf_counter()
from allpayer.synth import generate
m = generate(members, 1, data, fmt="parquet")
out["generate_seconds"] = round(time.perf_counter() - t0, 3)
out["input_rows"] = m.row_counts

import duckdb
glob = str(data / "medical_claim.parquet") if (data / "medical_claim.parquet").exists() else str(data / "medical_claim" / "*.parquet")
floor_sql = (f"SELECT person_id, date_trunc('month', claim_start_date) AS month, sum(paid_amount) AS paid, "
             f"count(*) AS n FROM read_parquet('{glob}') GROUP BY ALL")
con = duckdb.connect()
con.execute(f"SELECT count(*) FROM ({floor_sql})").fetchall()  # warm the file cache
t0 = time.perf_counter()
n_groups = con.execute(f"SELECT count(*) FROM ({floor_sql})").fetchall()[0][0]
out["floor_seconds"] = round(time.perf_counter() - t0, 4)
out["floor_groups"] = int(n_groups)
con.close()

stages = {}
spark_pid = None
current = {}


import resource


def cpu_now():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def progress(description, done, total):
    name = description.split(": ", 1)[-1]
    if name not in current:
        reset_hwm("self")
        if spark_pid:
            reset_hwm(spark_pid)
        current[name] = cpu_now()
    else:
        mem = hwm_kib("self") / 1024
        if spark_pid:
            mem = max(mem, hwm_kib(spark_pid) / 1024)
        # CPU seconds of this process (DuckDB's threads included; not the Spark JVM's).
        stages[name] = {"peak_rss_mb": round(mem, 1), "cpu_seconds": round(cpu_now() - current[name], 2)}


con_spark = None
if backend == "spark":
    from allpayer import backend as be
    t0 = time.perf_counter()
    con_spark = be.connect_spark("local[2]")
    out["spark_start_seconds"] = round(time.perf_counter() - t0, 3)
    jvm = con_spark._session.sparkContext._gateway.java_process if hasattr(con_spark._session.sparkContext._gateway, "java_process") else None
    spark_pid = getattr(jvm, "pid", None)

reset_hwm()
t0 = time.perf_counter()
if backend == "spark":
    from allpayer import warehouse
    db = work / "warehouse"
    warehouse.load_folder(data, db)
else:
    from allpayer.inputs.load import load_folder
    db = work / "db.duckdb"
    load_folder(data, db)
out["load_seconds"] = round(time.perf_counter() - t0, 3)
out["load_peak_rss_mb"] = round(hwm_kib() / 1024, 1)

from allpayer.pipeline import run_year
t0 = time.perf_counter()
res = run_year(db, YEAR, progress=progress, backend=backend, spark_con=con_spark)
out["run_seconds"] = round(time.perf_counter() - t0, 3)
for name, secs in res.core.seconds.items():
    stages.setdefault(name, {})["seconds"] = secs
    stages[name]["rows"] = res.core.rows.get(name)
out["stages"] = stages
out["work_seconds"] = dict(res.core.other_seconds)
print(json.dumps(out))
"""


def child_json(script: str, args: list, what: str, env: dict | None = None) -> dict:
    """Run `script` in a fresh Python child with `args`; the JSON object on its last line of output,
    with the 1-minute load average at the start. A failed child stops the benchmark, its error shown."""
    load_avg = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load_avg_1m_at_start"] = round(load_avg, 2)
    return result


def run_child(members: int, backend: str, workdir: Path) -> dict:
    work = workdir / f"{backend}_{members}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        return child_json(CHILD, [members, work, backend, YEAR], f"pipeline {backend} {members}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rows_of(result: dict) -> list[dict]:
    """One CSV row per stage, plus the totals of the run."""
    claims = result["input_rows"].get("medical_claim", 0)
    common = {
        "members": result["members"], "backend": result["backend"], "medical_claim_rows": claims,
        "floor_seconds": result["floor_seconds"], "load_avg_1m_at_start": result["load_avg_1m_at_start"],
    }
    out = []
    for name, s in result["stages"].items():
        secs = s.get("seconds", 0.0)
        out.append({**common, "stage": name, "seconds": secs, "cpu_seconds": s.get("cpu_seconds"),
                    "peak_rss_mb": s.get("peak_rss_mb"),
                    "output_rows": s.get("rows"),
                    "claim_rows_per_second": round(claims / secs) if secs else None,
                    "ratio_to_floor": round(secs / result["floor_seconds"], 1)})
    stage_seconds = {n: s.get("seconds", 0.0) for n, s in result["stages"].items()}
    core = core_seconds(stage_seconds)
    peak = max((s.get("peak_rss_mb") or 0) for s in result["stages"].values())
    with_work = core_with_work(stage_seconds, result.get("work_seconds") or {})
    for name, secs, mem in (
        ("load", result["load_seconds"], result["load_peak_rss_mb"]),
        ("core (attribution+risk+tcoc+targets)", round(core, 3), peak),
        (CORE_WITH_WORK_ROW, with_work, peak),
        ("run (all stages)", result["run_seconds"], peak),
    ):
        out.append({**common, "stage": name, "seconds": secs, "cpu_seconds": None, "peak_rss_mb": mem, "output_rows": None,
                    "claim_rows_per_second": round(claims / secs) if secs else None,
                    "ratio_to_floor": round(secs / result["floor_seconds"], 1)})
    return out


COLUMNS = ["members", "backend", "stage", "seconds", "cpu_seconds", "peak_rss_mb", "output_rows", "medical_claim_rows",
           "claim_rows_per_second", "floor_seconds", "ratio_to_floor", "load_avg_1m_at_start"]


def render(rows: list[dict], env: dict, md: Path) -> None:
    lines = [
        f"Core pipeline, performance year {YEAR}, shipped Vermont terms; synthetic population seed 1, default span; "
        f"{env['cpus']} CPUs, Python {env['python']}, DuckDB {env['duckdb']}, Ibis {env['ibis']}"
        + (f", PySpark {env['pyspark']}" if env.get("pyspark") else "") + ".",
        "",
        "`ratio_to_floor`: seconds divided by one DuckDB scan-and-aggregate of the same medical claims Parquet, "
        "measured in the same child process (`floor_seconds`).",
        "",
    ]
    for key in sorted({(r["members"], r["backend"]) for r in rows}):
        sub = [r for r in rows if (r["members"], r["backend"]) == key]
        lines += [f"### {key[0]:,} members, {key[1]}", "",
                  "| " + " | ".join(c for c in COLUMNS[2:9] + ["ratio_to_floor"]) + " |",
                  "|---|" + "|".join("---:" for _ in COLUMNS[3:9] + ["x"]) + "|"]
        for r in sub:
            lines.append("| " + " | ".join(
                "" if r.get(c) is None else (f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]))
                for c in COLUMNS[2:9] + ["ratio_to_floor"]) + " |")
        lines.append(f"\nfloor: {sub[0]['floor_seconds']} s; load average at start {sub[0]['load_avg_1m_at_start']}\n")
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def environment() -> dict:
    import duckdb
    import ibis

    env = {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
           "ibis": ibis.__version__}
    try:
        import pyspark

        env["pyspark"] = pyspark.__version__
    except ImportError:
        pass
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES), help="population sizes")
    ap.add_argument("--spark", action="store_true", help="also run each size on Spark local[2]")
    ap.add_argument("--render-only", action="store_true", help="rebuild the markdown from the CSV")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = args.out / "pipeline.csv", args.out / "pipeline.md"
    env = environment()
    if args.render_only:
        with open(csv_path, newline="") as f:
            rows = [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]
        render(rows, env, md_path)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        for members in args.sizes:
            for backend in ("duckdb", "spark") if args.spark else ("duckdb",):
                result = run_child(members, backend, Path(tmp))
                rows.extend(rows_of(result))
                print(json.dumps({k: v for k, v in result.items() if k != "stages"}), flush=True)
                write_csv(csv_path, rows)  # after each size, so a long run keeps what it measured
    render(rows, env, md_path)


def write_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS, extrasaction: str = "raise") -> None:
    """Write `rows` under the header `columns` (also used by the cycle benchmark)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction=extrasaction)
        w.writeheader()
        w.writerows(rows)


def _num(v: str):
    """A CSV cell read back: None for empty, a bool, an int or float, else the text."""
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


if __name__ == "__main__":
    main()
