"""HbA1c results and blood pressure observations of the session population."""

from tests.synth.conftest import scalar


def test_hba1c_results_for_most_diabetics(db):
    diabetics = scalar(db, """select count(distinct person_id) from medical_claim
        where regexp_matches(diagnosis_code_1, '^E1[01]')""")
    with_result = scalar(db, "select count(distinct person_id) from lab_result where normalized_code = '4548-4'")
    assert 0.7 <= with_result / diabetics <= 1.0


def test_share_of_hba1c_results_above_nine(db):
    share = scalar(db, "select avg(case when result::double > 9.0 then 1.0 else 0.0 end) from lab_result")
    assert 0.15 <= share <= 0.25, share


def test_hba1c_results_link_to_their_lab_claims(db):
    unlinked = scalar(db, """select count(*) from lab_result l where not exists
        (select 1 from medical_claim c where c.claim_id = l.encounter_id and c.hcpcs_code = '83036')""")
    assert unlinked == 0
    assert scalar(db, "select count(*) from lab_result where result_date < collection_date") == 0


def test_blood_pressure_pairs_for_hypertensives(db):
    rows = dict(db.execute("select normalized_code, count(*) from observation group by 1").fetchall())
    assert set(rows) == {"8480-6", "8462-4"} and rows["8480-6"] == rows["8462-4"]
    assert scalar(db, "select count(*) from (select panel_id from observation group by 1 having count(*) <> 2)") == 0
    controlled = scalar(db, """with p as (select panel_id, max(result::int) filter (where normalized_code = '8480-6') s,
        max(result::int) filter (where normalized_code = '8462-4') d from observation group by 1)
        select avg(case when s < 140 and d < 90 then 1.0 else 0.0 end) from p""")
    assert 0.35 <= controlled <= 0.75
    htn = scalar(db, """select count(distinct o.person_id) from observation o where exists
        (select 1 from medical_claim c where c.person_id = o.person_id and 'I10' in (diagnosis_code_1, diagnosis_code_2,
         diagnosis_code_3, diagnosis_code_4, diagnosis_code_5))""")
    assert htn / scalar(db, "select count(distinct person_id) from observation") > 0.95
