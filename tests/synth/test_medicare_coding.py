"""Medicare chronic-condition coding in the session population: the CMS-HCC scores it gives are
those of a fee-for-service population (mean near 1.0), and its codes stay on Medicare claims."""

from __future__ import annotations

import dataclasses

import ibis
import numpy as np
import pytest

from allpayer.core import risk
from allpayer.reference.hcc import load_hcc_reference
from allpayer.synth import coding
from allpayer.synth import reference as ref

PAYMENT_YEAR = 2024  # diagnoses of 2023, the middle year of the default span


@pytest.fixture(scope="module")
def medicare_scores(population):
    con = ibis.duckdb.connect()
    elig = con.read_parquet(str(population / "eligibility.parquet"))
    med = con.read_parquet(str(population / "medical_claim.parquet"))
    elig = elig.filter(elig.payer_type == "medicare")
    # 2020 CMS-HCC model (V24) alone with its PY2022 normalization factor, read from the 2025
    # tables (the model's relative factors have not changed since 2020).
    terms = dataclasses.replace(risk.cms_hcc_terms(2022), model_year=2025)
    scores = risk.cms_hcc_scores_from_claims(elig, med, load_hcc_reference(2025, ("V24",)), terms,
                                             payment_year=PAYMENT_YEAR)
    s = scores.scores
    members = elig.filter((elig.enrollment_start_date <= ibis.date(PAYMENT_YEAR, 12, 31))
                          & (elig.enrollment_end_date >= ibis.date(PAYMENT_YEAR, 1, 1))).select("person_id").distinct()
    s = s.semi_join(members, "person_id")
    d = scores.detail
    hccs = d.filter((d.factor_type == "hcc") & (d.segment != "NE")).semi_join(members, "person_id")
    got = s.aggregate(n=s.count(), mean=s.risk_score.mean(), new=s.new_enrollee.cast("int64").sum()).to_pyarrow()
    with_hcc = hccs.select("person_id").distinct().count().to_pyarrow().as_py()
    out = {k: got.column(k)[0].as_py() for k in ("n", "mean", "new")}
    out["with_hcc"] = with_hcc
    return out


def test_mean_v24_risk_of_medicare_members_is_plausible(medicare_scores):
    # Real fee-for-service beneficiaries average about 1.0 after normalization; before the
    # Medicare coding the synthetic population averaged about 0.65.
    assert medicare_scores["n"] > 2_000
    assert 0.85 <= medicare_scores["mean"] <= 1.2, medicare_scores


def test_most_continuing_members_have_a_coded_hcc(medicare_scores):
    continuing = medicare_scores["n"] - medicare_scores["new"]
    share = medicare_scores["with_hcc"] / continuing
    # About two thirds of real fee-for-service beneficiaries have a payment HCC.
    assert 0.55 <= share <= 0.9, medicare_scores


def test_medicare_condition_codes_appear_only_on_medicare_claims(db):
    codes = ", ".join(f"'{c}'" for c in coding.MEDICARE_CODES)
    rows = db.execute(f"""
        select c.payer, count(*) from medical_claim c
        where diagnosis_code_1 in ({codes}) or diagnosis_code_2 in ({codes}) or diagnosis_code_3 in ({codes})
           or diagnosis_code_4 in ({codes}) or diagnosis_code_5 in ({codes})
        group by 1""").fetchall()
    payers = {p for p, _ in rows}
    assert payers == {"medicare"}, rows


def test_every_chronic_condition_of_a_person_reaches_the_dx_list():
    # A person with seven conditions gets two claims: five codes, then two.
    from types import SimpleNamespace

    n_cond = len(ref.CONDITIONS)
    cond_code = np.full((1, n_cond), -1, dtype=np.int32)
    chronic = [i for i, c in enumerate(ref.CONDITIONS) if c.chronic][:7]
    cond_code[0, chronic] = np.arange(100, 107)
    ctx = SimpleNamespace(people=SimpleNamespace(cond_code=cond_code))
    extra = np.full((1, len(coding.MEDICARE_CONDITIONS)), -1, dtype=np.int32)
    packed = coding._chronic_codes(ctx, extra)
    assert list(packed[0, :8]) == [100, 101, 102, 103, 104, 105, 106, -1]
