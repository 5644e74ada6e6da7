"""The payments run: compute every payment of a period, write the snapshot tables, post the ledger.

`run_payments(db, period)` reads the core tables of the performance year (``member_months``,
``attribution``, ``tcoc_member_month``, ``targets``, ``completion_factors``, the claims and the
``provider_roster``), computes the year to date through the period's last month, writes the
payment tables through `allpayer.runs.begin` and then posts the period's months to the ledger in
the transactional store. Posting is idempotent: re-running a period with unchanged inputs posts
nothing; a past month whose member months were restated posts a reversal and the new amounts (the
true-up). A ``--year`` run also computes the after-year items: the PHM ladder, the CPR quality
bonus, pay-for-improvement and the IBNR accrual report.

What a run writes matches what it posts. A ``--year`` run replaces every payment row of its
programs and year. A ``--month`` or ``--quarter`` run replaces only the rows of the period's
months (the Value Payment adjustments of the period's quarters) and leaves the other months of
the year in place, as the runs that paid them wrote them, with their run ids; the after-year
items stay as the last ``--year`` run left them. The year-level tables
(``fixed_payment_performance``, ``tcoc_fixed_payment``) are recomputed over every month the
tables then hold (`_held_rows`).

Quality inputs: ``quality_program_scores`` (program_id, performance_year, quality_score) and
``quality_rates`` (level 'practice') when the snapshot has them; otherwise PHM pays its base only,
the CPR bonus and pay-for-improvement are not paid, and ``payment_notes`` says why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.backend import cache, release
from allpayer.core.tcoc import SHADOW_ARRANGEMENTS
from allpayer.errors import RunError
from allpayer.ledger import Entry, Ledger
from allpayer.money import apply_rate
from allpayer.payments import cpr as cpr_mod
from allpayer.payments import fpp as fpp_mod
from allpayer.payments import phm as phm_mod
from allpayer.payments import shadow as shadow_mod
from allpayer.payments import value_payment as vp_mod
from allpayer.payments.common import (
    PaymentPeriod,
    attributed_months_all,
    month_label,
    rate_table,
    rows_of,
)

Progress = Callable[[str], None]

NOTE_SCHEMA = {"program_id": "string", "performance_year": "int32", "stage": "string", "note": "string"}
BONUS_SCHEMA = {"program_id": "string", "performance_year": "int32", "practice_id": "string",
                "member_months": "int64", "pool_cents": "int64", "quality_score": "string",
                "earned_cents": "int64", "amount_cents": "int64", "rule": "string"}
ACCRUAL_SCHEMA = {"program_id": "string", "performance_year": "int32", "payer": "string", "month": "date",
                  "lag": "int64", "paid_cents": "int64", "completion_factor": "string", "ibnr_cents": "int64"}


@dataclass
class PaymentsResult:
    run_id: str
    period: str
    year: int
    programs: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    postings: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)


def _quality_scores(con, programs: Sequence, year: int) -> dict[str, Decimal | None]:
    """Each program's quality score of `year` (None when there is none yet), read in one query."""
    out: dict[str, Decimal | None] = {p.program_id: None for p in programs}
    if "quality_program_scores" not in con.list_tables():
        return out
    q = con.table("quality_program_scores")
    cols = [c for c in ("program_id", "quality_score", "measured") if c in q.columns]
    rows = rows_of(con, q.filter(q.program_id.isin(list(out)) & (q.performance_year == year)).select(*cols))
    first: dict[str, dict] = {}
    for r in rows:
        first.setdefault(r["program_id"], r)
    for pid, r in first.items():
        # a row without a score, or marked not measured, counts as no score
        if r["quality_score"] is not None and r.get("measured", True) is not False:
            out[pid] = Decimal(str(r["quality_score"]))
    return out


def _quality_score(con, program, year: int) -> Decimal | None:
    """One program's quality score of `year` (see :func:`_quality_scores`)."""
    return _quality_scores(con, [program], year)[program.program_id]


def _months_through(last: dt.date) -> list[dt.date]:
    """January through `last` of `last`'s year."""
    return [dt.date(last.year, m, 1) for m in range(1, last.month + 1)]


