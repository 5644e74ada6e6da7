"""CMS Claim and Claim Line Feed (CCLF) files -> the input data contract.

`read_cclf_folder` reads a folder of CCLF files (or monthly CCLF zips), checks them against the
CCLF0 summary, parses every line by the packet version's record layout, resolves MBI chains,
numbers claim versions by natural key and writes the contract tables ``eligibility``,
``medical_claim`` and ``pharmacy_claim`` as text columns with ``source_file`` and
``line_number`` (the CCLF file and line each row came from), ready for the loader's staging.
Lines that cannot be used are returned as quarantine rows naming file, line, rule and message.
See ``docs/cclf.md``.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from allpayer.backend import sql_literal
from allpayer.errors import InputFileError
from allpayer.inputs.cclf import claims as C
from allpayer.inputs.cclf.files import CclfFile, discover
from allpayer.inputs.cclf.layouts import FILE_TYPES, detect_version, layouts
from allpayer.inputs.cclf.parse import majority_length, parse_file
from allpayer.inputs.schema import TABLES

__all__ = ["CclfRead", "FileCount", "HISTORY_FILES", "NEGATIVE_ORIGINALS", "history_table", "read_cclf_folder"]

HISTORY_FILES = "cclf_file"
"""Stored table of the CCLF files loaded so far (``source_file``, ``file_type``, ``file_date``,
``performance_year``, ``kind``, ``load_run_id``)."""


def history_table(file_type: str) -> str:
    """The stored table of the parsed records of one CCLF file type (``cclf_record_cclf1``...)."""
    return f"cclf_record_{file_type.lower()}"


CONTRACT_TABLE = {
    **{t: "medical_claim" for t in ("CCLF1", "CCLF2", "CCLF3", "CCLF4", "CCLF5", "CCLF6", "CCLFA", "CCLFB")},
    "CCLF7": "pharmacy_claim",
    "CCLF8": "eligibility",
    "CCLF9": "eligibility",
    "CCLF0": "eligibility",
}
"""The contract table a CCLF file feeds (where its quarantined lines are counted)."""

CLAIM_LEVEL_LINE = 9999
"""The claim line number of a Part A claim's claim-level amounts (the header payment not on its
revenue lines, total charges, coinsurance, deductible, AIPBP reduction): after any revenue line
(an institutional claim has at most 999)."""

NEGATIVE_ORIGINALS = (("paid_amount", None), ("allowed_amount", CLAIM_LEVEL_LINE))
"""The amounts of an original CCLF claim row that may be negative
(`allpayer.inputs.validate.NegativeOriginals`): the payment, since CMS's claim payment amount is
negative where the deductible or coinsurance charged exceeds what Medicare pays (CCW data
dictionary, ``CLM_PMT_AMT``), and the claim-level line's allowed amount, that payment less the
revenue lines' plus coinsurance, deductible and reduction. Charges, coinsurance, deductibles and
a revenue or Part B line's allowed amount are never negative in the CCLF layout: a negative one
is a ``negative_amount``, as in any delivery."""

QUARANTINE_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("file_type", pa.string()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("rule", pa.string()),
        ("rules", pa.string()),
        ("message", pa.string()),
        ("raw_row", pa.string()),
    ]
)


@dataclass
class FileCount:
    """Lines of one CCLF file: read = parsed + quarantined."""

    source_file: str
    file_type: str
    read: int
    parsed: int
    quarantined: int
    summary_count: int | None  # the CCLF0 record count, when the delivery has a CCLF0

    @property
    def reconciles(self) -> bool:
        return self.read == self.parsed + self.quarantined


@dataclass
class CclfRead:
    """What `read_cclf_folder` read.

    ``tables``: contract table name -> Arrow table of text columns (every contract column, NULL
    where CCLF has no value) plus ``source_file`` (string) and ``line_number`` (int64).
    ``quarantine``: lines that could not be used (`QUARANTINE_SCHEMA`). ``final_action``: one row
    per claim version with its family and whether it is the final action. ``files``: counts per
    file. ``version``: the packet layout version used. ``ignored``: files that are not CCLF files
    (or test files when those are skipped).

    Read with ``history=True`` (a delivery added to the CCLF records already stored), ``tables``
    hold only the rows that are new or changed against what the stored records alone give, and
    ``superseded`` (contract table -> rows, same columns) the rows those stored records gave that
    the new delivery changes (a family's later version renumbered, a newer CCLF8 record, an MBI
    chain extended): they are to be replaced. ``history_files``: the number of stored files.
    """

    version: int
    tables: dict[str, pa.Table]
    quarantine: pa.Table
    final_action: pa.Table
    files: list[FileCount]
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    superseded: dict[str, pa.Table] = field(default_factory=dict)
    history_files: int = 0


_SUMMARY_RE = re.compile(r"^\s*(CCLF[0-9AB])\b.*?(\d+)\D+(\d+)\s*$", re.IGNORECASE)


def _summary(path: Path, relpath: str) -> dict[str, tuple[int, int]]:
    """CCLF0: file type -> (record count, record length). Header and blank lines are skipped."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(relpath, f"cannot be read as a CCLF0 summary ({exc})") from exc
    out = {}
    for n, line in enumerate(text.splitlines(), start=1):
        m = _SUMMARY_RE.match(line)
        if m:
            out[m[1].upper()] = (int(m[2]), int(m[3]))
        elif line.strip() and line.strip().upper().startswith("CCLF"):
            raise InputFileError(relpath, f"line {n}: expected a file label, record count and record length")
    if not out:
        raise InputFileError(relpath, "no file counts found: expected lines like 'CCLF1 | Part A Claims Header | 123 | 437'")
    return out


