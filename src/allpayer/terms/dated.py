"""Dated and annotated parameter values.

A contract parameter can change during a performance year: a value holds from its date until the
next one. In YAML a dated field is written in one of three ways:

- a plain value: ``savings_rate: "0.50"`` (holds for the whole effective period);
- one annotated value: ``savings_rate: {value: "0.50", reference: "S12", basis: DOC}``;
- a list of dated entries, in increasing date order, the first starting on the program's
  effective start::

      savings_rate:
        - {from: 2022-01-01, value: "0.50", reference: "contract p. 4"}
        - {from: 2022-07-01, value: "0.60", assumption: true, basis: INF}

Each entry may carry a ``reference`` (a string, or ``{document, page, section, url}``), an
``assumption`` flag, an evidence ``basis`` (``DOC``, ``DERIVED``, ``INF``, ``BRIEF``, ``VERIFY``)
and a ``note``. ``INF`` and ``BRIEF`` mean the value is an assumption; ``DOC`` and ``DERIVED``
need a reference and cannot be assumptions.

`Noted[T]` is the same without dates (one value with its provenance), for values that cannot
change inside a year (trend rate of a given year, a scoring-scale point).

>>> from pydantic import TypeAdapter
>>> from allpayer.terms.values import Rate
>>> rate = TypeAdapter(Dated[Rate]).validate_python(
...     [{"from": "2022-01-01", "value": "0.50"}, {"from": "2022-07-01", "value": "0.60", "basis": "INF"}])
>>> rate.at(dt.date(2022, 3, 31))
Decimal('0.50')
>>> rate.at(dt.date(2022, 7, 1))
Decimal('0.60')
>>> rate.is_assumption
True
>>> TypeAdapter(Dated[Rate]).validate_python("0.03").value
Decimal('0.03')
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Generic, Iterator, Literal, TypeVar, get_args

from pydantic import BaseModel, PlainSerializer, PlainValidator
from pydantic_core import core_schema as cs

from allpayer.terms.values import problem

T = TypeVar("T")

Basis = Literal["DOC", "DERIVED", "INF", "BRIEF", "VERIFY"]
BASES: tuple[str, ...] = get_args(Basis)
ASSUMPTION_BASES = ("INF", "BRIEF")

# Tags of the internal union; the loader drops them from key paths.
TAG_LIST = "<dated list>"
TAG_ONE = "<annotated value>"
TAG_PLAIN = "<plain value>"
UNION_TAGS = frozenset({TAG_LIST, TAG_ONE, TAG_PLAIN})


@dataclass(frozen=True)
class Reference:
    """Where a value comes from: a document (e.g. ``"S4"`` or a contract title) and a page."""

    document: str
    page: str | None = None
    section: str | None = None
    url: str | None = None

    def __str__(self) -> str:
        parts = [self.document]
        if self.section:
            parts.append(f"§{self.section}")
        if self.page:
            parts.append(f"p. {self.page}")
        return ", ".join(parts)

    def to_data(self) -> Any:
        if self.page is None and self.section is None and self.url is None:
            return self.document
        out: dict[str, Any] = {"document": self.document}
        for k in ("page", "section", "url"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One value of a dated parameter, with its start date (None: the start of the period)."""

    start: dt.date | None
    value: T
    reference: Reference | None = None
    assumption: bool = False
    basis: str | None = None
    note: str | None = None

    @property
    def annotated(self) -> bool:
        return self.reference is not None or self.assumption or self.basis is not None or self.note is not None

    @property
    def sourced(self) -> bool:
        """True if the value carries a reference or is marked as an assumption."""
        return self.reference is not None or self.assumption


