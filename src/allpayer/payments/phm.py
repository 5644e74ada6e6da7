"""Population Health Management payments and pay-for-improvement (domain.md R7).

Monthly base (rule ``phm.base``), per program, month and attributing practice::

    amount_cents = attributed eligible MM x base PMPM(month)                 (half-up)

Annual ladder (rule ``phm.ladder``), after the year, from the program's quality score: the
highest rung whose ``min_score`` the score reaches sets the earned PMPM (the base when none);
the practice receives its year's attributed MM x (earned PMPM - base PMPM), month by month at
each month's base PMPM (so base + ladder = MM x earned PMPM). Without a quality
score (the quality stage has not run) only the base is paid, and the row says why.

Pay-for-improvement (rule ``phm.pay_for_improvement``), per practice::

    bonus_cents = lives on lives_as_of x amount per member per measure x measures improved

a measure is improved when the practice's rate rose by at least ``improvement_points`` over the
prior year (fell, for an inverse measure). Example T9: 1,000 x $21 x 3 = $63,000.

The ACO pays PHM from its own funds (``aco:`` to ``practice:``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Sequence

import ibis
import ibis.expr.types as ir

from allpayer.payments.common import pmpm_cents, py_pmpm_cents, rate_table, rows_of, to_micro


def phm_base(att_months: ir.Table, program, months: Sequence[dt.date]) -> ir.Table:
    """``phm_payments`` monthly rows: grain (program_id, month, practice_id, rule).

    Columns: member_months, pmpm_micro, amount_cents, quality_score (NULL), note.
    """
    ph = program.payments.phm
    rates = rate_table([{"month": m, "pmpm_micro": to_micro(ph.base_pmpm.at(m))} for m in months],
                       {"month": "date", "pmpm_micro": "int64"})
    a = att_months.filter((att_months.program_id == program.program_id) & att_months.practice_id.notnull())
    g = a.group_by("program_id", "month", "practice_id").aggregate(member_months=a.count().cast("int64"))
    j = g.join(rates, "month")
    return j.select(
        program_id=j.program_id, month=j.month, practice_id=j.practice_id, rule=ibis.literal("phm.base"),
        member_months=j.member_months, pmpm_micro=j.pmpm_micro,
        amount_cents=pmpm_cents(j.member_months, j.pmpm_micro),
        quality_score=ibis.null("string"), note=ibis.literal("base PMPM"),
    )


def ladder_pmpm(phm, score: Decimal | None, when: dt.date) -> tuple[Decimal, str]:
    """The PMPM a quality score earns on the ladder (the base PMPM below the first rung).

    >>> from allpayer.terms import load_program, programs_dir
    >>> p = load_program(programs_dir() / "vermont" / "2024" / "medicaid.yaml").payments.phm
    >>> ladder_pmpm(p, Decimal("0.80"), dt.date(2024, 12, 1))
    (Decimal('4.00'), 'rung min_score 0.75')
    """
    base = phm.base_pmpm.at(when)
    if score is None:
        return base, "quality score not yet measured: base PMPM only"
    earned, why = base, "below the first rung: base PMPM"
    for r in phm.ladder:
        if score >= r.min_score:
            earned, why = r.pmpm, f"rung min_score {r.min_score}"
    if phm.max_pmpm is not None:
        earned = min(earned, phm.max_pmpm.at(when))
    return earned, why


def phm_ladder(con, base: ir.Table, program, year: int, score: Decimal | None) -> list[dict]:
    """Annual ladder rows (period = the year): each practice's year MM x (earned - base PMPM)."""
    ph = program.payments.phm
    end = dt.date(year, 12, 1)
    earned, why = ladder_pmpm(ph, score, end)
    base_pmpm = ph.base_pmpm.at(end)
    extra = to_micro(earned) - to_micro(base_pmpm)
    reached = score is not None and any(score >= r.min_score for r in ph.ladder)
    b = base.filter(base.program_id == program.program_id)
    # each month's base rows carry that month's base PMPM: the top-up is MM x (earned - base) month
    # by month (a base PMPM dated mid-year), rounded once per practice
    top = (b.member_months * (ibis.literal(to_micro(earned), "int64") - b.pmpm_micro)).clip(lower=0)
    mm = rows_of(con, b.group_by("practice_id").aggregate(mm=b.member_months.sum(), units=top.sum())
                 .order_by("practice_id"))
    out = []
    for r in mm:
        out.append({"program_id": program.program_id, "month": dt.date(year, 12, 1), "practice_id": r["practice_id"],
                    "rule": "phm.ladder", "member_months": int(r["mm"]), "pmpm_micro": extra,
                    "amount_cents": py_pmpm_cents(int(r["units"]), 1) if reached else 0,
                    "quality_score": str(score) if score is not None else None,
                    "note": f"{why}: earned {earned} - base {base_pmpm} PMPM"})
    return out


