"""Small CCLF files for tests, built field by field from the published layouts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from allpayer.inputs.cclf.files import file_name
from allpayer.inputs.cclf.layouts import FILE_DESCRIPTIONS, layouts

DATE = dt.date(2024, 3, 15)


def record(file_type: str, values: dict, version: int = 36) -> str:
    """One fixed-width record: each field of the layout from `values` (missing ones blank)."""
    out = []
    for f in layouts(version)[file_type].fields:
        v = values.get(f.name)
        text = "" if v is None else str(v)
        if f.type in ("money", "decimal", "int") and v is not None:
            text = text.rjust(f.length, " " if f.type != "int" else "0")
        assert len(text) <= f.length, (f.name, text)
        out.append(text.ljust(f.length))
    return "".join(out)


def write(folder: Path, files: dict[str, list[dict]], *, version: int = 36, file_date: dt.date = DATE,
          summary: bool = True, env: str = "P", kind: str = "Y", year: int = 2024) -> dict[str, Path]:
    """Write CCLF files (file type -> records as dicts) and, by default, their CCLF0 summary."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    lay = layouts(version)
    for t, rows in files.items():
        p = folder / file_name(t, "A1234", year, file_date, env=env, kind=kind)
        p.write_text("".join(record(t, r, version) + "\n" for r in rows), encoding="ascii")
        paths[t] = p
    if summary:
        p = folder / file_name("CCLF0", "A1234", year, file_date, env=env, kind=kind)
        p.write_text(
            "".join(f"{t:<13}|{FILE_DESCRIPTIONS[t][:20]:<20}|{len(rows):>20}|{lay[t].record_length:>13}\n" for t, rows in files.items()),
            encoding="ascii",
        )
        paths["CCLF0"] = p
    return paths
