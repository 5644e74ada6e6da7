"""CMS's public use file as input to `allpayer mssp settle`, compared with CMS's published results.

CMS publishes each performance year's "Shared Savings Program Accountable Care Organizations (ACO)
Performance Year Financial and Quality Results" as one CSV row per ACO. `settle_puf` reads such a
file, settles every ACO under the year's rules and puts CMS's ``GenSaveLoss`` and ``EarnSaveLoss``
beside the engine's amounts, with the differences.

The file has no performance-year column: the caller gives the year. Column names are matched
without regard to case (the PY2019 file is all lower case). What is read:

- ``ACO_ID``; the track from the flag columns ``Current_Track_1``, ``Current_Track_1_Plus``,
  ``Current_Track_2``, ``Current_Track_3``, ``Current_BASIC_A`` .. ``Current_BASIC_E``,
  ``Current_ENHANCED`` (the one set to 1), or, in the later files that have no flag columns, from
  the one ``Current_Track`` text column (`track_from_text`: CMS's data dictionary gives the BASIC
  levels as ``A`` .. ``E``; ``ENHANCED`` and the older tracks are read by name). A value read
  neither way rejects the ACO, naming it.
- ``ABtotBnchmk``, ``ABtotExp``, ``GenSaveLoss``, ``EarnSaveLoss`` and ``DisAdj`` (money: ``$`` and
  thousands commas allowed, a negative in parentheses; ``DisAdj`` is published negative and is
  taken as a positive reduction); ``N_AB``.
- ``MinSavPerc``; ``MinLossPerc`` where the file has it, otherwise the MSR for a two-sided track
  (the MSR and MLR of a two-sided agreement are symmetric); ``QualScore``. A rate column is read as
  percent ("2.5" or "2.5%") when any of its values carries "%" or exceeds 1, else as a fraction.
- ``Met_QPS``, ``Met_AltQPS`` and ``ReducedSS`` where present (1/0).
- ``Current_Start_Date`` where present, for the Track 2 agreement year.

A suppressed ("*") or empty value the settlement needs rejects that ACO with the column's name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from allpayer.errors import InputFileError
from allpayer.settlement.mssp import MsspInput, MsspInputError, settle
from allpayer.settlement.mssp_csv import (
    RESULT_COLUMNS,
    WORKING_COLUMNS,
    InputRow,
    RejectedRow,
    SettledRow,
    SettleResult,
    _parse_decimal,
    format_value,
)
from allpayer.settlement.mssp_terms import MsspRules

TRACK_FLAGS = {
    "current_track_1": "TRACK_1",
    "current_track_1_plus": "TRACK_1_PLUS",
    "current_track_2": "TRACK_2",
    "current_track_3": "TRACK_3",
    "current_basic_a": "BASIC_A",
    "current_basic_b": "BASIC_B",
    "current_basic_c": "BASIC_C",
    "current_basic_d": "BASIC_D",
    "current_basic_e": "BASIC_E",
    "current_enhanced": "ENHANCED",
}
REQUIRED = ("ACO_ID", "ABtotBnchmk", "ABtotExp", "MinSavPerc", "QualScore", "Met_QPS", "GenSaveLoss", "EarnSaveLoss")
_RATES = ("MinSavPerc", "MinLossPerc", "QualScore")
_SUPPRESSED = {"", "*"}
COMPARISON_COLUMNS = (
    "published_generated_savings_losses",
    "generated_difference",
    "published_earned_savings_losses",
    "earned_difference",
)
PUF_OUTPUT_COLUMNS = RESULT_COLUMNS + COMPARISON_COLUMNS + WORKING_COLUMNS
WITHIN = Decimal(1)


def is_puf_header(header: list[str]) -> bool:
    """Whether a header is CMS's public use file layout (it has ``ACO_ID`` and ``ABtotBnchmk``)."""
    low = {h.strip().lower() for h in header}
    return "aco_id" in low and "abtotbnchmk" in low


def parse_money(raw: str, name: str) -> Decimal:
    """Dollars as CMS writes them: ``$1,234``, ``-1234``, ``($1,234)``."""
    text = raw.strip().replace("$", "").replace(",", "")
    negative = text.startswith("(") and text.endswith(")")
    value = _parse_decimal(text.strip("()"), name)
    return -value if negative else value


