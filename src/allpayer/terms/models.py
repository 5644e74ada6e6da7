"""Typed contract terms of one payer program (payer, product, performance year).

The models are strict: unknown keys are errors, money and rates are exact decimals written as
strings, numbers that may change during a year are `Dated` (see `allpayer.terms.dated`), and
cross-field rules are checked at load (corridor bands ordered and non-overlapping, a two-sided
program states its minimum loss rate, dated values start on the effective start and stay inside
the effective period, maps keyed by rate cell name every cell, settlement steps match the blocks
that configure them, and so on).

Every block accepts ``reference``, ``assumption``, ``basis`` and ``note`` to document where its
structure comes from; single numbers carry the same keys on their own value.

The layout follows the money flows of `spec/domain.md`: `attribution` (R1), `target` (R2),
`payments` (fixed prospective payments R3/R4, CPR R5, Value Payment R6, PHM and
pay-for-improvement R7, advance payments), `settlement` (R8) with its `distribution` (R9), and
`quality` (R10). `docs/terms.md` explains every key.

>>> from allpayer.terms import load_program, programs_dir
>>> p = load_program(programs_dir() / "vermont" / "2022" / "medicaid.yaml")
>>> p.kind, p.performance_year, p.settlement.risk
('medicaid', 2022, 'two_sided')
>>> [(b.lower, b.upper, b.aco_share) for b in p.settlement.corridors]
[(Decimal('-0.03'), Decimal('0.03'), Decimal('1'))]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from decimal import Decimal
from typing import Any, ClassVar, Iterator, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from allpayer.inputs.schema import CLAIM_TYPES, EXCLUSION_REASONS, PAYER_TYPES
from allpayer.money import ROUNDING_MODES
from allpayer.quality.inverse import INVERSE_MEASURES
from allpayer.terms.dated import Basis, Dated, Noted, ReferenceValue, check_provenance, jsonable
from allpayer.terms.values import (
    Count,
    Factor,
    Flag,
    CellId,
    Ident,
    IsoDate,
    Label,
    Money,
    Rate,
    SignedRate,
    Text,
    Weight,
    problem,
)

__all__ = [
    "ProgramTerms",
    "Attribution",
    "Target",
    "Payments",
    "Settlement",
    "Quality",
    "KINDS",
    "SETTLEMENT_STEPS",
    "SERVICE_CATEGORIES",
    "EXCLUSION_REASONS",
]

ZERO = Decimal("0")

Kind = Literal["medicare", "medicaid", "commercial", "self_funded"]
KINDS: tuple[str, ...] = get_args(Kind)
assert set(KINDS) == set(PAYER_TYPES)

ClaimType = Literal["professional", "institutional", "dme"]
assert set(get_args(ClaimType)) == set(CLAIM_TYPES)

RoundingMode = Literal["half_up", "half_even", "down", "up"]
assert set(get_args(RoundingMode)) == set(ROUNDING_MODES)

ServiceCategory = Literal[
    "inpatient",
    "snf",
    "home_health",
    "hospice",
    "ed",
    "outpatient",
    "professional",
    "dme",
    "pharmacy",
]
"""Service categories of claim lines, as `allpayer.core.claims.service_category` assigns them."""
SERVICE_CATEGORIES: tuple[str, ...] = get_args(ServiceCategory)

ExclusionReason = Literal[EXCLUSION_REASONS]  # type: ignore[valid-type]
"""The exclusion reasons, as the input contract lists them (`allpayer.inputs.schema.EXCLUSION_REASONS`)."""

SettlementStep = Literal[
    "actual_tcoc",
    "truncation",
    "gross_result",
    "msr_test",
    "share",
    "corridor",
    "quality_modifier",
    "cap",
    "advance_payments",
    "sequestration",
    "net",
]
SETTLEMENT_STEPS: tuple[str, ...] = get_args(SettlementStep)

ProviderType = Literal["physician", "np", "pa", "cns", "facility", "other"]
TieBreak = Literal[
    "most_recent_visit", "most_visits", "highest_allowed", "lowest_npi", "lowest_tin", "lowest_practice_id"
]
DETERMINISTIC_TIE_BREAKS = ("lowest_npi", "lowest_tin", "lowest_practice_id")
Domain = Literal[
    "patient_caregiver_experience", "care_coordination_patient_safety", "preventive_health", "at_risk_population"
]
EnrollmentType = Literal["esrd", "disabled", "aged_dual", "aged_nondual"]
CellDimension = Literal["age_band", "sex", "aid_category", "enrollment_type"]


def _zero_money() -> Dated[Decimal]:
    return Dated.of(ZERO)


def _dups(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    return [x for x in items if x in seen or seen.add(x)]  # type: ignore[func-returns-value]


class Block(BaseModel):
    """Base of every terms block: strict, immutable, with optional provenance keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)

    reference: ReferenceValue | None = Field(None, description="Where this block comes from.")
    assumption: Flag | None = Field(None, description="True if this block is a design assumption.")
    basis: Basis | None = Field(None, description="Evidence level: DOC, DERIVED, INF, BRIEF or VERIFY.")
    note: Text | None = Field(None, description="Free text for readers.")

    @model_validator(mode="after")
    def _provenance(self) -> "Block":
        check_provenance(self.basis, self.assumption, self.reference, "basis")
        return self

    @property
    def is_assumption(self) -> bool:
        return bool(self.assumption) or self.basis in ("INF", "BRIEF")


# ------------------------------------------------------------------------------------------------
# identity


class Aco(Block):
    """The accountable care organization that holds the contract."""

    id: Ident
    name: Text


class Period(Block):
    """A closed date range ``[start, end]``."""

    start: IsoDate
    end: IsoDate

    @model_validator(mode="after")
    def _order(self) -> "Period":
        if self.end < self.start:
            raise problem(f"end {self.end} is before start {self.start}", "end")
        return self

    def contains(self, when: dt.date) -> bool:
        return self.start <= when <= self.end


class Source(Block):
    """A document cited by ``reference`` values (listed once under ``sources``)."""

    title: Text
    url: Text | None = None


class Population(Block):
    """Which eligibility rows belong to the program: the program's payer, these plans, these groups."""

    plans: list[Ident] = Field(min_length=1)
    group_ids: list[Ident] | None = None
    require_employer_opt_in: Flag = False

    @model_validator(mode="after")
    def _check(self) -> "Population":
        if d := _dups(self.plans):
            raise problem(f"plan {d[0]!r} is listed twice", "plans")
        if self.group_ids is not None:
            if not self.group_ids:
                raise problem("expected at least one group id (or leave group_ids out)", "group_ids")
            if d := _dups(self.group_ids):
                raise problem(f"group {d[0]!r} is listed twice", "group_ids")
        if self.require_employer_opt_in and not self.group_ids:
            raise problem("require_employer_opt_in needs group_ids", "require_employer_opt_in")
        return self


# ------------------------------------------------------------------------------------------------
# attribution (R1)


class CodeSetRef(Block):
    """A reference code set by name and year (e.g. the primary-care HCPCS list of a year)."""

    name: Ident
    year: Count


