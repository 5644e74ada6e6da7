"""The quality stage: measure results, rates, scores and care gaps of a performance year.

`run_quality` reads the loaded inputs and the core tables of the year (``attribution``,
``member_months``, ``risk_scores`` from `allpayer run`) from a run's connection and writes, each
row tagged with the run id and each table keeping the rows of other years:

- ``quality_measure_results`` (program_id, measure_id, person_id, event_id): one row per member
  (or event) of each measure's initial population, with the practice, the decision and its
  evidence (`allpayer.quality.framework.OUTPUT_COLUMNS`);
- ``quality_rates`` (program_id, measure_id, level, level_id, performance_year): counts and rate
  by ACO, program, practice and HSA, with ``inverse``, ``small_denominator``, ``certified``,
  ``label``, ``reportable`` and ``note``;
- ``quality_scores`` (program_id, measure_id, performance_year): standard, rate, status,
  percentile reached, points, max points, weight, domain, benchmark source, note;
- ``quality_program_scores`` (program_id, performance_year): points earned and possible, the
  quality score, the settlement modifiers it implies, measures scored;
- ``care_gaps`` (program_id, practice_id, person_id, gap_id): open gaps ranked within practice.

`quality_year` opens the database as one published run (`allpayer.runs.begin`), like
`allpayer.pipeline.run_year`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.backend import drop_temp_table, replace_temp_table
from allpayer.errors import RunError
from allpayer.pipeline import _write, check_database, loaded_as_of, programs_for_year, union_aligned
from allpayer.quality import care_gaps as gaps_mod
from allpayer.quality import framework, scores
from allpayer.quality.valuesets import ValueSets, load_valuesets
from allpayer.terms import ProgramTerms

Progress = Callable[[str, int, int], None]

TABLES = ("quality_measure_results", "quality_rates", "quality_scores", "quality_program_scores", "care_gaps")

SCORE_SCHEMA = {
    "program_id": "string", "measure_id": "string", "performance_year": "int32", "domain": "string",
    "standard": "string", "rate": framework.RATE_TYPE, "status": "string", "percentile_reached": "int64",
    "points": "decimal(18, 4)", "max_points": "decimal(18, 4)", "weight": framework.RATE_TYPE,
    "benchmark_source": "string", "note": "string",
}
PROGRAM_SCORE_SCHEMA = {
    "program_id": "string", "performance_year": "int32", "points_earned": "decimal(18, 4)",
    "points_possible": "decimal(18, 4)", "quality_score": framework.RATE_TYPE, "measured": "boolean",
    "gate_met": "boolean", "gate_min_score": framework.RATE_TYPE, "withhold_earned_share": framework.RATE_TYPE,
    "sharing_rate_multiplier": framework.RATE_TYPE, "loss_rate": framework.RATE_TYPE, "measures_scored": "int64",
    "measures_listed": "int64",
}


@dataclass
class QualityResult:
    year: int
    paid_through: dt.date
    programs: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    not_implemented: dict[str, list[str]] = field(default_factory=dict)
    not_reportable: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, Decimal | None] = field(default_factory=dict)


def _memtable(rows: list[dict], schema: dict) -> ir.Table:
    import pyarrow as pa

    s = ibis.schema(schema)
    return ibis.memtable(pa.table({c: [r.get(c) for r in rows] for c in s.names}, schema=s.to_pyarrow()))


def _empty_results() -> ir.Table:
    types = {"program_id": "string", "measure_id": "string", **framework.RESULT_COLUMNS, "practice_id": "string",
             "npi": "string", "tin": "string", "hsa": "string", "performance_year": "int32"}
    return _memtable([], {c: types[c] for c in framework.OUTPUT_COLUMNS})


def run_quality(
    con,
    programs: Sequence[ProgramTerms],
    year: int,
    paid_through: dt.date,
    run_id: str,
    *,
    valuesets: ValueSets | str | Path | None = None,
    benchmarks: str | Path | None = None,
    supplied_results: str | Path | None = None,
    through_load_run: str | None = None,
    progress: Progress | None = None,
    writer: Callable | None = None,
) -> QualityResult:
    """Compute and write the quality tables of `year` for every program whose terms have a
    ``quality`` block (see the module docstring). `valuesets`: a `ValueSets` or the path of the
    user's value-set file (default: the project's lists). `writer` stores each output table
    (default `allpayer.pipeline._write`, a DuckDB database; on a warehouse, the Spark run's
    ``write``)."""
    write = writer or _write
    progs = [p for p in programs_for_year(programs, year) if p.quality is not None]
    tables = set(con.list_tables())
    for needed in ("eligibility", "medical_claim", "attribution", "member_months"):
        if needed not in tables:
            hint = "`allpayer load`" if needed in ("eligibility", "medical_claim") else f"`allpayer run --year {year}`"
            raise RunError(f"table {needed} is missing: run {hint} first")
    att = con.table("attribution")
    if not att.filter(att.performance_year == year).count().to_pyarrow().as_py():
        raise RunError(f"no attribution for {year}: run `allpayer run --year {year}` first")
    vs = valuesets if isinstance(valuesets, ValueSets) else load_valuesets(valuesets)
    vs = vs.for_loaded_codes()  # the claims are read from the loaded tables
    bench = scores.load_benchmarks(benchmarks)
    scores.check_benchmarks(progs, bench, benchmarks)
    reg = framework.registry()
    res = QualityResult(year=year, paid_through=paid_through, programs=[p.program_id for p in progs])

    def inp(name: str) -> ir.Table | None:
        return loaded_as_of(con, name, through_load_run) if name in tables else None

    medical, elig = inp("medical_claim"), inp("eligibility")
    labs, obs, rx = inp("lab_result"), inp("observation"), inp("pharmacy_claim")
    mm = con.table("member_months")
    risk = None
    if "risk_scores" in tables:
        rs = con.table("risk_scores")
        risk = rs.filter((rs.performance_year == year) & (rs.scored_for == "performance_year")).select(
            "program_id", "person_id", "risk_score")
    total, done = len(progs) + 3, 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(what, done, total)

    results, gap_parts, stored = [], [], []
    inverse, certified, labels, not_reportable, implemented = {}, {}, {}, {}, {}
    # What does not depend on the program (each payer's netted claim lines and diagnoses, labs,
    # observations and what is derived from them alone) is built once and shared; each
    # program's own tables are dropped when it is done, a payer's after its last program.
    # A program's context is built when its turn comes, so only the running payer's tables are held.
    # Its own tables have the same names in every program (``_qp_...``, dropped before the next
    # program), as have the payers' tables in turn (`framework.Shared.payer_table`): the measure
    # queries that do not depend on the program's terms are then the same expressions for the
    # next program and payer, and are compiled once (`allpayer.backend.compiled_query`).
    shared = framework.Shared(keep=framework.keeper(con, "_qs"))
    last_of_payer = {p.payer: i for i, p in enumerate(progs)}
    for i, p in enumerate(progs):
        made = []
        # a payer's lines are read for the persons attributed in any of its programs this year
        of_payer = [q.program_id for q in progs if q.payer == p.payer]
        persons = att.filter((att.performance_year == year) & att.attributed & att.program_id.isin(of_payer))
        ctx = framework.build_context(
            p, year, paid_through, medical_claim=medical, eligibility=elig, attribution=att, member_months=mm,
            valuesets=vs, lab_result=labs, observation=obs, pharmacy_claim=rx,
            extra={"supplied_results": str(supplied_results) if supplied_results else None},
            keep=framework.keeper(con, "_qp", made=made), shared=shared,
            claim_persons=persons.select("person_id"),
        )
        n = i + 1
        listed = [m.id for m in p.quality.measures]
        gap_ids = [mid for mid, kind in gaps_mod.GAP_MEASURES.items() if kind in ("all", p.kind) and mid in reg]
        program_results = {}
        for mid in dict.fromkeys(listed + gap_ids):
            if mid not in reg:
                implemented[(p.program_id, mid)] = False
                res.not_implemented.setdefault(p.program_id, []).append(mid)
                continue
            m = reg[mid]
            if m.label.startswith("supplied"):
                # Supplied results have no per-member rows: their rates come from the supplied file.
                inverse[mid] = bool(p.quality.measure(mid).inverse or m.inverse) if mid in listed else m.inverse
                labels[mid] = m.label
                continue
            program_results[mid] = replace_temp_table(con, f"_q_{n}_{mid}", framework.evaluate(m, ctx))
            stored.append(program_results[mid])
            if mid in listed:
                results.append(program_results[mid])
                terms_m = p.quality.measure(mid)
                inverse[mid] = bool(terms_m.inverse or m.inverse)
                certified[mid] = vs.certified(m.valuesets)
                labels[mid] = m.label
                if m.depends_on_sud and ctx.redacted:
                    not_reportable[(p.program_id, mid)] = "not reportable: redacted data"
                    res.not_reportable.setdefault(p.program_id, []).append(mid)
        parts = []
        gap_src = [program_results[m] for m in gap_ids if m in program_results]
        if gap_src:
            parts.append(gaps_mod.gaps_from_results(ibis.union(*gap_src, distinct=False), year, paid_through))
        if "primary_care_visit" in vs:
            parts.append(gaps_mod.no_primary_care_gaps(ctx))
        if parts:
            gap_parts.append(replace_temp_table(con, f"_q_{n}_gaps", union_aligned(parts)))
        for name in made:
            drop_temp_table(con, name)
        if last_of_payer[p.payer] == i:
            shared.drop(con, group=f"payer:{p.payer}")
        step(f"{year}: quality {p.program_id}")
    shared.drop(con)

    out = union_aligned(results) if results else _empty_results()
    res.rows["quality_measure_results"] = write(con, "quality_measure_results", out, year, run_id, "performance_year")
    qmr = con.table("quality_measure_results").filter(lambda t: t.performance_year == year)
    min_d = {p.program_id: (p.quality.min_denominator.value if p.quality.min_denominator else 0) for p in progs}
    aco_id = progs[0].aco.id if progs else "aco"
    rates = framework.rates(qmr, inverse=inverse, min_denominator=min_d, certified=certified, labels=labels,
                            not_reportable=not_reportable, aco_id=aco_id)
    if supplied_results is not None:
        from allpayer.quality.measures.supplied import supplied_rates

        sup = supplied_rates(supplied_results, year, [p.program_id for p in progs])
        pairs = sup.select(_sp="program_id", _sm="measure_id").distinct()
        rates = union_aligned([rates.anti_join(pairs, [rates.program_id == pairs._sp, rates.measure_id == pairs._sm]),
                               sup]).select(*rates.columns)
    res.rows["quality_rates"] = write(con, "quality_rates", rates, year, run_id, "performance_year")
    step(f"{year}: quality rates")

    qr = con.table("quality_rates")
    prog_rates = qr.filter((qr.performance_year == year) & (qr.level == "program")).to_pyarrow().to_pylist()
    by = {(r["program_id"], r["measure_id"]): r for r in prog_rates}
    score_rows, program_rows = [], []
    for p in progs:
        ms = []
        for m in p.quality.measures:
            r = by.get((p.program_id, m.id))
            rate = r["rate"] if r else None
            eligible = (r["denominator"] - (r["exclusions"] or 0)) if r and r["denominator"] is not None else None
            s = scores.score_measure(p, m.id, rate, eligible=eligible,
                                     reportable=(p.program_id, m.id) not in not_reportable,
                                     implemented=implemented.get((p.program_id, m.id), True), benchmarks=bench)
            ms.append(s)
            row = s.row()
            row["weight"] = scores._dec(Fraction(s.weight)) if s.weight is not None else None
            score_rows.append(row)
        ps = scores.program_score(p, ms)
        mods = scores.quality_modifiers(p, ps.quality_score)
        res.scores[p.program_id] = mods["quality_score"]
        program_rows.append({
            "program_id": p.program_id, "performance_year": year, "points_earned": ps.points_earned,
            "points_possible": ps.points_possible, "quality_score": mods["quality_score"],
            "measured": mods["measured"], "gate_met": mods["gate_met"], "gate_min_score": mods["gate_min_score"],
            "withhold_earned_share": mods["withhold_earned_share"],
            "sharing_rate_multiplier": mods["sharing_rate_multiplier"], "loss_rate": mods["loss_rate"],
            "measures_scored": ps.measures_scored, "measures_listed": len(p.quality.measures),
        })
    res.rows["quality_scores"] = write(con, "quality_scores", _memtable(score_rows, SCORE_SCHEMA), year, run_id,
                                        "performance_year")
    res.rows["quality_program_scores"] = write(con, "quality_program_scores",
                                                _memtable(program_rows, PROGRAM_SCORE_SCHEMA), year, run_id,
                                                "performance_year")
    step(f"{year}: quality scores")

    if gap_parts:
        g = union_aligned(gap_parts)
    else:
        g = _memtable([], gaps_mod.GAP_COLUMNS)
    contacts = gaps_mod.contact_fields(elig)
    ranked = gaps_mod.rank_gaps(g, risk=risk, contacts=contacts)
    ranked = ranked.mutate(performance_year=ibis.literal(year, "int32"), paid_through=ibis.literal(paid_through))
    res.rows["care_gaps"] = write(con, "care_gaps", ranked, year, run_id, "performance_year")
    for t in [*stored, *gap_parts]:
        framework.drop_stored(con, t)
    step(f"{year}: care gaps")
    return res


@dataclass
class QualityOutcome:
    run_id: str
    db: str
    paid_through: dt.date
    as_of_load: str | None
    quality: QualityResult
    supplemental_load: object = None


def quality_year(
    db,
    year: int,
    *,
    terms: Sequence | None = None,
    paid_through: dt.date | None = None,
    valuesets: str | Path | None = None,
    benchmarks: str | Path | None = None,
    supplied_results: str | Path | None = None,
    supplemental: str | Path | None = None,
    as_of_load: str | None = None,
    progress: Progress | None = None,
    backend: str = "duckdb",
    spark_master: str = "local[2]",
    spark_remote: str | None = None,
    spark_con=None,
) -> QualityOutcome:
    """Run the quality stage of `year` on the database `db` and publish it as a new snapshot.

    `supplemental`: a lab-result file (input-contract columns; ``data_source`` starting with
    ``supplemental``) loaded first, as its own load run, through the same validation and
    quarantine as any delivery. `backend`: ``duckdb`` (`db` is a DuckDB file) or ``spark`` (`db`
    is a warehouse folder: the measures are computed by Spark, local or through Spark Connect, and
    the tables published as the warehouse's next snapshot). Other arguments as `run_quality` and
    `allpayer.pipeline.run_year`.
    """
    from allpayer import warehouse
    from allpayer.inputs.load import resolve_paid_through
    from allpayer.pipeline import begin_run, latest_load_run, load_run_of
    from allpayer.terms import load_programs, programs_dir

    db = Path(db)
    spark = check_database(db, backend)
    vs = load_valuesets(valuesets)  # a bad value-set file stops here, before a run starts
    term_paths = [Path(t) for t in terms] if terms else [programs_dir() / "vermont"]
    programs = load_programs(term_paths)
    programs_for_year(programs, year)
    if not supplemental:
        sup = None
    elif spark:  # a load validates in DuckDB (`allpayer.warehouse`), then publishes lab_result
        with warehouse.duckdb_session(db) as scratch:
            sup = load_supplemental(scratch, supplemental, paid_through=paid_through)
    else:
        sup = load_supplemental(db, supplemental, paid_through=paid_through)
    record = dict(
        kind="run",
        paid_through=paid_through,
        terms={p.program_id: p.terms_version for p in programs if p.performance_year == year},
        parameters={"stage": "quality", "year": year, "terms": [str(t) for t in term_paths],
                    "valuesets": str(valuesets) if valuesets else None,
                    "benchmarks": str(benchmarks) if benchmarks else None},
    )
    with begin_run(db, spark, record, spark_master=spark_master, spark_remote=spark_remote,
                   spark_con=spark_con) as run:
        run.paid_through = resolve_paid_through(run.con, paid_through)
        load_run = load_run_of(run.con, as_of_load) if as_of_load else latest_load_run(run.con)
        run.parameters["as_of_load"] = load_run
        q = run_quality(run.con, programs, year, run.paid_through, run.run_id, valuesets=vs, benchmarks=benchmarks,
                        supplied_results=supplied_results, through_load_run=load_run, progress=progress,
                        writer=getattr(run, "write", None))
        run.summary = {"rows": q.rows, "programs": q.programs, "not_implemented": q.not_implemented,
                       "not_reportable": q.not_reportable,
                       "scores": {k: (str(v) if v is not None else None) for k, v in q.scores.items()}}
    return QualityOutcome(run_id=run.run_id, db=str(db), paid_through=run.paid_through, as_of_load=load_run,
                          quality=q, supplemental_load=sup)


def load_supplemental(db, path: str | Path, *, paid_through: dt.date | None = None):
    """Load one supplemental lab-result file into ``lab_result`` as a load run (validated and
    quarantined like any delivery). Returns the loader's `TableLoad`."""
    from allpayer import runs
    from allpayer.errors import InputFileError
    from allpayer.inputs import readers
    from allpayer.inputs.load import load_delivery, latest_paid_date

    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), f"supplemental file not found")
    f = readers.InputFile("lab_result", path, path.name)
    delivery = readers.Delivery(folder=path.parent, files={"lab_result": [f]})
    with runs.begin(db, kind="load", paid_through=paid_through,
                    inputs=runs.describe_inputs([path], table="lab_result", source_file=path.name),
                    parameters={"supplemental": str(path)}) as run:
        (loaded,) = load_delivery(run.con, delivery, run.run_id)
        run.paid_through = paid_through or latest_paid_date(run.con)
        run.summary = {"tables": {"lab_result": {k: getattr(loaded, k) for k in ("read", "loaded", "already_loaded", "quarantined")}}}
    return loaded
