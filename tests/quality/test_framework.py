"""The measure framework: continuous enrollment, result conformance, rates by level, value sets,
SUD redaction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import pytest

from allpayer.core.claims import DIAGNOSIS_COLUMNS
from allpayer.errors import InputFileError
from allpayer.quality import framework
from allpayer.quality.framework import Enrollment, continuously_enrolled
from allpayer.quality.valuesets import Code, ValueSets, load_valuesets

from .helpers import D, plain, rows

HEDIS = Enrollment()  # one gap of up to 45 days, enrolled on the last day


def enrolled(spans, rule=HEDIS, start=D(2024, 1, 1), end=D(2024, 12, 31)) -> bool:
    people = plain([{"person_id": "P"}], {"person_id": "string"})
    elig = plain([{"person_id": "P", "enrollment_start_date": s, "enrollment_end_date": e} for s, e in spans],
                 {"person_id": "string", "enrollment_start_date": "date", "enrollment_end_date": "date"})
    (row,) = rows(continuously_enrolled(people, elig, start, end, rule))
    return row["enrolled"]


@pytest.mark.parametrize("spans,expected", [
    ([(D(2023, 1, 1), D(2025, 6, 30))], True),  # one span over the year
    ([(D(2024, 1, 1), D(2024, 6, 30)), (D(2024, 7, 1), D(2024, 12, 31))], True),  # touching spans
    ([(D(2024, 1, 1), D(2024, 8, 31)), (D(2024, 3, 1), D(2024, 12, 31))], True),  # overlapping spans
    ([(D(2024, 1, 1), D(2024, 3, 31)), (D(2024, 5, 16), D(2024, 12, 31))], True),  # gap of 45 days
    ([(D(2024, 1, 1), D(2024, 3, 31)), (D(2024, 5, 17), D(2024, 12, 31))], False),  # gap of 46 days
    ([(D(2024, 2, 15), D(2024, 12, 31))], True),  # 45 days missing at the start
    ([(D(2024, 2, 16), D(2024, 12, 31))], False),  # 46 days missing at the start
    ([(D(2024, 1, 1), D(2024, 3, 31)), (D(2024, 4, 10), D(2024, 6, 30)), (D(2024, 7, 10), D(2024, 12, 31))], False),  # two gaps
    ([(D(2024, 1, 1), D(2024, 12, 30))], False),  # not enrolled on the last day
    ([(D(2022, 1, 1), D(2022, 12, 31))], False),  # no span in the window
])
def test_continuous_enrollment(spans, expected):
    assert enrolled(spans) is expected


def test_rules_are_parameters():
    spans = [(D(2024, 1, 1), D(2024, 3, 31)), (D(2024, 4, 10), D(2024, 6, 30)), (D(2024, 7, 10), D(2024, 12, 31))]
    assert enrolled(spans, Enrollment(max_gaps=2, max_gap_days=10))
    assert not enrolled([(D(2024, 1, 1), D(2024, 12, 30))], Enrollment(max_gaps=0))
    assert enrolled([(D(2024, 1, 1), D(2024, 12, 30))], Enrollment(max_gaps=1, anchor=None))


def test_windows_per_row():
    events = plain([{"person_id": "P", "event_id": "E1", "s": D(2024, 3, 1), "e": D(2024, 3, 31)},
                    {"person_id": "P", "event_id": "E2", "s": D(2024, 6, 1), "e": D(2024, 7, 1)}],
                   {"person_id": "string", "event_id": "string", "s": "date", "e": "date"})
    elig = plain([{"person_id": "P", "enrollment_start_date": D(2024, 1, 1), "enrollment_end_date": D(2024, 6, 15)}],
                 {"person_id": "string", "enrollment_start_date": "date", "enrollment_end_date": "date"})
    out = rows(continuously_enrolled(events, elig, "s", "e", Enrollment(max_gaps=0), key=["person_id", "event_id"]),
               key=lambda r: r["event_id"])
    assert [r["enrolled"] for r in out] == [True, False]


def test_age_on():
    t = plain([{"b": D(2000, 12, 31)}, {"b": D(2001, 1, 1)}, {"b": D(2004, 2, 29)}], {"b": "date"})
    out = rows(t.select(a=framework.age_on(t.b, D(2024, 12, 31)), c=framework.age_on(t.b, D(2025, 2, 28))))
    assert [r["a"] for r in out] == [24, 23, 20]
    assert [r["c"] for r in out] == [24, 24, 20]  # a 29 February birthday comes on 1 March


def results_table(recs):
    base = {"program_id": "p1", "measure_id": "m1", "event_id": "", "npi": None, "tin": None, "performance_year": 2024,
            "excluded": False, "in_numerator": False, "in_denominator": True}
    return plain([{**base, **r} for r in recs],
                 {"program_id": "string", "measure_id": "string", "person_id": "string", "event_id": "string",
                  "practice_id": "string", "npi": "string", "tin": "string", "hsa": "string",
                  "in_denominator": "boolean", "excluded": "boolean", "in_numerator": "boolean",
                  "performance_year": "int32"})


def test_rates_by_level_count_and_flag():
    recs = [
        # practice A: 3 in the denominator, 1 excluded, 1 numerator -> 1/2
        {"person_id": "a1", "practice_id": "A", "hsa": "H1", "in_numerator": True},
        {"person_id": "a2", "practice_id": "A", "hsa": "H1"},
        {"person_id": "a3", "practice_id": "A", "hsa": "H1", "excluded": True, "in_numerator": True},
        # practice B: 1 member, numerator -> 1/1
        {"person_id": "b1", "practice_id": "B", "hsa": "H2", "in_numerator": True},
        # another program's member counts at the ACO level only
        {"program_id": "p2", "person_id": "c1", "practice_id": "C", "hsa": "H2"},
        # initial population but not in the denominator
        {"person_id": "a4", "practice_id": "A", "hsa": "H1", "in_denominator": False},
    ]
    r = framework.rates(results_table(recs), inverse={"m1": True}, min_denominator={"p1": 3, "p2": 1},
                        certified={"m1": False}, labels={"m1": "observed"})
    got = {(x["program_id"], x["level"], x["level_id"]): x for x in rows(r)}
    a = got[("p1", "practice", "A")]
    assert (a["denominator"], a["exclusions"], a["numerator"]) == (3, 1, 1)
    assert a["rate"] == Decimal("0.5") and a["small_denominator"]  # 2 left, minimum 3
    p1 = got[("p1", "program", "p1")]
    assert (p1["denominator"], p1["exclusions"], p1["numerator"], p1["rate"]) == (4, 1, 2, Decimal("0.6666666667"))
    assert not p1["small_denominator"] and p1["inverse"] and not p1["certified"] and p1["reportable"]
    aco = got[("ALL", "aco", "aco")]
    assert (aco["denominator"], aco["numerator"]) == (5, 2)
    assert got[("p1", "hsa", "H2")]["rate"] == 1


def test_rates_round_half_up_to_ten_places():
    recs = [{"person_id": f"x{i}", "practice_id": "A", "hsa": "H", "in_numerator": i < 2} for i in range(3)]
    recs += [{"program_id": "p2", "person_id": f"y{i}", "practice_id": "B", "hsa": "H", "in_numerator": i < 1}
             for i in range(3)]
    got = {(x["program_id"], x["level"]): x["rate"] for x in rows(framework.rates(results_table(recs), inverse={}))}
    assert got[("p1", "program")] == Decimal("0.6666666667")  # 2/3 rounds up
    assert got[("p2", "program")] == Decimal("0.3333333333")  # 1/3 rounds down
    assert got[("ALL", "aco")] == Decimal("0.5000000000")


def test_not_reportable_rates_are_null_with_a_note():
    r = framework.rates(results_table([{"person_id": "a1", "practice_id": "A", "hsa": "H1", "in_numerator": True}]),
                        inverse={}, not_reportable={("p1", "m1"): "not reportable: redacted data"})
    for x in rows(r):
        assert x["rate"] is None and not x["reportable"] and x["note"] == "not reportable: redacted data"
        assert x["denominator"] == 1  # the counts still show what was found


def test_conform_forces_consistent_flags():
    pop = plain([{"person_id": "x", "practice_id": "A", "npi": "1", "tin": "2", "hsa": "H"}],
                {"person_id": "string", "practice_id": "string", "npi": "string", "tin": "string", "hsa": "string"})
    res = plain([{"person_id": "x", "in_denominator": True, "excluded": True, "in_numerator": True},
                 {"person_id": "y", "in_denominator": False, "excluded": True, "in_numerator": True}],
                {"person_id": "string", "in_denominator": "boolean", "excluded": "boolean", "in_numerator": "boolean"})
    m = framework.Measure(id="m", name="m", kind="member", compute=lambda c, p: res)
    out = rows(framework.conform(res, m, pop, "p", 2024), key=lambda r: r["person_id"])
    assert [(r["in_denominator"], r["excluded"], r["in_numerator"]) for r in out] == [(True, True, False), (False, False, False)]
    assert out[0]["practice_id"] == "A" and out[0]["event_id"] == "" and list(out[0]) == list(framework.OUTPUT_COLUMNS)


def test_value_sets_load_with_sources_and_user_files_replace_sets(tmp_path):
    vs = load_valuesets()
    assert not vs.certified(["diabetes_dx"])
    assert all(c.source for name in vs.names() for c in vs.get(name))
    user = tmp_path / "licensed.csv"
    user.write_text("value_set,code_system,code,match,description,source\n"
                    "diabetes_dx,icd10cm,E11.9,exact,Type 2 diabetes without complications,licensed file 2024\n")
    mine = load_valuesets(user)
    assert mine.code_list("diabetes_dx") == ["E119"] and mine.certified(["diabetes_dx"])
    assert not mine.certified(["diabetes_dx", "hba1c_lab"])
    bad = tmp_path / "bad.csv"
    bad.write_text("value_set,code_system,code,source\nx,snomed,123,somewhere\n")
    with pytest.raises(InputFileError, match="line 2: code_system 'snomed'"):
        load_valuesets(bad)


def test_matcher_exact_and_prefix():
    vs = load_valuesets()
    t = plain([{"c": "E119"}, {"c": "e11.65"}, {"c": "E08"}, {"c": None}], {"c": "string"})
    out = rows(t.select(m=vs.matcher("diabetes_dx")(t.c)))
    assert [r["m"] for r in out] == [True, True, False, False]


def test_matchers_for_loaded_codes_compare_loader_systems_as_stored():
    """With ``codes_as_loaded`` a matcher of the loader's code systems compares the column as it is
    (the loader stores those codes upper case without dots); other systems, and matchers of all a
    set's systems, still normalize."""
    vs = load_valuesets()
    loaded = vs.for_loaded_codes()
    assert loaded.codes_as_loaded and not vs.codes_as_loaded and loaded.codes is vs.codes
    t = plain([{"c": "E119"}, {"c": "e11.65"}, {"c": None}], {"c": "string"})
    assert [r["m"] for r in rows(t.select(m=vs.matcher("diabetes_dx", ("icd10cm",))(t.c)))] == [True, True, False]
    assert [r["m"] for r in rows(t.select(m=loaded.matcher("diabetes_dx", ("icd10cm",))(t.c)))] == [True, False, False]
    assert [r["m"] for r in rows(t.select(m=loaded.matcher("diabetes_dx")(t.c)))] == [True, True, False]
    pcs = next(c for c in loaded.get("planned_readmission_px") if c.code_system == "icd10pcs")
    t = plain([{"c": pcs.code.lower() + ("" if pcs.match == "exact" else "0z0")}], {"c": "string"})
    assert rows(t.select(m=loaded.matcher("planned_readmission_px", ("icd10pcs",))(t.c)))[0]["m"]


