"""Final action, expenditure netting and MBI chains on hand-built CCLF files.

Netting totals: the CCLF Information Packet's expenditure example nets Part A rows to $260 and
Part B rows to $707, $967 in all. The rows below are our own, built to reach those published
totals with the packet's rules (a cancellation reverses the version it cancels, an adjustment
restates the claim): each amount is annotated.
"""

import decimal

import pyarrow.compute as pc

from allpayer.inputs.cclf import read_cclf_folder

from .build import write

D = decimal.Decimal


def a_header(cur, mbi, amt, adj, eff, cntl, frm="2024-01-05", thru="2024-01-07", oscar="470003", typ="60"):
    return {"CUR_CLM_UNIQ_ID": cur, "PRVDR_OSCAR_NUM": oscar, "BENE_MBI_ID": mbi, "CLM_TYPE_CD": typ,
            "CLM_FROM_DT": frm, "CLM_THRU_DT": thru, "CLM_PMT_AMT": amt, "CLM_ADJSMT_TYPE_CD": adj,
            "CLM_EFCTV_DT": eff, "CLM_CNTL_NUM": cntl, "PRNCPL_DGNS_CD": "I214", "CLM_BILL_FAC_TYPE_CD": "1",
            "CLM_BILL_CLSFCTN_CD": "1", "CLM_BILL_FREQ_CD": "1"}


def a_line(cur, mbi, amt, line=1, typ="60"):
    return {"CUR_CLM_UNIQ_ID": cur, "CLM_LINE_NUM": line, "BENE_MBI_ID": mbi, "CLM_TYPE_CD": typ,
            "CLM_LINE_PROD_REV_CTR_CD": "0120", "CLM_LINE_CVRD_PD_AMT": amt, "PRVDR_OSCAR_NUM": "470003",
            "CLM_FROM_DT": "2024-01-05", "CLM_THRU_DT": "2024-01-07"}


def b_line(cur, mbi, line, amt, adj, eff, cntl, hcpcs="99213"):
    return {"CUR_CLM_UNIQ_ID": cur, "CLM_LINE_NUM": line, "BENE_MBI_ID": mbi, "CLM_TYPE_CD": "71",
            "CLM_FROM_DT": "2024-02-01", "CLM_THRU_DT": "2024-02-01", "CLM_LINE_FROM_DT": "2024-02-01",
            "CLM_LINE_THRU_DT": "2024-02-01", "CLM_LINE_HCPCS_CD": hcpcs, "CLM_LINE_CVRD_PD_AMT": amt,
            "CLM_LINE_ALOWD_CHRG_AMT": amt, "CLM_ADJSMT_TYPE_CD": adj, "CLM_EFCTV_DT": eff, "CLM_CNTL_NUM": cntl,
            "CLM_RNDRG_PRVDR_TAX_NUM": "123456789", "RNDRG_PRVDR_NPI_NUM": "1234567893", "CLM_DGNS_1_CD": "E119"}


def bene(mbi, start="2015-01-01"):
    return {"BENE_MBI_ID": mbi, "BENE_DOB": "1950-06-01", "BENE_SEX_CD": "2", "BENE_RACE_CD": "1",
            "BENE_PART_A_ENRLMT_BGN_DT": start, "BENE_PART_B_ENRLMT_BGN_DT": start, "BENE_ZIP_CD": "05401"}


M1, M2 = "1AA0AA0AA01", "1AA0AA0AA02"

NETTING = {
    "CCLF1": [
        # Family 1 (M1, OSCAR 470003, inpatient, 2024-01-05..07): original $100, cancelled, restated at $120.
        a_header(101, M1, "100.00", "0", "2024-01-20", "A1"),
        a_header(102, M1, "100.00", "1", "2024-02-10", "A1-C"),
        a_header(103, M1, "120.00", "2", "2024-02-10", "A1-R"),
        # Family 2 (M2, outpatient 2024-03-02): $140, never adjusted. Part A: 120 + 140 = 260.
        a_header(201, M2, "140.00", "0", "2024-03-20", "A2", frm="2024-03-02", thru="2024-03-02", typ="40"),
    ],
    "CCLF2": [a_line(101, M1, "100.00"), a_line(102, M1, "100.00"), a_line(103, M1, "120.00"),
              a_line(201, M2, "140.00", typ="40")],
    "CCLF5": [
        # Line 1 of claim B1: $200, cancelled, restated at $250 (an adjustment with a new claim id).
        b_line(301, M1, 1, "200.00", "0", "2024-02-15", "B1"),
        b_line(302, M1, 1, "200.00", "1", "2024-03-01", "B1"),
        b_line(303, M1, 1, "250.00", "2", "2024-03-01", "B1"),
        # Line 2 of claim B1: $457, never adjusted. Part B: 250 + 457 = 707.
        b_line(304, M1, 2, "457.00", "0", "2024-02-15", "B1", hcpcs="93000"),
        # Claim B2: $75 then cancelled with no replacement: nets to 0.
        b_line(401, M2, 1, "75.00", "0", "2024-02-15", "B2"),
        b_line(402, M2, 1, "75.00", "1", "2024-04-01", "B2"),
    ],
    "CCLF8": [bene(M1), bene(M2)],
}


