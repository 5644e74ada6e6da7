"""Spark Connect: the same stage code through a Spark Connect session, against a local Spark Connect
server that the fixture starts (pyspark 4 ships the server; no network access is needed).

The server is a second JVM, so these tests compute one stage each rather than the whole year: the
program member months, compared row by row with DuckDB's result on the same input Parquet, and the
year's payments (`allpayer payments --spark-remote`) on a copy of the parity cycle's warehouse,
compared with the local session's.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from allpayer.core.member_months import eligibility_months
from allpayer.core.programs import program_months
from allpayer.terms import load_programs, programs_dir

from .conftest import YEAR


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A local Spark Connect server (local[1]) on a free port; yields its sc:// address."""
    import pyspark

    home = Path(pyspark.__file__).parent
    port = _free_port()
    log = tmp_path_factory.mktemp("spark_connect") / "server.log"
    env = dict(os.environ, SPARK_HOME=str(home), PYSPARK_PYTHON=sys.executable)
    cmd = [
        str(home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master", "local[1]", "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", "spark.sql.session.timeZone=UTC", "--driver-memory", "1g", "spark-internal",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Spark Connect server did not start; its log: {log}\n{log.read_text()[-2000:]}")
                time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _member_months(con, data: Path, programs):
    elig = con.read_parquet(str(data / "eligibility.parquet"), table_name="eligibility")
    groups = con.read_parquet(str(data / "employer_group.parquet"), table_name="employer_group")
    months = eligibility_months(elig, dt.date(YEAR - 1, 1, 1), dt.date(YEAR, 12, 31))
    return program_months(months, programs, groups)


def _programs():
    return [p for p in load_programs([programs_dir() / "vermont"]) if p.performance_year == YEAR]


# The Connect client runs in a child process: PySpark refuses a remote session in a process that
# already holds a regular one, which the parity tests' shared local session is.
CLIENT = r"""
import sys
from pathlib import Path

from allpayer import backend
from tests.spark.test_spark_connect import _member_months, _programs

remote, data, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
con = backend.connect_spark(remote=remote)
assert type(con._session).__module__.startswith("pyspark.sql.connect"), type(con._session).__module__
import pyarrow.parquet as pq
pq.write_table(con.to_pyarrow(_member_months(con, data, _programs())), out)
con._session.stop()
"""


def test_a_stage_on_spark_connect_equals_duckdb(connect_server, population, tmp_path):
    import pyarrow.parquet as pq

    from allpayer import backend

    local = backend.connect_duckdb()
    expected = local.to_pyarrow(_member_months(local, population, _programs())).to_pylist()

    out = tmp_path / "connect.parquet"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", CLIENT, connect_server, str(population), str(out)], cwd=root,
                          env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    got = pq.read_table(out).to_pylist()

    def key(r):
        return (r["program_id"], r["member_id"], r["month"], r["plan"])

    assert len(got) == len(expected) > 0
    assert sorted(got, key=key) == sorted(expected, key=key)


def test_payments_on_spark_connect_equal_the_local_sessions(connect_server, spark_result, tmp_path):
    """A stage command through Spark Connect (`payments --spark-remote`, in a child process: PySpark
    refuses a remote session beside the tests' local one) on a copy of the parity cycle's warehouse
    publishes the same payment tables as the local session did. Payments keep intermediate tables
    (`allpayer.backend.cache`), which on Connect must hold their rows, not a query to analyze again."""
    import shutil

    from allpayer import warehouse

    from .cycle import PAID_THROUGH, differences, terms_paths, warehouse_rows

    wh, _ = spark_result
    copy = tmp_path / "wh"
    shutil.copytree(wh, copy)
    terms = [a for t in terms_paths() for a in ("--terms", str(t))]
    cmd = [sys.executable, "-m", "allpayer", "payments", "--db", str(copy), "--backend", "spark",
           "--spark-remote", connect_server, "--year", str(YEAR), "--paid-through", PAID_THROUGH, *terms]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = warehouse.published_runs(copy)
    assert runs[-1]["parameters"]["stage"] == "payments" and runs[-1]["parameters"]["backend"] == "spark"
    for table in ("fpp_payments", "fpp_hospital_payments", "shadow_claims", "phm_payments", "value_payment_invoices",
                  "payment_accruals"):
        expected = warehouse_rows(wh, table)
        assert expected[1], table
        assert not differences(table, expected, warehouse_rows(copy, table))
