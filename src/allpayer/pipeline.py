"""The annual cycle's core stages, run for every program of a performance year.

`run_core` reads the loaded input tables from a run's connection, computes each stage as an Ibis
expression and writes its output tables into the run's private copy of the database (published
atomically by `allpayer.runs`). Each output row carries the `run_id`; a table holds the rows of
every performance year run so far, and a run replaces only the rows of its own year.

Output tables (grain in parentheses; columns are documented with each stage function):

- ``member_months``       (program_id, member_id, month)      program member months with rate-cell columns
- ``attribution``         (program_id, member_id, month)      the monthly roster with the deciding step
- ``attribution_changes`` (program_id, person_id, month)      adds, drops and practice changes with reasons
- ``attribution_reconciliation`` (program_id, member_id, month) our roster against the payer's list, with reasons
- ``tcoc_member_month``   (program_id, member_id, month)      cost by category, FFS basis, shadow claims priced
- ``tcoc_reconciliation`` (payer, service_year, program_id, disposition)  where every cost line went
- ``tcoc_truncation``     (program_id, year, truncation_group) thresholds and truncated amounts
- ``high_cost_claimants`` (program_id, member_id, year)       members whose year's cost reaches the high-cost
                          threshold (before truncation), ranked, with their share of the program's cost
- ``tcoc_summary``        (program_id, level, hsa | practice_id | employer_id, year) TCOC, PMPM, PMPY by level
- ``completion_factors``  (payer, lag)                         chain-ladder factors from the paid-lag triangle
- ``utilization``         (program_id, year)                   admissions, ED visits, readmissions per 1,000
- ``leakage``             (program_id, year, tcoc_category)    out-of-network spending
- ``risk_scores``         (program_id, person_id, payment_year) CMS-HCC scores of PY and base-year members
- ``risk_model_scores``   (program_id, person_id, payment_year, model_version) each model's raw and normalized score and blend weight
- ``risk_score_factors``  (program_id, person_id, payment_year, model_version, factor) every factor of a score: the
                          demographic cell and interactions, each HCC after hierarchies, disease interactions,
                          the HCC count; with its coefficient name and value, and each HCC's CMS label
- ``risk_exclusions``     (program_id, person_id, payment_year) members not scored, with the reason
- ``risk_reference``      (program_id, table)                  the CMS-HCC tables each program scored with: file,
                          origin, SHA-256, rows and any correction (eligible_procedures: one per diagnosis year)
- ``risk_ratios``         (program_id, cell_id)                population risk ratio PY over base, capped
- ``targets``             (program_id, cell_id, month)         expected TCOC: base PMPM x trend x risk x (1 - discount)
- ``target_reconciliation`` (program_id, cell_id, month)      our targets against the payer's, with reasons

Optional inputs read when loaded: ``payer_attribution`` (the payer's list: the roster itself for
a ``payer_supplied`` attribution, else reconciled), ``payer_target`` (the target PMPM of a
``payer_supplied`` target method, else reconciled), ``voluntary_alignment`` and
``exclusion_event`` (see docs/inputs.md). The reconciliation tables hold rows only for programs
the payer sent a list or targets for.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.backend import checkpoint, create_table, insert_rows, is_duckdb, joins_as_written, replace_temp_table
from allpayer.core import targets as targets_mod
from allpayer.core import tcoc
from allpayer.core.attribution import Options as AttributionOptions
from allpayer.core.attribution import (
    RECONCILE_SCHEMA,
    attribute,
    attribution_changes,
    reconcile_attribution,
    store_eligibility_facts,
)
from allpayer.core.claims import (
    DIAGNOSIS_COLUMNS,
    adjusted_line_sums,
    claims_as_of,
    empty_columns,
    medical_claim_lines,
    of_persons,
    pharmacy_claim_lines,
    served_between,
)
from allpayer.core.member_months import eligibility_months, month_end
from allpayer.core.programs import program_months
from allpayer.errors import RunError
from allpayer.inputs.schema import REPLACED_BY, TABLES, replaced_table
from allpayer.terms import ProgramTerms

Progress = Callable[[str, int, int], None]
# Writes a stage's output: (con, table name, expression, year, run id, year column) -> rows of the year.
Writer = Callable[..., int]

STAGES = (
    "member_months",
    "attribution",
    "attribution_changes",
    "attribution_reconciliation",
    "tcoc_member_month",
    "tcoc_reconciliation",
    "tcoc_truncation",
    "high_cost_claimants",
    "tcoc_summary",
    "completion_factors",
    "utilization",
    "leakage",
    "risk_scores",
    "risk_model_scores",
    "risk_score_factors",
    "risk_exclusions",
    "risk_reference",
    "risk_ratios",
    "targets",
    "target_reconciliation",
)

HIGH_COST_THRESHOLD_CENTS = 10_000_000
"""The default high-cost threshold of ``high_cost_claimants``: $100,000 of a member's cost in a
program and year, the level employer and payer reports commonly use for high-cost claimants. It is a
reporting choice, not a contract term: `allpayer run --high-cost-threshold` sets another, and each
row carries the threshold it was listed under."""


@dataclass
class CoreResult:
    year: int
    paid_through: dt.date
    programs: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    # time spent writing attribution's stored steps, by name (part of the attribution stage's seconds)
    work_seconds: dict[str, float] = field(default_factory=dict)
    # time spent outside every stage's table, by part: reading the inputs, the working tables
    # that several stages read, dropping them (with `seconds`, the whole of `run_core`)
    other_seconds: dict[str, float] = field(default_factory=dict)
    # what the run did not compute, and why (a program whose target is CMS's benchmark)
    notes: list[str] = field(default_factory=list)


def _write(con, name: str, expr: ir.Table, year: int, run_id: str, year_column: str | None, *,
           keep_run_ids: bool = False) -> int:
    """Replace the rows of `year` in table `name` with `expr` (tagged with the run id; with
    `keep_run_ids`, rows whose ``run_id`` is set keep it: rows a run carries over from earlier
    runs, see `tag_run_id`)."""
    expr = tag_run_id(expr, run_id, keep_run_ids)
    if year_column is not None and year_column not in expr.columns:
        raise RunError(f"internal: stage {name} lacks its year column {year_column}")
    if name in con.list_tables() and year_column is not None:
        existing = con.table(name)
        if existing.schema() == expr.schema():
            con.raw_sql(f'DELETE FROM "{name}" WHERE "{year_column}" = {int(year)}')
            insert_rows(con, name, expr)
            return con.table(name).filter(con.table(name)[year_column] == year).count().to_pyarrow().as_py()
        # The table's columns changed (a newer code version): keep the other years' rows under
        # the new layout, with NULL in columns they did not have.
        clash = [c for c, t in existing.schema().items() if c in expr.columns and expr[c].type() != t]
        if clash:
            raise RunError(
                f"table {name}: columns {', '.join(clash)} changed type since the last run; "
                f"re-run every year into a new database"
            )
        keep = existing.filter(existing[year_column] != year)
        create_table(con, f"_{name}_keep", keep, overwrite=True)
        merged = union_aligned([expr, con.table(f"_{name}_keep")]).select(*expr.columns)
        create_table(con, name, merged, overwrite=True)
        con.raw_sql(f'DROP TABLE "_{name}_keep"')
    else:
        create_table(con, name, expr, overwrite=True)
    return con.table(name).count().to_pyarrow().as_py()


def tag_run_id(expr: ir.Table, run_id: str, keep_run_ids: bool = False) -> ir.Table:
    """`expr` with column ``run_id`` = `run_id`; with `keep_run_ids`, only where it is NULL (the
    rows a run writes itself, beside rows it keeps from earlier runs with their run ids)."""
    if keep_run_ids and "run_id" in expr.columns:
        return expr.mutate(run_id=expr.run_id.fill_null(run_id))
    return expr.mutate(run_id=ibis.literal(run_id))


def union_aligned(tables: Sequence[ir.Table]) -> ir.Table:
    """UNION ALL of tables whose columns differ: missing columns become typed NULLs, in the
    column order of first appearance."""
    columns: dict[str, object] = {}
    for t in tables:
        for name, dtype in t.schema().items():
            columns.setdefault(name, dtype)
    aligned = [
        t.select(*[t[c] if c in t.columns else ibis.null(dtype).name(c) for c, dtype in columns.items()])
        for t in tables
    ]
    return ibis.union(*aligned, distinct=False)


def loaded_as_of(con, table: str, through_load_run: str | None) -> ir.Table:
    """An input table as it stood after the load run `through_load_run` (all rows when None):
    rows delivered by later loads are left out, so re-running an old run gives the old answer.

    The rows that a later load replaced (a ``restated`` table's rows a later delivery restated,
    the rows a later CCLF delivery superseded) are read back from the table's `replaced_table`:
    the rows loaded by then and replaced only after it."""
    t = con.table(table)
    if through_load_run is None:
        return t
    r = con.table("runs")
    upto = r.filter(r.run_id == through_load_run).seq.max()
    loaded_by = r.filter(r.seq <= upto).select(load_run_id=r.run_id)
    replaced = _replaced_after(con, table, loaded_by)
    if replaced is None and is_duckdb(con) and _every_row_loaded_by(t, loaded_by):
        # Nothing to leave out (the usual case: the latest load): the table itself, so that a
        # query reading it twice (netting, risk diagnoses) scans it instead of first copying
        # every row through the filter.
        return t
    rows = t.semi_join(loaded_by, "load_run_id")
    if replaced is None:
        return rows
    return union_aligned([rows, replaced]).select(*t.columns)


def _replaced_after(con, table: str, loaded_by: ir.Table) -> ir.Table | None:
    """The rows of `table`'s `replaced_table` that the runs `loaded_by` loaded and a later run
    replaced (without `REPLACED_BY`), or None when there are none (or no such table)."""
    name = replaced_table(table)
    if table not in TABLES or name not in con.list_tables():
        return None
    h = con.table(name)
    later = h.semi_join(loaded_by, "load_run_id").anti_join(
        loaded_by.select(**{REPLACED_BY: loaded_by.load_run_id}), REPLACED_BY
    )
    if not later.count().to_pyarrow().as_py():
        return None
    return later.drop(REPLACED_BY)


def _every_row_loaded_by(t: ir.Table, loaded_by: ir.Table) -> bool:
    """Whether every row of `t` was delivered by one of the runs in `loaded_by` (one narrow query:
    the distinct load run ids of `t` that are not among them; a NULL id counts as not)."""
    ids = t.select("load_run_id").distinct()
    return ids.anti_join(loaded_by, "load_run_id").count().to_pyarrow().as_py() == 0


def latest_load_run(con) -> str | None:
    """The id of the latest published load run in the snapshot."""
    if "runs" not in con.list_tables():
        return None
    r = con.table("runs")
    rows = r.filter(r.kind == "load").order_by(ibis.desc(r.seq)).limit(1).select("run_id").to_pyarrow().to_pylist()
    return rows[0]["run_id"] if rows else None


def load_run_of(con, run_id: str) -> str:
    """`run_id` when it is a published load run of the snapshot (``--as-of-load``); otherwise a
    `RunError` naming the latest loads, since inputs as of a run that is not a load hold no row."""
    loads = []
    if "runs" in con.list_tables():
        r = con.table("runs")
        loads = r.filter(r.kind == "load").order_by(r.seq).select("run_id").to_pyarrow().column("run_id").to_pylist()
    if run_id not in loads:
        raise RunError(f"--as-of-load {run_id}: no published load run of that id in the database "
                       f"(latest loads: {', '.join(reversed(loads[-5:])) or 'none'}; see `allpayer runs list`)")
    return run_id


def valuation_date(paid_through: dt.date) -> dt.date:
    """The last complete month end on or before the paid-through date (completion factors)."""
    if month_end(paid_through) == paid_through:
        return paid_through
    return paid_through.replace(day=1) - dt.timedelta(days=1)


def programs_for_year(programs: Sequence[ProgramTerms], year: int) -> list[ProgramTerms]:
    chosen = [p for p in programs if p.performance_year == year]
    if not chosen:
        years = sorted({p.performance_year for p in programs})
        raise RunError(f"no contract terms for performance year {year} (terms cover {years or 'no year'})")
    return chosen


def run_core(
    con,
    programs: Sequence[ProgramTerms],
    year: int,
    paid_through: dt.date,
    run_id: str,
    *,
    through: dt.date | None = None,
    through_load_run: str | None = None,
    progress: Progress | None = None,
    writer: Writer | None = None,
    high_cost_threshold_cents: int = HIGH_COST_THRESHOLD_CENTS,
) -> CoreResult:
    """Run the core stages for every program of `year` with claims paid through `paid_through`.

    `through` (a month) limits the performance-year months computed (year-to-date runs).
    `through_load_run` reads the inputs as they stood after that load run (see `loaded_as_of`).
    `writer` stores each stage's table (default `_write`, a DuckDB database; the Spark backend
    passes `allpayer.warehouse.SparkRun.write`). The stages are the same on every backend.
    `high_cost_threshold_cents`: a member's cost in a program and year (FFS basis, before
    truncation; the year to date in a year-to-date run) from which the member is listed in
    ``high_cost_claimants``.

    On DuckDB the stages' joins are planned as written (`allpayer.backend.joins_as_written`): their
    queries put the claim lines on the left of the joins to program months and smaller tables,
    which DuckDB would otherwise often turn round on its low estimates of the lines.
    """
    with joins_as_written(con):
        return _run_core(con, programs, year, paid_through, run_id, through=through,
                         through_load_run=through_load_run, progress=progress, writer=writer,
                         high_cost_threshold_cents=high_cost_threshold_cents)


def _run_core(
    con,
    programs: Sequence[ProgramTerms],
    year: int,
    paid_through: dt.date,
    run_id: str,
    *,
    through: dt.date | None,
    through_load_run: str | None,
    progress: Progress | None,
    writer: Writer | None,
    high_cost_threshold_cents: int,
) -> CoreResult:
    import time

    # Every part's seconds run from the end of the part before it, so that building a part's
    # query (and any query run to build it) counts in that part: the parts add up to the whole.
    lap = [time.perf_counter()]

    def seconds_since_last_part() -> float:
        now = time.perf_counter()
        secs, lap[0] = now - lap[0], now
        return round(secs, 3)

    progs = programs_for_year(programs, year)
    tables = set(con.list_tables())
    for needed in ("eligibility", "medical_claim", "provider_roster"):
        if needed not in tables:
            raise RunError(f"table {needed} is not loaded: run `allpayer load` first")
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    if through is not None:
        if through.year != year:
            # a month before the year would publish the year with no months; one after it is the
            # whole year under a label that says otherwise
            raise RunError(f"--through {through:%Y-%m} is not a month of {year}: give one from {year}-01 to {year}-12, "
                           "or leave it out for the whole year")
        end = min(end, month_end(through))
    res = CoreResult(year=year, paid_through=paid_through, programs=[p.program_id for p in progs])
    total = len(STAGES)
    done = 0

    def stage(name: str, expr: ir.Table | Callable[[], ir.Table], year_column: str | None = "performance_year") -> None:
        """Write a stage's table; `expr` may be a function that builds it."""
        nonlocal done
        if progress:
            progress(f"{year}: {name}", done, total)
        if callable(expr):
            expr = expr()
        res.rows[name] = (writer or _write)(con, name, expr, year, run_id, year_column)
        res.seconds[name] = seconds_since_last_part()
        done += 1
        if progress:
            progress(f"{year}: {name}", done, total)

    def inp(name: str) -> ir.Table:
        return loaded_as_of(con, name, through_load_run)

    def work_table(name: str, expr: ir.Table) -> ir.Table:
        """`_work_table`, its seconds counted in `other_seconds`."""
        out = _work_table(con, name, expr)
        res.other_seconds[f"working table {name}"] = seconds_since_last_part()
        return out

    def drop_work(name: str) -> None:
        """Drop a working table as soon as no later stage reads it (a stage that still did would
        fail, not differ). At state scale the run's working tables do not fit in DuckDB's memory
        together, so each one dropped early leaves room for the stages after it."""
        con.drop_table(WORK_PREFIX + name, force=True)
        res.other_seconds[f"drop working table {name}"] = seconds_since_last_part()

    eligibility = inp("eligibility")
    roster = inp("provider_roster")
    employer_group = inp("employer_group") if "employer_group" in tables else None
    medical_rows = inp("medical_claim")
    pharmacy_rows = inp("pharmacy_claim") if "pharmacy_claim" in tables else None
    payer_lists = inp("payer_attribution") if "payer_attribution" in tables else None
    payer_targets = inp("payer_target") if "payer_target" in tables else None
    alignments = inp("voluntary_alignment") if "voluntary_alignment" in tables else None
    events = inp("exclusion_event") if "exclusion_event" in tables else None
    listed = _programs_with_rows(payer_lists, progs)
    targeted = _programs_with_rows(payer_targets, progs)
    res.other_seconds["inputs"] = seconds_since_last_part()

    first_year = min([year - 1] + [b.year for p in progs for b in p.target.base_years])
    all_months = eligibility_months(eligibility, dt.date(first_year, 1, 1), end)
    if not is_duckdb(con):
        all_months = work_table("eligibility_months", all_months)
    # On DuckDB the eligibility months are not stored: each reader expands the spans of the months
    # it reads (the member months this year's, the base months their years', the attribution facts
    # their effective period's), where writing every month of every year (21 million rows at
    # 650,000 members, 5.9-6.5 s) took longer than the three expansions together (about 3 s more
    # for their readers: benchmarks/README.md). Spark stores them once, as before.
    pm = program_months(all_months.filter((all_months.month >= start) & (all_months.month <= end)),
                        progs, employer_group)
    stage("member_months", pm)
    pm = con.table("member_months").filter(lambda t: t.performance_year == year)
    # Base-year member months of every trended_base program, in one query (a working table of the
    # columns they are read for): the risk ratios and the targets read them instead of deriving
    # them again. Written now, before the claim lines (on Spark, while the eligibility months are
    # still in memory: the claim lines written next do not fit beside them at state scale). A
    # performance-year panel is taken as the program's member months here, and narrowed to the
    # attributed members once attribution has run.
    trended = [p for p in progs if p.target.method == "trended_base"]
    base_all = None
    if trended:
        base_all = targets_mod.programs_base_months(all_months, trended, performance_months=pm)
        base_all = work_table("base_months", base_all.select(*targets_mod.BASE_MONTH_COLUMNS))

    work = WorkTables(con)
    # Spark plans one large query per program for minutes, so there each attribution step is
    # written as a working table; DuckDB runs the single expression faster than the steps one
    # after another (benchmarks/README.md, "Attribution in stored steps"), except for the steps
    # that several programs share: the candidate service lines (one scan of the claim lines for
    # every program with the same code list instead of one per program), the services of a
    # payer's periods, and what the exclusions read of the eligibility months. Every choice gives
    # the same rows (tests/core/test_attribution_stored.py).
    if is_duckdb(con):
        attribution_store = WorkTables(con, prefix="shared", only=SHARED_ATTRIBUTION_STEPS)
        attribution_work = [work, attribution_store]
    else:
        attribution_store = work
        attribution_work = [work]
    # What attribution reads of the eligibility months (the effective year's coverage and the
    # death dates) is written now, and the eligibility months (Spark: the stored ones) are dropped
    # before the claim lines are written: at state scale they no longer fit beside them.
    for p in progs:
        store_eligibility_facts(all_months, p, attribution_store)
    res.other_seconds["attribution eligibility facts"] = seconds_since_last_part()
    drop_work("eligibility_months")  # read by the member months, base months and attribution only

    # The netted claim lines. The lines delivered in several rows (2% of them) are summed once,
    # into a working table. On DuckDB each stage then nets the loaded rows it reads against those
    # sums: that costs less than writing the 24 million netted lines of a state once and reading
    # them back (at 650,000 members the lines' table took 11-14 s to write, and beside it the
    # other stages had less memory). Spark stores the netted lines as one working table, as it
    # would otherwise plan the netting again in every stage. The core stages read no diagnosis or
    # procedure code of a netted line (risk scoring reads the claims as loaded), nor its
    # modifiers, cost-sharing amounts or provenance: the lines leave those columns out (a stage
    # that needed one would fail to build, not differ).
    sums = work_table("claim_sums", adjusted_line_sums(claims_as_of(medical_rows, paid_through)))
    med = medical_claim_lines(medical_rows, paid_through, sums=sums)
    med = med.drop(*[c for c in med.columns if _CODE_COLUMN.fullmatch(c) or c in _UNREAD_LINE_COLUMNS])
    if not is_duckdb(con):
        med = work_table("claim_lines", med)
    rx = None
    if pharmacy_rows is not None:  # the pharmacy lines are netted as the medical ones, against stored sums
        rx_sums = work_table("pharmacy_claim_sums", adjusted_line_sums(claims_as_of(pharmacy_rows, paid_through)))
        rx = pharmacy_claim_lines(pharmacy_rows, paid_through, sums=rx_sums)

    from allpayer.reference.primary_care import primary_care_codes_for

    def rosters() -> ir.Table:
        """Every program's roster (on Spark each step of each written as a working table)."""
        out = []
        code_lists: dict = {}  # one table per code list: programs sharing a list share its services
        for p in progs:
            spec = p.attribution.primary_care_codes
            if spec and spec not in code_lists:
                code_lists[spec] = primary_care_codes_for(spec)
            codes = code_lists[spec] if spec else None
            opts = AttributionOptions(claims_payers=tuple(p.attribution.claims_payers or ()) or None)
            out.append(
                attribute(
                    p, pm, med, roster, codes,
                    voluntary_alignment=_voluntary_alignment(alignments, p),
                    payer_supplied=_payer_list(payer_lists, p) if p.program_id in listed else None,
                    eligibility_months=all_months,
                    exclusion_events=_exclusion_events(events, p),
                    as_of=paid_through,
                    options=opts,
                    store=attribution_store,
                )
            )
        return ibis.union(*out, distinct=False)

    stage("attribution", rosters)
    seconds: dict[str, float] = {}
    for w in attribution_work:
        w.drop_all()  # the roster is written: its steps are no longer needed
    res.other_seconds["drop attribution steps"] = seconds_since_last_part()
    for w in attribution_work:
        for k, v in w.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
    res.work_seconds = {f"attribution:{k}": round(v, 3) for k, v in sorted(seconds.items())}
    att = con.table("attribution").filter(lambda t: t.performance_year == year)
    if base_all is not None:  # a performance-year panel is the year's attributed members, known from here
        base_all = targets_mod.in_attributed_panel(base_all, att, trended)
    stage("attribution_changes", attribution_changes(att).mutate(performance_year=ibis.literal(year, "int32")))
    recs = [reconcile_attribution(att, _payer_list(payer_lists, p), p.program_id) for p in progs if p.program_id in listed]
    stage("attribution_reconciliation",
          _or_empty(recs, RECONCILE_SCHEMA).mutate(performance_year=ibis.literal(year, "int32")))

    scopes = {p.program_id: tcoc.scope_for(p.kind) for p in progs}
    # The cost lines as the TCOC tables read them, medical and pharmacy. They are not stored: each
    # stage nets and classifies only the lines of its own dates (the performance year, the base
    # years), where storing them (summed per member, payer, plan, month and category) meant
    # grouping every line of the claims span first (at 650,000 members 35 million lines, 13-14 s).

    def cost_lines_between(first: dt.date, last: dt.date) -> ir.Table:
        parts = [tcoc.cost_lines(served_between(med, first, last))]
        if rx is not None:
            parts.append(tcoc.cost_lines(None, served_between(rx, first, last)))
        return ibis.union(*parts, distinct=False)

    # (the program months lie in the performance year, up to `end`: see `programs_for_year`)
    mmc = tcoc.member_month_cost(cost_lines_between(start, end), pm, scopes, unique_months=True)
    stage("tcoc_member_month", mmc)
    mmc = con.table("tcoc_member_month").filter(lambda t: t.performance_year == year)
    # Only this year's lines are joined to the program months: the table keeps this service year.
    in_year = cost_lines_between(start, dt.date(year, 12, 31))
    stage("tcoc_reconciliation", tcoc.cost_reconciliation(in_year, pm, scopes, unique_months=True),
          "service_year")

    my = tcoc.member_year_cost(mmc)
    truncs = []
    for p in progs:
        settings = tcoc.truncation_settings(p)
        if settings:
            truncs.append(tcoc.truncation(my.filter(my.program_id == p.program_id), **settings).summary)
    if truncs:
        stage("tcoc_truncation", ibis.union(*truncs, distinct=False), "year")
    stage("high_cost_claimants", tcoc.high_cost_claimants(my, high_cost_threshold_cents), "year")

    employer = employer_group
    summaries = [
        tcoc.tcoc_aggregate(mmc, level="program", period="year"),
        tcoc.tcoc_aggregate(mmc, level="hsa", period="year", attribution=att),
        tcoc.tcoc_aggregate(mmc, level="practice", period="year", attribution=att),
    ]
    if employer is not None:
        summaries.append(tcoc.tcoc_aggregate(mmc, level="employer", period="year", employer_group=employer))
    stage("tcoc_summary", union_aligned(summaries), "year")

    valuation = valuation_date(paid_through)
    # only the rows of the incurred months the factors read (the others would be left after the
    # service month of every row of the claims span is worked out)
    pay = tcoc.claim_payment_rows(medical_rows, pharmacy_rows, incurred_between=tcoc.completion_window(valuation))
    comp = tcoc.completion(pay, valuation)
    stage("completion_factors", comp.factors.mutate(performance_year=ibis.literal(year, "int32")))

    events = tcoc.utilization_events(med, pm, unique_months=True, months_between=(start, end))
    stage("utilization", tcoc.utilization_rates(events, pm, period="year"), "year")
    # Leakage joins its lines to the year's program months (a program's effective period lies in
    # its performance year), so only the year's lines are classified and joined.
    leak = tcoc.leakage_lines(served_between(med, start, end), roster, pm, scopes, unique_months=True)
    stage("leakage", tcoc.leakage(leak, period="year"), "year")

    base_cost_all = None
    if base_all is not None:
        # The targets read the base months' cost on the FFS basis only (expected_cost's basis), and
        # of the member months only their keys and rate cells: the other columns are not written.
        base_years = sorted({b.year for p in trended for b in p.target.base_years})
        base_lines = cost_lines_between(dt.date(base_years[0], 1, 1), dt.date(base_years[-1], 12, 31))
        base_cost = tcoc.member_month_cost(base_lines, base_all, scopes, amounts=("ffs_paid_cents",), unique_months=True)
        base_cost_all = work_table("base_member_month_cost",
                                   base_cost.select(*targets_mod.BASE_COST_COLUMNS, "ffs_paid_cents"))
    if not is_duckdb(con):
        drop_work("claim_lines")
    drop_work("claim_sums")  # the base-year cost is the last stage that reads the netted lines
    drop_work("pharmacy_claim_sums")
    risk_programs = [p for p in progs if p.target.risk_adjustment.method == "cms_hcc"]
    for p in risk_programs:
        if p.target.method != "trended_base":
            raise RunError(f"{p.program_id}: risk adjustment needs base-year members (target method trended_base)")
    if risk_programs:
        # Risk-adjustment-eligible diagnoses of each (tables year, diagnosis year) the programs
        # need, derived from the claims once and shared by every program and scored year.
        # Each row keeps the payer of its claims: a program reads its own payer's rows, or every row
        # (`target.risk_adjustment.diagnosis_claims`); the claims of no payer that any program reads
        # are left out of the scan.
        needs = sorted({(_hcc_tables_year(p), y - 1) for p in risk_programs for y in _scored_years(p)})
        scored = eligibility.filter(eligibility.payer.isin(sorted({p.payer for p in risk_programs})))
        dx_all = work_table("risk_diagnoses", _risk_diagnoses_all(medical_rows, needs, scored.select("person_id"),
                                                                  _diagnosis_payers(risk_programs)))
        res.notes.extend(dict.fromkeys(_check_risk_diagnosis_years(risk_programs, dx_all)))
        from allpayer.core.risk import kidney_transplants, labelled_factors

        transplants = None
        if any(p.target.risk_adjustment.esrd == "esrd_dialysis" for p in risk_programs):
            transplants = kidney_transplants(of_persons(medical_rows, scored.select("person_id")))
        scored_programs = []
        try:  # the scoring's materialized tables are dropped however the stages end
            for p in risk_programs:
                scored_programs.append(_cms_hcc_scores(p, eligibility, dx_all, transplants, base_all,
                                                       cache=is_duckdb(con)))
            stage("risk_scores", union_aligned([sp.scores for sp in scored_programs]))
            for name, part in RISK_DETAIL_TABLES.items():
                table = union_aligned([getattr(sp, part) for sp in scored_programs])
                stage(name, labelled_factors(table) if name == "risk_score_factors" else table)
        finally:
            for sp in scored_programs:
                sp.release()
        stage("risk_reference", union_aligned([
            _risk_reference(p, sp.references) for p, sp in zip(risk_programs, scored_programs)]))
        drop_work("risk_diagnoses")
        # The ratios from the scores as written: nobody is scored twice.
        stored = con.table("risk_scores").filter(lambda t: t.performance_year == year)
        stage("risk_ratios", union_aligned([
            _cms_hcc_ratio(p, stored, pm, base_all).mutate(
                program_id=ibis.literal(p.program_id), performance_year=ibis.literal(year, "int32"))
            for p in risk_programs]))
    targets = []
    for p in progs:
        if p.target.method == "mssp_benchmark":
            # CMS computes an MSSP benchmark and reports it to the ACO: the settlement reads it
            # from the benchmark report, so the run writes no target rows for the program
            res.notes.append(f"{p.program_id}: no targets computed: target method mssp_benchmark takes CMS's "
                             f"benchmark at settlement (allpayer settle --benchmark-report {p.program_id}=REPORT.csv)")
            continue
        base_cost = None
        if p.target.method == "trended_base":
            base_cost = base_cost_all.filter(base_cost_all.program_id == p.program_id)
        supplied = None
        if p.target.method == "payer_supplied" and p.program_id in targeted:
            supplied = payer_targets.filter(payer_targets.program_id == p.program_id)
        ratio = None
        if p.target.risk_adjustment.method == "cms_hcc":
            # The ratios as written above: the targets query then does not score every member again.
            rr = con.table("risk_ratios")
            ratio = rr.filter((rr.program_id == p.program_id) & (rr.performance_year == year)).drop(
                "program_id", "performance_year", "run_id")
        t = targets_mod.expected_cost(p, performance_months=pm, base_member_month_cost=base_cost, risk_ratio_table=ratio,
                                      payer_targets=supplied)
        targets.append(t.monthly)
    targets = union_aligned(targets) if targets else _or_empty([], targets_mod.MONTHLY_SCHEMA)
    stage("targets", targets.mutate(performance_year=ibis.literal(year, "int32")))
    ours = con.table("targets").filter(lambda t: t.performance_year == year)
    trecs = [targets_mod.reconcile_targets(ours, payer_targets, p.program_id) for p in progs if p.program_id in targeted]
    stage("target_reconciliation",
          _or_empty(trecs, targets_mod.TARGET_RECONCILE_SCHEMA).mutate(performance_year=ibis.literal(year, "int32")))
    for name in WORK_TABLES:
        con.drop_table(WORK_PREFIX + name, force=True)
    res.other_seconds["drop working tables"] = seconds_since_last_part()
    return res


