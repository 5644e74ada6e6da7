"""Small inline SVG charts (no JavaScript, print well to PDF): line charts and grouped bars.

Values are plain numbers for drawing only (dollars or rates); the numbers a reader relies on
are in the report's tables. A value of None is a gap (suppressed or missing).

    >>> svg = line_chart("PMPM vs target", ["2024-01", "2024-02"], {"actual": [10, 12], "target": [11, 11]})
    >>> svg.startswith("<svg") and "PMPM vs target" in svg
    True
"""

from __future__ import annotations

from html import escape
from typing import Sequence

W, H = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 34, 48
COLORS = ("#1f5f99", "#d9822b", "#3a8f4b", "#8e44ad", "#c0392b", "#7f8c8d")


def _scale(values: Sequence[float | None]) -> tuple[float, float]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(0.0, min(vals)), max(0.0, max(vals))
    if hi == lo:
        hi = lo + 1.0
    return lo, hi


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1_000_000:
        return f"{v / 1_000_000:.1f}M"
    if a >= 1_000:
        return f"{v / 1_000:.1f}k"
    if a >= 10 or v == 0:
        return f"{v:.0f}"
    return f"{v:.2f}"


def _frame(title: str, lo: float, hi: float, labels: Sequence[str], series_names: Sequence[str]) -> list[str]:
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = TOP + ph - ph * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    n = max(len(labels), 1)
    step = max(1, n // 12)
    for i, lab in enumerate(labels):
        if i % step == 0:
            x = LEFT + pw * (i + 0.5) / n
            out.append(f'<text x="{x:.1f}" y="{TOP + ph + 14}" text-anchor="middle" font-size="9">{escape(str(lab))}</text>')
    for j, name in enumerate(series_names):
        x = LEFT + j * 150
        out.append(f'<rect x="{x}" y="{H - 16}" width="10" height="10" fill="{COLORS[j % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 14}" y="{H - 7}">{escape(name)}</text>')
    return out


def line_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> str:
    """One line per series over the labels (months, years)."""
    lo, hi = _scale([v for s in series.values() for v in s])
    out = _frame(title, lo, hi, labels, list(series))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(len(labels), 1)
    for j, (name, vals) in enumerate(series.items()):
        color = COLORS[j % len(COLORS)]
        pts = []
        for i, v in enumerate(vals):
            if v is None:
                if len(pts) > 1:
                    out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>')
                pts = []
                continue
            x = LEFT + pw * (i + 0.5) / n
            y = TOP + ph - ph * (float(v) - lo) / (hi - lo)
            pts.append(f"{x:.1f},{y:.1f}")
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
        if len(pts) > 1:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>')
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> str:
    """Grouped bars: one group per label, one bar per series."""
    lo, hi = _scale([v for s in series.values() for v in s])
    out = _frame(title, lo, hi, labels, list(series))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    n, k = max(len(labels), 1), max(len(series), 1)
    group = pw / n
    bw = group * 0.8 / k
    zero = TOP + ph - ph * (0 - lo) / (hi - lo)
    for j, vals in enumerate(series.values()):
        color = COLORS[j % len(COLORS)]
        for i, v in enumerate(vals):
            if v is None:
                continue
            x = LEFT + group * i + group * 0.1 + bw * j
            y = TOP + ph - ph * (float(v) - lo) / (hi - lo)
            top, height = min(y, zero), abs(zero - y)
            out.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bw:.1f}" height="{height:.1f}" fill="{color}"/>')
    out.append("</svg>")
    return "\n".join(out)
