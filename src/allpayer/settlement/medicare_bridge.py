"""Medicare bridge: settle a Medicare program from the engine's tables through the MSSP calculator.

CMS settles an MSSP-style program on its own benchmark; the ACO receives a benchmark report. The
bridge combines that report with what the engine computed:

- from ``tcoc_member_month`` joined to ``attribution`` (the program's attributed and eligible
  member months of the year, as every settlement): member months and FFS-basis expenditure by
  Medicare enrollment type (esrd, disabled, aged_dual, aged_nondual); person-years = member
  months / 12;
- per-member truncation of those months (``target.truncation``) by enrollment type, taken off
  the expenditure;
- from the benchmark report (CSV): the updated benchmark per capita of each enrollment type and
  the ACO's track, MSR, MLR and, where they apply, agreement year and participant revenue.

Then ``benchmark_total = sum_e UB_e x person-years_e`` (domain.md M2: UB weighted by PY
person-years) and ``expenditure_total = sum_e truncated expenditure_e``, settled by
`allpayer.settlement.mssp.settle` with the quality score of ``quality_program_scores``; the net is
the earned amount less the program's ``payments.advance_payments``. Its lines become the
statement's lines (amounts rounded half up to cents for display; the calculator rounds
only its final result).

Benchmark report columns: ``enrollment_type,updated_benchmark_per_capita,track,msr,mlr,
agreement_year,participant_revenue`` (dollars and fractions as text; the last four columns the
same on every row, blank when not given).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import ibis

from allpayer.errors import InputFileError
from allpayer.money import dollars_to_cents
from allpayer.settlement.engine import Line, Settlement

ENROLLMENT_TYPES = ("esrd", "disabled", "aged_dual", "aged_nondual")
REPORT_COLUMNS = ("enrollment_type", "updated_benchmark_per_capita", "track", "msr", "mlr", "agreement_year",
                  "participant_revenue")


@dataclass(frozen=True)
class BenchmarkReport:
    per_capita: dict[str, Decimal]
    track: str
    msr: Decimal
    mlr: Decimal | None
    agreement_year: int | None
    participant_revenue: Decimal | None


def read_benchmark_report(path: str | Path) -> BenchmarkReport:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputFileError(str(path), f"cannot read the benchmark report: {exc.strerror or exc}") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise InputFileError(str(path), f"empty benchmark report: expected columns {','.join(REPORT_COLUMNS)}")
    missing = [c for c in REPORT_COLUMNS[:4] if c not in rows[0]]
    if missing:
        raise InputFileError(str(path), f"missing column(s) {', '.join(missing)}")

    def num(raw: str, what: str, n: int) -> Decimal:
        try:
            return Decimal(raw.strip())
        except (InvalidOperation, AttributeError):
            raise InputFileError(str(path), f"line {n}: {what} {raw!r} is not a number") from None

    per_capita: dict[str, Decimal] = {}
    params = None
    for n, r in enumerate(rows, start=2):
        et = (r.get("enrollment_type") or "").strip()
        if et not in ENROLLMENT_TYPES:
            raise InputFileError(str(path), f"line {n}: enrollment_type {et!r} is not one of {', '.join(ENROLLMENT_TYPES)}")
        if et in per_capita:
            raise InputFileError(str(path), f"line {n}: enrollment_type {et} appears twice")
        per_capita[et] = num(r["updated_benchmark_per_capita"], "updated_benchmark_per_capita", n)
        p = tuple((r.get(c) or "").strip() for c in REPORT_COLUMNS[2:])
        if params is None:
            params = p
        elif p != params:
            raise InputFileError(str(path), f"line {n}: track, msr, mlr, agreement_year and participant_revenue "
                                            "must be the same on every row")
    track, msr, mlr, ay, rev = params
    if not track or not msr:
        raise InputFileError(str(path), "track and msr are required")
    return BenchmarkReport(per_capita, track, num(msr, "msr", 2), num(mlr, "mlr", 2) if mlr else None,
                           int(ay) if ay else None, num(rev, "participant_revenue", 2) if rev else None)


@dataclass(frozen=True)
class EnrollmentAggregate:
    enrollment_type: str
    member_months: int
    expenditure_cents: int
    truncated_amount_cents: int = 0


def engine_aggregates(con, program, year: int) -> list[EnrollmentAggregate]:
    """Attributed member months, FFS-basis expenditure and truncated amounts by enrollment type
    (Ibis), over the program's attributed member months (``inputs.settlement_months``)."""
    from allpayer.settlement.inputs import attributed_truncation, settlement_months

    mm = settlement_months(con, program, year)
    if "enrollment_type" not in mm.columns:
        mm = mm.mutate(enrollment_type=ibis.literal("all"))
    g = mm.group_by("enrollment_type").aggregate(mm=mm.count(), cost=mm.ffs_paid_cents.sum())
    rows = {r["enrollment_type"]: r for r in con.to_pyarrow(g).to_pylist()}
    cut = attributed_truncation(con, program, year, by_group=True) or {}
    return [EnrollmentAggregate(et, int(r["mm"]), int(r["cost"] or 0), cut.get(et, 0))
            for et, r in sorted(rows.items(), key=lambda kv: str(kv[0]))]