def _version(files: list[CclfFile]) -> int:
    """The latest packet version whose record lengths fit every file (files unchanged between
    versions fit several)."""
    possible = set(_all_versions())
    first_fit: dict[int, str] = {}
    for f in files:
        if f.file_type == "CCLF0":
            continue
        length = majority_length(f.path, f.relpath)
        if length == 0:
            continue
        fits = {v for v in _all_versions() if layouts(v)[f.file_type].record_length == length}
        if not fits:
            known = ", ".join(f"v{v}: {layouts(v)[f.file_type].record_length}" for v in _all_versions())
            raise InputFileError(f.relpath, f"records are {length} characters long: no {f.file_type} layout has that length ({known})")
        if not possible & fits:
            other = first_fit.get(min(possible), "another file")
            raise InputFileError(f.relpath, f"records fit layout v{max(fits)} but {other} does not: one packet version per read")
        possible &= fits
        for v in fits:
            first_fit.setdefault(v, f.relpath)
    return max(possible)


def _all_versions():
    from allpayer.inputs.cclf.layouts import versions

    return versions()


def _text(col: str, kind: str) -> str:
    """SQL turning a typed value into the contract's text."""
    if kind == "date":
        return f"strftime({col}, '%Y-%m-%d')"
    return f"CAST({col} AS VARCHAR)"


def read_cclf_folder(
    folder: str | Path,
    *,
    version: int | None = None,
    payer: str = "medicare",
    plan: str = "medicare_ffs",
    data_source: str = "cclf",
    coverage_end: dt.date | None = None,
    include_test: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
    history: bool = False,
    run_id: str | None = None,
) -> CclfRead:
    """Read a folder of CCLF files (or monthly zips) into the input contract's tables.

    `version`: the CCLF Information Packet version of the files; by default it is found from
    their record lengths. `coverage_end`: the last day of Medicare coverage of beneficiaries with
    no death date (default: 31 December of the performance year in the file names). `con`: a
    DuckDB connection to work in (a private in-memory one by default).

    `history`: read the delivery together with the CCLF records stored in `con` by earlier loads
    (tables `history_table` and `HISTORY_FILES`), so that a month's delivery gets the same claim
    versions, final actions and netting as reading every delivery at once; a file of the folder
    with the name of a stored file replaces it. With `run_id`, this delivery's parsed records are
    then stored in `con` under that load run (the stored copies of files of the same name are
    replaced).

    Raises `InputFileError` naming the file when a file cannot be read, a record length matches
    no layout, or a file's record count differs from its CCLF0 summary.
    """
    own = con is None
    con = con or duckdb.connect()
    try:
        if history and own:
            raise ValueError("history=True reads the stored CCLF records of `con`: pass the database connection")
        return _read(con, folder, version, payer, plan, data_source, coverage_end, include_test, history, run_id)
    finally:
        if own:
            con.close()
        else:
            for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE temporary AND table_name LIKE '\\_cclf\\_%' ESCAPE '\\'"
            ).fetchall():
                con.execute(f'DROP TABLE IF EXISTS "{name}"')