WORK_PREFIX = "_run_work_"
_CODE_COLUMN = re.compile(r"(diagnosis_code|diagnosis_poa|procedure_code|procedure_date)_\d+")
# (row_hash: the fingerprint column of databases loaded by earlier versions, until their next load)
_UNREAD_LINE_COLUMNS = frozenset((
    "hcpcs_modifier_1", "hcpcs_modifier_2", "hcpcs_modifier_3", "hcpcs_modifier_4", "hcpcs_modifier_5",
    "charge_amount", "coinsurance_amount", "copayment_amount", "deductible_amount", "total_cost_amount",
    "admit_source_code", "drg_code_type", "drg_code", "service_unit_quantity", "diagnosis_code_type",
    "procedure_code_type", "substance_use_redacted", "data_source", "source_file", "line_number", "row_hash",
    "adjustment_rows", "first_paid_date",
    # read by no stage (the run's cut-off by load run applies to the rows before netting); the
    # load run id alone is about 0.7 GB of the 24 million lines at 650,000 members
    "load_run_id", "claim_line_end_date", "in_network_flag", "outside_eligibility",
))
SHARED_ATTRIBUTION_STEPS = frozenset(("service_lines", "services", "coverage_months", "eligibility_deaths"))
"""The attribution steps stored on DuckDB (the others stay inside each program's one query):
those that programs share, so that each is computed once."""
WORK_TABLES = ("eligibility_months", "claim_sums", "pharmacy_claim_sums", "claim_lines", "base_months",
               "base_member_month_cost", "risk_diagnoses")


