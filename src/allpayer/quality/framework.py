"""The quality-measure framework: how a measure is declared, what it reads, what it returns.

A measure is one module under `allpayer.quality.measures` that builds a `Measure` and passes it
to `register`. The declaration states the measure's id (the ``quality.measures[].id`` of the
program terms), whether it counts members or events, whether lower is better, the ages and the
continuous-enrollment rule of its population, the value sets it reads, and whether it depends on
substance-use diagnoses (which Medicare may redact under 42 CFR Part 2).

The engine calls ``measure.compute(ctx, population)`` once per program that lists the measure:

- ``ctx`` is a `MeasureContext`: the program, the measurement period, the paid-through date, the
  program payer's claim lines, diagnoses, labs, observations, eligibility, the attributed
  members and the value sets, all Ibis tables (nothing is computed until written);
- ``population`` holds the attributed members of the program, one row per person: for a member
  measure already restricted to the declared ages (on the last day of the period) and to members
  who meet the declared continuous-enrollment rule over the period; for an event measure every
  attributed member of the year (the measure applies its own rule around each event with
  `continuously_enrolled`).

``compute`` returns one row per member (or per event) of the measure's initial population with
the columns of `RESULT_COLUMNS`; `conform` types them and adds the program, practice and run
columns. The rate of a level is ``numerator / (denominator - exclusions)``: a row counts in the
denominator when ``in_denominator``, as an exclusion when also ``excluded``, and in the
numerator when also ``in_numerator`` and not excluded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import astuple, dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Callable, Collection, Literal, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.backend import drop_temp_table, replace_temp_table
from allpayer.core.claims import DIAGNOSIS_COLUMNS, PROCEDURE_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    from allpayer.quality.valuesets import ValueSets
    from allpayer.terms import ProgramTerms

RATE_TYPE = "decimal(18, 10)"

RESULT_COLUMNS: dict[str, str] = {
    "person_id": "string",
    "event_id": "string",
    "event_date": "date",
    "in_denominator": "boolean",
    "excluded": "boolean",
    "exclusion_reason": "string",
    "in_numerator": "boolean",
    "evidence_source": "string",
    "evidence_id": "string",
    "evidence_date": "date",
    "evidence_value": "string",
}
"""What a measure's ``compute`` returns (missing optional columns are filled with NULL;
``event_id`` is ``''`` for member measures)."""

MEMBER_COLUMNS: dict[str, str] = {
    "program_id": "string",
    "person_id": "string",
    "member_id": "string",
    "birth_date": "date",
    "gender": "string",
    "age": "int64",
    "practice_id": "string",
    "npi": "string",
    "tin": "string",
    "hsa": "string",
}
"""The columns of ``population`` and of `MeasureContext.members`."""

OUTPUT_COLUMNS: tuple[str, ...] = (
    "program_id", "measure_id", "person_id", "event_id", "event_date", "practice_id", "npi", "tin",
    "hsa", "in_denominator", "excluded", "exclusion_reason", "in_numerator", "evidence_source",
    "evidence_id", "evidence_date", "evidence_value", "performance_year",
)
"""The columns of ``quality_measure_results`` (plus ``run_id``)."""


# ------------------------------------------------------------------------------------------------
# the declaration


@dataclass(frozen=True)
class Enrollment:
    """A continuous-enrollment rule: over the window the member may have at most ``max_gaps``
    gaps in coverage, none longer than ``max_gap_days`` days, and (when ``anchor``) must be
    enrolled on the window's last day (``"end"``). For a member measure the window is the
    measurement year, or ``years`` years ending with it; an event measure states its own window
    around each event and calls `continuously_enrolled`."""

    max_gaps: int = 1
    max_gap_days: int = 45
    anchor: Literal["end"] | None = "end"
    years: int = 1
    per_year: bool = False
    """``max_gaps`` and ``max_gap_days`` hold in each calendar year of the window, not over it whole."""
    lead_in_months: int = 0
    """Months before the first year that must be covered with no gap (BCS-E: 1 October to
    31 December two years before the measurement year)."""

    def describe(self) -> str:
        gaps = "no gap" if self.max_gaps == 0 else f"at most {self.max_gaps} gap(s) of up to {self.max_gap_days} days"
        span = "the measurement year" if self.years == 1 else f"the measurement year and the {self.years - 1} before"
        each = " in each year" if self.per_year and self.years > 1 else ""
        lead = f", and the {self.lead_in_months} months before with no gap" if self.lead_in_months else ""
        anchor = ", enrolled on the last day" if self.anchor else ""
        return f"{span}, {gaps}{each}{lead}{anchor}"

    def windows(self, year: int) -> list[tuple[dt.date, dt.date, "Enrollment"]]:
        """The (start, end, rule) windows a member measure's enrollment must pass, all of them,
        for measurement year `year`: the whole span under this rule, or with ``per_year`` each
        calendar year under the gap limits (the anchor on the last), and the lead-in with no gap.

        >>> [(s.isoformat(), e.isoformat(), r.max_gaps) for s, e, r in
        ...  Enrollment(years=2, per_year=True, lead_in_months=3).windows(2024)]
        [('2022-10-01', '2022-12-31', 0), ('2023-01-01', '2023-12-31', 1), ('2024-01-01', '2024-12-31', 1)]
        """
        first = year - self.years + 1
        plain = replace(self, per_year=False, lead_in_months=0, years=1)
        if self.per_year:
            out = [(dt.date(y, 1, 1), dt.date(y, 12, 31), replace(plain, anchor=self.anchor if y == year else None))
                   for y in range(first, year + 1)]
        else:
            out = [(dt.date(first, 1, 1), dt.date(year, 12, 31), plain)]
        if self.lead_in_months:
            if self.lead_in_months > 12:
                raise ValueError("lead_in_months must be at most 12")
            lead_start = dt.date(first - 1, 13 - self.lead_in_months, 1)
            out.insert(0, (lead_start, dt.date(first - 1, 12, 31), Enrollment(max_gaps=0, max_gap_days=0, anchor=None)))
        return out


HEDIS_ENROLLMENT = Enrollment()
"""The usual HEDIS rule: one gap of up to 45 days, enrolled on 31 December."""


@dataclass(frozen=True)
class Measure:
    """One quality measure.

    ``id``: the measure id used in the program terms (``quality.measures[].id``).
    ``kind``: ``"member"`` (one result row per member) or ``"event"`` (one per ED visit or
    discharge). ``inverse``: lower is better. ``ages``: inclusive (min, max) age on the last day of
    the measurement period (member measures; None: any age). ``gender``: restrict to one gender.
    ``enrollment``: the continuous-enrollment rule (None: none); ``enrollment_window``:
    ``"year"`` (the engine applies it over the measurement year before ``compute``) or
    ``"measure"`` (the measure applies it over its own window, e.g. the 12 months before a
    birthday, with `MeasureContext.enrolled`). ``valuesets``: the names of the
    value sets the measure reads (checked at load). ``depends_on_sud``: the measure needs
    substance-use diagnoses, so a program whose claims were redacted under 42 CFR Part 2 gets
    "not reportable: redacted data" instead of a rate. ``label``: how its rate is labelled
    (``observed``; ``unadjusted observed`` for a local version of a risk-standardized measure;
    ``supplied`` for results loaded as supplied). ``compute(ctx, population) -> table``.
    ``lookback_months``: how far back the measure reads claim lines: the service dates of the
    ``lookback_months`` months ending on the last day of the measurement year (24: the year and
    the year before, which the common exclusions read; 27: from 1 October two years before).
    ``history_valuesets``: value sets the measure reads over the member's whole history (any
    service date through the end of the year, e.g. a bilateral mastectomy). The engine stores
    only the claim lines these declarations reach (`claims_window`).
    """

    id: str
    name: str
    kind: Literal["member", "event"]
    compute: Callable[["MeasureContext", ir.Table], ir.Table]
    inverse: bool = False
    ages: tuple[int, int] | None = None
    gender: Literal["male", "female"] | None = None
    enrollment: Enrollment | None = HEDIS_ENROLLMENT
    enrollment_window: Literal["year", "measure"] = "year"
    valuesets: tuple[str, ...] = ()
    depends_on_sud: bool = False
    label: str = "observed"
    description: str = ""
    source: str = ""
    lookback_months: int = 24
    history_valuesets: tuple[str, ...] = ()


REGISTRY: dict[str, Measure] = {}


def register(measure: Measure) -> Measure:
    """Add a measure to the registry (one id, one measure)."""
    if measure.id in REGISTRY and REGISTRY[measure.id] is not measure:
        raise ValueError(f"quality measure {measure.id!r} is registered twice")
    REGISTRY[measure.id] = measure
    return measure


def registry() -> dict[str, Measure]:
    """Every measure module under `allpayer.quality.measures`, imported, and the registry."""
    import importlib
    import pkgutil

    from allpayer.quality import measures

    for mod in pkgutil.iter_modules(measures.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{measures.__name__}.{mod.name}")
    return REGISTRY


# ------------------------------------------------------------------------------------------------
# what a measure reads


Scope = Literal["program", "payer", "run"]
"""What a derived table depends on: the program (its members, enrollment), only the program's
payer (its claims; with the run's labs and observations), or only the run (labs, observations)."""


@dataclass
class Shared:
    """Tables of one quality run that do not depend on the program, built once: each payer's claim
    lines netted as of the paid-through date and its diagnoses, labs and observations,
    and what is derived from them alone (code-list matches, claim summaries, exclusion evidence).
    Programs of one payer read one copy. ``keep(name, table)`` stores a table (a temporary table
    of the run's connection); without it the tables stay expressions."""

    keep: Callable[[str, ir.Table], ir.Table] | None = None
    tables: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    slots: dict = field(default_factory=dict)

    def value(self, key: str, compute: Callable[[], object]) -> object:
        """A scalar computed once (e.g. whether a payer's claims were redacted)."""
        if key not in self.values:
            self.values[key] = compute()
        return self.values[key]

    def get(self, key: str, build: Callable[[], ir.Table], *, group: str | None = None,
            name: str | None = None) -> ir.Table:
        """The table under `key`, built (and stored as `name`, default `key`) the first time;
        `group` names what it belongs to (e.g. one payer) for `drop`."""
        if key not in self.tables:
            t = build()
            name = re.sub(r"[^A-Za-z0-9_]", "_", name or key)
            self.tables[key] = self.keep(name, t) if self.keep is not None else t
            self.groups[key] = group
        return self.tables[key]

    def payer_table(self, payer: str, key: str, build: Callable[[], ir.Table]) -> ir.Table:
        """A table that reads only `payer`'s claims (and the run's labs and observations).

        It is stored under the payer's slot, not its name: the lowest number no payer whose
        tables are held has. Payers whose programs follow one another (each payer's tables
        are dropped after its last program) all use slot 0, so the same measure reads tables of
        the same names for every payer and its query is compiled once
        (`allpayer.backend.compiled_query`)."""
        group = f"payer:{payer}"
        if group not in self.slots:
            self.slots[group] = min(set(range(len(self.slots) + 1)) - set(self.slots.values()))
        return self.get(f"payer_{payer}_{key}", build, group=group, name=f"payer{self.slots[group]}_{key}")

    def drop(self, con, *, key: str | None = None, group: str | None = None) -> None:
        """Forget one table (`key`), a group's tables, or (neither given) all, and drop the stored
        ones from `con`."""
        every = key is None and group is None
        for k in [k for k in self.tables if every or k == key or (group is not None and self.groups.get(k) == group)]:
            t = self.tables.pop(k)
            self.groups.pop(k, None)
            if self.keep is not None:
                drop_stored(con, t)
        if every:
            self.slots.clear()
        elif group is not None:
            self.slots.pop(group, None)


def drop_stored(con, t: ir.Table) -> None:
    """Drop the table `t` reads from `con`, when `t` is a stored table (not an expression)."""
    import ibis.expr.operations as ops

    op = t.op()
    if isinstance(op, ops.DatabaseTable):
        drop_temp_table(con, op.name)


@dataclass
class MeasureContext:
    """The inputs of one program's measures (Ibis tables; see the module docstring).

    ``claims``: net medical claim lines of the program payer's members (`build_context`'s
    ``claim_persons``) paid through ``paid_through``, not denied, with the columns of
    `CLAIM_COLUMNS` (``person_id``, ``claim_id``, ``claim_line_number``, ``claim_type``,
    ``service_date``, ``service_category``, ``hcpcs_code``, ``revenue_center_code``,
    ``place_of_service_code``, ``bill_type_code``,
    ``diagnosis_code_1..25``, ``procedure_code_1..25``, ``admission_date``, ``discharge_date``,
    ``substance_use_redacted`` ...), as far back as the measures declare (`claims_window`:
    their longest ``lookback_months``, and any date for a code of a ``history_valuesets`` set);
    measures choose their own windows within it.
    ``diagnoses``: the same lines long by diagnosis (``person_id, claim_id, claim_line_number,
    service_date, service_category, position, code``; position 1 is principal), only the codes
    that may be in an ICD-10-CM set of ``valuesets`` (`diagnoses_long`): read them through a set.
    ``labs``: lab results with a numeric value (``person_id, lab_result_id, code`` (LOINC),
    ``value`` DECIMAL, ``result_text`` (as delivered), ``units``, ``result_date``, ``source`` ('lab_result' or 'supplemental')).
    ``observations``: (``person_id, observation_id, encounter_id, observation_date, code, value,
    units, source``). ``pharmacy``: net pharmacy claim lines of the payer, or None.
    ``eligibility``: the program payer's enrollment spans. ``member_months``: the program's
    member months. ``members``: the program's attributed members of the year (`MEMBER_COLUMNS`).
    ``redacted``: True when any of the payer's claim lines read in the year (those of the members
    of its programs) carries ``substance_use_redacted``.
    """

    program: "ProgramTerms"
    year: int
    paid_through: dt.date
    claims: ir.Table
    diagnoses: ir.Table
    labs: ir.Table
    observations: ir.Table
    pharmacy: ir.Table | None
    eligibility: ir.Table
    member_months: ir.Table
    members: ir.Table
    valuesets: "ValueSets"
    redacted: bool = False
    extra: dict = field(default_factory=dict)
    keep: Callable[[str, ir.Table], ir.Table] | None = None
    shared: "Shared | None" = None
    _cache: dict = field(default_factory=dict, repr=False)

    def store(self, name: str, t: ir.Table, *, scope: "Scope" = "program") -> ir.Table:
        """`t` computed once (a temporary table when the engine runs the measure; as is in tests).
        Use it for an intermediate table a measure reads several times; `name` must be unique
        within the program (prefix it with the measure id). ``scope="payer"`` declares that `t`
        reads only the payer's claims and the run's labs and observations (not the program's
        members or enrollment), so programs of one payer share one copy."""
        if scope != "program" and self.shared is not None:
            return self._shared_table(name, lambda: t, scope)
        return self.keep(name, t) if self.keep is not None else t

    def _shared_table(self, key: str, build: Callable[[], ir.Table], scope: "Scope") -> ir.Table:
        if scope == "payer":
            return self.shared.payer_table(self.program.payer, key, build)
        return self.shared.get(key, build)

    def _kept(self, key: str, build: Callable[[], ir.Table], *, scope: "Scope" = "program") -> ir.Table:
        """A derived table computed once per context (stored with ``keep`` when given), or once per
        payer or run (`Shared`) when `scope` says it does not depend on the program."""
        if scope != "program" and self.shared is not None:
            return self._shared_table(key, build, scope)
        if key not in self._cache:
            t = build()
            self._cache[key] = self.keep(key, t) if self.keep is not None else t
        return self._cache[key]

    @property
    def period_start(self) -> dt.date:
        return dt.date(self.year, 1, 1)

    @property
    def period_end(self) -> dt.date:
        return dt.date(self.year, 12, 31)

    # value-set helpers ------------------------------------------------------------------------

    def codes(self, name: str) -> ir.Table:
        """The value set ``name`` as a table (``code_system, code, match``)."""
        return self.valuesets.table(name)

    def matcher(self, name: str, systems: Sequence[str] | None = None) -> Callable[[ir.StringValue], ir.BooleanValue]:
        """A function telling whether a code column is in value set ``name`` (codes of the given
        code systems; exact codes and prefixes)."""
        return self.valuesets.matcher(name, systems)

    def dx_in(self, name: str, *, principal: bool = False) -> ir.Table:
        """Diagnosis rows whose code is in value set ``name`` (ICD-10-CM).

        The set is matched against the payer's distinct codes (`diagnosis_codes`) and the rows are
        a semi-join of ``diagnoses`` to the matching codes, left unstored: a reader filters them
        further (a window of dates) and keeps a few columns, so a stored copy of every matching
        row costs more than the scans (at 650,000 members, the Medicare hypertension rows took
        2.2 s to store)."""
        d = self.diagnoses
        look = code_lookup(self.diagnosis_codes(), "code", {"_hit": self.valuesets.matcher(name, ("icd10cm",))})
        d = d.semi_join(look, d.code == look.code)
        return d.filter(d.position == 1) if principal else d

    def diagnosis_codes(self) -> ir.Table:
        """The distinct codes of ``diagnoses`` (`diagnosis_codes`), stored once per payer: value
        sets are matched against them, not against every diagnosis row."""
        return self._kept("diagnosis_codes", lambda: diagnosis_codes(self.diagnoses), scope="payer")

    def lines_in(self, name: str) -> ir.Table:
        """Claim lines with a HCPCS/CPT, revenue, place-of-service, bill-type or MS-DRG code in value
        set ``name``, or (for ICD-10-CM sets) any diagnosis in it.

        A set of `line_valuesets` reads the payer's (line, value set) table, computed once per
        payer: the lines are a semi-join of the claims to it, left unstored (a stored copy of
        every column of the lines would cost more than the few columns its readers scan). Another
        set is matched on its own, once per payer."""
        names = line_valuesets(self.valuesets)
        if name in names:
            return self._lines_of(self._kept("line_valuesets", lambda: self._line_value_sets(names), scope="payer"),
                                  name)
        return self._kept(f"lines_{name}", lambda: self._lines_of(self._line_value_sets((name,)), name), scope="payer")

    def _line_value_sets(self, names: Sequence[str]) -> ir.Table:
        return line_value_sets(self.claims, self.diagnoses, self.diagnosis_codes(), self.valuesets, names)

    def _lines_of(self, sets: ir.Table, name: str) -> ir.Table:
        s = sets.filter(sets.value_set == name)
        t = self.claims
        return t.semi_join(s, [t.claim_id == s.claim_id, t.claim_line_number == s.claim_line_number])

    def labs_in(self, name: str) -> ir.Table:
        """Lab results whose LOINC is in value set ``name``."""
        return self._kept(f"labs_{name}",
                          lambda: self.labs.filter(self.valuesets.matcher(name, ("loinc",))(self.labs.code)),
                          scope="run")

    def observations_in(self, name: str) -> ir.Table:
        """Observations whose LOINC is in value set ``name``."""
        o = self.observations
        return self._kept(f"obs_{name}", lambda: o.filter(self.valuesets.matcher(name, ("loinc",))(o.code)),
                          scope="run")

    def in_period(self, t: ir.Table, column: str, *, years: int = 1) -> ir.Table:
        """Rows whose date ``column`` falls in the measurement year (or ``years`` years ending
        with it)."""
        start = dt.date(self.year - years + 1, 1, 1)
        return t.filter((t[column] >= start) & (t[column] <= self.period_end))

    def enrolled(self, t: ir.Table, start: str | dt.date, end: str | dt.date, rule: Enrollment) -> ir.Table:
        """`continuously_enrolled` against this program's enrollment spans."""
        return continuously_enrolled(t, self.eligibility, start, end, rule)


# ------------------------------------------------------------------------------------------------
# helpers


def code_lookup(codes: ir.Table, column: str, tests: dict[str, Callable[[ir.StringValue], ir.Value]]) -> ir.Table:
    """`codes` (one row per distinct code) with one column per test of ``codes[column]`` (a
    value-set matcher, or any function of a code), keeping the codes where a boolean test holds
    (all of them when a test is not boolean). Matching the few thousand distinct codes (stored
    by `MeasureContext.diagnosis_codes`) and joining the rows to them costs much less than testing
    every row against every code and prefix of a set."""
    u = codes.mutate(**{k: f(codes[column]) for k, f in tests.items()})
    flags = [u[k].fill_null(False) for k in tests if u[k].type().is_boolean()]
    if len(flags) == len(tests):
        u = u.mutate(**{k: u[k].fill_null(False) for k in tests})
        u = u.filter(ibis.or_(*flags))
    return u


def diagnosis_codes(diagnoses: ir.Table) -> ir.Table:
    """The distinct diagnosis codes of a long diagnosis table: ``code`` (as stored) and
    ``normalized`` (`events.normalize_code`)."""
    from allpayer.quality.events import normalize_code

    u = diagnoses.select("code").distinct()
    u = u.filter(u.code.notnull())
    return u.mutate(normalized=normalize_code(u.code))


def age_on(birth_date: ir.DateValue, on: ir.DateValue | dt.date) -> ir.IntegerValue:
    """Whole years of age on a date (birthdays count on the day)."""
    on = ibis.literal(on) if isinstance(on, dt.date) else on
    years = on.year() - birth_date.year()
    before = (on.month() < birth_date.month()) | (
        (on.month() == birth_date.month()) & (on.day() < birth_date.day())
    )
    return (years - ibis.ifelse(before, 1, 0)).cast("int64")


def continuously_enrolled(
    t: ir.Table,
    eligibility: ir.Table,
    start: str | dt.date,
    end: str | dt.date,
    rule: Enrollment,
    *,
    key: Sequence[str] | None = None,
    name: str = "enrolled",
) -> ir.Table:
    """`t` with a boolean column ``name``: whether the person's enrollment spans cover the window
    [start, end] under `rule`.

    ``start``/``end`` are dates or names of date columns of `t` (a window per row, e.g. around an
    event). ``eligibility`` needs ``person_id``, ``enrollment_start_date``,
    ``enrollment_end_date``. Spans are clipped to the window and merged where they overlap or
    touch; a gap is a run of uncovered days inside the window (before the first span, between
    spans, after the last). The row passes when the number of gaps is at most ``rule.max_gaps``,
    no gap is longer than ``rule.max_gap_days`` and, with ``rule.anchor == "end"``, the last day
    is covered. A person with no span in the window fails. `key` names the columns that identify
    a row of `t` (default: every column).
    """
    key = list(key or t.columns)
    tt = t.mutate(
        _ws=ibis.literal(start) if isinstance(start, dt.date) else t[start],
        _we=ibis.literal(end) if isinstance(end, dt.date) else t[end],
    )
    w = tt.select(*key, "_ws", "_we").distinct()
    e = eligibility.select(
        _pid=eligibility.person_id, _s=eligibility.enrollment_start_date, _e=eligibility.enrollment_end_date
    )
    j = w.join(e, [w.person_id == e._pid, e._s <= w._we, e._e >= w._ws])
    j = j.mutate(_cs=ibis.greatest(j._s, j._ws), _ce=ibis.least(j._e, j._we))
    grp = [j[k] for k in key]
    order = [j._cs, j._ce]
    prev_end = j._ce.max().over(ibis.window(group_by=grp, order_by=order, rows=(None, -1)))
    # Leading gap: from the window start to the first span; inner gaps: after the furthest end so far.
    gap = ibis.ifelse(
        prev_end.isnull(),
        j._cs.delta(j._ws, unit="day"),
        ibis.greatest(j._cs.delta(prev_end, unit="day") - 1, 0),
    )
    g = j.mutate(_gap=gap)
    per = g.group_by(key).aggregate(
        _gaps=(g._gap > 0).sum(),
        _longest=g._gap.max(),
        _last=g._ce.max(),
        _we1=g._we.max(),
    )
    trailing = per._we1.delta(per._last, unit="day")
    per = per.mutate(
        _gaps=per._gaps + ibis.ifelse(trailing > 0, 1, 0),
        _longest=ibis.greatest(per._longest, trailing),
    )
    ok = (per._gaps <= rule.max_gaps) & ((per._gaps == 0) | (per._longest <= rule.max_gap_days))
    if rule.anchor == "end":
        ok = ok & (trailing == 0)
    per = per.select(*key, **{name: ok})
    out = t.left_join(per, key)
    out = out.select(*t.columns, **{name: out[name].fill_null(False)})
    return out


def conform(results: ir.Table, measure: Measure, population: ir.Table, program_id: str, year: int) -> ir.Table:
    """A measure's result rows with the types of `RESULT_COLUMNS`, the program, measure, practice
    (from the attributed members) and year: the rows of ``quality_measure_results``.

    ``in_numerator`` and ``excluded`` are forced false outside the denominator, and
    ``in_numerator`` is forced false for an excluded row, so the counts always reconcile.
    """
    cols = {}
    for c, typ in RESULT_COLUMNS.items():
        if c in results.columns:
            cols[c] = results[c].cast(typ)
        elif c == "event_id":
            cols[c] = ibis.literal("")
        else:
            cols[c] = ibis.null(typ)
    r = results.select(**cols)
    den = r.in_denominator.fill_null(False)
    exc = den & r.excluded.fill_null(False)
    num = den & ~exc & r.in_numerator.fill_null(False)
    r = r.mutate(in_denominator=den, excluded=exc, in_numerator=num)
    m = population.select(
        _pid=population.person_id, practice_id=population.practice_id, npi=population.npi,
        tin=population.tin, hsa=population.hsa,
    )
    j = r.left_join(m, r.person_id == m._pid)
    return j.select(
        program_id=ibis.literal(program_id),
        measure_id=ibis.literal(measure.id),
        person_id=j.person_id,
        event_id=j.event_id.fill_null(""),
        event_date=j.event_date,
        practice_id=j.practice_id,
        npi=j.npi,
        tin=j.tin,
        hsa=j.hsa,
        in_denominator=j.in_denominator,
        excluded=j.excluded,
        exclusion_reason=j.exclusion_reason,
        in_numerator=j.in_numerator,
        evidence_source=j.evidence_source,
        evidence_id=j.evidence_id,
        evidence_date=j.evidence_date,
        evidence_value=j.evidence_value,
        performance_year=ibis.literal(year, "int32"),
    )


LEVELS = ("aco", "program", "practice", "hsa")


def rates(
    results: ir.Table,
    *,
    inverse: Callable[[str], bool] | dict[str, bool],
    min_denominator: dict[str, int] | int = 0,
    certified: dict[str, bool] | None = None,
    labels: dict[str, str] | None = None,
    not_reportable: dict[tuple[str, str], str] | None = None,
    aco_id: str = "aco",
) -> ir.Table:
    """Rates with counts by level from ``quality_measure_results`` rows.

    Levels: ``program`` (level_id = program_id), ``practice``, ``hsa`` and ``aco`` (all programs
    together, program_id ``'ALL'``, level_id `aco_id`). ``rate = numerator / (denominator -
    exclusions)`` as DECIMAL(18,10) (NULL when nothing is left). ``small_denominator`` is true
    when ``denominator - exclusions`` is below the program's minimum (`min_denominator`, by
    program id). ``not_reportable`` maps (program_id, measure_id) to a reason: the rate is NULL
    and the reason is the row's ``note`` (the aco level of such a measure is not reportable either).
    """
    r = results.mutate(
        _d=results.in_denominator.cast("int64"),
        _x=(results.in_denominator & results.excluded).cast("int64"),
        _n=(results.in_denominator & ~results.excluded & results.in_numerator).cast("int64"),
    )
    parts = []
    for level in LEVELS:
        if level == "aco":
            g = r.mutate(_prog=ibis.literal("ALL"), _lid=ibis.literal(aco_id))
        elif level == "program":
            g = r.mutate(_prog=r.program_id, _lid=r.program_id)
        else:
            col = "practice_id" if level == "practice" else "hsa"
            g = r.mutate(_prog=r.program_id, _lid=r[col].fill_null("(none)"))
        parts.append(
            g.group_by(program_id=g._prog, measure_id=g.measure_id, level_id=g._lid,
                       performance_year=g.performance_year)
            .aggregate(denominator=g._d.sum(), exclusions=g._x.sum(), numerator=g._n.sum())
            .mutate(level=ibis.literal(level))
        )
    out = ibis.union(*parts, distinct=False)
    eligible = out.denominator - out.exclusions
    rate = ibis.ifelse(eligible > 0, exact_ratio(out.numerator, eligible), ibis.null(RATE_TYPE))
    inv = inverse if isinstance(inverse, dict) else None
    inv_expr = _lookup(out.measure_id, inv, False) if inv is not None else ibis.literal(False)
    if isinstance(min_denominator, dict):
        min_d = _lookup(out.program_id, {k: int(v) for k, v in min_denominator.items()}, 0, "int64")
        if min_denominator:
            min_d = ibis.ifelse(out.program_id == "ALL", max(min_denominator.values()), min_d)
    else:
        min_d = ibis.literal(int(min_denominator))
    cert = _lookup(out.measure_id, certified or {}, False)
    label = _lookup(out.measure_id, labels or {}, "observed", "string")
    nr = not_reportable or {}
    note = ibis.null("string")
    blocked = ibis.literal(False)
    for (prog, mid), reason in nr.items():
        hit = (out.measure_id == mid) & ((out.program_id == prog) | (out.program_id == "ALL"))
        note = ibis.ifelse(hit, ibis.literal(reason), note)
        blocked = blocked | hit
    return out.select(
        "program_id", "measure_id", "level", "level_id", "performance_year",
        denominator=out.denominator.cast("int64"),
        exclusions=out.exclusions.cast("int64"),
        numerator=out.numerator.cast("int64"),
        rate=ibis.ifelse(blocked, ibis.null(RATE_TYPE), rate),
        inverse=inv_expr,
        small_denominator=eligible < min_d,
        certified=cert,
        label=label,
        reportable=~blocked,
        note=note,
    )


RATE_PLACES = 10


def exact_ratio(numerator: ir.IntegerValue, denominator: ir.IntegerValue) -> ir.Value:
    """``numerator / denominator`` rounded half-up to 10 places as DECIMAL(18,10), in integer
    arithmetic (a DECIMAL division may pass through DOUBLE on some backends). Needs
    ``denominator > 0`` and ``0 <= numerator <= 10**8``."""
    scale = 10**RATE_PLACES
    n, d = numerator.cast("int64"), denominator.cast("int64")
    scaled = (n * (2 * scale) + d) // (2 * d)
    return (scaled.cast("decimal(18, 0)") * ibis.literal(Decimal(1).scaleb(-RATE_PLACES), RATE_TYPE)).cast(RATE_TYPE)


def _lookup(col: ir.Value, mapping: dict, default, typ: str = "boolean") -> ir.Value:
    expr = ibis.literal(default, typ)
    for k, v in mapping.items():
        expr = ibis.ifelse(col == k, ibis.literal(v, typ), expr)
    return expr


def exact_rate(numerator: int, denominator: int, exclusions: int = 0) -> Decimal | None:
    """The rate as an exact Decimal (the figure tests compare with), or None when empty."""
    eligible = denominator - exclusions
    if eligible <= 0:
        return None
    return Decimal(numerator) / Decimal(eligible)


# ------------------------------------------------------------------------------------------------
# building the context from loaded tables

CLAIM_COLUMNS: tuple[str, ...] = (
    "person_id", "member_id", "payer", "plan", "claim_id", "claim_line_number", "claim_type", "claim_status",
    "claim_start_date", "claim_end_date", "claim_line_end_date", "admission_date", "discharge_date",
    "admit_type_code", "discharge_disposition_code", "place_of_service_code", "bill_type_code", "drg_code",
    "revenue_center_code", "hcpcs_code", "substance_use_redacted", *DIAGNOSIS_COLUMNS, *PROCEDURE_COLUMNS,
    "service_date", "service_category", "allowed_cents",
)
"""The columns of `MeasureContext.claims`: the input-contract columns some measure, the events or
the care gaps read (those the input has), and ``service_date``, ``service_category`` and
``allowed_cents`` from `allpayer.core.claims.medical_claim_lines`. The quality stage stores only
these; a measure that reads another column adds it here."""

NETTING_COLUMNS: tuple[str, ...] = (
    "adjustment_sequence", "paid_date", "paid_amount", "allowed_amount", "claim_line_start_date",
)
"""Input columns read to net the claim lines and date them, beyond `CLAIM_COLUMNS`."""


def _lookback_start(year: int, months: int) -> dt.date:
    """The first day of the `months` months ending on 31 December of `year`."""
    y, m = divmod(year * 12 + 12 - months, 12)
    return dt.date(y, m + 1, 1)


def claims_window(year: int, measures: Sequence[Measure] | None = None) -> tuple[dt.date, tuple[str, ...]]:
    """What the measures of `year` read of the claim lines: the earliest service date any of them
    looks back to (their longest ``lookback_months``) and the value sets read over the whole
    history (their ``history_valuesets``, and the care gaps' `care_gaps.HISTORY_VALUESETS`).
    `measures`: default every registered measure."""
    from allpayer.quality.care_gaps import HISTORY_VALUESETS

    ms = list(measures) if measures is not None else list(registry().values())
    months = max([12, *(m.lookback_months for m in ms)])
    history = dict.fromkeys(v for m in ms for v in m.history_valuesets)
    history.update(dict.fromkeys(HISTORY_VALUESETS))
    return _lookback_start(year, months), tuple(history)


LINE_CODE_COLUMNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("hcpcs", "cpt"), "hcpcs_code"), (("revenue",), "revenue_center_code"), (("pos",), "place_of_service_code"),
    (("bill_type",), "bill_type_code"), (("drg",), "drg_code"),
)
"""The code columns of a claim line's own codes and the code systems a value set tests on each."""


