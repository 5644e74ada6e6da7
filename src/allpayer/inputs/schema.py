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

Restatement (the tables marked ``restated``: eligibility, provider_roster, employer_group,
voluntary_alignment, exclusion_event): a period keyed by its start is sent again by every
delivery, with its end (or another column) changed when the payer's record changes. A later
delivery's row with the key of a stored row and different content restates it: the new row is
stored and the old one moves to `replaced_table`. Within one delivery, two rows of one key with
different content are still a conflicting duplicate.

Supersession (CCLF deliveries: eligibility, medical_claim, pharmacy_claim): a stored row that a
later CCLF delivery changes (`allpayer.inputs.formats.CclfDelivery`) moves to `replaced_table` the
same way, and its new form is loaded.
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
    # (column, values): a required value may be empty on rows whose `column` is one of `values`
    # (e.g. DME lines, which carry no diagnosis in Medicare's claim files).
    required_unless: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    grain: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str = ""
    extension: bool = False  # True for tables not in the Tuva input layer
    restated: bool = False
    """Whether a later delivery's row with the key of a stored row restates it: the new row takes
    the stored row's place (which is kept in `replaced_table`) instead of being quarantined as a
    conflict. True for the tables of periods keyed by their start, which payers send again with
    the end changed (a member terms, a clinician leaves, a group's contract ends)."""

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


REPLACED_BY = "replaced_by_run_id"
"""The column of a `replaced_table` naming the load that replaced the row."""


def replaced_table(table: str) -> str:
    """The stored table that keeps the rows of `table` that later loads replaced (a ``restated``
    table's rows a later delivery restated, the rows a later CCLF delivery superseded): the
    table's columns and provenance, and `REPLACED_BY` (the load that replaced the row), so that
    the table can be read as it stood after an earlier load."""
    return f"{table}_replaced"


def _c(name, kind="string", **kw) -> Column:
    return Column(name, kind, **kw)


PAYMENT_ARRANGEMENTS = ("ffs", "fpp", "cpr", "capitated")
CLAIM_TYPES = ("professional", "institutional", "dme")
PAYER_TYPES = ("medicare", "medicaid", "commercial", "self_funded")

_DX = tuple(
    _c(f"diagnosis_code_{i}", "code", code_format="icd10cm", required=(i == 1),
       required_unless=("claim_type", ("dme",)) if i == 1 else None)
    for i in range(1, 26)
)
_POA = tuple(_c(f"diagnosis_poa_{i}") for i in range(1, 26))
_PX = tuple(_c(f"procedure_code_{i}") for i in range(1, 26))
_PXD = tuple(_c(f"procedure_date_{i}", "date") for i in range(1, 26))

