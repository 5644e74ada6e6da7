"""Controlling high blood pressure: hand-made patients, one per rule.

"Hypertensive" means I10 on outpatient visits (office visit 99213 here) on two different dates
(2023 or 2024, by 30 June). Readings are vitals (LOINC 8480-6 / 8462-4) unless a CPT II code is named."""

from __future__ import annotations

import pytest

from .helpers import D, World

Y = 2024
VISIT = "99213"  # an established-patient office visit


def born(age: int):
    return D(Y - age, 6, 15)


def htn(w: World, pid: str, age: int = 60, gender: str = "female", **kw) -> str:
    w.person(pid, born(age), gender, **kw)
    w.claim(pid, D(Y - 1, 11, 1), dx=("I10",), hcpcs=VISIT)
    w.claim(pid, D(Y, 2, 1), dx=("I10",), hcpcs=VISIT)
    return pid


@pytest.fixture(scope="module")
def res():
    w = World()
    w.person("one_dx", born(60)); w.claim("one_dx", D(Y, 2, 1), dx=("I10",), hcpcs=VISIT); w.bp("one_dx", D(Y, 5, 1), 120, 70)
    htn(w, "age_17", 17); htn(w, "age_18", 18); htn(w, "age_85", 85); htn(w, "age_86", 86)
    # numerator
    htn(w, "controlled"); w.bp("controlled", D(Y, 3, 1), 150, 95); w.bp("controlled", D(Y, 9, 1), 139, 89)
    htn(w, "sys_140"); w.bp("sys_140", D(Y, 9, 1), 140, 80)
    htn(w, "dia_90"); w.bp("dia_90", D(Y, 9, 1), 130, 90)
    htn(w, "lowest_of_day"); w.bp("lowest_of_day", D(Y, 9, 1), 150, 80); w.bp("lowest_of_day", D(Y, 9, 1), 135, 92)
    htn(w, "old_good_new_bad"); w.bp("old_good_new_bad", D(Y, 3, 1), 120, 70); w.bp("old_good_new_bad", D(Y, 9, 1), 145, 70)
    htn(w, "no_reading")
    htn(w, "ed_reading_ignored"); w.bp("ed_reading_ignored", D(Y, 3, 1), 150, 95)
    ed = w.claim("ed_reading_ignored", D(Y, 9, 1), hcpcs="99284", pos="23", dx=("R51",))
    w.bp("ed_reading_ignored", D(Y, 9, 1), 120, 70, encounter=ed)
    htn(w, "inpatient_reading_ignored"); w.bp("inpatient_reading_ignored", D(Y, 3, 1), 120, 70)
    ip = w.claim("inpatient_reading_ignored", D(Y, 9, 1), claim_type="institutional", bill_type="111", pos=None, dx=("I10",))
    w.bp("inpatient_reading_ignored", D(Y, 9, 1), 160, 100, encounter=ip)
    htn(w, "cpt2_controlled"); w.claim("cpt2_controlled", D(Y, 9, 1), hcpcs="3075F", dx=("I10",))
    w.claim("cpt2_controlled", D(Y, 9, 1), hcpcs="3079F", dx=("I10",))
    htn(w, "cpt2_high"); w.claim("cpt2_high", D(Y, 9, 1), hcpcs="3077F", dx=("I10",))
    w.claim("cpt2_high", D(Y, 9, 1), hcpcs="3078F", dx=("I10",))
    htn(w, "only_systolic"); w.claim("only_systolic", D(Y, 9, 1), hcpcs="3074F", dx=("I10",))
    # period
    htn(w, "reading_next_year"); w.bp("reading_next_year", D(Y, 6, 1), 150, 95); w.bp("reading_next_year", D(Y + 1, 1, 1), 120, 70)
    htn(w, "reading_dec_31"); w.bp("reading_dec_31", D(Y, 6, 1), 150, 95); w.bp("reading_dec_31", D(Y, 12, 31), 120, 70)
    htn(w, "reading_prior_year"); w.bp("reading_prior_year", D(Y - 1, 12, 31), 120, 70)
    # exclusions
    htn(w, "esrd"); w.claim("esrd", D(Y - 1, 3, 1), dx=("N186",))
    htn(w, "pregnant"); w.claim("pregnant", D(Y, 5, 1), dx=("Z3401",))
    htn(w, "hospice"); w.claim("hospice", D(Y, 5, 1), hcpcs="Q5002")
    htn(w, "frail_81", 81); w.claim("frail_81", D(Y, 5, 1), dx=("W19XXXA",)); w.claim("frail_81", D(Y, 6, 1), hcpcs="E0135")
    htn(w, "frail_80", 80); w.claim("frail_80", D(Y, 5, 1), dx=("W19XXXA",)); w.claim("frail_80", D(Y, 6, 1), hcpcs="E0135")
    # HEDIS MY2024 CBP: the two hypertension diagnoses fall between 1 January of the year before
    # and 30 June of the measurement year, and the representative reading is the most recent one
    # on or after the second diagnosis
    w.person("dx_after_june", born(60)); w.claim("dx_after_june", D(Y, 7, 1), dx=("I10",), hcpcs=VISIT)
    w.claim("dx_after_june", D(Y, 8, 1), dx=("I10",), hcpcs=VISIT); w.bp("dx_after_june", D(Y, 9, 1), 120, 70)
    w.person("dx_june_30", born(60)); w.claim("dx_june_30", D(Y, 3, 1), dx=("I10",), hcpcs=VISIT)
    w.claim("dx_june_30", D(Y, 6, 30), dx=("I10",), hcpcs=VISIT); w.bp("dx_june_30", D(Y, 9, 1), 120, 70)
    w.person("reading_before_dx2", born(60)); w.claim("reading_before_dx2", D(Y, 2, 1), dx=("I10",), hcpcs=VISIT)
    w.bp("reading_before_dx2", D(Y, 3, 1), 120, 70); w.claim("reading_before_dx2", D(Y, 5, 1), dx=("I10",), hcpcs=VISIT)
    w.person("reading_on_dx2", born(60)); w.claim("reading_on_dx2", D(Y, 2, 1), dx=("I10",), hcpcs=VISIT)
    w.bp("reading_on_dx2", D(Y, 4, 1), 150, 95); w.claim("reading_on_dx2", D(Y, 5, 1), dx=("I10",), hcpcs=VISIT)
    w.bp("reading_on_dx2", D(Y, 5, 1), 130, 80)
    htn(w, "died", death=D(Y, 12, 10)); w.bp("died", D(Y, 9, 1), 120, 70)
    # HEDIS CBP counts a hypertension diagnosis on an outpatient, telephone or online visit only:
    # on an ED visit, an inpatient stay or a lab line it does not make the member hypertensive
    w.person("dx_not_on_visits", born(60))
    w.claim("dx_not_on_visits", D(Y, 1, 10), hcpcs="99284", pos="23", dx=("I10",))
    w.claim("dx_not_on_visits", D(Y, 2, 10), hcpcs="80053", pos="81", dx=("I10",))
    w.claim("dx_not_on_visits", D(Y, 3, 10), claim_type="institutional", bill_type="111", pos=None, dx=("I10",))
    w.claim("dx_not_on_visits", D(Y, 4, 10), dx=("I10",), hcpcs=VISIT); w.bp("dx_not_on_visits", D(Y, 9, 1), 120, 70)
    w.person("telephone_visits", born(60))
    w.claim("telephone_visits", D(Y, 1, 10), hcpcs="99442", dx=("I10",))
    w.claim("telephone_visits", D(Y, 2, 10), hcpcs="99213", pos="02", dx=("I10",))
    w.bp("telephone_visits", D(Y, 9, 1), 120, 70)
    return w.results("cbp")


