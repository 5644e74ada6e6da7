"""The FastAPI application: `create_app(db, store_url=None)`.

JSON API under ``/api/v1`` (OpenAPI at ``/openapi.json``), the web dashboard at ``/``. Every
request is authenticated (except login, the OpenAPI document and static files), scoped by
`allpayer.api.tenancy` and written to the audit log (`allpayer.api.audit`). Errors are
``application/problem+json`` (RFC 9457).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from allpayer import runs
from allpayer.api import tenancy
from allpayer.api.audit import Audit, log
from allpayer.api.auth import Principal, Users
from allpayer.api.snapshot import Snapshot, jsonable
from allpayer.ledger import Ledger, LedgerError
from allpayer.store import default_store_url, open_store

SESSION_COOKIE = "allpayer_session"
PROBLEM = "application/problem+json"
MAX_LIMIT = 1000
SMALL_CELL = 11


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


def reports_dir(db: Path) -> Path:
    return db.with_name(db.name + ".reports")


def create_app(db: str | Path, store_url: str | None = None) -> FastAPI:
    db = Path(db).expanduser().absolute()
    store = open_store(store_url or default_store_url(db))
    users = Users(store)
    audit = Audit(store)
    snap = Snapshot(db)

    app = FastAPI(title="allpayer API", version="1", description="Per-organization access to allpayer results.",
                  docs_url="/api/docs", redoc_url=None)
    app.state.db, app.state.store, app.state.users, app.state.audit, app.state.snapshot = db, store, users, audit, snap

    # -- errors as problem+json ---------------------------------------------------------------
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code in (302, 303) and exc.headers:
            return JSONResponse({}, status_code=exc.status_code, headers=exc.headers)
        titles = {401: "Unauthenticated", 403: "Forbidden", 404: "Not found", 405: "Method not allowed"}
        resp = problem(exc.status_code, titles.get(exc.status_code, "Request rejected"), str(exc.detail or ""))
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
    @app.middleware("http")
    async def _audit(request: Request, call_next):
        status = 500
        try:
            try:
                response = await call_next(request)
            except Exception as exc:  # noqa: BLE001 - answered here so that no traceback (which
                # may quote a query and its filter values) reaches the server log
                route = request.scope.get("route")
                log.error("%s %s failed: %s", request.method, getattr(route, "path", "(no route)"), type(exc).__name__)
                response = problem(500, "Internal error", "the server failed on this request")
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "(no route)"
            if not template.startswith("/static"):
                audit.write(principal=getattr(request.state, "principal", None), method=request.method,
                            route=template, status=status)

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

    def principal(request: Request) -> Principal:
        p = identify(request)
        if p is None:
            raise HTTPException(401, "send an API key (X-API-Key) or a session token (Authorization: Bearer)")
        request.state.principal = p
        return p

    app.state.identify = identify

    # -- data access ----------------------------------------------------------------------------
    def query(p: Principal, dataset: str, filters: dict[str, Any], limit: int, offset: int) -> dict:
        for col, value in filters.items():
            check_text(value, col)
        with snap.lock:
            ctx = snap.context()
            if ctx is None:
                raise HTTPException(404, "no snapshot has been published yet")
            # compiled SQL of the same scoped question on the same snapshot is reused
            cache = ctx.__dict__.setdefault("_sql_cache", {})
            cache_key = (p.role, p.org_id, dataset, tuple(sorted((k, str(v)) for k, v in filters.items())), limit, offset)
            hit = cache.get(cache_key)
        if hit is not None:
            count_sql, page_sql = hit
        else:
            count_sql, page_sql = compile_query(p, dataset, filters, limit, offset, ctx)
            with snap.lock:
                if len(cache) > 5000:
                    cache.clear()
                cache[cache_key] = (count_sql, page_sql)
        # executed outside the lock, each on its own cursor, so requests run in parallel
        total = int(snap.run(ctx, count_sql)[0][0])
        items = [jsonable(r) for r in snap.run(ctx, page_sql, as_dicts=True)]
        return {"dataset": dataset, "total": total, "limit": limit, "offset": offset, "items": items}

    def compile_query(p: Principal, dataset: str, filters: dict[str, Any], limit: int, offset: int, ctx) -> tuple[str, str]:
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
            keys = [k for k in tenancy.DATASETS[dataset].keys if k in t.columns]
            page = t.order_by(keys).limit(limit, offset=offset) if keys else t.limit(limit, offset=offset)
            return ctx.con.compile(t.count()), ctx.con.compile(page)

    Limit = Query(100, ge=1, le=MAX_LIMIT, description="Rows per page (at most 1000).")
    Offset = Query(0, ge=0, le=10**9, description="Rows to skip.")
    Program = Query(None, max_length=100, description="Only this program.")
    Year = Query(None, ge=1900, le=2200, description="Only this performance year.")

    # -- auth routes -----------------------------------------------------------------------------
    @app.post("/api/v1/login", tags=["auth"], summary="Log in with a user name and password; returns a session token.")
    def login(body: LoginBody):
        token = users.login(body.username, body.password)
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

    @app.get("/api/v1/me", tags=["auth"], summary="Who the caller is.")
    def me(p: Principal = Depends(principal)):
        return {"username": p.username, "role": p.role, "org_id": p.org_id, "auth": p.auth}

    # -- runs --------------------------------------------------------------------------------------
    @app.get("/api/v1/runs", tags=["runs"], summary="Published runs of the snapshot, oldest first.")
    def list_runs(p: Principal = Depends(principal)):
        with snap.lock:
            recs = runs.published_runs(db) if db.exists() else []
        keep = ("run_id", "seq", "kind", "status", "started_at", "finished_at", "code_version", "paid_through", "parameters")
        return {"items": [jsonable({k: r.get(k) for k in keep}) for r in recs], "total": len(recs)}

    # -- datasets ------------------------------------------------------------------------------------
    @app.get("/api/v1/rosters", tags=["attribution"], summary="Attribution roster rows (member level).")
    def rosters(p: Principal = Depends(principal), program_id: str | None = Program, performance_year: int | None = Year,
                month: dt.date | None = Query(None, description="First day of a month."),
                practice_id: str | None = Query(None, max_length=100, description="Only this practice."),
                limit: int = Limit, offset: int = Offset):
        return query(p, "rosters", {"program_id": program_id, "performance_year": performance_year, "month": month,
                                    "practice_id": practice_id}, limit, offset)

    @app.get("/api/v1/care-gaps", tags=["quality"], summary="Open care gaps for outreach (member level).")
    def care_gaps(p: Principal = Depends(principal), program_id: str | None = Program,
                  practice_id: str | None = Query(None, max_length=100, description="Only this practice."),
                  limit: int = Limit, offset: int = Offset):
        return query(p, "care_gaps", {"program_id": program_id, "practice_id": practice_id}, limit, offset)

    @app.get("/api/v1/claims", tags=["claims"], summary="Medical claim lines (member level; opted-out members and Part 2 claims withheld).")
    def claims(p: Principal = Depends(principal), payer: str | None = Query(None, max_length=100, description="Only this payer."),
               limit: int = Limit, offset: int = Offset):
        return query(p, "claims", {"payer": payer}, limit, offset)

    def simple(dataset: str, path: str, tag: str, summary: str):
        def handler(p: Principal = Depends(principal), program_id: str | None = Program,
                    performance_year: int | None = Year, limit: int = Limit, offset: int = Offset):
            return query(p, dataset, {"program_id": program_id, "performance_year": performance_year}, limit, offset)

        handler.__name__ = f"get_{dataset}"
        app.get(path, tags=[tag], summary=summary, name=dataset)(handler)

    simple("tcoc", "/api/v1/tcoc", "tcoc", "Total cost of care per program and year.")
    simple("targets", "/api/v1/targets", "targets", "Targets (expected cost) per program and year.")
    simple("quality_rates", "/api/v1/quality/rates", "quality", "Quality measure rates by level.")
    simple("quality_scores", "/api/v1/quality/scores", "quality", "Program quality scores.")
    simple("fixed_payment_performance", "/api/v1/payments/fixed-performance", "payments",
           "Fixed prospective payments vs shadow claims per hospital.")
    simple("settlements", "/api/v1/settlements", "settlements", "Settlement statements per program, year and version.")
    simple("distribution", "/api/v1/settlements/distribution", "settlements", "Distribution to participants.")

    @app.get("/api/v1/settlements/lines", tags=["settlements"], summary="Named settlement lines.")
    def settlement_lines(p: Principal = Depends(principal), program_id: str | None = Program,
                         performance_year: int | None = Year,
                         version: str | None = Query(None, max_length=40, description="Only this version."),
                         limit: int = Limit, offset: int = Offset):
        return query(p, "settlement_lines", {"program_id": program_id, "performance_year": performance_year,
                                             "version": version}, limit, offset)

    @app.get("/api/v1/payments/fpp", tags=["payments"], summary="Fixed prospective payments per hospital and month.")
    def fpp(p: Principal = Depends(principal), program_id: str | None = Program,
            hospital_id: str | None = Query(None, max_length=100, description="Only this hospital."),
            limit: int = Limit, offset: int = Offset):
        return query(p, "fpp_payments", {"program_id": program_id, "hospital_id": hospital_id}, limit, offset)

    @app.get("/api/v1/payments/invoices", tags=["payments"], summary="Value Payment PMPM invoices per employer and month.")
    def invoices(p: Principal = Depends(principal), program_id: str | None = Program,
                 employer_id: str | None = Query(None, max_length=100, description="Only this employer."),
                 limit: int = Limit, offset: int = Offset):
        return query(p, "invoices", {"program_id": program_id, "employer_id": employer_id}, limit, offset)

    @app.get("/api/v1/employers/{employer_id}/summary", tags=["employers"],
             summary="An employer's summary: member months and invoiced amounts by program and month (cells under 11 suppressed).")
    def employer_summary(employer_id: str, p: Principal = Depends(principal)):
        check_text(employer_id, "employer_id")
        if not tenancy.may_see_org_page(p, "employer", employer_id):
            raise HTTPException(403, "not this organization's data")
        return employer_summary_data(p, employer_id)

    def employer_summary_data(p: Principal, employer_id: str) -> dict:
        with snap.lock:
            ctx = snap.context()
            if ctx is None or not ctx.has("value_payment_invoices"):
                return {"employer_id": employer_id, "items": [], "totals": [], "suppressed_cells": 0}
            t = tenancy.scoped(p, "invoices", ctx)
            t = t.filter(t.employer_id == employer_id)
            g = t.group_by("program_id", "month").aggregate(member_months=t.member_months.sum(),
                                                           amount_cents=t.amount_cents.sum())
            rows = [jsonable(r) for r in ctx.con.to_pyarrow(g.order_by(["program_id", "month"])).to_pylist()]
        return {"employer_id": employer_id, **suppress_summary(rows)}

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
        except LedgerError as exc:
            raise HTTPException(400, str(exc)) from None
        items = [{"account": b.account, "period": b.period, "debit_cents": b.debit_cents,
                  "credit_cents": b.credit_cents, "balance_cents": b.balance_cents} for b in rows]
        return {"items": items, "total": len(items)}

    @app.get("/api/v1/overview", tags=["overview"], summary="Lives, PMPM vs target and settlement forecast per program.")
    def overview(p: Principal = Depends(principal), performance_year: int | None = Year):
        return overview_data(p, performance_year)

    def overview_data(p: Principal, year: int | None) -> dict:
        """Per program and year: member months, average lives (member months / 12), TCOC on the
        fee-for-service basis (`ffs_paid_cents`) and its PMPM, the target and its PMPM (where the
        role may read targets), and the net of the latest settlement statement (the forecast)."""
        with snap.lock:
            ctx = snap.context()
            if ctx is None:
                return {"items": []}
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
            mm = int(r["member_months"] or 0)
            key = (r["program_id"], r["performance_year"])
            target = targets.get(key)
            s = forecast.get(key, {})
            items.append({
                "program_id": r["program_id"], "performance_year": r["performance_year"], "member_months": mm,
                "average_lives": _div(mm, 12), "tcoc_cents": int(r["tcoc_cents"] or 0),
                "tcoc_pmpm_cents": _div(r["tcoc_cents"], mm), "target_cents": target,
                "target_pmpm_cents": _div(target, mm), "settlement_net_cents": s.get("net_cents"),
                "settlement_version": s.get("version"),
            })
        return {"items": items}

    app.state.overview = overview_data

    @app.get("/api/v1/reports", tags=["reports"], summary="Rendered reports of published runs that the caller may open.")
    def list_reports(p: Principal = Depends(principal)):
        return {"items": visible_reports(p)}

    @app.get("/api/v1/reports/{run_id}/{path:path}", tags=["reports"], summary="One rendered report file.")
    def get_report(run_id: str, path: str, p: Principal = Depends(principal)):
        wanted = f"{run_id}/{path}"
        if wanted not in {r["path"] for r in visible_reports(p)}:
            raise HTTPException(404, "no such report for this user")
        return FileResponse(reports_dir(db) / wanted)

    def visible_reports(p: Principal) -> list[dict]:
        return [r for r in report_files(reports_dir(db)) if report_visible(p, r)]

    from allpayer.web.pages import register_pages

    register_pages(app)
    return app


def suppress_summary(rows: list[dict]) -> dict:
    """Monthly employer cells with fewer than 11 member months are suppressed (member months and
    amount). A program's year total is shown when it has at least 11 member months and the
    suppressed months of the program add up to 0 or at least 11 member months, so that the total
    less the shown months never reveals a small cell.

    >>> out = suppress_summary([{"program_id": "p", "month": "2024-01-01", "member_months": 5, "amount_cents": 500},
    ...                         {"program_id": "p", "month": "2024-02-01", "member_months": 20, "amount_cents": 2000}])
    >>> [r["suppressed"] for r in out["items"]], out["totals"][0]["suppressed"]
    ([True, False], True)
    """
    totals: dict[str, dict] = {}
    for r in rows:
        t = totals.setdefault(r["program_id"], {"program_id": r["program_id"], "member_months": 0, "amount_cents": 0,
                                                "hidden_member_months": 0})
        mm = int(r["member_months"] or 0)
        t["member_months"] += mm
        t["amount_cents"] += int(r["amount_cents"] or 0)
        r["suppressed"] = mm < SMALL_CELL
        if r["suppressed"]:
            t["hidden_member_months"] += mm
            r["member_months"], r["amount_cents"] = None, None
    out_totals = []
    for t in totals.values():
        hidden = t.pop("hidden_member_months")
        t["suppressed"] = t["member_months"] < SMALL_CELL or 0 < hidden < SMALL_CELL
        if t["suppressed"]:
            t["member_months"], t["amount_cents"] = None, None
        out_totals.append(t)
    return {"items": rows, "totals": out_totals, "suppressed_cells": sum(1 for r in rows if r["suppressed"])}


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
