import numpy as np
import pytest

from allpayer.synth import names
from allpayer.synth import reference as ref
from allpayer.synth.population import (
    COV_MEDICAID,
    COV_MEDICARE,
    LONG_STAY_85_PLUS,
    NO_DEATH,
    long_stay_residents,
    make_people,
    make_segments,
    mbi,
    member_ids,
)
from allpayer.synth.roster import build_roster
from allpayer.synth.span import Span, day_number

SPAN = Span.of((2022, 2023, 2024))


@pytest.fixture(scope="module")
def pop():
    roster = build_roster(np.random.SeedSequence(3))
    rng = np.random.default_rng(42)
    people = make_people(rng, 0, 30_000, SPAN, roster)
    segs = make_segments(rng, people, SPAN)
    return people, segs, roster


def _age(people, day=SPAN.start_day):
    return (day - people.birth) / 365.25


def test_age_mix_by_coverage(pop):
    people, _, _ = pop
    age = _age(people)
    med = people.cov0 == COV_MEDICARE
    mcd = people.cov0 == COV_MEDICAID
    assert 0.85 <= (age[med] >= 65).mean() <= 0.92  # mostly 65+, some disabled
    assert (age[mcd] < 19).mean() > 0.35 and (age[mcd] >= 65).mean() == 0
    assert np.median(age[mcd]) < np.median(age[~med & ~mcd]) < np.median(age[med])
    assert 0.50 <= people.female.mean() <= 0.53


def test_coverage_mix(pop):
    people, _, _ = pop
    share = np.bincount(np.minimum(people.cov0, 4), minlength=5) / people.n
    expected = [names.COVERAGE_MIX[k] for k in ("medicare", "medicaid", "bcbsvt_qhp", "mvp_qhp", "self_funded")]
    assert np.allclose(share, expected, atol=0.015)


def test_hsa_weights_burlington_largest(pop):
    people, _, _ = pop
    counts = np.bincount(people.hsa, minlength=len(ref.HSAS))
    assert counts.argmax() == ref.HSA_INDEX["burlington"]
    assert (counts > 0).all()


def test_spans_do_not_overlap_and_respect_death(pop):
    people, segs, _ = pop
    assert (segs.end >= segs.start).all()
    same = segs.person[1:] == segs.person[:-1]
    assert not (same & (segs.start[1:] <= segs.end[:-1])).any()
    death = people.death[segs.person]
    dead = death != NO_DEATH
    # coverage ends in the month of death at the latest
    assert (segs.start[dead] <= death[dead]).all()
    assert ((segs.end[dead] - death[dead]) <= 31).all()
    assert (segs.end <= SPAN.end_day).all()


def test_churn_switches_and_aging_in(pop):
    people, segs, _ = pop
    n_seg = np.bincount(segs.person, minlength=people.n)
    assert 0.12 <= (n_seg > 1).mean() <= 0.45
    # payer switches: people with more than one plan entity
    ents = {}
    for p, e in zip(segs.person.tolist(), segs.entity.tolist()):
        ents.setdefault(p, set()).add(e)
    multi = sum(len(v) > 1 for v in ents.values()) / people.n
    assert multi > 0.08
    # people aging into Medicare start a Medicare span on the first of their 65th birthday month
    med = names.ENTITY_INDEX["medicare"]
    aged_in = segs.age_in & (segs.entity == med)
    assert aged_in.sum() > 50
    b = people.birth[segs.person[aged_in]]
    age_at_start = (segs.start[aged_in] - b) / 365.25
    assert (age_at_start > 64.9).all() and (age_at_start < 65.1).all()
    # Medicaid <-> commercial moves exist
    mcd = names.ENTITY_INDEX["medicaid"]
    both = sum(mcd in v and any(names.PLAN_ENTITIES[e].payer_type == "commercial" for e in v) for v in ents.values())
    assert both > 100


def test_medicare_mortality_about_four_to_five_percent(pop):
    people, _, _ = pop
    med = people.cov0 == COV_MEDICARE
    died = (people.death != NO_DEATH) & med
    annual = died.sum() / med.sum() / len(SPAN.years)
    assert 0.035 <= annual <= 0.055
    assert ((people.death != NO_DEATH) & ~med).sum() / (~med).sum() / 3 < 0.01


def test_self_funded_state_plan_moves_to_mvp_in_2024(pop):
    _, segs, _ = pop
    sov_b = names.entity_for("SOV", "bcbsvt")
    sov_m = names.entity_for("SOV", "mvp")
    d2024 = day_number(__import__("datetime").date(2024, 1, 1))
    assert (segs.end[segs.entity == sov_b] < d2024).all()
    assert (segs.start[segs.entity == sov_m] >= d2024).all()
    assert (segs.entity == sov_m).sum() > 100


def test_opt_out_share_and_part2_subset(pop):
    people, _, _ = pop
    assert 0.02 <= people.opt_out.mean() <= 0.05
    sud = people.cond[:, ref.COND["opioid_use"]] | people.cond[:, ref.COND["alcohol_use"]]
    assert people.part2.any() and not (people.part2 & ~sud).any()


def test_long_stay_residents_are_drawn_from_their_own_stream(pop):
    """A share LONG_STAY_85_PLUS of people, one draw each from the stream given: the same stream
    gives the same people, and the draw leaves the population's other draws as they were."""
    people, _, _ = pop
    a = long_stay_residents(np.random.default_rng(5), people)
    assert (a == long_stay_residents(np.random.default_rng(5), people)).all()
    assert abs(a.mean() - LONG_STAY_85_PLUS) < 0.005
    assert people.long_stay is None  # make_people leaves it to the generator's own stream


def test_member_ids_differ_from_person_ids_and_follow_coverage(pop):
    people, segs, _ = pop
    ids = member_ids(segs.entity, people.gidx[segs.person]).to_pylist()
    pairs = {}
    for pid, ent, mid in zip(segs.person.tolist(), segs.entity.tolist(), ids):
        pairs.setdefault((pid, ent), set()).add(mid)
    assert all(len(v) == 1 for v in pairs.values())  # one member id per person and coverage
    by_mid = {}
    for (pid, ent), v in pairs.items():
        by_mid.setdefault(next(iter(v)), set()).add(pid)
    assert all(len(v) == 1 for v in by_mid.values())  # never shared between people
    med = [m for m, e in zip(ids, segs.entity.tolist()) if e == names.ENTITY_INDEX["medicare"]]
    assert all(len(m) == 11 and m[0] in "123456789" for m in med)


def test_mbi_characters():
    ids = mbi(np.array([0, 5, 10**9 - 1])).to_pylist()
    for x in ids:
        assert len(x) == 11 and not set(x) & set("SLOIBZ")
        assert x[0].isdigit() and x[1].isalpha() and x[3].isdigit() and x[9:].isdigit()
