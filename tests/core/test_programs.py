import datetime as dt

import ibis

from allpayer.core.member_months import eligibility_months
from allpayer.core.programs import program_months
from allpayer.core.targets import performance_months_table
from allpayer.terms import load_programs, programs_dir

D = dt.date
MM_SCHEMA = {"member_id": "string", "person_id": "string", "payer": "string", "plan": "string", "group_id": "string",
             "month": "date"}
EG_SCHEMA = {"group_id": "string", "aco_opt_in": "boolean", "effective_start_date": "date", "effective_end_date": "date"}


def table(rows, schema):
    return ibis.memtable({c: [r.get(c) for r in rows] for c in schema}, schema=ibis.schema(schema))


def test_programs_select_by_payer_plan_group_and_employer_opt_in():
    programs = load_programs([programs_dir() / "vermont" / "2024"])
    mm = table(
        [
            dict(member_id="A", person_id="1", payer="medicaid", plan="vmng", month=D(2024, 1, 1)),
            dict(member_id="B", person_id="2", payer="mvp", plan="aso", group_id="SOV", month=D(2024, 1, 1)),
            dict(member_id="B", person_id="2", payer="mvp", plan="aso", group_id="SOV", month=D(2024, 7, 1)),
            dict(member_id="C", person_id="3", payer="mvp", plan="aso", group_id="ACME", month=D(2024, 1, 1)),
            dict(member_id="D", person_id="4", payer="bcbsvt", plan="qhp", month=D(2024, 1, 1)),
            dict(member_id="E", person_id="5", payer="medicaid", plan="vmng", month=D(2023, 12, 1)),
        ],
        MM_SCHEMA,
    )
    # SOV opted in for the first half of 2024 only.
    eg = table([dict(group_id="SOV", aco_opt_in=True, effective_start_date=D(2024, 1, 1),
                     effective_end_date=D(2024, 6, 30))], EG_SCHEMA)
    out = ibis.duckdb.connect().to_pyarrow(program_months(mm, programs, eg)).to_pylist()
    got = sorted((r["member_id"], r["month"], r["program_id"]) for r in out)
    assert got == [
        ("A", D(2024, 1, 1), "vt-2024-medicaid"),
        ("B", D(2024, 1, 1), "vt-2024-sov-employees"),
    ]


ELIG_SCHEMA = {"person_id": "string", "member_id": "string", "payer": "string", "payer_type": "string", "plan": "string",
               "group_id": "string", "gender": "string", "birth_date": "date", "enrollment_start_date": "date",
               "enrollment_end_date": "date", "death_date": "date", "aid_category": "string",
               "medicare_status_code": "string", "dual_status_code": "string", "data_sharing_opt_out": "boolean"}


def _mvp_qhp(plans=("qhp", "qhp_silver"), **changes):
    """MVP's 2024 QHP program, with two plans (and other changes to its terms)."""
    p = next(p for p in load_programs([programs_dir() / "vermont" / "2024"]) if p.product == "qhp" and p.payer == "mvp")
    return p.model_copy(update={"population": p.population.model_copy(update={"plans": list(plans)}), **changes})


def _switch_months():
    """M1 moves from MVP's silver QHP to its QHP on 16 March 2024 (M2 stays in the silver plan)."""
    spans = [("M1", "qhp_silver", D(2024, 1, 1), D(2024, 3, 15)), ("M1", "qhp", D(2024, 3, 16), D(2024, 12, 31)),
             ("M2", "qhp_silver", D(2024, 1, 1), D(2024, 12, 31))]
    elig = table([dict(person_id="P" + m[1:], member_id=m, payer="mvp", payer_type="commercial", plan=plan,
                       gender="female", birth_date=D(1980, 5, 5), enrollment_start_date=a, enrollment_end_date=b)
                  for m, plan, a, b in spans], ELIG_SCHEMA)
    return eligibility_months(elig, D(2024, 1, 1), D(2024, 12, 31))


