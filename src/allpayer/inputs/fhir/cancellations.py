"""A later export's cancellation of what an earlier export loaded.

An ExplanationOfBenefit or Coverage sent again with status cancelled or entered-in-error
(`mapping.REVERSING_STATUSES`) withdraws the claim or span an earlier load stored. The reader
cannot see the database, so it quarantines such a resource as ``inactive_status``; when the load
begins (`allpayer.inputs.fhir.reader.FhirDelivery.prepare`) these functions look for what it
withdraws among the stored rows:

- a cancelled EOB reverses its claim (by claim id, in the claim table its type names) the way the
  input contract nets claims: each stored line whose rows do not net to zero gets a reversal row
  of the next ``adjustment_sequence``, with the negated net amounts, the descriptive columns of
  the line's latest row, and ``paid_date`` the date of the EOB's ``meta.lastUpdated`` (never before
  the line's latest paid date; that date when there is no ``lastUpdated``). A run as of an earlier
  load, or paid through an earlier date, still sees the claim; the reversal rows are validated and
  stored like any mapped row.
- a cancelled Coverage withdraws the stored eligibility span of its key (member, payer, plan,
  start): the span moves to ``eligibility_replaced`` with this load as ``replaced_by_run_id``, as a
  restated span does, so the table as of an earlier load still holds it.

A resource whose claim or span is stored, but already reversed or withdrawn (every line nets to
zero; the span is only in ``eligibility_replaced``), changes nothing: it is already loaded. One
that finds nothing stays quarantined.
"""

from __future__ import annotations

import ibis
import pyarrow as pa

from allpayer.core.claims import net_claim_rows
from allpayer.inputs import validate
from allpayer.inputs.load import CLAIM_TABLES, _sql, key_match, replace_rows, stored_schema, table_names
from allpayer.inputs.schema import TABLES, replaced_table

__all__ = ["CLAIM_TABLES", "reversals", "withdraw_spans"]

