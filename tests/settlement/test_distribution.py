"""Distribution of the net settlement to risk-bearing participants (domain.md R9)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allpayer.settlement.distribution import Participant, distribute


def P(pid, weight, limit):
    return Participant(pid, Decimal(weight), limit)


def test_hand_checked_redistribution_until_stable():
    # $1,000.00 over weights 5/3/2: first split 500/300/200; c's limit is 150: c held at 150.
    # Round 2: the other $850 split 5:3 -> 531.25/318.75; a's limit is 520: a held at 520.
    # Round 3: b alone takes the remaining $330 (below its $1,000 limit).
    parts = [P("a", 5, 52000), P("b", 3, 100000), P("c", 2, 15000)]
    d = distribute(100000, parts)
    got = {a.participant_id: (a.initial_cents, a.final_cents, a.at_limit) for a in d.allocations}
    assert got == {"a": (50000, 52000, True), "b": (30000, 33000, False), "c": (20000, 15000, True)}
    assert d.reserve_cents == 0
    assert d.rounds == 3


def test_everyone_at_limit_sends_the_rest_to_the_reserve():
    d = distribute(-100000, [P("a", 1, 10000), P("b", 1, 20000)])
    assert [a.final_cents for a in d.allocations] == [-10000, -20000]
    assert d.reserve_cents == -70000


def test_residual_to_reserve_does_not_redistribute():
    d = distribute(100000, [P("a", 1, 10000), P("b", 1, 100000)], residual="reserve")
    assert [a.final_cents for a in d.allocations] == [10000, 50000]
    assert d.reserve_cents == 40000


def test_reserve_rate_first():
    d = distribute(100001, [P("a", 1, 10**9), P("b", 1, 10**9)], reserve_rate=Decimal("0.10"))
    assert d.reserve_rate_cents == 10000  # 10% of $1,000.01, half up
    assert [a.final_cents for a in d.allocations] == [45001, 45000]
    assert d.reserve_cents == 10000


def test_no_weight_everything_to_reserve():
    d = distribute(500, [P("a", 0, 100)])
    assert d.allocations[0].final_cents == 0 and d.reserve_cents == 500


def test_negative_weight_refused():
    with pytest.raises(ValueError, match="negative weight"):
        distribute(1, [P("a", -1, 1)])


participants = st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 10**9)), min_size=1, max_size=12
).map(lambda xs: [P(f"p{i}", w, lim) for i, (w, lim) in enumerate(xs)])


@settings(max_examples=300, deadline=None)
@given(net=st.integers(-10**11, 10**11), parts=participants, residual=st.sampled_from(["pro_rata_uncapped", "reserve"]),
       reserve_rate=st.sampled_from([Decimal(0), Decimal("0.05"), Decimal("0.5")]))
def test_properties_sum_to_the_cent_and_limits_hold(net, parts, residual, reserve_rate):
    d = distribute(net, parts, reserve_rate, residual)
    # participants + reserve = ACO net, to the cent
    assert sum(a.final_cents for a in d.allocations) + d.reserve_cents == net
    for a, p in zip(d.allocations, parts):
        assert abs(a.final_cents) <= p.limit_cents  # nobody exceeds its limit
        assert a.final_cents == 0 or (a.final_cents > 0) == (net > 0)  # same direction as the result
    if residual == "pro_rata_uncapped" and d.reserve_cents != d.reserve_rate_cents:
        # something reached the reserve only because every weighted participant is at its limit
        assert all(a.at_limit for a, p in zip(d.allocations, parts) if p.weight > 0)


def test_hsa_result_weights_follow_the_direction_of_the_result():
    from allpayer.settlement.distribution import distribute_program
    from allpayer.settlement.inputs import ParticipantBase
    from tests.settlement.helpers import program

    p = program({"risk": "two_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net"],
                 "savings_rate": "0.5", "loss_rate": "0.5", "msr": "0", "mlr": "0",
                 "distribution": {"weight_basis": "hsa_result", "max_risk_and_sharing_limit": "0.5"}})
    bases = [ParticipantBase("h1", "a", 10, Decimal(0), 1000_00, 800_00, 1000_00, None),   # saved 200
             ParticipantBase("h2", "b", 10, Decimal(0), 1000_00, 1100_00, 1000_00, 5_00)]  # lost 100
    d = distribute_program(p, 100_00, bases)
    assert [a.final_cents for a in d.allocations] == [100_00, 0]  # savings go to the HSA that saved
    d = distribute_program(p, -60_00, bases)
    assert [a.final_cents for a in d.allocations] == [0, -60_00]  # losses to the HSA that lost
    assert d.allocations[1].combined_cents == -55_00  # + its fixed payment performance


def test_combined_results_leave_out_fixed_payment_performance_when_the_terms_say_so():
    from allpayer.settlement.distribution import distribute_program
    from allpayer.settlement.inputs import ParticipantBase
    from tests.settlement.helpers import program

    terms = {"risk": "two_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net"],
             "savings_rate": "0.5", "loss_rate": "0.5", "msr": "0", "mlr": "0",
             "distribution": {"weight_basis": "ffs_revenue", "max_risk_and_sharing_limit": "0.5"}}
    bases = [ParticipantBase("h1", "a", 10, Decimal(0), 1000_00, 800_00, 1000_00, 7_00),
             ParticipantBase("h2", "b", 10, Decimal(0), 1000_00, 1100_00, 1000_00, -3_00)]
    included = distribute_program(program(terms), 100_00, bases)
    assert [(a.final_cents, a.combined_cents) for a in included.allocations] == [(50_00, 57_00), (50_00, 47_00)]
    terms["distribution"]["include_fixed_payment_performance"] = False
    left_out = distribute_program(program(terms), 100_00, bases)
    assert [(a.final_cents, a.combined_cents) for a in left_out.allocations] == [(50_00, 50_00), (50_00, 50_00)]
    assert [a.fixed_payment_performance_cents for a in left_out.allocations] == [7_00, -3_00]  # still shown
    assert any("leave out fixed payment performance" in n for n in left_out.notes)


def test_risk_bearers_are_the_hospitals_participating_for_the_programs_payer_in_the_year():
    """The roster lists participation per payer and effective period (its grain): a hospital of
    the HSA that participates only for another payer, or whose participation ended before the
    performance year, bears none of this program's result. Hand-made population of
    tests/settlement/test_employers.py: every attributed month in HSA burlington, program payer
    mvp, 10 attributed months, FFS cost 19,160,001 cents."""
    import datetime as dt

    import pyarrow as pa

    from allpayer.settlement.inputs import participant_bases
    from tests.settlement.test_employers import SOV, con_with

    con = con_with()
    roster = [  # hospital, payer, participation, start, end
        ("HOSP-A", "mvp", "participant", dt.date(2020, 1, 1), None),
        ("HOSP-B", "medicaid", "participant", dt.date(2020, 1, 1), None),  # another payer's program
        ("HOSP-C", "mvp", "participant", dt.date(2020, 1, 1), dt.date(2022, 12, 31)),  # left before 2024
        ("HOSP-D", "mvp", "non_participating", dt.date(2020, 1, 1), None),
        ("HOSP-D", "medicaid", "participant", dt.date(2020, 1, 1), None),
    ]
    n = len(roster)
    con.create_table("provider_roster", pa.table({
        "npi": [f"100000000{i}" for i in range(n)], "tin": ["123456789"] * n, "practice_id": [r[0] for r in roster],
        "organization_id": [r[0] for r in roster], "practice_type": ["hospital"] * n, "hsa": ["burlington"] * n,
        "payer": [r[1] for r in roster], "participation": [r[2] for r in roster],
        "effective_start_date": [r[3] for r in roster],
        "effective_end_date": pa.array([r[4] for r in roster], pa.date32())}))
    bases = participant_bases(con, SOV, 2024)
    # HOSP-A alone takes the HSA's whole weight, target, actual and limit base (not a quarter each)
    assert [(b.participant_id, b.attributed_member_months, b.actual_cents, b.limit_base_cents) for b in bases] == [
        ("HOSP-A", 10, 19_160_001, 19_160_001)]