def _work_table(con, name: str, expr: ir.Table) -> ir.Table:
    """`expr` written once as a working table of the run (dropped before the run is published):
    the netted claim lines and the eligibility months feed every stage, so each stage's query
    reads them instead of repeating their derivation (smaller queries, one computation)."""
    if name not in WORK_TABLES:
        raise RunError(f"internal: unknown working table {name}")
    if not is_duckdb(con):
        return checkpoint(expr, name)  # Spark: kept by the session, freed when the run ends
    # A temporary table: held in DuckDB's buffer pool (spilled to the temp directory beyond the
    # memory limit) and never compressed into the database file, which about halves the CPU of
    # writing it (the netted claim lines at 25,000 members: 1.9 against 3.9 CPU s).
    return replace_temp_table(con, WORK_PREFIX + name, expr)


class WorkTables:
    """Working tables of a stage, dropped once its output is written (and never published).

    ``work(name, expr, key=None)`` writes `expr` once as a table of the run's connection (DuckDB,
    or a Spark checkpoint, as `_work_table` does) and returns a table reading it, so the
    queries that use it stay small and its rows are computed once: attribution stores each of its
    steps (see ``allpayer.core.attribution.Store``). A call whose `key` equals an earlier call's returns the
    earlier table (programs that share a payer, code list and periods share their services).
    ``seconds`` sums the time spent writing the tables of each name. With `only`, just the
    steps of those names are written; any other call returns `expr` itself.

    On DuckDB they are temporary tables (in memory, spilled to disk when large, never written to
    the database file); on Spark checkpoints kept by the session (`allpayer.backend.checkpoint`).
    """

    def __init__(self, con, prefix: str = "step", temp: bool | None = None, only: frozenset[str] | None = None):
        self.con = con
        self.prefix = prefix
        self.only = only
        self.temp = is_duckdb(con) if temp is None else temp
        self.names: list[str] = []
        self.seconds: dict[str, float] = {}
        self._by_key: dict = {}

    def __call__(self, name: str, expr: ir.Table, key=None) -> ir.Table:
        import time

        if self.only is not None and name not in self.only:
            return expr  # not stored: the caller's query computes it
        if key is not None and key in self._by_key:
            return self._by_key[key]
        if not name.replace("_", "").isalnum():
            raise RunError(f"internal: bad working table name {name!r}")
        table = f"{WORK_PREFIX}{self.prefix}{len(self.names)}_{name}"
        t0 = time.perf_counter()
        if is_duckdb(self.con):
            if self.temp:
                out = replace_temp_table(self.con, table, expr)
            else:
                out = create_table(self.con, table, expr, overwrite=True)
        else:  # Spark: kept by the session (no Parquet written), freed when the run ends
            out = checkpoint(expr, name)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        self.names.append(table)
        if key is not None:
            self._by_key[key] = out
        return out

    def drop_all(self) -> None:
        for table in reversed(self.names):
            self.con.drop_table(table, force=True)
        self.names.clear()
        self._by_key.clear()


