"""What the quality stage builds once per run and what it leaves behind.

Programs of one payer read one copy of the payer's claims, diagnoses, claim summaries and
exclusion evidence; each program's results are the same as when it is run alone; the stage drops
every temporary table it made. DuckDB connections carry a memory limit (a share of the machine's
memory, or ``ALLPAYER_DUCKDB_MEMORY``) and spill beside the database file.
"""

from __future__ import annotations

import collections

import ibis
import pytest

from allpayer import backend
from allpayer.errors import RunError
from allpayer.quality import framework
from allpayer.quality.run import run_quality

from .helpers import VALUESETS, D, World, plain, rows, table

Y = 2024
PAID_THROUGH = D(Y + 1, 3, 31)
OTHER = "vt-test-other"


def world() -> World:
    w = World()
    w.person("A", D(1960, 3, 1), practice="PR1")
    w.person("B", D(1970, 5, 2), practice="PR2")
    w.person("K", D(2015, 7, 3), practice="PR1")
    for pid in ("A", "B"):
        w.claim(pid, D(Y, 2, 1), dx=("E119",), hcpcs="99213")
        w.claim(pid, D(Y, 4, 1), dx=("E119", "I10"), hcpcs="99213")
        w.claim(pid, D(Y, 5, 1), dx=("I10",), hcpcs="99213")
    w.lab("A", D(Y, 5, 1), "9.8")
    w.lab("B", D(Y, 6, 1), "6.2")
    w.bp("B", D(Y, 6, 1), 128, 82)
    # B: an ED visit for depression, followed up by a visit 5 days later (FUM opens no gap)
    w.claim("B", D(Y, 3, 1), dx=("F329",), hcpcs="99283", pos="23")
    w.claim("B", D(Y, 3, 6), dx=("F329",), hcpcs="99213")
    w.claim("K", D(Y, 9, 1), dx=("Z00129",), hcpcs="99393")
    return w


def database(w: World, programs: int):
    """The world's inputs; with ``programs=2`` a second program of the same payer has the same
    attributed members."""
    con = ibis.duckdb.connect()
    con.create_table("medical_claim", table("medical_claim", w.claims))
    con.create_table("eligibility", table("eligibility", w.spans))
    con.create_table("lab_result", table("lab_result", w.labs))
    con.create_table("observation", table("observation", w.obs))
    att, mm = w.attribution(), w.member_months()
    if programs == 2:
        att = att.union(att.mutate(program_id=ibis.literal(OTHER)))
        mm = mm.union(mm.mutate(program_id=ibis.literal(OTHER)))
    con.create_table("attribution", att)
    con.create_table("member_months", mm)
    return con


def results(con, program_id: str) -> list[dict]:
    r = con.table("quality_measure_results")
    r = r.filter(r.program_id == program_id).drop("program_id", "run_id")
    return sorted(r.to_pyarrow().to_pylist(), key=repr)


def test_programs_of_one_payer_share_their_payer_tables(monkeypatch):
    built = collections.Counter()
    real_get = framework.Shared.get

    def counting_get(self, key, build, **kw):
        def counted():
            built[key] += 1
            return build()
        return real_get(self, key, counted, **kw)

    monkeypatch.setattr(framework.Shared, "get", counting_get)
    w = world()
    other = w.program.model_copy(update={"program_id": OTHER})
    con = database(w, programs=2)
    run_quality(con, [w.program, other], Y, PAID_THROUGH, "run-1")
    payer = w.program.payer
    assert built[f"payer_{payer}_lines"] == 1  # the payer's claims are netted and stored once
    assert f"payer_{payer}_claims" not in built  # not stored again per payer
    assert built[f"payer_{payer}_diagnoses"] == 1
    assert built[f"payer_{payer}_common_exclusions"] == 1
    assert built[f"payer_{payer}_claims_base"] == 1
    assert built[f"payer_{payer}_claims_fum_dx_flags"] == 1
    assert f"payer_{payer}_claims_fum" not in built  # the flags are joined to the summary where read
    assert max(built.values()) == 1

    # each program gets the rows it gets alone
    alone = database(w, programs=1)
    run_quality(alone, [w.program], Y, PAID_THROUGH, "run-1")
    mine = results(alone, w.program.program_id)
    got = {(r["measure_id"], r["person_id"]): r for r in mine}
    assert got[("hba1c_poor_control", "A")]["in_numerator"]  # 9.8% is poor control
    assert not got[("hba1c_poor_control", "B")]["in_numerator"]  # 6.2%
    assert got[("cbp", "B")]["evidence_value"] == "128/82"
    assert results(con, w.program.program_id) == mine
    assert results(con, OTHER) == mine
    rates = con.table("quality_rates")
    by_prog = {(r["program_id"], r["measure_id"], r["level"], r["level_id"]): (r["denominator"], r["numerator"])
               for r in rates.to_pyarrow().to_pylist()}
    for (prog, mid, level, lid), counts in by_prog.items():
        if prog == OTHER and level == "program":
            assert by_prog[(w.program.program_id, mid, level, w.program.program_id)] == counts