def _read(con, folder, version, payer, plan, data_source, coverage_end, include_test, history=False, run_id=None) -> CclfRead:
    with tempfile.TemporaryDirectory(prefix="allpayer-cclf-") as work:
        found = discover(folder, Path(work), include_test=include_test)
        files = sorted(found.files, key=lambda f: (f.file_date, f.file_type, f.relpath))
        v = version if version is not None else _version(files)
        lay = layouts(v)
        con.register(
            "_cclf_files_arrow",
            pa.table(
                {
                    "source_file": [f.relpath for f in files],
                    "file_type": [f.file_type for f in files],
                    "file_date": [f.file_date for f in files],
                    "performance_year": [f.performance_year for f in files],
                    "kind": [f.kind for f in files],
                }
            ),
        )
        con.execute("CREATE OR REPLACE TEMP TABLE _cclf_new_files AS SELECT * FROM _cclf_files_arrow")
        con.unregister("_cclf_files_arrow")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _cclf_quarantine (file_type VARCHAR, source_file VARCHAR, line_number BIGINT, "
            "rule VARCHAR, rules VARCHAR, message VARCHAR, raw_row VARCHAR)"
        )
        counts: list[FileCount] = []
        parts: dict[str, list[str]] = {}
        summaries = {f.delivery: (f, _summary(f.path, f.relpath)) for f in files if f.file_type == "CCLF0"}
        warnings = []
        for f in files:
            if f.file_type == "CCLF0":
                continue
            rows, bad, read = parse_file(con, f.path, f.relpath, lay[f.file_type])
            nbad = int(con.execute(f"SELECT count(*) FROM {bad}").fetchall()[0][0])
            con.execute(f"INSERT INTO _cclf_quarantine SELECT * FROM {bad}")
            con.execute(f"DROP TABLE {bad}")
            summary_count = None
            if f.delivery in summaries:
                s_file, s = summaries[f.delivery]
                if f.file_type not in s:
                    raise InputFileError(f.relpath, f"{f.file_type} is not listed in the delivery's summary {s_file.relpath}")
                summary_count, summary_length = s[f.file_type]
                if summary_count != read:
                    raise InputFileError(
                        f.relpath,
                        f"has {read} records but its CCLF0 summary {s_file.relpath} says {summary_count} (incomplete or truncated file?)",
                    )
                if summary_length != lay[f.file_type].record_length:
                    raise InputFileError(
                        s_file.relpath,
                        f"gives record length {summary_length} for {f.file_type}; the v{v} layout has {lay[f.file_type].record_length}",
                    )
            else:
                warnings.append(f"{f.relpath}: no CCLF0 summary in its delivery: record count not checked")
            counts.append(FileCount(f.relpath, f.file_type, read, read - nbad, nbad, summary_count))
            parts.setdefault(f.file_type, []).append(rows)
        for delivery, (s_file, s) in summaries.items():
            have = {f.file_type for f in files if f.delivery == delivery}
            for t, (n, _) in s.items():
                if t not in have and n > 0:
                    raise InputFileError(s_file.relpath, f"lists {n} {t} records but the delivery has no {t} file")
        for t in FILE_TYPES[1:]:
            cols = ", ".join(f'"{fl.name}" {_sql_type(fl.type)}' for fl in lay[t].fields)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _cclf_empty_{t.lower()} ({cols}, source_file VARCHAR, line_number BIGINT)")
            name = f"_cclf_new_{t.lower()}"
            if t in parts:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS " + " UNION ALL BY NAME ".join(f"SELECT * FROM {p}" for p in parts[t]))
                for p in parts[t]:
                    con.execute(f"DROP TABLE {p}")
            else:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _cclf_empty_{t.lower()}")
        stored = _stored_tables(con) if history else set()
        n_history = 0
        prev = None
        if HISTORY_FILES in stored:
            n_history = int(con.execute(f"SELECT count(*) FROM {HISTORY_FILES}").fetchall()[0][0])
        if n_history:
            # What the stored records give (the tables as earlier loads left them).
            _stage(con, stored, with_new=False)
            con.execute("CREATE OR REPLACE TEMP TABLE _cclf_parse_quarantine AS SELECT * FROM _cclf_quarantine")
            con.execute("DELETE FROM _cclf_quarantine")
            prev = _build(con, payer, plan, data_source, coverage_end)[0]
            con.execute("CREATE OR REPLACE TEMP TABLE _cclf_quarantine AS SELECT * FROM _cclf_parse_quarantine")
        _stage(con, stored, with_new=True)
        result = _build(con, payer, plan, data_source, coverage_end)
        table_of = " ".join(f"WHEN {_lit(t)} THEN {_lit(name)}" for t, name in CONTRACT_TABLE.items())
        quarantine = con.execute(
            f"SELECT CASE file_type {table_of} END AS table_name, file_type, source_file, line_number, rule, rules, message, "
            "raw_row FROM _cclf_quarantine WHERE source_file IN (SELECT source_file FROM _cclf_new_files) "
            "ORDER BY source_file, line_number"
        ).fetch_arrow_table().cast(QUARANTINE_SCHEMA)
        q_by_file = dict(con.execute("SELECT source_file, count(*) FROM _cclf_quarantine GROUP BY 1").fetchall())
        tables, superseded = result[0], {}
        if prev is not None:
            tables, superseded = _changes(con, result[0], prev)
        if history and run_id is not None:
            _store_history(con, run_id)
        for c in counts:  # later steps (duplicates, orphans) quarantine parsed lines too
            c.quarantined = q_by_file.get(c.source_file, 0)
            c.parsed = c.read - c.quarantined
        out = CclfRead(
            version=v,
            tables=tables,
            quarantine=quarantine,
            final_action=result[1],
            files=counts,
            ignored=found.ignored,
            warnings=warnings,
            superseded=superseded,
            history_files=n_history,
        )
    return out


def _stored_tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}


def _stage(con, stored: set[str], with_new: bool) -> None:
    """The working tables ``_cclf_<type>`` and ``_cclf_files``: the stored records of earlier
    deliveries and, `with_new`, the new ones (which replace the stored records of files of the
    same name)."""
    not_new = "source_file NOT IN (SELECT source_file FROM _cclf_new_files)" if with_new else "true"
    for t in FILE_TYPES[1:]:
        parts = [f"SELECT * FROM _cclf_empty_{t.lower()}"]
        if history_table(t) in stored:
            parts.append(f"SELECT * EXCLUDE (load_run_id) FROM {history_table(t)} WHERE {not_new}")
        if with_new:
            parts.append(f"SELECT * FROM _cclf_new_{t.lower()}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cclf_{t.lower()} AS " + " UNION ALL BY NAME ".join(parts))
    parts = []
    if HISTORY_FILES in stored:
        parts.append(f"SELECT source_file, file_type, file_date, performance_year, kind FROM {HISTORY_FILES} WHERE {not_new}")
    if with_new:
        parts.append("SELECT * FROM _cclf_new_files")
    con.execute("CREATE OR REPLACE TEMP TABLE _cclf_files AS " + " UNION ALL ".join(parts))


