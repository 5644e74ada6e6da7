"""Medical claims of the session population: structure, codes, payment arrangements, netting."""

import datetime as dt

from tests.synth.conftest import scalar
from tests.synth.formats import FQHC_RANGES, ccn_in


def member_years(db) -> float:
    return scalar(db, """select sum(date_diff('day', greatest(enrollment_start_date, date '2022-01-01'),
        least(enrollment_end_date, coalesce(death_date, date '2024-12-31'), date '2024-12-31')) + 1) / 365.25
        from eligibility""")


def test_lines_per_member_year_within_design_budget(db):
    lines = scalar(db, "select count(*) from medical_claim")
    per = lines / member_years(db)
    assert 10 <= per <= 14, per


def test_primary_care_em_billed_by_primary_care_clinicians(db):
    def by_flag(codes):
        rows = db.execute(f"""
            select r.primary_care_flag, count(*) from medical_claim c
            join (select distinct npi, primary_care_flag from provider_roster) r on r.npi = c.rendering_npi
            where c.hcpcs_code in ({codes}) group by 1""").fetchall()
        return dict(rows)

    preventive = by_flag("'G0438','G0439','99381','99391','99392','99393','99394','99395','99396','99397'")
    assert preventive.get(False, 0) == 0 and preventive[True] > 1000
    office = by_flag("'99212','99213','99214','99215'")
    assert office[True] > 0.5 * sum(office.values())  # specialists bill office visits too
    awv = scalar(db, "select count(*) from medical_claim where hcpcs_code in ('G0438','G0439') and payer = 'medicare'")
    assert awv > 500
    assert scalar(db, "select count(*) from medical_claim where hcpcs_code in ('G0438','G0439') and payer <> 'medicare'") == 0


def test_fqhc_visits_are_institutional_under_the_ccn(db):
    rows = db.execute("""select distinct c.facility_ccn, c.bill_type_code from medical_claim c
        join provider_roster r on r.npi = c.billing_npi and r.practice_type = 'fqhc'
        where c.revenue_center_code = '0521'""").fetchall()
    assert rows
    assert all(bt == "771" and ccn_in(ccn, FQHC_RANGES) for ccn, bt in rows)
    rhc = scalar(db, "select count(*) from medical_claim where bill_type_code = '711' and revenue_center_code = '0521'")
    assert rhc > 0


def test_ed_and_inpatient_claims(db):
    ed = db.execute("""select distinct hcpcs_code from medical_claim where revenue_center_code = '0450'
        and bill_type_code = '131'""").fetchall()
    assert {h for (h,) in ed} == {"99281", "99282", "99283", "99284", "99285"}
    ip = db.execute("""select count(distinct claim_id), min(revenue_center_code), count(distinct drg_code),
        sum(case when drg_code is null then 1 else 0 end), sum(case when admission_date is null then 1 else 0 end)
        from medical_claim where bill_type_code = '111'""").fetchone()
    assert ip[0] > 300 and ip[2] >= 15 and ip[3] == 0 and ip[4] == 0
    rb = scalar(db, """select count(*) from medical_claim where bill_type_code = '111'
        and revenue_center_code between '0100' and '0219'""")
    assert rb >= ip[0]


def test_readmissions_within_30_days(db):
    n = scalar(db, """
        with s as (select distinct person_id, claim_id, admission_date, discharge_date from medical_claim
                   where bill_type_code = '111' and adjustment_sequence = 0)
        select count(*) from s a join s b on a.person_id = b.person_id and b.admission_date > a.discharge_date
          and b.admission_date <= a.discharge_date + interval 30 day""")
    admits = scalar(db, "select count(distinct claim_id) from medical_claim where bill_type_code = '111'")
    assert 0.05 <= n / admits <= 0.25


