"""Medicare Shared Savings Program settlement terms: dated parameters loaded from YAML.

Each performance year has one rules file (``rules_py<YEAR>.yaml``) holding every number the
settlement uses (sharing rates, payment limits, loss rates and their bounds, loss limits, the
quality gate, the order of the payment limit and sequestration), each with a ``reference`` to its
source (mostly 42 CFR 425 subpart G). The sequestration rate is kept apart, by payment year, in
``sequestration.yaml``. The packaged files live in ``allpayer/programs/mssp``; another folder of
the same shape can be loaded for what-if runs.

Rates and money are written as strings in YAML (``"0.75"``) and parsed to ``Decimal``; a bare
YAML float is refused because it is not exact. Unknown keys are an error. Any problem is raised
as ``TermsError(file, key_path, problem)``.

>>> rules = load_mssp_rules()
>>> rules.for_year(2024).tracks["ENHANCED"].max_sharing_rate.value
Decimal('0.75')
>>> rules.sequestration_rate(2025)
Decimal('0.02')
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import Enum
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from allpayer.errors import TermsError
from allpayer.money import to_decimal

RULES_PREFIX = "rules_py"
SEQUESTRATION_FILE = "sequestration.yaml"


class TrackCode(str, Enum):
    """Participation options, as written in the input column ``track``."""

    TRACK_1 = "TRACK_1"
    TRACK_1_PLUS = "TRACK_1_PLUS"
    TRACK_2 = "TRACK_2"
    TRACK_3 = "TRACK_3"
    BASIC_A = "BASIC_A"
    BASIC_B = "BASIC_B"
    BASIC_C = "BASIC_C"
    BASIC_D = "BASIC_D"
    BASIC_E = "BASIC_E"
    ENHANCED = "ENHANCED"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _exact(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError(f"write {value!r} as a quoted string (e.g. \"{value}\"): a float is not exact")
    try:
        number = to_decimal(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


class Param(_Strict):
    """One number with its source: a rate as a fraction (``"0.75"``) or a dollar amount."""

    value: Decimal
    reference: str = Field(min_length=1)

    @field_validator("value", mode="before")
    @classmethod
    def _value_exact(cls, v: Any) -> Decimal:
        return _exact(v)


class RateParam(Param):
    """A rate between 0 and 1 with its source."""

    @field_validator("value")
    @classmethod
    def _in_unit_interval(cls, v: Decimal) -> Decimal:
        if not Decimal(0) <= v <= Decimal(1):
            raise ValueError(f"a rate must be between 0 and 1, got {v}")
        return v


class AgreementYearRate(RateParam):
    """A rate that applies from one year of the agreement period on (until the next entry)."""

    from_agreement_year: int = Field(ge=1)


class QualityScaledLossRate(_Strict):
    """Loss rate = 1 - (sharing_rate x quality score), kept between floor and ceiling.

    The quality score counts as 0 when the ACO meets no quality standard, so the loss rate is
    then the ceiling.
    """

    sharing_rate: RateParam
    floor: RateParam
    ceiling: RateParam
    reference: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> "QualityScaledLossRate":
        if self.floor.value > self.ceiling.value:
            raise ValueError(f"floor {self.floor.value} is above ceiling {self.ceiling.value}")
        return self


class LossRateTerms(_Strict):
    """Exactly one of: a fixed loss rate, or a quality-scaled one."""

    fixed: RateParam | None = None
    quality_scaled: QualityScaledLossRate | None = None

    @model_validator(mode="after")
    def _one_method(self) -> "LossRateTerms":
        if (self.fixed is None) == (self.quality_scaled is None):
            raise ValueError("give exactly one of `fixed` or `quality_scaled`")
        return self


class LossLimitTerms(_Strict):
    """Shared losses are limited to the smallest applicable amount.

    ``benchmark_share`` (or ``benchmark_share_by_agreement_year``) x updated benchmark always
    applies; ``revenue_share`` x ACO participant Medicare FFS revenue applies as well when the
    revenue is given for the ACO.
    """

    revenue_share: RateParam | None = None
    benchmark_share: RateParam | None = None
    benchmark_share_by_agreement_year: list[AgreementYearRate] | None = None

    @model_validator(mode="after")
    def _one_benchmark_basis(self) -> "LossLimitTerms":
        if (self.benchmark_share is None) == (self.benchmark_share_by_agreement_year is None):
            raise ValueError("give exactly one of `benchmark_share` or `benchmark_share_by_agreement_year`")
        steps = self.benchmark_share_by_agreement_year
        if steps is not None:
            years = [s.from_agreement_year for s in steps]
            if not years or years[0] != 1 or years != sorted(set(years)):
                raise ValueError("agreement-year steps must start at year 1 and increase")
        return self

    def benchmark_share_for(self, agreement_year: int | None) -> RateParam | None:
        """The benchmark share that applies in an agreement year (None: year needed but unknown)."""
        if self.benchmark_share is not None:
            return self.benchmark_share
        if agreement_year is None:
            return None
        chosen = None
        for step in self.benchmark_share_by_agreement_year or []:
            if step.from_agreement_year <= agreement_year:
                chosen = step
        return chosen

    def smallest_benchmark_share(self) -> RateParam:
        """The smallest benchmark share over all agreement years."""
        if self.benchmark_share is not None:
            return self.benchmark_share
        return min(self.benchmark_share_by_agreement_year or [], key=lambda s: s.value)


class TrackTerms(_Strict):
    """The settlement parameters of one track (or BASIC level) in one performance year."""

    title: str
    reference: str = Field(min_length=1)
    two_sided: bool
    max_sharing_rate: RateParam
    savings_cap: RateParam  # performance payment limit, as a share of the updated benchmark
    loss_rate: LossRateTerms | None = None
    loss_limit: LossLimitTerms | None = None

    @model_validator(mode="after")
    def _loss_terms_match_sides(self) -> "TrackTerms":
        has_loss = self.loss_rate is not None and self.loss_limit is not None
        if self.two_sided and not has_loss:
            raise ValueError("a two-sided track needs `loss_rate` and `loss_limit`")
        if not self.two_sided and (self.loss_rate is not None or self.loss_limit is not None):
            raise ValueError("a one-sided track has no `loss_rate` or `loss_limit`")
        return self


class AlternativeStandardTerms(_Strict):
    """Whether an ACO that misses the quality standard but meets the alternative one shares savings
    at max rate x quality score (and, on a quality-scaled loss rate, keeps its quality score)."""

    in_force: bool
    reference: str = Field(min_length=1)


class QualityTerms(_Strict):
    """How quality turns into a final sharing rate.

    - ``scaled``: final sharing rate = max rate x quality score; an ACO that fails the quality
      standard has a quality score of 0 (performance years before 2021).
    - ``standard_gate``: meeting the quality performance standard gives the max rate; missing it
      gives 0, unless the alternative standard is in force and met (then max rate x quality score).
    """

    method: Literal["scaled", "standard_gate"]
    reference: str = Field(min_length=1)
    alternative_standard: AlternativeStandardTerms | None = None

    @model_validator(mode="after")
    def _alternative_only_with_gate(self) -> "QualityTerms":
        if self.method == "scaled" and self.alternative_standard is not None:
            raise ValueError("`alternative_standard` applies only to method `standard_gate`")
        if self.method == "standard_gate" and self.alternative_standard is None:
            raise ValueError("method `standard_gate` needs `alternative_standard` (in_force true or false)")
        return self


class PaymentTerms(_Strict):
    """When the savings payment is made (selects the sequestration rate) and in which order the
    performance payment limit and sequestration apply."""

    payment_year: int = Field(ge=2012)
    payment_year_reference: str = Field(min_length=1)
    limit_order: LimitOrder
    limit_order_reference: str = Field(min_length=1)


LimitOrder = Literal["sequestration_then_limit", "limit_then_sequestration"]


class PerformancePeriod(_Strict):
    """A performance year shorter than the calendar year, for the tracks listed (42 CFR 425.609: the
    two 6-month performance years of 2019).

    CMS determines the shared savings or losses for the whole calendar year under the track's rules
    and multiplies them by ``proration`` (months in the period / 12). Every step is proportional to
    the totals, so settling CMS's published totals for the period (calendar-year totals x
    ``proration``) gives the same amounts; only a calendar-year dollar input (participant revenue,
    for a revenue-based loss limit) is multiplied by ``proration``. ``limit_order``, when given,
    replaces the year's order for these tracks.
    """

    title: str
    start: date
    end: date
    reference: str = Field(min_length=1)
    proration: RateParam
    tracks: list[TrackCode] = Field(min_length=1)
    limit_order: LimitOrder | None = None
    limit_order_reference: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "PerformancePeriod":
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if (self.limit_order is None) != (self.limit_order_reference is None):
            raise ValueError("give `limit_order` and `limit_order_reference` together")
        return self


class LossMitigationTerms(_Strict):
    """A share of every ACO's owed losses waived for the whole year (extreme and uncontrollable
    circumstances that affected every ACO in every month: the COVID-19 public health emergency in
    2020). An ACO's own reduction in dollars (input ``disaster_adjustment``) applies when larger."""

    loss_reduction: RateParam
    reference: str = Field(min_length=1)