def test_code_columns_no_row_fills_are_left_out_of_the_stored_lines(monkeypatch):
    """The payer's lines are stored without the code columns empty in every claim row
    (`core.claims.empty_columns`) and the measures read those as NULLs: the results are the same as
    when every column is read and stored."""
    from allpayer.core import claims

    w = world()
    w.claim("A", D(Y, 6, 1), dx=("E119", "I10", "Z794"), hcpcs="99213")  # one row fills position 3
    stored = {}
    real_get = framework.Shared.get

    def spying_get(self, key, build, **kw):
        stored[key] = real_get(self, key, build, **kw)
        return stored[key]

    monkeypatch.setattr(framework.Shared, "get", spying_get)
    narrow = database(w, programs=1)
    run_quality(narrow, [w.program], Y, PAID_THROUGH, "run-1")
    kept = stored[f"payer_{w.program.payer}_lines"].columns
    assert {"diagnosis_code_1", "diagnosis_code_2", "diagnosis_code_3"} <= set(kept)
    assert not {"diagnosis_code_4", "diagnosis_code_25", "procedure_code_1"} & set(kept)

    monkeypatch.setattr(claims, "empty_columns", lambda table, candidates: ())
    wide = database(w, programs=1)
    run_quality(wide, [w.program], Y, PAID_THROUGH, "run-1")
    assert set(framework.CLAIM_COLUMNS) <= set(stored[f"payer_{w.program.payer}_lines"].columns)
    got = results(narrow, w.program.program_id)
    assert got == results(wide, w.program.program_id)
    assert {(r["measure_id"], r["person_id"]) for r in got if r["in_numerator"]} >= {("hba1c_poor_control", "A")}

    def gaps(con):
        return sorted(con.table("care_gaps").drop("run_id").to_pyarrow().to_pylist(), key=repr)

    assert gaps(narrow) == gaps(wide) != []


def test_payer_tables_are_named_by_slot():
    """A payer's tables are stored under the lowest slot free when its first table is made, and
    its slot is free again once its tables are dropped: payers in turn share slot 0, payers held at
    once have their own."""
    con = ibis.duckdb.connect()
    sh = framework.Shared(keep=framework.keeper(con, "_qs"))
    one = ibis.memtable({"x": [1]})

    def name(t):
        return t.op().name

    assert name(sh.payer_table("medicare", "lines", lambda: one)) == "_qs_payer0_lines"
    assert name(sh.payer_table("medicaid", "lines", lambda: one)) == "_qs_payer1_lines"
    assert name(sh.payer_table("medicare", "dx", lambda: one)) == "_qs_payer0_dx"
    sh.drop(con, group="payer:medicare")
    assert "_qs_payer0_lines" not in con.list_tables()
    assert name(sh.payer_table("mvp", "lines", lambda: one)) == "_qs_payer0_lines"
    assert name(sh.payer_table("medicaid", "dx", lambda: one)) == "_qs_payer1_dx"
    sh.drop(con)
    assert name(sh.payer_table("bcbsvt", "lines", lambda: one)) == "_qs_payer0_lines"


def test_programs_in_turn_compile_their_shared_measure_queries_once(monkeypatch):
    """Two programs of one payer: the program's own tables have the same names for each in turn, so
    a measure query that does not depend on the program's terms is compiled for the first program
    only (`backend.compiled_query`), and the second program's results are the same as alone."""
    compiled = collections.Counter()
    real = backend.compiled_query

    def counting(con, expr):
        kept = getattr(con, "_allpayer_compiled", {})
        if expr.op() not in kept:
            compiled["compiled"] += 1
        else:
            compiled["reused"] += 1
        return real(con, expr)

    monkeypatch.setattr(backend, "compiled_query", counting)
    w = world()
    other = w.program.model_copy(update={"program_id": OTHER})
    con = database(w, programs=2)
    run_quality(con, [w.program, other], Y, PAID_THROUGH, "run-1")
    once = dict(compiled)
    compiled.clear()
    alone = database(w, programs=1)
    run_quality(alone, [w.program], Y, PAID_THROUGH, "run-1")
    # the second program compiles fewer queries afresh than it reuses (21 reused, 10 afresh)
    assert once["reused"] > once["compiled"] - compiled["compiled"] > 0
    assert results(con, OTHER) == results(alone, w.program.program_id)


