"""docs/inputs.md stays in step with the contract: every table, column, rule and code format."""

from __future__ import annotations

import re
from pathlib import Path

from allpayer.inputs import codes, validate
from allpayer.inputs.schema import TABLES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "inputs.md").read_text()


def test_every_table_and_column_is_documented():
    for t in TABLES.values():
        assert f"### `{t.name}`" in DOC
        section = DOC.split(f"### `{t.name}`")[1].split("\n### ")[0]
        assert t.grain in section
        for c in t.columns:
            group = re.match(r"(diagnosis_code|diagnosis_poa|procedure_code|procedure_date)_\d+$", c.name)
            name = f"`{group.group(1)}_1` .. `{group.group(1)}_25`" if group else f"`{c.name}`"
            assert f"| {name} | {c.kind} |" in section, (t.name, c.name)


def test_every_rule_and_code_format_is_documented():
    for rule in validate.RULES:
        assert f"| `{rule}` |" in DOC, rule
    for fmt in codes.FORMATS:
        assert f"| `{fmt}` |" in DOC, fmt


def test_the_restated_tables_are_the_ones_documented():
    section = DOC.split("## Restatements")[1].split("\n## ")[0]
    listed = set(re.findall(r"^\| `([a-z_]+)` \| `\(", section, flags=re.M))
    assert listed == {t.name for t in TABLES.values() if t.restated}
    for name in listed:
        assert f"| `{name}` | `({', '.join(TABLES[name].key)})` |" in section
