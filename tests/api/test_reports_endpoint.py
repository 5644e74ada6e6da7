"""Rendered reports are listed from each run's index.json and served only to their audience."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def rendered(world):
    """A rendered run folder shaped as allpayer.reports.publish writes it."""
    import shutil

    root = world.db.with_name(world.db.name + ".reports")
    run = root / "20240101T000000Z-abcdef"
    org = {k: world.users[k]["org_id"] for k in ("practice", "hospital", "employer", "payer")}
    reports = []
    for kind, o in [*org.items(), ("practice", "someone-else"), ("regulator", "vermont")]:
        (run / kind).mkdir(parents=True, exist_ok=True)
        (run / kind / f"{kind}-{o}.html").write_text(f"<h1>{kind} {o}</h1>")
        reports.append({"kind": kind, "organization": o, "title": f"{kind} {o}", "files": {"html": f"{kind}/{kind}-{o}.html"}})
    (run / "index.json").write_text(json.dumps({"run_id": run.name, "year": 2024, "reports": reports}))
    (run / "index.html").write_text("<ul></ul>")
    (root / ".tmp-being-written").mkdir(exist_ok=True)
    yield run
    shutil.rmtree(root)


def test_each_role_lists_its_own_reports(rendered, as_role, world):
    listing = {role: as_role(role, "/api/v1/reports").json()["items"] for role in world.keys}
    assert len(listing["aco_admin"]) == 8  # 6 reports + index.html + index.json
    for role in ("practice", "hospital", "employer", "payer"):
        mine = listing[role]
        assert [(r["kind"], r["organization"]) for r in mine] == [(role, world.users[role]["org_id"])]
    assert [r["kind"] for r in listing["regulator"]] == ["regulator"]


def test_reports_are_served_only_to_their_audience(rendered, as_role, world):
    practice = world.users["practice"]["org_id"]
    own = f"/api/v1/reports/{rendered.name}/practice/practice-{practice}.html"
    other = f"/api/v1/reports/{rendered.name}/practice/practice-someone-else.html"
    assert as_role("practice", own).status_code == 200
    assert "practice" in as_role("practice", own).text
    assert as_role("practice", other).status_code == 404
    assert as_role("hospital", own).status_code == 404
    assert as_role("aco_analyst", other).status_code == 200
    assert as_role("aco_admin", f"/api/v1/reports/{rendered.name}/../../etc/passwd").status_code == 404
