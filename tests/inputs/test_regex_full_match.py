"""The loader compiles anchored regular expressions as full matches: the same answer on every value."""

from __future__ import annotations

import duckdb
import ibis
import pytest

from allpayer.inputs import load as loader
from allpayer.inputs import validate
from allpayer.inputs.schema import TABLES

VALUES = [
    None, "", "1", "12", "123", "1234", "99213", "G0439", "0450", "E119", "E11.9", "A1", "12\n", "\n12",
    "1234567893", "2234567891", "123456789", "12345678901", "a|b", "a", "b", "xa", "bx", "ab", "$", "^",
    "1.5", ".5", "-12", "+1.25", "1.230000", "1e5", " 12", "12 ", "ab\nc",
]
PATTERNS = [
    r"^[0-9]{2}$",
    r"^([0-9]{4}[0-9FMTU]|[A-Z][0-9]{4})$",
    r"^[12][0-9]{9}$",
    r"^[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}$",
    validate.INT_PATTERN,
    validate.NUMBER_PATTERN,
    validate.DECIMAL_PLACES_PATTERN,
    validate.MONEY_PATTERN,
    validate.CENTS_PATTERN,
    r"^a|b$",  # a top-level alternation: left as a search
    r"^(a|b)$",
    r"^[|]a$",
    r"^a\$",  # an escaped dollar: not an anchor, left as a search
    r"^a\\$",
    r"^$",
    r"^.*$",
    r"[0-9]",  # not anchored: left as a search
]


LEFT_AS_SEARCH = {r"^a|b$", r"^a\$", r"[0-9]"}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_compiled_query_agrees_with_the_search_on_every_value(pattern):
    t = ibis.memtable({"v": VALUES}, schema={"v": "string"})
    expr = t.select("v", ok=t.v.re_search(pattern))
    con = duckdb.connect()
    con.register(t.get_name(), t.to_pyarrow())
    searched = con.execute(ibis.to_sql(expr, dialect="duckdb")).fetchall()
    compiled = loader._sql(expr)
    assert ("REGEXP_FULL_MATCH" in compiled) == (pattern not in LEFT_AS_SEARCH)
    assert con.execute(compiled).fetchall() == searched


def test_the_claims_validation_runs_no_regular_expression_search():
    spec = TABLES["medical_claim"]
    sql = loader._validation_sql("medical_claim", tuple(spec.column_names))
    assert "REGEXP_MATCHES" not in sql
    assert sql.count("REGEXP_FULL_MATCH") >= 15
