"""CPR monthly payments and quality bonus; PHM base and ladder (T8); pay-for-improvement (T9)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis

from allpayer.payments import cpr, phm

from .helpers import CON, FEB, JAN, att_months, many_months, program, rows, table

ROSTER = {"npi": "string", "payer": "string", "payment_model": "string", "organization_id": "string",
          "hsa": "string", "practice_id": "string", "participation": "string", "effective_start_date": "date",
          "effective_end_date": "date"}
ON = {"participation": "participant", "effective_start_date": dt.date(2022, 1, 1)}
MONTHS = [dt.date(2024, m, 1) for m in range(1, 13)]


def cpr_roster():
    return table([
        {"npi": "1", "payer": "medicaid", "payment_model": "cpr", "practice_id": "ind-1", **ON},
        {"npi": "2", "payer": "medicaid", "payment_model": "ffs", "practice_id": "hosp-1", **ON},
        {"npi": "3", "payer": "medicare", "payment_model": "cpr", "practice_id": "hosp-1", **ON},  # another payer's CPR
    ], ROSTER)


def test_cpr_pays_cpr_practices_cell_pmpm_plus_care_coordination():
    p = program()  # VMNG 2024 CPR: child $21.00, aged_blind_disabled $34.00, care coordination $2.00
    am = att_months([("a", JAN, "child", "ind-1", "x"), ("b", JAN, "child", "ind-1", "x"),
                     ("c", JAN, "aged_blind_disabled", "ind-1", "x"), ("d", JAN, "child", "hosp-1", "x"),
                     ("a", FEB, "child", "ind-1", "x")])
    got = rows(cpr.cpr_payments(am, cpr_roster(), p, [JAN, FEB]), key=lambda r: (r["month"], r["cell_id"]))
    assert [(r["month"], r["practice_id"], r["cell_id"], r["member_months"], r["amount_cents"]) for r in got] == [
        (JAN, "ind-1", "aged_blind_disabled", 1, 36_00),  # 1 x ($34 + $2)
        (JAN, "ind-1", "child", 2, 46_00),                # 2 x ($21 + $2)
        (FEB, "ind-1", "child", 1, 23_00),
    ]


def test_cpr_is_paid_only_in_the_months_the_roster_lists_the_practice_under_cpr():
    """domain.md R5 / docs/payments.md (CPR): practices the roster lists with `payment_model: cpr`
    for the payer are paid; a roster row holds over its effective period. ind-1 joins CPR on
    2024-02-01 (FFS before); ind-2 leaves CPR after 2024-01-31 (FFS from February, still a
    participant). A month is paid when CPR roster rows cover its first and last day, as a
    practice's participation in attribution."""
    p = program()  # child $21.00 + care coordination $2.00 = $23.00
    feb1, jan31 = dt.date(2024, 2, 1), dt.date(2024, 1, 31)
    roster = table([
        {"npi": "1", "payer": "medicaid", "payment_model": "ffs", "practice_id": "ind-1", **ON,
         "effective_end_date": jan31},
        {"npi": "1", "payer": "medicaid", "payment_model": "cpr", "practice_id": "ind-1", **ON,
         "effective_start_date": feb1},
        {"npi": "4", "payer": "medicaid", "payment_model": "cpr", "practice_id": "ind-2", **ON,
         "effective_end_date": jan31},
        {"npi": "4", "payer": "medicaid", "payment_model": "ffs", "practice_id": "ind-2", **ON,
         "effective_start_date": feb1},
    ], ROSTER)
    am = att_months([("a", JAN, "child", "ind-1", "x"), ("a", FEB, "child", "ind-1", "x"),
                     ("b", JAN, "child", "ind-2", "x"), ("b", FEB, "child", "ind-2", "x")])
    got = rows(cpr.cpr_payments(am, roster, p, [JAN, FEB]), key=lambda r: (r["month"], r["practice_id"]))
    # ind-1: February only ($23.00); ind-2: January only ($23.00); not $23.00 x 2 each
    assert [(r["month"], r["practice_id"], r["amount_cents"]) for r in got] == [(JAN, "ind-2", 23_00),
                                                                                (FEB, "ind-1", 23_00)]


