"""Every dashboard page, for every role: served or refused, never a server error, and another
organization's page is refused."""

from __future__ import annotations

import re

import pytest

from allpayer.api.auth import ROLES


def _pages(world):
    org = {k: world.users[k]["org_id"] for k in ("practice", "hospital", "employer")}
    program = world.sql("SELECT min(program_id) FROM settlement_statements")[0][0]
    return ["/", "/overview", "/settlements", f"/settlements/{program}", "/settlements/no-such-program",
            f"/practice/{org['practice']}", f"/hospital/{org['hospital']}", f"/employer/{org['employer']}",
            "/practice/someone-else", "/hospital/someone-else", "/employer/someone-else", "/login"]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_pages_never_fail(app, world, role):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        u = world.users[role]
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": token},
                   follow_redirects=False)
        assert r.status_code == 303 and "allpayer_session" in r.cookies
        for page in _pages(world):
            r = c.get(page, follow_redirects=False)
            assert r.status_code in (200, 303, 403, 404), (page, r.status_code)
            if page.endswith("someone-else") and not role.startswith("aco"):
                assert r.status_code == 403, page
            if page.startswith(("/practice/", "/hospital/", "/employer/")) and not page.endswith("someone-else"):
                kind = page.split("/")[1]
                assert r.status_code == (200 if role.startswith("aco") or role == kind else 403), page


def test_pages_need_login(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        for page in ("/", "/overview", "/practice/x", "/settlements"):
            r = c.get(page, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/login"
