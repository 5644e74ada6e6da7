"""What-if settlements: re-settle with changed terms, without touching published results.

Terms change in two ways:

- ``--set KEY=VALUE``: a terms key path (``settlement.savings_rate=0.6``; a path that does not
  start with a top-level key is read under ``settlement``, so ``savings_rate=0.6`` is the same;
  list items as ``corridors[0].aco_share=0.8``). The changed terms are validated like a file, so
  a bad value fails naming the key. A dated value is replaced for the whole year.
- ``--terms-file OTHER.yaml``: another terms file for the same program id replaces it.

The what-if reads the published snapshot read-only, settles with the baseline terms and with the
changed terms on the same inputs, and returns both with the line-by-line difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from allpayer.errors import AllpayerError
from allpayer.settlement.compare import diff_lines

_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


class WhatIfError(AllpayerError):
    """A what-if override cannot be applied."""


def _split(path: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.split("."):
        m = _PART.match(part)
        if not m:
            raise WhatIfError(f"--set {path!r}: {part!r} is not a key (expected e.g. settlement.savings_rate)")
        out.append(m.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return out


def _coerce(current, raw: str):
    if isinstance(current, bool):
        if raw.lower() in ("true", "yes", "1"):
            return True
        if raw.lower() in ("false", "no", "0"):
            return False
        raise WhatIfError(f"expected true or false, got {raw!r}")
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError:
            raise WhatIfError(f"expected a whole number, got {raw!r}") from None
    return raw


def apply_set(data: dict, assignment: str) -> dict:
    """Set one ``KEY=VALUE`` in terms data (in place) and return it."""
    if "=" not in assignment:
        raise WhatIfError(f"--set {assignment!r}: expected KEY=VALUE")
    key, raw = assignment.split("=", 1)
    key, raw = key.strip(), raw.strip()
    parts = _split(key)
    if parts[0] not in data:
        parts = ["settlement", *parts]
    node = data
    for i, p in enumerate(parts[:-1]):
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            raise WhatIfError(f"--set {key}: no key {'.'.join(map(str, parts[:i + 1]))} in the terms") from None
    last = parts[-1]
    try:
        current = node[last]
    except (KeyError, IndexError, TypeError):
        current = None
        if not isinstance(node, dict):
            raise WhatIfError(f"--set {key}: no such item in the terms") from None
    if isinstance(current, dict) and "value" in current:
        old = current["value"]
        current["value"] = _coerce(old, raw)
        current.pop("reference", None)
        current.pop("assumption", None)
        current["note"] = f"what-if value (was {old})"
        current["basis"] = "INF"
    elif isinstance(current, list) and current and isinstance(current[0], dict) and "from" in current[0]:
        node[last] = raw  # a dated list: one value for the whole year
    else:
        node[last] = _coerce(current, raw) if current is not None else raw
    return data


def with_sets(program, assignments: Sequence[str]):
    """A copy of `program` with the assignments applied, validated as terms."""
    from allpayer.terms.loader import parse_program

    data = program.to_data()
    for a in assignments:
        apply_set(data, a)
    source = f"{program.source_path or program.program_id} (what-if {', '.join(assignments)})"
    return parse_program(data, source)


def replace_programs(programs, *, sets: Sequence[str] = (), terms_file: str | Path | None = None,
                     program_id: str | None = None):
    """The programs with the what-if applied: `sets` on `program_id` (or on every program of the
    list when None), or the program of `terms_file` in place of the one with its id."""
    from allpayer.terms import load_program

    out = list(programs)
    if terms_file is not None:
        other = load_program(terms_file)
        idx = [i for i, p in enumerate(out) if p.program_id == other.program_id]
        if not idx:
            raise WhatIfError(f"{terms_file}: program {other.program_id!r} is not among the programs settled")
        out[idx[0]] = other
    if sets:
        targets = [i for i, p in enumerate(out) if program_id is None or p.program_id == program_id]
        if not targets:
            raise WhatIfError(f"no program {program_id!r} to change")
        for i in targets:
            out[i] = with_sets(out[i], sets)
    return out


@dataclass
class WhatIf:
    baseline: object  # YearResult
    changed: object  # YearResult
    diffs: dict[str, list[dict]]


def what_if(db, year: int, version: str, programs, changed_programs, *, benchmark_reports: dict | None = None,
            participant_revenue: dict | None = None, backend: str = "duckdb",
            spark_master: str = "local[2]", spark_remote: str | None = None, spark_con=None) -> WhatIf:
    """Settle `year` with both sets of terms on the published snapshot (read-only): of the DuckDB
    file `db`, or with `backend` ``spark`` of the warehouse folder `db`, computed by Spark.
    `benchmark_reports` and `participant_revenue` are read by both settlements, as
    `allpayer.settlement.run.compute_year` reads them."""
    from pathlib import Path

    from allpayer import backend as backends
    from allpayer import warehouse
    from allpayer.pipeline import check_database
    from allpayer.runs import open_snapshot
    from allpayer.settlement.run import compute_year

    if check_database(Path(db), backend):
        con = warehouse.open_spark(db, spark_master=spark_master, spark_remote=spark_remote, con=spark_con)
        close = lambda: backends.release_checkpoints(con)  # noqa: E731  (the session stays up)
    else:
        con = open_snapshot(db)
        close = con.disconnect
    try:
        supplied = dict(benchmark_reports=benchmark_reports, participant_revenue=participant_revenue)
        base = compute_year(con, programs, year, version, **supplied)
        new = compute_year(con, changed_programs, year, version, **supplied)
    finally:
        close()
    diffs = {}
    for a, b in zip(base.programs, new.programs):
        la = [ln.__dict__ for ln in a.settlement.lines]
        lb = [ln.__dict__ for ln in b.settlement.lines]
        diffs[a.settlement.program_id] = diff_lines(la, lb)
    return WhatIf(base, new, diffs)


__all__ = ["apply_set", "with_sets", "replace_programs", "what_if", "WhatIf", "WhatIfError"]
