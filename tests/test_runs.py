"""Run records and atomic publishing: ids, records, the sidecar, failure and SIGKILL safety, the
writer lock, and the `allpayer runs` commands."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from allpayer import __version__, runs
from allpayer.cli import main
from allpayer.errors import RunError

ROOT = Path(__file__).resolve().parent.parent


def count(db: Path, table: str = "t") -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


def publish_rows(db: Path, n: int, **kw) -> runs.Run:
    with runs.begin(db, kind="run", **kw) as run:
        run.con.con.execute("CREATE TABLE IF NOT EXISTS t (i BIGINT, run_id VARCHAR)").fetchall()
        run.con.con.execute(f"INSERT INTO t SELECT range, '{run.run_id}' FROM range({n})").fetchall()
    return run


def temp_files(db: Path) -> list[str]:
    return sorted(p.name for p in db.parent.iterdir() if p.name.startswith(f".{db.name}."))


def test_run_ids_sort_by_start_time():
    a = runs.new_run_id(dt.datetime(2025, 1, 2, 3, 4, 5))
    b = runs.new_run_id(dt.datetime(2025, 1, 2, 3, 4, 6))
    assert re.fullmatch(r"20250102T030405Z-[0-9a-f]{6}", a)
    assert a < b


def test_code_version_starts_with_the_package_version():
    assert runs.code_version().startswith(__version__)
    if runs.git_commit():
        assert runs.code_version() == f"{__version__}+g{runs.git_commit()[:12]}"


def test_inputs_are_described_with_sha256(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b\n1,2\n")
    [rec] = runs.describe_inputs([p], table="x")
    assert rec == {"path": str(p), "bytes": 8, "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest(), "table": "x"}


def test_a_run_publishes_its_snapshot_and_record(tmp_path):
    db = tmp_path / "a.duckdb"
    run = publish_rows(
        db, 3, paid_through=dt.date(2024, 12, 31), inputs=[{"path": "x", "sha256": "0" * 64}],
        terms={"vt-2024-medicaid": "2024.1"}, parameters={"performance_year": 2024},
    )
    assert count(db) == 3
    assert temp_files(db) == []
    [rec] = runs.published_runs(db)
    assert rec["run_id"] == run.run_id and rec["seq"] == 1 and rec["kind"] == "run"
    assert rec["status"] == "succeeded" and rec["paid_through"] == "2024-12-31"
    assert rec["inputs"] == [{"path": "x", "sha256": "0" * 64}]
    assert rec["terms"] == {"vt-2024-medicaid": "2024.1"}
    assert rec["parameters"] == {"performance_year": 2024}
    events = [json.loads(line) for line in runs.sidecar_path(db).read_text().splitlines()]
    assert [(e["event"], e["status"]) for e in events] == [("started", "running"), ("finished", "succeeded")]
    # a second run builds on the first and gets the next seq
    run2 = publish_rows(db, 2)
    assert count(db) == 5
    assert [r["seq"] for r in runs.published_runs(db)] == [1, 2]
    assert runs.get_run(db, run2.run_id)["published"] is True


def test_a_failed_run_leaves_the_previous_snapshot(tmp_path):
    db = tmp_path / "a.duckdb"
    publish_rows(db, 3)
    before = db.read_bytes()
    with pytest.raises(ZeroDivisionError):
        with runs.begin(db, kind="run") as run:
            run.con.con.execute("DELETE FROM t").fetchall()
            run.con.con.execute("CREATE TABLE half_written AS SELECT 1").fetchall()
            1 / 0
    assert db.read_bytes() == before
    assert count(db) == 3
    assert temp_files(db) == []
    listed = runs.list_runs(db)
    assert [(r["status"], r["published"]) for r in listed] == [("succeeded", True), ("failed", False)]
    assert listed[1]["error"] == "ZeroDivisionError: division by zero"


def test_readers_see_the_last_snapshot_while_a_run_writes(tmp_path):
    db = tmp_path / "a.duckdb"
    publish_rows(db, 3)
    with runs.begin(db, kind="run") as run:
        run.con.con.execute("INSERT INTO t SELECT range, 'x' FROM range(10)").fetchall()
        reader = runs.open_snapshot(db)
        assert reader.con.execute("SELECT count(*) FROM t").fetchall()[0][0] == 3
        reader.disconnect()
        assert runs.is_locked(db)
    assert not runs.is_locked(db)
    assert count(db) == 13


def test_one_writer_at_a_time(tmp_path):
    db = tmp_path / "a.duckdb"
    with runs.begin(db, kind="run"):
        with pytest.raises(RunError, match="another run is writing to this database"):
            with runs.begin(db, kind="run"):
                pass
    publish_rows(db, 1)  # the lock is released afterwards
    assert count(db) == 1


def test_bad_arguments(tmp_path):
    with pytest.raises(RunError, match="unknown run kind"):
        with runs.begin(tmp_path / "a.duckdb", kind="settle"):
            pass
    with pytest.raises(RunError, match="does not exist"):
        with runs.begin(tmp_path / "no" / "a.duckdb", kind="run"):
            pass
    assert runs.parse_date("2024-12-31") == dt.date(2024, 12, 31)
    assert runs.parse_date(None) is None
    with pytest.raises(RunError, match=r"--paid-through: '12/31/2024' is not a date \(YYYY-MM-DD\)"):
        runs.parse_date("12/31/2024")


KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from allpayer import runs
    with runs.begin(sys.argv[1], kind="run") as run:
        run.con.con.execute("DELETE FROM t").fetchall()
        run.con.con.execute("INSERT INTO t SELECT range, 'doomed' FROM range(200000)").fetchall()
        run.con.con.execute("CHECKPOINT").fetchall()
        print("ready", flush=True)
        time.sleep(60)
    """
)


