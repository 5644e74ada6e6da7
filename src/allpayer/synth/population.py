"""People and their enrollment spans, one chunk of people at a time.

A person has a first coverage drawn from the coverage mix (`names.COVERAGE_MIX`), an age and sex
mix that depends on it (Medicare mostly 65 and over with some disabled younger people, Medicaid
younger, commercial working age with dependants), an HSA (weighted by HSA population), a latent
health score that drives chronic conditions, use of care and mortality, a primary care clinician
(most people) and, for some, a death date.

Coverage over time: most people are covered from before the span; some enter during it (births,
people moving in). While covered, a person may switch coverage (Medicaid <-> commercial, between
employers), lose coverage for a few months and come back, or leave for good; people on other
coverage move to Medicare in the month they turn 65; deaths end coverage at the end of the month of
death. Each stretch of one coverage is one eligibility row (an enrollment span).

Long-term nursing-facility residents: a few percent of the Medicare beneficiaries of 85 and over
(`LONG_STAY_85_PLUS` of the people, drawn from a stream of their own, `long_stay_residents`) have
their Medicare spans that start at 85 or over flagged ``long_term_institutional_flag``, so that the
risk scores exercise the CMS-HCC institutional segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from allpayer.synth import names
from allpayer.synth import reference as ref
from allpayer.synth.codes import ICD
from allpayer.synth.ids import prefixed_ids, scramble
from allpayer.synth.roster import Roster
from allpayer.synth.span import Span, day_number

# Coverage codes used inside the generator (not written): 0 medicare, 1 medicaid, 2 bcbsvt QHP,
# 3 mvp QHP, 4 + g self-funded employer group g.
COV_MEDICARE, COV_MEDICAID, COV_BCBSVT_QHP, COV_MVP_QHP, COV_SELF = 0, 1, 2, 3, 4
N_GROUPS = len(names.EMPLOYERS)
N_COV = COV_SELF + N_GROUPS
MAX_SEGMENTS = 5

RACES = (
    ("white", 0.915), ("black or african american", 0.014), ("asian", 0.018),
    ("american indian or alaska native", 0.004), ("other race", 0.035), ("unknown", 0.014),
)

# Annual hazard of a coverage event (switch, gap or leaving) by coverage.
EVENT_HAZARD = np.array([0.0, 0.20, 0.15, 0.15] + [0.11] * N_GROUPS)
EVENT_KIND_P = np.array([0.55, 0.30, 0.15])  # switch, gap, leave
AGE_IN_SHARE = 0.88
"""Share of people on other coverage who move to Medicare in the month they turn 65."""

OPT_OUT_P = np.array([0.025, 0.02, 0.035, 0.035] + [0.05] * N_GROUPS)
"""Share of people who opt out of data sharing, by first coverage."""

LONG_STAY_85_PLUS = 0.04
"""Share of Medicare beneficiaries aged 85 and over who are long-term nursing-facility residents
(long-term institutional status, the CMS-HCC institutional segment)."""


def _choice(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    """Vectorized categorical draw with a fixed probability vector."""
    cp = np.cumsum(np.asarray(p, dtype=np.float64))
    cp /= cp[-1]
    return np.searchsorted(cp, rng.random(size), side="right").astype(np.int64)


def _choice_rows(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n, k) probability matrix."""
    cp = np.cumsum(p, axis=1)
    cp /= cp[:, -1:]
    u = rng.random(len(p))[:, None]
    return np.minimum((u > cp).sum(axis=1), p.shape[1] - 1).astype(np.int64)


def _employer_shares() -> np.ndarray:
    s = np.array([e.share for e in names.EMPLOYERS])
    return s / s.sum()