def test_cpr_quality_bonus_pool_times_score_split_by_member_months():
    def edit(d):
        d["payments"]["cpr"]["quality_bonus_pool"] = "10000.00"

    p = program(edit=edit)
    cp = table([{"program_id": p.program_id, "practice_id": "ind-1", "member_months": 3},
                {"program_id": p.program_id, "practice_id": "ind-2", "member_months": 1}],
               {"program_id": "string", "practice_id": "string", "member_months": "int64"})
    bonus, why = cpr.quality_bonus(CON, cp, p, 2024, Decimal("0.8"))
    # $10,000 x 0.8 = $8,000, split 3:1 by attributed member months
    assert [(b["practice_id"], b["amount_cents"]) for b in bonus] == [("ind-1", 6000_00), ("ind-2", 2000_00)]
    assert "= 800000 cents" in why
    none, why = cpr.quality_bonus(CON, cp, p, 2024, None)
    assert none == [] and "not yet measured" in why


def year_of_lives(n):
    return ibis.union(*[many_months(n, m, "child", practice="pr1") for m in MONTHS], distinct=False)


def test_t8_phm_base_and_ladder_for_2000_lives():
    """domain.md T8 (S17): 2,000 lives: base $1.75 PMPM = $42,000 a year; at the top of the
    ladder $4.75 PMPM = $114,000 a year."""
    p = program()
    base = phm.phm_base(year_of_lives(2000), p, MONTHS)
    assert sum(r["amount_cents"] for r in rows(base)) == 42_000_00
    ladder = phm.phm_ladder(CON, base, p, 2024, Decimal("0.95"))
    assert [(r["practice_id"], r["member_months"], r["amount_cents"]) for r in ladder] == [("pr1", 24_000, 72_000_00)]
    assert 42_000_00 + ladder[0]["amount_cents"] == 114_000_00
    # a middle rung: score 0.80 reaches min_score 0.75 ($4.00): ($4.00 - $1.75) x 24,000 = $54,000
    assert phm.phm_ladder(CON, base, p, 2024, Decimal("0.80"))[0]["amount_cents"] == 54_000_00
    # without a quality score only the base is paid, and the row says why
    (none,) = phm.phm_ladder(CON, base, p, 2024, None)
    assert none["amount_cents"] == 0 and "not yet measured" in none["note"]


def test_ladder_tops_up_each_month_from_that_months_base_when_the_base_changes_mid_year():
    """docs/payments.md (PHM, R7): the base is paid monthly at the month's base PMPM; the ladder
    pays the year's MM x (earned - base), so base + ladder = MM x earned PMPM. Base $1.75 in
    January-June and $2.00 from July; 10 lives a month; score 0.80 earns $4.00.
    Base paid: 60 x $1.75 + 60 x $2.00 = $225.00. Ladder: 60 x ($4.00 - $1.75) + 60 x ($4.00 - $2.00)
    = $135.00 + $120.00 = $255.00 (not 120 x ($4.00 - $2.00) = $240.00); total $480.00 = 120 x $4.00."""
    def edit(d):
        d["payments"]["phm"]["base_pmpm"] = [{"from": "2024-01-01", "value": "1.75"},
                                             {"from": "2024-07-01", "value": "2.00"}]

    p = program(edit=edit)
    base = phm.phm_base(ibis.union(*[many_months(10, m, "child", practice="pr1") for m in MONTHS], distinct=False),
                        p, MONTHS)
    assert sum(r["amount_cents"] for r in rows(base)) == 225_00
    (lad,) = phm.phm_ladder(CON, base, p, 2024, Decimal("0.80"))
    assert (lad["member_months"], lad["amount_cents"]) == (120, 255_00)
    # below the first rung the earned PMPM is the base of each month: no ladder payment
    (low,) = phm.phm_ladder(CON, base, p, 2024, Decimal("0.10"))
    assert low["amount_cents"] == 0


RATES = {"program_id": "string", "measure_id": "string", "level": "string", "level_id": "string",
         "performance_year": "int32", "rate": "decimal(18,10)", "inverse": "boolean"}


