"""A small published cycle (generate -> load -> run -> payments -> settle) shared by the report tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from allpayer.cli import main

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "reports"


@pytest.fixture(scope="session")
def published(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("reports")
    data, db = tmp / "data", tmp / "a.duckdb"
    assert main(["generate", "--members", "600", "--seed", "11", "--out", str(data)]) == 0
    assert main(["load", str(data), "--db", str(db)]) == 0
    # a high-cost threshold at which a few hundred members give every payer some claimants
    assert main(["run", "--db", str(db), "--year", "2024", "--high-cost-threshold", "10000"]) == 0
    assert main(["payments", "--db", str(db), "--year", "2024"]) == 0
    assert main(["settle", "--db", str(db), "--year", "2024"]) == 0
    return db


def chromium_or_skip():
    """Skip only where Chromium is genuinely absent and this is not CI (CI installs it: ./dev)."""
    from allpayer.reports.pdf import chromium_path

    missing = [n for n, ok in (("chromium", chromium_path()), ("pdftotext", shutil.which("pdftotext")),
                               ("pdftoppm", shutil.which("pdftoppm"))) if not ok]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {', '.join(missing)} (./dev installs chromium and poppler-utils as root)")
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install chromium poppler-utils)")
