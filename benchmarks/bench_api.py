"""Load test of the API: N concurrent clients for S seconds on loopback against the report and
roster endpoints, reporting requests per second, p50/p95/p99 latency and the error count.

    .venv/bin/python benchmarks/bench_api.py --db demo/allpayer.duckdb [--clients 50] [--seconds 60]

The database must hold a published snapshot (e.g. from `allpayer demo`, or a 650k-member
population loaded and run). The script creates a benchmark user and API key in the database's
store, starts `allpayer serve` on a free loopback port in a child process, runs the clients,
stops the server and writes one CSV row to `benchmarks/results/api.csv`. A baseline is measured
in the same run: the same clients against `/api/v1/me` (authentication and audit, no snapshot
query), so the data endpoints are also reported as a latency ratio against it. Traffic goes only
to 127.0.0.1, and every loop is bounded in time.

The clients (``--client``): by default kept-alive raw HTTP/1.1 connections driven by asyncio in
a separate load process (``--load-processes``), whose own CPU time is measured and reported per
request, so that the load generator's cost on a small shared machine is known; ``httpx`` runs
them as threads of this process with httpx (heavier: the earlier rows of the CSV). ``--pin``
pins the server to the first CPU(s) and the load generator to the last one.

Phases, each with the same clients on the same server process:

1. baseline: ``/api/v1/me``;
2. data: the report and roster endpoints (two roster pages, the overview, the report listing and
   up to 20 report files), the same URLs over and over, as a dashboard's users would ask;
3. cold offset pages: roster pages at random offsets over the whole roster (``--cold-seconds``,
   0 skips it), so that most requests miss the server's per-snapshot answer cache and run
   their page query on the snapshot;
4. cold cursor pages (``--cursor-seconds``, 0 skips it): each client starts at a random roster row (a cursor made with the
   server's secret from the store) and follows the ``Link: rel="next"`` headers: keyset pages
   at random depths, nearly all missing the cache.

Besides latency, the server process's CPU seconds per phase (from /proc), the load generator's,
the audit rows written against the requests sent (``audit_rows_missing`` should be 0) and the
load average before and after are written, since the machine may be shared.
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
from inflate import MEMBER_TABLES, inflate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "api.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _summary(latencies: list[float], errors: int, wall: float, client_cpu: float | None) -> dict:
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else float("nan")

    return {"requests": len(lat), "errors": errors, "rps": round(len(lat) / wall, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else float("nan"),
            "client_cpu_ms_per_req": round(client_cpu * 1000 / max(1, len(lat)), 3) if client_cpu is not None else None}


def run_clients_httpx(base: str, key: str, urls, clients: int, seconds: float) -> dict:
    """Clients as threads of this process, each with its own httpx connection. `urls`: a list
    cycled through by each client, or a callable (client, n, previous Link) -> url."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(i: int) -> None:
        mine, bad, link = [], 0, None
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
            n = i
            while time.monotonic() < stop_at:
                url = urls(i, n, link) if callable(urls) else urls[n % len(urls)]
                n += 1
                t0 = time.perf_counter()
                try:
                    r = c.get(url)
                    ok = r.status_code == 200
                    link = _link_target(r.headers.get("link"))
                except httpx.HTTPError:
                    ok, link = False, None
                mine.append(time.perf_counter() - t0)
                bad += 0 if ok else 1
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    cpu0 = time.process_time()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return _summary(latencies, errors[0], wall, time.process_time() - cpu0)


def _link_target(link: str | None) -> str | None:
    """The URL of a ``Link: <url>; rel="next"`` header."""
    if not link or not link.startswith("<") or ">" not in link:
        return None
    return link[1:link.index(">")]