MONTHLY_TABLES = ("fpp_payments", "fpp_hospital_payments", "shadow_claims", "cpr_payments", "phm_payments",
                  "value_payment_invoices", "value_payment_pass_through")
"""The payment tables with a row per month (a month or quarter run replaces its months' rows)."""

AFTER_YEAR_STAGES = ("cpr.quality_bonus", "pay_for_improvement")
"""The `payment_notes` stages only a ``--year`` run writes (a month or quarter run keeps them)."""


def _period_quarters(program, months: Sequence[dt.date]) -> list[str]:
    """The Value Payment plan quarters (``value_payment_adjustments.quarter``) holding `months`."""
    start = program.payments.value_payment.plan_year_start_month
    return sorted({"%d-Q%d" % vp_mod.plan_quarter(m, start) for m in months})


def _held_rows(con, tables: set[str], programs: Sequence, period: PaymentPeriod) -> dict[str, ir.Table]:
    """The published rows that a run of `period` leaves in place, by table (uncached expressions;
    the caller caches them before anything is written).

    A ``--year`` run replaces every row of its programs and year: nothing is held. A month or
    quarter run holds, of its programs and year: the rows of `MONTHLY_TABLES` outside the
    period's months (and every ``phm.ladder`` row, an after-year item), the
    ``value_payment_adjustments`` of the plan quarters outside the period, and the
    ``payment_notes`` of `AFTER_YEAR_STAGES`. The after-year tables (``cpr_quality_bonus``,
    ``pay_for_improvement``, ``payment_accruals``) are not written by such a run at all; the
    year-level ones (``fixed_payment_performance``, ``tcoc_fixed_payment``,
    ``cpr_history_rates``) are recomputed over the months held."""
    if period.kind == "year":
        return {}
    pids = [p.program_id for p in programs]
    months = list(period.months)

    def published(name: str) -> ir.Table | None:
        if name not in tables:
            return None
        t = con.table(name)
        if not {"program_id", "performance_year"} <= set(t.columns):
            return None
        return t.filter((t.performance_year == period.year) & t.program_id.isin(pids))

    out: dict[str, ir.Table] = {}
    for name in MONTHLY_TABLES:
        t = published(name)
        if t is not None:
            replaced = t.month.isin(months)
            if name == "phm_payments":
                replaced = replaced & (t.rule == "phm.base")
            out[name] = t.filter(~replaced)
    t = published("value_payment_adjustments")
    if t is not None:
        replaced = ibis.literal(False)
        for p in programs:
            if p.payments.value_payment is not None:
                replaced = replaced | ((t.program_id == p.program_id) & t.quarter.isin(_period_quarters(p, months)))
        out["value_payment_adjustments"] = t.filter(~replaced)
    t = published("payment_notes")
    if t is not None:
        out["payment_notes"] = t.filter(t.stage.isin(list(AFTER_YEAR_STAGES)))
    return out


def _like(held: ir.Table, new: ir.Table) -> ir.Table:
    """`held`'s columns of `new` cast to `new`'s types, and its ``run_id``, for a union with `new`."""
    cols = [held[c].cast(t).name(c) for c, t in new.schema().items() if c in held.columns]
    if "run_id" in held.columns and "run_id" not in new.columns:
        cols.append(held.run_id)
    return held.select(*cols)


def _last_month(con, held: dict[str, ir.Table]) -> dt.date | None:
    """The last month of the held monthly rows (None when none are held)."""
    got = [r["m"] for name in MONTHLY_TABLES if name in held
           for r in rows_of(con, held[name].aggregate(m=held[name].month.max()))]
    got = [m for m in got if m is not None]
    return max(got) if got else None