def test_diagnoses_in_a_value_set_are_read_not_stored(monkeypatch):
    """`MeasureContext.dx_in` is a semi-join of the payer's stored diagnoses to the set's codes,
    left unstored, with the rows of the diagnoses whose code is in the set (principal: position 1)."""
    stored = []
    real_keeper = framework.keeper

    def spying_keeper(con, prefix, made=None):
        keep = real_keeper(con, prefix, made)

        def spy(name, t):
            stored.append(name)
            return keep(name, t)
        return spy

    monkeypatch.setattr(framework, "keeper", spying_keeper)
    w = world()
    con = database(w, programs=1)
    run_quality(con, [w.program], Y, PAID_THROUGH, "run-1")
    assert "payer0_diagnoses" in stored and not [n for n in stored if n.startswith("payer0_dx_")]

    ctx = w.context()
    hyp = rows(ctx.dx_in("hypertension_dx"))
    assert sorted((r["person_id"], r["service_date"], r["code"]) for r in hyp) == [
        ("A", D(Y, 4, 1), "I10"), ("A", D(Y, 5, 1), "I10"), ("B", D(Y, 4, 1), "I10"), ("B", D(Y, 5, 1), "I10")]
    principal = rows(ctx.dx_in("hypertension_dx", principal=True))
    assert sorted((r["person_id"], r["service_date"]) for r in principal) == [("A", D(Y, 5, 1)), ("B", D(Y, 5, 1))]


def test_the_stage_drops_its_temporary_tables():
    w = world()
    con = database(w, programs=1)
    before = set(con.list_tables())
    run_quality(con, [w.program], Y, PAID_THROUGH, "run-1")
    left = {t for t in set(con.list_tables()) - before if not t.startswith("ibis_")}  # Ibis's in-memory tables
    assert left == {"quality_measure_results", "quality_rates", "quality_scores", "quality_program_scores",
                    "care_gaps"}


def _setting(con, name: str) -> str:
    return con.raw_sql(f"SELECT current_setting('{name}')").fetchone()[0]


def test_duckdb_memory_limit_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(backend.MEMORY_ENV, "300MB")
    db = tmp_path / "x.duckdb"
    con = backend.connect_duckdb(db)
    try:
        # DuckDB reports the limit in binary units: 300 MB is 286.1 MiB
        assert _setting(con, "memory_limit") == "286.1 MiB"
        assert _setting(con, "temp_directory") == f"{db}.tmp"
    finally:
        con.disconnect()
    assert backend.duckdb_settings(None) == {"memory_limit": "300MB"}


def test_duckdb_memory_limit_default_is_a_share_of_the_machine(monkeypatch):
    monkeypatch.delenv(backend.MEMORY_ENV, raising=False)
    import os

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    s = backend.duckdb_settings("/data/a.duckdb")
    assert s["temp_directory"] == "/data/a.duckdb.tmp"
    assert s["memory_limit"] == f"{int(total * backend.DEFAULT_MEMORY_FRACTION) // 2**20}MB"
    assert int(s["memory_limit"][:-2]) * 2**20 < total / 2


def test_a_bad_memory_setting_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(backend.MEMORY_ENV, "lots")
    with pytest.raises(RunError, match="ALLPAYER_DUCKDB_MEMORY='lots' is not a DuckDB memory size"):
        backend.connect_duckdb(tmp_path / "x.duckdb")


def test_a_run_spills_instead_of_failing_under_a_small_limit(tmp_path, monkeypatch):
    """A join larger than the limit completes, spilling to the temporary folder."""
    monkeypatch.setenv(backend.MEMORY_ENV, "64MB")
    con = backend.connect_duckdb(tmp_path / "x.duckdb")
    try:
        con.raw_sql("SET threads = 1")
        n = con.raw_sql(
            "SELECT count(*), sum(a.i + b.i) FROM range(3000000) a(i) JOIN range(3000000) b(i) ON a.i = b.i"
        ).fetchone()
        assert n == (3000000, 2 * sum(range(3000000)))
    finally:
        con.disconnect()