class AttributionStep(Block):
    """One named step of the attribution algorithm, applied in list order.

    Rules: ``voluntary_alignment`` (a member's designated clinician overrides claims),
    ``require_service`` (a gate: at least one qualifying service from an ACO clinician),
    ``plurality`` (the participant with the plurality of the basis wins), ``expanded`` (members
    without qualifying use but with full benefits and no other insurance, e.g. VMNG), and
    ``payer_supplied`` (the payer's own list).
    """

    name: Ident
    rule: Literal["voluntary_alignment", "require_service", "plurality", "expanded", "payer_supplied"]
    provider_types: list[ProviderType] | None = None
    specialty_codes: list[Ident] | None = None
    primary_care_services_only: Flag = True
    compare: Literal["practice", "aco_vs_each_outside_tin"] = "practice"
    requires_no_service_from: Ident | None = None
    requires_full_benefits: Flag | None = None
    requires_no_other_insurance: Flag | None = None
    valid_through: IsoDate | None = None

    @model_validator(mode="after")
    def _check(self) -> "AttributionStep":
        if self.rule != "expanded":
            for key in ("requires_full_benefits", "requires_no_other_insurance"):
                if getattr(self, key) is not None:
                    raise problem(f"{key} applies only to rule 'expanded', not {self.rule!r}", key)
        if self.compare != "practice" and self.rule != "plurality":
            raise problem(f"compare applies only to rule 'plurality', not {self.rule!r}", "compare")
        return self


class Exclusion(Block):
    """A reason a listed member does not count. ``scope: month`` drops the member from the month of
    the event (they may re-qualify later); ``scope: year`` removes them for the whole year,
    checked at the stated cadence."""

    reason: ExclusionReason
    scope: Literal["month", "year"] = "month"
    checked: Literal["monthly", "quarterly", "annually"] = "monthly"


class Attribution(Block):
    """How members are attributed to the ACO for this program (domain.md R1)."""

    method: Literal["prospective", "retrospective", "quarterly", "payer_supplied"]
    plurality_basis: Literal["allowed_charges", "visits"] = "allowed_charges"
    lookback_months: Noted[Count] = Field(default_factory=lambda: Noted.of(24))
    window_end: IsoDate | None = None
    recency_weights: list[Weight] | None = None
    primary_care_codes: CodeSetRef | None = None
    steps: list[AttributionStep] = Field(default_factory=list)
    tie_break: list[TieBreak] = Field(default_factory=lambda: ["most_recent_visit", "lowest_npi"])
    exclusions: list[Exclusion] = Field(default_factory=list)
    add_members_during_year: Flag = False
    requalify: Flag = True
    claims_payers: list[Ident] | None = None

    @model_validator(mode="after")
    def _check(self) -> "Attribution":
        months = self.lookback_months.value
        if months < 1:
            raise problem("expected at least 1 month", "lookback_months")
        if self.recency_weights is not None:
            if months % 12:
                raise problem(
                    f"recency_weights need a lookback of whole years, got {months} months", "recency_weights"
                )
            if len(self.recency_weights) != months // 12:
                raise problem(
                    f"expected one weight per lookback year ({months // 12}), got {len(self.recency_weights)}",
                    "recency_weights",
                )
            if sum(self.recency_weights) != 1:
                raise problem(f"weights must sum to 1, got {sum(self.recency_weights)}", "recency_weights")
        if self.method == "payer_supplied":
            if any(s.rule != "payer_supplied" for s in self.steps):
                raise problem("a payer_supplied attribution has no computed steps", "steps")
        else:
            if not self.steps:
                raise problem("expected at least one attribution step", "steps")
            if not any(s.rule in ("plurality", "voluntary_alignment", "expanded") for s in self.steps):
                raise problem("expected at least one step that assigns members (plurality, voluntary_alignment or expanded)", "steps")
        names = [s.name for s in self.steps]
        for i, s in enumerate(self.steps):
            if s.name in names[:i]:
                raise problem(f"step name {s.name!r} is used twice", f"steps[{i}].name")
            if s.requires_no_service_from is not None and s.requires_no_service_from not in names[:i]:
                raise problem(
                    f"{s.requires_no_service_from!r} is not the name of an earlier step (expected one of {names[:i]})",
                    f"steps[{i}].requires_no_service_from",
                )
        if d := _dups(self.tie_break):
            raise problem(f"{d[0]!r} is listed twice", "tie_break")
        if not self.tie_break or self.tie_break[-1] not in DETERMINISTIC_TIE_BREAKS:
            raise problem(
                f"the last tie-break must give a total order: one of {', '.join(DETERMINISTIC_TIE_BREAKS)}",
                "tie_break",
            )
        reasons = [e.reason for e in self.exclusions]
        if d := _dups(reasons):
            raise problem(f"exclusion reason {d[0]!r} is listed twice", "exclusions")
        if self.add_members_during_year and self.method not in ("prospective", "quarterly"):
            raise problem("add_members_during_year applies only to prospective or quarterly lists", "add_members_during_year")
        return self


# ------------------------------------------------------------------------------------------------
# target (R2)


class BaseYear(Block):
    """A base (historical) year and its weight in the blended base."""

    year: Count
    weight: Weight


class Trend(Block):
    """Annual trend rates by year (the rate of year Y takes Y-1 costs to Y), optionally by cell."""

    rates: dict[int, Noted[SignedRate]] = Field(default_factory=dict)
    by_cell: dict[CellId, dict[int, Noted[SignedRate]]] = Field(default_factory=dict)


class AgeBand(Block):
    """An age band: ages ``min_age`` to ``max_age`` inclusive (no ``max_age``: and older)."""

    id: Label
    min_age: Count
    max_age: Count | None = None


class RateCells(Block):
    """Rate cells: the cross product of the listed dimensions. A cell id joins the values in
    dimension order with ``/`` (e.g. ``abd/21-64``); with no dimensions the only cell is ``all``."""

    dimensions: list[CellDimension] = Field(default_factory=list)
    age_bands: list[AgeBand] | None = None
    age_as_of: Literal["year_start", "month_start"] = "year_start"
    sexes: list[Literal["female", "male"]] | None = None
    unknown_sex_as: Literal["female", "male"] = "female"
    aid_categories: list[Label] | None = None
    enrollment_types: list[EnrollmentType] | None = None

    _LISTS: ClassVar[dict[str, str]] = {
        "age_band": "age_bands",
        "sex": "sexes",
        "aid_category": "aid_categories",
        "enrollment_type": "enrollment_types",
    }

    @model_validator(mode="after")
    def _check(self) -> "RateCells":
        if d := _dups(self.dimensions):
            raise problem(f"dimension {d[0]!r} is listed twice", "dimensions")
        for dim, key in self._LISTS.items():
            values = getattr(self, key)
            if dim in self.dimensions and not values:
                raise problem(f"dimension {dim!r} needs a non-empty {key} list", key)
            if dim not in self.dimensions and values is not None:
                raise problem(f"{key} is given but {dim!r} is not in dimensions", key)
            if values:
                ids = [v.id for v in values] if dim == "age_band" else list(values)
                if d := _dups(ids):
                    raise problem(f"{d[0]!r} is listed twice", key)
        if self.age_bands:
            expected = 0
            for i, band in enumerate(self.age_bands):
                label = f"{band.min_age}+" if band.max_age is None else (
                    f"{band.min_age}" if band.max_age == band.min_age else f"{band.min_age}-{band.max_age}"
                )
                if band.id != label:
                    raise problem(
                        f"age band id must be its ages as the member months carry them: {label!r}, got {band.id!r}",
                        f"age_bands[{i}].id",
                    )
                if band.min_age != expected:
                    raise problem(
                        f"age bands must be contiguous from age 0: expected min_age {expected}, got {band.min_age}",
                        f"age_bands[{i}].min_age",
                    )
                last = i == len(self.age_bands) - 1
                if band.max_age is None:
                    if not last:
                        raise problem("only the last age band may be open-ended", f"age_bands[{i}].max_age")
                    break
                if band.max_age < band.min_age:
                    raise problem(f"max_age {band.max_age} is below min_age {band.min_age}", f"age_bands[{i}].max_age")
                if last:
                    raise problem("the last age band must be open-ended (no max_age) so every age has a band", f"age_bands[{i}].max_age")
                expected = band.max_age + 1
        return self

    def age_band_bounds(self) -> list[int]:
        """Lower bounds of the age bands (the form `allpayer.core.member_months` takes).

        >>> RateCells(dimensions=["age_band"], age_bands=[{"id": "0-17", "min_age": 0, "max_age": 17},
        ...     {"id": "18+", "min_age": 18}]).age_band_bounds()
        [0, 18]
        """
        return [b.min_age for b in self.age_bands or []]

    def cell_ids(self) -> list[str]:
        """Every rate cell id, in dimension order.

        >>> RateCells(dimensions=["aid_category"], aid_categories=["abd", "child"]).cell_ids()
        ['abd', 'child']
        >>> RateCells().cell_ids()
        ['all']
        """
        if not self.dimensions:
            return ["all"]
        lists = []
        for dim in self.dimensions:
            values = getattr(self, self._LISTS[dim])
            lists.append([v.id for v in values] if dim == "age_band" else list(values))
        return ["/".join(combo) for combo in itertools.product(*lists)]