def compute(con, programs: Sequence, period: PaymentPeriod, *, paid_through: dt.date,
            progress: Progress | None = None) -> tuple[dict[str, list], dict[str, list[Entry]], list[dict], list[ir.Table]]:
    """Compute the payment tables (as Ibis expressions or small memtables), the ledger entries of
    the period's months grouped by batch key, and notes. Pure apart from reading `con`.

    The stages compute January through the period's last month (the Value Payment adjustment
    reads the year to date); the tables returned hold the period's rows and the rows the run
    leaves in place (`_held_rows`), each with ``performance_year``, the held ones with their
    ``run_id``; ``payment_notes`` is among them."""
    from allpayer.core.claims import medical_claim_lines
    from allpayer.pipeline import union_aligned

    year = period.year
    months = _months_through(period.last)
    tables = set(con.list_tables())
    for needed in ("member_months", "attribution", "provider_roster", "medical_claim"):
        if needed not in tables:
            raise RunError(f"table {needed} is missing: run `allpayer load` and `allpayer run --year {year}` first")
    mm = con.table("member_months").filter(lambda t: t.performance_year == year)
    att = con.table("attribution").filter(lambda t: t.performance_year == year)
    roster = con.table("provider_roster")
    lines = None
    fpp_programs = [p for p in programs if p.payments.fpp is not None]
    if fpp_programs:
        # The netted claim lines the FPP stages read, computed once: the performance year and the
        # history years, the columns they use.
        years = {year} | {y for p in fpp_programs for y in (p.payments.fpp.hospital_allocation.history_years or [])}
        fpp_payers = sorted({p.payer for p in fpp_programs})
        ml = medical_claim_lines(_of_payers(con.table("medical_claim"), fpp_payers), paid_through)
        ml = _served_in(ml, years)
        ml = ml.filter(ml.service_date.year().isin(sorted(years)) & ml.payer.isin(fpp_payers))
        ml = ml.filter(_read_by_fpp(ml, fpp_programs, year))
        lines_expr = ml.select("payer", "service_date", "service_month", "claim_type", "service_category",
                               "payment_arrangement", "member_id", "person_id", "billing_npi", "allowed_cents",
                               "paid_cents")
    tmm = con.table("tcoc_member_month") if "tcoc_member_month" in tables else None
    targets = con.table("targets").filter(lambda t: t.performance_year == year) if "targets" in tables else None
    employer_group = con.table("employer_group") if "employer_group" in tables else None
    qrates = con.table("quality_rates") if "quality_rates" in tables else None

    out: dict[str, list] = {k: [] for k in (
        "fpp_payments", "fpp_hospital_payments", "shadow_claims", "fixed_payment_performance",
        "tcoc_fixed_payment", "cpr_payments", "cpr_quality_bonus", "phm_payments", "pay_for_improvement",
        "value_payment_invoices", "value_payment_adjustments", "value_payment_pass_through", "payment_accruals")}
    batches: dict[str, list[Entry]] = {}
    notes: list[dict] = []
    cached: list[ir.Table] = []

    def keep(t: ir.Table) -> ir.Table:
        """Materialize an expression read several times (released when the run ends)."""
        t = cache(t)
        cached.append(t)
        return t
    period_months = set(period.months)
    # Read before anything is written: the rows the run leaves in place, and the months they
    # hold (the fixed-payment TCOC reads the attributed member months of every month held).
    held = {name: keep(t) for name, t in _held_rows(con, tables, programs, period).items()}
    held_last = _last_month(con, held)
    held_months = _months_through(max(period.last, held_last or period.last))

    def merged(name: str, pid: str, new: ir.Table) -> ir.Table:
        """`new`, the rows of program `pid` the run writes, with the rows of `pid` it leaves in place."""
        new = _stamp(new, year)
        h = held.get(name)
        if h is None:
            return new
        return union_aligned([new, _like(h.filter(h.program_id == pid), new)])

    def of_period(t: ir.Table) -> ir.Table:
        return t.filter(t.month.isin(list(period_months)))

    if fpp_programs:
        lines = keep(lines_expr)
    cpr_hist = [p for p in programs if p.payments.cpr is not None and p.payments.cpr.method == "historical_ffs"]
    cpr_lines = eligibility = None
    if cpr_hist:
        if "eligibility" not in tables:
            raise RunError("CPR method historical_ffs needs the eligibility table: run `allpayer load` first")
        eligibility = con.table("eligibility")
        hyears = sorted({y for p in cpr_hist for y in cpr_mod.history_years(p)})
        cpr_payers = sorted({p.payer for p in cpr_hist})
        cl = _served_in(medical_claim_lines(_of_payers(con.table("medical_claim"), cpr_payers), paid_through), hyears)
        cl = cl.filter(cl.service_date.year().isin(hyears) & cl.payer.isin(cpr_payers)
                       & (cl.claim_type == "professional") & (cl.payment_arrangement == "ffs"))
        cpr_lines = keep(cl.select("payer", "service_date", "service_month", "claim_type", "payment_arrangement",
                                   "person_id", "billing_npi", "paid_cents"))

    def note(pid: str, stage: str, text: str) -> None:
        notes.append({"program_id": pid, "performance_year": year, "stage": stage, "note": text})

    # The attributed member months of every program in one pass over attribution and member
    # months, then one small table per program (each stage below reads its program's several times).
    am_by_program: dict[str, ir.Table] = {}
    if programs:
        am_all = cache(attributed_months_all(att, mm, programs, held_months))
        am_by_program = {p.program_id: keep(am_all.filter(am_all.program_id == p.program_id)) for p in programs}
        release(am_all)
    scores = _quality_scores(con, programs, year)

    def add(key: str, entry: Entry) -> None:
        batches.setdefault(key, []).append(entry)

    for p in programs:
        pid, pay = p.program_id, p.payments
        aco, payer_acct = f"aco:{p.aco.id}", f"payer:{p.payer}"
        if progress:
            progress(f"{year}: payments for {pid}")
        am_held = am_by_program[pid]  # every month held after the run; the stages read the year to date
        am = am_held if held_months == months else am_held.filter(am_held.month <= period.last)
        score = scores[pid]

        if pay.fpp is not None:
            fp = keep(fpp_mod.payer_payments(am, p, months))
            hp = fpp_mod.hospital_payments(con, fp, p, lines=lines, roster=roster, attribution=att, att_months=am)
            sh = keep(shadow_mod.shadow_claims(lines, am, roster, p))
            # the year-level tables read every month the payment tables hold after the run
            fp_all = keep(merged("fpp_payments", pid, of_period(fp)))
            hp_all = merged("fpp_hospital_payments", pid, of_period(hp))
            sh_all = merged("shadow_claims", pid, of_period(sh))
            out["fpp_payments"].append(fp_all)
            out["fpp_hospital_payments"].append(hp_all)
            out["shadow_claims"].append(sh_all)
            perf = shadow_mod.performance(p, fp_all, hp_all, sh_all, year)
            out["fixed_payment_performance"].append(perf)
            for r in rows_of(con, fp.filter(fp.month.isin(list(period_months))).order_by("month", "cell_id")):
                key = f"fpp:{pid}:{month_label(r['month'])}"
                add(key, Entry(aco, payer_acct, int(r["net_cents"]), pid, month_label(r["month"]), "fpp.payer_to_aco",
                               memo=f"cell {r['cell_id']}: {r['member_months']} MM x {r['pmpm_micro'] / 1e6:.6f} "
                                    f"= {r['gross_cents']} cents less withhold {r['withhold']} ({r['withhold_cents']} cents)",
                               payer_ref=p.payer, payee_ref=p.aco.id))
            for r in rows_of(con, hp.filter(hp.month.isin(list(period_months))).order_by("month", "hospital_id")):
                key = f"fpp:{pid}:{month_label(r['month'])}"
                basis = f"share {r['share']}" if r["share"] else f"{r['member_months']} HSA MM x PMPM"
                add(key, Entry(f"hospital:{r['hospital_id']}", aco, int(r["amount_cents"]), pid,
                               month_label(r["month"]), "fpp.aco_to_hospital", memo=basis,
                               payer_ref=p.aco.id, payee_ref=r["hospital_id"]))
            flags = rows_of(con, perf.filter(perf.rebase_flag).select("hospital_id", "drift"))
            for f in flags:
                note(pid, "fpp", f"rebase: shadow claims drift {f['drift']} from FPP for {f['hospital_id']} "
                                 f"exceeds rebase_threshold")

        if pay.cpr is not None:
            rates = None
            if pay.cpr.method == "historical_ffs":
                hist = cpr_mod.historical_history(cpr_lines, eligibility, am, roster, p)
                rates = cpr_mod.historical_rates(con, hist, p, months)
                out.setdefault("cpr_history_rates", []).append(
                    rates.filter(rates.month == months[0]).drop("month").mutate(
                        program_id=ibis.literal(pid), performance_year=ibis.literal(year, "int32")))
                note(pid, "cpr", f"CPR PMPMs from each practice's FFS history in {cpr_mod.history_years(p)} "
                                 f"(x (1 + trend {pay.cpr.trend.value}) x (1 + enhancement {pay.cpr.enhancement.value})): "
                                 "cpr_history_rates")
            cp = keep(cpr_mod.cpr_payments(am, roster, p, months, rates=rates))
            cp_all = keep(merged("cpr_payments", pid, of_period(cp)))
            out["cpr_payments"].append(cp_all)
            per = cp.filter(cp.month.isin(list(period_months)))
            g = per.group_by("month", "practice_id").aggregate(c=per.amount_cents.sum(), mm=per.member_months.sum())
            for r in rows_of(con, g.order_by("month", "practice_id")):
                key = f"cpr:{pid}:{month_label(r['month'])}"
                add(key, Entry(aco, payer_acct, int(r["c"]), pid, month_label(r["month"]), "cpr.payer_to_aco",
                               memo=f"CPR funding for practice {r['practice_id']}", payer_ref=p.payer,
                               payee_ref=p.aco.id))
                add(key, Entry(f"practice:{r['practice_id']}", aco, int(r["c"]), pid, month_label(r["month"]),
                               "cpr.monthly", memo=f"{r['mm']} attributed MM x CPR PMPM by cell + care coordination",
                               payer_ref=p.aco.id, payee_ref=r["practice_id"]))
            if period.kind == "year":
                bonus, why = cpr_mod.quality_bonus(con, cp, p, year, score)
                note(pid, "cpr.quality_bonus", why)
                out["cpr_quality_bonus"].append(rate_table(bonus, BONUS_SCHEMA))
                for b in bonus:
                    add(f"cpr_bonus:{pid}:{year}", Entry(f"practice:{b['practice_id']}", aco, b["amount_cents"], pid,
                                                         str(year), "cpr.quality_bonus", memo=why,
                                                         payer_ref=p.aco.id, payee_ref=b["practice_id"]))

        if pay.fpp is not None and tmm is not None:
            # after CPR: the fixed-payment TCOC counts the CPR the payer funds in place of its shadow
            # claims; like the other year-level tables, over every month the payment tables hold
            paid = am_held.semi_join(fp_all.select("month").distinct(), "month")
            out["tcoc_fixed_payment"].append(shadow_mod.fixed_payment_tcoc(
                p, fp_all, tmm, paid, year, lines=lines, cpr_payments=cp_all if pay.cpr is not None else None))

        if pay.phm is not None:
            base = keep(phm_mod.phm_base(am, p, months))
            parts = [of_period(base)]
            if score is None:
                note(pid, "phm", "quality_program_scores not available: PHM pays its base PMPM only")
            if period.kind == "year":
                ladder = phm_mod.phm_ladder(con, base, p, year, score)
                parts.append(rate_table(ladder, phm_mod.PHM_SCHEMA))
                for r in ladder:
                    add(f"phm_ladder:{pid}:{year}", Entry(f"practice:{r['practice_id']}", aco, r["amount_cents"], pid,
                                                          str(year), "phm.ladder", memo=r["note"], payer_ref=p.aco.id,
                                                          payee_ref=r["practice_id"]))
            out["phm_payments"].append(merged("phm_payments", pid, ibis.union(*parts, distinct=False)
                                              if len(parts) > 1 else parts[0]))
            per = base.filter(base.month.isin(list(period_months)))
            for r in rows_of(con, per.order_by("month", "practice_id")):
                add(f"phm:{pid}:{month_label(r['month'])}",
                    Entry(f"practice:{r['practice_id']}", aco, int(r["amount_cents"]), pid, month_label(r["month"]),
                          "phm.base", memo=f"{r['member_months']} attributed MM x base PMPM",
                          payer_ref=p.aco.id, payee_ref=r["practice_id"]))

        if pay.pay_for_improvement is not None and period.kind == "year":
            if qrates is None:
                note(pid, "pay_for_improvement", "quality_rates not available: pay-for-improvement not computed")
            else:
                base_id = phm_mod.baseline_program(p)
                had = qrates.filter((qrates.program_id == base_id) & (qrates.performance_year == year - 1)
                                    & (qrates.level == "practice")).count().to_pyarrow().as_py()
                if not had:
                    note(pid, "pay_for_improvement",
                         f"no practice quality rates of {base_id} for {year - 1}: nothing to improve on, no "
                         "pay-for-improvement paid (name last year's program in "
                         "payments.pay_for_improvement.baseline_program_id)")
                imp = phm_mod.improved_measures(qrates, p, year)
                p4i = phm_mod.pay_for_improvement(phm_mod.lives_on(am, p), imp, p, year)
                out["pay_for_improvement"].append(p4i)
                for r in rows_of(con, p4i.order_by("practice_id")):
                    add(f"p4i:{pid}:{year}", Entry(f"practice:{r['practice_id']}", aco, int(r["bonus_cents"]), pid,
                                                   str(year), "phm.pay_for_improvement",
                                                   memo=f"{r['lives']} lives x {r['measures_improved']} measures improved",
                                                   payer_ref=p.aco.id, payee_ref=r["practice_id"]))

        if pay.value_payment is not None:
            if employer_group is None:
                note(pid, "value_payment", "employer_group not loaded: no invoices")
            else:
                cost = None
                if tmm is not None:
                    t = tmm.filter((tmm.program_id == pid) & (tmm.performance_year == year))
                    t = t.semi_join(am.select("member_id", "month"), ["member_id", "month"])
                    cost = t.group_by("program_id", "month").aggregate(actual_cents=t.ffs_paid_cents.sum())
                adj = vp_mod.adjustments(con, p, months, targets=targets, cost=cost, score=score)
                quarters = _period_quarters(p, period.months)
                out["value_payment_adjustments"].append(merged("value_payment_adjustments", pid, rate_table(
                    [r for r in adj if r["quarter"] in quarters], vp_mod.ADJ_SCHEMA)))
                inv = keep(vp_mod.invoices(am, employer_group, p, adj))
                out["value_payment_invoices"].append(merged("value_payment_invoices", pid, of_period(inv)))
                hh = fpp_mod.hospital_hsas(roster, p) if pay.fpp is not None else _any_fpp_hospitals(roster)
                pt = vp_mod.pass_through(con, inv, am, roster, p, hh)
                out["value_payment_pass_through"].append(merged("value_payment_pass_through", pid, rate_table(
                    [r for r in pt if r["month"] in period_months], vp_mod.PASS_SCHEMA)))
                per = inv.filter(inv.month.isin(list(period_months)))
                for r in rows_of(con, per.order_by("month", "employer_id")):
                    add(f"vp:{pid}:{month_label(r['month'])}",
                        Entry(aco, f"employer:{r['employer_id']}", int(r["amount_cents"]), pid,
                              month_label(r["month"]), "vp.invoice", memo=r["working"],
                              payer_ref=r["employer_id"], payee_ref=p.aco.id))
                for r in pt:
                    if r["month"] not in period_months or r["pool"] == "admin" or r["rule"] == "vp.unallocated":
                        continue
                    add(f"vp:{pid}:{month_label(r['month'])}",
                        Entry(r["payee"], aco, r["amount_cents"], pid, month_label(r["month"]), "vp.pass_through",
                              memo=f"pool {r['pool']}: {r['member_months']} attributed MM", payer_ref=p.aco.id,
                              payee_ref=r["payee"].split(":", 1)[1]))

        if period.kind == "year" and tmm is not None and "completion_factors" in tables:
            out["payment_accruals"].append(_accruals(con, p, tmm, am, year, paid_through))

    out["payment_notes"] = [merged("payment_notes", p.program_id, rate_table(
        [n for n in notes if n["program_id"] == p.program_id], NOTE_SCHEMA)) for p in programs]
    return out, batches, notes, cached


