"""Write a native delivery (as `allpayer generate` writes it) as FHIR R4 bulk data (NDJSON).

Resources written, one a line:

- ``Patient.ndjson``: one per person (demographics from the person's first eligibility span).
- ``Coverage.ndjson``: one per eligibility span (member id, payer, plan, group, period).
- ``Organization.ndjson`` / ``Practitioner.ndjson``: one per billing (NPI, TIN) and per
  rendering (NPI, TIN) pair that the claims name.
- ``ExplanationOfBenefit.ndjson``: one per (claim_id, adjustment_sequence): its rows are the
  items (``item.sequence`` = ``claim_line_number``); pharmacy claims as ``pharmacy`` EOBs.
- ``Observation.ndjson``: one per lab result (category ``laboratory``), one per blood-pressure
  panel (``panel_id``, with a component per reading; the component ``id`` is the
  ``observation_id``), one per other observation.

``provider_roster`` and ``employer_group`` have no FHIR resource carrying the ACO's
participation terms: they are copied as native files beside the NDJSON files.

Standard elements carry what FHIR has a place for (the paths `allpayer.inputs.fhir.mapping`
reads). Every other value, and every value the standard elements would not give back exactly, is
written as a ``urn:allpayer:column:<column>`` extension on the resource, item or component: the
writer maps each resource back with the reader's own mapping and adds an extension wherever the
result differs from the native row. So a round trip (native -> FHIR -> load) gives the native
tables; `WriteStats.extension_columns` counts which columns needed an extension, and how often.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb

from allpayer.errors import InputFileError
from allpayer.inputs.fhir import elements as e
from allpayer.inputs.fhir import mapping
from allpayer.inputs.schema import TABLES

NATIVE_COPY = ("provider_roster", "employer_group")
BP_PANEL = "85354-9"
CLAIM_TYPE_CS = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJ_CS = "http://terminology.hl7.org/CodeSystem/adjudication"
C4BB_ADJ_CS = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
INFO_CS = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
ABSENT = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-applicable"}]}
KEY_DEFAULTS = {"adjustment_sequence": "0"}
MONEY = {
    "charge_amount": (ADJ_CS, "submitted"),
    "allowed_amount": (ADJ_CS, "eligible"),
    "paid_amount": (ADJ_CS, "benefit"),
    "deductible_amount": (ADJ_CS, "deductible"),
    "copayment_amount": (ADJ_CS, "copay"),
    "coinsurance_amount": (C4BB_ADJ_CS, "coinsurance"),
}
BATCH = 20_000

_DEC = "\u0000dec:"
_DEC_PATTERN = re.compile(r'"\\u0000dec:([^"]*)"')


@dataclass
class WriteStats:
    """What `write_fhir` wrote: resources by type, and how many values needed a column
    extension, by table and column."""

    resources: Counter = field(default_factory=Counter)
    extension_columns: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)


def _num(text: str | None):
    """A decimal text as a JSON number (exact: written as the text itself)."""
    return None if text is None else _DEC + text


def _dumps(resource: dict) -> str:
    return _DEC_PATTERN.sub(r"\1", json.dumps(resource, separators=(",", ":")))


def _as_read(resource: dict) -> dict:
    """The resource as a reader will parse it from its NDJSON line."""
    return json.loads(_dumps(_prune(resource)), parse_float=Decimal)


def _is_number(text: str | None) -> bool:
    if text is None:
        return False
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return bool(re.fullmatch(r"[+-]?[0-9]+(\.[0-9]+)?", text))


def _cc(system: str | None, code: str | None, display: str | None = None) -> dict | None:
    if code is None:
        return None
    c = {"code": code}
    if system:
        c["system"] = system
    if display:
        c["display"] = display
    return {"coding": [c]}


def _prune(value):
    """Drop None values and empty containers (FHIR has no nulls)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        out = [_prune(v) for v in value]
        return [v for v in out if v not in (None, {}, [])]
    return value


def _ext(column: str, value: str | None) -> dict:
    return {"url": e.COLUMN_EXTENSION + column, "valueString": value if value is not None else ""}


