"""Login rate limit and lockout against password guessing, kept in the store.

Failed logins are counted per account (the user name as typed, whether or not such a user exists,
so that the answer never tells which names exist) and per client address, in the store's
``api_login_failures`` table. The store is shared by every server process and survives restarts,
so a restart or a second worker gives an attacker no fresh attempts.

- an account is locked after `ACCOUNT_FAILURES` failures within `WINDOW_S` seconds; the lock lasts
  `ACCOUNT_LOCK_S` seconds, doubled for every further lock of the same account (at most
  `MAX_LOCK_S`) until a successful login;
- a client address is locked after `ADDRESS_FAILURES` failures within `WINDOW_S` seconds (any
  user names), for `ADDRESS_LOCK_S` seconds; a successful login does not reset it, so one known
  password cannot be used to keep guessing others.

While either lock holds, a login is refused with 429 and ``Retry-After`` before the password is
checked (so a locked account gives no signal about the password tried). Keys are stored as the
SHA-256 of the normalized user name or address, never in plain text: a mistyped password in the
user name field does not end up readable in the store.

    >>> from allpayer.store import open_store
    >>> from allpayer.api.auth import Users
    >>> store = open_store("sqlite:///:memory:")
    >>> _ = Users(store)  # applies the users migrations, this table included
    >>> clock = [1000.0]
    >>> lim = LoginLimiter(store, now=lambda: clock[0])
    >>> for _ in range(ACCOUNT_FAILURES):
    ...     lim.failed("ana", "10.0.0.1")
    >>> lim.retry_after("ana", "10.0.0.2")
    900
    >>> clock[0] += ACCOUNT_LOCK_S
    >>> lim.retry_after("ana", "10.0.0.2")
    0
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
from typing import Callable, Iterator

from allpayer.store import Store

WINDOW_S = 15 * 60
ACCOUNT_FAILURES = 5
ACCOUNT_LOCK_S = 15 * 60
MAX_LOCK_S = 24 * 60 * 60
ADDRESS_FAILURES = 20
ADDRESS_LOCK_S = 15 * 60

LIMITER_MIGRATION = """
CREATE TABLE api_login_failures (
    scope VARCHAR(10) NOT NULL,
    key_sha256 VARCHAR(64) NOT NULL,
    failures BIGINT NOT NULL,
    window_start DOUBLE PRECISION NOT NULL,
    locked_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    locks BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key_sha256)
);
"""


class LoginThrottled(Exception):
    """Too many failed logins for this account or address; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def _key(scope: str, value: str) -> str:
    norm = value.strip().lower() if scope == "account" else value.strip()
    return hashlib.sha256(f"{scope}:{norm}".encode("utf-8")).hexdigest()


class LoginLimiter:
    """Counts failed logins per account and per client address in the store."""

    STRIPES = 64

    def __init__(self, store: Store, now: Callable[[], float] = time.time):
        self.store = store
        self.now = now
        self._stripes = [threading.Lock() for _ in range(self.STRIPES)]

    @contextlib.contextmanager
    def one_at_a_time(self, username: str | None, address: str | None) -> Iterator[None]:
        """Hold the account's and the address's turn for a login's check, password and count, so
        that guesses sent at once are counted one after the other instead of all passing the check
        before the first failure is counted (in this process; each server process at most one
        more). Locks are striped by key (a fixed number, whatever names are tried) and taken in
        order."""
        held = sorted({int(key[:8], 16) % self.STRIPES for _, key in self._scopes(username, address)})
        with contextlib.ExitStack() as stack:
            for i in held:
                stack.enter_context(self._stripes[i])
            yield

    def _scopes(self, username: str | None, address: str | None) -> list[tuple[str, str]]:
        """The counts a login touches; `username` None: the address's only (an API key's)."""
        out = [] if username is None else [("account", _key("account", username))]
        if address:
            out.append(("address", _key("address", address)))
        return out

    def retry_after(self, username: str | None, address: str | None) -> int:
        """Seconds until a login for `username` from `address` is accepted again (0: now)."""
        now = self.now()
        wait = 0.0
        for scope, key in self._scopes(username, address):
            rows = self.store.query("SELECT locked_until FROM api_login_failures WHERE scope = ? AND key_sha256 = ?",
                                    (scope, key))
            if rows and rows[0][0] > now:
                wait = max(wait, rows[0][0] - now)
        return int(math.ceil(wait))

    def check(self, username: str | None, address: str | None) -> None:
        wait = self.retry_after(username, address)
        if wait > 0:
            raise LoginThrottled(wait)

    def failed(self, username: str | None, address: str | None) -> None:
        """Record a failed login; locks the account or address when its limit is reached."""
        now = self.now()
        with self.store.transaction():
            for scope, key in self._scopes(username, address):
                limit = ACCOUNT_FAILURES if scope == "account" else ADDRESS_FAILURES
                rows = self.store.query(
                    "SELECT failures, window_start, locked_until, locks FROM api_login_failures "
                    "WHERE scope = ? AND key_sha256 = ?", (scope, key))
                if not rows:
                    failures, start, locked, locks = 0, now, 0.0, 0
                else:
                    failures, start, locked, locks = rows[0]
                    if now - start > WINDOW_S:
                        failures, start = 0, now
                failures += 1
                if failures >= limit:
                    if scope == "account":
                        lock_s = min(MAX_LOCK_S, ACCOUNT_LOCK_S * 2 ** min(locks, 16))
                    else:
                        lock_s = ADDRESS_LOCK_S
                    locked, locks, failures, start = now + lock_s, locks + 1, 0, now
                if rows:
                    self.store.execute(
                        "UPDATE api_login_failures SET failures = ?, window_start = ?, locked_until = ?, locks = ? "
                        "WHERE scope = ? AND key_sha256 = ?", (failures, start, locked, locks, scope, key))
                else:
                    self.store.execute(
                        "INSERT INTO api_login_failures (scope, key_sha256, failures, window_start, locked_until, locks) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (scope, key, failures, start, locked, locks))

    def succeeded(self, username: str) -> None:
        """A right password: the account's failures and lock history are cleared (the
        address's count is kept)."""
        self.store.execute("DELETE FROM api_login_failures WHERE scope = 'account' AND key_sha256 = ?",
                           (_key("account", username),))

    def unlock(self, username: str) -> bool:
        """Lift an account's lock (``allpayer users unlock``); True when there was one."""
        key = _key("account", username)
        n = self.store.query("SELECT count(*) FROM api_login_failures WHERE scope = 'account' AND key_sha256 = ?", (key,))
        self.store.execute("DELETE FROM api_login_failures WHERE scope = 'account' AND key_sha256 = ?", (key,))
        return bool(n[0][0])