def _sum(table, column, where=None):
    values = table.column(column)
    if where is not None:
        values = pc.filter(values, where)
    return sum((D(v) for v in values.to_pylist() if v is not None), D(0))


def test_netting_example(tmp_path):
    write(tmp_path / "in", NETTING)
    r = read_cclf_folder(tmp_path / "in")
    med = r.tables["medical_claim"]
    inst = pc.equal(med.column("claim_type"), "institutional")
    prof = pc.equal(med.column("claim_type"), "professional")
    assert _sum(med, "paid_amount", inst) == D("260.00")
    assert _sum(med, "paid_amount", prof) == D("707.00")
    assert _sum(med, "paid_amount") == D("967.00")
    assert r.quarantine.num_rows == 0


def test_final_action_example(tmp_path):
    write(tmp_path / "in", NETTING)
    r = read_cclf_folder(tmp_path / "in")
    fa = r.final_action.to_pylist()
    final = {}
    for x in fa:
        if x["is_final_action"]:
            final.setdefault((x["part"], x["claim_id"]), set()).add(x["cur_clm_uniq_id"])
    # Part A family 1: three versions ordered by effective date then claim id; the restatement 103 is final.
    assert final[("A", "A1")] == {"0000000000103"}
    assert final[("A", "A2")] == {"0000000000201"}
    # Part B families are claim lines: line 1 ends at the restatement 303, line 2 at its original 304.
    assert final[("B", "B1")] == {"0000000000303", "0000000000304"}
    # B2 ends in a cancellation: no final action, the family is cancelled.
    b2 = [x for x in fa if x["claim_id"] == "B2"]
    assert [x["version"] for x in b2] == [0, 1] and all(x["family_canceled"] for x in b2)
    assert not any(x["is_final_action"] for x in b2)
    # Contract rows: family A1 line 1 is +100, -100, +120 with adjustment sequences 0, 1, 2.
    med = r.tables["medical_claim"].to_pylist()
    a1 = sorted((int(x["adjustment_sequence"]), x["paid_amount"]) for x in med if x["claim_id"] == "A1" and x["claim_line_number"] == "1")
    assert a1 == [(0, "100.00"), (1, "-100.00"), (2, "120.00")]
    # Provenance: each row names its CCLF file and line.
    row = next(x for x in med if x["claim_id"] == "A1" and x["adjustment_sequence"] == "2")
    assert row["source_file"].startswith("P.A1234.ACO.ZC2Y24") and row["line_number"] == 3


def test_mbi_chain_resolved(tmp_path):
    old, mid, new = "1AA0AA0AA10", "1AA0AA0AA11", "1AA0AA0AA12"
    files = {
        "CCLF9": [  # old -> mid, then mid -> new: a chain of two changes
            {"HICN_MBI_XREF_IND": "M", "CRNT_NUM": mid, "PRVS_NUM": old, "PRVS_ID_EFCTV_DT": "2020-01-01"},
            {"HICN_MBI_XREF_IND": "M", "CRNT_NUM": new, "PRVS_NUM": mid, "PRVS_ID_EFCTV_DT": "2022-01-01"},
        ],
        "CCLF5": [b_line(501, old, 1, "10.00", "0", "2024-02-15", "C1"), b_line(502, mid, 1, "20.00", "0", "2024-02-15", "C2")],
        "CCLF8": [bene(new)],
    }
    write(tmp_path / "in", files)
    r = read_cclf_folder(tmp_path / "in")
    assert set(r.tables["medical_claim"].column("member_id").to_pylist()) == {new}
    assert r.tables["eligibility"].column("member_id").to_pylist() == [new]


def test_caller_connection_left_clean(tmp_path):
    import duckdb

    write(tmp_path / "in", NETTING)
    con = duckdb.connect()
    r = read_cclf_folder(tmp_path / "in", con=con)
    assert r.tables["medical_claim"].num_rows > 0
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%cclf%'").fetchall() == [(0,)]