class ReducedSavingsTerms(_Strict):
    """Sharing below the MSR at a reduced rate for eligible ACOs (eligibility is CMS's finding,
    given per ACO in the input)."""

    rate_factor: RateParam
    tracks: list[TrackCode] = Field(min_length=1)


class MsspYearRules(_Strict):
    """All settlement rules of one performance year."""

    performance_year: int = Field(ge=2012)
    title: str
    reference: str = Field(min_length=1)
    quality: QualityTerms
    payment: PaymentTerms
    reduced_savings_below_msr: ReducedSavingsTerms | None = None
    loss_mitigation: LossMitigationTerms | None = None
    performance_periods: dict[str, PerformancePeriod] | None = None
    tracks: dict[TrackCode, TrackTerms] = Field(min_length=1)

    @model_validator(mode="after")
    def _reduced_tracks_exist(self) -> "MsspYearRules":
        if self.reduced_savings_below_msr is not None:
            missing = [t.value for t in self.reduced_savings_below_msr.tracks if t not in self.tracks]
            if missing:
                raise ValueError(f"reduced_savings_below_msr names tracks not in this year: {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _each_track_in_one_period(self) -> "MsspYearRules":
        if self.performance_periods is None:
            return self
        listed = [t for p in self.performance_periods.values() for t in p.tracks]
        twice = sorted({t.value for t in listed if listed.count(t) > 1})
        if twice:
            raise ValueError(f"performance_periods list a track more than once: {', '.join(twice)}")
        unknown = sorted({t.value for t in listed} - {t.value for t in self.tracks})
        if unknown:
            raise ValueError(f"performance_periods name tracks not in this year: {', '.join(unknown)}")
        missing = sorted({t.value for t in self.tracks} - {t.value for t in listed})
        if missing:
            raise ValueError(f"tracks in no performance period: {', '.join(missing)}")
        return self

    def period(self, code: str) -> tuple[str, PerformancePeriod] | None:
        """The performance period (key, terms) of a track in a year of several, or None (a 12-month year)."""
        for key, period in (self.performance_periods or {}).items():
            if any(t.value == code for t in period.tracks):
                return key, period
        return None

    def track(self, code: str) -> TrackTerms | None:
        """The terms of a track by its input code, or None when the track does not exist this year."""
        try:
            return self.tracks.get(TrackCode(code))
        except ValueError:
            return None


class SequestrationStep(_Strict):
    """The sequestration rate from one payment year on (until the next step)."""

    from_payment_year: int = Field(ge=2012)
    rate: RateParam


class SequestrationTerms(_Strict):
    """Sequestration of Medicare shared savings payments by payment year (never applied to losses)."""

    title: str
    reference: str = Field(min_length=1)
    by_payment_year: list[SequestrationStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing(self) -> "SequestrationTerms":
        years = [s.from_payment_year for s in self.by_payment_year]
        if years != sorted(set(years)):
            raise ValueError("payment-year steps must be in increasing order without repeats")
        return self

    def step_for(self, payment_year: int) -> SequestrationStep | None:
        """The step in force for a payment year, or None before the first step."""
        chosen = None
        for step in self.by_payment_year:
            if step.from_payment_year <= payment_year:
                chosen = step
        return chosen


class MsspRules:
    """Every performance year's rules plus the sequestration table, as loaded from one folder."""

    def __init__(self, years: dict[int, MsspYearRules], sequestration: SequestrationTerms, source: str):
        self.years = dict(sorted(years.items()))
        self.sequestration = sequestration
        self.source = source

    def for_year(self, performance_year: int) -> MsspYearRules | None:
        """The rules of a performance year, or None when none are defined."""
        return self.years.get(performance_year)

    def sequestration_rate(self, payment_year: int) -> Decimal | None:
        """The sequestration rate for a payment year, or None before the first step."""
        step = self.sequestration.step_for(payment_year)
        return None if step is None else step.rate.value

    def describe_years(self) -> str:
        """The performance years available, e.g. ``2018, 2021-2024``."""
        ys = list(self.years)
        parts: list[str] = []
        start = prev = None
        for y in ys:
            if start is None:
                start = prev = y
            elif y == prev + 1:
                prev = y
            else:
                parts.append(str(start) if start == prev else f"{start}-{prev}")
                start = prev = y
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        return ", ".join(parts)


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p.value if isinstance(p, Enum) else p) for p in loc)


