"""Value sets: the code lists quality measures read, with their sources.

The project ships its own lists in ``allpayer/reference/data/valuesets/*.csv``, built from public
code systems (ICD-10-CM, CPT/HCPCS, LOINC, revenue codes, place of service). They are not the
licensed HEDIS value sets, so a rate computed with them is labelled *not certified*. A user who
holds a licensed value-set file may pass it (``--valuesets FILE``); each value set named in it
replaces the project's set of that name, and a measure whose sets all come from the user's file
is labelled certified.

File format (CSV, header required), one row per code:

============= ===========================================================================
value_set     the set's name (what a measure declares, e.g. ``diabetes_dx``)
code_system   ``icd10cm``, ``icd10pcs``, ``cpt``, ``hcpcs``, ``loinc``, ``revenue``, ``pos``,
              ``bill_type``, ``ndc``, ``drg`` (MS-DRG, 3 digits)
code          the code in the loaded data's normal form: ICD-10 upper case without the dot,
              revenue codes 4 digits, POS 2 digits
match         ``exact`` (default) or ``prefix`` (every code that starts with ``code``)
description   what the code is
source        where the code comes from (document or code-system release)
============= ===========================================================================
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from functools import reduce
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.errors import InputFileError

CODE_SYSTEMS = ("icd10cm", "icd10pcs", "cpt", "hcpcs", "loinc", "revenue", "pos", "bill_type", "ndc", "drg")
MATCHES = ("exact", "prefix")
COLUMNS = ("value_set", "code_system", "code", "match", "description", "source")
REQUIRED = ("value_set", "code_system", "code", "source")


@dataclass(frozen=True)
class Code:
    value_set: str
    code_system: str
    code: str
    match: str
    description: str
    source: str
    origin: str  # the file it came from


LOADED_FORM_SYSTEMS = frozenset({"icd10cm", "cpt", "hcpcs", "revenue", "pos", "bill_type", "drg"})
"""Code systems whose claim columns the loader stores in the form the value sets use (upper case,
no dots: see `allpayer.inputs.codes`; a row whose code is not in that form is quarantined)."""


@dataclass
class ValueSets:
    """Value sets by name; ``user_sets`` are the names supplied by the user's file.

    ``codes_as_loaded``: the code columns matched against sets of `LOADED_FORM_SYSTEMS` are claim
    columns as the loader stores them, or derived from them (`for_loaded_codes`), so the matchers
    of those systems compare them as they are instead of normalizing every value again.
    """

    codes: dict[str, list[Code]] = field(default_factory=dict)
    user_sets: frozenset[str] = frozenset()
    codes_as_loaded: bool = False

    def for_loaded_codes(self) -> "ValueSets":
        """The same sets, for code columns as the loader stores them (``codes_as_loaded``)."""
        return dataclasses.replace(self, codes_as_loaded=True)

    def names(self) -> list[str]:
        return sorted(self.codes)

    def __contains__(self, name: str) -> bool:
        return name in self.codes

    def get(self, name: str) -> list[Code]:
        try:
            return self.codes[name]
        except KeyError:
            raise KeyError(f"no value set {name!r} (known: {', '.join(self.names()) or 'none'})") from None

    def systems(self, name: str) -> set[str]:
        return {c.code_system for c in self.get(name)}

    def certified(self, names: Iterable[str]) -> bool:
        """True when every named set comes from the user's (licensed) file."""
        names = list(names)
        return bool(names) and all(n in self.user_sets for n in names)

    def table(self, name: str) -> ir.Table:
        """The set as a table: ``code_system, code, match``."""
        rows = self.get(name)
        return ibis.memtable(
            {
                "code_system": [c.code_system for c in rows],
                "code": [c.code for c in rows],
                "match": [c.match for c in rows],
            },
            schema={"code_system": "string", "code": "string", "match": "string"},
        )

    def matcher(self, name: str, systems: Sequence[str] | None = None) -> Callable[[ir.StringValue], ir.BooleanValue]:
        """A function of a code column: true when the code is in the set (codes of `systems`).

        The column is compared upper case without dots (as it is, for `systems` of
        `LOADED_FORM_SYSTEMS` with ``codes_as_loaded``); exact codes with ``isin``, prefixes with
        ``startswith``.
        """
        rows = [c for c in self.get(name) if systems is None or c.code_system in systems]
        exact = sorted({c.code for c in rows if c.match == "exact"})
        prefixes = sorted({c.code for c in rows if c.match == "prefix"})
        as_stored = self.codes_as_loaded and systems is not None and set(systems) <= LOADED_FORM_SYSTEMS

        def match(col: ir.StringValue) -> ir.BooleanValue:
            v = col if as_stored else col.upper().replace(".", "")
            tests = []
            if exact:
                tests.append(v.isin(exact))
            tests.extend(v.startswith(p) for p in prefixes)
            if not tests:
                return ibis.literal(False)
            return reduce(lambda a, b: a | b, tests).fill_null(False)

        return match

    def code_list(self, name: str, systems: Sequence[str] | None = None) -> list[str]:
        """The exact codes of a set (prefix entries left out)."""
        return sorted({c.code for c in self.get(name) if c.match == "exact" and (systems is None or c.code_system in systems)})