async def _http_get(reader, writer, host: str, key: str, url: str) -> tuple[int, str | None]:
    """One GET on a kept-alive HTTP/1.1 connection: status and the Link header (the body is read
    and dropped)."""
    writer.write(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n\r\n".encode("ascii"))
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, link = None, False, None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "link":
            link = value.strip()
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, _link_target(link)


def _asyncio_clients(port: int, key: str, urls, first: int, clients: int, seconds: float, out) -> None:
    """Body of one load process: `clients` connections in one event loop (clients numbered from
    `first`); puts (latencies, errors, wall, own CPU seconds) on `out`."""
    import asyncio
    import resource

    async def client(i: int, stop_at: float, mine: list, bad: list) -> None:
        n, link, conn = i, None, None
        while time.monotonic() < stop_at:
            url = urls(i, n, link) if callable(urls) else urls[n % len(urls)]
            n += 1
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                status, link = await asyncio.wait_for(_http_get(*conn, f"127.0.0.1:{port}", key, url), 30)
                ok = status == 200
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError):
                ok, link = False, None
                if conn is not None:
                    conn[1].close()
                conn = None
            mine.append(time.perf_counter() - t0)
            bad[0] += 0 if ok else 1
        if conn is not None:
            conn[1].close()

    async def main() -> tuple:
        mine, bad = [], [0]
        stop_at = time.monotonic() + seconds
        t0 = time.monotonic()
        await asyncio.gather(*(client(first + i, stop_at, mine, bad) for i in range(clients)))
        return mine, bad[0], time.monotonic() - t0

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    mine, bad, wall = asyncio.run(main())
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out.put((mine, bad, wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)))


def run_clients_asyncio(port: int, key: str, urls, clients: int, seconds: float, processes: int = 1,
                        cpus: set[int] | None = None) -> dict:
    """Clients as kept-alive raw HTTP/1.1 connections driven by asyncio in `processes` separate
    load processes (forked; pinned to `cpus` when given), so that the load generator's own CPU is
    measured apart from this process and the server."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    out = ctx.Queue()
    share = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    procs, first = [], 0
    for n in share:
        p = ctx.Process(target=_pinned, args=(cpus, _asyncio_clients, port, key, urls, first, n, seconds, out))
        p.start()
        procs.append(p)
        first += n
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    latencies = [x for r in results for x in r[0]]
    return _summary(latencies, sum(r[1] for r in results), max(r[2] for r in results), sum(r[3] for r in results))


def _pinned(cpus, fn, *args) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    fn(*args)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, its reaped children and its live descendants
    (the worker processes of ``--workers N``), from Linux /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                return float("nan")
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, type=Path, help="Published snapshot to serve.")
    ap.add_argument("--clients", type=int, default=50, help="Concurrent clients.")
    ap.add_argument("--seconds", type=float, default=60.0, help="Duration of each phase.")
    ap.add_argument("--workers", type=int, default=1, help="Server processes.")
    ap.add_argument("--cold-seconds", type=float, default=None, help="Duration of the cold offset-pages phase "
                    "(default: --seconds; 0 skips it).")
    ap.add_argument("--cursor-seconds", type=float, default=None, help="Duration of the cold cursor-pages phase "
                    "(default: --seconds; 0 skips it).")
    ap.add_argument("--client", choices=("asyncio", "httpx"), default="asyncio",
                    help="Load generator: raw HTTP/1.1 keep-alive connections on asyncio in separate processes "
                    "(light), or httpx clients on threads of this process (heavier; the earlier rows).")
    ap.add_argument("--load-processes", type=int, default=1, help="Processes of the asyncio load generator.")
    ap.add_argument("--pin", action="store_true", help="Pin the server to the first CPU(s) and the load "
                    "generator to the last one (os.sched_setaffinity).")
    ap.add_argument("--memory-limit", default="3GB", help="DuckDB memory limit of each server process "
                    "(ALLPAYER_SERVE_MEMORY_LIMIT; empty: DuckDB's default, 80%% of the machine's memory).")
    ap.add_argument("--label", default="", help="Free text written in the CSV row (e.g. the code measured).")
    ap.add_argument("--no-csv", action="store_true", help="Print only; do not append to results/api.csv.")
    ap.add_argument("--inflate", type=int, default=1, help="Serve a copy of --db whose member-level tables hold "
                    "N times the rows (see `inflate`); the copy is written beside --db and removed afterwards "
                    "unless --keep-inflated.")
    ap.add_argument("--inflate-tables", default=",".join(MEMBER_TABLES), help="Comma-separated tables that "
                    "--inflate multiplies (default: %(default)s; the roster and report endpoints read no claims).")
    ap.add_argument("--keep-inflated", action="store_true", help="Keep the inflated copy, and reuse it when it "
                    "is already there (its label still records the factor).")
    args = ap.parse_args()
    if args.inflate > 1:
        copy = args.db.with_name(f"{args.db.stem}.x{args.inflate}.duckdb")
        if not (args.keep_inflated and copy.exists()):
            t0 = time.monotonic()
            inflate(args.db, copy, args.inflate, tables=tuple(t for t in args.inflate_tables.split(",") if t))
            print(f"inflated member-level tables x{args.inflate} into {copy} in {time.monotonic() - t0:.0f} s")
        args.label = ((args.label + " " if args.label else "")
                      + f"inflated: {args.inflate_tables.replace(',', ' ')} x{args.inflate}")
        try:
            args.db = copy
            return measure(args)
        finally:
            if not args.keep_inflated:
                import shutil

                for f in copy.parent.glob(copy.name + "*"):
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
    return measure(args)


def cursor_starts(db: Path, store_url: str, n: int, seed: int = 1) -> list[str]:
    """`n` roster cursors of the ACO scope (no filters) at rows drawn at random from the snapshot,
    made with the server's own secret (from the store): deep pages of the keyset walk."""
    import duckdb

    from allpayer.api import paging, tenancy
    from allpayer.store import open_store

    keys = tenancy.DATASETS["rosters"].keys
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(f"SELECT {', '.join(keys)} FROM attribution USING SAMPLE reservoir({int(n)} ROWS) "
                           f"REPEATABLE ({int(seed)})").fetchall()
    finally:
        con.close()
    store = open_store(store_url)
    try:
        cursors = paging.Cursors(paging.store_secret(store))
    finally:
        store.close()
    qid = paging.query_id("rosters", "aco_admin", None, ())
    return [cursors.make(qid, list(r)) for r in rows]


