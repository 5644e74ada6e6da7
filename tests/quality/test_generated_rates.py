"""On a generated population the ACO-level rates fall in the ranges the synthetic data are
calibrated for (issue acceptance): HbA1c > 9% 15-35%, blood pressure controlled 55-75%, well-care
visits 45-65%, annual wellness visits 40-70%."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from allpayer.inputs.load import load_folder
from allpayer.pipeline import run_year
from allpayer.quality.run import quality_year
from allpayer.synth import generate

# one worker builds this module's fixture once (--dist loadgroup; see tests/test_xdist_groups.py)
pytestmark = pytest.mark.xdist_group("quality_generated_rates")

RANGES = {
    "hba1c_poor_control": (Decimal("0.15"), Decimal("0.35")),
    "cbp": (Decimal("0.55"), Decimal("0.75")),
    "hedis_wcv": (Decimal("0.45"), Decimal("0.65")),
    "awv": (Decimal("0.40"), Decimal("0.70")),
}


@pytest.fixture(scope="module")
def rates(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("generated")
    generate(members=2000, seed=7, out=tmp / "data")
    db = tmp / "q.duckdb"
    load_folder(tmp / "data", db)
    run_year(db, 2024)
    out = quality_year(db, 2024)
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("select measure_id, rate, denominator - exclusions from quality_rates "
                           "where level = 'aco' and performance_year = 2024").fetchall()
        gaps = con.execute("select count(*) from care_gaps").fetchone()[0]
    finally:
        con.close()
    return {m: (r, n) for m, r, n in rows}, gaps, out


@pytest.mark.slow
@pytest.mark.parametrize("measure_id", sorted(RANGES))
def test_rates_fall_in_their_ranges(rates, measure_id):
    got, _, _ = rates
    rate, eligible = got[measure_id]
    lo, hi = RANGES[measure_id]
    assert eligible >= 30, eligible
    assert lo <= rate <= hi, (measure_id, rate)


@pytest.mark.slow
def test_the_run_writes_gaps_and_scores(rates):
    _, gaps, out = rates
    assert gaps > 0
    assert set(out.quality.rows) == {"quality_measure_results", "quality_rates", "quality_scores",
                                     "quality_program_scores", "care_gaps"}