def test_mental_health_ed_visits_with_and_without_follow_up(db):
    row = db.execute("""
        with ed as (select distinct person_id, claim_id, claim_start_date d from medical_claim
                    where revenue_center_code = '0450' and diagnosis_code_1 like 'F%'
                    and diagnosis_code_1 not like 'F1%'),
        fu as (select distinct person_id, claim_start_date d from medical_claim
               where diagnosis_code_1 like 'F%' and (hcpcs_code in ('90834','90837','90832','90791','99213','99214','99215')))
        select count(*),
          count(*) filter (where exists (select 1 from fu where fu.person_id = ed.person_id and fu.d > ed.d and fu.d <= ed.d + 7)),
          count(*) filter (where exists (select 1 from fu where fu.person_id = ed.person_id and fu.d > ed.d and fu.d <= ed.d + 30))
        from ed""").fetchone()
    total, f7, f30 = row
    assert total > 100
    assert 0.2 < f7 / total < f30 / total < 0.9


def test_substance_use_ed_visits_and_part2_redaction(db):
    sud_ed = scalar(db, """select count(distinct claim_id) from medical_claim where revenue_center_code = '0450'
        and diagnosis_code_1 like 'F1%'""")
    assert sud_ed > 50
    red = db.execute("""select count(*), count(*) filter (where diagnosis_code_1 like 'F1%'),
        count(*) filter (where r.practice_id like 'sud-%')
        from medical_claim c join (select distinct npi, practice_id from provider_roster) r on r.npi = c.rendering_npi
        where c.substance_use_redacted""").fetchone()
    assert red[0] > 0 and red[1] == red[0] and red[2] == red[0]
    unredacted_sud = scalar(db, """select count(*) from medical_claim where not substance_use_redacted
        and diagnosis_code_1 like 'F1%'""")
    assert unredacted_sud > 0  # only claims from Part 2 programs are redacted


def test_shadow_claims_paid_zero_and_priced(db):
    rows = dict(db.execute("""select payment_arrangement, sum(abs(paid_amount)) from medical_claim group by 1""").fetchall())
    assert set(rows) == {"ffs", "fpp", "cpr", "capitated"}
    assert rows["fpp"] == rows["cpr"] == rows["capitated"] == 0
    priced = scalar(db, """select min(allowed_amount) from medical_claim where payment_arrangement <> 'ffs'
        and claim_status = 'paid' and adjustment_sequence = 0""")
    assert priced >= 0
    assert scalar(db, "select count(*) from medical_claim where payment_arrangement <> 'ffs' and allowed_amount > 0") > 1000


def test_arrangement_follows_the_roster(db):
    mismatches = scalar(db, """
        with c as (select *, case when claim_type = 'institutional' then facility_npi
                                  else coalesce(rendering_npi, billing_npi) end as npi_used
                   from medical_claim)
        select count(*) from c join provider_roster r
          on r.npi = c.npi_used and r.payer = c.payer
         and c.claim_start_date >= r.effective_start_date
         and (r.effective_end_date is null or c.claim_start_date <= r.effective_end_date)
        where r.payment_model <> c.payment_arrangement""")
    assert mismatches == 0
    bcbs = scalar(db, "select count(*) from medical_claim where payer = 'bcbsvt' and claim_start_date >= date '2023-01-01' and payment_arrangement <> 'ffs'")
    assert bcbs == 0


def test_adjustments_and_denials(db):
    total = scalar(db, "select count(*) from medical_claim where adjustment_sequence = 0")
    adj = scalar(db, "select count(*) from medical_claim where adjustment_sequence = 1")
    assert 0.01 <= adj / total <= 0.03
    # every adjustment has its original, and lines never net below zero
    orphan = scalar(db, """select count(*) from medical_claim a where adjustment_sequence = 1 and not exists
        (select 1 from medical_claim o where o.claim_id = a.claim_id and o.claim_line_number = a.claim_line_number
         and o.adjustment_sequence = 0)""")
    assert orphan == 0
    neg = scalar(db, """select count(*) from (select claim_id, claim_line_number, sum(allowed_amount) a, sum(paid_amount) p
        from medical_claim group by 1, 2 having a < 0 or p < 0)""")
    assert neg == 0
    reversals = scalar(db, """select count(*) from (select claim_id, claim_line_number, sum(allowed_amount) a
        from medical_claim group by 1, 2 having count(*) = 2 and a = 0)""")
    assert reversals > 0
    denied = db.execute("""select count(distinct claim_id), sum(abs(paid_amount)) from medical_claim
        where claim_status = 'denied'""").fetchone()
    claims = scalar(db, "select count(distinct claim_id) from medical_claim")
    assert 0.02 <= denied[0] / claims <= 0.04 and denied[1] == 0


