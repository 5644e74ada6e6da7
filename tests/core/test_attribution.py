"""Attribution: hand-checked cases for each rule, a property, changes and reconciliation.

Each scenario is a small population whose expected result is worked out by hand in the comments
next to the data. Dollar amounts are written in cents (10_000 = $100.00). The scenarios run once
per module (a program's attribution compiles to one query).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import ibis
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allpayer.core.attribution import (
    ATTRIBUTION_SCHEMA,
    Options,
    assignment,
    assignment_periods,
    attribute,
    attribution_changes,
    lookback_window,
    monthly_roster,
    primary_care_services,
    reconcile_attribution,
    recency_weights,
)
from allpayer.errors import RunError
from allpayer.reference.primary_care import primary_care_codes
from allpayer.terms.loader import parse_program

D = dt.date
YEAR = 2024
MONTHS = [D(YEAR, m, 1) for m in range(1, 13)]

CLAIM = {
    "person_id": "string",
    "member_id": "string",
    "payer": "string",
    "claim_id": "string",
    "claim_line_number": "int64",
    "claim_type": "string",
    "service_date": "date",
    "hcpcs_code": "string",
    "revenue_center_code": "string",
    "place_of_service_code": "string",
    "rendering_npi": "string",
    "billing_npi": "string",
    "billing_tin": "string",
    "rendering_tin": "string",
    "facility_ccn": "string",
    "allowed_cents": "int64",
    "claim_status": "string",
}
ROSTER = {
    "npi": "string",
    "tin": "string",
    "ccn": "string",
    "provider_type": "string",
    "specialty_code": "string",
    "primary_care_flag": "boolean",
    "practice_id": "string",
    "practice_name": "string",
    "practice_type": "string",
    "hsa": "string",
    "payer": "string",
    "participation": "string",
    "effective_start_date": "date",
    "effective_end_date": "date",
}
PM = {
    "program_id": "string",
    "member_id": "string",
    "person_id": "string",
    "month": "date",
    "death_date": "date",
    "aid_category": "string",
}
EM = {
    "person_id": "string",
    "member_id": "string",
    "payer": "string",
    "payer_type": "string",
    "plan": "string",
    "group_id": "string",
    "month": "date",
    "death_date": "date",
}


def table(rows: list[dict], schema: dict) -> ibis.Table:
    return ibis.memtable({c: [r.get(c) for r in rows] for c in schema}, schema=ibis.schema(schema))


def run(expr) -> list[dict]:
    return ibis.duckdb.connect().to_pyarrow(expr).to_pylist()


def materialize(expr) -> ibis.Table:
    """Execute once and continue from the result (later stages then compile only themselves)."""
    return ibis.memtable(ibis.duckdb.connect().to_pyarrow(expr))


def program(attribution: dict, *, kind="medicaid", payer="mcd", plans=("std",), program_id="t-2024"):
    """A minimal valid program around an attribution block."""
    return parse_program(
        {
            "program_id": program_id,
            "name": "Test program",
            "aco": {"id": "aco", "name": "Test ACO"},
            "payer": payer,
            "product": "p",
            "kind": kind,
            "performance_year": YEAR,
            "population": {"plans": list(plans)},
            "attribution": attribution,
            "target": {
                "method": "trended_base",
                "base_years": [{"year": YEAR - 1, "weight": "1"}],
                "trend": {"rates": {YEAR: "0.05"}},
            },
            "settlement": {
                "risk": "two_sided",
                "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net"],
                "savings_rate": "0.50",
                "loss_rate": "0.50",
                "msr": "0.02",
                "mlr": "0.02",
            },
        }
    )


_claim_seq = iter(range(1, 10**6))


def visit(person, day, npi, tin, cents, *, hcpcs="99213", pos="11", payer="mcd", member=None, **kw):
    """One claim line (professional unless `claim_type` says otherwise)."""
    row = dict(
        person_id=person,
        member_id=member or "M" + person[1:],
        payer=payer,
        claim_id=f"c{next(_claim_seq)}",
        claim_line_number=1,
        claim_type="professional",
        service_date=day,
        hcpcs_code=hcpcs,
        place_of_service_code=pos,
        rendering_npi=npi,
        billing_tin=tin,
        allowed_cents=cents,
    )
    row.update(kw)
    return row


def clinician(npi, tin, practice, *, payer="mcd", ptype="physician", pc=True, spec="08", hsa="Burlington",
              participation="participant", start=D(2020, 1, 1), end=None, ccn=None, practice_type="independent"):
    return dict(npi=npi, tin=tin, ccn=ccn, provider_type=ptype, specialty_code=spec, primary_care_flag=pc,
                practice_id=practice, practice_name=f"Practice {practice}", practice_type=practice_type, hsa=hsa,
                payer=payer, participation=participation, effective_start_date=start, effective_end_date=end)


def months_of(person, months=MONTHS, *, program_id="t-2024", death=None, aid="full", member=None):
    return [dict(program_id=program_id, member_id=member or "M" + person[1:], person_id=person, month=m,
                 death_date=death, aid_category=aid) for m in months]


def by(rows, *keys):
    out = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]], []).append(r)
    return out


# ------------------------------------------------------------------------------------------------
# Scenario V: a VMNG-like Medicaid program (practices compete; monthly exclusions)

N1, N2, N3, N4, N5, N6, N7 = (str(i) * 10 for i in range(1, 8))
T1, T2, T4, T5, T6 = "111111111", "222222222", "444444444", "555555555", "666666666"

V_TERMS = {
    "method": "prospective",
    "window_end": D(YEAR - 1, 12, 31),
    "steps": [
        {"name": "voluntary", "rule": "voluntary_alignment"},
        {"name": "traditional", "rule": "plurality", "provider_types": ["physician", "np", "pa", "cns"]},
        {"name": "expanded", "rule": "expanded", "requires_full_benefits": True, "requires_no_other_insurance": True},
    ],
    "tie_break": ["most_recent_visit", "lowest_npi"],
    "exclusions": [
        {"reason": "lost_coverage"},
        {"reason": "other_coverage"},
        {"reason": "aged_into_medicare"},
        {"reason": "death"},
        {"reason": "practice_left"},
    ],
    "requalify": True,
}

V_ROSTER = [
    clinician(N1, T1, "PA"),
    clinician(N7, T1, "PA"),
    clinician(N2, T2, "PB", ptype="np", pc=False, spec="50", hsa="Middlebury"),
    clinician(N3, T2, "PB", pc=False, spec="06", hsa="Middlebury"),  # a cardiologist: not primary care
    clinician(N4, T4, "PC", participation="non_participating"),
    clinician(N5, T5, "PD", end=D(YEAR, 6, 15)),  # the practice leaves the network mid-June
    clinician(N6, T6, "PF", ptype="np", pc=True, spec="50", ccn="471801", practice_type="fqhc", hsa="Barre"),
]

V_CLAIMS = [
    # P1: A 2 x 100.00 = 20000 vs B 25000 -> B wins on allowed charges. The commercial claim at A
    # (another payer) does not count.
    visit("P1", D(2022, 3, 1), N1, T1, 10_000),
    visit("P1", D(2022, 6, 1), N1, T1, 10_000),
    visit("P1", D(2023, 2, 1), N2, T2, 25_000),
    visit("P1", D(2023, 2, 2), N1, T1, 100_000, payer="bcbs"),
    # P2: the cardiologist's 50000 does not count (physician without the primary care flag): A wins alone.
    visit("P2", D(2023, 5, 1), N3, T2, 50_000),
    visit("P2", D(2023, 1, 10), N1, T1, 8_000),
    # P3: A and B tie on 10000; B's visit is the most recent -> B.
    visit("P3", D(2023, 3, 1), N1, T1, 10_000),
    visit("P3", D(2023, 4, 1), N2, T2, 10_000),
    # P4: A (N7) and B (N2) tie on allowed and date; lowest NPI: B's 2222222222 < A's 7777777777 -> B.
    visit("P4", D(2023, 5, 5), N7, T1, 10_000),
    visit("P4", D(2023, 5, 5), N2, T2, 10_000),
    # P5: inside practice A, N1 and N7 tie -> the lowest NPI, N1.
    visit("P5", D(2023, 6, 1), N7, T1, 5_000),
    visit("P5", D(2023, 6, 1), N1, T1, 5_000),
    # P6: the non-participating practice C has the plurality -> not attributed.
    visit("P6", D(2023, 1, 1), N4, T4, 30_000),
    visit("P6", D(2023, 2, 1), N1, T1, 10_000),
    # P7: claims favour A but the member designated N2 (practice B): voluntary alignment wins.
    visit("P7", D(2023, 1, 1), N1, T1, 30_000),
    # P8: claims favour A but the member designated N4, outside the ACO: not attributed.
    visit("P8", D(2023, 1, 1), N1, T1, 30_000),
    # P9: an FQHC visit under CCN 471801 (revenue 0521: 15000; the lab line, revenue 0300, does not
    # count) beats the outside practice's 12000.
    dict(visit("P9", D(2023, 7, 1), N6, T6, 15_000, claim_type="institutional", revenue_center_code="0521",
               facility_ccn="471801", pos=None), claim_id="f1"),
    dict(visit("P9", D(2023, 7, 1), N6, T6, 4_000, claim_type="institutional", revenue_center_code="0300",
               facility_ccn="471801", hcpcs="80053", pos=None), claim_id="f1", claim_line_number=2),
    visit("P9", D(2023, 8, 1), N4, T4, 12_000),
    # P10: practice D (leaves the network mid-June 2024).
    visit("P10", D(2023, 4, 1), N5, T5, 10_000),
    # P11, P12, P13: attributed to A; exclusions come from eligibility.
    visit("P11", D(2023, 4, 1), N1, T1, 10_000),
    visit("P12", D(2023, 4, 1), N1, T1, 10_000),
    visit("P13", D(2023, 4, 1), N1, T1, 10_000),
    # P17: a nursing facility visit in a SNF (POS 31) is not primary care: B's office visit wins.
    visit("P17", D(2023, 9, 1), N1, T1, 40_000, hcpcs="99309", pos="31"),
    visit("P17", D(2023, 9, 2), N2, T2, 10_000),
    # a denied line and a zero net line count for nobody
    visit("P17", D(2023, 9, 3), N1, T1, 90_000, claim_status="denied"),
    visit("P17", D(2023, 9, 4), N1, T1, 0),
]

V_MONTHS = (
    [r for p in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P12", "P14", "P15", "P17")
     for r in months_of(p)]
    + months_of("P11", [m for m in MONTHS if m.month != 4])  # no Medicaid in April
    + months_of("P13", MONTHS[:3], death=D(YEAR, 3, 15))  # dies 15 March
    + months_of("P16", aid="limited")
)

V_ELIGIBILITY = (
    [dict(person_id=r["person_id"], member_id=r["member_id"], payer="mcd", payer_type="medicaid", plan="std",
          month=r["month"], death_date=r["death_date"]) for r in V_MONTHS]
    # P12 gains Medicare from July (and keeps Medicaid): aged into Medicare.
    + [dict(person_id="P12", member_id="X12", payer="medicare", payer_type="medicare", plan="ffs", month=m)
       for m in MONTHS[6:]]
    # P15 has commercial coverage: no expanded path.
    + [dict(person_id="P15", member_id="X15", payer="bcbs", payer_type="commercial", plan="qhp", month=MONTHS[0])]
)

VA = {"member_id": "string", "npi": "string", "tin": "string", "designation_date": "date", "end_date": "date"}
V_ALIGN = [
    dict(member_id="M7", npi=N2, designation_date=D(2023, 11, 1)),
    dict(member_id="M8", npi=N4, designation_date=D(2023, 10, 1)),
    dict(member_id="M1", npi=N1, designation_date=D(2024, 3, 1)),  # after the list date: ignored
]


@pytest.fixture(scope="module")
def vmng():
    p = program(V_TERMS)
    args = dict(
        program=p,
        program_months=table(V_MONTHS, PM),
        claim_lines=table(V_CLAIMS, CLAIM),
        provider_roster=table(V_ROSTER, ROSTER),
        primary_care_codes=primary_care_codes(YEAR),
        voluntary_alignment=table(V_ALIGN, VA),
    )
    opts = Options(full_benefit_aid_categories=("full",))
    em = table(V_ELIGIBILITY, EM)
    decisions = materialize(assignment(**args, eligibility_months=em, options=opts))
    roster = materialize(monthly_roster(p, decisions, args["program_months"], args["provider_roster"],
                                        eligibility_months=em, options=opts))
    return {
        "roster": roster,
        "rows": roster.to_pyarrow().to_pylist(),
        "decisions": {r["person_id"]: r for r in decisions.to_pyarrow().to_pylist()},
        "changes": run(attribution_changes(roster)),
    }


def jan(vmng, person):
    return next(r for r in vmng["rows"] if r["person_id"] == person and r["month"] == MONTHS[0])


def test_window_and_periods_follow_the_terms():
    p = program(V_TERMS)
    (period,) = assignment_periods(p)
    assert (period.window_start, period.window_end) == (D(2022, 1, 1), D(2023, 12, 31))
    assert (period.start, period.end, period.list_date, period.sticky) == (
        D(2024, 1, 1), D(2024, 12, 31), D(2024, 1, 1), True)
    assert lookback_window(D(2024, 3, 31), 12) == (D(2023, 4, 1), D(2024, 3, 31))


def test_roster_has_the_documented_columns_and_grain(vmng):
    assert list(vmng["roster"].schema().names) == list(ATTRIBUTION_SCHEMA.names)
    keys = Counter((r["program_id"], r["member_id"], r["month"]) for r in vmng["rows"])
    assert max(keys.values()) == 1
    listed = {r["person_id"] for r in vmng["rows"]}
    assert listed == {"P1", "P2", "P3", "P4", "P5", "P7", "P9", "P10", "P11", "P12", "P13", "P14", "P17"}
    assert all(len([r for r in vmng["rows"] if r["person_id"] == p]) == 12 for p in listed)


def test_plurality_of_allowed_charges_within_the_payer(vmng):
    r = jan(vmng, "P1")
    assert (r["practice_id"], r["npi"], r["tin"], r["hsa"], r["step"]) == ("PB", N2, T2, "Middlebury", "traditional")
    assert (r["winner_entity"], r["winner_allowed_cents"], r["winner_visits"]) == ("aco:practice:PB", 25_000, 1)
    assert (r["runner_up_entity"], r["runner_up_allowed_cents"], r["runner_up_visits"]) == (
        "aco:practice:PA", 20_000, 2)
    assert r["tie_break"] == "plurality"
    assert "25000 allowed cents" in r["decided_by"] and "20000 allowed cents" in r["decided_by"]


def test_a_physician_without_the_primary_care_flag_does_not_count(vmng):
    r = jan(vmng, "P2")
    assert (r["practice_id"], r["npi"], r["winner_allowed_cents"]) == ("PA", N1, 8_000)
    assert (r["runner_up_entity"], r["tie_break"]) == (None, "no_competitor")


def test_tie_breaks_most_recent_visit_then_lowest_npi(vmng):
    p3 = jan(vmng, "P3")
    assert (p3["practice_id"], p3["tie_break"]) == ("PB", "most_recent_visit")
    p4 = jan(vmng, "P4")
    assert (p4["practice_id"], p4["npi"], p4["tie_break"]) == ("PB", N2, "lowest_npi")
    p5 = jan(vmng, "P5")
    assert (p5["practice_id"], p5["npi"], p5["winner_allowed_cents"]) == ("PA", N1, 10_000)


def test_outside_plurality_is_not_attributed(vmng):
    d = vmng["decisions"]["P6"]
    assert (d["outcome"], d["reason"], d["step"]) == ("not_assigned", "plurality_outside", "traditional")
    assert (d["winner_entity"], d["winner_allowed_cents"]) == ("out:practice:PC", 30_000)
    assert (d["runner_up_entity"], d["runner_up_allowed_cents"]) == ("aco:practice:PA", 10_000)


def test_voluntary_alignment_overrides_claims(vmng):
    p7 = jan(vmng, "P7")
    assert (p7["step"], p7["practice_id"], p7["npi"], p7["tin"], p7["basis"]) == (
        "voluntary", "PB", N2, T2, "voluntary_alignment")
    d8 = vmng["decisions"]["P8"]
    assert (d8["outcome"], d8["reason"], d8["step"]) == ("not_assigned", "aligned_elsewhere", "voluntary")
    # a designation made after the list date does not apply
    assert jan(vmng, "P1")["step"] == "traditional"


def test_a_later_designation_replaces_an_earlier_one_even_after_it_ends():
    # A beneficiary has one designated clinician at a time: a new designation replaces the earlier
    # one (MSSP voluntary alignment, 42 CFR 425.402(e)). M1 designated N2 (practice PB) in May
    # 2022, then N4 (outside the ACO) in June 2023, and that designation ended on 1 October 2023.
    # On the 1 January 2024 list date no designation is in force, so claims decide: P1's only
    # service in the scenario below is 10000 at practice PA -> step "traditional", practice PA
    # (not PB by reviving the replaced designation).
    p = program(dict(V_TERMS, steps=V_TERMS["steps"][:2], exclusions=[]))
    va = [dict(member_id="M1", npi=N2, designation_date=D(2022, 5, 1)),
          dict(member_id="M1", npi=N4, designation_date=D(2023, 6, 1), end_date=D(2023, 10, 1))]
    claims = table([visit("P1", D(2023, 1, 1), N1, T1, 10_000)], CLAIM)

    def decide(designations):
        d = run(assignment(p, table(months_of("P1"), PM), claims, table(V_ROSTER, ROSTER), primary_care_codes(YEAR),
                           voluntary_alignment=table(designations, VA)))
        return [(r["outcome"], r["step"], r["practice_id"]) for r in d]

    assert decide(va) == [("assigned", "traditional", "PA")]
    # without the later designation the earlier one is in force and overrides claims
    assert decide(va[:1]) == [("assigned", "voluntary", "PB")]

def test_voluntary_alignment_to_a_clinician_who_left_the_named_tin():
    # Voluntary alignment assigns a beneficiary to the ACO only when the designated clinician is an
    # ACO professional on the list date (42 CFR 425.402(e)); a designation of a clinician outside
    # the ACO decides the beneficiary as aligned elsewhere. M1 designated N1 at TIN 111111111 in
    # March 2023; N1 left that TIN on 30 June 2023 for the non-participating practice PC. The
    # participant TIN (still in the ACO through N7) must not stand in for N1: on 1 January 2024 N1
    # is at PC, outside the ACO, with or without the TIN on the designation. A designation whose
    # clinician the roster does not know at all still takes the TIN's participation.
    roster = [clinician(N1, T1, "PA", end=D(2023, 6, 30)), clinician(N7, T1, "PA"),
              clinician(N1, T4, "PC", participation="non_participating", start=D(2023, 7, 1))]
    p = program(dict(V_TERMS, steps=V_TERMS["steps"][:1], exclusions=[]))
    claims = table([visit("PX", D(2023, 1, 1), N4, T4, 1, payer="other")], CLAIM)

    def decide(designation):
        d = run(assignment(p, table(months_of("P1"), PM), claims, table(roster, ROSTER), primary_care_codes(YEAR),
                           voluntary_alignment=table([designation], VA)))
        return [(r["outcome"], r["reason"], r["practice_id"], r["npi"]) for r in d]

    assert decide(dict(member_id="M1", npi=N1, tin=T1, designation_date=D(2023, 3, 1))) == [
        ("not_assigned", "aligned_elsewhere", "PC", N1)]
    assert decide(dict(member_id="M1", npi=N1, designation_date=D(2023, 3, 1))) == [
        ("not_assigned", "aligned_elsewhere", "PC", N1)]
    assert decide(dict(member_id="M1", npi="9999999999", tin=T1, designation_date=D(2023, 3, 1))) == [
        ("assigned", None, "PA", "9999999999")]


def test_fqhc_visits_count_under_the_ccn(vmng):
    r = jan(vmng, "P9")
    assert (r["practice_id"], r["ccn"], r["tin"], r["npi"], r["hsa"]) == ("PF", "471801", T6, N6, "Barre")
    assert (r["winner_allowed_cents"], r["winner_visits"]) == (15_000, 1)  # the lab line does not count
    assert (r["runner_up_entity"], r["runner_up_allowed_cents"]) == ("out:practice:PC", 12_000)


def test_setting_exclusion_denied_and_zero_lines(vmng):
    r = jan(vmng, "P17")
    assert (r["practice_id"], r["winner_allowed_cents"], r["runner_up_entity"]) == ("PB", 10_000, None)


def test_expanded_path_without_primary_care_use(vmng):
    r = jan(vmng, "P14")
    assert (r["step"], r["basis"], r["practice_id"], r["attributed"]) == ("expanded", "expanded", None, True)
    assert vmng["decisions"]["P15"]["reason"] == "no_qualifying_service"  # other insurance
    assert vmng["decisions"]["P16"]["reason"] == "no_qualifying_service"  # not a full benefits package


def test_monthly_exclusions_and_requalification(vmng):
    rows = by(vmng["rows"], "person_id")

    def status(p):
        return [(r["attributed"], r["exclusion_reason"]) for r in sorted(rows[p], key=lambda r: r["month"])]

    ok = (True, None)
    assert status("P11") == [ok] * 3 + [(False, "lost_coverage")] + [ok] * 8
    assert status("P12") == [ok] * 6 + [(False, "aged_into_medicare")] * 6
    # the month of death counts; later months are excluded for death, not lost coverage
    assert status("P13") == [ok] * 3 + [(False, "death")] * 9
    assert status("P10") == [ok] * 5 + [(False, "practice_left")] * 7
    assert status("P1") == [ok] * 12
    eligible = [r["eligible"] for r in sorted(rows["P11"], key=lambda r: r["month"])]
    assert eligible == [True] * 3 + [False] + [True] * 8


def test_changes_between_months(vmng):
    got = sorted((c["person_id"], c["month"], c["change"], c["reason"], c["from_practice_id"], c["to_practice_id"])
                 for c in vmng["changes"])
    assert got == [
        ("P10", D(2024, 6, 1), "dropped", "practice_left", "PD", None),
        ("P11", D(2024, 4, 1), "dropped", "lost_coverage", "PA", None),
        ("P11", D(2024, 5, 1), "added", "requalified", None, "PA"),
        ("P12", D(2024, 7, 1), "dropped", "aged_into_medicare", "PA", None),
        ("P13", D(2024, 4, 1), "dropped", "death", "PA", None),
    ]


def test_no_requalification_when_terms_say_so():
    terms = dict(V_TERMS, requalify=False, steps=V_TERMS["steps"][1:2])
    rows = run(attribute(program(terms), table(months_of("P11", [m for m in MONTHS if m.month != 4]), PM),
                         table(V_CLAIMS, CLAIM), table(V_ROSTER, ROSTER), primary_care_codes(YEAR)))
    got = [(r["attributed"], r["exclusion_reason"]) for r in sorted(rows, key=lambda r: r["month"])]
    assert got == [(True, None)] * 3 + [(False, "lost_coverage")] * 9


def test_reconcile_with_a_payer_list(vmng):
    payer = table(
        [
            dict(member_id="M1", month=MONTHS[0], practice_id="PB"),  # same practice
            dict(member_id="M3", month=MONTHS[0], practice_id="PA"),  # we say PB
            dict(member_id="M11", month=MONTHS[3], practice_id="PA"),  # we excluded April (lost coverage)
            dict(member_id="MX", month=MONTHS[0], practice_id="PA"),  # not on our list at all
        ],
        {"member_id": "string", "month": "date", "practice_id": "string"},
    )
    rec = run(reconcile_attribution(vmng["roster"], payer, program_id="t-2024"))
    got = {(r["member_id"], r["month"]): (r["status"], r["reason"]) for r in rec}
    assert got[("M1", MONTHS[0])] == ("both", "match")
    assert got[("M3", MONTHS[0])] == ("both", "practice_differs")
    assert got[("M11", MONTHS[3])] == ("only_payer", "excluded_by_us")
    assert got[("MX", MONTHS[0])] == ("only_payer", "not_listed_by_us")
    assert got[("M2", MONTHS[0])] == ("only_ours", "not_on_payer_list")
    m11 = next(r for r in rec if r["member_id"] == "M11" and r["month"] == MONTHS[3])
    assert (m11["our_exclusion_reason"], m11["payer_practice_id"], m11["our_practice_id"]) == (
        "lost_coverage", "PA", "PA")
    # every member-month of either list appears once
    assert len(rec) == len(got)
    with pytest.raises(RunError, match="program_id"):
        reconcile_attribution(vmng["roster"], payer)


# ------------------------------------------------------------------------------------------------
# Scenario M: MSSP steps (pre-step, step 1, step 2; ACO vs each outside TIN; yearly exclusions)

Q1, Q2, Q3, Q4 = "1000000001", "1000000002", "1000000003", "1000000004"
Z1, Z2, Z3 = "1999999991", "1999999992", "1999999993"
PCP_SPECIALTIES = ["01", "08", "11", "38"]
SPECIALISTS = ["06", "29"]

M_TERMS = {
    "method": "prospective",
    "lookback_months": {"value": 12},
    "window_end": D(YEAR - 1, 12, 31),
    "steps": [
        {"name": "pre_step", "rule": "require_service", "provider_types": ["physician"],
         "specialty_codes": PCP_SPECIALTIES + SPECIALISTS},
        {"name": "step1", "rule": "plurality", "provider_types": ["physician", "np", "pa", "cns"],
         "compare": "aco_vs_each_outside_tin"},
        {"name": "step2", "rule": "plurality", "provider_types": ["physician"], "specialty_codes": SPECIALISTS,
         "compare": "aco_vs_each_outside_tin", "requires_no_service_from": "step1"},
    ],
    "exclusions": [{"reason": "medicare_advantage", "scope": "year", "checked": "quarterly"}],
}

M_ROSTER = [
    clinician(Q1, "100000001", "MA1", payer="medicare"),
    clinician(Q2, "100000002", "MA2", payer="medicare", spec="11"),
    clinician(Q3, "100000002", "MA2", payer="medicare", ptype="np", pc=False, spec="50"),
    clinician(Q4, "100000004", "MA4", payer="medicare", pc=False, spec="06"),
    clinician(Z3, "900000003", "OUT3", payer="medicare", pc=False, spec="06", participation="non_participating"),
]


def mv(person, day, npi, tin, cents):
    return visit(person, day, npi, tin, cents, payer="medicare", member="B" + person[1:])


M_CLAIMS = [
    # Q1 (beneficiary): ACO 10000 (MA1) + 10000 (MA2) = 20000 beats each outside TIN (15000, 12000),
    # although one outside TIN beats each ACO practice. Inside the ACO MA1 and MA2 tie: MA2's
    # visit is more recent.
    mv("Q1", D(2023, 2, 1), Q1, "100000001", 10_000),
    mv("Q1", D(2023, 3, 1), Q2, "100000002", 10_000),
    mv("Q1", D(2023, 4, 1), Z1, "900000001", 15_000),
    mv("Q1", D(2023, 5, 1), Z2, "900000002", 12_000),
    # Q2: only an ACO nurse practitioner: the pre-step needs an ACO physician.
    mv("Q2", D(2023, 6, 1), Q3, "100000002", 20_000),
    # Q3: no primary care clinician at all: step 2 (ACO cardiologist 30000 vs outside 10000).
    mv("Q3", D(2023, 7, 1), Q4, "100000004", 30_000),
    mv("Q3", D(2023, 8, 1), Z3, "900000003", 10_000),
    # Q4: step 1 services exist (outside clinician, not on the roster, 30000 vs ACO 5000): step 1
    # decides (outside) and step 2 does not apply although the ACO cardiologist billed 50000.
    mv("Q4", D(2023, 7, 1), Z1, "900000001", 30_000),
    mv("Q4", D(2023, 8, 1), Q1, "100000001", 5_000),
    mv("Q4", D(2023, 9, 1), Q4, "100000004", 50_000),
    # Q5 moves to Medicare Advantage in May; Q6 dies in March (not an MSSP exclusion).
    mv("Q5", D(2023, 2, 1), Q1, "100000001", 10_000),
    mv("Q6", D(2023, 2, 1), Q2, "100000002", 10_000),
    # services before the 12-month window do not count
    mv("Q2", D(2022, 12, 31), Q1, "100000001", 99_000),
]

M_MONTHS = (
    [r for p in ("Q1", "Q2", "Q3", "Q4") for r in months_of(p, member="B" + p[1:])]
    + months_of("Q5", MONTHS[:4], member="B5")
    + months_of("Q6", MONTHS[:3], member="B6", death=D(YEAR, 3, 10))
)
M_ELIGIBILITY = [
    dict(person_id=r["person_id"], member_id=r["member_id"], payer="medicare", payer_type="medicare", plan="ffs",
         month=r["month"], death_date=r["death_date"]) for r in M_MONTHS
] + [dict(person_id="Q5", member_id="MA5", payer="mapd", payer_type="medicare", plan="hmo", month=m)
     for m in MONTHS[4:]]


def mssp_program(**changes):
    return program(dict(M_TERMS, **changes), kind="medicare", payer="medicare", plans=("ffs",))


def mssp_args(**kw):
    return dict(
        program_months=table(M_MONTHS, PM),
        claim_lines=table(M_CLAIMS, CLAIM),
        provider_roster=table(M_ROSTER, ROSTER),
        primary_care_codes=primary_care_codes(YEAR),
        eligibility_months=table(M_ELIGIBILITY, EM),
        **kw,
    )


@pytest.fixture(scope="module")
def mssp():
    p = mssp_program()
    decisions = materialize(assignment(p, **mssp_args()))
    args = mssp_args()
    del args["claim_lines"], args["primary_care_codes"]

    def roster(as_of=None):
        return run(monthly_roster(p, decisions, args["program_months"], args["provider_roster"],
                                  eligibility_months=args["eligibility_months"], as_of=as_of))

    return {
        "rows": roster(),
        "may": roster(D(YEAR, 5, 31)),
        "june": roster(D(YEAR, 6, 30)),
        "decisions": {r["person_id"]: r for r in decisions.to_pyarrow().to_pylist()},
    }


def test_mssp_aco_tins_summed_against_each_outside_tin(mssp):
    r = next(r for r in mssp["rows"] if r["person_id"] == "Q1")
    assert (r["step"], r["winner_entity"], r["winner_allowed_cents"], r["winner_visits"]) == ("step1", "aco", 20_000, 2)
    assert (r["runner_up_entity"], r["runner_up_allowed_cents"]) == ("out:tin:900000001", 15_000)
    # the practice and NPI are chosen inside the ACO: a tie broken by the most recent visit
    assert (r["practice_id"], r["npi"], r["tin"]) == ("MA2", Q2, "100000002")


def test_practice_by_practice_comparison_would_lose_the_same_member():
    d = run(assignment(mssp_program(steps=[dict(M_TERMS["steps"][1], compare="practice")]), **mssp_args()))
    q1 = next(r for r in d if r["person_id"] == "Q1")
    assert (q1["outcome"], q1["winner_entity"], q1["winner_allowed_cents"]) == (
        "not_assigned", "out:tin:900000001", 15_000)


def test_mssp_pre_step_requires_an_aco_physician(mssp):
    d = mssp["decisions"]["Q2"]
    assert (d["outcome"], d["reason"], d["step"]) == ("not_assigned", "no_aco_service", "pre_step")


def test_mssp_step2_only_without_primary_care_clinician_services(mssp):
    q3 = next(r for r in mssp["rows"] if r["person_id"] == "Q3")
    assert (q3["step"], q3["practice_id"], q3["winner_allowed_cents"]) == ("step2", "MA4", 30_000)
    assert (q3["runner_up_entity"], q3["runner_up_allowed_cents"]) == ("out:tin:900000003", 10_000)
    d = mssp["decisions"]["Q4"]
    assert (d["outcome"], d["step"], d["reason"], d["winner_allowed_cents"]) == (
        "not_assigned", "step1", "plurality_outside", 30_000)


def test_mssp_year_exclusion_checked_quarterly(mssp):
    def q5(rows):
        return [(r["attributed"], r["exclusion_reason"]) for r in sorted(
            (r for r in rows if r["person_id"] == "Q5"), key=lambda r: r["month"])]

    # final: removed from the whole year, from January
    assert q5(mssp["rows"]) == [(False, "medicare_advantage")] * 12
    # as of 31 May the Q2 check has not run: still listed
    assert q5(mssp["may"]) == [(True, None)] * 12
    # the Q2 check (30 June) finds the May enrolment
    assert q5(mssp["june"]) == [(False, "medicare_advantage")] * 12


def test_mssp_death_is_not_an_exclusion(mssp):
    q6 = sorted((r for r in mssp["rows"] if r["person_id"] == "Q6"), key=lambda r: r["month"])
    assert [r["attributed"] for r in q6] == [True] * 12
    assert [r["eligible"] for r in q6] == [True] * 3 + [False] * 9
    assert {r["exclusion_reason"] for r in q6} == {None}



def test_mssp_pre_step_counts_a_visit_at_a_participant_fqhc():
    # 42 CFR 425.404(b) and the MSSP assignment specifications (since v7, February 2019): a service
    # reported on an FQHC/RHC claim is a primary care service performed by a primary care
    # physician, so it meets the pre-step (a primary care service from an ACO physician) whatever
    # the clinic clinician's own type. F1: one visit at the participant FQHC (CCN 471801, revenue
    # 0521, 15000, rendered by a nurse practitioner) and one outside office visit (12000): the
    # pre-step passes and step 1 gives the ACO 15000 against the outside TIN's 12000.
    fq = "1000000006"
    roster = M_ROSTER + [clinician(fq, "100000006", "FQ", payer="medicare", ptype="np", spec="50", ccn="471801",
                                   practice_type="fqhc")]
    claims = [
        mv("F1", D(2023, 7, 1), fq, "100000006", 15_000) | dict(
            claim_type="institutional", revenue_center_code="0521", facility_ccn="471801", place_of_service_code=None),
        mv("F1", D(2023, 8, 1), Z1, "900000001", 12_000),
    ]
    d = run(assignment(mssp_program(), table(months_of("F1", member="BF1"), PM), table(claims, CLAIM),
                       table(roster, ROSTER), primary_care_codes(YEAR)))
    assert [(r["outcome"], r["step"], r["winner_entity"], r["winner_allowed_cents"], r["ccn"], r["practice_id"])
            for r in d] == [("assigned", "step1", "aco", 15_000, "471801", "FQ")]
    assert (d[0]["runner_up_entity"], d[0]["runner_up_allowed_cents"]) == ("out:tin:900000001", 12_000)

# ------------------------------------------------------------------------------------------------
# methods: retrospective, quarterly, recency weights, payer-supplied


def test_retrospective_uses_the_performance_year():
    claims = [
        visit("P1", D(2023, 6, 1), N1, T1, 50_000),  # before the year: ignored
        visit("P1", D(2024, 2, 1), N2, T2, 10_000),
    ]
    p = program(dict(V_TERMS, method="retrospective", steps=V_TERMS["steps"][1:2], exclusions=[]))
    (period,) = assignment_periods(p)
    assert (period.window_start, period.window_end) == (D(2024, 1, 1), D(2024, 12, 31))
    rows = run(attribute(p, table(months_of("P1"), PM), table(claims, CLAIM), table(V_ROSTER, ROSTER),
                         primary_care_codes(YEAR)))
    got = {(r["practice_id"], r["winner_allowed_cents"], r["runner_up_entity"]) for r in rows}
    assert got == {("PB", 10_000, None)}


def test_a_prospective_list_is_of_the_members_enrolled_when_it_is_made():
    """VMNG (domain.md R1.1): the list is set at the year's start and no members are added during
    the year. J1 has 2023 claims at PA but joins the program in July 2024: not listed (the list is
    made in January, when J1 was not a member), though J1 is listed from July when the terms add
    members at later quarters, and a retrospective list (the year's own claims) takes J1 too. E1,
    enrolled in January, is listed for the year."""
    claims = [visit("J1", D(2023, 5, 1), N1, T1, 10_000), visit("E1", D(2023, 5, 1), N1, T1, 10_000),
              visit("J1", D(2024, 8, 1), N1, T1, 10_000)]
    months = table(months_of("J1", MONTHS[6:]) + months_of("E1"), PM)
    steps = V_TERMS["steps"][1:2]

    def listed(terms):
        rows = run(attribute(program(terms), months, table(claims, CLAIM), table(V_ROSTER, ROSTER),
                             primary_care_codes(YEAR)))
        return {p: sorted(r["month"].month for r in rows if r["person_id"] == p and r["attributed"]) for p in ("J1", "E1")}

    assert listed(dict(V_TERMS, steps=steps)) == {"J1": [], "E1": list(range(1, 13))}
    assert listed(dict(V_TERMS, steps=steps, add_members_during_year=True)) == {
        "J1": list(range(7, 13)), "E1": list(range(1, 13))}
    # a retrospective list reads the year's own claims: J1's August visit, none of E1's
    assert listed(dict(V_TERMS, steps=steps, method="retrospective")) == {"J1": list(range(7, 13)), "E1": []}


def test_quarterly_lists_follow_a_rolling_window():
    claims = [
        visit("P1", D(2023, 2, 15), N1, T1, 10_000),  # in Q1's window only
        visit("P1", D(2024, 2, 1), N2, T2, 8_000),  # in the windows of Q2 to Q4
    ]
    terms = dict(V_TERMS, method="quarterly", lookback_months={"value": 12}, steps=V_TERMS["steps"][1:2], exclusions=[])
    terms.pop("window_end")
    p = program(terms)
    assert [(x.start, x.window_start, x.window_end) for x in assignment_periods(p)][:2] == [
        (D(2024, 1, 1), D(2023, 1, 1), D(2023, 12, 31)),
        (D(2024, 4, 1), D(2023, 4, 1), D(2024, 3, 31)),
    ]
    roster = materialize(attribute(p, table(months_of("P1"), PM), table(claims, CLAIM), table(V_ROSTER, ROSTER),
                                   primary_care_codes(YEAR)))
    rows = sorted(roster.to_pyarrow().to_pylist(), key=lambda r: r["month"])
    assert [r["practice_id"] for r in rows] == ["PA"] * 3 + ["PB"] * 9
    changes = run(attribution_changes(roster))
    assert [(c["month"], c["change"], c["reason"], c["from_practice_id"], c["to_practice_id"]) for c in changes] == [
        (D(2024, 4, 1), "practice_changed", "reassigned", "PA", "PB")]


def test_only_lists_added_during_the_year_share_months():
    """The monthly roster ranks a person's assignments only when two periods share a month."""
    from allpayer.core.attribution import _periods_overlap

    quarterly = dict(V_TERMS, method="quarterly", lookback_months={"value": 12})
    quarterly.pop("window_end")
    assert len(assignment_periods(program(quarterly))) == 4
    assert not _periods_overlap(assignment_periods(program(quarterly)))
    assert not _periods_overlap(assignment_periods(program(V_TERMS)))
    assert _periods_overlap(assignment_periods(program(dict(V_TERMS, add_members_during_year=True))))


def test_recency_weights_favour_the_recent_year():
    assert recency_weights(None) == (1,)
    claims = [
        visit("P1", D(2022, 5, 1), N1, T1, 30_000),  # older year: weight 1/3 -> score 30000 x 1
        visit("P1", D(2023, 5, 1), N2, T2, 20_000),  # recent year: weight 2/3 -> score 20000 x 2
    ]
    steps = V_TERMS["steps"][1:2]
    args = (table(months_of("P1"), PM), table(claims, CLAIM), table(V_ROSTER, ROSTER), primary_care_codes(YEAR))
    weighted = run(assignment(program(dict(V_TERMS, steps=steps, recency_weights=["1/3", "2/3"])), *args))[0]
    assert (weighted["practice_id"], weighted["winner_score"], weighted["runner_up_score"]) == ("PB", 40_000, 30_000)
    plain = run(assignment(program(dict(V_TERMS, steps=steps)), *args))[0]
    assert (plain["practice_id"], plain["winner_score"], plain["runner_up_score"]) == ("PA", 30_000, 20_000)


def test_visits_basis_counts_visits():
    # P1 of scenario V: A has 2 visits, B 1 visit (but more dollars)
    claims = [c for c in V_CLAIMS if c["person_id"] == "P1"]
    p = program(dict(V_TERMS, steps=V_TERMS["steps"][1:2], plurality_basis="visits"))
    d = run(assignment(p, table(months_of("P1"), PM), table(claims, CLAIM), table(V_ROSTER, ROSTER),
                       primary_care_codes(YEAR)))[0]
    assert (d["practice_id"], d["winner_score"], d["runner_up_score"], d["basis"]) == ("PA", 2, 1, "visits")


def test_payer_supplied_list_is_authoritative():
    p = program({"method": "payer_supplied", "steps": [{"name": "payer_list", "rule": "payer_supplied"}]})
    assert assignment_periods(p) == []
    payer = table(
        [
            dict(program_id="t-2024", member_id="M1", month=MONTHS[0], npi=N2),  # practice from the roster
            dict(program_id="t-2024", member_id="M1", month=MONTHS[1], practice_id="PA", npi=N1, tin=T1),
            dict(program_id="other", member_id="M1", month=MONTHS[2], practice_id="PA"),  # another program
            dict(program_id="t-2024", member_id="M9", month=MONTHS[0], practice_id="PA"),  # not our member
        ],
        {"program_id": "string", "member_id": "string", "month": "date", "practice_id": "string", "npi": "string",
         "tin": "string"},
    )
    rows = run(attribute(p, table(months_of("P1", MONTHS[:1]), PM), table([], CLAIM), table(V_ROSTER, ROSTER),
                         None, payer_supplied=payer))
    got = sorted((r["member_id"], r["month"], r["practice_id"], r["tin"], r["eligible"], r["step"]) for r in rows)
    assert got == [
        ("M1", MONTHS[0], "PB", T2, True, "payer_list"),
        ("M1", MONTHS[1], "PA", T1, False, "payer_list"),
        ("M9", MONTHS[0], "PA", None, False, "payer_list"),
    ]
    with pytest.raises(RunError, match="payer's list"):
        attribute(p, table([], PM), table([], CLAIM), table(V_ROSTER, ROSTER), None)


def test_services_table_shows_the_billing_entity():
    s = run(primary_care_services(table(V_CLAIMS, CLAIM), table(V_ROSTER, ROSTER), primary_care_codes(YEAR),
                                  (D(2022, 1, 1), D(2023, 12, 31)), payer="mcd", list_date=D(2024, 1, 1)))
    p9 = sorted((r["billing_entity"], r["billed_under"], r["practice_id"], r["aco"], r["clinic"]) for r in s
                if r["person_id"] == "P9")
    assert p9 == [("ccn:471801", "ccn", "PF", True, True), ("tin:444444444", "tin", "PC", False, False)]
    assert all(r["allowed_cents"] > 0 for r in s)
    assert not any(r["person_id"] == "P17" and r["hcpcs_code"] == "99309" for r in s)
    assert not any(r["allowed_cents"] == 100_000 for r in s)  # P1's commercial claim: another payer
    both = run(primary_care_services(table(V_CLAIMS, CLAIM), table(V_ROSTER, ROSTER), primary_care_codes(YEAR),
                                     (D(2022, 1, 1), D(2023, 12, 31)), payer="mcd", claims_payers=("mcd", "bcbs")))
    assert [(r["practice_id"], r["aco"]) for r in both if r["allowed_cents"] == 100_000] == [("PA", True)]


def test_missing_claim_columns_are_named():
    with pytest.raises(RunError, match="facility_ccn"):
        primary_care_services(table(V_CLAIMS, CLAIM).drop("facility_ccn"), table(V_ROSTER, ROSTER),
                              primary_care_codes(YEAR), (D(2022, 1, 1), D(2023, 12, 31)), payer="mcd")


def test_events_employer_opt_out_and_members_added_during_the_year():
    terms = dict(
        V_TERMS,
        steps=V_TERMS["steps"][1:2],
        add_members_during_year=True,
        exclusions=[
            {"reason": "moved_out_of_area", "scope": "year", "checked": "quarterly"},
            {"reason": "employer_opt_out"},
            {"reason": "lost_coverage"},
        ],
    )
    p = parse_program(dict(
        program_id="t-2024", name="Employer plan", aco={"id": "aco", "name": "Test ACO"}, payer="mcd",
        product="self_funded", kind="self_funded", performance_year=YEAR,
        population={"plans": ["aso"], "group_ids": ["G1"]}, attribution=terms,
        target={"method": "trended_base", "base_years": [{"year": YEAR - 1, "weight": "1"}],
                "trend": {"rates": {YEAR: "0.05"}}},
        settlement={"risk": "two_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net"],
                    "savings_rate": "0.50", "loss_rate": "0.50", "msr": "0.02", "mlr": "0.02"},
    ))
    assert [x.start for x in assignment_periods(p)] == [D(2024, 1, 1), D(2024, 4, 1), D(2024, 7, 1), D(2024, 10, 1)]
    claims = [
        visit("S1", D(2023, 5, 1), N1, T1, 10_000),  # on the list; moves away in August (a payer event)
        visit("S2", D(2024, 2, 1), N2, T2, 10_000),  # first seen in 2024: joins from the Q2 list
        visit("S3", D(2023, 5, 1), N1, T1, 10_000),  # the employer opts out from July
    ]
    months = months_of("S1") + months_of("S2") + months_of("S3", MONTHS[:6])
    elig = [dict(person_id=r["person_id"], member_id=r["member_id"], payer="mcd", payer_type="self_funded", plan="aso",
                 group_id="G1", month=m) for r in months_of("S3") for m in [r["month"]]]
    events = table([dict(member_id="M1", reason="moved_out_of_area", event_date=D(2024, 8, 10)),
                    dict(member_id="M3", reason="hospice", event_date=D(2024, 2, 1))],  # not a reason of these terms
                   {"member_id": "string", "reason": "string", "event_date": "date"})
    roster = materialize(attribute(p, table(months, PM), table(claims, CLAIM), table(V_ROSTER, ROSTER),
                                   primary_care_codes(YEAR), eligibility_months=table(elig, EM),
                                   exclusion_events=events))
    rows = by(roster.to_pyarrow().to_pylist(), "person_id")

    def status(person):
        ordered = sorted(rows[person], key=lambda r: r["month"])
        return [(r["month"].month, r["attributed"], r["exclusion_reason"]) for r in ordered]

    assert status("S1") == [(m, False, "moved_out_of_area") for m in range(1, 13)]
    assert status("S2") == [(m, True, None) for m in range(4, 13)]
    assert status("S3") == (
        [(m, True, None) for m in range(1, 7)] + [(m, False, "employer_opt_out") for m in range(7, 13)])
    assert {r["list_date"] for r in rows["S2"]} == {D(2024, 4, 1)}
    changes = run(attribution_changes(roster))
    got = sorted((c["person_id"], c["month"].month, c["change"], c["reason"]) for c in changes)
    assert got == [("S2", 4, "added", "newly_assigned"), ("S3", 7, "dropped", "employer_opt_out")]


