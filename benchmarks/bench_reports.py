"""Rendering every audience's reports of a run (`allpayer report --all`), with its fixed costs
removed, against the same reports rendered one by one in the same process.

    .venv/bin/python benchmarks/bench_reports.py --db demo/allpayer.duckdb --year 2024 [--pdf 8]

Measured in one process, on one snapshot:

- baseline: every report built and written (HTML and CSV) one at a time, each querying the
  database for its own organization (what `render_all` did before: no shared queries);
- `render_all` (HTML and CSV): queries run once for all organizations of a kind (`base.batch`);
- PDF: the first `--pdf` reports printed by one Chromium start each (`pdf.html_to_pdf`, the
  baseline) and by one running Chromium (`pdf.Printer`).

For each: wall seconds and CPU seconds (this process from `time.process_time`, DuckDB's threads
included; Chromium's from `RUSAGE_CHILDREN`), the ratio against its baseline, the 1-minute load
average at the start. One CSV row per run in `benchmarks/results/reports.csv`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "reports.csv"


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(fn):
    w, c, k = time.perf_counter(), time.process_time(), children_cpu()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c, children_cpu() - k


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--year", type=int, required=True)
    ap.add_argument("--pdf", type=int, default=8, help="reports to print as PDF each way (0: skip)")
    args = ap.parse_args(argv)

    from allpayer.reports import KINDS
    from allpayer.reports.base import latest_run_id
    from allpayer.reports.publish import _open, _store, build, organizations, render_all, write

    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    try:
        def one_by_one():
            con, store = _open(args.db), _store(args.db, None)
            try:
                run_id, n = latest_run_id(con), 0
                for kind in KINDS:
                    for org in organizations(con, kind, args.year):
                        write(build(con, kind, org, args.year, run_id, store=store), tmp / "base" / kind, ["html", "csv"])
                        n += 1
                return n
            finally:
                con.disconnect()
                store.close()

        n, base_w, base_c, _ = measure(one_by_one)
        folder, all_w, all_c, _ = measure(lambda: render_all(args.db, args.year, ["html", "csv"], out=tmp / "all"))
        same = all((folder / k).is_dir() for k in KINDS)
        row = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "db": str(args.db),
               "reports": n, "load_avg_1m_at_start": f"{load:.2f}",
               "baseline_wall_s": f"{base_w:.2f}", "baseline_cpu_s": f"{base_c:.2f}",
               "all_wall_s": f"{all_w:.2f}", "all_cpu_s": f"{all_c:.2f}",
               "cpu_ratio": f"{all_c / base_c:.3f}", "wall_ratio": f"{all_w / base_w:.3f}"}
        print(f"{n} reports (HTML+CSV), load {load:.2f}: one by one {base_w:.1f} s wall / {base_c:.1f} s CPU; "
              f"render_all {all_w:.1f} s wall / {all_c:.1f} s CPU; CPU ratio {all_c / base_c:.3f}"
              + ("" if same else " (render_all missed a kind)"))
        if args.pdf:
            from allpayer.reports.pdf import Printer, chromium_path, html_to_pdf

            if chromium_path() is None:
                print("no Chromium: PDF comparison skipped", file=sys.stderr)
            else:
                htmls = sorted((tmp / "base").rglob("*.html"))[: args.pdf]

                def each():
                    for h in htmls:
                        html_to_pdf(h, tmp / "pdf1" / (h.stem + ".pdf"))

                def shared():
                    with Printer() as p:
                        for h in htmls:
                            p.print(h, tmp / "pdf2" / (h.stem + ".pdf"))

                _, e_w, e_c, e_k = measure(each)
                _, s_w, s_c, s_k = measure(shared)
                row |= {"pdf_reports": len(htmls), "pdf_each_wall_s": f"{e_w:.2f}", "pdf_each_cpu_s": f"{e_c + e_k:.2f}",
                        "pdf_shared_wall_s": f"{s_w:.2f}", "pdf_shared_cpu_s": f"{s_c + s_k:.2f}",
                        "pdf_cpu_ratio": f"{(s_c + s_k) / (e_c + e_k):.3f}"}
                print(f"{len(htmls)} PDFs: one Chromium each {e_w:.1f} s wall / {e_c + e_k:.1f} s CPU (browser "
                      f"included); one running Chromium {s_w:.1f} s wall / {s_c + s_k:.1f} s CPU; CPU ratio "
                      f"{(s_c + s_k) / (e_c + e_k):.3f}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        fields = ["date", "db", "reports", "load_avg_1m_at_start", "baseline_wall_s", "baseline_cpu_s", "all_wall_s",
                  "all_cpu_s", "cpu_ratio", "wall_ratio", "pdf_reports", "pdf_each_wall_s", "pdf_each_cpu_s",
                  "pdf_shared_wall_s", "pdf_shared_cpu_s", "pdf_cpu_ratio"]
        new = not RESULTS.exists()
        with RESULTS.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            if new:
                w.writeheader()
            w.writerow(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
