"""Participant revenue, the base of the caps ``of: revenue``: computed from the loaded claims
(MSSP's ACO participant revenue, 42 CFR 425.20), or supplied in the terms or for the run."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import pyarrow as pa

from allpayer.settlement.engine import SettlementInputs, settle_program
from allpayer.settlement.inputs import participant_revenue

from .helpers import cents, program

D = dt.date
CAPPED = {
    "risk": "two_sided",
    "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "cap", "net"],
    "savings_rate": "0.50", "loss_rate": "0.30", "msr": "0.02", "symmetric": True,
    "caps": {"savings": [{"rate": "0.10", "of": "target"}],
             "losses": [{"rate": "0.08", "of": "revenue"}, {"rate": "0.04", "of": "target"}]},
}

# claim id, line rows [(adjustment_sequence, paid, paid_date)], claim type, payer, service date, billing TIN, CCN,
# arrangement
CLAIMS = [
    ("c1", [(0, "1000.00", D(2022, 3, 20))], "professional", "testpayer", D(2022, 3, 10), "111111111", None, "ffs"),
    ("c2", [(0, "5000.00", D(2022, 4, 20))], "institutional", "testpayer", D(2022, 4, 1), "999999999", "470001", "ffs"),
    ("c3", [(0, "700.00", D(2022, 4, 20))], "professional", "testpayer", D(2022, 4, 1), "999999999", "470001", "ffs"),
    ("c4", [(0, "300.00", D(2022, 4, 20))], "professional", "testpayer", D(2022, 4, 1), "444444444", None, "ffs"),
    ("c5", [(0, "200.00", D(2022, 3, 20))], "professional", "testpayer", D(2022, 3, 1), "555555555", None, "ffs"),
    ("c6", [(0, "250.00", D(2022, 9, 20))], "professional", "testpayer", D(2022, 9, 1), "555555555", None, "ffs"),
    ("c7", [(0, "800.00", D(2022, 4, 20))], "professional", "otherpayer", D(2022, 4, 1), "111111111", None, "ffs"),
    ("c8", [(0, "900.00", D(2022, 1, 20))], "professional", "testpayer", D(2021, 12, 15), "111111111", None, "ffs"),
    ("c9", [(0, "100.00", D(2022, 5, 10)), (1, "-40.00", D(2022, 6, 1))], "professional", "testpayer",
     D(2022, 5, 1), "111111111", None, "ffs"),
    ("c10", [(0, "2000.00", D(2022, 7, 20))], "institutional", "testpayer", D(2022, 7, 1), "111111111", "470001",
     "ffs"),
    ("c11", [(0, "400.00", D(2023, 5, 1))], "professional", "testpayer", D(2022, 12, 1), "111111111", None, "ffs"),
    ("c12", [(0, "0.00", D(2022, 5, 10))], "institutional", "testpayer", D(2022, 5, 1), "111111111", None, "fpp"),
]
# c1 1,000 (TIN) + c2 5,000 (CCN, institutional) + c5 200 (TIN in effect) + c9 100 - 40 (netted)
# + c10 2,000 (TIN and CCN: once). Not counted: c3 (CCN on a professional claim), c4 (TIN not a
# participant of this payer), c6 (TIN's participation ended 30 June), c7 (other payer), c8 (2021),
# c11 (paid after the paid-through date), c12 (shadow claim).
EXPECTED = cents("8260.00")
PAID_THROUGH = D(2023, 3, 31)


def _con():
    rows = [(cid, seq, paid, pdate, ctype, payer, sdate, tin, ccn, arr)
            for cid, lines, ctype, payer, sdate, tin, ccn, arr in CLAIMS for seq, paid, pdate in lines]
    n = len(rows)
    med = pa.table({
        "claim_id": [r[0] for r in rows], "claim_line_number": [1] * n, "adjustment_sequence": [r[1] for r in rows],
        "paid_amount": pa.array([Decimal(r[2]) for r in rows], pa.decimal128(18, 2)),
        "allowed_amount": pa.array([abs(Decimal(r[2])) for r in rows], pa.decimal128(18, 2)),
        "paid_date": [r[3] for r in rows], "claim_type": [r[4] for r in rows], "payer": [r[5] for r in rows],
        "claim_start_date": [r[6] for r in rows], "claim_line_start_date": [r[6] for r in rows],
        "billing_tin": [r[7] for r in rows], "facility_ccn": pa.array([r[8] for r in rows], pa.string()),
        "payment_arrangement": [r[9] for r in rows],
        "bill_type_code": pa.array([None] * n, pa.string()), "revenue_center_code": pa.array([None] * n, pa.string()),
        "place_of_service_code": pa.array([None] * n, pa.string()), "hcpcs_code": pa.array([None] * n, pa.string()),
    })
    roster = [  # tin, ccn, payer, participation, start, end
        ("111111111", None, "testpayer", "participant", D(2020, 1, 1), None),
        ("666666666", "470001", "testpayer", "participant", D(2020, 1, 1), None),
        ("444444444", None, "otherpayer", "participant", D(2020, 1, 1), None),
        ("444444444", None, "testpayer", "non_participating", D(2020, 1, 1), None),
        ("555555555", None, "testpayer", "participant", D(2020, 1, 1), D(2022, 6, 30)),
        ("999999999", None, "otherpayer", "participant", D(2020, 1, 1), None),
    ]
    ro = pa.table({"tin": [r[0] for r in roster], "ccn": pa.array([r[1] for r in roster], pa.string()),
                   "payer": [r[2] for r in roster], "participation": [r[3] for r in roster],
                   "effective_start_date": [r[4] for r in roster],
                   "effective_end_date": pa.array([r[5] for r in roster], pa.date32())})
    con = ibis.duckdb.connect()
    con.create_table("medical_claim", med)
    con.create_table("provider_roster", ro)
    return con


def test_revenue_computed_from_the_claims():
    p = program(CAPPED)
    revenue, note = participant_revenue(_con(), p, 2022, paid_through=PAID_THROUGH)
    assert revenue == EXPECTED
    assert note.startswith("computed from 5 claim lines")
    assert "42 CFR 425.20" in note and "paid through 2023-03-31" in note


def test_supplied_figures_come_first():
    con = _con()
    p = program({**CAPPED, "participant_revenue": {"value": "30000000.00", "basis": "INF"}})
    assert participant_revenue(con, p, 2022) == (cents("30000000.00"),
                                                 "from the terms (settlement.participant_revenue)")
    assert participant_revenue(con, p, 2022, supplied_cents=123) == (123, "supplied for this run (--participant-revenue)")


def test_no_revenue_cap_no_revenue():
    p = program({**CAPPED, "caps": {"savings": [{"rate": "0.10", "of": "target"}],
                                    "losses": [{"rate": "0.04", "of": "target"}]}})
    assert participant_revenue(_con(), p, 2022) == (None, "")


def test_the_statement_shows_the_revenue_and_its_source():
    p = program(CAPPED)
    revenue, note = participant_revenue(_con(), p, 2022, paid_through=PAID_THROUGH)
    # T $1,000,000, A $1,100,000: loss 10% >= 2% MLR; 30% -> -$30,000; caps: 8% x $8,260.00 = $660.80,
    # 4% x target = $40,000: the revenue cap binds
    s = settle_program(p, SettlementInputs(cents("1000000.00"), cents("1100000.00"), members=5000,
                                           participant_revenue_cents=revenue, participant_revenue_note=note))
    assert s.amount("share_shared") == -cents("30000.00")
    assert s.amount("participant_revenue") == cents("8260.00")
    assert s.line("participant_revenue").note.startswith("computed from 5 claim lines")
    assert s.amount("cap_losses_1") == cents("660.80")
    assert s.amount("cap_shared") == -cents("660.80")
    assert s.net_cents == -cents("660.80")