def _read_yaml(entry: Traversable, label: str) -> Any:
    try:
        text = entry.read_text(encoding="utf-8")
    except OSError as exc:
        raise TermsError(label, "", f"cannot read the file: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TermsError(label, "", f"not valid YAML: {exc}") from exc


def _validate(model: type[BaseModel], data: Any, label: str) -> Any:
    if not isinstance(data, dict):
        raise TermsError(label, "", "expected a mapping of keys at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        problem = err["msg"]
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        elif err["type"] == "missing":
            problem = "required key is missing"
        more = len(exc.errors()) - 1
        if more:
            problem += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise TermsError(label, _key_path(tuple(err["loc"])), problem) from exc


def packaged_terms_dir() -> Traversable:
    """The folder of MSSP terms shipped with allpayer."""
    return resources.files("allpayer").joinpath("programs", "mssp")


def load_mssp_rules(folder: str | Path | Traversable | None = None) -> MsspRules:
    """Load every ``rules_py<YEAR>.yaml`` and ``sequestration.yaml`` of a folder.

    Without a folder, the packaged terms are loaded. Each rules file must state the performance
    year its name carries.
    """
    base: Traversable = packaged_terms_dir() if folder is None else (
        folder if isinstance(folder, Traversable) and not isinstance(folder, (str, Path)) else Path(folder)
    )
    label_root = str(folder) if folder is not None else "allpayer/programs/mssp"
    if not base.is_dir():
        raise TermsError(label_root, "", "not a folder of MSSP terms")
    years: dict[int, MsspYearRules] = {}
    sequestration: SequestrationTerms | None = None
    for entry in sorted(base.iterdir(), key=lambda e: e.name):
        label = f"{label_root}/{entry.name}"
        if entry.name == SEQUESTRATION_FILE:
            sequestration = _validate(SequestrationTerms, _read_yaml(entry, label), label)
        elif entry.name.startswith(RULES_PREFIX) and entry.name.endswith(".yaml"):
            stem = entry.name[len(RULES_PREFIX) : -len(".yaml")]
            if not stem.isdigit():
                raise TermsError(label, "", "a rules file must be named rules_py<YEAR>.yaml")
            rules = _validate(MsspYearRules, _read_yaml(entry, label), label)
            if rules.performance_year != int(stem):
                raise TermsError(
                    label, "performance_year", f"is {rules.performance_year} but the file name says {stem}"
                )
            years[rules.performance_year] = rules
    if sequestration is None:
        raise TermsError(label_root, SEQUESTRATION_FILE, "the sequestration table is missing")
    if not years:
        raise TermsError(label_root, "", "no rules_py<YEAR>.yaml files")
    for year, rules in years.items():
        if sequestration.step_for(rules.payment.payment_year) is None:
            raise TermsError(
                f"{label_root}/{RULES_PREFIX}{year}.yaml",
                "payment.payment_year",
                f"no sequestration rate for payment year {rules.payment.payment_year}",
            )
    return MsspRules(years, sequestration, label_root)
