"""From parsed CCLF rows to the input contract: MBI chains, final action, netting, mapping.

All steps are SQL over DuckDB temp tables; nothing loops over claims or beneficiaries.

MBI chains (CCLF9): each row says a previous identifier was replaced by a current one. Chains are
followed to their end (A -> B and B -> C make A -> C), and every claim and demographic row is keyed
by the current MBI. Where one previous MBI is listed with different current MBIs, the row with the
latest previous-identifier effective date (then file, line) wins.

Final action: the versions of a claim (original, cancellation, adjustment) share a natural key:

- Part A (CCLF1, with its CCLF2-4/A rows): current MBI, provider OSCAR number, claim type, claim
  from date, claim thru date;
- Part B physician (CCLF5) and DME (CCLF6): claim control number, claim line number, current MBI;
- Part D (CCLF7): current MBI, service provider id, prescription service reference number, fill
  number, date of service.

Versions are ordered by claim effective date, then claim unique id; the last is the final action,
and a family whose last version is a cancellation (adjustment type code 1) has no final action.

Netting: each version is written as one contract row per claim line whose amounts are the change
from the previous version (a cancellation counts as all amounts 0): an original gives its amounts,
a cancellation their negation, an adjustment after a cancellation its own amounts. The sum over
a line's rows is then the final action's amount, which is the contract's adjustment convention.
"""

from __future__ import annotations

from allpayer.backend import sql_literal

MONEY = ("paid_amount", "allowed_amount", "charge_amount", "coinsurance_amount", "deductible_amount")

PART_A_KEY = ("member_id", "PRVDR_OSCAR_NUM", "CLM_TYPE_CD", "CLM_FROM_DT", "CLM_THRU_DT")
PART_B_KEY = ("claim_control", "CLM_LINE_NUM", "member_id")
PART_D_KEY = ("member_id", "CLM_SRVC_PRVDR_GNRC_ID_NUM", "CLM_LINE_RX_SRVC_RFRNC_NUM", "CLM_LINE_RX_FILL_NUM", "CLM_LINE_FROM_DT")

RACE = {
    "0": "unknown",
    "1": "white",
    "2": "black or african american",
    "3": "other race",
    "4": "asian",
    "5": "other race",  # CCLF 5 = Hispanic, an ethnicity the contract's race list does not have
    "6": "american indian or alaska native",
}
SEX = {"1": "male", "2": "female", "0": "unknown"}


_lit = sql_literal


def _case(column: str, mapping: dict[str, str], default: str) -> str:
    whens = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in mapping.items())
    return f"CASE {column} {whens} ELSE {_lit(default)} END"


def _run(con, sql: str) -> None:
    con.execute(sql)


def dedupe_versions(con, table: str, key: tuple[str, ...], quarantine: str, file_type: str) -> None:
    """Keep the first delivery of each claim row (`key`, by file date, file, line); quarantine later
    copies as ``duplicate_claim_version``."""
    k = ", ".join(f'"{c}"' for c in key)
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE {table}_r AS
        SELECT t.*, row_number() OVER (PARTITION BY {k} ORDER BY f.file_date, t.source_file, t.line_number) AS _n,
               first_value(t.source_file || ' line ' || t.line_number) OVER (PARTITION BY {k} ORDER BY f.file_date, t.source_file, t.line_number) AS _first
        FROM {table} t JOIN _cclf_files f USING (source_file)
    """)
    keys = " || '/' || ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), '')" for c in key)
    _run(con, f"""
        INSERT INTO {quarantine}
        SELECT {_lit(file_type)}, source_file, line_number, 'duplicate_claim_version', 'duplicate_claim_version',
               'same {'/'.join(key)} (' || {keys} || ') as ' || _first, NULL
        FROM {table}_r WHERE _n > 1
    """)
    _run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * EXCLUDE (_n, _first) FROM {table}_r WHERE _n = 1")
    _run(con, f"DROP TABLE {table}_r")


def orphans(con, table: str, parent: str, key: str, quarantine: str, file_type: str, parent_type: str) -> None:
    """Quarantine rows of `table` whose claim is not in `parent` (rule ``no_claim_header``), and drop them."""
    _run(con, f"""
        INSERT INTO {quarantine}
        SELECT {_lit(file_type)}, t.source_file, t.line_number, 'no_claim_header', 'no_claim_header',
               'claim ' || t."{key}" || ' has no {parent_type} record', NULL
        FROM {table} t ANTI JOIN {parent} p USING ("{key}")
    """)
    _run(con, f'CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table} SEMI JOIN {parent} USING ("{key}")')


def mbi_map(con, cclf9: str | None) -> None:
    """``_cclf_mbi(prvs_num, crnt_num)``: every previous MBI resolved to the end of its chain."""
    if cclf9 is None:
        _run(con, "CREATE OR REPLACE TEMP TABLE _cclf_mbi (prvs_num VARCHAR, crnt_num VARCHAR)")
        return
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE _cclf_mbi AS
        WITH RECURSIVE x AS (
            SELECT "PRVS_NUM" AS prev,
                   arg_max("CRNT_NUM", struct_pack(d := coalesce("PRVS_ID_EFCTV_DT", DATE '0001-01-01'), f := f.file_date, s := source_file, l := line_number)) AS cur
            FROM {cclf9} JOIN _cclf_files f USING (source_file)
            WHERE "PRVS_NUM" <> "CRNT_NUM"
            GROUP BY "PRVS_NUM"
        ),
        chain(start, cur, depth) AS (
            SELECT prev, cur, 1 FROM x
            UNION ALL
            SELECT c.start, x.cur, c.depth + 1 FROM chain c JOIN x ON x.prev = c.cur
            WHERE c.depth < 64 AND x.cur <> c.start
        )
        SELECT start AS prvs_num, arg_max(cur, depth) AS crnt_num FROM chain GROUP BY start
    """)


