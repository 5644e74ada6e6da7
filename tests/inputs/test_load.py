"""Loading deliveries: reconciliation, provenance, idempotent re-delivery, conflicts, eligibility
flags, Parquet parity, paid-through cut-offs and the adjustment convention."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import duckdb
import pytest

from allpayer import runs
from allpayer.errors import InputFileError, RunError
from allpayer.inputs import load as loader
from allpayer.inputs.schema import TABLES

from .conftest import BASE, build_delivery, query

D = dt.date

BASE_COUNTS = {
    "eligibility": 4,
    "employer_group": 1,
    "provider_roster": 3,
    "medical_claim": 8,
    "pharmacy_claim": 2,
    "lab_result": 1,
    "observation": 2,
}


def counts(result) -> dict:
    return {t.table: (t.read, t.loaded, t.already_loaded, t.quarantined) for t in result.tables}


def write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def base_rows(table: str) -> tuple[list[str], list[dict]]:
    with (BASE / f"{table}.csv").open(newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames), list(r)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory):
    """The valid base delivery loaded once into a fresh database (read-only use)."""
    tmp = tmp_path_factory.mktemp("base")
    db = tmp / "base.duckdb"
    result = loader.load_folder(build_delivery(tmp / "in"), db)
    return db, result


def test_every_row_is_loaded_and_counts_reconcile(base_db):
    db, result = base_db
    assert counts(result) == {t: (n, n, 0, 0) for t, n in BASE_COUNTS.items()}
    assert all(t.reconciles for t in result.tables)
    recon = query(db, "SELECT table_name, read, loaded, already_loaded, quarantined, table_rows FROM load_reconciliation")
    assert {r[0]: r[1:] for r in recon} == {t: (n, n, 0, 0, n) for t, n in BASE_COUNTS.items()}
    assert query(db, "SELECT count(*) FROM quarantine") == [(0,)]


def test_loaded_tables_have_types_and_provenance(base_db):
    db, result = base_db
    types = dict(query(db, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'medical_claim'"))
    assert types["paid_amount"] == "DECIMAL(18,2)"
    assert types["claim_start_date"] == "DATE"
    assert types["claim_line_number"] == "BIGINT"
    assert types["substance_use_redacted"] == "BOOLEAN"
    assert types["outside_eligibility"] == "BOOLEAN"
    rows = query(
        db,
        "SELECT claim_id, claim_line_number, adjustment_sequence, paid_amount, source_file, line_number, load_run_id "
        "FROM medical_claim ORDER BY line_number",
    )
    assert rows[0] == ("C1", 1, 0, Decimal("92.50"), "medical_claim.csv", 2, result.run_id)
    assert [r[5] for r in rows] == list(range(2, 10))
    assert query(db, "SELECT diagnosis_code_1, hcpcs_code FROM medical_claim WHERE claim_id = 'C3'") == [("K3580", None)]
    assert "row_hash" not in types  # rows are compared by content when they repeat (`loader.decide`)


def test_flags_and_reconciliation_lines(base_db):
    db, result = base_db
    mc = result.table("medical_claim")
    assert (mc.outside_eligibility, mc.substance_use_redacted) == (1, 3)
    assert result.table("pharmacy_claim").outside_eligibility == 0
    assert result.table("eligibility").data_sharing_opt_out == 1
    # C5 (2025-02-01) is after MD004's only span, which ends 2024-12-31
    assert query(db, "SELECT claim_id FROM medical_claim WHERE outside_eligibility") == [("C5",)]
    assert query(db, "SELECT count(*) FROM medical_claim WHERE outside_eligibility IS NULL") == [(0,)]


def test_paid_through_defaults_to_the_latest_paid_date_loaded(base_db):
    db, result = base_db
    assert result.paid_through == D(2025, 2, 20)
    assert runs.get_run(db, result.run_id)["paid_through"] == "2025-02-20"
    con = runs.open_snapshot(db)
    try:
        assert loader.latest_paid_date(con) == D(2025, 2, 20)
        assert loader.resolve_paid_through(con) == D(2025, 2, 20)
        assert loader.resolve_paid_through(con, D(2024, 6, 30)) == D(2024, 6, 30)
    finally:
        con.disconnect()


def test_run_record_has_input_hashes(base_db):
    db, result = base_db
    rec = runs.get_run(db, result.run_id)
    assert rec["kind"] == "load" and rec["status"] == "succeeded"
    by_file = {i["source_file"]: i for i in rec["inputs"]}
    assert set(by_file) == {f"{t}.csv" for t in BASE_COUNTS}
    mc = by_file["medical_claim.csv"]
    assert mc["sha256"] == runs.file_sha256(BASE / "medical_claim.csv") and mc["table"] == "medical_claim"
    assert rec["summary"]["tables"]["medical_claim"]["outside_eligibility"] == 1


def test_claims_as_of_and_net_claim_lines(base_db):
    db, _ = base_db
    con = runs.open_snapshot(db)
    try:
        as_of = loader.claims_as_of(con, D(2024, 9, 30))
        ids = con.execute(as_of.select("claim_id", "adjustment_sequence").order_by(["claim_id", "adjustment_sequence"]))
        # C4's reversal and correction were paid 2024-10-01; C5 was paid in 2025
        assert list(zip(ids.claim_id, ids.adjustment_sequence)) == [("C1", 0), ("C1", 0), ("C2", 0), ("C3", 0), ("C4", 0)]
        net = con.execute(loader.net_claim_lines(loader.claims_as_of(con, D(2025, 12, 31))).order_by(["claim_id", "claim_line_number"]))
        assert len(net) == 6
        c4 = net[net.claim_id == "C4"].iloc[0]
        # 80.00 - 80.00 + 85.00 paid; 100.00 - 100.00 + 105.00 allowed; attributes of the correction
        assert (c4.paid_amount, c4.allowed_amount, c4.hcpcs_code, c4.adjustment_rows) == (
            Decimal("85.00"), Decimal("105.00"), "99214", 3,
        )
        assert sum(net.paid_amount) == Decimal("402.50")
        assert sum(net.allowed_amount) == Decimal("5772.75")
        with pytest.raises(RunError, match="not a claim table"):
            loader.claims_as_of(con, D(2024, 1, 1), table="eligibility")
    finally:
        con.disconnect()


def test_reloading_the_same_folder_changes_nothing(tmp_path):
    folder = build_delivery(tmp_path / "in")
    db = tmp_path / "a.duckdb"
    first = loader.load_folder(folder, db)
    before = {t: query(db, f"SELECT count(*) FROM {t}")[0][0] for t in BASE_COUNTS}
    second = loader.load_folder(folder, db)
    assert counts(second) == {t: (n, 0, n, 0) for t, n in BASE_COUNTS.items()}
    assert {t: query(db, f"SELECT count(*) FROM {t}")[0][0] for t in BASE_COUNTS} == before
    assert query(db, "SELECT DISTINCT load_run_id FROM medical_claim") == [(first.run_id,)]
    assert query(db, "SELECT count(DISTINCT run_id) FROM load_reconciliation") == [(2,)]


def test_a_redelivered_claim_is_already_loaded_and_a_changed_one_is_a_conflict(tmp_path):
    db = tmp_path / "a.duckdb"
    first = loader.load_folder(build_delivery(tmp_path / "in"), db)
    header, rows = base_rows("medical_claim")
    new = dict(rows[0], claim_id="C9")
    changed = dict(rows[1], paid_amount="176.00", allowed_amount="176.00")
    write_csv(tmp_path / "d2" / "medical_claim.csv", header, [rows[0], new, changed])
    result = loader.load_folder(tmp_path / "d2", db)
    assert counts(result) == {"medical_claim": (3, 1, 1, 1)}
    assert query(db, "SELECT count(*) FROM medical_claim") == [(9,)]
    [(rule, message, raw)] = query(db, f"SELECT rule, message, raw_row FROM quarantine WHERE run_id = '{result.run_id}'")
    assert rule == "conflicting_duplicate"
    assert message == (
        "same key (claim_id, claim_line_number, adjustment_sequence) as a loaded row "
        f"(medical_claim.csv line 3, run {first.run_id}) with different content"
    )
    assert '"paid_amount":"176.00"' in raw and '"claim_id":"C1"' in raw and ":null" not in raw


def test_repeated_rows_are_compared_by_their_typed_content(tmp_path):
    """A row delivered again is the same when every contract column parses to the same value
    (spellings of a number, a code, a flag, white space) and a conflict when a value differs,
    is emptied or is added, or when the delivery lacks a column the stored row has; within one
    delivery, a later row against the first of its key, the same way."""
    db = tmp_path / "a.duckdb"
    first = loader.load_folder(build_delivery(tmp_path / "in"), db)
    header, rows = base_rows("medical_claim")
    c1 = rows[0]  # paid 92.50, E11.9, I10, rendering NPI, no facility NPI
    respelled = dict(c1, paid_amount="92.5", allowed_amount="+92.500", diagnosis_code_1="e119",
                     claim_type=" Professional ", substance_use_redacted="FALSE")
    emptied = dict(rows[1], charge_amount="")  # 210.00 stored
    added = dict(rows[2], facility_npi="1000000012")  # stored without a facility NPI
    changed = dict(rows[3], claim_end_date="2024-04-04")  # 2024-04-03 stored
    new = dict(c1, claim_id="C9")
    copy_of_new = dict(new, paid_amount="92.500")
    conflict_of_new = dict(new, diagnosis_code_2="")
    write_csv(tmp_path / "d2" / "medical_claim.csv", header,
              [respelled, emptied, added, changed, new, copy_of_new, conflict_of_new])
    result = loader.load_folder(tmp_path / "d2", db)
    assert counts(result) == {"medical_claim": (7, 1, 1, 5)}
    got = query(db, f"SELECT line_number, rule, message FROM quarantine WHERE run_id = '{result.run_id}' ORDER BY 1")
    stored = ", run " + first.run_id + ") with different content"
    key = "same key (claim_id, claim_line_number, adjustment_sequence) as "
    assert got == [
        (3, "conflicting_duplicate", key + "a loaded row (medical_claim.csv line 3" + stored),
        (4, "conflicting_duplicate", key + "a loaded row (medical_claim.csv line 4" + stored),
        (5, "conflicting_duplicate", key + "a loaded row (medical_claim.csv line 5" + stored),
        (7, "duplicate_row", "exact copy of medical_claim.csv line 6"),
        (8, "conflicting_duplicate", key + "medical_claim.csv line 6 in this delivery, with different content"),
    ]
    # a delivery that lacks a column is the same only where the stored row has it empty
    narrow = [c for c in header if c != "charge_amount"]
    write_csv(tmp_path / "d3" / "medical_claim.csv", narrow,
              [{c: r[c] for c in narrow} for r in (rows[0], new)])
    result = loader.load_folder(tmp_path / "d3", db)
    assert counts(result) == {"medical_claim": (2, 0, 0, 2)}  # both have a charge stored
    write_csv(tmp_path / "d4" / "medical_claim.csv", header, [dict(rows[0], charge_amount="150")])
    assert counts(loader.load_folder(tmp_path / "d4", db)) == {"medical_claim": (1, 0, 1, 0)}


def test_a_database_with_row_fingerprints_loses_them_at_the_next_load(tmp_path):
    """Earlier versions stored an MD5 of every row (``row_hash``): the next load drops the
    column and compares the stored rows by content."""
    db = tmp_path / "a.duckdb"
    folder = build_delivery(tmp_path / "in")
    loader.load_folder(folder, db)
    with duckdb.connect(str(db)) as con:
        for t in BASE_COUNTS:
            con.execute(f'ALTER TABLE "{t}" ADD COLUMN row_hash VARCHAR')
            con.execute(f"UPDATE \"{t}\" SET row_hash = md5(CAST(line_number AS VARCHAR))")
    second = loader.load_folder(folder, db)
    assert counts(second) == {t: (n, 0, n, 0) for t, n in BASE_COUNTS.items()}
    for t in BASE_COUNTS:
        assert "row_hash" not in [r[0] for r in query(db, f'DESCRIBE "{t}"')]


@pytest.mark.parametrize("key_hash", ["0", "length(concat_ws('|', {keys})) % 2"])
def test_keys_that_share_a_hash_are_told_apart(tmp_path, monkeypatch, key_hash):
    """Repeated keys are found by a hash of the key first (`load.KEY_HASH_SQL`), then by the key
    itself: with a hash that every row (or half the rows) share, the same rows are duplicates,
    conflicts and new rows, with the same messages, as with the real one."""
    header, rows = base_rows("medical_claim")
    copy, conflict = rows[0], dict(rows[1], paid_amount="176.00", allowed_amount="176.00")

    def load(name: str):
        folder = build_delivery(tmp_path / name / "in")
        write_csv(folder / "medical_claim.csv", header, rows + [copy, conflict])
        db = tmp_path / name / "a.duckdb"
        result = loader.load_folder(folder, db)
        quarantined = query(db, "SELECT source_file, line_number, rule, message FROM quarantine ORDER BY 1, 2")
        stored = query(db, "SELECT * EXCLUDE (load_run_id) FROM medical_claim ORDER BY source_file, line_number")
        return counts(result)["medical_claim"], quarantined, stored

    real = load("real")
    assert real[0] == (10, 8, 0, 2)
    assert [r[2] for r in real[1]] == ["duplicate_row", "conflicting_duplicate"]
    monkeypatch.setattr(loader, "KEY_HASH_SQL", key_hash)
    assert load("shared") == real


def test_later_eligibility_clears_the_outside_flag(tmp_path):
    db = tmp_path / "a.duckdb"
    loader.load_folder(build_delivery(tmp_path / "in"), db)
    header, rows = base_rows("eligibility")
    span = dict(rows[3], enrollment_start_date="2025-01-01", enrollment_end_date="2025-12-31")
    write_csv(tmp_path / "d2" / "eligibility.csv", header, [span])
    result = loader.load_folder(tmp_path / "d2", db)
    assert counts(result) == {"eligibility": (1, 1, 0, 0)}
    assert query(db, "SELECT count(*) FROM medical_claim WHERE outside_eligibility") == [(0,)]


def test_long_term_institutional_status_loads_with_the_eligibility_spans(tmp_path):
    """``eligibility.long_term_institutional_flag`` (optional) marks the spans of long-term
    institutional status that the risk scores read: stored as a boolean (1/0, Y/N, true/false;
    empty is unknown), and a value that is none of these is quarantined with its reason."""
    db = tmp_path / "a.duckdb"
    loader.load_folder(build_delivery(tmp_path / "in"), db)
    header, rows = base_rows("eligibility")
    p1 = rows[0]  # P001, Medicare 2024: community to March, in a nursing home from April
    spans = [
        dict(p1, enrollment_start_date="2025-01-01", enrollment_end_date="2025-03-31", long_term_institutional_flag="0"),
        dict(p1, enrollment_start_date="2025-04-01", enrollment_end_date="2025-12-31", long_term_institutional_flag="Y"),
        dict(p1, enrollment_start_date="2026-01-01", enrollment_end_date="2026-12-31", long_term_institutional_flag=""),
        dict(p1, enrollment_start_date="2027-01-01", enrollment_end_date="2027-12-31", long_term_institutional_flag="nh"),
    ]
    write_csv(tmp_path / "d2" / "eligibility.csv", [*header, "long_term_institutional_flag"], spans)
    result = loader.load_folder(tmp_path / "d2", db)
    assert counts(result) == {"eligibility": (4, 3, 0, 1)}
    assert query(db, "SELECT enrollment_start_date, long_term_institutional_flag FROM eligibility "
                     "WHERE enrollment_start_date >= DATE '2025-01-01' ORDER BY 1") == [
        (D(2025, 1, 1), False), (D(2025, 4, 1), True), (D(2026, 1, 1), None)]
    assert query(db, f"SELECT rule, message FROM quarantine WHERE run_id = '{result.run_id}'") == [
        ("type_bool", "long_term_institutional_flag: 'nh' is not true or false")]


def test_a_partial_delivery_needs_the_required_tables_loaded_before(tmp_path):
    header, rows = base_rows("medical_claim")
    write_csv(tmp_path / "d" / "medical_claim.csv", header, rows)
    db = tmp_path / "a.duckdb"
    with pytest.raises(InputFileError, match="missing required table eligibility"):
        loader.load_folder(tmp_path / "d", db)
    assert not db.exists()  # nothing published
    assert [r["status"] for r in runs.list_runs(db)] == ["failed"]


def test_a_failed_load_leaves_the_database_as_it_was(tmp_path):
    db = tmp_path / "a.duckdb"
    loader.load_folder(build_delivery(tmp_path / "in"), db)
    before = db.read_bytes()
    broken = build_delivery(tmp_path / "broken", "missing_column")
    with pytest.raises(InputFileError, match="missing required column paid_amount"):
        loader.load_folder(broken, db)
    assert db.read_bytes() == before
    assert [r["status"] for r in runs.list_runs(db)] == ["succeeded", "failed"]


def _typed_parquet(csv_path: Path, out: Path, table: str) -> None:
    """Write a base CSV as Parquet with the types a generator would use."""
    spec = TABLES[table]
    header = csv_path.read_text().splitlines()[0].split(",")
    t = pacsv.read_csv(csv_path, convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in header}))
    cols = {}
    for name in t.column_names:
        kind = spec.column(name).kind
        col = pa.array([None if v == "" else v for v in t[name].to_pylist()], pa.string())
        if kind == "money":
            col = pa.array([None if v is None else Decimal(v) for v in col.to_pylist()], pa.decimal128(18, 2))
        elif kind == "date":
            col = pa.array([None if v is None else dt.date.fromisoformat(v) for v in col.to_pylist()], pa.date32())
        elif kind == "bool":
            col = pa.array([None if v is None else v == "true" for v in col.to_pylist()], pa.bool_())
        elif kind == "int":
            col = col.cast(pa.int64())
        cols[name] = col
    pq.write_table(pa.table(cols), out)


def test_parquet_and_part_folders_load_the_same_rows_as_csv(tmp_path):
    db = tmp_path / "a.duckdb"
    loader.load_folder(build_delivery(tmp_path / "in"), db)
    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    for table in BASE_COUNTS:
        if table == "medical_claim":
            continue
        _typed_parquet(BASE / f"{table}.csv", pq_dir / f"{table}.parquet", table)
    # medical claims as a folder of two CSV parts (one gzipped)
    header, rows = base_rows("medical_claim")
    write_csv(pq_dir / "medical_claim" / "part-1.csv", header, rows[:5])
    write_csv(pq_dir / "medical_claim" / "part-2.csv", header, rows[5:])
    (pq_dir / "medical_claim" / "part-2.csv.gz").write_bytes(gzip.compress((pq_dir / "medical_claim" / "part-2.csv").read_bytes()))
    (pq_dir / "medical_claim" / "part-2.csv").unlink()
    result = loader.load_folder(pq_dir, db)
    # identical typed content: everything is recognised as already loaded
    assert counts(result) == {t: (n, 0, n, 0) for t, n in BASE_COUNTS.items()}
    fresh = tmp_path / "b.duckdb"
    result = loader.load_folder(pq_dir, fresh)
    assert counts(result) == {t: (n, n, 0, 0) for t, n in BASE_COUNTS.items()}
    assert query(fresh, "SELECT DISTINCT source_file FROM medical_claim ORDER BY 1") == [
        ("medical_claim/part-1.csv",), ("medical_claim/part-2.csv.gz",)
    ]
    assert query(fresh, "SELECT line_number FROM medical_claim WHERE source_file LIKE '%part-2%' ORDER BY 1") == [
        (2,), (3,), (4,)
    ]
    assert query(fresh, "SELECT source_file, line_number FROM eligibility ORDER BY 2") == [
        ("eligibility.parquet", 1), ("eligibility.parquet", 2), ("eligibility.parquet", 3), ("eligibility.parquet", 4)
    ]


def test_an_old_run_is_reproduced_after_later_months_are_loaded(tmp_path):
    """Claims as of an old run's paid-through date, and loaded by that run or earlier, do not
    change when later months (and a late claim paid in the old period) arrive."""
    db = tmp_path / "a.duckdb"
    header, rows = base_rows("medical_claim")
    early = [r for r in rows if r["paid_date"] <= "2024-06-30"]
    late = [r for r in rows if r["paid_date"] > "2024-06-30"]
    d1 = build_delivery(tmp_path / "d1")
    write_csv(d1 / "medical_claim.csv", header, early)
    first = loader.load_folder(d1, db)
    assert first.paid_through == D(2024, 5, 10)  # the pharmacy claim R2

    def snapshot(run_id=None):
        con = runs.open_snapshot(db)
        try:
            t = loader.claims_as_of(con, first.paid_through, through_run=run_id)
            net = loader.net_claim_lines(t)
            return con.execute(net.drop("load_run_id").order_by(["claim_id", "claim_line_number"])).to_dict("records")
        finally:
            con.disconnect()

    before = snapshot(first.run_id)
    late_claim = dict(rows[0], claim_id="C7", paid_date="2024-04-15")  # paid in the old period, delivered late
    write_csv(tmp_path / "d2" / "medical_claim.csv", header, late + [late_claim])
    second = loader.load_folder(tmp_path / "d2", db)
    assert second.paid_through == D(2025, 2, 20)
    assert snapshot(first.run_id) == before
    assert len(snapshot()) == len(before) + 1  # without the run cut-off the late claim appears


def test_parquet_parts_are_stored_in_file_and_line_order_with_the_delivered_text_of_rejects(tmp_path):
    """A folder of Parquet parts is validated where it lies: stored rows keep (source_file,
    line_number) order (parts in name order, so part-10 before part-2), and quarantined rows,
    the failing ones and the valid duplicates, carry the text as delivered."""
    folder = build_delivery(tmp_path / "in")
    (folder / "medical_claim.csv").unlink()
    header, rows = base_rows("medical_claim")
    negative = dict(rows[2], claim_id="C9", paid_amount="-5.00", allowed_amount="-5.00")
    conflict = dict(rows[1], paid_amount="176.00", allowed_amount="176.00")
    parts = {
        "part-1": rows[:3],
        "part-10": [conflict, negative],  # row 1: same key as part-1 row 2, other amounts; row 2: negative
        "part-2": rows[3:] + [rows[0]],  # row 6: an exact copy of part-1 row 1
    }
    (folder / "medical_claim").mkdir()
    for name, part in parts.items():
        write_csv(tmp_path / "csv" / f"{name}.csv", header, part)
        _typed_parquet(tmp_path / "csv" / f"{name}.csv", folder / "medical_claim" / f"{name}.parquet", "medical_claim")
    db = tmp_path / "a.duckdb"
    result = loader.load_folder(folder, db)
    assert counts(result)["medical_claim"] == (11, 8, 0, 3)
    stored = query(db, "SELECT source_file, line_number FROM medical_claim ORDER BY rowid")
    assert stored == sorted(stored)
    assert [s for s, _ in stored] == ["medical_claim/part-1.parquet"] * 3 + ["medical_claim/part-2.parquet"] * 5
    quarantined = query(
        db, "SELECT source_file, line_number, rule, raw_row FROM quarantine WHERE table_name = 'medical_claim' ORDER BY 1, 2"
    )
    assert [(s, n, r) for s, n, r, _ in quarantined] == [
        ("medical_claim/part-10.parquet", 1, "conflicting_duplicate"),
        ("medical_claim/part-10.parquet", 2, "negative_amount"),
        ("medical_claim/part-2.parquet", 6, "duplicate_row"),
    ]
    conflict_raw, negative_raw, copy_raw = (raw for *_, raw in quarantined)
    assert '"claim_id":"C1"' in conflict_raw and '"paid_amount":"176.00"' in conflict_raw
    assert '"claim_id":"C9"' in negative_raw and '"paid_amount":"-5.00"' in negative_raw
    assert '"claim_id":"C1"' in copy_raw and '"claim_line_number":"1"' in copy_raw
    assert ":null" not in conflict_raw + negative_raw + copy_raw
    # The claims were flagged as they were stored: recomputing the flag changes nothing.
    before = query(db, "SELECT source_file, line_number, outside_eligibility FROM medical_claim ORDER BY 1, 2")
    con = duckdb.connect(str(db))
    try:
        loader.flag_outside_eligibility(con, "medical_claim")
        after = con.execute("SELECT source_file, line_number, outside_eligibility FROM medical_claim ORDER BY 1, 2").fetchall()
    finally:
        con.close()
    assert after == before and {flag for *_, flag in before} <= {True, False}


def test_a_load_lowers_the_memory_limit_never_raises_it(monkeypatch):
    monkeypatch.delenv("ALLPAYER_DUCKDB_MEMORY", raising=False)
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '8GB'")
        loader.bound_memory(con, "512MB")
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] in ("488.2 MiB", "512.0 MB")
        loader.bound_memory(con)  # the default, 4GB, is higher than the current limit: left as it is
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] in ("488.2 MiB", "512.0 MB")
        con.execute("SET memory_limit = '8GB'")
        loader.bound_memory(con)
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] in ("3.7 GiB", "4.0 GB")
        monkeypatch.setenv("ALLPAYER_DUCKDB_MEMORY", "8GB")  # the user's own limit is kept
        loader.bound_memory(con, "512MB")
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] in ("3.7 GiB", "4.0 GB")
    finally:
        con.close()


def _stored(db: Path, table: str) -> tuple[list, list]:
    """The columns (name, type, in order) and rows (in stored order, run ids aside) of a table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table]
        ).fetchall()
        run = "run_id" if ("run_id", "VARCHAR") in cols else "load_run_id"
        rows = con.execute(f'SELECT * EXCLUDE ({run}) FROM "{table}" ORDER BY rowid').fetchall()
    finally:
        con.close()
    return cols, rows


