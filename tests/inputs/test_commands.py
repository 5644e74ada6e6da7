"""CLI: `allpayer load` and `allpayer export` (and a real load killed with SIGKILL)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from allpayer import runs
from allpayer.cli import main

from .conftest import build_delivery, query

ROOT = Path(__file__).resolve().parents[2]


# The tests that read `loaded` follow one another on one worker: the first loads the case, the
# second loads it again (everything already loaded), the exports read the database they made.
SHARES_THE_LOAD = pytest.mark.xdist_group("cli_load")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The bad_amounts case loaded once through the CLI (JSON output kept)."""
    tmp = tmp_path_factory.mktemp("cli")
    folder = build_delivery(tmp / "in", "bad_amounts")
    (folder / "manifest.json").write_text("{}")
    db = tmp / "a.duckdb"
    return folder, db


@SHARES_THE_LOAD
def test_load_prints_counts_and_reconciliation(loaded, capsys):
    folder, db = loaded
    assert main(["load", str(folder), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "medical_claim: read 9 = loaded 2 + already loaded 0 + quarantined 7" in out
    assert "medical_claim: 1 loaded row falls outside every eligibility span" not in out  # C5 is not in this case
    assert "eligibility: 1 span with a data-sharing opt-out (42 CFR 425.708)" in out
    assert "quarantined medical_claim: 4 rows, first failing rule money_format" in out
    assert "ignored (not a table of the contract): manifest.json" in out
    assert f"published to {db}" in out
    assert f"allpayer export quarantine --db {db}" in out


@SHARES_THE_LOAD
def test_load_json_is_the_same_counts(loaded, capsys):
    folder, db = loaded
    assert main(["load", str(folder), "--db", str(db), "--json", "--paid-through", "2024-12-31"]) == 0
    data = json.loads(capsys.readouterr().out)
    tables = {t["table"]: t for t in data["tables"]}
    assert (tables["medical_claim"]["read"], tables["medical_claim"]["already_loaded"], tables["medical_claim"]["quarantined"]) == (9, 2, 7)
    assert all(t["read"] == t["loaded"] + t["already_loaded"] + t["quarantined"] and t["reconciles"] for t in data["tables"])
    assert data["paid_through"] == "2024-12-31"
    assert runs.get_run(db, data["run_id"])["paid_through"] == "2024-12-31"
    assert {q["rule"]: q["rows"] for q in data["quarantine_by_rule"]} == {
        "money_format": 4, "negative_amount": 1, "shadow_claim_paid": 1, "required": 1,
    }


def test_load_reports_the_rows_that_restate_stored_ones(tmp_path, capsys):
    db = tmp_path / "a.duckdb"
    assert main(["load", str(build_delivery(tmp_path / "in")), "--db", str(db)]) == 0
    later = tmp_path / "later"
    later.mkdir()
    lines = (tmp_path / "in" / "employer_group.csv").read_text().splitlines()
    (later / "employer_group.csv").write_text("\n".join([lines[0], lines[1].replace(",2024-01-01,,", ",2024-01-01,2024-06-30,")]) + "\n")
    capsys.readouterr()
    assert main(["load", str(later), "--db", str(db), "--json"]) == 0
    [group] = json.loads(capsys.readouterr().out)["tables"]
    assert (group["read"], group["loaded"], group["restated"], group["reconciles"]) == (1, 1, 1, True)
    assert main(["load", str(later), "--db", str(db)]) == 0  # the same delivery again: nothing restated
    assert "restate" not in capsys.readouterr().out
    (later / "employer_group.csv").write_text("\n".join(lines) + "\n")  # the open period back
    assert main(["load", str(later), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "employer_group: read 1 = loaded 1 + already loaded 0 + quarantined 0" in out
    assert "employer_group: 1 loaded row restates a stored row of the same key (the stored rows kept in employer_group_replaced)" in out


def test_load_errors_are_one_line(tmp_path, capsys):
    folder = build_delivery(tmp_path / "in", "missing_column", only_required=True)
    assert main(["load", str(folder), "--db", str(tmp_path / "a.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {folder / 'medical_claim.csv'}: missing required column paid_amount for table medical_claim"
    assert main(["load", str(folder), "--db", str(tmp_path / "a.duckdb"), "--paid-through", "2024-13-01"]) == 2
    assert "--paid-through: '2024-13-01' is not a date (YYYY-MM-DD)" in capsys.readouterr().err
    assert main(["load", str(tmp_path / "nowhere"), "--db", str(tmp_path / "a.duckdb")]) == 2
    assert "nowhere: folder not found" in capsys.readouterr().err


@SHARES_THE_LOAD
def test_export_parquet_and_csv(loaded, tmp_path, capsys):
    _, db = loaded
    if not db.exists():
        main(["load", str(loaded[0]), "--db", str(db)])
    assert main(["export", "medical_claim", "--db", str(db), "--out", str(tmp_path / "mc.parquet")]) == 0
    t = pq.read_table(tmp_path / "mc.parquet")
    assert t.num_rows == query(db, "SELECT count(*) FROM medical_claim")[0][0]
    assert str(t.schema.field("paid_amount").type) == "decimal128(18, 2)"
    assert main(["export", "quarantine", "--db", str(db), "--out", str(tmp_path / "q.csv")]) == 0
    with (tmp_path / "q.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["rule"] for r in rows} >= {"money_format", "negative_amount", "shadow_claim_paid", "required"}
    assert {"run_id", "table_name", "source_file", "line_number", "rule", "rules", "message", "raw_row"} <= set(rows[0])
    assert "wrote" in capsys.readouterr().err
    assert main(["export", "load_reconciliation", "--db", str(db), "--out", str(tmp_path / "r.csv.gz")]) == 0
    assert pacsv.read_csv(tmp_path / "r.csv.gz").num_rows >= 7
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


@SHARES_THE_LOAD
def test_export_errors(loaded, tmp_path, capsys):
    _, db = loaded
    if not db.exists():
        main(["load", str(loaded[0]), "--db", str(db)])
    assert main(["export", "claims", "--db", str(db), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "unknown table 'claims'; available: eligibility, employer_group" in err and "quarantine" in err
    assert main(["export", "medical_claim", "--db", str(db), "--out", str(tmp_path / "x.xlsx")]) == 2
    assert "expected a file name ending in .parquet, .csv, .csv.gz" in capsys.readouterr().err
    assert main(["export", "medical_claim", "--db", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "database not found" in capsys.readouterr().err


def _big_delivery(folder: Path, n: int) -> None:
    """The base delivery with `n` extra medical claim lines (a load that takes a while)."""
    build_delivery(folder)
    path = folder / "medical_claim.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header, template = reader.fieldnames, next(reader)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
        w.writerows(dict(template, claim_id=f"X{i}") for i in range(n))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_a_load_killed_with_sigkill_leaves_the_previous_snapshot(tmp_path):
    db = tmp_path / "a.duckdb"
    assert main(["load", str(build_delivery(tmp_path / "first")), "--db", str(db)]) == 0
    before = db.read_bytes()
    _big_delivery(tmp_path / "big", 30000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "allpayer", "load", str(tmp_path / "big"), "--db", str(db)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # kill once the run writes rows into its private copy (the copy or its log grows by 256 KiB;
        # the whole load writes about 1.5 MiB there, less than it did before database files were
        # created in DuckDB's 1.5 format)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            written = sum(
                _size(p) - (len(before) if p.name.endswith(".tmp") else 0)
                for p in tmp_path.iterdir()
                if p.name.startswith(".a.duckdb.") and p.name.endswith((".tmp", ".tmp.wal"))
            )
            if written > 1 << 18:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the load finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".a.duckdb.") and p.name.endswith(".tmp")]
    print("killed before the swap" if stale else "killed after the swap")
    if stale:  # killed before the swap: the previous snapshot, byte for byte
        assert db.read_bytes() == before
        assert query(db, "SELECT count(*) FROM medical_claim") == [(8,)]
        assert [r["status"] for r in runs.list_runs(db)] == ["succeeded", "killed"]
    else:  # killed after the swap: the new snapshot, complete
        assert query(db, "SELECT count(*) FROM medical_claim") == [(30008,)]
    # either way the next load works and removes the leftovers
    assert main(["load", str(build_delivery(tmp_path / "again")), "--db", str(db)]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".a.duckdb.")]
