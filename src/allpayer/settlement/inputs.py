"""The aggregates a settlement reads from the engine's tables (Ibis; DuckDB or Spark).

Everything here is an Ibis expression over the published tables, aggregated to one row per
program (or per HSA, hospital or employer) before it is read; only those few rows reach Python.

Tables read (the year's rows only):

- ``targets`` (program_id, cell_id, month): ``target_cents`` summed, ``target_pmpm`` per cell;
- ``tcoc_member_month`` (program_id, member_id, month): ``ffs_paid_cents`` (the FFS basis with
  shadow claims priced), member months, members;
- ``tcoc_truncation`` (program_id, year, truncation_group): ``truncated_amount_cents``;
- ``attribution`` (program_id, member_id, month): attributed and eligible months with their HSA;
- ``provider_roster``: the hospitals of each HSA (``practice_type = 'hospital'``);
- ``employer_group``: the employer of each group;
- optional: ``quality_program_scores`` (quality_score, gate_met), ``tcoc_fixed_payment``
  (actual_tcoc_cents), ``fixed_payment_performance`` (performance_cents and fpp_paid_cents of
  hospital 'ALL' and of each hospital), ``fpp_payments`` (withhold_cents: the FPP withhold the
  quality modifier returns).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import ibis

from allpayer.core.targets import assign_cells
from allpayer.money import largest_remainder
from allpayer.settlement.engine import SettlementInputs

FIXED_TCOC_COLUMNS = ("tcoc_cents", "actual_tcoc_cents", "atcoc_cents", "fixed_payment_tcoc_cents")


def _rows(con, expr) -> list[dict]:
    return con.to_pyarrow(expr).to_pylist()


def _has(con, table: str) -> bool:
    return table in con.list_tables()


def _year_filter(t, year: int):
    for col in ("performance_year", "year"):
        if col in t.columns:
            return t.filter(t[col] == year)
    return t


def program_inputs(con, program, year: int, *, actual_override: int | None = None) -> tuple[SettlementInputs, list[str]]:
    """The settlement inputs of one program and year, and notes on what was not available."""
    pid = program.program_id
    notes: list[str] = []
    tg = con.table("targets")
    tg = tg.filter((tg.program_id == pid) & (tg.performance_year == year))
    target = _rows(con, tg.aggregate(target_cents=tg.target_cents.sum()))[0]["target_cents"]
    mm = con.table("tcoc_member_month")
    mm = mm.filter((mm.program_id == pid) & (mm.performance_year == year))
    agg = _rows(con, mm.aggregate(actual=mm.ffs_paid_cents.sum(), member_months=mm.count(),
                                  members=mm.member_id.nunique()))[0]
    truncated = None
    if _has(con, "tcoc_truncation"):
        tr = con.table("tcoc_truncation")
        tr = tr.filter((tr.program_id == pid) & (tr.year == year))
        r = _rows(con, tr.aggregate(n=tr.count(), cut=tr.truncated_amount_cents.sum()))[0]
        truncated = int(r["cut"]) if r["n"] else None
    quality_score = gate = None
    if _has(con, "quality_program_scores"):
        qs = con.table("quality_program_scores")
        qs = qs.filter((qs.program_id == pid) & (qs.performance_year == year))
        cols = [c for c in ("quality_score", "gate_met", "measured") if c in qs.columns]
        r = _rows(con, qs.select(*cols).limit(1))
        if r and r[0].get("quality_score") is not None and r[0].get("measured", True) is not False:
            quality_score = Decimal(str(r[0]["quality_score"]))
            gate = r[0].get("gate_met")
        # a row without a score (not measured) is treated like no row: full credit, said on the line
    if quality_score is None:
        notes.append("quality not yet measured (no quality_program_scores row): assumed full credit")
    fixed_actual = None
    if _has(con, "tcoc_fixed_payment"):
        tf = _year_filter(con.table("tcoc_fixed_payment"), year)
        col = next((c for c in FIXED_TCOC_COLUMNS if c in tf.columns), None)
        if col is not None:
            tf = tf.filter(tf.program_id == pid)
            r = _rows(con, tf.aggregate(n=tf.count(), v=tf[col].sum()))[0]
            fixed_actual = int(r["v"]) if r["n"] else None
    withheld = None
    if _has(con, "fpp_payments"):
        fw = con.table("fpp_payments")
        if "withhold_cents" in fw.columns:
            fw = fw.filter((fw.program_id == pid) & (fw.month.year() == year))
            r = _rows(con, fw.aggregate(n=fw.count(), v=fw.withhold_cents.sum()))[0]
            withheld = int(r["v"]) if r["n"] else None
    fpp_perf = fpp_paid = None
    if _has(con, "fixed_payment_performance"):
        fp = _year_filter(con.table("fixed_payment_performance"), year)
        fp = fp.filter((fp.program_id == pid) & (fp.hospital_id == "ALL"))
        r = _rows(con, fp.aggregate(n=fp.count(), perf=fp.performance_cents.sum(), paid=fp.fpp_paid_cents.sum()))[0]
        if r["n"]:
            fpp_perf, fpp_paid = int(r["perf"]), int(r["paid"])
    inputs = SettlementInputs(
        target_cents=int(target or 0),
        actual_cents=int(agg["actual"] or 0) if actual_override is None else int(actual_override),
        member_months=int(agg["member_months"]),
        members=int(agg["members"]),
        truncated_amount_cents=truncated,
        fixed_payment_actual_cents=fixed_actual,
        fpp_paid_cents=fpp_paid,
        fixed_payment_performance_cents=fpp_perf,
        quality_score=quality_score,
        quality_gate_met=gate,
        withheld_cents=withheld,
    )
    return inputs, notes


def _member_month_targets(con, program, year: int):
    """Program member months with their cell's target PMPM (exact decimal)."""
    pid = program.program_id
    mm = con.table("tcoc_member_month")
    mm = mm.filter((mm.program_id == pid) & (mm.performance_year == year))
    mm = assign_cells(mm, program)
    tg = con.table("targets")
    tg = tg.filter((tg.program_id == pid) & (tg.performance_year == year))
    tg = tg.select(_t_cell="cell_id", _t_month="month", target_pmpm="target_pmpm")
    return mm.left_join(tg, [mm.cell_id == tg._t_cell, mm.month == tg._t_month]).drop("_t_cell", "_t_month")


