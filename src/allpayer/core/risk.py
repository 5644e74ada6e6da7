"""CMS-HCC risk scores (V24, V28 and their payment-year blend) as Ibis joins, and risk ratios.

A payment year's score uses that year's model tables (an :class:`~allpayer.reference.hcc.HccReference`),
age as of 1 February of the payment year, and diagnoses with service (through) dates in the prior
calendar year from risk-adjustment-eligible claims only. Every stage is a pure function of Ibis
tables; nothing loops over members.

Pipeline for one model version (CMS's SAS model software, repeated as joins):

1. demographics: segment (community by dual status and aged/disabled, institutional, new enrollee),
   age/sex cell, originally-disabled and Medicaid interactions;
2. diagnoses -> CCs (``dx_to_cc``), then the age/sex edits (``dx_edits``: a code is invalid, or maps
   to another CC, for some ages or one sex);
3. CCs that need a companion CC (V28 HCC 223), then hierarchies (a parent drops its children);
4. coefficients for the segment: HCCs, disease interactions, the payment-HCC count (D1..D10P);
5. raw score = sum of coefficients; normalized = raw / normalization factor (per model and payment
   year); blended = sum of weight x normalized; MA coding pattern adjustment only if the terms turn
   it on (off by default for ACO programs).

Where CMS's method and the `hccinfhir` package (the test oracle) differ, this module follows CMS; the
differences are listed in ``docs/risk.md`` and in ``tests/core/test_risk.py``.

Outputs (:class:`RiskScores`):

- ``scores``: one row per scored person (payment year, segment, blended and final score, label);
- ``model_scores``: one row per scored person and model version (raw, normalized, weight);
- ``detail``: one row per person, model and factor (demographic cell, each HCC, each interaction,
  the HCC count) with its coefficient name and value;
- ``hcc_diagnoses``: one row per person, model, HCC and diagnosis code that produced it;
- ``excluded``: one row per person not scored, with the reason.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from allpayer.backend import checkpoint
from allpayer.core.claims import rows_of_adjusted_lines
from allpayer.core.member_months import age_on, eligibility_months, months_table
from allpayer.errors import RunError, TermsError
from allpayer.reference.hcc import MODEL_LABELS, HccReference

PARAMETERS_FILE = Path(__file__).resolve().parent.parent / "reference" / "data" / "cms_hcc_parameters.yaml"

FULL_BENEFIT_DUAL = ("02", "04", "08")
PARTIAL_BENEFIT_DUAL = ("01", "03", "05", "06")
MEDICAID_DUAL = FULL_BENEFIT_DUAL + PARTIAL_BENEFIT_DUAL
"""Dual status codes that mean Medicaid coverage (09 'other dual, no Medicaid' does not)."""

ESRD_MEDICARE_STATUS = ("11", "21", "31")
INPATIENT_BILL_TYPES = ("11", "41")
OUTPATIENT_BILL_TYPES = ("12", "13", "43", "71", "73", "76", "77", "85", "87")
"""Bill type classes (first two digits) whose diagnoses are risk-adjustment eligible: inpatient
always; outpatient with an eligible CPT/HCPCS line (CMS encounter data filtering logic)."""

ESRD_POLICIES = ("exclude", "cms_hcc", "esrd_dialysis")
"""What happens to members with ESRD: not scored, scored with the CMS-HCC model, or scored with the
CMS-HCC ESRD model's dialysis segments (:mod:`allpayer.core.risk_esrd`)."""

_AGE_BANDS = ((34, "0_34"), (44, "35_44"), (54, "45_54"), (59, "55_59"), (64, "60_64"), (69, "65_69"),
              (74, "70_74"), (79, "75_79"), (84, "80_84"), (89, "85_89"), (94, "90_94"))

DEMOGRAPHIC_FACTOR_TYPES = ("demographic", "demographic_interaction")


# --------------------------------------------------------------------------------------------------
# Terms: blend weights, normalization, coding intensity (dated parameters)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CmsHccTerms:
    """The CMS-HCC parameters of one model (payment) year.

    ``model_year`` selects the reference tables, blend weights and normalization factors. A benchmark
    year scored "with the performance year's model" (MSSP from PY2024) uses the performance year's
    terms with ``payment_year`` set to the benchmark year in :func:`cms_hcc_scores`.
    """

    model_year: int
    weights: Mapping[str, Decimal]
    normalization: Mapping[str, Decimal]
    coding_intensity: Decimal = Decimal(0)
    esrd: str = "exclude"
    round_decimals: int | None = None
    reference: str = ""
    status: Mapping[str, str] = field(default_factory=dict)
    parameters_year: int | None = None
    """The payment year whose blend and normalization these are, when the reference tables
    (``model_year``) are another year's with the same relative factors (e.g. PY2022 with the V24
    rows of the 2025 tables); None when they are the same year."""
    esrd_normalization: Decimal | None = None
    """The ESRD dialysis model's normalization factor (``esrd="esrd_dialysis"`` only; a term, not a
    shipped parameter)."""

    def __post_init__(self):
        if set(self.weights) - set(self.normalization):
            raise TermsError("cms_hcc", "normalization", f"no normalization factor for {sorted(set(self.weights) - set(self.normalization))}")
        total = sum(self.weights.values(), Decimal(0))
        if total != Decimal(1):
            raise TermsError("cms_hcc", "weights", f"blend weights must add up to 1, got {total}")
        if any(w < 0 for w in self.weights.values()):
            raise TermsError("cms_hcc", "weights", "blend weights must not be negative")
        if any(n <= 0 for n in self.normalization.values()):
            raise TermsError("cms_hcc", "normalization", "normalization factors must be positive")
        if not Decimal(0) <= self.coding_intensity < Decimal(1):
            raise TermsError("cms_hcc", "coding_intensity", "must be in [0, 1)")
        if self.esrd not in ESRD_POLICIES:
            raise TermsError("cms_hcc", "esrd", f"expected one of {', '.join(ESRD_POLICIES)}, got {self.esrd!r}")
        if self.esrd == "esrd_dialysis" and (self.esrd_normalization is None or self.esrd_normalization <= 0):
            raise TermsError("cms_hcc", "esrd_normalization", "the ESRD dialysis model needs a positive normalization factor")
        if self.esrd != "esrd_dialysis" and self.esrd_normalization is not None:
            raise TermsError("cms_hcc", "esrd_normalization", "applies only to esrd='esrd_dialysis'")

    @property
    def blended_models(self) -> tuple[str, ...]:
        """Model versions with a positive blend weight, in version order."""
        return tuple(sorted(m for m, w in self.weights.items() if w > 0))

    @property
    def esrd_label(self) -> str:
        """The label of ESRD dialysis-model scores, e.g. ``CMS-HCC ESRD dialysis model PY2025,
        normalization 1.05``."""
        year = self.parameters_year or self.model_year
        tables = f" (PY{self.model_year} tables)" if year != self.model_year else ""
        return f"CMS-HCC ESRD dialysis model PY{year}, normalization {self.esrd_normalization}{tables}"

    @property
    def label(self) -> str:
        """e.g. ``CMS-HCC PY2025: 33% V24 + 67% V28``, or ``CMS-HCC PY2022: 100% V24 (PY2025 tables)``."""
        parts = " + ".join(f"{_percent(self.weights[m])}% {m}" for m in self.blended_models)
        if self.parameters_year is not None and self.parameters_year != self.model_year:
            return f"CMS-HCC PY{self.parameters_year}: {parts} (PY{self.model_year} tables)"
        return f"CMS-HCC PY{self.model_year}: {parts}"


def _percent(weight: Decimal) -> str:
    """A blend weight as a percentage: exact when it has at most two decimals (``67``, ``12.5``),
    else to two decimals (a third: ``33.33``)."""
    pct = weight * 100
    if pct == pct.quantize(Decimal("0.01")):
        return f"{pct.normalize():f}"
    return f"{pct:.2f}"