def project_dir() -> Path:
    """The folder of the project's value-set files."""
    return Path(str(resources.files("allpayer.reference") / "data" / "valuesets"))


def read_file(path: Path) -> list[Code]:
    """Read one value-set CSV; a bad row stops the load with a message naming file and line."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise InputFileError(str(path), f"value-set file lacks column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})")
            unknown = [c for c in header if c not in COLUMNS]
            if unknown:
                raise InputFileError(str(path), f"unknown value-set column(s) {', '.join(unknown)} (expected {', '.join(COLUMNS)})")
            out = []
            for line, row in enumerate(reader, start=2):
                vs, system, code = ((row.get(k) or "").strip() for k in ("value_set", "code_system", "code"))
                match = (row.get("match") or "exact").strip() or "exact"
                source = (row.get("source") or "").strip()
                if not vs or not code or not source:
                    raise InputFileError(str(path), f"line {line}: value_set, code and source are required")
                if system not in CODE_SYSTEMS:
                    raise InputFileError(str(path), f"line {line}: code_system {system!r} is not one of {', '.join(CODE_SYSTEMS)}")
                if match not in MATCHES:
                    raise InputFileError(str(path), f"line {line}: match {match!r} is not exact or prefix")
                norm = code.upper().replace(".", "") if system in ("icd10cm", "icd10pcs", "cpt", "hcpcs") else code
                out.append(Code(vs, system, norm, match, (row.get("description") or "").strip(), source, str(path)))
            return out
    except OSError as exc:
        raise InputFileError(str(path), f"cannot read value-set file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputFileError(str(path), f"not a UTF-8 text file") from None


def _group(codes: Iterable[Code]) -> dict[str, list[Code]]:
    out: dict[str, list[Code]] = {}
    for c in codes:
        out.setdefault(c.value_set, []).append(c)
    return out


def load_valuesets(user_file: str | Path | None = None, *, folder: str | Path | None = None) -> ValueSets:
    """The project's value sets (every CSV of `folder`, default `project_dir()`), with the sets of
    `user_file` replacing those of the same name."""
    folder = Path(folder) if folder is not None else project_dir()
    sets: dict[str, list[Code]] = {}
    for p in sorted(folder.glob("*.csv")):
        for name, rows in _group(read_file(p)).items():
            if name in sets:
                raise InputFileError(str(p), f"value set {name!r} is also defined in {sets[name][0].origin}")
            sets[name] = rows
    user: set[str] = set()
    if user_file is not None:
        if not Path(user_file).is_file():
            raise InputFileError(str(user_file), f"value-set file not found")
        theirs = _group(read_file(Path(user_file)))
        sets.update(theirs)
        user = set(theirs)
    return ValueSets(codes=sets, user_sets=frozenset(user))