SCORED_HCC_MODELS = ("V24", "V28")
"""The CMS-HCC versions whose reference tables the engine loads (``allpayer.reference.hcc``)."""


class HccModel(Block):
    """One CMS-HCC model version and its weight in a blend."""

    version: Literal["V22", "V24", "V28"]
    weight: Weight


class RiskAdjustment(Block):
    """Risk adjustment of the target: none, CMS-HCC (a model or a blend), or payer supplied.

    The target is multiplied by ``RS_PY / RS_base``; ``ratio_cap`` limits the increase (``"0.03"``
    = at most +3%) and ``ratio_floor`` the decrease.
    """

    method: Literal["none", "cms_hcc", "payer_supplied"] = "none"
    models: list[HccModel] | None = None
    tables_year: Noted[Count] | None = None
    ratio_cap: Noted[Rate] | None = None
    ratio_floor: Noted[Rate] | None = None
    normalization_factor: Noted[Factor] | None = None
    coding_intensity_adjustment: Noted[Rate] | None = None
    esrd: Literal["exclude", "cms_hcc", "esrd_dialysis"] | None = None
    """Members with ESRD (Medicare status 11, 21 or 31): left unscored with the reason (``exclude``,
    the default), scored with the CMS-HCC model like everyone else (``cms_hcc``), or scored with the
    CMS-HCC ESRD model's dialysis segments (``esrd_dialysis``, which needs
    ``esrd_normalization_factor``)."""
    esrd_normalization_factor: Noted[Factor] | None = None
    diagnosis_claims: Noted[Literal["payer", "all"]] | None = None
    """Whose claims the scores read diagnoses from: the program's own payer's (``payer``, the
    default: CMS scores a Medicare beneficiary from Medicare claims only, and a commercial or
    Medicaid payer its members from its own claims), or every payer's claims of the persons scored
    (``all``: an all-payer arrangement that agrees to it)."""

    @model_validator(mode="after")
    def _check(self) -> "RiskAdjustment":
        if self.method == "payer_supplied":
            raise problem(
                "method payer_supplied is not implemented: no input carries a payer's risk scores or ratios; "
                "use cms_hcc (the CMS-HCC model, rescaled to a base-year mean of 1.0 outside Medicare) or none",
                "method",
            )
        if self.method == "cms_hcc":
            if not self.models:
                raise problem("method cms_hcc needs models (a CMS-HCC version and weight)", "models")
            if sum(m.weight for m in self.models) != 1:
                raise problem(f"model weights must sum to 1, got {sum(m.weight for m in self.models)}", "models")
            if d := _dups([m.version for m in self.models]):
                raise problem(f"version {d[0]!r} is listed twice", "models")
            if self.esrd == "esrd_dialysis" and self.esrd_normalization_factor is None:
                raise problem("esrd esrd_dialysis needs esrd_normalization_factor (the ESRD model's normalization "
                              "factor for the payment year; none is shipped)", "esrd_normalization_factor")
            if self.esrd != "esrd_dialysis" and self.esrd_normalization_factor is not None:
                raise problem("esrd_normalization_factor applies only to esrd: esrd_dialysis", "esrd_normalization_factor")
            for i, m in enumerate(self.models):
                if m.version not in SCORED_HCC_MODELS:
                    raise problem(
                        f"no CMS-HCC tables for {m.version}: the engine scores {' and '.join(SCORED_HCC_MODELS)}",
                        f"models[{i}].version",
                    )
        else:
            for key in ("models", "tables_year", "ratio_cap", "ratio_floor", "normalization_factor",
                        "coding_intensity_adjustment", "esrd", "esrd_normalization_factor", "diagnosis_claims"):
                if getattr(self, key) is not None:
                    raise problem(f"{key} applies only to method cms_hcc, not {self.method!r}", key)
        return self

    def hcc_tables_year(self, performance_year: int) -> int:
        """The payment year of the CMS-HCC tables every year of the program is scored with: the
        stated ``tables_year``, else the performance year.

        >>> RiskAdjustment(method="cms_hcc", models=[{"version": "V24", "weight": "1"}],
        ...                tables_year=2025).hcc_tables_year(2022)
        2025
        """
        return self.tables_year.value if self.tables_year is not None else performance_year

    def diagnosis_claims_payer(self, payer: str) -> str | None:
        """The payer whose claims the program's scores read diagnoses from: its own `payer`
        (``diagnosis_claims: payer``, or left out), or None for every payer's (``all``).

        >>> ra = RiskAdjustment(method="cms_hcc", models=[{"version": "V28", "weight": "1"}])
        >>> ra.diagnosis_claims_payer("medicare")
        'medicare'
        >>> RiskAdjustment(method="cms_hcc", models=[{"version": "V28", "weight": "1"}],
        ...                diagnosis_claims="all").diagnosis_claims_payer("medicare") is None
        True
        """
        every = self.diagnosis_claims is not None and self.diagnosis_claims.value == "all"
        return None if every else payer


class Truncation(Block):
    """Cap each member's annual cost at a threshold: dollars, a percentile of members' costs, or
    both combined by ``combine`` (``max`` per domain.md R2.5)."""

    threshold: Dated[Money] | None = None
    percentile: Noted[Rate] | None = None
    combine: Literal["max", "min"] = "max"
    apply_to: Literal["base_and_performance", "performance", "base"] = "base_and_performance"

    @model_validator(mode="after")
    def _check(self) -> "Truncation":
        if self.threshold is None and self.percentile is None:
            raise problem("expected a threshold, a percentile, or both", "threshold")
        return self


class GrowthBand(Block):
    """If projected national growth is below ``national_growth_below`` (or always, if absent),
    target growth may exceed national growth by at most ``max_above_national``."""

    national_growth_below: SignedRate | None = None
    max_above_national: SignedRate


class GrowthConstraint(Block):
    """Limits on target growth relative to projected national growth (e.g. GMCB, domain.md R2.3)."""

    national_growth: Noted[SignedRate] | None = None
    bands: list[GrowthBand] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "GrowthConstraint":
        prev: Decimal | None = None
        for i, b in enumerate(self.bands):
            if b.national_growth_below is None and i != len(self.bands) - 1:
                raise problem("only the last band may leave national_growth_below out", f"bands[{i}]")
            if b.national_growth_below is not None and prev is not None and b.national_growth_below <= prev:
                raise problem("bands must be in increasing national_growth_below order", f"bands[{i}].national_growth_below")
            prev = b.national_growth_below
        return self


