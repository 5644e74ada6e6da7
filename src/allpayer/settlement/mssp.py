"""Medicare Shared Savings Program (MSSP) settlement: savings or losses shared between an ACO and CMS.

`settle(aco, rules)` takes one ACO's performance-year results (`MsspInput`) and the dated terms
(`allpayer.settlement.mssp_terms`) and returns an `MsspSettlement`: the generated and earned
savings or losses and every step as a named line. The functions are pure; nothing reads files or
the clock. The formulas are the same for every year; which rule applies (quality gate or quality
scaling, fixed or quality-scaled loss rate, the order of the payment limit and sequestration,
sharing below the MSR) and every number come from the year's terms.

The steps (42 CFR 425 subpart G):

1. gross = updated benchmark - expenditures (both totals for the assigned beneficiaries).
2. Savings count only when gross >= MSR x benchmark; losses only on a two-sided track and when
   -gross >= MLR x benchmark. Then the whole amount counts, from the first dollar. An ACO that
   CMS found eligible may share savings below the MSR at a reduced rate where the year allows it.
3. Savings: final sharing rate from the quality rule, times gross; the performance payment limit
   (a share of the benchmark) and sequestration apply in the year's order.
4. Losses: loss rate (fixed, or 1 - sharing rate x quality score within a floor and ceiling),
   times the loss; limited to the smallest loss limit; reduced by the extreme and uncontrollable
   circumstances adjustment (the input dollars, or the year's waiver for every ACO when larger:
   PY2020). Sequestration never applies to losses.
   A 6-month performance year (PY2019, 42 CFR 425.609) settles CMS's pro-rated totals under its
   track's rules; calendar-year participant revenue is pro-rated for the revenue-based loss limit.
5. The result is rounded to cents, half up. Nothing before it is rounded.

>>> from allpayer.settlement.mssp_terms import load_mssp_rules
>>> aco = MsspInput(performance_year=2024, aco_id="T18", track="ENHANCED",
...                 benchmark_total=Decimal("243476550"), expenditure_total=Decimal("234000000"),
...                 msr=Decimal("0.02"), mlr=Decimal("0.02"), quality_score=Decimal("0.8"),
...                 met_quality_standard=True)
>>> result = settle(aco, load_mssp_rules())
>>> result.value("shared_before_limit")
Decimal('7107412.50')
>>> result.earned_savings_losses
Decimal('6965264.25')
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from allpayer.errors import AllpayerError
from allpayer.money import round_money
from allpayer.settlement.mssp_terms import MsspRules, MsspYearRules, PerformancePeriod, TrackCode, TrackTerms

ZERO = Decimal(0)
ONE = Decimal(1)
_PRECISION = 60  # digits kept in every intermediate product; amounts are never rounded mid-way

Unit = Literal["usd", "rate", "flag", "text"]


class MsspInputError(AllpayerError):
    """One ACO's input cannot be settled (a bad value, or a value the rules need is missing)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class MsspInput:
    """One ACO's results for one performance year, as CMS reports them.

    Dollars are totals for the assigned beneficiaries; rates are fractions. ``None`` means not
    given (the settlement asks for a value only when the rules need it).
    """

    performance_year: int
    aco_id: str
    track: str
    benchmark_total: Decimal
    expenditure_total: Decimal
    msr: Decimal
    mlr: Decimal | None = None
    quality_score: Decimal | None = None
    met_quality_standard: bool | None = None
    met_alt_quality_standard: bool | None = None
    assigned_beneficiaries: int | None = None
    reduced_savings_eligible: bool = False
    disaster_adjustment: Decimal = ZERO
    participant_revenue: Decimal | None = None
    agreement_year: int | None = None
    payment_year: int | None = None


