"""Keyset (cursor) paging: walking a member-level list by its `next` cursor returns every row the
caller may read exactly once, in the list's key order, for each role allowed to read it; a cursor
that was altered, or made for another question, is refused with a 400 problem+json."""

from __future__ import annotations

import base64
import itertools
import json

import duckdb
import pytest
from fastapi.testclient import TestClient

from allpayer.api import paging, tenancy

# member-level endpoint -> (dataset, roles allowed to read it: tests/api/test_authorization.py)
MEMBER_LISTS = {
    "/api/v1/rosters": ("rosters", ["aco_admin", "aco_analyst", "payer", "practice", "hospital"]),
    "/api/v1/care-gaps": ("care_gaps", ["aco_admin", "aco_analyst", "payer", "practice"]),
    "/api/v1/claims": ("claims", ["aco_admin", "payer"]),
}
CASES = [(endpoint, role) for endpoint, (_, roles) in MEMBER_LISTS.items() for role in roles]


def _walk_offset(as_role, role, endpoint, **params):
    items, offset = [], 0
    while True:
        body = as_role(role, endpoint, params={**params, "limit": 1000, "offset": offset}).json()
        items += body["items"]
        offset += 1000
        if offset >= body["total"]:
            return items, body["total"]


def _walk_cursor(as_role, role, endpoint, limit, **params):
    pages, cursor = [], None
    while True:
        q = {**params, "limit": limit}
        if cursor:
            q["cursor"] = cursor
        r = as_role(role, endpoint, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body)
        cursor = body["next"]
        if cursor is None:
            assert "link" not in r.headers
            return pages
        assert r.headers["link"].endswith('>; rel="next"') and "cursor=" in r.headers["link"]
        assert len(pages) < 10_000


def _sort_key(row, keys):
    # NULLs last, as the list's order says
    return tuple((row[k] is None, row[k] if row[k] is not None else "") for k in keys)


