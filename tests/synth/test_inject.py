"""--inject-errors: every injected bad row is listed, counted and really bad."""

import datetime as dt

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from allpayer.inputs.schema import TABLES
from allpayer.synth import Manifest, generate
from allpayer.synth.inject import KINDS
from tests.synth.formats import valid


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    out = tmp_path_factory.mktemp("inject") / "bad"
    manifest = generate(1_200, 5, out, inject_errors=0.02, chunk_size=600)
    listed = pacsv.read_csv(out / "injected_errors.csv").to_pylist()
    return out, manifest, listed


def _is_date(v):
    try:
        dt.date.fromisoformat(v)
        return True
    except (TypeError, ValueError):
        return False


def _is_money(v):
    try:
        float(v)
        return "." in v
    except (TypeError, ValueError):
        return False


def test_manifest_counts_equal_the_listed_rows(bad):
    out, manifest, listed = bad
    assert Manifest.read(out / "manifest.json") == manifest
    assert not manifest.typed_columns and manifest.injected_errors_file == "injected_errors.csv"
    for table, kinds in manifest.injected_errors.items():
        assert set(kinds) == set(KINDS)
        for kind, n in kinds.items():
            assert n == sum(1 for r in listed if r["table"] == table and r["kind"] == kind)
    total = sum(sum(k.values()) for k in manifest.injected_errors.values())
    assert total == len(listed) > 300
    used = {r["kind"] for r in listed if r["table"] == "medical_claim"}
    assert used == set(KINDS)


def test_every_listed_row_is_bad(bad):
    out, manifest, listed = bad
    tables, by_key = {}, {}
    for r in listed:
        name = r["table"]
        if name not in tables:
            tables[name] = pq.read_table(out / f"{name}.parquet").to_pylist()
            key = TABLES[name].key
            by_key[name] = {}
            for x in tables[name]:
                by_key[name].setdefault(tuple(x[k] for k in key), []).append(x)
        row = tables[name][r["row_number"]]
        value = row[r["column"]]
        kind = r["kind"]
        if kind == "bad_date":
            assert not _is_date(value)
        elif kind == "malformed_code":
            assert not valid(TABLES[name].column(r["column"]).code_format, value)
        elif kind == "negative_amount":
            assert float(value) < 0 and row["adjustment_sequence"] == 0
        elif kind == "non_numeric_amount":
            assert not _is_money(value)
        elif kind == "missing_required_key":
            assert value is None and r["column"] in TABLES[name].key
        else:
            twins = by_key[name][tuple(row[k] for k in TABLES[name].key)]
            assert len(twins) == 2 and twins[0] != twins[1]


def test_rows_not_listed_are_clean(bad):
    out, manifest, listed = bad
    bad_rows = {r["row_number"] for r in listed if r["table"] == "medical_claim"}
    cols = ["claim_id", "claim_start_date", "paid_amount", "allowed_amount", "diagnosis_code_1", "adjustment_sequence"]
    t = pq.read_table(out / "medical_claim.parquet", columns=cols)
    data = {c: t.column(c).to_pylist() for c in cols}
    for i in range(t.num_rows):
        if i in bad_rows:
            continue
        assert _is_date(data["claim_start_date"][i]) and _is_money(data["paid_amount"][i])
        assert _is_money(data["allowed_amount"][i]) and data["claim_id"][i] is not None
        assert valid("icd10cm", data["diagnosis_code_1"][i])
        if data["adjustment_sequence"][i] == 0:
            assert float(data["allowed_amount"][i]) >= 0


def test_injected_run_is_the_clean_run_plus_corruptions(bad, tmp_path):
    out, manifest, listed = bad
    clean = generate(1_200, 5, tmp_path / "clean", chunk_size=600)
    for t in manifest.row_counts:
        extra = sum(1 for r in listed if r["table"] == t and r["kind"] == "conflicting_duplicate_line")
        assert manifest.row_counts[t] == clean.row_counts[t] + extra