# ------------------------------------------------------------------------------------------------
# property: a member is attributed at most once per program and month

PRACTICES = [("PA", T1, N1), ("PB", T2, N2), ("PC", T4, N4)]


@pytest.fixture(scope="module")
def compiled():
    """Both comparison modes compiled once against named tables; examples only swap the data."""
    con = ibis.duckdb.connect()
    for name, schema in (("claims", CLAIM), ("roster", ROSTER), ("pm", PM)):
        con.create_table(name, schema=ibis.schema(schema))
    codes = primary_care_codes(YEAR)
    exprs = {}
    for compare in ("practice", "aco_vs_each_outside_tin"):
        steps = [dict(V_TERMS["steps"][1], compare=compare)]
        p = program(dict(V_TERMS, steps=steps, exclusions=[{"reason": "lost_coverage"},
                                                            {"reason": "practice_left"}]))
        expr = attribute(p, con.table("pm"), con.table("claims"), con.table("roster"), codes)
        con.to_pyarrow(expr)  # registers the in-memory reference tables with the connection
        exprs[compare] = (expr, con.compile(expr))
    return con, exprs


person_services = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 23), st.integers(1, 4) .map(lambda k: k * 2_500)),
    min_size=0,
    max_size=5,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    services=st.lists(person_services, min_size=1, max_size=6),
    participating=st.lists(st.booleans(), min_size=3, max_size=3),
    gaps=st.lists(st.integers(0, 11), max_size=4),
    compare=st.sampled_from(["practice", "aco_vs_each_outside_tin"]),
    leaves=st.sampled_from([None, D(YEAR, 3, 31), D(YEAR, 9, 15)]),
)
def test_property_attributed_at_most_once_per_program_and_month(
    compiled, services, participating, gaps, compare, leaves
):
    con, exprs = compiled
    claims, months = [], []
    for i, svc in enumerate(services):
        person = f"P{i}"
        for k, (practice, month_back, cents) in enumerate(svc):
            _, tin, npi = PRACTICES[practice]
            day = lookback_window(D(2023, 12, 31), 24)[0] + dt.timedelta(days=30 * month_back + k)
            claims.append(visit(person, day, npi, tin, cents))
        months += months_of(person, [m for j, m in enumerate(MONTHS) if (i + j) % 12 not in gaps])
    roster = [
        clinician(npi, tin, pid, participation="participant" if part else "non_participating",
                  end=leaves if pid == "PA" else None)
        for (pid, tin, npi), part in zip(PRACTICES, participating)
    ]
    for name, rows, schema in (("claims", claims, CLAIM), ("roster", roster, ROSTER), ("pm", months, PM)):
        con.create_table(name, pa.Table.from_pylist(rows, schema=ibis.schema(schema).to_pyarrow()), overwrite=True)
    _, sql = exprs[compare]
    got = con.raw_sql(sql).to_arrow_table().to_pylist()
    keys = Counter((r["program_id"], r["member_id"], r["month"]) for r in got)
    assert all(n == 1 for n in keys.values())
    persons = Counter((r["program_id"], r["person_id"], r["month"]) for r in got if r["attributed"])
    assert all(n == 1 for n in persons.values())
    participants = {pid for (pid, _, _), part in zip(PRACTICES, participating) if part}
    for r in got:
        assert r["practice_id"] in participants
        assert r["winner_entity"].startswith("aco")
        if r["attributed"] and leaves is not None and r["practice_id"] == "PA":
            month_end = (r["month"].replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
            assert month_end <= leaves
    # a member with services only at participating practices, enrolled when the prospective list
    # is made (its first month), is always listed; one who joins later is never added
    for i, svc in enumerate(services):
        if i % 12 in gaps:
            assert not any(r["person_id"] == f"P{i}" for r in got)
        elif svc and all(participating[p] for p, _, _ in svc):
            assert any(r["person_id"] == f"P{i}" for r in got)


def test_docstring_examples():
    import doctest

    from allpayer.core import attribution as module

    failed, tried = doctest.testmod(module)
    assert (failed, tried > 0) == (0, True)


# ------------------------------------------------------------------------------------------------
# property: the changes between months, against the rules written out member by member

_CHANGE_COLUMNS = {"program_id": "string", "person_id": "string", "member_id": "string", "month": "date",
                   "attributed": "boolean", "exclusion_reason": "string", "practice_id": "string", "npi": "string",
                   "step": "string"}
# a member's month: absent from the roster, listed but excluded, or attributed to a practice (or none)
_MONTH_STATES = st.sampled_from([None, ("excluded", "death"), ("excluded", "lost_coverage"), ("attributed", "PA"),
                                 ("attributed", "PB"), ("attributed", None)])


def _expected_changes(rows: list[dict]) -> list[tuple]:
    """The changes of `rows` (one row per program, person and month) month by month over each
    program's months, as documented in attribution_changes."""
    months = {}
    for r in rows:
        months.setdefault(r["program_id"], set()).add(r["month"])
    by = {(r["program_id"], r["person_id"], r["month"]): r for r in rows}
    out = []
    for prog, person in sorted({(r["program_id"], r["person_id"]) for r in rows}):
        ms = sorted(months[prog])
        for before, month in zip(ms, ms[1:]):
            cur, prev = by.get((prog, person, month)), by.get((prog, person, before))
            now, then = bool(cur and cur["attributed"]), bool(prev and prev["attributed"])
            if now and not then:
                reason = "requalified" if prev and prev["exclusion_reason"] else "newly_assigned"
                out.append((prog, person, month, "added", reason, None, cur["practice_id"]))
            elif then and not now:
                reason = (cur["exclusion_reason"] or "excluded") if cur else "not_reassigned"
                out.append((prog, person, month, "dropped", reason, prev["practice_id"], None))
            elif now and then and (cur["practice_id"] or "") != (prev["practice_id"] or ""):
                out.append((prog, person, month, "practice_changed", "reassigned", prev["practice_id"],
                            cur["practice_id"]))
    return sorted(out, key=repr)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(_MONTH_STATES, min_size=12, max_size=12), min_size=1, max_size=6),
       st.lists(st.booleans(), min_size=6, max_size=6))
