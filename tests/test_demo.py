"""The demo cycle end to end on a small population (the README's first command runs 20,000)."""

import duckdb
import pytest

from allpayer.cli import main
from allpayer.demo import run_demo


class StopDemo(Exception):
    """Raised by the test's `say` to end a demo after its load."""


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
    # Medicare's advance payments (a fixed amount of its terms) are named where they make the net
    flat = " ".join(text.split())  # the console wraps long lines
    medicare = flat[flat.index("vt-2024-medicare: gross"):]
    assert "less $8,400,000.00 advanced in the year (payments.advance_payments), net settlement" in medicare[:200]
    assert "reports for employers, practices, hospitals, payers and the regulator" in text
    assert list((out / "allpayer.duckdb.reports").glob("*/index.json"))
    # demo users per role, and how to serve the dashboard
    for user in ("aco-admin", "aco-analyst", "payer", "practice", "hospital", "regulator"):
        assert user in text
    assert f"allpayer serve --db {out / 'allpayer.duckdb'}" in text

    # A second demo in the same folder reuses the population and rebuilds the database from it: one
    # clean load, nothing already loaded. It is followed up to the end of its load (the stages after
    # it are those the first demo ran above).
    said = []

    def say(line: str) -> None:
        said.append(line)
        if line.startswith("4/5"):
            raise StopDemo

    with pytest.raises(StopDemo):
        run_demo(out, members=400, seed=7, say=say)
    assert said[0].startswith("1/5 reusing the synthetic population")
    assert not list((out / "allpayer.duckdb.reports").glob("*"))  # the last database's reports are gone
    con = duckdb.connect(str(out / "allpayer.duckdb"), read_only=True)
    try:
        runs_, already, loaded = con.execute(
            "SELECT count(DISTINCT run_id), sum(already_loaded), sum(loaded) FROM load_reconciliation").fetchone()
    finally:
        con.close()
    assert (runs_, already) == (1, 0) and loaded > 0


def test_demo_summary_pmpm_rounds_half_up(tmp_path, monkeypatch, capsys):
    """The summary's PMPMs are cents rounded half up, as `allpayer.money` rounds (not Python's
    round(), which rounds a half cent to even): $2,500.50 over 100 member months is $25.01 (25.005)
    and $2,501.50 is $25.02 (25.015)."""
    import datetime as dt
    from types import SimpleNamespace

    import allpayer.demo

    load = SimpleNamespace(run_id="L1", tables=[], paid_through=dt.date(2025, 3, 31))
    programs = [{"program_id": "vt-2024-a", "member_months": 100, "attributed_member_months": 90,
                 "tcoc_cents": 250_050, "target_cents": 250_150}]
    res = allpayer.demo.DemoResult(
        out=tmp_path, data=tmp_path / "data", db=tmp_path / "allpayer.duckdb", members=1, seed=1, year=2024,
        reused_data=False, terms_files=1, load=load, run=SimpleNamespace(run_id="R1"), programs=programs,
        pmpm=[{"payer_type": "medicaid", "member_months": 100, "allowed_cents": 250_050, "pmpm_cents": 2_501}],
        mssp_summary={"settled": 0, "match_published": 0, "earned": 0, "owed": 0})
    monkeypatch.setattr(allpayer.demo, "run_demo", lambda *a, **k: res)
    assert main(["demo", "--out", str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "vt-2024-a" in line)
    assert [c.strip() for c in row.split("│")[4:7]] == ["$25.01", "$25.02", "$1.00"]


def test_data_of_another_generator_version_is_not_reused(tmp_path):
    """A population written by another generator version (the same seed gives other data) is
    generated again, not reused."""
    import json

    from allpayer.demo import _same_population
    from allpayer.synth import GENERATOR_VERSION

    (tmp_path / "manifest.json").write_text(json.dumps(
        {"members": 500, "seed": 7, "injected_errors": 0, "generator_version": GENERATOR_VERSION}))
    assert _same_population(tmp_path, 500, 7)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"members": 500, "seed": 7, "injected_errors": 0, "generator_version": "1.1.0"}))
    assert not _same_population(tmp_path, 500, 7)
