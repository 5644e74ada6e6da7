"""Value Payment PMPM for self-funded employers (domain.md R6).

Invoice, per employer, program and month (rule ``vp.invoice``)::

    amount_cents = attributed eligible MM of the employer's groups x VP PMPM(quarter)

(a group's month is its employer's of the ``employer_group`` row in force on the month's first day,
:func:`allpayer.core.programs.employer_of_group_months`; a month no row covers goes to
``employer:unknown``.)

Quarterly PMPM (step ``vp_pmpm``, rounded half-up to cents)::

    index(q)   = cost_weight x (T_ytd - A_ytd) / T_ytd + quality_weight x (score - target_score)
    factor(q)  = clamp(1 + alpha x index(q - lag), floor, ceiling)
    pmpm(q)    = base_pmpm x factor(q)

``T_ytd`` is the target and ``A_ytd`` the FFS-basis cost of the attributed member months from the
start of the plan year through the end of quarter ``q - lag``. Quarters count from
``plan_year_start_month`` (a July plan year has Q1 = July to September). When ``q - lag`` is before
the plan year's first quarter there is no experience yet and the factor is 1; without a quality
score the quality term is 0. Each adjustment row shows all of these numbers.

Pass-through (rule ``vp.pass_through``): each month, what the employers paid less the
administrative share (``admin_rate``, kept by the ACO) is split over the ``pass_through`` pools
(largest remainder): ``phm`` to the attributing practices and ``cpr`` to the practices in CPR that
month (:func:`allpayer.payments.cpr.cpr_months`) by attributed member months, ``fpp`` to the
hospitals by the attributed member months of their HSA, ``reserve`` to the ACO reserve. Without ``pass_through`` everything goes to the practices.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from fractions import Fraction
from typing import Sequence

import ibis
import ibis.expr.types as ir

from allpayer.core.programs import employer_of_group_months
from allpayer.money import apply_rate, dollars_to_cents, largest_remainder, round_money
from allpayer.payments.common import rate_table, rows_of
from allpayer.payments.cpr import cpr_months


def plan_quarter(month: dt.date, start_month: int) -> tuple[int, int]:
    """(plan year, quarter 1-4) of a month for a plan year starting in `start_month`.

    >>> plan_quarter(dt.date(2024, 8, 1), 7), plan_quarter(dt.date(2024, 2, 1), 7)
    ((2024, 1), (2023, 3))
    """
    offset = (month.month - start_month) % 12
    plan_year = month.year if month.month >= start_month else month.year - 1
    return plan_year, offset // 3 + 1


def quarter_months(plan_year: int, quarter: int, start_month: int) -> list[dt.date]:
    out = []
    for i in range(3):
        k = start_month - 1 + (quarter - 1) * 3 + i
        out.append(dt.date(plan_year + k // 12, k % 12 + 1, 1))
    return out


def integer_weights(weights: Sequence[object]) -> list[int]:
    """Fractions or decimals as proportional integers (exact), for `largest_remainder`.

    >>> integer_weights([Fraction(1, 2), Fraction(1, 3), Decimal("0.25")])
    [6, 4, 3]
    """
    fr = [Fraction(w) for w in weights]
    den = 1
    for f in fr:
        den = den * f.denominator // math.gcd(den, f.denominator)
    ints = [int(f * den) for f in fr]
    g = 0
    for i in ints:
        g = math.gcd(g, i)
    return [i // g for i in ints] if g else ints


def clamp(x: Decimal, lo: Decimal, hi: Decimal) -> Decimal:
    return max(lo, min(hi, x))


def adjustment_factor(adj, target_cents: int | None, actual_cents: int | None,
                      score: Decimal | None) -> tuple[Decimal, Decimal, Decimal, Decimal, str]:
    """(factor, index, cost term, quality term, note) of the R6 formula.

    >>> from types import SimpleNamespace as NS
    >>> n = lambda v: NS(value=Decimal(v))
    >>> adj = NS(alpha=n("1.0"), floor=n("0.80"), ceiling=n("1.20"), cost_weight=n("0.5"),
    ...          quality_weight=n("0.5"), target_quality_score=n("0.75"))
    >>> adjustment_factor(adj, 100_000, 90_000, Decimal("0.85"))[:2]   # 0.5 x 0.10 + 0.5 x 0.10
    (Decimal('1.1000'), Decimal('0.100'))
    >>> adjustment_factor(adj, 100_000, 50_000, Decimal("1"))[0]       # capped at the ceiling
    Decimal('1.20')
    """
    notes = []
    if target_cents:
        cost = Decimal(int(target_cents) - int(actual_cents or 0)) / Decimal(int(target_cents))
    else:
        cost = Decimal(0)
        notes.append("no target yet: cost term 0")
    if score is not None:
        quality = score - adj.target_quality_score.value
    else:
        quality = Decimal(0)
        notes.append("quality score not yet measured: quality term 0")
    index = adj.cost_weight.value * cost + adj.quality_weight.value * quality
    factor = clamp(1 + adj.alpha.value * index, adj.floor.value, adj.ceiling.value)
    return factor, index, cost, quality, "; ".join(notes)


def adjustments(con, program, months: Sequence[dt.date], *, targets: ir.Table | None,
                cost: ir.Table | None, score: Decimal | None) -> list[dict]:
    """``value_payment_adjustments`` rows: one per plan quarter touched by `months`.

    `targets`: (program_id, month, target_cents); `cost`: (program_id, month, actual_cents) of the
    attributed member months. Both are aggregated to quarters here (small).
    """
    vp = program.payments.value_payment
    start = vp.plan_year_start_month
    adj = vp.adjustment
    lag = adj.lag_quarters.value if adj is not None else 0
    tgt = {}
    act = {}
    if targets is not None:
        t = targets.filter(targets.program_id == program.program_id)
        tgt = {r["month"]: int(r["c"] or 0) for r in rows_of(con, t.group_by("month").aggregate(c=t.target_cents.sum()))}
    if cost is not None:
        c = cost.filter(cost.program_id == program.program_id)
        act = {r["month"]: int(r["c"] or 0) for r in rows_of(con, c.group_by("month").aggregate(c=c.actual_cents.sum()))}
    out, seen = [], set()
    for m in months:
        py_, q = plan_quarter(m, start)
        if (py_, q) in seen:
            continue
        seen.add((py_, q))
        first = quarter_months(py_, q, start)[0]
        base = vp.base_pmpm.at(max(first, program.effective.start))
        row = {"program_id": program.program_id, "quarter": f"{py_}-Q{q}", "plan_year": py_, "plan_quarter": q,
               "first_month": first, "base_pmpm": str(base), "lag_quarters": lag}
        if adj is None:
            factor, index, cterm, qterm, note = Decimal(1), Decimal(0), Decimal(0), Decimal(0), "no adjustment in the terms"
            basis_q, t_ytd, a_ytd = None, None, None
        else:
            basis_q = q - lag
            if basis_q < 1:
                factor, index, cterm, qterm = Decimal(1), Decimal(0), Decimal(0), Decimal(0)
                note = f"quarter {q} - lag {lag} is before the plan year's first quarter: factor 1"
                t_ytd = a_ytd = None
            else:
                ytd = [mm for qq in range(1, basis_q + 1) for mm in quarter_months(py_, qq, start)]
                t_ytd = sum(tgt.get(mm, 0) for mm in ytd)
                a_ytd = sum(act.get(mm, 0) for mm in ytd)
                factor, index, cterm, qterm, note = adjustment_factor(adj, t_ytd, a_ytd, score)
        pmpm = round_money(base * factor)
        row.update({"basis_quarter": basis_q, "target_ytd_cents": t_ytd, "actual_ytd_cents": a_ytd,
                    "cost_term": str(cterm), "quality_score": str(score) if score is not None else None,
                    "quality_term": str(qterm), "index": str(index), "factor": str(factor),
                    "pmpm_cents": dollars_to_cents(pmpm), "note": note, "performance_year": program.performance_year})
        out.append(row)
    return out


ADJ_SCHEMA = {"program_id": "string", "quarter": "string", "plan_year": "int64", "plan_quarter": "int64",
              "first_month": "date", "base_pmpm": "string", "lag_quarters": "int64", "basis_quarter": "int64",
              "target_ytd_cents": "int64", "actual_ytd_cents": "int64", "cost_term": "string",
              "quality_score": "string", "quality_term": "string", "index": "string", "factor": "string",
              "pmpm_cents": "int64", "note": "string", "performance_year": "int32"}


def invoices(att_months: ir.Table, employer_group: ir.Table, program, adj_rows: list[dict]) -> ir.Table:
    """``value_payment_invoices``: grain (employer_id, program_id, month).

    Columns: quarter, member_months (attributed eligible), pmpm_cents, amount_cents, working.
    """
    start = program.payments.value_payment.plan_year_start_month
    a = att_months.filter(att_months.program_id == program.program_id)
    emp = employer_of_group_months(employer_group, a.select("group_id", "month"))
    a = a.left_join(emp, ["group_id", "month"])
    a = a.mutate(employer_id=a.employer_id.fill_null("unknown"))
    g = a.group_by("employer_id", "program_id", "month").aggregate(member_months=a.count().cast("int64"))
    rows = []
    qmap = {r["quarter"]: r for r in adj_rows}
    for r in adj_rows:
        for m in quarter_months(r["plan_year"], r["plan_quarter"], start):
            rows.append({"month": m, "quarter": r["quarter"], "pmpm_cents": r["pmpm_cents"], "factor": r["factor"]})
    rt = rate_table(rows, {"month": "date", "quarter": "string", "pmpm_cents": "int64", "factor": "string"})
    j = g.join(rt, "month")
    amount = (j.member_months * j.pmpm_cents).cast("int64")
    working = (j.member_months.cast("string") + " attributed member months x $" + (j.pmpm_cents // 100).cast("string")
               + "." + (j.pmpm_cents % 100).cast("string").lpad(2, "0") + " PMPM (" + j.quarter + ", factor "
               + j.factor + ")")
    del qmap
    return j.select(
        employer_id=j.employer_id, program_id=j.program_id, month=j.month, quarter=j.quarter,
        member_months=j.member_months, pmpm_cents=j.pmpm_cents, amount_cents=amount, working=working,
        rule=ibis.literal("vp.invoice"),
    )


def pass_through(con, invoices_t: ir.Table, att_months: ir.Table, roster: ir.Table, program,
                 hospital_hsa: ir.Table | None) -> list[dict]:
    """Pass-through rows: (program_id, month, pool, payee, member_months, amount_cents, rule)."""
    vp = program.payments.value_payment
    pid = program.program_id
    inv = invoices_t.filter(invoices_t.program_id == pid)
    totals = rows_of(con, inv.group_by("month").aggregate(c=inv.amount_cents.sum()).order_by("month"))
    a = att_months.filter((att_months.program_id == pid) & att_months.practice_id.notnull())
    pr = rows_of(con, a.group_by("month", "practice_id").aggregate(mm=a.count()).order_by("month", "practice_id"))
    cpr_in = {(r["practice_id"], r["month"])
              for r in rows_of(con, cpr_months(roster, program, [t["month"] for t in totals]))}
    hosp: list[dict] = []
    if hospital_hsa is not None and vp.pass_through and "fpp" in vp.pass_through:
        j = att_months.filter(att_months.program_id == pid).join(hospital_hsa, "hsa")
        hosp = rows_of(con, j.group_by("month", "hospital_id").aggregate(mm=j.count()).order_by("month", "hospital_id"))
    weights = dict(vp.pass_through or {"phm": Decimal(1)})
    pools = sorted(weights)
    out = []
    for t in totals:
        m, received = t["month"], int(t["c"])
        admin = apply_rate(received, vp.admin_rate.at(m))
        out.append({"program_id": pid, "month": m, "pool": "admin", "payee": f"aco:{program.aco.id}",
                    "member_months": None, "amount_cents": admin, "rule": "vp.admin"})
        split = largest_remainder(received - admin, integer_weights([weights[p] for p in pools]))
        for pool, amt in zip(pools, split):
            if pool == "reserve":
                payees = [(f"aco_reserve:{program.aco.id}", 1)]
            elif pool == "fpp":
                payees = [(f"hospital:{r['hospital_id']}", int(r["mm"])) for r in hosp if r["month"] == m]
            else:
                rows = [r for r in pr if r["month"] == m]
                if pool == "cpr" and any((r["practice_id"], m) in cpr_in for r in rows):
                    rows = [r for r in rows if (r["practice_id"], m) in cpr_in]
                payees = [(f"practice:{r['practice_id']}", int(r["mm"])) for r in rows]
            payees = [p for p in payees if p[1] > 0]
            if not payees:
                out.append({"program_id": pid, "month": m, "pool": pool, "payee": f"aco:{program.aco.id}",
                            "member_months": 0, "amount_cents": amt, "rule": "vp.unallocated"})
                continue
            for (payee, mm), part in zip(payees, largest_remainder(amt, [p[1] for p in payees])):
                out.append({"program_id": pid, "month": m, "pool": pool, "payee": payee, "member_months": mm,
                            "amount_cents": part, "rule": "vp.pass_through"})
    return out


PASS_SCHEMA = {"program_id": "string", "month": "date", "pool": "string", "payee": "string",
               "member_months": "int64", "amount_cents": "int64", "rule": "string"}