def test_changes_follow_the_rules_month_by_month(people, stable):
    """Members whose months never change (attributed to one practice all year, or never attributed)
    are set aside before the month-by-month comparison; the changes are still those of every month
    compared with the one before, for every member."""
    rows = []
    for i, states in enumerate(people):
        if stable[i]:  # the common members: the same practice every month, or never attributed
            states = [("attributed", "PA")] * 12 if i % 2 else [("excluded", "death")] * 12
        for m, state in enumerate(states):
            if state is None:
                continue
            kind, value = state
            rows.append(dict(program_id="t-2024", person_id=f"P{i}", member_id=f"M{i}", month=D(2024, m + 1, 1),
                             attributed=kind == "attributed", exclusion_reason=value if kind == "excluded" else None,
                             practice_id=value if kind == "attributed" else None, npi=None, step="s"))
    roster = ibis.memtable(pa.Table.from_pylist(rows, schema=ibis.schema(_CHANGE_COLUMNS).to_pyarrow()))
    got = run(attribution_changes(roster))
    got = sorted(((c["program_id"], c["person_id"], c["month"], c["change"], c["reason"], c["from_practice_id"],
                   c["to_practice_id"]) for c in got), key=repr)
    assert got == _expected_changes(rows)


def test_members_whose_months_may_change_are_kept_for_the_comparison():
    """The members set aside as unchanged are exactly those attributed to one practice in one row
    per month, or never attributed; a member with two rows in one month and none in another, or
    attributed every month but with a practice changing, is compared month by month."""
    from allpayer.core.attribution import _persons_who_may_change

    def member(person, months, practice="PA", attributed=True, member_id=None):
        return [dict(program_id="t-2024", person_id=person, member_id=member_id or person, month=D(2024, m, 1),
                     attributed=attributed, exclusion_reason=None if attributed else "death",
                     practice_id=practice if attributed else None, npi=None, step="s") for m in months]

    rows = (member("same", range(1, 13)) + member("never", [1, 5], attributed=False)
            + member("gap", [m for m in range(1, 13) if m != 6])
            + member("twice", range(1, 12)) + member("twice", [1], member_id="other")  # 12 rows, no December
            + member("moves", range(1, 7)) + member("moves", range(7, 13), practice="PB"))
    t = table(rows, _CHANGE_COLUMNS)
    months = t.select("program_id", "month").distinct()
    kept = sorted(r["person_id"] for r in run(_persons_who_may_change(t, months)))
    assert kept == ["gap", "moves", "twice"]
