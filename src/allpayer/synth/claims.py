"""Medical claims: encounters drawn per enrollment span, turned into priced claim lines.

Each encounter generator draws events for every enrollment span at once (Poisson counts from
annual rates that depend on age, conditions, coverage and the person's health score) and returns a
`Part`: claim-level arrays plus (claims x slots) line matrices, where a slot is a possible line
and a mask says which lines exist. `assemble` stacks the parts, numbers the lines, prices them,
decides the payment arrangement from the roster (shadow claims for fixed-payment providers), and
adds denials, adjustments, paid dates and a few claims outside any enrollment span.

Prices are Medicare-like base amounts (reference.py) times a payer level by service class, a
hospital level and random variation; inpatient stays are paid by DRG with a heavy-tailed outlier
factor. Money ends as integer cents.

Claim volume is a design budget (about 13 lines per member-year, fewer than a real claims feed,
so that a whole cycle over 650,000 people runs in minutes); each synthetic line therefore stands
for more care than a real one, and `CALIBRATION` scales allowed amounts by payer type so that the
medical allowed PMPM lands near Medicare $1,000, Medicaid $480, commercial $540 and self-funded
$550 (tests measure them from the files).

Member cost sharing (coinsurance, copays, the Medicare Part A deductible) is recorded on every
paid line; shadow claims (payment arrangement fpp, cpr or capitated) carry the priced allowed
amount and paid 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from allpayer.synth import codes as K
from allpayer.synth import reference as ref
from allpayer.synth.context import Ctx
from allpayer.synth.roster import MODEL_CODE, PERIOD_START_DAYS

PROF, INST, DME = 0, 1, 2
# price classes (index into reference.PRICE_CLASSES)
PC_PROF, PC_OUT, PC_INP, PC_CLINIC, PC_POST = 0, 1, 2, 3, 4

# Encounter kinds (kept in memory for tests and the clinical generators; not written).
KINDS = (
    "pcp_visit", "preventive", "lab", "specialist", "therapy", "sud_program", "imaging", "ed_facility", "ed_professional",
    "ambulance", "inpatient", "inpatient_professional", "snf", "dialysis", "dme", "infusion", "outpatient_procedure",
    "physical_therapy", "mh_followup", "sud_followup", "ed_followup", "prenatal", "hba1c_lab", "home_care",
)
KIND = {k: i for i, k in enumerate(KINDS)}

# Calibration of allowed amounts by payer type (medicare, medicaid, commercial, self_funded): the
# targets ($1,000, $480, $540, $560 medical allowed PMPM) divided by the PMPM measured without it
# on 100,000 people ($650, $286, $346, $367).
CALIBRATION = np.array([1.54, 1.68, 1.56, 1.53])
MEDICARE_IP_DEDUCTIBLE = {2022: 1556_00, 2023: 1600_00, 2024: 1632_00}
DENIAL_RATE = 0.03
ADJUSTMENT_RATE = 0.02
OUTSIDE_SPAN_RATE = 0.001


@dataclass
class Part:
    """Claims of one encounter kind (k claims, S line slots)."""

    kind: int
    seg: np.ndarray
    ctype: int
    start: np.ndarray
    end: np.ndarray
    render: np.ndarray
    bill: np.ndarray
    fac: np.ndarray
    dx: np.ndarray
    pclass: int
    hcpcs: np.ndarray  # (k, S)
    rev: np.ndarray  # (k, S)
    units: np.ndarray  # (k, S)
    price: np.ndarray  # (k, S) Medicare-like dollars for the whole line
    mask: np.ndarray  # (k, S)
    pos: np.ndarray | None = None  # (k,)
    bill_type: np.ndarray | None = None
    mod: np.ndarray | None = None  # (k, S)
    lstart: np.ndarray | None = None  # (k, S)
    lend: np.ndarray | None = None
    adm: np.ndarray | None = None
    dis: np.ndarray | None = None
    src: np.ndarray | None = None
    atype: np.ndarray | None = None
    disch: np.ndarray | None = None
    drg: np.ndarray | None = None
    hfac: np.ndarray | None = None
    drg_pay: np.ndarray | None = None
    redacted: np.ndarray | None = None

    @property
    def k(self) -> int:
        return len(self.seg)


def _full(k: int, v, dtype=np.int32) -> np.ndarray:
    return np.full(k, v, dtype=dtype)


def _pick(items) -> tuple[list, np.ndarray]:
    vals = [x for x, _ in items]
    p = np.array([w for _, w in items], dtype=float)
    return vals, np.cumsum(p / p.sum())


def _draw(rng, items, k: int, vocab=None) -> np.ndarray:
    vals, cp = _pick(items)
    i = np.minimum(np.searchsorted(cp, rng.random(k), side="right"), len(vals) - 1)
    if vocab is not None:
        return vocab.arr(vals)[i]
    return np.asarray(vals)[i]


def _prof_price(h: np.ndarray, units=1) -> np.ndarray:
    return np.where(h >= 0, K.PROF_PRICE_ARR[np.maximum(h, 0)], 0.0) * units


def _hospital_for(ctx: Ctx, seg: np.ndarray, complex_: np.ndarray | float = 0.0) -> np.ndarray:
    """Hospital index used by an encounter: the HSA's hospital(s), a tertiary referral for complex
    care, or an out-of-state hospital for some."""
    rng = ctx.rng
    hsa = ctx.hsa[seg]
    k = len(seg)
    # home hospital: the HSA's hospitals by share
    home = np.zeros(k, dtype=np.int64)
    u = rng.random(k)
    for hi_key, hs in enumerate(ref.HSAS):
        hosp = [(ref.HOSPITAL_INDEX[h.key], h.share_of_hsa) for h in ref.HOSPITALS if h.hsa == hs.key]
        sel = hsa == hi_key
        if len(hosp) == 1:
            home[sel] = hosp[0][0]
        else:
            cp = np.cumsum([s for _, s in hosp])
            j = np.minimum(np.searchsorted(cp, u[sel], side="right"), len(hosp) - 1)
            home[sel] = np.array([h for h, _ in hosp])[j]
    tert = np.array([ref.HOSPITAL_INDEX[ref.TERTIARY_REFERRAL[h.key]] for h in ref.HSAS])[hsa]
    oon_h = np.array([ref.HOSPITAL_INDEX[ref.OUT_OF_NETWORK.get(h.key, ref.OUT_OF_NETWORK_DEFAULT)[0]] for h in ref.HSAS])[hsa]
    oon_p = np.array([ref.OUT_OF_NETWORK.get(h.key, ref.OUT_OF_NETWORK_DEFAULT)[1] for h in ref.HSAS])[hsa]
    v = rng.random(k)
    c = np.broadcast_to(np.asarray(complex_, dtype=float), (k,))
    out = np.where(v < c * 0.45, tert, home)
    out = np.where(rng.random(k) < oon_p * (1 + c), oon_h, out)
    return out


def _hfac(hosp: np.ndarray) -> np.ndarray:
    kinds = np.array([ref.HOSPITAL_PRICE_FACTOR[h.kind] for h in ref.HOSPITALS])
    return kinds[hosp]


def _fac_entity(ctx: Ctx, hosp: np.ndarray) -> np.ndarray:
    return ctx.roster.hospital_entity[hosp]


def _em_level(rng, k: int, sick: np.ndarray) -> np.ndarray:
    est = _draw(rng, (("99212", 0.10), ("99213", 0.47), ("99214", 0.36), ("99215", 0.07)), k, K.HCPCS)
    est_sick = _draw(rng, (("99213", 0.30), ("99214", 0.52), ("99215", 0.18)), k, K.HCPCS)
    new = _draw(rng, (("99202", 0.1), ("99203", 0.45), ("99204", 0.35), ("99205", 0.10)), k, K.HCPCS)
    out = np.where(sick, est_sick, est)
    return np.where(rng.random(k) < 0.06, new, out)


# ---------------------------------------------------------------------------------------------
# generic builders
# ---------------------------------------------------------------------------------------------


def office_part(ctx: Ctx, kind: str, seg, day, render, dx, hcpcs_slots, units_slots=None, pos=None, mod=None,
                redacted=None) -> Part:
    """Professional office claims, or FQHC/RHC institutional claims when the clinician's practice
    bills under a CCN (revenue 0521, bill type 771/711)."""
    roster = ctx.roster
    k = len(seg)
    S = hcpcs_slots.shape[1]
    units = np.ones((k, S), dtype=np.int32) if units_slots is None else units_slots
    bill = roster.billing[render]
    clinic_kind = roster.entity_kind[bill]
    is_fqhc = clinic_kind == 3
    is_rhc = (clinic_kind == 4) | (clinic_kind == 11)
    clinic = is_fqhc | is_rhc
    mask = hcpcs_slots >= 0
    price = _prof_price(hcpcs_slots, units)
    parts = []
    prof = ~clinic
    if prof.any():
        parts.append(Part(
            kind=KIND[kind], seg=seg[prof], ctype=PROF, start=day[prof], end=day[prof], render=render[prof],
            bill=bill[prof], fac=_full(int(prof.sum()), -1), dx=dx[prof], pclass=PC_PROF, hcpcs=hcpcs_slots[prof],
            rev=np.full((int(prof.sum()), S), -1, dtype=np.int32), units=units[prof], price=price[prof], mask=mask[prof],
            pos=(pos[prof] if pos is not None else _full(int(prof.sum()), K.POS["11"])),
            mod=None if mod is None else mod[prof],
            redacted=None if redacted is None else redacted[prof],
        ))
    if clinic.any():
        kc = int(clinic.sum())
        rev = np.where(mask[clinic], K.REVENUE["0300"], -1).astype(np.int32)
        rev[:, 0] = K.REVENUE["0521"]
        cprice = np.zeros((kc, S))
        cprice[:, 0] = ref.FQHC_VISIT_PRICE
        cprice[:, 1:] = price[clinic][:, 1:] * 0.5
        parts.append(Part(
            kind=KIND[kind], seg=seg[clinic], ctype=INST, start=day[clinic], end=day[clinic], render=render[clinic],
            bill=bill[clinic], fac=bill[clinic], dx=dx[clinic], pclass=PC_CLINIC, hcpcs=hcpcs_slots[clinic], rev=rev,
            units=units[clinic], price=cprice, mask=mask[clinic],
            bill_type=np.where(is_fqhc[clinic], K.BILL_TYPE["771"], K.BILL_TYPE["711"]).astype(np.int32),
            redacted=None if redacted is None else redacted[clinic],
        ))
    return parts


def outpatient_facility_part(ctx: Ctx, kind: str, seg, day, hosp, dx, hcpcs_slots, rev_slots, units=None, render=None,
                             price=None, day_end=None) -> Part:
    """Hospital outpatient claim (bill type 131)."""
    k = len(seg)
    S = rev_slots.shape[1]
    units = np.ones((k, S), dtype=np.int32) if units is None else units
    mask = rev_slots >= 0
    if price is None:
        ed = (rev_slots == K.REVENUE["0450"]) & (hcpcs_slots >= 0)
        p_rev = np.where(rev_slots >= 0, K.REV_PRICE_ARR[np.maximum(rev_slots, 0)], 0.0)
        p_ed = np.where(ed, K.ED_FAC_PRICE_ARR[np.maximum(hcpcs_slots, 0)], 0.0)
        drug = (hcpcs_slots >= 0) & np.isin(hcpcs_slots, K.HCPCS.arr(["J9271", "J9355", "J9045"]))
        p_drug = np.where(drug, _prof_price(hcpcs_slots, units), 0.0)
        price = np.where(ed, p_ed, np.where(drug, p_drug, p_rev * units))
    fac = _fac_entity(ctx, hosp)
    return Part(
        kind=KIND[kind], seg=seg, ctype=INST, start=day, end=day if day_end is None else day_end,
        render=_full(k, -1) if render is None else render, bill=fac, fac=fac, dx=dx, pclass=PC_OUT, hcpcs=hcpcs_slots,
        rev=rev_slots, units=units, price=price, mask=mask, bill_type=_full(k, K.BILL_TYPE["131"]), hfac=_hfac(hosp),
    )


def professional_part(ctx: Ctx, kind: str, seg, day, render, dx, hcpcs_slots, pos_code: str, units=None, mod=None,
                      fac=None, day_end=None, lstart=None, lend=None, price=None, redacted=None, ctype=PROF) -> Part:
    k = len(seg)
    S = hcpcs_slots.shape[1]
    units = np.ones((k, S), dtype=np.int32) if units is None else units
    return Part(
        kind=KIND[kind], seg=seg, ctype=ctype, start=day, end=day if day_end is None else day_end, render=render,
        bill=ctx.roster.billing[render], fac=_full(k, -1) if fac is None else fac, dx=dx, pclass=PC_PROF,
        hcpcs=hcpcs_slots, rev=np.full((k, S), -1, dtype=np.int32), units=units,
        price=_prof_price(hcpcs_slots, units) if price is None else price, mask=hcpcs_slots >= 0,
        pos=_full(k, K.POS[pos_code]), mod=mod, lstart=lstart, lend=lend, redacted=redacted,
    )


def _in_window(ctx: Ctx, seg, day) -> np.ndarray:
    return (day >= ctx.w0[seg]) & (day <= ctx.w1[seg])


# ---------------------------------------------------------------------------------------------
# encounter generators
# ---------------------------------------------------------------------------------------------


@dataclass
class Generated:
    parts: list[Part] = field(default_factory=list)
    # clinical events: (part index, row in part)
    bp_parts: list[tuple[int, np.ndarray]] = field(default_factory=list)
    a1c_parts: list[tuple[int, np.ndarray]] = field(default_factory=list)

    def add(self, part_or_parts) -> list[int]:
        ps = part_or_parts if isinstance(part_or_parts, list) else [part_or_parts]
        out = []
        for p in ps:
            if p.k:
                self.parts.append(p)
                out.append(len(self.parts) - 1)
        return out


def gen_primary_care(ctx: Ctx, g: Generated) -> tuple[np.ndarray, np.ndarray]:
    """Problem-oriented primary care visits; returns (segment, day) of the visits for labs."""
    rng, ppl = ctx.rng, ctx.people
    nchron = ppl.n_chronic[ctx.sp]
    base = ctx.age_rate({0: 3.0, 1: 1.5, 5: 0.9, 18: 1.1, 45: 1.6, 65: 2.3, 75: 2.9})
    rate = (base + 0.55 * np.minimum(nchron, 5)) * np.exp(0.35 * ppl.health[ctx.sp] - 0.06)
    rate = rate * np.where(ctx.ptype == 1, 1.3, 1.0)
    has_pcp = ppl.pcp[ctx.sp] >= 0
    rate = np.where(has_pcp, rate, rate * 0.3)
    # office-based buprenorphine (spoke) for opioid use disorder outside Part 2 programs
    spoke = ctx.cond("opioid_use") & ~ppl.part2[ctx.sp]
    rate = rate + np.where(spoke, 4.0, 0.0)
    seg, day = ctx.events(rate)
    k = len(seg)
    person = ctx.sp[seg]
    pcp = ppl.pcp[person]
    other = ctx.roster.pick(rng, "pcp_any", ctx.hsa[seg])
    render = np.where((pcp >= 0) & (rng.random(k) < 0.83), pcp, other).astype(np.int32)
    chronic_code = ctx.random_condition_code(seg)
    acute = _draw(rng, ref.ACUTE_OFFICE_DX, k, K.ICD)
    primary = np.where((chronic_code >= 0) & (rng.random(k) < 0.62), chronic_code, acute)
    dx = ctx.dx_rows(seg, primary)
    sick = ppl.n_chronic[person] >= 2
    h = np.full((k, 2), -1, dtype=np.int32)
    h[:, 0] = _em_level(rng, k, sick)
    anc = _draw(rng, (("93000", 0.25), ("36415", 0.35), ("81001", 0.2), ("20610", 0.1), ("90471", 0.1)), k, K.HCPCS)
    h[:, 1] = np.where(rng.random(k) < 0.15, anc, -1)
    # telehealth for some visits
    pos = np.where(rng.random(k) < 0.06, K.POS["10"], K.POS["11"]).astype(np.int32)
    mod = np.full((k, 2), -1, dtype=np.int32)
    mod[:, 0] = np.where(pos == K.POS["10"], K.MODIFIER["95"], -1)
    parts = office_part(ctx, "pcp_visit", seg, day, render, dx, h, pos=pos, mod=mod)
    idx = g.add(parts)
    # blood pressure readings at visits of people with hypertension
    for pi in idx:
        p = g.parts[pi]
        rows = np.nonzero(ctx.people.cond[ctx.sp[p.seg], ref.COND["hypertension"]])[0]
        g.bp_parts.append((pi, rows))
    return seg, day


MEDICARE_WELLNESS_FACTOR = 1.8
"""Medicare members' annual wellness visits are more frequent than other adults' preventive
visits (about half of attributed Medicare members have one in a year, near the national ACO median)."""
HBA1C_ENGAGED_SHARE = 0.97
"""Share of people with diabetes who get HbA1c tests at all (the others have none in any year)."""


def gen_preventive(ctx: Ctx, g: Generated) -> None:
    rng, ppl = ctx.rng, ctx.people
    rate = ctx.age_rate({0: 5.0, 1: 2.2, 3: 0.72, 18: 0.42, 65: 0.55})
    rate = np.where(ppl.pcp[ctx.sp] >= 0, rate, rate * 0.35)
    rate = np.where(ctx.ptype == 0, rate * MEDICARE_WELLNESS_FACTOR, rate)
    seg, day = ctx.events(rate)
    k = len(seg)
    person = ctx.sp[seg]
    age = (day - ppl.birth[person]) / 365.25
    pcp = ppl.pcp[person]
    other = ctx.roster.pick(rng, "pcp_any", ctx.hsa[seg])
    render = np.where(pcp >= 0, pcp, other).astype(np.int32)
    medicare = ctx.ptype[seg] == 0
    ab = np.searchsorted(np.array([1, 5, 12, 18, 40, 65]), age, side="right")
    est = K.HCPCS.arr(["99391", "99392", "99393", "99394", "99395", "99396", "99397"])[ab]
    new = K.HCPCS.arr(["99381", "99382", "99383", "99384", "99385", "99386", "99387"])[ab]
    code = np.where(rng.random(k) < 0.08, new, est)
    awv = np.where(rng.random(k) < 0.12, K.HCPCS["G0438"], K.HCPCS["G0439"])
    code = np.where(medicare, awv, code)
    h = np.full((k, 4), -1, dtype=np.int32)
    h[:, 0] = code
    child = age < 18
    # vaccines by age: infant series, then flu and MMR/DTaP boosters, HPV for adolescents, flu for adults
    infant = _draw(rng, (("90700", 0.3), ("90713", 0.25), ("90707", 0.2), ("90633", 0.25)), k, K.HCPCS)
    young = _draw(rng, (("90686", 0.5), ("90707", 0.25), ("90700", 0.25)), k, K.HCPCS)
    teen = _draw(rng, (("90651", 0.5), ("90686", 0.5)), k, K.HCPCS)
    vacc = np.where(age < 2, infant, np.where(age < 9, young, np.where(age < 18, teen, K.HCPCS["90686"])))
    gets_vacc = (child & (rng.random(k) < 0.7)) | (~child & (rng.random(k) < 0.25))
    h[:, 1] = np.where(gets_vacc, np.where(child, K.HCPCS["90460"], K.HCPCS["90471"]), -1)
    h[:, 2] = np.where(gets_vacc, vacc, -1)
    h[:, 3] = np.where((age < 3) & (rng.random(k) < 0.65), K.HCPCS["96110"], -1)
    abnormal = rng.random(k) < 0.25
    primary = np.where(child, np.where(abnormal, K.ICD["Z00121"], K.ICD["Z00129"]),
                       np.where(abnormal, K.ICD["Z0001"], K.ICD["Z0000"]))
    dx = ctx.dx_rows(seg, primary.astype(np.int32))
    g.add(office_part(ctx, "preventive", seg, day, render, dx, h))


def gen_labs(ctx: Ctx, g: Generated, visit_seg, visit_day) -> None:
    """Lab panels drawn after some primary care visits, and HbA1c tests for people with diabetes."""
    rng, ppl = ctx.rng, ctx.people
    sel = rng.random(len(visit_seg)) < 0.30
    seg, day = visit_seg[sel], visit_day[sel] + (rng.random(int(sel.sum())) * 3).astype(np.int64)
    ok = _in_window(ctx, seg, day)
    seg, day = seg[ok], day[ok]
    _lab_claims(ctx, g, seg, day, "lab", hba1c=False)
    # HbA1c tests (LOINC 4548-4 results come with most of them)
    diab = ctx.cond("diabetes")
    engaged = (rng.random(ppl.n) < HBA1C_ENGAGED_SHARE)[ctx.sp]
    rate = np.where(diab & engaged, 2.3, 0.0)
    seg, day = ctx.events(rate)
    _lab_claims(ctx, g, seg, day, "hba1c_lab", hba1c=True)


def _lab_claims(ctx: Ctx, g: Generated, seg, day, kind: str, hba1c: bool) -> None:
    rng, ppl = ctx.rng, ctx.people
    k = len(seg)
    if k == 0:
        return
    person = ctx.sp[seg]
    h = np.full((k, 5), -1, dtype=np.int32)
    if hba1c:
        h[:, 0] = K.HCPCS["83036"]
        h[:, 1] = np.where(rng.random(k) < 0.2, K.HCPCS["80053"], -1)
        primary = ppl.cond_code[person, ref.COND["diabetes"]]
    else:
        h[:, 0] = np.where(rng.random(k) < 0.6, K.HCPCS["80053"], K.HCPCS["85025"])
        lipid_p = np.where(ppl.cond[person, ref.COND["hyperlipidemia"]] | ppl.cond[person, ref.COND["diabetes"]], 0.4, 0.1)
        h[:, 2] = np.where(rng.random(k) < lipid_p, K.HCPCS["80061"], np.where(rng.random(k) < 0.1, K.HCPCS["84443"], -1))
        cc = ctx.random_condition_code(seg)
        primary = np.where(cc >= 0, cc, K.ICD["Z0000"]).astype(np.int32)
    h[:, 4] = np.where(rng.random(k) < 0.5, K.HCPCS["36415"], -1)
    dx = ctx.dx_rows(seg, primary.astype(np.int32))
    at_hospital = rng.random(k) < 0.4
    if (~at_hospital).any():
        s = ~at_hospital
        lab = ctx.roster.pick(rng, "lab", ctx.hsa[seg[s]]).astype(np.int32)
        p = professional_part(ctx, kind, seg[s], day[s], lab, dx[s], h[s], "81")
        p.render = _full(p.k, -1)  # an independent lab has no rendering clinician
        idx = g.add(p)
        if hba1c and idx:
            g.a1c_parts.append((idx[0], np.arange(p.k)))
    if at_hospital.any():
        s = at_hospital
        hosp = _hospital_for(ctx, seg[s])
        hh = h[s]
        rev = np.where(hh >= 0, K.REVENUE["0300"], -1).astype(np.int32)
        price = _prof_price(hh) * 1.3
        p = outpatient_facility_part(ctx, kind, seg[s], day[s], hosp, dx[s], hh, rev, price=price)
        idx = g.add(p)
        if hba1c and idx:
            g.a1c_parts.append((idx[0], np.arange(p.k)))


SPECIALIST_RATES: tuple[tuple[str, str, float], ...] = (
    # (condition or "all", specialty, visits per year)
    ("diabetes", "endocrinology", 0.35),
    ("chf", "cardiology", 2.5),
    ("afib", "cardiology", 1.5),
    ("cad", "cardiology", 1.1),
    ("copd", "pulmonology", 0.8),
    ("asthma", "pulmonology", 0.2),
    ("ckd", "nephrology", 0.8),
    ("esrd", "nephrology", 3.0),
    ("depression", "psychiatry", 0.35),
    ("serious_mental_illness", "psychiatry", 2.0),
    ("cancer", "oncology", 5.0),
    ("osteoarthritis", "orthopedics", 1.2),
    ("autoimmune", "rheumatology", 2.5),
    ("all", "dermatology", 0.12),
    ("all", "neurology", 0.07),
    ("all", "gastroenterology", 0.05),
    ("all", "general_surgery", 0.05),
    ("all", "orthopedics", 0.08),
)


def gen_specialists(ctx: Ctx, g: Generated) -> None:
    rng, ppl = ctx.rng, ctx.people
    rates = []
    for cond, spec, r in SPECIALIST_RATES:
        flag = np.ones(len(ctx.sp), dtype=bool) if cond == "all" else ctx.cond(cond)
        rates.append((spec, cond, np.where(flag, r, 0.0)))
    female = ppl.female[ctx.sp]
    rates.append(("ophthalmology", "all", np.where(ctx.age >= 65, 0.6, 0.08)))
    rates.append(("obgyn", "all", np.where(female & (ctx.age >= 15) & (ctx.age < 65), 0.35, 0.0)))
    for spec, cond, rate in rates:
        rate = 1.4 * rate * np.exp(0.25 * ppl.health[ctx.sp] - 0.03) * np.where(ctx.ptype == 1, 1.2, 1.0)
        seg, day = ctx.events(rate)
        k = len(seg)
        if k == 0:
            continue
        hsa = ctx.hsa[seg]
        render = ctx.roster.pick(rng, "spec_" + spec, hsa)
        # referrals to the tertiary hospital or out of state
        hosp = _hospital_for(ctx, seg, 0.25)
        is_home = np.array([h.kind in ("pps", "cah") for h in ref.HOSPITALS])[hosp]
        away = ~is_home & (rng.random(k) < 0.6)
        if away.any():
            render[away] = ctx.roster.pick(rng, "hosp_" + spec, hosp[away])
        if cond == "all":
            primary = _draw(rng, ref.ACUTE_OFFICE_DX, k, K.ICD)
            if spec == "ophthalmology":
                primary = np.where(ctx.age[seg] >= 65, K.ICD[ref.CATARACT_DX], primary)
        else:
            primary = ppl.cond_code[ctx.sp[seg], ref.COND[cond]]
        dx = ctx.dx_rows(seg, primary.astype(np.int32))
        h = np.full((k, 2), -1, dtype=np.int32)
        h[:, 0] = _em_level(rng, k, rng.random(k) < 0.4)
        h[:, 0] = np.where(rng.random(k) < 0.25, _draw(rng, (("99203", 0.5), ("99204", 0.5)), k, K.HCPCS), h[:, 0])
        if spec == "cardiology":
            h[:, 1] = np.where(rng.random(k) < 0.5, K.HCPCS["93000"], -1)
        elif spec == "orthopedics":
            h[:, 1] = np.where(rng.random(k) < 0.3, K.HCPCS["20610"], -1)
        g.add(professional_part(ctx, "specialist", seg, day, render.astype(np.int32), dx, h, "11"))


def gen_behavioral(ctx: Ctx, g: Generated) -> None:
    """Psychotherapy, designated-agency services, and substance-use treatment programs (Part 2)."""
    rng, ppl = ctx.rng, ctx.people
    dep, anx, smi = ctx.cond("depression"), ctx.cond("anxiety"), ctx.cond("serious_mental_illness")
    engaged = rng.random(len(ctx.sp))
    rate = np.where(dep & (engaged < 0.35), 6.0, 0.0) + np.where(anx & (engaged < 0.25), 5.0, 0.0)
    seg, day = ctx.events(rate)
    k = len(seg)
    render = ctx.roster.pick(rng, "therapist", ctx.hsa[seg]).astype(np.int32)
    primary = ctx.random_condition_code(seg, ["depression", "anxiety"])
    dx = ctx.dx_rows(seg, primary)
    h = _draw(rng, (("90834", 0.55), ("90837", 0.30), ("90832", 0.10), ("90791", 0.05)), k, K.HCPCS)[:, None].astype(np.int32)
    tele = rng.random(k) < 0.3
    pos = np.where(tele, K.POS["10"], K.POS["11"]).astype(np.int32)
    g.add(office_part(ctx, "therapy", seg, day, render, dx, h, pos=pos))
    # designated mental-health agencies: serious mental illness
    seg, day = ctx.events(np.where(smi, 12.0, 0.0))
    k = len(seg)
    render = ctx.roster.pick(rng, "agency", ctx.hsa[seg]).astype(np.int32)
    dx = ctx.dx_rows(seg, ppl.cond_code[ctx.sp[seg], ref.COND["serious_mental_illness"]])
    h = np.full((k, 1), -1, dtype=np.int32)
    h[:, 0] = _draw(rng, (("H2019", 0.5), ("90834", 0.3), ("99214", 0.2)), k, K.HCPCS)
    units = np.where(h == K.HCPCS["H2019"], 4, 1).astype(np.int32)
    g.add(professional_part(ctx, "therapy", seg, day, render, dx, h, "11", units=units))
    # Part 2 programs: opioid treatment (monthly bundles) and alcohol counselling
    part2 = ppl.part2[ctx.sp]
    oud = ctx.cond("opioid_use") & part2
    aud = ctx.cond("alcohol_use") & part2 & ~oud
    seg, day = ctx.events(np.where(oud, 11.0, 0.0) + np.where(aud, 8.0, 0.0))
    k = len(seg)
    render = ctx.roster.pick(rng, "sud", ctx.hsa[seg]).astype(np.int32)
    person = ctx.sp[seg]
    is_oud = ppl.cond[person, ref.COND["opioid_use"]]
    primary = np.where(is_oud, ppl.cond_code[person, ref.COND["opioid_use"]], ppl.cond_code[person, ref.COND["alcohol_use"]])
    dx = ctx.dx_rows(seg, primary.astype(np.int32))
    h = np.full((k, 2), -1, dtype=np.int32)
    h[:, 0] = np.where(is_oud, K.HCPCS["G2067"], K.HCPCS["H0004"])
    h[:, 1] = np.where(is_oud & (rng.random(k) < 0.3), K.HCPCS["H0004"], -1)
    units = np.where(h == K.HCPCS["G2067"], 4, np.where(h == K.HCPCS["H0004"], 2, 1)).astype(np.int32)
    end = np.minimum(day + np.where(is_oud, 27, 0), ctx.w1[seg])
    g.add(professional_part(ctx, "sud_program", seg, day, render, dx, h, "11", units=units, day_end=end,
                            redacted=np.ones(k, dtype=bool)))


def gen_imaging(ctx: Ctx, g: Generated) -> None:
    rng, ppl = ctx.rng, ctx.people
    adult = ctx.age >= 18
    female = ppl.female[ctx.sp]
    kinds = (
        ("71046", "0320", np.where(adult, 0.18, 0.05), None),
        ("74177", "0350", np.where(adult, 0.06, 0.01), None),
        ("70553", "0610", np.where(adult, 0.025, 0.005), None),
        ("73721", "0610", np.where(adult, 0.025, 0.0), "M1711"),
        ("77067", "0403", np.where(female & (ctx.age >= 40) & (ctx.age < 75), 0.55, 0.0), ref.SCREENING_MAMMOGRAPHY_DX),
    )
    for hc, rev, rate, dxcode in kinds:
        seg, day = ctx.events(rate * np.exp(0.2 * ppl.health[ctx.sp]))
        k = len(seg)
        if k == 0:
            continue
        hosp = _hospital_for(ctx, seg)
        if dxcode is None:
            cc = ctx.random_condition_code(seg)
            primary = np.where(cc >= 0, cc, _draw(rng, ref.ED_DX, k, K.ICD))
        else:
            primary = np.full(k, K.ICD[dxcode])
        dx = ctx.dx_rows(seg, primary.astype(np.int32))
        h = np.full((k, 1), K.HCPCS[hc], dtype=np.int32)
        r = np.full((k, 1), K.REVENUE[rev], dtype=np.int32)
        g.add(outpatient_facility_part(ctx, "imaging", seg, day, hosp, dx, h, r))
        rad = ctx.roster.pick(rng, "hosp_radiology", hosp).astype(np.int32)
        mod = np.full((k, 1), K.MODIFIER["26"], dtype=np.int32)
        price = _prof_price(h) * 0.25
        g.add(professional_part(ctx, "imaging", seg, day, rad, dx, h, "22", mod=mod, fac=_fac_entity(ctx, hosp), price=price))


def gen_ed(ctx: Ctx, g: Generated) -> None:
    """Emergency department visits (facility + professional), ambulance, and the follow-ups that
    quality measures look for (mental health, substance use, multiple chronic conditions)."""
    rng, ppl = ctx.rng, ctx.people
    health = ppl.health[ctx.sp]
    base = ctx.age_rate({0: 0.5, 1: 0.28, 18: 0.30, 45: 0.26, 65: 0.34, 75: 0.52})
    rate = base * np.where(ctx.ptype == 1, 1.9, 1.0) * np.exp(0.4 * health - 0.08) * (1 + 0.12 * ppl.n_chronic[ctx.sp])
    mh_rate = 0.006 + 0.05 * ctx.cond("depression") + 0.025 * ctx.cond("anxiety") + 0.30 * ctx.cond("serious_mental_illness")
    sud_rate = 0.22 * ctx.cond("alcohol_use") + 0.30 * ctx.cond("opioid_use")
    out = []
    for kind, r, dx_list in (("general", rate, ref.ED_DX), ("mh", mh_rate, ref.MH_ED_DX), ("sud", sud_rate, ref.SUD_ED_DX)):
        seg, day = ctx.events(r)
        primary = _draw(rng, dx_list, len(seg), K.ICD)
        if kind == "mh":
            own = ctx.random_condition_code(seg, ["depression", "anxiety", "serious_mental_illness"])
            primary = np.where((own >= 0) & (rng.random(len(seg)) < 0.5), own, primary)
        if kind == "sud":
            own = ctx.random_condition_code(seg, ["alcohol_use", "opioid_use"])
            primary = np.where((own >= 0) & (rng.random(len(seg)) < 0.3), own, primary)
        out.append((kind, seg, day, primary.astype(np.int32)))
    seg = np.concatenate([o[1] for o in out])
    day = np.concatenate([o[2] for o in out])
    primary = np.concatenate([o[3] for o in out])
    ed_kind = np.concatenate([np.full(len(o[1]), i) for i, o in enumerate(out)])
    k = len(seg)
    if k == 0:
        return
    hosp = _hospital_for(ctx, seg, 0.05)
    dx = ctx.dx_rows(seg, primary)
    level = _draw(rng, (("99281", 0.05), ("99282", 0.12), ("99283", 0.35), ("99284", 0.30), ("99285", 0.18)), k, K.HCPCS)
    h = np.full((k, 5), -1, dtype=np.int32)
    r = np.full((k, 5), -1, dtype=np.int32)
    h[:, 0], r[:, 0] = level, K.REVENUE["0450"]
    lab = rng.random(k) < 0.55
    h[:, 1] = np.where(lab, K.HCPCS["80053"], -1)
    r[:, 1] = np.where(lab, K.REVENUE["0300"], -1)
    img = rng.random(k)
    h[:, 2] = np.where(img < 0.25, K.HCPCS["71046"], np.where(img < 0.40, K.HCPCS["74177"], -1))
    r[:, 2] = np.where(img < 0.25, K.REVENUE["0320"], np.where(img < 0.40, K.REVENUE["0350"], -1))
    r[:, 3] = np.where(rng.random(k) < 0.45, K.REVENUE["0250"], -1)
    r[:, 4] = np.where(rng.random(k) < 0.10, K.REVENUE["0636"], -1)
    g.add(outpatient_facility_part(ctx, "ed_facility", seg, day, hosp, dx, h, r))
    doc = ctx.roster.pick(rng, "hosp_emergency_medicine", hosp).astype(np.int32)
    hp = np.full((k, 1), -1, dtype=np.int32)
    hp[:, 0] = level
    g.add(professional_part(ctx, "ed_professional", seg, day, doc, dx, hp, "23", fac=_fac_entity(ctx, hosp)))
    # ambulance
    amb = rng.random(k) < np.where(ctx.age[seg] >= 65, 0.30, 0.08)
    if amb.any():
        s = np.nonzero(amb)[0]
        supplier = ctx.roster.pick(rng, "ambulance", ctx.hsa[seg[s]]).astype(np.int32)
        ha = np.full((len(s), 2), -1, dtype=np.int32)
        ha[:, 0], ha[:, 1] = K.HCPCS["A0427"], K.HCPCS["A0425"]
        ua = np.ones((len(s), 2), dtype=np.int32)
        ua[:, 1] = 4 + (rng.random(len(s)) * 20).astype(np.int32)
        p = professional_part(ctx, "ambulance", seg[s], day[s], supplier, dx[s], ha, "41", units=ua)
        p.render = _full(len(s), -1)
        g.add(p)
    # follow-ups
    mh = ed_kind == 1
    u = rng.random(k)
    delay = np.where(u < 0.45, 1 + (rng.random(k) * 7).astype(np.int64), 8 + (rng.random(k) * 23).astype(np.int64))
    fu_mh = mh & (u < 0.65)
    sud = ed_kind == 2
    fu_sud = sud & (rng.random(k) < 0.35)
    delay_sud = 1 + (rng.random(k) * 30).astype(np.int64)
    chronic2 = (ppl.n_chronic[ctx.sp[seg]] >= 2) & (ed_kind == 0)
    fu_fmc = chronic2 & (rng.random(k) < 0.45)
    delay_fmc = 1 + (rng.random(k) * 7).astype(np.int64)
    for name, sel, dl in (("mh_followup", fu_mh, delay), ("sud_followup", fu_sud, delay_sud), ("ed_followup", fu_fmc, delay_fmc)):
        s = np.nonzero(sel)[0]
        fs, fd = seg[s], day[s] + dl[s]
        ok = _in_window(ctx, fs, fd)
        s, fs, fd = s[ok], fs[ok], fd[ok]
        n = len(s)
        if n == 0:
            continue
        person = ctx.sp[fs]
        pcp = np.where(ppl.pcp[person] >= 0, ppl.pcp[person], ctx.roster.pick(rng, "pcp_any", ctx.hsa[fs])).astype(np.int32)
        h1 = np.full((n, 1), -1, dtype=np.int32)
        red = np.zeros(n, dtype=bool)
        if name == "mh_followup":
            render = np.where(rng.random(n) < 0.7, ctx.roster.pick(rng, "therapist", ctx.hsa[fs]), pcp).astype(np.int32)
            h1[:, 0] = np.where(render == pcp, K.HCPCS["99214"], K.HCPCS["90834"])
        elif name == "sud_followup":
            p2 = ppl.part2[person]
            render = np.where(p2, ctx.roster.pick(rng, "sud", ctx.hsa[fs]), pcp).astype(np.int32)
            h1[:, 0] = np.where(p2, K.HCPCS["H0004"], K.HCPCS["99214"])
            red = p2
        else:
            render = pcp
            h1[:, 0] = _em_level(rng, n, np.ones(n, dtype=bool))
        fdx = dx[s]
        g.add(office_part(ctx, name, fs, fd, render, fdx, h1, redacted=red))


ADMISSION_REASONS = (
    ("chf", 0.35), ("copd", 0.22), ("diabetes", 0.03), ("ckd", 0.06), ("cad", 0.05), ("serious_mental_illness", 0.20),
    ("depression", 0.02), ("alcohol_use", 0.12), ("opioid_use", 0.08), ("cancer", 0.25), ("osteoarthritis", 0.04),
)


def _drg_draw(rng, reason_items, k) -> np.ndarray:
    return _draw(rng, reason_items, k, K.DRG)


def gen_inpatient(ctx: Ctx, g: Generated) -> None:
    rng, ppl = ctx.rng, ctx.people
    health = ppl.health[ctx.sp]
    base = ctx.age_rate({0: 0.03, 1: 0.008, 18: 0.022, 45: 0.04, 65: 0.075, 75: 0.15})
    general = base * np.exp(0.6 * health - 0.18) * (1 + 0.15 * ppl.n_chronic[ctx.sp])
    segs_l, days_l, drg_l, terminal_l = [], [], [], []
    seg, day = ctx.events(general)
    segs_l.append(seg), days_l.append(day), drg_l.append(_drg_draw(rng, ref.ADMISSION_DRGS["general"], len(seg)))
    terminal_l.append(np.zeros(len(seg), dtype=bool))
    for cond, r in ADMISSION_REASONS:
        seg, day = ctx.events(np.where(ctx.cond(cond), r, 0.0) * np.exp(0.4 * health - 0.08))
        segs_l.append(seg), days_l.append(day), drg_l.append(_drg_draw(rng, ref.ADMISSION_DRGS[cond], len(seg)))
        terminal_l.append(np.zeros(len(seg), dtype=bool))
    # deliveries
    female = ppl.female[ctx.sp]
    preg = np.where(female & (ctx.age >= 16) & (ctx.age < 45), np.where(ctx.ptype == 1, 0.07, 0.05), 0.0)
    seg, day = ctx.events(preg)
    segs_l.append(seg), days_l.append(day)
    drg_l.append(np.where(rng.random(len(seg)) < 0.3, K.DRG["788"], K.DRG["807"]).astype(np.int32))
    terminal_l.append(np.zeros(len(seg), dtype=bool))
    deliv_seg, deliv_day = seg, day
    # newborns: a birth stay on the day of birth for people born during the span
    born = (ppl.birth[ctx.sp] >= ctx.w0) & (ppl.birth[ctx.sp] <= ctx.w1) & (ppl.birth[ctx.sp] == ctx.segs.start)
    seg = np.nonzero(born)[0]
    segs_l.append(seg), days_l.append(ppl.birth[ctx.sp[seg]]), drg_l.append(np.full(len(seg), K.DRG["795"], dtype=np.int32))
    terminal_l.append(np.zeros(len(seg), dtype=bool))
    # end-of-life stays for people who die
    death = ppl.death[ctx.sp]
    dies_here = (death >= ctx.w0) & (death <= ctx.w1) & (death == ctx.w1)
    seg = np.nonzero(dies_here & (rng.random(len(ctx.sp)) < 0.55))[0]
    segs_l.append(seg), days_l.append(death[seg]), drg_l.append(_drg_draw(rng, (("871", 0.4), ("291", 0.2), ("207", 0.15), ("064", 0.1), ("193", 0.15)), len(seg)))
    terminal_l.append(np.ones(len(seg), dtype=bool))

    seg = np.concatenate(segs_l)
    day = np.concatenate(days_l)
    drg = np.concatenate(drg_l).astype(np.int32)
    terminal = np.concatenate(terminal_l)
    # readmissions within 30 days
    medicare = ctx.ptype[seg] == 0
    los = _los(rng, drg)
    readm = (~terminal) & (drg != K.DRG["795"]) & (rng.random(len(seg)) < np.where(medicare, 0.14, 0.09))
    rs = np.nonzero(readm)[0]
    r_seg = seg[rs]
    r_day = day[rs] + los[rs] + 1 + (rng.random(len(rs)) * 29).astype(np.int64)
    r_drg = np.where(rng.random(len(rs)) < 0.6, drg[rs], _drg_draw(rng, ref.ADMISSION_DRGS["general"], len(rs))).astype(np.int32)
    seg = np.concatenate([seg, r_seg])
    day = np.concatenate([day, r_day])
    drg = np.concatenate([drg, r_drg])
    terminal = np.concatenate([terminal, np.zeros(len(rs), dtype=bool)])
    los = np.concatenate([los, _los(rng, r_drg)])
    # fit the stay inside the service window
    adm = np.where(terminal, day - los, day)
    adm = np.maximum(adm, ctx.w0[seg])
    dis = adm + los
    over = dis > ctx.w1[seg]
    dis = np.minimum(dis, ctx.w1[seg])
    keep = (adm <= ctx.w1[seg]) & (dis >= adm) & ~(over & ~terminal & (dis - adm < 1))
    seg, adm, dis, drg, terminal = seg[keep], adm[keep], dis[keep], drg[keep], terminal[keep]
    k = len(seg)
    if k == 0:
        return
    los = np.maximum(dis - adm, 1)
    complex_ = (K.DRG_WEIGHT[drg] > 1.8).astype(float)
    hosp = _hospital_for(ctx, seg, complex_)
    newborn = drg == K.DRG["795"]
    primary = K.DRG_DX[drg]
    dx = ctx.dx_rows(seg, primary.astype(np.int32))
    # revenue lines
    S = 8
    r = np.full((k, S), -1, dtype=np.int32)
    units = np.ones((k, S), dtype=np.int32)
    icu = (rng.random(k) < 0.2) & ~newborn
    icu_days = np.minimum(1 + (rng.random(k) * 3).astype(np.int32), los)
    r[:, 0] = K.REVENUE["0120"]
    units[:, 0] = np.where(icu, np.maximum(los - icu_days, 1), los)
    r[:, 1] = np.where(icu, K.REVENUE["0200"], -1)
    units[:, 1] = np.where(icu, icu_days, 1)
    r[:, 2] = K.REVENUE["0250"]
    r[:, 3] = K.REVENUE["0300"]
    r[:, 4] = np.where(rng.random(k) < 0.6, K.REVENUE["0320"], -1)
    surgical = K.DRG_SURGICAL[drg]
    r[:, 5] = np.where(surgical, K.REVENUE["0360"], -1)
    via_ed = ~surgical & ~newborn & (rng.random(k) < 0.5) & ~np.isin(drg, K.DRG.arr(["807", "788"]))
    r[:, 6] = np.where(via_ed, K.REVENUE["0450"], -1)
    r[:, 7] = np.where(rng.random(k) < np.where(ctx.age[seg] >= 65, 0.4, 0.1), K.REVENUE["0420"], -1)
    r[newborn, 2:] = -1
    charge_w = K.REV_CHARGE_ARR[np.maximum(r, 0)] * units * (r >= 0)
    outlier = rng.lognormal(0.0, 0.30, k) * np.where(rng.random(k) < 0.04, 1.5 + rng.random(k) * 3.5, 1.0)
    drg_pay = K.DRG_WEIGHT[drg] * ref.DRG_BASE_RATE * _hfac(hosp) * outlier
    fac = _fac_entity(ctx, hosp)
    attending = ctx.roster.pick(rng, "hosp_hospitalist", hosp).astype(np.int32)
    disch = np.where(terminal, K.DISCHARGE["20"], _draw(rng, (("01", 0.66), ("06", 0.13), ("03", 0.15), ("02", 0.04), ("07", 0.02)), k, K.DISCHARGE))
    disch = np.where(newborn, K.DISCHARGE["01"], disch).astype(np.int32)
    atype = np.where(newborn, K.ADMIT_TYPE["4"], np.where(via_ed, K.ADMIT_TYPE["1"], np.where(surgical, K.ADMIT_TYPE["3"], K.ADMIT_TYPE["2"])))
    src = np.where(rng.random(k) < 0.04, K.ADMIT_SOURCE["4"], np.where(via_ed | newborn, K.ADMIT_SOURCE["1"], K.ADMIT_SOURCE["2"]))
    hcpcs = np.full((k, S), -1, dtype=np.int32)
    g.add(Part(
        kind=KIND["inpatient"], seg=seg, ctype=INST, start=adm, end=dis, render=attending, bill=fac, fac=fac, dx=dx,
        pclass=PC_INP, hcpcs=hcpcs, rev=r, units=units, price=charge_w, mask=r >= 0, bill_type=_full(k, K.BILL_TYPE["111"]),
        adm=adm, dis=dis, src=src.astype(np.int32), atype=atype.astype(np.int32), disch=disch, drg=drg, hfac=_hfac(hosp),
        drg_pay=drg_pay,
    ))
    # hospitalist / pediatrician professional claim: initial, subsequent days, discharge
    h = np.full((k, 3), -1, dtype=np.int32)
    h[:, 0] = np.where(newborn, K.HCPCS["99460"], _draw(rng, (("99222", 0.5), ("99223", 0.5)), k, K.HCPCS))
    h[:, 1] = np.where(los >= 3, _draw(rng, (("99231", 0.3), ("99232", 0.5), ("99233", 0.2)), k, K.HCPCS), -1)
    h[:, 2] = np.where(terminal, -1, K.HCPCS["99238"])
    u = np.ones((k, 3), dtype=np.int32)
    u[:, 1] = np.maximum(los - 2, 1)
    ls = np.stack([adm, adm + 1, dis], axis=1)
    le = np.stack([adm, np.maximum(dis - 1, adm + 1), dis], axis=1)
    g.add(professional_part(ctx, "inpatient_professional", seg, adm, attending, dx, h, "21", units=u, fac=fac,
                            day_end=dis, lstart=ls, lend=le))
    # surgeon and anesthesia for surgical stays, obstetric care for deliveries
    s = np.nonzero(surgical | np.isin(drg, K.DRG.arr(["807"])))[0]
    if len(s):
        proc = np.where(drg[s] == K.DRG["807"], K.HCPCS["59400"], K.DRG_PROC[drg[s]]).astype(np.int32)
        spec_pool = np.where(np.isin(drg[s], K.DRG.arr(["807", "788"])), 1, np.where(np.isin(drg[s], K.DRG.arr(["470", "460"])), 2, 0))
        surgeon = np.where(spec_pool == 1, ctx.roster.pick(rng, "hosp_obgyn", hosp[s]),
                           np.where(spec_pool == 2, ctx.roster.pick(rng, "hosp_orthopedics", hosp[s]),
                                    ctx.roster.pick(rng, "hosp_general_surgery", hosp[s]))).astype(np.int32)
        sday = adm[s]
        hs = proc[:, None]
        g.add(professional_part(ctx, "inpatient_professional", seg[s], sday, surgeon, dx[s], hs, "21", fac=fac[s]))
        anes = ctx.roster.pick(rng, "hosp_anesthesiology", hosp[s]).astype(np.int32)
        ha = np.where(np.isin(drg[s], K.DRG.arr(["470"])), K.HCPCS["01402"], K.HCPCS["00790"]).astype(np.int32)[:, None]
        g.add(professional_part(ctx, "inpatient_professional", seg[s], sday, anes, dx[s], ha, "21", fac=fac[s]))
    # skilled nursing after discharge to SNF
    snf = np.nonzero(disch == K.DISCHARGE["03"])[0]
    if len(snf):
        sseg = seg[snf]
        sadm = dis[snf]
        slos = np.minimum(5 + rng.poisson(15, len(snf)), 60)
        sdis = np.minimum(sadm + slos, ctx.w1[sseg])
        ok = sdis > sadm
        snf, sseg, sadm, sdis = snf[ok], sseg[ok], sadm[ok], sdis[ok]
        n = len(snf)
        if n:
            days = (sdis - sadm).astype(np.int32)
            fac_s = ctx.roster.pick(rng, "snf", ctx.hsa[sseg]).astype(np.int32)
            rr = np.full((n, 3), -1, dtype=np.int32)
            rr[:, 0], rr[:, 1], rr[:, 2] = K.REVENUE["0120"], K.REVENUE["0250"], K.REVENUE["0420"]
            uu = np.ones((n, 3), dtype=np.int32)
            uu[:, 0] = days
            uu[:, 2] = np.maximum(days // 2, 1)
            price = np.zeros((n, 3))
            price[:, 0] = ref.SNF_PER_DIEM * days
            price[:, 1] = 15.0 * days
            price[:, 2] = 0.0
            g.add(Part(
                kind=KIND["snf"], seg=sseg, ctype=INST, start=sadm, end=sdis, render=_full(n, -1), bill=fac_s, fac=fac_s,
                dx=dx[snf], pclass=PC_POST, hcpcs=np.full((n, 3), -1, dtype=np.int32), rev=rr, units=uu, price=price,
                mask=rr >= 0, bill_type=_full(n, K.BILL_TYPE["211"]), adm=sadm, dis=sdis,
                src=_full(n, K.ADMIT_SOURCE["4"]), atype=_full(n, K.ADMIT_TYPE["3"]),
                disch=_full(n, K.DISCHARGE["01"]),
            ))
    # prenatal visits before deliveries
    if len(deliv_seg):
        reps = 4
        pseg = np.repeat(deliv_seg, reps)
        pday = np.repeat(deliv_day, reps) - (30 + (rng.random(len(pseg)) * 200).astype(np.int64))
        ok = _in_window(ctx, pseg, pday)
        pseg, pday = pseg[ok], pday[ok]
        n = len(pseg)
        ob = ctx.roster.pick(rng, "spec_obgyn", ctx.hsa[pseg]).astype(np.int32)
        hpn = _em_level(rng, n, np.zeros(n, dtype=bool))[:, None].astype(np.int32)
        g.add(professional_part(ctx, "prenatal", pseg, pday, ob, ctx.dx_rows(pseg, np.full(n, K.ICD[ref.PREGNANCY_DX], dtype=np.int32)), hpn, "11"))


def _los(rng, drg) -> np.ndarray:
    alos = K.DRG_ALOS[drg]
    return np.clip(1 + rng.poisson(np.maximum(alos - 1, 0.2)), 1, 45).astype(np.int64)


def gen_chronic_services(ctx: Ctx, g: Generated) -> None:
    """Dialysis, home oxygen, oncology infusions, outpatient procedures and physical therapy."""
    rng, ppl = ctx.rng, ctx.people
    span = ctx.span
    # monthly claims: one per covered calendar month
    def monthly(flag):
        m0 = span.month_of(ctx.w0)
        m1 = span.month_of(ctx.w1)
        cnt = np.where(flag & (ctx.w1 >= ctx.w0), m1 - m0 + 1, 0)
        seg = np.repeat(np.arange(len(cnt)), cnt)
        first = np.repeat(np.cumsum(cnt) - cnt, cnt)
        m = m0[seg] + (np.arange(len(seg)) - first)
        s = np.maximum(span.month_start(m), ctx.w0[seg]).astype(np.int64)
        e = np.minimum(span.month_start(m + 1) - 1, ctx.w1[seg]).astype(np.int64)
        return seg, s, e

    dialysis = ctx.cond("esrd") & (rng.random(len(ctx.sp)) < 0.85)
    seg, s, e = monthly(dialysis)
    n = len(seg)
    if n:
        fac = ctx.roster.pick(rng, "dialysis", ctx.hsa[seg]).astype(np.int32)
        sessions = np.maximum(((e - s + 1) * 13 / 30).astype(np.int32), 1)
        h = np.full((n, 1), K.HCPCS["90999"], dtype=np.int32)
        r = np.full((n, 1), K.REVENUE["0821"], dtype=np.int32)
        u = sessions[:, None]
        price = ref.PROF_PRICE["90999"] * u.astype(float)
        dx = ctx.dx_rows(seg, np.full(n, K.ICD["N186"], dtype=np.int32))
        dx[:, 1] = K.ICD[ref.DIALYSIS_DX]
        g.add(Part(kind=KIND["dialysis"], seg=seg, ctype=INST, start=s, end=e, render=_full(n, -1), bill=fac, fac=fac, dx=dx,
                   pclass=PC_OUT, hcpcs=h, rev=r, units=u, price=price, mask=r >= 0, bill_type=_full(n, K.BILL_TYPE["721"]),
                   hfac=np.ones(n)))
    # personal care (home and community-based services) for some Medicaid aged/blind/disabled members
    hcbs = (ctx.segs.aid == 3) & (rng.random(len(ctx.sp)) < 0.35)
    seg, s, e = monthly(hcbs)
    n = len(seg)
    if n:
        agency = ctx.roster.pick(rng, "home_care", ctx.hsa[seg]).astype(np.int32)
        h = np.full((n, 1), K.HCPCS["T1019"], dtype=np.int32)
        u = np.maximum(((e - s + 1) * rng.lognormal(np.log(3.5), 0.4, n)).astype(np.int32), 1)[:, None]
        cc = ctx.random_condition_code(seg)
        dx = ctx.dx_rows(seg, np.where(cc >= 0, cc, K.ICD["R531"]).astype(np.int32))
        p = professional_part(ctx, "home_care", seg, s, agency, dx, h, "12", units=u, day_end=e)
        p.render = _full(n, -1)
        g.add(p)
    oxygen = ctx.cond("copd") & (rng.random(len(ctx.sp)) < 0.2)
    seg, s, e = monthly(oxygen)
    n = len(seg)
    if n:
        sup = ctx.roster.pick(rng, "dme", ctx.hsa[seg]).astype(np.int32)
        h = np.full((n, 1), K.HCPCS["E1390"], dtype=np.int32)
        dx = ctx.dx_rows(seg, ppl.cond_code[ctx.sp[seg], ref.COND["copd"]])
        p = professional_part(ctx, "dme", seg, s, sup, dx, h, "12", day_end=e, ctype=DME)
        p.render = _full(n, -1)
        g.add(p)
    # oncology infusions at the hospital
    seg, day = ctx.events(np.where(ctx.cond("cancer"), 4.0, 0.0))
    n = len(seg)
    if n:
        hosp = _hospital_for(ctx, seg, 0.3)
        drug = _draw(rng, (("J9271", 0.3), ("J9355", 0.35), ("J9045", 0.35)), n, K.HCPCS)
        units = np.where(drug == K.HCPCS["J9271"], 200, np.where(drug == K.HCPCS["J9355"], 42, 10)).astype(np.int32)
        h = np.full((n, 2), -1, dtype=np.int32)
        r = np.full((n, 2), -1, dtype=np.int32)
        u = np.ones((n, 2), dtype=np.int32)
        h[:, 0], r[:, 0], u[:, 0] = drug, K.REVENUE["0636"], units
        h[:, 1], r[:, 1] = K.HCPCS["96413"], K.REVENUE["0335"]
        dx = ctx.dx_rows(seg, ppl.cond_code[ctx.sp[seg], ref.COND["cancer"]])
        price = np.zeros((n, 2))
        price[:, 0] = K.PROF_PRICE_ARR[drug] * units
        price[:, 1] = K.REV_PRICE_ARR[K.REVENUE["0335"]]
        g.add(outpatient_facility_part(ctx, "infusion", seg, day, hosp, dx, h, r, units=u, price=price))
    # outpatient procedures
    age = ctx.age
    procs = (
        ("45378", "0750", "gastroenterology", np.where((age >= 45) & (age < 76), 0.09, 0.0), ref.SCREENING_COLONOSCOPY_DX, "00811"),
        ("66984", "0490", "ophthalmology", np.where(age >= 65, 0.03, 0.0), ref.CATARACT_DX, "00142"),
        ("29881", "0360", "orthopedics", np.where(ctx.cond("osteoarthritis"), 0.04, 0.004), "M1711", "01402"),
    )
    for hc, rev, spec, rate, dxc, anes_code in procs:
        seg, day = ctx.events(rate)
        n = len(seg)
        if n == 0:
            continue
        hosp = _hospital_for(ctx, seg)
        dx = ctx.dx_rows(seg, np.full(n, K.ICD[dxc], dtype=np.int32))
        h = np.full((n, 1), K.HCPCS[hc], dtype=np.int32)
        r = np.full((n, 1), K.REVENUE[rev], dtype=np.int32)
        g.add(outpatient_facility_part(ctx, "outpatient_procedure", seg, day, hosp, dx, h, r))
        doc = ctx.roster.pick(rng, "hosp_" + spec, hosp).astype(np.int32)
        g.add(professional_part(ctx, "outpatient_procedure", seg, day, doc, dx, h, "22", fac=_fac_entity(ctx, hosp)))
        an = ctx.roster.pick(rng, "hosp_anesthesiology", hosp).astype(np.int32)
        ha = np.full((n, 1), K.HCPCS[anes_code], dtype=np.int32)
        g.add(professional_part(ctx, "outpatient_procedure", seg, day, an, dx, ha, "22", fac=_fac_entity(ctx, hosp)))
    # physical therapy episodes: an evaluation and treatment visits
    seg, day = ctx.events(np.where(ctx.age >= 18, 0.05, 0.005) + np.where(ctx.cond("osteoarthritis"), 0.1, 0.0))
    n = len(seg)
    if n:
        visits = 6
        pseg = np.repeat(seg, visits)
        pday = np.repeat(day, visits) + np.tile(np.arange(visits) * 7, n)
        ok = _in_window(ctx, pseg, pday)
        pseg, pday = pseg[ok], pday[ok]
        first = np.r_[True, (pseg[1:] != pseg[:-1]) | (np.diff(pday) != 7)]
        m = len(pseg)
        pt = ctx.roster.pick(rng, "physical_therapist", ctx.hsa[pseg]).astype(np.int32)
        h = np.where(first, K.HCPCS["97161"], K.HCPCS["97110"]).astype(np.int32)[:, None]
        u = np.where(first, 1, 2).astype(np.int32)[:, None]
        cc = ctx.random_condition_code(pseg, ["osteoarthritis"])
        primary = np.where(cc >= 0, cc, K.ICD["M5450"]).astype(np.int32)
        g.add(office_part(ctx, "physical_therapy", pseg, pday, pt, ctx.dx_rows(pseg, primary), h, units_slots=u))


def generate_parts(ctx: Ctx) -> Generated:
    g = Generated()
    vseg, vday = gen_primary_care(ctx, g)
    gen_preventive(ctx, g)
    gen_labs(ctx, g, vseg, vday)
    gen_specialists(ctx, g)
    gen_behavioral(ctx, g)
    gen_imaging(ctx, g)
    gen_ed(ctx, g)
    gen_inpatient(ctx, g)
    gen_chronic_services(ctx, g)
    from allpayer.synth.coding import gen_medicare_chronic_coding

    gen_medicare_chronic_coding(ctx, g)
    return g


# ---------------------------------------------------------------------------------------------
# assembly
# ---------------------------------------------------------------------------------------------


@dataclass
class MedicalLines:
    """Claim lines of one chunk, ready to be written (integer codes, int cents, day numbers)."""

    claim: np.ndarray  # chunk-local claim number
    line: np.ndarray
    adj_seq: np.ndarray
    seg: np.ndarray
    ctype: np.ndarray
    start: np.ndarray
    end: np.ndarray
    lstart: np.ndarray
    lend: np.ndarray
    adm: np.ndarray
    dis: np.ndarray
    src: np.ndarray
    atype: np.ndarray
    disch: np.ndarray
    pos: np.ndarray
    bill_type: np.ndarray
    drg: np.ndarray
    rev: np.ndarray
    units: np.ndarray
    hcpcs: np.ndarray
    mod: np.ndarray
    render: np.ndarray
    bill: np.ndarray
    fac: np.ndarray
    paid_date: np.ndarray
    paid: np.ndarray
    allowed: np.ndarray
    charge: np.ndarray
    coins: np.ndarray
    copay: np.ndarray
    deduct: np.ndarray
    dx: np.ndarray  # (L, 5)
    poa1: np.ndarray
    in_network: np.ndarray
    arrangement: np.ndarray
    denied: np.ndarray
    redacted: np.ndarray
    kind: np.ndarray
    n_claims: int = 0
    bp_claims: np.ndarray | None = None
    a1c_claims: np.ndarray | None = None
    claim_start: np.ndarray | None = None  # per claim (after any shift)
    claim_seg: np.ndarray | None = None
    claim_render: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.claim)


LINE_FIELDS = (
    "claim", "line", "adj_seq", "seg", "ctype", "start", "end", "lstart", "lend", "adm", "dis", "src", "atype", "disch",
    "pos", "bill_type", "drg", "rev", "units", "hcpcs", "mod", "render", "bill", "fac", "paid_date", "paid", "allowed",
    "charge", "coins", "copay", "deduct", "dx", "poa1", "in_network", "arrangement", "denied", "redacted", "kind",
)


def _cat(parts: list[Part], name: str, default=-1, dtype=np.int32):
    """Concatenate one claim-level field over the parts (parts without it get `default`)."""
    out = [getattr(p, name) if getattr(p, name) is not None else np.full(p.k, default, dtype=dtype) for p in parts]
    return np.concatenate(out) if out else np.zeros(0, dtype=dtype)


def assemble(ctx: Ctx, g: Generated) -> MedicalLines:
    """Stack the parts into claim lines and price them."""
    rng = ctx.rng
    parts = g.parts
    claim_off = np.cumsum([0] + [p.k for p in parts])
    kc = int(claim_off[-1])
    # claim-level arrays
    seg = np.concatenate([p.seg for p in parts]).astype(np.int64)
    ctype = np.concatenate([np.full(p.k, p.ctype, dtype=np.int8) for p in parts])
    kind = np.concatenate([np.full(p.k, p.kind, dtype=np.int8) for p in parts])
    pclass = np.concatenate([np.full(p.k, p.pclass, dtype=np.int8) for p in parts])
    start = np.concatenate([p.start for p in parts]).astype(np.int64)
    end = np.concatenate([p.end for p in parts]).astype(np.int64)
    render = _cat(parts, "render")
    bill = _cat(parts, "bill")
    fac = _cat(parts, "fac")
    dx = np.concatenate([p.dx for p in parts]).astype(np.int32)
    pos = _cat(parts, "pos")
    bill_type = _cat(parts, "bill_type")
    adm = _cat(parts, "adm", dtype=np.int64)
    dis = _cat(parts, "dis", dtype=np.int64)
    src = _cat(parts, "src")
    atype = _cat(parts, "atype")
    disch = _cat(parts, "disch")
    drg = _cat(parts, "drg")
    hfac = _cat(parts, "hfac", default=1.0, dtype=np.float64)
    drg_pay = _cat(parts, "drg_pay", default=0.0, dtype=np.float64)
    redacted = _cat(parts, "redacted", default=False, dtype=bool)

    # --- a few claims outside any enrollment span (valid data the loader flags) -----------------
    eligible = (ctx.free_after[seg] >= 30) & (ctype != INST)
    n_el = int(eligible.sum())
    shift = np.zeros(kc, dtype=np.int64)
    if n_el:
        p_shift = min(1.0, OUTSIDE_SPAN_RATE * kc / n_el)
        pick = eligible & (rng.random(kc) < p_shift)
        new_start = ctx.segs.end[seg] + 1 + (rng.random(kc) * 20).astype(np.int64)
        shift = np.where(pick, new_start - start, 0)
        shift = np.where(pick & (end + shift > ctx.span.end_day), 0, shift)
    start, end = start + shift, end + shift
    adm = np.where(adm >= 0, adm + shift, adm)
    dis = np.where(dis >= 0, dis + shift, dis)

    # line-level: flatten (claim, slot) masks part by part
    l_claim, l_h, l_r, l_u, l_p, l_m, l_ls, l_le = [], [], [], [], [], [], [], []
    for pi, p in enumerate(parts):
        rows, cols = np.nonzero(p.mask)
        l_claim.append(claim_off[pi] + rows)
        l_h.append(p.hcpcs[rows, cols])
        l_r.append(p.rev[rows, cols])
        l_u.append(p.units[rows, cols])
        l_p.append(p.price[rows, cols])
        l_m.append(p.mod[rows, cols] if p.mod is not None else np.full(len(rows), -1, dtype=np.int32))
        l_ls.append(p.lstart[rows, cols] if p.lstart is not None else p.start[rows])
        l_le.append(p.lend[rows, cols] if p.lend is not None else p.end[rows])
    lc = np.concatenate(l_claim).astype(np.int64)
    hc = np.concatenate(l_h).astype(np.int32)
    rv = np.concatenate(l_r).astype(np.int32)
    un = np.concatenate(l_u).astype(np.int32)
    base = np.concatenate(l_p).astype(np.float64)
    md = np.concatenate(l_m).astype(np.int32)
    ls = np.concatenate(l_ls).astype(np.int64)
    le = np.concatenate(l_le).astype(np.int64)
    L = len(lc)
    # line numbers: lines of a claim are contiguous and in slot order
    first = np.r_[0, np.nonzero(np.diff(lc))[0] + 1]
    counts = np.diff(np.r_[first, L])
    line_no = (np.arange(L) - np.repeat(first, counts) + 1).astype(np.int32)

    # --- pricing -----------------------------------------------------------------------------
    ptype = ctx.ptype[seg]
    lptype = ptype[lc]
    lclass = pclass[lc]
    factor_tbl = np.array([ref.PAYER_PRICE_FACTOR[pt] for pt in ("medicare", "medicaid", "commercial", "self_funded")])
    pay_factor = factor_tbl[lptype, lclass] * CALIBRATION[lptype]
    claim_noise = rng.lognormal(0.0, 0.10, kc)
    line_noise = rng.lognormal(0.0, 0.05, L)
    facility_class = (lclass == PC_OUT) | (lclass == PC_POST) | (lclass == PC_CLINIC)
    hf = np.where(facility_class, hfac[lc], 1.0)
    allowed_f = base * pay_factor * hf * claim_noise[lc] * line_noise
    allowed = np.rint(allowed_f * 100).astype(np.int64)
    # inpatient: DRG payment split over lines by charge weight
    inp = lclass == PC_INP
    if inp.any():
        claim_pay = np.rint(drg_pay * factor_tbl[ptype, PC_INP] * CALIBRATION[ptype] * 100).astype(np.int64)
        w = np.where(inp, base, 0.0)
        wsum = np.bincount(lc, weights=w, minlength=kc)
        share = np.where(inp, w / np.maximum(wsum[lc], 1e-9), 0.0)
        alloc = np.floor(share * claim_pay[lc]).astype(np.int64)
        rem = claim_pay - np.bincount(lc, weights=alloc, minlength=kc).astype(np.int64)
        first_line = np.zeros(L, dtype=bool)
        first_line[first] = True
        alloc = alloc + np.where(first_line & inp, rem[lc], 0)
        allowed = np.where(inp, alloc, allowed)
    markup = np.where(lclass == PC_PROF, 2.0, 2.9)
    charge_base = np.where(inp, base * hf * rng.lognormal(0.0, 0.15, L), base * hf * markup * line_noise)
    charge = np.maximum(np.rint(charge_base * 100).astype(np.int64), allowed)

    # --- payment arrangement from the roster (shadow claims) --------------------------------------
    ent = np.where(ctype == INST, fac, np.where(render >= 0, render, bill))
    period = np.clip(np.searchsorted(PERIOD_START_DAYS, start, side="right") - 1, 0, len(PERIOD_START_DAYS) - 1)
    payer = ctx.payer[seg]
    arrangement = ctx.roster.model[ent, payer, period]
    in_net = ctx.roster.in_network[ent, payer, period]
    # Part 2 flag only for claims from Part 2 programs with a substance-use diagnosis
    redacted = redacted & ctx.roster.part2[np.where(render >= 0, render, bill)]

    # --- member cost sharing and paid amounts -----------------------------------------------------
    l_arr = arrangement[lc]
    shadow = l_arr != MODEL_CODE["ffs"]
    coins = np.zeros(L, dtype=np.int64)
    copay = np.zeros(L, dtype=np.int64)
    deduct = np.zeros(L, dtype=np.int64)
    med = lptype == 0
    com = lptype >= 2
    # Medicare: Part A inpatient deductible on the stay, 20% coinsurance elsewhere
    years = np.array(ctx.span.years)
    year_of = years[np.clip(np.searchsorted(np.array([ctx.span.year_start_day(y) for y in years]), start[lc], side="right") - 1, 0, len(years) - 1)]
    ded_amt = np.array([MEDICARE_IP_DEDUCTIBLE.get(int(y), 1632_00) for y in years])
    ded_line = ded_amt[np.searchsorted(years, year_of)]
    first_line = np.zeros(L, dtype=bool)
    first_line[first] = True
    ip_med = med & inp
    deduct = np.where(ip_med & first_line, np.minimum(ded_line, allowed), 0)
    coins = np.where(med & ~inp, np.rint(allowed * 0.2).astype(np.int64), 0)
    em_office = np.isin(hc, K.HCPCS.arr(["99202", "99203", "99204", "99205", "99211", "99212", "99213", "99214", "99215"]))
    preventive = np.isin(hc, K.HCPCS.arr(["G0438", "G0439", "99381", "99382", "99383", "99384", "99385", "99386", "99387",
                                          "99391", "99392", "99393", "99394", "99395", "99396", "99397", "77067", "45378"]))
    copay = np.where(com & em_office, np.minimum(allowed, 30_00), 0)
    coins = np.where(com & ~em_office & ~preventive, np.rint(allowed * 0.12).astype(np.int64), coins)
    coins = np.where(preventive & med, 0, coins)
    member = coins + copay + deduct
    paid = np.where(shadow, 0, allowed - member)

    # --- denials ---------------------------------------------------------------------------------
    denied_claim = rng.random(kc) < DENIAL_RATE
    denied = denied_claim[lc]
    for arr in (allowed, paid, coins, copay, deduct):
        arr[denied] = 0

    # --- paid dates ------------------------------------------------------------------------------
    lag = np.where(ctype == INST, 10 + rng.gamma(2.0, 9.0, kc), 4 + rng.gamma(2.0, 6.0, kc))
    lag = np.minimum(lag.astype(np.int64), 90)
    paid_day = end + lag

    ls, le = ls + shift[lc], le + shift[lc]

    lines = MedicalLines(
        claim=lc, line=line_no, adj_seq=np.zeros(L, dtype=np.int32), seg=seg[lc], ctype=ctype[lc], start=start[lc],
        end=end[lc], lstart=ls, lend=le, adm=adm[lc], dis=dis[lc], src=src[lc], atype=atype[lc], disch=disch[lc],
        pos=pos[lc], bill_type=bill_type[lc], drg=drg[lc], rev=rv, units=un, hcpcs=hc, mod=md, render=render[lc],
        bill=bill[lc], fac=fac[lc], paid_date=paid_day[lc], paid=paid, allowed=allowed, charge=charge, coins=coins,
        copay=copay, deduct=deduct, dx=dx[lc], poa1=(pclass[lc] == PC_INP), in_network=in_net[lc],
        arrangement=arrangement[lc].astype(np.int8), denied=denied, redacted=redacted[lc], kind=kind[lc], n_claims=kc,
    )
    lines.claim_start = start
    lines.claim_seg = seg
    lines.claim_render = render
    lines.bp_claims = np.concatenate([claim_off[pi] + rows for pi, rows in g.bp_parts]) if g.bp_parts else np.zeros(0, np.int64)
    lines.a1c_claims = np.concatenate([claim_off[pi] + rows for pi, rows in g.a1c_parts]) if g.a1c_parts else np.zeros(0, np.int64)
    return _with_adjustments(ctx, lines)


def _with_adjustments(ctx: Ctx, x: MedicalLines) -> MedicalLines:
    """Add adjustment rows (sequence 1) for about 2% of paid lines: reversals and corrections.

    They are appended after the chunk's original lines and are paid 15-75 days after the original
    (those that would be paid after the run-out are left out: not yet processed).
    """
    rng = ctx.rng
    L = x.n
    pick = (~x.denied) & (rng.random(L) < ADJUSTMENT_RATE)
    idx = np.nonzero(pick)[0]
    adj_paid = x.paid_date[idx] + 15 + (rng.random(len(idx)) * 60).astype(np.int64)
    ok = adj_paid <= ctx.span.paid_through_day
    idx, adj_paid = idx[ok], adj_paid[ok]
    n = len(idx)
    reversal = rng.random(n) < 0.5
    d = np.where(reversal, -1.0, -0.3 + rng.random(n) * 0.45)
    def delta(v):
        return np.rint(v[idx] * d).astype(np.int64)
    allowed = delta(x.allowed)
    coins, copay, deduct = delta(x.coins), delta(x.copay), delta(x.deduct)
    shadow = x.arrangement[idx] != MODEL_CODE["ffs"]
    paid = np.where(shadow, 0, allowed - coins - copay - deduct)
    paid = np.where(reversal, -x.paid[idx], paid)
    charge = np.where(reversal, -x.charge[idx], 0)
    fields = {name: getattr(x, name) for name in LINE_FIELDS}
    # adjustment rows follow the chunk's original lines
    new_vals = {"allowed": allowed, "paid": paid, "charge": charge, "coins": coins, "copay": copay, "deduct": deduct,
                "paid_date": adj_paid}
    for name, v in fields.items():
        if name == "adj_seq":
            extra = np.ones(n, dtype=v.dtype)
        elif name in new_vals:
            extra = new_vals[name].astype(v.dtype, copy=False)
        else:
            extra = v[idx]
        setattr(x, name, np.concatenate([v, extra]))
    return x
