"""HTML rendering of a `Report` with the Jinja2 template in ``templates/``."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from allpayer.reports.base import Report

TEMPLATES = Path(__file__).with_name("templates")
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))


def html(report: Report) -> str:
    return _env.get_template("report.html.j2").render(r=report)


def write_html(report: Report, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{report.slug}.html"
    path.write_text(html(report), encoding="utf-8")
    return path
