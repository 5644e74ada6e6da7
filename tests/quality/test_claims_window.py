"""What the quality stage keeps of the claim lines: the declared columns and service dates.

The measures read `MeasureContext.claims` with the columns of `framework.CLAIM_COLUMNS` only, and
only the service dates the measures declare (`Measure.lookback_months`, and any date for a code of
a `Measure.history_valuesets` set). These tests check that every shipped measure runs on such a
context, that no source file of the stage reads an input claim column left out of the
declaration, and that the lines a measure needs at the edge of its window are kept.
"""

from __future__ import annotations

import pathlib
import re

from allpayer.inputs.schema import MEDICAL_CLAIM
from allpayer.quality import care_gaps, framework
from allpayer.quality.run import run_quality

from .helpers import D, VALUESETS, World, rows, table
from .test_shared import PAID_THROUGH, database, results

Y = 2024


def test_the_window_is_the_longest_declared_lookback_and_the_history_sets():
    start, history = framework.claims_window(Y)
    # breast cancer screening reads mammograms from 1 October two years before (27 months)
    assert start == D(2022, 10, 1)
    assert set(history) == {"bilateral_mastectomy", "esrd_dialysis", "primary_care_visit"}
    assert framework.REGISTRY["hedis_bcs_e"].lookback_months == 27
    # with only 12- and 24-month measures the window starts with the year before
    short = [m for m in framework.registry().values() if m.lookback_months <= 24]
    assert framework.claims_window(Y, short)[0] == D(2023, 1, 1)
    assert framework.claims_window(Y, [])[0] == D(2024, 1, 1)


def test_only_declared_columns_and_dates_are_kept():
    w = World()
    w.person("P", D(1960, 1, 1))
    old = w.claim("P", D(2022, 9, 30), hcpcs="71046")  # before the window, no history code: dropped
    edge = w.claim("P", D(2022, 10, 1), hcpcs="99213")  # first day of the window: kept
    mast = w.claim("P", D(2015, 6, 1), dx=("E119", "Z9013"))  # a mastectomy any time: kept
    pcp = w.claim("P", D(2021, 5, 1), hcpcs="99395")  # a primary-care visit any time: kept (care gaps)
    denied = w.claim("P", D(Y, 5, 1), hcpcs="99213", status="denied")
    spans = w.claim("P", D(2022, 9, 20), hcpcs="71046")  # a claim ending in the window: kept
    w.claims[-1]["claim_end_date"] = D(2022, 10, 5)
    start, history = framework.claims_window(Y)
    t = framework.quality_claim_lines(table("medical_claim", w.claims), PAID_THROUGH, start=start,
                                      history=history, valuesets=VALUESETS)
    assert t.columns == tuple(c for c in framework.CLAIM_COLUMNS)
    kept = {r["claim_id"] for r in rows(t)}
    assert kept == {edge, mast, pcp, spans}
    assert old not in kept and denied not in kept
    (r,) = [r for r in rows(t) if r["claim_id"] == mast]
    assert (r["diagnosis_code_2"], r["allowed_cents"], r["service_category"]) == ("Z9013", 6000, "professional")


def test_left_out_code_columns_read_as_nulls_of_their_type():
    """The context's claims have the columns and types of every declared column, whether or not
    an empty one was read from the input; a filled one keeps its values."""
    w = World()
    w.person("P", D(1960, 1, 1))
    w.claim("P", D(Y, 3, 1), dx=("E119", "Z9013"), hcpcs="99213")
    full = framework.quality_claim_lines(table("medical_claim", w.claims), PAID_THROUGH)
    ctx = w.context()
    assert ctx.claims.schema() == full.schema()
    (r,) = rows(ctx.claims)
    assert r["diagnosis_code_2"] == "Z9013"
    assert r["diagnosis_code_3"] is None and r["procedure_code_1"] is None
    narrow = framework.quality_claim_lines(table("medical_claim", w.claims), PAID_THROUGH,
                                           leave_out=("diagnosis_code_3", "procedure_code_1"))
    assert "diagnosis_code_3" not in narrow.columns and "diagnosis_code_2" in narrow.columns


def test_no_source_file_reads_an_undeclared_claim_column():
    """An input claim column named anywhere in the stage's code must be declared (or be read only
    from another table: ``data_source`` is read from lab results)."""
    root = pathlib.Path(framework.__file__).parent
    words = set()
    for p in root.rglob("*.py"):
        words |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", p.read_text()))
    named = {c.name for c in MEDICAL_CLAIM.columns} & words
    undeclared = named - set(framework.CLAIM_COLUMNS) - set(framework.NETTING_COLUMNS) - {"data_source"}
    assert undeclared == set()