def input_problems(aco: MsspInput) -> list[str]:
    """Everything wrong with an input on its own (ranges, signs), before any rule is looked up."""
    problems: list[str] = []
    if not str(aco.aco_id).strip():
        problems.append("aco_id is empty")
    if aco.benchmark_total <= 0:
        problems.append(f"benchmark_total must be positive, got {aco.benchmark_total}")
    if aco.expenditure_total < 0:
        problems.append(f"expenditure_total must not be negative, got {aco.expenditure_total}")
    for name in ("msr", "mlr", "quality_score"):
        value = getattr(aco, name)
        if value is not None and not ZERO <= value <= ONE:
            problems.append(f"{name} must be a fraction between 0 and 1, got {value}")
    if aco.disaster_adjustment < 0:
        problems.append(
            "disaster_adjustment must be a positive dollar amount (it reduces owed losses), "
            f"got {aco.disaster_adjustment}"
        )
    if aco.participant_revenue is not None and aco.participant_revenue < 0:
        problems.append(f"participant_revenue must not be negative, got {aco.participant_revenue}")
    if aco.assigned_beneficiaries is not None and aco.assigned_beneficiaries < 0:
        problems.append(f"assigned_beneficiaries must not be negative, got {aco.assigned_beneficiaries}")
    if aco.agreement_year is not None and aco.agreement_year < 1:
        problems.append(f"agreement_year must be 1 or more, got {aco.agreement_year}")
    return problems


@dataclass(frozen=True)
class Line:
    """One named step of a settlement: its value, how it was obtained and the rule behind it."""

    name: str
    label: str
    value: Decimal | bool | str | int | None
    unit: Unit
    basis: str = ""
    reference: str = ""


@dataclass(frozen=True)
class MsspSettlement:
    """The settlement of one ACO for one performance year, with its working as named lines."""

    aco: MsspInput
    rule_set: str
    generated_savings_losses: Decimal
    earned_savings_losses: Decimal
    lines: tuple[Line, ...]
    notes: tuple[str, ...] = ()

    def line(self, name: str) -> Line:
        """The line of that name (KeyError when the settlement did not reach that step)."""
        for ln in self.lines:
            if ln.name == name:
                return ln
        raise KeyError(name)

    def value(self, name: str) -> Decimal | bool | str | int | None:
        """The value of the named line."""
        return self.line(name).value

    def has(self, name: str) -> bool:
        """Whether the settlement has a line of that name."""
        return any(ln.name == name for ln in self.lines)


@dataclass
class _Book:
    """The lines and notes of a settlement being built."""

    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, label: str, value, unit: Unit, basis: str = "", reference: str = ""):
        self.lines.append(Line(name, label, value, unit, basis, reference))
        return value


def _need(value, name: str, why: str):
    if value is None:
        raise MsspInputError([f"{name} is needed: {why}"])
    return value


def _year_and_track(aco: MsspInput, rules: MsspRules) -> tuple[MsspYearRules, TrackTerms]:
    year = rules.for_year(aco.performance_year)
    if year is None:
        raise MsspInputError(
            [f"no MSSP rules for performance year {aco.performance_year} (rules exist for {rules.describe_years()})"]
        )
    track = year.track(aco.track)
    if track is None:
        known = ", ".join(t.value for t in year.tracks)
        kind = "unknown track" if aco.track not in TrackCode.__members__ else "track not offered in this year:"
        raise MsspInputError([f"{kind} {aco.track!r} for PY{aco.performance_year} (tracks: {known})"])
    return year, track


def _check_reduced_flag(aco: MsspInput, year: MsspYearRules) -> None:
    """A reduced-sharing eligibility flag on a track or year without that rule is an input error."""
    reduced = year.reduced_savings_below_msr
    if reduced is None:
        raise MsspInputError(
            [f"reduced_savings_eligible=1 but PY{year.performance_year} has no sharing below the MSR"]
        )
    if TrackCode(aco.track) not in reduced.tracks:
        allowed = ", ".join(t.value for t in reduced.tracks)
        raise MsspInputError(
            [f"reduced_savings_eligible=1 but sharing below the MSR is only for {allowed} in PY{year.performance_year}"]
        )