def _read_by_fpp(lines: ir.Table, fpp_programs: Sequence, year: int) -> ir.BooleanValue:
    """The netted lines an FPP stage reads: for some FPP program, its payer's lines of the scope's
    claim types in its history years (hospital shares), or its payer's lines of the performance
    year under any shadow arrangement (fpp, cpr, capitated: the FPP's shadow claims, and the
    other shadow claims the fixed-payment TCOC values). Every reader filters on at least this, so
    dropping the other lines before caching changes no result; it keeps the cached table (the
    run's largest) to what is used. The scope's service categories are left to the readers (`fpp.in_scope`): tested
    here, DuckDB classified every line of the claims before the dates and payment models left a
    third of them (10.3 against 8.1-8.4 CPU s at 650,000 members), and they drop few lines."""
    out = ibis.literal(False)
    for p in fpp_programs:
        f = p.payments.fpp
        hist = sorted(f.hospital_allocation.history_years or [])
        shadow = (lines.service_date.year() == year) & lines.payment_arrangement.isin(list(SHADOW_ARRANGEMENTS))
        if hist:
            shadow = shadow | (lines.service_date.year().isin(hist) & lines.claim_type.isin(list(f.scope.claim_types)))
        out = out | ((lines.payer == p.payer) & shadow)
    return out


