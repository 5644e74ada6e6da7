"""The FastAPI application: `create_app(db, store_url=None)`.

JSON API under ``/api/v1`` (OpenAPI at ``/openapi.json``), the web dashboard at ``/``. Every
request is authenticated (except login, the OpenAPI document and static files), scoped by
`allpayer.api.tenancy` and written to the audit log (`allpayer.api.audit`). Errors are
``application/problem+json`` (RFC 9457).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import mimetypes
import os
import threading
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from allpayer import runs
from allpayer.api import csrf, paging, tenancy
from allpayer.api.audit import Audit, log
from allpayer.api.auth import Principal, Users
from allpayer.api.ratelimit import LoginLimiter, LoginThrottled
from allpayer.api.snapshot import ResponseCache, Snapshot, _identity, jsonable
from allpayer.ledger import Ledger, LedgerError
from allpayer.store import default_store_url, open_store

SESSION_COOKIE = "allpayer_session"
PROBLEM = "application/problem+json"
MAX_LIMIT = 1000
# What a run's parameters tell a role outside the ACO: which run it is. The rest are the ACO's
# inputs: the files read (paths on the server) and, for a settlement, each program's participant
# revenue and benchmark reports.
RUN_PARAMETERS_SHOWN = ("as_of_load", "period", "stage", "through", "version", "year")


def encode(data: Any) -> bytes:
    """Compact JSON of an answer already made of JSON types (`jsonable`)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def check_text(value: Any, what: str) -> None:
    """Refuse control characters in an identifier or filter (422): they never occur in ids."""
    if isinstance(value, str) and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise HTTPException(422, f"{what}: control characters are not allowed")


def problem(status: int, title: str, detail: str = "") -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class LoginBody(BaseModel):
    username: str = Field(..., max_length=100)
    password: str = Field(..., max_length=200)


class Compiled(NamedTuple):
    """A scoped, filtered list question as SQL (see `compile_query` in `create_app`)."""

    count_sql: str
    base_sql: str
    keys: tuple[str, ...]
    kinds: tuple[str, ...]


QUERY_SLOTS_ENV = "ALLPAYER_SERVE_QUERY_SLOTS"