def line_code_tests(vs: "ValueSets", name: str, t: ir.Table) -> list[ir.BooleanValue]:
    """The tests of value set `name` on a claim line's own codes (HCPCS/CPT, revenue, place of
    service, bill type, MS-DRG), one per code system the set has; diagnoses are tested by the caller."""
    systems = vs.systems(name)
    return [vs.matcher(name, code_systems)(t[column].fill_null(""))
            for code_systems, column in LINE_CODE_COLUMNS if systems & set(code_systems) and column in t.columns]


def line_valuesets(vs: "ValueSets") -> tuple[str, ...]:
    """The value sets `MeasureContext.lines_in` reads: those of the registered member measures
    and of the care gaps (`care_gaps.HISTORY_VALUESETS`) that test a line's codes or diagnoses.
    The event measures flag their claims themselves (`events.code_flag`)."""
    from allpayer.quality.care_gaps import HISTORY_VALUESETS

    line_systems = {s for systems, _ in LINE_CODE_COLUMNS for s in systems} | {"icd10cm"}
    names = [n for m in registry().values() if m.kind == "member" for n in m.valuesets]
    return tuple(n for n in dict.fromkeys([*names, *HISTORY_VALUESETS]) if n in vs and vs.systems(n) & line_systems)


def _code_sets(codes: ir.Table, tests: dict[str, Callable[[ir.StringValue], ir.BooleanValue]]) -> ir.Table:
    """``_code, value_set``: each code of `codes` (one row per distinct ``_code``) with each set
    whose test (a value-set matcher) it passes, in one pass over the codes."""
    hits = ibis.array([ibis.ifelse(f(codes._code), ibis.literal(n), ibis.null("string")) for n, f in tests.items()])
    u = codes.select("_code", value_set=hits.unnest())
    return u.filter(u.value_set.notnull())