def _served_in(lines: ir.Table, years) -> ir.Table:
    """The netted lines served from the first of `years` to the last (`core.claims.served_between`),
    so the lines of other years are not netted and classified only to be dropped. The readers
    still test the years themselves."""
    from allpayer.core.claims import served_between

    return served_between(lines, dt.date(min(years), 1, 1), dt.date(max(years), 12, 31))


def _of_payers(medical_claim: ir.Table, payers: Sequence[str]) -> ir.Table:
    """The claim rows of `payers`, before the adjustment rows are netted: netting (a window over
    every claim line) then reads only those payers' rows, not the whole claims table on every
    run. Every row of a claim line carries the line's payer, so the netted lines are the same."""
    return medical_claim.filter(medical_claim.payer.isin(list(payers)))


def _any_fpp_hospitals(roster: ir.Table) -> ir.Table:
    r = roster.filter((roster.payment_model == "fpp") & roster.organization_id.notnull())
    return r.group_by(hospital_id=r.organization_id).aggregate(hsa=r.hsa.min())


def _accruals(con, program, tmm: ir.Table, am: ir.Table, year: int, paid_through: dt.date) -> ir.Table:
    """IBNR reserve per month of the year: paid x (1 / completion factor - 1), half-up, where the
    lag is the number of months from the service month to the valuation month."""
    from allpayer.pipeline import valuation_date

    val = valuation_date(paid_through)
    t = tmm.filter((tmm.program_id == program.program_id) & (tmm.performance_year == year))
    t = t.semi_join(am.select("member_id", "month"), ["member_id", "month"])
    g = rows_of(con, t.group_by("month").aggregate(paid=(t.paid_cents).sum()).order_by("month"))
    cf = con.table("completion_factors")
    cf = cf.filter((cf.payer == program.payer) & (cf.performance_year == year))
    factors = {int(r["lag"]): Decimal(str(r["completion_factor"])) for r in rows_of(con, cf.select("lag", "completion_factor"))}
    rows = []
    for r in g:
        m = r["month"]
        lag = (val.year - m.year) * 12 + (val.month - m.month)
        f = factors.get(lag) if lag >= 0 else None
        if f is None:
            f = Decimal(1) if lag > max(factors, default=-1) else None
        paid = int(r["paid"] or 0)
        ibnr = apply_rate(paid, (1 / f - 1)) if f not in (None, Decimal(0)) else None
        rows.append({"program_id": program.program_id, "performance_year": year, "payer": program.payer, "month": m,
                     "lag": lag, "paid_cents": paid, "completion_factor": str(f) if f is not None else None,
                     "ibnr_cents": ibnr})
    return rate_table(rows, ACCRUAL_SCHEMA)


