"""Shared Spark fixtures: one local Spark session for the whole test session (local[2], two shuffle
partitions, no UI), and one small synthetic population loaded and run on both backends.

The Spark tests are marked ``spark``. They run when ``ALLPAYER_SPARK_TESTS=1`` (then
``./dev test`` installs the Spark extra and, as root, a Java runtime); otherwise, and where the
extra or Java is missing, they are skipped with the reason. They are opt-in because Spark spends
minutes planning each program's attribution query, which would dominate the suite's time on a
2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

YEAR = 2024
MEMBERS = 300
SEED = 5
PAID_THROUGH = "2025-03-31"
# Two of the shipped 2024 programs keep the Spark run short (each program's attribution is one large
# query plan) while covering every stage: Medicare (MSSP-style steps, CMS-HCC risk, risk ratios) and
# a self-funded employer program (employer groups and their opt-in).
TERMS = ("vermont/2024/medicare.yaml", "vermont/2024/sov_employees.yaml")


def terms_paths():
    from allpayer.terms import programs_dir

    return [programs_dir() / t for t in TERMS]


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
    """The population loaded and run on DuckDB: (database file, run outcome)."""
    import datetime as dt

    from allpayer.inputs.load import load_folder
    from allpayer.pipeline import run_year

    db = tmp_path_factory.mktemp("spark_duckdb") / "allpayer.duckdb"
    load_folder(population, db)
    out = run_year(db, YEAR, terms=terms_paths(), paid_through=dt.date.fromisoformat(PAID_THROUGH))
    return db, out


@pytest.fixture(scope="session")
def spark_result(population, spark_con, tmp_path_factory):
    """The same population loaded into a warehouse folder and run on Spark: (folder, run outcome)."""
    import datetime as dt

    from allpayer import warehouse
    from allpayer.pipeline import run_year

    wh = tmp_path_factory.mktemp("spark_warehouse") / "warehouse"
    warehouse.load_folder(population, wh)
    out = run_year(wh, YEAR, terms=terms_paths(), paid_through=dt.date.fromisoformat(PAID_THROUGH), backend="spark",
                   spark_con=spark_con)
    return wh, out