def line_value_sets(lines: ir.Table, diagnoses: ir.Table, diagnosis_codes: ir.Table, vs: "ValueSets",
                    names: Sequence[str]) -> ir.Table:
    """``claim_id, claim_line_number, value_set``: each claim line with each of the value sets
    `names` it is in (`line_in_set`: a code of its own, or for ICD-10-CM sets any diagnosis).
    The sets are matched against the distinct codes of each column (and `diagnosis_codes`, the
    distinct codes of `diagnoses`, the lines long by diagnosis), and the lines joined to the
    matches once, instead of scanning the lines and their diagnoses once per set.

    A pair appears once per code that puts the line in the set (a line with two diabetes
    diagnoses is listed twice for the diabetes set). Its one reader, `MeasureContext.lines_in`,
    semi-joins the lines to it, so repeats change nothing; removing them took a hash of every
    pair (at 650,000 members, 15 million Medicare pairs, 14 million distinct: 9.7 s in a quality
    run, against 3.3 s without)."""
    parts = []
    for code_systems, column in LINE_CODE_COLUMNS:
        tests = {n: vs.matcher(n, code_systems) for n in names if vs.systems(n) & set(code_systems)}
        if not tests or column not in lines.columns:
            continue
        codes = lines.select(_code=lines[column]).distinct()
        hits = _code_sets(codes.filter(codes._code.notnull()), tests)
        j = lines.join(hits, lines[column] == hits._code)
        parts.append(j.select("claim_id", "claim_line_number", "value_set"))
    tests = {n: vs.matcher(n, ("icd10cm",)) for n in names if "icd10cm" in vs.systems(n)}
    if tests:
        hits = _code_sets(diagnosis_codes.select(_code=diagnosis_codes.code), tests)
        j = diagnoses.join(hits, diagnoses.code == hits._code)
        parts.append(j.select("claim_id", "claim_line_number", "value_set"))
    if not parts:
        return lines.select("claim_id", "claim_line_number", value_set=ibis.literal("", "string")).limit(0)
    return ibis.union(*parts, distinct=False)