def _parquet_delivery(tmp_path: Path) -> Path:
    """The base delivery as typed Parquet, medical claims in two parts with a conflicting copy, a
    negative amount and an exact copy (quarantined), and a claim outside its member's eligibility."""
    folder = tmp_path / "pq"
    folder.mkdir()
    for table in BASE_COUNTS:
        if table != "medical_claim":
            _typed_parquet(BASE / f"{table}.csv", folder / f"{table}.parquet", table)
    header, rows = base_rows("medical_claim")
    outside = dict(rows[0], claim_id="C8", claim_start_date="2019-01-05", claim_end_date="2019-01-05",
                   claim_line_start_date="2019-01-05", claim_line_end_date="2019-01-05")
    negative = dict(rows[2], claim_id="C9", paid_amount="-5.00", allowed_amount="-5.00")
    conflict = dict(rows[1], paid_amount="176.00", allowed_amount="176.00")
    (folder / "medical_claim").mkdir()
    for name, part in {"part-1": rows[:4] + [outside], "part-2": rows[4:] + [rows[0], conflict, negative]}.items():
        write_csv(tmp_path / "csv" / f"{name}.csv", header, part)
        _typed_parquet(tmp_path / "csv" / f"{name}.csv", folder / "medical_claim" / f"{name}.parquet", "medical_claim")
    return folder


