"""Plausibility of the session population, measured from the generated files with DuckDB.

Ranges from the foundation issue: allowed PMPM (medical claims, Parts A/B for Medicare)
Medicare fee-for-service $850-1,150, Medicaid $350-650, commercial $450-700; diabetes 8-12% of
adults under 65 and 22-30% of Medicare members.
"""

import pytest

MEMBER_MONTHS = """
with months as (select unnest(generate_series(date '2022-01-01', date '2024-12-01', interval 1 month))::date as m)
select e.payer_type, count(*) as mm
from eligibility e join months on e.enrollment_start_date <= last_day(m) and e.enrollment_end_date >= m
where e.death_date is null or e.death_date >= m
group by 1"""


def pmpm(db, table: str) -> dict[str, float]:
    rows = db.execute(f"""
        with mm as ({MEMBER_MONTHS}),
        members as (select distinct member_id, payer_type from eligibility),
        cost as (select m.payer_type, sum(c.allowed_amount) as allowed from {table} c join members m using (member_id) group by 1)
        select mm.payer_type, cost.allowed / mm.mm from mm join cost using (payer_type)""").fetchall()
    return {k: float(v) for k, v in rows}


RANGES = {"medicare": (850, 1150), "medicaid": (350, 650), "commercial": (450, 700), "self_funded": (450, 700)}


@pytest.mark.parametrize("payer_type", sorted(RANGES))
def test_medical_allowed_pmpm_in_range(db, payer_type):
    lo, hi = RANGES[payer_type]
    value = pmpm(db, "medical_claim")[payer_type]
    assert lo <= value <= hi, value


@pytest.mark.parametrize("payer_type", ["medicaid", "commercial", "self_funded"])
def test_medical_plus_pharmacy_pmpm_in_range(db, payer_type):
    lo, hi = RANGES[payer_type]
    value = pmpm(db, "medical_claim")[payer_type] + pmpm(db, "pharmacy_claim")[payer_type]
    assert lo <= value <= hi, value


DIABETES = """
with p as (select person_id, min(birth_date) as b, bool_or(payer_type = 'medicare') as medicare
           from eligibility where enrollment_start_date <= date '2024-12-31' and enrollment_end_date >= date '2022-01-01'
           group by 1),
dx as (select distinct person_id from medical_claim
       where regexp_matches(diagnosis_code_1, '^E1[01]') or regexp_matches(diagnosis_code_2, '^E1[01]')
          or regexp_matches(diagnosis_code_3, '^E1[01]'))
select avg(case when dx.person_id is null then 0.0 else 1.0 end) from p left join dx using (person_id) where {where}"""


def test_diabetes_prevalence_adults_under_65(db):
    v = db.execute(DIABETES.format(where="not medicare and date_diff('year', b, date '2023-07-01') between 18 and 64")).fetchone()[0]
    assert 0.08 <= v <= 0.12, v


def test_diabetes_prevalence_medicare(db):
    v = db.execute(DIABETES.format(where="medicare")).fetchone()[0]
    assert 0.22 <= v <= 0.30, v


def test_medicare_is_older_than_medicaid(db):
    rows = dict(db.execute("""select payer_type, avg(date_diff('year', birth_date, date '2023-01-01'))
        from eligibility group by 1""").fetchall())
    assert rows["medicare"] > 65 > rows["commercial"] > rows["medicaid"]


def test_medicare_deaths(db):
    rate = db.execute("""select count(distinct person_id) filter (where death_date is not null) / count(distinct person_id) / 3
        from eligibility where payer_type = 'medicare'""").fetchone()[0]
    assert 0.03 <= rate <= 0.06


def test_opt_out_share(db):
    v = db.execute("select avg(data_sharing_opt_out::int) from (select distinct person_id, data_sharing_opt_out from eligibility)").fetchone()[0]
    assert 0.02 <= v <= 0.05