CANCELLATION_SCHEMA = pa.schema(
    [
        ("claim_id", pa.string()),
        ("table_name", pa.string()),
        ("cancelled_on", pa.date32()),
        ("resource_id", pa.string()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
    ]
)
"""The cancelled EOBs a load looks up (`mapping.eob_cancellation`, and the resource's file and
line)."""

RESOURCE_ID = "_resource_id"
"""The column of `reversals`' rows naming the cancelled EOB each row reverses for."""

REVERSAL = "reversal"
"""``source_file`` of a reversal row: the cancelled EOB's file, then ``#reversal[<claim line
number>]``, so that each row of the resource has its own file and line."""

CLAIMS_VIEW = "_fhir_cancelled_claims"
ROWS_TABLE = "_fhir_cancelled_rows"
SPANS_VIEW = "_fhir_withdrawn_spans"


def reversals(raw, table: str, cancellations: pa.Table) -> tuple[pa.Table, set[tuple[str, int]], set[tuple[str, int]]]:
    """The reversal rows of the stored claims of `table` that `cancellations` (`CANCELLATION_SCHEMA`,
    one per claim) cancel: text columns of the contract (those with a value in some row),
    ``source_file``, ``line_number`` and `RESOURCE_ID`. Also the (file, line) of the cancellations
    whose claim is stored, and of those that reverse a line (the others find every line of their
    claim netting to zero already).

    The stored rows of the cancelled claims are read once (a semi-join on the claim id, into a
    temp table) and netted as a run nets them (`allpayer.core.claims.net_claim_rows`)."""
    spec = TABLES[table]
    money = [c.name for c in spec.columns if c.kind == "money"]
    raw.register(CLAIMS_VIEW, cancellations)
    try:
        c = ibis.table(CANCELLATION_SCHEMA, name=CLAIMS_VIEW)
        c = c.filter(c.table_name.isnull() | (c.table_name == table))
        c = c.select(_c_claim_id=validate.trimmed(c.claim_id), _c_on=c.cancelled_on, _c_file=c.source_file,
                     _c_line=c.line_number, _c_id=c.resource_id)
        stored = ibis.table(stored_schema(spec), name=table)
        raw.execute(
            f"CREATE OR REPLACE TEMP TABLE {ROWS_TABLE} AS "
            + _sql(stored.semi_join(c, stored.claim_id == c._c_claim_id))
        ).fetchall()
        rows = ibis.table(stored_schema(spec), name=ROWS_TABLE)
        # `_seq` is carried as a descriptive column: the net line takes it from its latest row.
        lines = net_claim_rows(rows.mutate(_seq=rows.adjustment_sequence.fill_null(0)), money)
        lines = lines.join(c, lines.claim_id == c._c_claim_id)
        paid = ibis.ifelse(lines._c_on > lines.last_paid_date, lines._c_on, lines.last_paid_date)
        values = {
            col: (
                (-lines[col]).cast("string") if col in money
                else (lines._seq + 1).cast("string") if col == "adjustment_sequence"
                else paid.cast("string") if col == "paid_date"
                else lines[col].cast("string")
            )
            for col in spec.column_names
        }
        out = lines.select(
            **values,
            source_file=lines._c_file + f"#{REVERSAL}[" + lines.claim_line_number.cast("string") + "]",
            line_number=lines._c_line,
            _c_file=lines._c_file,
            **{RESOURCE_ID: lines._c_id},
            _open=ibis.or_(*[lines[m].fill_null(0) != 0 for m in money]),
        ).order_by(["source_file", "line_number"])
        found = raw.execute(_sql(out)).fetch_arrow_table()
    finally:
        raw.unregister(CLAIMS_VIEW)
        raw.execute(f"DROP TABLE IF EXISTS {ROWS_TABLE}").fetchall()

    def resources(t: pa.Table) -> set[tuple[str, int]]:
        return set(zip(t.column("_c_file").to_pylist(), t.column("line_number").to_pylist()))

    opened = found.filter(found.column("_open"))
    rows = opened.drop_columns(["_c_file", "_open"])
    empty = [name for name in rows.column_names if rows.column(name).null_count == rows.num_rows]
    return rows.drop_columns(empty), resources(found), resources(opened)


def withdraw_spans(raw, run_id: str, spans: pa.Table) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """Withdraw the stored eligibility spans whose key (member_id, payer, plan,
    enrollment_start_date, as text) a row of `spans` (with ``source_file``, ``line_number``) gives:
    they move to ``eligibility_replaced``, replaced by `run_id`. Returns the (file, line) of the
    rows that withdrew a span, and of those whose span was withdrawn before (only in
    ``eligibility_replaced``)."""
    spec = validate.restrict(TABLES["eligibility"], ())
    key = list(spec.key)
    raw.register(SPANS_VIEW, spans)
    try:
        staged = ibis.table({**{k: "string" for k in key}, "source_file": "string", "line_number": "int64"}, name=SPANS_VIEW)
        typed = validate.parse(validate.clean(staged, spec), spec).select(*key, "source_file", "line_number")
        keys_sql = _sql(typed)
        on = " AND ".join(f"s.{k} = x.{k}" for k in key)

        def matching(table: str) -> set[tuple[str, int]]:
            return set(raw.execute(
                f"SELECT s.source_file, s.line_number FROM ({keys_sql}) s SEMI JOIN {table} x ON {on}"
            ).fetchall())

        withdrawn = matching("eligibility")
        replaced = replaced_table("eligibility")
        before = matching(replaced) - withdrawn if replaced in table_names(raw) else set()
        if withdrawn:
            replace_rows(raw, "eligibility", f"(SELECT {', '.join(key)} FROM ({keys_sql}))", key_match("eligibility"),
                         run_id)
    finally:
        raw.unregister(SPANS_VIEW)
    return withdrawn, before