def _same(column: str, native: str | None, mapped) -> bool:
    native = native if native not in ("",) else None
    mapped = None if mapped in (None, "") else str(mapped)
    if native is None and column in KEY_DEFAULTS:
        native = KEY_DEFAULTS[column]
    if mapped is None and column in KEY_DEFAULTS:
        mapped = KEY_DEFAULTS[column]
    return native == mapped


def _differences(table: str, native: dict, mapped: dict) -> list[str]:
    return [c for c in TABLES[table].column_names if c in native and not _same(c, native.get(c), mapped.get(c))]


def _fix(table: str, element: dict, native: dict, mapped: dict, stats: WriteStats) -> None:
    """Add a column extension to `element` for each column the mapping does not give back."""
    for c in _differences(table, native, mapped):
        element.setdefault("extension", []).append(_ext(c, native.get(c)))
        stats.extension_columns[f"{table}.{c}"] += 1


class _Out:
    def __init__(self, folder: Path, stats: WriteStats):
        self.folder, self.stats, self.files = folder, stats, {}

    def write(self, rtype: str, resource: dict) -> None:
        f = self.files.get(rtype)
        if f is None:
            name = f"{rtype}.ndjson"
            f = self.files[rtype] = open(self.folder / f".{name}.partial", "w", encoding="utf-8")
            self.stats.files.append(name)
        f.write(_dumps(_prune(resource)) + "\n")
        self.stats.resources[rtype] += 1

    def close(self) -> None:
        for rtype, f in self.files.items():
            f.close()
            os.replace(self.folder / f".{rtype}.ndjson.partial", self.folder / f"{rtype}.ndjson")


def _native_source(folder: Path, table: str) -> str | None:
    for suffix, reader in ((".parquet", "read_parquet"), (".csv", "read_csv"), (".csv.gz", "read_csv")):
        path = folder / f"{table}{suffix}"
        if path.exists():
            opts = ", all_varchar=true, header=true" if reader == "read_csv" else ""
            return f"{reader}('{str(path).replace(chr(39), chr(39) * 2)}'{opts})"
    return None


def _rows(con, folder: Path, table: str, order: str):
    """Rows of a native table as dicts of text (as the loader stages them), in `order`."""
    src = _native_source(folder, table)
    if src is None:
        return
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
    keep = [c for c in cols if c in TABLES[table].column_names]
    select = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in keep)
    cur = con.execute(f"SELECT {select} FROM {src} ORDER BY {order}")
    while True:
        batch = cur.fetchmany(BATCH)
        if not batch:
            return
        for row in batch:
            yield dict(zip(keep, row))


def write_fhir(native: str | Path, out: str | Path) -> WriteStats:
    """Write the native delivery in folder `native` as FHIR bulk data into `out`."""
    native, out = Path(native), Path(out)
    if not (native / "eligibility.parquet").exists() and _native_source(native, "eligibility") is None:
        raise InputFileError(str(native), "no eligibility table: expected a native delivery (allpayer generate)")
    out.mkdir(parents=True, exist_ok=True)
    stats = WriteStats()
    w = _Out(out, stats)
    con = duckdb.connect()
    try:
        coverages, parties = _eligibility(con, native, w, stats)
        _claims(con, native, w, stats, coverages, parties)
        _observations(con, native, w, stats)
    finally:
        con.close()
        w.close()
    for table in NATIVE_COPY:
        for suffix in (".parquet", ".csv", ".csv.gz"):
            src = native / f"{table}{suffix}"
            if src.exists():
                shutil.copy(src, out / src.name)
                stats.files.append(src.name)
    return stats


# --------------------------------------------------------------------------------------------


def _patient(row: dict) -> dict:
    r = {
        "resourceType": "Patient",
        "id": row["person_id"],
        "gender": row.get("gender"),
        "birthDate": row.get("birth_date"),
        "address": [{"state": row.get("state"), "postalCode": row.get("zip_code")}],
    }
    if row.get("death_date"):
        r["deceasedDateTime"] = row["death_date"]
    elif row.get("death_flag") in ("true", "false"):
        r["deceasedBoolean"] = row["death_flag"] == "true"
    if row.get("race"):
        r["extension"] = [{"url": e.US_CORE_RACE, "extension": [{"url": "text", "valueString": row["race"]}]}]
    return r