def line_in_set(valuesets: "ValueSets", name: str, t: ir.Table) -> ir.BooleanValue:
    """Whether a claim line of `t` has a code of value set `name`: the test of
    `MeasureContext.lines_in` on one wide line (HCPCS/CPT, revenue, place of service, bill type,
    MS-DRG, and any of its diagnoses for ICD-10-CM sets)."""
    vs = valuesets
    tests = line_code_tests(vs, name, t)
    if "icd10cm" in vs.systems(name):
        dx = vs.matcher(name, ("icd10cm",))
        tests.extend(dx(t[c]).fill_null(False) for c in DIAGNOSIS_COLUMNS if c in t.columns)
    return ibis.or_(*tests) if tests else ibis.literal(False)


def with_columns(lines: ir.Table, columns: Collection[str], types: ibis.Schema) -> ir.Table:
    """`lines` with `columns` (left out by `quality_claim_lines`) as NULLs of their `types`, every
    column in the order of `CLAIM_COLUMNS`: the table the measures would read had they been kept."""
    if not columns:
        return lines
    order = [c for c in CLAIM_COLUMNS if c in lines.columns or c in columns]
    return lines.select(*[lines[c] if c in lines.columns else ibis.null(types[c]).name(c) for c in order])


def quality_claim_lines(
    medical_claim: ir.Table,
    paid_through: dt.date,
    *,
    start: dt.date | None = None,
    history: Sequence[str] = (),
    valuesets: "ValueSets | None" = None,
    leave_out: Collection[str] = (),
    sums: ir.Table | None = None,
) -> ir.Table:
    """The claim lines the measures read, in one pass: the `CLAIM_COLUMNS` of the medical claims
    netted as of `paid_through` (`core.claims.medical_claim_lines`), not denied, of a claim that
    ends (or a line served) on or after `start`, or before it with a code of a `history` value set.
    Every payer; `start` None keeps every date. `leave_out`: columns not read (code columns empty
    in every row: `core.claims.empty_columns`); `with_columns` puts them back as NULLs. `sums`:
    `core.claims.adjusted_line_sums` of the same claims as of `paid_through`, when the caller has
    them (the result is the same)."""
    from allpayer.core.claims import medical_claim_lines

    wanted = (set(CLAIM_COLUMNS) | set(NETTING_COLUMNS)) - set(leave_out)
    raw = medical_claim.select(*[c for c in medical_claim.columns if c in wanted])
    lines = medical_claim_lines(raw, paid_through, sums=sums)
    if "claim_status" in lines.columns:
        lines = lines.filter(lines.claim_status.fill_null("paid") != "denied")
    if start is not None:
        keep = lines.service_date >= start
        if "claim_end_date" in lines.columns:
            keep = keep | (lines.claim_end_date >= start).fill_null(False)
        for name in history:
            if valuesets is not None and name in valuesets:
                keep = keep | line_in_set(valuesets, name, lines)
        lines = lines.filter(keep)
    return lines.select(*[c for c in CLAIM_COLUMNS if c in lines.columns])