def _programs_with_rows(table: ir.Table | None, programs: Sequence[ProgramTerms]) -> set[str]:
    """The programs among `programs` that an optional payer input has rows for (one small query)."""
    if table is None:
        return set()
    ids = [p.program_id for p in programs]
    got = table.filter(table.program_id.isin(ids)).select("program_id").distinct().to_pyarrow()
    return set(got.column("program_id").to_pylist())


def _or_empty(parts: list[ir.Table], schema: ibis.Schema) -> ir.Table:
    """UNION ALL of `parts`, or an empty table of `schema` when there are none."""
    if parts:
        return ibis.union(*parts, distinct=False)
    return ibis.memtable(schema.to_pyarrow().empty_table())


def _payer_list(lists: ir.Table, program: ProgramTerms) -> ir.Table:
    t = lists.filter((lists.program_id == program.program_id) & (lists.payer == program.payer))
    return t.select("program_id", "member_id", "month", "practice_id", "npi", "tin")


def _voluntary_alignment(table: ir.Table | None, program: ProgramTerms) -> ir.Table | None:
    """The program payer's designations, for programs whose terms have a voluntary_alignment step."""
    if table is None or not any(s.rule == "voluntary_alignment" for s in program.attribution.steps):
        return None
    t = table.filter(table.payer == program.payer)
    return t.select("member_id", "npi", "tin", "designation_date", "end_date")