def _percent_columns(header: dict[str, str], records: list[dict[str, str]]) -> set[str]:
    """The rate columns written in percent: any value with "%" or above 1."""
    found = set()
    for name in _RATES:
        column = header.get(name.lower())
        if column is None:
            continue
        for rec in records:
            raw = (rec.get(column) or "").strip()
            if raw in _SUPPRESSED:
                continue
            if "%" in raw or abs(_parse_decimal(raw.replace("%", ""), name)) > 1:
                found.add(name)
                break
    return found


@dataclass(frozen=True)
class _Row:
    """One PUF record with its column lookup (case-insensitive) and the file's percent columns."""

    values: dict[str, str]
    header: dict[str, str]
    percent: set[str]

    def raw(self, name: str) -> str | None:
        column = self.header.get(name.lower())
        return None if column is None else (self.values.get(column) or "").strip()

    def need(self, name: str) -> str:
        raw = self.raw(name)
        if raw is None or raw in _SUPPRESSED:
            raise ValueError(f"{name} is {'suppressed (*)' if raw == '*' else 'empty'}")
        return raw

    def money(self, name: str) -> Decimal:
        return parse_money(self.need(name), name)

    def rate(self, name: str) -> Decimal:
        raw = self.need(name)
        value = _parse_decimal(raw.replace("%", ""), name)
        return value / 100 if name in self.percent else value

    def flag(self, name: str) -> bool | None:
        raw = self.raw(name)
        if raw is None or raw in _SUPPRESSED:
            return None
        return _parse_decimal(raw, name) == 1


_TRACK_NAMES = {
    "ENHANCED": "ENHANCED", "ENHANCED TRACK": "ENHANCED",
    "TRACK 1": "TRACK_1", "TRACK 1+": "TRACK_1_PLUS", "TRACK 1 PLUS": "TRACK_1_PLUS",
    "TRACK 2": "TRACK_2", "TRACK 3": "TRACK_3",
}


def track_from_text(raw: str) -> str:
    """The track code of a ``Current_Track`` value: a BASIC level as CMS's data dictionary writes it
    (``A`` .. ``E``) or spelled out (``BASIC Level E``, ``Level E``, ``BASIC E``); ``ENHANCED``; the
    older tracks by name (``Track 1``, ``Track 1+``, ``Track 2``, ``Track 3``). Case and spacing
    (``_``, ``-``) do not matter.

    >>> [track_from_text(v) for v in ("E", "BASIC Level C", "level_a", "Enhanced", "Track 1+")]
    ['BASIC_E', 'BASIC_C', 'BASIC_A', 'ENHANCED', 'TRACK_1_PLUS']
    """
    text = " ".join(raw.replace("_", " ").replace("-", " ").upper().split())
    if text in _TRACK_NAMES:
        return _TRACK_NAMES[text]
    for prefix in ("BASIC LEVEL ", "BASIC TRACK LEVEL ", "BASIC ", "LEVEL ", ""):
        level = text.removeprefix(prefix) if text.startswith(prefix) else None
        if level is not None and len(level) == 1 and level in "ABCDE":
            return f"BASIC_{level}"
    raise ValueError(f"Current_Track {raw!r} is not a track this version reads (A-E, ENHANCED, Track 1/1+/2/3)")


def _track(row: _Row) -> str:
    if not any(flag in row.header for flag in TRACK_FLAGS):
        return track_from_text(row.need("Current_Track"))
    on = [code for flag, code in TRACK_FLAGS.items() if row.flag(flag)]
    if len(on) != 1:
        raise ValueError(f"exactly one track flag must be 1, found {len(on)}")
    return on[0]


def _agreement_year(row: _Row, year: int) -> int | None:
    raw = row.raw("Current_Start_Date")
    if not raw or raw in _SUPPRESSED:
        return None
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return year - datetime.strptime(raw, fmt).year + 1
        except ValueError:
            continue
    raise ValueError(f"Current_Start_Date is not a date: {raw!r}")


