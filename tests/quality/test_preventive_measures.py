"""Well-care visits (3-21), developmental screening (C-DEV), annual wellness visits and breast
cancer screening: hand-made patients, one per rule."""

from __future__ import annotations

import pytest

from .helpers import D, World

Y = 2024


@pytest.fixture(scope="module")
def medicaid():
    w = World("vt-2024-medicaid")
    # WCV: ages 3-21 on 31 December
    w.person("age_2", D(2022, 1, 1)); w.claim("age_2", D(Y, 3, 1), hcpcs="99392")
    w.person("age_3", D(2021, 12, 31)); w.claim("age_3", D(Y, 3, 1), hcpcs="99392")
    w.person("age_21", D(2003, 1, 1)); w.claim("age_21", D(Y, 3, 1), dx=("Z0000",), hcpcs="99213")
    w.person("age_22", D(2002, 12, 31)); w.claim("age_22", D(Y, 3, 1), hcpcs="99395")
    w.person("no_visit", D(2014, 5, 1)); w.claim("no_visit", D(Y, 3, 1), hcpcs="99213", dx=("J069",))
    w.person("visit_next_year", D(2014, 5, 1)); w.claim("visit_next_year", D(Y + 1, 1, 1), hcpcs="99393")
    w.person("visit_dec_31", D(2014, 5, 1)); w.claim("visit_dec_31", D(Y, 12, 31), hcpcs="99393")
    w.person("wcv_hospice", D(2014, 5, 1)); w.claim("wcv_hospice", D(Y, 3, 1), hcpcs="Q5001")
    w.person("wcv_gap", D(2014, 5, 1), spans=[(D(Y, 1, 1), D(Y, 2, 28)), (D(Y, 5, 1), D(Y, 12, 31))])
    w.claim("wcv_gap", D(Y, 6, 1), hcpcs="99393")
    w.person("wcv_died", D(2014, 5, 1), death=D(Y, 11, 20))
    # C-DEV: turning 1, 2 or 3 in 2024; screening in the 12 months up to the birthday
    w.person("turns_1", D(2023, 6, 10)); w.claim("turns_1", D(Y, 6, 10), hcpcs="96110")
    w.person("turns_3_late", D(2021, 3, 1)); w.claim("turns_3_late", D(Y, 3, 2), hcpcs="96110")
    w.person("turns_2_early", D(2022, 9, 1)); w.claim("turns_2_early", D(2023, 9, 1), hcpcs="96110")
    w.person("turns_2_window_start", D(2022, 9, 1)); w.claim("turns_2_window_start", D(2023, 9, 2), hcpcs="96110")
    w.person("turns_4", D(2020, 5, 1)); w.claim("turns_4", D(Y, 3, 1), hcpcs="96110")
    w.person("newborn", D(2024, 2, 1)); w.claim("newborn", D(Y, 3, 1), hcpcs="96110")
    w.person("turns_1_enrolled_late", D(2023, 6, 10), spans=[(D(2023, 9, 1), D(Y, 12, 31))])
    w.claim("turns_1_enrolled_late", D(Y, 3, 1), hcpcs="96110")
    w.person("turns_1_short_gap", D(2023, 6, 10), spans=[(D(2023, 7, 15), D(Y, 12, 31))])
    w.claim("turns_1_short_gap", D(Y, 3, 1), hcpcs="96110")
    return {"wcv": w.results("hedis_wcv"), "cdev": w.results("cdev")}


def test_wcv(medicaid):
    r = medicaid["wcv"]
    assert "age_2" not in r and "age_22" not in r
    assert r["age_3"]["in_numerator"] and r["age_3"]["evidence_value"] == "99392"
    assert r["age_21"]["in_numerator"]  # a routine-exam diagnosis on an office visit counts
    assert not r["no_visit"]["in_numerator"]
    assert not r["visit_next_year"]["in_numerator"]
    assert r["visit_dec_31"]["in_numerator"]
    assert r["wcv_hospice"]["excluded"] and r["wcv_hospice"]["exclusion_reason"] == "hospice"
    assert "wcv_gap" not in r  # a gap of 61 days
    # HEDIS MY2024 WCV required exclusion: death in the measurement year
    assert r["wcv_died"]["excluded"] and r["wcv_died"]["exclusion_reason"] == "died"


def test_cdev(medicaid):
    r = medicaid["cdev"]
    assert r["turns_1"]["in_numerator"]  # screened on the birthday
    assert not r["turns_3_late"]["in_numerator"]  # screened the day after the third birthday
    assert not r["turns_2_early"]["in_numerator"]  # on the first birthday, outside the 12 months
    assert r["turns_2_window_start"]["in_numerator"]  # the first day of the window
    assert "turns_4" not in r and "newborn" not in r
    assert "turns_1_enrolled_late" not in r  # 82 days uncovered in the 12 months before the birthday
    assert r["turns_1_short_gap"]["in_denominator"]  # 34 days uncovered: one allowed gap


