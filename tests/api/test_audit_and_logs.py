"""Every request writes an audit row; server logs hold no member identifiers."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _audit_rows(app) -> list[dict]:
    return app.state.audit.rows(limit=100000)


def test_every_request_writes_an_audit_row(app, client, world):
    before = app.state.audit.count()
    key = {"X-API-Key": world.keys["practice"]}
    calls = [
        ("/api/v1/me", key, 200),
        ("/api/v1/rosters", key, 200),
        ("/api/v1/claims", key, 403),
        ("/api/v1/rosters", {}, 401),
        ("/api/v1/rosters?limit=0", key, 422),
        ("/api/v1/no-such-thing", key, 404),
        ("/openapi.json", {}, 200),
    ]
    for url, headers, status in calls:
        assert client.get(url, headers=headers).status_code == status
    rows = _audit_rows(app)
    assert app.state.audit.count() == before + len(calls)
    newest = sorted(rows, key=lambda r: r["at"])[-len(calls):]
    statuses = sorted(r["status"] for r in newest)
    assert statuses == sorted(s for _, _, s in calls)
    denied = [r for r in newest if r["status"] == 403]
    assert denied[0]["username"] == world.users["practice"]["username"]
    assert denied[0]["route"] == "/api/v1/claims" and denied[0]["outcome"] == "denied"
    anonymous = [r for r in newest if r["status"] == 401]
    assert anonymous[0]["username"] is None and anonymous[0]["outcome"] == "unauthenticated"


def test_audit_rows_hold_no_query_strings(app, client, world):
    member = sorted(world.member_ids())[0]
    client.get(f"/api/v1/rosters?practice_id={member}", headers={"X-API-Key": world.keys["aco_admin"]})
    assert not any(member in str(r.values()) for r in _audit_rows(app))


def test_app_logs_hold_no_member_identifiers(client, world, caplog):
    ids = sorted(world.member_ids())
    key = {"X-API-Key": world.keys["aco_admin"]}
    with caplog.at_level(logging.DEBUG):
        for m in ids[:5]:
            client.get(f"/api/v1/rosters?practice_id={m}", headers=key)
            client.get(f"/api/v1/rosters?month={m}", headers=key)  # 422, echoes nothing
            client.get(f"/api/v1/employers/{m}/summary", headers=key)
        client.get("/api/v1/rosters?limit=5", headers=key)
        client.get("/api/v1/claims?limit=5", headers=key)
    # the test client's own logger (httpx) prints the URLs it requests; the server's records are the rest
    server = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "/api/v1/rosters" in server  # the log is written
    assert not [m for m in ids if m in server]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_logs_no_member_identifiers(world, tmp_path):
    port = _free_port()
    log = tmp_path / "server.log"
    exe = Path(sys.executable).with_name("allpayer")
    with log.open("w") as out:
        proc = subprocess.Popen([str(exe), "serve", "--db", str(world.db), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                httpx.get(base + "/openapi.json", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        ids = sorted(world.member_ids())[:5]
        key = {"X-API-Key": world.keys["aco_admin"]}
        for m in ids:
            assert httpx.get(f"{base}/api/v1/rosters", params={"practice_id": m}, headers=key, timeout=120).status_code == 200
            httpx.get(f"{base}/api/v1/claims", params={"payer": m}, headers=key, timeout=120)
            httpx.get(f"{base}/practice/{m}", headers=key, timeout=120)
        assert httpx.get(f"{base}/api/v1/rosters", params={"limit": 3}, headers=key, timeout=120).json()["items"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    text = log.read_text()
    assert "/api/v1/rosters" in text
    assert not [m for m in world.member_ids() if m in text]


def test_a_failing_request_logs_no_query_text(app, client, world, caplog, monkeypatch):
    """A server error is answered as problem+json and logged by route and error type only, never
    with the failing query (which may quote filter values such as a member id)."""
    member = sorted(world.member_ids())[0]
    snap = app.state.snapshot

    def broken(ctx, sql, as_dicts=False, params=None):
        raise RuntimeError(f"engine failed on: {sql}")

    monkeypatch.setattr(snap, "run", broken)
    with caplog.at_level(logging.DEBUG):
        # a page not asked before (answers already given are served from the snapshot's cache)
        r = client.get(f"/api/v1/rosters?practice_id={member}&limit=17", headers={"X-API-Key": world.keys["aco_admin"]})
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/problem+json")
    assert member not in r.text
    server = "\n".join(r.getMessage() + str(r.exc_text or "") for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "RuntimeError" in server and member not in server
    assert app.state.audit.rows(1)[0]["status"] == 500


def test_concurrent_requests_each_get_an_audit_row_in_shared_commits(app, world):
    """Rows of concurrent requests are committed together (fewer commits than requests), none is
    lost, and each request is answered only after its row is in the store."""
    import asyncio

    audit = app.state.audit
    key = {"X-API-Key": world.keys["practice"]}
    before_rows, before_commits = audit.count(), audit.commits
    seen_at_answer = []

    async def ask_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=key) as c:
            async def one(i):
                r = await c.get("/api/v1/me" if i % 2 else "/api/v1/claims")
                seen_at_answer.append(audit.count())
                return r.status_code
            return await asyncio.gather(*(one(i) for i in range(40)))

    statuses = asyncio.run(ask_all())
    assert sorted(set(statuses)) == [200, 403]
    assert audit.count() == before_rows + 40
    assert min(seen_at_answer) > before_rows  # the first answer came after at least its own row
    assert audit.commits - before_commits < 40
