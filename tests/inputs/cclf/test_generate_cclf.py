"""`allpayer generate --format cclf` writes the Medicare members as a CCLF zip beside the Parquet tables."""

from allpayer.cli import main
from allpayer.inputs.cclf import read_cclf_folder


def test_generate_format_cclf(tmp_path, capsys):
    out = tmp_path / "pop"
    assert main(["generate", "--members", "150", "--seed", "2", "--out", str(out), "--format", "cclf", "--years", "2024"]) == 0
    assert "Medicare members as CCLF" in capsys.readouterr().out
    assert (out / "medical_claim.parquet").exists()
    zips = list((out / "cclf").glob("P.A9999.ACO.ZCY24.D*.zip"))
    assert len(zips) == 1
    r = read_cclf_folder(out / "cclf")
    assert r.tables["eligibility"].num_rows > 0 and r.quarantine.num_rows == 0
