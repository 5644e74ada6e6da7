"""The demo cycle end to end on a small population (the README's first command runs 20,000)."""

from allpayer.cli import main


def test_demo_runs_end_to_end_and_reuses_its_data(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--members", "400", "--seed", "7"]) == 0
    text = capsys.readouterr().out
    assert "generating a synthetic" in text
    assert "30 reproduce CMS's figures" in text
    assert (out / "allpayer.duckdb").exists() and (out / "mssp_results.csv").exists()
    for payer_type in ("medicare", "medicaid", "commercial", "self_funded"):
        assert payer_type in text
    assert "vt-2024-medicaid" in text and "vt-2024-medicare" in text
    assert "reports for employers, practices, hospitals, payers and the regulator" in text
    assert list((out / "allpayer.duckdb.reports").glob("*/index.json"))
    # demo users per role, and how to serve the dashboard
    for user in ("aco-admin", "aco-analyst", "payer", "practice", "hospital", "regulator"):
        assert user in text
    assert f"allpayer serve --db {out / 'allpayer.duckdb'}" in text

    assert main(["demo", "--out", str(out), "--members", "400", "--seed", "7"]) == 0
    assert "reusing the synthetic population" in capsys.readouterr().out
