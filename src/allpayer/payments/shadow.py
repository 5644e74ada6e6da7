"""Shadow claims, fixed payment performance and fixed-payment TCOC (domain.md R4).

Shadow claims are the in-scope claims of fixed-payment providers: the payer prices them and pays
0, because the fixed payment replaces FFS for them. Their value is taken at the **allowed
amount** (the payer's FFS price for the service, member cost sharing included), the same value
the TCOC stage gives shadow claims (``shadow_priced_cents``).

A claim line is a shadow claim of a program when: its payer is the program's payer, its claim
type and service category are in ``payments.fpp.scope``, its ``payment_arrangement`` is one of
``scope.payment_models``, its member is attributed and eligible in the program that month, and
its billing NPI is a roster provider of the payer under those payment models on the service date
(which gives the hospital; a line whose billing NPI no such roster row covers on that date counts
under hospital ``unmatched``).

    fixed payment performance = FPP paid - shadow value          (per program, and per hospital)
    combined result           = settlement + fixed payment performance
    fixed-payment TCOC        = FPP paid + CPR paid + FFS paid outside their scopes
                                + other shadow claims at their allowed amount

The fixed-payment TCOC (DVHA's ATCOC, domain.md R3.1, R4, R8.1) counts every dollar of care the
payer funds for the attributed member months, each at what the payer pays for it: the FPP at its
paid (net) amount in place of the FPP's shadow claims, the CPR payments the payer funds
(``cpr.payer_to_aco``) in place of the CPR practices' shadow claims, what it paid fee-for-service
for everything else, and the shadow claims that neither payment replaces (services capitated by
the payer outside the ACO, such as designated agencies, or lines under a fixed-payment
arrangement outside the payment's scope) at their allowed amount: the engine does not know the
payer's capitation, and the FFS-equivalent price is the value the TCOC gives them.
"""

from __future__ import annotations

from fractions import Fraction

import ibis
import ibis.expr.types as ir

from allpayer.core.tcoc import SHADOW_ARRANGEMENTS, with_ratio
from allpayer.payments.fpp import fpp_providers_on, in_scope


def shadow_lines(lines: ir.Table, att_months: ir.Table, roster: ir.Table, program) -> ir.Table:
    """In-scope claim lines of fixed-payment providers for the program's attributed member months."""
    f = program.payments.fpp
    a = att_months.filter(att_months.program_id == program.program_id).select("member_id", "month", "program_id")
    l = lines.filter(
        (lines.payer == program.payer)
        & in_scope(lines, program)
        & lines.payment_arrangement.isin(list(f.scope.payment_models))
    )
    l = l.join(a, [l.member_id == a.member_id, l.service_month == a.month])
    prov = fpp_providers_on(roster, program, l.select(npi=l.billing_npi, service_date=l.service_date))
    l = l.left_join(prov, [l.billing_npi == prov.npi, l.service_date == prov.service_date])
    return l.mutate(hospital_id=l.hospital_id.fill_null("unmatched"))


def shadow_claims(lines: ir.Table, att_months: ir.Table, roster: ir.Table, program) -> ir.Table:
    """``shadow_claims``: grain (program_id, hospital_id, month).

    Columns: claim_lines, shadow_value_cents (allowed), paid_cents (what the payer paid on them,
    normally 0), pricing ('allowed').
    """
    s = shadow_lines(lines, att_months, roster, program)
    g = s.group_by(program_id=s.program_id, hospital_id=s.hospital_id, month=s.service_month).aggregate(
        claim_lines=s.count().cast("int64"),
        shadow_value_cents=s.allowed_cents.sum().cast("int64"),
        paid_cents=s.paid_cents.sum().cast("int64"),
    )
    return g.mutate(pricing=ibis.literal("allowed"))


