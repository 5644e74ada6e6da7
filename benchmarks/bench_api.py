"""Load test of the API: N concurrent clients for S seconds on loopback against the report and
roster endpoints, reporting requests per second, p50/p95/p99 latency and the error count.

    .venv/bin/python benchmarks/bench_api.py --db demo/allpayer.duckdb [--clients 50] [--seconds 60]

The database must hold a published snapshot (e.g. from `allpayer demo`, or a 650k-member
population loaded and run). The script creates a benchmark user and API key in the database's
store, starts `allpayer serve` on a free loopback port in a child process, runs the clients
(threads with their own HTTP connection), stops the server and writes one CSV row to
`benchmarks/results/api.csv`. A baseline is measured in the same run: the same clients against
`/api/v1/me` (authentication and audit, no snapshot query), so the data endpoints are also
reported as a latency ratio against it. Traffic goes only to 127.0.0.1, and every loop is
bounded in time.

Phases, each with the same clients on the same server process:

1. baseline: ``/api/v1/me``;
2. data: the report and roster endpoints (two roster pages, the overview, the report listing and
   up to 20 report files), the same URLs over and over, as a dashboard's users would ask;
3. cold pages: roster pages at random offsets over the whole roster (``--cold-seconds``, 0 skips
   it), so that most requests miss the server's per-snapshot answer cache and run their page
   query on the snapshot.

Besides latency, the server process's CPU seconds per phase (from /proc) and the load average
before and after are written, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inflate import inflate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "api.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_clients(base: str, key: str, urls, clients: int, seconds: float) -> dict:
    """`urls`: a list cycled through by each client, or a callable (client, n) -> url."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(i: int) -> None:
        mine, bad = [], 0
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
            n = i
            while time.monotonic() < stop_at:
                url = urls(i, n) if callable(urls) else urls[n % len(urls)]
                n += 1
                t0 = time.perf_counter()
                try:
                    r = c.get(url)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                mine.append(time.perf_counter() - t0)
                bad += 0 if ok else 1
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else float("nan")

    return {"requests": len(lat), "errors": errors[0], "rps": round(len(lat) / wall, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else float("nan")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, type=Path, help="Published snapshot to serve.")
    ap.add_argument("--clients", type=int, default=50, help="Concurrent clients.")
    ap.add_argument("--seconds", type=float, default=60.0, help="Duration of each phase.")
    ap.add_argument("--workers", type=int, default=1, help="Server processes.")
    ap.add_argument("--cold-seconds", type=float, default=None, help="Duration of the cold-pages phase "
                    "(default: --seconds; 0 skips it).")
    ap.add_argument("--label", default="", help="Free text written in the CSV row (e.g. the code measured).")
    ap.add_argument("--no-csv", action="store_true", help="Print only; do not append to results/api.csv.")
    ap.add_argument("--inflate", type=int, default=1, help="Serve a copy of --db whose member-level tables hold "
                    "N times the rows (see `inflate`); the copy is written beside --db and removed afterwards.")
    args = ap.parse_args()
    if args.inflate > 1:
        copy = args.db.with_name(f"{args.db.stem}.x{args.inflate}.duckdb")
        t0 = time.monotonic()
        inflate(args.db, copy, args.inflate)
        print(f"inflated member-level tables x{args.inflate} into {copy} in {time.monotonic() - t0:.0f} s")
        args.label = (args.label + " " if args.label else "") + f"member tables x{args.inflate}"
        try:
            args.db = copy
            return measure(args)
        finally:
            import shutil

            for f in copy.parent.glob(copy.name + "*"):
                shutil.rmtree(f) if f.is_dir() else f.unlink()
    return measure(args)


def measure(args) -> int:
    cold_seconds = args.seconds if args.cold_seconds is None else args.cold_seconds
    load_start = os.getloadavg()[0]

    from allpayer.api.auth import Users
    from allpayer.store import default_store_url, open_store

    users = Users(open_store(default_store_url(args.db)))
    name = "bench-" + secrets.token_hex(3)
    users.add(name, secrets.token_urlsafe(12), role="aco_admin")
    key = users.new_key(name, "benchmark")
    users.store.close()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("allpayer")
    proc = subprocess.Popen([str(exe), "serve", "--db", str(args.db), "--port", str(port), "--workers", str(args.workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                httpx.get(base + "/openapi.json", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120) as c:
            reports = [f"/api/v1/reports/{r['path']}" for r in c.get("/api/v1/reports").json()["items"]][:20]
            roster_total = c.get("/api/v1/rosters?limit=1").json()["total"]
        data_urls = ["/api/v1/rosters?limit=100", "/api/v1/rosters?limit=100&offset=1000", "/api/v1/overview",
                     "/api/v1/reports", *reports]
        pages = max(1, roster_total // 100)
        seeds = [random.Random(i) for i in range(args.clients)]

        def cold(i: int, n: int) -> str:
            return f"/api/v1/rosters?limit=100&offset={seeds[i].randrange(pages) * 100}"

        cpu0 = cpu_seconds(proc.pid)
        base_res = run_clients(base, key, ["/api/v1/me"], args.clients, min(args.seconds, 15))
        cpu1 = cpu_seconds(proc.pid)
        res = run_clients(base, key, data_urls, args.clients, args.seconds)
        cpu2 = cpu_seconds(proc.pid)
        cold_res = run_clients(base, key, cold, args.clients, cold_seconds) if cold_seconds > 0 else {}
        cpu3 = cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # still finishing queries the clients gave up on
            proc.kill()
            proc.wait(timeout=60)
    row = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "db": str(args.db),
           "label": args.label, "roster_rows": roster_total,
           "clients": args.clients, "seconds": args.seconds, "workers": args.workers,
           "report_files": len(reports), **res, "baseline_p95_ms": base_res["p95_ms"],
           "baseline_rps": base_res["rps"], "p95_ratio_to_baseline": round(res["p95_ms"] / base_res["p95_ms"], 2),
           "server_cpu_s_per_1k_baseline": round((cpu1 - cpu0) * 1000 / max(1, base_res["requests"]), 2),
           "server_cpu_s_per_1k_data": round((cpu2 - cpu1) * 1000 / max(1, res["requests"]), 2),
           "cold_requests": cold_res.get("requests"), "cold_errors": cold_res.get("errors"),
           "cold_rps": cold_res.get("rps"), "cold_p50_ms": cold_res.get("p50_ms"), "cold_p95_ms": cold_res.get("p95_ms"),
           "server_cpu_s_per_1k_cold": (round((cpu3 - cpu2) * 1000 / max(1, cold_res["requests"]), 2)
                                        if cold_res else None),
           "load_avg_1m_at_start": round(load_start, 2), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    if args.no_csv:
        for k, v in row.items():
            print(f"{k:24} {v}")
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_row(row)
    for k, v in row.items():
        print(f"{k:24} {v}")
    return 0


def write_row(row: dict) -> None:
    """Append `row` to results/api.csv; when the columns changed, the file is rewritten with the
    union of the columns (older rows keep blanks in the new ones)."""
    rows, fields = [], list(row)
    if RESULTS.exists():
        with RESULTS.open(newline="") as f:
            r = csv.DictReader(f)
            rows = list(r)
            fields = list(r.fieldnames or []) + [k for k in row if k not in (r.fieldnames or [])]
    rows.append(row)
    with RESULTS.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
