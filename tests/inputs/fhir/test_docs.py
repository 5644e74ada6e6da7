"""docs/fhir.md names every reader rule; the rules the reader emits are the ones it declares."""

from __future__ import annotations

import re
from pathlib import Path

from allpayer.inputs.fhir import reader

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "fhir.md").read_text()
SOURCE = (ROOT / "src" / "allpayer" / "inputs" / "fhir").glob("*.py")


def test_every_rule_is_documented():
    for rule in reader.RULES:
        assert f"| `{rule}` |" in DOC, rule


def test_the_code_emits_only_declared_rules():
    emitted = set()
    for path in SOURCE:
        text = path.read_text()
        emitted |= set(re.findall(r'Unmappable\(\s*"([a-z_]+)"', text))
        emitted |= set(re.findall(r'_require\([^\n]*?"([a-z_]+)",\s*"', text))
        emitted |= set(re.findall(r'out\.reject\([^\n]*?"([a-z_]+)",\s*f?"', text))
    assert emitted and emitted <= set(reader.RULES), emitted - set(reader.RULES)
