"""A small generated population, run through the cycle once per test session, with one user and
one API key per role: the data the API and dashboard tests read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

MEMBERS = int(os.environ.get("ALLPAYER_API_TEST_MEMBERS", "400"))
SEED = 11
YEAR = 2024
HIGH_COST_THRESHOLD_CENTS = 1_000_000


@dataclass
class World:
    db: Path
    store_url: str
    users: dict[str, dict] = field(default_factory=dict)  # role -> user row (username, org_id, password)
    keys: dict[str, str] = field(default_factory=dict)  # role -> API key

    def sql(self, query: str, params=()) -> list[tuple]:
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def member_ids(self) -> set[str]:
        return {r[0] for r in self.sql("SELECT DISTINCT member_id FROM eligibility")} | {
            r[0] for r in self.sql("SELECT DISTINCT person_id FROM eligibility")
        }


def build_world(root: Path) -> World:
    from allpayer.api.auth import Users
    from allpayer.api.demo_users import create_demo_users
    from allpayer.inputs.load import load_folder
    from allpayer.payments.common import parse_period
    from allpayer.payments.run import run_payments
    from allpayer.pipeline import run_year
    from allpayer.settlement.run import settle_year
    from allpayer.store import default_store_url, open_store
    from allpayer.synth import generate

    data, db = root / "data", root / "allpayer.duckdb"
    generate(members=MEMBERS, seed=SEED, out=data)
    load = load_folder(data, db)
    # a high-cost threshold low enough that a few hundred members give each role some claimants
    run_year(db, YEAR, high_cost_threshold_cents=HIGH_COST_THRESHOLD_CENTS)
    from allpayer.quality.run import quality_year

    quality_year(db, YEAR)
    run_payments(db, parse_period(year=YEAR), paid_through=load.paid_through)
    settle_year(db, YEAR, "initial")
    store_url = default_store_url(db)
    world = World(db=db, store_url=store_url)
    for u in create_demo_users(db, store_url):
        world.users[u["role"]] = u
    users = Users(open_store(store_url))
    for role, u in world.users.items():
        world.keys[role] = users.new_key(u["username"], "tests")
    users.store.close()
    return world


_WORLD: World | None = None


def session_world(tmp_path_factory) -> World:
    """The session's world, built on first use (shared by tests/api and tests/web)."""
    global _WORLD
    if _WORLD is None:
        keep = os.environ.get("ALLPAYER_API_TEST_WORLD")
        _WORLD = reuse_world(Path(keep)) if keep else build_world(tmp_path_factory.mktemp("api_world"))
    return _WORLD


def reuse_world(root: Path) -> World:
    """A world kept in `root` between sessions (built there the first time); for development."""
    import json

    marker = root / "world.json"
    if marker.exists():
        w = json.loads(marker.read_text())
        return World(db=Path(w["db"]), store_url=w["store_url"], users=w["users"], keys=w["keys"])
    root.mkdir(parents=True, exist_ok=True)
    w = build_world(root)
    marker.write_text(json.dumps({"db": str(w.db), "store_url": w.store_url, "users": w.users, "keys": w.keys}))
    return w