def test_validating_into_an_empty_stored_table_stores_what_the_insert_does(tmp_path, monkeypatch):
    """Parquet files loaded into an empty table are validated straight into the new stored table
    (`_store_in_place`); loaded through the temporary verdict and an insert instead, every stored
    table has the same columns in the same order, the same rows in the same order, and the
    quarantine and counts are the same."""
    folder = _parquet_delivery(tmp_path)
    tables = [*BASE_COUNTS, "quarantine"]
    placed = []
    store = loader._store_in_place
    monkeypatch.setattr(loader, "_store_in_place", lambda raw, table, verdict: placed.append(table) or store(raw, table, verdict))
    in_place = loader.load_folder(folder, tmp_path / "a.duckdb")
    assert sorted(placed) == sorted(BASE_COUNTS)  # every table, each a Parquet file into an empty table
    assert counts(in_place)["medical_claim"] == (12, 9, 0, 3)
    assert in_place.table("medical_claim").outside_eligibility == 2  # the base delivery has one too
    monkeypatch.setattr(loader, "_stored_in_place", lambda raw, table: False)
    inserted = loader.load_folder(folder, tmp_path / "b.duckdb")
    assert counts(in_place) == counts(inserted)
    for table in tables:
        a, b = _stored(tmp_path / "a.duckdb", table), _stored(tmp_path / "b.duckdb", table)
        assert a == b, table
    columns, _ = _stored(tmp_path / "a.duckdb", "medical_claim")
    assert [c for c, _ in columns] == list(loader.stored_columns(TABLES["medical_claim"]))
    con = duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True)
    try:
        left = con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '\\_loading%' ESCAPE '\\'").fetchall()
    finally:
        con.close()
    assert left == []


