"""Benchmark the FHIR bulk-data reader against reading the same bytes.

For each population size: generate a native delivery (service year 2024), write it as FHIR bulk
data (`allpayer.synth.fhir_writer.write_fhir`), then time, in the same process and on the same
files (warm in the page cache after the write):

- ``read_bytes``: reading every NDJSON file's bytes in 16 MiB blocks (the floor);
- ``json_parse``: reading the lines and parsing each with ``json.loads(parse_float=Decimal)`` (the
  parsing the reader cannot avoid);
- ``reader``: `allpayer.inputs.fhir.read_fhir_folder` (parse, map every resource to contract
  rows, build the Arrow tables and provenance).

Reported: resources (lines) per second for each, and the reader's time as a ratio to each
baseline. CPU seconds (user + system of this process) are reported beside wall seconds because
the machine is shared.

    .venv/bin/python benchmarks/bench_fhir.py            # 500 people
    .venv/bin/python benchmarks/bench_fhir.py 500 2000   # chosen sizes

Results: benchmarks/results/fhir.csv (one row per size; appends).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "fhir.csv"
BLOCK = 1 << 24


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    w0, c0 = time.perf_counter(), _cpu()
    value = fn()
    return value, time.perf_counter() - w0, _cpu() - c0


def read_bytes(files: list[Path]) -> int:
    total = 0
    for p in files:
        with open(p, "rb") as f:
            while block := f.read(BLOCK):
                total += len(block)
    return total


def json_parse(files: list[Path]) -> int:
    n = 0
    for p in files:
        with open(p, "rb") as f:
            for line in f:
                if line.strip():
                    json.loads(line, parse_float=Decimal)
                    n += 1
    return n


def run(members: int, seed: int) -> dict:
    from allpayer.inputs.fhir import read_fhir_folder
    from allpayer.synth import generate
    from allpayer.synth.fhir_writer import write_fhir

    with tempfile.TemporaryDirectory(prefix="bench-fhir-") as tmp:
        native, fhir = Path(tmp) / "native", Path(tmp) / "fhir"
        generate(members, seed, native, years=(2024,))
        stats, write_s, write_cpu = timed(lambda: write_fhir(native, fhir))
        files = sorted(fhir.glob("*.ndjson"))
        load = os.getloadavg()[0]
        nbytes, bytes_s, bytes_cpu = timed(lambda: read_bytes(files))
        lines, parse_s, parse_cpu = timed(lambda: json_parse(files))
        mapped, reader_s, reader_cpu = timed(lambda: read_fhir_folder(fhir))
        resources = sum(r.read for r in mapped.records)
        rows = sum(t.num_rows for t in mapped.tables.values())
        import duckdb
        import pyarrow

        return {
            "date": dt.date.today().isoformat(),
            "members": members,
            "resources": resources,
            "contract_rows": rows,
            "ndjson_mb": round(nbytes / 1e6, 2),
            "write_seconds": round(write_s, 3),
            "read_bytes_seconds": round(bytes_s, 4),
            "json_parse_seconds": round(parse_s, 3),
            "json_parse_cpu_seconds": round(parse_cpu, 3),
            "reader_seconds": round(reader_s, 3),
            "reader_cpu_seconds": round(reader_cpu, 3),
            "reader_resources_per_second": round(resources / reader_s),
            "reader_resources_per_cpu_second": round(resources / reader_cpu),
            "json_parse_lines_per_second": round(lines / parse_s),
            "read_bytes_mb_per_second": round(nbytes / 1e6 / bytes_s, 1),
            "reader_over_read_bytes": round(reader_s / bytes_s, 1),
            "reader_over_json_parse": round(reader_s / parse_s, 2),
            "reader_cpu_over_json_parse_cpu": round(reader_cpu / parse_cpu, 2),
            "load_avg_1m_at_start": round(load, 2),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pyarrow": pyarrow.__version__,
            "duckdb": duckdb.__version__,
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[500], help="population sizes (people)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    args = parser.parse_args(argv)
    rows = [run(n, args.seed) for n in args.sizes]
    RESULTS.parent.mkdir(exist_ok=True)
    new = not RESULTS.exists()
    with open(RESULTS, "a", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
