"""Cross-site request forgery (CSRF) protection for cookie sessions.

A browser sends the ``allpayer_session`` cookie with every request to the server, including
requests that another site makes it send. So every state-changing request (any method other
than GET, HEAD, OPTIONS) that is authenticated by that cookie must also carry a token that only
pages of this server know:

- **session token**: ``HMAC-SHA256(session token, "allpayer-csrf-v1")``, hex. It is derived from
  the session token, which is in an HttpOnly cookie another site cannot read, so it needs no
  storage, holds in every worker process and survives restarts; it changes with every session.
  Pages put it in their forms (field ``csrf_token``); a script sends it as ``X-CSRF-Token`` (it is
  returned by ``GET /api/v1/me`` to a cookie-authenticated caller).
- **login form** (no session yet, against login CSRF): a double-submit token. ``GET /login`` sets
  the random ``allpayer_csrf`` cookie (HttpOnly, SameSite=Strict) and puts the same value in the
  form; ``POST /login`` is refused unless both are present and equal.

Requests authenticated by ``X-API-Key`` or ``Authorization: Bearer`` need no token: a browser never
adds those headers on its own, and a cross-site page cannot add them without a CORS preflight,
which this server does not allow. As a second line, an unsafe request whose ``Origin`` header
names another origin is refused whatever its authentication.

    >>> t = session_csrf("abc")
    >>> len(t), t == session_csrf("abc"), t == session_csrf("abd")
    (64, True, False)
    >>> valid_session_csrf("abc", t), valid_session_csrf("abc", ""), valid_session_csrf("abc", None)
    (True, False, False)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CSRF_COOKIE = "allpayer_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def session_csrf(session_token: str) -> str:
    """The CSRF token of a session."""
    return hmac.new(session_token.encode("utf-8"), b"allpayer-csrf-v1", hashlib.sha256).hexdigest()


def valid_session_csrf(session_token: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session_csrf(session_token), str(sent))


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def valid_double_submit(cookie: str | None, field: str | None) -> bool:
    return bool(cookie) and bool(field) and hmac.compare_digest(str(cookie), str(field))


def same_origin(origin: str | None, scheme: str, host: str | None) -> bool:
    """True when there is no Origin header or it names this server (scheme://host[:port])."""
    if origin is None:
        return True
    if not host:
        return False
    return origin.rstrip("/").lower() == f"{scheme}://{host}".lower()
