"""Small-cell suppression for reports shown outside the ACO (employers, the regulator).

A count of people from 1 to ``threshold - 1`` (default 10) is never shown (primary suppression).
A table also shows totals, and a total is the sum of its cells: with one cell hidden in a sum
whose other parts are shown, the hidden cell is the total less the rest. So every sum
("constraint": a total and the cells it adds up) that hides anything must hide at least two of
its parts, and the hidden parts together must be at least ``threshold`` so that the difference
does not itself reveal a small number (complementary suppression). Complements are taken from
the smallest shown non-zero cells first; a total is hidden only when no other cell is left
(cells listed in ``keep_shown`` are taken after the total).

Zero is shown: "nobody" is not a small cell. Values that are derived from a hidden count (cost,
rates, per-member figures of that cell) are hidden with it by the report that uses the result.

    >>> cells = {"a": 4, "b": 30, "c": 25, "total": 59}
    >>> sorted(suppress(cells, [("total", ["a", "b", "c"])]))
    ['a', 'c']
    >>> sorted(suppress({"a": 12, "b": 30, "total": 42}, [("total", ["a", "b"])]))
    []
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping, Sequence

THRESHOLD = 11

Constraint = tuple[Hashable, Sequence[Hashable]]


def is_small(value: int | None, threshold: int = THRESHOLD) -> bool:
    """A count that must not be shown: 1 .. threshold-1."""
    return value is not None and 0 < int(value) < threshold


def suppress(
    values: Mapping[Hashable, int],
    constraints: Iterable[Constraint],
    threshold: int = THRESHOLD,
    keep_shown: Iterable[Hashable] = (),
) -> set[Hashable]:
    """The keys of `values` to hide. `constraints` are (total key, cell keys) pairs meaning
    values[total] == sum(values[cell]). `keep_shown` lists keys never chosen as complements
    (a grand total, say), unless nothing else protects a cell."""
    constraints = [(t, list(cells)) for t, cells in constraints]
    for t, cells in constraints:
        if sum(int(values[c]) for c in cells) != int(values[t]):
            raise ValueError(f"constraint {t!r}: cells do not add up to the total")
    keep = set(keep_shown)
    hidden = {k for k, v in values.items() if is_small(v, threshold)}
    while True:
        changed = True
        while changed:
            changed = False
            for total, cells in constraints:
                while _exposed(total, cells, hidden, values, threshold):
                    pick = _complement(total, cells, hidden, values, keep)
                    if pick is None:
                        break
                    hidden.add(pick)
                    changed = True
        # sums taken together can still pin a hidden value (in a table with margins): hide one
        # more value of a sum that holds it, and check again
        pinned = determined(constraints, hidden)
        if not pinned:
            return hidden
        grew = False
        for k in sorted(pinned, key=str):
            for total, cells in constraints:
                if k == total or k in cells:
                    pick = _complement(total, cells, hidden, values, keep)
                    if pick is not None:
                        hidden.add(pick)
                        grew = True
                        break
            if grew:
                break
        if not grew:
            return hidden


def determined(constraints: Iterable[Constraint], hidden: set) -> set:
    """The hidden keys whose value the shown values and the sums fix exactly: row-reduce the sums
    restricted to the hidden keys (exact fractions); a key is fixed when a reduced row holds it
    alone."""
    from fractions import Fraction

    unknown = sorted(hidden, key=str)
    idx = {k: i for i, k in enumerate(unknown)}
    matrix = []
    for total, cells in constraints:
        row = [Fraction(0)] * len(unknown)
        for k, sign in [(total, -1)] + [(c, 1) for c in cells]:
            if k in idx:
                row[idx[k]] += sign
        if any(row):
            matrix.append(row)
    pivots, r = [], 0
    for col in range(len(unknown)):
        p = next((i for i in range(r, len(matrix)) if matrix[i][col] != 0), None)
        if p is None:
            continue
        matrix[r], matrix[p] = matrix[p], matrix[r]
        lead = matrix[r][col]
        matrix[r] = [v / lead for v in matrix[r]]
        for i in range(len(matrix)):
            if i != r and matrix[i][col] != 0:
                f = matrix[i][col]
                matrix[i] = [a - f * b for a, b in zip(matrix[i], matrix[r])]
        pivots.append(col)
        r += 1
    out = set()
    for i in range(r):
        nz = [j for j, v in enumerate(matrix[i]) if v != 0]
        if len(nz) == 1:
            out.add(unknown[nz[0]])
    return out


def _exposed(total, cells, hidden, values, threshold) -> bool:
    """Whether a constraint lets a hidden value be derived, or narrowed below the threshold:
    exactly one hidden member (total or cell) is derivable from the others; with the total shown,
    the hidden cells' sum is known and must itself not be a small count."""
    hidden_here = [m for m in [total, *cells] if m in hidden]
    if not hidden_here:
        return False
    if len(hidden_here) == 1:
        return True
    if total in hidden:
        return False
    return is_small(sum(int(values[m]) for m in hidden_here), threshold)


def _complement(total, cells, hidden, values, keep):
    """The next value to hide: the smallest shown non-zero cell not kept, then the total, then a
    kept cell, then a zero cell."""
    def smallest(cands):
        return min(cands, key=lambda c: (int(values[c]), str(c))) if cands else None

    free = [c for c in cells if c not in hidden]
    pick = smallest([c for c in free if c not in keep and int(values[c]) > 0])
    if pick is None and total not in hidden:
        return total
    if pick is None:
        pick = smallest([c for c in free if int(values[c]) > 0]) or smallest(free)
    return pick


def grid(rows: Sequence[Hashable], cols: Sequence[Hashable]) -> list[Constraint]:
    """Constraints of a table with a total column, a total row and a grand total. Cell keys are
    (row, col); row totals (row, 'total'); column totals ('total', col); grand ('total', 'total')."""
    out: list[Constraint] = []
    for r in rows:
        out.append(((r, "total"), [(r, c) for c in cols]))
    for c in cols:
        out.append((("total", c), [(r, c) for r in rows]))
    out.append((("total", "total"), [("total", c) for c in cols]))
    out.append((("total", "total"), [(r, "total") for r in rows]))
    return out


def column(rows: Sequence[Hashable]) -> list[Constraint]:
    """Constraint of a one-column table with a total: keys are the rows and 'total'."""
    return [("total", list(rows))]


def suppress_columns(rows: Sequence[Mapping[str, int]], columns: Sequence[str],
                     threshold: int = THRESHOLD) -> tuple[set[tuple[int, str]], set[str]]:
    """Suppress count columns of a table with a total row. Each column is a sum over the rows.
    Returns the hidden (row index, column) cells and the columns whose total is hidden."""
    hidden_cells: set[tuple[int, str]] = set()
    hidden_totals: set[str] = set()
    for col in columns:
        values = {i: int(r[col] or 0) for i, r in enumerate(rows)}
        values["total"] = sum(values.values())
        h = suppress(values, column(list(range(len(rows)))), threshold)
        hidden_cells |= {(i, col) for i in h if i != "total"}
        if "total" in h:
            hidden_totals.add(col)
    return hidden_cells, hidden_totals
