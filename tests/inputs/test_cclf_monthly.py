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

from allpayer.cli import main
from allpayer.inputs.load import load_folder
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
    # Later months replace the eligibility rows an earlier month's CCLF8 gave (the latest record wins).
    assert query(db_monthly, "SELECT count(*) FROM cclf_superseded WHERE table_name = 'eligibility'")[0][0] > 0


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
