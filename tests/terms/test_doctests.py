"""The docstring examples of the terms modules run as tests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "allpayer.terms",
    "allpayer.terms.values",
    "allpayer.terms.dated",
    "allpayer.terms.models",
    "allpayer.terms.loader",
    "allpayer.commands.terms",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name != "allpayer.commands.terms":
        assert result.attempted > 0
