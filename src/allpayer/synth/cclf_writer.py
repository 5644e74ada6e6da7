"""Write a generated population's Medicare members as a monthly CCLF delivery.

The writer reads a delivery in the native format (``eligibility``, ``medical_claim``,
``pharmacy_claim`` as CSV or Parquet), keeps the rows of one payer (``medicare``) and writes the
twelve CCLF files and their CCLF0 summary in the fixed-width layout of a packet version, named as
CMS names them, optionally in one monthly zip. All formatting is SQL over the whole table.

What the native rows become:

- eligibility -> CCLF8 (one record per member: the latest span; Part A and B entitlement begin
  on the span's start);
- institutional claims -> CCLF1 (header), CCLF2 (revenue lines), CCLF3/4 (procedures and
  diagnoses), CCLFA (claim-level coinsurance, deductible and the AIPBP reduction);
- professional claims -> CCLF5 and CCLFB; DME claims -> CCLF6 and CCLFB; pharmacy -> CCLF7.

Adjustments: a native claim with adjustment rows becomes CCLF versions. Version 0 is the
original; for each later adjustment sequence the writer writes a cancellation of the previous
version (adjustment type 1) and the new cumulative version (type 2), both effective on the
adjustment's paid date. The reader nets them back to the native amounts.

See ``docs/cclf.md`` for the fields that cannot make the round trip.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from allpayer.inputs.cclf.files import file_name, zip_name
from allpayer.inputs.cclf.layouts import FILE_DESCRIPTIONS, FILE_TYPES, layouts
from allpayer.inputs.schema import TABLES

RACE_CODES = {
    "white": "1",
    "black or african american": "2",
    "asian": "4",
    "american indian or alaska native": "6",
    "unknown": "0",
}
SEX_CODES = {"male": "1", "female": "2"}


def _lit(text) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _source(folder: Path, table: str) -> str:
    for suffix, reader in ((".parquet", "read_parquet"), (".csv", "read_csv"), (".csv.gz", "read_csv")):
        p = folder / f"{table}{suffix}"
        if p.exists():
            extra = ", all_varchar=true, header=true" if reader == "read_csv" else ""
            return f"{reader}({_lit(str(p))}{extra})"
    raise FileNotFoundError(f"{folder}: no {table}.csv or {table}.parquet")


def _fixed(layout, values: dict[str, str]) -> str:
    """SQL of one fixed-width record: each field from `values` (SQL expressions) or blank."""
    parts = []
    for f in layout.fields:
        expr = values.get(f.name)
        if expr is None:
            parts.append(f"repeat(' ', {f.length})")
        elif f.type in ("money", "decimal"):
            scale = 2 if f.type == "money" else 4
            parts.append(f"coalesce(lpad(CAST(CAST({expr} AS DECIMAL(30,{scale})) AS VARCHAR), {f.length}, ' '), repeat(' ', {f.length}))")
        elif f.type == "date":
            parts.append(f"coalesce(strftime(CAST({expr} AS DATE), '%Y-%m-%d'), repeat(' ', {f.length}))")
        elif f.type == "int":
            parts.append(f"coalesce(lpad(CAST({expr} AS VARCHAR), {f.length}, '0'), repeat(' ', {f.length}))")
        else:
            parts.append(f"rpad(left(coalesce(CAST({expr} AS VARCHAR), ''), {f.length}), {f.length}, ' ')")
    return " || ".join(parts)


def _write_lines(con, sql: str, path: Path) -> int:
    """Write the single text column of `sql` as lines (LF endings); returns the line count."""
    col = con.execute(sql).fetch_arrow_table().column(0).combine_chunks()
    n = len(col)
    with open(path, "wb") as f:
        if n:
            joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), col.cast(pa.string())), "\n")
            f.write(joined[0].as_py().encode("ascii"))
            f.write(b"\n")
    return n


def write_cclf(
    native: str | Path,
    out: str | Path,
    *,
    aco: str = "A9999",
    performance_year: int,
    file_date: dt.date,
    version: int = 36,
    payer: str = "medicare",
    zip_delivery: bool = False,
) -> list[Path]:
    """Write the `payer` rows of the native delivery in `native` as CCLF files into `out`.

    Returns the written paths (the zip alone when `zip_delivery`).
    """
    native, out = Path(native), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lay = layouts(version)
    con = duckdb.connect()
    try:
        # Every column as text (as CSV gives it), so CSV and Parquet deliveries are written alike.
        con.execute(f"CREATE TEMP TABLE elig AS SELECT * FROM (SELECT COLUMNS(*)::VARCHAR FROM {_source(native, 'eligibility')}) WHERE payer = {_lit(payer)}")
        con.execute(f"CREATE TEMP TABLE med AS SELECT * FROM (SELECT COLUMNS(*)::VARCHAR FROM {_source(native, 'medical_claim')}) WHERE payer = {_lit(payer)}")
        try:
            pharmacy = _source(native, "pharmacy_claim")
        except FileNotFoundError:
            pharmacy = None
        if pharmacy:
            con.execute(f"CREATE TEMP TABLE rx AS SELECT * FROM (SELECT COLUMNS(*)::VARCHAR FROM {pharmacy}) WHERE payer = {_lit(payer)}")
        else:
            con.execute("CREATE TEMP TABLE rx AS SELECT NULL::VARCHAR AS claim_id WHERE false")
        for table, contract in (("elig", "eligibility"), ("med", "medical_claim"), ("rx", "pharmacy_claim")):
            have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            for c in TABLES[contract].column_names:
                if c not in have:
                    con.execute(f'ALTER TABLE {table} ADD COLUMN "{c}" VARCHAR')
        _versions(con)
        lines = {t: _sql(con, t, lay) for t in FILE_TYPES[1:]}
        names = {t: file_name(t, aco, performance_year, file_date) for t in FILE_TYPES}
        counts = {}
        paths = []
        for t, sql in lines.items():
            p = out / names[t]
            counts[t] = _write_lines(con, sql, p) if sql else _write_lines(con, "SELECT ''::VARCHAR WHERE false", p)
            paths.append(p)
        summary = out / names["CCLF0"]
        with open(summary, "w", encoding="ascii", newline="\n") as f:
            for t in FILE_TYPES[1:]:
                f.write(f"{t:<13}|{FILE_DESCRIPTIONS[t][:20]:<20}|{counts[t]:>20}|{lay[t].record_length:>13}\n")
        paths.insert(0, summary)
    finally:
        con.close()
    if zip_delivery:
        z = out / zip_name(aco, performance_year, file_date)
        with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in paths:
                zf.write(p, p.name)
        for p in paths:
            p.unlink()
        return [z]
    return paths


def _versions(con) -> None:
    """``medv``/``rxv``: one row per (claim, version, line) with cumulative amounts and the CCLF
    claim id and adjustment type of the version; cancellations are their own versions."""
    money = ("paid_amount", "allowed_amount", "charge_amount", "coinsurance_amount", "deductible_amount", "copayment_amount")
    for src, out, cols in (("med", "medv", money), ("rx", "rxv", money)):
        have = {r[0] for r in con.execute(f"DESCRIBE {src}").fetchall()}
        if "adjustment_sequence" not in have:
            con.execute(f"CREATE TEMP TABLE {out} AS SELECT * FROM {src}")
            continue
        cum = ", ".join(
            f"sum(CAST(coalesce(nullif(CAST({m if m in have else 'NULL'} AS VARCHAR), ''), '0') AS DECIMAL(18,2))) OVER w AS cum_{m}"
            for m in cols
        )
        seq = "CAST(coalesce(nullif(adjustment_sequence, ''), '0') AS INTEGER)"
        con.execute(f"""
            CREATE TEMP TABLE {out}_all AS
            SELECT r.*, {seq} AS seq, {cum}, dense_rank() OVER (ORDER BY claim_id) AS claim_no
            FROM {src} r
            WINDOW w AS (PARTITION BY claim_id, claim_line_number ORDER BY paid_date, {seq})
        """)
        # The versions of a claim: its distinct (paid date, sequence) pairs in that order, so an
        # adjustment keeps the date it was paid on.
        con.execute(f"""
            CREATE TEMP TABLE {out}_seq AS
            SELECT claim_id, seq, paid_date AS eff_date,
                   row_number() OVER (PARTITION BY claim_id ORDER BY paid_date, seq) - 1 AS k
            FROM {out}_all GROUP BY claim_id, seq, paid_date
        """)
        # Each line as of version k: its latest row at or before the version.
        con.execute(f"""
            CREATE TEMP TABLE {out}_state AS
            SELECT s.k, s.eff_date, a.* EXCLUDE (paid_date),
                   row_number() OVER (PARTITION BY a.claim_id, a.claim_line_number, s.k ORDER BY a.paid_date DESC, a.seq DESC) AS _n
            FROM {out}_seq s JOIN {out}_all a ON a.claim_id = s.claim_id
             AND (a.paid_date < s.eff_date OR (a.paid_date = s.eff_date AND a.seq <= s.seq))
        """)
        con.execute(f"""
            CREATE TEMP TABLE {out} AS
            SELECT *, claim_no * 100 + 2 * k AS cur_id, CASE WHEN k = 0 THEN '0' ELSE '2' END AS adj_type, eff_date AS eff
            FROM {out}_state WHERE _n = 1
            UNION ALL BY NAME
            SELECT p.* EXCLUDE (eff), p.claim_no * 100 + 2 * (p.k + 1) - 1 AS cur_id, '1' AS adj_type, s.eff_date AS eff
            FROM (SELECT *, eff_date AS eff FROM {out}_state WHERE _n = 1) p
            JOIN {out}_seq s ON s.claim_id = p.claim_id AND s.k = p.k + 1
        """)
        con.execute(f"ALTER TABLE {out} DROP COLUMN eff_date")
        con.execute(f"ALTER TABLE {out} RENAME COLUMN eff TO eff_date")
        if (con.execute(f"SELECT max(claim_no) FROM {out}").fetchall()[0][0] or 0) >= 10**10:
            raise ValueError("too many claims for 13-digit CCLF claim ids")


def _sql(con, t: str, lay) -> str | None:
    L = lay[t]
    names = set(L.names)

    def rec(values: dict[str, str], src: str, order: str) -> str:
        values = {k: v for k, v in values.items() if k in names}
        return f"SELECT {_fixed(L, values)} AS line FROM {src} ORDER BY {order}"

    inst = "(SELECT * FROM medv WHERE claim_type = 'institutional')"
    hdr = f"""(SELECT claim_id, cur_id, adj_type, eff_date, any_value(member_id) AS member_id, any_value(facility_ccn) AS ccn,
                 any_value(bill_type_code) AS bill_type, any_value(claim_start_date) AS from_dt, any_value(claim_end_date) AS thru_dt,
                 any_value(diagnosis_code_1) AS dx1, sum(cum_paid_amount) AS pmt, sum(cum_charge_amount) AS chrg,
                 sum(cum_coinsurance_amount) AS coins, sum(cum_deductible_amount) AS ded,
                 sum(cum_allowed_amount - cum_paid_amount - cum_coinsurance_amount - cum_deductible_amount) AS reduction,
                 bool_or(payment_arrangement <> 'ffs') AS aipbp, bool_or(claim_status = 'denied') AS denied,
                 any_value(drg_code) AS drg, any_value(facility_npi) AS fac_npi, any_value(rendering_npi) AS atnd_npi,
                 any_value(billing_npi) AS blg_npi, any_value(admit_type_code) AS admit_type, any_value(admit_source_code) AS admit_src,
                 any_value(discharge_disposition_code) AS disp, any_value(admission_date) AS admit_dt
          FROM {inst} GROUP BY claim_id, cur_id, adj_type, eff_date)"""
    ctype = """CASE WHEN left(bill_type, 2) = '11' THEN '60' WHEN left(bill_type, 2) IN ('21', '22') THEN '20'
                    WHEN left(bill_type, 2) = '18' THEN '30' WHEN left(bill_type, 2) IN ('32', '33', '34') THEN '10'
                    WHEN left(bill_type, 2) IN ('81', '82') THEN '50' ELSE '40' END"""
    ltype = ctype.replace("bill_type", "bill_type_code")
    if t == "CCLF1":
        return rec({
            "CUR_CLM_UNIQ_ID": "cur_id", "PRVDR_OSCAR_NUM": "ccn", "BENE_MBI_ID": "member_id", "CLM_TYPE_CD": ctype,
            "CLM_FROM_DT": "from_dt", "CLM_THRU_DT": "thru_dt", "CLM_BILL_FAC_TYPE_CD": "substr(bill_type, 1, 1)",
            "CLM_BILL_CLSFCTN_CD": "substr(bill_type, 2, 1)", "CLM_BILL_FREQ_CD": "substr(bill_type, 3, 1)",
            "PRNCPL_DGNS_CD": "dx1", "CLM_MDCR_NPMT_RSN_CD": "CASE WHEN denied THEN 'A' END", "CLM_PMT_AMT": "pmt",
            "BENE_PTNT_STUS_CD": "disp", "DGNS_DRG_CD": "CASE WHEN nullif(drg, '') IS NOT NULL THEN lpad(drg, 4, '0') END",
            "FAC_PRVDR_NPI_NUM": "fac_npi", "ATNDG_PRVDR_NPI_NUM": "atnd_npi", "CLM_ADJSMT_TYPE_CD": "adj_type",
            "CLM_EFCTV_DT": "eff_date", "CLM_IDR_LD_DT": "eff_date", "CLM_ADMSN_TYPE_CD": "admit_type",
            "CLM_ADMSN_SRC_CD": "admit_src", "DGNS_PRCDR_ICD_IND": "'0'", "CLM_MDCR_INSTNL_TOT_CHRG_AMT": "chrg",
            "CLM_BLG_PRVDR_OSCAR_NUM": "ccn", "CLM_BLG_PRVDR_NPI_NUM": "blg_npi", "CLM_ATNDG_PRVDR_NPI_NUM": "atnd_npi",
            "CLM_CNTL_NUM": "claim_id", "CLM_ORG_CNTL_NUM": "claim_id",
        }, hdr, "cur_id")
    if t == "CCLFA":
        return rec({
            "CUR_CLM_UNIQ_ID": "cur_id", "BENE_MBI_ID": "member_id", "CLM_TYPE_CD": ctype, "CLM_ACTV_CARE_FROM_DT": "admit_dt",
            "CLM_NGACO_CPTATN_SW": "CASE WHEN aipbp THEN 'Y' END", "CLM_PBP_RDCTN_AMT": "reduction",
            "CLM_MDCR_COINSRNC_AMT": "coins", "CLM_MDCR_DDCTBL_AMT": "ded",
        }, hdr, "cur_id")
    if t == "CCLF2":
        return rec({
            "CUR_CLM_UNIQ_ID": "cur_id", "CLM_LINE_NUM": "claim_line_number", "BENE_MBI_ID": "member_id", "CLM_TYPE_CD": ltype,
            "CLM_LINE_FROM_DT": "claim_line_start_date", "CLM_LINE_THRU_DT": "claim_line_end_date",
            "CLM_LINE_PROD_REV_CTR_CD": "revenue_center_code", "CLM_LINE_HCPCS_CD": "hcpcs_code", "PRVDR_OSCAR_NUM": "facility_ccn",
            "CLM_FROM_DT": "claim_start_date", "CLM_THRU_DT": "claim_end_date", "CLM_LINE_SRVC_UNIT_QTY": "nullif(service_unit_quantity, '')",
            "CLM_LINE_CVRD_PD_AMT": "cum_paid_amount", **{f"HCPCS_{i}_MDFR_CD": f"hcpcs_modifier_{i}" for i in range(1, 6)},
            "CLM_FAC_PRVDR_OSCAR_NUM": "facility_ccn",
        }, inst, "cur_id, CAST(claim_line_number AS INTEGER)")
    if t in ("CCLF3", "CCLF4"):
        what = "procedure" if t == "CCLF3" else "diagnosis"
        first = f"(SELECT *, row_number() OVER (PARTITION BY cur_id ORDER BY CAST(claim_line_number AS INTEGER)) AS _r FROM {inst})"
        unp = " UNION ALL ".join(
            f"SELECT cur_id, member_id, claim_start_date, claim_end_date, facility_ccn, bill_type_code, {i} AS sq, "
            f"{what}_code_{i} AS code, {'procedure_date_' + str(i) if what == 'procedure' else 'diagnosis_poa_' + str(i)} AS extra "
            f"FROM {first} WHERE _r = 1 AND nullif({what}_code_{i}, '') IS NOT NULL"
            for i in range(1, 26)
        )
        common = {"CUR_CLM_UNIQ_ID": "cur_id", "BENE_MBI_ID": "member_id", "CLM_TYPE_CD": ltype, "CLM_VAL_SQNC_NUM": "sq",
                  "PRVDR_OSCAR_NUM": "facility_ccn", "CLM_FROM_DT": "claim_start_date", "CLM_THRU_DT": "claim_end_date",
                  "DGNS_PRCDR_ICD_IND": "'0'", "CLM_BLG_PRVDR_OSCAR_NUM": "facility_ccn"}
        if t == "CCLF3":
            common.update({"CLM_PRCDR_CD": "code", "CLM_PRCDR_PRFRM_DT": "nullif(extra, '')"})
        else:
            common.update({"CLM_DGNS_CD": "code", "CLM_POA_IND": "extra"})
        return rec(common, f"({unp})", "cur_id, sq")
    prof = "(SELECT * FROM medv WHERE claim_type = 'professional')"
    dme = "(SELECT * FROM medv WHERE claim_type = 'dme')"
    if t == "CCLF5":
        return rec({
            "CUR_CLM_UNIQ_ID": "cur_id", "CLM_LINE_NUM": "claim_line_number", "BENE_MBI_ID": "member_id", "CLM_TYPE_CD": "'71'",
            "CLM_FROM_DT": "claim_start_date", "CLM_THRU_DT": "claim_end_date", "CLM_POS_CD": "place_of_service_code",
            "CLM_LINE_FROM_DT": "claim_line_start_date", "CLM_LINE_THRU_DT": "claim_line_end_date", "CLM_LINE_HCPCS_CD": "hcpcs_code",
            "CLM_LINE_CVRD_PD_AMT": "cum_paid_amount", "CLM_LINE_DGNS_CD": "diagnosis_code_1", "CLM_RNDRG_PRVDR_TAX_NUM": "billing_tin",
            "RNDRG_PRVDR_NPI_NUM": "rendering_npi", "CLM_CARR_PMT_DNL_CD": "CASE WHEN claim_status = 'denied' THEN '0' ELSE '1' END",
            "CLM_ADJSMT_TYPE_CD": "adj_type", "CLM_EFCTV_DT": "eff_date", "CLM_IDR_LD_DT": "eff_date", "CLM_CNTL_NUM": "claim_id",
            "CLM_LINE_ALOWD_CHRG_AMT": "cum_allowed_amount", "CLM_LINE_SRVC_UNIT_QTY": "nullif(service_unit_quantity, '')",
            **{f"HCPCS_{i}_MDFR_CD": f"hcpcs_modifier_{i}" for i in range(1, 6)},
            **{f"CLM_DGNS_{i}_CD": f"diagnosis_code_{i}" for i in range(1, 13)}, "DGNS_PRCDR_ICD_IND": "'0'",
            "CLM_RNDRG_PRVDR_NPI_NUM": "rendering_npi",
        }, prof, "cur_id, CAST(claim_line_number AS INTEGER)")
    if t == "CCLF6":
        return rec({
            "CUR_CLM_UNIQ_ID": "cur_id", "CLM_LINE_NUM": "claim_line_number", "BENE_MBI_ID": "member_id", "CLM_TYPE_CD": "'81'",
            "CLM_FROM_DT": "claim_start_date", "CLM_THRU_DT": "claim_end_date", "CLM_POS_CD": "place_of_service_code",
            "CLM_LINE_FROM_DT": "claim_line_start_date", "CLM_LINE_THRU_DT": "claim_line_end_date", "CLM_LINE_HCPCS_CD": "hcpcs_code",
            "CLM_LINE_CVRD_PD_AMT": "cum_paid_amount", "PAYTO_PRVDR_NPI_NUM": "billing_npi", "ORDRG_PRVDR_NPI_NUM": "rendering_npi",
            "CLM_CARR_PMT_DNL_CD": "CASE WHEN claim_status = 'denied' THEN '0' ELSE '1' END", "CLM_ADJSMT_TYPE_CD": "adj_type",
            "CLM_EFCTV_DT": "eff_date", "CLM_IDR_LD_DT": "eff_date", "CLM_CNTL_NUM": "claim_id",
            "CLM_LINE_ALOWD_CHRG_AMT": "cum_allowed_amount", "CLM_BLG_PRVDR_NPI_NUM": "billing_npi",
        }, dme, "cur_id, CAST(claim_line_number AS INTEGER)")
    if t == "CCLFB":
        both = f"(SELECT * FROM medv WHERE claim_type IN ('professional', 'dme'))"
        return rec({
            "CUR_CLM_UNIQ_ID": "cur_id", "CLM_LINE_NUM": "claim_line_number", "BENE_MBI_ID": "member_id",
            "CLM_TYPE_CD": "CASE WHEN claim_type = 'dme' THEN '81' ELSE '71' END",
            "CLM_LINE_NGACO_CPTATN_SW": "CASE WHEN payment_arrangement <> 'ffs' THEN 'Y' END",
            "CLM_PBP_RDCTN_AMT": "cum_allowed_amount - cum_paid_amount - cum_coinsurance_amount - cum_deductible_amount",
            "CLM_MDCR_DDCTBL_AMT": "cum_deductible_amount",
        }, both, "cur_id, CAST(claim_line_number AS INTEGER)")
    if t == "CCLF7":
        return rec({
            "CUR_CLM_UNIQ_ID": "cur_id", "BENE_MBI_ID": "member_id", "CLM_LINE_NDC_CD": "ndc_code", "CLM_TYPE_CD": "'01'",
            "CLM_LINE_FROM_DT": "dispensing_date", "PRVDR_SRVC_ID_QLFYR_CD": "'01'", "CLM_SRVC_PRVDR_GNRC_ID_NUM": "dispensing_provider_npi",
            "CLM_LINE_SRVC_UNIT_QTY": "nullif(quantity, '')", "CLM_LINE_DAYS_SUPLY_QTY": "nullif(days_supply, '')",
            "PRVDR_PRSBNG_ID_QLFYR_CD": "'01'", "CLM_PRSBNG_PRVDR_GNRC_ID_NUM": "prescribing_provider_npi",
            "CLM_LINE_BENE_PMT_AMT": "cum_copayment_amount + cum_coinsurance_amount + cum_deductible_amount",
            "CLM_ADJSMT_TYPE_CD": "adj_type", "CLM_EFCTV_DT": "eff_date", "CLM_IDR_LD_DT": "eff_date",
            "CLM_LINE_RX_SRVC_RFRNC_NUM": "claim_no", "CLM_LINE_RX_FILL_NUM": "'0'",
        }, "rxv", "cur_id")
    if t == "CCLF8":
        race = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in RACE_CODES.items())
        latest = "(SELECT * FROM elig QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY enrollment_start_date DESC) = 1)"
        return rec({
            "BENE_MBI_ID": "member_id", "BENE_ZIP_CD": "zip_code", "BENE_DOB": "birth_date",
            "BENE_SEX_CD": "CASE gender WHEN 'male' THEN '1' WHEN 'female' THEN '2' ELSE '0' END",
            "BENE_RACE_CD": f"CASE race {race} ELSE '3' END", "BENE_MDCR_STUS_CD": "medicare_status_code",
            "BENE_DUAL_STUS_CD": "dual_status_code", "BENE_DEATH_DT": "nullif(death_date, '')",
            "BENE_ORGNL_ENTLMT_RSN_CD": "original_reason_entitlement_code",
            "BENE_PART_A_ENRLMT_BGN_DT": "enrollment_start_date", "BENE_PART_B_ENRLMT_BGN_DT": "enrollment_start_date",
            "GEO_USPS_STATE_CD": "state", "GEO_ZIP5_CD": "zip_code",
        }, latest, "member_id")
    if t == "CCLF9":
        return None
    raise ValueError(t)


HEADER_FILES = ("CCLF1", "CCLF5", "CCLF6", "CCLF7")
CHILD_FILES = {"CCLF2": ("CCLF1",), "CCLF3": ("CCLF1",), "CCLF4": ("CCLF1",), "CCLFA": ("CCLF1",), "CCLFB": ("CCLF5", "CCLF6")}
"""The claim files that carry ``CLM_IDR_LD_DT``, and the files whose records follow their claim."""


def split_by_month(delivery: str | Path, out: str | Path, *, aco: str = "A9999", performance_year: int | None = None,
                   version: int = 36) -> list[Path]:
    """Split one CCLF delivery (a monthly zip or a folder of its files) into monthly deliveries,
    as CMS sends them: one folder per month of the claims' IDR load date (``CLM_IDR_LD_DT``),
    named ``m<YYYY-MM>`` and dated the 1st of the next month, holding that month's claim records
    (CCLF2-4, A and B records go with their claim), every CCLF8 and CCLF9 record, and a CCLF0
    summary. Returns the folders in delivery order."""
    delivery, out = Path(delivery), Path(out)
    lay = layouts(version)
    records: dict[str, list[str]] = {}
    if delivery.is_file():
        with zipfile.ZipFile(delivery) as z:
            members = {n: z.read(n).decode("ascii") for n in z.namelist()}
    else:
        members = {p.name: p.read_text(encoding="ascii") for p in delivery.iterdir() if p.is_file()}
    year = performance_year
    for name, text in members.items():
        t = "CCLF" + name.split(".")[3][2].upper()
        year = year or 2000 + int(name.split(".")[3][4:6])
        if t != "CCLF0":
            records[t] = text.splitlines()

    def field(t: str, name: str) -> slice:
        f = next(f for f in lay[t].fields if f.name == name)
        return slice(f.start - 1, f.end)

    month_of: dict[tuple[str, str], str] = {}
    by_month: dict[str, dict[str, list[str]]] = {}
    for t in HEADER_FILES:
        ld, cur = field(t, "CLM_IDR_LD_DT"), field(t, "CUR_CLM_UNIQ_ID")
        for line in records.get(t, []):
            m = line[ld][:7]
            month_of[(t, line[cur].strip())] = m
            by_month.setdefault(m, {}).setdefault(t, []).append(line)
    for t, parents in CHILD_FILES.items():
        cur = field(t, "CUR_CLM_UNIQ_ID")
        for line in records.get(t, []):
            key = line[cur].strip()
            m = next((month_of[(p, key)] for p in parents if (p, key) in month_of), None)
            if m is None:
                m = min(by_month)  # a record with no claim goes in the first month (where the reader quarantines it)
            by_month.setdefault(m, {}).setdefault(t, []).append(line)
    folders = []
    for m in sorted(by_month):
        y, mo = int(m[:4]), int(m[5:7])
        made = dt.date(y + (mo == 12), mo % 12 + 1, 1)
        folder = out / f"m{m}"
        folder.mkdir(parents=True, exist_ok=True)
        files = dict(by_month[m])
        for t in ("CCLF8", "CCLF9"):
            files[t] = records.get(t, [])
        for t in FILE_TYPES[1:]:
            lines = files.get(t, [])
            (folder / file_name(t, aco, year, made)).write_text("".join(x + "\n" for x in lines), encoding="ascii")
        with open(folder / file_name("CCLF0", aco, year, made), "w", encoding="ascii", newline="\n") as f:
            for t in FILE_TYPES[1:]:
                f.write(f"{t:<13}|{FILE_DESCRIPTIONS[t][:20]:<20}|{len(files.get(t, [])):>20}|{lay[t].record_length:>13}\n")
        folders.append(folder)
    return folders
