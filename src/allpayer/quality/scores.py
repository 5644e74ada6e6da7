"""Quality scores per program, as its terms' ``quality:`` block says (domain.md R10, R8.5).

Per measure (`score_measure`):

- a measure the program lists as pay-for-reporting (``standard: reporting``, or every measure of a
  ``reporting_only`` program) earns full points (``scoring.reporting_points: full``) or none
  (``none``) once it has a rate;
- a pay-for-performance measure earns the points of the highest benchmark percentile its rate
  reaches (``rate >= benchmark``; ``rate <= benchmark`` for an inverse measure), and
  ``below_scale_points`` below the lowest one. Benchmarks come from the measure's ``benchmarks``
  in the terms, or from a benchmark table (``benchmark_table``) the user supplies
  (``--benchmarks FILE``, CSV ``benchmark_table,measure_id,percentile,rate,source``). A measure
  with only a ``target`` earns the top of the scale when the rate meets the target and
  ``below_scale_points`` when it does not;
- a measure is *not scored* (left out of both the points earned and the points possible, with a
  note) when it has no rate, when its denominator is below the program's ``min_denominator``,
  when its data are not reportable (substance-use data redacted under 42 CFR Part 2), when it is
  not implemented, or when its benchmark table was not supplied.

Program score (`program_score`): ``quality_score = Σ points / Σ max points`` over the scored
measures; with ``scoring.domain_weights``, the weighted mean of each domain's
``Σ points / Σ max points`` (the weights of domains without a scored measure are spread over the
others in proportion). The score is kept as an exact fraction and written as DECIMAL(18,10).

Settlement modifiers (`quality_modifiers`) from the program's ``settlement.quality_modifiers``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

from allpayer.errors import InputFileError
from allpayer.terms import ProgramTerms

SCORE_PLACES = Decimal("0.0000000001")  # DECIMAL(18,10)


def _dec(f: Fraction | Decimal | None) -> Decimal | None:
    if f is None:
        return None
    if isinstance(f, Fraction):
        f = Decimal(f.numerator) / Decimal(f.denominator)
    return f.quantize(SCORE_PLACES, rounding=ROUND_HALF_UP)


@dataclass
class MeasureScore:
    program_id: str
    measure_id: str
    performance_year: int
    domain: str
    standard: str  # performance | reporting
    rate: Decimal | None
    status: str  # scored | reported | not_scored
    percentile_reached: int | None = None
    points: Decimal | None = None
    max_points: Decimal | None = None
    weight: Decimal | None = None
    benchmark_source: str | None = None
    note: str | None = None

    def row(self) -> dict:
        return {k: getattr(self, k) for k in (
            "program_id", "measure_id", "performance_year", "domain", "standard", "rate", "status",
            "percentile_reached", "points", "max_points", "weight", "benchmark_source", "note")}


@dataclass
class ProgramScore:
    program_id: str
    performance_year: int
    points_earned: Decimal
    points_possible: Decimal
    quality_score: Fraction | None
    measures_scored: int
    measures: list[MeasureScore] = field(default_factory=list)


def load_benchmarks(path: str | Path | None) -> dict[tuple[str, str], dict[int, tuple[Decimal, str]]]:
    """Benchmark tables from a CSV: {(benchmark_table, measure_id): {percentile: (rate, source)}}."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), f"benchmark file not found")
    out: dict = {}
    with path.open(newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        need = ("benchmark_table", "measure_id", "percentile", "rate", "source")
        if missing := [c for c in need if c not in (r.fieldnames or [])]:
            raise InputFileError(str(path), f"benchmark file lacks column(s) {', '.join(missing)} (expected {', '.join(need)})")
        for line, row in enumerate(r, start=2):
            try:
                pct, rate = int(row["percentile"]), Decimal(row["rate"].strip())
            except (ValueError, ArithmeticError):
                raise InputFileError(str(path), f"line {line}: percentile must be a whole number and rate a decimal") from None
            if not 0 <= rate <= 1:
                raise InputFileError(str(path), f"line {line}: rate {rate} is not between 0 and 1")
            out.setdefault((row["benchmark_table"].strip(), row["measure_id"].strip()), {})[pct] = (rate, row["source"].strip())
    return out


def check_benchmarks(programs, benchmarks: dict, path: str | Path | None) -> None:
    """Refuse a supplied benchmark table that cannot score a program's measure on its scale:
    every percentile of the program's ``scoring.scale`` must have a benchmark (a rate between two
    of the table's percentiles cannot say whether it reached a scale step the table lacks), and
    the benchmarks must rise with the percentile (fall, for an inverse measure). Extra percentiles
    are allowed. Tables the programs do not name are not checked."""
    for program in programs:
        q = program.quality
        if q is None:
            continue
        wanted = [p.percentile for p in q.scoring.scale]
        for m in q.measures:
            if m.benchmarks or m.benchmark_table is None:
                continue
            table = benchmarks.get((m.benchmark_table, m.id))
            if table is None:
                continue
            where = f"benchmark table {m.benchmark_table}, measure {m.id}"
            if missing := [p for p in wanted if p not in table]:
                raise InputFileError(str(path), f"{where}: no benchmark for percentile(s) "
                                     f"{', '.join(map(str, missing))} of {program.program_id}'s scoring scale "
                                     f"({', '.join(map(str, wanted))})")
            rates = [table[p][0] for p in sorted(table)]
            if any((b > a) if m.inverse else (b < a) for a, b in zip(rates, rates[1:])):
                raise InputFileError(str(path), f"{where}: benchmarks must {'fall' if m.inverse else 'rise'} "
                                     "with the percentile" + (" (an inverse measure)" if m.inverse else ""))


def score_measure(program: ProgramTerms, measure_id: str, rate: Decimal | None, *, eligible: int | None = None,
                  reportable: bool = True, implemented: bool = True, benchmarks: dict | None = None) -> MeasureScore:
    """Points of one measure of a program (see the module docstring)."""
    q = program.quality
    m = q.measure(measure_id)
    scale = q.scoring
    max_points = scale.max_points
    standard = "reporting" if q.reporting_only else m.standard
    s = MeasureScore(program.program_id, measure_id, program.performance_year, str(m.domain), standard, rate,
                     "not_scored", max_points=max_points)
    if scale.domain_weights is not None:
        s.weight = scale.domain_weights.get(m.domain)
    min_d = q.min_denominator.value if q.min_denominator is not None else 0
    if not implemented:
        s.note = "measure not implemented"
    elif not reportable:
        s.note = "not reportable: redacted data"
    elif rate is None:
        s.note = "no rate (empty denominator or no supplied result)"
    elif eligible is not None and eligible < min_d:
        s.note = f"denominator {eligible} below the minimum {min_d}"
    elif standard == "reporting":
        s.status = "reported"
        s.points = max_points if scale.reporting_points == "full" else Decimal(0)
    else:
        table = None
        if m.benchmarks:
            table = {p: (b.value, "terms") for p, b in m.benchmarks.items()}
        elif m.benchmark_table is not None:
            table = (benchmarks or {}).get((m.benchmark_table, measure_id))
            if table is None:
                s.note = f"benchmark table {m.benchmark_table} not supplied for {measure_id}"
                return s
        if table is not None:
            reached = None
            for pct in sorted(table):
                bench = table[pct][0]
                if (rate <= bench) if m.inverse else (rate >= bench):
                    reached = pct
            s.status = "scored"
            s.percentile_reached = reached
            # A table may carry percentiles between or above the scale's (a 95th): reaching one
            # earns the points of the highest step of the scale at or below it.
            steps = [p for p in scale.scale if reached is not None and p.percentile <= reached]
            s.points = steps[-1].points if steps else scale.below_scale_points
            s.benchmark_source = sorted({v[1] for v in table.values()})[0]
        elif m.target is not None:
            met = (rate <= m.target.value) if m.inverse else (rate >= m.target.value)
            s.status = "scored"
            s.points = max_points if met else scale.below_scale_points
            s.benchmark_source = f"target {m.target.value}"
            s.note = "target met" if met else "target not met"
        else:  # pragma: no cover - the terms model requires a target or benchmarks for performance measures
            s.note = "no benchmark"
    return s


def program_score(program: ProgramTerms, measures: list[MeasureScore]) -> ProgramScore:
    """The program's quality score from its measures' points (see the module docstring)."""
    scored = [m for m in measures if m.status in ("scored", "reported")]
    earned = sum((m.points for m in scored), Decimal(0))
    possible = sum((m.max_points for m in scored), Decimal(0))
    weights = program.quality.scoring.domain_weights
    score: Fraction | None
    if not scored or possible == 0:
        score = None
    elif weights is None:
        score = Fraction(earned) / Fraction(possible)
    else:
        by_domain: dict[str, tuple[Decimal, Decimal]] = {}
        for m in scored:
            e, p = by_domain.get(m.domain, (Decimal(0), Decimal(0)))
            by_domain[m.domain] = (e + m.points, p + m.max_points)
        wsum = sum((Fraction(weights.get(d, 0)) for d in by_domain), Fraction(0))
        if wsum == 0:
            score = None
        else:
            score = sum((Fraction(weights.get(d, 0)) / wsum * Fraction(e) / Fraction(p)
                         for d, (e, p) in by_domain.items() if p), Fraction(0))
    return ProgramScore(program.program_id, program.performance_year, earned, possible, score, len(scored), measures)


def quality_modifiers(program: ProgramTerms, program_score: Fraction | Decimal | None) -> dict:
    """What the quality score does to the settlement, by the program's
    ``settlement.quality_modifiers`` (domain.md R8.5). Returns a dict:

    - ``measured``: False when there is no score (settlement then says "not yet measured");
    - ``quality_score``: the score (Decimal, 10 places) or None;
    - ``withhold_earned_share``: the share of the quality withhold earned back (= the score) for
      ``withhold_return``, else None;
    - ``sharing_rate_multiplier``: the factor on the sharing rate (= the score) for
      ``multiplier``, else None;
    - ``gate_met`` / ``gate_min_score``: for ``gate``, whether the score reaches ``min_score``
      (no score: not met); ``gate_met`` is True when the program has no gate;
    - ``loss_rate``: for ``loss_side``, ``clamp(1 - max_rate × score, floor, ceiling)`` (no
      score: the ceiling), else None;
    - ``methods``: the methods configured, in the terms' order; ``applies_to`` by method.
    """
    q = None if program_score is None else Fraction(program_score)
    out: dict = {
        "measured": q is not None,
        "quality_score": _dec(q),
        "withhold_earned_share": None,
        "sharing_rate_multiplier": None,
        "gate_met": True,
        "gate_min_score": None,
        "loss_rate": None,
        "methods": [],
        "applies_to": {},
    }
    if program.settlement is None:
        return out
    for mod in program.settlement.quality_modifiers:
        out["methods"].append(mod.method)
        out["applies_to"][mod.method] = mod.applies_to
        if mod.method == "withhold_return":
            out["withhold_earned_share"] = _dec(q)
        elif mod.method == "multiplier":
            out["sharing_rate_multiplier"] = _dec(q)
        elif mod.method == "gate":
            out["gate_min_score"] = mod.min_score.value
            out["gate_met"] = q is not None and q >= Fraction(mod.min_score.value)
        elif mod.method == "loss_side":
            floor, ceiling = Fraction(mod.loss_rate_floor.value), Fraction(mod.loss_rate_ceiling.value)
            if q is None:
                out["loss_rate"] = _dec(ceiling)
            else:
                raw = 1 - Fraction(mod.max_rate.value) * q
                out["loss_rate"] = _dec(min(max(raw, floor), ceiling))
    return out