@dataclass(frozen=True)
class ParticipantBase:
    """A risk-bearing participant's weight and limit base for one program."""

    participant_id: str
    hsa: str
    attributed_member_months: int
    weight: Decimal
    target_cents: int
    actual_cents: int
    limit_base_cents: int
    fixed_payment_performance_cents: int | None


def participant_bases(con, program, year: int) -> list[ParticipantBase]:
    """Per risk-bearing participant: attributed member months x target PMPM (the weight of
    ``attributed_mm_x_target_pmpm``), its HSA's target and actual TCOC, and the FFS cost of its
    attributed lives (the limit base for ``limit_base: ffs_revenue``).

    Participants are HSAs (``risk_bearers: hsas``, id ``hsa-<hsa>``) or the participating hospitals
    of each HSA (``hospitals`` and ``participants``; id = the hospital's ``organization_id`` in the
    roster, as the payments stage names hospitals; an HSA with two hospitals splits its amounts
    evenly between them by largest remainder)."""
    pid = program.program_id
    t = _member_month_targets(con, program, year)
    att = con.table("attribution")
    att = att.filter((att.program_id == pid) & (att.performance_year == year) & att.attributed & att.eligible)
    att = att.select(_a_member="member_id", _a_month="month", hsa="hsa").distinct()
    j = t.join(att, [t.member_id == att._a_member, t.month == att._a_month])
    g = j.group_by("hsa").aggregate(
        mm=j.count(),
        weight=j.target_pmpm.sum(),
        actual=j.ffs_paid_cents.sum(),
    )
    rows = [r for r in _rows(con, g.order_by("hsa")) if r["hsa"] is not None]
    fpp_by_hospital: dict[str, int] = {}
    if _has(con, "fixed_payment_performance"):
        fp = _year_filter(con.table("fixed_payment_performance"), year)
        fp = fp.filter((fp.program_id == pid) & (fp.hospital_id != "ALL"))
        for r in _rows(con, fp.group_by("hospital_id").aggregate(v=fp.performance_cents.sum())):
            fpp_by_hospital[r["hospital_id"]] = int(r["v"])
    hospitals: dict[str, list[str]] = {}
    if program.settlement.distribution is not None and program.settlement.distribution.risk_bearers != "hsas":
        ro = con.table("provider_roster")
        ro = ro.filter((ro.practice_type == "hospital") & (ro.participation == "participant"))
        ro = ro.mutate(hospital_id=ro.organization_id.fill_null(ro.practice_id))
        for r in _rows(con, ro.select("hsa", "hospital_id").distinct().order_by(["hsa", "hospital_id"])):
            hospitals.setdefault(r["hsa"], []).append(r["hospital_id"])
    out: list[ParticipantBase] = []
    for r in rows:
        weight = Decimal(str(r["weight"] or 0))
        # target of the HSA's attributed months = sum of their cells' PMPMs, in cents (half up)
        target = int((weight * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
        actual = int(r["actual"] or 0)
        ids = hospitals.get(r["hsa"]) if hospitals else None
        if not ids:
            ids = [f"hsa-{r['hsa']}"]
        n = len(ids)
        mm_parts = largest_remainder(int(r["mm"]), [1] * n)
        target_parts = largest_remainder(target, [1] * n)
        actual_parts = largest_remainder(actual, [1] * n)
        for i, pid_ in enumerate(ids):
            out.append(ParticipantBase(
                participant_id=pid_, hsa=r["hsa"], attributed_member_months=mm_parts[i],
                weight=weight / n, target_cents=target_parts[i], actual_cents=actual_parts[i],
                limit_base_cents=actual_parts[i], fixed_payment_performance_cents=fpp_by_hospital.get(pid_),
            ))
    return out


@dataclass(frozen=True)
class EmployerBase:
    employer_id: str
    members: int
    member_months: int
    target_cents: int
    actual_cents: int


def employer_bases(con, program, year: int) -> list[EmployerBase]:
    """Per employer of a commercial or self-funded program: members, member months, the target
    of its members' months (cell PMPMs summed, half up to cents) and their FFS-basis TCOC."""
    if not _has(con, "employer_group"):
        return []
    t = _member_month_targets(con, program, year)
    eg = con.table("employer_group")
    e = eg.select(_g_group="group_id", employer_id="employer_id", _g_start="effective_start_date",
                  _g_end=eg.effective_end_date.fill_null(ibis.date(9999, 12, 31)))
    j = t.join(e, [t.group_id == e._g_group, e._g_start <= t.month, e._g_end >= t.month])
    w = ibis.window(group_by=[j.member_id, j.month], order_by=[ibis.desc(j._g_start), j.employer_id])
    j = j.mutate(_rn=ibis.row_number().over(w))
    j = j.filter(j._rn == 0)
    g = j.group_by("employer_id").aggregate(members=j.member_id.nunique(), mm=j.count(), weight=j.target_pmpm.sum(),
                                            actual=j.ffs_paid_cents.sum())
    out = []
    for r in _rows(con, g.order_by("employer_id")):
        w_ = Decimal(str(r["weight"] or 0))
        out.append(EmployerBase(r["employer_id"], int(r["members"]), int(r["mm"]),
                                int((w_ * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP")), int(r["actual"] or 0)))
    return out


def monthly_paid(con, program, year: int) -> list[dict]:
    """The program's FFS-basis cost by service month (payer, month, ffs_paid_cents)."""
    pid = program.program_id
    mm = con.table("tcoc_member_month")
    mm = mm.filter((mm.program_id == pid) & (mm.performance_year == year))
    g = mm.group_by(["payer", "month"]).aggregate(ffs_paid_cents=mm.ffs_paid_cents.sum())
    return _rows(con, g.order_by(["payer", "month"]))


__all__ = ["program_inputs", "participant_bases", "ParticipantBase", "employer_bases", "EmployerBase", "monthly_paid"]