def mssp_input(program, year: int, aggregates: list[EnrollmentAggregate], report: BenchmarkReport,
               quality_score: Decimal | None, met_quality_standard: bool | None):
    """The MSSP calculator's input from the engine's aggregates and the benchmark report."""
    from allpayer.settlement.mssp import MsspInput, MsspInputError

    bench = Decimal(0)
    spend = Decimal(0)
    months = 0
    for a in aggregates:
        if a.enrollment_type not in report.per_capita:
            raise MsspInputError([f"the benchmark report has no per-capita benchmark for {a.enrollment_type!r}"])
        bench += report.per_capita[a.enrollment_type] * Decimal(a.member_months) / 12
        spend += Decimal(a.expenditure_cents - a.truncated_amount_cents) / 100
        months += a.member_months
    return MsspInput(
        performance_year=year, aco_id=program.aco.id, track=report.track,
        benchmark_total=bench, expenditure_total=spend, msr=report.msr, mlr=report.mlr,
        quality_score=quality_score, met_quality_standard=met_quality_standard if met_quality_standard is not None else True,
        assigned_beneficiaries=round(months / 12), participant_revenue=report.participant_revenue,
        agreement_year=report.agreement_year,
    )


def _cents(value: Decimal) -> int:
    return dollars_to_cents(value)


def settle_medicare(program, year: int, aggregates, report: BenchmarkReport, *, quality_score=None,
                    met_quality_standard=None, fixed_payment_performance_cents: int | None = None,
                    rules=None) -> Settlement:
    """Settle through the MSSP calculator and return a statement with named lines."""
    from allpayer.settlement.mssp import settle
    from allpayer.settlement.mssp_terms import load_mssp_rules

    measured = quality_score is not None
    inp = mssp_input(program, year, aggregates, report, quality_score if measured else Decimal(1),
                     met_quality_standard)
    m = settle(inp, rules or load_mssp_rules())
    res = Settlement(program_id=program.program_id, performance_year=year, payer=program.payer, aco_id=program.aco.id,
                     kind=program.kind, steps=tuple(program.settlement.steps), method="mssp")

    def add(line_id, label, step, amount=None, rate=None, term="", note="", depends=()):
        res.lines.append(Line(len(res.lines) + 1, line_id, label, step, amount, rate, term, note, tuple(depends)))

    add("member_months", "attributed member months", "inputs", rate=Decimal(sum(a.member_months for a in aggregates)),
        term="attribution", note="attributed and eligible member months: the population of the expenditure below")
    for a in aggregates:
        add(f"expenditure_{a.enrollment_type}", f"expenditure, {a.enrollment_type} (after truncation)", "inputs",
            amount=a.expenditure_cents - a.truncated_amount_cents, term="tcoc_member_month x attribution, target.truncation",
            note=f"{a.member_months} member months; {a.truncated_amount_cents} cents truncated")
        add(f"benchmark_{a.enrollment_type}", f"updated benchmark per capita, {a.enrollment_type}", "inputs",
            amount=_cents(report.per_capita[a.enrollment_type]), term="benchmark report")
    add("quality_score", "quality score", "inputs", rate=inp.quality_score, term="quality_program_scores",
        note="measured" if measured else "quality not yet measured: assumed full credit")
    for ln in m.lines:
        v = ln.value
        term = f"mssp rules ({m.rule_set})" + (f": {ln.reference}" if ln.reference else "")
        if ln.unit == "usd":
            note = ln.basis if v == round(v, 2) else f"{ln.basis} (exact {v})"
            add(f"mssp_{ln.name}", ln.label, "mssp", amount=_cents(v), term=term, note=note)
        elif ln.unit in ("rate", "flag"):
            add(f"mssp_{ln.name}", ln.label, "mssp", rate=Decimal(int(v)) if isinstance(v, bool) else Decimal(v),
                term=term, note=ln.basis)
        else:
            add(f"mssp_{ln.name}", ln.label, "mssp", term=term, note=f"{v}: {ln.basis}")
    for n in m.notes:
        add(f"mssp_note_{len(res.lines)}", "note", "mssp", term="mssp", note=n)
    res.target_cents = _cents(inp.benchmark_total)
    res.actual_cents = _cents(inp.expenditure_total)
    res.gross_cents = res.target_cents - res.actual_cents
    res.shared_cents = _cents(m.earned_savings_losses)
    add("shared", "earned savings (+) or owed losses (-)", "net", amount=res.shared_cents, term="mssp",
        depends=("mssp_earned_savings_losses",))
    # payments made during the year against the settlement are netted, as in the generic steps
    # (domain.md R8.1 step 8: Medicare advanced shared savings)
    advances = program.payments.advance_payments
    adv = sum(dollars_to_cents(a.annual_amount.value) for a in advances)
    if advances:
        add("advance_payments", "advance payments made during the year", "advance_payments", amount=-adv,
            term="payments.advance_payments", note=", ".join(a.name for a in advances))
    res.net_cents = res.shared_cents - adv
    add("net", "net settlement: payer pays ACO (+) or ACO pays payer (-)", "net", amount=res.net_cents, term="mssp",
        depends=("shared", "advance_payments") if advances else ("shared",))
    fpp = fixed_payment_performance_cents
    add("fixed_payment_performance", "fixed payment performance (FPP paid - shadow claims)", "combined",
        amount=int(fpp or 0), term="fixed_payment_performance",
        note="" if fpp is not None else "not yet computed (no fixed_payment_performance table): zero")
    res.fixed_payment_performance_cents = int(fpp or 0)
    res.combined_cents = res.net_cents + res.fixed_payment_performance_cents
    add("combined", "combined result: settlement + fixed payment performance", "combined", amount=res.combined_cents,
        term="settlement.steps", depends=("net", "fixed_payment_performance"))
    return res


__all__ = ["read_benchmark_report", "BenchmarkReport", "engine_aggregates", "EnrollmentAggregate", "mssp_input",
           "settle_medicare"]
