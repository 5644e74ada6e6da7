"""docs/terms.md explains every key of the terms format and every allowed value."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

from allpayer.terms import models

DOC = (Path(__file__).resolve().parents[2] / "docs" / "terms.md").read_text()
BLOCKS = [c for _, c in inspect.getmembers(models, inspect.isclass) if issubclass(c, models.Block)]


def _literals(tp) -> set[str]:
    out: set[str] = set()
    if typing.get_origin(tp) is typing.Literal:
        return {str(a) for a in typing.get_args(tp)}
    for arg in typing.get_args(tp):
        out |= _literals(arg)
    return out


@pytest.mark.parametrize("block", BLOCKS, ids=lambda c: c.__name__)
def test_every_key_is_documented(block):
    missing = [n for n in block.model_fields if f"`{n}`" not in DOC]
    assert missing == []


@pytest.mark.parametrize("block", BLOCKS, ids=lambda c: c.__name__)
def test_every_allowed_value_is_documented(block):
    values = set()
    for field in block.model_fields.values():
        values |= _literals(field.annotation)
    assert sorted(v for v in values if f"`{v}`" not in DOC) == []


def test_the_entry_keys_of_dated_values_are_documented():
    for key in ("from", "value", "reference", "assumption", "basis", "note", "document", "page", "section", "url"):
        assert f"`{key}`" in DOC or f"{key}," in DOC or f"{key}}}" in DOC
