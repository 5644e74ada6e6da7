"""The input data contract: tables, their grain, columns and types.

Column names follow the Tuva Project input layer where one exists (see
`allpayer/reference/data/tuva_input_layer_columns.csv` for the pinned Tuva version), so data
already mapped for Tuva loads as is. The ACO adds `provider_roster`, `employer_group` and a few
columns the payment rules need; those are marked `allpayer_extension=True`.

Kinds of column:

- ``string``: free text or an identifier.
- ``date``: ISO ``YYYY-MM-DD``.
- ``int``: a whole number.
- ``decimal``: an exact number (quantities, lab values).
- ``money``: dollars with at most two decimals; stored exactly as DECIMAL(18,2).
- ``bool``: ``true``/``false`` (also ``1``/``0``, ``Y``/``N``).
- ``code``: a string whose format is checked by ``code_format`` (icd10cm, hcpcs, npi, tin, loinc,
  ndc, pos, revenue, bill_type, ccn, drg).

Adjustment convention (medical_claim, pharmacy_claim): rows net by claim key. An original line has
``adjustment_sequence`` 0; a later adjustment of the same ``(claim_id, claim_line_number)`` is a new
row with a higher ``adjustment_sequence`` and signed amounts that add to the original (a reversal
carries the negated amounts). The net of a claim line is the sum of its rows. Re-delivering a row
with the same ``(claim_id, claim_line_number, adjustment_sequence)`` and the same content changes
nothing; the same key with different content is quarantined as a conflicting duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TUVA_VERSION = "0.14.2"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = False
    code_format: str | None = None
    allowed: tuple[str, ...] | None = None
    description: str = ""
    allpayer_extension: bool = False
    nonnegative: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    grain: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str = ""
    extension: bool = False  # True for tables not in the Tuva input layer

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name, kind="string", **kw) -> Column:
    return Column(name, kind, **kw)


PAYMENT_ARRANGEMENTS = ("ffs", "fpp", "cpr", "capitated")
CLAIM_TYPES = ("professional", "institutional", "dme")
PAYER_TYPES = ("medicare", "medicaid", "commercial", "self_funded")

_DX = tuple(
    _c(f"diagnosis_code_{i}", "code", code_format="icd10cm", required=(i == 1)) for i in range(1, 26)
)
_POA = tuple(_c(f"diagnosis_poa_{i}") for i in range(1, 26))
_PX = tuple(_c(f"procedure_code_{i}") for i in range(1, 26))
_PXD = tuple(_c(f"procedure_date_{i}", "date") for i in range(1, 26))

ELIGIBILITY = Table(
    name="eligibility",
    grain="One row per member enrollment span: a member_id's continuous coverage with one payer and plan.",
    key=("member_id", "payer", "plan", "enrollment_start_date"),
    columns=(
        _c("person_id", required=True, description="One person across payers and enrollments."),
        _c("member_id", required=True, description="One enrollment with one payer."),
        _c("subscriber_id"),
        _c("gender", required=True, allowed=("male", "female", "unknown")),
        _c("race"),
        _c("birth_date", "date", required=True),
        _c("death_date", "date"),
        _c("death_flag", "bool"),
        _c("enrollment_start_date", "date", required=True),
        _c("enrollment_end_date", "date", required=True),
        _c("payer", required=True),
        _c("payer_type", required=True, allowed=PAYER_TYPES),
        _c("plan", required=True),
        _c("original_reason_entitlement_code"),
        _c("dual_status_code"),
        _c("medicare_status_code"),
        _c("group_id", description="Employer group for self-funded and commercial plans."),
        _c("group_name"),
        _c("state"),
        _c("zip_code"),
        _c("aid_category", allpayer_extension=True, description="Medicaid aid category (rate cell)."),
        _c(
            "data_sharing_opt_out",
            "bool",
            allpayer_extension=True,
            description="Member declined data sharing (42 CFR 425.708): counted in financials, detail withheld.",
        ),
        _c("data_source", required=True),
    ),
)

MEDICAL_CLAIM = Table(
    name="medical_claim",
    grain="One row per claim line delivery: (claim_id, claim_line_number, adjustment_sequence).",
    key=("claim_id", "claim_line_number", "adjustment_sequence"),
    columns=(
        _c("claim_id", required=True),
        _c("claim_line_number", "int", required=True),
        _c("adjustment_sequence", "int", allpayer_extension=True, description="0 for the original line; adjustments count up."),
        _c("claim_type", required=True, allowed=CLAIM_TYPES),
        _c("person_id", required=True),
        _c("member_id", required=True),
        _c("payer", required=True),
        _c("plan", required=True),
        _c("claim_start_date", "date", required=True),
        _c("claim_end_date", "date", required=True),
        _c("claim_line_start_date", "date"),
        _c("claim_line_end_date", "date"),
        _c("admission_date", "date"),
        _c("discharge_date", "date"),
        _c("admit_source_code"),
        _c("admit_type_code"),
        _c("discharge_disposition_code"),
        _c("place_of_service_code", "code", code_format="pos"),
        _c("bill_type_code", "code", code_format="bill_type"),
        _c("drg_code_type"),
        _c("drg_code", "code", code_format="drg"),
        _c("revenue_center_code", "code", code_format="revenue"),
        _c("service_unit_quantity", "decimal"),
        _c("hcpcs_code", "code", code_format="hcpcs"),
        _c("hcpcs_modifier_1"),
        _c("hcpcs_modifier_2"),
        _c("hcpcs_modifier_3"),
        _c("hcpcs_modifier_4"),
        _c("hcpcs_modifier_5"),
        _c("rendering_npi", "code", code_format="npi"),
        _c("rendering_tin", "code", code_format="tin"),
        _c("billing_npi", "code", code_format="npi"),
        _c("billing_tin", "code", code_format="tin"),
        _c("facility_npi", "code", code_format="npi"),
        _c("facility_ccn", "code", code_format="ccn", allpayer_extension=True, description="CMS certification number (FQHC/RHC/hospital)."),
        _c("paid_date", "date", required=True),
        _c("paid_amount", "money", required=True),
        _c("allowed_amount", "money", required=True),
        _c("charge_amount", "money"),
        _c("coinsurance_amount", "money"),
        _c("copayment_amount", "money"),
        _c("deductible_amount", "money"),
        _c("total_cost_amount", "money"),
        _c("diagnosis_code_type", allowed=("icd-10-cm",)),
        *_DX,
        *_POA,
        _c("procedure_code_type"),
        *_PX,
        *_PXD,
        _c("in_network_flag", "bool"),
        _c(
            "payment_arrangement",
            required=True,
            allowed=PAYMENT_ARRANGEMENTS,
            allpayer_extension=True,
            description="ffs: paid fee-for-service; fpp/cpr/capitated: a shadow claim (paid 0, allowed priced at FFS).",
        ),
        _c("claim_status", allowed=("paid", "denied"), allpayer_extension=True),
        _c(
            "substance_use_redacted",
            "bool",
            allpayer_extension=True,
            description="Substance-use claim redacted under 42 CFR Part 2.",
        ),
        _c("data_source", required=True),
    ),
)

PHARMACY_CLAIM = Table(
    name="pharmacy_claim",
    grain="One row per pharmacy claim line delivery: (claim_id, claim_line_number, adjustment_sequence).",
    key=("claim_id", "claim_line_number", "adjustment_sequence"),
    columns=(
        _c("claim_id", required=True),
        _c("claim_line_number", "int", required=True),
        _c("adjustment_sequence", "int", allpayer_extension=True),
        _c("person_id", required=True),
        _c("member_id", required=True),
        _c("payer", required=True),
        _c("plan", required=True),
        _c("prescribing_provider_npi", "code", code_format="npi"),
        _c("dispensing_provider_npi", "code", code_format="npi"),
        _c("dispensing_date", "date", required=True),
        _c("ndc_code", "code", code_format="ndc", required=True),
        _c("quantity", "decimal"),
        _c("days_supply", "int"),
        _c("refills", "int"),
        _c("paid_date", "date", required=True),
        _c("paid_amount", "money", required=True),
        _c("allowed_amount", "money", required=True),
        _c("copayment_amount", "money"),
        _c("coinsurance_amount", "money"),
        _c("deductible_amount", "money"),
        _c("in_network_flag", "bool"),
        _c("data_source", required=True),
    ),
)

LAB_RESULT = Table(
    name="lab_result",
    grain="One row per reported lab result component.",
    key=("lab_result_id",),
    columns=(
        _c("lab_result_id", required=True),
        _c("person_id", required=True),
        _c("patient_id"),
        _c("encounter_id"),
        _c("accession_number"),
        _c("source_code_type"),
        _c("source_code"),
        _c("source_description"),
        _c("source_component"),
        _c("normalized_code_type", allowed=("loinc",)),
        _c("normalized_code", "code", code_format="loinc"),
        _c("normalized_description"),
        _c("normalized_component"),
        _c("status"),
        _c("result", required=True),
        _c("result_date", "date", required=True),
        _c("collection_date", "date"),
        _c("source_units"),
        _c("normalized_units"),
        _c("source_reference_range_low"),
        _c("source_reference_range_high"),
        _c("normalized_reference_range_low"),
        _c("normalized_reference_range_high"),
        _c("source_abnormal_flag"),
        _c("normalized_abnormal_flag"),
        _c("specimen"),
        _c("ordering_practitioner_id"),
        _c("data_source", required=True),
    ),
)

OBSERVATION = Table(
    name="observation",
    grain="One row per recorded observation (e.g. one systolic or diastolic blood pressure reading).",
    key=("observation_id",),
    columns=(
        _c("observation_id", required=True),
        _c("person_id", required=True),
        _c("patient_id"),
        _c("encounter_id"),
        _c("panel_id"),
        _c("observation_date", "date", required=True),
        _c("observation_type"),
        _c("source_code_type"),
        _c("source_code"),
        _c("source_description"),
        _c("normalized_code_type", allowed=("loinc",)),
        _c("normalized_code", "code", code_format="loinc"),
        _c("normalized_description"),
        _c("result", required=True),
        _c("source_units"),
        _c("normalized_units"),
        _c("source_reference_range_low"),
        _c("source_reference_range_high"),
        _c("normalized_reference_range_low"),
        _c("normalized_reference_range_high"),
        _c("data_source", required=True),
    ),
)

PROVIDER_ROSTER = Table(
    name="provider_roster",
    grain="One row per clinician or facility (NPI) billing under one TIN, for one payer, over one effective period.",
    key=("npi", "tin", "payer", "effective_start_date"),
    extension=True,
    columns=(
        _c("npi", "code", code_format="npi", required=True),
        _c("tin", "code", code_format="tin", required=True),
        _c("ccn", "code", code_format="ccn", description="Facility CCN (hospital, FQHC, RHC)."),
        _c("provider_name", required=True),
        _c("entity_type", required=True, allowed=("individual", "organization")),
        _c("provider_type", allowed=("physician", "np", "pa", "cns", "facility", "other")),
        _c("specialty_code", description="CMS provider specialty code."),
        _c("specialty"),
        _c("primary_care_flag", "bool", required=True),
        _c("practice_id", required=True),
        _c("practice_name", required=True),
        _c(
            "practice_type",
            required=True,
            allowed=("hospital_owned", "independent", "fqhc", "rhc", "hospital", "specialist", "non_participating"),
        ),
        _c("organization_id", description="Parent organization (hospital or health system)."),
        _c("hsa", required=True, description="Vermont hospital service area."),
        _c("state"),
        _c("payer", required=True, description="Payer this participation row applies to."),
        _c("participation", required=True, allowed=("participant", "preferred", "non_participating")),
        _c("payment_model", required=True, allowed=PAYMENT_ARRANGEMENTS),
        _c("effective_start_date", "date", required=True),
        _c("effective_end_date", "date"),
        _c("data_source", required=True),
    ),
)

EMPLOYER_GROUP = Table(
    name="employer_group",
    grain="One row per self-funded or commercial group over one effective period.",
    key=("group_id", "effective_start_date"),
    extension=True,
    columns=(
        _c("group_id", required=True),
        _c("employer_id", required=True),
        _c("employer_name", required=True),
        _c("administrator_payer", required=True, description="Payer administering the plan (e.g. BCBSVT)."),
        _c("funding", required=True, allowed=("self_funded", "fully_insured")),
        _c("aco_opt_in", "bool", required=True, description="Employer opted its members into the ACO program."),
        _c("effective_start_date", "date", required=True),
        _c("effective_end_date", "date"),
        _c("data_source", required=True),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        ELIGIBILITY,
        MEDICAL_CLAIM,
        PHARMACY_CLAIM,
        LAB_RESULT,
        OBSERVATION,
        PROVIDER_ROSTER,
        EMPLOYER_GROUP,
    )
}

# Tables that must be present for a load to be usable; the rest are optional.
REQUIRED_TABLES = ("eligibility", "medical_claim", "provider_roster")

# LOINC codes the engine reads.
LOINC_HBA1C = "4548-4"
LOINC_SYSTOLIC_BP = "8480-6"
LOINC_DIASTOLIC_BP = "8462-4"
