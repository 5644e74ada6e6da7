"""Round trip: a generated population -> CCLF files -> the reader gives the native Medicare rows.

Compared exactly: eligibility (member, sex, birth and death dates, enrollment span, statuses,
state, ZIP); medical claims per claim (member, type, dates, paid, allowed, coinsurance,
deductible; charges of institutional claims) and per professional line (HCPCS, dates, place of
service, rendering NPI, TIN, diagnoses, status, last paid date); pharmacy fills (date, NDC,
quantity, days supply, NPIs, the beneficiary's payment). What cannot make the trip is listed in
docs/cclf.md and asserted here where it is a rule (natural-key collisions, FPP/CPR).
"""

import datetime as dt
import shutil

import duckdb
import pytest

from allpayer.inputs.cclf import read_cclf_folder
from allpayer.synth import generate
from allpayer.synth.cclf_writer import write_cclf


@pytest.fixture(scope="module")
def trip(tmp_path_factory):
    root = tmp_path_factory.mktemp("cclf_trip")
    generate(400, 7, root / "native", years=(2023, 2024))
    write_cclf(root / "native", root / "cclf", performance_year=2024, file_date=dt.date(2025, 3, 31), zip_delivery=True)
    r = read_cclf_folder(root / "cclf")
    con = duckdb.connect()
    for t in ("eligibility", "medical_claim", "pharmacy_claim"):
        con.execute(
            f"CREATE TABLE n_{t} AS SELECT * FROM (SELECT COLUMNS(*)::VARCHAR FROM read_parquet('{root / 'native' / (t + '.parquet')}')) "
            "WHERE payer = 'medicare'"
        )
        con.register(f"c_{t}", r.tables[t])
    con.execute(f"SET VARIABLE native_folder = '{root / 'native'}'")
    return r, con


def _diff(con, a: str, b: str) -> list:
    """Rows in one query and not the other (both directions)."""
    return con.execute(f"({a}) EXCEPT ALL ({b})").fetchall() + con.execute(f"({b}) EXCEPT ALL ({a})").fetchall()


def test_nothing_quarantined(trip):
    r, _ = trip
    assert r.quarantine.num_rows == 0
    assert all(c.read == c.parsed and c.read == c.summary_count for c in r.files)


def test_eligibility(trip):
    _, con = trip
    cols = ("member_id, gender, birth_date, death_date, enrollment_start_date, enrollment_end_date, "
            "original_reason_entitlement_code, dual_status_code, medicare_status_code, state, zip_code, payer, plan")
    assert con.execute("SELECT count(*) FROM n_eligibility").fetchall()[0][0] > 20
    assert _diff(con, f"SELECT {cols} FROM n_eligibility", f"SELECT {cols} FROM c_eligibility") == []
    # Race: CCLF has one code for every race outside its list.
    assert _diff(
        con,
        "SELECT member_id, CASE WHEN race IN ('white', 'black or african american', 'asian', 'american indian or alaska native', 'unknown') THEN race ELSE 'other race' END FROM n_eligibility",
        "SELECT member_id, race FROM c_eligibility",
    ) == []


# Institutional claims that share the Part A natural key (member, facility, claim type, from and
# thru dates) are versions of one claim in CCLF: the later replaces the earlier.
COLLISIONS = """
    WITH k AS (
        SELECT claim_id, any_value(member_id) m, any_value(facility_ccn) f, any_value(left(bill_type_code, 2)) b,
               any_value(claim_start_date) s, any_value(claim_end_date) e
        FROM n_medical_claim WHERE claim_type = 'institutional' GROUP BY claim_id
    )
    SELECT claim_id FROM k QUALIFY count(*) OVER (PARTITION BY m, f, b, s, e) > 1
"""


def test_medical_claims_per_claim(trip):
    _, con = trip
    money = "sum(CAST(paid_amount AS DECIMAL(18,2))), sum(CAST(allowed_amount AS DECIMAL(18,2))), " \
            "sum(CAST(coinsurance_amount AS DECIMAL(18,2))), sum(CAST(deductible_amount AS DECIMAL(18,2))), " \
            "CASE WHEN any_value(claim_type) = 'institutional' THEN sum(CAST(charge_amount AS DECIMAL(18,2))) END"
    q = ("SELECT claim_id, any_value(member_id), any_value(claim_type), any_value(claim_start_date), any_value(claim_end_date), "
         f"{money} FROM {{}} WHERE claim_id NOT IN ({COLLISIONS}) GROUP BY claim_id")
    assert con.execute(q.format("n_medical_claim").replace("SELECT claim_id,", "SELECT count(*) OVER (), claim_id,", 1)).fetchall()[0][0] > 500
    assert _diff(con, q.format("n_medical_claim"), q.format("c_medical_claim")) == []