def test_the_loader_stores_the_codes_of_loaded_form_systems_as_value_sets_write_them():
    """Every claim column a quality matcher of `LOADED_FORM_SYSTEMS` reads has a code format in the
    loader's contract, and a code that format accepts (after its normalization) is upper case
    without dots: the form the value sets use, so the matchers may take the stored codes as they are."""
    from allpayer.inputs import codes
    from allpayer.inputs.schema import MEDICAL_CLAIM
    from allpayer.quality.valuesets import LOADED_FORM_SYSTEMS

    columns = {c.name: c for c in MEDICAL_CLAIM.columns}
    matched = [(set(systems), column) for systems, column in framework.LINE_CODE_COLUMNS]
    matched += [({"icd10cm"}, c) for c in DIAGNOSIS_COLUMNS]
    # a delivered spelling per format that its normalization makes valid, and spellings to try
    good = {"icd10cm": "e11.9", "hcpcs": "g0439", "revenue": "450", "pos": "1", "bill_type": "0111", "drg": "65"}
    tries = [*good.values(), "E11.9", "g04.39", "04.50", "1.", "0.111", "6.5", "z00.00", "a", "99213"]
    covered = set()
    for systems, column in matched:
        fmt = columns[column].code_format
        assert fmt in good, column
        covered |= systems & LOADED_FORM_SYSTEMS
        t = plain([{"v": v} for v in tries], {"v": "string"})
        t = t.select("v", n=codes.normalize(fmt, t.v))
        out = rows(t.mutate(ok=codes.is_valid(fmt, t.n)))
        stored = [r["n"] for r in out if r["ok"]]
        assert stored and all(n == n.upper().replace(".", "") for n in stored), (column, stored)
        assert next(r for r in out if r["v"] == good[fmt])["ok"], column
    assert covered == LOADED_FORM_SYSTEMS


