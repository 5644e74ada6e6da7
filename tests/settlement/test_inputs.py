"""What the settlement reads from the engine's tables, the optional quality and payments tables
included (built by hand here: the quality and payments stages write them).

The population is hand-made so that attributed and eligible member months differ: a settlement
covers the attributed months only, on both sides (target and actual)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import pyarrow as pa
import pytest

from allpayer.settlement.engine import SettlementError, settle_program
from allpayer.settlement.inputs import attributed_truncation, population, program_inputs
from allpayer.terms import load_program, programs_dir

MEDICAID = load_program(programs_dir() / "vermont" / "2024" / "medicaid.yaml")
PID = MEDICAID.program_id
JAN, FEB, MAR = dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)


def con_with(**tables):
    con = ibis.duckdb.connect()
    for name, data in tables.items():
        con.create_table(name, data if isinstance(data, pa.Table) else pa.table(data))
    return con


def base_tables():
    """Four members of the 2024 Medicaid program (rate cells by aid category).

    member  cell               eligible (tcoc rows)   attributed + eligible   FFS of attributed months
    m1      adult_expansion    Jan Feb Mar            Jan Feb Mar             1,000 + 1,500 + 500
    m2      child              Jan Feb Mar            Jan Feb (Mar excluded)  200 + 300   (Mar 1,000,000.00 outside)
    m3      adult_expansion    Jan                    none                    (7,777.77 outside)
    m4      aged_blind_disab.  Jan                    Jan (Feb: listed, not eligible)  2,400
    plus a 2023 row and another program's row, both ignored.

    Attributed member months 6 of 8 eligible. Target PMPMs: adult_expansion $1,000.005, child
    $300.333, aged_blind_disabled $2,500.50, so the targets are 3 x 1,000.005 = 3,000.015 ->
    $3,000.02; 2 x 300.333 = 600.666 -> $600.67; $2,500.50 (half up per cell): $6,101.19. The
    core's own target_cents (every eligible month) are deliberately different and not read.
    """
    rows = [  # program, year, member, month, cell, ffs cents
        (PID, 2024, "m1", JAN, "adult_expansion", 100_000),
        (PID, 2024, "m1", FEB, "adult_expansion", 150_000),
        (PID, 2024, "m1", MAR, "adult_expansion", 50_000),
        (PID, 2024, "m2", JAN, "child", 20_000),
        (PID, 2024, "m2", FEB, "child", 30_000),
        (PID, 2024, "m2", MAR, "child", 100_000_000),
        (PID, 2024, "m3", JAN, "adult_expansion", 777_777),
        (PID, 2024, "m4", JAN, "aged_blind_disabled", 240_000),
        (PID, 2023, "m1", JAN, "adult_expansion", 7),
        ("other", 2024, "m1", JAN, "adult_expansion", 9),
    ]
    mm = {"program_id": [r[0] for r in rows], "performance_year": [r[1] for r in rows],
          "member_id": [r[2] for r in rows], "person_id": [r[2] for r in rows],
          "month": [r[3] if r[1] == 2024 else dt.date(2023, 1, 1) for r in rows],
          "year": [r[1] for r in rows], "aid_category": [r[4] for r in rows],
          "ffs_paid_cents": [r[5] for r in rows]}
    att = [  # member, month, attributed, eligible, hsa
        ("m1", JAN, True, True), ("m1", FEB, True, True), ("m1", MAR, True, True),
        ("m2", JAN, True, True), ("m2", FEB, True, True), ("m2", MAR, False, True),
        ("m3", JAN, False, True),
        ("m4", JAN, True, True), ("m4", FEB, True, False),
    ]
    pmpm = {"adult_expansion": "1000.005", "child": "300.333", "aged_blind_disabled": "2500.50",
            "adult_parent": "400"}
    cells = [(c, m) for c in pmpm for m in (JAN, FEB, MAR)]
    targets = pa.table({
        "program_id": [PID] * len(cells), "performance_year": [2024] * len(cells),
        "cell_id": [c for c, _ in cells], "month": [m for _, m in cells],
        "target_pmpm": pa.array([Decimal(pmpm[c]) for c, _ in cells], pa.decimal128(38, 10)),
        "target_cents": [123_456_789] * len(cells),  # the core's targets over every eligible month: not read
    })
    return {
        "targets": targets,
        "tcoc_member_month": mm,
        "attribution": {"program_id": [PID] * len(att), "performance_year": [2024] * len(att),
                        "member_id": [a[0] for a in att], "month": [a[1] for a in att],
                        "attributed": [a[2] for a in att], "eligible": [a[3] for a in att],
                        "hsa": ["burlington"] * len(att)},
    }


TARGET = 300_002 + 60_067 + 250_050  # 610,119 cents, see base_tables
ACTUAL_FFS = 300_000 + 50_000 + 240_000  # 590,000 cents


def test_population_is_the_attributed_member_months():
    pop = population(con_with(**base_tables()), MEDICAID, 2024)
    assert (pop.attributed_member_months, pop.eligible_member_months, pop.members) == (6, 8, 3)
    assert {c["cell_id"]: (c["member_months"], c["target_cents"]) for c in pop.cells} == {
        "adult_expansion": (3, 300_002), "aged_blind_disabled": (1, 250_050), "child": (2, 60_067)}
    assert [c["cell_id"] for c in pop.cells] == ["adult_expansion", "aged_blind_disabled", "child"]  # in cell order
    assert pop.target_cents == TARGET and pop.actual_ffs_cents == ACTUAL_FFS
    assert pop.months_without_target == 0


def test_a_population_with_no_attributed_month_still_counts_the_eligible_months():
    tables = base_tables()
    tables["attribution"]["attributed"] = [False] * len(tables["attribution"]["attributed"])
    pop = population(con_with(**tables), MEDICAID, 2024)
    assert (pop.attributed_member_months, pop.eligible_member_months, pop.members, pop.cells) == (0, 8, 0, ())
    assert pop.target_cents == pop.actual_ffs_cents == pop.months_without_target == 0


def test_the_population_query_gives_the_truncated_amount_of_attributed_truncation():
    tables = base_tables()
    tables["tcoc_member_month"]["ffs_paid_cents"][0] = 100_000_000  # m1's attributed January: $1,000,000
    con = con_with(**tables)
    pop = population(con, MEDICAID, 2024, truncation=True)
    assert pop.truncated_amount_cents == attributed_truncation(con, MEDICAID, 2024) > 0
    assert pop.attributed_member_months == 6 and pop.actual_ffs_cents == ACTUAL_FFS - 100_000 + 100_000_000
    assert population(con, MEDICAID, 2024).truncated_amount_cents is None  # not asked for


def test_core_tables_only():
    inp, notes = program_inputs(con_with(**base_tables()), MEDICAID, 2024)
    assert (inp.target_cents, inp.actual_cents, inp.member_months, inp.members) == (TARGET, ACTUAL_FFS, 6, 3)
    assert inp.eligible_member_months == 8
    # m2's non-attributed March ($1,000,000) would be truncated at $250,000 a year; its attributed
    # months ($500 over two months) are not: nothing above the threshold
    assert inp.truncated_amount_cents == 0
    assert inp.quality_score is None and inp.fixed_payment_actual_cents is None
    assert any("assumed full credit" in n for n in notes)
    assert any(n.startswith("2 eligible member months not attributed") for n in notes)


def test_settlement_on_the_attributed_population_to_the_cent():
    inp, _ = program_inputs(con_with(**base_tables()), MEDICAID, 2024)
    s = settle_program(MEDICAID, inp)
    # G = 610,119 - 590,000 = 20,119 (3.30% of target), beyond the 3% corridor:
    # ACO keeps 0.03 x 610,119 = 18,303.57 -> 18,304 (half up); no FPP tables: nothing withheld
    assert s.rate("member_months") == 6 and s.line("member_months").label == "attributed member months"
    assert s.rate("eligible_member_months") == 8
    assert "2 eligible months not attributed" in s.line("eligible_member_months").note
    assert s.amount("target") == 610_119 and s.amount("actual_ffs") == 590_000
    assert s.rate("target_pmpm") == Decimal("1016.8650")  # 6,101.19 / 6
    assert s.rate("actual_pmpm") == Decimal("983.3333")  # $5,900.00 / 6
    assert s.amount("truncated_amount") == 0
    assert s.amount("gross_result") == 20_119
    assert s.amount("corridor_shared") == 18_304
    assert s.amount("withhold_returned") == 0
    assert s.net_cents == 18_304 and s.combined_cents == 18_304


def test_fixed_payment_tcoc_must_cover_the_same_months():
    t = base_tables()
    t["tcoc_fixed_payment"] = {"program_id": [PID], "performance_year": [2024], "member_months": [8],
                               "actual_tcoc_cents": [500_000]}
    with pytest.raises(SettlementError, match="covers 8 member months but the program has 6 attributed"):
        program_inputs(con_with(**t), MEDICAID, 2024)


def test_quality_and_payments_tables_are_used():
    t = base_tables()
    t["quality_program_scores"] = {"program_id": [PID], "performance_year": [2024], "quality_score": ["0.8"],
                                   "gate_met": [True]}
    t["tcoc_fixed_payment"] = {"program_id": [PID], "performance_year": [2024], "member_months": [6],
                               "actual_tcoc_cents": [500_000]}
    t["fixed_payment_performance"] = {"program_id": [PID, PID], "hospital_id": ["ALL", "org-a"],
                                      "performance_year": [2024, 2024], "fpp_paid_cents": [500_000, 500_000],
                                      "performance_cents": [25_000, 25_000]}
    t["fpp_payments"] = {"program_id": [PID, PID], "month": [dt.date(2024, 1, 1), dt.date(2023, 12, 1)],
                         "withhold_cents": [10_000, 5]}
    con = con_with(**t)
    con.raw_sql("ALTER TABLE quality_program_scores ALTER quality_score TYPE DECIMAL(18,10)")
    inp, notes = program_inputs(con, MEDICAID, 2024)
    assert inp.quality_score == Decimal("0.8") and inp.quality_gate_met is True
    assert inp.fixed_payment_actual_cents == 500_000
    assert inp.fixed_payment_performance_cents == 25_000 and inp.fpp_paid_cents == 500_000
    assert inp.withheld_cents == 10_000
    assert notes == ["2 eligible member months not attributed: outside the settlement on both sides"]
    s = settle_program(MEDICAID, inp)
    assert "same 6 attributed member months" in s.line("actual_tcoc").note
    # A = 500,000 fixed-payment TCOC; G = 110,119 is 18% of target, beyond the 3% corridor: 18,304
    assert s.amount("actual_truncated") == 500_000
    assert s.amount("corridor_shared") == 18_304
    assert s.amount("withhold_returned") == 8_000  # 10,000 x 0.8
    assert s.net_cents == 26_304 and s.combined_cents == 51_304


def test_the_fixed_payment_actual_shows_each_part_on_its_own_line():
    """The fixed-payment actual (tcoc_fixed_payment) with its four parts: FPP paid $2,500.00, CPR
    paid $300.00, FFS paid outside them $1,500.00, capitated shadow claims at allowed $700.00:
    A = $5,000.00. Each is a line of the statement that the actual depends on; parts that do not
    add up to the actual stop the settlement."""
    t = base_tables()
    t["tcoc_fixed_payment"] = {"program_id": [PID], "performance_year": [2024], "member_months": [6],
                               "fpp_paid_cents": [250_000], "cpr_paid_cents": [30_000],
                               "ffs_outside_scope_cents": [150_000], "shadow_outside_scope_cents": [70_000],
                               "actual_tcoc_cents": [500_000], "fpp_shadow_value_cents": [400_000],
                               "cpr_shadow_value_cents": [20_000]}
    inp, _ = program_inputs(con_with(**t), MEDICAID, 2024)
    assert inp.fixed_payment_parts == (("fpp_paid_cents", 250_000), ("cpr_paid_cents", 30_000),
                                       ("ffs_outside_scope_cents", 150_000), ("shadow_outside_scope_cents", 70_000))
    s = settle_program(MEDICAID, inp)
    assert [(ln.line_id, ln.amount_cents) for ln in s.lines if ln.step == "actual_tcoc"] == [
        ("fpp_paid", 250_000), ("cpr_paid", 30_000), ("ffs_outside_scope", 150_000), ("shadow_outside_scope", 70_000),
        ("actual_tcoc", 500_000)]
    assert s.line("actual_tcoc").depends == ("fpp_paid", "cpr_paid", "ffs_outside_scope", "shadow_outside_scope")
    assert "CPR paid" in s.line("actual_tcoc").note
    t["tcoc_fixed_payment"]["actual_tcoc_cents"] = [430_000]  # the CPR and capitated parts left out of the total
    inp, _ = program_inputs(con_with(**t), MEDICAID, 2024)
    with pytest.raises(SettlementError, match=r"add up to 5000\.00, not its actual 4300\.00"):
        settle_program(MEDICAID, inp)


def test_a_quality_row_without_a_score_counts_as_not_measured():
    t = base_tables()
    t["quality_program_scores"] = pa.table({"program_id": [PID], "performance_year": [2024],
                                            "quality_score": pa.array([None], pa.decimal128(18, 10)),
                                            "measured": [False], "gate_met": [False]})
    con = con_with(**t)
    inp, notes = program_inputs(con, MEDICAID, 2024)
    assert inp.quality_score is None and inp.quality_gate_met is None
    (note,) = [n for n in notes if "assumed full credit" in n]
    assert "scored none of the program's measures" in note
    # no row at all says so instead
    t.pop("quality_program_scores")
    _, notes = program_inputs(con_with(**t), MEDICAID, 2024)
    assert [n for n in notes if "assumed full credit" in n] == [
        "quality not yet measured (no quality_program_scores row): assumed full credit"]


def test_truncation_counts_only_attributed_months():
    t = base_tables()
    # m2's March becomes attributed: $1,000,500 over 3 months annualizes to $4,002,000, above
    # $250,000: truncated cost = 250,000 x 3 / 12 = $62,500; truncated amount 100,050,000 - 6,250,000
    t["attribution"]["attributed"][5] = True
    inp, _ = program_inputs(con_with(**t), MEDICAID, 2024)
    assert inp.member_months == 7
    assert inp.truncated_amount_cents == 100_050_000 - 6_250_000


def test_no_attribution_table_is_an_error():
    t = base_tables()
    del t["attribution"]
    with pytest.raises(SettlementError, match="no attribution table"):
        program_inputs(con_with(**t), MEDICAID, 2024)


def test_truncation_applied_to_the_base_only_leaves_the_performance_year_whole():
    """``target.truncation.apply_to: base`` caps the base-year costs the target is built on, not the
    performance year's actual: the settlement removes nothing (m2's attributed March, $1,000,500
    over 3 months, would otherwise lose $938,000)."""

    def applied_to(population):
        tr = MEDICAID.target.truncation.model_copy(update={"apply_to": population})
        return MEDICAID.model_copy(update={"target": MEDICAID.target.model_copy(update={"truncation": tr})})

    t = base_tables()
    t["attribution"]["attributed"][5] = True
    con = con_with(**t)
    inp, _ = program_inputs(con, applied_to("base"), 2024)
    assert inp.truncated_amount_cents is None
    assert attributed_truncation(con, applied_to("base"), 2024) is None
    assert program_inputs(con, applied_to("performance"), 2024)[0].truncated_amount_cents == 100_050_000 - 6_250_000