def performance(program, fpp_payments: ir.Table, hospital_payments: ir.Table, shadow: ir.Table, year: int) -> ir.Table:
    """``fixed_payment_performance``: grain (program_id, hospital_id, performance_year); hospital
    'ALL' is the program total, whose FPP paid is the payer's net FPP.

    Columns: months (months of FPP paid), fpp_paid_cents, shadow_value_cents, performance_cents,
    drift (|shadow - FPP| / FPP as DECIMAL, NULL when FPP is 0), rebase_threshold, rebase_flag.
    """
    pid = program.program_id
    thr = program.payments.fpp.rebase_threshold
    thr_v = thr.value if thr is not None else None
    p = fpp_payments.filter(fpp_payments.program_id == pid)
    prog_paid = p.aggregate(months=p.month.nunique().cast("int64"), fpp_paid_cents=p.net_cents.sum().cast("int64"))
    prog_paid = prog_paid.mutate(hospital_id=ibis.literal("ALL"))
    h = hospital_payments.filter(hospital_payments.program_id == pid)
    hosp_paid = h.group_by("hospital_id").aggregate(
        months=h.month.nunique().cast("int64"), fpp_paid_cents=h.amount_cents.sum().cast("int64"))
    paid = prog_paid.select("hospital_id", "months", "fpp_paid_cents").union(
        hosp_paid.select("hospital_id", "months", "fpp_paid_cents"), distinct=False)
    s = shadow.filter(shadow.program_id == pid)
    sh_h = s.group_by("hospital_id").aggregate(shadow_value_cents=s.shadow_value_cents.sum().cast("int64"))
    sh_all = s.aggregate(shadow_value_cents=s.shadow_value_cents.sum().cast("int64")).mutate(hospital_id=ibis.literal("ALL"))
    sh = sh_h.union(sh_all.select("hospital_id", "shadow_value_cents"), distinct=False)
    j = paid.outer_join(sh, "hospital_id")
    j = j.mutate(_fpp=j.fpp_paid_cents.fill_null(0), _shv=j.shadow_value_cents.fill_null(0))
    j = j.mutate(_diff=(j._shv - j._fpp).abs())
    # rounded half-up at 10 decimals in integers (`with_ratio`): a DECIMAL division keeps a
    # different number of decimals on each backend (DuckDB 0.3502122855, Spark 0.3502120000)
    j = with_ratio(j, "_drift", j._diff, j._fpp, scale=10)
    hid = ibis.coalesce(j.hospital_id, j.hospital_id_right)
    fpp, shv, diff = j._fpp, j._shv, j._diff
    drift = j._drift.cast("decimal(18,10)")
    if thr_v is not None:
        # |shadow - FPP| / FPP > threshold  <=>  |shadow - FPP| x den > num x FPP  (exact integers)
        fr = Fraction(thr_v)
        flag = (fpp != 0) & (diff * fr.denominator > fpp * fr.numerator)
    else:
        flag = ibis.literal(False)
    return j.select(
        program_id=ibis.literal(pid),
        hospital_id=hid,
        performance_year=ibis.literal(year, "int32"),
        months=j.months.fill_null(0).cast("int64"),
        fpp_paid_cents=fpp.cast("int64"),
        shadow_value_cents=shv.cast("int64"),
        performance_cents=(fpp - shv).cast("int64"),
        drift=drift,
        rebase_threshold=ibis.literal(str(thr_v) if thr_v is not None else None, "string"),
        rebase_flag=flag,
    )


def shadow_value_by_payment(lines: ir.Table, att_months: ir.Table, program) -> ir.Table:
    """One row: the allowed value of the program's shadow claims in its attributed member months,
    by the payment that replaces them.

    A shadow claim here is any line of the payer whose ``payment_arrangement`` is a shadow
    arrangement (fpp, cpr, capitated: priced, paid 0) for a member attributed and eligible that
    month. Columns:

    - ``fpp_shadow_value_cents``: the FPP's shadow claims (:func:`shadow_lines`: in the FPP scope,
      under its payment models), replaced by the FPP paid;
    - ``cpr_shadow_value_cents``: the other lines under arrangement ``cpr`` when the program pays
      CPR (``payments.cpr``), replaced by the CPR paid;
    - ``other_shadow_value_cents``: the rest (capitated by the payer outside the ACO; a fixed-payment
      arrangement outside its payment's scope; cpr lines of a program without CPR): no payment the
      engine computes replaces them.
    """
    a = att_months.filter(att_months.program_id == program.program_id).select("member_id", "month")
    l = lines.filter((lines.payer == program.payer) & lines.payment_arrangement.isin(list(SHADOW_ARRANGEMENTS)))
    l = l.semi_join(a, [l.member_id == a.member_id, l.service_month == a.month])
    f = program.payments.fpp
    fpp_line = ibis.literal(False)
    if f is not None:
        fpp_line = (in_scope(l, program) & l.payment_arrangement.isin(list(f.scope.payment_models))).fill_null(False)
    cpr_line = ~fpp_line & (l.payment_arrangement == "cpr") if program.payments.cpr is not None else ibis.literal(False)
    other_line = ~fpp_line & ~cpr_line

    def value(test):
        return ibis.ifelse(test, l.allowed_cents, 0).sum().fill_null(0).cast("int64")

    return l.aggregate(fpp_shadow_value_cents=value(fpp_line), cpr_shadow_value_cents=value(cpr_line),
                       other_shadow_value_cents=value(other_line))


FIXED_PAYMENT_DEFINITION = ("FPP paid + CPR paid + FFS paid outside their scopes + other shadow claims at allowed "
                            "(DVHA's ATCOC: every dollar the payer funds)")


