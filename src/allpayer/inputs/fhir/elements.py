"""Small readers of FHIR data types (CodeableConcept, Identifier, Reference, Money, dates).

Values come from ``json.loads(..., parse_float=Decimal)``: amounts stay exact and are written
back as plain decimal text (never through a binary float).
"""

from __future__ import annotations

from decimal import Decimal

COLUMN_EXTENSION = "urn:allpayer:column:"
"""Extension URL prefix for a contract column that has no FHIR element: the extension
``urn:allpayer:column:<column>`` (valueString, valueBoolean, valueInteger, valueDecimal, valueDate
or valueCode) on the resource (or on the EOB item / Observation component) sets that column."""

PART2_SECURITY = ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "42CFRPart2")
"""Security label (``meta.security``) of a resource covered by 42 CFR Part 2."""

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
TIN_SYSTEM = "urn:oid:2.16.840.1.113883.4.4"
LOINC_SYSTEM = "http://loinc.org"
NDC_SYSTEM = "http://hl7.org/fhir/sid/ndc"
ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10PCS_SYSTEM = "http://www.cms.gov/Medicare/Coding/ICD10"
HCPCS_SYSTEMS = (
    "http://www.ama-assn.org/go/cpt",
    "https://bluebutton.cms.gov/resources/codesystem/hcpcs",
    "urn:oid:2.16.840.1.113883.6.285",
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
)
REVENUE_SYSTEMS = ("https://www.nubc.org/CodeSystem/RevenueCodes", "https://bluebutton.cms.gov/resources/variables/rev_cntr")
POS_SYSTEMS = (
    "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set",
    "https://bluebutton.cms.gov/resources/variables/line_place_of_srvc_cd",
)
CLAIM_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/claim-type"
BB_CLAIM_TYPE_SYSTEM = "https://bluebutton.cms.gov/resources/variables/nch_clm_type_cd"
BB_EOB_TYPE_SYSTEM = "https://bluebutton.cms.gov/resources/codesystem/eob-type"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"


def last_segment(code: str | None) -> str:
    """The part of a code after its last ``/`` (Blue Button writes variable codes as URLs)."""
    return (code or "").rsplit("/", 1)[-1]


def codings(cc) -> list[dict]:
    """The codings of a CodeableConcept (or a Coding, or a list of CodeableConcepts)."""
    if not cc:
        return []
    if isinstance(cc, list):
        return [c for x in cc for c in codings(x)]
    if "coding" in cc:
        return [c for c in cc["coding"] if isinstance(c, dict)]
    return [cc] if "code" in cc else []


def code(cc, systems=None) -> str | None:
    """The first code of a CodeableConcept whose system is one of `systems` (any system when
    None; a system also matches by its last path segment, as Blue Button varies the prefix)."""
    if systems is not None and isinstance(systems, str):
        systems = (systems,)
    tails = {last_segment(s) for s in systems} if systems else None
    for c in codings(cc):
        value = c.get("code")
        if value in (None, ""):
            continue
        system = c.get("system", "")
        if systems is None or system in systems or last_segment(system) in tails:
            return str(value)
    return None


def has_code(cc, value: str) -> bool:
    return any(c.get("code") == value for c in codings(cc))


def reference_id(ref, resource_type: str | None = None) -> str | None:
    """The id of a relative reference ``Type/id`` (of `resource_type` when given)."""
    if not isinstance(ref, dict):
        return None
    text = ref.get("reference")
    if not isinstance(text, str) or "/" not in text:
        return None
    kind, _, rid = text.rpartition("/")
    kind = kind.rsplit("/", 1)[-1]
    if resource_type and kind != resource_type:
        return None
    return rid or None


def reference_key(ref) -> str | None:
    """``Type/id`` of a reference (relative or absolute), or None."""
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    parts = ref["reference"].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def identifier(identifiers, systems=(), type_codes=()) -> str | None:
    """The value of the first identifier with one of `systems` or a type coded one of
    `type_codes` (compared case-insensitively)."""
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    lowered = {t.lower() for t in type_codes}
    for ident in identifiers or ():
        if not isinstance(ident, dict) or ident.get("value") in (None, ""):
            continue
        if ident.get("system") in systems or any(str(c.get("code", "")).lower() in lowered for c in codings(ident.get("type"))):
            return str(ident["value"])
    return None


def npi_of(element) -> str | None:
    """The NPI of a Reference (its identifier) or of a resource's identifiers."""
    if not isinstance(element, dict):
        return None
    idents = element.get("identifier")
    return identifier(idents, (NPI_SYSTEM,), ("npi",))


def decimal_text(value) -> str | None:
    """A JSON number as plain decimal text (no exponent), or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        d = Decimal(value)
        return format(d, "f")
    if isinstance(value, str):
        return value
    return None


def money(element) -> str | None:
    """The value of a Money (``{"value": ..}``) as decimal text."""
    if isinstance(element, dict):
        return decimal_text(element.get("value"))
    return None


def date_part(value) -> str | None:
    """The date of a FHIR date or dateTime (``2024-03-01T10:00:00-05:00`` -> ``2024-03-01``)."""
    if not isinstance(value, str) or not value:
        return None
    return value[:10]


def period(element) -> tuple[str | None, str | None]:
    if not isinstance(element, dict):
        return None, None
    return date_part(element.get("start")), date_part(element.get("end"))


def extension_value(ext: dict):
    """The value of an extension as text (None when it has no simple value)."""
    for key, value in ext.items():
        if not key.startswith("value"):
            continue
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, Decimal)):
            return decimal_text(value)
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            if "code" in value:
                return str(value["code"])
            if "coding" in value:
                return code(value)
            if "value" in value:
                return decimal_text(value["value"])
    return None


def column_extensions(element) -> dict[str, str | None]:
    """``urn:allpayer:column:<name>`` extensions of an element: column -> text."""
    out = {}
    for ext in element.get("extension", ()) if isinstance(element, dict) else ():
        url = ext.get("url", "") if isinstance(ext, dict) else ""
        if url.startswith(COLUMN_EXTENSION):
            out[url[len(COLUMN_EXTENSION):]] = extension_value(ext)
    return out


def extension(element, url_tail: str):
    """The value of the first extension whose URL ends with `url_tail`."""
    for ext in element.get("extension", ()) if isinstance(element, dict) else ():
        if isinstance(ext, dict) and str(ext.get("url", "")).endswith(url_tail):
            return extension_value(ext)
    return None


def part2_redacted(resource: dict) -> bool:
    """True when the resource carries the 42 CFR Part 2 security label."""
    system, value = PART2_SECURITY
    for label in (resource.get("meta") or {}).get("security", ()) or ():
        if isinstance(label, dict) and label.get("code") == value and label.get("system", system) == system:
            return True
    return False