@dataclass
class People:
    """Person-level arrays of one chunk (length n)."""

    gidx: np.ndarray  # global person number
    female: np.ndarray
    birth: np.ndarray  # day number
    hsa: np.ndarray
    zip_idx: np.ndarray
    race: np.ndarray
    health: np.ndarray  # latent score, higher = sicker
    cov0: np.ndarray  # first coverage
    disabled: np.ndarray
    cond: np.ndarray  # (n, C) bool
    cond_code: np.ndarray  # (n, C) int32 index into icd list, -1 when absent
    pcp: np.ndarray  # roster entity, -1 none
    death: np.ndarray  # day number, INT32_MAX when alive through the span
    opt_out: np.ndarray
    dual: np.ndarray
    part2: np.ndarray  # treated in a Part 2 substance-use program
    n_chronic: np.ndarray
    long_stay: np.ndarray | None = None  # a nursing-facility resident once 85 (`long_stay_residents`)

    @property
    def n(self) -> int:
        return len(self.gidx)


@dataclass
class Segments:
    """Enrollment spans of one chunk (length m): a person's stretch on one plan entity."""

    person: np.ndarray
    entity: np.ndarray  # index into names.PLAN_ENTITIES
    start: np.ndarray  # day number (may precede the span)
    end: np.ndarray  # day number, inclusive
    aid: np.ndarray  # index into MEDICAID_AID_CATEGORIES, -1 otherwise
    age_in: np.ndarray  # Medicare span that began at 65

    @property
    def m(self) -> int:
        return len(self.person)


NO_DEATH = np.iinfo(np.int32).max