def test_versions_over_deliveries(tmp_path):
    """A claim's versions delivered in two months, read together, number 0, 1, 2."""
    import datetime as dt

    write(tmp_path / "in", {"CCLF5": [b_line(1, M1, 1, "80.00", "0", "2024-02-15", "V1")], "CCLF8": [bene(M1)]})
    write(tmp_path / "in", {"CCLF5": [b_line(2, M1, 1, "80.00", "1", "2024-04-02", "V1"),
                                      b_line(3, M1, 1, "95.00", "2", "2024-04-02", "V1")], "CCLF8": [bene(M1)]},
          file_date=dt.date(2024, 4, 15))
    r = read_cclf_folder(tmp_path / "in")
    rows = sorted((int(x["adjustment_sequence"]), x["paid_amount"], x["paid_date"], x["source_file"].split(".")[4])
                  for x in r.tables["medical_claim"].to_pylist())
    assert rows == [(0, "80.00", "2024-02-15", "D240315"), (1, "-80.00", "2024-04-02", "D240415"),
                    (2, "95.00", "2024-04-02", "D240415")]
    assert r.tables["eligibility"].num_rows == 1  # the latest CCLF8 record


def test_negative_medicare_amounts_on_original_claims_load(tmp_path):
    """CMS claims may carry negative amounts on an original (never adjusted) claim: a claim
    payment amount below 0 where the deductible exceeds what Medicare pays (CCW data dictionary,
    CLM_PMT_AMT), and a header payment below the sum of its revenue lines gives a negative
    claim-level line (9999). Both load; the claims' paid amounts are the headers' ($98.00 and
    -$5.00), where the contract's native rule (negative amounts only on adjustment rows)
    quarantined the claim-level lines and left $100.00 and $0.00."""
    import shutil

    import duckdb

    from allpayer.inputs.load import load_folder

    from ..conftest import BASE

    files = {
        "CCLF1": [a_header(501, M1, "98.00", "0", "2024-03-20", "N1", frm="2024-03-02", thru="2024-03-02", typ="40"),
                  a_header(502, M2, "-5.00", "0", "2024-03-20", "N2", frm="2024-03-04", thru="2024-03-04", typ="40")],
        "CCLF2": [a_line(501, M1, "60.00", typ="40"), a_line(501, M1, "40.00", line=2, typ="40"),
                  a_line(502, M2, "0.00", typ="40")],
        "CCLF8": [bene(M1), bene(M2)],
    }
    write(tmp_path / "in", files)
    shutil.copy(BASE / "provider_roster.csv", tmp_path / "in" / "provider_roster.csv")
    result = load_folder(tmp_path / "in", tmp_path / "db.duckdb")
    assert all(t.reconciles for t in result.tables)
    assert result.quarantine_by_rule == []
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    got = con.execute("SELECT claim_id, sum(paid_amount) FROM medical_claim GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [("N1", D("98.00")), ("N2", D("-5.00"))]


def test_negative_amounts_cms_does_not_send_on_original_claims_are_quarantined(tmp_path):
    """Only a CCLF claim's payment may be negative on an original claim (CCW data dictionary,
    CLM_PMT_AMT and the line payments), and the claim-level line's allowed amount, which is built
    from it. A negative total charge (line 9999's charge_amount) or a Part B line's negative
    allowed charge (and the coinsurance derived from it, allowed less paid) is a negative_amount,
    as in a native file; a Part B line paying -$12.00 against $30.00 allowed loads."""
    import shutil

    import duckdb

    from allpayer.inputs.load import load_folder

    from ..conftest import BASE

    charge = {**a_header(601, M1, "50.00", "0", "2024-03-20", "Q1", frm="2024-03-02", thru="2024-03-02", typ="40"),
              "CLM_MDCR_INSTNL_TOT_CHRG_AMT": "-300.00"}
    files = {
        "CCLF1": [charge],
        "CCLF2": [a_line(601, M1, "50.00", typ="40")],
        "CCLF5": [{**b_line(701, M2, 1, "-12.00", "0", "2024-03-20", "Q2"), "CLM_LINE_ALOWD_CHRG_AMT": "30.00"},
                  {**b_line(702, M2, 1, "10.00", "0", "2024-03-20", "Q3"), "CLM_LINE_ALOWD_CHRG_AMT": "-10.00"}],
        "CCLF8": [bene(M1), bene(M2)],
    }
    write(tmp_path / "in", files)
    shutil.copy(BASE / "provider_roster.csv", tmp_path / "in" / "provider_roster.csv")
    result = load_folder(tmp_path / "in", tmp_path / "db.duckdb")
    assert all(t.reconciles for t in result.tables)
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    quarantined = con.execute("""
        SELECT rule, message FROM quarantine WHERE table_name = 'medical_claim' ORDER BY message""").fetchall()
    assert quarantined == [
        ("negative_amount", "allowed_amount is negative (-10.00) on an original line (adjustment_sequence 0); "
                            "coinsurance_amount is negative (-20.00) on an original line (adjustment_sequence 0)"),
        ("negative_amount", "charge_amount is negative (-300.00) on an original line (adjustment_sequence 0)"),
    ]
    got = con.execute("SELECT claim_id, claim_line_number, paid_amount FROM medical_claim ORDER BY 1, 2").fetchall()
    assert got == [("Q1", 1, D("50.00")), ("Q2", 1, D("-12.00"))]