class Target(Block):
    """How the expected total cost of care (target, benchmark) is set (domain.md R2)."""

    method: Literal["trended_base", "payer_supplied", "mssp_benchmark"]
    base_years: list[BaseYear] = Field(default_factory=list)
    base_population: Literal["base_year_attribution", "performance_year_panel"] = "base_year_attribution"
    trend: Trend | None = None
    rate_cells: RateCells = Field(default_factory=RateCells)
    risk_adjustment: RiskAdjustment = Field(default_factory=RiskAdjustment)
    truncation: Truncation | None = None
    discount: Dated[Rate] = Field(default_factory=_zero_money)
    growth_constraint: GrowthConstraint | None = None
    payer_supplied_pmpm: dict[CellId, Dated[Money]] | None = None
    mssp_rules: Ident | None = None

    @model_validator(mode="after")
    def _check(self) -> "Target":
        if self.method in ("trended_base", "mssp_benchmark"):
            if not self.base_years:
                raise problem(f"method {self.method} needs base_years", "base_years")
        if self.base_years:
            years = [b.year for b in self.base_years]
            if d := _dups(years):
                raise problem(f"base year {d[0]} is listed twice", "base_years")
            if years != sorted(years):
                raise problem("base years must be in increasing order", "base_years")
            total = sum(b.weight for b in self.base_years)
            if total != 1:
                raise problem(f"base-year weights must sum to 1, got {total}", "base_years")
        if self.method == "trended_base" and self.trend is None:
            raise problem("method trended_base needs trend rates", "trend")
        if self.method == "mssp_benchmark" and self.mssp_rules is None:
            raise problem("method mssp_benchmark needs mssp_rules (the MSSP rule set id)", "mssp_rules")
        if self.method != "mssp_benchmark" and self.mssp_rules is not None:
            raise problem(f"mssp_rules applies only to method mssp_benchmark, not {self.method!r}", "mssp_rules")
        if self.method != "payer_supplied" and self.payer_supplied_pmpm is not None:
            raise problem(f"payer_supplied_pmpm applies only to method payer_supplied, not {self.method!r}", "payer_supplied_pmpm")
        if self.method != "trended_base" and self.risk_adjustment.method != "none":
            whose = "the payer's PMPMs" if self.method == "payer_supplied" else "CMS's benchmark, risk adjusted by CMS"
            raise problem(f"risk adjustment applies to a trended_base target (its base-year members against the "
                          f"performance year's); a {self.method} target is {whose}: remove risk_adjustment",
                          "risk_adjustment")
        return self


# ------------------------------------------------------------------------------------------------
# payments (R3-R7)


class FppScope(Block):
    """Which claims a fixed payment replaces: claim types, service categories, and the roster
    payment models of the providers whose claims become shadow claims."""

    claim_types: list[ClaimType] = Field(min_length=1)
    service_categories: list[ServiceCategory] = Field(min_length=1)
    payment_models: list[Literal["fpp", "cpr", "capitated"]] = Field(default_factory=lambda: ["fpp"], min_length=1)


class HospitalAllocation(Block):
    """How the ACO splits the payer's fixed payment among hospitals (domain.md R3.3)."""

    method: Literal["historical_ffs_share", "per_hospital_pmpm"]
    history_years: list[Count] | None = None
    pmpm_by_hospital: dict[Ident, Dated[Money]] | None = None

    @model_validator(mode="after")
    def _check(self) -> "HospitalAllocation":
        if self.method == "historical_ffs_share":
            if not self.history_years:
                raise problem("method historical_ffs_share needs history_years", "history_years")
            if self.pmpm_by_hospital is not None:
                raise problem("pmpm_by_hospital applies only to method per_hospital_pmpm", "pmpm_by_hospital")
        else:
            if not self.pmpm_by_hospital:
                raise problem("method per_hospital_pmpm needs pmpm_by_hospital", "pmpm_by_hospital")
            if self.history_years is not None:
                raise problem("history_years applies only to method historical_ffs_share", "history_years")
        return self


class Fpp(Block):
    """Fixed prospective payment from the payer (or Medicare AIPBP) for in-scope services."""

    mechanism: Literal["fixed_prospective_payment", "aipbp"] = "fixed_prospective_payment"
    scope: FppScope
    pmpm_by_cell: dict[CellId, Dated[Money]]
    withhold: Dated[Rate] = Field(default_factory=_zero_money)
    hospital_allocation: HospitalAllocation
    true_up: Literal["none", "monthly", "quarterly", "annual"] = "quarterly"
    rebase_threshold: Noted[Rate] | None = None
    reconciliation: Literal["in_settlement", "separate"] = "in_settlement"
    report_performance: Flag = True


class Cpr(Block):
    """Comprehensive Payment Reform: monthly fixed payments to independent primary care (R5)."""

    method: Literal["fixed_pmpm", "historical_ffs"]
    pmpm_by_cell: dict[CellId, Dated[Money]] | None = None
    trend: Noted[SignedRate] | None = None
    enhancement: Noted[Rate] | None = None
    history_years: list[Count] | None = None
    care_coordination_pmpm: Dated[Money] = Field(default_factory=_zero_money)
    quality_bonus_pool: Dated[Money] | None = None
    downside_reconciliation: Flag = False

    @model_validator(mode="after")
    def _check(self) -> "Cpr":
        if self.downside_reconciliation:
            raise problem(
                "CPR is paid as fixed payments and is not reconciled down to fee-for-service here; "
                "leave downside_reconciliation false",
                "downside_reconciliation",
            )
        if self.method == "fixed_pmpm":
            if self.pmpm_by_cell is None:
                raise problem("method fixed_pmpm needs pmpm_by_cell", "pmpm_by_cell")
            for key in ("trend", "enhancement", "history_years"):
                if getattr(self, key) is not None:
                    raise problem(f"{key} applies only to method historical_ffs", key)
        else:
            if self.pmpm_by_cell is not None:
                raise problem("pmpm_by_cell applies only to method fixed_pmpm", "pmpm_by_cell")
            for key in ("trend", "enhancement"):
                if getattr(self, key) is None:
                    raise problem(f"method historical_ffs needs {key}", key)
        return self


class LadderRung(Block):
    """A quality score from which a PHM PMPM is earned (after the year)."""

    min_score: Rate
    pmpm: Money


class Phm(Block):
    """Population Health Management PMPM: a base, and a ladder up to a maximum by quality (R7)."""

    base_pmpm: Dated[Money]
    max_pmpm: Dated[Money] | None = None
    ladder: list[LadderRung] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> "Phm":
        if self.ladder and self.max_pmpm is None:
            raise problem("a ladder needs max_pmpm", "max_pmpm")
        if self.max_pmpm is not None:
            for when, base, top in _side_by_side(self.base_pmpm, self.max_pmpm):
                if top < base:
                    raise problem(f"max_pmpm {top} is below base_pmpm {base}" + (f" on {when}" if when else ""), "max_pmpm")
        prev: LadderRung | None = None
        for i, r in enumerate(self.ladder):
            if prev is not None and (r.min_score <= prev.min_score or r.pmpm < prev.pmpm):
                raise problem(
                    "ladder rungs must rise: increasing min_score and non-decreasing pmpm", f"ladder[{i}]"
                )
            if self.max_pmpm is not None and r.pmpm > max(e.value for e in self.max_pmpm.entries):
                raise problem(f"rung pmpm {r.pmpm} is above max_pmpm", f"ladder[{i}].pmpm")
            prev = r
        return self


class PayForImprovement(Block):
    """Pay-for-improvement: an amount per attributed member per measure improved by at least
    ``improvement_points`` (``"0.05"`` = 5 percentage points) over the prior year (R7)."""

    amount_per_member_per_measure: Dated[Money]
    improvement_points: Noted[Rate]
    measures: list[Ident] = Field(min_length=1)
    lives_as_of: IsoDate
    baseline_program_id: Ident | None = None
    """The program whose practice rates of the year before are the baseline (default: this
    program's id). A program id usually carries its year (``vt-2025-medicare``): name last year's."""