SUPPLEMENTAL_SOURCE = "supplemental"
"""``labs.source`` of a supplemental result: a ``lab_result`` row whose ``data_source`` starts
with ``supplemental`` (e.g. ``supplemental:practice-ehr``), or a row of ``supplemental_lab_result``."""


def _numeric(text: ir.StringValue) -> ir.Value:
    v = text.strip()
    ok = v.re_search(r"^[+-]?([0-9]{1,13}(\.[0-9]{0,4})?|\.[0-9]{1,4})$")
    return ibis.ifelse(ok, v.try_cast("decimal(18, 4)"), ibis.null("decimal(18, 4)"))


VOID_LAB_STATUSES = ("cancelled", "canceled", "entered-in-error", "entered in error")
"""Lab ``status`` values (FHIR R4 observation-status and their spellings in payer feeds) of a
result that does not exist. Preliminary, final, amended and corrected results count."""


def lab_values(lab_result: ir.Table) -> ir.Table:
    """Lab results with a numeric value: ``person_id, lab_result_id, code, value, result_text,
    units, result_date, source``. The code is the normalized LOINC, else the source code; a result that
    is not a number is left out here (the loader quarantines it), and so is a result whose ``status``
    says it does not exist (`VOID_LAB_STATUSES`: the test was cancelled, or the result was entered in
    error)."""
    t = lab_result
    if "status" in t.columns:
        t = t.filter(~t.status.strip().lower().isin(VOID_LAB_STATUSES).fill_null(False))
    code = t.normalized_code.fill_null(t.source_code) if "normalized_code" in t.columns else t.source_code
    units = t.normalized_units.fill_null(t.source_units) if "normalized_units" in t.columns else t.source_units
    ds = t.data_source.fill_null("").lower() if "data_source" in t.columns else ibis.literal("")
    out = t.select(
        person_id=t.person_id,
        lab_result_id=t.lab_result_id,
        code=code,
        value=_numeric(t.result.cast("string")),
        result_text=t.result.cast("string").strip(),
        units=units,
        result_date=t.result_date,
        source=ibis.ifelse(ds.startswith(SUPPLEMENTAL_SOURCE), SUPPLEMENTAL_SOURCE, "lab_result"),
    )
    return out.filter(out.value.notnull())


