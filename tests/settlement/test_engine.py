"""The terms-driven settlement engine on hand-checked cases (spec/domain.md R8, §3, §4)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allpayer.settlement.engine import ASSUMED_FULL_CREDIT, SettlementError, SettlementInputs, settle_program
from allpayer.terms import load_program, load_programs, programs_dir

from .helpers import cents, program

VT2024 = programs_dir() / "vermont" / "2024"

# T18 (domain.md §3 worked example): 20,000 assigned, UB $12,173.8275 -> total $243,476,550
T18_BENCHMARK = cents("243476550.00")
T18_SAVINGS_E = cents("234000000.00")  # E = $11,700 per capita
T18_LOSS_E = cents("252000000.00")  # E = $12,600 per capita


def enhanced():
    return program({
        "risk": "two_sided",
        "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "quality_modifier", "cap", "sequestration", "net"],
        "savings_rate": "0.75", "loss_rate": "0.75", "msr": "0.02", "symmetric": True,
        "caps": {"savings": [{"rate": "0.20", "of": "target"}], "losses": [{"rate": "0.15", "of": "target"}]},
        "quality_modifiers": [
            {"method": "gate", "min_score": "0.40"},
            {"method": "loss_side", "applies_to": "losses", "max_rate": "0.75", "loss_rate_floor": "0.40",
             "loss_rate_ceiling": "0.75"},
        ],
        "sequestration": {"rate": "0.02"},
    }, quality=True)


def basic_e():
    return program({
        "risk": "two_sided",
        "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "cap", "net"],
        "savings_rate": "0.50", "loss_rate": "0.30", "msr": "0.02", "symmetric": True,
        "caps": {"savings": [{"rate": "0.10", "of": "target"}],
                 "losses": [{"rate": "0.08", "of": "revenue"}, {"rate": "0.04", "of": "target"}]},
    })


def basic_a():
    return program({
        "risk": "one_sided",
        "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "cap", "net"],
        "savings_rate": "0.40",
        "msr_by_population": [{"min_members": 5000, "rate": "0.039"}, {"min_members": 15000, "rate": "0.027"},
                              {"min_members": 20000, "rate": "0.025"}, {"min_members": 60000, "rate": "0.02"}],
        "caps": {"savings": [{"rate": "0.10", "of": "target"}]},
    })


def test_t18_savings_and_enhanced_share_with_sequestration():
    r = settle_program(enhanced(), SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E, members=20_000,
                                                    quality_score=Decimal("0.80"), quality_gate_met=True))
    assert r.gross_cents == cents("9476550.00")  # T18 savings
    assert r.amount("share_shared") == cents("7107412.50")  # T18 ENHANCED, QPS met: 75%
    assert r.amount("cap_savings_1") == cents("48695310.00")  # 20% of benchmark, not binding
    assert r.amount("sequestration") == -cents("142148.25")
    assert r.net_cents == cents("6965264.25")  # domain.md: after 2% sequestration


def test_t18_enhanced_loss_uses_the_quality_scaled_loss_rate():
    r = settle_program(enhanced(), SettlementInputs(T18_BENCHMARK, T18_LOSS_E, members=20_000,
                                                    quality_score=Decimal("0.80"), quality_gate_met=True))
    assert r.gross_cents == -cents("8523450.00")
    assert r.rate("quality_loss_rate") == Decimal("0.40")  # clamp(1 - 0.75 x 0.8, 0.40, 0.75)
    assert r.net_cents == -cents("3409380.00")  # domain.md T18 loss case, ENHANCED
    assert r.amount("sequestration") == 0  # sequestration applies to savings only


def test_t18_enhanced_loss_with_the_gate_missed_owes_at_the_ceiling():
    # domain.md M6 / 42 CFR 425.610(f): an ENHANCED ACO that fails the quality performance
    # standard owes at 75%, whatever its score: 8,523,450 x 0.75 = 6,392,587.50 (not 40% x loss)
    r = settle_program(enhanced(), SettlementInputs(T18_BENCHMARK, T18_LOSS_E, members=20_000,
                                                    quality_score=Decimal("0.80"), quality_gate_met=False))
    assert r.rate("quality_loss_rate") == Decimal("0.75")
    assert r.net_cents == -cents("6392587.50")
    # no gate flag: the score against min_score decides (0.30 < 0.40: not met)
    r = settle_program(enhanced(), SettlementInputs(T18_BENCHMARK, T18_LOSS_E, quality_score=Decimal("0.30")))
    assert r.rate("quality_loss_rate") == Decimal("0.75")
    assert r.net_cents == -cents("6392587.50")


def test_t18_gate_missed_gives_no_savings():
    r = settle_program(enhanced(), SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E, quality_score=Decimal("0.8"),
                                                    quality_gate_met=False))
    assert r.amount("quality_gate_shared") == 0 and r.net_cents == 0


def test_t18_basic_e_loss_limited_by_revenue():
    r = settle_program(basic_e(), SettlementInputs(T18_BENCHMARK, T18_LOSS_E,
                                                   participant_revenue_cents=cents("30000000.00")))
    assert r.amount("share_shared") == -cents("2557035.00")  # 30% of the loss
    assert r.amount("cap_losses_1") == cents("2400000.00")  # 8% of $30M revenue
    assert r.amount("cap_losses_2") == cents("9739062.00")  # 4% of benchmark
    assert r.net_cents == -cents("2400000.00")  # T18: BASIC E loss limited to $2,400,000


def test_t18_basic_e_savings():
    r = settle_program(basic_e(), SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E))
    assert r.net_cents == cents("4738275.00")  # domain.md: BASIC E (50%)


def test_revenue_cap_without_revenue_is_skipped_and_said():
    r = settle_program(basic_e(), SettlementInputs(T18_BENCHMARK, T18_LOSS_E))
    assert r.amount("cap_losses_1") is None and "not applied" in r.line("cap_losses_1").note
    assert r.net_cents == -cents("2557035.00")  # 4% of benchmark does not bind


def test_t18_basic_a_size_based_msr():
    r = settle_program(basic_a(), SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E, members=20_000))
    assert r.rate("msr") == Decimal("0.025")
    assert r.net_cents == cents("3790620.00")  # domain.md: BASIC A, 3.892% >= 2.5% -> 40%
    # E = $11,900: 2.25% passes an elected 2% but fails the size-based 2.5%
    r = settle_program(basic_a(), SettlementInputs(T18_BENCHMARK, cents("238000000.00"), members=20_000))
    assert r.gross_cents == cents("5476550.00") and r.net_cents == 0
    # one-sided: losses are never shared
    r = settle_program(basic_a(), SettlementInputs(T18_BENCHMARK, T18_LOSS_E, members=20_000))
    assert r.net_cents == 0 and "one-sided" in r.line("result_counted").note


# CMS's MSR table for one-sided ACOs (42 CFR 425.604(b); domain.md M4): each band of assigned
# beneficiaries runs from its low-end rate to its high-end rate, which is the next band's low end.
CMS_MSR_BANDS = [(5000, "0.039"), (6000, "0.036"), (7000, "0.034"), (8000, "0.032"), (9000, "0.031"),
                 (10000, "0.030"), (15000, "0.027"), (20000, "0.025"), (50000, "0.022"), (60000, "0.020")]


@pytest.mark.parametrize(("members", "published"), [
    # CMS's PY2018 public use file (spec/mssp_examples.csv): the MSR of Track 1 ACOs, as published
    (54981, "0.0210037"), (9817, "0.030182182"), (5451, "0.037645646"), (14719, "0.027168034"),
    # the ends of a band, and past the last row
    (5000, "0.039"), (5999, "0.036"), (6000, "0.036"), (49999, "0.022"), (77372, "0.02"),
])
def test_a_linear_population_table_reproduces_cmss_msr(members, published):
    rows = [{"min_members": m, "rate": r} for m, r in CMS_MSR_BANDS]
    p = program({"risk": "one_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net"],
                 "savings_rate": "0.50", "msr_by_population": rows, "population_rates": "linear"})
    msr = settle_program(p, SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E, members=members)).rate("msr")
    places = Decimal(1).scaleb(-len(published.split(".")[1]))
    assert msr.quantize(places) == Decimal(published)
    # 54,981 members: 2.2% - 0.2% x 4,981 / 9,999, exactly (no rounding before the test)
    if members == 54981:
        assert msr == Decimal("0.022") - Decimal("0.002") * 4981 / Decimal(9999)
    # read as steps, the same table gives the low end of the band
    step = p.model_copy(update={"settlement": p.settlement.model_copy(update={"population_rates": "step"})})
    low = [Decimal(r) for m, r in CMS_MSR_BANDS if m <= members][-1]
    assert settle_program(step, SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E, members=members)).rate("msr") == low


def test_multiplier_on_savings():
    p = program({"risk": "two_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "quality_modifier", "net"],
                 "savings_rate": "0.75", "loss_rate": "0.75", "msr": "0.02", "symmetric": True,
                 "quality_modifiers": [{"method": "multiplier"}]}, quality=True)
    r = settle_program(p, SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E, quality_score=Decimal("0.55")))
    assert r.net_cents == cents("3909076.88")  # domain.md: 41.25% sliding scale, half up


def test_commercial_msr_example_gives_zero():
    # target $500.00 PMPM, actual $495.50 PMPM, 125,000 member months, 1% MSR: 0.9% < 1% -> $0
    p = program({"risk": "two_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net"],
                 "savings_rate": "0.50", "loss_rate": "0.50", "msr": "0.01", "symmetric": True})
    r = settle_program(p, SettlementInputs(cents("500.00") * 125_000, cents("495.50") * 125_000, member_months=125_000))
    assert r.gross_cents == cents("562500.00")
    assert r.rate("gross_rate") == Decimal("0.009")
    assert r.rate("msr_threshold_met") == 0
    assert r.net_cents == 0


def test_share_above_threshold_only():
    p = program({"risk": "two_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net"],
                 "savings_rate": "0.50", "loss_rate": "0.50", "msr": "0.01", "symmetric": True,
                 "share_from": "above_threshold"})
    r = settle_program(p, SettlementInputs(cents("1000000.00"), cents("970000.00")))
    assert r.amount("result_counted") == cents("20000.00")  # $30,000 less the 1% threshold
    assert r.net_cents == cents("10000.00")


def test_t7_vmng_corridor_savings_loss_and_combined():
    """T7: T = $45.6M, A = FPP $17.1M + FFS outside FPP $27.0M = $44.1M; 3% corridor."""
    p = load_program(VT2024 / "medicaid.yaml")
    inputs = SettlementInputs(cents("45600000.00"), cents("44900000.00"), member_months=114_000,
                              fixed_payment_actual_cents=cents("44100000.00"),
                              fixed_payment_performance_cents=cents("900000.00"))  # FPP 17.1M - shadow 16.2M
    r = settle_program(p, inputs)
    assert r.amount("actual_tcoc") == cents("44100000.00")  # the fixed-payment definition wins
    assert r.gross_cents == cents("1500000.00")
    assert r.amount("corridor_shared") == cents("1368000.00")  # ACO keeps 3% of target
    assert r.amount("payer_keeps") == cents("132000.00")  # DVHA keeps the rest
    assert r.combined_cents == cents("2268000.00")  # + FPP performance $0.9M
    assert r.line("quality_score").note == ASSUMED_FULL_CREDIT
    loss = settle_program(p, SettlementInputs(cents("45600000.00"), 0, fixed_payment_actual_cents=cents("48000000.00")))
    assert loss.net_cents == -cents("1368000.00")  # ACO pays 3%
    assert loss.amount("payer_keeps") == -cents("1032000.00")  # DVHA absorbs the rest


def test_tiered_corridor_bands():
    p = program({"risk": "two_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "corridor", "net"],
                 "msr": "0", "mlr": "0",
                 "corridors": [{"upper": "-0.05", "aco_share": "0"}, {"lower": "-0.05", "upper": "0", "aco_share": "0.5"},
                               {"lower": "0", "upper": "0.05", "aco_share": "0.8"}, {"lower": "0.05", "aco_share": "0.4"}]})
    # 8% savings on $1,000,000: 5% at 80% + 3% at 40% = $40,000 + $12,000
    r = settle_program(p, SettlementInputs(cents("1000000.00"), cents("920000.00")))
    assert r.net_cents == cents("52000.00")
    # 7% losses: 5% at 50%, the rest beyond the band stays with the payer
    r = settle_program(p, SettlementInputs(cents("1000000.00"), cents("1070000.00")))
    assert r.net_cents == -cents("25000.00") and r.amount("payer_keeps") == -cents("45000.00")


def test_withhold_returned_by_score_and_advance_payments_netted():
    p = program({"risk": "two_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "quality_modifier",
                                                "advance_payments", "net"],
                 "savings_rate": "0.50", "loss_rate": "0.50", "msr": "0", "mlr": "0",
                 "quality_modifiers": [{"method": "withhold_return", "applies_to": "both",
                                        "withhold": {"rate": "0.03"}}]},
                quality=True,
                payments={"advance_payments": [{"name": "pcmh", "annual_amount": "10000.00"}]})
    r = settle_program(p, SettlementInputs(cents("1000000.00"), cents("960000.00"), quality_score=Decimal("0.9")))
    assert r.amount("share_shared") == cents("20000.00")
    assert r.amount("withheld") == cents("30000.00")  # 3% of target
    assert r.amount("withhold_returned") == cents("27000.00")  # x 0.9
    assert r.amount("advance_payments") == -cents("10000.00")
    assert r.net_cents == cents("37000.00")


def test_quality_not_measured_is_labelled():
    r = settle_program(enhanced(), SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E))
    assert r.line("quality_score").note == ASSUMED_FULL_CREDIT
    assert ASSUMED_FULL_CREDIT in r.line("quality_gate_shared").note


def test_lines_follow_the_terms_order_and_name_their_terms():
    p = load_program(VT2024 / "medicare.yaml")
    r = settle_program(p, SettlementInputs(cents("5000000.00"), cents("4700000.00")))
    steps = [ln.step for ln in r.lines if ln.step not in ("inputs", "combined")]
    seen = list(dict.fromkeys(steps))
    assert seen == [s for s in p.settlement.steps if s in seen]
    assert all(ln.term for ln in r.lines)
    assert [ln.line_no for ln in r.lines] == list(range(1, len(r.lines) + 1))


def test_zero_target_is_refused():
    with pytest.raises(SettlementError, match="target must be positive"):
        settle_program(basic_e(), SettlementInputs(0, 100))


SHIPPED = [p for p in load_programs([programs_dir() / "vermont"]) if p.performance_year == 2024]


@settings(max_examples=60, deadline=None)
@given(i=st.integers(0, len(SHIPPED) - 1), target=st.integers(1, 10**11), a=st.integers(0, 2 * 10**11),
       b=st.integers(0, 2 * 10**11), q=st.decimals(0, 1, places=4))
def test_more_savings_never_yields_less_shared(i, target, a, b, q):
    p = SHIPPED[i]
    lo, hi = sorted((a, b))  # lower actual = more savings
    more = settle_program(p, SettlementInputs(target, lo, members=30_000, quality_score=q))
    less = settle_program(p, SettlementInputs(target, hi, members=30_000, quality_score=q))
    assert more.shared_cents >= less.shared_cents
    assert more.net_cents >= less.net_cents
    assert more.combined_cents == more.net_cents  # no fixed payment performance given


def test_the_fixed_payment_performance_line_says_why_it_is_zero():
    # a program without fixed prospective payments has nothing to compute
    r = settle_program(basic_a(), SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E, members=20_000))
    line = r.line("fixed_payment_performance")
    assert line.amount_cents == 0 and line.note == "the program has no fixed prospective payments (payments.fpp): zero"
    # one with them, before the payments stage has run, is not computed yet
    medicaid = load_program(programs_dir() / "vermont" / "2024" / "medicaid.yaml")
    assert medicaid.payments.fpp is not None
    r = settle_program(medicaid, SettlementInputs(T18_BENCHMARK, T18_SAVINGS_E, members=20_000))
    assert r.line("fixed_payment_performance").note.startswith("not yet computed")


def test_withhold_rebuilt_from_fpp_paid_rounds_half_up():
    """Without the payments stage's withheld cents, the withhold is rebuilt from FPP paid (net of
    it): gross = paid / (1 - rate), to a cent half up, then x rate. At a 20% withhold, 2 cents
    paid are 2.5 cents gross: 3 cents half up (2 half-even), so 0.6 -> 1 cent withheld."""
    import yaml

    from allpayer.terms.loader import parse_program

    data = yaml.safe_load((VT2024 / "medicaid.yaml").read_text())
    data["payments"]["fpp"]["withhold"]["value"] = "0.20"
    p = parse_program(data, "medicaid-withhold-20")
    r = settle_program(p, SettlementInputs(cents("1000000.00"), cents("990000.00"), fpp_paid_cents=2,
                                           quality_score=Decimal("1")))
    assert r.amount("withheld") == 1