def _line_with_diagnoses(codes: list[str | None]) -> dict:
    return {"person_id": "P", "claim_id": "C", "claim_line_number": 1, "service_date": D(2024, 5, 1),
            "service_category": "professional", **{DIAGNOSIS_COLUMNS[i]: c for i, c in enumerate(codes)}}


LINE_SCHEMA = {"person_id": "string", "claim_id": "string", "claim_line_number": "int64", "service_date": "date",
               "service_category": "string", **{c: "string" for c in DIAGNOSIS_COLUMNS[:6]}}


def test_diagnoses_keep_only_codes_an_icd10cm_set_may_hold():
    """The long diagnoses of the quality stage keep a code only when it starts with the stem of an
    ICD-10-CM code or prefix of the run's value sets: every reader matches them against such sets."""
    def code(name, system, value, match):
        return Code(name, system, value, match, "", "test", "test.csv")

    vs = ValueSets(codes={
        "diabetes": [code("diabetes", "icd10cm", "E11.9", "exact"), code("diabetes", "hcpcs", "G0438", "exact")],
        "sud": [code("sud", "icd10cm", "f1", "prefix")],
    })
    assert framework.diagnosis_stems(vs) == {2: ["F1"], 3: ["E11"]}  # normalized; other systems left out
    line = _line_with_diagnoses(["e11.9", "E1165", "F10.20", "G0438", "Z00.00", None])
    t = plain([line], LINE_SCHEMA)
    everything = rows(framework.diagnoses_long(t), key=lambda r: r["position"])
    assert [r["code"] for r in everything] == ["E119", "E1165", "F1020", "G0438", "Z0000"]
    kept = rows(framework.diagnoses_long(t, valuesets=vs), key=lambda r: r["position"])
    # E1165 is in no set but shares E119's stem: the filter is a superset, the matchers decide
    assert [(r["position"], r["code"]) for r in kept] == [(1, "E119"), (2, "E1165"), (3, "F1020")]
    assert rows(framework.diagnoses_long(t, valuesets=ValueSets(codes={}))) == []


