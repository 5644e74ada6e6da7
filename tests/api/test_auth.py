"""Users, passwords, API keys and sessions: hashed at rest, checked on use."""

from __future__ import annotations

import pytest

from allpayer.api.auth import AuthError, Users, hash_secret, verify_secret
from allpayer.store import open_store


@pytest.fixture
def users(tmp_path):
    return Users(open_store(f"sqlite:///{tmp_path}/s.sqlite"))


def test_hash_is_salted_and_verifies():
    a, b = hash_secret("pw-123456"), hash_secret("pw-123456")
    assert a != b and a.startswith("scrypt$")
    assert verify_secret("pw-123456", a) and not verify_secret("pw-123457", a)


def test_no_plaintext_in_the_store(users, tmp_path):
    users.add("ana", "correct horse", role="aco_admin")
    key = users.new_key("ana")
    token = users.login("ana", "correct horse")
    users.store.close()
    raw = (tmp_path / "s.sqlite").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("s.sqlite-*"))
    for secret in ("correct horse", key, key.split("_", 2)[2], token):
        assert secret.encode() not in raw


def test_login_key_and_logout(users):
    users.add("bob", "password-1", role="hospital", org_id="H1")
    assert users.login("bob", "password-2") is None and users.login("nobody", "password-1") is None
    token = users.login("bob", "password-1")
    p = users.principal_for_token(token)
    assert (p.username, p.role, p.org_id, p.auth) == ("bob", "hospital", "H1", "session")
    users.logout(token)
    assert users.principal_for_token(token) is None
    key = users.new_key("bob")
    assert users.principal_for_key(key).auth == "api_key"
    users.revoke_key(key.split("_")[1])
    assert users.principal_for_key(key) is None


def test_users_survive_a_reopen(tmp_path):
    url = f"sqlite:///{tmp_path}/s.sqlite"
    u = Users(open_store(url))
    u.add("cy", "password-1", role="regulator")
    key = u.new_key("cy")
    u.store.close()
    u2 = Users(open_store(url))
    assert u2.principal_for_key(key).role == "regulator"
    assert u2.login("cy", "password-1")


@pytest.mark.parametrize("role,org", [("practice", None), ("aco_admin", "X"), ("wizard", None)])
def test_bad_role_or_org_is_refused(users, role, org):
    with pytest.raises(AuthError):
        users.add("dee", "password-1", role=role, org_id=org)


def test_login_endpoint_gives_a_bearer_token(client, world):
    u = world.users["payer"]
    r = client.post("/api/v1/login", json={"username": u["username"], "password": u["password"]})
    assert r.status_code == 200
    token = r.json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me == {"username": u["username"], "role": "payer", "org_id": u["org_id"], "auth": "session"}
    bad = client.post("/api/v1/login", json={"username": u["username"], "password": "nope"})
    assert bad.status_code == 401 and bad.headers["content-type"].startswith("application/problem+json")


def test_pagination_is_stable_and_complete(as_role):
    full = as_role("aco_admin", "/api/v1/rosters", params={"limit": 60}).json()
    a = as_role("aco_admin", "/api/v1/rosters", params={"limit": 30}).json()
    b = as_role("aco_admin", "/api/v1/rosters", params={"limit": 30, "offset": 30}).json()
    assert a["items"] + b["items"] == full["items"]
    assert a["total"] == full["total"] > 60