def test_t9_pay_for_improvement_1000_lives_3_measures():
    """domain.md T9 (S16): 1,000 lives x $21 x 3 measures improved by 5 points = $63,000."""
    def edit(d):
        d["payments"]["pay_for_improvement"] = {
            "amount_per_member_per_measure": "21.00", "improvement_points": "0.05",
            "measures": ["hedis_wcv", "cdev", "hba1c_poor_control", "hedis_fum_30d"], "lives_as_of": "2024-06-30"}

    p = program(edit=edit)

    def r(measure, year, rate, inverse=False, practice="pr1"):
        return {"program_id": p.program_id, "measure_id": measure, "level": "practice", "level_id": practice,
                "performance_year": year, "rate": Decimal(rate), "inverse": inverse}

    rates = table([
        r("hedis_wcv", 2023, "0.30"), r("hedis_wcv", 2024, "0.35"),                # +5 points: improved (30% -> 35%)
        r("cdev", 2023, "0.50"), r("cdev", 2024, "0.60"),                          # +10 points: improved
        r("hba1c_poor_control", 2023, "0.40", True), r("hba1c_poor_control", 2024, "0.35", True),  # inverse, fell 5
        r("hedis_fum_30d", 2023, "0.30"), r("hedis_fum_30d", 2024, "0.34"),        # +4 points: not enough
        r("hedis_wcv", 2024, "0.90", practice="pr2"),                               # no prior year: not compared
    ], RATES)
    june = many_months(1000, dt.date(2024, 6, 1), "child", practice="pr1")
    may = many_months(1500, dt.date(2024, 5, 1), "child", practice="pr1")
    am = june.union(may, distinct=False)
    lives = phm.lives_on(am, p)
    got = rows(phm.pay_for_improvement(lives, phm.improved_measures(rates, p, 2024), p, 2024))
    assert [(g["practice_id"], g["lives"], g["measures_improved"], g["measures_compared"], g["bonus_cents"]) for g in got] == [
        ("pr1", 1000, 3, 4, 63_000_00)]


def test_program_quality_score_is_read_from_the_quality_stage_when_present():
    from allpayer.payments.run import _quality_score

    con = ibis.duckdb.connect()
    p = program()
    assert _quality_score(con, p, 2024) is None  # no quality stage yet: PHM pays base only
    con.raw_sql("create table quality_program_scores (program_id varchar, performance_year integer, "
                "quality_score decimal(18,10))")
    con.raw_sql("insert into quality_program_scores values ('vt-2024-medicaid', 2024, 0.8125), "
                "('vt-2024-medicaid', 2023, 0.5), ('vt-2024-medicare', 2024, 0.99)")
    assert _quality_score(con, p, 2024) == Decimal("0.8125")
    assert phm.ladder_pmpm(p.payments.phm, _quality_score(con, p, 2024), dt.date(2024, 12, 1))[0] == Decimal("4.00")


def test_a_score_marked_not_measured_counts_as_no_score():
    from allpayer.payments.run import _quality_score

    con = ibis.duckdb.connect()
    con.raw_sql("create table quality_program_scores (program_id varchar, performance_year integer, "
                "quality_score decimal(18,10), measured boolean)")
    con.raw_sql("insert into quality_program_scores values ('vt-2024-medicaid', 2024, 0.9, false)")
    assert _quality_score(con, program(), 2024) is None


def test_pay_for_improvement_compares_with_last_years_program():
    """A program id carries its year: the 2024 program's rates are compared with the 2023
    program's practice rates when the terms name it (`baseline_program_id`); without it, the
    2023 rates of another id are not read and nothing is improved."""
    def edit(d, baseline=None):
        d["payments"]["pay_for_improvement"] = {
            "amount_per_member_per_measure": "21.00", "improvement_points": "0.05",
            "measures": ["hedis_wcv"], "lives_as_of": "2024-06-30",
            **({"baseline_program_id": baseline} if baseline else {})}

    def rates_of(p):
        return table([
            {"program_id": "vt-2023-medicaid", "measure_id": "hedis_wcv", "level": "practice", "level_id": "pr1",
             "performance_year": 2023, "rate": Decimal("0.30"), "inverse": False},
            {"program_id": p.program_id, "measure_id": "hedis_wcv", "level": "practice", "level_id": "pr1",
             "performance_year": 2024, "rate": Decimal("0.36"), "inverse": False},
        ], RATES)

    linked = program(edit=lambda d: edit(d, "vt-2023-medicaid"))
    assert rows(phm.improved_measures(rates_of(linked), linked, 2024)) == [
        {"practice_id": "pr1", "measures_improved": 1, "measures_compared": 1}]
    alone = program(edit=edit)
    assert alone.program_id != "vt-2023-medicaid"
    assert rows(phm.improved_measures(rates_of(alone), alone, 2024)) == []
