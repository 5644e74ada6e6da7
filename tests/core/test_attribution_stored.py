"""Attribution in stored steps (the pipeline's working tables) gives the same rows as the single
expression, and programs that share a payer, code list and periods share their services.

The scenarios are those of test_attribution.py (hand-checked there); here each runs twice, once
as one Ibis expression and once with every step written to a DuckDB working table.
"""

from __future__ import annotations

import ibis
import pytest

from allpayer.core.attribution import Options, attribute
from allpayer.pipeline import WORK_PREFIX, WorkTables
from allpayer.reference.primary_care import primary_care_codes
from tests.core.test_attribution import (
    CLAIM,
    EM,
    PM,
    ROSTER,
    V_ALIGN,
    V_CLAIMS,
    V_ELIGIBILITY,
    V_MONTHS,
    V_ROSTER,
    V_TERMS,
    VA,
    YEAR,
    mssp_args,
    mssp_program,
    program,
    table,
)


def _rows(con, expr):
    rows = con.to_pyarrow(expr).to_pylist()
    return sorted(rows, key=lambda r: (r["program_id"], r["member_id"], r["month"]))


def _both(p, **kw):
    """(rows as one expression, rows in stored steps, the working tables written)."""
    con = ibis.duckdb.connect()
    plain = _rows(con, attribute(p, **kw))
    work = WorkTables(con)
    stored = _rows(con, attribute(p, **kw, store=work))
    return plain, stored, list(work.names)


def _vmng_inputs() -> dict:
    """The VMNG scenario's inputs other than its program months."""
    return dict(
        claim_lines=table(V_CLAIMS, CLAIM),
        provider_roster=table(V_ROSTER, ROSTER),
        primary_care_codes=primary_care_codes(YEAR),
        voluntary_alignment=table(V_ALIGN, VA),
        eligibility_months=table(V_ELIGIBILITY, EM),
        options=Options(full_benefit_aid_categories=("full",)),
    )


def test_vmng_roster_is_the_same_in_stored_steps():
    p = program(V_TERMS)
    plain, stored, names = _both(p, program_months=table(V_MONTHS, PM), **_vmng_inputs())
    assert plain == stored
    # the scenario attributes members by each path (hand-checked in test_attribution.py)
    steps = {r["step"] for r in stored if r["attributed"]}
    assert {"voluntary", "traditional", "expanded"} <= steps
    written = [n.split("_", 4)[-1] for n in names]
    for step in ("service_lines", "services", "candidates", "visits", "entity_winners", "step_decisions",
                 "undecided", "decisions", "roster_months", "roster_facts", "roster"):
        assert step in written, step


def test_mssp_roster_is_the_same_in_stored_steps():
    plain, stored, _ = _both(mssp_program(), **mssp_args())
    assert plain == stored
    assert any(r["attributed"] for r in stored)


def test_programs_with_the_same_payer_codes_and_periods_share_their_services():
    con = ibis.duckdb.connect()
    work = WorkTables(con)
    codes = primary_care_codes(YEAR)
    args = dict(
        claim_lines=table(V_CLAIMS, CLAIM),
        provider_roster=table(V_ROSTER, ROSTER),
        primary_care_codes=codes,
        eligibility_months=table(V_ELIGIBILITY, EM),
    )
    months = table(V_MONTHS, PM)
    both = months.union(months.mutate(program_id=ibis.literal("u-2024")))
    a = attribute(program(V_TERMS), both, **args, store=work)
    b = attribute(program(V_TERMS, program_id="u-2024"), both, **args, store=work)
    written = [n.split("_", 4)[-1] for n in work.names]
    assert written.count("service_lines") == 1
    assert written.count("services") == 1
    assert written.count("roster_provider") == 1
    assert written.count("roster") == 2  # one roster per program
    ra, rb = _rows(con, a), _rows(con, b)
    assert ra and [dict(r, program_id=None) for r in ra] == [dict(r, program_id=None) for r in rb]
    work.drop_all()
    assert not [t for t in con.list_tables() if t.startswith(WORK_PREFIX)]