def jsonable(value: Any) -> Any:
    """A value as plain data for YAML/JSON output (Decimal and Fraction as strings, dates ISO)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, (Decimal, Fraction)):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


class Dated(Generic[T]):
    """A parameter whose value may change on given dates. Build it from YAML through pydantic.

    Use `at(date)` for the value on a date, `value` when there is a single value, `segments`
    for the pieces of a period.
    """

    allow_dates = True

    __slots__ = ("entries",)

    def __init__(self, entries: tuple[Entry[T], ...]):
        if not entries:
            raise ValueError("a dated value needs at least one entry")
        self.entries = tuple(entries)

    @classmethod
    def of(cls, value: T) -> "Dated[T]":
        """One value for the whole period.

        >>> Dated.of(3).value
        3
        """
        return cls((Entry(None, value),))

    # -- access -------------------------------------------------------------------------------

    @property
    def value(self) -> T:
        """The value, when there is only one (raises if the value changes during the period)."""
        if len(self.entries) != 1:
            dates = ", ".join(str(e.start) for e in self.entries)
            raise ValueError(f"this value changes on {dates}: use .at(date)")
        return self.entries[0].value

    def at(self, when: dt.date) -> T:
        """The value that holds on `when` (the last entry starting on or before it)."""
        found: Entry[T] | None = None
        for e in self.entries:
            if e.start is None or e.start <= when:
                found = e
            else:
                break
        if found is None:
            raise ValueError(f"no value holds on {when}: the first starts on {self.entries[0].start}")
        return found.value

    def entry_at(self, when: dt.date) -> Entry[T]:
        """The entry (value with its provenance) that holds on `when`."""
        found = None
        for e in self.entries:
            if e.start is None or e.start <= when:
                found = e
        if found is None:
            raise ValueError(f"no value holds on {when}: the first starts on {self.entries[0].start}")
        return found

    def segments(self, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date, T]]:
        """The values over ``[start, end]`` as ``(first day, last day, value)`` pieces.

        >>> d = Dated((Entry(dt.date(2022, 1, 1), "a"), Entry(dt.date(2022, 4, 1), "b")))
        >>> d.segments(dt.date(2022, 1, 1), dt.date(2022, 12, 31))
        [(datetime.date(2022, 1, 1), datetime.date(2022, 3, 31), 'a'), (datetime.date(2022, 4, 1), datetime.date(2022, 12, 31), 'b')]
        """
        out: list[tuple[dt.date, dt.date, T]] = []
        starts = [e.start or start for e in self.entries]
        for i, e in enumerate(self.entries):
            seg_start = max(starts[i], start)
            seg_end = end if i + 1 == len(self.entries) else min(end, starts[i + 1] - dt.timedelta(days=1))
            if seg_start <= seg_end:
                out.append((seg_start, seg_end, e.value))
        return out

    @property
    def is_dated(self) -> bool:
        """True if the value was written as a list of dated entries."""
        return any(e.start is not None for e in self.entries)

    @property
    def is_assumption(self) -> bool:
        """True if any entry is an assumption."""
        return any(e.assumption for e in self.entries)

    @property
    def sourced(self) -> bool:
        """True if every entry carries a reference or is marked as an assumption."""
        return all(e.sourced for e in self.entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self.entries)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.entries == self.entries  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.entries)

    def __repr__(self) -> str:
        if len(self.entries) == 1 and self.entries[0].start is None:
            return f"{type(self).__name__}({self.entries[0].value!r})"
        inner = ", ".join(f"{e.start}: {e.value!r}" for e in self.entries)
        return f"{type(self).__name__}({inner})"

    # -- output -------------------------------------------------------------------------------

    def to_data(self, at: dt.date | None = None) -> Any:
        """Plain data as it would be written in YAML (or the resolved value on `at`)."""
        if at is not None:
            return jsonable(self.at(at))

        def one(e: Entry[T], with_start: bool) -> Any:
            if not e.annotated and not with_start:
                return jsonable(e.value)
            out: dict[str, Any] = {}
            if with_start:
                out["from"] = e.start.isoformat()  # type: ignore[union-attr]
            out["value"] = jsonable(e.value)
            if e.reference is not None:
                out["reference"] = e.reference.to_data()
            if e.assumption:
                out["assumption"] = True
            if e.basis is not None:
                out["basis"] = e.basis
            if e.note is not None:
                out["note"] = e.note
            return out

        if self.is_dated:
            return [one(e, True) for e in self.entries]
        return one(self.entries[0], False)

    # -- pydantic -----------------------------------------------------------------------------

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> cs.CoreSchema:
        args = get_args(source)
        inner = args[0] if args else Any
        value_schema = handler.generate_schema(inner)
        inner_is_list = _accepts_list(inner)
        inner_is_mapping = _accepts_mapping(inner)

        str_schema = cs.str_schema(min_length=1)
        reference_schema = handler.generate_schema(ReferenceValue)

        def entry_schema(with_start: bool) -> cs.CoreSchema:
            from allpayer.terms.values import IsoDate

            fields = {
                "value": cs.typed_dict_field(value_schema),
                "reference": cs.typed_dict_field(reference_schema, required=False),
                "assumption": cs.typed_dict_field(cs.bool_schema(strict=True), required=False),
                "basis": cs.typed_dict_field(cs.literal_schema(list(BASES)), required=False),
                "note": cs.typed_dict_field(str_schema, required=False),
            }
            if with_start:
                fields = {"from": cs.typed_dict_field(handler.generate_schema(IsoDate)), **fields}
            return cs.no_info_after_validator_function(
                _make_entry, cs.typed_dict_schema(fields, extra_behavior="forbid")
            )

        choices: dict[str, cs.CoreSchema] = {TAG_ONE: entry_schema(False), TAG_PLAIN: value_schema}
        if cls.allow_dates:
            choices[TAG_LIST] = cs.list_schema(entry_schema(True), min_length=1)

        def pick(v: Any) -> str:
            if isinstance(v, list):
                if cls.allow_dates and (
                    not inner_is_list or (v and all(isinstance(e, dict) and "from" in e for e in v))
                ):
                    return TAG_LIST
                return TAG_PLAIN
            if isinstance(v, dict) and ("value" in v or not inner_is_mapping):
                return TAG_ONE
            return TAG_PLAIN

        def build(v: Any) -> "Dated[Any]":
            if isinstance(v, list):
                return cls(tuple(v))
            if isinstance(v, Entry):
                return cls((v,))
            return cls((Entry(None, v),))

        def passthrough_or_union(v: Any, nxt: Any) -> Any:
            if isinstance(v, Dated):  # built in Python: check its values like written ones
                v = v.to_data()
            if (
                not cls.allow_dates
                and isinstance(v, list)
                and v
                and all(isinstance(e, dict) and "from" in e for e in v)
            ):
                raise problem("this value cannot change during the year: write one value, without 'from' dates")
            if isinstance(v, dict) and "from" in v and "value" in v:
                if cls.allow_dates:
                    raise problem("a dated entry {from: ..., value: ...} must be an item of a list")
                raise problem("this value cannot change during the year: remove 'from'")
            return nxt(v)

        union = cs.tagged_union_schema(choices, discriminator=pick)
        return cs.no_info_wrap_validator_function(
            passthrough_or_union,
            cs.no_info_after_validator_function(build, union),
            serialization=cs.plain_serializer_function_ser_schema(_serialize, info_arg=True),
        )


class Noted(Dated[T]):
    """A single value with its provenance (reference, assumption, basis, note); never dated."""

    allow_dates = False


def _make_entry(d: dict[str, Any]) -> Entry[Any]:
    basis = d.get("basis")
    assumption = d.get("assumption")
    ref = d.get("reference")
    check_provenance(basis, assumption, ref)
    if basis in ASSUMPTION_BASES:
        assumption = True
    return Entry(d.get("from"), d["value"], ref, bool(assumption), basis, d.get("note"))


def check_provenance(
    basis: str | None, assumption: bool | None, reference: Reference | None, at: str = ""
) -> None:
    """Refuse contradictory provenance: documented values need a reference and are not assumptions."""
    if basis in ("DOC", "DERIVED"):
        if assumption:
            raise problem(f"a value with basis {basis} is documented, so it cannot be marked assumption: true", at)
        if reference is None:
            raise problem(f"a value with basis {basis} needs a reference (document, page)", at)
    if basis in ASSUMPTION_BASES and assumption is False:
        raise problem(f"basis {basis} marks an assumption: remove assumption: false", at)


def parse_reference(value: Any) -> Reference:
    """A reference written as text (``"S4"``) or as ``{document, page, section, url}``.

    >>> str(parse_reference({"document": "DVHA scorecard", "page": 3}))
    'DVHA scorecard, p. 3'
    """
    if isinstance(value, Reference):
        return value
    if isinstance(value, str) and value.strip():
        return Reference(value.strip())
    if isinstance(value, dict):
        unknown = sorted(set(map(str, value)) - {"document", "page", "section", "url"})
        if unknown:
            raise problem(f"unknown key {unknown[0]!r} in reference: expected document, page, section, url")
        doc = value.get("document")
        if not isinstance(doc, str) or not doc.strip():
            raise problem("a reference mapping needs a document (text)")
        out = {}
        for k in ("page", "section", "url"):
            v = value.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int))):
                raise problem(f"expected text for reference {k}, got {v!r}")
            out[k] = None if v is None else str(v)
        return Reference(doc.strip(), out["page"], out["section"], out["url"])
    raise problem(f"expected a reference: text, or a mapping with document and optional page, section, url; got {value!r}")


ReferenceValue = Annotated[Reference, PlainValidator(parse_reference), PlainSerializer(lambda r: r.to_data(), when_used="json")]
"""A `Reference` read from text or a mapping."""


def _serialize(d: Dated[Any], info: Any) -> Any:
    ctx = getattr(info, "context", None) or {}
    at = ctx.get("at")
    if at is not None:
        return d.to_data(at)
    if info.mode == "json" or ctx.get("data"):
        return d.to_data()
    return d


def _accepts_list(tp: Any) -> bool:
    import typing

    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _accepts_list(get_args(tp)[0])
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_accepts_list(a) for a in get_args(tp))
    return False


def _accepts_mapping(tp: Any) -> bool:
    import typing

    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _accepts_mapping(get_args(tp)[0])
    if origin is dict:
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_accepts_mapping(a) for a in get_args(tp))
    return isinstance(tp, type) and issubclass(tp, BaseModel)