def test_every_measure_runs_on_the_narrowed_claims():
    """A measure reading a column the context does not carry fails here (Ibis names the column)."""
    w = World()
    w.person("A", D(1960, 3, 1))
    w.claim("A", D(Y, 2, 1), dx=("E119", "I10"), hcpcs="99213")
    w.claim("A", D(Y, 3, 1), dx=("F329",), hcpcs="99283", pos="23")
    w.claim("A", D(Y, 4, 1), dx=("F329",), claim_type="institutional", bill_type="111", revenue="0100")
    ctx = w.context()
    assert set(ctx.claims.columns) <= set(framework.CLAIM_COLUMNS)
    ran = []
    for m in framework.registry().values():
        if m.label.startswith("supplied"):
            continue
        framework.evaluate(m, ctx).to_pyarrow()  # the default backend, where measures cache
        ran.append(m.id)
    care_gaps.no_primary_care_gaps(ctx).to_pyarrow()
    assert {"hedis_bcs_e", "cbp", "hba1c_poor_control", "hedis_pcr", "hedis_fuh_7d", "iet", "cdev"} <= set(ran)


def bcs_world() -> World:
    w = World("vt-2024-mvp-qhp")  # the program that lists BCS-E
    # 26 months before 31 December 2024: 1 November 2022, the only screening (enrolled from
    # 1 October 2022, as BCS-E's enrollment asks)
    since = [(D(2022, 10, 1), D(Y, 12, 31))]
    w.person("screened_26_months_before", D(1960, 1, 1), spans=since)
    w.claim("screened_26_months_before", D(2022, 11, 1), hcpcs="77067")
    w.person("screened_28_months_before", D(1960, 1, 1), spans=since)
    w.claim("screened_28_months_before", D(2022, 9, 1), hcpcs="77067")
    w.person("mastectomy_in_2012", D(1960, 1, 1), spans=since)
    w.claim("mastectomy_in_2012", D(2012, 1, 1), dx=("E119", "Z9013"))
    w.claim("mastectomy_in_2012", D(2021, 5, 1), hcpcs="99395")  # the last primary-care visit on file
    return w


def test_a_screening_26_months_before_the_period_end_still_meets_the_measure():
    w = bcs_world()
    got = w.results("hedis_bcs_e")
    assert got["screened_26_months_before"]["in_numerator"]
    assert got["screened_26_months_before"]["evidence_date"] == D(2022, 11, 1)
    assert not got["screened_28_months_before"]["in_numerator"]
    assert got["mastectomy_in_2012"]["excluded"]
    assert got["mastectomy_in_2012"]["exclusion_reason"] == "bilateral_mastectomy"


def test_the_stage_keeps_the_lines_at_the_edge_of_the_window():
    """The same through `run_quality`, which stores the narrowed lines once for every payer."""
    w = bcs_world()
    con = database(w, programs=1)
    run_quality(con, [w.program], Y, PAID_THROUGH, "run-1")
    got = {r["person_id"]: r for r in results(con, w.program.program_id) if r["measure_id"] == "hedis_bcs_e"}
    assert got["screened_26_months_before"]["in_numerator"]
    assert got["screened_26_months_before"]["evidence_date"] == D(2022, 11, 1)
    assert not got["screened_28_months_before"]["in_numerator"]
    assert got["mastectomy_in_2012"]["exclusion_reason"] == "bilateral_mastectomy"
    # the care gap shows the last primary-care visit on file, whatever its date
    gaps = {g["person_id"]: g for g in con.table("care_gaps").to_pyarrow().to_pylist()
            if g["gap_type"] == "no_primary_care_visit_12m"}
    assert gaps["mastectomy_in_2012"]["last_date"] == D(2021, 5, 1)
    assert gaps["screened_28_months_before"]["last_date"] is None


def test_lines_in_keeps_the_lines_of_their_own_test():
    """`lines_in` reads one table of every line's value sets (own codes and diagnoses); it keeps
    the lines `line_in_set` passes, for a set of that table and for one outside it."""
    w = World()
    w.person("A", D(1960, 3, 1))
    w.claim("A", D(Y, 2, 1), dx=("E119", "I10"), hcpcs="99213")
    w.claim("A", D(Y, 3, 1), dx=("E119", "Z515"), hcpcs="G0438", pos="32")
    w.claim("A", D(Y, 4, 1), dx=("N186",), claim_type="institutional", bill_type="111", revenue="0821")
    w.claim("A", D(Y, 5, 1), dx=("F329",), claim_type="institutional", bill_type="131", revenue="0510")
    w.claim("A", D(Y, 6, 1), dx=("I10",), hcpcs="99495")
    ctx = w.context()
    assert "palliative_care" in framework.line_valuesets(ctx.valuesets)
    assert "followup_transitional_care" not in framework.line_valuesets(ctx.valuesets)  # event measures only
    for name, n in (("palliative_care", 1), ("followup_outpatient_visit", 3), ("followup_transitional_care", 1)):
        got = sorted(ctx.lines_in(name).claim_id.to_pyarrow().to_pylist())
        c = ctx.claims
        want = sorted(c.filter(framework.line_in_set(ctx.valuesets, name, c)).claim_id.to_pyarrow().to_pylist())
        assert got == want and len(got) == n, (name, got, want)