def test_colliding_claims_become_one(trip):
    _, con = trip
    lost = {r[0] for r in con.execute(f"SELECT claim_id FROM n_medical_claim EXCEPT SELECT claim_id FROM c_medical_claim").fetchall()}
    colliding = {r[0] for r in con.execute(COLLISIONS).fetchall()}
    assert lost <= colliding


def test_professional_lines(trip):
    _, con = trip
    cols = ("claim_id, claim_line_number, member_id, claim_line_start_date, claim_line_end_date, place_of_service_code, "
            "hcpcs_code, hcpcs_modifier_1, rendering_npi, billing_tin, claim_status, "
            "diagnosis_code_1, diagnosis_code_2, diagnosis_code_3, diagnosis_code_4, diagnosis_code_5")
    latest = "QUALIFY row_number() OVER (PARTITION BY claim_id, claim_line_number ORDER BY CAST(adjustment_sequence AS INTEGER) DESC) = 1"
    n = f"SELECT {cols} FROM n_medical_claim WHERE claim_type = 'professional' {latest}"
    c = f"SELECT {cols} FROM c_medical_claim WHERE claim_type = 'professional' {latest}"
    assert _diff(con, n, c) == []


def test_payment_arrangement(trip):
    _, con = trip
    q = ("SELECT claim_id, claim_line_number, {} FROM {} WHERE claim_type <> 'institutional' "
         "QUALIFY row_number() OVER (PARTITION BY claim_id, claim_line_number ORDER BY CAST(adjustment_sequence AS INTEGER) DESC) = 1")
    n = q.format("CASE WHEN payment_arrangement = 'ffs' THEN 'ffs' ELSE 'fpp' END", "n_medical_claim")
    c = q.format("payment_arrangement", "c_medical_claim")
    assert _diff(con, n, c) == []


def test_adjustments_keep_their_paid_dates(trip):
    """What each line was paid on each paid date (a claims-as-of cut sees the same money)."""
    _, con = trip
    q = ("SELECT claim_id, claim_line_number, paid_date, "
         "sum(CAST(paid_amount AS DECIMAL(18,2))) FROM {} WHERE claim_type <> 'institutional' GROUP BY ALL HAVING sum(CAST(paid_amount AS DECIMAL(18,2))) <> 0")
    assert con.execute("SELECT count(*) FROM n_medical_claim WHERE adjustment_sequence <> '0'").fetchall()[0][0] > 0
    assert _diff(con, q.format("n_medical_claim"), q.format("c_medical_claim")) == []
    inst = ("SELECT claim_id, paid_date, sum(CAST(paid_amount AS DECIMAL(18,2))) FROM {} "
            f"WHERE claim_type = 'institutional' AND claim_id NOT IN ({COLLISIONS}) GROUP BY ALL HAVING sum(CAST(paid_amount AS DECIMAL(18,2))) <> 0")
    assert _diff(con, inst.format("n_medical_claim"), inst.format("c_medical_claim")) == []


def test_pharmacy(trip):
    _, con = trip
    money = "sum(" + " + ".join(f"CAST(coalesce({m}, '0') AS DECIMAL(18,2))" for m in ("copayment_amount", "coinsurance_amount", "deductible_amount")) + ")"
    for t in ("n_pharmacy_claim",):
        have = {r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()}
        for m in ("coinsurance_amount", "deductible_amount"):
            if m not in have:
                con.execute(f"ALTER TABLE {t} ADD COLUMN {m} VARCHAR")
    q = ("SELECT member_id, dispensing_date, ndc_code, CAST(quantity AS DECIMAL(18,3)), days_supply, prescribing_provider_npi, "
         f"dispensing_provider_npi, {money}, max(paid_date) FROM {{}} GROUP BY ALL")
    assert _diff(con, q.format("n_pharmacy_claim"), q.format("c_pharmacy_claim")) == []


def test_tables_pass_the_contract(trip, tmp_path):
    """The reader's tables load through the contract's validation with nothing quarantined: DME
    lines (CCLF6 has no diagnosis) load because the contract exempts DME from diagnosis_code_1."""
    import pyarrow.parquet as pq

    from allpayer.inputs.load import load_folder

    r, con = trip
    folder = tmp_path / "delivery"
    folder.mkdir()
    for t, table in r.tables.items():
        pq.write_table(table.drop_columns(["source_file", "line_number"]), folder / f"{t}.parquet")
    native = con.execute("SELECT getvariable('native_folder')").fetchall()[0][0]
    shutil.copy(f"{native}/provider_roster.parquet", folder / "provider_roster.parquet")
    result = load_folder(folder, tmp_path / "db.duckdb")
    assert all(t.reconciles for t in result.tables)
    assert result.quarantine_by_rule == []
    assert result.table("medical_claim").loaded == r.tables["medical_claim"].num_rows
    # (the DME exemption itself is tested in tests/inputs/test_validate.py)
