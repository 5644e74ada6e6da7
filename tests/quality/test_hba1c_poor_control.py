"""HbA1c poor control (> 9.0%): hand-made patients, one per rule, evaluated together.

Every patient is a Medicare member born so that the age on 31 December 2024 is the one named,
enrolled 2023-2024 and attributed all of 2024, unless the test says otherwise. "Diabetic" means
E11.9 on claims on two different dates of 2024 (the denominator rule)."""

from __future__ import annotations

import pytest

from .helpers import D, World

Y = 2024


def born(age: int) -> "D":
    return D(Y - age, 6, 15)


def diabetic(w: World, pid: str, age: int = 60, **kw) -> str:
    w.person(pid, born(age), **kw)
    w.claim(pid, D(Y, 2, 1), dx=("E119",))
    w.claim(pid, D(Y, 4, 1), dx=("E119",))
    return pid


@pytest.fixture(scope="module")
def res():
    w = World()
    # denominator
    w.person("one_dx_date", born(60)); w.claim("one_dx_date", D(Y, 2, 1), dx=("E119",)); w.lab("one_dx_date", D(Y, 5, 1), "10.0")
    w.person("dx_prior_year", born(60)); w.claim("dx_prior_year", D(Y - 1, 2, 1), dx=("E119",))
    w.claim("dx_prior_year", D(Y, 3, 1), dx=("E109",)); w.lab("dx_prior_year", D(Y, 5, 1), "7.0")
    w.person("dx_two_years_ago", born(60)); w.claim("dx_two_years_ago", D(Y - 2, 2, 1), dx=("E119",))
    w.claim("dx_two_years_ago", D(Y, 3, 1), dx=("E119",))
    w.person("inpatient_dx", born(60))
    w.claim("inpatient_dx", D(Y, 3, 1), dx=("E119",), claim_type="institutional", bill_type="111", pos=None)
    diabetic(w, "age_17", 17); diabetic(w, "age_18", 18); diabetic(w, "age_75", 75); diabetic(w, "age_76", 76)
    diabetic(w, "long_gap", spans=[(D(Y, 1, 1), D(Y, 3, 31)), (D(Y, 6, 1), D(Y, 12, 31))])
    diabetic(w, "short_gap", spans=[(D(Y, 1, 1), D(Y, 3, 31)), (D(Y, 5, 1), D(Y, 12, 31))])
    diabetic(w, "left_nov_30", spans=[(D(Y, 1, 1), D(Y, 11, 30))])
    w.person("not_attributed", born(60), attributed_months=())
    w.claim("not_attributed", D(Y, 2, 1), dx=("E119",)); w.claim("not_attributed", D(Y, 4, 1), dx=("E119",))
    # exclusions
    diabetic(w, "hospice"); w.claim("hospice", D(Y, 8, 1), claim_type="institutional", bill_type="811", pos=None,
                                     dx=("C259",))
    diabetic(w, "hospice_code"); w.claim("hospice_code", D(Y, 8, 1), hcpcs="Q5001")
    diabetic(w, "palliative"); w.claim("palliative", D(Y, 8, 1), dx=("Z515",))
    diabetic(w, "institutional_66", 66); w.claim("institutional_66", D(Y, 8, 1), pos="32")
    diabetic(w, "institutional_65", 65); w.claim("institutional_65", D(Y, 8, 1), pos="32")
    for pid, age in (("frail_ai_66", 66), ("frail_ai_65", 65)):
        diabetic(w, pid, age)
        w.claim(pid, D(Y, 5, 1), dx=("R54",)); w.claim(pid, D(Y, 6, 1), dx=("R54",))
        w.claim(pid, D(Y - 1, 5, 1), dx=("I509",)); w.claim(pid, D(Y, 7, 1), dx=("I509",))
    diabetic(w, "frail_one_date_66", 66)
    w.claim("frail_one_date_66", D(Y, 5, 1), dx=("R54",))
    w.claim("frail_one_date_66", D(Y - 1, 5, 1), dx=("I509",)); w.claim("frail_one_date_66", D(Y, 7, 1), dx=("I509",))
    # (81+ with frailty is a rule of the measure too, but the population stops at 75: see the
    # blood-pressure tests, whose population reaches 85.)
    diabetic(w, "hospice_last_year"); w.claim("hospice_last_year", D(Y - 1, 8, 1), hcpcs="Q5001")
    # died 10 December; enrollment recorded through 31 December (to the end of the month)
    diabetic(w, "died", death=D(Y, 12, 10))
    diabetic(w, "died_next_year", death=D(Y + 1, 1, 1))
    # numerator
    diabetic(w, "last_high"); w.lab("last_high", D(Y, 3, 1), "7.0"); w.lab("last_high", D(Y, 10, 1), "9.2", lab_id="LH")
    diabetic(w, "last_low"); w.lab("last_low", D(Y, 3, 1), "10.1"); w.lab("last_low", D(Y, 10, 1), "8.0", lab_id="LL")
    diabetic(w, "exactly_9"); w.lab("exactly_9", D(Y, 10, 1), "9.0")
    diabetic(w, "no_result")
    diabetic(w, "same_day"); w.lab("same_day", D(Y, 10, 1), "9.4"); w.lab("same_day", D(Y, 10, 1), "8.9", lab_id="SD")
    diabetic(w, "gmi"); w.lab("gmi", D(Y, 10, 1), "9.6", code="97506-0", lab_id="G1")
    diabetic(w, "cpt2_low"); w.lab("cpt2_low", D(Y, 3, 1), "9.9")
    c = w.claim("cpt2_low", D(Y, 9, 1), hcpcs="3044F", dx=("E119",))
    w.extra_ids = {"cpt2_low": c}
    diabetic(w, "cpt2_high"); w.claim("cpt2_high", D(Y, 9, 1), hcpcs="3046F", dx=("E119",))
    diabetic(w, "supplemental"); w.lab("supplemental", D(Y, 3, 1), "9.8")
    w.lab("supplemental", D(Y, 11, 1), "7.4", supplemental=True, lab_id="S1")
    # period boundaries
    diabetic(w, "lab_dec_31"); w.lab("lab_dec_31", D(Y, 12, 31), "9.3")
    diabetic(w, "lab_jan_1_next"); w.lab("lab_jan_1_next", D(Y, 6, 1), "7.1"); w.lab("lab_jan_1_next", D(Y + 1, 1, 1), "9.9")
    diabetic(w, "lab_prior_year_only"); w.lab("lab_prior_year_only", D(Y - 1, 12, 31), "6.0")
    diabetic(w, "lab_jan_1"); w.lab("lab_jan_1", D(Y, 1, 1), "6.5")
    diabetic(w, "wrong_unit"); w.lab("wrong_unit", D(Y, 10, 1), "53", units="mmol/mol")
    return w, w.results("hba1c_poor_control")