def test_columns_a_first_delivery_lacks_are_unstored_until_a_delivery_has_them(tmp_path):
    """A first Parquet load declares the contract columns its files lack unstored (virtual, NULL
    in every row, nothing written): they read as NULLs of their contract type. A later delivery
    that has two of them stores them: the rows loaded before keep NULL, the new row its values, a
    re-delivered row is still already loaded, and an emptied table is again validated in place.
    A first load of CSV files, inserted, leaves the same columns unstored."""
    db, folder = tmp_path / "a.duckdb", _parquet_delivery(tmp_path)
    loader.load_folder(folder, db)
    header, rows = base_rows("medical_claim")
    lacking = [c for c in TABLES["medical_claim"].column_names if c not in header]
    assert "drg_code" in lacking and "coinsurance_amount" in lacking
    con = duckdb.connect(str(db))
    try:
        assert loader.unstored_columns(con, "medical_claim") == lacking
        assert loader.unstored_columns(con, "eligibility") == [
            c for c in TABLES["eligibility"].column_names if c not in base_rows("eligibility")[0]
        ]
        assert con.execute(
            "SELECT count(*), count(drg_code), count(coinsurance_amount), typeof(any_value(coinsurance_amount)), "
            "typeof(any_value(admission_date)) FROM medical_claim"
        ).fetchall() == [(9, 0, 0, "DECIMAL(18,2)", "DATE")]
    finally:
        con.close()

    con = duckdb.connect(str(db))
    try:  # an index of the user's (DuckDB alters no table that has one) is kept
        con.execute("CREATE UNIQUE INDEX users_unique ON medical_claim (claim_id, claim_line_number, adjustment_sequence)")
    finally:
        con.close()
    new = dict(rows[0], claim_id="C9", drg_code="470", coinsurance_amount="12.34")
    write_csv(tmp_path / "d2" / "medical_claim.csv", [*header, "drg_code", "coinsurance_amount"], [rows[0], new])
    result = loader.load_folder(tmp_path / "d2", db)
    assert counts(result) == {"medical_claim": (2, 1, 1, 0)}
    con = duckdb.connect(str(db))
    try:
        assert con.execute("SELECT index_name, is_unique FROM duckdb_indexes() WHERE table_name = 'medical_claim'").fetchall() == [
            ("users_unique", True)
        ]
        unstored = loader.unstored_columns(con, "medical_claim")
        assert unstored == [c for c in lacking if c not in ("drg_code", "coinsurance_amount")]
        assert con.execute(
            "SELECT claim_id, drg_code, coinsurance_amount FROM medical_claim WHERE drg_code IS NOT NULL "
            "OR coinsurance_amount IS NOT NULL"
        ).fetchall() == [("C9", "470", Decimal("12.34"))]
        assert con.execute("SELECT count(*) FROM medical_claim").fetchall() == [(10,)]
        con.execute("DROP INDEX users_unique")
        con.execute("DELETE FROM medical_claim")
        assert not loader._stored_in_place(con, "medical_claim")  # the stored columns moved to the end
    finally:
        con.close()

    db2 = tmp_path / "b.duckdb"
    loader.load_folder(folder, db2)
    con = duckdb.connect(str(db2))
    try:
        con.execute("DELETE FROM medical_claim")
        assert loader._stored_in_place(con, "medical_claim")  # unstored columns hold nothing
        # a first load of CSV files (inserted, not validated in place) leaves the same columns unstored
        csv_db = tmp_path / "c.duckdb"
        loader.load_folder(build_delivery(tmp_path / "csv_in"), csv_db)
        con.execute(f"ATTACH '{csv_db}' AS c (READ_ONLY)")
        con.execute("USE c")
        assert loader.unstored_columns(con, "medical_claim") == lacking
        con.execute("USE b")
        # A plain column of the user's whose default reads like an unstored column's keeps its values.
        con.execute("ALTER TABLE pharmacy_claim ADD COLUMN users_note VARCHAR DEFAULT CAST(NULL AS VARCHAR)")
        con.execute("UPDATE pharmacy_claim SET users_note = 'kept'")
        loader._store_columns(con, "pharmacy_claim", ["users_note"])
        assert con.execute("SELECT DISTINCT users_note FROM pharmacy_claim").fetchall() == [("kept",)]
    finally:
        con.close()