@pytest.mark.parametrize("bad", ["a b", "x;drop", ""])
def test_working_table_names_are_checked(bad):
    from allpayer.errors import RunError

    with pytest.raises(RunError):
        WorkTables(ibis.duckdb.connect())(bad, ibis.memtable({"a": [1]}))


def test_duckdb_stores_only_the_shared_steps_and_gives_the_same_rows():
    """The pipeline's DuckDB choice: only the steps programs share are written (the service lines,
    the services, the eligibility months of the effective period and the death dates, once for
    two programs); every other step stays inside each program's query."""
    from allpayer.pipeline import SHARED_ATTRIBUTION_STEPS

    con = ibis.duckdb.connect()
    args = _vmng_inputs()
    months = table(V_MONTHS, PM)
    both = months.union(months.mutate(program_id=ibis.literal("u-2024")))
    plain = _rows(con, attribute(program(V_TERMS), both, **args))
    shared = WorkTables(con, prefix="shared", only=SHARED_ATTRIBUTION_STEPS)
    a = attribute(program(V_TERMS), both, **args, store=shared)
    b = attribute(program(V_TERMS, program_id="u-2024"), both, **args, store=shared)
    written = sorted(n.split("_", 4)[-1] for n in shared.names)
    assert written == ["coverage_months", "eligibility_deaths", "service_lines", "services"]
    ra, rb = _rows(con, a), _rows(con, b)
    assert ra == plain
    assert {r["step"] for r in ra if r["attributed"]} >= {"voluntary", "traditional", "expanded"}
    assert [dict(r, program_id=None) for r in ra] == [dict(r, program_id=None) for r in rb]
    shared.drop_all()
    assert not [t for t in con.list_tables() if t.startswith(WORK_PREFIX)]


def test_eligibility_months_outside_the_year_are_read_as_before():
    """The stored coverage months keep only the program's effective months; the death dates keep
    every month. Another payer's coverage in the year before does not exclude anyone, and a death
    recorded only on an earlier year's month of another payer still does."""
    from allpayer.pipeline import SHARED_ATTRIBUTION_STEPS

    prior = [dict(r, month=r["month"].replace(year=YEAR - 1)) for r in V_ELIGIBILITY if r["person_id"] == "P1"]
    elig = V_ELIGIBILITY + [
        # P14: commercial coverage all of the year before (none in the year)
        *[dict(r, person_id="P14", member_id="C14", payer="bcbs", payer_type="commercial", plan="qhp")
          for r in prior],
        # P1: a Medicare record of last December carries a death date of 20 June this year
        dict(person_id="P1", member_id="M1", payer="medicare", payer_type="medicare", plan="ffs",
             month=prior[-1]["month"], death_date=prior[-1]["month"].replace(year=YEAR, month=6, day=20)),
    ]
    args = dict(_vmng_inputs(), eligibility_months=table(elig, EM))
    con = ibis.duckdb.connect()
    months = table(V_MONTHS, PM)
    plain = _rows(con, attribute(program(V_TERMS), months, **args))
    shared = WorkTables(con, prefix="shared", only=SHARED_ATTRIBUTION_STEPS)
    stored = _rows(con, attribute(program(V_TERMS), months, **args, store=shared))
    assert stored == plain

    def status(p):
        return [(r["attributed"], r["exclusion_reason"]) for r in stored if r["person_id"] == p]

    ok = (True, None)
    assert status("P1") == [ok] * 6 + [(False, "death")] * 6
    p14 = [r for r in stored if r["person_id"] == "P14"]
    assert p14[0]["step"] == "expanded" and status("P14") == [ok] * 12
    cov = con.table(next(n for n in shared.names if n.endswith("coverage_months"))).to_pyarrow()
    assert {m.year for m in cov.column("month").to_pylist()} == {YEAR}


def test_a_working_table_written_again_holds_only_the_new_rows():
    con = ibis.duckdb.connect()
    work = WorkTables(con)
    first = work("step", ibis.memtable({"a": [1, 2, 3]}))
    assert sorted(con.to_pyarrow(first).column("a").to_pylist()) == [1, 2, 3]
    again = WorkTables(con)  # same prefix and position: the same table name, replaced
    second = again("step", ibis.memtable({"a": [7]}))
    assert work.names == again.names
    assert con.to_pyarrow(second).column("a").to_pylist() == [7]
