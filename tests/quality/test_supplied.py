"""Supplied risk-standardized results (QID 479, QID 484, Medicaid MCC admissions): read from a
CSV with their source, never recomputed; bad rows stop the load naming file and line."""

from __future__ import annotations

from decimal import Decimal

import pytest

from allpayer.errors import InputFileError
from allpayer.quality import framework
from allpayer.quality.measures.supplied import LABEL, SUPPLIED_MEASURE_IDS, read_supplied, supplied_rates
from tests.quality.event_world import EventWorld
from tests.quality.helpers import D

HEADER = "program_id,measure_id,performance_year,rate,unit,denominator,source\n"


def write(tmp_path, body: str, header: str = HEADER):
    p = tmp_path / "supplied.csv"
    p.write_text(header + body)
    return p


def test_rates_as_supplied(tmp_path):
    # 15.42 percent is stored as the proportion 0.1542; admissions per 100 person-years as given
    p = write(tmp_path, "vt-2024-medicare,qid479_readmission,2024,15.42,percent,2211,CMS 2024 ACO report table 3\n"
                        "vt-2024-medicare,qid484_mcc_admissions,2024,33.1,per_100_person_years,,CMS 2024 ACO report table 4\n"
                        "vt-2024-medicare,qid479_readmission,2023,16.00,percent,,CMS 2023 report\n")
    out = {r["measure_id"]: r for r in supplied_rates(p, 2024, ["vt-2024-medicare"]).to_pyarrow().to_pylist()}
    assert set(out) == {"qid479_readmission", "qid484_mcc_admissions"}  # the 2023 row is another year
    r479 = out["qid479_readmission"]
    assert r479["rate"] == Decimal("0.1542") and r479["denominator"] == 2211 and r479["numerator"] is None
    assert r479["label"] == LABEL and r479["inverse"] is True and r479["level"] == "program"
    assert r479["note"] == "proportion (published as percent); source: CMS 2024 ACO report table 3"
    assert out["qid484_mcc_admissions"]["rate"] == Decimal("33.1")
    assert out["qid484_mcc_admissions"]["note"].startswith("per 100 person years; source: CMS 2024")


def test_no_file_no_rows():
    assert supplied_rates(None, 2024).count().to_pyarrow().as_py() == 0


@pytest.mark.parametrize("row, message", [
    ("vt-2024-medicare,qid999,2024,1,percent,,src\n", "line 2: measure_id 'qid999' is not a supplied measure"),
    ("vt-2024-medicare,qid479_readmission,2024,abc,percent,,src\n", "line 2: rate 'abc' is not a number"),
    ("vt-2024-medicare,qid479_readmission,2024,120,percent,,src\n", "line 2: rate '120' is above 100%"),
    ("vt-2024-medicare,qid479_readmission,2024,15,ratio,,src\n", "line 2: unit 'ratio' is not one of"),
    ("vt-2024-medicare,qid479_readmission,2024,15,percent,,\n", "line 2: source is required"),
    ("vt-2024-medicare,qid479_readmission,24,15,percent,,src\n", "line 2: performance_year '24' is not a year"),
    ("vt-2024-medicare,qid479_readmission,2024,15,percent,12.5,src\n", "line 2: denominator '12.5' is not a whole number"),
    ("vt-2024-medicare,qid479_readmission,2024,15,percent,,src\nvt-2024-medicare,qid479_readmission,2024,16,percent,,src\n",
     "line 3: qid479_readmission for vt-2024-medicare 2024 is also on line 2"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    p = write(tmp_path, row)
    with pytest.raises(InputFileError) as e:
        read_supplied(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_bad_header_and_unknown_program(tmp_path):
    with pytest.raises(InputFileError, match="lacks column"):
        read_supplied(write(tmp_path, "x\n", header="program_id,measure_id\n"))
    p = write(tmp_path, "vt-2024-medicar,qid479_readmission,2024,15,percent,,src\n")
    with pytest.raises(InputFileError, match="program_id 'vt-2024-medicar' is not a program of 2024"):
        supplied_rates(p, 2024, ["vt-2024-medicare"])
    with pytest.raises(InputFileError, match="cannot read"):
        read_supplied(tmp_path / "missing.csv")


def test_supplied_measures_compute_nothing():
    reg = framework.registry()
    w = EventWorld("vt-2024-medicare")
    w.person("S1", D(1950, 1, 1)); w.stay("S1", D(2024, 3, 1), D(2024, 3, 5), dx=("I509",))
    w.stay("S1", D(2024, 3, 10), D(2024, 3, 12), dx=("I509",))
    ctx = w.context()
    for mid in SUPPLIED_MEASURE_IDS:
        assert reg[mid].label == LABEL
        assert w.event_results(mid, ctx=ctx) == []