def _changes(con, full: dict[str, pa.Table], prev: dict[str, pa.Table]):
    """Rows of `full` that `prev` does not have (new or changed), and rows of `prev` that `full`
    does not have (superseded), per table; rows compare on every column, provenance included."""
    new, gone = {}, {}
    for t, table in full.items():
        con.register("_cclf_full_arrow", table)
        con.register("_cclf_prev_arrow", prev[t])
        try:
            order = " ORDER BY source_file, line_number"
            new[t] = con.execute(f"SELECT * FROM _cclf_full_arrow EXCEPT ALL SELECT * FROM _cclf_prev_arrow{order}").fetch_arrow_table().cast(table.schema)
            gone[t] = con.execute(f"SELECT * FROM _cclf_prev_arrow EXCEPT ALL SELECT * FROM _cclf_full_arrow{order}").fetch_arrow_table().cast(table.schema)
        finally:
            con.unregister("_cclf_full_arrow")
            con.unregister("_cclf_prev_arrow")
    return new, gone


def _store_history(con, run_id: str) -> None:
    """Store this delivery's parsed records (and its files) in the history tables of `con`,
    replacing the stored copies of files of the same name."""
    stored = _stored_tables(con)
    run = _lit(run_id)
    for t in FILE_TYPES[1:]:
        name, new = history_table(t), f"_cclf_new_{t.lower()}"
        if name not in stored:
            con.execute(f"CREATE TABLE {name} AS SELECT CAST(NULL AS VARCHAR) AS load_run_id, * FROM _cclf_empty_{t.lower()} LIMIT 0")
        have = _columns(con, name)
        for col, typ in con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {new})").fetchall():
            if col not in have:  # a later packet version's field
                con.execute(f'ALTER TABLE {name} ADD COLUMN "{col}" {typ}')
        con.execute(f"DELETE FROM {name} WHERE source_file IN (SELECT source_file FROM _cclf_new_files)")
        con.execute(f"INSERT INTO {name} BY NAME SELECT {run} AS load_run_id, * FROM {new}")
    if HISTORY_FILES not in stored:
        con.execute(
            f"CREATE TABLE {HISTORY_FILES} (source_file VARCHAR, file_type VARCHAR, file_date DATE, performance_year INTEGER, "
            "kind VARCHAR, load_run_id VARCHAR)"
        )
    con.execute(f"DELETE FROM {HISTORY_FILES} WHERE source_file IN (SELECT source_file FROM _cclf_new_files)")
    con.execute(
        f"INSERT INTO {HISTORY_FILES} SELECT source_file, file_type, file_date, performance_year, kind, {run} FROM _cclf_new_files"
    )


def _sql_type(kind: str) -> str:
    from allpayer.inputs.cclf.parse import SQL_TYPES

    return SQL_TYPES[kind]


def _contract(con, table: str, select: str) -> pa.Table:
    """The contract table `table` from SQL `select` (whose columns are a subset of the contract's,
    typed): every contract column as text, then source_file and line_number."""
    have = {r[0] for r in con.execute(f"DESCRIBE {select}").fetchall()}
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {select}").fetchall()}
    cols = []
    for c in TABLES[table].columns:
        if c.name in have:
            kind = "date" if types[c.name] == "DATE" else "other"
            cols.append(f"{_text(_q(c.name), kind)} AS {_q(c.name)}")
        else:
            cols.append(f"CAST(NULL AS VARCHAR) AS {_q(c.name)}")
    sql = f"SELECT {', '.join(cols)}, source_file, CAST(line_number AS BIGINT) AS line_number FROM ({select}) ORDER BY source_file, line_number"
    return con.execute(sql).fetch_arrow_table()


def _q(name: str) -> str:
    return '"' + name + '"'