def test_a_29_february_birthday_counts_on_28_february():
    from allpayer.quality.measures.developmental_screening import birthday_window

    from .helpers import plain, rows

    pop = plain([{"person_id": "leap", "birth_date": D(2024, 2, 29)}], {"person_id": "string", "birth_date": "date"})
    (row,) = rows(birthday_window(pop, 2025))
    assert (row["birthday"], row["window_start"]) == (D(2025, 2, 28), D(2024, 2, 29))


@pytest.fixture(scope="module")
def medicare():
    w = World("vt-2024-medicare")
    w.person("awv_initial", D(1950, 1, 1)); w.claim("awv_initial", D(Y, 4, 1), hcpcs="G0438")
    w.person("awv_subsequent", D(1950, 1, 1)); w.claim("awv_subsequent", D(Y, 4, 1), hcpcs="G0439")
    w.person("awv_none", D(1950, 1, 1)); w.claim("awv_none", D(Y, 4, 1), hcpcs="99214", dx=("I10",))
    w.person("awv_last_year", D(1950, 1, 1)); w.claim("awv_last_year", D(Y - 1, 12, 31), hcpcs="G0439")
    w.person("awv_hospice", D(1950, 1, 1)); w.claim("awv_hospice", D(Y, 4, 1), hcpcs="Q5003")
    w.person("awv_left_in_june", D(1950, 1, 1), spans=[(D(Y - 1, 1, 1), D(Y, 6, 30))])
    # BCS-E: women 52-74, enrolled from 1 October 2022, mammogram from 1 October 2022
    def woman(pid, birth=D(1960, 1, 1), gender="female", spans=((D(2022, 10, 1), D(Y, 12, 31)),), **kw):
        return w.person(pid, birth, gender, spans=list(spans), **kw)

    woman("bcs_screened"); w.claim("bcs_screened", D(2022, 10, 1), hcpcs="77067")
    woman("bcs_too_early"); w.claim("bcs_too_early", D(2022, 9, 30), hcpcs="77067")
    woman("bcs_man", gender="male"); w.claim("bcs_man", D(Y, 3, 1), hcpcs="77067")
    woman("bcs_age_51", D(1973, 6, 1))
    woman("bcs_age_75", D(1949, 6, 1))
    woman("bcs_mastectomy"); w.claim("bcs_mastectomy", D(2010, 1, 1), dx=("Z9013",))
    woman("bcs_died", death=D(Y, 12, 1))
    # HEDIS MY2024 BCS-E continuous enrollment: 1 October 2022 to 31 December 2024, no gap in the
    # last quarter of 2022, then one gap of up to 45 days in each of 2023 and 2024
    woman("bcs_from_2023", spans=[(D(2023, 1, 1), D(Y, 12, 31))])                     # the lead-in uncovered
    woman("bcs_lead_in_gap", spans=[(D(2022, 10, 1), D(2022, 11, 30)), (D(2022, 12, 10), D(Y, 12, 31))])
    woman("bcs_gap_each_year", spans=[(D(2022, 10, 1), D(2023, 5, 31)), (D(2023, 7, 1), D(Y, 3, 31)),
                                      (D(Y, 5, 1), D(Y, 12, 31))])                     # 30 days in each year
    woman("bcs_two_gaps_2023", spans=[(D(2022, 10, 1), D(2023, 3, 31)), (D(2023, 5, 1), D(2023, 8, 31)),
                                      (D(2023, 10, 1), D(Y, 12, 31))])                 # two gaps in 2023
    return {"awv": w.results("awv"), "bcs": w.results("hedis_bcs_e")}


def test_awv(medicare):
    r = medicare["awv"]
    assert r["awv_initial"]["in_numerator"] and r["awv_subsequent"]["in_numerator"]
    assert not r["awv_none"]["in_numerator"] and not r["awv_last_year"]["in_numerator"]
    assert r["awv_hospice"]["excluded"]
    assert "awv_left_in_june" not in r


def test_bcs(medicare):
    r = medicare["bcs"]
    assert r["bcs_screened"]["in_numerator"]
    assert not r["bcs_too_early"]["in_numerator"]
    assert "bcs_man" not in r and "bcs_age_51" not in r and "bcs_age_75" not in r
    assert r["bcs_mastectomy"]["excluded"] and r["bcs_mastectomy"]["exclusion_reason"] == "bilateral_mastectomy"
    # HEDIS MY2024 BCS-E required exclusion: death in the measurement year
    assert r["bcs_died"]["excluded"] and r["bcs_died"]["exclusion_reason"] == "died"
    assert "bcs_from_2023" not in r and "bcs_lead_in_gap" not in r and "bcs_two_gaps_2023" not in r
    assert r["bcs_gap_each_year"]["in_denominator"]
