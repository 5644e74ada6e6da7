"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright): each role
logs in, sees the numbers the API returns, and cannot open another organization's pages.
Screenshots (laptop and phone widths) are saved under ``test-artifacts/web/``."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from allpayer.web.pages import dollars

CHROMIUM = os.environ.get("ALLPAYER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("ALLPAYER_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")) / "web"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

# Skipped only where Chromium is absent outside CI; in CI (where ./dev installs it) they run and fail.
pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason=f"{CHROMIUM} is not installed (./dev setup installs Debian's chromium as root)",
)


@pytest.fixture(scope="module")
def server(app):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/login", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base
    srv.should_exit = True
    t.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def login(browser, server, world, role, viewport=None):
    ctx = browser.new_context(viewport=viewport or {"width": 1366, "height": 900})
    page = ctx.new_page()
    page.goto(server + "/login")
    u = world.users[role]
    page.fill("#username", u["username"])
    page.fill("#password", u["password"])
    page.click("#submit")
    page.wait_for_load_state("networkidle")
    assert u["username"] in page.inner_text("#who")
    return ctx, page


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def api(client, world, role, url, **params):
    r = client.get(url, headers={"X-API-Key": world.keys[role]}, params=params)
    assert r.status_code == 200, r.text
    return r.json()


OTHER = {"practice": "/practice/{}", "hospital": "/hospital/{}", "employer": "/employer/{}"}


def _another(world, kind):
    q = {"practice": "SELECT min(practice_id) FROM attribution WHERE practice_id <> ?",
         "hospital": "SELECT min(hospital_id) FROM fpp_hospital_payments WHERE hospital_id <> ?",
         "employer": "SELECT min(employer_id) FROM employer_group WHERE employer_id <> ?"}[kind]
    return world.sql(q, (world.users[kind]["org_id"],))[0][0]


@pytest.mark.parametrize("role", ["aco_admin", "aco_analyst", "payer", "regulator"])
def test_overview_roles(browser, server, world, client, role):
    ctx, page = login(browser, server, world, role)
    assert page.url.endswith("/overview")
    items = api(client, world, role, "/api/v1/overview")["items"]
    assert items
    text = page.inner_text("#overview")
    for r in items:
        assert r["program_id"] in text
        assert dollars(r["tcoc_cents"]) in text
        assert dollars(r["tcoc_pmpm_cents"]) in text
    assert page.locator("svg.chart").count() == 1
    shot(page, f"{role}-overview")
    page.goto(server + "/settlements")
    st = api(client, world, role, "/api/v1/settlements")["items"]
    for r in st:
        assert dollars(r["net_cents"]) in page.inner_text("#settlements")
    shot(page, f"{role}-settlements")
    if st:
        page.goto(f"{server}/settlements/{st[0]['program_id']}")
        assert page.locator("#lines tbody tr").count() > 0
        shot(page, f"{role}-statement")
    # another organization's pages
    for kind in ("practice", "hospital", "employer"):
        resp = page.goto(server + OTHER[kind].format(_another(world, kind)))
        assert resp.status == (200 if role.startswith("aco") else 403)
    if role == "payer":
        other = world.sql("SELECT min(program_id) FROM settlement_statements")  # any program
        assert other
    ctx.close()


def test_payer_does_not_see_other_payers_programs(browser, server, world, client):
    ctx, page = login(browser, server, world, "payer")
    mine = {r["program_id"] for r in api(client, world, "payer", "/api/v1/overview")["items"]}
    everyone = {r["program_id"] for r in api(client, world, "aco_admin", "/api/v1/overview")["items"]}
    text = page.inner_text("#overview")
    for pid in everyone - mine:
        assert pid not in text
    ctx.close()


