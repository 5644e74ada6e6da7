"""Dashboard pages, served by the same app as the API and scoped by the same query layer.

Pages: ``/login``, ``/`` (sends each role to its home page), ``/overview`` (lives, PMPM vs target,
settlement forecast), ``/practice/{id}`` (care-gap list for outreach, highest-risk patients with
the conditions behind their scores), ``/hospital/{id}`` (FPP vs
shadow claims), ``/employer/{id}`` (employer summary, small cells suppressed), ``/settlements``
and ``/settlements/{program_id}`` (statements with their named lines). Charts are inline SVG.
A page of another organization answers 403.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from allpayer.api import csrf, tenancy
from allpayer.api.ratelimit import LoginThrottled

TEMPLATES = Path(__file__).parent / "templates"
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def dollars(cents) -> str:
    """Cents as dollars, e.g. ``-$1,234.50``; an empty cell for None."""
    if cents is None:
        return "—"
    cents = int(cents)
    sign = "-" if cents < 0 else ""
    d, c = divmod(abs(cents), 100)
    return f"{sign}${d:,}.{c:02d}"


env.filters["dollars"] = dollars
env.filters["num"] = lambda v: "—" if v is None else f"{int(v):,}"


def bar_chart(rows: list[dict], label: str, series: list[tuple[str, str, str]], width: int = 640) -> str:
    """An inline SVG grouped bar chart: one group per row, one bar per (key, name, colour)."""
    values = [abs(int(r.get(k) or 0)) for r in rows for k, _, _ in series]
    top = max(values or [1]) or 1
    bar_h, gap = 14, 10
    group_h = bar_h * len(series) + gap
    left = 170
    height = group_h * len(rows) + 30
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{label}" '
             f'preserveAspectRatio="xMinYMin meet">']
    for i, r in enumerate(rows):
        y0 = i * group_h
        parts.append(f'<text x="0" y="{y0 + bar_h}" font-size="11">{_esc(str(r.get(label, "")))}</text>')
        for j, (k, name, colour) in enumerate(series):
            v = int(r.get(k) or 0)
            w = int((width - left - 90) * abs(v) / top)
            y = y0 + j * bar_h
            parts.append(f'<rect x="{left}" y="{y}" width="{w}" height="{bar_h - 2}" fill="{colour}"><title>{name}: {dollars(v)}</title></rect>')
            parts.append(f'<text x="{left + w + 4}" y="{y + bar_h - 4}" font-size="10">{dollars(v)}</text>')
    ly = len(rows) * group_h + 14
    for j, (_, name, colour) in enumerate(series):
        parts.append(f'<rect x="{left + j * 150}" y="{ly}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{left + j * 150 + 14}" y="{ly + 9}" font-size="11">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render(name: str, status: int = 200, request: Request | None = None, **ctx) -> HTMLResponse:
    """A page; with the request, the page's forms carry the session's CSRF token
    (`allpayer.api.csrf`) and the log-out button is shown."""
    from allpayer.api.app import SESSION_COOKIE

    token = request.cookies.get(SESSION_COOKIE) if request is not None else None
    ctx.setdefault("csrf_token", csrf.session_csrf(token) if token else None)
    return HTMLResponse(env.get_template(name).render(**ctx), status_code=status)


def register_pages(app: FastAPI) -> None:
    from allpayer.api.app import SESSION_COOKIE

    users = app.state.users
    snap = app.state.snapshot

    def who(request: Request):
        p = app.state.identify(request)
        if p is not None:
            request.state.principal = p
        return p

    def need(request: Request):
        p = who(request)
        if p is None:
            raise HTTPException(303, headers={"Location": "/login"})
        return p

    def forbidden(request: Request, p, what: str) -> HTMLResponse:
        return render("error.html", 403, request, p=p, title="Not allowed",
                      message=f"This page is not open to {p.username} ({what}).")

    def login_form_page(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
        """The login form with a double-submit CSRF token: the same random value in the form and
        in the ``allpayer_csrf`` cookie (kept when the browser already has one)."""
        token = request.cookies.get(csrf.CSRF_COOKIE) or csrf.new_login_token()
        resp = render("login.html", status, p=None, error=error, login_csrf=token)
        resp.set_cookie(csrf.CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=request.url.scheme == "https")
        return resp

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request):
        return login_form_page(request)

    @app.post("/login", include_in_schema=False)
    def login_form(request: Request, username: str = Form(..., max_length=100), password: str = Form(..., max_length=200),
                   csrf_token: str = Form("", max_length=200)):
        if not csrf.valid_double_submit(request.cookies.get(csrf.CSRF_COOKIE), csrf_token):
            return login_form_page(request, 403, "The login form expired or did not come from this site; please try again.")
        try:
            token = app.state.attempt_login(username, password, app.state.client_address(request))
        except LoginThrottled as exc:
            minutes = max(1, (exc.retry_after + 59) // 60)
            resp = login_form_page(request, 429, f"Too many failed logins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.")
            resp.headers["Retry-After"] = str(exc.retry_after)
            return resp
        if token is None:
            return login_form_page(request, 401, "Wrong user name or password.")
        resp = RedirectResponse("/", status_code=303)
        # Secure over HTTPS (the scheme is the proxy's X-Forwarded-Proto behind a trusted proxy)
        resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=request.url.scheme == "https")
        return resp

    @app.get("/logout", include_in_schema=False)
    def logout_confirm(request: Request):
        """A GET changes nothing: it shows the log-out button (a POST with the CSRF token)."""
        p = who(request)
        if p is None or not request.cookies.get(SESSION_COOKIE):
            return RedirectResponse("/login", status_code=303)
        return render("logout.html", 200, request, p=p)

    @app.post("/logout", include_in_schema=False)
    def logout_page(request: Request):
        # the CSRF token was checked by the app's guard before this runs
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            users.logout(token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    @app.get("/", include_in_schema=False)
    def home(request: Request):
        p = need(request)
        target = {"practice": f"/practice/{p.org_id}", "hospital": f"/hospital/{p.org_id}",
                  "employer": f"/employer/{p.org_id}"}.get(p.role, "/overview")
        return RedirectResponse(target, status_code=303)

    @app.get("/overview", include_in_schema=False)
    def overview_page(request: Request):
        p = need(request)
        if p.role not in (*tenancy.ACO, "payer", "regulator"):
            return forbidden(request, p, "the program overview is for ACO staff, payers and the regulator")
        data = app.state.overview(p, None)
        rows = [r for r in data["items"] if r["program_id"]]
        chart = bar_chart(rows, "program_id", [("tcoc_pmpm_cents", "TCOC PMPM", "#2b6cb0"),
                                               ("target_pmpm_cents", "target PMPM", "#dd6b20")])
        return render("overview.html", 200, request, p=p, rows=rows, chart=chart)

    def rows_of(p, dataset: str, **equal) -> list[dict] | None:
        from allpayer.api.app import check_text

        for col, v in equal.items():
            check_text(v, col)
        with snap.lock:
            ctx = snap.context()
            if ctx is None:
                return []
            try:
                t = tenancy.scoped(p, dataset, ctx)
            except tenancy.NotAvailable:
                return None
            for col, v in equal.items():
                t = t.filter(t[col] == v)
            keys = [k for k in tenancy.DATASETS[dataset].keys if k in t.columns]
            sql = ctx.con.compile(t.order_by(keys).limit(500))
        # run on a pooled cursor outside the lock, so that pages are served in parallel
        return snap_rows(ctx, sql)

    def snap_rows(ctx, sql: str):
        from allpayer.api.snapshot import jsonable

        return [jsonable(r) for r in snap.run(ctx, sql, as_dicts=True)]

    @app.get("/practice/{practice_id}", include_in_schema=False)
    def practice_page(practice_id: str, request: Request):
        p = need(request)
        from allpayer.api.app import check_text

        check_text(practice_id, "practice_id")
        if not tenancy.may_see_org_page(p, "practice", practice_id):
            return forbidden(request, p, "another practice's patients")
        gaps = rows_of(p, "care_gaps", practice_id=practice_id)
        if gaps:  # outreach order: the practice's highest-ranked patients first
            gaps.sort(key=lambda g: (g.get("rank") is None, g.get("rank") or 0, g["program_id"], g["person_id"], g["gap_id"]))
        tcoc = rows_of(p, "tcoc", practice_id=practice_id)
        sql = None
        with snap.lock:
            ctx = snap.context()
            if ctx is not None and ctx.has("attribution"):
                t = tenancy.scoped(p, "rosters", ctx)
                t = t.filter((t.practice_id == practice_id) & t.attributed)
                sql = ctx.con.compile(t.select("person_id").distinct().count())
        patients = int(snap.run(ctx, sql)[0][0]) if sql else 0
        return render("practice.html", 200, request, p=p, practice_id=practice_id, gaps=gaps, tcoc=tcoc or [],
                      patients=patients, risk=highest_risk(p, practice_id), costly=highest_cost(p, practice_id))

    HIGHEST_COST = 25

    def highest_cost(p, practice_id: str) -> list[dict] | None:
        """The practice's attributed patients among the high-cost claimants of the latest year
        (``high_cost_claimants``), costliest first; None before the table exists. Patients with a
        Part 2 claim or a data-sharing opt-out are not listed (the dataset withholds them)."""
        import ibis

        with snap.lock:
            ctx = snap.context()
            if ctx is None or not ctx.has("high_cost_claimants"):
                return None
            t = tenancy.attributed_to(tenancy.scoped(p, "high_cost_claimants", ctx), practice_id, ctx)
            t = t.filter(t.year == t.year.max().as_scalar())
            t = t.order_by([ibis.desc(t.cost_cents), t.program_id, t.member_id]).limit(HIGHEST_COST)
            sql = ctx.con.compile(t)
        return snap_rows(ctx, sql)

    HIGHEST_RISK = 25

    def highest_risk(p, practice_id: str) -> list[dict] | None:
        """The practice's attributed patients with the highest risk scores of the latest performance
        year scored, with the conditions (HCC labels) behind each score; None before risk scores
        exist. A patient whose factors are withheld (a Part 2 claim or a data-sharing opt-out) is
        listed with ``withheld``."""
        import ibis

        with snap.lock:
            ctx = snap.context()
            if ctx is None or not ctx.has("risk_scores") or not ctx.has("risk_score_factors"):
                return None
            s = tenancy.attributed_to(tenancy.scoped(p, "risk_scores", ctx), practice_id, ctx)
            s = s.filter(s.scored_for == "performance_year")
            s = s.filter(s.performance_year == s.performance_year.max().as_scalar())
            top = s.order_by([ibis.desc(s.risk_score), s.program_id, s.person_id]).limit(HIGHEST_RISK)
            top = top.select("program_id", "performance_year", "person_id", "segment", "risk_score")
            f = tenancy.scoped(p, "risk_factors", ctx)
            f = f.filter(f.scored_for == "performance_year")
            f = f.semi_join(top, ["program_id", "performance_year", "person_id"])
            f = f.select("program_id", "person_id", "model_version", "factor_type", "label")
            top_sql, factors_sql = ctx.con.compile(top), ctx.con.compile(f)
        patients = snap_rows(ctx, top_sql)
        shown: dict[tuple, dict[str, set]] = {}
        for r in snap_rows(ctx, factors_sql):
            models = shown.setdefault((r["program_id"], r["person_id"]), {})
            if r["factor_type"] == "hcc" and r["label"]:
                models.setdefault(r["model_version"], set()).add(r["label"])
        for r in patients:
            models = shown.get((r["program_id"], r["person_id"]))
            r["withheld"] = models is None
            # each model's HCCs apart: V24 and V28 name and group the conditions differently
            r["conditions"] = [(m, sorted(labels)) for m, labels in sorted((models or {}).items())]
        return patients

    @app.get("/hospital/{hospital_id}", include_in_schema=False)
    def hospital_page(hospital_id: str, request: Request):
        p = need(request)
        if not tenancy.may_see_org_page(p, "hospital", hospital_id):
            return forbidden(request, p, "another hospital's payments")
        perf = rows_of(p, "fixed_payment_performance", hospital_id=hospital_id) or []
        chart = bar_chart(perf, "program_id", [("fpp_paid_cents", "FPP paid", "#2f855a"),
                                               ("shadow_value_cents", "shadow claims", "#805ad5")])
        return render("hospital.html", 200, request, p=p, hospital_id=hospital_id, perf=perf, chart=chart)

    @app.get("/employer/{employer_id}", include_in_schema=False)
    def employer_page(employer_id: str, request: Request):
        p = need(request)
        if not tenancy.may_see_org_page(p, "employer", employer_id):
            return forbidden(request, p, "another employer's group")
        summary = app.state.employer_summary(p, employer_id)
        return render("employer.html", 200, request, p=p, employer_id=employer_id, summary=summary)

    @app.get("/settlements", include_in_schema=False)
    def settlements_page(request: Request):
        p = need(request)
        if not tenancy.allowed(p.role, "settlements"):
            return forbidden(request, p, "settlement statements are for ACO staff, payers and the regulator")
        rows = rows_of(p, "settlements")
        return render("settlements.html", 200, request, p=p, rows=rows or [], missing=rows is None)

    @app.get("/settlements/{program_id}", include_in_schema=False)
    def settlement_page(program_id: str, request: Request):
        p = need(request)
        if not tenancy.allowed(p.role, "settlement_lines"):
            return forbidden(request, p, "settlement statements are for ACO staff, payers and the regulator")
        lines = rows_of(p, "settlement_lines", program_id=program_id)
        if not lines:
            return render("error.html", 404, request, p=p, title="Not found", message=f"No settlement of {program_id} for you.")
        return render("statement.html", 200, request, p=p, program_id=program_id, lines=lines)