@pytest.mark.parametrize("endpoint,role", CASES)
def test_cursor_walk_returns_each_row_exactly_once(world, as_role, endpoint, role):
    dataset, _ = MEMBER_LISTS[endpoint]
    keys = tenancy.DATASETS[dataset].keys
    tables = {t for (t,) in world.sql("SELECT table_name FROM duckdb_tables()")}
    if tenancy.DATASETS[dataset].table not in tables:
        pytest.skip(f"the test world has no {dataset}")
    expected, total = _walk_offset(as_role, role, endpoint)
    assert total == len(expected) > 0
    limit = min(1000, max(7, total // 9))  # about ten pages (more for claims), the last one partial
    pages = _walk_cursor(as_role, role, endpoint, limit)
    got = [row for page in pages for row in page["items"]]
    assert all(page["total"] == total for page in pages)
    assert [len(p["items"]) for p in pages[:-1]] == [limit] * (len(pages) - 1)
    assert len(got) == total
    assert len({tuple(r[k] for k in keys) for r in got}) == total  # each row once
    assert sorted(json.dumps(r, sort_keys=True) for r in got) == sorted(json.dumps(r, sort_keys=True) for r in expected)
    assert got == sorted(got, key=lambda r: _sort_key(r, keys))  # in key order
    # the first page by cursor is the first page by offset
    assert pages[0]["items"] == expected[:limit]


def test_practice_walk_counts_the_practices_rows(world, as_role):
    practice = world.users["practice"]["org_id"]
    want = world.sql("SELECT count(*) FROM attribution WHERE practice_id = ?", (practice,))[0][0]
    pages = _walk_cursor(as_role, "practice", "/api/v1/rosters", 50)
    got = [r for p in pages for r in p["items"]]
    assert len(got) == want > 50
    assert {r["practice_id"] for r in got} == {practice}


def test_link_header_walk_with_filters(world, as_role):
    """Following the Link header keeps the filters; the walk is the filtered rows."""
    program = world.sql("SELECT min(program_id) FROM attribution")[0][0]
    want = world.sql("SELECT count(*) FROM attribution WHERE program_id = ?", (program,))[0][0]
    url, seen = f"/api/v1/rosters?program_id={program}&limit=300", []
    while url:
        r = as_role("aco_admin", url)
        assert r.status_code == 200, r.text
        seen += r.json()["items"]
        link = r.headers.get("link")
        url = link[1:link.index(">")] if link else None
        if url:
            assert f"program_id={program}" in url and "offset" not in url
    assert len(seen) == want and {r["program_id"] for r in seen} == {program}


def _next_of(as_role, role, endpoint, **params):
    body = as_role(role, endpoint, params={"limit": 5, **params}).json()
    assert body["next"]
    return body["next"]


def _assert_400(r):
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 400 and "cursor" in r.json()["detail"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_tampered_cursor_is_400(as_role):
    token = _next_of(as_role, "aco_admin", "/api/v1/rosters")
    raw = _unb64(token)
    flipped = [_b64(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:]) for i in (0, 16, len(raw) // 2, len(raw) - 1)]
    for bad in (*flipped, _b64(raw[:-1]), _b64(raw + b"x"), _b64(raw[:16]), "nonsense", "A", "é", token + "!!"):
        _assert_400(as_role("aco_admin", "/api/v1/rosters", params={"cursor": bad}))
    assert as_role("aco_admin", "/api/v1/rosters", params={"cursor": token}).status_code == 200


def test_cursor_does_not_show_the_member_id(as_role):
    """The cursor names the page's last row, member id included; it travels in URLs (and so in
    proxy and browser logs), so it is encrypted, not only signed."""
    body = as_role("aco_admin", "/api/v1/rosters", params={"limit": 5}).json()
    last = body["items"][-1]
    raw = _unb64(body["next"])
    for value in (last["member_id"], last["program_id"], last["month"]):
        assert value.encode() not in raw and value not in body["next"]
    # the same page always gets the same cursor
    again = as_role("aco_admin", "/api/v1/rosters", params={"limit": 5, "offset": 0}).json()
    assert again["next"] == body["next"]


def test_cursor_of_another_question_is_400(world, as_role):
    token = _next_of(as_role, "aco_admin", "/api/v1/rosters")
    program = world.sql("SELECT min(program_id) FROM attribution")[0][0]
    _assert_400(as_role("aco_admin", "/api/v1/rosters", params={"cursor": token, "program_id": program}))
    _assert_400(as_role("aco_admin", "/api/v1/care-gaps", params={"cursor": token}))
    # a cursor made for one organization's list does not work for another user's list
    mine = _next_of(as_role, "practice", "/api/v1/rosters")
    _assert_400(as_role("aco_admin", "/api/v1/rosters", params={"cursor": mine}))
    _assert_400(as_role("hospital", "/api/v1/rosters", params={"cursor": mine}))
    # the cursor names its user's list: it still works there, and not together with offset
    assert as_role("practice", "/api/v1/rosters", params={"cursor": mine}).status_code == 200
    r = as_role("aco_admin", "/api/v1/rosters", params={"cursor": token, "offset": 5})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")


def test_cursor_holds_in_another_server_process(world, as_role):
    """The secret lives in the store: a second app on the same store (another worker, or the
    server restarted) accepts the cursor and continues the same list."""
    from allpayer.api.app import create_app

    first = as_role("aco_admin", "/api/v1/rosters", params={"limit": 5}).json()
    second = as_role("aco_admin", "/api/v1/rosters", params={"limit": 5, "cursor": first["next"]}).json()
    with TestClient(create_app(world.db, world.store_url)) as other:
        r = other.get("/api/v1/rosters", params={"limit": 5, "cursor": first["next"]},
                      headers={"X-API-Key": world.keys["aco_admin"]})
    assert r.status_code == 200 and r.json()["items"] == second["items"]
    assert second["offset"] is None
    offset_page = as_role("aco_admin", "/api/v1/rosters", params={"limit": 5, "offset": 5}).json()
    assert offset_page["items"] == second["items"] and offset_page["next"]


def test_keyset_order_with_nulls_matches_a_full_sort():
    """`paging.page_sql` on a table with NULLs in every key column: walking it by the last row's
    key values, at every page size, gives the rows of one ORDER BY, each once."""
    con = duckdb.connect()
    rows = [(a, b, c) for a, b, c in itertools.product(["p", "q", None], [1, 2, None], ["x", None])]
    con.execute("CREATE TABLE t (a VARCHAR, b INTEGER, c VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    keys = ["a", "b", "c"]
    full = con.execute(f"SELECT * FROM t {paging.order_by(keys)}").fetchall()
    assert full[0] == ("p", 1, "x") and full[-1] == (None, None, None)  # NULLs last in each column
    for limit in (1, 2, 5, len(rows)):
        walked, after = [], None
        while True:
            sql, params = paging.page_sql("SELECT * FROM t", keys, limit, values=after)
            page = con.execute(sql, params).fetchall()
            walked += page[:limit]
            if len(page) <= limit:
                break
            after = page[limit - 1]
        assert walked == full, limit


def test_concurrent_requests_for_one_page_compute_it_once(world, tmp_path):
    """Requests that arrive while their page is being computed wait for that computation rather
    than each running the page query (50 clients asking for the same first page at 4.4M roster
    rows once ran 50 copies of a 0.5 s query)."""
    import asyncio
    import threading
    import time

    import httpx

    from allpayer.api.app import create_app
    from allpayer.api.auth import Users
    from allpayer.store import open_store

    url = f"sqlite:///{tmp_path}/store.sqlite"
    users = Users(open_store(url))
    users.add("admin", "right-password-1", role="aco_admin")
    key = users.new_key("admin")
    users.store.close()
    app = create_app(world.db, url)
    snap = app.state.snapshot
    real, calls, lock = snap.run, [], threading.Lock()

    def slow_run(ctx, sql, as_dicts=False, params=None):
        with lock:
            calls.append(sql)
        time.sleep(0.3)
        return real(ctx, sql, as_dicts=as_dicts, params=params)

    snap.run = slow_run

    async def ask_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers={"X-API-Key": key}) as c:
            return await asyncio.gather(*(c.get("/api/v1/rosters", params={"limit": 7}) for _ in range(8)))

    answers = asyncio.run(ask_all())
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1 and len(answers[0].json()["items"]) == 7
    assert len(calls) == 2  # the count and the page, once
    assert {r.headers["link"] for r in answers} == {answers[0].headers["link"]}