def _build(con, payer: str, plan: str, data_source: str, coverage_end: dt.date | None):
    Q = "_cclf_quarantine"
    C.mbi_map(con, "_cclf_cclf9")
    # Claim rows delivered twice (the same version in two monthly files) are kept once.
    C.dedupe_versions(con, "_cclf_cclf1", ("CUR_CLM_UNIQ_ID",), Q, "CCLF1")
    C.dedupe_versions(con, "_cclf_cclf2", ("CUR_CLM_UNIQ_ID", "CLM_LINE_NUM"), Q, "CCLF2")
    C.dedupe_versions(con, "_cclf_cclf3", ("CUR_CLM_UNIQ_ID", "CLM_VAL_SQNC_NUM"), Q, "CCLF3")
    C.dedupe_versions(con, "_cclf_cclf4", ("CUR_CLM_UNIQ_ID", "CLM_VAL_SQNC_NUM"), Q, "CCLF4")
    C.dedupe_versions(con, "_cclf_cclfa", ("CUR_CLM_UNIQ_ID",), Q, "CCLFA")
    C.dedupe_versions(con, "_cclf_cclf5", ("CUR_CLM_UNIQ_ID", "CLM_LINE_NUM"), Q, "CCLF5")
    C.dedupe_versions(con, "_cclf_cclf6", ("CUR_CLM_UNIQ_ID", "CLM_LINE_NUM"), Q, "CCLF6")
    C.dedupe_versions(con, "_cclf_cclfb", ("CUR_CLM_UNIQ_ID", "CLM_LINE_NUM"), Q, "CCLFB")
    C.dedupe_versions(con, "_cclf_cclf7", ("CUR_CLM_UNIQ_ID",), Q, "CCLF7")
    for child, t in (("_cclf_cclf2", "CCLF2"), ("_cclf_cclf3", "CCLF3"), ("_cclf_cclf4", "CCLF4"), ("_cclf_cclfa", "CCLFA")):
        C.orphans(con, child, "_cclf_cclf1", "CUR_CLM_UNIQ_ID", Q, t, "CCLF1 (Part A header)")
    con.execute("CREATE OR REPLACE TEMP TABLE _cclf_partb AS SELECT \"CUR_CLM_UNIQ_ID\", \"CLM_LINE_NUM\" FROM _cclf_cclf5 UNION ALL SELECT \"CUR_CLM_UNIQ_ID\", \"CLM_LINE_NUM\" FROM _cclf_cclf6")
    con.execute("""
        INSERT INTO _cclf_quarantine
        SELECT 'CCLFB', b.source_file, b.line_number, 'no_claim_header', 'no_claim_header',
               'claim line ' || b."CUR_CLM_UNIQ_ID" || '/' || b."CLM_LINE_NUM" || ' has no CCLF5 or CCLF6 record', NULL
        FROM _cclf_cclfb b ANTI JOIN _cclf_partb p USING ("CUR_CLM_UNIQ_ID", "CLM_LINE_NUM")
    """)
    con.execute('CREATE OR REPLACE TEMP TABLE _cclf_cclfb AS SELECT * FROM _cclf_cclfb SEMI JOIN _cclf_partb USING ("CUR_CLM_UNIQ_ID", "CLM_LINE_NUM")')
    for t in ("_cclf_cclf1", "_cclf_cclf5", "_cclf_cclf6", "_cclf_cclf7", "_cclf_cclf8"):
        C.with_member(con, t)

    coverage_end_sql = f"DATE '{coverage_end.isoformat()}'" if coverage_end else "make_date(performance_year, 12, 31)"
    elig = C.eligibility(con, "_cclf_cclf8", payer, plan, data_source, coverage_end_sql)
    # Older CCLF8 records of a beneficiary are superseded by the latest one (read, not loaded as rows).

    fa_parts = []
    # ---- Part A
    C.versions_of(con, "_cclf_cclf1", C.PART_A_KEY, "_cclf_a_ver")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _cclf_a_ver AS
        SELECT *, first_value(coalesce("CLM_CNTL_NUM", "CUR_CLM_UNIQ_ID")) OVER (PARTITION BY fam ORDER BY ver) AS claim_id
        FROM (SELECT * FROM _cclf_a_ver) v
    """ if "CLM_CNTL_NUM" in _columns(con, "_cclf_cclf1") else """
        CREATE OR REPLACE TEMP TABLE _cclf_a_ver AS
        SELECT *, first_value("CUR_CLM_UNIQ_ID") OVER (PARTITION BY fam ORDER BY ver) AS claim_id FROM _cclf_a_ver
    """)
    fa_parts.append(C.final_action(con, "A", "_cclf_a_ver", "claim_id"))
    line_attrs = ["revenue_center_code", "hcpcs_code", "hcpcs_modifier_1", "hcpcs_modifier_2", "hcpcs_modifier_3",
                  "hcpcs_modifier_4", "hcpcs_modifier_5", "service_unit_quantity", "claim_line_start_date", "claim_line_end_date"]
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _cclf_a_lines AS
        SELECT l."CUR_CLM_UNIQ_ID" AS cur_id, CAST(l."CLM_LINE_NUM" AS BIGINT) AS claim_line_number,
               l."CLM_LINE_CVRD_PD_AMT" AS paid_amount, l."CLM_LINE_CVRD_PD_AMT" AS allowed_amount,
               CAST(NULL AS DECIMAL(18,2)) AS charge_amount, CAST(NULL AS DECIMAL(18,2)) AS coinsurance_amount,
               CAST(NULL AS DECIMAL(18,2)) AS deductible_amount,
               l."CLM_LINE_PROD_REV_CTR_CD" AS revenue_center_code, l."CLM_LINE_HCPCS_CD" AS hcpcs_code,
               l."HCPCS_1_MDFR_CD" AS hcpcs_modifier_1, l."HCPCS_2_MDFR_CD" AS hcpcs_modifier_2,
               l."HCPCS_3_MDFR_CD" AS hcpcs_modifier_3, l."HCPCS_4_MDFR_CD" AS hcpcs_modifier_4,
               l."HCPCS_5_MDFR_CD" AS hcpcs_modifier_5, l."CLM_LINE_SRVC_UNIT_QTY" AS service_unit_quantity,
               l."CLM_LINE_FROM_DT" AS claim_line_start_date, l."CLM_LINE_THRU_DT" AS claim_line_end_date,
               l.source_file, l.line_number
        FROM _cclf_cclf2 l
    """)
    # Line CLAIM_LEVEL_LINE carries the claim-level amounts the revenue lines do not: the header payment less the
    # lines' payments, the total charge, coinsurance, deductible and the AIPBP/PBP reduction.
    con.execute(f"""
        INSERT INTO _cclf_a_lines
        WITH s AS (SELECT cur_id, sum(paid_amount) AS lines_paid FROM _cclf_a_lines GROUP BY cur_id),
        h AS (
            SELECT h."CUR_CLM_UNIQ_ID" AS cur_id, h."CLM_PMT_AMT" - coalesce(s.lines_paid, 0) AS rest,
                   h."CLM_MDCR_INSTNL_TOT_CHRG_AMT" AS charge, coalesce(a."CLM_MDCR_COINSRNC_AMT", 0) AS coins,
                   coalesce(a."CLM_MDCR_DDCTBL_AMT", 0) + coalesce(a."CLM_MDCR_IP_BENE_DDCTBL_AMT", 0) AS ded,
                   coalesce(a."CLM_PBP_RDCTN_AMT", 0) AS reduction, h.source_file, h.line_number
            FROM _cclf_cclf1 h LEFT JOIN s ON s.cur_id = h."CUR_CLM_UNIQ_ID"
            LEFT JOIN _cclf_cclfa a ON a."CUR_CLM_UNIQ_ID" = h."CUR_CLM_UNIQ_ID"
        )
        SELECT cur_id, {CLAIM_LEVEL_LINE}, rest, rest + coins + ded + reduction, charge, coins, ded,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, source_file, line_number
        FROM h WHERE rest <> 0 OR coins <> 0 OR ded <> 0 OR reduction <> 0 OR coalesce(charge, 0) <> 0
    """)
    C.net_versions(con, "_cclf_a_ver", "_cclf_a_lines", "_cclf_a_net", line_attrs)
    dx = C.pivot("diagnosis_code", '"CLM_DGNS_CD"')
    poa = C.pivot("diagnosis_poa", 'nullif(left("CLM_POA_IND", 1), \'\')')
    px = C.pivot("procedure_code", '"CLM_PRCDR_CD"')
    pxd = C.pivot("procedure_date", '"CLM_PRCDR_PRFRM_DT"')
    blg_npi = 'coalesce(h."CLM_BLG_PRVDR_NPI_NUM", h."FAC_PRVDR_NPI_NUM")' if "CLM_BLG_PRVDR_NPI_NUM" in _columns(con, "_cclf_cclf1") else 'h."FAC_PRVDR_NPI_NUM"'
    dx_cols = ", ".join(['coalesce(dx.diagnosis_code_1, h."PRNCPL_DGNS_CD") AS diagnosis_code_1'] + [f"dx.diagnosis_code_{i}" for i in range(2, 26)])
    part_a = f"""
        WITH dx AS (SELECT "CUR_CLM_UNIQ_ID" AS cur_id, {dx}, {poa} FROM _cclf_cclf4 GROUP BY 1),
        px AS (SELECT "CUR_CLM_UNIQ_ID" AS cur_id, {px}, {pxd} FROM _cclf_cclf3 GROUP BY 1)
        SELECT v.claim_id, n.claim_line_number, n.ver AS adjustment_sequence, 'institutional' AS claim_type,
               h.member_id AS person_id, h.member_id, {_lit(payer)} AS payer, {_lit(plan)} AS plan,
               h."CLM_FROM_DT" AS claim_start_date, h."CLM_THRU_DT" AS claim_end_date,
               n.claim_line_start_date, n.claim_line_end_date,
               a."CLM_ACTV_CARE_FROM_DT" AS admission_date,
               CASE WHEN h."CLM_TYPE_CD" IN ('60', '61') THEN h."CLM_THRU_DT" END AS discharge_date,
               h."CLM_ADMSN_SRC_CD" AS admit_source_code, h."CLM_ADMSN_TYPE_CD" AS admit_type_code,
               h."BENE_PTNT_STUS_CD" AS discharge_disposition_code,
               nullif(concat(coalesce(h."CLM_BILL_FAC_TYPE_CD", ''), coalesce(h."CLM_BILL_CLSFCTN_CD", ''), coalesce(h."CLM_BILL_FREQ_CD", '')), '') AS bill_type_code,
               CASE WHEN h."DGNS_DRG_CD" IS NOT NULL THEN 'ms-drg' END AS drg_code_type,
               CASE WHEN h."DGNS_DRG_CD" IS NOT NULL THEN lpad(ltrim(h."DGNS_DRG_CD", '0'), 3, '0') END AS drg_code,
               n.revenue_center_code, n.service_unit_quantity, n.hcpcs_code,
               n.hcpcs_modifier_1, n.hcpcs_modifier_2, n.hcpcs_modifier_3, n.hcpcs_modifier_4, n.hcpcs_modifier_5,
               h."ATNDG_PRVDR_NPI_NUM" AS rendering_npi, {blg_npi} AS billing_npi,
               h."FAC_PRVDR_NPI_NUM" AS facility_npi, h."PRVDR_OSCAR_NUM" AS facility_ccn,
               h."CLM_EFCTV_DT" AS paid_date,
               {", ".join(f"n.{m}" for m in C.MONEY)},
               CASE WHEN coalesce(h."DGNS_PRCDR_ICD_IND", '0') = '0' THEN 'icd-10-cm' END AS diagnosis_code_type,
               {dx_cols},
               {", ".join(f"dx.diagnosis_poa_{i}" for i in range(1, 26))},
               CASE WHEN px.procedure_code_1 IS NOT NULL THEN 'icd-10-pcs' END AS procedure_code_type,
               {", ".join(f"px.procedure_code_{i}" for i in range(1, 26))},
               {", ".join(f"px.procedure_date_{i}" for i in range(1, 26))},
               CASE WHEN a."CLM_NGACO_CPTATN_SW" IN ('Y', '1') THEN 'fpp' ELSE 'ffs' END AS payment_arrangement,
               CASE WHEN h."CLM_MDCR_NPMT_RSN_CD" IS NOT NULL THEN 'denied' ELSE 'paid' END AS claim_status,
               {_lit(data_source)} AS data_source, n.source_file, n.line_number
        FROM _cclf_a_net n JOIN _cclf_a_ver v ON v.cur_id = n.cur_id
        JOIN _cclf_cclf1 h ON h."CUR_CLM_UNIQ_ID" = n.cur_id
        LEFT JOIN _cclf_cclfa a ON a."CUR_CLM_UNIQ_ID" = n.cur_id
        LEFT JOIN dx ON dx.cur_id = n.cur_id LEFT JOIN px ON px.cur_id = n.cur_id
    """

    # ---- Part B physician (CCLF5) and DME (CCLF6): one line per family
    partb_sql = {}
    for t, part, kind in (("_cclf_cclf5", "B", "professional"), ("_cclf_cclf6", "DME", "dme")):
        ver = f"{t}_ver"
        con.execute(f'CREATE OR REPLACE TEMP TABLE {t} AS SELECT *, coalesce("CLM_CNTL_NUM", "CUR_CLM_UNIQ_ID") AS claim_control FROM {t}')
        C.versions_of(con, t, C.PART_B_KEY, ver, id_sql='"CUR_CLM_UNIQ_ID" || \'/\' || "CLM_LINE_NUM"')
        fa_parts.append(C.final_action(con, part, ver, "claim_control"))
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {t}_lines AS
            SELECT l."CUR_CLM_UNIQ_ID" || '/' || l."CLM_LINE_NUM" AS cur_id, CAST(l."CLM_LINE_NUM" AS BIGINT) AS claim_line_number,
                   l."CLM_LINE_CVRD_PD_AMT" AS paid_amount, l."CLM_LINE_ALOWD_CHRG_AMT" AS allowed_amount,
                   CAST(NULL AS DECIMAL(18,2)) AS charge_amount,
                   l."CLM_LINE_ALOWD_CHRG_AMT" - l."CLM_LINE_CVRD_PD_AMT" - coalesce(b."CLM_MDCR_DDCTBL_AMT", 0)
                       - coalesce(b."CLM_PBP_RDCTN_AMT", 0) - coalesce(b."CLM_SQSTRTN_RDCTN_AMT", 0) AS coinsurance_amount,
                   coalesce(b."CLM_MDCR_DDCTBL_AMT", 0) AS deductible_amount,
                   l.source_file, l.line_number
            FROM {t} l LEFT JOIN _cclf_cclfb b ON b."CUR_CLM_UNIQ_ID" = l."CUR_CLM_UNIQ_ID" AND b."CLM_LINE_NUM" = l."CLM_LINE_NUM"
        """)
        C.net_versions(con, ver, f"{t}_lines", f"{t}_net", [])
        prof = kind == "professional"
        cols5 = _columns(con, t)
        dxs = [f'l."CLM_DGNS_{i}_CD" AS diagnosis_code_{i}' for i in range(1, 13)] if prof else []
        dx_type = "CASE WHEN coalesce(l.\"DGNS_PRCDR_ICD_IND\", '0') = '0' THEN 'icd-10-cm' END" if prof else "NULL"
        partb_sql[part] = f"""
            SELECT v.claim_control AS claim_id, n.claim_line_number, n.ver AS adjustment_sequence, {_lit(kind)} AS claim_type,
                   l.member_id AS person_id, l.member_id, {_lit(payer)} AS payer, {_lit(plan)} AS plan,
                   l."CLM_FROM_DT" AS claim_start_date, l."CLM_THRU_DT" AS claim_end_date,
                   l."CLM_LINE_FROM_DT" AS claim_line_start_date, l."CLM_LINE_THRU_DT" AS claim_line_end_date,
                   l."CLM_POS_CD" AS place_of_service_code, {'l."CLM_LINE_SRVC_UNIT_QTY"' if "CLM_LINE_SRVC_UNIT_QTY" in cols5 else "NULL"} AS service_unit_quantity,
                   l."CLM_LINE_HCPCS_CD" AS hcpcs_code,
                   {", ".join(f'l."HCPCS_{i}_MDFR_CD" AS hcpcs_modifier_{i}' for i in range(1, 6)) if prof else "NULL AS hcpcs_modifier_1"},
                   {'l."RNDRG_PRVDR_NPI_NUM"' if prof else 'l."ORDRG_PRVDR_NPI_NUM"'} AS rendering_npi,
                   {'NULL' if prof else 'coalesce(' + ('l."CLM_BLG_PRVDR_NPI_NUM", ' if "CLM_BLG_PRVDR_NPI_NUM" in cols5 else '') + 'l."PAYTO_PRVDR_NPI_NUM")'} AS billing_npi,
                   {'l."CLM_RNDRG_PRVDR_TAX_NUM"' if prof else 'NULL'} AS billing_tin,
                   l."CLM_EFCTV_DT" AS paid_date,
                   {", ".join(f"n.{m}" for m in C.MONEY)},
                   {dx_type} AS diagnosis_code_type,
                   {", ".join(dxs) + "," if dxs else ""}
                   CASE WHEN b."CLM_LINE_NGACO_CPTATN_SW" IN ('Y', '1') THEN 'fpp' ELSE 'ffs' END AS payment_arrangement,
                   CASE WHEN l."CLM_CARR_PMT_DNL_CD" = '0' THEN 'denied' ELSE 'paid' END AS claim_status,
                   {_lit(data_source)} AS data_source, n.source_file, n.line_number
            FROM {t}_net n JOIN {ver} v ON v.cur_id = n.cur_id
            JOIN {t} l ON l."CUR_CLM_UNIQ_ID" || '/' || l."CLM_LINE_NUM" = n.cur_id
            LEFT JOIN _cclf_cclfb b ON b."CUR_CLM_UNIQ_ID" = l."CUR_CLM_UNIQ_ID" AND b."CLM_LINE_NUM" = l."CLM_LINE_NUM"
        """

    # ---- Part D (CCLF7)
    C.versions_of(con, "_cclf_cclf7", C.PART_D_KEY, "_cclf_d_ver")
    d_claim = """coalesce("CLM_LINE_RX_SRVC_RFRNC_NUM", "CUR_CLM_UNIQ_ID") || '-' || coalesce("CLM_LINE_RX_FILL_NUM", '0')"""
    fa_parts.append(C.final_action(con, "D", "_cclf_d_ver", d_claim))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _cclf_d_lines AS
        SELECT "CUR_CLM_UNIQ_ID" AS cur_id, CAST(1 AS BIGINT) AS claim_line_number,
               CAST(0 AS DECIMAL(18,2)) AS paid_amount, CAST(0 AS DECIMAL(18,2)) AS allowed_amount,
               CAST(NULL AS DECIMAL(18,2)) AS charge_amount, CAST(NULL AS DECIMAL(18,2)) AS coinsurance_amount,
               "CLM_LINE_BENE_PMT_AMT" AS deductible_amount, source_file, line_number
        FROM _cclf_cclf7
    """)
    C.net_versions(con, "_cclf_d_ver", "_cclf_d_lines", "_cclf_d_net", [])
    part_d = f"""
        SELECT {d_claim.replace('"CLM', 'l."CLM').replace('"CUR', 'l."CUR')} AS claim_id, n.claim_line_number, n.ver AS adjustment_sequence,
               l.member_id AS person_id, l.member_id, {_lit(payer)} AS payer, {_lit(plan)} AS plan,
               CASE WHEN l."PRVDR_PRSBNG_ID_QLFYR_CD" IN ('01', '1') THEN l."CLM_PRSBNG_PRVDR_GNRC_ID_NUM" END AS prescribing_provider_npi,
               CASE WHEN l."PRVDR_SRVC_ID_QLFYR_CD" IN ('01', '1') THEN l."CLM_SRVC_PRVDR_GNRC_ID_NUM" END AS dispensing_provider_npi,
               l."CLM_LINE_FROM_DT" AS dispensing_date, l."CLM_LINE_NDC_CD" AS ndc_code,
               l."CLM_LINE_SRVC_UNIT_QTY" AS quantity, CAST(CAST(l."CLM_LINE_DAYS_SUPLY_QTY" AS BIGINT) AS VARCHAR) AS days_supply,
               l."CLM_EFCTV_DT" AS paid_date, n.paid_amount, n.allowed_amount,
               n.deductible_amount AS copayment_amount,
               {_lit(data_source)} AS data_source, n.source_file, n.line_number
        FROM _cclf_d_net n JOIN _cclf_cclf7 l ON l."CUR_CLM_UNIQ_ID" = n.cur_id
    """

    tables = {
        "eligibility": _contract(con, "eligibility", f"SELECT * FROM {elig}"),
        "medical_claim": _contract(
            con, "medical_claim", f"SELECT * FROM ({part_a}) UNION ALL BY NAME SELECT * FROM ({partb_sql['B']}) UNION ALL BY NAME SELECT * FROM ({partb_sql['DME']})"
        ),
        "pharmacy_claim": _contract(con, "pharmacy_claim", part_d),
    }
    final = con.execute(" UNION ALL ".join(fa_parts) + " ORDER BY part, claim_id, version").fetch_arrow_table()
    return tables, final


def _columns(con, table: str) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}


_lit = sql_literal
