"""CCLF record layouts, as data keyed by the Information Packet version.

The layouts live in ``allpayer/reference/data/cclf/layouts_v<N>.csv`` (one row per field: file
type, field name, 1-based inclusive start and end, length, type, description; the file's comment
lines record its source). A version's layout applies from that packet version until the next
file. The record length of a file type is the end of its last field; it is what tells the
versions apart (v36 appended provider fields to CCLF1-6).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from allpayer.errors import InputFileError

FILE_TYPES = ("CCLF0", "CCLF1", "CCLF2", "CCLF3", "CCLF4", "CCLF5", "CCLF6", "CCLF7", "CCLF8", "CCLF9", "CCLFA", "CCLFB")
"""Every file of a monthly CCLF delivery; CCLF0 is the summary of the others' record counts."""

FILE_DESCRIPTIONS = {
    "CCLF0": "Summary statistics",
    "CCLF1": "Part A claims header",
    "CCLF2": "Part A revenue center",
    "CCLF3": "Part A procedure",
    "CCLF4": "Part A diagnosis",
    "CCLF5": "Part B physician",
    "CCLF6": "Part B DME",
    "CCLF7": "Part D",
    "CCLF8": "Beneficiary demographics",
    "CCLF9": "MBI cross-reference",
    "CCLFA": "Part A BE and demo codes",
    "CCLFB": "Part B BE and demo codes",
}

FIELD_TYPES = ("text", "int", "date", "money", "decimal")


@dataclass(frozen=True)
class Field:
    name: str
    start: int  # 1-based, inclusive
    end: int  # 1-based, inclusive
    type: str
    description: str

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class FileLayout:
    file_type: str
    version: int
    fields: tuple[Field, ...]

    @property
    def record_length(self) -> int:
        return self.fields[-1].end

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.file_type} v{self.version} has no field {name}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def _data_dir():
    return resources.files("allpayer.reference").joinpath("data", "cclf")


@lru_cache(maxsize=None)
def versions() -> tuple[int, ...]:
    """The packet versions that have a layout file, ascending."""
    out = []
    for entry in _data_dir().iterdir():
        name = entry.name
        if name.startswith("layouts_v") and name.endswith(".csv"):
            out.append(int(name[len("layouts_v") : -len(".csv")]))
    return tuple(sorted(out))


def layout_version(version: int) -> int:
    """The layout file that applies to packet `version` (the latest one not after it)."""
    usable = [v for v in versions() if v <= version]
    if not usable:
        raise InputFileError(f"layouts_v{version}.csv", f"no CCLF layout for packet version {version}: the earliest is {versions()[0]}")
    return usable[-1]


@lru_cache(maxsize=None)
def layouts(version: int) -> dict[str, FileLayout]:
    """The layouts of every file type for packet `version`, checked: fields contiguous from 1."""
    v = layout_version(version)
    path = _data_dir().joinpath(f"layouts_v{v}.csv")
    text = path.read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    by_type: dict[str, list[Field]] = {}
    for i, r in enumerate(rows, start=1):
        f = Field(r["field_name"], int(r["start"]), int(r["end"]), r["type"], r["description"])
        if f.type not in FIELD_TYPES or f.length != int(r["length"]):
            raise InputFileError(str(path), f"row {i} ({r['file_type']} {f.name}): bad type or length")
        fields = by_type.setdefault(r["file_type"], [])
        expected = fields[-1].end + 1 if fields else 1
        if f.start != expected:
            raise InputFileError(str(path), f"{r['file_type']} {f.name} starts at {f.start}, expected {expected}")
        fields.append(f)
    missing = [t for t in FILE_TYPES if t not in by_type]
    if missing:
        raise InputFileError(str(path), f"no layout for {', '.join(missing)}")
    return {t: FileLayout(t, v, tuple(fs)) for t, fs in by_type.items()}


def detect_version(file_type: str, record_length: int) -> int | None:
    """The latest layout version whose `file_type` records are `record_length` long, or None."""
    found = [v for v in versions() if layouts(v)[file_type].record_length == record_length]
    return found[-1] if found else None
