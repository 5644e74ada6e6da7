"""CSRF protection of cookie sessions and the login rate limit / lockout.

Each test builds its own app on the session's snapshot with a fresh store (users, sessions,
failed-login counts), so that lockouts here never reach the other tests."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from allpayer.api import ratelimit
from allpayer.api.auth import Users
from allpayer.api.csrf import session_csrf
from allpayer.api.ratelimit import LoginLimiter, LoginThrottled
from allpayer.store import open_store

PASSWORD = "right-password-1"


@pytest.fixture
def fresh(world, tmp_path):
    """An app with its own store holding one ACO admin (ana) and one practice user (pia)."""
    from allpayer.api.app import create_app

    url = f"sqlite:///{tmp_path}/store.sqlite"
    users = Users(open_store(url))
    users.add("ana", PASSWORD, role="aco_admin")
    users.add("pia", PASSWORD, role="practice", org_id=world.users["practice"]["org_id"])
    users.store.close()
    app = create_app(world.db, url)
    with TestClient(app, base_url="http://testserver") as c:
        yield app, c, url


def _form_token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "the form carries a csrf_token field"
    return m.group(1)


def _login_form(c, username="ana", password=PASSWORD):
    page = c.get("/login")
    token = _form_token(page.text)
    assert c.cookies.get("allpayer_csrf") == token  # double submit: same value in cookie and form
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token},
                  follow_redirects=False)


# -- CSRF ------------------------------------------------------------------------------------------
def test_login_form_needs_its_csrf_token(fresh):
    app, c, _ = fresh
    c.get("/login")
    no_token = c.post("/login", data={"username": "ana", "password": PASSWORD}, follow_redirects=False)
    assert no_token.status_code == 403 and "allpayer_session" not in no_token.cookies
    wrong = c.post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": "forged"},
                   follow_redirects=False)
    assert wrong.status_code == 403 and "allpayer_session" not in wrong.cookies
    c.cookies.clear()  # a cross-site form: the browser has no allpayer_csrf cookie for the page that posted
    forged = c.post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": "x" * 43},
                    follow_redirects=False)
    assert forged.status_code == 403 and "allpayer_session" not in forged.cookies
    ok = _login_form(c)
    assert ok.status_code == 303 and "allpayer_session" in ok.cookies


def test_logout_form_needs_the_session_token(fresh):
    app, c, _ = fresh
    assert _login_form(c).status_code == 303
    session = c.cookies.get("allpayer_session")
    page = c.get("/overview")
    assert page.status_code == 200
    token = _form_token(page.text)
    assert token == session_csrf(session) and session not in page.text
    # GET /logout changes nothing; a forged POST (no token, wrong token) is refused
    assert c.get("/logout", follow_redirects=False).status_code == 200
    assert c.post("/logout", follow_redirects=False).status_code == 403
    assert c.post("/logout", data={"csrf_token": session_csrf("another-session")}, follow_redirects=False).status_code == 403
    assert c.get("/overview", follow_redirects=False).status_code == 200  # still logged in
    r = c.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    # the old cookie no longer opens anything
    assert c.get("/overview", headers={"Cookie": f"allpayer_session={session}"}, follow_redirects=False).status_code == 303


def test_api_cookie_requests_need_the_header_token(fresh):
    app, c, _ = fresh
    assert _login_form(c).status_code == 303
    me = c.get("/api/v1/me").json()
    assert me["username"] == "ana" and me["csrf_token"] == session_csrf(c.cookies.get("allpayer_session"))
    refused = c.post("/api/v1/logout")
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
    assert "CSRF" in refused.json()["detail"]
    assert c.get("/api/v1/me").status_code == 200
    assert c.post("/api/v1/logout", headers={"X-CSRF-Token": me["csrf_token"]}).status_code == 200
    assert c.get("/api/v1/me").status_code == 401


def test_cookies_served_over_https_are_secure(world, tmp_path):
    """Over HTTPS (directly or through a trusted proxy's X-Forwarded-Proto) the session and login
    cookies are marked Secure, so that a browser never sends the session over plain HTTP."""
    from allpayer.api.app import create_app

    url = f"sqlite:///{tmp_path}/store.sqlite"
    users = Users(open_store(url))
    users.add("ana", PASSWORD, role="aco_admin")
    users.store.close()
    with TestClient(create_app(world.db, url), base_url="https://testserver") as c:
        page = c.get("/login")
        assert "secure" in page.headers["set-cookie"].lower()
        r = _login_form(c)
        assert r.status_code == 303
        session = [h for h in r.headers.get_list("set-cookie") if h.startswith("allpayer_session=")]
        assert session and "secure" in session[0].lower() and "httponly" in session[0].lower()


def test_a_header_that_does_not_authenticate_does_not_spare_the_cookie_its_token(fresh):
    """A browser adds an ``Authorization: Basic`` header on its own where a proxy in front asked for
    one, and an X-API-Key that is no key authenticates nobody: the request is still authenticated
    by the session cookie, so it still needs the session's CSRF token."""
    app, c, _ = fresh
    assert _login_form(c).status_code == 303
    for headers in ({"Authorization": "Basic cHJveHk6cGFzcw=="}, {"Authorization": "Negotiate abc"}):
        assert c.post("/logout", headers=headers, follow_redirects=False).status_code == 403, headers
        assert c.post("/api/v1/logout", headers=headers).status_code == 403, headers
    assert c.get("/overview", follow_redirects=False).status_code == 200  # still logged in


def test_header_authenticated_requests_need_no_token_but_foreign_origins_are_refused(fresh):
    app, c, _ = fresh
    token = c.post("/api/v1/login", json={"username": "ana", "password": PASSWORD}).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert "csrf_token" not in c.get("/api/v1/me", headers=bearer).json()
    assert c.post("/api/v1/logout", headers={**bearer, "Origin": "https://evil.example"}).status_code == 403
    assert c.get("/api/v1/me", headers=bearer).status_code == 200  # the refused logout did nothing
    assert c.post("/api/v1/logout", headers={**bearer, "Origin": "http://testserver"}).status_code == 200
    assert c.get("/api/v1/me", headers=bearer).status_code == 401
    assert c.post("/api/v1/login", json={"username": "ana", "password": PASSWORD},
                  headers={"Origin": "https://evil.example"}).status_code == 403


# -- login rate limit --------------------------------------------------------------------------------
def test_account_lockout_at_the_api(fresh):
    app, c, _ = fresh
    for _ in range(ratelimit.ACCOUNT_FAILURES):
        assert c.post("/api/v1/login", json={"username": "ana", "password": "guess-guess"}).status_code == 401
    locked = c.post("/api/v1/login", json={"username": "ana", "password": PASSWORD})  # even the right password
    assert locked.status_code == 429 and locked.headers["content-type"].startswith("application/problem+json")
    assert 0 < int(locked.headers["Retry-After"]) <= ratelimit.ACCOUNT_LOCK_S
    assert app.state.audit.rows(1)[0]["outcome"] == "throttled"
    # another account from the same address is not locked (the address has 5 of its 20)
    assert c.post("/api/v1/login", json={"username": "pia", "password": PASSWORD}).status_code == 200
    # the dashboard form says so too
    r = _login_form(c, "ana", PASSWORD)
    assert r.status_code == 429 and "Too many failed logins" in r.text and "allpayer_session" not in r.cookies


def test_concurrent_guesses_get_no_more_tries_than_one_by_one(fresh):
    """Guesses sent at once all passed the lock check before the first failure was counted: 30 at
    once had 30 passwords checked. The check, the password and the count are one step per account
    and address, so at most the limit is checked."""
    from concurrent.futures import ThreadPoolExecutor

    app, c, _ = fresh

    def guess(i: int) -> int:
        return c.post("/api/v1/login", json={"username": "ana", "password": f"guess-{i:04d}"}).status_code

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(guess, range(24)))
    assert got.count(401) == ratelimit.ACCOUNT_FAILURES and got.count(429) == len(got) - ratelimit.ACCOUNT_FAILURES


