"""Shared fixtures: one generated population per test session (20,000 people, seed 1)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from allpayer.synth import generate

SESSION_MEMBERS = 20_000
SESSION_SEED = 1
TABLES = ("eligibility", "medical_claim", "pharmacy_claim", "lab_result", "observation", "provider_roster", "employer_group")


@pytest.fixture(scope="session")
def population(tmp_path_factory) -> Path:
    """Folder with a generated 20,000-person population (Parquet)."""
    out = tmp_path_factory.mktemp("synth") / "pop"
    generate(SESSION_MEMBERS, SESSION_SEED, out)
    return out


@pytest.fixture(scope="session")
def db(population) -> duckdb.DuckDBPyConnection:
    """DuckDB connection with one view per generated table."""
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"create view {t} as select * from read_parquet('{population / (t + '.parquet')}')")
    return con


def scalar(con, sql: str):
    return con.execute(sql).fetchone()[0]