def test_a_member_who_switches_plans_mid_month_has_one_member_month_in_the_program():
    """Two spans of one payer's plans that both cover part of March give one program member month
    (grain program_id, member_id, month), with the attributes of the plan first in sort order and
    the program's plans the member held that month."""
    out = ibis.duckdb.connect().to_pyarrow(program_months(_switch_months(), [_mvp_qhp()])).to_pylist()
    keys = [(r["program_id"], r["member_id"], r["month"]) for r in out]
    assert len(keys) == len(set(keys)) == 24
    march = [r for r in out if r["member_id"] == "M1" and r["month"] == D(2024, 3, 1)]
    assert [(r["plan"], r["plans_in_month"]) for r in march] == [("qhp", "|qhp|qhp_silver|")]
    assert {r["plans_in_month"] for r in out if r not in march} == {None}


def test_a_program_starting_mid_month_counts_that_month_as_its_targets_do():
    """An effective period from 15 March: March is a program month (as in the targets' months)."""
    p = _mvp_qhp(plans=("qhp_silver",))
    p = p.model_copy(update={"effective": p.effective.model_copy(update={"start": D(2024, 3, 15)})})
    out = ibis.duckdb.connect().to_pyarrow(program_months(_switch_months(), [p])).to_pylist()
    got = sorted({r["month"] for r in out if r["member_id"] == "M2"})
    assert got == performance_months_table(p) == [D(2024, m, 1) for m in range(3, 13)]


def _employee_months(new_member="M2"):
    """P1 moves from the UVMMC employee plan to the State's (both MVP's self-funded plan `aso`) on 16
    March 2024, under a reissued member id (or the same one); both employers opted in all year."""
    spans = [("M1", "UVMMC", D(2024, 1, 1), D(2024, 3, 15)), (new_member, "SOV", D(2024, 3, 16), D(2024, 12, 31))]
    elig = table([dict(person_id="P1", member_id=m, payer="mvp", payer_type="self_funded", plan="aso", group_id=g,
                       gender="female", birth_date=D(1980, 5, 5), enrollment_start_date=a, enrollment_end_date=b)
                  for m, g, a, b in spans], ELIG_SCHEMA)
    eg = table([dict(group_id=g, aco_opt_in=True, effective_start_date=D(2020, 1, 1)) for g in ("SOV", "UVMMC")],
               EG_SCHEMA)
    return eligibility_months(elig, D(2024, 1, 1), D(2024, 12, 31)), eg


def test_a_person_whose_member_id_is_reissued_mid_month_has_one_member_month_in_the_program():
    """A new card number (M1, then M2 from 16 March) in one plan is one person: twelve member
    months, not thirteen; March carries the id in force on its first day. In a program of two
    plans, a person who holds each under another id in one month has one member month listing both."""
    spans = [("M1", "qhp", D(2024, 1, 1), D(2024, 3, 15)), ("M2", "qhp", D(2024, 3, 16), D(2024, 12, 31)),
             ("M3", "qhp_silver", D(2024, 3, 20), D(2024, 3, 31))]
    elig = table([dict(person_id="P1", member_id=m, payer="mvp", payer_type="commercial", plan=plan,
                       gender="female", birth_date=D(1980, 5, 5), enrollment_start_date=a, enrollment_end_date=b)
                  for m, plan, a, b in spans], ELIG_SCHEMA)
    out = ibis.duckdb.connect().to_pyarrow(program_months(eligibility_months(elig, D(2024, 1, 1), D(2024, 12, 31)),
                                                          [_mvp_qhp()])).to_pylist()
    assert sorted(r["month"].month for r in out) == list(range(1, 13))
    march = [(r["member_id"], r["plan"], r["plans_in_month"]) for r in out if r["month"] == D(2024, 3, 1)]
    assert march == [("M1", "qhp", "|qhp|qhp_silver|")]


def test_an_employee_who_changes_employer_group_mid_month_has_the_month_in_one_program():
    """Two employer programs on one payer and plan, told apart by group: a move from UVMMC to SOV on
    16 March gives March to UVMMC's program (the group in force on the month's first covered day)
    and April on to the State's, one member month a month in all, with or without a new member id."""
    programs = load_programs([programs_dir() / "vermont" / "2024"])
    for new_member in ("M2", "M1"):
        em, eg = _employee_months(new_member)
        out = ibis.duckdb.connect().to_pyarrow(program_months(em, programs, eg)).to_pylist()
        got = sorted((r["month"].month, r["program_id"]) for r in out)
        assert got == [(m, "vt-2024-uvmmc-employees") for m in (1, 2, 3)] + [
            (m, "vt-2024-sov-employees") for m in range(4, 13)]