def test_wrong_api_keys_lock_the_address_not_the_key(world, tmp_path):
    """Each wrong key with a real key id costs a scrypt hash: wrong keys count against the client
    address as failed logins do, and a locked address is answered 429 before the hash. The key id
    itself is not locked (anyone could lock a machine's key out), and a key already verified keeps
    working from its cache."""
    from allpayer.api.app import create_app

    url = f"sqlite:///{tmp_path}/store.sqlite"
    users = Users(open_store(url))
    users.add("ana", PASSWORD, role="aco_admin")
    good, other = users.new_key("ana"), users.new_key("ana")
    users.store.close()
    key_id = good.split("_")[1]
    with TestClient(create_app(world.db, url), base_url="http://testserver") as c:
        me = lambda key: c.get("/api/v1/me", headers={"X-API-Key": key})  # noqa: E731
        assert me(good).status_code == 200  # verified, then cached
        got = [me(f"ak_{key_id}_wrong-secret-{i}").status_code for i in range(ratelimit.ADDRESS_FAILURES + 2)]
        assert got == [401] * ratelimit.ADDRESS_FAILURES + [429, 429]
        locked = me(other)  # a right key not yet verified: the address is locked first
        assert locked.status_code == 429 and 0 < int(locked.headers["Retry-After"]) <= ratelimit.ADDRESS_LOCK_S
        assert me(good).status_code == 200
    with TestClient(create_app(world.db, url), base_url="http://testclient2",
                    client=("10.9.8.7", 5000)) as c2:  # another address: the key id is not locked
        assert c2.get("/api/v1/me", headers={"X-API-Key": other}).status_code == 200


