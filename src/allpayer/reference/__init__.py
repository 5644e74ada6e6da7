"""Reference data shipped with allpayer: code sets and model tables, each recording its source.

Files live in `allpayer/reference/data/`. Stages never open them directly: a loader here reads
them once and the caller passes the result on.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from pathlib import Path

DATA_PACKAGE = "allpayer.reference"


def data_path(name: str) -> Path:
    """Path of a packaged reference file, e.g. ``data_path("tuva_input_layer_columns.csv")``."""
    return Path(str(resources.files(DATA_PACKAGE).joinpath("data", name)))


@lru_cache(maxsize=None)
def tuva_input_layer_columns() -> dict[str, tuple[str, ...]]:
    """Column names of the Tuva input layer tables at the pinned Tuva version, by table, in order.

    Source and version are recorded on every row of ``tuva_input_layer_columns.csv``.
    """
    out: dict[str, list[str]] = {}
    with data_path("tuva_input_layer_columns.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["table"], []).append(row["column"])
    return {t: tuple(cols) for t, cols in out.items()}


@lru_cache(maxsize=None)
def tuva_input_layer_version() -> str:
    """The Tuva version the shipped column list was taken from (one version for the whole file)."""
    with data_path("tuva_input_layer_columns.csv").open(newline="", encoding="utf-8") as f:
        versions = {row["tuva_version"] for row in csv.DictReader(f)}
    if len(versions) != 1:
        raise ValueError(f"tuva_input_layer_columns.csv mixes Tuva versions: {sorted(versions)}")
    return versions.pop()
