"""Build, write and publish reports.

`render_one` writes one audience's report for one organization; `render_all` renders every
audience's reports of a database's latest published run into ``<db>.reports/<run_id>/`` (one
folder per audience, plus ``index.html`` and ``index.json``), written into a temporary folder and
renamed into place, so a reader never sees a half-written set."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from allpayer.reports import KINDS, csvout, render
from allpayer.reports.base import Period, Report, ReportError, as_period, safe_name, table

FORMATS = ("html", "pdf", "csv")


def parse_formats(text: str) -> list[str]:
    got = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in got if f not in FORMATS]
    if bad or not got:
        raise ReportError(f"--format: unknown format(s) {', '.join(bad) or '(none)'}; use a comma list of "
                          f"{', '.join(FORMATS)}")
    return got


def parse_period(text: str) -> Period:
    """The report period: a year ``2024``, a quarter ``2024-Q2``, a month ``2024-05`` or the year
    to date through a month ``2024-05-YTD``."""
    return Period.parse(text)


YEAR_ONLY = ("payer", "regulator")
"""Kinds that cover a whole performance year only (a settlement, annual growth and scale)."""


def organizations(con, kind: str, year: int) -> list[str]:
    from allpayer.reports import employer, hospital, payer, practice
    from allpayer.reports.base import has

    if kind == "employer":
        from allpayer.core.programs import employer_of_group_months
        from allpayer.reports.base import of_year, rows

        # the employers of the year's member months (a group's employer that month)
        mm = of_year(table(con, "tcoc_member_month"), year)
        j = employer_of_group_months(table(con, "employer_group"), mm.select("group_id", "month"))
        return [r["employer_id"] for r in rows(j.select("employer_id").distinct().order_by("employer_id"))]
    if kind == "practice":
        return practice.practices(con, year)
    if kind == "hospital":
        return hospital.hospitals(con, year) if has(con, "fpp_hospital_payments") else []
    if kind == "payer":
        return payer.payers(con, year) if has(con, "settlement_statements") else []
    if kind == "regulator":
        return ["GMCB"]
    raise ReportError(f"unknown report kind {kind!r}; use one of {', '.join(KINDS)}")


def build(con, kind: str, org: str, year: Period | int, run_id: str, store=None, inputs=None) -> Report:
    from allpayer.reports import employer, hospital, payer, practice, regulator

    year = as_period(year)

    if kind == "employer":
        return employer.build(con, org, year, run_id)
    if kind == "practice":
        return practice.build(con, org, year, run_id, store=store)
    if kind == "hospital":
        return hospital.build(con, org, year, run_id)
    if kind == "payer":
        return payer.build(con, org, year, run_id)
    if kind == "regulator":
        return regulator.build(con, org, year, run_id, inputs=inputs)
    raise ReportError(f"unknown report kind {kind!r}; use one of {', '.join(KINDS)}")


def write(report: Report, out: Path, formats: list[str], printer=None) -> dict[str, Path]:
    from allpayer.reports import pdf

    written: dict[str, Path] = {}
    html_path = render.write_html(report, out)
    if "html" in formats:
        written["html"] = html_path
    if "csv" in formats:
        written["csv"] = csvout.write_csv(report, out)
    if "pdf" in formats:
        pdf_path = Path(out) / f"{report.slug}.pdf"
        written["pdf"] = printer.print(html_path, pdf_path) if printer else pdf.html_to_pdf(html_path, pdf_path)
    if "html" not in formats:
        html_path.unlink()
    return written


def _open(db: Path):
    from allpayer.runs import open_snapshot

    db = Path(db)
    if not db.exists():
        raise ReportError(f"database {db} does not exist")
    return open_snapshot(db)


def _store(db: Path, store_url: str | None):
    from allpayer.store import default_store_url, open_store

    return open_store(store_url or default_store_url(db))


def render_one(db: Path, kind: str, org: str, year: Period | int, out: Path, formats: list[str],
               inputs: Path | None = None, store_url: str | None = None) -> dict[str, Path]:
    from allpayer.reports.base import latest_run_id
    from allpayer.reports.regulator import load_inputs

    con = _open(db)
    store = _store(db, store_url) if kind == "practice" else None
    try:
        rep = build(con, kind, org, year, latest_run_id(con), store=store,
                    inputs=load_inputs(inputs) if kind == "regulator" else None)
    finally:
        con.disconnect()
        if store is not None:
            store.close()
    return write(rep, out, formats)


def reports_dir(db: Path) -> Path:
    db = Path(db)
    return db.with_name(db.name + ".reports")


def render_all(db: Path, year: Period | int, formats: list[str] = list(FORMATS), out: Path | None = None,
               inputs: Path | None = None, store_url: str | None = None, say=lambda s: None,
               con=None) -> Path:
    """Render every audience's reports of the latest published run; return the run's folder.

    `year` is a performance year or a `Period`; for a period shorter than a year the kinds that
    cover whole years only (payer, regulator) are left out. `con` reuses an open connection to
    the snapshot (the publish hook passes its own)."""
    from allpayer.reports.base import batch, latest_run_id
    from allpayer.reports.regulator import load_inputs

    period = as_period(year)
    own = con is None
    con = _open(db) if own else con
    store = _store(db, store_url)
    base = Path(out) if out else reports_dir(db)
    base.mkdir(parents=True, exist_ok=True)
    reg_inputs = load_inputs(inputs)
    stack = contextlib.ExitStack()
    try:
        run_id = latest_run_id(con)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=base))
        index = {"run_id": run_id, "year": period.year, "period": period.label, "formats": formats, "reports": []}
        printer = None
        try:
            stack.enter_context(batch())
            if "pdf" in formats:
                from allpayer.reports.pdf import PdfError, Printer, chromium_path

                if chromium_path() is not None:
                    try:
                        printer = Printer()
                    except PdfError as e:  # one Chromium start per PDF instead
                        say(f"PDF: {e}; starting Chromium once per report")
            for kind in KINDS:
                if kind in YEAR_ONLY and not period.is_year:
                    continue
                for org in organizations(con, kind, period.year):
                    rep = build(con, kind, org, period, run_id, store=store,
                                inputs=reg_inputs if kind == "regulator" else None)
                    files = write(rep, tmp / kind, formats, printer=printer)
                    index["reports"].append({"kind": kind, "organization": org, "title": rep.title,
                                             "files": {f: str(p.relative_to(tmp)) for f, p in files.items()}})
                    say(f"{kind} {org}: {', '.join(sorted(files))}")
            (tmp / "index.json").write_text(json.dumps(index, indent=2))
            (tmp / "index.html").write_text(_index_html(index), encoding="utf-8")
            final = base / run_id
            if final.exists():
                old = base / f".{run_id}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            if printer is not None:
                printer.close()
            stack.close()
    finally:
        if own:
            con.disconnect()
        store.close()
    return final


RENDER_SETTING = "ALLPAYER_RENDER_REPORTS"
FORMATS_SETTING = "ALLPAYER_REPORT_FORMATS"


def rendering_on_publish() -> bool:
    """Whether a published run renders its reports: on unless ``ALLPAYER_RENDER_REPORTS`` is 0,
    off, false or no."""
    return os.environ.get(RENDER_SETTING, "1").strip().lower() not in ("0", "off", "false", "no")


def no_rendering_on_publish():
    """Within the block, publishing a run renders no reports (`RENDER_SETTING` is 0); the setting
    is restored afterwards, whatever it was."""
    return rendering_set(False)


@contextlib.contextmanager
def rendering_set(render: bool):
    """Within the block, publishing a run renders its reports when `render` is set and renders none
    when it is not, whatever `RENDER_SETTING` says; the setting is restored afterwards."""
    before = os.environ.get(RENDER_SETTING)
    os.environ[RENDER_SETTING] = "1" if render else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RENDER_SETTING, None)
        else:
            os.environ[RENDER_SETTING] = before


def publish_year(parameters: dict | None) -> int | None:
    """The performance year of a run from its parameters (``year``, or a payments ``period`` such
    as ``2024-Q2``)."""
    p = parameters or {}
    if p.get("year") is not None:
        return int(p["year"])
    period = str(p.get("period") or "")
    return int(period[:4]) if period[:4].isdigit() else None


def on_publish(db: Path, kind: str, parameters: dict | None) -> Path | None:
    """Called by `allpayer.runs` when a run is published: render every audience's reports of the
    run's year (formats ``ALLPAYER_REPORT_FORMATS``, default html,csv) into
    ``<db>.reports/<run_id>/``, so serving them is instant. Nothing is rendered for a load, a run
    without a year, a database whose report tables are not written yet, or with
    ``ALLPAYER_RENDER_REPORTS=0``."""
    from allpayer.reports.base import has

    year = publish_year(parameters)
    if kind != "run" or year is None or not rendering_on_publish():
        return None
    formats = parse_formats(os.environ.get(FORMATS_SETTING, "html,csv"))
    con = _open(db)
    try:
        if not has(con, "runs", "employer_group", "tcoc_member_month", "targets", "attribution", "member_months"):
            return None
        return render_all(db, year, formats, con=con)
    finally:
        con.disconnect()


def _index_html(index: dict) -> str:
    from html import escape

    lines = [f"<!doctype html><html><head><meta charset='utf-8'><title>Reports, run {escape(index['run_id'])}</title>"
             f"</head><body><h1>Reports of run {escape(index['run_id'])} (period {escape(str(index.get('period', index['year'])))})</h1><ul>"]
    for r in index["reports"]:
        links = " ".join(f"<a href='{escape(p)}'>{escape(f)}</a>" for f, p in sorted(r["files"].items()))
        lines.append(f"<li>{escape(r['kind'])}: {escape(r['organization'])} {links}</li>")
    lines.append("</ul></body></html>")
    return "\n".join(lines)


__all__ = ["FORMATS", "build", "no_rendering_on_publish", "on_publish", "organizations", "parse_formats", "parse_period",
           "publish_year", "render_all", "render_one", "rendering_on_publish", "rendering_set", "reports_dir", "safe_name",
           "write"]