def _decimal(value, where: str, key: str) -> Decimal:
    if isinstance(value, float):
        raise TermsError(where, key, f"write numbers as strings (exact decimals), got float {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise TermsError(where, key, f"not a number: {value!r}") from exc


def cms_hcc_terms(
    model_year: int,
    *,
    apply_coding_intensity: bool = False,
    esrd: str = "exclude",
    round_decimals: int | None = None,
    parameters_file: str | Path | None = None,
    weights: Mapping[str, Decimal] | None = None,
    normalization_factor: Decimal | None = None,
    coding_intensity: Decimal | None = None,
    esrd_normalization_factor: Decimal | None = None,
) -> CmsHccTerms:
    """Read the dated CMS-HCC parameters of `model_year` (see ``cms_hcc_parameters.yaml``).

    The MA coding pattern adjustment is applied only when `apply_coding_intensity` is true (it is a
    Medicare Advantage payment adjustment; ACO programs leave it off).

    A program's own terms take precedence over the published parameters (see
    :func:`program_cms_hcc_terms`): `weights` replaces the year's blend (model version -> weight),
    `normalization_factor` divides every model's raw score instead of the model's published factor,
    and `coding_intensity` is the rate taken off the blended score (instead of the published MA
    adjustment). A model in `weights` with no published factor for the year needs
    `normalization_factor`; with both `weights` and `normalization_factor` the year need not be in
    the parameters file at all.

    >>> t = cms_hcc_terms(2025)
    >>> t.label, t.normalization["V28"], t.coding_intensity
    ('CMS-HCC PY2025: 33% V24 + 67% V28', Decimal('1.045'), Decimal('0'))
    >>> t = cms_hcc_terms(2024, weights={"V28": Decimal(1)})
    >>> t.label, dict(t.normalization)
    ('CMS-HCC PY2024: 100% V28', {'V28': Decimal('1.015')})
    """
    path = Path(parameters_file) if parameters_file else PARAMETERS_FILE
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TermsError(where, "", f"cannot read CMS-HCC parameters: {exc}") from exc
    years = data.get("payment_years") or {}
    if model_year not in years:
        if weights is not None and normalization_factor is not None:
            return CmsHccTerms(
                model_year=model_year,
                weights=dict(weights),
                normalization={m: normalization_factor for m in weights},
                coding_intensity=Decimal(0) if coding_intensity is None else coding_intensity,
                esrd=esrd,
                round_decimals=round_decimals,
                reference="the program's terms (no published parameters for this payment year)",
                status={m: "terms" for m in weights},
                esrd_normalization=esrd_normalization_factor,
            )
        have = ", ".join(str(y) for y in sorted(years))
        raise RunError(f"{where}: no CMS-HCC parameters for payment year {model_year} (have {have})")
    block = years[model_year]
    models = block.get("models") or {}
    blend, norms, status = {}, {}, {}
    for name, spec in models.items():
        key = f"payment_years.{model_year}.models.{name}"
        unknown = set(spec) - {"weight", "normalization_factor", "status"}
        if unknown:
            raise TermsError(where, key, f"unknown keys {sorted(unknown)}")
        blend[name] = _decimal(spec["weight"], where, key + ".weight")
        norms[name] = _decimal(spec["normalization_factor"], where, key + ".normalization_factor")
        status[name] = spec.get("status", "unverified")
    maci = Decimal(0)
    if coding_intensity is not None:
        maci = coding_intensity
    elif apply_coding_intensity:
        spec = block.get("ma_coding_pattern_adjustment")
        if not spec:
            raise TermsError(where, f"payment_years.{model_year}.ma_coding_pattern_adjustment", "missing")
        maci = _decimal(spec["value"], where, f"payment_years.{model_year}.ma_coding_pattern_adjustment.value")
    if weights is not None:
        missing = sorted(m for m in weights if m not in norms and normalization_factor is None)
        if missing:
            raise RunError(
                f"{where}: payment year {model_year} has no normalization factor for {', '.join(missing)} "
                f"(published: {', '.join(sorted(norms)) or 'none'}); give one in the terms"
            )
        status = {m: ("terms" if normalization_factor is not None else status[m]) for m in weights}
        norms = {m: (normalization_factor if normalization_factor is not None else norms[m]) for m in weights}
        blend = dict(weights)
    elif normalization_factor is not None:
        norms = {m: normalization_factor for m in norms}
        status = {m: "terms" for m in norms}
    return CmsHccTerms(
        model_year=model_year,
        weights=blend,
        normalization=norms,
        coding_intensity=maci,
        esrd=esrd,
        round_decimals=round_decimals,
        reference=" ".join(str(block.get("reference", "")).split()),
        status=status,
        esrd_normalization=esrd_normalization_factor,
    )


def published_normalization(payment_year: int, parameters_file: str | Path | None = None) -> dict[str, Decimal]:
    """The normalization factor of each model published for `payment_year` in the parameters file
    (empty when the year is not there)."""
    try:
        terms = cms_hcc_terms(payment_year, parameters_file=parameters_file)
    except RunError:
        return {}
    return dict(terms.normalization)


def _exact_weights(weights: Sequence[tuple[str, Fraction]]) -> dict[str, Decimal]:
    """Blend weights as decimals adding up to exactly 1: a weight with a finite decimal expansion is
    kept exactly; otherwise (a third) the last model takes what the others leave."""
    out: dict[str, Decimal] = {}
    for i, (model, w) in enumerate(weights):
        if i == len(weights) - 1:
            out[model] = Decimal(1) - sum(out.values(), Decimal(0))
        else:
            out[model] = Decimal(w.numerator) / Decimal(w.denominator)
    return out


def program_cms_hcc_terms(risk_adjustment, performance_year: int) -> CmsHccTerms:
    """The CMS-HCC terms a program scores with: its own ``target.risk_adjustment`` (blend ``models``,
    ``normalization_factor``, ``coding_intensity_adjustment``, ``esrd``), each falling back to the
    parameters published for the performance year where the program leaves it out (normalization
    per model; no coding intensity; ESRD excluded). Two keys of ``target.risk_adjustment`` are not
    scoring parameters and are applied where the run gathers its inputs: ``tables_year`` (which
    reference tables) and ``diagnosis_claims`` (whose claims the diagnoses come from).

    >>> from allpayer.terms.models import RiskAdjustment
    >>> ra = RiskAdjustment(method="cms_hcc", models=[{"version": "V28", "weight": "1"}])
    >>> t = program_cms_hcc_terms(ra, 2024)
    >>> t.label, t.normalization["V28"], t.esrd
    ('CMS-HCC PY2024: 100% V28', Decimal('1.015'), 'exclude')
    """
    ra = risk_adjustment
    weights = _exact_weights([(m.version, Fraction(m.weight)) for m in ra.models])
    norm = ra.normalization_factor.value if ra.normalization_factor is not None else None
    ci = ra.coding_intensity_adjustment.value if ra.coding_intensity_adjustment is not None else None
    esrd_norm = ra.esrd_normalization_factor.value if ra.esrd_normalization_factor is not None else None
    return cms_hcc_terms(
        performance_year, weights=weights, normalization_factor=norm, coding_intensity=ci, esrd=ra.esrd or "exclude",
        esrd_normalization_factor=esrd_norm,
    )


# --------------------------------------------------------------------------------------------------
# Inputs: persons from eligibility, risk-adjustment-eligible diagnoses from claims
# --------------------------------------------------------------------------------------------------


def persons_from_eligibility(
    eligibility: ir.Table,
    *,
    payment_year: int,
    new_enrollee_months: int = 12,
    institutional: ir.Table | None = None,
    transplants: ir.Table | None = None,
    payer_types: Sequence[str] | None = ("medicare",),
) -> ir.Table:
    """One row per person with the attributes CMS-HCC scoring needs, from the eligibility table.

    The attributes come from the person's latest enrollment span that overlaps the payment year
    (or, failing that, the latest span before it): ``sex`` (F/M from ``gender``), ``orec``
    (original reason for entitlement; '0' when blank), ``dual_status_code`` ('00' when blank),
    ``esrd`` (``medicare_status_code`` 11, 21 or 31). A person whose ``death_date`` (on any of
    their spans) is before the payment year has no month in it and is left out. ``new_enrollee``
    is true when the person has fewer than `new_enrollee_months` months of coverage in the
    diagnosis year (``payment_year - 1``).
    ``institutional`` (long-term institutional status, the CMS-HCC institutional segment) is true
    when the person's spans flagged ``long_term_institutional_flag`` cover more than half of their
    months of the payment year (see :func:`institutional_months`), or, for a person with no month in
    it, when their latest span before it is flagged; without the column everyone is community. `institutional`, a table of person_id, overrides it: those persons are
    institutional, the others community. ``transplants``
    (person_id, transplant_date; see :func:`kidney_transplants`) gives ``graft_months``: counting
    the month of the latest transplant on or before 1 February of the payment year as month 1, the
    month of February (null without one). Only the ESRD dialysis model reads it.
    `payer_types`: the payer types whose enrollment counts (default Medicare; None: every one, as for
    a Medicaid or commercial program scored with the CMS-HCC model).
    """
    of_types = (lambda t: t) if payer_types is None else (lambda t: t.filter(t.payer_type.isin(list(payer_types))))
    e = of_types(eligibility)
    year_start, year_end = dt.date(payment_year, 1, 1), dt.date(payment_year, 12, 31)
    e = e.filter(e.enrollment_start_date <= year_end)
    if "death_date" in e.columns:
        # a person who died before the payment year has no month in it (member months count the
        # month of death): not one of its persons, whichever of their spans records the death
        e = e.mutate(_died=e.death_date.max().over(ibis.window(group_by=e.person_id)))
        e = e.filter(e._died.isnull() | (e._died >= year_start)).drop("_died")
    overlaps = e.enrollment_end_date >= year_start
    w = ibis.window(
        group_by=e.person_id,
        order_by=[
            ibis.desc(ibis.ifelse(overlaps, 1, 0)),
            ibis.desc(e.enrollment_end_date),
            ibis.desc(e.enrollment_start_date),
            e.member_id,
            e.payer,
            e.plan,
        ],
    )
    latest = e.mutate(_rn=ibis.row_number().over(w)).filter(lambda t: t._rn == 0)
    gender = latest.gender.lower()
    dual = latest.dual_status_code.strip().nullif("")
    dual = ibis.ifelse(dual.length() == 1, "0" + dual, dual).fill_null("00")
    persons = latest.select(
        person_id=latest.person_id,
        birth_date=latest.birth_date,
        sex=ibis.cases((gender == "female", "F"), (gender == "male", "M"), else_=ibis.null("string")),
        orec=latest.original_reason_entitlement_code.strip().nullif("").fill_null("0"),
        dual_status_code=dual,
        esrd=latest.medicare_status_code.isin(list(ESRD_MEDICARE_STATUS)).fill_null(False),
        # with no month in the payment year, the status of the latest span before it
        _lti_before=(
            (latest.enrollment_end_date < year_start) & latest[LTI_COLUMN].cast("boolean").fill_null(False)
            if LTI_COLUMN in latest.columns else ibis.literal(False)
        ),
    )
    months = eligibility_months(
        of_types(eligibility),
        dt.date(payment_year - 1, 1, 1),
        dt.date(payment_year - 1, 12, 31),
    )
    covered = months.group_by("person_id").agg(months_covered=months.month.nunique())
    persons = persons.left_join(covered, "person_id").drop("person_id_right")
    persons = persons.mutate(
        new_enrollee=persons.months_covered.fill_null(0) < new_enrollee_months
    ).drop("months_covered")
    lti, from_flags = None, False  # the institutional persons; whether read from the spans' flags
    if institutional is not None:
        lti = institutional.select("person_id").distinct()
    elif LTI_COLUMN in e.columns:
        m = institutional_months(e, payment_year)
        lti, from_flags = m.filter(2 * m.institutional_months > m.months).select("person_id"), True
    if lti is None:
        persons = persons.mutate(institutional=False)
    else:
        persons = persons.left_join(lti.mutate(_lti=True), "person_id").drop("person_id_right")
        # a person not listed is community, or, read from the flags, has the status of their latest
        # span before the year when they have no month in it
        otherwise = persons._lti_before if from_flags else False
        persons = persons.mutate(institutional=persons._lti.fill_null(otherwise)).drop("_lti")
    persons = persons.drop("_lti_before")
    if transplants is not None:
        as_of = dt.date(payment_year, 2, 1)
        t = transplants.filter(transplants.transplant_date <= as_of)
        t = t.group_by("person_id").agg(_latest=t.transplant_date.max())
        months = (payment_year * 12 + 2) - (t._latest.year() * 12 + t._latest.month()) + 1
        t = t.select("person_id", _graft=months.cast("int32"))
        persons = persons.left_join(t, "person_id").drop("person_id_right")
        persons = persons.rename(graft_months="_graft")
    return persons


LTI_COLUMN = "long_term_institutional_flag"
"""The eligibility column that marks a span of long-term institutional (LTI) status."""


def institutional_months(eligibility: ir.Table, year: int) -> ir.Table:
    """The long-term institutional months of `year` of each person with a span of `eligibility`
    flagged ``long_term_institutional_flag`` that overlaps it: ``months``, the months of `year`
    their spans cover (while they lived), and ``institutional_months``, those a flagged span covers
    (a null flag is community; a month split between a flagged and an unflagged span counts as
    institutional). Persons without such a span are not listed: they are community all year.

    CMS pays a Medicare Advantage plan month by month at the institutional or the community rate
    (Medicare Managed Care Manual, ch. 7); a year's score takes the status of most of its months
    (:func:`persons_from_eligibility`). Only the spans of the flagged persons (a few percent) are
    expanded into months, on the twelve months of the year."""
    e = eligibility
    year_start, year_end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    e = e.filter((e.enrollment_start_date <= year_end) & (e.enrollment_end_date >= year_start))
    e = e.mutate(_lti=e[LTI_COLUMN].cast("boolean").fill_null(False))
    flagged = e.filter(e._lti).select("person_id").distinct()
    e = e.semi_join(flagged, "person_id")
    months = months_table(year_start, year_end)
    rows = e.join(months, [e.enrollment_start_date <= months.month_end, e.enrollment_end_date >= months.month])
    if "death_date" in rows.columns:
        rows = rows.filter(rows.death_date.isnull() | (rows.death_date >= rows.month))
    per_month = rows.group_by(["person_id", "month"]).agg(_lti=rows._lti.any())
    return per_month.group_by("person_id").agg(
        months=per_month.count(), institutional_months=per_month._lti.cast("int64").sum()
    )


KIDNEY_TRANSPLANT_DRGS = ("008", "652")
"""MS-DRGs of a kidney transplant stay: 008 simultaneous pancreas and kidney transplant, 652 kidney
transplant."""
KIDNEY_TRANSPLANT_PCS = ("0TY00Z0", "0TY00Z1", "0TY00Z2", "0TY10Z0", "0TY10Z1", "0TY10Z2")
"""ICD-10-PCS codes of a kidney transplant (right or left kidney; allogeneic, syngeneic, zooplastic)."""


def kidney_transplants(medical_claim: ir.Table) -> ir.Table:
    """Kidney transplants found in the claims: (person_id, transplant_date), one row per person and
    inpatient claim (bill type 11x) that is not denied and carries MS-DRG 008 or 652 or a kidney
    transplant ICD-10-PCS code; the date is the claim's through date.

    The ESRD model needs to know who has a functioning graft; the input contract carries no
    transplant date, so it is read from the stay (see :func:`persons_from_eligibility`,
    ``transplants``). A return to dialysis after a failed graft is not detected.
    """
    mc = medical_claim
    procedures = [c for c in mc.columns if re.fullmatch(r"procedure_code_\d+", c)]
    hit = ibis.literal(False)
    if "drg_code" in mc.columns:
        hit = mc.drg_code.cast("string").strip().lpad(3, "0").isin(list(KIDNEY_TRANSPLANT_DRGS))
    for c in procedures:
        hit = hit | mc[c].cast("string").upper().replace(".", "").strip().isin(list(KIDNEY_TRANSPLANT_PCS))
    rows = mc.filter(
        (mc.claim_type == "institutional") & (_bill_type_class(mc.bill_type_code) == "11") & ~_denied(mc) & hit.fill_null(False)
    )
    return rows.group_by(["person_id", "claim_id"]).agg(transplant_date=rows.claim_end_date.max()).drop("claim_id")


def _bill_type_class(code: ir.StringValue) -> ir.StringValue:
    """First two digits of a bill type code given as '0111', '111' or '11'."""
    c = code.strip()
    c = ibis.ifelse((c.length() == 4) & c.startswith("0"), c.substr(1), c)
    return c.substr(0, 2)


def _claim_header(t: ir.Table, through: ir.DateValue) -> dict[str, ir.Value]:
    """The claim's person, type, bill type and through date over the rows or lines of `t`, as
    aggregates."""
    return dict(person_id=t.person_id.max(), claim_type=t.claim_type.max(), bill_type_code=t.bill_type_code.max(),
                through_date=through.max())


def _diagnoses_count(claim_type: ir.StringValue, *, inpatient: ir.BooleanValue, outpatient: ir.BooleanValue,
                     live: ir.BooleanValue, eligible_line: ir.BooleanValue) -> ir.BooleanValue:
    """Whether a claim's diagnoses count for risk adjustment (the rules of :func:`risk_adjustment_claims`):
    a claim with a live line that is institutional with an inpatient bill type, or institutional with
    an outpatient bill type or professional and has a live line with an eligible CPT/HCPCS code."""
    institutional = claim_type == "institutional"
    return ibis.cases(
        (~live, False),
        (institutional & inpatient, True),
        ((institutional & outpatient) | (claim_type == "professional"), eligible_line),
        else_=False,
    )


def _denied(rows: ir.Table) -> ir.BooleanValue:
    """Whether a claim row is denied (a missing status, or no status column, is paid)."""
    status = rows.claim_status if "claim_status" in rows.columns else ibis.literal("paid")
    return status.fill_null("paid") == "denied"


def _year_lines(rows: ir.Table) -> ir.Table:
    """One row per (claim line, through year) of `rows` (which carry ``_dy``, the through year),
    with whether the line is live: not denied, and not a set of adjustments netting to zero allowed."""
    rows = rows.mutate(_denied=_denied(rows))
    lines = rows.group_by(["claim_id", "_dy", "claim_line_number"]).agg(
        **_claim_header(rows, rows.claim_end_date),
        hcpcs_code=rows.hcpcs_code.max(),
        n_rows=rows.count(),
        net_allowed=rows.allowed_amount.sum(),
        denied=rows._denied.all(),
    )
    return lines.mutate(live=~lines.denied & ~((lines.n_rows > 1) & (lines.net_allowed == 0)))


def _rows_with_line_liveness(rows: ir.Table) -> ir.Table:
    """Each row of `rows` (which carry ``_dy``) as a claim line of :func:`_year_lines` for the
    claim-level aggregates: claim_id, _dy, the claim header columns (person_id, claim_type,
    bill_type_code, through_date: the row's, to be aggregated per claim), hcpcs_code and live as
    its line's (claim_id, _dy, claim_line_number).

    Only the lines with an adjustment row (`claims.rows_of_adjusted_lines`: every line of several
    rows is one) go through :func:`_year_lines`, and every row is joined to those few lines; a row
    of no such line is a line of one row (live unless denied; its own procedure code). The rows of
    one line are repeated, which the claim-level aggregates (max, any) do not see. Without an
    ``adjustment_sequence`` column every line is grouped.
    """
    several = rows_of_adjusted_lines(rows, rows) if "adjustment_sequence" in rows.columns else rows
    info = _year_lines(several)
    info = info.select(_l_claim_id=info.claim_id, _l_dy=info._dy, _l_line=info.claim_line_number,
                       _l_hcpcs=info.hcpcs_code, _l_rows=info.n_rows, _l_live=info.live)
    j = rows.left_join(info, [rows.claim_id == info._l_claim_id, rows._dy == info._l_dy,
                              rows.claim_line_number == info._l_line])
    alone = j._l_rows.isnull()
    return j.select(
        "claim_id", "_dy", "person_id", "claim_type", "bill_type_code",
        through_date=j.claim_end_date,
        hcpcs_code=ibis.ifelse(alone, j.hcpcs_code, j._l_hcpcs),
        live=ibis.ifelse(alone, ~_denied(j), j._l_live),
    )


def risk_adjustment_diagnoses_by_year(
    medical_claim: ir.Table,
    eligible_procedures: Mapping[int | tuple[int, int], ir.Table],
    years: Sequence[tuple[int, int]],
    *,
    codes_normalized: bool = False,
    per_person: bool = False,
    by_payer: bool = False,
) -> ir.Table:
    """The diagnoses of :func:`risk_adjustment_diagnoses` for several (tables year, diagnosis year)
    pairs in one query: `eligible_procedures` holds the CPT/HCPCS list of each (tables year,
    diagnosis year) pair, or of a tables year for every diagnosis year that has no list of its own
    (``reference.hcc.eligible_procedures_for`` picks a pair's list).

    The claim rows of all the diagnosis years are read once and their diagnosis codes unnested
    once (they do not depend on the tables year); only the claims' eligibility is decided per
    tables year, on the narrow claim-line aggregates, and only the rows of eligible claims are
    unnested. Same rules as :func:`risk_adjustment_claims`.

    Columns: person_id, (payer,) diagnosis_code, service_date, claim_id, tables_year, diagnosis_year.

    `codes_normalized`: the diagnosis and CPT/HCPCS codes are already in the loader's form (upper
    case, trimmed, no dots), so they are compared as they are.
    `per_person`: one row per person, code, tables year and diagnosis year instead of one per claim
    and code (what scoring reads: :func:`cms_hcc_scores` uses a person's distinct codes of the
    year); service_date is then the latest through date of the person's claims with the code, and
    there is no claim_id.
    `by_payer`: a ``payer`` column, the payer of the claim rows the code is on (with `per_person`,
    one row per person, payer, code, tables year and diagnosis year), so that a reader can take the
    diagnoses of one payer's claims or of every payer's.
    """
    pairs = sorted(set(years))
    if not pairs:
        raise RunError("risk_adjustment_diagnoses_by_year: no (tables year, diagnosis year) given")
    mc = medical_claim
    rows = mc.filter(mc.claim_end_date.year().isin(sorted({dy for _, dy in pairs})))
    rows = rows.mutate(_dy=rows.claim_end_date.year().cast("int32"))

    lists = {pair: eligible_procedures.get(pair, eligible_procedures.get(pair[0])) for pair in pairs}
    missing = [pair for pair, p in lists.items() if p is None]
    if missing:
        raise RunError(f"risk_adjustment_diagnoses_by_year: no CPT/HCPCS list for (tables year, diagnosis year) {missing[0]}")
    needs = ibis.memtable({"tables_year": [ty for ty, _ in pairs], "_ndy": [dy for _, dy in pairs]},
                          schema={"tables_year": "int32", "_ndy": "int32"})
    # .distinct() rather than a distinct union: a union of one part (one pair) drops it, and a code
    # listed twice would then repeat the lines it joins
    procs = ibis.union(*[
        p.select(_code=p.hcpcs_code, _pty=ibis.literal(ty, "int32"), _pdy=ibis.literal(dy, "int32"))
        for (ty, dy), p in lists.items()
    ]).distinct()
    lines = _rows_with_line_liveness(rows)
    lines = lines.join(needs, lines._dy == needs._ndy).drop("_ndy")
    hcpcs = lines.hcpcs_code if codes_normalized else lines.hcpcs_code.upper().strip()
    lines = lines.left_join(procs, (lines.tables_year == procs._pty) & (lines._dy == procs._pdy) & (hcpcs == procs._code))
    lines = lines.mutate(_eligible=lines.live & lines._code.notnull())
    claims = lines.group_by(["claim_id", "_dy", "tables_year"]).agg(
        **_claim_header(lines, lines.through_date),
        live=lines.live.any(),
        eligible_line=lines._eligible.any(),
    )
    # Inpatient bill types count as such; outpatient bill types and professional claims need a
    # live line with an eligible code (the rules of risk_adjustment_claims, the reason left out).
    # The bill type class is worked out once per distinct code, not once per claim, and each
    # claim's code looked up in the inpatient and outpatient codes found (an IN over a subquery:
    # DuckDB builds its hash table on the few codes; a join to them it had built on the claims).
    # The distinct codes are collected into one list and unnested, so that no filter on their class
    # can be moved below to the claim rows (DuckDB pushed it through a DISTINCT and classified the
    # 9.5 million rows of two years of the persons scored, 3.9 of the statement's 15 CPU s).
    listed = rows.aggregate(_codes=rows.bill_type_code.collect(distinct=True))
    codes = listed.select(bill_type_code=listed._codes.unnest())
    tob = _bill_type_class(codes.bill_type_code.fill_null(""))
    inpatient_codes = codes.filter(tob.isin(list(INPATIENT_BILL_TYPES))).bill_type_code
    outpatient_codes = codes.filter(tob.isin(list(OUTPATIENT_BILL_TYPES))).bill_type_code
    claims = claims.mutate(_inpatient=claims.bill_type_code.isin(inpatient_codes).fill_null(False),
                           _outpatient=claims.bill_type_code.isin(outpatient_codes).fill_null(False))
    # a claim whose lines are all of unknown liveness (NULL allowed amounts) is not taken as denied
    eligible = _diagnoses_count(claims.claim_type, inpatient=claims._inpatient, outpatient=claims._outpatient,
                                live=claims.live.fill_null(True), eligible_line=claims.eligible_line)
    claims = claims.filter(eligible).select("claim_id", "_dy", "tables_year", "person_id", "through_date")

    # Only the rows of claims that count are unnested (labs, DME, denied claims are left before it)
    payer = ["payer"] if by_payer else []
    claim_rows = rows.select("claim_id", "_dy", *payer, *_diagnosis_columns(rows)).join(claims, ["claim_id", "_dy"])
    if per_person:
        dx = claim_rows.select("person_id", *payer, "tables_year", "_dy", "through_date",
                               diagnosis_code=_diagnosis_code_array(claim_rows, codes_normalized).unnest())
        dx = dx.group_by(["person_id", *payer, "diagnosis_code", "tables_year", "_dy"]).agg(
            service_date=dx.through_date.max())
        return dx.select("person_id", *payer, "diagnosis_code", "service_date", "tables_year", diagnosis_year=dx._dy)
    dx = claim_diagnoses(claim_rows, keys=("claim_id", "_dy", "tables_year", "person_id", *payer, "through_date"),
                         normalized=codes_normalized)
    return dx.select("person_id", *payer, "diagnosis_code", service_date=dx.through_date, claim_id=dx.claim_id,
                     tables_year=dx.tables_year, diagnosis_year=dx._dy)


def risk_adjustment_claims(
    medical_claim: ir.Table,
    eligible_procedures: ir.Table,
    *,
    diagnosis_year: int,
) -> ir.Table:
    """One row per claim with through date in `diagnosis_year`, saying whether its diagnoses count.

    Rules (CMS risk adjustment filtering of FFS and encounter records): inpatient bill types 11x and
    41x count; outpatient bill types 12x, 13x, 43x, 71x, 73x, 76x, 77x, 85x, 87x and professional
    claims count when a line carries a risk-adjustment-eligible CPT/HCPCS code; other bill types and
    DME claims do not. Denied lines and lines whose adjustments net to zero allowed (reversals) are
    ignored. The through date is ``claim_end_date``.

    Columns: claim_id, person_id, claim_type, bill_type_class, through_date, eligible_lines,
    ra_eligible, reason.
    """
    mc = medical_claim.filter(medical_claim.claim_end_date.year() == diagnosis_year)
    lines = _year_lines(mc.mutate(_dy=ibis.literal(diagnosis_year, "int32"))).drop("_dy")
    procs = eligible_procedures.select(_code=eligible_procedures.hcpcs_code).distinct()
    lines = lines.left_join(procs, lines.hcpcs_code.upper().strip() == procs._code)
    lines = lines.mutate(eligible_line=lines.live & lines._code.notnull()).drop("_code")
    claims = lines.group_by("claim_id").agg(
        **_claim_header(lines, lines.through_date),
        live_lines=lines.live.sum(),
        eligible_lines=lines.eligible_line.sum(),
    )
    tob = _bill_type_class(claims.bill_type_code.fill_null(""))
    kind = ibis.cases(
        (claims.claim_type == "professional", "professional"),
        ((claims.claim_type == "institutional") & tob.isin(list(INPATIENT_BILL_TYPES)), "inpatient"),
        ((claims.claim_type == "institutional") & tob.isin(list(OUTPATIENT_BILL_TYPES)), "outpatient"),
        else_="other",
    )
    claims = claims.mutate(bill_type_class=ibis.ifelse(claims.claim_type == "institutional", tob, ibis.null("string")), _kind=kind)
    eligible = _diagnoses_count(claims.claim_type, inpatient=claims._kind == "inpatient",
                                outpatient=claims._kind == "outpatient", live=claims.live_lines != 0,
                                eligible_line=claims.eligible_lines > 0)
    reason = ibis.cases(
        (claims.live_lines == 0, "denied or reversed"),
        (claims._kind == "inpatient", "inpatient bill type"),
        ((claims._kind == "outpatient") & (claims.eligible_lines > 0), "outpatient bill type with eligible CPT/HCPCS"),
        (claims._kind == "outpatient", "outpatient bill type without eligible CPT/HCPCS"),
        ((claims._kind == "professional") & (claims.eligible_lines > 0), "professional with eligible CPT/HCPCS"),
        (claims._kind == "professional", "professional without eligible CPT/HCPCS"),
        (claims.claim_type == "institutional", "bill type not risk-adjustment eligible"),
        else_="claim type not risk-adjustment eligible",
    )
    return claims.mutate(ra_eligible=eligible, reason=reason).select(
        "claim_id", "person_id", "claim_type", "bill_type_class", "through_date", "eligible_lines", "ra_eligible", "reason"
    )


def _diagnosis_columns(medical_claim: ir.Table) -> list[str]:
    cols = [c for c in medical_claim.columns if re.fullmatch(r"diagnosis_code_\d+", c)]
    return sorted(cols, key=lambda c: int(c.rsplit("_", 1)[1]))


def claim_diagnoses(
    medical_claim: ir.Table, keys: Sequence[str] = ("claim_id",), *, normalized: bool = False
) -> ir.Table:
    """Distinct (claim_id, diagnosis_code) from the diagnosis_code_1..25 columns, codes normalized
    (upper case, no dots or spaces); `keys` names the columns that identify a claim.

    `normalized`: the codes are already in that form (as the loader stores them), so they are
    taken as they are."""
    mc = medical_claim
    return mc.select(*keys, diagnosis_code=_diagnosis_code_array(mc, normalized).unnest()).distinct()


def _diagnosis_code_array(mc: ir.Table, normalized: bool) -> ir.ArrayValue:
    """A row's diagnosis codes as an array, for one pass over the rows (not one scan per column):
    NULLs dropped first (most of the columns are empty), then each code normalized (upper case, no
    dots or spaces; empty ones dropped) unless `normalized` says the codes already are."""
    cols = _diagnosis_columns(mc)
    if not cols:
        raise RunError("medical_claim has no diagnosis_code_<n> columns")
    codes = ibis.array([mc[c].cast("string") for c in cols]).filter(lambda x: x.notnull())
    if not normalized:
        codes = codes.map(lambda x: x.upper().replace(".", "").replace(" ", "")).filter(lambda x: x != "")
    return codes


def risk_adjustment_diagnoses(
    medical_claim: ir.Table,
    eligible_procedures: ir.Table,
    *,
    diagnosis_year: int,
) -> ir.Table:
    """Diagnoses from risk-adjustment-eligible claims of `diagnosis_year` (see :func:`risk_adjustment_claims`).

    Columns: person_id, diagnosis_code, service_date (the claim's through date), claim_id.
    """
    payment_year = diagnosis_year + 1
    dx = risk_adjustment_diagnoses_by_year(medical_claim, {payment_year: eligible_procedures},
                                           [(payment_year, diagnosis_year)])
    return dx.drop("tables_year", "diagnosis_year")


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskScores:
    """The result of :func:`cms_hcc_scores`: five Ibis tables (see the module docstring)."""

    scores: ir.Table
    model_scores: ir.Table
    detail: ir.Table
    hcc_diagnoses: ir.Table
    excluded: ir.Table
    cached: tuple = field(default=(), repr=False, compare=False)
    """The intermediate tables materialized with ``cache=True`` (`release` drops them)."""
    references: tuple = field(default=(), repr=False, compare=False)
    """The `HccReference`s the scores were computed with (the ESRD model's second, when used): their
    ``sources`` say where each table came from."""

    TABLES = ("scores", "model_scores", "detail", "hcc_diagnoses", "excluded")

    def release(self) -> None:
        """Drop the materialized intermediate tables (after the outputs have been read): their
        connection may be closed before Python would collect them."""
        for table in self.cached:
            table.release()


def _column_or(t: ir.Table, name: str, default) -> ir.Value:
    return t[name] if name in t.columns else ibis.literal(default)


def _tidy(value: ir.StringValue, clean: Sequence[str], *, upper: bool = False) -> ir.StringValue:
    """`value` stripped of surrounding white space (and upper-cased): the usual, already clean
    values pass as they are, and only the others are stripped (a costly function on every row)."""
    tidied = value.upper().strip() if upper else value.strip()
    return ibis.ifelse(value.isin(list(clean)), value, tidied)


def _prepare_persons(persons: ir.Table, as_of: dt.date, esrd_policy: str) -> ir.Table:
    """Demographic variables, segment, cell and exclusion reason for each person."""
    p = persons
    sex = _tidy(p.sex, ("F", "M"), upper=True)
    p = p.mutate(
        person_id=p.person_id.cast("string"),
        sex=ibis.cases(
            (sex.isin(["F", "2", "FEMALE"]), "F"), (sex.isin(["M", "1", "MALE"]), "M"), else_=ibis.null("string")
        ),
        orec=_tidy(_column_or(p, "orec", "0").cast("string"), ("0", "1", "2", "3")).nullif("").fill_null("0"),
        dual_status_code=_tidy(
            _column_or(p, "dual_status_code", "00").cast("string"), ("00", *FULL_BENEFIT_DUAL, *PARTIAL_BENEFIT_DUAL)
        ).nullif("").fill_null("00"),
        new_enrollee=_column_or(p, "new_enrollee", False).cast("boolean").fill_null(False),
        institutional=_column_or(p, "institutional", False).cast("boolean").fill_null(False),
        esrd=_column_or(p, "esrd", False).cast("boolean").fill_null(False),
        graft_months=(p.graft_months if "graft_months" in p.columns else ibis.null("int32")).cast("int32"),
    )
    p = p.mutate(
        age=age_on(p.birth_date, ibis.date(as_of.year, as_of.month, as_of.day)),
        dual_status_code=ibis.ifelse(p.dual_status_code.length() == 1, "0" + p.dual_status_code, p.dual_status_code),
    )
    aged = p.age >= 65
    fbd = p.dual_status_code.isin(list(FULL_BENEFIT_DUAL))
    pbd = p.dual_status_code.isin(list(PARTIAL_BENEFIT_DUAL))
    mcaid = p.dual_status_code.isin(list(MEDICAID_DUAL))
    disabled = (p.age < 65) & (p.orec != "0")
    origds = (p.orec == "1") & aged
    community = "C" + ibis.ifelse(fbd, "F", ibis.ifelse(pbd, "P", "N")) + ibis.ifelse(aged, "A", "D")
    # a functioning graft (months since a kidney transplant) matters only to the ESRD model
    graft = p.esrd & ibis.literal(esrd_policy == "esrd_dialysis") & (p.graft_months.fill_null(0) >= 1)
    segment = ibis.cases((p.new_enrollee, "NE"), (p.institutional, "INS"), else_=community)

    band = ibis.cases(*[(p.age <= hi, label) for hi, label in _AGE_BANDS], else_="95_GT")
    ne_band = ibis.cases(
        (p.age <= 34, "0_34"),
        (p.age <= 44, "35_44"),
        (p.age <= 54, "45_54"),
        (p.age <= 59, "55_59"),
        ((p.age <= 63) | ((p.age == 64) & (p.orec != "0")), "60_64"),
        (p.age <= 65, "65"),
        (p.age == 66, "66"),
        (p.age == 67, "67"),
        (p.age == 68, "68"),
        (p.age == 69, "69"),
        (p.age <= 74, "70_74"),
        (p.age <= 79, "75_79"),
        (p.age <= 84, "80_84"),
        (p.age <= 89, "85_89"),
        (p.age <= 94, "90_94"),
        else_="95_GT",
    )
    ne_cell = (
        ibis.ifelse(mcaid, "MCAID", "NMCAID")
        + "_"
        + ibis.ifelse(origds, "ORIGDIS", "NORIGDIS")
        + "_NE"
        + p.sex
        + ne_band
    )
    cell = ibis.ifelse(p.new_enrollee, ne_cell, p.sex + band)
    reason = ibis.cases(
        (p.sex.isnull(), "sex not female or male"),
        (p.birth_date.isnull(), "birth date missing"),
        (p.birth_date > ibis.date(as_of.year, as_of.month, as_of.day), "born after February 1 of the payment year"),
        (p.esrd & ibis.literal(esrd_policy == "exclude"), "ESRD: excluded by the terms"),
        (graft, "ESRD with a functioning kidney graft: the graft model is not implemented"),
        else_=ibis.null("string"),
    )
    # the same conditions as a boolean, cheaper to filter on than the reason
    excluded = (
        p.sex.isnull()
        | p.birth_date.isnull()
        | (p.birth_date > ibis.date(as_of.year, as_of.month, as_of.day))
        | (p.esrd & ibis.literal(esrd_policy == "exclude"))
        | graft
    )
    return p.mutate(
        excluded=excluded,
        aged=aged,
        fbd=fbd,
        pbd=pbd,
        medicaid=mcaid,
        disabled=disabled,
        originally_disabled=origds,
        segment=segment,
        demographic_cell=cell,
        exclusion_reason=reason,
    )


# --------------------------------------------------------------------------------------------------
# Lookup tables for scoring, keyed by small integers (built once per reference, models and edits)
# --------------------------------------------------------------------------------------------------

SEGMENTS = ("CFA", "CFD", "CNA", "CND", "CPA", "CPD", "INS", "NE")
"""The segments a person can be scored in; scoring joins on their position in this tuple."""

DEMOGRAPHIC_INTERACTIONS = ("OriginallyDisabled_Female", "OriginallyDisabled_Male", "ORIGDS", "LTIMCAID")
"""Demographic interaction variables, in the order of the ``_di<i>`` columns of scoring."""

MAX_COUNT_VARIABLE = 10
"""The payment-HCC count variables are D1 .. D9 and D10P (ten or more)."""


@dataclass(frozen=True)
class _Lookups:
    """The reference tables of one HccReference, for the models scored, as joins on integers.

    ``_m`` is a model's position in ``models`` and ``_seg`` a segment's position in SEGMENTS.

    - ``dx``: diagnosis_code, _m, cc, with the code's age/sex edits (edit_type, sex, age_min,
      age_max, action, cc_override; null when it has none): dx_to_cc left-joined to dx_edits;
    - ``hcc``: one row per model, segment and CC that a diagnosis can produce, with the CC's masks
      (bit, parents_mask, requires_mask, drops_parents_mask, group_mask; 0 when it has none), its
      factor name (``HCC85``) and its coefficient and value in that segment (null when the segment has none, as for new enrollees);
    - ``variables``: every coefficient of the scored segments: _m, _seg, variable, coefficient, value;
    - ``interactions``: disease interactions with a coefficient in the segment: _m, _seg, factor,
      coefficient, value, required_mask, disabled_bit;
    - ``counts``: the payment-HCC count variables with a coefficient: _m, _seg, _n (1 .. 10), factor,
      coefficient, value;
    - ``demographic_interactions``: per _m and _seg, the value of each of DEMOGRAPHIC_INTERACTIONS
      in the segment (``_di<i>_value``; null when the segment has none);
    - ``conditional``: CCs that need a companion, as (_m, bit, requires_mask, drops_parents_mask);
    - ``disabled_only``: whether an interaction's only term is DISABLED.
    """

    models: tuple[str, ...]
    dx: ir.Table
    hcc: ir.Table
    variables: ir.Table
    interactions: ir.Table
    counts: ir.Table
    demographic_interactions: ir.Table
    conditional: tuple[tuple[int, int, int, int], ...]
    disabled_only: bool


_LOOKUPS: dict[tuple, tuple[HccReference, _Lookups]] = {}
_LOOKUPS_KEPT = 8
"""The most lookups kept (each keeps its reference alive); the oldest goes first."""


def _arrow(table: ir.Table) -> pa.Table:
    """The rows of a reference table: an in-memory table's own Arrow data (no query), else executed."""
    op = table.op()
    data = getattr(op, "data", None)
    if data is not None and hasattr(data, "to_pyarrow"):
        return data.to_pyarrow(op.schema)
    return table.to_pyarrow()


def _lookups(reference: HccReference, models: tuple[str, ...], switch_edits: bool) -> _Lookups:
    """The scoring lookups of `reference` (cached for the process: they depend only on its tables).

    References loaded from the same files (the same SHA-256 and notes for every table) share their
    lookups, so a run that loads the tables once per program builds them once; a reference without
    recorded sources is recognized by identity only.
    """
    if reference.sources:
        tables = tuple((s.table, s.payment_year, s.origin, s.file, s.sha256, s.rows, s.note) for s in reference.sources)
        key = ("sources", reference.payment_year, reference.models, tables, models, switch_edits)
    else:
        key = ("object", id(reference), models, switch_edits)
    hit = _LOOKUPS.get(key)
    if hit is not None and (key[0] == "sources" or hit[0] is reference):
        return hit[1]
    model_key = {m: i for i, m in enumerate(models)}
    seg_key = {s: i for i, s in enumerate(SEGMENTS)}

    dx_to_cc = _arrow(reference.dx_to_cc)
    dx_to_cc = dx_to_cc.filter(pc.is_in(dx_to_cc["model_version"], pa.array(list(models))))
    edits = _arrow(reference.dx_edits)
    edits = edits.filter(pc.is_in(edits["model_version"], pa.array(list(models))))
    if not switch_edits:
        edits = edits.filter(pc.not_equal(edits["edit_type"], "mce_age"))
    dx = dx_to_cc.join(edits, ["model_version", "diagnosis_code"], join_type="left outer")
    dx = dx.append_column(
        "_m", pa.array([model_key[m] for m in dx["model_version"].to_pylist()], pa.int8())
    ).drop_columns(["model_version"])

    flags = {(r["model_version"], r["cc"]): r for r in _arrow(reference.cc_flags).to_pylist()}
    coefficients = [
        r for r in _arrow(reference.coefficients).to_pylist()
        if r["model_version"] in model_key and r["segment"] in seg_key
    ]
    by_cc = {(r["model_version"], r["segment"], r["cc"]): r for r in coefficients if r["cc"] is not None}
    by_variable = {(r["model_version"], r["segment"], r["variable"]): r for r in coefficients}
    ccs: dict[str, set[int]] = {m: set() for m in models}
    for m, cc in zip(dx_to_cc["model_version"].to_pylist(), dx_to_cc["cc"].to_pylist()):
        ccs[m].add(cc)
    for m, cc in zip(edits["model_version"].to_pylist(), edits["cc_override"].to_pylist()):
        if cc is not None:
            ccs[m].add(cc)
    for m, cc in flags:
        if m in ccs:
            ccs[m].add(cc)
    hcc_rows = []
    for m in models:
        for seg in SEGMENTS:
            for cc in sorted(ccs[m]):
                f = flags.get((m, cc), {})
                c = by_cc.get((m, seg, cc), {})
                hcc_rows.append({
                    "_m": model_key[m], "_seg": seg_key[seg], "cc": cc,
                    **{k: f.get(k, 0) for k in ("bit", "parents_mask", "requires_mask", "drops_parents_mask", "group_mask")},
                    "factor": f"HCC{cc}", "coefficient": c.get("coefficient"), "value": c.get("value"),
                })
    hcc = pa.Table.from_pylist(hcc_rows, schema=pa.schema([
        ("_m", pa.int8()), ("_seg", pa.int8()), ("cc", pa.int16()), ("bit", pa.int64()), ("parents_mask", pa.int64()),
        ("requires_mask", pa.int64()), ("drops_parents_mask", pa.int64()), ("group_mask", pa.int64()),
        ("factor", pa.string()), ("coefficient", pa.string()), ("value", pa.float64()),
    ]))
    named = pa.schema([("_m", pa.int8()), ("_seg", pa.int8()), ("variable", pa.string()), ("coefficient", pa.string()), ("value", pa.float64())])
    variables = pa.Table.from_pylist([
        {"_m": model_key[r["model_version"]], "_seg": seg_key[r["segment"]], "variable": r["variable"],
         "coefficient": r["coefficient"], "value": r["value"]}
        for r in coefficients
    ], schema=named)
    inter_rows, disabled_only = [], False
    for r in _arrow(reference.interaction_masks).to_pylist():
        if r["model_version"] not in model_key:
            continue
        disabled_only |= r["required_mask"] & ~r["disabled_bit"] == 0
        for seg in SEGMENTS:
            c = by_variable.get((r["model_version"], seg, r["interaction"].upper()))
            if c is not None:
                inter_rows.append({
                    "_m": model_key[r["model_version"]], "_seg": seg_key[seg], "factor": r["interaction"],
                    "coefficient": c["coefficient"], "value": c["value"],
                    "required_mask": r["required_mask"], "disabled_bit": r["disabled_bit"],
                })
    interactions = pa.Table.from_pylist(inter_rows, schema=pa.schema([
        ("_m", pa.int8()), ("_seg", pa.int8()), ("factor", pa.string()), ("coefficient", pa.string()),
        ("value", pa.float64()), ("required_mask", pa.int64()), ("disabled_bit", pa.int64()),
    ]))
    count_rows = []
    for m in models:
        for seg in SEGMENTS:
            for n in range(1, MAX_COUNT_VARIABLE + 1):
                name = f"D{n}P" if n == MAX_COUNT_VARIABLE else f"D{n}"
                c = by_variable.get((m, seg, name.upper()))
                if c is not None:
                    count_rows.append({"_m": model_key[m], "_seg": seg_key[seg], "_n": n, "factor": name,
                                       "coefficient": c["coefficient"], "value": c["value"]})
    counts = pa.Table.from_pylist(count_rows, schema=pa.schema([
        ("_m", pa.int8()), ("_seg", pa.int8()), ("_n", pa.int64()), ("factor", pa.string()),
        ("coefficient", pa.string()), ("value", pa.float64()),
    ]))
    di_rows = []
    for m in models:
        for seg in SEGMENTS:
            row = {"_m": model_key[m], "_seg": seg_key[seg]}
            for i, name in enumerate(DEMOGRAPHIC_INTERACTIONS):
                c = by_variable.get((m, seg, name.upper()))
                row[f"_di{i}_value"] = None if c is None else c["value"]
            di_rows.append(row)
    demographic_interactions = pa.Table.from_pylist(di_rows, schema=pa.schema(
        [("_m", pa.int8()), ("_seg", pa.int8())]
        + [(f"_di{i}_value", pa.float64()) for i in range(len(DEMOGRAPHIC_INTERACTIONS))]
    ))
    lookups = _Lookups(
        models=models,
        dx=ibis.memtable(dx),
        hcc=ibis.memtable(hcc),
        variables=ibis.memtable(variables),
        interactions=ibis.memtable(interactions),
        counts=ibis.memtable(counts),
        demographic_interactions=ibis.memtable(demographic_interactions),
        conditional=tuple(
            (model_key[m], bit, requires, drops) for m, _cc, bit, requires, drops in reference.conditional_ccs if m in model_key
        ),
        disabled_only=disabled_only,
    )
    while len(_LOOKUPS) >= _LOOKUPS_KEPT:
        del _LOOKUPS[next(iter(_LOOKUPS))]
    _LOOKUPS[key] = (reference, lookups)
    return lookups


def _model_name(m: ir.IntegerValue, models: Sequence[str]) -> ir.StringValue:
    return ibis.cases(*[(m == i, name) for i, name in enumerate(models)], else_=ibis.null("string"))


def _segment_name(seg: ir.IntegerValue) -> ir.StringValue:
    return ibis.cases(*[(seg == i, s) for i, s in enumerate(SEGMENTS)], else_=ibis.null("string"))


def _segment_key(segment: ir.StringValue) -> ir.IntegerValue:
    return ibis.cases(*[(segment == s, i) for i, s in enumerate(SEGMENTS)], else_=ibis.null("int8")).cast("int8")


def _model_hccs(dx: ir.Table, p: ir.Table, lk: _Lookups, drop_ccs: Sequence[int] = ()) -> tuple[ir.Table, ir.Table]:
    """HCCs after edits, CC requirements and hierarchies, with their coefficient value in the
    person's segment: (person_id, _m, _seg, _dis, cc, group_mask, value); and the diagnoses behind
    each CC before hierarchies (person_id, _m, cc, diagnosis_code).

    `dx` has person_id and ``_code``, the code as given: it is normalized (upper case, no dots or
    spaces) once per distinct spelling, not once per diagnosis, and the diagnoses join the codes'
    CCs on the spelling.
    """
    who = p.select(
        "person_id", "_seg", "age",
        _sex_code=ibis.ifelse(p.sex == "F", "2", "1"),
        _dis=ibis.ifelse(p.disabled, 1, 0).cast("int8"),
    )
    spellings = dx.select("_code").distinct()
    spellings = spellings.mutate(diagnosis_code=spellings._code.upper().replace(".", "").replace(" ", ""))
    x = spellings.join(lk.dx, "diagnosis_code")
    # A left join to the codes' CCs: DuckDB estimates an in-memory lookup at one row, and after an
    # inner join it would build the person join's hash table on the diagnoses (millions of rows)
    # instead of on the persons. Diagnoses with no CC keep a null CC here and are dropped once the
    # edits are applied: a filter on the edited CC reads the person's age and sex, so DuckDB keeps it
    # above the person join (a filter on the code's CC alone would turn the left join into the inner
    # join above), and the distinct CCs below are grouped from the mapped diagnoses only.
    j = dx.left_join(x, "_code").drop("_code_right").join(who, "person_id")
    age_fires = ((j.age_max.notnull() & (j.age <= j.age_max)) | (j.age_min.notnull() & (j.age >= j.age_min))).fill_null(False)
    fires = ibis.cases(
        (j.edit_type == "sex", (j._sex_code == j.sex).fill_null(False)),
        (j.edit_type.isin(["age", "mce_age"]), age_fires),
        else_=False,
    ).fill_null(False)
    j = j.mutate(_fires=fires)
    j = j.filter(~(j._fires & (j.action == "invalid")))
    cc = ibis.ifelse(j._fires & (j.action == "override") & j.cc_override.notnull(), j.cc_override, j.cc)
    sources = j.select(j.person_id, j._m, cc=cc, diagnosis_code=j.diagnosis_code, _seg=j._seg, _dis=j._dis)
    sources = sources.filter(sources.cc.notnull())
    if drop_ccs:  # CCs a model leaves out before hierarchies (the ESRD model: 134-137)
        sources = sources.filter(~sources.cc.isin(list(drop_ccs)))
    keys_ = ["person_id", "_m", "cc", "_seg", "_dis"]  # _seg and _dis follow from the person: carried along
    ccs = sources.select(*keys_).distinct()
    h = lk.hcc
    c = ccs.join(h, (ccs._m == h._m) & (ccs._seg == h._seg) & (ccs.cc == h.cc)).select(
        ccs.person_id, ccs._m, ccs._seg, ccs._dis, ccs.cc, h.bit, h.parents_mask, h.requires_mask,
        h.drops_parents_mask, h.group_mask, h.value,
    )

    # Companion requirements and hierarchies with bit masks (see HccReference.cc_flags):
    # 1. a CC that needs a companion (V28 HCC 223) stays only if one is present;
    # 2. hierarchies as CMS's software applies them: parents in order, and a parent that an earlier
    #    parent has already dropped drops nothing (V28: 62 drops 63, so 63 does not drop 202). A
    #    parent acts when no present parent drops it (exact for tables that pass the loader's check).
    # Only CCs with a bit (parents and companions) make the masks, and only CCs with a parent or a
    # companion rule are checked against them; every other CC stays as it is.
    marks = c.filter(c.bit != 0)
    unconditional = marks.requires_mask == 0
    masks = marks.group_by(["person_id", "_m"]).agg(
        _base=marks.bit.bit_or(where=unconditional).fill_null(0),
        _base_drops=marks.drops_parents_mask.bit_or(where=unconditional).fill_null(0),
        _conditional=marks.bit.bit_or(where=~unconditional).fill_null(0),
    )
    present, drops = masks._base, masks._base_drops
    kept_conditional = ibis.literal(0, "int64")
    for m, bit, requires, drops_parents in lk.conditional:
        kept = (masks._m == m) & ((masks._conditional & bit) != 0) & (((masks._base | masks._conditional) & requires) != 0)
        kept_conditional = kept_conditional | ibis.ifelse(kept, bit, 0)
        drops = drops | ibis.ifelse(kept, drops_parents, 0)
    present = present | kept_conditional
    masks = masks.select("person_id", "_m", _kept_conditional=kept_conditional, _acting=present & ~drops)
    ruled = (c.parents_mask != 0) | (c.requires_mask != 0)
    checked = c.filter(ruled)
    checked = checked.left_join(masks, ["person_id", "_m"])
    kc, acting = checked._kept_conditional.fill_null(0), checked._acting.fill_null(0)
    keep = ((checked.requires_mask == 0) | ((kc & checked.bit) != 0)) & ((acting & checked.parents_mask) == 0)
    out = ["person_id", "_m", "_seg", "_dis", "cc", "group_mask", "value"]
    hccs = ibis.union(c.filter(~ruled).select(*out), checked.filter(keep).select(*out))
    return hccs, sources.select("person_id", "_m", "cc", "diagnosis_code")


def cms_hcc_scores(
    persons: ir.Table,
    diagnoses: ir.Table,
    reference: HccReference,
    terms: CmsHccTerms,
    *,
    payment_year: int | None = None,
    models: Sequence[str] | None = None,
    switch_edits: bool = True,
    cache: bool = False,
    esrd_reference: HccReference | None = None,
) -> RiskScores:
    """CMS-HCC risk scores of `payment_year` (default: the terms' model year).

    `persons`: person_id, birth_date, sex (F/M), and optionally orec, dual_status_code,
    new_enrollee, institutional, esrd, graft_months (see :func:`persons_from_eligibility`).
    `diagnoses`: person_id, diagnosis_code, service_date -- already limited to risk-adjustment-eligible
    claims (see :func:`risk_adjustment_diagnoses`); only service dates in ``payment_year - 1`` are used.
    `models`: model versions to compute (default: those with a positive blend weight); models with no
    blend weight are computed and shown but add nothing to the blended score.
    `switch_edits`: apply CMS's MCE age-validity edits (CMS default: on).
    `cache`: materialize the persons (all of them, and those scored), their HCCs and the per-model
    sums in the inputs' backend (``Table.cache``) so the outputs, the exclusions included, do not
    recompute them; the results are the same either way (`RiskScores.release` drops them).
    `esrd_reference`: the ESRD model's tables (``load_hcc_reference(year, ("E24",))``), needed when
    the terms score ESRD persons with the dialysis model (``esrd="esrd_dialysis"``); those persons'
    rows then come from :func:`allpayer.core.risk_esrd.esrd_dialysis_scores`, with model ``E24``.

    How it runs: both models in one pass (the model is a column, ``_m``), segments and models as
    small integers in the joins, and the reference tables pre-joined once per process
    (:func:`_lookups`). Model scores are joins of one row per person and model (demographic
    factors, the HCC sum and count, interactions), not an aggregate over the detail; the detail,
    with its strings, is only built when it is read.
    """
    if reference.payment_year != terms.model_year:
        raise RunError(
            f"reference tables are for payment year {reference.payment_year} but the terms are for "
            f"{terms.model_year}: load both for the same model year"
        )
    payment_year = terms.model_year if payment_year is None else payment_year
    models = tuple(sorted(set(models))) if models else terms.blended_models
    missing = [m for m in models if m not in reference.models]
    if missing:
        raise RunError(f"payment year {reference.payment_year}: no reference tables loaded for {', '.join(missing)}")
    unweighted = [m for m in terms.blended_models if m not in models]
    if unweighted:
        raise RunError(f"the blend needs model(s) {', '.join(unweighted)}; include them in models=")
    as_of = dt.date(payment_year, 2, 1)
    lk = _lookups(reference, models, switch_edits)
    py = ibis.literal(payment_year, "int32")
    my = ibis.literal(terms.model_year, "int32")

    cached = []

    def materialized(t: ir.Table) -> ir.Table:
        if not cache:
            return t
        cached.append(t.cache())
        return cached[-1]

    # every person, scored or not: read by the scores and by the exclusions
    prepared = materialized(_prepare_persons(persons, as_of, terms.esrd))
    excluded = prepared.filter(prepared.exclusion_reason.notnull()).select(
        "person_id", payment_year=py, reason=prepared.exclusion_reason
    )
    p = prepared.filter(~prepared.excluded).drop("excluded")
    esrd_model = terms.esrd == "esrd_dialysis"
    if esrd_model:
        if esrd_reference is None:
            raise RunError("the terms score ESRD members with the dialysis model: pass esrd_reference "
                           "(load_hcc_reference(year, ('E24',)))")
        if esrd_reference.payment_year != reference.payment_year:
            raise RunError(f"ESRD tables are for payment year {esrd_reference.payment_year}, "
                           f"the CMS-HCC tables for {reference.payment_year}")
        esrd_persons = p.filter(p.esrd)
        p = p.filter(~p.esrd)
    p = p.mutate(_seg=_segment_key(p.segment))
    mods = ibis.memtable(
        {"_m": list(range(len(models))), "model_version": list(models)},
        schema=ibis.schema({"_m": "int8", "model_version": "string"}),
    )

    dx = diagnoses.filter(diagnoses.service_date.year() == payment_year - 1)
    dx = dx.select(person_id=dx.person_id.cast("string"), _code=dx.diagnosis_code)
    p = materialized(p)  # the scored persons, as the HCC step joins them (a narrower, faster build side)
    p = checkpoint(p, "risk_persons")  # Spark: computed once, not once per branch that reads it
    hccs, hcc_sources = _model_hccs(dx, p, lk)
    hccs = checkpoint(hccs, "risk_hccs")  # Spark: computed once, not once per branch that reads it
    hccs = materialized(hccs)
    pm = p.select(
        "_seg", "person_id", "segment", "demographic_cell", "sex", "originally_disabled", "medicaid"
    ).cross_join(mods)

    # 1. demographic cell (new enrollees: segment NE) and demographic interactions: the conditions
    ne = pm.segment == "NE"
    applies = {
        "OriginallyDisabled_Female": pm.originally_disabled & (pm.sex == "F") & ~ne,
        "OriginallyDisabled_Male": pm.originally_disabled & (pm.sex == "M") & ~ne,
        "ORIGDS": pm.originally_disabled & (pm.segment == "INS"),
        "LTIMCAID": pm.medicaid & (pm.segment == "INS"),
    }
    demographic = tuple((name, applies[name]) for name in DEMOGRAPHIC_INTERACTIONS)
    pm = pm.mutate(**{f"_di{i}": cond for i, (_name, cond) in enumerate(demographic)})

    # 2. per person and model: the HCCs' sum and count, and the interaction groups present
    summary = hccs.group_by(["person_id", "_m", "_seg", "_dis"]).agg(
        _n=hccs.count(), _groups=hccs.group_mask.bit_or(), _hcc_value=_exact_sum(hccs.value)
    )
    summary = materialized(summary)  # read by the scores and by the detail

    # 3. disease interactions: every term's group present (DISABLED: a person under 65 entitled by
    # disability); an interaction needs a group, so persons with none are not tried
    cand = summary if lk.disabled_only else summary.filter(summary._groups != 0)
    it = lk.interactions
    inter = cand.join(it, (cand._m == it._m) & (cand._seg == it._seg))
    groups = inter._groups | ibis.ifelse(inter._dis == 1, inter.disabled_bit, 0)
    inter = inter.filter((groups & inter.required_mask) == inter.required_mask).select(
        "person_id", "_m", "_seg", "factor", "coefficient", "value", factor_type=ibis.literal("disease_interaction")
    )

    # 4. the payment-HCC count (D1 .. D10P)
    ct = lk.counts
    count = summary.join(
        ct, (summary._m == ct._m) & (summary._seg == ct._seg) & (ibis.least(summary._n, MAX_COUNT_VARIABLE) == ct._n)
    ).select("person_id", "_m", "_seg", "factor", "coefficient", "value", factor_type=ibis.literal("hcc_count"))

    # model scores: per person and model, joins of one row each (no aggregate over factor rows)
    v = lk.variables
    cell = v.select(_m0="_m", _seg0="_seg", _variable="variable", _cell_value="value")
    di = lk.demographic_interactions
    hv = summary.select("person_id", "_m", "_n", "_hcc_value")
    cv = count.select(_pid0="person_id", _m0="_m", _count_value=count.value)
    iv = inter.group_by(["person_id", "_m"]).agg(_inter_value=_exact_sum(inter.value)).rename(_pid1="person_id", _m1="_m")
    core = pm.select(
        "person_id", "_m", "_seg", "model_version", "segment", "demographic_cell",
        *[f"_di{i}" for i in range(len(demographic))],
    )
    core = core.left_join(cell, (core._m == cell._m0) & (core._seg == cell._seg0) & (core.demographic_cell.upper() == cell._variable))
    core = core.left_join(di, (core._m == di._m) & (core._seg == di._seg)).drop("_m_right", "_seg_right")
    core = core.left_join(hv, ["person_id", "_m"]).drop("person_id_right", "_m_right")
    core = core.left_join(cv, (core.person_id == cv._pid0) & (core._m == cv._m0))
    core = core.left_join(iv, (core.person_id == iv._pid1) & (core._m == iv._m1))
    demo_score = core._cell_value.fill_null(0.0)
    for i in range(len(demographic)):
        demo_score = demo_score + ibis.ifelse(core[f"_di{i}"], core[f"_di{i}_value"], 0.0).fill_null(0.0)
    core = core.select(
        "person_id", "_m", "model_version", "segment", "demographic_cell",
        raw_score=demo_score + core._hcc_value.fill_null(0.0) + core._count_value.fill_null(0.0) + core._inter_value.fill_null(0.0),
        demographic_score=demo_score,
        demographic_factor=core._cell_value,
        hcc_count=core._n.fill_null(0).cast("int64"),
    )
    core = materialized(core)
    params = ibis.memtable(
        {
            "model_version": list(models),
            "model_label": [MODEL_LABELS.get(m, m) for m in models],
            "blend_weight": [float(terms.weights.get(m, Decimal(0))) for m in models],
            "normalization_factor": [
                float(terms.normalization[m]) if m in terms.normalization else None for m in models
            ],
        },
        schema=ibis.schema(
            {"model_version": "string", "model_label": "string", "blend_weight": "float64", "normalization_factor": "float64"}
        ),
    )
    # the model scores are the per-person rows above with the model's parameters (no join back to the persons)
    ms = core.join(params, "model_version")
    normalized = ms.raw_score / ms.normalization_factor
    if terms.round_decimals is not None:
        normalized = normalized.round(terms.round_decimals)
    ms = ms.mutate(normalized_score=normalized)
    ms = ms.select(
        "person_id", "model_version", "segment", "demographic_cell", "raw_score", "demographic_score",
        "demographic_factor", "hcc_count", "model_label", "blend_weight", "normalization_factor", "normalized_score",
        weighted_score=ms.normalized_score.fill_null(0.0) * ms.blend_weight,
        payment_year=py,
        model_year=my,
    )

    # person scores
    blend = ms.group_by("person_id").agg(blended_score=ms.weighted_score.sum())
    scores = _person_scores(p, blend, terms, terms.label, py, my)

    # the detail (built only when read): demographic rows, each HCC with its coefficient (none for
    # segments without HCC coefficients, as for new enrollees: value 0), interactions, the count
    demo_parts = [pm.select(
        "_m", "_seg", "person_id", "model_version", "segment",
        factor_type=ibis.literal("demographic"), factor=pm.demographic_cell, variable=pm.demographic_cell.upper(),
    )]
    for i, (name, _cond) in enumerate(demographic):
        sub = pm.filter(pm[f"_di{i}"])
        demo_parts.append(sub.select(
            "_m", "_seg", "person_id", "model_version", "segment",
            factor_type=ibis.literal("demographic_interaction"), factor=ibis.literal(name), variable=ibis.literal(name.upper()),
        ))
    demo = ibis.union(*demo_parts)
    demo = demo.join(v, (demo._m == v._m) & (demo._seg == v._seg) & (demo.variable == v.variable))
    h = lk.hcc
    hcc_rows = hccs.join(h, (hccs._m == h._m) & (hccs._seg == h._seg) & (hccs.cc == h.cc)).select(
        hccs._m, hccs._seg, hccs.person_id, factor_type=ibis.literal("hcc"), factor=h.factor,
        coefficient=h.coefficient, value=hccs.value.fill_null(0.0),
    )
    keyed = ibis.union(hcc_rows, inter.select(*hcc_rows.columns), count.select(*hcc_rows.columns))
    cols = ("person_id", "model_version", "segment", "factor_type", "factor", "coefficient", "value")
    detail = ibis.union(
        demo.select(*cols),
        keyed.select("person_id", model_version=_model_name(keyed._m, models), segment=_segment_name(keyed._seg),
                     factor_type=keyed.factor_type, factor=keyed.factor, coefficient=keyed.coefficient, value=keyed.value),
    )
    detail = detail.mutate(payment_year=py, model_year=my)

    hcc_sources = _hcc_diagnoses(hcc_sources, hccs, models)
    result = RiskScores(scores=scores, model_scores=ms, detail=detail, hcc_diagnoses=hcc_sources, excluded=excluded,
                        cached=tuple(cached), references=(reference,))
    if esrd_model:
        from allpayer.core.risk_esrd import esrd_dialysis_scores

        esrd = esrd_dialysis_scores(esrd_persons, dx, esrd_reference, terms, payment_year=payment_year,
                                    switch_edits=switch_edits)
        result = RiskScores(**{
            name: _union_like(getattr(result, name), getattr(esrd, name))
            for name in RiskScores.TABLES if name != "excluded"  # the ESRD path excludes nobody
        }, excluded=excluded, cached=tuple(cached), references=(reference, esrd_reference))
    return result


def _hcc_diagnoses(sources: ir.Table, hccs: ir.Table, models: Sequence[str]) -> ir.Table:
    """The ``hcc_diagnoses`` rows: each diagnosis code behind an HCC that survived the hierarchies
    (`sources` and `hccs` from :func:`_model_hccs`; ``_m`` is a position in `models`)."""
    kept = sources.semi_join(hccs, ["person_id", "_m", "cc"])
    kept = kept.group_by(["person_id", "_m", "cc", "diagnosis_code"]).agg(_n=kept.count())
    return kept.select(
        "person_id", model_version=_model_name(kept._m, models), factor="HCC" + kept.cc.cast("string"),
        diagnosis_code=kept.diagnosis_code,
    )


def labelled_factors(detail: ir.Table) -> ir.Table:
    """`detail` (the factor rows of :func:`cms_hcc_scores`) with ``label``: CMS's description of
    each HCC (``HCC85`` of V24: Congestive Heart Failure; see ``reference.hcc.hcc_labels``), null
    for the other factors."""
    from allpayer.reference.hcc import hcc_labels

    table, _source = hcc_labels()
    labels = ibis.memtable(table).rename(_label_model="model_version", _label_factor="factor")
    j = detail.left_join(labels, (detail.factor_type == "hcc") & (detail.model_version == labels._label_model)
                         & (detail.factor == labels._label_factor))
    return j.drop("_label_model", "_label_factor")


def _person_scores(p: ir.Table, blend: ir.Table, terms: CmsHccTerms, label: str, py: ir.Value, my: ir.Value) -> ir.Table:
    """The ``scores`` rows: each person's attributes, `blend`'s ``blended_score`` and the final
    ``risk_score`` (less the coding intensity, rounded as the terms say), with `label`."""
    final = blend.blended_score * (1 - float(terms.coding_intensity))
    if terms.round_decimals is not None:
        final = final.round(terms.round_decimals)
    blend = blend.mutate(risk_score=final)
    scores = p.select(
        "person_id", "segment", "demographic_cell", "age", "sex", "orec", "dual_status_code",
        "new_enrollee", "institutional", "esrd",
    ).join(blend, "person_id")
    return scores.mutate(
        payment_year=py,
        model_year=my,
        # a cast, not a float literal: Spark types a bare 0.0 as DECIMAL(1,1), so a second run would
        # publish the column with another type than the first
        coding_intensity=ibis.literal(str(terms.coding_intensity)).cast("float64"),
        score_label=ibis.literal(label),
    )


def _union_like(first: ir.Table, second: ir.Table) -> ir.Table:
    """`first` and `second` (same column names) as one table, in `first`'s column order and types."""
    schema = first.schema()
    return ibis.union(first, second.select(*[second[c].cast(t).name(c) for c, t in schema.items()]))


def cms_hcc_scores_from_claims(
    eligibility: ir.Table,
    medical_claim: ir.Table,
    reference: HccReference,
    terms: CmsHccTerms,
    *,
    payment_year: int | None = None,
    models: Sequence[str] | None = None,
    institutional: ir.Table | None = None,
) -> RiskScores:
    """Score Medicare persons from the input tables: persons from eligibility, diagnoses from the
    risk-adjustment-eligible claims of the year before `payment_year`."""
    payment_year = terms.model_year if payment_year is None else payment_year
    persons = persons_from_eligibility(eligibility, payment_year=payment_year, institutional=institutional)
    dx = risk_adjustment_diagnoses(medical_claim, reference.eligible_procedures, diagnosis_year=payment_year - 1)
    return cms_hcc_scores(persons, dx, reference, terms, payment_year=payment_year, models=models)


# --------------------------------------------------------------------------------------------------
# Medicaid and commercial programs; risk ratios
# --------------------------------------------------------------------------------------------------


COEFFICIENT_SUM_TYPE = "decimal(28, 10)"
"""The exact type a person's coefficients are summed in (CMS's tables give at most 3 decimals)."""


def _exact_sum(values: ir.FloatingValue) -> ir.FloatingValue:
    """The sum of a group's coefficient values, added as exact decimals (`COEFFICIENT_SUM_TYPE`)
    and returned as a float: the same bits whatever order the backend adds the rows in, where a
    float sum can differ in its last bit from one run to the next."""
    return values.cast(COEFFICIENT_SUM_TYPE).sum().cast("float64")


def _weighted_mean(score: ir.FloatingValue, weight: ir.FloatingValue, where: ir.BooleanValue | None = None):
    """The `weight`-weighted mean of `score` over a group (rows passing `where`), its sums taken as
    exact decimals (score to 12 decimals, weights to 10; the products and their sums fit DuckDB's
    and Spark's decimals without rounding), so that every run on a backend gives the same bits.
    (DuckDB and Spark may round a score's 12th decimal differently, so across the two backends the
    means agree to about 1e-12, not to the bit.)"""
    w = weight.cast("decimal(18, 10)")
    total = (score.cast("decimal(18, 12)") * w).sum(where=where)
    return total.cast("float64") / w.sum(where=where).cast("float64")


def _member_month_weights(member_months: ir.Table, cell: str | None, by_year: bool = False) -> ir.Table:
    """Member months per person (and cell); with `by_year`, per person and calendar year of ``month``
    (column ``payment_year``), to meet each year's score."""
    keys = ["person_id"] + ([cell] if cell else [])
    mm = member_months.member_months if "member_months" in member_months.columns else ibis.literal(1)
    t = member_months.mutate(_mm=mm.cast("float64"), person_id=member_months.person_id.cast("string"))
    if by_year:
        t = t.mutate(payment_year=t.month.year().cast("int32"))
        keys.append("payment_year")
    return t.group_by(keys).agg(member_months=t._mm.sum())


def _scores_by_year(member_months: ir.Table, scores: ir.Table) -> bool:
    """Whether member months and scores both carry the year (``month``; ``payment_year``), so each
    year's months meet that year's score: a person scored for several base years then weighs each
    score by that year's months, not by all of them."""
    return "month" in member_months.columns and "payment_year" in scores.columns


def rescale_to_base_year(
    scores: ir.Table,
    base_scores: ir.Table,
    base_member_months: ir.Table,
    *,
    score: str = "risk_score",
    label: str = "CMS-HCC rescaled to a base-year mean of 1.0",
) -> ir.Table:
    """Rescale scores so the program's base-year population has a member-month-weighted mean of 1.0.

    Used for Medicaid and commercial programs that supply no HHS-HCC or CDPS+Rx scores. The factor
    is 1 / (sum of score x member months / sum of member months) over base-year persons with a
    score; it is applied to `scores` (any year of the same program). Adds ``base_year_mean``,
    ``rescaled_score`` and ``score_source``.
    """
    by_year = _scores_by_year(base_member_months, base_scores)
    mm = _member_month_weights(base_member_months, None, by_year)
    b = base_scores.select(person_id=base_scores.person_id.cast("string"), _s=base_scores[score],
                           **({"payment_year": base_scores.payment_year.cast("int32")} if by_year else {}))
    j = mm.join(b, ["person_id", "payment_year"] if by_year else "person_id")
    mean = _weighted_mean(j._s, j.member_months)
    base = j.aggregate(base_year_mean=mean)
    out = scores.cross_join(base)
    return out.mutate(rescaled_score=out[score] / out.base_year_mean, score_source=ibis.literal(label))


def supplied_scores(table: ir.Table, *, model: str, score: str = "risk_score") -> ir.Table:
    """Person scores a payer supplies (HHS-HCC, CDPS+Rx): person_id and score, labelled with `model`."""
    missing = [c for c in ("person_id", score) if c not in table.columns]
    if missing:
        raise RunError(f"supplied {model} scores lack column(s) {', '.join(missing)}")
    return table.select(
        person_id=table.person_id.cast("string"),
        risk_score=table[score].cast("float64"),
        score_source=ibis.literal(model),
    )


def risk_ratio(
    performance_scores: ir.Table,
    performance_member_months: ir.Table,
    base_scores: ir.Table,
    base_member_months: ir.Table,
    *,
    cell: str = "enrollment_type",
    score: str = "risk_score",
    cap: Decimal | str | None = None,
    floor: Decimal | str | None = None,
) -> ir.Table:
    """Population risk ratio per rate cell: mean score in the performance year over the base year.

    Each mean is weighted by member months (a ``member_months`` column, or one row per member
    month) over the members of the cell who have a score; member months without a score are
    reported, not counted. When the member months carry ``month`` and the scores ``payment_year``,
    each year's months meet that year's score (several base years: every person-year weighs its own
    months). The ratio is taken over the population and only then limited to
    [`floor`, `cap`] (dated contract terms, e.g. MSSP caps positive change at 1.03); members are
    never capped one by one.

    Columns: <cell>, performance_member_months, base_member_months, performance_unscored_member_months,
    base_unscored_member_months, performance_mean_score, base_mean_score, raw_ratio, cap, floor,
    ratio, limited_by.
    """
    cap_d = None if cap is None else Decimal(str(cap))
    floor_d = None if floor is None else Decimal(str(floor))
    if cap_d is not None and floor_d is not None and floor_d > cap_d:
        raise TermsError("risk_ratio", "floor", f"floor {floor_d} is above cap {cap_d}")

    def year_means(scores: ir.Table, member_months: ir.Table, prefix: str) -> ir.Table:
        by_year = _scores_by_year(member_months, scores)
        mm = _member_month_weights(member_months, cell, by_year)
        s = scores.select(person_id=scores.person_id.cast("string"), _s=scores[score].cast("float64"),
                          **({"payment_year": scores.payment_year.cast("int32")} if by_year else {}))
        keys = ["person_id", "payment_year"] if by_year else ["person_id"]
        j = mm.left_join(s, keys).drop(*[f"{k}_right" for k in keys])
        scored = j._s.notnull()
        return j.group_by(cell).agg(
            **{
                f"{prefix}_member_months": j.member_months.sum(where=scored).fill_null(0.0),
                f"{prefix}_unscored_member_months": j.member_months.sum(where=~scored).fill_null(0.0),
                f"{prefix}_mean_score": _weighted_mean(j._s, j.member_months, where=scored),
            }
        )

    py = year_means(performance_scores, performance_member_months, "performance")
    by = year_means(base_scores, base_member_months, "base")
    j = py.outer_join(by, py[cell] == by[cell])
    j = j.select(
        **{cell: ibis.coalesce(j[cell], j[f"{cell}_right"])},
        performance_member_months=j.performance_member_months.fill_null(0.0),
        base_member_months=j.base_member_months.fill_null(0.0),
        performance_unscored_member_months=j.performance_unscored_member_months.fill_null(0.0),
        base_unscored_member_months=j.base_unscored_member_months.fill_null(0.0),
        performance_mean_score=j.performance_mean_score,
        base_mean_score=j.base_mean_score,
    )
    raw = j.performance_mean_score / j.base_mean_score
    limited = raw
    limited_by = ibis.null("string")
    if cap_d is not None:
        limited_by = ibis.ifelse(raw > float(cap_d), "cap", limited_by)
        limited = ibis.ifelse(raw > float(cap_d), float(cap_d), limited)
    if floor_d is not None:
        limited_by = ibis.ifelse(raw < float(floor_d), "floor", limited_by)
        limited = ibis.ifelse(raw < float(floor_d), float(floor_d), limited)
    return j.mutate(
        raw_ratio=raw,
        cap=ibis.literal(None if cap_d is None else float(cap_d), "float64"),
        floor=ibis.literal(None if floor_d is None else float(floor_d), "float64"),
        ratio=limited,
        limited_by=limited_by,
    )