def test_practice(browser, server, world, client):
    ctx, page = login(browser, server, world, "practice")
    pid = world.users["practice"]["org_id"]
    assert page.url.endswith(f"/practice/{pid}")
    roster = api(client, world, "practice", "/api/v1/rosters", limit=1)
    assert roster["total"] > 0
    patients = world.sql("SELECT count(DISTINCT person_id) FROM attribution WHERE attributed AND practice_id = ?", (pid,))[0][0]
    assert page.inner_text("#patients") == f"{patients:,}"
    shot(page, "practice-home")
    resp = page.goto(server + f"/practice/{_another(world, 'practice')}")
    assert resp.status == 403
    shot(page, "practice-denied")
    assert page.goto(server + "/overview").status == 403
    ctx.close()
    ctx, page = login(browser, server, world, "practice", viewport={"width": 390, "height": 844})
    shot(page, "practice-phone")
    ctx.close()


def test_hospital(browser, server, world, client):
    ctx, page = login(browser, server, world, "hospital")
    hid = world.users["hospital"]["org_id"]
    assert page.url.endswith(f"/hospital/{hid}")
    perf = api(client, world, "hospital", "/api/v1/payments/fixed-performance")["items"]
    assert perf
    text = page.inner_text("#fpp")
    for r in perf:
        assert dollars(r["fpp_paid_cents"]) in text and dollars(r["shadow_value_cents"]) in text
    shot(page, "hospital-home")
    assert page.goto(server + f"/hospital/{_another(world, 'hospital')}").status == 403
    ctx.close()


def test_employer(browser, server, world, client):
    ctx, page = login(browser, server, world, "employer")
    eid = world.users["employer"]["org_id"]
    assert page.url.endswith(f"/employer/{eid}")
    body = api(client, world, "employer", f"/api/v1/employers/{eid}/summary")
    text = page.inner_text("#invoices")
    for r in body["items"]:
        if not r["suppressed"]:
            assert dollars(r["amount_cents"]) in text
    totals = page.inner_text("#totals")
    assert body["totals"]
    for r in body["totals"]:
        assert r["program_id"] in totals
        if not r["suppressed"]:
            assert dollars(r["amount_cents"]) in totals and f"{r['member_months']:,}" in totals
    shot(page, "employer-home")
    assert page.goto(server + f"/employer/{_another(world, 'employer')}").status == 403
    assert page.goto(server + "/practice/anything").status == 403
    ctx.close()
    ctx, page = login(browser, server, world, "employer", viewport={"width": 390, "height": 844})
    shot(page, "employer-phone")
    ctx.close()


def test_wrong_password_and_anonymous(browser, server):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(server + "/overview")
    assert page.url.endswith("/login")
    page.fill("#username", "aco-admin")
    page.fill("#password", "not-the-password")
    page.click("#submit")
    assert "Wrong user name or password" in page.inner_text("#error")
    shot(page, "login-refused")
    ctx.close()


def test_logout_button_and_forged_cross_origin_post(browser, server, world):
    """Logging out is a POST carrying the session's CSRF token. A page of another origin (same
    site: the browser still sends the SameSite=Lax cookie) that posts the log-out form without
    the token is refused, and the session survives it."""
    ctx, page = login(browser, server, world, "regulator")
    evil = "http://127.0.0.1:9/forged.html"  # another port: another origin, served by the browser's route
    ctx.route(evil, lambda route: route.fulfill(content_type="text/html", body=(
        f'<form id="f" method="post" action="{server}/logout"><input name="x" value="1"></form>'
        '<script>document.getElementById("f").submit()</script>')))
    forged = ctx.new_page()
    with forged.expect_navigation(url=f"{server}/logout"):
        forged.goto(evil)
    assert "Forbidden" in forged.content() or "CSRF" in forged.content() or "cross-origin" in forged.content()
    forged.close()
    page.goto(server + "/overview")
    assert page.url.endswith("/overview") and world.users["regulator"]["username"] in page.inner_text("#who")
    page.click("#logout")
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/login")
    page.goto(server + "/overview")
    assert page.url.endswith("/login")
    ctx.close()
