"""HTML rendering of a `Report` with the Jinja2 template in ``templates/``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from allpayer.reports.base import Report

TEMPLATES = Path(__file__).with_name("templates")


def rows_html(rows: Iterable[Sequence]) -> Markup:
    """The ``<tr>`` rows of a table body, one line per row, each value escaped as the template's
    ``{{ v }}`` would escape it. A practice's report lists every attributed member (hundreds of
    thousands of cells for a large practice), which a template loop renders two to three times
    more slowly (100,000 rows of five values: 1.2-1.4 s against 0.5-0.7 s).

    >>> str(rows_html([["a<b", "1"], ["c", "2"]]))
    '<tr><td>a&lt;b</td><td>1</td></tr>\\n<tr><td>c</td><td>2</td></tr>\\n'
    """
    return Markup("".join(["<tr><td>" + "</td><td>".join([escape(v) for v in row]) + "</td></tr>\n"
                           if row else "<tr></tr>\n" for row in rows]))


_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
_env.filters["rows_html"] = rows_html


def html(report: Report) -> str:
    return _env.get_template("report.html.j2").render(r=report)


def write_html(report: Report, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{report.slug}.html"
    path.write_text(html(report), encoding="utf-8")
    return path
