"""Compare settlement lines: ours against a payer's own report, and two runs or versions.

A payer report is a CSV with a header ``line_id,amount`` (dollars, e.g. ``-1368000.00``); line
ids are ours (``target``, ``actual_tcoc``, ``gross_result``, ``shared``, ``net``...). Each line is
matched by id: ``match``, ``differs`` (with the difference, ours - theirs), ``ours_only`` or
``theirs_only``.

A diff of two sets of lines (two versions, two runs, or a what-if against the published result)
gives each line's change and its cause: the lines it was computed from (``depends``) are followed
back to the inputs and terms values that moved, so a variance is explained, not just shown.

>>> a = [{"line_id": "target", "amount_cents": 100, "rate": None, "depends": ""},
...      {"line_id": "actual", "amount_cents": 90, "rate": None, "depends": ""},
...      {"line_id": "gross", "amount_cents": 10, "rate": None, "depends": "target,actual"}]
>>> b = [dict(a[0]), {**a[1], "amount_cents": 95}, {**a[2], "amount_cents": 5}]
>>> [(d["line_id"], d["difference_cents"], d["cause"]) for d in diff_lines(a, b) if d["status"] == "changed"]
[('actual', 5, 'actual moved'), ('gross', -5, 'actual +0.05')]
"""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Mapping

from allpayer.errors import AllpayerError, InputFileError
from allpayer.money import cents_to_dollars, exact_cents


def read_payer_report(path: str | Path) -> dict[str, int]:
    """A payer's settlement report: line id -> cents. Stops with a message naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputFileError(str(path), f"cannot read the payer report: {exc.strerror or exc}") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [h.strip().lower() for h in rows[0]] != ["line_id", "amount"]:
        raise InputFileError(str(path), "expected a CSV with the header line_id,amount")
    out: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != 2:
            raise InputFileError(str(path), f"line {n}: expected 2 fields (line_id,amount), got {len(row)}")
        key, raw = row[0].strip(), row[1].strip().replace(",", "")
        if not key:
            raise InputFileError(str(path), f"line {n}: empty line_id")
        if key in out:
            raise InputFileError(str(path), f"line {n}: line_id {key!r} appears twice")
        try:
            Decimal(raw)
        except InvalidOperation:
            raise InputFileError(str(path), f"line {n}: amount {row[1]!r} is not a number") from None
        try:
            out[key] = exact_cents(raw)
        except ValueError as exc:
            raise InputFileError(str(path), f"line {n}: amount {exc}") from None
    return out


def compare_with_payer(ours: Iterable[Mapping], theirs: Mapping[str, int]) -> list[dict]:
    """Our lines (dicts with line_id, label, amount_cents) against a payer's report."""
    out = []
    seen = set()
    for ln in ours:
        lid = ln["line_id"]
        if ln.get("amount_cents") is None:
            continue
        seen.add(lid)
        mine = int(ln["amount_cents"])
        if lid in theirs:
            diff = mine - theirs[lid]
            out.append({"line_id": lid, "label": ln.get("label", ""), "ours_cents": mine, "theirs_cents": theirs[lid],
                        "difference_cents": diff, "status": "match" if diff == 0 else "differs"})
        else:
            out.append({"line_id": lid, "label": ln.get("label", ""), "ours_cents": mine, "theirs_cents": None,
                        "difference_cents": None, "status": "ours_only"})
    for lid, v in theirs.items():
        if lid not in seen:
            out.append({"line_id": lid, "label": "", "ours_cents": None, "theirs_cents": v, "difference_cents": None,
                        "status": "theirs_only"})
    return out


def _deps(ln: Mapping) -> tuple[str, ...]:
    d = ln.get("depends") or ()
    if isinstance(d, str):
        return tuple(x for x in d.split(",") if x)
    return tuple(d)


def _value(ln: Mapping | None):
    if ln is None:
        return None
    if ln.get("amount_cents") is not None:
        return ("usd", int(ln["amount_cents"]))
    if ln.get("rate") is not None:
        return ("rate", Decimal(str(ln["rate"])))
    return None


def _describe(lid: str, va, vb) -> str:
    if va is None or vb is None:
        return f"{lid} {'added' if va is None else 'removed'}"
    if va[0] == "usd":
        d = vb[1] - va[1]
        return f"{lid} {'+' if d >= 0 else '-'}{cents_to_dollars(abs(d))}"
    return f"{lid} {va[1]} -> {vb[1]}"


def diff_lines(a: Iterable[Mapping], b: Iterable[Mapping]) -> list[dict]:
    """Line-by-line difference from `a` to `b`, each changed line with the cause of its change."""
    la = {ln["line_id"]: ln for ln in a}
    lb = {ln["line_id"]: ln for ln in b}
    order = list(lb) + [k for k in la if k not in lb]
    changed = {k for k in order if _value(la.get(k)) != _value(lb.get(k))}

    memo: dict[str, list[str]] = {}

    def roots(k: str) -> list[str]:
        """The changed lines without a changed dependency that `k` was computed from."""
        if k in memo:
            return memo[k]
        memo[k] = [k]  # guards against a cycle in malformed input
        ln = lb.get(k) or la.get(k)
        moved = [d for d in _deps(ln) if d in changed and d != k]
        out: list[str] = []
        for d in moved:
            for r in roots(d):
                if r not in out:
                    out.append(r)
        memo[k] = out or [k]
        return memo[k]

    rows = []
    for k in order:
        va, vb = _value(la.get(k)), _value(lb.get(k))
        ln = lb.get(k) or la.get(k)
        row = {"line_id": k, "label": ln.get("label", ""), "before": None if va is None else va[1],
               "after": None if vb is None else vb[1], "difference_cents": None, "status": "same", "cause": ""}
        if k in changed:
            row["status"] = "changed" if va is not None and vb is not None else ("added" if va is None else "removed")
            if va is not None and vb is not None and va[0] == "usd":
                row["difference_cents"] = vb[1] - va[1]
            causes = roots(k)
            if causes == [k]:
                row["cause"] = f"{k} moved" if va and vb else _describe(k, va, vb)
            else:
                row["cause"] = ", ".join(_describe(c, _value(la.get(c)), _value(lb.get(c))) for c in causes)
        rows.append(row)
    return rows


def lines_of_run(con, run_id: str, program_id: str | None = None) -> dict[str, list[dict]]:
    """Lines a settle run wrote (from ``settlement_line_history``), by program."""
    if "settlement_line_history" not in con.list_tables():
        raise AllpayerError("no settlement_line_history table: no settle run in this database")
    t = con.table("settlement_line_history")
    t = t.filter(t.run_id == run_id)
    if program_id:
        t = t.filter(t.program_id == program_id)
    out: dict[str, list[dict]] = {}
    for r in con.to_pyarrow(t.order_by(["program_id", "line_no"])).to_pylist():
        out.setdefault(r["program_id"], []).append(r)
    if not out:
        raise AllpayerError(f"no settlement lines for run {run_id!r}")
    return out


__all__ = ["read_payer_report", "compare_with_payer", "diff_lines", "lines_of_run"]