def _quality(aco: MsspInput, year: MsspYearRules, book: _Book, *, for_loss: bool) -> tuple[Decimal, str]:
    """The quality factor that counts and how it was reached.

    For sharing savings: the factor on the maximum sharing rate (1, the quality score, or 0). For
    a quality-scaled loss rate: the quality score in 1 - rate x score (0 when no standard is met).
    """
    rule = year.quality
    purpose = "a quality-scaled loss rate" if for_loss else "sharing savings"
    met = _need(aco.met_quality_standard, "met_quality_standard", f"{purpose} depends on the quality standard")
    if rule.method == "scaled":
        if met:
            q = _need(aco.quality_score, "quality_score", f"{purpose} is scaled by the quality score")
            return q, "quality standard met: quality score"
        return ZERO, "quality standard not met: quality score counts as 0"
    alt = rule.alternative_standard
    if met:
        if for_loss:
            q = _need(aco.quality_score, "quality_score", "the loss rate is 1 - sharing rate x quality score")
            return q, "quality standard met: quality score"
        return ONE, "quality standard met: maximum rate"
    if not alt.in_force:
        if aco.met_alt_quality_standard:
            book.notes.append(
                f"met_alt_quality_standard ignored: no alternative quality standard in PY{year.performance_year}"
            )
        return ZERO, "quality standard not met"
    if aco.met_alt_quality_standard is None:
        book.notes.append("met_alt_quality_standard not given: taken as not met")
    elif aco.met_alt_quality_standard:
        q = _need(aco.quality_score, "quality_score", "the alternative standard scales by the quality score")
        return q, "alternative quality standard met: quality score"
    return ZERO, "no quality standard met"


def _payment_year(aco: MsspInput, year: MsspYearRules) -> int:
    return aco.payment_year if aco.payment_year is not None else year.payment.payment_year


def _sequestration_step(aco: MsspInput, year: MsspYearRules, rules: MsspRules):
    payment_year = _payment_year(aco, year)
    step = rules.sequestration.step_for(payment_year)
    if step is None:
        raise MsspInputError([f"no sequestration rate for payment year {payment_year}"])
    return step


def _period(aco: MsspInput, year: MsspYearRules) -> PerformancePeriod | None:
    found = year.period(aco.track)
    return None if found is None else found[1]


def _limit_order(aco: MsspInput, year: MsspYearRules) -> tuple[str, str]:
    """The order of the payment limit and sequestration, and its source (a period's own, if any)."""
    period = _period(aco, year)
    if period is not None and period.limit_order is not None:
        return period.limit_order, period.limit_order_reference or ""
    return year.payment.limit_order, year.payment.limit_order_reference


def _proration(aco: MsspInput, year: MsspYearRules) -> Decimal:
    period = _period(aco, year)
    return ONE if period is None else period.proration.value


def _settle_savings(aco: MsspInput, year: MsspYearRules, track: TrackTerms, gross: Decimal, book: _Book,
                    rules: MsspRules) -> tuple[Decimal, Decimal]:
    """Generated savings and earned savings (not yet rounded) for gross savings > 0."""
    b = aco.benchmark_total
    msr_met = gross >= aco.msr * b
    book.add("threshold_rate", "minimum savings rate (MSR)", aco.msr, "rate", "input msr")
    book.add("threshold_met", "savings rate >= MSR", msr_met, "flag", "gross >= msr x benchmark")
    reduced = None
    if not msr_met:
        if not aco.reduced_savings_eligible:
            book.add("generated_savings_losses", "generated savings", ZERO, "usd", "savings below the MSR")
            return ZERO, ZERO
        reduced = year.reduced_savings_below_msr  # present for this track: checked in settle()
    generated = book.add(
        "generated_savings_losses", "generated savings", gross, "usd",
        "whole savings, below the MSR (reduced sharing)" if reduced else "whole savings, from the first dollar",
    )
    q, path = _quality(aco, year, book, for_loss=False)
    book.add("quality_path", "quality rule", path, "text", year.quality.method, year.quality.reference)
    book.add("quality_factor", "quality factor on the maximum rate", q, "rate", path)
    rate = book.add("max_sharing_rate", "maximum sharing rate", track.max_sharing_rate.value, "rate",
                    track.title, track.max_sharing_rate.reference)
    rate = rate * q
    basis = "maximum rate x quality factor"
    if reduced is not None:
        factor = book.add("reduced_savings_factor", "reduced sharing below the MSR", reduced.rate_factor.value,
                          "rate", "reduced_savings_eligible=1", reduced.rate_factor.reference)
        rate = rate * factor
        basis += " x reduced-sharing factor"
    book.add("final_sharing_rate", "final sharing rate", rate, "rate", basis)
    shared = book.add("shared_before_limit", "shared savings before limit and sequestration", generated * rate,
                      "usd", "generated x final sharing rate")
    step = _sequestration_step(aco, year, rules)
    seq_rate = book.add("sequestration_rate", "sequestration rate", step.rate.value, "rate",
                        f"payment year {_payment_year(aco, year)}", step.rate.reference)
    cap = book.add("limit_amount", "performance payment limit", track.savings_cap.value * b, "usd",
                   f"{track.savings_cap.value} x benchmark", track.savings_cap.reference)
    limit_order, order = _limit_order(aco, year)
    if limit_order == "sequestration_then_limit":
        seq_amount = book.add("sequestration_amount", "sequestration", shared * seq_rate, "usd",
                              "shared x sequestration rate", order)
        after = shared - seq_amount
        applied = book.add("cap_applied", "payment limit applied", after > cap, "flag",
                           "shared less sequestration > limit", order)
        earned = cap if applied else after
    else:
        applied = book.add("cap_applied", "payment limit applied", shared > cap, "flag", "shared > limit", order)
        capped = cap if applied else shared
        seq_amount = book.add("sequestration_amount", "sequestration", capped * seq_rate, "usd",
                              "limited savings x sequestration rate", order)
        earned = capped - seq_amount
    return generated, earned


