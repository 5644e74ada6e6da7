"""Clinical results: HbA1c lab results and blood pressure observations.

HbA1c (LOINC 4548-4): most HbA1c lab claims of people with diabetes come with a result. Each
person has a usual level (normal around 7.7% with a spread of 1.25 points) and each test varies
around it, so about one result in six is above 9.0%; with the people who have no test in a year,
the HbA1c poor-control rate (> 9% or no result) lands between 15% and 35%.

Blood pressure (LOINC 8480-6 systolic, 8462-4 diastolic): one reading per primary care visit of
a person with hypertension, about 78% of people controlled (< 140/90 on average), so that with
the people who have no reading in a year the controlled rate lands between 55% and 75%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allpayer.synth.claims import MedicalLines
from allpayer.synth.context import Ctx

A1C_MEAN, A1C_SD_PERSON, A1C_SD_TEST = 7.7, 1.25, 0.45
A1C_RESULT_SHARE = 0.95
BP_CONTROLLED_SHARE = 0.78


@dataclass
class LabResults:
    claim: np.ndarray  # chunk-local claim number (the encounter)
    seg: np.ndarray
    collected: np.ndarray
    resulted: np.ndarray
    value_tenths: np.ndarray  # HbA1c in tenths of a percent
    orderer: np.ndarray  # roster entity

    @property
    def n(self) -> int:
        return len(self.claim)


@dataclass
class Observations:
    claim: np.ndarray
    seg: np.ndarray
    day: np.ndarray
    systolic: np.ndarray
    diastolic: np.ndarray

    @property
    def n(self) -> int:
        return len(self.claim)


def generate_clinical(ctx: Ctx, lines: MedicalLines) -> tuple[LabResults, Observations]:
    rng, ppl = ctx.rng, ctx.people
    n = ppl.n
    mu = A1C_MEAN + A1C_SD_PERSON * rng.standard_normal(n)
    controlled = rng.random(n) < BP_CONTROLLED_SHARE
    # HbA1c
    c = lines.a1c_claims
    c = c[rng.random(len(c)) < A1C_RESULT_SHARE]
    seg = lines.claim_seg[c]
    person = ctx.sp[seg]
    collected = lines.claim_start[c]
    resulted = collected + (rng.random(len(c)) * 3).astype(np.int64)
    val = mu[person] + A1C_SD_TEST * rng.standard_normal(len(c))
    tenths = np.clip(np.rint(val * 10), 45, 145).astype(np.int64)
    orderer = np.where(ppl.pcp[person] >= 0, ppl.pcp[person], ctx.roster.pick(rng, "pcp_any", ctx.hsa[seg])).astype(np.int32)
    labs = LabResults(c, seg, collected, resulted, tenths, orderer)
    # blood pressure
    b = lines.bp_claims
    seg = lines.claim_seg[b]
    person = ctx.sp[seg]
    ok = controlled[person]
    sys_ = np.where(ok, rng.normal(127, 9, len(b)), rng.normal(148, 11, len(b)))
    dia = np.where(ok, rng.normal(78, 7, len(b)), rng.normal(91, 8, len(b)))
    obs = Observations(b, seg, lines.claim_start[b], np.clip(np.rint(sys_), 85, 220).astype(np.int64),
                       np.clip(np.rint(dia), 45, 130).astype(np.int64))
    return labs, obs
