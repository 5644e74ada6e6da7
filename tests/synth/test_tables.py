"""Schema conformance of every generated table: columns, kinds, code formats, keys."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from allpayer.inputs.schema import TABLES
from allpayer.synth.tables import decimal_from_int, money
from tests.synth.conftest import TABLES as GENERATED
from tests.synth.formats import valid

KIND_CHECK = {
    "string": pa.types.is_string,
    "code": pa.types.is_string,
    "date": pa.types.is_date32,
    "int": pa.types.is_integer,
    "decimal": pa.types.is_decimal,
    "money": lambda t: pa.types.is_decimal(t) and t.precision == 18 and t.scale == 2,
    "bool": pa.types.is_boolean,
}


@pytest.fixture(scope="module")
def tables(population):
    return {t: pq.read_table(population / f"{t}.parquet") for t in GENERATED}


@pytest.mark.parametrize("name", GENERATED)
def test_columns_kinds_and_required(tables, name):
    t = tables[name]
    spec = TABLES[name]
    assert t.num_rows > 0
    assert set(t.column_names) <= set(spec.column_names)
    assert t.column_names == [c for c in spec.column_names if c in t.column_names]  # contract order
    for col in spec.required_columns:
        assert col in t.column_names, col
        assert t.column(col).null_count == 0, col
    for field in t.schema:
        kind = spec.column(field.name).kind
        assert KIND_CHECK[kind](field.type), (field.name, kind, field.type)


@pytest.mark.parametrize("name", GENERATED)
def test_code_formats_and_allowed_values(tables, name):
    t = tables[name]
    spec = TABLES[name]
    for col in spec.columns:
        if col.name not in t.column_names:
            continue
        values = set(t.column(col.name).unique().to_pylist()) - {None}
        if col.code_format:
            bad = [v for v in values if not valid(col.code_format, v)]
            assert not bad, (col.name, bad[:5])
        if col.allowed:
            assert values <= set(col.allowed), (col.name, values - set(col.allowed))


@pytest.mark.parametrize("name", GENERATED)
def test_keys_are_unique(db, name):
    key = ", ".join(TABLES[name].key)
    dup = db.execute(f"select count(*) from (select {key}, count(*) c from {name} group by all having c > 1)").fetchone()[0]
    assert dup == 0


def test_money_is_never_negative_on_original_lines(db):
    for table in ("medical_claim", "pharmacy_claim"):
        n = db.execute(f"""select count(*) from {table} where adjustment_sequence = 0 and
            (paid_amount < 0 or allowed_amount < 0)""").fetchone()[0]
        assert n == 0


def test_a_few_percent_of_medicare_members_85_and_over_are_long_term_institutional(db):
    """``long_term_institutional_flag``: true on the Medicare spans of a few percent of the members
    who are 85 or over when the span starts (within the generated years), false on the other
    Medicare spans, empty for the other payers."""
    got = dict(db.execute("""
        select coalesce(payer_type = 'medicare', false)
               || ':' || coalesce(long_term_institutional_flag::varchar, 'null'), count(*)
        from eligibility group by 1""").fetchall())
    assert set(got) == {"true:true", "true:false", "false:null"}, got
    young = db.execute("""
        select count(*) from eligibility where long_term_institutional_flag
          and date_diff('year', birth_date, greatest(enrollment_start_date, date '2022-01-01')) < 84""").fetchone()[0]
    assert young == 0
    old, lti = db.execute("""
        select count(distinct person_id), count(distinct person_id) filter (where long_term_institutional_flag)
        from eligibility where payer_type = 'medicare'
          and date_diff('year', birth_date, greatest(enrollment_start_date, date '2022-01-01')) >= 86""").fetchone()
    assert old > 500 and 0.01 <= lti / old <= 0.08, (old, lti)


def test_decimal_buffers_are_exact():
    cents = [0, 1, -1, 123456789012, -98765]
    import numpy as np

    assert [str(v) for v in money(np.array(cents)).to_pylist()] == ["0.00", "0.01", "-0.01", "1234567890.12", "-987.65"]
    assert str(decimal_from_int(np.array([13000]), pa.decimal128(18, 3))[0].as_py()) == "13.000"
