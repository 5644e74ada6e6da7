"""Small contract terms for settlement tests, built on tests/fixtures/terms/minimal.yaml."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from allpayer.terms.loader import parse_program

MINIMAL = Path(__file__).resolve().parent.parent / "fixtures" / "terms" / "minimal.yaml"
_BASE = yaml.safe_load(MINIMAL.read_text())

QUALITY = {
    "scoring": {"scale": [{"percentile": 30, "points": "1"}]},
    "measures": [{"id": "m1", "name": "A measure", "domain": "preventive_health", "standard": "reporting"}],
}


def program(settlement: dict, *, quality: bool = False, payments: dict | None = None, kind: str = "commercial",
            **top):
    """A valid program whose settlement block is `settlement` (plain YAML-like data)."""
    data = copy.deepcopy(_BASE)
    data["settlement"] = settlement
    data["kind"] = kind
    if quality:
        data["quality"] = copy.deepcopy(QUALITY)
    if payments:
        data["payments"] = payments
    data.update(top)
    return parse_program(data, "test-terms")


def cents(dollars: str) -> int:
    from allpayer.money import dollars_to_cents

    return dollars_to_cents(dollars)
