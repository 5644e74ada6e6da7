"""Employer statements apply the program statement's rules: the same per-cell target rounding,
the same truncation, the same completion, so that an employer alone in its program gets exactly
the program's figures and several employers' figures add up to the program's
(`allpayer.settlement.inputs.employer_bases`, `allpayer.settlement.run.employer_figures`).

The population is hand-made: the self-funded SOV terms of 2024 (rate cells by age band and sex,
truncation at $150,000 a year, half-up rounding), three groups: GA (employer EMP-A), GB (EMP-B),
GX (no employer).

    member  cell            months (group)               FFS cost (cents)
    a1      18-44/female    Jan, Feb (GA)                10,000,000 + 5,000,000
    a2      18-44/female    Jan (GA)                     20,000
    b1      45-64/female    Jan (GA), Feb, Mar (GB)      2,000,000 (GA) + 2,000,000 + 1 (GB)
    c1      18-44/female    Jan, Feb, Mar (GB)           30,000 each
    x1      18-44/female    Jan (GX)                     50,000

Target PMPMs: 18-44/female $300.005, 45-64/female $400.333.

- Target of 18-44/female: 7 months x 300.005 = 2,100.035 -> $2,100.04 (half up, once per cell as
  the program rounds). Split 3 : 3 : 1 (EMP-A, EMP-B, no employer): 90,001.71, 90,001.71,
  30,000.57 -> floors 90,001 + 90,001 + 30,000 = 210,002, the 2 cents left to the largest
  remainders (a tie: the earlier, EMP-A then EMP-B): 90,002, 90,002, 30,000. Rounding each
  employer on its own (the old way) gives 90,002 + 90,002 + 30,001 = 210,005: a cent too many.
- Target of 45-64/female: 3 x 400.333 = 1,200.999 -> $1,201.00; split 1 : 2 -> 40,033.33,
  80,066.67 -> 40,033 and 80,067.
- Targets: EMP-A 130,035, EMP-B 170,069, no employer 30,000; program 330,104.
- Truncation ($150,000 a year): a1 $150,000 over 2 months annualizes to $900,000: truncated to
  150,000 x 2 / 12 = $25,000, $125,000.00 above (EMP-A). b1 $40,000.01 over 3 months annualizes to
  $160,000.04: truncated to $37,500, 250,001 cents above, split by b1's cost in each employer
  (2,000,000 : 2,000,001): 125,000.47 and 125,000.53 -> 125,000 (EMP-A) and 125,001 (EMP-B).
  Program 12,750,001.
- FFS actual: EMP-A 17,020,000, EMP-B 2,090,001, no employer 50,000; program 19,160,001.
- Actual counted: EMP-A 17,020,000 - 12,625,000 = 4,395,000; EMP-B 2,090,001 - 125,001 =
  1,965,000; no employer 50,000; program 6,410,000.
- Gross: EMP-A -4,264,965; EMP-B -1,794,931; no employer -20,000; program -6,079,896.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import ibis
import pyarrow as pa
import yaml

from allpayer.settlement.engine import SettlementInputs, settle_program
from allpayer.settlement.inputs import EmployerBase, employer_bases, program_inputs
from allpayer.settlement.run import employer_figures, employer_shares
from allpayer.terms import parse_program, programs_dir

SOV_FILE = programs_dir() / "vermont" / "2024" / "sov_employees.yaml"
SOV_DATA = yaml.safe_load(SOV_FILE.read_text())


def sov(**settlement):
    data = copy.deepcopy(SOV_DATA)
    data["settlement"].update(settlement)
    return parse_program(data, str(SOV_FILE))


SOV = sov()
PID = SOV.program_id
JAN, FEB, MAR = dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)
YOUNG, OLDER = dt.date(1994, 1, 1), dt.date(1974, 1, 1)

MONTHS = [  # member, month, group, birth date, FFS cost (cents)
    ("a1", JAN, "GA", YOUNG, 10_000_000), ("a1", FEB, "GA", YOUNG, 5_000_000),
    ("a2", JAN, "GA", YOUNG, 20_000),
    ("b1", JAN, "GA", OLDER, 2_000_000), ("b1", FEB, "GB", OLDER, 2_000_000), ("b1", MAR, "GB", OLDER, 1),
    ("c1", JAN, "GB", YOUNG, 30_000), ("c1", FEB, "GB", YOUNG, 30_000), ("c1", MAR, "GB", YOUNG, 30_000),
    ("x1", JAN, "GX", YOUNG, 50_000),
]


def con_with(employers=(("GA", "EMP-A"), ("GB", "EMP-B"))):
    mm = pa.table({
        "program_id": [PID] * len(MONTHS), "performance_year": [2024] * len(MONTHS),
        "member_id": [m[0] for m in MONTHS], "person_id": [m[0] for m in MONTHS],
        "month": [m[1] for m in MONTHS], "year": [2024] * len(MONTHS), "group_id": [m[2] for m in MONTHS],
        "birth_date": [m[3] for m in MONTHS], "sex": ["female"] * len(MONTHS),
        "ffs_paid_cents": [m[4] for m in MONTHS],
    })
    pmpm = {"18-44/female": "300.005", "45-64/female": "400.333"}
    cells = [(c, m) for c in pmpm for m in (JAN, FEB, MAR)]
    targets = pa.table({
        "program_id": [PID] * len(cells), "performance_year": [2024] * len(cells),
        "cell_id": [c for c, _ in cells], "month": [m for _, m in cells],
        "target_pmpm": pa.array([Decimal(pmpm[c]) for c, _ in cells], pa.decimal128(38, 10)),
    })
    att = pa.table({"program_id": [PID] * len(MONTHS), "performance_year": [2024] * len(MONTHS),
                    "member_id": [m[0] for m in MONTHS], "month": [m[1] for m in MONTHS],
                    "attributed": [True] * len(MONTHS), "eligible": [True] * len(MONTHS),
                    "hsa": ["burlington"] * len(MONTHS)})
    eg = pa.table({"group_id": [g for g, _ in employers], "employer_id": [e for _, e in employers],
                   "effective_start_date": [dt.date(2020, 1, 1)] * len(employers),
                   "effective_end_date": pa.array([None] * len(employers), pa.date32())})
    con = ibis.duckdb.connect()
    for name, t in {"tcoc_member_month": mm, "targets": targets, "attribution": att, "employer_group": eg}.items():
        con.create_table(name, t)
    return con


def settle(con, program=SOV):
    inp, _ = program_inputs(con, program, 2024)
    return settle_program(program, inp)


def by_id(figures):
    return {e.employer_id: e for e in figures}


def test_employer_bases_split_the_cell_targets_and_the_truncation_as_the_program_counts_them():
    bases = by_id(employer_bases(con_with(), SOV, 2024))
    assert list(bases) == ["EMP-A", "EMP-B", None]  # the months without an employer last
    assert {k: (b.members, b.member_months) for k, b in bases.items()} == {
        "EMP-A": (3, 4), "EMP-B": (2, 5), None: (1, 1)}
    assert {k: b.target_cents for k, b in bases.items()} == {"EMP-A": 130_035, "EMP-B": 170_069, None: 30_000}
    assert {k: b.actual_cents for k, b in bases.items()} == {"EMP-A": 17_020_000, "EMP-B": 2_090_001, None: 50_000}
    assert {k: b.truncated_amount_cents for k, b in bases.items()} == {
        "EMP-A": 12_625_000, "EMP-B": 125_001, None: 0}


def test_employers_figures_add_up_to_the_program_statement():
    con = con_with()
    s = settle(con)
    assert (s.target_cents, s.amount("actual_ffs"), s.amount("truncated_amount")) == (330_104, 19_160_001, -12_750_001)
    assert (s.actual_cents, s.gross_cents) == (6_410_000, -6_079_896)
    figures = by_id(employer_figures(s, employer_bases(con, SOV, 2024)))
    assert {k: (e.target_cents, e.actual_cents) for k, e in figures.items()} == {
        "EMP-A": (130_035, 4_395_000), "EMP-B": (170_069, 1_965_000), None: (30_000, 50_000)}
    assert sum(e.target_cents for e in figures.values()) == s.target_cents
    assert sum(e.actual_cents for e in figures.values()) == s.actual_cents
    rows = {r["employer_id"]: r for r in employer_shares(s.net_cents, [figures["EMP-A"], figures["EMP-B"]])}
    # fewer than 11 members: the cost cells are suppressed on the statement, the figures are as above
    assert rows["EMP-A"]["suppressed"] and rows["EMP-A"]["gross_cents"] is None
    assert rows["EMP-A"]["aco_share_cents"] + rows["EMP-B"]["aco_share_cents"] == s.net_cents


def test_an_employer_alone_in_its_program_gets_exactly_the_program_figures():
    """Every group is EMP-A's: its target, actual and gross are the statement's to the cent (before
    the fix its actual skipped the truncation and its target was rounded per employer)."""
    con = con_with((("GA", "EMP-A"), ("GB", "EMP-A"), ("GX", "EMP-A")))
    s = settle(con)
    (only,) = employer_figures(s, employer_bases(con, SOV, 2024))
    assert (only.employer_id, only.members, only.member_months) == ("EMP-A", 5, 10)
    assert (only.target_cents, only.actual_cents) == (s.target_cents, s.actual_cents) == (330_104, 6_410_000)
    (row,) = employer_shares(s.net_cents, [only])
    assert row["aco_share_cents"] == s.net_cents


def test_the_completion_factor_is_split_by_the_actual_after_truncation():
    """With ``completion_factor: 1.0125`` the program's actual 6,410,000 becomes 6,490,125 (half up):
    80,125 of claims after the run-out, split 4,395,000 : 1,965,000 : 50,000 -> 54,937.5, 24,562.5,
    625 -> floors 80,124, the cent left to the first of the tied remainders (EMP-A): 54,938,
    24,562, 625."""
    program = sov(completion_factor="1.0125")
    con = con_with()
    s = settle(con, program)
    assert (s.amount("completion"), s.actual_cents) == (80_125, 6_490_125)
    figures = by_id(employer_figures(s, employer_bases(con, program, 2024)))
    assert {k: e.actual_cents for k, e in figures.items()} == {
        "EMP-A": 4_395_000 + 54_938, "EMP-B": 1_965_000 + 24_562, None: 50_000 + 625}
    assert sum(e.actual_cents for e in figures.values()) == s.actual_cents


def test_an_actual_not_on_the_ffs_basis_is_split_by_the_ffs_actual():
    """Where the statement's actual before truncation is not the FFS basis (the fixed-payment
    definition, a forecast's completion to ultimate), the difference goes to the employers by their
    FFS actual: here 1,000 cents more than 3 + 1 + 0 split 3 : 1 -> 750 and 250."""
    s = settle_program(SOV, SettlementInputs(target_cents=10_000, actual_cents=1_004))
    figures = employer_figures(s, [EmployerBase("E1", 20, 20, 7_000, 3), EmployerBase("E2", 20, 20, 3_000, 1),
                                   EmployerBase(None, 1, 1, 0, 0)])
    assert [e.actual_cents for e in figures] == [3 + 750, 1 + 250, 0]
