"""Settlement statements as CSV and HTML (Jinja2).

Per program: ``<program_id>_<year>_<version>.csv`` (the named lines in order: line_no, line_id,
label, step, amount in dollars, rate, term, note) and ``.html`` (the same lines, the
distribution to participants and, for employer programs, each employer's share). Per employer:
``employer_<employer_id>_<year>_<version>.csv``/``.html`` with its own members' results and the
ACO's share of the program's settlement allocated to it (cells of fewer than 11 members
suppressed).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from jinja2 import Environment

from allpayer.money import cents_to_dollars

LINE_HEADER = ["line_no", "line_id", "label", "step", "amount", "rate", "term", "note"]


def _money(cents) -> str:
    return "" if cents is None else f"{cents_to_dollars(int(cents)):,.2f}"


def _plain(cents) -> str:
    return "" if cents is None else str(cents_to_dollars(int(cents)))


_ENV = Environment(autoescape=True)
_ENV.filters["money"] = _money

_PROGRAM = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Settlement {{ s.program_id }} {{ year }} ({{ version }})</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222} table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.key td{font-weight:bold;background:#f3f3f3} .note{color:#555;font-size:.9em}
</style></head><body>
<h1>Settlement statement: {{ s.program_id }}</h1>
<p>Performance year {{ year }}, version <b>{{ version }}</b>; payer {{ s.payer }}; ACO {{ s.aco_id }};
claims paid through {{ paid_through or "n/a" }}; core run {{ core_run_id }}; settle run {{ run_id }}.</p>
<p>Steps in the order of the terms: {{ s.steps | join(" &rarr; ") | safe }}</p>
<table><thead><tr><th>#</th><th>line</th><th>label</th><th>step</th><th>amount ($)</th><th>rate</th><th>term</th><th>note</th></tr></thead>
<tbody>{% for ln in s.lines %}
<tr{% if ln.line_id in key_lines %} class="key"{% endif %}><td class="n">{{ ln.line_no }}</td><td>{{ ln.line_id }}</td><td>{{ ln.label }}</td>
<td>{{ ln.step }}</td><td class="n">{{ ln.amount_cents | money }}</td><td class="n">{{ "" if ln.rate is none else ln.rate }}</td>
<td>{{ ln.term }}</td><td class="note">{{ ln.note }}</td></tr>{% endfor %}
</tbody></table>
{% if low is not none %}<p>Forecast range of the net settlement: {{ low | money }} to {{ high | money }} (completion-factor spread).</p>{% endif %}
{% if notes %}<ul>{% for n in notes %}<li class="note">{{ n }}</li>{% endfor %}</ul>{% endif %}
{% if d %}<h2>Distribution to risk-bearing participants</h2>
<table><thead><tr><th>participant</th><th>HSA</th><th>share</th><th>first split ($)</th><th>limit ($)</th><th>final ($)</th><th>at limit</th><th>fixed payment performance ($)</th><th>combined ($)</th></tr></thead>
<tbody>{% for a in d.allocations %}<tr><td>{{ a.participant_id }}</td><td>{{ a.hsa or "" }}</td><td class="n">{{ a.share }}</td>
<td class="n">{{ a.initial_cents | money }}</td><td class="n">{{ a.limit_cents | money }}</td><td class="n">{{ a.final_cents | money }}</td>
<td>{{ "yes" if a.at_limit else "" }}</td><td class="n">{{ a.fixed_payment_performance_cents | money }}</td><td class="n">{{ a.combined_cents | money }}</td></tr>{% endfor %}
<tr class="key"><td>ACO reserve</td><td></td><td></td><td class="n">{{ d.reserve_rate_cents | money }}</td><td></td><td class="n">{{ d.reserve_cents | money }}</td><td></td><td></td><td class="n">{{ d.reserve_cents | money }}</td></tr>
</tbody></table>{% for n in d.notes %}<p class="note">{{ n }}</p>{% endfor %}{% endif %}
{% if employers %}<h2>Employers</h2>
<table><thead><tr><th>employer</th><th>members</th><th>member months</th><th>target ($)</th><th>actual ($)</th><th>gross ($)</th><th>ACO's share of the settlement ($)</th><th>note</th></tr></thead>
<tbody>{% for e in employers %}<tr><td>{{ e.employer_id }}</td><td class="n">{{ "" if e.members is none else e.members }}</td>
<td class="n">{{ "" if e.member_months is none else e.member_months }}</td><td class="n">{{ e.target_cents | money }}</td>
<td class="n">{{ e.actual_cents | money }}</td><td class="n">{{ e.gross_cents | money }}</td><td class="n">{{ e.aco_share_cents | money }}</td><td class="note">{{ e.note }}</td></tr>{% endfor %}
</tbody></table>{% endif %}
</body></html>
""")