class ValuePaymentAdjustment(Block):
    """Quarterly adjustment of the Value Payment PMPM (R6):
    ``pmpm(q) = base × clamp(1 + alpha × index(q − lag), floor, ceiling)`` with
    ``index = cost_weight × (T − A)/T + quality_weight × (score − target_quality_score)``."""

    cadence: Literal["monthly", "quarterly"] = "quarterly"
    alpha: Noted[Factor]
    floor: Noted[Factor]
    ceiling: Noted[Factor]
    cost_weight: Noted[Rate]
    quality_weight: Noted[Rate]
    target_quality_score: Noted[Rate]
    lag_quarters: Noted[Count] = Field(default_factory=lambda: Noted.of(1))

    @model_validator(mode="after")
    def _check(self) -> "ValuePaymentAdjustment":
        if self.cadence != "quarterly":
            raise problem(
                f"the adjustment is set once per plan-year quarter; a {self.cadence} cadence is not supported",
                "cadence",
            )
        if self.floor.value > self.ceiling.value:
            raise problem(f"floor {self.floor.value} is above ceiling {self.ceiling.value}", "floor")
        if not (self.floor.value <= 1 <= self.ceiling.value):
            raise problem("floor must be at most 1 and ceiling at least 1 (1 = no adjustment)", "floor")
        return self


class ValuePayment(Block):
    """Value Payment PMPM a self-funded employer pays for attributed members (R6)."""

    base_pmpm: Dated[Money]
    adjustment: ValuePaymentAdjustment | None = None
    admin_rate: Dated[Rate] = Field(default_factory=_zero_money)
    pass_through: dict[Literal["phm", "cpr", "fpp", "reserve"], Weight] | None = None
    plan_year_start_month: Count = Field(1, description="First month (1-12) of the employer's plan year; "
                                         "adjustment quarters and year-to-date figures count from it.")

    @model_validator(mode="after")
    def _check(self) -> "ValuePayment":
        if not 1 <= self.plan_year_start_month <= 12:
            raise problem(f"expected a month from 1 to 12, got {self.plan_year_start_month}", "plan_year_start_month")
        if self.pass_through is not None and sum(self.pass_through.values()) != 1:
            raise problem(f"pass_through weights must sum to 1, got {sum(self.pass_through.values())}", "pass_through")
        return self


class AdvancePayment(Block):
    """A payment the payer makes during the year and nets at settlement (e.g. Medicare advanced
    shared savings funding Blueprint PCMH, CHT and SASH)."""

    name: Ident
    purpose: Text | None = None
    annual_amount: Noted[Money]
    schedule: Literal["monthly", "quarterly", "annual"] = "monthly"


