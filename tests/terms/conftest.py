"""Shared fixtures of the terms tests: the minimal and full example programs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MINIMAL = FIXTURES / "terms" / "minimal.yaml"
FULL = FIXTURES / "terms" / "full_program.yaml"
BAD = FIXTURES / "bad_terms"

_MINIMAL_DATA = yaml.safe_load(MINIMAL.read_text())
_FULL_DATA = yaml.safe_load(FULL.read_text())


@pytest.fixture
def minimal() -> dict:
    """A fresh copy of the minimal valid program as plain data."""
    return copy.deepcopy(_MINIMAL_DATA)


@pytest.fixture
def full() -> dict:
    """A fresh copy of the program that uses every block, as plain data."""
    return copy.deepcopy(_FULL_DATA)
