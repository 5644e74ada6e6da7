import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from allpayer.synth.tables import pick
from allpayer.synth.writer import TableWriter


def _chunk(i):
    return pa.table({"a": pa.array([i, i + 1]), "code": pick(["x", "y", "z"], [i % 3, 1])})


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_chunks_append_to_one_file_deterministically(tmp_path, fmt):
    digests = []
    for run in ("r1", "r2"):
        d = tmp_path / run
        d.mkdir()
        w = TableWriter(d, "t", fmt)
        for i in range(3):
            w.write(_chunk(i))
        path = w.close()
        assert path.name == f"t.{fmt}" and w.rows == 6
        assert [p.name for p in d.iterdir()] == [f"t.{fmt}"]
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    if fmt == "parquet":
        t = pq.read_table(tmp_path / "r1" / "t.parquet")
        assert t.schema.field("code").type == pa.string()
        assert t.column("code").to_pylist() == ["x", "y", "y", "y", "z", "y"]


def test_abort_leaves_no_partial_file(tmp_path):
    w = TableWriter(tmp_path, "t", "parquet")
    w.write(_chunk(0))
    w.abort()
    assert list(tmp_path.iterdir()) == []
