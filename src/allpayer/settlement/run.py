"""Settle every program of a performance year, distribute, publish and post.

`compute_year(con, programs, year, version, ...)` reads the engine's tables and returns the
settlements, distributions and employer statements (nothing written). `write_year(con, ...)`
writes them as tables; `settle_year(db, ...)` does both inside `allpayer.runs.begin` (copy ->
write -> atomic publish) and then posts to the payments ledger.

Tables (grain in parentheses; money in int64 cents, rates DECIMAL(18,10)):

- ``settlement_lines`` (program_id, performance_year, version, line_no): line_id, label, step,
  amount_cents or rate, term, note, depends, run_id, paid_through.
- ``settlement_line_history`` (run_id, program_id, version, line_no): the same lines of every
  settle run, kept for diffs between runs.
- ``settlement_statements`` (program_id, performance_year, version): payer, aco_id, kind, method,
  member_months, quality_score, target, actual, gross, shared, net, fixed payment performance,
  combined, the forecast range of the net (forecast only), terms_version, core_run_id,
  paid_through, run_id.
- ``distribution`` (program_id, performance_year, version, participant_id): role
  (participant | reserve), hsa, weight, share, allocated (first split), limit, final, at_limit,
  rounds, fixed_payment_performance, combined. Final over all rows (the reserve row included)
  sums to the program's net.
- ``employer_statements`` (program_id, performance_year, version, employer_id): members,
  member_months, target, actual, gross of the employer's own members, counted by the program
  statement's rules (`employer_figures`: the same per-cell target, truncation and completion, so
  that they add up to the program's), and the ACO's share of the program's settlement allocated
  to the employer (by its target); amounts of employers with fewer members than the suppression
  threshold are withheld (NULL, suppressed).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Sequence

import ibis

from allpayer.backend import create_table, insert_rows
from allpayer.errors import AllpayerError
from allpayer.money import cents_to_dollars, largest_remainder
from allpayer.pipeline import union_aligned
from allpayer.settlement import inputs as inputs_mod
from allpayer.settlement.distribution import DistributionResult, distribute_program
from allpayer.settlement.engine import Settlement, SettlementError, settle_program, with_overrides
from allpayer.settlement.versions import check_version, core_run_of, forecast_actual, runout_note, year_end_core_run

SMALL_CELL = 11
"""Employer-facing outputs suppress cells under this many members (preamble rule)."""

RATE_TYPE = "decimal(18,10)"
WEIGHT_TYPE = "decimal(38,10)"


@dataclass
class ProgramResult:
    program: object
    settlement: Settlement
    distribution: DistributionResult | None
    employers: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forecast_low_net_cents: int | None = None
    forecast_high_net_cents: int | None = None


@dataclass
class YearResult:
    year: int
    version: str
    core_run_id: str
    paid_through: dt.date | None
    programs: list[ProgramResult] = field(default_factory=list)


def employer_figures(settlement: Settlement, bases: Sequence[inputs_mod.EmployerBase]) -> list[inputs_mod.EmployerBase]:
    """Each employer's target and actual as the program's statement counts them, so that an
    employer alone in its program gets exactly the program's figures and the employers' figures
    (with the months without an employer, ``employer_id`` None, which are then left out) add up to
    the program's.

    `bases` (:func:`allpayer.settlement.inputs.employer_bases`) carry each employer's part of the
    target (split per rate cell), its FFS-basis TCOC and its part of the truncated amount. From the
    statement's lines, in the statement's order:

    1. the actual before truncation (``actual_tcoc``, else ``actual_ffs``) less the employers'
       FFS-basis TCOC (not zero where the fixed-payment definition or a forecast's completion to
       ultimate replaced the FFS basis) is split over them by their FFS-basis TCOC;
    2. less the truncated amount (``truncated_amount``): each employer's own part (its members'
       amounts above the threshold), or the statement's amount split by those parts where the two
       differ;
    3. plus the completion for claims after the run-out (``completion``), split by the actual
       after truncation (negative amounts weigh 0).

    Every split is by largest remainder, so each line's parts add up to the line to the cent.
    Returns the bases with ``actual_cents`` = the actual counted (``target_cents`` unchanged)."""
    if not bases or not (settlement.has("actual_tcoc") or settlement.has("actual_ffs")):
        return list(bases)  # no employers, or a statement without the generic actual lines (MSSP bridge)

    def split(total: int, weights: Sequence[int]) -> list[int]:
        ws = [max(int(w), 0) for w in weights]
        if not total:
            return [0] * len(ws)
        if sum(ws) == 0:
            ws = [1] * len(ws)
        return largest_remainder(total, ws)

    ffs = [b.actual_cents for b in bases]
    before = settlement.amount("actual_tcoc") if settlement.has("actual_tcoc") else settlement.amount("actual_ffs")
    actual = [a + d for a, d in zip(ffs, split(int(before) - sum(ffs), ffs))]
    if settlement.has("truncated_amount"):
        cut = -int(settlement.amount("truncated_amount"))
        own = [b.truncated_amount_cents for b in bases]
        parts = own if sum(own) == cut else split(cut, own)
        actual = [a - c for a, c in zip(actual, parts)]
    if settlement.has("completion"):
        actual = [a + c for a, c in zip(actual, split(int(settlement.amount("completion")), actual))]
    return [replace(b, actual_cents=a) for b, a in zip(bases, actual)]


def employer_shares(net_cents: int, employers: Sequence[inputs_mod.EmployerBase]) -> list[dict]:
    """The ACO's share of the program's settlement for each employer: the net split by each
    employer's members' months x target (largest remainder), with its own target and actual."""
    weights = [Decimal(max(e.target_cents, 0)) for e in employers]
    shares = largest_remainder(net_cents, weights) if employers and sum(weights) > 0 else [0] * len(employers)
    out = []
    for e, share in zip(employers, shares):
        small = e.members < SMALL_CELL
        out.append({
            "employer_id": e.employer_id,
            "members": None if small else e.members,
            "member_months": None if small else e.member_months,
            "target_cents": None if small else e.target_cents,
            "actual_cents": None if small else e.actual_cents,
            "gross_cents": None if small else e.target_cents - e.actual_cents,
            "aco_share_cents": share,
            "suppressed": small,
            "note": f"fewer than {SMALL_CELL} members: cost cells suppressed" if small else "",
        })
    return out


def compute_program(con, program, year: int, version: str, paid_through: dt.date | None,
                    *, inputs_override: dict | None = None, benchmark_report=None,
                    participant_revenue_cents: int | None = None) -> ProgramResult:
    """Settle and distribute one program (reads the engine's tables; writes nothing).

    With a `benchmark_report` (path), a Medicare program is settled through the MSSP calculator
    (`allpayer.settlement.medicare_bridge`) instead of its own settlement steps; a program whose
    target is CMS's MSSP benchmark (``target.method: mssp_benchmark``) needs one."""
    if program.target.method == "mssp_benchmark" and benchmark_report is None:
        raise SettlementError(
            f"{program.program_id}: its target is CMS's MSSP benchmark (target.method mssp_benchmark), which the "
            f"run does not compute: settle it with --benchmark-report {program.program_id}=REPORT.csv (CMS's "
            f"benchmark report)")
    inp, notes = inputs_mod.program_inputs(con, program, year, paid_through=paid_through,
                                           participant_revenue_cents=participant_revenue_cents)
    runout = runout_note(program, version, paid_through)
    if runout:
        notes.append(runout)
    if inputs_override:
        inp = with_overrides(inp, **inputs_override)
    low = high = None
    if benchmark_report is not None:
        from allpayer.settlement import medicare_bridge as mb

        report = mb.read_benchmark_report(benchmark_report)
        if report.participant_revenue is None:
            rev, how = inputs_mod.participant_revenue(con, program, year, supplied_cents=participant_revenue_cents,
                                                      paid_through=paid_through, needed=True)
            if rev is not None:
                report = replace(report, participant_revenue=Decimal(rev) / 100)
                notes.append(f"participant revenue {cents_to_dollars(rev)} (not in the benchmark report): {how}")
        s = mb.settle_medicare(program, year, mb.engine_aggregates(con, program, year), report,
                               quality_score=inp.quality_score, met_quality_standard=inp.quality_gate_met,
                               fixed_payment_performance_cents=inp.fixed_payment_performance_cents)
        notes.append(f"settled through the MSSP calculator with the benchmark report {benchmark_report}")
        if version == "forecast":
            notes.append("forecast range not computed for a benchmark-report settlement")
        return _finish(con, program, year, s, notes, None, None)
    if version == "forecast" and paid_through is not None:
        fc = forecast_actual(con, program, year, paid_through)
        notes.extend(fc.notes)
        notes.append(f"forecast: FFS actual completed from {cents_to_dollars(fc.paid_cents)} to "
                     f"{cents_to_dollars(fc.point_cents)} (range {cents_to_dollars(fc.low_cents)} to "
                     f"{cents_to_dollars(fc.high_cents)}), valuation month {fc.valuation_month:%Y-%m}")
        s_low = settle_program(program, with_overrides(inp, actual_cents=fc.high_cents, completed_to_ultimate=True))
        s_high = settle_program(program, with_overrides(inp, actual_cents=fc.low_cents, completed_to_ultimate=True))
        low, high = s_low.net_cents, s_high.net_cents
        inp = with_overrides(inp, actual_cents=fc.point_cents, completed_to_ultimate=True, actual_note=(
            f"forecast: paid {cents_to_dollars(fc.paid_cents)} completed to ultimate with development factors "
            f"(range {cents_to_dollars(fc.low_cents)} to {cents_to_dollars(fc.high_cents)})"))
    s = settle_program(program, inp)
    return _finish(con, program, year, s, notes, low, high)


def _finish(con, program, year, s, notes, low, high) -> ProgramResult:
    dist = None
    if program.settlement.distribution is not None:
        bases = inputs_mod.participant_bases(con, program, year)
        dist = distribute_program(program, s.net_cents, bases)
    employers = []
    if program.kind in ("self_funded", "commercial"):
        figures = employer_figures(s, inputs_mod.employer_bases(con, program, year))
        named = [e for e in figures if e.employer_id is not None]
        outside = sum(e.member_months for e in figures if e.employer_id is None)
        if named and outside:
            notes.append(f"{outside:,} attributed member months have no employer group: their target and actual are "
                         "in the program's statement and in no employer's")
        employers = employer_shares(s.net_cents, named)
    return ProgramResult(program, s, dist, employers, notes, low, high)


def compute_year(con, programs, year: int, version: str, *, inputs_override: dict | None = None,
                 benchmark_reports: dict | None = None, participant_revenue: dict | None = None) -> YearResult:
    """Settle every program of `year`. `participant_revenue`: program id -> cents, a supplied
    participant revenue for the revenue caps (overrides the terms and the claims)."""
    check_version(version)
    core = year_end_core_run(core_run_of(con, year), year, version)
    chosen = [p for p in programs if p.performance_year == year]
    if not chosen:
        years = sorted({p.performance_year for p in programs})
        raise AllpayerError(f"no contract terms for performance year {year} (terms cover {years or 'no year'})")
    res = YearResult(year, version, core["run_id"], core["paid_through"])
    for p in chosen:
        res.programs.append(compute_program(con, p, year, version, core["paid_through"],
                                            inputs_override=(inputs_override or {}).get(p.program_id),
                                            benchmark_report=(benchmark_reports or {}).get(p.program_id),
                                            participant_revenue_cents=(participant_revenue or {}).get(p.program_id)))
    unknown = set(benchmark_reports or {}) - {p.program_id for p in chosen}
    if unknown:
        raise AllpayerError(f"benchmark report for unknown program(s): {', '.join(sorted(unknown))}")
    unknown = set(participant_revenue or {}) - {p.program_id for p in chosen}
    if unknown:
        raise AllpayerError(f"participant revenue for unknown program(s): {', '.join(sorted(unknown))}")
    return res


# ------------------------------------------------------------------------------------------------
# tables


def line_rows(result: YearResult, run_id: str) -> list[dict]:
    rows = []
    for pr in result.programs:
        for ln in pr.settlement.lines:
            rows.append({
                "program_id": pr.settlement.program_id, "performance_year": result.year, "version": result.version,
                "line_no": ln.line_no, "line_id": ln.line_id, "label": ln.label, "step": ln.step,
                "amount_cents": ln.amount_cents, "rate": None if ln.rate is None else str(ln.rate),
                "term": ln.term, "note": ln.note, "depends": ",".join(ln.depends),
                "run_id": run_id, "paid_through": result.paid_through,
            })
    return rows


LINE_SCHEMA = {
    "program_id": "string", "performance_year": "int32", "version": "string", "line_no": "int32",
    "line_id": "string", "label": "string", "step": "string", "amount_cents": "int64", "rate": "string",
    "term": "string", "note": "string", "depends": "string", "run_id": "string", "paid_through": "date",
}


def statement_rows(result: YearResult, run_id: str) -> list[dict]:
    rows = []
    for pr in result.programs:
        s = pr.settlement
        rows.append({
            "program_id": s.program_id, "performance_year": result.year, "version": result.version,
            "payer": s.payer, "aco_id": s.aco_id, "kind": s.kind, "method": s.method,
            "member_months": int(s.line("member_months").rate) if s.has("member_months") else None,
            "quality_score": str(s.rate("quality_score")) if s.has("quality_score") else None,
            "quality_note": s.line("quality_score").note if s.has("quality_score") else "",
            "target_cents": s.target_cents, "actual_cents": s.actual_cents, "gross_cents": s.gross_cents,
            "shared_cents": s.shared_cents, "net_cents": s.net_cents,
            "fixed_payment_performance_cents": s.fixed_payment_performance_cents, "combined_cents": s.combined_cents,
            "forecast_low_net_cents": pr.forecast_low_net_cents, "forecast_high_net_cents": pr.forecast_high_net_cents,
            "terms_version": getattr(pr.program, "terms_version", ""), "notes": "; ".join(pr.notes),
            "core_run_id": result.core_run_id, "paid_through": result.paid_through, "run_id": run_id,
        })
    return rows


STATEMENT_SCHEMA = {
    "program_id": "string", "performance_year": "int32", "version": "string", "payer": "string", "aco_id": "string",
    "kind": "string", "method": "string", "member_months": "int64", "quality_score": "string",
    "quality_note": "string", "target_cents": "int64", "actual_cents": "int64", "gross_cents": "int64",
    "shared_cents": "int64", "net_cents": "int64", "fixed_payment_performance_cents": "int64",
    "combined_cents": "int64", "forecast_low_net_cents": "int64", "forecast_high_net_cents": "int64",
    "terms_version": "string", "notes": "string", "core_run_id": "string", "paid_through": "date", "run_id": "string",
}


def distribution_rows(result: YearResult, run_id: str) -> list[dict]:
    rows = []
    for pr in result.programs:
        d = pr.distribution
        if d is None:
            continue
        base = {"program_id": pr.settlement.program_id, "performance_year": result.year, "version": result.version}
        for a in d.allocations:
            rows.append({**base, "participant_id": a.participant_id, "role": "participant", "hsa": a.hsa,
                         "weight": str(a.weight.quantize(Decimal("1e-10"))), "share": str(a.share),
                         "allocated_cents": a.initial_cents, "limit_cents": a.limit_cents, "final_cents": a.final_cents,
                         "at_limit": a.at_limit, "rounds": a.rounds,
                         "fixed_payment_performance_cents": a.fixed_payment_performance_cents,
                         "combined_cents": a.combined_cents, "run_id": run_id})
        rows.append({**base, "participant_id": f"aco_reserve:{pr.settlement.aco_id}", "role": "reserve", "hsa": None,
                     "weight": None, "share": None, "allocated_cents": d.reserve_rate_cents, "limit_cents": None,
                     "final_cents": d.reserve_cents, "at_limit": False, "rounds": d.rounds,
                     "fixed_payment_performance_cents": 0, "combined_cents": d.reserve_cents, "run_id": run_id})
    return rows


DISTRIBUTION_SCHEMA = {
    "program_id": "string", "performance_year": "int32", "version": "string", "participant_id": "string",
    "role": "string", "hsa": "string", "weight": "string", "share": "string", "allocated_cents": "int64",
    "limit_cents": "int64", "final_cents": "int64", "at_limit": "boolean", "rounds": "int32",
    "fixed_payment_performance_cents": "int64", "combined_cents": "int64", "run_id": "string",
}


def employer_rows(result: YearResult, run_id: str) -> list[dict]:
    rows = []
    for pr in result.programs:
        for e in pr.employers:
            rows.append({"program_id": pr.settlement.program_id, "performance_year": result.year,
                         "version": result.version, **e, "run_id": run_id})
    return rows


EMPLOYER_SCHEMA = {
    "program_id": "string", "performance_year": "int32", "version": "string", "employer_id": "string",
    "members": "int64", "member_months": "int64", "target_cents": "int64", "actual_cents": "int64",
    "gross_cents": "int64", "aco_share_cents": "int64", "suppressed": "boolean", "note": "string", "run_id": "string",
}

_DECIMALS = {"settlement_lines": {"rate": RATE_TYPE}, "settlement_line_history": {"rate": RATE_TYPE},
             "settlement_statements": {"quality_score": RATE_TYPE},
             "distribution": {"weight": WEIGHT_TYPE, "share": RATE_TYPE}}


def _table(rows: list[dict], schema: dict, decimals: dict) -> ibis.Table:
    t = ibis.memtable({k: [r.get(k) for r in rows] for k in schema}, schema=schema)
    return t.mutate(**{c: t[c].cast(ty) for c, ty in decimals.items()})


def _replace(con, name: str, rows: list[dict], schema: dict, year: int, version: str | None,
             replace_table=None) -> int:
    """Replace the rows of (year[, version]) of table `name` with `rows`. `replace_table(con,
    name, expr)`: how a whole new version of a table is written where rows cannot be deleted (a
    warehouse's Spark run, `allpayer.warehouse.SparkRun.replace_table`)."""
    expr = _table(rows, schema, _DECIMALS.get(name, {}))
    if replace_table is not None:
        if name in con.list_tables():
            old = con.table(name)
            gone = old.performance_year == year
            if version is not None:
                gone &= old.version == version
            expr = union_aligned([expr, old.filter(~gone)])
        replace_table(con, name, expr)
        return len(rows)
    if name in con.list_tables():
        where = f'performance_year = {int(year)}'
        if version is not None:
            where += f" AND version = '{version}'"
        con.raw_sql(f'DELETE FROM "{name}" WHERE {where}')
        if rows:
            insert_rows(con, name, expr)
    else:
        create_table(con, name, expr, overwrite=True)
    return len(rows)


def _append(con, name: str, rows: list[dict], schema: dict, replace_table=None) -> int:
    expr = _table(rows, schema, _DECIMALS.get(name, {}))
    if replace_table is not None:
        if name in con.list_tables():
            expr = union_aligned([con.table(name), expr])
        replace_table(con, name, expr)
        return len(rows)
    if name in con.list_tables():
        if rows:
            insert_rows(con, name, expr)
    else:
        create_table(con, name, expr, overwrite=True)
    return len(rows)


def write_year(con, result: YearResult, run_id: str, *, replace_table=None) -> dict[str, int]:
    """Write the settlement tables of `result` (see the module docstring); `replace_table` as `_replace`."""
    lines = line_rows(result, run_id)
    y, v, r = result.year, result.version, replace_table
    counts = {
        "settlement_lines": _replace(con, "settlement_lines", lines, LINE_SCHEMA, y, v, r),
        "settlement_line_history": _append(con, "settlement_line_history", lines, LINE_SCHEMA, r),
        "settlement_statements": _replace(con, "settlement_statements", statement_rows(result, run_id),
                                          STATEMENT_SCHEMA, y, v, r),
        "distribution": _replace(con, "distribution", distribution_rows(result, run_id), DISTRIBUTION_SCHEMA, y, v, r),
        "employer_statements": _replace(con, "employer_statements", employer_rows(result, run_id), EMPLOYER_SCHEMA,
                                        y, v, r),
    }
    return counts


# ------------------------------------------------------------------------------------------------
# one call: compute, publish, post


@dataclass
class SettleOutcome:
    run_id: str
    db: str
    result: YearResult
    rows: dict[str, int]
    postings: list[str] = field(default_factory=list)


def load_terms(terms: Sequence | None):
    from allpayer.terms import load_programs, programs_dir

    paths = [Path(t) for t in terms] if terms else [programs_dir() / "vermont"]
    return load_programs(paths), paths


def settle_year(db, year: int, version: str = "initial", *, terms: Sequence | None = None, post: bool = True,
                store_url: str | None = None, benchmark_reports: dict | None = None,
                participant_revenue: dict | None = None, backend: str = "duckdb", spark_master: str = "local[2]",
                spark_remote: str | None = None, spark_con=None) -> SettleOutcome:
    """Settle every program of `year`, publish the tables as a new snapshot and post to the
    ledger (``post=False`` to skip). `backend`: ``duckdb`` (`db` is a DuckDB file) or ``spark``
    (`db` is a warehouse folder, read and written by Spark; the ledger store defaults to
    ``<folder>.store.sqlite`` beside it), as `allpayer.pipeline.run_year`."""
    from allpayer import runs
    from allpayer.pipeline import begin_run, check_database

    check_version(version)
    db = Path(db)
    spark = check_database(db, backend)
    programs, paths = load_terms(terms)
    record = dict(
        kind="run",
        terms={p.program_id: p.terms_version for p in programs if p.performance_year == year},
        parameters={"stage": "settle", "year": year, "version": version, "terms": [str(p) for p in paths],
                    "benchmark_reports": {k: str(v) for k, v in (benchmark_reports or {}).items()},
                    "participant_revenue_cents": dict(participant_revenue or {})},
        inputs=runs.describe_inputs(list((benchmark_reports or {}).values())),
    )
    with begin_run(db, spark, record, spark_master=spark_master, spark_remote=spark_remote,
                   spark_con=spark_con) as run:
        result = compute_year(run.con, programs, year, version, benchmark_reports=benchmark_reports,
                              participant_revenue=participant_revenue)
        run.paid_through = result.paid_through
        rows = write_year(run.con, result, run.run_id, replace_table=getattr(run, "replace_table", None))
        run.summary = {"rows": rows, "core_run_id": result.core_run_id,
                       "net_cents": {p.settlement.program_id: p.settlement.net_cents for p in result.programs}}
    out = SettleOutcome(run.run_id, str(db), result, rows)
    if post:
        from allpayer.settlement.postings import post_year

        out.postings = post_year(db, result, run.run_id, store_url=store_url)
    return out


def read_published(con, year: int, version: str) -> dict[str, list[dict]]:
    """The published lines of a version, by program."""
    if "settlement_lines" not in con.list_tables():
        return {}
    t = con.table("settlement_lines")
    t = t.filter((t.performance_year == year) & (t.version == version))
    out: dict[str, list[dict]] = {}
    for r in con.to_pyarrow(t.order_by(["program_id", "line_no"])).to_pylist():
        out.setdefault(r["program_id"], []).append(r)
    return out


def to_json(result: YearResult) -> str:
    return json.dumps({
        "year": result.year, "version": result.version, "core_run_id": result.core_run_id,
        "paid_through": result.paid_through.isoformat() if result.paid_through else None,
        "programs": [{"program_id": p.settlement.program_id, "net_cents": p.settlement.net_cents,
                      "combined_cents": p.settlement.combined_cents} for p in result.programs],
    }, indent=2)


__all__ = ["compute_year", "compute_program", "write_year", "settle_year", "YearResult", "ProgramResult",
           "employer_shares", "read_published", "SMALL_CELL"]