def with_member(con, table: str) -> None:
    """Add ``member_id``: the row's BENE_MBI_ID resolved through the MBI chains."""
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT t.*, coalesce(m.crnt_num, t."BENE_MBI_ID") AS member_id
        FROM {table} t LEFT JOIN _cclf_mbi m ON m.prvs_num = t."BENE_MBI_ID"
    """)


def eligibility(con, cclf8: str, payer: str, plan: str, data_source: str, coverage_end_sql: str) -> str:
    """One enrollment span per current MBI from its latest CCLF8 record."""
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE _cclf_eligibility AS
        WITH ranked AS (
            SELECT b.*, f.performance_year, row_number() OVER (
                PARTITION BY b.member_id ORDER BY f.file_date DESC, b.source_file DESC, b.line_number DESC) AS _n
            FROM {cclf8} b JOIN _cclf_files f USING (source_file)
        )
        SELECT member_id AS person_id, member_id, NULL AS subscriber_id,
               {_case('"BENE_SEX_CD"', SEX, 'unknown')} AS gender,
               {_case('"BENE_RACE_CD"', RACE, 'unknown')} AS race,
               "BENE_DOB" AS birth_date, "BENE_DEATH_DT" AS death_date,
               CASE WHEN "BENE_DEATH_DT" IS NOT NULL THEN 'true' ELSE 'false' END AS death_flag,
               CASE WHEN "BENE_PART_A_ENRLMT_BGN_DT" IS NULL THEN "BENE_PART_B_ENRLMT_BGN_DT"
                    WHEN "BENE_PART_B_ENRLMT_BGN_DT" IS NULL THEN "BENE_PART_A_ENRLMT_BGN_DT"
                    ELSE greatest("BENE_PART_A_ENRLMT_BGN_DT", "BENE_PART_B_ENRLMT_BGN_DT") END AS enrollment_start_date,
               coalesce(last_day("BENE_DEATH_DT"), {coverage_end_sql}) AS enrollment_end_date,
               {_lit(payer)} AS payer, 'medicare' AS payer_type, {_lit(plan)} AS plan,
               "BENE_ORGNL_ENTLMT_RSN_CD" AS original_reason_entitlement_code,
               "BENE_DUAL_STUS_CD" AS dual_status_code, "BENE_MDCR_STUS_CD" AS medicare_status_code,
               "GEO_USPS_STATE_CD" AS state, "BENE_ZIP_CD" AS zip_code,
               {_lit(data_source)} AS data_source, source_file, line_number
        FROM ranked WHERE _n = 1
    """)
    return "_cclf_eligibility"


def pivot(prefix: str, value: str, seq: str = '"CLM_VAL_SQNC_NUM"', n: int = 25) -> str:
    return ", ".join(f"max(CASE WHEN CAST({seq} AS INTEGER) = {i} THEN {value} END) AS {prefix}_{i}" for i in range(1, n + 1))