PATIENT_COLUMNS = ("gender", "birth_date", "death_date", "death_flag", "race", "state", "zip_code", "data_sharing_opt_out")


def _eligibility(con, folder: Path, w: _Out, stats: WriteStats):
    coverages: dict[str, dict] = {}
    by_triple: dict[tuple, str] = {}
    rows = _rows(con, folder, "eligibility", "person_id, enrollment_start_date, member_id, payer, plan")
    for person_id, spans in itertools.groupby(rows, key=lambda r: r["person_id"]):
        spans = list(spans)
        patient = _patient(spans[0])
        person = mapping.patient(patient)
        # person-level columns the Patient does not give back: on the Patient when every span
        # agrees, else on each Coverage
        for c in PATIENT_COLUMNS:
            values = {s.get(c) for s in spans}
            if len(values) == 1 and not _same(c, spans[0].get(c), person.get(c)):
                patient.setdefault("extension", []).append(_ext(c, spans[0].get(c)))
                stats.extension_columns[f"eligibility.{c}"] += 1
        person = mapping.patient(patient)
        w.write("Patient", patient)
        for n, span in enumerate(spans):
            cid = f"{span['member_id']}-{span['payer']}-{span['plan']}-{n}"
            cov = {
                "resourceType": "Coverage",
                "id": cid,
                "meta": {"source": span.get("data_source")},
                "status": "active",
                "beneficiary": {"reference": f"Patient/{person_id}"},
                "subscriberId": span["member_id"],
                "payor": [{"identifier": {"value": span.get("payer")}}],
                "type": _cc("urn:allpayer:payer-type", span.get("payer_type")),
                "class": [
                    {"type": _cc(None, "plan"), "value": span.get("plan")},
                    {"type": _cc(None, "group"), "value": span.get("group_id"), "name": span.get("group_name")}
                    if span.get("group_id")
                    else None,
                ],
                "period": {"start": span.get("enrollment_start_date"), "end": span.get("enrollment_end_date")},
            }
            cov = _prune(cov)
            mapped = mapping.coverage(cov)
            merged = {**person, **{k: v for k, v in mapped.items() if v is not None or k not in person}}
            _fix("eligibility", cov, span, merged, stats)
            w.write("Coverage", cov)
            coverages[cid] = mapping.coverage(cov)
            by_triple.setdefault((span["member_id"], span.get("payer"), span.get("plan")), cid)
    return by_triple, {}


def _party(w: _Out, parties: dict, rtype: str, npi: str | None, tin: str | None) -> str | None:
    if not npi and not tin:
        return None
    key = f"{rtype}/{'org' if rtype == 'Organization' else 'pr'}-{npi or 'none'}-{tin or 'none'}"
    if key not in parties:
        idents = []
        if npi:
            idents.append({"system": e.NPI_SYSTEM, "value": npi})
        if tin:
            idents.append({"system": e.TIN_SYSTEM, "type": _cc(None, "TAX"), "value": tin})
        w.write(rtype, {"resourceType": rtype, "id": key.split("/", 1)[1], "identifier": idents})
        parties[key] = mapping.Party(npi=npi, tin=tin, name=None)
    return key


def _adjudication(row: dict) -> list[dict]:
    out = [
        {"category": _cc(system, code), "amount": {"value": _num(row[col]), "currency": "USD"}}
        for col, (system, code) in MONEY.items()
        if row.get(col) is not None
    ]
    if row.get("in_network_flag") in ("true", "false"):
        reason = "innetwork" if row["in_network_flag"] == "true" else "outofnetwork"
        out.append(
            {
                "category": _cc("http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator", "benefitpaymentstatus"),
                "reason": _cc("http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus", reason),
            }
        )
    return out


