"""Load contract-terms YAML files into `ProgramTerms`, with errors that name file, key and problem.

Every failure is an `allpayer.errors.TermsError(file, "key.path[2].sub", problem)`: a file that
does not exist or is not UTF-8, YAML syntax errors (with line and column), an empty file,
duplicate keys, bad dates, unknown keys (with the keys that are allowed there), bare YAML numbers
where money or rates belong, values out of range and broken cross-field rules. The message says
what was expected and, where the file shows it, the line.

>>> p = load_program(programs_dir() / "vermont" / "2024" / "mvp_qhp.yaml")
>>> p.program_id, p.payer, p.kind
('vt-2024-mvp-qhp', 'mvp', 'commercial')
>>> [x.program_id for x in load_programs([programs_dir() / "vermont"], year=2024)][:2]
['vt-2024-medicaid', 'vt-2024-medicare']
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, get_args

import yaml
from pydantic import BaseModel, ValidationError

from allpayer.errors import TermsError
from allpayer.terms.dated import UNION_TAGS
from allpayer.terms.models import ProgramTerms

__all__ = [
    "load_program",
    "load_programs",
    "parse_program",
    "programs_dir",
    "terms_files",
    "check_files",
    "CheckResult",
    "TERMS_SUFFIXES",
]

TERMS_SUFFIXES = (".yaml", ".yml")


def programs_dir() -> Path:
    """The folder of example programs shipped with allpayer (``allpayer/programs``)."""
    return Path(str(resources.files("allpayer") / "programs"))


# ------------------------------------------------------------------------------------------------
# YAML with key paths and line numbers


def _join(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: same results, faster


def _read_yaml(path: Path, text: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML text into plain data, refusing duplicate keys, and record each key's line."""
    loader = _YAML_LOADER(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = exc.problem or exc.context or "syntax error"
        raise TermsError(path, "", f"not valid YAML: {what}{where}") from None
    except yaml.YAMLError as exc:
        raise TermsError(path, "", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if node is None:
        raise TermsError(path, "", "the file is empty: expected a mapping of program terms (program_id, payer, ...)")
    lines: dict[str, int] = {}
    constructor = _YAML_LOADER("")

    def build(n: yaml.Node, p: str, depth: int) -> Any:
        if depth > 50:
            raise TermsError(path, p, "nested too deeply (recursive YAML alias?)")
        lines.setdefault(p, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise TermsError(path, p, f"merge keys (<<) are not supported (line {key_node.start_mark.line + 1})")
                key = build(key_node, p + ".<key>", depth + 1)
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise TermsError(
                        path, p, f"keys must be text or whole numbers, got {key!r} (line {key_node.start_mark.line + 1})"
                    )
                kp = _join(p, key)
                if key in out:
                    raise TermsError(
                        path, kp, f"duplicate key (lines {lines.get(kp, '?')} and {key_node.start_mark.line + 1})"
                    )
                lines[kp] = key_node.start_mark.line + 1
                out[key] = build(value_node, kp, depth + 1)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, _join(p, i), depth + 1) for i, item in enumerate(n.value)]
        try:
            return constructor.construct_object(n, deep=True)
        except (ValueError, yaml.constructor.ConstructorError) as exc:
            detail = getattr(exc, "problem", None) or str(exc)
            if n.tag == "tag:yaml.org,2002:timestamp":
                raise TermsError(
                    path, p, f"expected a date YYYY-MM-DD, got {n.value!r} ({detail}) (line {n.start_mark.line + 1})"
                ) from None
            raise TermsError(path, p, f"cannot read value {n.value!r}: {detail} (line {n.start_mark.line + 1})") from None

    try:
        data = build(node, "", 0)
    finally:
        constructor.dispose()
    return data, lines


# ------------------------------------------------------------------------------------------------
# error messages


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types behind Optional/Union/Annotated."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for a in get_args(tp):
            if a is not type(None):
                out.extend(_unwrap(a))
        return out
    return [tp]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class whose keys are at `loc` (a pydantic location, tags removed)."""
    tps: list[Any] = [ProgramTerms]
    for seg in loc:
        nxt: list[Any] = []
        for tp in tps:
            for t in _unwrap(tp):
                origin = typing.get_origin(t)
                if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(seg, str):
                    f = t.model_fields.get(seg)
                    if f is not None:
                        nxt.append(f.annotation)
                elif origin in (list, tuple) and isinstance(seg, int):
                    nxt.append(get_args(t)[0])
                elif origin is dict:
                    nxt.append(get_args(t)[1])
        tps = nxt
        if not tps:
            return None
    for tp in tps:
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                return t
    return None


_DATED_KEYS = ["from", "value", "reference", "assumption", "basis", "note"]


def _path(loc: tuple[Any, ...], extra: str = "") -> str:
    out = ""
    for seg in loc:
        if seg in UNION_TAGS:
            continue
        if seg == "[key]":
            continue
        out = _join(out, seg)
    if extra:
        out = extra if not out else (f"{out}{extra}" if extra.startswith("[") else f"{out}.{extra}")
    return out


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "an empty value"
    return repr(value)


def _problem_text(err: dict[str, Any]) -> str:
    loc = err["loc"]
    typ = err["type"]
    msg = err["msg"]
    ctx = err.get("ctx") or {}
    clean = tuple(s for s in loc if s not in UNION_TAGS and s != "[key]")
    if loc and loc[-1] == "[key]":
        if typ.startswith("int_"):
            return f"bad key {clean[-1]!r}: expected a whole number (a year or a percentile)"
        return f"bad key {clean[-1]!r}: {msg.replace('Input should be', 'expected')}"
    if typ == "extra_forbidden":
        key = clean[-1] if clean else "?"
        if key == "terms_version":
            return "unknown key: terms_version is computed from the content of the terms; remove it"
        if "<dated list>" in loc or "<annotated value>" in loc:
            allowed = _DATED_KEYS if "<dated list>" in loc else _DATED_KEYS[1:]
        else:
            model = _model_at(clean[:-1])
            names = list(model.model_fields) if model else []
            provenance = [n for n in names if n in ("reference", "assumption", "basis", "note")]
            allowed = [n for n in names if n not in provenance] + provenance
        text = "unknown key"
        close = difflib.get_close_matches(str(key), allowed, n=1)
        if close:
            text += f" (did you mean {close[0]!r}?)"
        if allowed:
            text += f"; expected one of: {', '.join(allowed)}"
        return text
    if typ == "missing":
        return "required key is missing"
    if typ == "terms_value":
        return str(ctx.get("problem", msg))
    if typ == "dict_type" and "<dated list>" in loc:
        return f"expected a dated entry {{from: YYYY-MM-DD, value: ...}}, got {_got(err.get('input'))}"
    if typ in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys, got {_got(err.get('input'))}"
    if typ == "list_type":
        return f"expected a list, got {_got(err.get('input'))}"
    if typ in ("too_short", "too_long"):
        return msg.replace("List should have", "expected a list with").replace("Input should have", "expected")
    text = msg.replace("Input should be", "expected")
    if "input" in err:
        text += f", got {_got(err['input'])}"
    return text


def _raise_validation(path: Path, exc: ValidationError, lines: dict[str, int]) -> typing.NoReturn:
    errors = exc.errors(include_url=False)
    # an unknown key often explains a missing one (a misspelt key): report it first
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")

    def described(err) -> tuple[str, str]:
        ctx = err.get("ctx") or {}
        key = _path(err["loc"], str(ctx.get("at") or ""))
        problem = _problem_text(err)
        line = _line_for(key, lines)
        return key, problem + (f" (line {line})" if line is not None else "")

    key, problem = described(errors[0])
    others = tuple(described(e) for e in errors[1:])
    if others:
        problem += f"; {len(others)} more problem{'s' if len(others) > 1 else ''} in this file"
    raise TermsError(path, key, problem, others) from None


def _line_for(key: str, lines: dict[str, int]) -> int | None:
    k = key
    while k:
        if k in lines:
            return lines[k]
        cut = max(k.rfind("."), k.rfind("["))
        if cut <= 0:
            break
        k = k[:cut]
    return lines.get(k) if k else None


# ------------------------------------------------------------------------------------------------
# public API


def parse_program(data: Any, path: str | Path = "<terms>", lines: dict[str, int] | None = None) -> ProgramTerms:
    """Validate plain data (as read from YAML) into `ProgramTerms`; errors name `path`."""
    p = Path(path)
    if not isinstance(data, dict):
        raise TermsError(p, "", f"expected a mapping of program terms at the top of the file, got {_got(data)}")
    try:
        program = ProgramTerms.model_validate(data)
    except ValidationError as exc:
        _raise_validation(p, exc, lines or {})
    program._source_path = str(path)
    return program


def load_program(path: str | os.PathLike[str]) -> ProgramTerms:
    """Load and validate one contract-terms YAML file.

    Raises `TermsError` naming the file, the key path and what was expected.
    """
    p = Path(path)
    if not p.exists():
        raise TermsError(p, "", "no such file")
    if p.is_dir():
        raise TermsError(p, "", "is a folder: expected a terms file (use load_programs for folders)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TermsError(p, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise TermsError(p, "", f"cannot read: {exc.strerror}") from None
    if not text.strip():
        raise TermsError(p, "", "the file is empty: expected a mapping of program terms (program_id, payer, ...)")
    data, lines = _read_yaml(p, text)
    return parse_program(data, p, lines)


def terms_files(paths_or_dirs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The terms files named, and those inside the folders named (recursively, sorted).

    A path that does not exist raises `TermsError`; so does a folder without terms files.
    """
    out: list[Path] = []
    for item in paths_or_dirs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in TERMS_SUFFIXES)
            if not found:
                raise TermsError(p, "", "no terms files (*.yaml, *.yml) in this folder")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise TermsError(p, "", "no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in out:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def load_programs(paths_or_dirs: Iterable[str | os.PathLike[str]], year: int | None = None) -> list[ProgramTerms]:
    """Load every terms file named or found in the folders named; keep one performance year if
    `year` is given. Programs come back sorted by (performance year, program id). Two files with
    the same program id are an error, and so are two programs that select the same eligibility
    rows in overlapping periods (same payer, a shared plan, a shared group or no group limit).
    """
    if isinstance(paths_or_dirs, (str, os.PathLike)):
        paths_or_dirs = [paths_or_dirs]
    programs = [load_program(f) for f in terms_files(paths_or_dirs)]
    seen: dict[str, ProgramTerms] = {}
    for p in programs:
        if p.program_id in seen:
            raise TermsError(
                p.source_path or "", "program_id", f"{p.program_id!r} is also defined in {seen[p.program_id].source_path}"
            )
        seen[p.program_id] = p
    for i, p in enumerate(programs):
        clash = _overlap(p, programs[:i])
        if clash is not None:
            raise TermsError(p.source_path or "", "population", clash)
    if year is not None:
        programs = [p for p in programs if p.performance_year == year]
    return sorted(programs, key=lambda p: (p.performance_year, p.program_id))


def _overlap(program: ProgramTerms, others: Iterable[ProgramTerms]) -> str | None:
    """A message if `program` selects eligibility rows another program already selects in the
    same period (same payer, a shared plan, and a shared group or no group restriction)."""
    for o in others:
        if o.payer != program.payer:
            continue
        if o.effective.end < program.effective.start or program.effective.end < o.effective.start:
            continue
        plans = sorted(set(o.population.plans) & set(program.population.plans))
        if not plans:
            continue
        mine, theirs = program.population.group_ids, o.population.group_ids
        if mine is not None and theirs is not None:
            groups = sorted(set(mine) & set(theirs))
            if not groups:
                continue
            which = f", group {groups[0]!r}"
        else:
            which = ""
        return (
            f"selects the same members as {o.program_id} ({o.source_path}): payer {program.payer!r}, "
            f"plan {plans[0]!r}{which}, overlapping effective periods"
        )
    return None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one file: the program, or the error."""

    path: Path
    program: ProgramTerms | None = None
    error: TermsError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_files(
    paths_or_dirs: Iterable[str | os.PathLike[str]], require_sources: bool = False
) -> list[CheckResult]:
    """Check each terms file named or found in the folders, without stopping at the first bad one.

    With `require_sources`, a value that carries neither a reference nor an assumption mark is a
    problem too. A file that repeats another's program id, or selects the same members in the
    same period as an earlier file, is reported as bad.
    """
    results: list[CheckResult] = []
    ids: dict[str, Path] = {}
    loaded: list[ProgramTerms] = []
    seen: set[Path] = set()
    for item in paths_or_dirs:
        try:
            files = terms_files([item])
        except TermsError as exc:
            results.append(CheckResult(Path(item), error=exc))
            continue
        for f in files:
            if f.resolve() in seen:
                continue
            seen.add(f.resolve())
            try:
                program = load_program(f)
                if require_sources:
                    missing = program.unsourced_values()
                    if missing:
                        raise TermsError(
                            f,
                            missing[0],
                            "value has no reference and is not marked as an assumption"
                            + (f"; {len(missing) - 1} more such values" if len(missing) > 1 else ""),
                        )
                if program.program_id in ids:
                    raise TermsError(
                        f, "program_id", f"{program.program_id!r} is also defined in {ids[program.program_id]}"
                    )
                clash = _overlap(program, loaded)
                if clash is not None:
                    raise TermsError(f, "population", clash)
                ids[program.program_id] = f
                loaded.append(program)
                results.append(CheckResult(f, program=program))
            except TermsError as exc:
                results.append(CheckResult(f, error=exc))
    return results