def net_versions(con, versions: str, lines: str, out: str, attr_cols: list[str]) -> None:
    """Contract rows from claim versions and their lines (see the module's netting rule).

    `versions`: one row per version: ``fam, ver, cur_id, is_cancel, hdr_source_file, hdr_line_number``.
    `lines`: one row per version line: ``cur_id, claim_line_number``, the `MONEY` columns, the
    `attr_cols`, ``source_file``, ``line_number``. Writes `out` with ``fam, ver, cur_id,
    claim_line_number, adjustment_sequence``, the money deltas, the attributes of the row's own
    line (or of the latest earlier version that has the line) and provenance.
    """
    money_lag = ", ".join(
        f"v_{m} - coalesce(lag(v_{m}) OVER w, 0) AS {m}" for m in MONEY
    )
    values = ", ".join(
        f"CASE WHEN v.is_cancel THEN 0 ELSE coalesce(l.{m}, 0) END AS v_{m}, l.{m} IS NOT NULL AS has_{m}" for m in MONEY
    )
    any_value = ", ".join(f"bool_or(has_{m}) OVER (PARTITION BY fam, claim_line_number) AS any_{m}" for m in MONEY)
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE {out} AS
        WITH fam_lines AS (
            SELECT DISTINCT v.fam, l.claim_line_number FROM {versions} v JOIN {lines} l USING (cur_id)
        ),
        grid AS (
            SELECT v.fam, v.ver, v.cur_id, v.is_cancel, v.hdr_source_file, v.hdr_line_number, fl.claim_line_number,
                   l.cur_id IS NOT NULL AS present, {values},
                   CASE WHEN l.cur_id IS NOT NULL THEN v.cur_id END AS attr_id,
                   l.source_file AS l_source_file, l.line_number AS l_line_number
            FROM {versions} v JOIN fam_lines fl USING (fam)
            LEFT JOIN {lines} l ON l.cur_id = v.cur_id AND l.claim_line_number = fl.claim_line_number
        ),
        deltas AS (
            SELECT *, {money_lag}, {any_value},
                   last_value(attr_id IGNORE NULLS) OVER (PARTITION BY fam, claim_line_number ORDER BY ver
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS use_id
            FROM grid
            WINDOW w AS (PARTITION BY fam, claim_line_number ORDER BY ver)
        )
        SELECT d.fam, d.ver, d.cur_id, d.is_cancel, d.claim_line_number,
               {", ".join([f"CASE WHEN d.any_{m} THEN d.{m} END AS {m}" for m in MONEY] + [f"a.{c}" for c in attr_cols])},
               coalesce(d.l_source_file, d.hdr_source_file) AS source_file,
               coalesce(d.l_line_number, d.hdr_line_number) AS line_number
        FROM deltas d LEFT JOIN {lines} a ON a.cur_id = d.use_id AND a.claim_line_number = d.claim_line_number
        WHERE d.present OR {" OR ".join(f"(d.any_{m} AND d.{m} <> 0)" for m in MONEY)}
    """)


def versions_of(con, table: str, key: tuple[str, ...], out: str, id_sql: str = '"CUR_CLM_UNIQ_ID"') -> None:
    """Number the versions of each natural-key family of `table` (by effective date, then claim id)."""
    k = ", ".join(f'"{c}"' if c.isupper() else c for c in key)
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT t.*, dense_rank() OVER (ORDER BY {k}) AS fam,
               row_number() OVER (PARTITION BY {k} ORDER BY "CLM_EFCTV_DT" NULLS FIRST, "CUR_CLM_UNIQ_ID") - 1 AS ver,
               count(*) OVER (PARTITION BY {k}) AS versions,
               coalesce("CLM_ADJSMT_TYPE_CD" = '1', false) AS is_cancel,
               {id_sql} AS cur_id, source_file AS hdr_source_file, line_number AS hdr_line_number
        FROM {table} t
    """)


def final_action(con, part: str, versions: str, claim_id_sql: str) -> str:
    """Rows of the final-action evidence table for one part (one row per claim version)."""
    return f"""
        SELECT {_lit(part)} AS part, {claim_id_sql} AS claim_id, member_id, "CUR_CLM_UNIQ_ID" AS cur_clm_uniq_id,
               ver AS version, coalesce("CLM_ADJSMT_TYPE_CD", '0') AS adjustment_type_code,
               ver = versions - 1 AS is_last_version,
               ver = versions - 1 AND NOT is_cancel AS is_final_action,
               bool_or(ver = versions - 1 AND is_cancel) OVER (PARTITION BY fam) AS family_canceled,
               "CLM_EFCTV_DT" AS claim_effective_date, source_file, line_number
        FROM {versions}
    """