def test_denominator_and_ages(res):
    assert "one_dx" not in res
    assert "age_17" not in res and "age_86" not in res
    assert res["age_18"]["in_denominator"] and res["age_85"]["in_denominator"]


def test_numerator(res):
    assert res["controlled"]["in_numerator"] and res["controlled"]["evidence_value"] == "139/89"
    assert not res["sys_140"]["in_numerator"]
    assert not res["dia_90"]["in_numerator"]
    # lowest systolic (135) and lowest diastolic (80) of the most recent date
    assert res["lowest_of_day"]["in_numerator"] and res["lowest_of_day"]["evidence_value"] == "135/80"
    assert not res["old_good_new_bad"]["in_numerator"]
    assert not res["no_reading"]["in_numerator"] and res["no_reading"]["evidence_source"] == "none"


def test_inpatient_and_ed_readings_are_ignored(res):
    assert not res["ed_reading_ignored"]["in_numerator"]
    assert res["ed_reading_ignored"]["evidence_date"] == D(Y, 3, 1)
    assert res["inpatient_reading_ignored"]["in_numerator"]
    assert res["inpatient_reading_ignored"]["evidence_date"] == D(Y, 3, 1)


def test_cpt_ii_readings(res):
    assert res["cpt2_controlled"]["in_numerator"] and res["cpt2_controlled"]["evidence_source"] == "medical_claim"
    assert not res["cpt2_high"]["in_numerator"]
    assert not res["only_systolic"]["in_numerator"]  # no diastolic on the most recent date


def test_period_boundaries(res):
    assert not res["reading_next_year"]["in_numerator"]
    assert res["reading_dec_31"]["in_numerator"]
    assert not res["reading_prior_year"]["in_numerator"]


@pytest.mark.parametrize("pid,reason", [("esrd", "esrd_dialysis_transplant"), ("pregnant", "pregnancy"),
                                        ("hospice", "hospice"), ("frail_81", "frailty_81plus"),
                                        ("died", "died")])  # HEDIS MY2024: death in the year
def test_exclusions(res, pid, reason):
    assert res[pid]["excluded"] and res[pid]["exclusion_reason"] == reason and not res[pid]["in_numerator"]


def test_frailty_alone_below_81_does_not_exclude(res):
    assert not res["frail_80"]["excluded"]


def test_hypertension_diagnosed_by_30_june(res):
    # HEDIS MY2024 CBP denominator: two diagnoses on different dates between 1 January of the
    # year before and 30 June of the measurement year
    assert "dx_after_june" not in res
    assert res["dx_june_30"]["in_denominator"] and res["dx_june_30"]["in_numerator"]


def test_the_representative_reading_is_on_or_after_the_second_diagnosis(res):
    # HEDIS MY2024 CBP: "the most recent BP reading during the measurement period on or after the
    # second diagnosis of hypertension"; a reading before it does not count (no reading: not
    # controlled)
    r = res["reading_before_dx2"]
    assert r["in_denominator"] and not r["in_numerator"] and r["evidence_source"] == "none"
    # a reading on the day of the second diagnosis counts (130/80 controlled; the 150/95 of
    # 1 April is before it)
    r = res["reading_on_dx2"]
    assert r["in_numerator"] and r["evidence_date"] == D(Y, 5, 1) and r["evidence_value"] == "130/80"


def test_hypertension_counts_on_outpatient_telephone_and_online_visits_only(res):
    # ED visit, lab line and inpatient stay: one visit date left (10 April), not two
    assert "dx_not_on_visits" not in res
    # a telephone E/M code (99442) and an office code billed at the telehealth place of service
    assert res["telephone_visits"]["in_denominator"] and res["telephone_visits"]["in_numerator"]