def _loss_rate(aco: MsspInput, year: MsspYearRules, track: TrackTerms, book: _Book) -> Decimal:
    terms = track.loss_rate
    if terms.fixed is not None:
        return book.add("loss_rate", "shared loss rate", terms.fixed.value, "rate", "fixed", terms.fixed.reference)
    qs = terms.quality_scaled
    q, path = _quality(aco, year, book, for_loss=True)
    book.add("quality_path", "quality rule", path, "text", year.quality.method, year.quality.reference)
    book.add("quality_factor", "quality score in the loss rate", q, "rate", path)
    raw = book.add("loss_rate_before_bounds", "1 - sharing rate x quality score", ONE - qs.sharing_rate.value * q,
                   "rate", f"1 - {qs.sharing_rate.value} x {q}", qs.sharing_rate.reference)
    bounded = min(max(raw, qs.floor.value), qs.ceiling.value)
    return book.add("loss_rate", "shared loss rate", bounded, "rate",
                    f"kept between {qs.floor.value} and {qs.ceiling.value}", qs.reference)


def _loss_limit(aco: MsspInput, track: TrackTerms, shared: Decimal, book: _Book, proration: Decimal) -> Decimal:
    b = aco.benchmark_total
    limits = track.loss_limit
    share = limits.benchmark_share_for(aco.agreement_year)
    if share is None:
        smallest = limits.smallest_benchmark_share()
        if shared > smallest.value * b:
            raise MsspInputError([
                "agreement_year is needed: the loss limit steps up by agreement year and the smallest step "
                f"({smallest.value} x benchmark) would limit these losses"
            ])
        book.notes.append(
            f"agreement_year not given: the losses are below every agreement year's loss limit "
            f"(smallest {smallest.value} x benchmark)"
        )
        share = smallest
    candidates = [book.add("loss_limit_benchmark", "loss limit on the benchmark", share.value * b, "usd",
                           f"{share.value} x benchmark", share.reference)]
    if limits.revenue_share is not None:
        if aco.participant_revenue is None:
            book.notes.append("participant_revenue not given: the revenue-based loss limit is not applied")
        else:
            basis = f"{limits.revenue_share.value} x participant revenue"
            if proration != ONE:
                basis += f" x {proration} (calendar-year revenue pro-rated to the performance period)"
            candidates.append(book.add(
                "loss_limit_revenue", "loss limit on participant revenue",
                limits.revenue_share.value * aco.participant_revenue * proration, "usd",
                basis, limits.revenue_share.reference))
    return book.add("limit_amount", "loss limit", min(candidates), "usd", "smallest applicable loss limit")


