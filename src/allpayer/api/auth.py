"""Users, API keys and sessions, kept in the transactional store (`allpayer.store`).

People log in with a user name and password and get a session token (sent back as a bearer
token or the ``allpayer_session`` cookie); machines send an API key in the ``X-API-Key`` header.
No secret is stored in plain text:

- passwords and API keys are hashed with ``hashlib.scrypt`` (N=2**14, r=8, p=1) and a random
  16-byte salt per secret; the hash is compared in constant time;
- session tokens are 32 random bytes; the store keeps only their SHA-256 (a token is as strong
  as a key and is looked up by hash), with an expiry time.

An API key reads ``ak_<key id>_<secret>``: the key id finds the row, the secret is checked
against its scrypt hash. Verified keys are remembered in memory for a short time (by the
SHA-256 of the whole key) so that a busy machine client does not pay for scrypt on every call.

    >>> from allpayer.store import open_store
    >>> s = open_store("sqlite:///:memory:")
    >>> users = Users(s)
    >>> users.add("ana", "secret-pw-1", role="practice", org_id="P001")
    >>> users.login("ana", "wrong") is None
    True
    >>> token = users.login("ana", "secret-pw-1")
    >>> users.principal_for_token(token).org_id
    'P001'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from allpayer.api.ratelimit import LIMITER_MIGRATION
from allpayer.errors import AllpayerError
from allpayer.store import Store, register_migrations

ROLES = ("aco_admin", "aco_analyst", "payer", "employer", "practice", "hospital", "regulator")
ORG_ROLES = ("payer", "employer", "practice", "hospital")

SESSION_HOURS = 12
KEY_CACHE_SECONDS = 60.0

USERS_MIGRATIONS = [
    """
