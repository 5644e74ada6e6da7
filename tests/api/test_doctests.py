"""The docstring examples of the API modules run as tests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["allpayer.api.auth", "allpayer.api.app", "allpayer.api.ratelimit", "allpayer.api.csrf",
           "allpayer.api.snapshot", "allpayer.api.paging"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
