"""Fixed prospective payments (domain.md R3): payer to ACO, and ACO to hospitals.

Payer to ACO, per program, month and rate cell (rule ``fpp.payer_to_aco``)::

    gross_cents    = attributed eligible MM x FPP PMPM(cell, month)        (step pmpm_amount, half-up)
    withhold_cents = gross_cents x withhold rate                           (half-up, on this line)
    net_cents      = gross_cents - withhold_cents                          (what the payer pays)

ACO to hospitals, per program and month (rule ``fpp.aco_to_hospital``), as the terms say:

* ``historical_ffs_share``: each hospital's share of the FFS-priced value (allowed amount) of
  in-scope services of the program's attributed people in the history years, billed by
  providers the roster lists under the FPP payment models for the payer. The month's net FPP is
  split over the shares of the hospitals in FPP that month (roster rows in effect on its first
  and last day) by the largest-remainder method, so the hospitals receive exactly what the payer
  paid and the ACO keeps nothing of it.
* ``per_hospital_pmpm``: a hospital receives its PMPM times the attributed member months of
  its health service area (the HSA of the member's attributing practice); what the ACO keeps
  is the payer's net FPP less these payments (it may be negative).

Hospitals are identified by the roster's ``organization_id`` (a hospital and the practices it
owns share it).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Sequence

import ibis
import ibis.expr.types as ir

from allpayer.money import largest_remainder
from allpayer.payments.common import covered_months, pmpm_cents, rate_table, rows_of, to_micro

PPM = 1_000_000


def fpp_rates(program, months: Sequence[dt.date]) -> ir.Table:
    """(cell_id, month, pmpm_micro, withhold_ppm, withhold) for every cell and month; the
    'unassigned' cell (member months in no rate cell) has PMPM 0."""
    f = program.payments.fpp
    rows = []
    for m in months:
        w = f.withhold.at(m)
        ppm = int(w * PPM)
        if Decimal(ppm) != w * PPM:
            from allpayer.payments.common import PaymentsError

            raise PaymentsError(f"{program.program_id}: withhold {w} has more than 6 decimals")
        for cell, value in f.pmpm_by_cell.items():
            rows.append({"cell_id": cell, "month": m, "pmpm_micro": to_micro(value.at(m)),
                         "withhold_ppm": ppm, "withhold": str(w)})
        rows.append({"cell_id": "unassigned", "month": m, "pmpm_micro": 0, "withhold_ppm": ppm, "withhold": str(w)})
    return rate_table(rows, {"cell_id": "string", "month": "date", "pmpm_micro": "int64",
                             "withhold_ppm": "int64", "withhold": "string"})


def payer_payments(att_months: ir.Table, program, months: Sequence[dt.date]) -> ir.Table:
    """``fpp_payments``: grain (program_id, month, cell_id).

    Columns: payer, aco_id, member_months, pmpm_micro, gross_cents, withhold, withhold_cents,
    net_cents, rule.
    """
    a = att_months.filter(att_months.program_id == program.program_id)
    g = a.group_by("program_id", "month", "cell_id").aggregate(member_months=a.count().cast("int64"))
    r = fpp_rates(program, months)
    j = g.join(r, ["cell_id", "month"])
    gross = pmpm_cents(j.member_months, j.pmpm_micro)
    j = j.mutate(gross_cents=gross)
    j = j.mutate(withhold_cents=((j.gross_cents * j.withhold_ppm + PPM // 2) // PPM).cast("int64"))
    return j.select(
        program_id=j.program_id,
        month=j.month,
        cell_id=j.cell_id,
        payer=ibis.literal(program.payer),
        aco_id=ibis.literal(program.aco.id),
        member_months=j.member_months,
        pmpm_micro=j.pmpm_micro,
        gross_cents=j.gross_cents,
        withhold=j.withhold,
        withhold_cents=j.withhold_cents,
        net_cents=(j.gross_cents - j.withhold_cents).cast("int64"),
        rule=ibis.literal("fpp.payer_to_aco"),
    )


def _fpp_rows(roster: ir.Table, program) -> ir.Table:
    """The roster rows of the program's payer under its FPP payment models, with a hospital."""
    f = program.payments.fpp
    return roster.filter((roster.payer == program.payer) & roster.payment_model.isin(list(f.scope.payment_models))
                         & roster.organization_id.notnull())


def fpp_providers(roster: ir.Table, program) -> ir.Table:
    """Distinct (npi, hospital_id, hsa) of providers paid by the program's FPP models for its payer."""
    r = _fpp_rows(roster, program)
    # one organization per NPI: the lowest id if a roster lists several (total order)
    return r.group_by("npi").aggregate(hospital_id=r.organization_id.min(), hsa=r.hsa.min())


def fpp_providers_on(roster: ir.Table, program, keys: ir.Table) -> ir.Table:
    """(npi, service_date, hospital_id, hsa) for each distinct (npi, service_date) of `keys`: the
    hospital of the roster row that lists the NPI under the program's FPP models for its payer on
    that date (the lowest id where rows overlap, a total order). A date no such row covers (before
    the NPI joined the hospital, after it left) has no row."""
    r = _fpp_rows(roster, program)
    k = keys.select("npi", "service_date").distinct()
    j = k.join(r, [k.npi == r.npi, r.effective_start_date <= k.service_date,
                   r.effective_end_date.isnull() | (k.service_date <= r.effective_end_date)])
    return j.group_by([k.npi, k.service_date]).aggregate(hospital_id=j.organization_id.min(), hsa=j.hsa.min())


