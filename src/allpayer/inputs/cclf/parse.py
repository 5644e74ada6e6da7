"""Fixed-width parsing of CCLF files, vectorized: no Python loop over lines.

A file's bytes are cut into lines with one NumPy scan for newlines; the lines become one Arrow
string column (the offsets point into the file's own buffer). Each field is cut from the bytes of
every line of the record's length with NumPy (one 2-D view when all lines are the same length, a
gather otherwise) and trimmed with Arrow; DuckDB then casts and checks the fields. (A file with
non-ASCII bytes, where byte and character positions differ, is cut by characters with DuckDB's
``substr`` instead.) Each line is then either a typed row or a quarantined line:

- ``wrong_record_length``: the line is not as long as the layout's record (a truncated line, a
  line of another packet version, a blank line);
- ``bad_date``: a date field that is not ``YYYY-MM-DD`` (``1000-01-01``, the CCLF "no date", is
  read as empty);
- ``bad_number`` / ``bad_amount``: a numeric field with other characters, an amount with more
  decimals than its format;
- ``unknown_claim_type``: a claim type code the file type does not carry;
- ``missing_key``: an empty claim id or beneficiary MBI.

Text fields are trimmed, empty ones are NULL; identifiers (``9(n)`` fields included) stay text so
leading zeros are kept. A file that is not ASCII/UTF-8 text, or that is empty, stops the read.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from allpayer.backend import sql_identifier, sql_literal
from allpayer.errors import InputFileError
from allpayer.inputs.cclf.layouts import FileLayout

NULL_DATES = ("1000-01-01",)

CLAIM_TYPES = {
    "CCLF1": ("10", "20", "30", "40", "50", "60", "61"),
    "CCLF2": ("10", "20", "30", "40", "50", "60", "61"),
    "CCLF3": ("10", "20", "30", "40", "50", "60", "61"),
    "CCLF4": ("10", "20", "30", "40", "50", "60", "61"),
    "CCLFA": ("10", "20", "30", "40", "50", "60", "61"),
    "CCLF5": ("71", "72"),
    "CCLFB": ("71", "72", "81", "82"),
    "CCLF6": ("81", "82"),
    "CCLF7": ("01",),
}
"""Claim type codes each file carries: Part A institutional (10 HHA, 20/30 SNF, 40 outpatient,
50 hospice, 60 inpatient, 61 inpatient full encounter), Part B (71/72 physician, 81/82 DME),
Part D (01)."""

KEY_FIELDS = {
    **{t: ("CUR_CLM_UNIQ_ID", "BENE_MBI_ID") for t in CLAIM_TYPES},
    "CCLF8": ("BENE_MBI_ID",),
    "CCLF9": ("CRNT_NUM", "PRVS_NUM"),
}

SQL_TYPES = {"text": "VARCHAR", "int": "VARCHAR", "date": "DATE", "money": "DECIMAL(18,2)", "decimal": "DECIMAL(18,4)"}

_counter = itertools.count(1)


_lit = sql_literal
_q = sql_identifier


def _content_lengths(a: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Length of each line (between consecutive `offsets` into bytes `a`) without its LF or CRLF."""
    lengths = np.diff(offsets)
    ends = offsets[1:]
    has_lf = (lengths > 0) & (a[np.maximum(ends - 1, 0)] == 10) if a.size else np.zeros(lengths.size, bool)
    lengths = lengths - has_lf
    has_cr = (lengths > 0) & (a[np.maximum(ends - 1 - has_lf, 0)] == 13) if a.size else np.zeros(lengths.size, bool)
    return lengths - has_cr