def _exclusion_events(table: ir.Table | None, program: ProgramTerms) -> ir.Table | None:
    """The program payer's events for this program (or for every program of the payer)."""
    if table is None or not program.attribution.exclusions:
        return None
    t = table.filter((table.payer == program.payer)
                     & (table.program_id.isnull() | (table.program_id == program.program_id)))
    return t.select("member_id", "reason", "event_date", "end_date")


def _hcc_tables_year(program: ProgramTerms) -> int:
    """The payment year of the CMS-HCC tables a program scores with (its performance year, or the
    tables year its terms state)."""
    return program.target.risk_adjustment.hcc_tables_year(program.performance_year)


def _scored_years(program: ProgramTerms) -> list[int]:
    """The payment years a program's members are scored for: the performance year, then its base years."""
    return [program.performance_year] + sorted({b.year for b in program.target.base_years})


def _diagnosis_payer(program: ProgramTerms) -> str | None:
    """The payer whose claims a program's risk scores read diagnoses from (None: every payer's)."""
    return program.target.risk_adjustment.diagnosis_claims_payer(program.payer)


def _diagnosis_payers(programs: Sequence[ProgramTerms]) -> list[str] | None:
    """The payers whose claims any of the scored `programs` read diagnoses from (None: every payer's,
    when one of them reads every payer's claims)."""
    payers = {_diagnosis_payer(p) for p in programs}
    return None if None in payers else sorted(payers)