def test_no_diagnosis_an_icd10cm_set_matches_is_left_out():
    """Over the project's sets: a diagnosis made of each ICD-10-CM code (a prefix with a digit added),
    written as loaded or with a dot and in lower case, is kept, and still matches its set."""
    vs = load_valuesets()
    cases = []
    for name in vs.names():
        for c in vs.get(name):
            if c.code_system == "icd10cm":
                dx = c.code if c.match == "exact" else c.code + "9"
                cases.append((name, dx))
                cases.append((name, (dx[:3] + "." + dx[3:]).lower() if len(dx) > 3 else dx.lower()))
    assert len(cases) > 100
    t = plain([_line_with_diagnoses([dx]) for _, dx in cases], LINE_SCHEMA)
    kept = {r["code"] for r in rows(framework.diagnoses_long(t, valuesets=vs))}
    for name, dx in cases:
        normal = dx.upper().replace(".", "")
        assert normal in kept, (name, dx)
    probe = plain([{"c": dx.upper().replace(".", "")} for _, dx in cases], {"c": "string"})
    hits = rows(probe.select(m=ibis.or_(*[vs.matcher(n, ("icd10cm",))(probe.c) for n in {n for n, _ in cases}])))
    assert all(r["m"] for r in hits)


def test_redaction_makes_sud_measures_not_reportable():
    from .helpers import World

    w = World()
    w.person("A", D(1950, 1, 1))
    w.claim("A", D(2024, 3, 1), dx=("F1020",), redacted=True)
    assert w.context().redacted
    w2 = World()
    w2.person("A", D(1950, 1, 1))
    w2.claim("A", D(2024, 3, 1), dx=("F1020",))
    assert not w2.context().redacted


