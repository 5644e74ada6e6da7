"""Pharmacy claims: maintenance drugs for chronic conditions and a few acute fills.

Each person with a condition takes its drugs with a fixed probability (reference.CONDITION_DRUGS);
a person-drug pair gets a days supply (30 or 90) and an adherence, and fills are spaced
accordingly over each enrollment span. About 1% of fills are reversed later (an adjustment row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allpayer.synth import reference as ref
from allpayer.synth.context import Ctx

DRUG_KEYS = tuple(ref.DRUGS)
DRUG_INDEX = {k: i for i, k in enumerate(DRUG_KEYS)}
PRICE_30 = np.array([ref.DRUGS[k].price_30 for k in DRUG_KEYS])
QTY_30 = np.array([ref.DRUGS[k].quantity_30 for k in DRUG_KEYS])
BRAND = PRICE_30 > 100
# payer price level for drugs: medicare, medicaid, commercial, self_funded
RX_PRICE_FACTOR = np.array([1.0, 0.92, 1.12, 1.15])
REVERSAL_RATE = 0.01
DISPENSING_FEE_CENTS = 200


@dataclass
class PharmacyLines:
    seg: np.ndarray
    drug: np.ndarray
    day: np.ndarray
    days_supply: np.ndarray
    quantity_milli: np.ndarray  # quantity x 1000 (exact)
    refills: np.ndarray
    prescriber: np.ndarray  # roster entity
    pharmacy: np.ndarray  # index into the pharmacy list
    paid_date: np.ndarray
    allowed: np.ndarray
    paid: np.ndarray
    copay: np.ndarray
    adj_seq: np.ndarray
    claim: np.ndarray  # chunk-local claim number

    @property
    def n(self) -> int:
        return len(self.seg)


def generate_pharmacy(ctx: Ctx, n_pharmacies_per_hsa: int) -> PharmacyLines:
    rng, ppl = ctx.rng, ctx.people
    n_people = ppl.n
    segs_l, drug_l, day_l, ds_l = [], [], [], []
    for cond, drugs in ref.CONDITION_DRUGS.items():
        ci = ref.COND[cond]
        for dkey, share in drugs:
            takes = ppl.cond[:, ci] & (rng.random(n_people) < share)
            ds_person = np.where(rng.random(n_people) < 0.55, 30, 90)
            adherence = 0.6 + 0.4 * rng.random(n_people)
            offset_u = rng.random(n_people)
            s = np.nonzero(takes[ctx.sp] & (ctx.w1 >= ctx.w0))[0]
            if len(s) == 0:
                continue
            p = ctx.sp[s]
            ds = ds_person[p]
            interval = np.maximum(np.rint(ds / adherence[p]).astype(np.int64), ds)
            span_days = ctx.w1[s] - ctx.w0[s] + 1
            first = ctx.w0[s] + (offset_u[p] * np.minimum(interval, span_days)).astype(np.int64)
            count = np.maximum((ctx.w1[s] - first) // interval + 1, 0)
            rep = np.repeat(np.arange(len(s)), count)
            k = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
            segs_l.append(s[rep])
            drug_l.append(np.full(len(rep), DRUG_INDEX[dkey], dtype=np.int32))
            day_l.append(first[rep] + k * interval[rep])
            ds_l.append(ds[rep])
    # acute antibiotics
    seg, day = ctx.events(np.full(len(ctx.sp), 0.35))
    acute = np.where(rng.random(len(seg)) < 0.6, DRUG_INDEX["amoxicillin"], DRUG_INDEX["azithromycin"])
    segs_l.append(seg), drug_l.append(acute.astype(np.int32)), day_l.append(day), ds_l.append(np.where(acute == DRUG_INDEX["amoxicillin"], 10, 5))
    seg = np.concatenate(segs_l).astype(np.int64)
    drug = np.concatenate(drug_l)
    day = np.concatenate(day_l).astype(np.int64)
    ds = np.concatenate(ds_l).astype(np.int32)
    n = len(seg)
    person = ctx.sp[seg]
    pcp = ppl.pcp[person]
    prescriber = np.where(pcp >= 0, pcp, ctx.roster.pick(rng, "pcp_any", ctx.hsa[seg])).astype(np.int32)
    for dkey, spec in (("adalimumab", "spec_rheumatology"), ("letrozole", "spec_oncology"), ("apixaban", "spec_cardiology")):
        sel = drug == DRUG_INDEX[dkey]
        if sel.any():
            prescriber[sel] = ctx.roster.pick(rng, spec, ctx.hsa[seg[sel]])
    pharmacy = ctx.hsa[seg] * n_pharmacies_per_hsa + (rng.random(n) * n_pharmacies_per_hsa).astype(np.int64)
    qty_milli = np.rint(QTY_30[drug] * ds / 30 * 1000).astype(np.int64)
    qty_milli = np.where(ds <= 10, np.rint(QTY_30[drug] * 1000).astype(np.int64), qty_milli)
    base = PRICE_30[drug] * np.where(ds <= 10, 1.0, ds / 30)
    allowed = np.rint(base * RX_PRICE_FACTOR[ctx.ptype[seg]] * rng.lognormal(0, 0.06, n) * 100).astype(np.int64) + DISPENSING_FEE_CENTS
    brand = BRAND[drug]
    ptype = ctx.ptype[seg]
    copay_amt = np.select(
        [ptype == 0, ptype == 1],
        [np.where(brand, 45_00, 5_00), np.where(brand, 3_00, 1_00)],
        np.where(brand, 40_00, 10_00),
    )
    copay = np.minimum(copay_amt, allowed)
    paid = allowed - copay
    refills = (rng.random(n) * 6).astype(np.int32)
    paid_date = day + (rng.random(n) * 10).astype(np.int64)
    claim = np.arange(n, dtype=np.int64)
    adj = np.zeros(n, dtype=np.int32)
    x = PharmacyLines(seg, drug, day, ds, qty_milli, refills, prescriber, pharmacy, paid_date, allowed, paid, copay, adj, claim)
    # reversals: an adjustment row with negated amounts, some weeks later
    rev = np.nonzero(rng.random(n) < REVERSAL_RATE)[0]
    rev_paid = paid_date[rev] + 14 + (rng.random(len(rev)) * 45).astype(np.int64)
    keep = rev_paid <= ctx.span.paid_through_day
    rev, rev_paid = rev[keep], rev_paid[keep]
    if len(rev):
        fields = {f: getattr(x, f) for f in x.__dataclass_fields__}
        total = n + len(rev)
        pos_orig = np.arange(n) + np.searchsorted(rev, np.arange(n), side="left")
        pos_adj = rev + np.arange(len(rev)) + 1
        for f, v in fields.items():
            out = np.empty(total, dtype=v.dtype)
            out[pos_orig] = v
            if f == "adj_seq":
                out[pos_adj] = 1
            elif f in ("allowed", "paid", "copay"):
                out[pos_adj] = -v[rev]
            elif f == "paid_date":
                out[pos_adj] = rev_paid
            else:
                out[pos_adj] = v[rev]
            setattr(x, f, out)
    return x