def _risk_diagnoses_all(medical_rows: ir.Table, needs: Sequence[tuple[int, int]], persons: ir.Table,
                        payers: Sequence[str] | None = None) -> ir.Table:
    """The risk-adjustment-eligible diagnoses of every (tables year, diagnosis year) in `needs`, in
    one query (the claim rows read and their codes unnested once for all of them), of the claims of
    `persons` (``person_id``: those enrolled with a payer of a program that is scored; nobody else
    is scored) paid by one of `payers` (None: any payer). One row per person, payer of the claims,
    code and year: each program reads the rows of its own payer, or all of them
    (`_diagnosis_payer`)."""
    from allpayer.core import risk
    from allpayer.reference.hcc import eligible_procedures_for, load_hcc_reference

    # each diagnosis year's own CPT/HCPCS list where shipped, else the tables year's
    references = {ty: load_hcc_reference(ty) for ty in sorted({ty for ty, _ in needs})}
    procedures = {(ty, dy): eligible_procedures_for(dy, references[ty])[0] for ty, dy in needs}
    # Secondary diagnosis columns empty in every row are left out of the codes unnested per row.
    rows = medical_rows.drop(*empty_columns(medical_rows, DIAGNOSIS_COLUMNS[1:]))
    if payers is not None:
        rows = rows.filter(rows.payer.isin(list(payers)))
    rows = of_persons(rows, persons)
    # The loader stores a code only in its normalized form (a row whose code is not one is
    # quarantined), so the codes are not normalized again here; scoring reads each person's
    # distinct codes, so the claims are not kept.
    return risk.risk_adjustment_diagnoses_by_year(rows, procedures, needs, codes_normalized=True, per_person=True,
                                                  by_payer=True)