def test_member_populations_check_enrollment_once_for_every_age():
    """A member measure's population: its ages and gender among the members who meet its
    enrollment rule over the year, the rule checked once per program for all ages (the same
    people as checking it on the measure's ages only)."""
    from .helpers import World, measure

    w = World()
    w.person("A", D(1950, 1, 1), spans=[(D(2022, 10, 1), D(2024, 12, 31))])  # 74: BCS, CBP, HbA1c ages
    w.person("B", D(2010, 6, 1), gender="male")  # 14: well-care ages
    w.person("C", D(1980, 2, 1), spans=[(D(2024, 1, 1), D(2024, 3, 31)), (D(2024, 6, 1), D(2024, 12, 31))])  # gap
    w.person("D", D(1971, 3, 1), spans=[(D(2024, 1, 1), D(2024, 12, 31))])  # not enrolled in 2023 (BCS)
    w.person("E", D(1940, 1, 1))  # 84: CBP only
    ctx = w.context()
    checked = 0
    for mid in ("hedis_wcv", "awv", "hedis_bcs_e", "cbp", "hba1c_poor_control"):
        m = measure(mid)
        got = sorted(r["person_id"] for r in rows(framework.population_for(m, ctx)))
        pop = ctx.members
        if m.ages is not None:
            pop = pop.filter((pop.age >= m.ages[0]) & (pop.age <= m.ages[1]))
        if m.gender is not None:
            pop = pop.filter(pop.gender == m.gender)
        for start, end, rule in m.enrollment.windows(2024):  # BCS: three windows, all to pass
            pop = continuously_enrolled(pop, ctx.eligibility, start, end, rule, key=["person_id"])
            pop = pop.filter(pop.enrolled).drop("enrolled")
        assert got == sorted(r["person_id"] for r in rows(pop))
        checked += len(got)
    assert checked >= 5
    assert len(ctx._cache) == 2  # the one-year rule and BCS's two-year rule