_EMPLOYER = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Settlement {{ e.employer_id }} {{ year }}</title>
<style>body{font-family:sans-serif;margin:2em} td,th{border:1px solid #bbb;padding:.3em .6em} table{border-collapse:collapse} td.n{text-align:right}</style>
</head><body><h1>Year-end settlement: {{ e.employer_id }}</h1>
<p>Program {{ program_id }}, performance year {{ year }}, version {{ version }}.</p>
<table><tbody>
<tr><th>members</th><td class="n">{{ "suppressed" if e.members is none else e.members }}</td></tr>
<tr><th>member months</th><td class="n">{{ "suppressed" if e.member_months is none else e.member_months }}</td></tr>
<tr><th>target ($)</th><td class="n">{{ e.target_cents | money }}</td></tr>
<tr><th>actual TCOC ($)</th><td class="n">{{ e.actual_cents | money }}</td></tr>
<tr><th>gross savings (+) or losses (-) ($)</th><td class="n">{{ e.gross_cents | money }}</td></tr>
<tr><th>program net settlement ($)</th><td class="n">{{ net | money }}</td></tr>
<tr><th>ACO's share of the settlement for this employer ($)</th><td class="n">{{ e.aco_share_cents | money }}</td></tr>
</tbody></table>{% if e.note %}<p>{{ e.note }}</p>{% endif %}
</body></html>
""")

KEY_LINES = ("target", "actual_tcoc", "actual_truncated", "gross_result", "shared", "net", "combined")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def lines_csv(settlement) -> str:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LINE_HEADER)
    for ln in settlement.lines:
        w.writerow([ln.line_no, ln.line_id, ln.label, ln.step, _plain(ln.amount_cents),
                    "" if ln.rate is None else str(ln.rate), ln.term, ln.note])
    return buf.getvalue()


def write_statements(result, out_dir: Path, *, html: bool = True, csv_files: bool = True, run_id: str = "") -> list[Path]:
    """Write every program's statement (and each employer's) to `out_dir`; returns the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for pr in result.programs:
        s = pr.settlement
        stem = f"{s.program_id}_{result.year}_{result.version}"
        if csv_files:
            p = out_dir / f"{stem}.csv"
            _write_atomic(p, lines_csv(s))
            written.append(p)
        if html:
            p = out_dir / f"{stem}.html"
            _write_atomic(p, _PROGRAM.render(s=s, year=result.year, version=result.version, d=pr.distribution,
                                             employers=pr.employers, notes=pr.notes, key_lines=KEY_LINES,
                                             paid_through=result.paid_through, core_run_id=result.core_run_id,
                                             run_id=run_id, low=pr.forecast_low_net_cents,
                                             high=pr.forecast_high_net_cents))
            written.append(p)
        for e in pr.employers:
            estem = f"employer_{e['employer_id']}_{result.year}_{result.version}"
            if csv_files:
                p = out_dir / f"{estem}.csv"
                rows = [("program_id", s.program_id), ("employer_id", e["employer_id"]),
                        ("members", "suppressed" if e["members"] is None else e["members"]),
                        ("member_months", "suppressed" if e["member_months"] is None else e["member_months"]),
                        ("target", _plain(e["target_cents"])), ("actual", _plain(e["actual_cents"])),
                        ("gross", _plain(e["gross_cents"])), ("program_net_settlement", _plain(s.net_cents)),
                        ("aco_share_of_settlement", _plain(e["aco_share_cents"]))]
                _write_atomic(p, "item,value\n" + "".join(f"{k},{v}\n" for k, v in rows))
                written.append(p)
            if html:
                p = out_dir / f"{estem}.html"
                _write_atomic(p, _EMPLOYER.render(e=e, program_id=s.program_id, year=result.year,
                                                  version=result.version, net=s.net_cents))
                written.append(p)
    return written


__all__ = ["write_statements", "lines_csv", "LINE_HEADER"]