def fpp_hospital_months(con, roster: ir.Table, program, months: Sequence[dt.date]) -> set[tuple[str, dt.date]]:
    """(hospital_id, month) pairs of `months` in which the roster lists the hospital under the
    FPP payment models for the payer: FPP rows cover the month's first day and
    its last day, as a practice's participation in attribution."""
    f = program.payments.fpp
    r = roster.filter(roster.payment_model.isin(list(f.scope.payment_models)) & roster.organization_id.notnull())
    cm = covered_months(r.mutate(practice_id=r.organization_id), program.payer, months)
    return {(x["practice_id"], x["month"]) for x in rows_of(con, cm)}


def hospital_hsas(roster: ir.Table, program) -> ir.Table:
    """(hospital_id, hsa) of the FPP hospitals of a program (the hospital entity's HSA)."""
    p = fpp_providers(roster, program)
    return p.group_by("hospital_id").aggregate(hsa=p.hsa.min())


def in_scope(lines: ir.Table, program) -> ir.BooleanValue:
    s = program.payments.fpp.scope
    return lines.claim_type.isin(list(s.claim_types)) & lines.service_category.isin(list(s.service_categories))


def historical_weights(lines: ir.Table, roster: ir.Table, attribution: ir.Table, program) -> ir.Table:
    """(hospital_id, weight_cents): allowed amount of in-scope services in the history years,
    for people attributed to the program in its performance year, billed by FPP providers."""
    years = list(program.payments.fpp.hospital_allocation.history_years)
    people = attribution.filter((attribution.program_id == program.program_id) & attribution.attributed)
    people = people.select("person_id").distinct()
    l = lines.filter((lines.payer == program.payer) & lines.service_date.year().isin(years) & in_scope(lines, program))
    l = l.semi_join(people, "person_id")
    prov = fpp_providers(roster, program)
    j = l.join(prov, l.billing_npi == prov.npi)
    return j.group_by("hospital_id").aggregate(weight_cents=j.allowed_cents.sum().cast("int64"))


def hospital_payments(con, payer: ir.Table, program, *, lines: ir.Table | None = None, roster: ir.Table,
                      attribution: ir.Table | None = None, att_months: ir.Table | None = None) -> ir.Table:
    """``fpp_hospital_payments``: grain (program_id, month, hospital_id).

    Columns: basis ('historical_ffs_share' | 'per_hospital_pmpm'), weight_cents (history value, or
    NULL), member_months (HSA attributed MM, or NULL), pmpm_micro, share (exact fraction as text),
    amount_cents, rule. Small (hospitals x months): the split is computed in Python.
    """
    alloc = program.payments.fpp.hospital_allocation
    month_tot = payer.group_by("program_id", "month").aggregate(net_cents=payer.net_cents.sum())
    totals = rows_of(con, month_tot.order_by("month"))
    out = []
    if alloc.method == "historical_ffs_share":
        w = rows_of(con, historical_weights(lines, roster, attribution, program).order_by("hospital_id"))
        w = [r for r in w if r["weight_cents"] and r["weight_cents"] > 0]
        active = fpp_hospital_months(con, roster, program, [t["month"] for t in totals])
        for t in totals:
            # the hospitals in FPP this month (one that joins or leaves FPP shares its months only)
            wm = [r for r in w if (r["hospital_id"], t["month"]) in active]
            if not wm:
                continue
            wsum = sum(r["weight_cents"] for r in wm)
            parts = largest_remainder(int(t["net_cents"]), [r["weight_cents"] for r in wm])
            for r, amt in zip(wm, parts):
                out.append({"program_id": program.program_id, "month": t["month"], "hospital_id": r["hospital_id"],
                            "basis": alloc.method, "weight_cents": r["weight_cents"], "member_months": None,
                            "pmpm_micro": None, "share": f"{r['weight_cents']}/{wsum}", "amount_cents": amt})
    else:
        hs = hospital_hsas(roster, program)
        a = att_months.filter(att_months.program_id == program.program_id)
        j = a.join(hs, "hsa")
        g = rows_of(con, j.group_by("hospital_id", "month").aggregate(mm=j.count()))
        mm = {(r["hospital_id"], r["month"]): int(r["mm"]) for r in g}
        for t in totals:
            for hid, value in sorted(alloc.pmpm_by_hospital.items()):
                micro = to_micro(value.at(t["month"]))
                n = mm.get((hid, t["month"]), 0)
                out.append({"program_id": program.program_id, "month": t["month"], "hospital_id": hid,
                            "basis": alloc.method, "weight_cents": None, "member_months": n,
                            "pmpm_micro": micro, "share": None, "amount_cents": (n * micro + 5_000) // 10_000})
    for r in out:
        r["rule"] = "fpp.aco_to_hospital"
    return rate_table(out, HOSPITAL_SCHEMA)


HOSPITAL_SCHEMA = {
    "program_id": "string", "month": "date", "hospital_id": "string", "basis": "string",
    "weight_cents": "int64", "member_months": "int64", "pmpm_micro": "int64", "share": "string",
    "amount_cents": "int64", "rule": "string",
}
