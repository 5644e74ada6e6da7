"""Chronic-condition coding of Medicare beneficiaries: a yearly review visit that codes every
chronic condition, and the Medicare-age conditions the general condition table leaves out.

Real Medicare fee-for-service beneficiaries have their chronic conditions coded on claims year
after year (risk adjustment looks only at the year before the payment year), and at 65 and over
many carry conditions that matter for CMS-HCC scores but are rare among younger people:
peripheral vascular disease, dementia, angina, coagulation defects, morbid obesity, the late
effects of a stroke, malnutrition, chronic skin ulcers. Without them a synthetic Medicare
population scores far below the national fee-for-service mean of about 1.0.

`gen_medicare_chronic_coding` adds, for each Medicare enrollment span and calendar year, chronic
care visits with the person's clinician (most beneficiaries have one a year) whose diagnosis
lists carry all of the person's chronic conditions, five codes a claim (further claims on other
days when a person has more). The Medicare-age conditions are drawn per person from
`MEDICARE_CONDITIONS` with the person's latent health, like the general conditions.

The prevalences are rounded figures in the range CMS's chronic-condition data and published
HCC frequencies show for fee-for-service beneficiaries, scaled so that the population's mean
CMS-HCC (2020 model, V24) score lands near 1.0 (tests/synth/test_medicare_coding.py measures
it). They are a calibration of synthetic data, not estimates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from allpayer.synth import codes as K
from allpayer.synth import reference as ref

if TYPE_CHECKING:  # the generator's code list imports this module: no runtime import of Ctx
    from allpayer.synth.context import Ctx

MEDICARE = 0  # payer-type index of Medicare (allpayer.inputs.schema.PAYER_TYPES)
DX_PER_CLAIM = 5

MEDICARE_CONDITIONS: tuple[ref.Condition, ...] = (
    ref.Condition("vascular_disease", (0.0, 0.01, 0.05, 0.10, 0.17), (("I739", 1.0),)),
    ref.Condition("morbid_obesity", (0.0, 0.05, 0.08, 0.06, 0.03), (("E6601", 1.0),), medicaid_factor=1.3),
    ref.Condition("dementia", (0.0, 0.002, 0.01, 0.03, 0.13), (("F0390", 0.6), ("G309", 0.4))),
    ref.Condition("coagulation_defect", (0.0, 0.01, 0.03, 0.05, 0.07), (("D6869", 1.0),)),
    ref.Condition("seizure_disorder", (0.0, 0.02, 0.03, 0.015, 0.015), (("G40909", 1.0),), medicaid_factor=2.0),
    ref.Condition("stroke_late_effects", (0.0, 0.002, 0.01, 0.015, 0.03), (("I69351", 1.0),)),
    ref.Condition("angina", (0.0, 0.002, 0.01, 0.03, 0.04), (("I209", 1.0),), male_factor=1.3, female_factor=0.8),
    ref.Condition("malnutrition", (0.0, 0.002, 0.005, 0.01, 0.025), (("E440", 1.0),)),
    ref.Condition("rheumatoid_arthritis", (0.0, 0.01, 0.03, 0.05, 0.05), (("M0579", 1.0),), female_factor=1.5, male_factor=0.6),
    ref.Condition("immune_disorder", (0.0, 0.005, 0.01, 0.01, 0.01), (("D849", 1.0),)),
    ref.Condition("chronic_skin_ulcer", (0.0, 0.001, 0.005, 0.01, 0.02), (("L97919", 0.5), ("L97929", 0.5))),
    ref.Condition("chronic_respiratory_failure", (0.0, 0.003, 0.01, 0.02, 0.04), (("J9611", 1.0),)),
    ref.Condition("hyperparathyroidism", (0.0, 0.005, 0.015, 0.03, 0.035), (("E213", 1.0),), female_factor=1.4, male_factor=0.6),
    ref.Condition("pressure_ulcer", (0.0, 0.001, 0.002, 0.004, 0.012), (("L89154", 1.0),)),
    ref.Condition("lymphoma", (0.0, 0.001, 0.003, 0.006, 0.008), (("C8590", 1.0),)),
    ref.Condition("amputation_status", (0.0, 0.001, 0.003, 0.005, 0.006), (("Z89411", 1.0),)),
    ref.Condition("pulmonary_fibrosis", (0.0, 0.001, 0.004, 0.01, 0.015), (("J8410", 1.0),)),
    ref.Condition("vertebral_fracture", (0.0, 0.0, 0.004, 0.008, 0.018), (("M4856XA", 1.0),), female_factor=1.5, male_factor=0.5),
)
"""Conditions drawn for people while they are Medicare beneficiaries (V24 HCCs 108, 22, 52, 48,
79, 103, 88, 21, 40, 47, 161, 84, 23, 157, 10, 189, 112, 169)."""

MEDICARE_CODES: tuple[str, ...] = tuple(dict.fromkeys(c for cond in MEDICARE_CONDITIONS for c, _ in cond.codes))
"""ICD-10-CM codes this module writes (they are part of the generator's code list)."""

PREVALENCE_SCALE = 2.2
"""Multiplier on every `MEDICARE_CONDITIONS` prevalence: the calibration of the mean score."""

REVIEW_VISIT_P = (0.88, 0.55)
"""Chance of a yearly chronic care visit: with a primary care clinician, without one."""


def medicare_condition_codes(rng: np.random.Generator, ctx: Ctx) -> np.ndarray:
    """(n people, len(MEDICARE_CONDITIONS)) ICD code indices (-1: the person has not the condition),
    drawn at the person's age in the middle of the span, scaled by the latent health score."""
    ppl = ctx.people
    n = ppl.n
    mid_day = (ctx.span.start_day + ctx.span.end_day) / 2
    age = np.maximum((mid_day - ppl.birth) / 365.25, 0)
    band = np.searchsorted(ref.AGE_BANDS, age, side="right") - 1
    mult_h = np.exp(0.55 * ppl.health - 0.15)
    out = np.full((n, len(MEDICARE_CONDITIONS)), -1, dtype=np.int32)
    for ci, c in enumerate(MEDICARE_CONDITIONS):
        p = np.asarray(c.prevalence)[band] * mult_h * PREVALENCE_SCALE
        p = p * np.where(ppl.disabled | ppl.dual, c.medicaid_factor, 1.0)
        p = p * np.where(ppl.female, c.female_factor, c.male_factor)
        has = rng.random(n) < np.minimum(p, 0.95)
        idx = K.ICD.arr([x for x, _ in c.codes])
        shares = np.array([s for _, s in c.codes], dtype=np.float64)
        pick = idx[np.minimum(np.searchsorted(np.cumsum(shares / shares.sum()), rng.random(n), side="right"), len(idx) - 1)]
        out[:, ci] = np.where(has, pick, -1)
    return out


def _chronic_codes(ctx: Ctx, extra: np.ndarray) -> np.ndarray:
    """(n people, C + E) the person's chronic condition codes then the Medicare-age ones, -1 for
    none, packed to the left."""
    chronic = [i for i, c in enumerate(ref.CONDITIONS) if c.chronic or c.key in ("hyperlipidemia", "autoimmune")]
    cc = np.concatenate([ctx.people.cond_code[:, chronic], extra], axis=1)
    order = np.argsort(cc < 0, axis=1, kind="stable")
    return np.take_along_axis(cc, order, axis=1)


def gen_medicare_chronic_coding(ctx: Ctx, g) -> None:
    """Yearly chronic care visits of Medicare beneficiaries coding all their chronic conditions
    (see the module docstring). Adds office claims to `g` (a `claims.Generated`)."""
    from allpayer.synth.claims import _em_level, office_part

    rng = ctx.rng.spawn(1)[0]
    ppl = ctx.people
    codes = _chronic_codes(ctx, medicare_condition_codes(rng, ctx))
    n_codes = (codes >= 0).sum(axis=1)
    medicare = np.nonzero((ctx.ptype == MEDICARE) & (ctx.w1 >= ctx.w0))[0]
    segs, days, chunk = [], [], []
    for y in ctx.span.years:
        y0, y1 = ctx.span.year_start_day(y), ctx.span.year_start_day(y + 1) - 1
        s = medicare[(ctx.w0[medicare] <= y1) & (ctx.w1[medicare] >= y0)]
        lo, hi = np.maximum(ctx.w0[s], y0), np.minimum(ctx.w1[s], y1)
        person = ctx.sp[s]
        has_pcp = ppl.pcp[person] >= 0
        seen = rng.random(len(s)) < np.where(has_pcp, REVIEW_VISIT_P[0], REVIEW_VISIT_P[1]) * np.minimum((hi - lo + 1) / 120, 1)
        s, lo, hi, person = s[seen], lo[seen], hi[seen], person[seen]
        claims = np.maximum((n_codes[person] + DX_PER_CLAIM - 1) // DX_PER_CLAIM, 1)
        rep = np.repeat(np.arange(len(s)), claims)
        within = np.arange(len(rep)) - np.repeat(np.cumsum(claims) - claims, claims)
        segs.append(s[rep])
        days.append(lo[rep] + (rng.random(len(rep)) * (hi[rep] - lo[rep] + 1)).astype(np.int64))
        chunk.append(within)
    if not segs:
        return
    seg, day, within = np.concatenate(segs), np.concatenate(days), np.concatenate(chunk)
    k = len(seg)
    if k == 0:
        return
    person = ctx.sp[seg]
    cols = within[:, None] * DX_PER_CLAIM + np.arange(DX_PER_CLAIM)[None, :]
    dx = np.take_along_axis(codes[person], np.minimum(cols, codes.shape[1] - 1), axis=1)
    dx = np.where(cols < codes.shape[1], dx, -1).astype(np.int32)
    # a person without chronic conditions is seen for a general exam code
    dx[:, 0] = np.where(dx[:, 0] >= 0, dx[:, 0], K.ICD[ref.PREVENTIVE_DX_ADULT])
    pcp = ppl.pcp[person]
    other = ctx.roster.pick(rng, "pcp_any", ctx.hsa[seg])
    render = np.where(pcp >= 0, pcp, other).astype(np.int32)
    h = np.full((k, 1), -1, dtype=np.int32)
    h[:, 0] = _em_level(rng, k, n_codes[person] >= 2)
    g.add(office_part(ctx, "pcp_visit", seg, day, render, dx, h))