class Payments(Block):
    """Payments during the year: payer to ACO and ACO to network."""

    fpp: Fpp | None = None
    cpr: Cpr | None = None
    phm: Phm | None = None
    pay_for_improvement: PayForImprovement | None = None
    value_payment: ValuePayment | None = None
    advance_payments: list[AdvancePayment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> "Payments":
        if d := _dups([a.name for a in self.advance_payments]):
            raise problem(f"advance payment {d[0]!r} is listed twice", "advance_payments")
        return self


# ------------------------------------------------------------------------------------------------
# settlement (R8, R9)


class PopulationRate(Block):
    """A minimum savings/loss rate for programs with at least ``min_members`` members."""

    min_members: Count
    rate: Rate


class CorridorBand(Block):
    """A band of the gross result as a fraction of target (positive = savings) in which the ACO
    keeps or owes ``aco_share`` of the result. ``lower``/``upper`` left out mean unbounded. Parts
    of the result outside every band stay with the payer."""

    lower: SignedRate | None = None
    upper: SignedRate | None = None
    aco_share: Rate


class Limit(Block):
    """A cap: ``rate`` of the target or of the participants' revenue."""

    rate: Noted[Rate]
    of: Literal["target", "revenue"]


class Caps(Block):
    """Caps on shared savings and on shared losses; with several limits the smallest applies."""

    savings: list[Limit] = Field(default_factory=list)
    losses: list[Limit] = Field(default_factory=list)


class Withhold(Block):
    """A quality withhold on the target (for programs whose withhold is not on a fixed payment)."""

    rate: Dated[Rate]
    base: Literal["target"] = "target"


class QualityModifier(Block):
    """How quality changes the settlement (domain.md R8.5).

    - ``withhold_return``: the withheld dollars come back × the quality score (the withhold is
      ``payments.fpp.withhold`` or this block's ``withhold``);
    - ``multiplier``: the sharing rate is multiplied by the quality score;
    - ``gate``: no savings (or losses relief) unless the score reaches ``min_score``;
    - ``loss_side``: ``loss_rate = clamp(1 − max_rate × score, loss_rate_floor, loss_rate_ceiling)``.
    """

    method: Literal["withhold_return", "multiplier", "gate", "loss_side"]
    applies_to: Literal["savings", "losses", "both"] = "savings"
    withhold: Withhold | None = None
    min_score: Noted[Rate] | None = None
    max_rate: Noted[Rate] | None = None
    loss_rate_floor: Noted[Rate] | None = None
    loss_rate_ceiling: Noted[Rate] | None = None

    _ONLY: ClassVar[dict[str, str]] = {
        "withhold": "withhold_return",
        "min_score": "gate",
        "max_rate": "loss_side",
        "loss_rate_floor": "loss_side",
        "loss_rate_ceiling": "loss_side",
    }

    @model_validator(mode="after")
    def _check(self) -> "QualityModifier":
        for key, method in self._ONLY.items():
            if getattr(self, key) is not None and self.method != method:
                raise problem(f"{key} applies only to method {method}, not {self.method!r}", key)
        if self.method == "gate" and self.min_score is None:
            raise problem("method gate needs min_score", "min_score")
        if self.method == "loss_side":
            for key in ("max_rate", "loss_rate_floor", "loss_rate_ceiling"):
                if getattr(self, key) is None:
                    raise problem(f"method loss_side needs {key}", key)
            if self.loss_rate_floor.value > self.loss_rate_ceiling.value:  # type: ignore[union-attr]
                raise problem("loss_rate_floor is above loss_rate_ceiling", "loss_rate_floor")
            if self.applies_to != "losses":
                raise problem("method loss_side applies to losses: write applies_to: losses", "applies_to")
        return self


class Sequestration(Block):
    """A reduction of payments (e.g. Medicare's 2% sequestration)."""

    rate: Dated[Rate]
    applies_to: Literal["savings", "both"] = "savings"


class Distribution(Block):
    """How the ACO distributes the net settlement to its risk-bearing participants (R9)."""

    risk_bearers: Literal["hospitals", "hsas", "participants"] = "hospitals"
    weight_basis: Literal["attributed_mm_x_target_pmpm", "hsa_result", "ffs_revenue"]
    max_risk_and_sharing_limit: Dated[Rate]
    limit_base: Literal["ffs_revenue", "negotiated_amount"] = "ffs_revenue"
    reserve_rate: Dated[Rate] = Field(default_factory=_zero_money)
    residual: Literal["pro_rata_uncapped", "reserve"] = "pro_rata_uncapped"
    include_fixed_payment_performance: Flag = True


class Settlement(Block):
    """Year-end settlement between payer and ACO (domain.md R8): the named steps in order and the
    terms each step uses."""

    risk: Literal["one_sided", "two_sided"]
    steps: list[SettlementStep] = Field(min_length=1)
    savings_rate: Dated[Rate] | None = None
    loss_rate: Dated[Rate] | None = None
    share_from: Literal["first_dollar", "above_threshold"] = "first_dollar"
    msr: Dated[Rate] | None = None
    msr_by_population: list[PopulationRate] | None = None
    mlr: Dated[Rate] | None = None
    mlr_by_population: list[PopulationRate] | None = None
    population_rates: Literal["step", "linear"] = "step"
    symmetric: Flag = False
    corridors: list[CorridorBand] = Field(default_factory=list)
    caps: Caps | None = None
    participant_revenue: Noted[Money] | None = None
    quality_modifiers: list[QualityModifier] = Field(default_factory=list)
    sequestration: Sequestration | None = None
    rounding: RoundingMode = "half_up"
    runout_months: Noted[Count] = Field(default_factory=lambda: Noted.of(3))
    completion_factor: Noted[Factor] | None = None
    distribution: Distribution | None = None

    @model_validator(mode="after")
    def _check(self) -> "Settlement":
        steps = self.steps
        if d := _dups(steps):
            raise problem(f"step {d[0]!r} is listed twice", "steps")
        for required in ("gross_result", "net"):
            if required not in steps:
                raise problem(f"steps must include {required!r}", "steps")
        if steps[-1] != "net":
            raise problem("the last step must be 'net'", "steps")
        if self.completion_factor is not None and self.completion_factor.value < 1:
            raise problem(f"a completion factor adds the claims paid after the run-out, so it is at least 1; got "
                          f"{self.completion_factor.value}", "completion_factor")
        order = {s: i for i, s in enumerate(SETTLEMENT_STEPS)}
        for i in range(1, len(steps)):
            if order[steps[i]] < order[steps[i - 1]]:
                raise problem(
                    f"step {steps[i]!r} cannot come after {steps[i - 1]!r} (order: {', '.join(SETTLEMENT_STEPS)})",
                    f"steps[{i}]",
                )
        two = self.risk == "two_sided"
        # sharing: rates or corridor bands
        if self.corridors and (self.savings_rate is not None or self.loss_rate is not None):
            raise problem("use either sharing rates or corridor bands, not both", "corridors")
        if not self.corridors:
            if self.savings_rate is None:
                raise problem("expected savings_rate (or corridor bands)", "savings_rate")
            if two and self.loss_rate is None:
                raise problem("a two_sided program needs loss_rate (or corridor bands)", "loss_rate")
        if not two:
            for key in ("loss_rate", "mlr", "mlr_by_population"):
                if getattr(self, key) is not None:
                    raise problem(f"{key} applies only to two_sided programs", key)
            if self.caps is not None and self.caps.losses:
                raise problem("loss caps apply only to two_sided programs", "caps.losses")
            if self.symmetric:
                raise problem("symmetric applies only to two_sided programs", "symmetric")
        # MSR / MLR
        for a, b in (("msr", "msr_by_population"), ("mlr", "mlr_by_population")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise problem(f"give {a} or {b}, not both", b)
            table = getattr(self, b)
            if table is not None:
                if not table:
                    raise problem("expected at least one row", b)
                for i in range(1, len(table)):
                    if table[i].min_members <= table[i - 1].min_members:
                        raise problem("rows must be in increasing min_members order", f"{b}[{i}].min_members")
        if self.population_rates == "linear" and self.msr_by_population is None and self.mlr_by_population is None:
            raise problem("linear applies to msr_by_population or mlr_by_population, and neither is given",
                          "population_rates")
        has_msr = self.msr is not None or self.msr_by_population is not None
        has_mlr = self.mlr is not None or self.mlr_by_population is not None
        if self.symmetric:
            if has_mlr:
                raise problem("symmetric uses the MSR as MLR: leave mlr out", "mlr")
            if not has_msr:
                raise problem("symmetric needs msr or msr_by_population", "msr")
        elif two and not has_mlr:
            raise problem('a two_sided program must state its minimum loss rate: mlr (write "0" for none), mlr_by_population or symmetric: true', "mlr")
        # corridors
        prev: CorridorBand | None = None
        for i, band in enumerate(self.corridors):
            at = f"corridors[{i}]"
            if band.lower is None and i != 0:
                raise problem("only the first band may be unbounded below", f"{at}.lower")
            if band.upper is None and i != len(self.corridors) - 1:
                raise problem("only the last band may be unbounded above", f"{at}.upper")
            if band.lower is not None and band.upper is not None and band.lower >= band.upper:
                raise problem(f"lower {band.lower} must be below upper {band.upper}", f"{at}.lower")
            if prev is not None and band.lower is not None and prev.upper is not None and band.lower < prev.upper:
                raise problem(
                    f"band overlaps the previous band: lower {band.lower} is below the previous upper {prev.upper}"
                    " (bands must be in increasing order and not overlap)",
                    f"{at}.lower",
                )
            if not two and band.aco_share > 0 and (band.lower is None or band.lower < 0):
                raise problem("a one_sided program cannot share losses: bands below 0 need aco_share 0", f"{at}.aco_share")
            prev = band
        # quality modifiers
        if d := _dups([q.method for q in self.quality_modifiers]):
            raise problem(f"quality modifier {d[0]!r} is listed twice", "quality_modifiers")
        # steps match their terms
        wanted = {
            "msr_test": has_msr or has_mlr,
            "share": self.savings_rate is not None,
            "corridor": bool(self.corridors),
            "cap": self.caps is not None and bool(self.caps.savings or self.caps.losses),
            "quality_modifier": bool(self.quality_modifiers),
            "sequestration": self.sequestration is not None,
        }
        what = {
            "msr_test": "msr/mlr",
            "share": "savings_rate",
            "corridor": "corridors",
            "cap": "caps",
            "quality_modifier": "quality_modifiers",
            "sequestration": "sequestration",
        }
        for step, configured in wanted.items():
            if configured and step not in steps:
                raise problem(f"{what[step]} is set but steps has no {step!r} step", "steps")
            if step in steps and not configured:
                raise problem(f"step {step!r} needs {what[step]}", "steps")
        return self


# ------------------------------------------------------------------------------------------------
# quality (R10)


class ScalePoint(Block):
    """Points earned by reaching a national percentile benchmark."""

    percentile: Count
    points: Factor


class Scoring(Block):
    """Quality scoring scale (domain.md R10 template): points by percentile reached,
    ``quality_score = Σ points / Σ max points`` (domain-weighted if ``domain_weights``)."""

    method: Literal["percentile_points"] = "percentile_points"
    scale: list[ScalePoint] = Field(min_length=1)
    below_scale_points: Factor = ZERO
    reporting_points: Literal["full", "none"] = "full"
    domain_weights: dict[Domain, Weight] | None = None

    @model_validator(mode="after")
    def _check(self) -> "Scoring":
        for i, p in enumerate(self.scale):
            if not 1 <= p.percentile <= 99:
                raise problem(f"expected a percentile from 1 to 99, got {p.percentile}", f"scale[{i}].percentile")
            if i and (p.percentile <= self.scale[i - 1].percentile or p.points <= self.scale[i - 1].points):
                raise problem("scale points must rise with the percentile", f"scale[{i}]")
        if self.scale[0].points < self.below_scale_points:
            raise problem("below_scale_points is above the first scale point", "below_scale_points")
        if self.domain_weights is not None and sum(self.domain_weights.values()) != 1:
            raise problem(f"domain weights must sum to 1, got {sum(self.domain_weights.values())}", "domain_weights")
        return self

    @property
    def max_points(self) -> Decimal:
        return self.scale[-1].points


class Measure(Block):
    """A quality measure of the program: pay-for-reporting or pay-for-performance."""

    id: Ident
    name: Text
    domain: Domain
    standard: Literal["reporting", "performance"]
    inverse: Flag = False
    target: Noted[Rate] | None = None
    benchmarks: dict[int, Noted[Rate]] | None = None
    benchmark_table: Ident | None = None

    @model_validator(mode="after")
    def _check(self) -> "Measure":
        if self.id in INVERSE_MEASURES and not self.inverse:
            # the rates read it as inverse whatever the terms say; the points would not
            raise problem(f"{self.id} is an inverse measure (a lower rate is better): set inverse: true", "inverse")
        if self.benchmarks is not None and self.benchmark_table is not None:
            raise problem("give benchmarks or benchmark_table, not both", "benchmark_table")
        if self.standard == "performance" and self.target is None and not self.benchmarks and self.benchmark_table is None:
            raise problem("a performance measure needs a target, benchmarks or a benchmark_table", "standard")
        if self.benchmarks:
            pts = sorted(self.benchmarks)
            vals = [self.benchmarks[p].value for p in pts]
            rising = all(b > a for a, b in zip(vals, vals[1:]))
            falling = all(b < a for a, b in zip(vals, vals[1:]))
            if self.inverse and not falling:
                raise problem("an inverse measure's benchmarks must fall as the percentile rises", "benchmarks")
            if not self.inverse and not rising:
                raise problem("benchmarks must rise with the percentile", "benchmarks")
        return self


class Quality(Block):
    """Quality measures and scoring of the program (domain.md R10)."""

    reporting_only: Flag = False
    min_denominator: Noted[Count] | None = None
    scoring: Scoring
    measures: list[Measure] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "Quality":
        if d := _dups([m.id for m in self.measures]):
            raise problem(f"measure {d[0]!r} is listed twice", "measures")
        pcts = {p.percentile for p in self.scoring.scale}
        for i, m in enumerate(self.measures):
            for p in m.benchmarks or {}:
                if p not in pcts:
                    raise problem(
                        f"benchmark percentile {p} is not on the scoring scale ({sorted(pcts)})",
                        f"measures[{i}].benchmarks[{p}]",
                    )
        return self

    def measure(self, measure_id: str) -> Measure:
        for m in self.measures:
            if m.id == measure_id:
                return m
        raise KeyError(measure_id)


# ------------------------------------------------------------------------------------------------
# the program


class ProgramTerms(Block):
    """The contract terms of one payer program for one performance year."""

    program_id: Ident
    name: Text
    aco: Aco
    payer: Ident
    product: Ident
    kind: Kind
    performance_year: Count
    effective: Period
    population: Population
    sources: dict[Ident, Source] = Field(default_factory=dict)
    attribution: Attribution
    target: Target
    payments: Payments = Field(default_factory=Payments)
    settlement: Settlement
    quality: Quality | None = None

    _terms_version: str = PrivateAttr(default="")
    _source_path: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _default_period(cls, data: Any) -> Any:
        if isinstance(data, dict) and "effective" not in data:
            year = data.get("performance_year")
            if isinstance(year, int) and not isinstance(year, bool) and 1 <= year <= 9999:
                data = {**data, "effective": {"start": dt.date(year, 1, 1), "end": dt.date(year, 12, 31)}}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> "ProgramTerms":
        year = self.performance_year
        if not 2000 <= year <= 2100:
            raise problem(f"expected a year from 2000 to 2100, got {year}", "performance_year")
        eff = self.effective
        for key, d in (("start", eff.start), ("end", eff.end)):
            if d.year != year:
                raise problem(f"{d} is outside performance year {year}", f"effective.{key}")
        if self.kind == "self_funded" and not self.population.group_ids:
            raise problem("a self_funded program names its employer groups: population.group_ids", "population.group_ids")
        self._check_dates()
        self._check_cells()
        self._check_target()
        self._check_attribution()
        self._check_payments_and_settlement()
        self._check_quality_links()
        self._terms_version = _content_hash(self)
        return self

    # -- cross-field checks ---------------------------------------------------------------------

    def _check_dates(self) -> None:
        eff = self.effective
        for path, value in self.walk_values():
            if not value.is_dated:
                continue
            prev: dt.date | None = None
            for i, e in enumerate(value.entries):
                at = f"{path}[{i}].from"
                assert e.start is not None
                if i == 0 and e.start != eff.start:
                    raise problem(
                        f"the first dated value must start on the effective start {eff.start} "
                        f"so every date has a value, got {e.start}",
                        at,
                    )
                if prev is not None and e.start <= prev:
                    raise problem(f"dated values must be in increasing date order: {e.start} is not after {prev}", at)
                if not eff.contains(e.start):
                    raise problem(f"{e.start} is outside the effective period {eff.start} to {eff.end}", at)
                prev = e.start
        for i, step in enumerate(self.attribution.steps):
            if step.valid_through is not None and step.valid_through < eff.start:
                raise problem(
                    f"{step.valid_through} is before the effective start {eff.start}: the step would never apply",
                    f"attribution.steps[{i}].valid_through",
                )
        p4i = self.payments.pay_for_improvement
        if p4i is not None and not eff.contains(p4i.lives_as_of):
            raise problem(
                f"{p4i.lives_as_of} is outside the effective period {eff.start} to {eff.end}",
                "payments.pay_for_improvement.lives_as_of",
            )

    def _check_cells(self) -> None:
        cells = self.cell_ids()
        maps: list[tuple[str, dict[str, Any] | None, bool]] = [
            ("target.payer_supplied_pmpm", self.target.payer_supplied_pmpm, True),
            ("target.trend.by_cell", self.target.trend.by_cell if self.target.trend else None, False),
            ("payments.fpp.pmpm_by_cell", self.payments.fpp.pmpm_by_cell if self.payments.fpp else None, True),
            ("payments.cpr.pmpm_by_cell", self.payments.cpr.pmpm_by_cell if self.payments.cpr else None, True),
        ]
        for path, mapping, complete in maps:
            if mapping is None:
                continue
            for key in mapping:
                if key not in cells:
                    raise problem(f"{key!r} is not a rate cell (cells: {', '.join(cells)})", f"{path}.{key}")
            if complete:
                missing = [c for c in cells if c not in mapping]
                if missing:
                    raise problem(f"no value for rate cell {missing[0]!r} (every cell needs one)", path)

    def _check_target(self) -> None:
        t = self.target
        year = self.performance_year
        ra = t.risk_adjustment
        if ra.method == "cms_hcc" and ra.normalization_factor is None:
            from allpayer.core.risk import published_normalization

            published = published_normalization(year)
            missing = [m.version for m in ra.models if m.version not in published]
            if missing:
                have = ", ".join(f"{m} {f}" for m, f in sorted(published.items())) or "none"
                raise problem(
                    f"payment year {year} has no published normalization factor for {', '.join(missing)} "
                    f"(published: {have}); give one here",
                    "target.risk_adjustment.normalization_factor",
                )
        if ra.method == "cms_hcc":
            from allpayer.reference.hcc import available_payment_years, package_origin

            tables = ra.hcc_tables_year(year)
            shipped = available_payment_years()
            if tables not in shipped:
                which = "" if ra.tables_year is not None else " (the performance year: tables_year is not given)"
                have = ", ".join(str(y) for y in shipped) or "none"
                raise problem(
                    f"no CMS-HCC tables for payment year {tables}{which}; shipped: {have} ({package_origin()}): "
                    "state the shipped year whose tables score this program (docs/risk.md)",
                    "target.risk_adjustment.tables_year",
                )
        for i, b in enumerate(t.base_years):
            if b.year >= year:
                raise problem(f"base year {b.year} is not before performance year {year}", f"target.base_years[{i}].year")
        if t.method == "trended_base" and t.trend is not None:
            needed = list(range(min(b.year for b in t.base_years) + 1, year + 1))
            for y in needed:
                if y not in t.trend.rates:
                    raise problem(
                        f"no trend rate for {y} (needed to trend base year {min(b.year for b in t.base_years)} to {year})",
                        "target.trend.rates",
                    )
            for path, rates in [("target.trend.rates", t.trend.rates)] + [
                (f"target.trend.by_cell.{c}", r) for c, r in t.trend.by_cell.items()
            ]:
                for y in rates:
                    if y not in needed:
                        raise problem(
                            f"trend year {y} is outside {needed[0]} to {needed[-1]} (base to performance year)",
                            f"{path}[{y}]",
                        )

    def _check_attribution(self) -> None:
        a = self.attribution
        if a.window_end is not None and a.method == "prospective" and a.window_end >= self.effective.start:
            raise problem(
                f"a prospective list is built before the year: window_end {a.window_end} must be before {self.effective.start}",
                "attribution.window_end",
            )
        if a.primary_care_codes is not None and a.primary_care_codes.year > self.performance_year:
            raise problem(
                f"code set year {a.primary_care_codes.year} is after performance year {self.performance_year}",
                "attribution.primary_care_codes.year",
            )

    def _check_payments_and_settlement(self) -> None:
        s, p = self.settlement, self.payments
        has_adv = bool(p.advance_payments)
        if has_adv and "advance_payments" not in s.steps:
            raise problem("payments.advance_payments are set but settlement.steps has no 'advance_payments' step", "settlement.steps")
        if not has_adv and "advance_payments" in s.steps:
            raise problem("step 'advance_payments' needs payments.advance_payments", "settlement.steps")
        if "truncation" in s.steps and self.target.truncation is None:
            raise problem("step 'truncation' needs target.truncation", "settlement.steps")
        fpp_withhold = p.fpp is not None and any(e.value > 0 for e in p.fpp.withhold.entries)
        for i, q in enumerate(s.quality_modifiers):
            if q.method != "withhold_return":
                continue
            if q.withhold is None and not fpp_withhold:
                raise problem(
                    "withhold_return needs a withhold: payments.fpp.withhold above 0, or withhold here",
                    f"settlement.quality_modifiers[{i}].withhold",
                )
            if q.withhold is not None and fpp_withhold:
                raise problem(
                    "the withhold is already set on payments.fpp.withhold: give it once",
                    f"settlement.quality_modifiers[{i}].withhold",
                )
            if self.quality is None:
                raise problem("withhold_return needs a quality block to score", f"settlement.quality_modifiers[{i}]")
        if s.quality_modifiers and self.quality is None:
            raise problem("quality modifiers need a quality block", "settlement.quality_modifiers")
        if p.fpp is not None and p.fpp.reconciliation == "in_settlement" and "actual_tcoc" not in s.steps:
            raise problem("an FPP reconciled in settlement needs the 'actual_tcoc' step", "settlement.steps")

    def _check_quality_links(self) -> None:
        p4i = self.payments.pay_for_improvement
        if p4i is None:
            return
        ids = [m.id for m in self.quality.measures] if self.quality else []
        for i, m in enumerate(p4i.measures):
            if m not in ids:
                raise problem(
                    f"{m!r} is not a measure of this program (quality.measures: {', '.join(ids) or 'none'})",
                    f"payments.pay_for_improvement.measures[{i}]",
                )

    # -- helpers --------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        """Equal content is equal terms, wherever they were loaded from."""
        if not isinstance(other, ProgramTerms):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in type(self).model_fields)

    def __hash__(self) -> int:
        return hash(self._terms_version)

    @property
    def terms_version(self) -> str:
        """A hash of the terms' content (after defaults): equal terms give equal versions."""
        return self._terms_version

    @property
    def source_path(self) -> str | None:
        """The file the terms were loaded from, if any."""
        return self._source_path

    def cell_ids(self) -> list[str]:
        """The program's rate cell ids (``['all']`` when the target has no rate cells)."""
        return self.target.rate_cells.cell_ids()

    def walk_values(self) -> Iterator[tuple[str, Dated[Any]]]:
        """Every dated or noted value with its key path, e.g. ``settlement.savings_rate``."""
        yield from _walk(self, "")

    def walk_blocks(self) -> Iterator[tuple[str, Block]]:
        """Every block with its key path (the program itself has path ``""``)."""
        yield from _walk_blocks(self, "")

    def unsourced_values(self) -> list[str]:
        """Key paths of numbers written in the file with no provenance: neither the value nor any
        block around it (below the program itself) carries a reference or an assumption mark."""
        return [path for path, sourced in _provenance(self, "", False, top=True) if not sourced]

    def assumptions(self) -> list[str]:
        """Key paths of values and blocks marked as assumptions."""
        out = [path for path, v in self.walk_values() if v.is_assumption]
        out += [path or "(program)" for path, b in self.walk_blocks() if b.is_assumption]
        return sorted(set(out))

    def to_data(self, at: dt.date | None = None) -> dict[str, Any]:
        """The terms as plain data (defaults filled in, provenance keys last in each block); with
        `at`, dated values resolved on that date."""
        if at is not None and not self.effective.contains(at):
            raise ValueError(f"{at} is outside the effective period {self.effective.start} to {self.effective.end}")
        ctx = {"at": at} if at is not None else None
        return _provenance_last(self.model_dump(mode="json", by_alias=True, exclude_none=True, context=ctx))


def _side_by_side(a: Dated[Any], b: Dated[Any]) -> list[tuple[dt.date | None, Any, Any]]:
    """Pairs of values of two dated parameters at each date where either changes."""
    starts = sorted({e.start for e in a.entries + b.entries if e.start is not None})
    if not starts:
        return [(None, a.value, b.value)]
    out = []
    for d in starts:
        try:
            out.append((d, a.at(d), b.at(d)))
        except ValueError:  # inconsistent starts are reported by the program's date checks
            continue
    return out


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _walk(obj: Any, path: str) -> Iterator[tuple[str, Dated[Any]]]:
    if isinstance(obj, Dated):
        yield path, obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _walk(getattr(obj, name), _join(path, name))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, _join(path, i))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}[{k}]" if isinstance(k, int) else _join(path, k))