def _check_risk_diagnosis_years(programs: Sequence[ProgramTerms], diagnoses: ir.Table) -> list[str]:
    """Stop the run when a year a program scores has no risk-adjustment-eligible diagnosis in the
    claims of the year before (`diagnoses`: those of `_risk_diagnoses_all`): its claims were not
    loaded, every member's score would be demographic alone, and the ratio of that year to the
    other would move the target by as much as its cap allows. Returns the run's notes for a year
    whose claims have months with no diagnosis at all (claims loaded from mid-year: the scores of
    that year are understated, and with them the ratio). A program that reads its own payer's
    claims (`_diagnosis_payer`) is checked on that payer's diagnoses alone."""
    d = diagnoses
    got = d.select("tables_year", "diagnosis_year", "payer", month=d.service_date.month()).distinct()
    found: dict[tuple, set] = {}
    for r in got.to_pyarrow().to_pylist():
        for payer in (r["payer"], None):  # None: the months of every payer's claims
            found.setdefault((r["tables_year"], r["diagnosis_year"], payer), set()).add(r["month"])
    notes = []
    for p in programs:
        payer = _diagnosis_payer(p)
        of = "" if payer is None else f" of payer {payer}"
        for year in _scored_years(p):
            months = found.get((_hcc_tables_year(p), year - 1, payer))
            if not months:
                raise RunError(
                    f"{p.program_id}: the risk scores of {year} read the diagnoses of {year - 1} claims{of}, and the "
                    f"loaded claims have no risk-adjustment-eligible diagnosis with a through date in {year - 1}: "
                    f"load the {year - 1} claims, or leave risk adjustment out of the program's terms"
                )
            missing = sorted(set(range(1, 13)) - months)
            if missing:
                notes.append(
                    f"{p.program_id}: the risk scores of {year} read the diagnoses of {year - 1} claims{of}, and no "
                    f"claim through date in {', '.join(f'{year - 1}-{m:02d}' for m in missing)} has one: if those "
                    f"months' claims are not loaded, the {year} scores are understated"
                )
    return notes


RISK_DETAIL_TABLES = {"risk_model_scores": "model_scores", "risk_score_factors": "detail",
                      "risk_exclusions": "excluded"}
"""The tables that show the work behind ``risk_scores``, with the `RiskScores` field of each."""


def _cms_hcc_scores(program: ProgramTerms, eligibility: ir.Table, diagnoses: ir.Table,
                    transplants: ir.Table | None = None, base_months: ir.Table | None = None,
                    cache: bool = False) -> "risk.RiskScores":
    """CMS-HCC scores of the program's performance-year members (diagnoses of the year before)
    and of its base-year members scored with the performance year's model (``scored_for``), with
    the work behind them: a `risk.RiskScores` whose ``scores``, ``model_scores``, ``detail`` and
    ``excluded`` carry program_id, scored_for and performance_year (``hcc_diagnoses`` is left as
    computed: the run does not publish it).
    `diagnoses`: the risk-adjustment-eligible diagnoses by tables_year, diagnosis_year and payer of
    the claims (`_risk_diagnoses_all`), of which the program reads its own payer's rows, or every
    row when its terms say ``diagnosis_claims: all``;
    `transplants`: kidney transplants from the claims (``risk.kidney_transplants``), read when the
    program scores ESRD members with the dialysis model (a member with a graft is not scored);
    `cache`: materialize the scoring's intermediate tables (DuckDB) so that the four tables do not
    each compute the scores again.

    Every enrollment of the program's payer counts, whatever its payer type. A Medicaid, commercial
    or self-funded program's ``risk_score`` is its CMS-HCC score rescaled so that its base-year
    members' member-month-weighted mean is 1.0 (`base_months`: the run's base months), labelled so;
    ``blended_score`` keeps the CMS-HCC score. The rescaling does not change the risk ratio; the
    model scores and factors stay those of the CMS-HCC score."""
    import dataclasses

    from allpayer.core import risk
    from allpayer.reference.hcc import load_hcc_reference

    py = program.performance_year
    terms = risk.program_cms_hcc_terms(program.target.risk_adjustment, py)
    tables_year = _hcc_tables_year(program)
    reference = load_hcc_reference(tables_year)
    esrd_reference = load_hcc_reference(tables_year, ("E24",)) if terms.esrd == "esrd_dialysis" else None
    if tables_year != py:
        # Same model versions, tables of another payment year (stated in the terms).
        terms = dataclasses.replace(terms, model_year=tables_year, parameters_year=py)
    elig = eligibility.filter(eligibility.payer == program.payer)
    payer = _diagnosis_payer(program)  # whose claims' diagnoses count (None: every payer's)

    def scored(payment_year: int, scored_for: str) -> risk.RiskScores:
        persons = risk.persons_from_eligibility(
            elig, payment_year=payment_year, payer_types=None,
            transplants=transplants if esrd_reference is not None else None)
        dx = diagnoses.filter((diagnoses.tables_year == tables_year) & (diagnoses.diagnosis_year == payment_year - 1))
        if payer is not None:
            dx = dx.filter(dx.payer == payer)
        dx = dx.drop("tables_year", "diagnosis_year", "payer")
        result = risk.cms_hcc_scores(persons, dx, reference, terms, payment_year=payment_year,
                                     esrd_reference=esrd_reference, cache=cache)
        tags = dict(program_id=ibis.literal(program.program_id), scored_for=ibis.literal(scored_for),
                    performance_year=ibis.literal(py, "int32"))
        return dataclasses.replace(result, **{
            name: getattr(result, name).mutate(**tags) for name in risk.RiskScores.TABLES if name != "hcc_diagnoses"
        })

    parts = [scored(py, "performance_year")] + [scored(by, "base_year") for by in _scored_years(program)[1:]]
    out = risk.RiskScores(
        **{name: union_aligned([getattr(part, name) for part in parts]) for name in risk.RiskScores.TABLES},
        cached=tuple(t for part in parts for t in part.cached),
        references=parts[0].references,  # every year of the program scores with the same tables
    )
    if program.kind == "medicare" or base_months is None:
        return out
    # Not a Medicare population: the CMS-HCC score is rescaled to a base-year mean of 1.0 (the
    # program's base-year members, weighted by their member months of each base year).
    label = "rescaled to a base-year mean of 1.0"
    scores = out.scores
    rescaled = risk.rescale_to_base_year(
        scores, scores.filter(scores.scored_for == "base_year"),
        base_months.filter(base_months.program_id == program.program_id), label=label,
    )
    return dataclasses.replace(out, scores=rescaled.mutate(
        risk_score=rescaled.rescaled_score, score_label=rescaled.score_label + ", " + rescaled.score_source,
    ).drop("base_year_mean", "rescaled_score", "score_source"))


def _risk_reference(program: ProgramTerms, references: Sequence) -> ir.Table:
    """Where the tables a program scored with came from (`references`: the `HccReference`s of its
    scores, ``RiskScores.references``): one row per table (the CMS-HCC tables of its tables year,
    the ESRD model's when it scores ESRD members with it, the HCC names) with payment_year, origin,
    file, sha256, rows and note (e.g. a correction applied); the CPT/HCPCS lists that filtered the
    claims, one row per diagnosis year of its scored years (the note names the year); and
    ``diagnosis_claims``, whose claims the diagnoses were read from (the terms' key of that name:
    the program's payer's, or every payer's)."""
    from allpayer.reference.hcc import eligible_procedures_for, hcc_labels

    sources = [(",".join(ref.models), s) for ref in references for s in ref.sources if s.table != "eligible_procedures"]
    models = ",".join(dict.fromkeys(m for ref in references for m in ref.models))
    sources += [(models, eligible_procedures_for(year - 1, references[0])[1])
                for year in sorted(_scored_years(program))]
    labels, labels_source = hcc_labels()
    sources.append((",".join(dict.fromkeys(labels.column("model_version").to_pylist())), labels_source))
    rows = [{"program_id": program.program_id, "performance_year": program.performance_year, "models": models,
             **s.__dict__} for models, s in sources]
    payer = _diagnosis_payer(program)
    rows.append({
        "program_id": program.program_id, "performance_year": program.performance_year, "models": models,
        "table": "diagnosis_claims", "payment_year": references[0].payment_year,
        "origin": "terms: target.risk_adjustment.diagnosis_claims",
        "file": Path(program.source_path).name if program.source_path else None, "sha256": None, "rows": None,
        "note": (f"the diagnoses of the claims of payer {payer} (the program's payer) only" if payer is not None
                 else "the diagnoses of the claims of every payer of the persons scored"),
    })
    return ibis.memtable(rows, schema=ibis.schema({
        "program_id": "string", "performance_year": "int32", "models": "string", "table": "string",
        "payment_year": "int32", "origin": "string", "file": "string", "sha256": "string", "rows": "int64",
        "note": "string",
    }))


