"""The docstring examples of the settlement modules run as tests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "allpayer.settlement.engine",
    "allpayer.settlement.distribution",
    "allpayer.settlement.versions",
    "allpayer.settlement.compare",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
