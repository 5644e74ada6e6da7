"""Hand-made patients for the quality-measure tests.

`World` collects people, claims, labs and observations as plain dicts and builds the tables a
`MeasureContext` is made of (input-contract columns, as loaded), so each test states only what
matters to it. Defaults: a Medicare member of the shipped `vt-2024-medicare` program, enrolled
all of 2023-2024, attributed in every month of 2024 to practice ``PR1`` (NPI 1000000004, TIN
111111111, HSA ``Burlington``).
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import ibis
import pyarrow as pa

from allpayer.inputs.load import stored_schema
from allpayer.inputs.schema import TABLES
from allpayer.quality import framework
from allpayer.quality.valuesets import load_valuesets

CON = ibis.duckdb.connect()
D = dt.date

_PROGRAMS: dict = {}


def program(program_id: str = "vt-2024-medicare"):
    if not _PROGRAMS:
        from allpayer.terms import load_programs, programs_dir

        for p in load_programs([programs_dir() / "vermont"]):
            _PROGRAMS[p.program_id] = p
    return _PROGRAMS[program_id]


PAYER_OF = {"vt-2024-medicare": ("medicare", "medicare_ffs", "medicare"),
            "vt-2024-medicaid": ("medicaid", "vmng", "medicaid"),
            "vt-2024-mvp-qhp": ("mvp", "qhp", "commercial")}


def table(spec_name: str, records: list[dict]) -> ibis.Table:
    schema = stored_schema(TABLES[spec_name])
    return ibis.memtable(pa.table({c: [r.get(c) for r in records] for c in schema.names}, schema=schema.to_pyarrow()))


def plain(records: list[dict], schema: dict) -> ibis.Table:
    s = ibis.schema(schema)
    return ibis.memtable(pa.table({c: [r.get(c) for r in records] for c in s.names}, schema=s.to_pyarrow()))


def rows(expr, key=None) -> list[dict]:
    out = CON.to_pyarrow(expr).to_pylist()
    return sorted(out, key=key) if key else out


class World:
    def __init__(self, program_id: str = "vt-2024-medicare", year: int = 2024):
        self.program = program(program_id)
        self.year = year
        self.payer, self.plan, self.payer_type = PAYER_OF[program_id]
        self.people: list[dict] = []
        self.spans: list[dict] = []
        self.attr: list[dict] = []
        self.claims: list[dict] = []
        self.labs: list[dict] = []
        self.obs: list[dict] = []
        self.supplemental: list[dict] = []
        self._ids = itertools.count(1)

    # people ------------------------------------------------------------------------------------

    def person(self, pid: str, birth: dt.date, gender: str = "female", *, spans=None, practice: str = "PR1",
               attributed_months=range(1, 13), hsa: str = "Burlington", death: dt.date | None = None) -> str:
        self.people.append({"person_id": pid, "birth_date": birth, "gender": gender})
        for s, e in spans if spans is not None else [(D(self.year - 1, 1, 1), D(self.year, 12, 31))]:
            self.spans.append({"person_id": pid, "member_id": f"{pid}-m", "gender": gender, "birth_date": birth,
                               "enrollment_start_date": s, "enrollment_end_date": e, "payer": self.payer,
                               "payer_type": self.payer_type, "plan": self.plan, "death_date": death,
                               "data_source": "test"})
        for m in attributed_months:
            self.attr.append({"program_id": self.program.program_id, "performance_year": self.year,
                              "month": D(self.year, m, 1), "member_id": f"{pid}-m", "person_id": pid,
                              "attributed": True, "practice_id": practice, "npi": "1000000004",
                              "tin": "111111111", "hsa": hsa})
        return pid

    # events ------------------------------------------------------------------------------------

    def claim(self, pid: str, date: dt.date, *, dx=("Z0000",), hcpcs=None, claim_type="professional", pos="11",
              bill_type=None, revenue=None, claim_id=None, redacted=None, status=None, encounter=None,
              payer=None) -> str:
        cid = claim_id or f"C{next(self._ids):05d}"
        row = {"claim_id": cid, "claim_line_number": 1, "adjustment_sequence": 0, "claim_type": claim_type,
               "person_id": pid, "member_id": f"{pid}-m", "payer": payer or self.payer, "plan": self.plan,
               "claim_start_date": date, "claim_end_date": date, "place_of_service_code": pos,
               "bill_type_code": bill_type, "revenue_center_code": revenue, "hcpcs_code": hcpcs,
               "paid_date": date, "paid_amount": Decimal("50.00"), "allowed_amount": Decimal("60.00"),
               "payment_arrangement": "ffs", "claim_status": status, "substance_use_redacted": redacted,
               "data_source": "test"}
        for i, code in enumerate(dx, start=1):
            row[f"diagnosis_code_{i}"] = code
        if claim_type == "institutional" and bill_type and bill_type.startswith("11"):
            row["admission_date"], row["discharge_date"] = date, date
        self.claims.append(row)
        return cid

    def lab(self, pid: str, date: dt.date, result: str, *, code="4548-4", units="%", lab_id=None,
            supplemental=False) -> str:
        lid = lab_id or f"L{next(self._ids):05d}"
        row = {"lab_result_id": lid, "person_id": pid, "normalized_code_type": "loinc", "normalized_code": code,
               "result": result, "result_date": date, "normalized_units": units,
               "data_source": "supplemental:ehr" if supplemental else "test"}
        (self.supplemental if supplemental else self.labs).append(row)
        return lid

    def bp(self, pid: str, date: dt.date, systolic: int, diastolic: int, *, encounter=None) -> str:
        oid = f"O{next(self._ids):05d}"
        for code, v, suffix in (("8480-6", systolic, "s"), ("8462-4", diastolic, "d")):
            self.obs.append({"observation_id": oid + suffix, "person_id": pid, "encounter_id": encounter,
                             "observation_date": date, "normalized_code_type": "loinc", "normalized_code": code,
                             "result": str(v), "normalized_units": "mm[Hg]", "data_source": "test"})
        return oid

    # building ----------------------------------------------------------------------------------

    def member_months(self) -> ibis.Table:
        recs = []
        for p in self.people:
            for m in range(1, 13):
                recs.append({"program_id": self.program.program_id, "performance_year": self.year,
                             "person_id": p["person_id"], "member_id": f"{p['person_id']}-m",
                             "month": D(self.year, m, 1), "birth_date": p["birth_date"], "sex": p["gender"]})
        return plain(recs, {"program_id": "string", "performance_year": "int32", "person_id": "string",
                            "member_id": "string", "month": "date", "birth_date": "date", "sex": "string"})

    def attribution(self) -> ibis.Table:
        return plain(self.attr, {"program_id": "string", "performance_year": "int32", "month": "date",
                                 "member_id": "string", "person_id": "string", "attributed": "boolean",
                                 "practice_id": "string", "npi": "string", "tin": "string", "hsa": "string"})

    def context(self, *, valuesets=None, paid_through: dt.date | None = None) -> framework.MeasureContext:
        return framework.build_context(
            self.program, self.year, paid_through or D(self.year + 1, 3, 31),
            medical_claim=table("medical_claim", self.claims),
            eligibility=table("eligibility", self.spans),
            attribution=self.attribution(),
            member_months=self.member_months(),
            valuesets=valuesets or VALUESETS,
            lab_result=table("lab_result", self.labs),
            observation=table("observation", self.obs),
            supplemental=table("lab_result", self.supplemental) if self.supplemental else None,
        )

    def results(self, measure_id: str, **kw) -> dict[str, dict]:
        """The measure's result rows by person id (member measures)."""
        m = measure(measure_id)
        out = rows(framework.evaluate(m, self.context(**kw)))
        return {r["person_id"]: r for r in out}


VALUESETS = load_valuesets()


def measure(measure_id: str) -> framework.Measure:
    """A registered measure (its module imported on first use)."""
    if measure_id not in framework.REGISTRY:
        framework.registry()
    return framework.REGISTRY[measure_id]