def test_denominator(res):
    w, r = res
    assert "one_dx_date" not in r  # one outpatient date is not enough
    assert r["dx_prior_year"]["in_denominator"] and not r["dx_prior_year"]["in_numerator"]
    assert "dx_two_years_ago" not in r  # the first date is outside the two-year window
    assert r["inpatient_dx"]["in_denominator"]  # one inpatient claim suffices
    assert "not_attributed" not in r


def test_ages_18_to_75_on_december_31(res):
    _, r = res
    assert "age_17" not in r and "age_76" not in r
    assert r["age_18"]["in_denominator"] and r["age_75"]["in_denominator"]


def test_continuous_enrollment(res):
    _, r = res
    assert "long_gap" not in r  # April-May gap of 61 days
    assert r["short_gap"]["in_denominator"]  # April gap of 30 days
    assert "left_nov_30" not in r  # not enrolled on 31 December


@pytest.mark.parametrize("pid,reason", [
    ("hospice", "hospice"), ("hospice_code", "hospice"), ("palliative", "palliative_care"),
    ("institutional_66", "long_term_institutional"), ("frail_ai_66", "frailty_advanced_illness"),
])
def test_each_exclusion(res, pid, reason):
    _, r = res
    row = r[pid]
    assert row["in_denominator"] and row["excluded"] and row["exclusion_reason"] == reason
    assert not row["in_numerator"]  # an excluded member never counts in the numerator
    assert row["evidence_source"] == "medical_claim" and row["evidence_id"] is not None


@pytest.mark.parametrize("pid", ["institutional_65", "frail_ai_65", "frail_one_date_66", "hospice_last_year"])
def test_near_misses_are_not_excluded(res, pid):
    _, r = res
    assert not r[pid]["excluded"]


def test_numerator_uses_the_most_recent_result(res):
    _, r = res
    assert r["last_high"]["in_numerator"] and r["last_high"]["evidence_id"] == "LH"
    assert r["last_high"]["evidence_value"] == "9.2"
    assert not r["last_low"]["in_numerator"] and r["last_low"]["evidence_id"] == "LL"
    assert not r["exactly_9"]["in_numerator"]  # 9.0 is not above 9.0
    assert r["no_result"]["in_numerator"] and r["no_result"]["evidence_source"] == "none"
    assert not r["same_day"]["in_numerator"] and r["same_day"]["evidence_id"] == "SD"  # lowest of the day
    assert r["gmi"]["in_numerator"] and r["gmi"]["evidence_id"] == "G1"
    assert r["wrong_unit"]["in_numerator"]  # a result in mmol/mol is not read as a percentage


def test_cpt_ii_codes_and_supplemental_labs(res):
    w, r = res
    assert not r["cpt2_low"]["in_numerator"] and r["cpt2_low"]["evidence_id"] == w.extra_ids["cpt2_low"]
    assert r["cpt2_high"]["in_numerator"] and r["cpt2_high"]["evidence_value"] == ">9.0 (CPT II)"
    assert not r["supplemental"]["in_numerator"]
    assert r["supplemental"]["evidence_source"] == "supplemental" and r["supplemental"]["evidence_id"] == "S1"


def test_period_boundaries(res):
    _, r = res
    assert r["lab_dec_31"]["in_numerator"] and r["lab_dec_31"]["evidence_date"] == D(Y, 12, 31)
    assert not r["lab_jan_1_next"]["in_numerator"]  # the 2025 result is outside the period
    assert r["lab_prior_year_only"]["in_numerator"]  # a 2023 result does not count: no result in 2024
    assert not r["lab_jan_1"]["in_numerator"]


def test_practice_columns_come_from_attribution(res):
    _, r = res
    row = r["last_high"]
    assert (row["practice_id"], row["npi"], row["tin"], row["hsa"]) == ("PR1", "1000000004", "111111111", "Burlington")
    assert row["event_id"] == "" and row["performance_year"] == Y


def test_a_member_who_died_in_the_year_is_excluded(res):
    # HEDIS MY2024 required exclusion: members who die any time during the measurement year
    # (here with enrollment recorded through 31 December and no HbA1c: otherwise poor control)
    _, r = res
    row = r["died"]
    assert row["in_denominator"] and row["excluded"] and row["exclusion_reason"] == "died"
    assert not row["in_numerator"]
    assert (row["evidence_source"], row["evidence_date"]) == ("eligibility", D(Y, 12, 10))
    assert not r["died_next_year"]["excluded"] and r["died_next_year"]["in_numerator"]