def test_paid_dates_lag_and_run_out(db):
    lag = db.execute("""select min(date_diff('day', claim_end_date, paid_date)), max(date_diff('day', claim_end_date, paid_date)),
        max(paid_date), min(claim_start_date), max(claim_end_date)
        from medical_claim where adjustment_sequence = 0""").fetchone()
    assert lag[0] >= 0 and lag[1] <= 90
    assert lag[2] <= dt.date(2025, 3, 31) and lag[3] >= dt.date(2022, 1, 1) and lag[4] <= dt.date(2024, 12, 31)
    late = scalar(db, "select count(*) from medical_claim where paid_date > date '2024-12-31'")
    assert late > 0  # run-out matters


def test_a_few_claims_fall_outside_every_enrollment_span(db):
    outside = scalar(db, """select count(distinct c.claim_id) from medical_claim c where not exists
        (select 1 from eligibility e where e.person_id = c.person_id
         and c.claim_start_date between e.enrollment_start_date and e.enrollment_end_date)""")
    claims = scalar(db, "select count(distinct claim_id) from medical_claim")
    assert 0.0003 <= outside / claims <= 0.003


def test_out_of_network_hospitals(db):
    n = db.execute("""select count(*), sum(allowed_amount) from medical_claim c join provider_roster r
        on r.npi = c.facility_npi and r.payer = c.payer where r.provider_name in
        ('Massachusetts General Hospital', 'Albany Medical Center') and c.bill_type_code = '111'""").fetchone()
    assert n[0] > 0 and n[1] > 0
    assert scalar(db, "select bool_and(not in_network_flag) from medical_claim c join provider_roster r on r.npi = c.facility_npi and r.payer = c.payer where r.practice_type = 'non_participating'")


def test_allowed_amounts_have_a_heavy_tail(db):
    q = db.execute("""with c as (select claim_id, sum(allowed_amount) a from medical_claim group by 1)
        select quantile_cont(a, 0.5), quantile_cont(a, 0.99), max(a) from c""").fetchone()
    median, p99, top = (float(x) for x in q)
    assert p99 > 20 * median and top > 5 * p99


def test_preventive_codes_and_vaccines_fit_the_age(db):
    rows = db.execute("""
        with c as (select distinct c.claim_id, c.claim_line_number, c.hcpcs_code,
                          date_diff('day', e.birth_date, c.claim_start_date) / 365.25 as age
                   -- claims moved outside every enrollment span on purpose (outside_eligibility) are left out
                   from medical_claim c join eligibility e on e.person_id = c.person_id
                    and c.claim_start_date between e.enrollment_start_date and e.enrollment_end_date)
        select
          count(*) filter (where hcpcs_code = '90651' and (age < 9 or age >= 18)),
          count(*) filter (where hcpcs_code = '90651'),
          count(*) filter (where hcpcs_code in ('99391', '99381') and age >= 2),
          count(*) filter (where hcpcs_code in ('99397', '99387') and age < 65),
          count(*) filter (where hcpcs_code = '96110' and age >= 4),
          count(*) filter (where hcpcs_code = '96110')
        from c""").fetchone()
    assert rows[0] == 0 and rows[1] > 0
    assert rows[2] == 0 and rows[3] == 0
    assert rows[4] == 0 and rows[5] > 0
