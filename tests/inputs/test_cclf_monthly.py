"""CCLF deliveries loaded month by month give the same tables as loading every month at once.

A generated population's CCLF delivery is split by the month of each claim's IDR load date into
monthly deliveries (CCLF8 and CCLF9 in every month, a CCLF0 per month); loading them one after
the other into one database must give, row for row, the contract tables that loading the folder
of all months gives. A hand-made claim family whose adjustment arrives a month after the
original, and whose cancellation a month after that, is checked value by value.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal as D
from pathlib import Path

import pytest

from allpayer.backend import connect_duckdb
from allpayer.cli import main
from allpayer.inputs.load import load_folder
from allpayer.pipeline import loaded_as_of
from allpayer.synth.cclf_writer import split_by_month

from .cclf.build import write
from .cclf.test_examples import a_header, a_line, b_line, bene
from .conftest import BASE, query

# one worker builds this module's fixture once (--dist loadgroup; see tests/test_xdist_groups.py)
pytestmark = pytest.mark.xdist_group("cclf_monthly")

CONTRACT = ("eligibility", "medical_claim", "pharmacy_claim")
def table_rows(db: Path, table: str) -> list[tuple]:
    cols = [c for (c,) in query(db, f"SELECT column_name FROM duckdb_columns() WHERE table_name = '{table}' ORDER BY column_index")
            if c != "load_run_id"]
    sel = ", ".join(f'"{c}"' for c in cols)
    return query(db, f"SELECT {sel} FROM {table} ORDER BY ALL")


def _ordered(rows) -> list[tuple]:
    return sorted(rows, key=lambda r: [(v is None, str(v)) for v in r])


def rows_as_of(db: Path, table: str, load_run_id: str) -> list[tuple]:
    """`table_rows` of `table` as a run ``--as-of-load load_run_id`` reads it (`loaded_as_of`)."""
    con = connect_duckdb(db, read_only=True)
    try:
        t = loaded_as_of(con, table, load_run_id)
        cols = [c for c in con.table(table).columns if c != "load_run_id"]
        return _ordered(tuple(r.values()) for r in t.select(*cols).to_pyarrow().to_pylist())
    finally:
        con.disconnect()


def reconciliation(db: Path) -> list[tuple]:
    return query(db, "SELECT table_name, read, loaded, already_loaded, quarantined FROM load_reconciliation ORDER BY ALL")


@pytest.fixture(scope="module")
def monthly(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cclf_monthly")
    out = tmp / "gen"
    assert main(["generate", "--members", "300", "--seed", "7", "--years", "2024", "--out", str(out), "--format", "cclf"]) == 0
    (zipped,) = list((out / "cclf").glob("*.zip"))
    folders = split_by_month(zipped, tmp / "months")
    everything = tmp / "all"
    everything.mkdir()
    for f in folders:
        for p in f.iterdir():
            shutil.copy(p, everything / p.name)
    roster = out / "provider_roster.parquet"
    db_all, db_monthly = tmp / "all.duckdb", tmp / "monthly.duckdb"
    shutil.copy(roster, everything / roster.name)
    load_folder(everything, db_all, fmt="cclf")
    results = []
    for i, f in enumerate(folders):
        if i == 0:
            shutil.copy(roster, f / roster.name)
        results.append(load_folder(f, db_monthly, fmt="cclf"))
    return folders, db_all, db_monthly, results


def test_the_split_has_months_with_later_versions_of_earlier_claims(monthly):
    folders, db_all, _, _ = monthly
    assert len(folders) >= 6
    # Claim families with versions delivered in different months: what the monthly load must join.
    spread = query(db_all, """
        SELECT count(*) FROM (SELECT part, claim_id FROM cclf_final_action
                              GROUP BY 1, 2 HAVING count(DISTINCT source_file) > 1)""")[0][0]
    assert spread > 0


@pytest.mark.parametrize("table", CONTRACT)
def test_month_by_month_equals_all_at_once(monthly, table):
    _, db_all, db_monthly, _ = monthly
    at_once, by_month = table_rows(db_all, table), table_rows(db_monthly, table)
    assert len(at_once) > 0
    assert by_month == at_once


def test_final_action_evidence_equals_all_at_once(monthly):
    _, db_all, db_monthly, _ = monthly
    assert table_rows(db_monthly, "cclf_final_action") == table_rows(db_all, "cclf_final_action")


def test_every_monthly_record_is_accounted_for(monthly):
    folders, _, db_monthly, results = monthly
    total_lines = sum(len(p.read_text().splitlines()) for f in folders for p in f.iterdir() if ".ZC0" not in p.name
                      and p.suffix != ".parquet")
    counted = query(db_monthly, "SELECT sum(read), sum(loaded), sum(quarantined) FROM load_reconciliation WHERE table_name LIKE 'cclf:%'")[0]
    assert counted[0] == total_lines
    assert counted[0] == counted[1] + counted[2]
    for r in results:
        assert all(t.reconciles for t in r.tables)
    # Later months replace the eligibility rows an earlier month's CCLF8 gave (the latest record wins):
    # kept whole in eligibility_replaced, replaced by a later load than the one that loaded them.
    loads = {r.run_id: i for i, r in enumerate(results)}
    replaced = query(db_monthly, "SELECT load_run_id, replaced_by_run_id FROM eligibility_replaced")
    assert len(replaced) > 0
    assert all(loads[loaded] < loads[by] for loaded, by in replaced)


def test_as_of_the_first_month_reads_the_tables_the_first_month_gave(monthly, tmp_path):
    """Later months supersede rows the first month gave (every beneficiary's eligibility row, its
    latest CCLF8 record being a later month's): read as of the first load, the contract tables are
    those of a database holding the first month alone."""
    folders, _, db_monthly, results = monthly
    db_first = tmp_path / "first.duckdb"
    load_folder(folders[0], db_first, fmt="cclf")
    for table in CONTRACT:
        first = _ordered(table_rows(db_first, table))
        assert len(first) > 0 or table == "pharmacy_claim"
        assert rows_as_of(db_monthly, table, results[0].run_id) == first


M = "1AA0AA0AA03"


def _family_month(folder: Path, month: int, files: dict) -> None:
    write(folder, files, file_date=dt.date(2024, month, 5))
    shutil.copy(BASE / "provider_roster.csv", folder / "provider_roster.csv")


def test_adjustment_then_cancellation_in_later_months(tmp_path):
    """Part A claim: original $500 (February delivery), adjusted to $650 (March), cancelled (April);
    Part B line: $90 (February), adjusted to $110 (March), cancelled (April)."""
    hdr = lambda cur, amt, adj, eff, cntl: a_header(cur, M, amt, adj, eff, cntl, frm="2024-01-10", thru="2024-01-12")  # noqa: E731
    months = {
        2: {"CCLF1": [hdr(901, "500.00", "0", "2024-01-25", "F1")], "CCLF2": [a_line(901, M, "500.00")],
            "CCLF5": [b_line(951, M, 1, "90.00", "0", "2024-01-25", "G1")], "CCLF8": [bene(M)]},
        3: {"CCLF1": [hdr(902, "500.00", "1", "2024-02-20", "F1-C"), hdr(903, "650.00", "2", "2024-02-20", "F1-R")],
            "CCLF2": [a_line(902, M, "500.00"), a_line(903, M, "600.00"), a_line(903, M, "50.00", line=2)],
            "CCLF5": [b_line(952, M, 1, "90.00", "1", "2024-02-20", "G1"), b_line(953, M, 1, "110.00", "2", "2024-02-20", "G1")],
            "CCLF8": [bene(M)]},
        4: {"CCLF1": [hdr(904, "650.00", "1", "2024-03-22", "F1-C2")], "CCLF2": [a_line(904, M, "600.00"), a_line(904, M, "50.00", line=2)],
            "CCLF5": [b_line(954, M, 1, "110.00", "1", "2024-03-22", "G1")], "CCLF8": [bene(M)]},
    }
    db, db_all = tmp_path / "m.duckdb", tmp_path / "all.duckdb"
    everything = tmp_path / "all"
    for month, files in months.items():
        _family_month(tmp_path / f"m{month}", month, files)
        _family_month(everything, month, files)
    totals = []
    for month in months:
        load_folder(tmp_path / f"m{month}", db, fmt="cclf")
        totals.append(query(db, """
            SELECT claim_type, claim_id, max(adjustment_sequence), sum(paid_amount) FROM medical_claim
            GROUP BY 1, 2 ORDER BY 1""" ))
    assert totals == [
        [("institutional", "F1", 0, D("500.00")), ("professional", "G1", 0, D("90.00"))],
        [("institutional", "F1", 2, D("650.00")), ("professional", "G1", 2, D("110.00"))],
        [("institutional", "F1", 3, D("0.00")), ("professional", "G1", 3, D("0.00"))],
    ]
    # Every version: original, cancellation, adjustment, cancellation (Part A line 1).
    assert query(db, """SELECT adjustment_sequence, paid_amount FROM medical_claim
                        WHERE claim_id = 'F1' AND claim_line_number = 1 ORDER BY 1""") == [
        (0, D("500.00")), (1, D("-500.00")), (2, D("600.00")), (3, D("-600.00"))]
    fa = query(db, """SELECT part, ltrim(cur_clm_uniq_id, '0'), version, is_final_action, family_canceled FROM cclf_final_action
                      ORDER BY part, version""")
    assert fa == [("A", "901", 0, False, True), ("A", "902", 1, False, True), ("A", "903", 2, False, True),
                  ("A", "904", 3, False, True), ("B", "951", 0, False, True), ("B", "952", 1, False, True),
                  ("B", "953", 2, False, True), ("B", "954", 3, False, True)]
    load_folder(everything, db_all, fmt="cclf")
    for table in ("medical_claim", "eligibility"):
        assert table_rows(db, table) == table_rows(db_all, table)
    # The folder of every month loaded after the first month alone: the same tables again.
    db_again = tmp_path / "again.duckdb"
    load_folder(tmp_path / "m2", db_again, fmt="cclf")
    load_folder(everything, db_again, fmt="cclf")
    for table in ("medical_claim", "eligibility", "cclf_final_action"):
        assert table_rows(db_again, table) == table_rows(db_all, table)
    # No line is lost: each month's lines are read = loaded + quarantined, with nothing quarantined.
    rec = query(db, "SELECT sum(read), sum(loaded), sum(quarantined) FROM load_reconciliation WHERE table_name LIKE 'cclf:%'")[0]
    assert rec == (4 + 8 + 5, 4 + 8 + 5, 0)


def test_a_month_delivered_again_changes_nothing(tmp_path):
    files = {"CCLF1": [a_header(911, M, "300.00", "0", "2024-01-25", "H1")], "CCLF2": [a_line(911, M, "300.00")],
             "CCLF8": [bene(M)]}
    _family_month(tmp_path / "m2", 2, files)
    db = tmp_path / "db.duckdb"
    load_folder(tmp_path / "m2", db, fmt="cclf")
    before = {t: table_rows(db, t) for t in ("medical_claim", "eligibility")}
    load_folder(tmp_path / "m2", db, fmt="cclf")
    assert {t: table_rows(db, t) for t in ("medical_claim", "eligibility")} == before
    assert query(db, "SELECT count(*) FROM cclf_record_cclf1")[0][0] == 1


def test_as_of_an_earlier_load_reads_the_rows_a_later_delivery_superseded(tmp_path):
    """February delivers a beneficiary (ZIP 05401) and a claim under MBI ...20; March's CCLF9 moves
    that MBI to ...21 and its CCLF8 record gives ZIP 05602. After March the stored claim and span
    are under ...21 with ZIP 05602; a run as of the February load reads February's rows."""
    old, new = "1AA0AA0AA20", "1AA0AA0AA21"
    feb = {"CCLF5": [b_line(961, old, 1, "90.00", "0", "2024-01-25", "K1")], "CCLF8": [bene(old)]}
    mar = {"CCLF5": [b_line(962, new, 1, "40.00", "0", "2024-02-20", "K2")],
           "CCLF8": [{**bene(new), "BENE_ZIP_CD": "05602"}],
           "CCLF9": [{"HICN_MBI_XREF_IND": "M", "CRNT_NUM": new, "PRVS_NUM": old, "PRVS_ID_EFCTV_DT": "2024-02-01"}]}
    _family_month(tmp_path / "m2", 2, feb)
    _family_month(tmp_path / "m3", 3, mar)
    db, db_feb = tmp_path / "db.duckdb", tmp_path / "feb.duckdb"
    first = load_folder(tmp_path / "m2", db, fmt="cclf")
    second = load_folder(tmp_path / "m3", db, fmt="cclf")
    load_folder(tmp_path / "m2", db_feb, fmt="cclf")
    assert query(db, "SELECT claim_id, member_id FROM medical_claim ORDER BY 1") == [("K1", new), ("K2", new)]
    assert query(db, "SELECT member_id, zip_code FROM eligibility") == [(new, "05602")]
    as_of_feb = connect_duckdb(db, read_only=True)
    try:
        claims = loaded_as_of(as_of_feb, "medical_claim", first.run_id).select("claim_id", "member_id", "paid_amount")
        assert claims.to_pyarrow().to_pylist() == [{"claim_id": "K1", "member_id": old, "paid_amount": D("90.00")}]
        span = loaded_as_of(as_of_feb, "eligibility", first.run_id).select("member_id", "zip_code")
        assert span.to_pyarrow().to_pylist() == [{"member_id": old, "zip_code": "05401"}]
    finally:
        as_of_feb.disconnect()
    for table in ("eligibility", "medical_claim"):
        assert rows_as_of(db, table, first.run_id) == _ordered(table_rows(db_feb, table))
        assert rows_as_of(db, table, second.run_id) == _ordered(table_rows(db, table))  # as of the latest: as stored