PHM_SCHEMA = {"program_id": "string", "month": "date", "practice_id": "string", "rule": "string",
              "member_months": "int64", "pmpm_micro": "int64", "amount_cents": "int64",
              "quality_score": "string", "note": "string"}


def improved_measures(rates: ir.Table, program, year: int) -> ir.Table:
    """(practice_id, measures_improved, measures_compared) from ``quality_rates`` at level
    'practice': rate(year) - rate(year - 1) >= improvement_points (reversed for inverse measures).
    The year before is read from the baseline program (`baseline_program`)."""
    p4i = program.payments.pay_for_improvement
    pts = p4i.improvement_points.value
    r = rates.filter((rates.level == "practice") & rates.measure_id.isin(list(p4i.measures)))
    mine = r.filter(r.program_id == program.program_id)
    now = mine.filter(mine.performance_year == year).select("measure_id", "level_id", rate_now=mine.rate,
                                                            inv=mine.inverse)
    base = r.filter((r.program_id == baseline_program(program)) & (r.performance_year == year - 1))
    before = base.select("measure_id", "level_id", rate_before=base.rate)
    j = now.join(before, ["measure_id", "level_id"])
    change = ibis.ifelse(j.inv.fill_null(False), j.rate_before - j.rate_now, j.rate_now - j.rate_before)
    j = j.mutate(improved=(change >= ibis.literal(pts, "decimal(18,10)")).cast("int64"))
    return j.group_by(practice_id=j.level_id).aggregate(
        measures_improved=j.improved.sum().cast("int64"), measures_compared=j.count().cast("int64"))


def baseline_program(program) -> str:
    """The program whose practice rates of the year before pay-for-improvement compares with:
    ``pay_for_improvement.baseline_program_id``, else the program itself."""
    return program.payments.pay_for_improvement.baseline_program_id or program.program_id


def pay_for_improvement(lives: ir.Table, improved: ir.Table, program, year: int) -> ir.Table:
    """``pay_for_improvement``: grain (program_id, performance_year, practice_id).

    `lives`: (practice_id, lives); `improved`: (practice_id, measures_improved, measures_compared).
    bonus_cents = lives x amount x measures_improved (exact: the amount is whole cents or finer).
    """
    p4i = program.payments.pay_for_improvement
    amount = p4i.amount_per_member_per_measure.at(p4i.lives_as_of)
    micro = to_micro(amount)
    j = lives.join(improved, "practice_id")
    return j.select(
        program_id=ibis.literal(program.program_id),
        performance_year=ibis.literal(year, "int32"),
        practice_id=j.practice_id,
        lives=j.lives.cast("int64"),
        lives_as_of=ibis.literal(p4i.lives_as_of),
        measures_compared=j.measures_compared,
        measures_improved=j.measures_improved,
        amount_per_member_per_measure_micro=ibis.literal(micro, "int64"),
        bonus_cents=pmpm_cents(j.lives.cast("int64") * j.measures_improved, ibis.literal(micro, "int64")),
        rule=ibis.literal("phm.pay_for_improvement"),
    )


def lives_on(att_months: ir.Table, program) -> ir.Table:
    """(practice_id, lives): attributed eligible members in the month of ``lives_as_of``."""
    d = program.payments.pay_for_improvement.lives_as_of
    m = dt.date(d.year, d.month, 1)
    a = att_months.filter((att_months.program_id == program.program_id) & (att_months.month == m))
    return a.group_by("practice_id").aggregate(lives=a.member_id.nunique().cast("int64"))


__all__ = ["phm_base", "phm_ladder", "ladder_pmpm", "improved_measures", "baseline_program",
           "pay_for_improvement", "lives_on"]
