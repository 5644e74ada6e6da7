"""generate(): determinism, manifest, formats, arguments."""

import hashlib
import json
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from allpayer.errors import AllpayerError
from allpayer.synth import Manifest, generate
from allpayer.synth.generator import TABLE_ORDER


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    base = tmp_path_factory.mktemp("det")
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate(1_500, seed, base / name, chunk_size=600)  # three chunks
        runs[name] = base / name
    return runs


def test_same_seed_gives_identical_files(small):
    a, b = digests(small["a"]), digests(small["b"])
    assert set(a) == {f"{t}.parquet" for t in TABLE_ORDER} | {"manifest.json"}
    assert a == b


def test_different_seed_gives_different_data(small):
    a, c = digests(small["a"]), digests(small["c"])
    for t in ("eligibility", "medical_claim", "pharmacy_claim", "provider_roster"):
        assert a[f"{t}.parquet"] != c[f"{t}.parquet"], t


def test_chunks_number_people_and_claims_uniquely(small):
    e = pq.read_table(small["a"] / "eligibility.parquet", columns=["person_id"])
    assert len(set(e.column("person_id").to_pylist())) == 1_500
    m = pq.read_table(small["a"] / "medical_claim.parquet", columns=["claim_id", "claim_line_number", "adjustment_sequence"])
    keys = set(zip(*(m.column(c).to_pylist() for c in m.column_names)))
    assert len(keys) == m.num_rows


def test_manifest_matches_the_files(small):
    m = Manifest.read(small["a"] / "manifest.json")
    assert (m.seed, m.members, m.years, m.format) == (7, 1_500, [2022, 2023, 2024], "parquet")
    assert (m.service_start, m.service_end, m.paid_through) == ("2022-01-01", "2024-12-31", "2025-03-31")
    for t in TABLE_ORDER:
        assert pq.ParquetFile(small["a"] / m.files[t]).metadata.num_rows == m.row_counts[t]
    assert m.typed_columns and m.injected_errors == {} and m.injected_errors_file is None
    assert "created" not in json.dumps(m.to_json())


def test_csv_format_is_deterministic_text(tmp_path):
    generate(800, 3, tmp_path / "x", fmt="csv", years=(2023, 2024))
    generate(800, 3, tmp_path / "y", fmt="csv", years=(2023, 2024))
    assert digests(tmp_path / "x") == digests(tmp_path / "y")
    head = (tmp_path / "x" / "medical_claim.csv").read_text().splitlines()[:3]
    assert head[0].startswith('"claim_id","claim_line_number"')
    t = pacsv.read_csv(tmp_path / "x" / "medical_claim.csv", convert_options=pacsv.ConvertOptions(column_types={"allowed_amount": "string", "claim_start_date": "string"}))
    amounts = t.column("allowed_amount").to_pylist()
    assert all(a.count(".") == 1 and len(a.split(".")[1]) == 2 for a in amounts[:1000])
    assert min(t.column("claim_start_date").to_pylist()) >= "2023-01-01"


def test_regenerating_in_another_format_replaces_the_tables(tmp_path):
    generate(300, 1, tmp_path, fmt="csv")
    generate(300, 1, tmp_path, fmt="parquet")
    names = {p.name for p in tmp_path.iterdir()}
    assert not any(n.endswith(".csv") for n in names)
    assert not any(n.startswith(".") for n in names)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"members": 0}, "--members"),
        ({"seed": -1}, "--seed"),
        ({"fmt": "xlsx"}, "--format"),
        ({"years": (2022, 2024)}, "--years"),
        ({"inject_errors": 0.9}, "--inject-errors"),
    ],
)
def test_bad_arguments_are_user_errors(tmp_path, kwargs, message):
    args = {"members": 10, "seed": 1, "out": tmp_path / "o"} | kwargs
    with pytest.raises(AllpayerError, match=message):
        generate(**args)


def test_progress_is_reported_per_chunk(tmp_path):
    calls = []
    generate(2_100, 1, tmp_path, chunk_size=1_000, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1_000, 2_100), (2_000, 2_100), (2_100, 2_100)]


def test_identical_across_processes_and_hash_seeds(tmp_path):
    import os
    import subprocess
    import sys

    code = "import sys; from allpayer.synth import generate; generate(600, 2, sys.argv[1], inject_errors=0.02)"
    for h in ("1", "2"):
        env = os.environ | {"PYTHONHASHSEED": h}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / h)], check=True, env=env)
    assert digests(tmp_path / "1") == digests(tmp_path / "2")


def test_allocation_settings_are_restored_after_a_run(tmp_path):
    import numpy as np

    from allpayer.synth.generator import _allocation_tuning

    setter = np._core.multiarray._set_madvise_hugepage
    before = setter(True)
    try:
        with _allocation_tuning():
            assert setter(False) is False  # huge pages are off during a run
        assert setter(True) is True  # and back on afterwards
    finally:
        setter(before)
