"""Pharmacy claims of the session population."""

from allpayer.synth import reference as ref
from tests.synth.conftest import scalar


def test_maintenance_drugs_follow_conditions(db):
    metformin = ref.DRUGS["metformin"].ndc
    share = scalar(db, f"""select avg(case when exists (select 1 from medical_claim c where c.person_id = p.person_id
            and regexp_matches(c.diagnosis_code_1, '^E1[01]')) then 1.0 else 0.0 end)
        from (select distinct person_id from pharmacy_claim where ndc_code = '{metformin}') p""")
    assert share > 0.9
    ndcs = {r[0] for r in db.execute("select distinct ndc_code from pharmacy_claim").fetchall()}
    assert {ref.DRUGS[k].ndc for k in ("metformin", "insulin_glargine", "atorvastatin", "lisinopril", "sertraline")} <= ndcs


def test_fills_per_member_year_and_amounts(db):
    fills = scalar(db, "select count(*) from pharmacy_claim where adjustment_sequence = 0")
    people = scalar(db, "select count(distinct person_id) from eligibility")
    assert 3 <= fills / people / 3 * 1.3 <= 12
    assert scalar(db, "select count(*) from pharmacy_claim where adjustment_sequence = 0 and (paid_amount < 0 or paid_amount > allowed_amount)") == 0
    assert scalar(db, "select count(*) from (select claim_id, sum(allowed_amount) a from pharmacy_claim group by 1 having a <> 0 and count(*) > 1)") == 0


def test_fills_fall_inside_enrollment(db):
    outside = scalar(db, """select count(*) from pharmacy_claim p where not exists (select 1 from eligibility e
        where e.member_id = p.member_id and p.dispensing_date between e.enrollment_start_date and e.enrollment_end_date)""")
    assert outside == 0