def test_a_reading_takes_the_setting_of_its_encounter_claim():
    """A claim with an inpatient line is an inpatient encounter even if it also has ED lines; a claim
    with ED lines only is an ED visit; any other claim, or no claim, gives no setting."""
    obs_schema = {"person_id": "string", "observation_id": "string", "encounter_id": "string",
                  "observation_date": "date", "source_code": "string", "result": "string", "source_units": "string"}
    obs = plain([{"person_id": "P", "observation_id": f"O{i}", "encounter_id": enc, "observation_date": D(2024, 3, 1),
                  "source_code": "8480-6", "result": "120", "source_units": "mm[Hg]"}
                 for i, enc in enumerate(["C_IP", "C_ED", "C_OFFICE", "C_NONE", None])], obs_schema)
    claim_schema = {"claim_id": "string", "service_category": "string"}
    claims = plain([{"claim_id": c, "service_category": cat} for c, cat in [
        ("C_IP", "ed"), ("C_IP", "inpatient"), ("C_ED", "ed"), ("C_ED", "professional"),
        ("C_OFFICE", "professional")]], claim_schema)
    got = {r["observation_id"]: r["setting"] for r in rows(framework.observation_values(obs, claims))}
    assert got == {"O0": "inpatient", "O1": "ed", "O2": None, "O3": None, "O4": None}


def test_latest_month_per_person_takes_the_latest_month_then_the_smallest_member_id():
    schema = {"person_id": "string", "member_id": "string", "month": "date", "practice_id": "string"}
    t = plain([
        {"person_id": "A", "member_id": "m2", "month": D(2024, 3, 1), "practice_id": "P3"},
        {"person_id": "A", "member_id": "m1", "month": D(2024, 3, 1), "practice_id": "P1"},  # same month: m1
        {"person_id": "A", "member_id": "m0", "month": D(2024, 2, 1), "practice_id": "P0"},  # earlier month
        {"person_id": "B", "member_id": "m9", "month": D(2023, 12, 1), "practice_id": "P9"},
        {"person_id": "B", "member_id": "m8", "month": D(2024, 1, 1), "practice_id": None},  # latest, no practice
        {"person_id": "C", "member_id": "m5", "month": D(2024, 6, 1), "practice_id": "P5"},
    ], schema)
    got = rows(framework.latest_month_per_person(t, ["member_id", "practice_id"]), key=lambda r: r["person_id"])
    assert got == [
        {"person_id": "A", "member_id": "m1", "practice_id": "P1"},
        {"person_id": "B", "member_id": "m8", "practice_id": None},
        {"person_id": "C", "member_id": "m5", "practice_id": "P5"},
    ]


def test_the_terms_know_every_inverse_measure():
    """The terms loader refuses an inverse measure listed without ``inverse: true`` (its rates
    would be read as lower-is-better and its points as higher-is-better); its list is the
    registry's."""
    from allpayer.quality.inverse import INVERSE_MEASURES

    assert INVERSE_MEASURES == {mid for mid, m in framework.registry().items() if m.inverse}


def test_a_cancelled_or_entered_in_error_lab_is_no_result():
    """A lab row whose status says the result does not exist (cancelled, entered in error, in any
    case and spelling a feed uses) is not read; preliminary, final, corrected and blank are."""
    statuses = ["final", "preliminary", "corrected", None, "Cancelled", "canceled", "entered-in-error",
                "ENTERED IN ERROR "]
    labs = plain([{"person_id": "P", "lab_result_id": f"L{i}", "source_code": "4548-4", "result": "9.5",
                   "source_units": "%", "result_date": D(2024, 3, 1), "status": s} for i, s in enumerate(statuses)],
                 {"person_id": "string", "lab_result_id": "string", "source_code": "string", "result": "string",
                  "source_units": "string", "result_date": "date", "status": "string"})
    got = sorted(r["lab_result_id"] for r in rows(framework.lab_values(labs)))
    assert got == ["L0", "L1", "L2", "L3"]