def _claims(con, folder: Path, w: _Out, stats: WriteStats, by_triple: dict, parties: dict) -> None:
    any_cov = {}
    for (member, payer, plan), cid in by_triple.items():
        any_cov.setdefault(member, cid)
    coverages = {}
    for table in ("medical_claim", "pharmacy_claim"):
        order = "claim_id, CAST(adjustment_sequence AS BIGINT), CAST(claim_line_number AS BIGINT)"
        rows = _rows(con, folder, table, order)
        for (claim_id, adj), lines in itertools.groupby(rows, key=lambda r: (r["claim_id"], r.get("adjustment_sequence"))):
            lines = list(lines)
            first = lines[0]
            cid = by_triple.get((first["member_id"], first.get("payer"), first.get("plan"))) or any_cov.get(first["member_id"])
            if cid is None:
                cid = f"none-{first['member_id']}"
            if cid not in coverages:
                coverages[cid] = {"member_id": None, "payer": None, "plan": None}
                for (m, p, pl), c in by_triple.items():
                    if c == cid:
                        coverages[cid] = {"member_id": m, "payer": p, "plan": pl}
                        break
            eob = _eob(table, claim_id, adj, lines, cid, w, parties)
            _, mapped = mapping.eob(_as_read(eob), coverages, parties)
            for item, line, (_, got) in zip(eob["item"], lines, mapped):
                _fix(table, item, line, got, stats)
            w.write("ExplanationOfBenefit", eob)


def _eob(table: str, claim_id: str, adj: str | None, lines: list[dict], cid: str, w: _Out, parties: dict) -> dict:
    h = lines[0]
    rid = f"{claim_id}-{adj or 0}"
    eob = {
        "resourceType": "ExplanationOfBenefit",
        "id": rid,
        "meta": {"source": h.get("data_source")},
        "identifier": [{"type": _cc(None, "uc"), "value": claim_id}],
        "status": "active",
        "use": "claim",
        "patient": {"reference": f"Patient/{h['person_id']}"},
        "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{cid}"}}],
        "payment": {"date": h.get("paid_date")},
        "outcome": "complete",
    }
    if table == "pharmacy_claim":
        eob["type"] = _cc(CLAIM_TYPE_CS, "pharmacy")
        eob["billablePeriod"] = {"start": h.get("dispensing_date"), "end": h.get("dispensing_date")}
        eob["facility"] = {"identifier": {"system": e.NPI_SYSTEM, "value": h.get("dispensing_provider_npi")}} if h.get("dispensing_provider_npi") else None
        if h.get("prescribing_provider_npi"):
            eob["careTeam"] = [
                {"sequence": 1, "provider": {"identifier": {"system": e.NPI_SYSTEM, "value": h["prescribing_provider_npi"]}}, "role": _cc(None, "prescribing")}
            ]
        eob["supportingInfo"] = [
            {"sequence": 1, "category": _cc(INFO_CS, "dayssupply"), "valueQuantity": {"value": _num(h.get("days_supply"))}} if h.get("days_supply") else None,
            {"sequence": 2, "category": _cc(INFO_CS, "refillnum"), "valueQuantity": {"value": _num(h.get("refills"))}} if h.get("refills") else None,
        ]
        eob["item"] = [
            {
                "sequence": int(r["claim_line_number"]),
                "productOrService": _cc(e.NDC_SYSTEM, r.get("ndc_code")) or ABSENT,
                "servicedDate": r.get("dispensing_date"),
                "quantity": {"value": _num(r.get("quantity"))} if r.get("quantity") else None,
                "adjudication": _adjudication(r),
            }
            for r in lines
        ]
        return _prune(eob)
    kind = h.get("claim_type")
    eob["type"] = {
        "coding": [{"system": CLAIM_TYPE_CS, "code": "professional" if kind == "dme" else kind}]
        + ([{"system": e.BB_EOB_TYPE_SYSTEM, "code": "DME"}] if kind == "dme" else [])
    }
    eob["billablePeriod"] = {"start": h.get("claim_start_date"), "end": h.get("claim_end_date")}
    billing = _party(w, parties, "Organization", h.get("billing_npi"), h.get("billing_tin"))
    eob["provider"] = {"reference": billing} if billing else None
    if h.get("facility_npi"):
        eob["facility"] = {"identifier": {"system": e.NPI_SYSTEM, "value": h["facility_npi"]}}
    team, team_seq = [], {}
    for r in lines:
        key = (r.get("rendering_npi"), r.get("rendering_tin"))
        if any(key) and key not in team_seq:
            ref = _party(w, parties, "Practitioner", *key)
            team_seq[key] = len(team) + 1
            team.append({"sequence": len(team) + 1, "provider": {"reference": ref}, "role": _cc(None, "rendering")})
    eob["careTeam"] = team
    dx = []
    for n in range(1, 26):
        code = h.get(f"diagnosis_code_{n}")
        if code:
            dx.append(
                {
                    "sequence": n,
                    "diagnosisCodeableConcept": _cc(e.ICD10CM_SYSTEM, code),
                    "type": [_cc(None, "principal")] if n == 1 else None,
                    "onAdmission": _cc(None, h.get(f"diagnosis_poa_{n}")),
                }
            )
    eob["diagnosis"] = dx
    eob["procedure"] = [
        {"sequence": n, "date": h.get(f"procedure_date_{n}"), "procedureCodeableConcept": _cc(e.ICD10PCS_SYSTEM, h.get(f"procedure_code_{n}"))}
        for n in range(1, 26)
        if h.get(f"procedure_code_{n}")
    ]
    info = []
    if h.get("admission_date") or h.get("discharge_date"):
        info.append({"category": _cc(INFO_CS, "admissionperiod"), "timingPeriod": {"start": h.get("admission_date"), "end": h.get("discharge_date")}})
    for column, code in (
        ("bill_type_code", "typeofbill"),
        ("drg_code", "drg"),
        ("admit_source_code", "pointoforigin"),
        ("admit_type_code", "admtype"),
        ("discharge_disposition_code", "discharge-status"),
    ):
        if h.get(column):
            info.append({"category": _cc(INFO_CS, code), "code": _cc(None, h[column])})
    eob["supportingInfo"] = [{"sequence": n, **i} for n, i in enumerate(info, start=1)]
    if h.get("substance_use_redacted") == "true":
        eob["meta"]["security"] = [{"system": e.PART2_SECURITY[0], "code": e.PART2_SECURITY[1]}]
    items = []
    for r in lines:
        key = (r.get("rendering_npi"), r.get("rendering_tin"))
        items.append(
            {
                "sequence": int(r["claim_line_number"]),
                "careTeamSequence": [team_seq[key]] if key in team_seq else None,
                "revenue": _cc(e.REVENUE_SYSTEMS[0], r.get("revenue_center_code")),
                "productOrService": _cc(e.HCPCS_SYSTEMS[1], r.get("hcpcs_code")) or ABSENT,
                "modifier": [_cc(None, r.get(f"hcpcs_modifier_{n}")) for n in range(1, 6) if r.get(f"hcpcs_modifier_{n}")],
                "servicedPeriod": {"start": r.get("claim_line_start_date"), "end": r.get("claim_line_end_date")},
                "locationCodeableConcept": _cc(e.POS_SYSTEMS[0], r.get("place_of_service_code")),
                "quantity": {"value": _num(r.get("service_unit_quantity"))} if r.get("service_unit_quantity") else None,
                "adjudication": _adjudication(r),
            }
        )
    eob["item"] = items
    return _prune(eob)