def read_lines(path, relpath: str) -> pa.Table:
    """The lines of a file as ``line`` (text, line ending included) and ``line_number`` (1-based).

    A trailing empty line (the file ends with a newline) is not a line. Raises `InputFileError`
    for an unreadable, empty or non-UTF-8 file.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(relpath, f"cannot be read ({exc.strerror or exc})") from exc
    if not data:  # a file with no records (its CCLF0 count says whether that is right)
        return pa.table({"line": pa.array([], pa.large_string()), "line_number": pa.array([], pa.int64())})
    a = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(a == 10).astype(np.int64)
    ends = nl + 1
    if ends.size == 0 or ends[-1] != a.size:
        ends = np.concatenate([ends, [a.size]])
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    # Blank lines at the end of the file (after the last record) are not lines.
    content = _content_lengths(a, offsets)
    keep = int(np.flatnonzero(content > 0)[-1]) + 1 if (content > 0).any() else 0
    ends, offsets = ends[:keep], offsets[: keep + 1]
    n = int(ends.size)
    lines = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        bad = np.flatnonzero(a >= 128)
        line = int(np.searchsorted(ends, bad[0], side="right")) + 1 if bad.size else 1
        raise InputFileError(relpath, f"line {line} is not ASCII/UTF-8 text: CCLF files are plain text") from None
    return pa.table({"line": lines, "line_number": pa.array(np.arange(1, n + 1, dtype=np.int64))})


def _sliced_fields(arrow: pa.Table, layout: FileLayout) -> tuple[dict[str, pa.Array], np.ndarray] | None:
    """Every field of every line of the record's length, cut from the file's bytes with NumPy
    (fixed-width ASCII records: byte positions are character positions) and trimmed of spaces;
    NULL on lines of another length. Also returns each line's length without its line ending.
    None when the file has non-ASCII bytes (then fields are cut by characters in SQL)."""
    col = arrow.column("line").combine_chunks()
    n = len(col)
    if n == 0:
        return {f.name: pa.array([], pa.string()) for f in layout.fields}, np.zeros(0, np.int64)
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int64, count=n + 1, offset=col.offset * 8)
    data = np.frombuffer(col.buffers()[2], dtype=np.uint8)
    if (data[offsets[0]:offsets[-1]] >= 128).any():
        return None
    lengths = _content_lengths(data, offsets)
    length = layout.record_length
    good = lengths == length
    starts = offsets[:-1][good]
    m = int(starts.size)
    steps = np.diff(offsets)
    grid = None
    if m == n and n and (steps == steps[0]).all():  # every line the same bytes: a 2-D view, no gather
        grid = data[offsets[0]: offsets[0] + n * int(steps[0])].reshape(n, int(steps[0]))
    take = None if m == n else pa.array(np.cumsum(good) - 1, mask=~good)
    out = {}
    for f in layout.fields:
        if grid is not None:
            block = np.ascontiguousarray(grid[:, f.start - 1: f.end])
        else:
            block = data[starts[:, None] + np.arange(f.start - 1, f.end)]
        values = pa.StringArray.from_buffers(
            m, pa.py_buffer(np.arange(0, m * f.length + 1, f.length, dtype=np.int32)), pa.py_buffer(block.tobytes())
        )
        values = pc.ascii_trim(values, characters=" ")
        out[f.name] = values if take is None else values.take(take)
    return out, lengths


def _field_sql(f, src="r.line") -> str:
    return f"nullif(trim(substr({src}, {f.start}, {f.length})), '')"


def parse_file(con, path, relpath: str, layout: FileLayout) -> tuple[str, str, int]:
    """Parse one CCLF file into two temp tables of the DuckDB connection `con`.

    Returns ``(rows_table, quarantine_table, lines_read)``. ``rows_table`` has one column per field
    (typed by `SQL_TYPES`) plus ``source_file`` and ``line_number``; ``quarantine_table`` has
    ``file_type, source_file, line_number, rule, rules, message, raw_row``.

    One pass slices every field and casts it (``TRY_CAST``); a field whose text is there but whose
    value is not is what the checks look for, so each value is parsed once.
    """
    n = next(_counter)
    arrow = read_lines(path, relpath)
    sliced = _sliced_fields(arrow, layout)
    if sliced is not None:  # fields already cut and trimmed: columns _f0, _f1 ... of the view
        fields, lengths = sliced
        arrow = pa.table(
            {"line": arrow.column("line"), "line_number": arrow.column("line_number"), "_len": pa.array(lengths, pa.int64()),
             **{f"_f{i}": fields[f.name] for i, f in enumerate(layout.fields)}}
        )

    def field_sql(i, f):
        return f"nullif(_f{i}, '')" if sliced is not None else _field_sql(f, "line")

    view, parsed, rows, bad = f"_cclf_lines_{n}", f"_cclf_parsed_{n}", f"_cclf_rows_{n}", f"_cclf_bad_{n}"
    null_dates = ", ".join(map(_lit, NULL_DATES))
    texts, typed, checks = [], [], []  # checks: (rule, condition SQL, message SQL)
    for i, f in enumerate(layout.fields):
        v = _q(f.name)
        if f.type in ("text", "int"):
            texts.append(f"{field_sql(i, f)} AS {v}")
            if f.type == "int":
                checks.append(("bad_number", f"{v} IS NOT NULL AND NOT regexp_full_match({v}, '[0-9]+')",
                               f"'{f.name} is not a whole number: ' || {v}"))
            continue
        t = _q("__t_" + f.name)
        texts.append(f"{field_sql(i, f)} AS {t}")
        if f.type == "date":
            typed.append(f"TRY_CAST(CASE WHEN {t} IN ({null_dates}) THEN NULL ELSE {t} END AS DATE) AS {v}")
            checks.append(("bad_date", f"{t} IS NOT NULL AND (length({t}) <> 10 OR ({v} IS NULL AND {t} NOT IN ({null_dates})))",
                           f"'{f.name} is not a date (YYYY-MM-DD): ' || {t}"))
        else:
            scale = 2 if f.type == "money" else 4
            typed.append(f"TRY_CAST({t} AS {SQL_TYPES[f.type]}) AS {v}")
            checks.append(("bad_amount", f"{t} IS NOT NULL AND ({v} IS NULL OR NOT regexp_full_match({t}, '[-+]?[0-9]*(\\.[0-9]*)?') "
                                         f"OR (strpos({t}, '.') > 0 AND length({t}) - strpos({t}, '.') > {scale}))",
                           f"'{f.name} is not an amount with at most {scale} decimals: ' || {t}"))
    if layout.file_type in CLAIM_TYPES:
        allowed = ", ".join(map(_lit, CLAIM_TYPES[layout.file_type]))
        checks.append(("unknown_claim_type", f"\"CLM_TYPE_CD\" IS NULL OR \"CLM_TYPE_CD\" NOT IN ({allowed})",
                       f"'unknown claim type code ' || coalesce(\"CLM_TYPE_CD\", '(empty)') || ' for {layout.file_type} (expected {'/'.join(CLAIM_TYPES[layout.file_type])})'"))
    for k in KEY_FIELDS.get(layout.file_type, ()):
        checks.append(("missing_key", f"{_q(k)} IS NULL", f"'{k} is empty'"))
    length = layout.record_length
    rules = "concat_ws(',', " + ", ".join(f"CASE WHEN {c} THEN '{r}' END" for r, c, _ in checks) + ")" if checks else "NULL"
    messages = "concat_ws('; ', " + ", ".join(f"CASE WHEN {c} THEN {m} END" for _, c, m in checks) + ")" if checks else "NULL"
    any_bad = " OR ".join(f"({c})" for _, c, _ in checks) if checks else "false"
    con.register(view, arrow)
    try:
        # Rules and messages are only built for lines that fail (CASE evaluates lazily).
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {parsed} AS
            SELECT *, CASE WHEN _len <> {length} THEN 'wrong_record_length' WHEN _bad THEN {rules} END AS _rules,
                   CASE WHEN _len <> {length} THEN
                       'record is ' || _len || ' characters long, expected {length} ({layout.file_type} layout v{layout.version})'
                       || CASE WHEN _len < {length} THEN ': truncated line?' ELSE '' END
                   WHEN _bad THEN {messages} END AS _message
            FROM (
                SELECT *, coalesce({any_bad}, false) AS _bad
                FROM (SELECT *{", " if typed else ""}{", ".join(typed)}
                      FROM (SELECT line_number, line, {"_len" if sliced is not None else "length(line) AS _len"}, {", ".join(texts)}
                            FROM (SELECT * REPLACE (rtrim(line, chr(10) || chr(13)) AS line) FROM {view})))
            )
            """
        )
        lines_read = arrow.num_rows
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {rows} AS SELECT {', '.join(_q(f.name) for f in layout.fields)}, "
            f"{_lit(relpath)} AS source_file, line_number FROM {parsed} WHERE _rules IS NULL"
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {bad} AS
            SELECT {_lit(layout.file_type)} AS file_type, {_lit(relpath)} AS source_file, line_number,
                   split_part(_rules, ',', 1) AS rule, _rules AS rules, _message AS message,
                   to_json({{'line': line}})::VARCHAR AS raw_row
            FROM {parsed} WHERE _rules IS NOT NULL
            """
        )
        return rows, bad, lines_read
    finally:
        con.unregister(view)
        con.execute(f"DROP TABLE IF EXISTS {parsed}")


def majority_length(path, relpath: str) -> int:
    """The most common line length of a file (without line endings; 0 for a file with no
    records): the record length it was written with, even when some lines are broken."""
    arrow = read_lines(path, relpath)
    col = arrow.column("line").combine_chunks()
    if len(col) == 0:
        return 0
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int64, count=len(col) + 1, offset=col.offset * 8)
    data = np.frombuffer(col.buffers()[2], dtype=np.uint8)
    lengths = _content_lengths(data, offsets)
    lengths = lengths[lengths > 0]
    if lengths.size == 0:
        return 0
    values, counts = np.unique(lengths, return_counts=True)
    return int(values[np.argmax(counts)])
