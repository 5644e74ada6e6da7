"""Shared helpers of the input tests: deliveries built from the hand-checked fixture folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from allpayer.inputs import readers
from allpayer.inputs.schema import REQUIRED_TABLES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BAD_DATA = FIXTURES / "bad_data"
BASE = BAD_DATA / "base"


def build_delivery(dest: Path, case: str | None = None, only_required: bool = False) -> Path:
    """Copy the valid base delivery to `dest`, then apply a bad-data case: its files replace the
    base files of the same tables, and tables named in its REMOVE file are left out. With
    `only_required`, the base contributes only the tables a load requires."""
    shutil.copytree(BASE, dest)
    if only_required:
        for p in list(dest.iterdir()):
            if readers._table_of(p.name) not in REQUIRED_TABLES:
                p.unlink()
    if case is None:
        return dest
    folder = BAD_DATA / case
    remove_file = folder / "REMOVE"
    remove = set(remove_file.read_text().split()) if remove_file.exists() else set()
    replaced = {readers._table_of(p.name) for p in folder.iterdir()} | remove
    for p in list(dest.iterdir()):
        if readers._table_of(p.name) in replaced:
            p.unlink()
    for p in folder.iterdir():
        if p.name != "REMOVE":
            shutil.copy(p, dest / p.name)
    return dest


def query(db: Path, sql: str, params=None) -> list[tuple]:
    """Rows of a query on a published snapshot, opened read-only."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def delivery(tmp_path) -> Path:
    """A fresh copy of the valid base delivery."""
    return build_delivery(tmp_path / "delivery")
