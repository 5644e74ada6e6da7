"""Shared Spark fixtures: one local Spark session for the whole test session (local[2], two shuffle
partitions, no UI), and one small synthetic population taken through the whole cycle (load, run,
quality, payments, settle) on both backends (`tests/spark/cycle.py`).

The Spark tests are marked ``spark``. They run when ``ALLPAYER_SPARK_TESTS=1`` (then
``./dev test`` installs the Spark extra and, as root, a Java runtime); otherwise, and where the
extra or Java is missing, they are skipped with the reason. They are opt-in because Spark spends
minutes planning each program's attribution and risk queries (docs/backends.md, "Test time"),
which would dominate the suite's time on a 2-core machine. The same cycle without Spark (the core
run through the warehouse's DuckDB session) runs in every `./dev test`, in tests/test_warehouse.py.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from .cycle import PAID_THROUGH, TERMS, YEAR, terms_paths  # noqa: F401  (shared with the tests)

# Members of the synthetic population. Spark's time here is planning (each program's attribution
# is one large query plan), which does not grow with the members; 300 keeps the DuckDB side and the
# Parquet round trips short while every program has attributed members, quality denominators and
# a settlement with savings or losses.
MEMBERS = 300
SEED = 5


def spark_missing() -> str | None:
    if os.environ.get("ALLPAYER_SPARK_TESTS") != "1":
        return "Spark parity tests are opt-in: run with ALLPAYER_SPARK_TESTS=1 ./dev test tests/spark"
    if importlib.util.find_spec("pyspark") is None:
        return "the optional Spark extra is not installed (ALLPAYER_EXTRAS='--extra spark' ./dev setup)"
    if shutil.which("java") is None:
        return "no Java runtime on PATH (Spark needs one; ./dev test installs it as root)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = spark_missing()
    for item in items:
        if "tests/spark/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.spark)
            # One worker runs them all (with `-n` and `--dist loadgroup`), so one Spark session serves them.
            item.add_marker(pytest.mark.xdist_group("spark"))
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def spark_con():
    """An Ibis PySpark connection on the session's one local Spark session."""
    from allpayer import backend

    con = backend.connect_spark(
        "local[2]", app_name="allpayer-tests",
        conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2", "spark.driver.memory": "2g"},
    )
    yield con
    con._session.stop()


@pytest.fixture(scope="session")
def population(tmp_path_factory):
    from allpayer.synth import generate

    data = tmp_path_factory.mktemp("spark_population") / "data"
    generate(MEMBERS, SEED, data, fmt="parquet")
    return data


@pytest.fixture(scope="session")
def duckdb_result(population, tmp_path_factory):
    """The whole cycle (load, run, quality, payments, settle) on a DuckDB file: (file, core run outcome)."""
    from .cycle import duckdb_cycle

    db = tmp_path_factory.mktemp("spark_duckdb") / "allpayer.duckdb"
    return db, duckdb_cycle(population, db)


@pytest.fixture(scope="session")
def spark_result(population, spark_con, tmp_path_factory):
    """The whole cycle on a warehouse folder, the core run on the shared Spark session and quality,
    payments and settle through the CLI with --backend spark: (folder, core run outcome)."""
    from .cycle import warehouse_cycle

    wh = tmp_path_factory.mktemp("spark_warehouse") / "warehouse"
    return wh, warehouse_cycle(population, wh, spark_con)