def test_sigkill_mid_run_leaves_the_snapshot_intact_and_the_next_run_cleans_up(tmp_path):
    db = tmp_path / "a.duckdb"
    publish_rows(db, 3)
    before = db.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(db)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert temp_files(db)  # the run's private copy exists
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert db.read_bytes() == before
    assert count(db) == 3  # readable, previous snapshot
    listed = runs.list_runs(db)
    assert [r["status"] for r in listed] == ["succeeded", "killed"]
    assert not runs.is_locked(db)
    stale = temp_files(db)
    assert stale
    publish_rows(db, 1)
    assert temp_files(db) == []
    assert count(db) == 4


def test_get_run_by_prefix(tmp_path):
    db = tmp_path / "a.duckdb"
    run = publish_rows(db, 1)
    assert runs.get_run(db, run.run_id[:20])["run_id"] == run.run_id
    with pytest.raises(RunError, match="no run 'nope'"):
        runs.get_run(db, "nope")


# ------------------------------------------------------------------ CLI


def test_runs_cli_list_and_show(tmp_path, capsys):
    db = tmp_path / "a.duckdb"
    run = publish_rows(db, 2, paid_through=dt.date(2024, 6, 30), inputs=[{"path": "in.csv", "bytes": 9, "sha256": "ab" * 32}])
    with pytest.raises(ValueError):
        with runs.begin(db, kind="run"):
            raise ValueError("bad period")
    assert main(["runs", "list", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["status"], r["published"]) for r in listed] == [("succeeded", True), ("failed", False)]
    assert listed[1]["error"] == "ValueError: bad period"
    assert main(["runs", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert run.run_id in out and "succeeded" in out and "failed" in out
    assert main(["runs", "show", run.run_id, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "paid_through: 2024-06-30" in out and "ab" * 32 in out
    assert main(["runs", "show", run.run_id, "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"][0]["path"] == "in.csv"
    assert main(["runs", "show", "zzz", "--db", str(db)]) == 2
    assert "no run 'zzz'" in capsys.readouterr().err


def test_runs_cli_on_a_database_without_runs(tmp_path, capsys):
    import duckdb

    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    assert main(["runs", "list", "--db", str(tmp_path / "empty.duckdb")]) == 0
    assert "no runs recorded" in capsys.readouterr().out


def test_runs_cli_on_a_missing_database_is_an_error(tmp_path, capsys):
    """A misspelt --db is not an empty history."""
    assert main(["runs", "list", "--db", str(tmp_path / "none.duckdb")]) != 0
    assert "no such database" in capsys.readouterr().err


def test_a_run_starts_from_a_byte_identical_copy_of_the_snapshot(tmp_path):
    src = tmp_path / "snap.duckdb"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(payload)
    dst = tmp_path / "copy.duckdb"
    dst.write_bytes(b"stale bytes of a killed run")
    runs.copy_snapshot(src, dst)
    assert dst.read_bytes() == payload
    dst.write_bytes(b"changed")  # the run writes its copy; the snapshot stays as it was
    assert src.read_bytes() == payload