def test_limiter_counts_per_account_and_address_and_survives_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path}/s.sqlite"
    store = open_store(url)
    Users(store)  # migrations
    clock = [10_000.0]
    lim = LoginLimiter(store, now=lambda: clock[0])
    for _ in range(ratelimit.ACCOUNT_FAILURES - 1):
        lim.failed("Ana", "10.0.0.1")
    lim.check("ana", "10.0.0.1")  # 4 failures: not yet
    lim.succeeded("ana")  # a right password clears the account's count ...
    for _ in range(ratelimit.ACCOUNT_FAILURES - 1):
        lim.failed("ana", "10.0.0.1")
    lim.check("ana", "10.0.0.9")  # ... so 4 more are still allowed
    lim.failed("ana", "10.0.0.1")
    with pytest.raises(LoginThrottled) as exc:
        lim.check("ANA ", "10.0.0.9")  # the account, from any address, any case
    assert exc.value.retry_after == ratelimit.ACCOUNT_LOCK_S
    store.close()
    # a restarted server (a new store connection) sees the same lock
    lim2 = LoginLimiter(open_store(url), now=lambda: clock[0])
    assert lim2.retry_after("ana", None) == ratelimit.ACCOUNT_LOCK_S
    clock[0] += ratelimit.ACCOUNT_LOCK_S
    assert lim2.retry_after("ana", None) == 0
    for _ in range(ratelimit.ACCOUNT_FAILURES):  # a second lock lasts twice as long
        lim2.failed("ana", "10.0.0.2")
    assert lim2.retry_after("ana", None) == 2 * ratelimit.ACCOUNT_LOCK_S
    # the address: 20 failures over (any number of) user names lock it, for every user name;
    # a success does not reset it
    for i in range(ratelimit.ADDRESS_FAILURES - 1):
        lim2.failed(f"user{i}", "10.0.0.3")
    lim2.succeeded("user0")
    lim2.check("someone", "10.0.0.3")
    lim2.failed("user99", "10.0.0.3")
    assert lim2.retry_after("someone", "10.0.0.3") == ratelimit.ADDRESS_LOCK_S
    assert lim2.retry_after("someone", "10.0.0.4") == 0
    # failures older than the window are forgotten
    clock[0] += 10 * ratelimit.MAX_LOCK_S
    lim2.failed("bo", "10.0.0.5")
    clock[0] += ratelimit.WINDOW_S + 1
    for _ in range(ratelimit.ACCOUNT_FAILURES - 1):
        lim2.failed("bo", "10.0.0.5")
    assert lim2.retry_after("bo", None) == 0
    # neither user names nor addresses are stored in plain text
    lim2.store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.sqlite*"))
    assert b"user99" not in raw and b"10.0.0.3" not in raw
    assert LoginLimiter(open_store(url), now=lambda: clock[0]).unlock("ana") is True
