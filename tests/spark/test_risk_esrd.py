"""The ESRD dialysis model on Spark: the same scores, factors and diagnoses as on DuckDB (the cycle's
parity test runs the shipped programs, which exclude ESRD members, so this path is checked here)."""

from __future__ import annotations

from decimal import Decimal

import ibis

from allpayer.core import risk
from allpayer.reference.hcc import load_hcc_reference
from tests.core.test_risk_esrd import _random_esrd_population


def _frames(result) -> dict:
    out = {}
    for name, keys in (("scores", ["person_id"]), ("model_scores", ["person_id", "model_version"]),
                       ("detail", ["person_id", "model_version", "factor_type", "factor"]),
                       ("hcc_diagnoses", ["person_id", "model_version", "factor", "diagnosis_code"])):
        frame = getattr(result, name).to_pyarrow().to_pandas()
        out[name] = frame.sort_values(keys).reset_index(drop=True)[sorted(frame.columns)]
    return out


def test_esrd_dialysis_scores_are_identical_on_spark(spark_con):
    ref, eref = load_hcc_reference(2025), load_hcc_reference(2025, ("E24",))
    people, dx = _random_esrd_population(eref, 2025, 120, seed=11)
    people.loc[people.index[:20], "esrd"] = False  # some members take the CMS-HCC blend
    terms = risk.cms_hcc_terms(2025, esrd="esrd_dialysis", esrd_normalization_factor=Decimal("1.05"))
    duck = _frames(risk.cms_hcc_scores(ibis.memtable(people), ibis.memtable(dx), ref, terms, esrd_reference=eref))

    session = spark_con._session
    session.createDataFrame(people).createOrReplaceTempView("esrd_people")
    session.createDataFrame(dx).createOrReplaceTempView("esrd_dx")
    try:
        spark = _frames(risk.cms_hcc_scores(spark_con.table("esrd_people"), spark_con.table("esrd_dx"), ref, terms,
                                            esrd_reference=eref))
    finally:
        session.catalog.dropTempView("esrd_people")
        session.catalog.dropTempView("esrd_dx")
    assert set(duck["model_scores"].model_version) == {"E24", "V24", "V28"}
    for name, frame in duck.items():
        other = spark[name]
        assert list(frame.columns) == list(other.columns) and len(frame) == len(other), name
        for col in frame.columns:
            if frame[col].dtype.kind == "f":
                assert ((frame[col] - other[col]).abs().fillna(0) <= 1e-12).all(), (name, col)
            else:
                assert frame[col].astype(str).tolist() == other[col].astype(str).tolist(), (name, col)