def query_slot_count() -> int:
    """How many page queries a server process runs on the snapshot at once
    (``ALLPAYER_SERVE_QUERY_SLOTS``; default: the number of CPUs). Under more concurrent
    requests than that, the others wait their turn instead of all sharing the CPUs and all
    finishing late."""
    value = os.environ.get(QUERY_SLOTS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{QUERY_SLOTS_ENV}={value!r}: expected a whole number of at least 1")
        return int(value)
    return max(1, os.cpu_count() or 1)


def reports_dir(db: Path) -> Path:
    return db.with_name(db.name + ".reports")


def create_app(db: str | Path, store_url: str | None = None) -> FastAPI:
    db = Path(db).expanduser().absolute()
    store = open_store(store_url or default_store_url(db))
    users = Users(store)
    audit = Audit(store)
    limiter = LoginLimiter(store)
    snap = Snapshot(db)
    cursors = paging.Cursors(paging.store_secret(store))
    in_flight: dict[tuple, asyncio.Future] = {}  # list pages being computed (event loop only)
    query_slots = threading.BoundedSemaphore(query_slot_count())

    async def csrf_guard(request: Request) -> None:
        """Refuse a state-changing request that another site could have made the browser send:
        a foreign ``Origin``, or a session cookie without the session's CSRF token (see
        `allpayer.api.csrf`). The login form checks its own double-submit token."""
        if request.method in csrf.SAFE_METHODS:
            return
        if not csrf.same_origin(request.headers.get("origin"), request.url.scheme, request.headers.get("host")):
            raise HTTPException(403, "cross-origin request refused")
        if request.url.path == "/login":
            return
        if request.headers.get("x-api-key") or request.headers.get("authorization", "").lower().startswith("bearer "):
            return  # authenticated by the header alone (`identify`), which a browser never adds on its own
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return  # not cookie-authenticated: the route answers 401 if it needs a user
        sent = request.headers.get(csrf.CSRF_HEADER)
        if not sent and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get(csrf.CSRF_FIELD)
        if not csrf.valid_session_csrf(cookie, sent if isinstance(sent, str) else None):
            raise HTTPException(403, "missing or wrong CSRF token (send X-CSRF-Token or the form's csrf_token)")

    app = FastAPI(title="allpayer API", version="1", description="Per-organization access to allpayer results.",
                  docs_url="/api/docs", redoc_url=None, dependencies=[Depends(csrf_guard)])
    app.state.db, app.state.store, app.state.users, app.state.audit, app.state.snapshot = db, store, users, audit, snap
    app.state.limiter = limiter

    # -- errors as problem+json ---------------------------------------------------------------
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code in (302, 303) and exc.headers:
            return JSONResponse({}, status_code=exc.status_code, headers=exc.headers)
        titles = {401: "Unauthenticated", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
                  429: "Too many requests"}
        resp = problem(exc.status_code, titles.get(exc.status_code, "Request rejected"), str(exc.detail or ""))
        if exc.status_code == 429 and exc.headers and "Retry-After" in exc.headers:
            resp.headers["Retry-After"] = exc.headers["Retry-After"]
        if exc.status_code == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        return resp

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        fields = ", ".join(".".join(str(x) for x in e.get("loc", ())) for e in exc.errors())
        return problem(422, "Invalid request", f"invalid parameters: {fields}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        return problem(500, "Internal error", "the server failed on this request; it has been logged")

    # -- audit of every request ----------------------------------------------------------------
    async def audited(scope, receive, send, inner) -> None:
        """Run the app on one HTTP request and write its audit row once it is answered (a pure
        ASGI wrapper: no extra task or stream per request). The row is committed before the
        response's last bytes are sent, so an answered request always has its row."""
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        status = [500]
        started = [False]
        final: list[dict] = []

        async def send_tracked(message) -> None:
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                final.append(message)  # held back until the audit row is committed
                return
            await send(message)

        try:
            await inner(scope, receive, send_tracked)
        except Exception as exc:  # noqa: BLE001 - answered here so that no traceback (which may
            # quote a query and its filter values) reaches the server log
            route = scope.get("route")
            log.error("%s %s failed: %s", scope.get("method"), getattr(route, "path", "(no route)"), type(exc).__name__)
            await write_audit(scope, 500)
            if started[0]:
                raise
            await problem(500, "Internal error", "the server failed on this request")(scope, receive, send)
            return
        await write_audit(scope, status[0])
        if final:
            await send(final[0])

    async def write_audit(scope, status: int) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "(no route)"
        if template.startswith("/static"):
            return
        # committed by the audit writer thread (group commit), never on the event loop
        await audit.awrite(principal=(scope.get("state") or {}).get("principal"), method=scope.get("method", ""),
                           route=template, status=status)

    class AuditMiddleware:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            await audited(scope, receive, send, self.inner)

    app.add_middleware(AuditMiddleware)

    # -- authentication ------------------------------------------------------------------------
    def identify(request: Request) -> Principal | None:
        key = request.headers.get("x-api-key")
        if key:
            return users.principal_for_key(key)
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return users.principal_for_token(auth[7:].strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return users.principal_for_token(cookie)
        return None

    async def principal(request: Request) -> Principal:
        """The caller (401 without valid credentials). A recently verified API key is looked up
        in memory on the event loop; anything else (scrypt, a session in the store) in a worker
        thread."""
        key = request.headers.get("x-api-key")
        p = users.cached_key(key) if key else None
        try:
            if p is None and key:
                p = await run_in_threadpool(verify_key, key, client_address(request))
            elif p is None:
                p = await run_in_threadpool(identify, request)
        except LoginThrottled as exc:
            raise HTTPException(429, "too many failed API keys from this address; try again later",
                                headers={"Retry-After": str(exc.retry_after)}) from None
        if p is None:
            raise HTTPException(401, "send an API key (X-API-Key) or a session token (Authorization: Bearer)")
        request.state.principal = p
        return p

    def verify_key(key: str, address: str | None) -> Principal | None:
        """The key's principal, or None for a wrong key; raises `LoginThrottled` (before the key's
        secret is hashed) while the address is locked. Wrong keys count against the address only,
        as failed logins do (`ratelimit`): each one costs a scrypt hash, and a key id's count would
        let anyone lock a machine's key out."""
        with limiter.one_at_a_time(None, address):
            limiter.check(None, address)
            p = users.principal_for_key(key)
            if p is None:
                limiter.failed(None, address)
        return p

    app.state.identify = identify

    # -- data access ----------------------------------------------------------------------------
    def current() -> Any:
        with snap.lock:
            return snap.context()

    def cache_key(ctx, p: Principal, *question) -> tuple:
        """Key of a cached answer: the snapshot, the caller's tenant scope (role and
        organization: all that `tenancy.scoped` reads of the caller) and the question."""
        return (ctx.snapshot_id, p.role, p.org_id, *question)

    def query(p: Principal, dataset: str, filters: dict[str, Any], limit: int, offset: int,
              cursor: str | None = None, request: Request | None = None) -> Response:
        """`query_page` as a response (with its Link header)."""
        return page_response(query_page(p, dataset, filters, limit, offset, cursor), request)

    def query_page(p: Principal, dataset: str, filters: dict[str, Any], limit: int, offset: int,
                   cursor: str | None = None) -> tuple[bytes, str | None]:
        """One page of a scoped dataset as JSON: the rows after `cursor` (keyset paging, see
        `allpayer.api.paging`) or from `offset`, in the dataset's total key order, with ``next``
        (the cursor of the following page, also sent as a ``Link: <...>; rel="next"`` header).
        A published snapshot never changes, so the answer is cached per snapshot, tenant scope,
        filters and page; the total (count) per snapshot, tenant scope and filters, so that a new
        page costs one page query."""
        for col, value in filters.items():
            check_text(value, col)
        if cursor is not None and offset:
            raise HTTPException(400, "send either cursor or offset, not both")
        ctx = current()
        if ctx is None:
            raise HTTPException(404, "no snapshot has been published yet")
        fkey = tuple(sorted((k, str(v)) for k, v in filters.items() if v is not None))
        compiled = compile_query(p, dataset, filters, ctx)
        after = read_cursor(p, dataset, fkey, compiled, cursor)
        key = cache_key(ctx, p, "dataset", dataset, fkey, limit, offset, after)
        hit = ctx.cache.get(key)
        if hit is None:
            # executed outside the lock, each on a pooled cursor, so requests run in parallel
            ckey = cache_key(ctx, p, "count", dataset, fkey)
            total = ctx.cache.get(ckey)
            sql, params = paging.page_sql(compiled.base_sql, compiled.keys, limit, offset, after)
            with query_slots:  # a few queries at a time, each finishing sooner, rather than all at once
                if total is None:
                    total = int(snap.run(ctx, compiled.count_sql)[0][0])
                    ctx.cache.put(ckey, total, 64)
                rows = snap.run(ctx, sql, as_dicts=True, params=params)
            nxt = None
            if len(rows) > limit:
                rows = rows[:limit]
                nxt = cursors.make(paging.query_id(dataset, p.role, p.org_id, fkey), [rows[-1][k] for k in compiled.keys])
            items = [jsonable(r) for r in rows]
            body = encode({"dataset": dataset, "total": total, "limit": limit,
                           "offset": offset if after is None else None, "next": nxt, "items": items})
            hit = (body, nxt)
            ctx.cache.put(key, hit, len(body))
        return hit

    def read_cursor(p: Principal, dataset: str, fkey: tuple, compiled: "Compiled", cursor: str | None) -> tuple | None:
        """The key values of `cursor` (None without one); 400 for a cursor not made for this
        question (dataset, tenant scope and filters)."""
        if cursor is None:
            return None
        try:
            return tuple(cursors.read(cursor, paging.query_id(dataset, p.role, p.org_id, fkey), compiled.kinds))
        except paging.BadCursor as exc:
            raise HTTPException(400, f"bad cursor: {exc}") from None

    def page_response(hit: tuple, request: Request | None) -> Response:
        body, nxt = hit
        headers = {"Link": f'<{next_url(request, nxt)}>; rel="next"'} if nxt and request is not None else None
        return Response(body, media_type="application/json", headers=headers)

    def cached_page(p: Principal, dataset: str, filters: dict[str, Any], limit: int, offset: int,
                    cursor: str | None, request: Request) -> Response | None:
        """The answer of `query` when it is already cached for the snapshot now published, else
        None. Touches no lock, no store and no database, so it runs on the event loop."""
        ctx = snap.peek()
        if ctx is None or (cursor is not None and offset):
            return None
        fkey = tuple(sorted((k, str(v)) for k, v in filters.items() if v is not None))
        compiled = ctx.__dict__.get("_sql_cache", {}).get(sql_key(p, dataset, filters))
        if compiled is None:
            return None
        after = read_cursor(p, dataset, fkey, compiled, cursor)
        hit = ctx.cache.get(cache_key(ctx, p, "dataset", dataset, fkey, limit, offset, after))
        return page_response(hit, request) if hit is not None else None

    async def list_page(p: Principal, dataset: str, filters: dict[str, Any], limit: int, offset: int,
                        cursor: str | None, request: Request) -> Response:
        """`query` for the list routes: a cached page is answered on the event loop, any other in
        a worker thread (the database is never queried on the loop)."""
        for col, value in filters.items():
            check_text(value, col)
        cached = cached_page(p, dataset, filters, limit, offset, cursor, request)
        if cached is not None:
            return cached
        # one computation per question at a time: requests for a page being computed wait for it
        flight = (p.role, p.org_id, dataset, tuple(sorted((k, str(v)) for k, v in filters.items())), limit, offset,
                  cursor)
        pending = in_flight.get(flight)
        if pending is not None:
            return page_response(await asyncio.shield(pending), request)
        pending = in_flight[flight] = asyncio.get_running_loop().create_future()
        pending.add_done_callback(lambda f: f.cancelled() or f.exception())  # read by waiters, if any
        try:
            hit = await run_in_threadpool(query_page, p, dataset, filters, limit, offset, cursor)
        except BaseException as exc:
            pending.set_exception(exc if isinstance(exc, Exception) else RuntimeError("request cancelled"))
            raise
        finally:
            in_flight.pop(flight, None)
        pending.set_result(hit)
        return page_response(hit, request)

    def sql_key(p: Principal, dataset: str, filters: dict[str, Any]) -> tuple:
        return (p.role, p.org_id, dataset, tuple(sorted((k, str(v)) for k, v in filters.items())))

    def next_url(request: Request, nxt: str) -> str:
        """The request's path and query with ``cursor`` set to `nxt` (and no offset)."""
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "offset")]
        return f"{request.url.path}?{urlencode([*params, ('cursor', nxt)])}"

    app.state.query = query

    def compile_query(p: Principal, dataset: str, filters: dict[str, Any], ctx) -> "Compiled":
        """The scoped, filtered question as SQL: its count, its rows (unordered: `paging`
        orders and pages them) and its key columns with their types. Compiled once per snapshot,
        scope and filters (refusals are not cached), so a new page costs no compilation."""
        sql_cache = ctx.__dict__.setdefault("_sql_cache", {})
        key = sql_key(p, dataset, filters)
        hit = sql_cache.get(key)
        if hit is None:
            with snap.lock:
                if len(sql_cache) > 5000:
                    sql_cache.clear()
                sql_cache[key] = hit = _compile_query(p, dataset, filters, ctx)
        return hit

    def _compile_query(p: Principal, dataset: str, filters: dict[str, Any], ctx) -> "Compiled":
        with snap.lock:
            try:
                t = tenancy.scoped(p, dataset, ctx)
            except tenancy.Denied:
                raise HTTPException(403, f"role {p.role} may not read {dataset}") from None
            except tenancy.NotAvailable as exc:
                raise HTTPException(404, f"{dataset}: table {exc} is not in the published snapshot yet") from None
            for col, value in filters.items():
                if value is None:
                    continue
                if col == "performance_year" and col not in t.columns and "year" in t.columns:
                    col = "year"
                if col not in t.columns:
                    raise HTTPException(400, f"{dataset} cannot be filtered by {col}")
                t = t.filter(t[col] == value)
            keys = tuple(k for k in tenancy.DATASETS[dataset].keys if k in t.columns)
            kinds = tuple(paging.kind_of(t.schema()[k]) for k in keys)
            return Compiled(ctx.con.compile(t.count()), ctx.con.compile(t), keys, kinds)

    Limit = Query(100, ge=1, le=MAX_LIMIT, description="Rows per page (at most 1000).")
    Offset = Query(0, ge=0, le=10**9, description="Rows to skip (the cost grows with it; prefer `cursor`).")
    Cursor = Query(None, max_length=2000, description="Keyset paging: the `next` cursor of the previous page "
                   "(also in its `Link: rel=\"next\"` header); the rows after it in the list's key order. "
                   "Not with `offset`. A cursor works only for the filters and user it was made for.")
    Program = Query(None, max_length=100, description="Only this program.")
    Year = Query(None, ge=1900, le=2200, description="Only this performance year.")

    def client_address(request: Request) -> str | None:
        return request.client.host if request.client else None

    def attempt_login(username: str, password: str, address: str | None) -> str | None:
        """A session token, or None for a wrong user name or password; raises `LoginThrottled`
        (before the password is checked) while the account or the address is locked."""
        with limiter.one_at_a_time(username, address):
            limiter.check(username, address)
            token = users.login(username, password)
            if token is None:
                limiter.failed(username, address)
            else:
                limiter.succeeded(username)
        return token

    app.state.attempt_login = attempt_login
    app.state.client_address = client_address

    # -- auth routes -----------------------------------------------------------------------------
    @app.post("/api/v1/login", tags=["auth"], summary="Log in with a user name and password; returns a session token.",
              responses={429: {"description": "Too many failed logins for this user name or address; see Retry-After."}})
    def login(body: LoginBody, request: Request):
        try:
            token = attempt_login(body.username, body.password, client_address(request))
        except LoginThrottled as exc:
            raise HTTPException(429, "too many failed logins; try again later",
                                headers={"Retry-After": str(exc.retry_after)}) from None
        if token is None:
            raise HTTPException(401, "wrong user name or password")
        p = users.get(body.username)
        return {"token": token, "token_type": "bearer", "username": p.username, "role": p.role, "org_id": p.org_id}

    @app.post("/api/v1/logout", tags=["auth"], summary="End the current session.")
    def logout(request: Request, p: Principal = Depends(principal)):
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.cookies.get(SESSION_COOKIE)
        if token:
            users.logout(token)
        return {"ok": True}

    @app.get("/api/v1/me", tags=["auth"], summary="Who the caller is (and, for a session cookie, its CSRF token).")
    async def me(request: Request, p: Principal = Depends(principal)):
        out = {"username": p.username, "role": p.role, "org_id": p.org_id, "auth": p.auth}
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and not request.headers.get("x-api-key") and \
                not request.headers.get("authorization", "").lower().startswith("bearer "):
            out["csrf_token"] = csrf.session_csrf(cookie)
        return out

    # -- runs --------------------------------------------------------------------------------------
    @app.get("/api/v1/runs", tags=["runs"], summary="Published runs of the snapshot, oldest first.")
    def list_runs(p: Principal = Depends(principal)):
        ctx = current()
        key = cache_key(ctx, p, "runs") if ctx is not None else None
        body = ctx.cache.get(key) if ctx is not None else None
        if body is None:
            with snap.lock:
                recs = runs.published_runs(db) if db.exists() else []
            keep = ("run_id", "seq", "kind", "status", "started_at", "finished_at", "code_version", "paid_through", "parameters")
            items = [jsonable({k: r.get(k) for k in keep}) for r in recs]
            if p.role not in tenancy.ACO:  # the ACO's inputs (server paths, programs' revenue) are its own
                for item in items:
                    params = item["parameters"] if isinstance(item["parameters"], dict) else {}
                    item["parameters"] = {k: v for k, v in params.items() if k in RUN_PARAMETERS_SHOWN}
            body = encode({"items": items, "total": len(recs)})
            if ctx is not None and _identity(db) == ctx.snapshot_ident:
                ctx.cache.put(key, body)
        return Response(body, media_type="application/json")

    # -- datasets ------------------------------------------------------------------------------------
    @app.get("/api/v1/rosters", tags=["attribution"], summary="Attribution roster rows (member level).")
    async def rosters(request: Request, p: Principal = Depends(principal), program_id: str | None = Program, performance_year: int | None = Year,
                month: dt.date | None = Query(None, description="First day of a month."),
                practice_id: str | None = Query(None, max_length=100, description="Only this practice."),
                limit: int = Limit, offset: int = Offset, cursor: str | None = Cursor):
        return await list_page(p, "rosters", {"program_id": program_id, "performance_year": performance_year,
                                              "month": month, "practice_id": practice_id}, limit, offset, cursor, request)

    Person = Query(None, max_length=100, description="Only this person (person_id).")
    ScoredFor = Query(None, pattern="^(performance_year|base_year)$",
                      description="performance_year, or base_year (scored with the performance year's model).")

    @app.get("/api/v1/risk/scores", tags=["risk"],
             summary="CMS-HCC risk scores of the performance year's and base years' members (member level).")
    async def risk_scores(request: Request, p: Principal = Depends(principal), program_id: str | None = Program,
                          performance_year: int | None = Year, scored_for: str | None = ScoredFor,
                          person_id: str | None = Person,
                          limit: int = Limit, offset: int = Offset, cursor: str | None = Cursor):
        return await list_page(p, "risk_scores", {"program_id": program_id, "performance_year": performance_year,
                                                  "scored_for": scored_for, "person_id": person_id},
                               limit, offset, cursor, request)

    @app.get("/api/v1/risk/factors", tags=["risk"],
             summary="The factors of each risk score: demographic cell, HCCs, interactions, HCC count (member level).")
    async def risk_factors(request: Request, p: Principal = Depends(principal), program_id: str | None = Program,
                           performance_year: int | None = Year, scored_for: str | None = ScoredFor,
                           person_id: str | None = Person,
                           model_version: str | None = Query(None, max_length=10, description="Only this model (V24, V28, E24)."),
                           limit: int = Limit, offset: int = Offset, cursor: str | None = Cursor):
        return await list_page(p, "risk_factors", {"program_id": program_id, "performance_year": performance_year,
                                                   "scored_for": scored_for, "person_id": person_id,
                                                   "model_version": model_version}, limit, offset, cursor, request)

    @app.get("/api/v1/care-gaps", tags=["quality"], summary="Open care gaps for outreach (member level).")
    async def care_gaps(request: Request, p: Principal = Depends(principal), program_id: str | None = Program,
                  practice_id: str | None = Query(None, max_length=100, description="Only this practice."),
                  limit: int = Limit, offset: int = Offset, cursor: str | None = Cursor):
        return await list_page(p, "care_gaps", {"program_id": program_id, "practice_id": practice_id}, limit, offset,
                               cursor, request)

    @app.get("/api/v1/claims", tags=["claims"], summary="Medical claim lines (member level; opted-out members and Part 2 claims withheld).")
    async def claims(request: Request, p: Principal = Depends(principal),
               payer: str | None = Query(None, max_length=100, description="Only this payer."),
               limit: int = Limit, offset: int = Offset, cursor: str | None = Cursor):
        return await list_page(p, "claims", {"payer": payer}, limit, offset, cursor, request)

    def simple(dataset: str, path: str, tag: str, summary: str):
        async def handler(request: Request, p: Principal = Depends(principal), program_id: str | None = Program,
                    performance_year: int | None = Year, limit: int = Limit, offset: int = Offset,
                    cursor: str | None = Cursor):
            return await list_page(p, dataset, {"program_id": program_id, "performance_year": performance_year}, limit,
                                   offset, cursor, request)

        handler.__name__ = f"get_{dataset}"
        app.get(path, tags=[tag], summary=summary, name=dataset)(handler)

    simple("tcoc", "/api/v1/tcoc", "tcoc", "Total cost of care per program and year.")
    simple("high_cost_claimants", "/api/v1/tcoc/high-cost-claimants", "tcoc",
           "Members whose cost in a program's year reaches the run's high-cost threshold, costliest first "
           "(member level; persons who opted out of data sharing or have a Part 2 claim withheld).")
    simple("targets", "/api/v1/targets", "targets", "Targets (expected cost) per program and year.")
    simple("quality_rates", "/api/v1/quality/rates", "quality", "Quality measure rates by level.")
    simple("quality_scores", "/api/v1/quality/scores", "quality", "Program quality scores.")
    simple("fixed_payment_performance", "/api/v1/payments/fixed-performance", "payments",
           "Fixed prospective payments vs shadow claims per hospital.")
    simple("settlements", "/api/v1/settlements", "settlements", "Settlement statements per program, year and version.")
    simple("distribution", "/api/v1/settlements/distribution", "settlements", "Distribution to participants.")

    @app.get("/api/v1/settlements/lines", tags=["settlements"], summary="Named settlement lines.")
    async def settlement_lines(request: Request, p: Principal = Depends(principal), program_id: str | None = Program,
                         performance_year: int | None = Year,
                         version: str | None = Query(None, max_length=40, description="Only this version."),
                         limit: int = Limit, offset: int = Offset, cursor: str | None = Cursor):
        return await list_page(p, "settlement_lines", {"program_id": program_id, "performance_year": performance_year,
                                                       "version": version}, limit, offset, cursor, request)

    @app.get("/api/v1/payments/fpp", tags=["payments"], summary="Fixed prospective payments per hospital and month.")
    async def fpp(request: Request, p: Principal = Depends(principal), program_id: str | None = Program,
            hospital_id: str | None = Query(None, max_length=100, description="Only this hospital."),
            limit: int = Limit, offset: int = Offset, cursor: str | None = Cursor):
        return await list_page(p, "fpp_payments", {"program_id": program_id, "hospital_id": hospital_id}, limit,
                               offset, cursor, request)

    @app.get("/api/v1/payments/invoices", tags=["payments"], summary="Value Payment PMPM invoices per employer and month.")
    async def invoices(request: Request, p: Principal = Depends(principal), program_id: str | None = Program,
                 employer_id: str | None = Query(None, max_length=100, description="Only this employer."),
                 limit: int = Limit, offset: int = Offset, cursor: str | None = Cursor):
        return await list_page(p, "invoices", {"program_id": program_id, "employer_id": employer_id}, limit, offset,
                               cursor, request)

    @app.get("/api/v1/employers/{employer_id}/summary", tags=["employers"],
             summary="An employer's summary: member months and invoiced amounts by program and month (cells under 11 suppressed).")
    def employer_summary(employer_id: str, p: Principal = Depends(principal)):
        check_text(employer_id, "employer_id")
        if not tenancy.may_see_org_page(p, "employer", employer_id):
            raise HTTPException(403, "not this organization's data")
        ctx = current()
        if ctx is not None and ctx.has("employer_group"):
            key = (ctx.snapshot_id, "employer_ids")  # the snapshot's employers, read once
            known = ctx.cache.get(key)
            if known is None:
                with snap.lock:
                    eg = ctx.table("employer_group")
                    known = frozenset(ctx.con.to_pyarrow(eg.select("employer_id").distinct()).column(0).to_pylist())
                ctx.cache.put(key, known, 64 * max(len(known), 1))
            if employer_id not in known:
                raise HTTPException(404, "no such employer in this snapshot")  # the id is not echoed
        return Response(encode(employer_summary_data(p, employer_id)), media_type="application/json")

    def cached_copy(ctx, key, compute) -> dict:
        """A summary answer of this snapshot and scope: computed once, then served from the
        snapshot's cache (as a copy, since callers may change what they get)."""
        hit = ctx.cache.get(key)
        if hit is None:
            hit = compute()
            ctx.cache.put(key, hit, 4096)
        return copy.deepcopy(hit)

    def employer_summary_data(p: Principal, employer_id: str) -> dict:
        ctx = current()
        if ctx is None or not ctx.has("value_payment_invoices"):
            return {"employer_id": employer_id, "items": [], "totals": [], "suppressed_cells": 0}
        return cached_copy(ctx, cache_key(ctx, p, "employer_summary", employer_id),
                           lambda: _employer_summary(p, employer_id, ctx))

    def _employer_summary(p: Principal, employer_id: str, ctx) -> dict:
        """The employer's invoices by program and month as its report shows them, whoever asks
        (the ACO sees what the employer sees): the report's joint suppression decides which
        months and totals are shown (`tenancy.employer_invoice_months_shown`, `employer_disclosure`)."""
        with snap.lock:
            t = tenancy.scoped(p, "invoices", ctx)
            t = t.filter(t.employer_id == employer_id)
            shown = tenancy.employer_invoice_months_shown(ctx, employer_id, t)
            g = t.group_by("program_id", "performance_year", "month").aggregate(
                member_months=t.member_months.sum(), amount_cents=t.amount_cents.sum())
            rows = ctx.con.to_pyarrow(g.order_by(["program_id", "month"])).to_pylist()
            totals = {}
            for program in {r["program_id"] for r in rows}:
                years = {r["performance_year"] for r in rows if r["program_id"] == program}
                d = tenancy.employer_disclosure(ctx, employer_id, years.pop()) if len(years) == 1 else None
                alone = d is not None and {r["program_id"] for r in rows if r["performance_year"] == d.period.year} == {program}
                totals[program] = (sum(int(i["member_months"]) for i in d.invoices),
                                   sum(int(i["amount_cents"]) for i in d.invoices)) \
                    if alone and d.invoice_total_shown else None
        return {"employer_id": employer_id, **summary_as_reported(rows, shown, totals)}

    app.state.employer_summary = employer_summary_data

    @app.get("/api/v1/ledger/balances", tags=["ledger"], summary="Ledger balances per account and period.")
    def ledger_balances(p: Principal = Depends(principal),
                        period: str | None = Query(None, max_length=7, description="YYYY, YYYY-Qn or YYYY-MM."),
                        program_id: str | None = Program):
        try:
            account = tenancy.ledger_account_filter(p)
        except tenancy.Denied:
            raise HTTPException(403, f"role {p.role} may not read ledger balances") from None
        try:
            rows = Ledger(store).balances(period, account, program_id=program_id)
        except LedgerError:  # its message quotes the value; answers never echo a caller's values
            raise HTTPException(400, "period: give YYYY, YYYY-Qn or YYYY-MM") from None
        items = [{"account": b.account, "period": b.period, "debit_cents": b.debit_cents,
                  "credit_cents": b.credit_cents, "balance_cents": b.balance_cents} for b in rows]
        if p.role == "employer":
            items = employer_balances(p, items)
        return {"items": items, "total": len(items)}

    def employer_balances(p: Principal, items: list[dict]) -> list[dict]:
        """An employer's balances with the months its report hides withheld: a month's balance is
        that month's invoice, whose amount over the PMPM is the invoiced member months."""
        ctx = current()
        shown = set()
        if ctx is not None:
            with snap.lock:
                shown = tenancy.employer_ledger_months_shown(ctx, p.org_id or "")
        out = []
        for b in items:
            hidden = len(b["period"]) == 7 and b["period"][4] == "-" and b["period"] not in shown  # YYYY-MM
            out.append({**b, "suppressed": hidden,
                        **({"debit_cents": None, "credit_cents": None, "balance_cents": None} if hidden else {})})
        return out

    @app.get("/api/v1/overview", tags=["overview"], summary="Lives, PMPM vs target and settlement forecast per program.")
    async def overview(p: Principal = Depends(principal), performance_year: int | None = Year):
        ctx = snap.peek()
        key = cache_key(ctx, p, "overview_json", performance_year) if ctx is not None else None
        body = ctx.cache.get(key) if ctx is not None else None
        if body is None:
            body = await run_in_threadpool(lambda: encode(overview_data(p, performance_year)))
            if ctx is not None and snap.peek() is ctx:
                ctx.cache.put(key, body)
        return Response(body, media_type="application/json")

    def overview_data(p: Principal, year: int | None) -> dict:
        """Per program and year: member months, average lives (member months / 12), TCOC on the
        fee-for-service basis (`ffs_paid_cents`) and its PMPM, the target and its PMPM (where the
        role may read targets), and the net of the latest settlement statement (the forecast).
        Read from the stored summary tables (``tcoc_summary``, ``targets``,
        ``settlement_statements``) and cached per snapshot and tenant scope."""
        ctx = current()
        if ctx is None:
            return {"items": []}
        return cached_copy(ctx, cache_key(ctx, p, "overview", year), lambda: _overview(p, year, ctx))

    def _overview(p: Principal, year: int | None, ctx) -> dict:
        with snap.lock:
            try:
                tc = tenancy.scoped(p, "tcoc", ctx)
            except tenancy.NotAvailable:
                return {"items": []}
            except tenancy.Denied:
                raise HTTPException(403, f"role {p.role} sees no program overview") from None
            if p.role in (*tenancy.ACO, "payer", "regulator"):
                tc = tenancy.program_totals(tc)
            if year is not None:
                tc = tc.filter(tc.year == year)
            g = tc.group_by("program_id", performance_year=tc.year).aggregate(
                member_months=tc.member_months.sum(), tcoc_cents=tc.ffs_paid_cents.sum())
            sql_rows = ctx.con.compile(g.order_by(["program_id", "performance_year"]))
            sql_targets = sql_settle = None
            if tenancy.allowed(p.role, "targets"):
                tg = tenancy.scoped(p, "targets", ctx)
                sql_targets = ctx.con.compile(
                    tg.group_by("program_id", "performance_year").aggregate(target_cents=tg.target_cents.sum()))
            if tenancy.allowed(p.role, "settlements") and ctx.has("settlement_statements"):
                st = tenancy.scoped(p, "settlements", ctx)
                sql_settle = ctx.con.compile(st.order_by(["program_id", "performance_year", "run_id"]))
        rows = [jsonable(r) for r in snap.run(ctx, sql_rows, as_dicts=True)]
        targets, forecast = {}, {}
        if sql_targets:
            for r in snap.run(ctx, sql_targets, as_dicts=True):
                targets[(r["program_id"], r["performance_year"])] = int(r["target_cents"])
        if sql_settle:
            for r in snap.run(ctx, sql_settle, as_dicts=True):
                forecast[(r["program_id"], r["performance_year"])] = jsonable(r)
        items = []
        for r in rows:
            # None where the query layer withholds the figure (an employer's report hides it)
            mm = None if r["member_months"] is None else int(r["member_months"])
            key = (r["program_id"], r["performance_year"])
            target = targets.get(key)
            s = forecast.get(key, {})
            items.append({
                "program_id": r["program_id"], "performance_year": r["performance_year"], "member_months": mm,
                "average_lives": _div(mm, 12), "tcoc_cents": None if r["tcoc_cents"] is None else int(r["tcoc_cents"]),
                "tcoc_pmpm_cents": _div(r["tcoc_cents"], mm), "target_cents": target,
                "target_pmpm_cents": _div(target, mm), "settlement_net_cents": s.get("net_cents"),
                "settlement_version": s.get("version"),
            })
        return {"items": items}

    app.state.overview = overview_data

    @app.get("/api/v1/reports", tags=["reports"], summary="Rendered reports of published runs that the caller may open.")
    async def list_reports(p: Principal = Depends(principal)):
        return Response(reports_cache.listing(p), media_type="application/json")

    @app.get("/api/v1/reports/{run_id}/{path:path}", tags=["reports"], summary="One rendered report file.")
    async def get_report(run_id: str, path: str, p: Principal = Depends(principal)):
        wanted = f"{run_id}/{path}"
        if wanted not in reports_cache.visible_paths(p):
            raise HTTPException(404, "no such report for this user")
        f = reports_dir(db) / wanted
        body = reports_cache.content(f)
        if body is None:  # too large to keep in memory
            return FileResponse(f)
        return Response(body, media_type=mimetypes.guess_type(f.name)[0] or "application/octet-stream")

    reports_cache = ReportsCache(reports_dir(db))

    def visible_reports(p: Principal) -> list[dict]:
        return reports_cache.visible(p)

    from allpayer.web.pages import register_pages

    register_pages(app)
    return app


def summary_as_reported(rows: list[dict], shown_months: set, totals: dict) -> dict:
    """An employer summary from its invoice `rows` (program_id, performance_year, month,
    member_months, amount_cents): a month's member months and amount are shown only when it is in
    `shown_months`, and a program's total only when `totals` gives it ((member months, amount), or
    None when hidden). Both decisions are the employer report's (`allpayer.reports.employer`), so
    that the summary shows nothing the report hides and no difference of what both show is a small
    count.

    >>> out = summary_as_reported(
    ...     [{"program_id": "p", "performance_year": 2024, "month": "2024-01-01", "member_months": 43, "amount_cents": 18060},
    ...      {"program_id": "p", "performance_year": 2024, "month": "2024-02-01", "member_months": 42, "amount_cents": 17640}],
    ...     {"2024-02-01"}, {"p": None})
    >>> [(r["member_months"], r["suppressed"]) for r in out["items"]], out["totals"][0]["suppressed"], out["suppressed_cells"]
    ([(None, True), (42, False)], True, 1)
    """
    items = []
    for r in rows:
        hidden = r["month"] not in shown_months
        items.append({**jsonable(r), "suppressed": hidden,
                      **({"member_months": None, "amount_cents": None} if hidden else {})})
    out_totals = []
    for program in sorted({r["program_id"] for r in rows}):
        total = totals.get(program)
        out_totals.append({"program_id": program, "member_months": None if total is None else total[0],
                           "amount_cents": None if total is None else total[1], "suppressed": total is None})
    return {"items": items, "totals": out_totals, "suppressed_cells": sum(1 for r in items if r["suppressed"])}


def report_files(root: Path) -> list[dict]:
    """The files of every rendered run under `root` (``<db>.reports``), from each run's
    ``index.json`` (written by `allpayer.reports.publish.render_all`): path (``<run_id>/<file>``),
    run_id, kind, organization, title, format. A run's own index files have kind ``index``.
    Folders being written (names starting with a dot) are skipped."""
    import json

    out: list[dict] = []
    if not root.is_dir():
        return out
    for run_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        try:
            index = json.loads((run_dir / "index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for name in ("index.html", "index.json"):
            if (run_dir / name).is_file():
                out.append({"path": f"{run_dir.name}/{name}", "run_id": run_dir.name, "kind": "index",
                            "organization": None, "title": "index", "format": name.rsplit(".", 1)[1]})
        for rep in index.get("reports", []):
            for fmt, rel in sorted((rep.get("files") or {}).items()):
                f = run_dir / rel
                if f.is_file() and f.resolve().is_relative_to(run_dir.resolve()):
                    out.append({"path": f"{run_dir.name}/{Path(rel).as_posix()}", "run_id": run_dir.name,
                                "kind": rep.get("kind"), "organization": rep.get("organization"),
                                "title": rep.get("title"), "format": fmt})
    return out


class ReportsCache:
    """`report_files` of a reports folder, read again only when the folder changed: a new run
    folder (renamed into place when its rendering is complete) or a rewritten ``index.json``."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._state: tuple | None = None
        self._files: list[dict] = []
        self._by_scope: dict[tuple, tuple] = {}
        self._contents = ResponseCache(max_bytes=64 * 1024 * 1024)

    def _current_state(self) -> tuple:
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError:
            return ()
        state = []
        for e in entries:
            if e.name.startswith(".") or not e.is_dir():
                continue
            try:
                st = os.stat(os.path.join(e.path, "index.json"))
                state.append((e.name, e.inode(), st.st_mtime_ns, st.st_size))
            except OSError:
                state.append((e.name, e.inode(), None, None))
        return tuple(state)

    def files(self) -> list[dict]:
        state = self._current_state()
        with self._lock:
            if state != self._state:
                self._files, self._state, self._by_scope = report_files(self.root), state, {}
            return self._files

    def _scoped(self, p: Principal) -> tuple:
        files = self.files()
        with self._lock:
            key = (p.role, p.org_id)
            hit = self._by_scope.get(key)
            if hit is None or hit[0] is not files:
                mine = [r for r in files if report_visible(p, r)]
                hit = self._by_scope[key] = (files, mine, frozenset(r["path"] for r in mine), encode({"items": mine}))
            return hit

    def visible(self, p: Principal) -> list[dict]:
        """The reports the caller's role and organization may open (`report_visible`)."""
        return list(self._scoped(p)[1])

    def visible_paths(self, p: Principal) -> frozenset[str]:
        return self._scoped(p)[2]

    def listing(self, p: Principal) -> bytes:
        """``{"items": visible(p)}`` as JSON (encoded once per scope and folder state)."""
        return self._scoped(p)[3]

    def content(self, f: Path, max_size: int = 4 * 1024 * 1024) -> bytes | None:
        """The bytes of a report file (written once when its run was published), kept in memory
        by path and file identity; None for a file over `max_size`."""
        try:
            st = os.stat(f)
        except OSError:
            raise HTTPException(404, "no such report for this user") from None
        if st.st_size > max_size:
            return None
        key = (str(f), st.st_ino, st.st_mtime_ns, st.st_size)
        body = self._contents.get(key)
        if body is None:
            body = f.read_bytes()
            self._contents.put(key, body)
        return body


def report_visible(p: Principal, report: dict) -> bool:
    """ACO roles see every report and index; the regulator sees the regulator's reports; an
    organization role sees the reports of its own kind and organization."""
    if p.role in tenancy.ACO:
        return True
    if report["kind"] == "index":
        return False
    if p.role == "regulator":
        return report["kind"] == "regulator"
    return report["kind"] == p.role and report["organization"] == p.org_id


def _div(cents, mm):
    """cents / mm rounded half up (None when either is missing or mm is 0)."""
    if cents is None or not mm:
        return None
    q, r = divmod(int(cents) * 2 + int(mm), int(mm) * 2)  # round half up
    return q


def app_from_env() -> FastAPI:
    """The app of ``allpayer serve --workers N`` (each worker process builds its own)."""
    import os

    return create_app(os.environ["ALLPAYER_SERVE_DB"], os.environ.get("ALLPAYER_SERVE_STORE"))
