"""The Spark backend's warehouse folder (allpayer.warehouse), without Spark: load publishes Parquet
tables and run records, export copies a table, a failed run leaves the published snapshot as it was."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from allpayer import runs, warehouse
from allpayer.cli import main
from allpayer.errors import RunError

# one worker builds this module's fixture once (--dist loadgroup; see tests/test_xdist_groups.py)
pytestmark = pytest.mark.xdist_group("warehouse_cycle")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    base = tmp_path_factory.mktemp("warehouse")
    data, wh = base / "data", base / "wh"
    assert main(["generate", "--members", "120", "--seed", "3", "--out", str(data)]) == 0
    assert main(["load", str(data), "--db", str(wh), "--backend", "spark"]) == 0
    return data, wh


def parquet_count(wh, table):
    src = warehouse.parquet_glob(warehouse.table_path(wh, table))
    return duckdb.sql(f"select count(*) from read_parquet('{src}')").fetchall()[0][0]


def test_load_publishes_every_input_table_and_its_record(loaded):
    data, wh = loaded
    manifest = warehouse.read_manifest(wh)
    assert manifest["seq"] == 1
    for table in ("eligibility", "medical_claim", "provider_roster", "quarantine", "load_reconciliation", "runs"):
        assert table in manifest["tables"], table
        assert (wh / manifest["tables"][table]).is_dir()
    # The same rows as a DuckDB load of the same folder (read = loaded + quarantined holds there).
    ((n,),) = duckdb.sql(f"select count(*) from read_parquet('{data}/medical_claim.parquet')").fetchall()
    ((q,),) = duckdb.sql(
        f"select count(*) from read_parquet('{warehouse.parquet_glob(warehouse.table_path(wh, 'quarantine'))}') "
        "where table_name = 'medical_claim'").fetchall()
    assert parquet_count(wh, "medical_claim") + q == n
    records = warehouse.published_runs(wh)
    assert [(r["seq"], r["kind"], r["status"]) for r in records] == [(1, "load", "succeeded")]
    assert records[0]["run_id"] == manifest["run_id"]


def test_reloading_the_same_folder_adds_nothing_and_a_second_record(loaded, tmp_path):
    data, wh = loaded
    before = parquet_count(wh, "medical_claim")
    assert main(["load", str(data), "--db", str(wh), "--backend", "spark"]) == 0
    assert parquet_count(wh, "medical_claim") == before
    assert [r["seq"] for r in warehouse.published_runs(wh)] == [1, 2]
    # Folders of the first load that the second replaced are no longer named; nothing else is left over.
    manifest = warehouse.read_manifest(wh)
    assert all(rel.endswith(manifest["run_id"]) for name, rel in manifest["tables"].items())


def test_rows_restated_by_later_loads_are_all_kept_in_the_warehouse(tmp_path):
    """Each load into a warehouse starts from its published tables: the rows earlier loads
    restated are among them, so a second restatement adds to them."""
    base = Path(__file__).resolve().parent / "fixtures" / "bad_data" / "base"
    wh = tmp_path / "wh"
    assert main(["load", str(base), "--db", str(wh), "--backend", "spark"]) == 0
    lines = (base / "employer_group.csv").read_text().splitlines()
    for end in ("2024-06-30", "2024-09-30"):
        later = tmp_path / end
        later.mkdir()
        (later / "employer_group.csv").write_text(f"{lines[0]}\n{lines[1].replace(',2024-01-01,,', f',2024-01-01,{end},')}\n")
        assert main(["load", str(later), "--db", str(wh), "--backend", "spark"]) == 0
    src = warehouse.parquet_glob(warehouse.table_path(wh, "employer_group_replaced"))
    rows = duckdb.sql(f"select replaced_by_run_id, effective_end_date from read_parquet('{src}')").fetchall()
    # in the order of the loads that replaced them (run ids of one second do not sort by time)
    seq = {r["run_id"]: r["seq"] for r in warehouse.published_runs(wh)}
    assert [str(e) for _, e in sorted(rows, key=lambda r: seq[r[0]])] == ["None", "2024-06-30"]
    assert parquet_count(wh, "employer_group") == 1


def test_export_from_the_warehouse(loaded, tmp_path):
    _, wh = loaded
    out = tmp_path / "roster.csv"
    assert main(["export", "provider_roster", "--db", str(wh), "--backend", "spark", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == parquet_count(wh, "provider_roster") + 1
    assert main(["export", "no_such_table", "--db", str(wh), "--backend", "spark", "--out", str(out)]) != 0


def test_claim_detail_export_from_the_warehouse_withholds_like_duckdb(loaded, tmp_path):
    # the data-sharing withholding (opt-out, 42 CFR Part 2) applies to a warehouse's claim detail too
    _, wh = loaded
    out = tmp_path / "claims.parquet"
    assert main(["export", "medical_claim", "--db", str(wh), "--backend", "spark", "--out", str(out)]) == 0
    ((exported,),) = duckdb.sql(f"select count(*) from read_parquet('{out}')").fetchall()
    ((withheld,),) = duckdb.sql(
        f"select count(*) from read_parquet('{warehouse.parquet_glob(warehouse.table_path(wh, 'medical_claim'))}') "
        "where substance_use_redacted").fetchall()
    assert withheld > 0  # the generated population has Part 2 claims
    assert exported <= parquet_count(wh, "medical_claim") - withheld


class _NoSpark:
    """Stands in for the Spark connection where a test never computes."""

    def read_parquet(self, *args, **kwargs):
        return None


def test_a_failed_run_leaves_the_snapshot_and_logs_the_attempt(loaded):
    _, wh = loaded
    before = (wh / warehouse.MANIFEST).read_text()
    with pytest.raises(ZeroDivisionError):
        with warehouse.begin(wh, kind="run", con=_NoSpark()) as run:
            folder = wh / "data" / "member_months" / run.run_id
            folder.mkdir(parents=True)
            run.new_tables["member_months"] = f"data/member_months/{run.run_id}"
            1 / 0
    assert (wh / warehouse.MANIFEST).read_text() == before
    assert not folder.exists()
    attempts = runs.attempted_runs(wh)
    assert attempts[-1]["status"] == "failed" and attempts[-1]["error"].startswith("ZeroDivisionError")


def test_spark_backend_refuses_a_duckdb_file_and_duckdb_a_missing_warehouse(tmp_path):
    f = tmp_path / "x.duckdb"
    f.write_bytes(b"")
    with pytest.raises(RunError, match="warehouse folder"):
        warehouse.load_folder(tmp_path, f)
    assert main(["run", "--db", str(tmp_path / "none"), "--year", "2024", "--backend", "spark"]) != 0
    assert main(["run", "--db", str(f), "--year", "2024", "--spark-remote", "sc://h:1"]) != 0


def test_manifest_of_another_format_is_refused(tmp_path):
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / warehouse.MANIFEST).write_text(json.dumps({"format": "other", "tables": {}}))
    with pytest.raises(RunError, match="format"):
        warehouse.read_manifest(wh)


# The whole cycle on a warehouse folder without Spark: load, then the core run, quality, payments and
# settle, each through the warehouse's DuckDB session (on Spark: tests/spark/test_parity.py).
# Every table the warehouse publishes must equal the DuckDB file's, row by row.
@pytest.fixture(scope="module")
def cycles(tmp_path_factory):
    from tests.spark import cycle

    base = tmp_path_factory.mktemp("warehouse_cycle")
    data = base / "data"
    assert main(["generate", "--members", "200", "--seed", "11", "--out", str(data)]) == 0
    db, wh = base / "allpayer.duckdb", base / "wh"
    d = cycle.duckdb_cycle(data, db)
    w = cycle.warehouse_cycle(data, wh)
    return db, wh, d, w


def test_whole_cycle_on_a_warehouse_publishes_every_table_a_duckdb_file_has(cycles):
    from tests.spark import cycle

    db, wh, _, _ = cycles
    tables = set(cycle.duckdb_tables(db))
    assert set(warehouse.read_manifest(wh)["tables"]) == tables
    for stage_table in ("attribution", "quality_measure_results", "care_gaps", "settlement_lines"):
        assert stage_table in tables
    kinds = [(r["kind"], r["parameters"].get("stage")) for r in warehouse.published_runs(wh)]
    assert [k for k, _ in kinds] == [r["kind"] for r in runs.published_runs(db)]
    assert len(kinds) >= 5  # load, run, quality, payments, settle


def test_whole_cycle_on_a_warehouse_equals_duckdb_row_by_row(cycles):
    from tests.spark import cycle

    db, wh, _, _ = cycles
    problems, compared = [], {}
    for table in cycle.duckdb_tables(db):
        if table == "runs":
            continue
        expected, got = cycle.duckdb_rows(db, table), cycle.warehouse_rows(wh, table)
        compared[table] = len(expected[1])
        problems += cycle.differences(table, expected, got)
    assert not problems, "\n".join(problems)
    # Every stage's main table has rows, so the comparison proves something at each stage.
    for table in ("medical_claim", "attribution", "tcoc_member_month", "risk_scores", "quality_measure_results",
                  "quality_rates", "care_gaps", "settlement_lines", "settlement_statements"):
        assert compared.get(table), f"{table}: no rows to compare"


def test_ledger_of_a_warehouse_is_beside_the_folder_and_equals_duckdb(cycles):
    import sqlite3

    db, wh, _, _ = cycles

    def entries(path):
        con = sqlite3.connect(str(path))
        try:
            tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
            assert "ledger_entries" in tables, tables
            return sorted(con.execute(
                "select batch_key, batch_version, line_no, kind, debit_account, credit_account, amount_cents, "
                "program_id, period, rule, payer_ref, payee_ref from ledger_entries").fetchall(), key=repr)
        finally:
            con.close()

    w_store = wh.with_name(wh.name + ".store.sqlite")
    assert w_store.is_file()
    assert not list(wh.glob(".scratch-*"))
    d, w = entries(db.with_name(db.name + ".store.sqlite")), entries(w_store)
    assert len(d) > 0
    assert w == d


def _copy_of(loaded, tmp_path):
    import shutil

    _, wh = loaded
    copy = tmp_path / "wh"
    shutil.copytree(wh, copy)
    return copy


def test_duckdb_session_publishes_only_the_tables_a_run_changed(loaded, tmp_path):
    wh = _copy_of(loaded, tmp_path)
    before = warehouse.read_manifest(wh)
    with warehouse.duckdb_session(wh) as db:
        assert db.is_file() and db.parent.parent == wh
        with runs.begin(db, kind="run", parameters={"stage": "test"}) as run:
            run.con.raw_sql("CREATE TABLE answers AS SELECT 42::BIGINT AS n")
            run.con.raw_sql("DELETE FROM load_reconciliation WHERE false")  # touched, not changed
            run_id = run.run_id
    after = warehouse.read_manifest(wh)
    assert after["seq"] == before["seq"] + 1 and after["run_id"] == run_id
    changed = {t for t in after["tables"] if after["tables"][t] != before["tables"].get(t)}
    assert changed == {"answers", "runs"}
    assert duckdb.sql(f"select n from read_parquet('{warehouse.parquet_glob(warehouse.table_path(wh, 'answers'))}')"
                      ).fetchall() == [(42,)]
    assert [r["parameters"].get("stage") for r in warehouse.published_runs(wh)][-1] == "test"
    assert any(a["run_id"] == run_id for a in runs.attempted_runs(wh))
    assert not list(wh.glob(".scratch-*"))


def test_duckdb_session_publishes_nothing_after_a_failure_or_without_a_run(loaded, tmp_path):
    wh = _copy_of(loaded, tmp_path)
    before = (wh / warehouse.MANIFEST).read_text()
    with pytest.raises(ZeroDivisionError):
        with warehouse.duckdb_session(wh) as db:
            with runs.begin(db, kind="run") as run:
                run.con.raw_sql("CREATE TABLE answers AS SELECT 42 AS n")
                1 / 0
    assert (wh / warehouse.MANIFEST).read_text() == before
    assert runs.attempted_runs(wh)[-1]["status"] == "failed"
    with warehouse.duckdb_session(wh) as db:  # a what-if or a comparison: reads, records no run
        duckdb.connect(str(db)).execute("CREATE TABLE scratch_only AS SELECT 1 AS n").close()
    assert (wh / warehouse.MANIFEST).read_text() == before
    with warehouse.duckdb_session(wh, write=False) as db:  # a report: views only, outside the warehouse
        assert not db.is_relative_to(wh)
        con = duckdb.connect(str(db), read_only=True)
        kinds = dict(con.execute("select table_name, table_type from information_schema.tables").fetchall())
        con.close()
        assert kinds["attribution" if "attribution" in kinds else "medical_claim"] == "VIEW"
    assert not db.parent.exists()
    assert (wh / warehouse.MANIFEST).read_text() == before


def test_stage_commands_refuse_a_missing_warehouse_and_spark_options_without_spark(tmp_path):
    missing = tmp_path / "none"
    assert main(["quality", "--db", str(missing), "--year", "2024", "--backend", "spark"]) != 0
    assert main(["settle", "--db", str(missing), "--year", "2024", "--backend", "spark"]) != 0
    assert main(["payments", "--db", str(tmp_path / "x.duckdb"), "--year", "2024",
                 "--spark-remote", "sc://h:1"]) != 0
    assert not missing.exists()


def test_a_published_run_renders_its_reports_beside_the_warehouse(cycles, tmp_path, monkeypatch):
    """As a DuckDB file's publish does: a run published through the warehouse's DuckDB session
    renders the year's reports into PATH.reports/<run_id>/ (not into the scratch copy), and so does
    a run published by Spark (`warehouse.begin`, here its rendering step on the published snapshot)."""
    import shutil

    _, wh0, _, _ = cycles
    wh = tmp_path / "wh"
    shutil.copytree(wh0, wh)
    monkeypatch.setenv("ALLPAYER_RENDER_REPORTS", "1")
    monkeypatch.setenv("ALLPAYER_REPORT_FORMATS", "csv")
    with warehouse.duckdb_session(wh) as db:
        with runs.begin(db, kind="run", parameters={"year": 2024, "stage": "test"}) as run:
            run.con.raw_sql("CREATE TABLE answers AS SELECT 42::BIGINT AS n")
            run_id = run.run_id
        scratch_reports = db.with_name(db.name + ".reports")
    import os

    assert os.environ["ALLPAYER_RENDER_REPORTS"] == "1"  # switched off in the scratch only
    assert not scratch_reports.exists()
    index = json.loads((wh.with_name("wh.reports") / run_id / "index.json").read_text())
    assert index["run_id"] == run_id and index["year"] == 2024
    kinds = {r["kind"] for r in index["reports"]}
    assert {"practice", "payer", "regulator"} <= kinds, kinds
    for r in index["reports"]:
        assert (wh.with_name("wh.reports") / run_id / r["files"]["csv"]).is_file()

    # The Spark run's step: the published snapshot read through views, the same folder.
    shutil.rmtree(wh.with_name("wh.reports"))
    warehouse._render_on_publish(wh, None, "run", {"year": 2024})
    assert json.loads((wh.with_name("wh.reports") / run_id / "index.json").read_text())["run_id"] == run_id
    # Nothing for a load or a run without a year.
    shutil.rmtree(wh.with_name("wh.reports"))
    warehouse._render_on_publish(wh, None, "load", {"year": 2024})
    warehouse._render_on_publish(wh, None, "run", {})
    assert not wh.with_name("wh.reports").exists()


def test_checkpoint_is_a_no_op_on_duckdb():
    """DuckDB keeps the expression as it is (its results cannot depend on the call); Spark's
    behaviour is tested in tests/spark/test_checkpoint.py."""
    import pyarrow as pa

    from allpayer import backend

    con = backend.connect_duckdb()
    t = con.create_table("numbers", obj=pa.table({"a": [1, 2, 3]}))
    expr = t.filter(t.a > 1)
    assert backend.checkpoint(expr, "numbers") is expr
    assert backend.release_checkpoints(con) == 0