def observation_values(observation: ir.Table, claims: ir.Table | None = None) -> ir.Table:
    """Observations with a numeric value: ``person_id, observation_id, encounter_id,
    observation_date, code, value, units, setting, source``. ``setting`` is ``inpatient`` or
    ``ed`` when the observation's encounter is a claim of that service category (from `claims`),
    else NULL."""
    t = observation
    code = t.normalized_code.fill_null(t.source_code) if "normalized_code" in t.columns else t.source_code
    units = t.normalized_units.fill_null(t.source_units) if "normalized_units" in t.columns else t.source_units
    out = t.select(
        person_id=t.person_id,
        observation_id=t.observation_id,
        encounter_id=t.encounter_id,
        observation_date=t.observation_date,
        code=code,
        value=_numeric(t.result.cast("string")),
        units=units,
        source=ibis.literal("observation"),
    )
    out = out.filter(out.value.notnull())
    if claims is None:
        return out.mutate(setting=ibis.null("string"))
    # Tested after grouping by claim, not as a filter of the rows: DuckDB moves a filter on the
    # rows below the join that chose them (`build_observations` reads only the encounters' claims)
    # and classified every claim line of the delivery.
    by_claim = claims.group_by(_cid=claims.claim_id).aggregate(
        _inpatient=(claims.service_category == "inpatient").any(),
        _ed=(claims.service_category == "ed").any(),
    )
    acute = by_claim.filter(by_claim._inpatient | by_claim._ed)
    acute = acute.select("_cid", _setting=ibis.ifelse(acute._inpatient, "inpatient", "ed"))
    j = out.left_join(acute, out.encounter_id == acute._cid)
    return j.select(*out.columns, setting=j._setting)