def _settle_losses(aco: MsspInput, year: MsspYearRules, track: TrackTerms, gross: Decimal,
                   book: _Book) -> tuple[Decimal, Decimal]:
    """Generated losses and earned (owed, negative, not yet rounded) losses for gross < 0."""
    b = aco.benchmark_total
    loss = -gross
    if not track.two_sided:
        book.add("threshold_met", "losses shared", False, "flag", "one-sided track: losses are not shared")
        book.add("generated_savings_losses", "generated losses", ZERO, "usd", "one-sided track")
        return ZERO, ZERO
    mlr = _need(aco.mlr, "mlr", "a two-sided track with losses needs its minimum loss rate")
    book.add("threshold_rate", "minimum loss rate (MLR)", mlr, "rate", "input mlr")
    mlr_met = book.add("threshold_met", "loss rate >= MLR", loss >= mlr * b, "flag", "loss >= mlr x benchmark")
    if not mlr_met:
        book.add("generated_savings_losses", "generated losses", ZERO, "usd", "losses below the MLR")
        return ZERO, ZERO
    generated = book.add("generated_savings_losses", "generated losses", gross, "usd",
                         "whole loss, from the first dollar")
    rate = _loss_rate(aco, year, track, book)
    shared = book.add("shared_before_limit", "shared losses before the loss limit", loss * rate, "usd",
                      "loss x shared loss rate")
    limit = _loss_limit(aco, track, shared, book, _proration(aco, year))
    applied = book.add("cap_applied", "loss limit applied", shared > limit, "flag", "shared losses > loss limit")
    limited = limit if applied else shared
    reduction, basis, reference = aco.disaster_adjustment, "input disaster_adjustment", "42 CFR 425.605(f), 425.606(i), 425.610(i)"
    mitigation = year.loss_mitigation
    if mitigation is not None:
        blanket = book.add("loss_mitigation_rate", "share of owed losses waived for every ACO",
                           mitigation.loss_reduction.value, "rate", "the year's terms", mitigation.reference)
        if blanket * limited >= reduction:
            reduction, basis, reference = blanket * limited, f"{blanket} x losses owed", mitigation.reference
    disaster = book.add(
        "disaster_adjustment_applied", "extreme and uncontrollable circumstances reduction",
        min(reduction, limited), "usd", f"{basis}, at most the losses owed", reference)
    book.add("sequestration_rate", "sequestration rate", ZERO, "rate", "sequestration never applies to losses")
    return generated, -(limited - disaster)


def settle(aco: MsspInput, rules: MsspRules) -> MsspSettlement:
    """Settle one ACO's performance year under the rules of that year.

    Raises `MsspInputError` when the input is invalid, when no rules exist for its year or track,
    or when a value the rules need is missing.
    """
    problems = input_problems(aco)
    if problems:
        raise MsspInputError(problems)
    year, track = _year_and_track(aco, rules)
    if aco.reduced_savings_eligible:
        _check_reduced_flag(aco, year)
    book = _Book()
    period = _period(aco, year)
    with decimal.localcontext() as ctx:
        ctx.prec = _PRECISION
        if period is not None:
            book.add("performance_period", "performance period", f"{period.start} to {period.end}", "text",
                     period.title, period.reference)
            book.add("proration", "months in the period / 12", period.proration.value, "rate",
                     "the totals are CMS's for the period (calendar-year totals x this rate)",
                     period.proration.reference)
        b, e = aco.benchmark_total, aco.expenditure_total
        book.add("benchmark_total", "updated benchmark (total)", b, "usd", "input")
        book.add("expenditure_total", "performance-year expenditures (total)", e, "usd", "input")
        gross = book.add("gross_savings_losses", "gross savings (+) or losses (-)", b - e, "usd",
                         "benchmark - expenditures")
        book.add("savings_rate", "savings rate", gross / b, "rate", "gross / benchmark")
        if gross > 0:
            generated, earned = _settle_savings(aco, year, track, gross, book, rules)
        elif gross < 0:
            generated, earned = _settle_losses(aco, year, track, gross, book)
        else:
            book.add("generated_savings_losses", "generated savings", ZERO, "usd", "expenditures equal the benchmark")
            generated, earned = ZERO, ZERO
        earned = round_money(earned) + ZERO  # + 0 turns -0.00 into 0.00
        book.add("earned_savings_losses", "earned savings (+) or owed losses (-)", earned, "usd",
                 "rounded to cents, half up")
    return MsspSettlement(
        aco=aco,
        rule_set=year.title if period is None else f"{year.title}: {period.title}",
        generated_savings_losses=generated,
        earned_savings_losses=earned,
        lines=tuple(book.lines),
        notes=tuple(book.notes),
    )
