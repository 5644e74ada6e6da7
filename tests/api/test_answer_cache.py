"""Answers are cached per snapshot and tenant scope: the cache never hands one organization's rows
to another, and a newly published snapshot is never answered from the previous one's cache."""

from __future__ import annotations

import os
import shutil

import duckdb
from fastapi.testclient import TestClient

from allpayer.api.auth import Users
from allpayer.store import open_store

PASSWORD = "right-password-1"


def test_cached_answers_stay_within_the_tenant(world, tmp_path):
    from allpayer.api.app import create_app

    practices = [r[0] for r in world.sql(
        "SELECT practice_id FROM attribution WHERE practice_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 2")]
    url = f"sqlite:///{tmp_path}/store.sqlite"
    users = Users(open_store(url))
    users.add("admin", PASSWORD, role="aco_admin")
    keys = {"admin": users.new_key("admin")}
    for i, pid in enumerate(practices):
        users.add(f"p{i}", PASSWORD, role="practice", org_id=pid)
        keys[pid] = users.new_key(f"p{i}")
    users.store.close()
    app = create_app(world.db, url)
    with TestClient(app) as c:
        def get(who, path):
            r = c.get(path, headers={"X-API-Key": keys[who]})
            assert r.status_code == 200, r.text
            return r.json()

        everyone = get("admin", "/api/v1/rosters?limit=1000")  # asked first: cached for the ACO scope
        assert get("admin", "/api/v1/rosters?limit=1000") == everyone  # served from the cache
        assert app.state.snapshot.context().cache.hits >= 1
        for pid in practices:
            for _ in range(2):  # first computed, then from the cache: the same scoped answer
                mine = get(pid, "/api/v1/rosters?limit=1000")
                assert mine["items"] and {r["practice_id"] for r in mine["items"]} == {pid}
                want = world.sql("SELECT count(*) FROM attribution WHERE practice_id = ?", (pid,))[0][0]
                assert mine["total"] == want < everyone["total"]
        # overview and tcoc: each practice sees its own level only
        for pid in practices:
            rows = get(pid, "/api/v1/tcoc?limit=1000")["items"]
            assert rows and {r["practice_id"] for r in rows} == {pid}


def test_a_new_snapshot_is_not_answered_from_the_old_cache(world, tmp_path):
    from allpayer.api.app import create_app

    db = tmp_path / "snap.duckdb"
    shutil.copy(world.db, db)
    url = f"sqlite:///{tmp_path}/store.sqlite"
    users = Users(open_store(url))
    users.add("admin", PASSWORD, role="aco_admin")
    key = users.new_key("admin")
    users.store.close()
    app = create_app(db, url)
    with TestClient(app) as c:
        h = {"X-API-Key": key}
        before = c.get("/api/v1/rosters?limit=5", headers=h).json()
        overview_before = c.get("/api/v1/overview", headers=h).json()
        assert before["total"] > 100
        # publish a new snapshot the way a run does: write a copy, then swap it in
        new = tmp_path / "next.duckdb"
        shutil.copy(db, new)
        con = duckdb.connect(str(new))
        con.execute("DELETE FROM attribution WHERE rowid % 2 = 0")
        con.execute("UPDATE tcoc_summary SET ffs_paid_cents = ffs_paid_cents + 100")
        con.close()
        os.replace(new, db)
        after = c.get("/api/v1/rosters?limit=5", headers=h).json()
        assert 0 < after["total"] < before["total"]
        overview_after = c.get("/api/v1/overview", headers=h).json()
        assert [r["tcoc_cents"] for r in overview_after["items"]] != [r["tcoc_cents"] for r in overview_before["items"]]