def _observations(con, folder: Path, w: _Out, stats: WriteStats) -> None:
    for r in _rows(con, folder, "lab_result", "lab_result_id"):
        obs = _prune(
            {
                "resourceType": "Observation",
                "id": r["lab_result_id"],
                "meta": {"source": r.get("data_source")},
                "status": r.get("status") or "final",
                "category": [_cc(OBS_CAT, "laboratory")],
                "code": _cc(e.LOINC_SYSTEM if r.get("normalized_code_type") == "loinc" else None, r.get("normalized_code"), r.get("normalized_description"))
                or _cc(None, r.get("source_code")),
                "subject": {"reference": f"Patient/{r['person_id']}"},
                "encounter": {"reference": f"Encounter/{r['encounter_id']}"} if r.get("encounter_id") else None,
                "effectiveDateTime": r.get("collection_date"),
                "issued": r.get("result_date"),
                **_value(r.get("result"), r.get("normalized_units")),
                "referenceRange": [
                    {
                        "low": {"value": _num(r.get("normalized_reference_range_low"))} if _is_number(r.get("normalized_reference_range_low")) else None,
                        "high": {"value": _num(r.get("normalized_reference_range_high"))} if _is_number(r.get("normalized_reference_range_high")) else None,
                    }
                ],
                "interpretation": [_cc(None, r.get("normalized_abnormal_flag"))],
                "performer": [{"reference": f"Practitioner/{r['ordering_practitioner_id']}"}] if r.get("ordering_practitioner_id") else None,
            }
        )
        _, ((_, got),) = mapping.observation(_as_read(obs))
        _fix("lab_result", obs, r, got, stats)
        w.write("Observation", obs)
    rows = _rows(con, folder, "observation", "coalesce(panel_id, observation_id), observation_id")
    for panel, group in itertools.groupby(rows, key=lambda r: r.get("panel_id") or "\u0000" + r["observation_id"]):
        group = list(group)
        h = group[0]
        base = {
            "resourceType": "Observation",
            "meta": {"source": h.get("data_source")},
            "status": "final",
            "category": [_cc(OBS_CAT, h.get("observation_type"))],
            "subject": {"reference": f"Patient/{h['person_id']}"},
            "encounter": {"reference": f"Encounter/{h['encounter_id']}"} if h.get("encounter_id") else None,
            "effectiveDateTime": h.get("observation_date"),
        }
        if h.get("panel_id"):
            obs = _prune(
                {
                    **base,
                    "id": h["panel_id"],
                    "code": _cc(e.LOINC_SYSTEM, BP_PANEL, "Blood pressure panel"),
                    "component": [
                        {
                            "id": r["observation_id"],
                            "code": _cc(e.LOINC_SYSTEM if r.get("normalized_code_type") == "loinc" else None, r.get("normalized_code"), r.get("normalized_description")),
                            **_value(r.get("result"), r.get("normalized_units")),
                        }
                        for r in group
                    ],
                }
            )
            _, mapped = mapping.observation(_as_read(obs))
            for comp, r, (_, got) in zip(obs["component"], group, mapped):
                _fix("observation", comp, r, got, stats)
        else:
            obs = _prune(
                {
                    **base,
                    "id": h["observation_id"],
                    "code": _cc(e.LOINC_SYSTEM if h.get("normalized_code_type") == "loinc" else None, h.get("normalized_code"), h.get("normalized_description")),
                    **_value(h.get("result"), h.get("normalized_units")),
                }
            )
            _, ((_, got),) = mapping.observation(_as_read(obs))
            _fix("observation", obs, h, got, stats)
        w.write("Observation", obs)


