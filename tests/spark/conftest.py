"""Shared Spark fixtures: one local Spark session for the whole test session (local[2], two shuffle
partitions, no UI), and one small synthetic population taken through the whole cycle (load, run,
quality, payments, settle) on both backends (`tests/spark/cycle.py`).

The Spark tests are marked ``spark`` and run in every ``./dev test`` (which installs the Spark
extra and, as root, a Java runtime when missing). ``ALLPAYER_SPARK_TESTS=0`` skips them, as do a
missing extra or Java, each with its reason. ``ALLPAYER_SPARK_TEST_MEMBERS`` changes the
population's size (default `MEMBERS`). The same cycle without Spark (the core run through the
warehouse's DuckDB session) is in tests/test_warehouse.py.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from .cycle import PAID_THROUGH, TERMS, YEAR, terms_paths  # noqa: F401  (shared with the tests)

# Members of the synthetic population: a few thousand, so every program has attributed members,
# quality denominators and a settlement with savings or losses. Spark's time here is mostly a fixed
# cost per query (planning, scheduling), which grows little with the members: on 2 cores the whole
# Spark group took 8 min 10 s at 2,000 members (load average 5-13).
MEMBERS = int(os.environ.get("ALLPAYER_SPARK_TEST_MEMBERS", "2000"))
SEED = 5

# The shared session's settings on top of the backend's local ones: two shuffle partitions for two
# cores, and no adaptive execution. Adaptive execution re-plans after every shuffle stage and runs
# the stages of a query one after another; on a test population each query is a few small stages,
# and without it the whole-cycle test took about half the wall time (docs/backends.md, "Test time").
TEST_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "2g",
    "spark.sql.adaptive.enabled": "false",
}


def spark_missing() -> str | None:
    if os.environ.get("ALLPAYER_SPARK_TESTS") == "0":
        return "Spark parity tests switched off (ALLPAYER_SPARK_TESTS=0)"
    if importlib.util.find_spec("pyspark") is None:
        return "the Spark extra is not installed (./dev setup installs it unless ALLPAYER_EXTRAS says otherwise)"
    if shutil.which("java") is None:
        return "no Java runtime on PATH (Spark needs Java 17; ./dev test installs it when run as root)"
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
        conf=TEST_SPARK_CONF,
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