def _batch_keys(programs: Sequence, period: PaymentPeriod) -> list[str]:
    """Every batch key a run of `period` posts for `programs` when they pay something: one per
    family, program and month of the period, and the after-year ones for a ``--year`` run."""
    keys = []
    for p in programs:
        pay, pid = p.payments, p.program_id
        families = [f for f, on in (("fpp", pay.fpp), ("cpr", pay.cpr), ("phm", pay.phm),
                                    ("vp", pay.value_payment)) if on is not None]
        keys += [f"{f}:{pid}:{month_label(m)}" for f in families for m in period.months]
        if period.kind == "year":
            keys += [f"{f}:{pid}:{period.year}" for f, on in (("phm_ladder", pay.phm), ("cpr_bonus", pay.cpr),
                                                               ("p4i", pay.pay_for_improvement)) if on is not None]
    return keys


def _stamp(t: ir.Table, year: int) -> ir.Table:
    if "performance_year" not in t.columns:
        t = t.mutate(performance_year=ibis.literal(year, "int32"))
    return t


def run_payments(
    db,
    period: PaymentPeriod,
    *,
    terms: Sequence | None = None,
    store_url: str | None = None,
    paid_through: dt.date | None = None,
    progress: Progress | None = None,
    backend: str = "duckdb",
    spark_master: str = "local[2]",
    spark_remote: str | None = None,
    spark_con=None,
) -> PaymentsResult:
    """Compute the payments of `period`, publish the tables, post the ledger (see module doc).

    `backend`: ``duckdb`` (`db` is a DuckDB file) or ``spark`` (`db` is a warehouse folder, the
    payments computed by Spark and published as its next snapshot; the ledger store defaults to
    ``<folder>.store.sqlite`` beside it), as `allpayer.pipeline.run_year`."""
    from allpayer.inputs.load import resolve_paid_through
    from allpayer.pipeline import _write, begin_run, check_database, programs_for_year, union_aligned
    from allpayer.store import default_store_url, open_store
    from allpayer.terms import load_programs, programs_dir

    db = Path(db)
    spark = check_database(db, backend)
    term_paths = [Path(t) for t in terms] if terms else [programs_dir() / "vermont"]
    programs = programs_for_year(load_programs(term_paths), period.year)
    store = open_store(store_url or default_store_url(db))
    ledger = Ledger(store)
    record = dict(
        kind="run", paid_through=paid_through,
        terms={p.program_id: p.terms_version for p in programs},
        parameters={"stage": "payments", "period": period.label, "terms": [str(t) for t in term_paths]},
    )
    with begin_run(db, spark, record, spark_master=spark_master, spark_remote=spark_remote,
                   spark_con=spark_con) as run:
        run.paid_through = resolve_paid_through(run.con, paid_through)
        con = run.con
        write = getattr(run, "write", None) or _write
        out, batches, notes, cached = compute(con, programs, period, paid_through=run.paid_through, progress=progress)
        res = PaymentsResult(run.run_id, period.label, period.year, [p.program_id for p in programs], notes=notes)
        for name, parts in out.items():
            if not parts:
                if name != "payment_notes":
                    continue
                parts = [rate_table([], NOTE_SCHEMA)]
            expr = union_aligned([_stamp(x, period.year) for x in parts])
            if progress:
                progress(f"{period.year}: writing {name}")
            # the rows held from earlier runs keep their run ids
            res.rows[name] = write(con, name, expr, period.year, run.run_id, "performance_year", keep_run_ids=True)
        for t in cached:
            release(t)
        run.summary = {"rows": res.rows, "period": period.label, "batches": len(batches)}
    # Posted after the snapshot is published: a failed post is repaired by re-running the period
    # (posting is idempotent), and the ledger never references an unpublished run.
    for key in _batch_keys(programs, period):
        # a batch posted before whose rows are now all gone (a month restated to nothing) is
        # posted empty, which reverses it: the ledger keeps what the tables hold
        if key not in batches:
            before = ledger.batch_history(key)
            if before and before[-1]["state"] == "posted" and before[-1]["n_entries"]:
                batches[key] = []
    for key in sorted(batches):
        before = ledger.batch_history(key)
        prev_total = before[-1]["total_cents"] if before and before[-1]["state"] == "posted" else 0
        r = ledger.post(key, batches[key], run_id=res.run_id)
        total = sum(e.amount_cents for e in batches[key])
        res.postings.append({"batch_key": key, "status": r.status, "entries": len(batches[key]),
                             "total_cents": total, "previous_total_cents": prev_total,
                             "prior_run_id": r.prior_run_id})
    store.close()
    return res