def measure(args) -> int:
    cold_seconds = args.seconds if args.cold_seconds is None else args.cold_seconds
    cursor_seconds = args.seconds if args.cursor_seconds is None else args.cursor_seconds
    load_start = os.getloadavg()[0]

    from urllib.parse import quote

    from allpayer.api.auth import Users
    from allpayer.store import default_store_url, open_store

    store_url = default_store_url(args.db)
    users = Users(open_store(store_url))
    name = "bench-" + secrets.token_hex(3)
    users.add(name, secrets.token_urlsafe(12), role="aco_admin")
    key = users.new_key(name, "benchmark")
    audit0 = int(users.store.query("SELECT count(*) FROM api_audit")[0][0])
    users.store.close()

    ncpu = os.cpu_count() or 1
    server_cpus = set(range(max(1, ncpu - 1))) if args.pin and ncpu > 1 else None
    client_cpus = {ncpu - 1} if args.pin and ncpu > 1 else None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("allpayer")
    env = {**os.environ, "ALLPAYER_SERVE_MEMORY_LIMIT": args.memory_limit} if args.memory_limit else None
    proc = subprocess.Popen([str(exe), "serve", "--db", str(args.db), "--port", str(port), "--workers", str(args.workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None)

    def run(urls, seconds):
        if args.client == "httpx":
            return run_clients_httpx(base, key, urls, args.clients, seconds)
        return run_clients_asyncio(port, key, urls, args.clients, seconds, args.load_processes, client_cpus)

    sent = 0
    try:
        for _ in range(600):
            try:
                httpx.get(base + "/openapi.json", timeout=2)
                sent += 1
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=300) as c:
            reports = [f"/api/v1/reports/{r['path']}" for r in c.get("/api/v1/reports").json()["items"]][:20]
            roster_total = c.get("/api/v1/rosters?limit=1").json()["total"]
            sent += 2
        data_urls = ["/api/v1/rosters?limit=100", "/api/v1/rosters?limit=100&offset=1000", "/api/v1/overview",
                     "/api/v1/reports", *reports]
        pages = max(1, roster_total // 100)
        seeds = [random.Random(i) for i in range(args.clients)]
        starts = [f"/api/v1/rosters?limit=100&cursor={quote(c)}"
                  for c in cursor_starts(args.db, store_url, args.clients)] if cursor_seconds > 0 else []

        def cold(i: int, n: int, link) -> str:
            return f"/api/v1/rosters?limit=100&offset={seeds[i].randrange(pages) * 100}"

        def walk(i: int, n: int, link) -> str:
            # from a random row of the roster, follow the Link header to the end, then again
            return link or starts[i % len(starts)]

        cpu = [cpu_seconds(proc.pid)]
        base_res = run(["/api/v1/me"], min(args.seconds, 15))
        cpu.append(cpu_seconds(proc.pid))
        res = run(data_urls, args.seconds)
        cpu.append(cpu_seconds(proc.pid))
        cold_res = run(cold, cold_seconds) if cold_seconds > 0 else {}
        cpu.append(cpu_seconds(proc.pid))
        walk_res = run(walk, cursor_seconds) if cursor_seconds > 0 else {}
        cpu.append(cpu_seconds(proc.pid))
        sent += sum(r.get("requests", 0) for r in (base_res, res, cold_res, walk_res))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # still finishing queries the clients gave up on
            proc.kill()
            proc.wait(timeout=60)
    store = open_store(store_url)
    audit_rows = int(store.query("SELECT count(*) FROM api_audit")[0][0]) - audit0
    store.close()

    def per_1k(i: int, r: dict):
        return round((cpu[i + 1] - cpu[i]) * 1000 / max(1, r["requests"]), 2) if r else None

    row = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "db": str(args.db),
           "label": args.label, "roster_rows": roster_total, "client": args.client, "pinned": args.pin,
           "memory_limit": args.memory_limit,
           "clients": args.clients, "seconds": args.seconds, "workers": args.workers,
           "report_files": len(reports), **{k: v for k, v in res.items() if k != "client_cpu_ms_per_req"},
           "baseline_p95_ms": base_res["p95_ms"],
           "baseline_rps": base_res["rps"], "p95_ratio_to_baseline": round(res["p95_ms"] / base_res["p95_ms"], 2),
           "server_cpu_s_per_1k_baseline": per_1k(0, base_res),
           "server_cpu_s_per_1k_data": per_1k(1, res),
           "client_cpu_s_per_1k_baseline": base_res.get("client_cpu_ms_per_req"),
           "client_cpu_s_per_1k_data": res.get("client_cpu_ms_per_req"),
           "cold_requests": cold_res.get("requests"), "cold_errors": cold_res.get("errors"),
           "cold_rps": cold_res.get("rps"), "cold_p50_ms": cold_res.get("p50_ms"), "cold_p95_ms": cold_res.get("p95_ms"),
           "server_cpu_s_per_1k_cold": per_1k(2, cold_res),
           "cursor_requests": walk_res.get("requests"), "cursor_errors": walk_res.get("errors"),
           "cursor_rps": walk_res.get("rps"), "cursor_p50_ms": walk_res.get("p50_ms"),
           "cursor_p95_ms": walk_res.get("p95_ms"), "server_cpu_s_per_1k_cursor": per_1k(3, walk_res),
           "audit_rows_missing": sent - audit_rows,
           "load_avg_1m_at_start": round(load_start, 2), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    if args.no_csv:
        for k, v in row.items():
            print(f"{k:28} {v}")
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_row(row)
    for k, v in row.items():
        print(f"{k:28} {v}")
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