def _value(result: str | None, unit: str | None) -> dict:
    if result is None:
        return {}
    if _is_number(result):
        return {"valueQuantity": {"value": _num(result), "unit": unit, "code": unit}}
    return {"valueString": result}


class NativeStaging:
    """A private folder beside `out` where the native delivery is generated before it is
    written as FHIR into `out` (used by ``allpayer generate --format fhir``)."""

    def __init__(self, out: Path):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=".native-", dir=out))

    def finish(self, manifest, out: Path):
        """Write the FHIR files into `out`; returns the manifest, updated and written there."""
        for table in TABLES:
            if table not in NATIVE_COPY:
                for suffix in (".parquet", ".csv", ".csv.gz"):
                    (Path(out) / f"{table}{suffix}").unlink(missing_ok=True)
        stats = write_fhir(self.path, out)
        manifest.format = "fhir"
        names = [n for n in stats.files if n.endswith(".ndjson")]
        manifest.files = {n[: -len(".ndjson")]: n for n in names}
        for table in NATIVE_COPY:
            for n in stats.files:
                if n.startswith(table + "."):
                    manifest.files[table] = n
        counts = {n[: -len(".ndjson")]: int(stats.resources[n[: -len(".ndjson")]]) for n in names}
        counts.update({t: manifest.row_counts[t] for t in NATIVE_COPY if t in manifest.row_counts})
        manifest.row_counts = counts
        manifest.notes = list(manifest.notes) + [
            "FHIR R4 bulk data written from the native tables; values without a FHIR element travel as "
            f"{e.COLUMN_EXTENSION}<column> extensions: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(stats.extension_columns.items()))
        ]
        (Path(out) / "manifest.json").write_text(manifest.to_json())
        return manifest

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def native_staging(out: Path) -> NativeStaging:
    return NativeStaging(out)