def test_only_the_members_claim_lines_are_read():
    """A person enrolled with the payer but attributed to no program has claims; they are not among
    the lines the measures read, and the members' results are the same as with every line read."""
    w = world()
    w.person("N", D(1955, 1, 1), attributed_months=())  # enrolled, never attributed
    w.claim("N", D(Y, 2, 1), dx=("E119",), hcpcs="99213")
    w.lab("N", D(Y, 5, 1), "9.9")
    claims = table("medical_claim", w.claims)
    common = dict(medical_claim=claims, eligibility=table("eligibility", w.spans), attribution=w.attribution(),
                  member_months=w.member_months(), valuesets=VALUESETS, lab_result=table("lab_result", w.labs),
                  observation=table("observation", w.obs))
    ctx = framework.build_context(w.program, Y, PAID_THROUGH, **common)
    read = {r["person_id"] for r in rows(ctx.claims.select("person_id").distinct())}
    assert read == {"A", "B", "K"}
    everyone = claims.select("person_id")
    wide = framework.build_context(w.program, Y, PAID_THROUGH, claim_persons=everyone, **common)
    assert "N" in {r["person_id"] for r in rows(wide.claims.select("person_id").distinct())}
    for mid in ("hba1c_poor_control", "cbp", "hedis_fum_30d"):
        m = framework.registry()[mid]

        def got(c):  # on Ibis's default backend, where event measures cache their shared inputs
            return sorted(framework.evaluate(m, c).to_pyarrow().to_pylist(), key=repr)

        assert got(ctx) == got(wide)
        assert "N" not in {r["person_id"] for r in got(wide)}


def b_apart(w: World, payer: str | None = None):
    """The world's inputs with B (the ED visit and its follow-up, the blood pressure) in a program
    of its own, `OTHER` (of another payer when `payer` is given: B's claims and enrollment name
    it); returns the connection and the other program's terms."""
    other = w.program.model_copy(update={"program_id": OTHER, **({"payer": payer} if payer else {})})
    con = ibis.duckdb.connect()
    for name, recs in (("medical_claim", w.claims), ("eligibility", w.spans), ("lab_result", w.labs),
                       ("observation", w.obs)):
        t = table(name, recs)
        if payer and "payer" in t.columns:
            t = t.mutate(payer=ibis.ifelse(t.person_id == "B", ibis.literal(payer), t.payer))
        con.create_table(name, t)
    att, mm = w.attribution(), w.member_months()
    att = att.mutate(program_id=ibis.ifelse(att.person_id == "B", ibis.literal(OTHER), att.program_id))
    mm = mm.mutate(program_id=ibis.ifelse(mm.person_id == "B", ibis.literal(OTHER), mm.program_id))
    con.create_table("attribution", att)
    con.create_table("member_months", mm)
    return con, other


def results_alone(con, program) -> list[dict]:
    """The program's results when it is the only one run, on a copy of `con`'s inputs."""
    alone = ibis.duckdb.connect()
    for name in ("medical_claim", "eligibility", "lab_result", "observation", "attribution", "member_months"):
        alone.create_table(name, con.table(name).to_pyarrow())
    run_quality(alone, [program], Y, PAID_THROUGH, "run-1")
    return results(alone, program.program_id)


def test_shared_payer_lines_cover_the_members_of_every_program_of_the_payer():
    """Two programs of one payer with different members: the payer's lines, stored once, hold the
    members of both, and each program's results are those it gets alone."""
    w = world()
    con, other = b_apart(w)
    run_quality(con, [w.program, other], Y, PAID_THROUGH, "run-1")
    both = {p: results(con, p) for p in (w.program.program_id, OTHER)}
    assert {r["person_id"] for r in both[OTHER]} == {"B"}
    assert ("cbp", "B") in {(r["measure_id"], r["person_id"]) for r in both[OTHER]}
    assert any(r["measure_id"] == "cbp" and r["evidence_value"] == "128/82" for r in both[OTHER])
    for prog in (w.program, other):
        assert results_alone(con, prog) == both[prog.program_id]


def test_shared_payer_tables_need_the_persons_whose_lines_they_hold():
    w = world()
    with pytest.raises(ValueError, match="claim_persons"):
        framework.build_context(
            w.program, Y, PAID_THROUGH, medical_claim=table("medical_claim", w.claims),
            eligibility=table("eligibility", w.spans), attribution=w.attribution(),
            member_months=w.member_months(), valuesets=VALUESETS, shared=framework.Shared(keep=None))


def test_each_payer_reads_the_labs_and_readings_of_its_own_members():
    """Two programs of two payers in one run: B belongs to the second payer only. B's HbA1c (6.2%)
    and reading (128/82) count in the second program, as when it runs alone, whatever the first
    payer's programs built from the labs and readings before it."""
    w = world()
    con, other = b_apart(w, payer="other-payer")
    run_quality(con, [w.program, other], Y, PAID_THROUGH, "run-1")
    got = {(r["measure_id"], r["person_id"]): r for r in results(con, OTHER)}
    assert not got[("hba1c_poor_control", "B")]["in_numerator"]  # 6.2%: a result was read
    assert got[("cbp", "B")]["evidence_value"] == "128/82"
    mine = {(r["measure_id"], r["person_id"]): r for r in results(con, w.program.program_id)}
    assert mine[("hba1c_poor_control", "A")]["in_numerator"]  # 9.8%
    assert results_alone(con, other) == results(con, OTHER)
