"""`allpayer load` detects the delivery format, or takes --format."""

from __future__ import annotations

import json
import shutil

import pytest

from allpayer.cli import main
from allpayer.errors import AllpayerError, InputFileError
from allpayer.inputs.formats import detect_format, resolve_format

from .conftest import BASE, build_delivery
from .fhir.test_reader import small_delivery


def test_native(tmp_path):
    assert detect_format(build_delivery(tmp_path / "d")) == "native"


def test_fhir(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text("")
    (folder / "provider_roster.csv").write_text("npi\n")
    assert detect_format(folder) == "fhir"


@pytest.mark.parametrize(
    "name",
    ["P.A1234.ACO.ZC1Y24.D240115.T1234567", "P.A1234.ACO.ZC8R24.D240115.T1234567", "CCLF8_2024.txt", "P.A1234.ACO.ZCAY24.D240115.T1234567"],
)
def test_cclf_names(tmp_path, name):
    (tmp_path / name).write_text("x")
    assert detect_format(tmp_path) == "cclf"


def test_fhir_and_cclf_together_is_an_error(tmp_path):
    (tmp_path / "Patient.ndjson").write_text("")
    (tmp_path / "P.A1234.ACO.ZC1Y24.D240115.T1234567").write_text("x")
    with pytest.raises(InputFileError, match="both FHIR files"):
        detect_format(tmp_path)


def test_explicit_format_and_unknown_format(tmp_path):
    folder = build_delivery(tmp_path / "d")
    assert resolve_format(folder, "tuva") == "tuva"
    assert resolve_format(folder, None) == "native"
    with pytest.raises(AllpayerError, match="--format xml: expected one of native, tuva, fhir, cclf"):
        resolve_format(folder, "xml")


def test_cli_detects_fhir_and_reports_resources(tmp_path, capsys):
    folder = small_delivery(tmp_path / "d")
    db = tmp_path / "db.duckdb"
    assert main(["load", str(folder), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "(fhir)" in out
    assert "fhir:ExplanationOfBenefit: read 1 = loaded 1 + already loaded 0 + quarantined 0" in out
    assert "medical_claim: read 2 = loaded 2" in out
    assert "ignored" not in out  # the NDJSON files are the delivery, not ignored files


def test_cli_format_option(tmp_path, capsys):
    folder = build_delivery(tmp_path / "d")
    db = tmp_path / "db.duckdb"
    assert main(["load", str(folder), "--db", str(db), "--format", "native"]) == 0
    assert "(native)" in capsys.readouterr().out
    assert main(["load", str(folder), "--db", str(db), "--format", "fhir"]) == 2
    assert "no FHIR files" in capsys.readouterr().err


def test_a_table_from_fhir_and_native_at_once_is_an_error(tmp_path):
    folder = small_delivery(tmp_path / "d")
    shutil.copy(BASE / "eligibility.csv", folder / "eligibility.csv")
    from allpayer.inputs.load import load_folder

    with pytest.raises(InputFileError, match="table eligibility comes both from fhir files and from eligibility.csv"):
        load_folder(folder, tmp_path / "db.duckdb")


def test_cli_loads_a_cclf_delivery(tmp_path, capsys):
    """A generated population's Medicare members as a monthly CCLF zip, with the roster beside
    it as a native file: detected as CCLF, loaded, every CCLF line counted by file type."""
    out = tmp_path / "g"
    assert main(["generate", "--members", "60", "--seed", "4", "--years", "2024", "--out", str(out), "--format", "cclf"]) == 0
    folder = out / "cclf"
    (zipped,) = [p.name for p in folder.iterdir()]
    assert zipped.endswith(".zip")
    shutil.copy(out / "provider_roster.parquet", folder / "provider_roster.parquet")
    assert detect_format(folder) == "cclf"
    capsys.readouterr()
    db = tmp_path / "db.duckdb"
    assert main(["load", str(folder), "--db", str(db), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "cclf"
    tables = {t["table"]: t for t in data["tables"]}
    assert all(t["reconciles"] for t in data["tables"])
    assert tables["medical_claim"]["loaded"] > 0 and tables["eligibility"]["loaded"] > 0
    assert tables["cclf:CCLF5"]["read"] == tables["cclf:CCLF5"]["loaded"] + tables["cclf:CCLF5"]["quarantined"]


def test_format_is_taken_on_a_warehouse_load_too(tmp_path, capsys):
    """`--format` reaches the validation when the load goes to a warehouse (`--backend spark`)."""
    folder = build_delivery(tmp_path / "d")
    assert main(["load", str(folder), "--db", str(tmp_path / "wh"), "--backend", "spark", "--format", "xml"]) != 0
    assert "--format xml: expected one of native, tuva, fhir, cclf" in capsys.readouterr().err