DIAGNOSIS_STEM = 3
"""The longest code stem `diagnosis_stems` keeps (an ICD-10-CM category: letter, two digits)."""


def diagnosis_stems(vs: "ValueSets") -> dict[int, list[str]]:
    """The stems of every ICD-10-CM code and prefix of `vs`'s sets, by length: the first
    `DIAGNOSIS_STEM` characters of each (the whole of a shorter one), normalized as the matchers
    compare codes (upper case, no dots). A diagnosis whose code starts with none of them is in no
    ICD-10-CM set of `vs`."""
    stems: dict[int, set[str]] = {}
    for name in vs.names():
        for c in vs.get(name):
            if c.code_system != "icd10cm":
                continue
            code = c.code.upper().replace(".", "").strip()
            if code:
                stem = code[:DIAGNOSIS_STEM]
                stems.setdefault(len(stem), set()).add(stem)
    return {k: sorted(v) for k, v in sorted(stems.items())}


def diagnoses_long(claims: ir.Table, *, as_loaded: bool = False, valuesets: "ValueSets | None" = None) -> ir.Table:
    """Claim lines long by diagnosis position (1 = principal): ``person_id, claim_id,
    claim_line_number, service_date, service_category, position, code`` (upper case without dots;
    taken as they are with `as_loaded`: the loader stores them so).

    With `valuesets`, only the diagnoses that may be in one of its ICD-10-CM sets are kept: those
    whose code starts with a stem of a code or prefix of those sets (`diagnosis_stems`). Every
    reader of the quality stage's diagnoses matches them against such sets (`MeasureContext.dx_in`,
    `line_value_sets`, `events.claim_dx_flags`), so the others were stored and scanned for nothing
    (at 650,000 members about half of the synthetic population's diagnosis rows; more of a real
    one's, whose codes are more varied)."""
    # One pass over the lines, each unnested into its (position, code) pairs: a UNION of one
    # projection per position reads the lines once per position and, stored, is written in the
    # order of its branches (at 650,000 members about a third slower).
    pairs = [
        ibis.struct({"position": ibis.literal(i, "int32"),
                     "code": claims[c] if as_loaded else claims[c].upper().replace(".", "")})
        for i, c in enumerate(DIAGNOSIS_COLUMNS, start=1) if c in claims.columns
    ]
    out = claims.select("person_id", "claim_id", "claim_line_number", "service_date", "service_category",
                        _dx=ibis.array(pairs).unnest())
    out = out.select("person_id", "claim_id", "claim_line_number", "service_date", "service_category",
                     position=out._dx["position"], code=out._dx["code"])
    keep = out.code.notnull()
    if valuesets is not None:
        # A superset of the codes any ICD-10-CM set holds, tested by IN lists of stems (which
        # DuckDB runs as a join against each list) instead of every code and prefix of every set.
        from allpayer.quality.events import normalize_code

        code = out.code if as_loaded else normalize_code(out.code)
        stems = diagnosis_stems(valuesets)
        keep = keep & ibis.or_(ibis.literal(False), *[code.substr(0, k).isin(v) for k, v in stems.items()])
    return out.filter(keep)


def build_context(
    program: "ProgramTerms",
    year: int,
    paid_through: dt.date,
    *,
    medical_claim: ir.Table,
    eligibility: ir.Table,
    attribution: ir.Table,
    member_months: ir.Table,
    valuesets: "ValueSets",
    lab_result: ir.Table | None = None,
    observation: ir.Table | None = None,
    pharmacy_claim: ir.Table | None = None,
    supplemental: ir.Table | None = None,
    extra: dict | None = None,
    keep: Callable[[str, ir.Table], ir.Table] | None = None,
    shared: Shared | None = None,
    claim_persons: ir.Table | None = None,
) -> MeasureContext:
    """The `MeasureContext` of one program from loaded tables (input contract columns;
    ``attribution`` and ``member_months`` as written by `allpayer run`).

    Claims are netted as of `paid_through` and restricted to the program payer's lines that are not
    denied, the `CLAIM_COLUMNS` and the service dates of `claims_window` (`quality_claim_lines`).
    Labs, observations and supplemental results are the person's from any source. ``members`` are
    the program's members attributed in any month of `year`, with the practice of their latest
    attributed month.

    `keep(name, table) -> table` is applied to the program tables the measures read (eligibility,
    members) as they are built, and `shared` (a `Shared`) holds what does not depend on the
    program: `run_quality` stores both as temporary tables, so that each payer's claims are netted
    and stored once per run (a table of its lines) and its diagnoses and what is derived from its
    lines alone are built once, whichever programs read them. The pharmacy lines
    and the program's member months are left as expressions (no shipped measure reads them).

    Only the claim lines of `claim_persons` (a table with ``person_id``) are read: every measure
    and care gap is of the program's members, so the lines of the payer's other enrollees would
    be netted, stored and classified for nothing. Default: the program's members. With `shared`,
    the payer's lines serve each of its programs, so `claim_persons` must be given and cover the
    members of all of them (`run_quality` passes the persons attributed in any of the payer's
    programs in `year`).
    """
    from allpayer.core.claims import (
        OPTIONAL_CODE_COLUMNS,
        adjusted_line_sums,
        claims_as_of,
        empty_columns,
        of_persons,
        pharmacy_claim_lines,
    )

    keep_given = keep is not None
    keep = keep or (lambda name, t: t)
    sh = shared if shared is not None else Shared(keep=None)
    payer = program.payer
    if shared is not None and claim_persons is None:
        raise ValueError("build_context: with shared payer tables, claim_persons must name the members of "
                         "every program that shares them")
    mm = member_months.filter((member_months.program_id == program.program_id)
                              & (member_months.performance_year == year))
    members = keep("members", attributed_members(attribution, mm, program.program_id, year))
    persons = claim_persons if claim_persons is not None else members

    # Code columns empty in every row (most secondary diagnoses and procedures of many deliveries)
    # are neither read nor stored with the lines; the measures see them as NULL columns.
    empty = sh.value("claims_empty_columns", lambda: empty_columns(medical_claim, OPTIONAL_CODE_COLUMNS))

    def payer_lines() -> ir.Table:
        start, history = claims_window(year)
        # the adjusted lines' sums over every payer's claims, computed once for all payers: a
        # payer's line is netted with all of its rows, whichever payer a row names
        sums = sh.get(f"claims_adjusted_line_sums_{paid_through:%Y%m%d}",
                      lambda: adjusted_line_sums(claims_as_of(medical_claim, paid_through))) if shared is not None else None
        t = quality_claim_lines(medical_claim, paid_through, start=start, history=history, valuesets=valuesets,
                                leave_out=empty, sums=sums)
        return of_persons(t.filter(t.payer == payer), persons)

    if shared is not None:
        # Each payer's lines stored once, when its first program comes, and dropped after its last:
        # its reads scan only its own rows, and the claims are netted payer by payer (the payer
        # filter reaches the scan of the claims), with no sort of every payer's wide rows.
        stored = sh.payer_table(payer, "lines", payer_lines)
        diagnoses = sh.payer_table(payer, "diagnoses", lambda: diagnoses_long(
            stored, as_loaded=valuesets.codes_as_loaded, valuesets=valuesets))
    else:
        stored = keep("claims", payer_lines())
        diagnoses = keep("diagnoses", diagnoses_long(stored, as_loaded=valuesets.codes_as_loaded,
                                                     valuesets=valuesets))
    lines = with_columns(stored, empty, medical_claim.schema())
    rx = None
    if pharmacy_claim is not None:
        rx = pharmacy_claim_lines(pharmacy_claim, paid_through)
        rx = rx.filter(rx.payer == payer)

    def build_labs() -> ir.Table:
        labs_parts = []
        if lab_result is not None:
            labs_parts.append(lab_values(lab_result))
        if supplemental is not None:
            s = lab_values(supplemental)
            labs_parts.append(s.mutate(source=ibis.literal(SUPPLEMENTAL_SOURCE)))
        if labs_parts:
            return ibis.union(*labs_parts, distinct=False)
        return ibis.memtable(
            {"person_id": [], "lab_result_id": [], "code": [], "value": [], "result_text": [], "units": [],
             "result_date": [], "source": []},
            schema={"person_id": "string", "lab_result_id": "string", "code": "string", "value": "decimal(18, 4)",
                    "result_text": "string", "units": "string", "result_date": "date", "source": "string"},
        )

    def build_observations() -> ir.Table:
        if observation is not None:
            # The setting of a reading comes from the claim rows of its encounter (any payer): only
            # the claims that are some observation's encounter are classified, not every claim line.
            rows = medical_claim.select("claim_id", "claim_type", "bill_type_code", "revenue_center_code",
                                        "place_of_service_code", "hcpcs_code")
            enc = observation.select(_enc=observation.encounter_id)
            enc = enc.filter(enc._enc.notnull()).distinct()
            rows = rows.semi_join(enc, rows.claim_id == enc._enc)
            return observation_values(observation, rows.mutate(service_category=_category(rows)))
        return ibis.memtable(
            {k: [] for k in ("person_id", "observation_id", "encounter_id", "observation_date", "code", "value",
                             "units", "source", "setting")},
            schema={"person_id": "string", "observation_id": "string", "encounter_id": "string",
                    "observation_date": "date", "code": "string", "value": "decimal(18, 4)", "units": "string",
                    "source": "string", "setting": "string"},
        )

    if shared is not None:
        labs, obs = sh.get("labs", build_labs), sh.get("observations", build_observations)
    else:
        labs, obs = keep("labs", build_labs()), keep("observations", build_observations())
    elig = eligibility.filter(eligibility.payer == payer)
    elig = elig.filter(elig.plan.isin(list(program.population.plans)))
    if program.population.group_ids:
        elig = elig.filter(elig.group_id.isin(list(program.population.group_ids)))
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)

    def redacted() -> bool:
        if "substance_use_redacted" not in lines.columns:
            return False
        hit = lines.filter(lines.substance_use_redacted.fill_null(False)
                           & (lines.service_date >= start) & (lines.service_date <= end))
        return bool(hit.count().to_pyarrow().as_py())

    red = sh.value(f"payer_{payer}_redacted_{year}", redacted)
    return MeasureContext(
        program=program, year=year, paid_through=paid_through, claims=lines,
        diagnoses=diagnoses, labs=labs,
        observations=obs, pharmacy=rx, eligibility=keep("eligibility", elig),
        member_months=mm, members=members,
        valuesets=valuesets, redacted=red, extra=dict(extra or {}), keep=keep if keep_given else None,
        shared=shared,
    )