def _input(row: _Row, year: int, rules: MsspRules) -> tuple[MsspInput, Decimal, Decimal]:
    """The ACO's input and CMS's published generated and earned amounts."""
    track = _track(row)
    year_rules = rules.for_year(year)
    terms = year_rules.track(track) if year_rules is not None else None
    msr = row.rate("MinSavPerc")
    if row.raw("MinLossPerc") not in (None, *_SUPPRESSED):
        mlr = row.rate("MinLossPerc")
    else:
        mlr = msr if terms is not None and terms.two_sided else None
    disaster = row.raw("DisAdj")
    n_ab = row.raw("N_AB")
    aco = MsspInput(
        performance_year=year,
        aco_id=row.need("ACO_ID"),
        track=track,
        benchmark_total=row.money("ABtotBnchmk"),
        expenditure_total=row.money("ABtotExp"),
        msr=msr,
        mlr=mlr,
        quality_score=row.rate("QualScore"),
        met_quality_standard=row.flag("Met_QPS"),
        met_alt_quality_standard=row.flag("Met_AltQPS"),
        assigned_beneficiaries=int(parse_money(n_ab, "N_AB")) if n_ab not in (None, *_SUPPRESSED) else None,
        reduced_savings_eligible=bool(row.flag("ReducedSS")),
        disaster_adjustment=abs(parse_money(disaster, "DisAdj")) if disaster not in (None, *_SUPPRESSED) else Decimal(0),
        agreement_year=_agreement_year(row, year),
    )
    return aco, row.money("GenSaveLoss"), row.money("EarnSaveLoss")


def read_puf(path: str | Path, year: int, rules: MsspRules) -> tuple[list[InputRow], list[RejectedRow]]:
    """Read a public use file: one input row per ACO (CMS's amounts in its extras), and rejections."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = list(reader.fieldnames or [])
            records = [(reader.line_num, rec) for rec in reader]
    except OSError as exc:
        raise InputFileError(str(path), f"cannot open the file ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(str(path), f"not a readable CSV file: {exc}") from exc
    header = {f.strip().lower(): f for f in fields}  # the name as matched -> the name in the file
    missing = [c for c in REQUIRED if c.lower() not in header]
    if not any(flag in header for flag in TRACK_FLAGS) and "current_track" not in header:
        missing.append("the track: Current_Track, or the flag columns Current_Track_1 .. Current_ENHANCED")
    if missing:
        raise InputFileError(str(path), f"not a public use file this version reads: missing {', '.join(missing)}")
    percent = _percent_columns(header, [rec for _, rec in records])
    rows: list[InputRow] = []
    rejected: list[RejectedRow] = []
    for line, rec in records:
        row = _Row(rec, header, percent)
        aco_id = row.raw("ACO_ID") or ""
        try:
            aco, generated, earned = _input(row, year, rules)
        except (ValueError, MsspInputError) as exc:
            rejected.append(RejectedRow(line, aco_id, str(exc)))
            continue
        published = {"published_generated_savings_losses": str(generated), "published_earned_savings_losses": str(earned)}
        rows.append(InputRow(line, aco, published))
    return rows, rejected


def settle_puf(path: str | Path, year: int, rules: MsspRules) -> SettleResult:
    """Settle every ACO of a public use file and compare with CMS's published amounts."""
    rows, rejected = read_puf(path, year, rules)
    settled: list[SettledRow] = []
    for row in rows:
        try:
            s = settle(row.aco, rules)
        except MsspInputError as exc:
            rejected.append(RejectedRow(row.line, row.aco.aco_id, str(exc)))
            continue
        gen = Decimal(row.extras["published_generated_savings_losses"])
        earned = Decimal(row.extras["published_earned_savings_losses"])
        comparison = {
            "published_generated_savings_losses": format_value(gen, "usd"),
            "generated_difference": format_value(s.generated_savings_losses - gen, "usd"),
            "published_earned_savings_losses": format_value(earned, "usd"),
            "earned_difference": format_value(s.earned_savings_losses - earned, "usd"),
        }
        settled.append(SettledRow(row.line, s, comparison))
    rejected.sort(key=lambda r: r.line)
    return SettleResult(settled, rejected, [])


WITHIN_SHARE = Decimal("0.00001")
"""The share of an ACO's benchmark within which its earned amount counts as CMS's when quality
scores are published rounded (0.001%)."""


def reproduced(result: SettleResult, within: Decimal = WITHIN, *, share_of_benchmark: Decimal | None = None) -> int:
    """How many settled ACOs match CMS's earned amount within `within` dollars, or, with
    `share_of_benchmark`, within that share of their benchmark."""
    def bound(r: SettledRow) -> Decimal:
        return within if share_of_benchmark is None else r.settlement.aco.benchmark_total * share_of_benchmark

    return sum(1 for r in result.settled if abs(Decimal(r.extras["earned_difference"])) <= bound(r))