def fixed_payment_tcoc(program, fpp_payments: ir.Table, tcoc_member_month: ir.Table, att_months: ir.Table,
                       year: int, *, lines: ir.Table, cpr_payments: ir.Table | None = None) -> ir.Table:
    """``tcoc_fixed_payment``: grain (program_id, performance_year); see the module docstring.

    `lines`: netted medical claim lines (the payments run's, which keep every shadow line of the
    performance year); `cpr_payments`: :func:`allpayer.payments.cpr.cpr_payments` of the program
    (None when it pays no CPR). Columns, all over the attributed member months:

    - ``fpp_paid_cents``: the payer's net FPP;
    - ``cpr_paid_cents``: the CPR the payer funds (``cpr.payer_to_aco``, = ``cpr_payments``);
    - ``ffs_outside_scope_cents``: what the payer paid fee-for-service
      (``tcoc_member_month.paid_cents - excluded_payment_cents``; shadow claims are paid 0, so this
      is everything outside the FPP and CPR);
    - ``shadow_outside_scope_cents``: shadow claims no computed payment replaces, at allowed
      (:func:`shadow_value_by_payment`'s ``other_shadow_value_cents``);
    - ``actual_tcoc_cents``: the sum of those four;
    - ``fpp_shadow_value_cents``, ``cpr_shadow_value_cents``: the shadow claims the FPP and CPR
      replace (not in the actual; shown so that the FFS basis reconciles: FFS basis = FFS paid +
      every shadow claim at allowed);
    - member_months, definition.
    """
    pid = program.program_id
    p = fpp_payments.filter(fpp_payments.program_id == pid)
    paid = p.aggregate(fpp_paid_cents=p.net_cents.sum().cast("int64"))
    if cpr_payments is not None:
        c = cpr_payments.filter(cpr_payments.program_id == pid)
        paid = paid.cross_join(c.aggregate(cpr_paid_cents=c.amount_cents.sum().cast("int64")))
    else:
        paid = paid.mutate(cpr_paid_cents=ibis.literal(0, "int64"))
    a = att_months.filter(att_months.program_id == pid).select("member_id", "month")
    t = tcoc_member_month.filter((tcoc_member_month.program_id == pid) & (tcoc_member_month.performance_year == year))
    t = t.semi_join(a, ["member_id", "month"])
    ffs = t.aggregate(ffs_outside_scope_cents=(t.paid_cents - t.excluded_payment_cents).sum().cast("int64"))
    shadow = shadow_value_by_payment(lines, att_months, program)
    mm = a.aggregate(member_months=a.count().cast("int64"))
    j = paid.cross_join(ffs).cross_join(shadow).cross_join(mm)
    fp, cp = j.fpp_paid_cents.fill_null(0), j.cpr_paid_cents.fill_null(0)
    ffs_v, other = j.ffs_outside_scope_cents.fill_null(0), j.other_shadow_value_cents.fill_null(0)
    return j.select(
        program_id=ibis.literal(pid),
        performance_year=ibis.literal(year, "int32"),
        member_months=j.member_months,
        fpp_paid_cents=fp.cast("int64"),
        cpr_paid_cents=cp.cast("int64"),
        ffs_outside_scope_cents=ffs_v.cast("int64"),
        shadow_outside_scope_cents=other.cast("int64"),
        actual_tcoc_cents=(fp + cp + ffs_v + other).cast("int64"),
        fpp_shadow_value_cents=j.fpp_shadow_value_cents.fill_null(0).cast("int64"),
        cpr_shadow_value_cents=j.cpr_shadow_value_cents.fill_null(0).cast("int64"),
        definition=ibis.literal(FIXED_PAYMENT_DEFINITION),
    )


def combined_result(settlement_cents: int, fixed_payment_performance_cents: int) -> int:
    """Combined result = settlement + fixed payment performance (domain.md R4), in cents.

    >>> combined_result(-6_505_293_00, 8_245_865_00)   # OneCare Medicaid 2019 (domain.md T1)
    174057200
    """
    return int(settlement_cents) + int(fixed_payment_performance_cents)


def fixed_payment_performance_cents(fpp_paid_cents: int, shadow_value_cents: int) -> int:
    """FPP paid - shadow value, in cents."""
    return int(fpp_paid_cents) - int(shadow_value_cents)


def combined_results(settlement: ir.Table, fixed_payment_performance: ir.Table) -> ir.Table:
    """Join settlement results (program_id, performance_year, net_cents) with the program totals
    of ``fixed_payment_performance`` and add ``combined_cents`` = net + performance (0 when a
    program has no fixed payment)."""
    f = fixed_payment_performance.filter(fixed_payment_performance.hospital_id == "ALL")
    f = f.select("program_id", "performance_year", "performance_cents")
    j = settlement.left_join(f, ["program_id", "performance_year"])
    perf = j.performance_cents.fill_null(0)
    return j.select(
        *[c for c in settlement.columns],
        fixed_payment_performance_cents=perf.cast("int64"),
        combined_cents=(j.net_cents + perf).cast("int64"),
    )


__all__ = [
    "shadow_lines", "shadow_claims", "performance", "shadow_value_by_payment", "fixed_payment_tcoc",
    "FIXED_PAYMENT_DEFINITION", "combined_result",
    "combined_results", "fixed_payment_performance_cents",
]