def _category(t: ir.Table) -> ir.StringValue:
    from allpayer.core.claims import service_category

    return service_category(t)


def latest_month_per_person(t: ir.Table, columns: Sequence[str]) -> ir.Table:
    """One row per ``person_id`` of `t` (rows with ``month`` and ``member_id``) with `columns` of
    its latest month, the smallest member id among that month's rows.

    One aggregate per person (the row with the least key: the month's day number negated, then
    the member id), which DuckDB computes in about half the time of numbering each person's rows
    in that order and keeping the first (0.20 against 0.40-0.45 s for the 1.5 million Medicare
    attribution rows at 650,000 members)."""
    key = ibis.struct({"_d": -t.month.epoch_days(), "_m": t.member_id})
    g = t.group_by("person_id").aggregate(_best=ibis.struct({c: t[c] for c in columns}).argmin(key))
    return g.select("person_id", **{c: g._best[c] for c in columns})


def attributed_members(attribution: ir.Table, member_months: ir.Table, program_id: str, year: int) -> ir.Table:
    """The program's members attributed in any month of `year` (`MEMBER_COLUMNS`), with the
    practice, NPI, TIN and HSA of the latest attributed month and age on 31 December."""
    a = attribution.filter((attribution.program_id == program_id) & (attribution.performance_year == year)
                           & attribution.attributed)
    a = latest_month_per_person(a, ["member_id", "practice_id", "npi", "tin", "hsa"])
    demo = latest_month_per_person(member_months, ["birth_date", "sex"])
    demo = demo.select(_pid="person_id", _birth="birth_date", _sex="sex")
    j = a.left_join(demo, a.person_id == demo._pid)
    return j.select(
        program_id=ibis.literal(program_id),
        person_id=j.person_id,
        member_id=j.member_id,
        birth_date=j._birth,
        gender=j._sex,
        age=age_on(j._birth, dt.date(year, 12, 31)),
        practice_id=j.practice_id,
        npi=j.npi,
        tin=j.tin,
        hsa=j.hsa,
    )


def population_for(measure: Measure, ctx: MeasureContext) -> ir.Table:
    """The population a measure's ``compute`` receives (see the module docstring)."""
    pop = ctx.members
    if measure.kind != "member":
        return pop
    if measure.enrollment is not None and measure.enrollment_window == "year":
        rule = measure.enrollment

        def enrolled() -> ir.Table:
            e = ctx.members
            flags = []
            for i, (start, end, r) in enumerate(rule.windows(ctx.year)):
                e = continuously_enrolled(e, ctx.eligibility, start, end, r, key=["person_id"], name=f"_enrolled{i}")
                flags.append(f"_enrolled{i}")
            return e.filter(ibis.and_(*[e[f] for f in flags])).drop(*flags)

        # The rule is checked per person, whatever the age: once per program for every measure
        # that states it (stored when the engine runs, keyed on every field of the rule), then each
        # measure's ages.
        pop = ctx._kept("enrolled_" + "_".join(str(v) for v in astuple(rule)), enrolled)
    if measure.ages is not None:
        lo, hi = measure.ages
        pop = pop.filter((pop.age >= lo) & (pop.age <= hi))
    if measure.gender is not None:
        pop = pop.filter(pop.gender == measure.gender)
    return pop


def evaluate(measure: Measure, ctx: MeasureContext) -> ir.Table:
    """Run one measure for one program: the conformed ``quality_measure_results`` rows."""
    missing = [v for v in measure.valuesets if v not in ctx.valuesets]
    if missing:
        from allpayer.errors import RunError

        raise RunError(f"measure {measure.id}: value set(s) {', '.join(missing)} not found")
    pop = population_for(measure, ctx)
    if ctx.keep is not None and pop is not ctx.members:
        # (an event measure's population is the members themselves, already stored)
        pop = ctx.keep(f"population_{measure.id}", pop)
    return conform(measure.compute(ctx, pop), measure, ctx.members, ctx.program.program_id, ctx.year)



def keeper(con, prefix: str, made: list[str] | None = None) -> Callable[[str, ir.Table], ir.Table]:
    """A `build_context` ``keep`` that stores each table as a temporary table of `con` (its name
    appended to `made`, when given, so the caller can drop it)."""

    def keep(name: str, t: ir.Table) -> ir.Table:
        full = f"{prefix}_{name}"
        out = replace_temp_table(con, full, t)
        if made is not None and full not in made:
            made.append(full)
        return out

    return keep