def _cms_hcc_ratio(program: ProgramTerms, scores: ir.Table, pm: ir.Table, base_months: ir.Table) -> ir.Table:
    """The population risk ratio per rate cell from the program's stored scores (member-month-weighted
    means, performance year over base year): ``raw_ratio`` before, and ``ratio`` after, the terms'
    cap and floor (the targets apply them to ``raw_ratio`` in the same way)."""
    from allpayer.core import risk

    ra = program.target.risk_adjustment
    cap = None if ra.ratio_cap is None else 1 + ra.ratio_cap.value
    floor = None if ra.ratio_floor is None else 1 - ra.ratio_floor.value

    s = scores.filter(scores.program_id == program.program_id)
    perf = s.filter(s.scored_for == "performance_year")
    base = s.filter(s.scored_for == "base_year")
    perf_mm = targets_mod.assign_cells(pm.filter(pm.program_id == program.program_id), program)
    base_mm = targets_mod.assign_cells(base_months.filter(base_months.program_id == program.program_id), program)
    return risk.risk_ratio(perf, perf_mm, base, base_mm, cell="cell_id", score="risk_score", cap=cap, floor=floor)


@dataclass
class RunOutcome:
    run_id: str
    db: str
    paid_through: dt.date
    as_of_load: str | None
    core: CoreResult
    # wall seconds around the core stages: "open" (the snapshot copied and opened, the cutoff and
    # load found), "publish" and "reports" (see `allpayer.runs.Run.seconds`), and "total" (the whole run)
    seconds: dict[str, float] = field(default_factory=dict)


def check_database(db: Path, backend: str) -> bool:
    """Whether a computing stage runs on Spark over warehouse folder `db` (`backend` ``spark``)
    rather than on the DuckDB file `db`; an error when `db` is missing or not of that kind."""
    from allpayer import warehouse

    if backend == "spark":
        if not warehouse.is_warehouse(db):
            raise RunError(f"{db}: warehouse not found (load data first with `allpayer load --backend spark`)")
        return True
    if backend != "duckdb":
        raise RunError(f"unknown backend {backend!r}: expected duckdb or spark")
    if not Path(db).exists():
        raise RunError(f"{db}: database not found (load data first with `allpayer load`)")
    return False


def begin_run(db: Path, spark: bool, record: dict, *, spark_master: str = "local[2]",
              spark_remote: str | None = None, spark_con=None):
    """The run of a computing stage on `db` (see `check_database`): `allpayer.warehouse.begin` on
    Spark (local at `spark_master`, Spark Connect at `spark_remote`, or the connection
    `spark_con`), else `allpayer.runs.begin` on the DuckDB file. `record`: the run's kind,
    paid-through date, terms, parameters and inputs, as `runs.begin` takes them."""
    from allpayer import runs, warehouse

    if spark:
        return warehouse.begin(db, **record, spark_master=spark_master, spark_remote=spark_remote, con=spark_con)
    return runs.begin(db, **record)


def run_year(
    db,
    year: int,
    *,
    terms: Sequence | None = None,
    paid_through: dt.date | None = None,
    through: dt.date | None = None,
    as_of_load: str | None = None,
    progress: Progress | None = None,
    backend: str = "duckdb",
    spark_master: str = "local[2]",
    spark_remote: str | None = None,
    spark_con=None,
    high_cost_threshold_cents: int = HIGH_COST_THRESHOLD_CENTS,
) -> RunOutcome:
    """Run the core stages of `year` on the database `db` and publish the result as a new
    snapshot (a failure leaves the last snapshot in place).

    `terms`: contract-terms files or folders (default: the shipped Vermont programs).
    `paid_through`: the claims cutoff (default: the latest paid date loaded, never today).
    `as_of_load`: read inputs as they stood after that load run (default: the latest load).
    `high_cost_threshold_cents`: see `run_core` (recorded with the run's parameters).
    `backend`: ``duckdb`` (`db` is a DuckDB file) or ``spark`` (`db` is a warehouse folder, see
    `allpayer.warehouse`; Spark local at `spark_master`, or Spark Connect at `spark_remote`, or
    the Ibis PySpark connection `spark_con`).
    """
    import time

    from allpayer.inputs.load import resolve_paid_through
    from allpayer.terms import load_programs, programs_dir

    t_start = time.perf_counter()
    db = Path(db)
    spark = check_database(db, backend)
    term_paths = [Path(t) for t in terms] if terms else [programs_dir() / "vermont"]
    programs = load_programs(term_paths)
    programs_for_year(programs, year)
    record = dict(
        kind="run",
        paid_through=paid_through,
        terms={p.program_id: p.terms_version for p in programs if p.performance_year == year},
        parameters={"year": year, "through": through.isoformat() if through else None,
                    "terms": [str(t) for t in term_paths], "high_cost_threshold_cents": high_cost_threshold_cents},
    )
    with begin_run(db, spark, record, spark_master=spark_master, spark_remote=spark_remote,
                   spark_con=spark_con) as run:
        run.paid_through = resolve_paid_through(run.con, paid_through)
        load_run = load_run_of(run.con, as_of_load) if as_of_load else latest_load_run(run.con)
        run.parameters["as_of_load"] = load_run
        opened = time.perf_counter() - t_start
        core = run_core(run.con, programs, year, run.paid_through, run.run_id,
                        through=through, through_load_run=load_run, progress=progress,
                        writer=getattr(run, "write", None), high_cost_threshold_cents=high_cost_threshold_cents)
        run.summary = {"rows": core.rows, "seconds": core.seconds, "other_seconds": core.other_seconds,
                       "programs": core.programs}
        t_end = time.perf_counter()
    seconds = {"open": round(opened, 3), **run.seconds}
    if not run.seconds:  # a backend whose run does not time its end: publishing and all after it
        seconds["publish"] = round(time.perf_counter() - t_end, 3)
    seconds["total"] = round(time.perf_counter() - t_start, 3)
    return RunOutcome(run_id=run.run_id, db=str(db), paid_through=run.paid_through, as_of_load=load_run, core=core,
                      seconds=seconds)