CREATE TABLE api_users (
    username VARCHAR(100) PRIMARY KEY,
    role VARCHAR(40) NOT NULL,
    org_id VARCHAR(100),
    password_hash VARCHAR(400) NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE api_keys (
    key_id VARCHAR(40) PRIMARY KEY,
    username VARCHAR(100) NOT NULL REFERENCES api_users(username),
    label VARCHAR(200),
    key_hash VARCHAR(400) NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE api_sessions (
    token_sha256 VARCHAR(64) PRIMARY KEY,
    username VARCHAR(100) NOT NULL REFERENCES api_users(username),
    created_at VARCHAR(40) NOT NULL,
    expires_at VARCHAR(40) NOT NULL
);
CREATE TABLE api_audit (
    audit_id VARCHAR(40) PRIMARY KEY,
    at VARCHAR(40) NOT NULL,
    username VARCHAR(100),
    role VARCHAR(40),
    org_id VARCHAR(100),
    auth VARCHAR(20),
    method VARCHAR(10) NOT NULL,
    route VARCHAR(300) NOT NULL,
    status BIGINT NOT NULL,
    outcome VARCHAR(20) NOT NULL
);
""",
    LIMITER_MIGRATION,
    """
CREATE TABLE api_secrets (
    name VARCHAR(40) PRIMARY KEY,
    value VARCHAR(200) NOT NULL,
    created_at VARCHAR(40) NOT NULL
);
""",
]
register_migrations("users", USERS_MIGRATIONS)


class AuthError(AllpayerError):
    """A user or key cannot be created or changed as asked."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user name, a role and (for organization roles) the organization id."""

    username: str
    role: str
    org_id: str | None = None
    auth: str = "session"

    @property
    def is_aco(self) -> bool:
        return self.role in ("aco_admin", "aco_analyst")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt hex>$<hash hex>`` of `secret`."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    h = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${h.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, want = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    got = hashlib.scrypt(secret.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(got.hex(), want)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Users:
    """The user, key and session tables of a store."""

    def __init__(self, store: Store):
        self.store = store
        store.migrate("users")
        self._key_cache: dict[str, tuple[float, Principal]] = {}
        self._cache_lock = threading.Lock()

    # -- administration --------------------------------------------------------------------
    def add(self, username: str, password: str, *, role: str, org_id: str | None = None) -> None:
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        if role in ORG_ROLES and not org_id:
            raise AuthError(f"role {role} needs --org (the {role}'s id)")
        if role not in ORG_ROLES and org_id:
            raise AuthError(f"role {role} belongs to no organization; leave --org out")
        if not username or len(username) > 100:
            raise AuthError("a user name is 1 to 100 characters")
        if len(password) < 8:
            raise AuthError("a password has at least 8 characters")
        if self.get(username) is not None:
            raise AuthError(f"user {username!r} already exists")
        self.store.execute(
            "INSERT INTO api_users (username, role, org_id, password_hash, created_at, disabled) VALUES (?, ?, ?, ?, ?, 0)",
            (username, role, org_id, hash_secret(password), _iso(_now())),
        )

    def set_password(self, username: str, password: str) -> None:
        if self.get(username) is None:
            raise AuthError(f"no user {username!r}")
        if len(password) < 8:
            raise AuthError("a password has at least 8 characters")
        with self.store.transaction():
            self.store.execute("UPDATE api_users SET password_hash = ? WHERE username = ?", (hash_secret(password), username))
            self.store.execute("DELETE FROM api_sessions WHERE username = ?", (username,))

    def get(self, username: str) -> Principal | None:
        rows = self.store.query("SELECT username, role, org_id FROM api_users WHERE username = ? AND disabled = 0", (username,))
        return Principal(rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def list(self) -> list[dict]:
        rows = self.store.query(
            "SELECT u.username, u.role, u.org_id, u.created_at, "
            "(SELECT count(*) FROM api_keys k WHERE k.username = u.username AND k.revoked = 0) "
            "FROM api_users u WHERE u.disabled = 0 ORDER BY u.username"
        )
        return [dict(zip(("username", "role", "org_id", "created_at", "keys"), r)) for r in rows]

    def new_key(self, username: str, label: str = "") -> str:
        """Create an API key for `username`; returns the key, which is shown this once."""
        if self.get(username) is None:
            raise AuthError(f"no user {username!r}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(24).replace("_", "A").replace("-", "B")
        self.store.execute(
            "INSERT INTO api_keys (key_id, username, label, key_hash, created_at, revoked) VALUES (?, ?, ?, ?, ?, 0)",
            (key_id, username, label, hash_secret(secret), _iso(_now())),
        )
        return f"ak_{key_id}_{secret}"

    def revoke_key(self, key_id: str) -> None:
        n = self.store.query("SELECT count(*) FROM api_keys WHERE key_id = ?", (key_id,))[0][0]
        if not n:
            raise AuthError(f"no API key {key_id!r}")
        self.store.execute("UPDATE api_keys SET revoked = 1 WHERE key_id = ?", (key_id,))
        with self._cache_lock:
            self._key_cache.clear()

    # -- authentication --------------------------------------------------------------------
    def login(self, username: str, password: str) -> str | None:
        """A new session token for a right user name and password, else None."""
        rows = self.store.query("SELECT password_hash FROM api_users WHERE username = ? AND disabled = 0", (username,))
        if not rows:
            verify_secret(password, hash_secret("x" * 12))  # same cost whether or not the user exists
            return None
        if not verify_secret(password, rows[0][0]):
            return None
        token = secrets.token_urlsafe(32)
        now = _now()
        self.store.execute(
            "INSERT INTO api_sessions (token_sha256, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (_sha256(token), username, _iso(now), _iso(now + dt.timedelta(hours=SESSION_HOURS))),
        )
        return token

    def logout(self, token: str) -> None:
        self.store.execute("DELETE FROM api_sessions WHERE token_sha256 = ?", (_sha256(token),))

    def principal_for_token(self, token: str) -> Principal | None:
        rows = self.store.query(
            "SELECT u.username, u.role, u.org_id, s.expires_at FROM api_sessions s JOIN api_users u "
            "ON u.username = s.username WHERE s.token_sha256 = ? AND u.disabled = 0",
            (_sha256(token),),
        )
        if not rows or rows[0][3] <= _iso(_now()):
            return None
        return Principal(rows[0][0], rows[0][1], rows[0][2], auth="session")

    def cached_key(self, key: str) -> Principal | None:
        """The principal of an API key verified less than 60 seconds ago, else None (then ask
        `principal_for_key`); no store access, no hashing but SHA-256."""
        with self._cache_lock:
            hit = self._key_cache.get(_sha256(key))
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def principal_for_key(self, key: str) -> Principal | None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "ak":
            return None
        digest = _sha256(key)
        with self._cache_lock:
            hit = self._key_cache.get(digest)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        rows = self.store.query(
            "SELECT k.key_hash, u.username, u.role, u.org_id FROM api_keys k JOIN api_users u ON u.username = k.username "
            "WHERE k.key_id = ? AND k.revoked = 0 AND u.disabled = 0",
            (parts[1],),
        )
        if not rows or not verify_secret(parts[2], rows[0][0]):
            return None
        p = Principal(rows[0][1], rows[0][2], rows[0][3], auth="api_key")
        with self._cache_lock:
            self._key_cache[digest] = (time.monotonic() + KEY_CACHE_SECONDS, p)
        return p