def test_a_stored_table_with_rows_an_index_or_other_columns_is_inserted_into(tmp_path):
    """Only a plain, empty table of the contract's columns is replaced by a load's verdict: a
    table with rows, another type, a default, a comment, an index of the user's (unique or not)
    or a column of its own keeps them."""
    db = tmp_path / "a.duckdb"
    loader.load_folder(build_delivery(tmp_path / "in"), db)
    con = duckdb.connect(str(db))
    try:
        assert not loader._stored_in_place(con, "medical_claim")  # it has rows
        con.execute("DELETE FROM medical_claim")
        assert loader._stored_in_place(con, "medical_claim")
        changes = [  # (a change of the user's, its undoing)
            ("CREATE INDEX users_index ON medical_claim (claim_id)", "DROP INDEX users_index"),
            ("ALTER TABLE medical_claim ADD COLUMN users_note VARCHAR", "ALTER TABLE medical_claim DROP COLUMN users_note"),
            ("ALTER TABLE medical_claim ALTER COLUMN claim_line_number TYPE INTEGER",
             "ALTER TABLE medical_claim ALTER COLUMN claim_line_number TYPE BIGINT"),
            ("ALTER TABLE medical_claim ALTER COLUMN plan SET DEFAULT 'ppo'", "ALTER TABLE medical_claim ALTER COLUMN plan DROP DEFAULT"),
            ("COMMENT ON TABLE medical_claim IS 'the users own note'", "COMMENT ON TABLE medical_claim IS NULL"),
        ]
        for change, undo in changes:
            con.execute(change)
            assert not loader._stored_in_place(con, "medical_claim"), change
            con.execute(undo)
            assert loader._stored_in_place(con, "medical_claim"), undo
        con.execute("CREATE INDEX users_index ON medical_claim (claim_id)")
        con.execute("DELETE FROM lab_result")
        con.execute("CREATE UNIQUE INDEX users_unique ON lab_result (lab_result_id)")
        con.execute("DELETE FROM pharmacy_claim")
        con.execute("ALTER TABLE pharmacy_claim ADD COLUMN users_note VARCHAR")
    finally:
        con.close()
    result = loader.load_folder(_parquet_delivery(tmp_path), db)
    assert counts(result)["medical_claim"] == (12, 9, 0, 3)
    assert counts(result)["pharmacy_claim"] == (2, 2, 0, 0)
    assert query(db, "SELECT count(*) FROM duckdb_indexes() WHERE index_name IN ('users_index', 'users_unique')") == [(2,)]
    assert ("users_note",) in query(db, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'pharmacy_claim'")


def test_a_file_of_several_row_groups_is_stored_in_line_order(tmp_path):
    """Rows are stored in the order of their file even where a rule tests a list of allowed values
    (exclusion reasons): ``IN (...)`` of many values, planned by DuckDB as a join, lost that
    order when a file had row groups of a few thousand rows."""
    folder = build_delivery(tmp_path / "in")
    reasons = ["death", "moved_out_of_area", "hospice", "medicare_advantage"]
    n = 6000
    table = pa.table({
        "payer": pa.array(["medicare"] * n),
        "member_id": pa.array([f"M{i:05d}" for i in range(n)]),
        "reason": pa.array([reasons[i % len(reasons)] for i in range(n)]),
        "event_date": pa.array([dt.date(2024, 1 + i % 12, 1) for i in range(n)], pa.date32()),
        "data_source": pa.array(["payer report"] * n),
    })
    pq.write_table(table, folder / "exclusion_event.parquet", row_group_size=1400)
    db = tmp_path / "a.duckdb"
    result = loader.load_folder(folder, db)
    assert counts(result)["exclusion_event"] == (n, n, 0, 0)
    lines = [r[0] for r in query(db, "SELECT line_number FROM exclusion_event ORDER BY rowid")]
    assert lines == list(range(1, n + 1))



def test_a_later_delivery_restates_an_eligibility_span(tmp_path):
    """A payer re-sends a member's span every month; when the member terms, the span comes back
    with the same key and an earlier end date. The later delivery's row replaces the stored one,
    which is kept with the load that replaced it; the claims after the term fall outside."""
    db = tmp_path / "a.duckdb"
    first = loader.load_folder(build_delivery(tmp_path / "in"), db)
    header, rows = base_rows("eligibility")
    termed = dict(rows[2], enrollment_end_date="2024-07-31")  # BC003, 2024-07-01..2024-12-31 stored
    write_csv(tmp_path / "d2" / "eligibility.csv", header, rows[:2] + [termed] + rows[3:])
    second = loader.load_folder(tmp_path / "d2", db)
    assert counts(second) == {"eligibility": (4, 1, 3, 0)}
    assert second.table("eligibility").restated == 1
    assert query(db, "SELECT count(*) FROM quarantine") == [(0,)]
    assert query(db, "SELECT enrollment_end_date, line_number, load_run_id FROM eligibility WHERE member_id = 'BC003'") == [
        (D(2024, 7, 31), 4, second.run_id)
    ]
    assert query(
        db, "SELECT member_id, enrollment_end_date, source_file, line_number, load_run_id, replaced_by_run_id "
        "FROM eligibility_replaced"
    ) == [("BC003", D(2024, 12, 31), "eligibility.csv", 4, first.run_id, second.run_id)]
    recon = f"SELECT read, loaded, already_loaded, quarantined, restated, table_rows FROM load_reconciliation WHERE run_id = '{second.run_id}'"
    assert query(db, recon) == [(4, 1, 3, 0, 1, 4)]  # 4 rows before + 1 loaded - 1 restated
    # C4 (2024-08-15: an original, a reversal, a correction) is after the term
    assert query(db, "SELECT count(*) FROM medical_claim WHERE claim_id = 'C4' AND outside_eligibility") == [(3,)]
    # the same delivery again changes nothing
    third = loader.load_folder(tmp_path / "d2", db)
    assert counts(third) == {"eligibility": (4, 0, 4, 0)} and third.table("eligibility").restated == 0
    assert query(db, "SELECT count(*) FROM eligibility_replaced") == [(1,)]
    # the inputs as they stood after each load (a run reproduced as of the first load)
    from allpayer.pipeline import loaded_as_of

    con = runs.open_snapshot(db)
    try:
        for run, end in ((first, D(2024, 12, 31)), (second, D(2024, 7, 31)), (third, D(2024, 7, 31))):
            spans = loaded_as_of(con, "eligibility", run.run_id).to_pyarrow().to_pylist()
            assert len(spans) == 4
            assert [s["enrollment_end_date"] for s in spans if s["member_id"] == "BC003"] == [end]
    finally:
        con.disconnect()


def test_one_delivery_with_two_versions_of_a_span_is_still_a_conflict(tmp_path):
    """Within one delivery the first row of a key is the delivery's (it restates the stored row);
    a later different row of the key is quarantined as a conflict."""
    db = tmp_path / "a.duckdb"
    loader.load_folder(build_delivery(tmp_path / "in"), db)
    header, rows = base_rows("eligibility")
    termed = dict(rows[2], enrollment_end_date="2024-07-31")
    extended = dict(rows[2], enrollment_end_date="2025-06-30")
    write_csv(tmp_path / "d2" / "eligibility.csv", header, [termed, extended])
    result = loader.load_folder(tmp_path / "d2", db)
    assert counts(result) == {"eligibility": (2, 1, 0, 1)} and result.table("eligibility").restated == 1
    assert query(db, f"SELECT line_number, rule, message FROM quarantine WHERE run_id = '{result.run_id}'") == [
        (3, "conflicting_duplicate", "same key (member_id, payer, plan, enrollment_start_date) as eligibility.csv "
         "line 2 in this delivery, with different content")
    ]
    assert query(db, "SELECT enrollment_end_date FROM eligibility WHERE member_id = 'BC003'") == [(D(2024, 7, 31),)]


@pytest.mark.parametrize(("table", "changes", "key_column"), [
    ("provider_roster", {"effective_end_date": "2024-09-30"}, "npi"),
    ("employer_group", {"effective_end_date": "2024-12-31", "aco_opt_in": "false"}, "group_id"),
])
def test_later_roster_and_employer_group_periods_restate_the_stored_ones(tmp_path, table, changes, key_column):
    """The roster and employer groups are periods keyed by their start too: a later delivery that
    ends one (or changes another column) restates it."""
    db = tmp_path / "a.duckdb"
    first = loader.load_folder(build_delivery(tmp_path / "in"), db)
    header, rows = base_rows(table)
    write_csv(tmp_path / "d2" / f"{table}.csv", header, [dict(rows[0], **changes)])
    second = loader.load_folder(tmp_path / "d2", db)
    assert counts(second) == {table: (1, 1, 0, 0)} and second.table(table).restated == 1
    stored = query(db, f"SELECT {', '.join(changes)}, load_run_id FROM {table} WHERE {key_column} = '{rows[0][key_column]}'")
    assert [tuple(str(v).lower() for v in r) for r in stored] == [(*changes.values(), second.run_id.lower())]
    assert query(db, f"SELECT load_run_id, replaced_by_run_id FROM {table}_replaced") == [(first.run_id, second.run_id)]
    assert query(db, f"SELECT count(*) FROM {table}")[0][0] == BASE_COUNTS[table]


@pytest.mark.parametrize(("table", "row", "changes", "restated"), [
    ("exclusion_event", {"payer": "medicare", "member_id": "MC001", "reason": "hospice", "event_date": "2024-05-10",
                         "end_date": "", "program_id": "", "data_source": "cms"}, {"end_date": "2024-08-31"}, True),
    ("voluntary_alignment", {"payer": "medicare", "member_id": "MC001", "npi": "1234567893", "tin": "",
                             "designation_date": "2023-06-01", "end_date": "", "data_source": "cms"},
     {"end_date": "2024-12-31"}, True),
    ("payer_target", {"payer": "medicaid", "program_id": "medicaid_2024", "cell_id": "all", "month": "2024-01-01",
                      "target_pmpm": "412.50", "member_months": "", "data_source": "dvha"},
     {"target_pmpm": "415.00"}, False),
])
def test_which_payer_tables_restate(tmp_path, table, row, changes, restated):
    """Designations and exclusion events are periods keyed by their start: a later end restates
    them. A payer's target of a month is not a period: a different value is a conflict."""
    db = tmp_path / "a.duckdb"
    folder = build_delivery(tmp_path / "in")
    write_csv(folder / f"{table}.csv", list(row), [row])
    loader.load_folder(folder, db)
    write_csv(tmp_path / "d2" / f"{table}.csv", list(row), [dict(row, **changes)])
    result = loader.load_folder(tmp_path / "d2", db)
    if restated:
        assert counts(result) == {table: (1, 1, 0, 0)} and result.table(table).restated == 1
        assert query(db, f"SELECT count(*) FROM {table}_replaced") == [(1,)]
    else:
        assert counts(result) == {table: (1, 0, 0, 1)} and result.table(table).restated is None
        assert query(db, f"SELECT rule FROM quarantine WHERE run_id = '{result.run_id}'") == [("conflicting_duplicate",)]
    [(stored,)] = query(db, f"SELECT {next(iter(changes))} FROM {table}")
    assert str(stored) == (next(iter(changes.values())) if restated else row[next(iter(changes))])
