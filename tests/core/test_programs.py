import datetime as dt

import ibis

from allpayer.core.programs import program_months
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