def _walk_blocks(obj: Any, path: str) -> Iterator[tuple[str, Block]]:
    if isinstance(obj, Block):
        yield path, obj
        for name in type(obj).model_fields:
            yield from _walk_blocks(getattr(obj, name), _join(path, name))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk_blocks(v, _join(path, i))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_blocks(v, f"{path}[{k}]" if isinstance(k, int) else _join(path, k))


_PROVENANCE_KEYS = ("reference", "assumption", "basis", "note")


def _provenance_last(data: Any) -> Any:
    if isinstance(data, dict):
        keys = [k for k in data if k not in _PROVENANCE_KEYS] + [k for k in _PROVENANCE_KEYS if k in data]
        return {k: _provenance_last(data[k]) for k in keys}
    if isinstance(data, list):
        return [_provenance_last(v) for v in data]
    return data


def _provenance(obj: Any, path: str, inherited: bool, top: bool = False) -> Iterator[tuple[str, bool]]:
    """(key path, sourced) for every number: dated values and plain numeric fields of blocks."""
    if isinstance(obj, Dated):
        yield path, inherited or obj.sourced
    elif isinstance(obj, Block):
        here = inherited or (not top and (obj.reference is not None or obj.is_assumption))
        for name in type(obj).model_fields:
            if name in _PROVENANCE_KEYS or name not in obj.model_fields_set:
                continue  # defaults are the format's own, documented in docs/terms.md
            value = getattr(obj, name)
            if isinstance(value, (Decimal, int)) and not isinstance(value, bool) or type(value).__name__ == "Fraction":
                if not (top and name == "performance_year"):
                    yield _join(path, name), here
            else:
                yield from _provenance(value, _join(path, name), here)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            if isinstance(v, (Decimal, int)) and not isinstance(v, bool) or type(v).__name__ == "Fraction":
                yield _join(path, i), inherited
            else:
                yield from _provenance(v, _join(path, i), inherited)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{path}[{k}]" if isinstance(k, int) else _join(path, k)
            if isinstance(v, (Decimal, int)) and not isinstance(v, bool) or type(v).__name__ == "Fraction":
                yield p, inherited
            else:
                yield from _provenance(v, p, inherited)


def _content_hash(program: ProgramTerms) -> str:
    data = program.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = json.dumps(jsonable(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