ELIGIBILITY = Table(
    name="eligibility",
    grain="One row per member enrollment span: a member_id's continuous coverage with one payer and plan.",
    key=("member_id", "payer", "plan", "enrollment_start_date"),
    restated=True,
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
        _c("first_name", description="Contact field for outreach (care-gap lists); optional."),
        _c("last_name", description="Contact field for outreach (care-gap lists); optional."),
        _c("address", description="Contact field for outreach (care-gap lists); optional."),
        _c("city", description="Contact field for outreach (care-gap lists); optional."),
        _c("state"),
        _c("zip_code"),
        _c("phone", description="Contact field for outreach (care-gap lists); optional."),
        _c("aid_category", allpayer_extension=True, description="Medicaid aid category (rate cell)."),
        _c(
            "data_sharing_opt_out",
            "bool",
            allpayer_extension=True,
            description="Member declined data sharing (42 CFR 425.708): counted in financials, detail withheld.",
        ),
        _c(
            "long_term_institutional_flag",
            "bool",
            allpayer_extension=True,
            description="Long-term institutional (LTI) status during the span: CMS-HCC institutional segment.",
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
    restated=True,
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
    restated=True,
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

EXCLUSION_REASONS = (
    "death",
    "lost_coverage",
    "medicare_advantage",
    "practice_left",
    "other_coverage",
    "aged_into_medicare",
    "moved_out_of_area",
    "no_part_a_or_b",
    "medicare_secondary_payer",
    "esrd",
    "hospice",
    "employer_opt_out",
)
"""Reasons an ``exclusion_event`` may give. The one list: the contract terms build their
``ExclusionReason`` type (`allpayer.terms.models`) from it."""

PAYER_ATTRIBUTION = Table(
    name="payer_attribution",
    grain="One row per member, program and month on a payer's attribution list.",
    key=("program_id", "member_id", "month"),
    extension=True,
    description=(
        "The payer's own list of the members it attributes to the ACO (e.g. CMS's alignment list). "
        "Authoritative for programs whose terms say attribution method payer_supplied; for every "
        "other program it is reconciled against the computed roster (attribution_reconciliation)."
    ),
    columns=(
        _c("payer", required=True, description="Payer that sent the list."),
        _c("program_id", required=True, description="The contract-terms program the list is for."),
        _c("member_id", required=True, description="The member's id with that payer."),
        _c("month", "date", required=True, description="First day of the month the member is listed for."),
        _c("practice_id", description="Practice the payer attributes the member to (roster practice_id)."),
        _c("npi", "code", code_format="npi", description="Attributed clinician."),
        _c("tin", "code", code_format="tin", description="Attributed TIN."),
        _c("data_source", required=True),
    ),
)

PAYER_TARGET = Table(
    name="payer_target",
    grain="One row per program, rate cell and month of a payer's expected-cost target.",
    key=("program_id", "cell_id", "month"),
    extension=True,
    description=(
        "The payer's own target PMPM. Authoritative for programs whose terms say target method "
        "payer_supplied; for every other program it is reconciled against the computed targets "
        "(target_reconciliation)."
    ),
    columns=(
        _c("payer", required=True, description="Payer that sent the targets."),
        _c("program_id", required=True, description="The contract-terms program the targets are for."),
        _c("cell_id", required=True, description="Rate cell id as the program's terms name it (e.g. aged_nondual, all)."),
        _c("month", "date", required=True, description="First day of the month the target applies to."),
        _c("target_pmpm", "money", required=True, description="Target per member per month, in dollars."),
        _c("member_months", "int", nonnegative=True, description="Member months the payer counted, where it says."),
        _c("data_source", required=True),
    ),
)

VOLUNTARY_ALIGNMENT = Table(
    name="voluntary_alignment",
    grain="One row per member's designation of a primary clinician, from its designation date.",
    key=("payer", "member_id", "designation_date", "npi"),
    restated=True,
    extension=True,
    description=(
        "Beneficiary-designated clinicians (e.g. Medicare voluntary alignment). In force from "
        "designation_date to end_date (open when empty); the latest designation in force on a list "
        "date overrides claims for programs whose terms have a voluntary_alignment step."
    ),
    columns=(
        _c("payer", required=True),
        _c("member_id", required=True),
        _c("npi", "code", code_format="npi", required=True, description="The designated clinician."),
        _c("tin", "code", code_format="tin", description="The clinician's TIN as designated (else from the roster)."),
        _c("designation_date", "date", required=True),
        _c("end_date", "date", description="Last day the designation holds (empty: still in force)."),
        _c("data_source", required=True),
    ),
)

EXCLUSION_EVENT = Table(
    name="exclusion_event",
    grain="One row per reported event that excludes a member from attribution, from its event date.",
    key=("payer", "member_id", "reason", "event_date"),
    restated=True,
    extension=True,
    description=(
        "Exclusion events a payer reports that the other tables cannot show (moved out of the "
        "area, hospice, Medicare Advantage enrollment, loss of Part A or B...). Whether a reason "
        "counts, and whether it excludes by month or for the whole year, is in each program's terms."
    ),
    columns=(
        _c("payer", required=True),
        _c("member_id", required=True),
        _c("reason", required=True, allowed=EXCLUSION_REASONS),
        _c("event_date", "date", required=True, description="First day the condition holds."),
        _c("end_date", "date", description="Last day the condition holds (empty: open)."),
        _c("program_id", description="Limits the event to one program (empty: every program of the payer)."),
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
        PAYER_ATTRIBUTION,
        PAYER_TARGET,
        VOLUNTARY_ALIGNMENT,
        EXCLUSION_EVENT,
    )
}

# Tables that must be present for a load to be usable; the rest are optional.
REQUIRED_TABLES = ("eligibility", "medical_claim", "provider_roster")

# LOINC codes the engine reads.
LOINC_HBA1C = "4548-4"
LOINC_SYSTOLIC_BP = "8480-6"
LOINC_DIASTOLIC_BP = "8462-4"
