"""A later export cancels what an earlier one loaded: an ExplanationOfBenefit sent again as
cancelled or entered-in-error reverses its loaded claim, a Coverage sent again so withdraws its
loaded eligibility span. Two loads each: the active resource, then the cancelled one."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D

from allpayer.inputs.load import claims_as_of, load_folder, net_claim_lines
from allpayer.pipeline import loaded_as_of
from tests.inputs.conftest import query
from tests.inputs.fhir.bluebutton import coverage, patient, write_ndjson
from tests.inputs.fhir.test_reader import carin_eob, small_delivery


def _recon(db, run_id, table):
    return query(
        db,
        "SELECT read, loaded, already_loaded, quarantined FROM load_reconciliation WHERE run_id = ? AND table_name = ?",
        [run_id, table],
    )


def _cancelled_export(folder, resources, name="ExplanationOfBenefit.ndjson"):
    folder.mkdir(parents=True, exist_ok=True)
    write_ndjson(folder / name, resources)
    return folder


def _net(db, paid_through=None, through_run=None):
    """(claim_id, claim_line_number, paid, allowed) of the netted medical claim lines."""
    import ibis

    con = ibis.duckdb.connect(str(db), read_only=True)
    try:
        rows = claims_as_of(con, paid_through or dt.date(2099, 1, 1), through_run=through_run)
        lines = net_claim_lines(rows).order_by(["claim_id", "claim_line_number"])
        return [tuple(r.values()) for r in lines.select("claim_id", "claim_line_number", "paid_amount", "allowed_amount").to_pyarrow().to_pylist()]
    finally:
        con.disconnect()


def test_a_later_cancellation_reverses_the_loaded_claim(tmp_path):
    """CLM-1 (74.00 + 8.03 paid, 92.50 + 11.00 allowed) is loaded active; a later export sends
    eob1 again, cancelled, last updated 2024-03-15. Its lines are reversed by rows of the next
    adjustment sequence with the negated amounts, paid 2024-03-15: the claim nets to zero from then
    on, a run as of the first load or paid through before the cancellation still sees 82.03."""
    db = tmp_path / "db.duckdb"
    first = load_folder(small_delivery(tmp_path / "d1"), db)
    cancelled = carin_eob(status="cancelled", meta={"lastUpdated": "2024-03-15T08:00:00-05:00"})
    second = load_folder(_cancelled_export(tmp_path / "d2", [cancelled]), db)

    assert all(t.reconciles for t in second.tables)
    assert _recon(db, second.run_id, "fhir:ExplanationOfBenefit") == [(1, 1, 0, 0)]
    assert _recon(db, second.run_id, "medical_claim") == [(2, 2, 0, 0)]
    assert query(db, "SELECT count(*) FROM quarantine WHERE run_id = ?", [second.run_id]) == [(0,)]
    assert query(
        db,
        "SELECT claim_line_number, adjustment_sequence, paid_amount::VARCHAR, allowed_amount::VARCHAR, "
        "charge_amount::VARCHAR, paid_date::VARCHAR, hcpcs_code, source_file FROM medical_claim "
        "WHERE load_run_id = ? ORDER BY 1",
        [second.run_id],
    ) == [
        (1, 1, "-74.00", "-92.50", "-150.00", "2024-03-15", "99213", "ExplanationOfBenefit.ndjson#reversal[1]"),
        (2, 1, "-8.03", "-11.00", "-20.00", "2024-03-15", "36415", "ExplanationOfBenefit.ndjson#reversal[2]"),
    ]
    # the reversal rows lead back to the cancelled resource
    assert query(
        db,
        "SELECT DISTINCT p.resource_type, p.resource_id FROM medical_claim m JOIN fhir_resource p "
        "USING (load_run_id, source_file, line_number) WHERE m.load_run_id = ?",
        [second.run_id],
    ) == [("ExplanationOfBenefit", "eob1")]

    assert _net(db) == [("CLM-1", 1, D("0.00"), D("0.00")), ("CLM-1", 2, D("0.00"), D("0.00"))]
    as_first = [("CLM-1", 1, D("74.00"), D("92.50")), ("CLM-1", 2, D("8.03"), D("11.00"))]
    assert _net(db, through_run=first.run_id) == as_first
    assert _net(db, paid_through=dt.date(2024, 3, 14)) == as_first
    assert second.paid_through == dt.date(2024, 3, 15)

    # the same cancellation again changes nothing: already loaded
    third = load_folder(tmp_path / "d2", db)
    assert _recon(db, third.run_id, "fhir:ExplanationOfBenefit") == [(1, 0, 1, 0)]
    assert query(db, "SELECT count(*) FROM medical_claim") == [(4,)]


def test_an_entered_in_error_claim_is_reversed_and_a_cancellation_of_an_unloaded_claim_quarantined(tmp_path):
    """entered-in-error reverses like cancelled; without lastUpdated the reversal takes the
    line's own paid date. A second cancellation of the claim in the export changes nothing more
    (already loaded). A cancelled EOB of a claim never loaded, and a draft of a loaded one, stay
    quarantined inactive_status."""
    db = tmp_path / "db.duckdb"
    load_folder(small_delivery(tmp_path / "d1"), db)
    voided = carin_eob(id="eob1-v2", status="entered-in-error")  # another resource id, the same claim id CLM-1
    again = carin_eob(id="eob1-v4", status="cancelled")  # CLM-1 cancelled a second time in the export
    never = carin_eob(id="eob9", status="cancelled", identifier=[{"type": {"coding": [{"code": "uc"}]}, "value": "CLM-9"}])
    draft = carin_eob(id="eob1-v3", status="draft")
    second = load_folder(_cancelled_export(tmp_path / "d2", [voided, again, never, draft]), db)

    assert all(t.reconciles for t in second.tables)
    assert _recon(db, second.run_id, "fhir:ExplanationOfBenefit") == [(4, 1, 1, 2)]
    assert query(db, "SELECT line_number, rule, message FROM quarantine WHERE run_id = ? ORDER BY 1", [second.run_id]) == [
        (3, "inactive_status", "ExplanationOfBenefit.status is cancelled: not an active claim, not loaded"),
        (4, "inactive_status", "ExplanationOfBenefit.status is draft: not an active claim, not loaded"),
    ]
    assert query(
        db, "SELECT paid_date::VARCHAR, paid_amount::VARCHAR FROM medical_claim WHERE load_run_id = ? ORDER BY claim_line_number",
        [second.run_id],
    ) == [("2024-02-20", "-74.00"), ("2024-02-20", "-8.03")]
    assert _net(db) == [("CLM-1", 1, D("0.00"), D("0.00")), ("CLM-1", 2, D("0.00"), D("0.00"))]


def test_a_later_cancellation_reverses_the_net_of_an_adjusted_line(tmp_path):
    """A line already adjusted (sequence 1: +6.00 paid) is reversed by sequence 2 with the negated
    net (-80.00), keeping the descriptive columns of the latest row."""
    db = tmp_path / "db.duckdb"
    folder = small_delivery(tmp_path / "d1")
    adjusted = carin_eob(id="eob1-adj", item=[{
        **carin_eob()["item"][0],
        "extension": [{"url": "urn:allpayer:column:adjustment_sequence", "valueInteger": 1}],
        "adjudication": [{"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 6.00}},
                         {"category": {"coding": [{"code": "eligible"}]}, "amount": {"value": 6.00}}],
    }], payment={"date": "2024-02-27"})
    with open(folder / "ExplanationOfBenefit.ndjson", "a") as f:
        f.write(json.dumps(adjusted) + "\n")
    load_folder(folder, db)
    cancelled = carin_eob(status="cancelled", meta={"lastUpdated": "2024-03-15"})
    second = load_folder(_cancelled_export(tmp_path / "d2", [cancelled]), db)
    assert query(
        db,
        "SELECT claim_line_number, adjustment_sequence, paid_amount::VARCHAR, allowed_amount::VARCHAR FROM medical_claim "
        "WHERE load_run_id = ? ORDER BY 1",
        [second.run_id],
    ) == [(1, 2, "-80.00", "-98.50"), (2, 1, "-8.03", "-11.00")]
    assert _net(db) == [("CLM-1", 1, D("0.00"), D("0.00")), ("CLM-1", 2, D("0.00"), D("0.00"))]


def test_a_later_cancelled_coverage_withdraws_the_loaded_span(tmp_path):
    """cov1 (MBIp1, medicare part_b, 2024) is loaded active; a later export sends it
    cancelled. The stored span moves to eligibility_replaced (replaced by the second load), so the
    table as of the first load still has it; the Coverage is counted loaded. Sent again, it is
    already loaded; a cancelled Coverage of a span never loaded stays quarantined."""
    db = tmp_path / "db.duckdb"
    span = {"start": "2024-01-01", "end": "2024-12-31"}
    active = coverage("p1", "part-b")
    active.update(id="cov1", period=span)
    other = coverage("p3", "part-a")
    other.update(id="cov3", period=span)
    d1 = small_delivery(tmp_path / "d1")
    write_ndjson(d1 / "Coverage.ndjson", [active, other])
    with open(d1 / "Patient.ndjson", "a") as f:
        f.write(json.dumps(patient("p3", "male", "1949-07-01")) + "\n")
    first = load_folder(d1, db)
    assert query(db, "SELECT DISTINCT outside_eligibility FROM medical_claim") == [(False,)]
    folder = tmp_path / "d2"
    gone = {**active, "status": "cancelled"}
    never = coverage("p2", "part-a")
    never.update(id="cov9", status="entered-in-error")
    _cancelled_export(folder, [gone, never], name="Coverage.ndjson")
    second = load_folder(folder, db)

    assert all(t.reconciles for t in second.tables)
    assert _recon(db, second.run_id, "fhir:Coverage") == [(2, 1, 0, 1)]
    assert query(db, "SELECT line_number, rule, message FROM quarantine WHERE run_id = ?", [second.run_id]) == [
        (2, "inactive_status", "Coverage.status is entered-in-error: not an enrollment, no eligibility span"),
    ]
    assert query(db, "SELECT member_id FROM eligibility") == [("MBIp3",)]
    assert query(db, "SELECT member_id, load_run_id, replaced_by_run_id FROM eligibility_replaced") == [
        ("MBIp1", first.run_id, second.run_id)
    ]
    # the claims of the span are outside eligibility from now on
    assert query(db, "SELECT DISTINCT outside_eligibility FROM medical_claim") == [(True,)]
    import ibis

    con = ibis.duckdb.connect(str(db), read_only=True)
    try:
        assert loaded_as_of(con, "eligibility", first.run_id).count().execute() == 2
        assert loaded_as_of(con, "eligibility", second.run_id).count().execute() == 1
    finally:
        con.disconnect()

    third = load_folder(folder, db)
    assert _recon(db, third.run_id, "fhir:Coverage") == [(2, 0, 1, 1)]
    assert query(db, "SELECT count(*) FROM eligibility_replaced") == [(1,)]


def test_a_later_cancellation_reverses_a_pharmacy_claim(tmp_path):
    """A pharmacy EOB's cancellation reverses its pharmacy_claim lines (paid 40.00, allowed 45.00)."""
    db = tmp_path / "db.duckdb"
    folder = small_delivery(tmp_path / "d1")
    fill = carin_eob(
        id="rx1",
        identifier=[{"type": {"coding": [{"code": "uc"}]}, "value": "RX-1"}],
        type={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "pharmacy"}]},
        item=[{
            "sequence": 1,
            "productOrService": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "00002143380"}]},
            "servicedDate": "2024-02-05",
            "quantity": {"value": 30},
            "adjudication": [{"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 40.00}},
                             {"category": {"coding": [{"code": "eligible"}]}, "amount": {"value": 45.00}}],
        }],
    )
    with open(folder / "ExplanationOfBenefit.ndjson", "a") as f:
        f.write(json.dumps(fill) + "\n")
    load_folder(folder, db)
    second = load_folder(_cancelled_export(tmp_path / "d2", [{**fill, "status": "cancelled", "meta": {"lastUpdated": "2024-04-01"}}]), db)
    assert _recon(db, second.run_id, "fhir:ExplanationOfBenefit") == [(1, 1, 0, 0)]
    assert query(db, "SELECT count(*) FROM medical_claim WHERE load_run_id = ?", [second.run_id]) == [(0,)]
    assert query(
        db,
        "SELECT claim_id, adjustment_sequence, paid_amount::VARCHAR, allowed_amount::VARCHAR, paid_date::VARCHAR, ndc_code "
        "FROM pharmacy_claim WHERE load_run_id = ?",
        [second.run_id],
    ) == [("RX-1", 1, "-40.00", "-45.00", "2024-04-01", "00002143380")]