def _ages(rng, cov0: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Age in years (float) at the span start and a disabled flag, by first coverage."""
    age = np.zeros(n)
    disabled = np.zeros(n, dtype=bool)
    # Medicare: 12% disabled under 65, the rest 65+
    med = cov0 == COV_MEDICARE
    k = int(med.sum())
    dis = rng.random(k) < 0.12
    band = _choice(rng, [0.52, 0.32, 0.16], k)
    lo = np.array([65, 75, 85])[band]
    hi = np.array([75, 85, 101])[band]
    a = lo + rng.random(k) * (hi - lo)
    a_dis = np.where(rng.random(k) < 0.7, 45 + rng.random(k) * 20, 21 + rng.random(k) * 24)
    age[med] = np.where(dis, a_dis, a)
    disabled[med] = dis
    # Medicaid: children, young adults, some older adults
    mcd = cov0 == COV_MEDICAID
    k = int(mcd.sum())
    band = _choice(rng, [0.40, 0.39, 0.21], k)
    lo = np.array([0, 19, 45])[band]
    hi = np.array([19, 45, 64.5])[band]
    age[mcd] = lo + rng.random(k) * (hi - lo)
    # commercial and self-funded
    com = ~(med | mcd)
    k = int(com.sum())
    band = _choice(rng, [0.22, 0.20, 0.31, 0.27], k)
    lo = np.array([0, 19, 35, 55])[band]
    hi = np.array([19, 35, 55, 65])[band]
    age[com] = lo + rng.random(k) * (hi - lo)
    return age, disabled


def _mortality(age: np.ndarray, health: np.ndarray) -> np.ndarray:
    """Annual probability of death by age and health score."""
    q = np.exp(-9.9 + 0.088 * np.clip(age, 0, 110)) * np.exp(0.45 * health - 0.10)
    q = np.where(age < 1, 0.005, q)
    return np.minimum(q, 0.6)


def make_people(rng: np.random.Generator, gidx0: int, n: int, span: Span, roster: Roster) -> People:
    """Draw `n` people numbered from `gidx0`."""
    gidx = np.arange(gidx0, gidx0 + n, dtype=np.int64)
    mix = names.COVERAGE_MIX
    kind = _choice(rng, [mix["medicare"], mix["medicaid"], mix["bcbsvt_qhp"], mix["mvp_qhp"], mix["self_funded"]], n)
    group = _choice(rng, _employer_shares(), n)
    cov0 = np.where(kind == 4, COV_SELF + group, kind)
    age, disabled = _ages(rng, cov0, n)
    # births during the span (people not on Medicare): enrolled from the day of birth
    newborn = (cov0 != COV_MEDICARE) & (rng.random(n) < 0.012 * len(span.years))
    span_days = span.end_day - span.start_day + 1
    birth = np.floor(span.start_day - age * 365.25).astype(np.int64)
    birth = np.where(newborn, span.start_day + (rng.random(n) * (span_days - 1)).astype(np.int64), birth)
    age = np.where(newborn, 0.0, age)
    female = rng.random(n) < np.where(cov0 == COV_MEDICARE, 0.54, 0.51)
    hsa_w = np.array([h.population for h in ref.HSAS], dtype=np.float64)
    hsa = _choice(rng, hsa_w, n)
    zip_idx = (rng.random(n) * np.array([len(h.zips) for h in ref.HSAS])[hsa]).astype(np.int64)
    race = _choice(rng, [p for _, p in RACES], n)
    # latent health: Medicaid members and disabled Medicare beneficiaries are sicker on average
    health = rng.standard_normal(n) + np.where(cov0 == COV_MEDICAID, 0.35, 0.0) + np.where(disabled, 0.8, 0.0)

    # chronic conditions
    mid_age = age + len(span.years) / 2
    band = np.searchsorted(ref.AGE_BANDS, mid_age, side="right") - 1
    C = len(ref.CONDITIONS)
    cond = np.zeros((n, C), dtype=bool)
    medicaid_like = (cov0 == COV_MEDICAID) | disabled
    mult_h = np.exp(0.55 * health - 0.15)
    for ci, c in enumerate(ref.CONDITIONS):
        p = np.asarray(c.prevalence)[band] * mult_h
        p = p * np.where(medicaid_like, c.medicaid_factor, 1.0)
        p = p * np.where(female, c.female_factor, c.male_factor)
        for (target, source), f in ref.COMORBIDITY.items():
            if target == c.key:
                p = p * np.where(cond[:, ref.COND[source]], f, 1.0)
        cond[:, ci] = rng.random(n) < np.minimum(p, 0.95)
    esrd, ckd = ref.COND["esrd"], ref.COND["ckd"]
    cond[:, ckd] |= cond[:, esrd]
    # codes per person and condition
    cond_code = np.full((n, C), -1, dtype=np.int32)
    for ci, c in enumerate(ref.CONDITIONS):
        codes = c.codes
        if c.key == "cancer":
            m_idx = ICD.arr([x for x, _ in ref.CANCER_MALE_CODES])
            f_idx = ICD.arr([x for x, _ in ref.CANCER_FEMALE_CODES])
            pick_m = m_idx[_choice(rng, [p for _, p in ref.CANCER_MALE_CODES], n)]
            pick_f = f_idx[_choice(rng, [p for _, p in ref.CANCER_FEMALE_CODES], n)]
            code = np.where(female, pick_f, pick_m)
        else:
            idx = ICD.arr([x for x, _ in codes])
            code = idx[_choice(rng, [p for _, p in codes], n)]
        if c.key == "diabetes":
            code = np.where(cond[:, ckd] & (rng.random(n) < 0.7), ICD["E1122"], code)
        if c.key == "ckd":
            code = np.where(cond[:, esrd], ICD["N186"], code)
        cond_code[:, ci] = np.where(cond[:, ci], code, -1)
    chronic_cols = [i for i, c in enumerate(ref.CONDITIONS) if c.chronic]
    n_chronic = cond[:, chronic_cols].sum(axis=1).astype(np.int32)

    # primary care clinician
    child = mid_age < 18
    has_pcp = rng.random(n) < np.where(child, 0.93, np.where(cov0 == COV_MEDICARE, 0.95, np.where(age < 35, 0.80, 0.89)))
    pcp_child = roster.pick(rng, "pcp_child", hsa)
    pcp_adult = roster.pick(rng, "pcp_adult", hsa)
    pcp = np.where(has_pcp, np.where(child, pcp_child, pcp_adult), -1).astype(np.int32)

    # deaths
    death = np.full(n, NO_DEATH, dtype=np.int64)
    for yi, y in enumerate(span.years):
        y0 = span.year_start_day(y)
        y1 = span.year_start_day(y + 1)
        a = np.maximum((y0 - birth) / 365.25, 0)
        alive = (death == NO_DEATH) & (birth < y1)
        dies = alive & (rng.random(n) < _mortality(a, health))
        lo = np.maximum(y0, birth + 1)
        when = lo + (rng.random(n) * np.maximum(y1 - lo, 1)).astype(np.int64)
        death = np.where(dies & (when < y1), when, death)

    opt_out = rng.random(n) < OPT_OUT_P[cov0]
    dual_p = np.where(disabled, 0.35, 0.14)
    dual = (cov0 == COV_MEDICARE) & (rng.random(n) < dual_p)
    sud = cond[:, ref.COND["opioid_use"]] | cond[:, ref.COND["alcohol_use"]]
    part2 = sud & (rng.random(n) < np.where(cond[:, ref.COND["opioid_use"]], 0.45, 0.20))
    return People(
        gidx=gidx, female=female, birth=birth.astype(np.int64), hsa=hsa, zip_idx=zip_idx, race=race, health=health,
        cov0=cov0, disabled=disabled, cond=cond, cond_code=cond_code, pcp=pcp, death=death, opt_out=opt_out,
        dual=dual, part2=part2, n_chronic=n_chronic,
    )


def long_stay_residents(rng: np.random.Generator, people: People) -> np.ndarray:
    """Whether each person is a long-term nursing-facility resident when on Medicare and 85 or over
    (a share `LONG_STAY_85_PLUS`): their Medicare spans that start at 85 or over are written with
    ``long_term_institutional_flag`` true (`tables.eligibility_table`), their other Medicare spans
    false. One draw per person from `rng`, a stream of its own, so that the other draws of a seed
    are the same with or without it."""
    return rng.random(people.n) < LONG_STAY_85_PLUS


def _next_coverage(rng: np.random.Generator, cov: np.ndarray) -> np.ndarray:
    """Coverage after a switch."""
    n = len(cov)
    grp = COV_SELF + _choice(rng, _employer_shares(), n)
    u = rng.random(n)
    from_mcd = np.where(u < 0.30, COV_BCBSVT_QHP, np.where(u < 0.50, COV_MVP_QHP, grp))
    other_qhp = np.where(cov == COV_BCBSVT_QHP, COV_MVP_QHP, COV_BCBSVT_QHP)
    from_qhp = np.where(u < 0.45, COV_MEDICAID, np.where(u < 0.60, other_qhp, grp))
    qhp = np.where(rng.random(n) < 0.6, COV_BCBSVT_QHP, COV_MVP_QHP)
    from_self = np.where(u < 0.35, COV_MEDICAID, np.where(u < 0.70, qhp, grp))
    out = np.where(cov == COV_MEDICAID, from_mcd, np.where((cov == COV_BCBSVT_QHP) | (cov == COV_MVP_QHP), from_qhp, from_self))
    return np.where(cov == COV_MEDICARE, COV_MEDICARE, out)


def make_segments(rng: np.random.Generator, people: People, span: Span) -> Segments:
    """Enrollment spans of each person (a few per person at most), vectorized over people."""
    n = people.n
    M = span.n_months
    birth_m = span.month_of(people.birth)
    turn65_m = span.month_of(people.birth + np.floor(65 * 365.25).astype(np.int64))
    death_m = np.where(people.death == NO_DEATH, 10**6, span.month_of(np.minimum(people.death, span.end_day + 400)))

    # start of the first span
    born_in_span = people.birth >= span.start_day
    mover = (~born_in_span) & (rng.random(n) < 0.06)
    entry_m = np.where(mover, 1 + (rng.random(n) * (M - 1)).astype(np.int64), -1 - (rng.random(n) * 120).astype(np.int64))
    entry_m = np.maximum(entry_m, birth_m + 1)
    entry_m = np.minimum(entry_m, death_m)  # everyone is covered at least in the month of death
    is_med = people.cov0 == COV_MEDICARE
    entry_m = np.where(is_med & ~people.disabled, np.maximum(entry_m, np.minimum(turn65_m, 0)), entry_m)
    start_day = span.month_start(entry_m).astype(np.int64)
    start_day = np.where(born_in_span, people.birth, start_day)
    start_m = np.where(born_in_span, birth_m, entry_m)

    cov = people.cov0.copy()
    active = np.ones(n, dtype=bool)
    seg_person, seg_cov, seg_start, seg_end, seg_age_in = [], [], [], [], []
    age_in_flag = np.zeros(n, dtype=bool)
    for k in range(MAX_SEGMENTS):
        ref_m = np.maximum(start_m, 0)
        # event by hazard
        h = EVENT_HAZARD[cov]
        t_years = rng.exponential(1.0, n) / np.maximum(h, 1e-12)
        ev_m = np.where(h > 0, ref_m + 1 + np.floor(t_years * 12).astype(np.int64), 10**6)
        ev_kind = _choice(rng, EVENT_KIND_P, n)
        if k == MAX_SEGMENTS - 1:
            ev_m[:] = 10**6
        # aging into Medicare
        ages_in = (cov != COV_MEDICARE) & (turn65_m > ref_m) & (turn65_m < M) & (rng.random(n) < AGE_IN_SHARE)
        a_m = np.where(ages_in, turn65_m, 10**6)
        end_m_event = np.minimum(ev_m, a_m)  # first month NOT in this span
        # the span ends at the earliest of: event, death (end of death month), span end
        dies_first = death_m < end_m_event
        end_day = np.where(
            dies_first,
            span.month_start(np.minimum(death_m, M + 1) + 1) - 1,
            span.month_start(np.minimum(end_m_event, M)) - 1,
        ).astype(np.int64)
        end_day = np.minimum(end_day, span.end_day)
        ok = active & (end_day >= start_day)
        seg_person.append(np.nonzero(ok)[0])
        seg_cov.append(cov[ok])
        seg_start.append(start_day[ok])
        seg_end.append(end_day[ok])
        seg_age_in.append(age_in_flag[ok])
        # what comes next
        cont = active & ~dies_first & (end_m_event < M)
        to_medicare = cont & (a_m <= ev_m)
        ev = cont & ~to_medicare
        switch = ev & (ev_kind == 0)
        gap = ev & (ev_kind == 1)
        leave = ev & (ev_kind == 2)
        gap_len = 1 + (rng.random(n) * 9).astype(np.int64)
        new_start_m = np.where(gap, end_m_event + gap_len, end_m_event)
        nxt = _next_coverage(rng, cov)
        nxt = np.where(gap & (rng.random(n) < 0.5), cov, nxt)
        new_cov = np.where(to_medicare, COV_MEDICARE, np.where(switch | gap, nxt, cov))
        # a gap must end before death and before the span ends
        gap_ok = new_start_m < np.minimum(death_m + 1, M)
        active = cont & ~leave & (~gap | gap_ok)
        age_in_flag = to_medicare
        cov = new_cov
        start_m = new_start_m
        start_day = span.month_start(np.minimum(start_m, M + 12)).astype(np.int64)
        if not active.any():
            break

    person = np.concatenate(seg_person)
    covs = np.concatenate(seg_cov)
    start = np.concatenate(seg_start)
    end = np.concatenate(seg_end)
    age_in = np.concatenate(seg_age_in)
    # order by person, then start
    order = np.lexsort((start, person))
    person, covs, start, end, age_in = person[order], covs[order], start[order], end[order], age_in[order]
    return _split_to_entities(rng, people, person, covs, start, end, age_in, span)


def _split_to_entities(rng, people: People, person, covs, start, end, age_in, span: Span) -> Segments:
    """Map coverages to plan entities, splitting self-funded spans where the administrator changes."""
    ent = np.full(len(person), -1, dtype=np.int64)
    ent[covs == COV_MEDICARE] = names.ENTITY_INDEX["medicare"]
    ent[covs == COV_MEDICAID] = names.ENTITY_INDEX["medicaid"]
    ent[covs == COV_BCBSVT_QHP] = names.ENTITY_INDEX["bcbsvt_qhp"]
    ent[covs == COV_MVP_QHP] = names.ENTITY_INDEX["mvp_qhp"]
    parts_p, parts_e, parts_s, parts_t, parts_a = [person], [ent], [start], [end], [age_in]
    for g, emp in enumerate(names.EMPLOYERS):
        sel = covs == COV_SELF + g
        admins = emp.administrators
        first = names.entity_for(emp.group_id, admins[0][1])
        ent[sel] = first
        for (d, payer) in admins[1:]:
            dd = day_number(d)
            new_ent = names.entity_for(emp.group_id, payer)
            after = sel & (parts_s[0] >= dd)
            ent[after] = new_ent
            crossing = sel & (parts_s[0] < dd) & (parts_t[0] >= dd)
            if crossing.any():
                idx = np.nonzero(crossing)[0]
                parts_p.append(person[idx])
                parts_e.append(np.full(len(idx), new_ent))
                parts_s.append(np.full(len(idx), dd, dtype=np.int64))
                parts_t.append(end[idx].copy())
                parts_a.append(np.zeros(len(idx), dtype=bool))
                parts_t[0][idx] = dd - 1
    person = np.concatenate(parts_p)
    ent = np.concatenate(parts_e)
    start = np.concatenate(parts_s)
    end = np.concatenate(parts_t)
    age_in = np.concatenate(parts_a)
    order = np.lexsort((start, person))
    person, ent, start, end, age_in = person[order], ent[order], start[order], end[order], age_in[order]
    # Medicaid aid category at the span start
    age_at = (np.maximum(start, span.start_day) - people.birth[person]) / 365.25
    u = rng.random(len(person))
    sick = people.disabled[person] | people.cond[person, ref.COND["serious_mental_illness"]] | (people.health[person] > 1.6)
    aid = np.where(age_at < 19, 0, np.where(sick & (u < 0.8), 3, np.where(u < 0.35, 1, 2)))
    aid = np.where(ent == names.ENTITY_INDEX["medicaid"], aid, -1)
    return Segments(person=person.astype(np.int64), entity=ent.astype(np.int64), start=start, end=end, aid=aid,
                    age_in=age_in)


# ---------------------------------------------------------------------------------------------
# identifiers and the eligibility table
# ---------------------------------------------------------------------------------------------

_MBI_LETTERS = np.frombuffer(b"ACDEFGHJKMNPQRTUVWXY", dtype=np.uint8)
_MBI_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
_MBI_ALNUM = np.concatenate([_MBI_DIGITS, _MBI_LETTERS])
_MBI_POSITIONS = ("C", "A", "AN", "N", "A", "AN", "N", "A", "A", "N", "N")


def mbi(numbers: np.ndarray) -> pa.Array:
    """Medicare beneficiary identifiers in the MBI format (11 characters), one per number."""
    x = np.asarray(numbers, dtype=np.int64).copy()
    out = np.zeros((len(x), 11), dtype=np.uint8)
    for pos in range(10, -1, -1):
        kind = _MBI_POSITIONS[pos]
        if kind == "C":
            out[:, pos] = _MBI_DIGITS[1 + x % 9]
            x //= 9
        elif kind == "A":
            out[:, pos] = _MBI_LETTERS[x % 20]
            x //= 20
        elif kind == "AN":
            out[:, pos] = _MBI_ALNUM[x % 30]
            x //= 30
        else:
            out[:, pos] = _MBI_DIGITS[x % 10]
            x //= 10
    return pa.array(out.view("S11").ravel(), pa.binary(11)).cast(pa.string())


def person_ids(gidx: np.ndarray) -> pa.Array:
    return prefixed_ids("P", gidx + 1, 9)


def member_ids(entity: np.ndarray, gidx: np.ndarray) -> pa.Array:
    """Member ids by plan entity and person (one id per person and coverage)."""
    pieces = []
    order = []
    for e_i, e in enumerate(names.PLAN_ENTITIES):
        sel = np.nonzero(entity == e_i)[0]
        if len(sel) == 0:
            continue
        num = scramble(gidx[sel], 1_000_000_000, 387_420_489 + 10 * e_i, 7919 * (e_i + 1))
        if e.key == "medicare":
            ids = mbi(num)
        else:
            ids = prefixed_ids(e.member_prefix, num, 9)
        pieces.append(ids)
        order.append(sel)
    if not pieces:
        return pa.array([], pa.string())
    allids = pa.concat_arrays(pieces)
    pos = np.concatenate(order)
    inv = np.empty(len(pos), dtype=np.int64)
    inv[pos] = np.arange(len(pos))
    return allids.take(pa.array(inv))
