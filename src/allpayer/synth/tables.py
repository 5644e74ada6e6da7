"""Turn one chunk's arrays into Arrow tables with the columns of `allpayer.inputs.schema`.

Types: money is decimal(18,2) built exactly from integer cents; quantities are decimal(18,3);
dates are date32; booleans are bool; codes and names are strings (dictionary-encoded in memory,
plain strings once written). Optional columns the generator has nothing for are left out.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from allpayer.inputs.schema import (
    LOINC_DIASTOLIC_BP,
    LOINC_HBA1C,
    LOINC_SYSTOLIC_BP,
    PAYMENT_ARRANGEMENTS,
    TABLES,
)
from allpayer.synth import codes as K
from allpayer.synth import names
from allpayer.synth import reference as ref
from allpayer.synth.claims import MedicalLines
from allpayer.synth.clinical import LabResults, Observations
from allpayer.synth.context import PAYER_TYPES, Ctx
from allpayer.synth.ids import prefixed_ids
from allpayer.synth.pharmacy import DRUG_KEYS, PharmacyLines
from allpayer.synth.population import NO_DEATH, RACES, member_ids, person_ids

MONEY = pa.decimal128(18, 2)
QUANTITY = pa.decimal128(18, 3)
ID_WIDTH = 12
CLAIMS_PER_CHUNK = 10**9
"""Chunk k numbers its claims from k * 10**9, so ids are unique across chunks."""


def decimal_from_int(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """An exact decimal array from integers in units of the type's scale (e.g. cents)."""
    v = np.ascontiguousarray(values, dtype=np.int64)
    buf = np.empty(2 * len(v), dtype=np.int64)
    buf[0::2] = v
    buf[1::2] = np.where(v < 0, -1, 0)
    return pa.Array.from_buffers(type_, len(v), [None, pa.py_buffer(buf)])


def money(cents: np.ndarray) -> pa.Array:
    return decimal_from_int(cents, MONEY)


def dates(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    d = np.asarray(days, dtype=np.int64)
    if null is not None and null.any():
        return pa.array(np.where(null, 0, d).astype(np.int32), pa.date32(), mask=null)
    return pa.array(d.astype(np.int32), pa.date32())


def const(value: str | None, n: int) -> pa.Array:
    if value is None:
        return pa.nulls(n, pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def pick(values: list | pa.Array, idx: np.ndarray) -> pa.DictionaryArray:
    """Dictionary array over `values` (unique strings); negative indices are nulls."""
    arr = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    idx = np.asarray(idx, dtype=np.int32)
    mask = idx < 0
    indices = pa.array(np.where(mask, 0, idx), pa.int32(), mask=mask if mask.any() else None)
    return pa.DictionaryArray.from_arrays(indices, arr)


def ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return prefixed_ids(prefix, numbers, ID_WIDTH)


def _table(name: str, cols: dict[str, pa.Array]) -> pa.Table:
    """Columns in the contract's order (those present)."""
    order = [c for c in TABLES[name].column_names if c in cols]
    extra = set(cols) - set(order)
    if extra:
        raise ValueError(f"{name}: columns not in the contract: {sorted(extra)}")
    return pa.table({c: cols[c] for c in order})


class ChunkIds:
    """String ids of one chunk's people and enrollment spans."""

    def __init__(self, ctx: Ctx):
        self.person = person_ids(ctx.people.gidx)
        self.member = member_ids(ctx.segs.entity, ctx.people.gidx[ctx.segs.person])
        ent = names.PLAN_ENTITIES
        self.payer_vals = pa.array(list(names.PAYERS))
        self.plan_vals = sorted({e.plan for e in ent})
        self.plan_of_entity = np.array([self.plan_vals.index(e.plan) for e in ent], dtype=np.int32)
        self.payer_of_entity = np.array([names.PAYERS.index(e.payer) for e in ent], dtype=np.int32)

    def person_of_seg(self, ctx: Ctx, seg: np.ndarray) -> pa.Array:
        return self.person.take(pa.array(ctx.sp[seg]))

    def member_of_seg(self, seg: np.ndarray) -> pa.Array:
        return self.member.take(pa.array(seg))

    def payer(self, ctx: Ctx, seg) -> pa.Array:
        return pick(self.payer_vals, self.payer_of_entity[ctx.segs.entity[seg]])

    def plan(self, ctx: Ctx, seg) -> pa.Array:
        return pick(self.plan_vals, self.plan_of_entity[ctx.segs.entity[seg]])


# ---------------------------------------------------------------------------------------------


def eligibility_table(ctx: Ctx, cid: ChunkIds) -> pa.Table:
    ppl, segs = ctx.people, ctx.segs
    m = segs.m
    p = segs.person
    ent = segs.entity
    ents = names.PLAN_ENTITIES
    is_med = ctx.ptype == PAYER_TYPES.index("medicare")
    death = ppl.death[p]
    dead = death != NO_DEATH
    disabled = ppl.disabled[p] & ~segs.age_in
    age_at_start = (np.maximum(segs.start, ctx.span.start_day) - ppl.birth[p]) / 365.25
    under65 = age_at_start < 65
    esrd = ppl.cond[p, ref.COND["esrd"]]
    orec = np.where(under65 & esrd & ~disabled, 2, np.where(disabled & under65, 1, 0))
    status = np.where(esrd, np.where(under65 & ~disabled, 2, np.where(disabled & under65, 1, 0)),
                      np.where(disabled & under65, 3, 4))
    status_vals = ["11", "21", "31", "20", "10"]
    dual = ppl.dual[p]
    long_stay = np.zeros(m, dtype=bool) if ppl.long_stay is None else ppl.long_stay[p]
    group_ids = sorted({e.group_id for e in ents if e.group_id})
    group_names = {e.group_id: e.group_name for e in ents if e.group_id}
    g_idx = np.array([group_ids.index(e.group_id) if e.group_id else -1 for e in ents], dtype=np.int32)[ent]
    zips = [z for h in ref.HSAS for z in h.zips]
    zip_base = np.cumsum([0] + [len(h.zips) for h in ref.HSAS])[:-1]
    zip_idx = zip_base[ppl.hsa[p]] + ppl.zip_idx[p]
    cols = {
        "person_id": cid.person.take(pa.array(p)),
        "member_id": cid.member,
        "gender": pick(["female", "male"], np.where(ppl.female[p], 0, 1)),
        "race": pick([r for r, _ in RACES], ppl.race[p]),
        "birth_date": dates(ppl.birth[p]),
        "death_date": dates(death, ~dead),
        "death_flag": pa.array(dead),
        "enrollment_start_date": dates(segs.start),
        "enrollment_end_date": dates(segs.end),
        "payer": cid.payer(ctx, np.arange(m)),
        "payer_type": pick(list(PAYER_TYPES), ctx.ptype),
        "plan": cid.plan(ctx, np.arange(m)),
        "original_reason_entitlement_code": pick(["0", "1", "2"], np.where(is_med, orec, -1)),
        "dual_status_code": pick(["02", "NA"], np.where(is_med, np.where(dual, 0, 1), -1)),
        "medicare_status_code": pick(status_vals, np.where(is_med, status, -1)),
        "group_id": pick(group_ids, g_idx),
        "group_name": pick([group_names[g] for g in group_ids], g_idx),
        "state": const("VT", m),
        "zip_code": pick(zips, zip_idx),
        "aid_category": pick(list(names.MEDICAID_AID_CATEGORIES), segs.aid),
        "data_sharing_opt_out": pa.array(ppl.opt_out[p]),
        "long_term_institutional_flag": pa.array(long_stay & (age_at_start >= 85), mask=~is_med),
        "data_source": const(names.DATA_SOURCE, m),
    }
    return _table("eligibility", cols)


def medical_claim_table(ctx: Ctx, cid: ChunkIds, x: MedicalLines, chunk_no: int) -> pa.Table:
    r = ctx.roster
    n = x.n
    inst = x.ctype == 1
    claim_num = chunk_no * CLAIMS_PER_CHUNK + x.claim
    has_adm = x.adm >= 0
    tin_of = r.tin_index
    ccn_of = r.ccn_index

    def npi(e):
        return pick(r.npi, e)

    def tin(e):
        return pick(r.tin_vocab, np.where(e >= 0, tin_of[np.maximum(e, 0)], -1))

    cols = {
        "claim_id": ids("C", claim_num),
        "claim_line_number": pa.array(x.line.astype(np.int32)),
        "adjustment_sequence": pa.array(x.adj_seq.astype(np.int32)),
        "claim_type": pick(list(K.CLAIM_TYPES), x.ctype.astype(np.int32)),
        "person_id": cid.person_of_seg(ctx, x.seg),
        "member_id": cid.member_of_seg(x.seg),
        "payer": cid.payer(ctx, x.seg),
        "plan": cid.plan(ctx, x.seg),
        "claim_start_date": dates(x.start),
        "claim_end_date": dates(x.end),
        "claim_line_start_date": dates(x.lstart),
        "claim_line_end_date": dates(x.lend),
        "admission_date": dates(x.adm, ~has_adm),
        "discharge_date": dates(x.dis, ~has_adm),
        "admit_source_code": pick(K.ADMIT_SOURCE.arrow, x.src),
        "admit_type_code": pick(K.ADMIT_TYPE.arrow, x.atype),
        "discharge_disposition_code": pick(K.DISCHARGE.arrow, x.disch),
        "place_of_service_code": pick(K.POS.arrow, np.where(inst, -1, x.pos)),
        "bill_type_code": pick(K.BILL_TYPE.arrow, x.bill_type),
        "drg_code_type": pick(["ms-drg"], np.where(x.drg >= 0, 0, -1)),
        "drg_code": pick(K.DRG.arrow, x.drg),
        "revenue_center_code": pick(K.REVENUE.arrow, x.rev),
        "service_unit_quantity": decimal_from_int(x.units.astype(np.int64) * 1000, QUANTITY),
        "hcpcs_code": pick(K.HCPCS.arrow, x.hcpcs),
        "hcpcs_modifier_1": pick(K.MODIFIER.arrow, x.mod),
        "rendering_npi": npi(x.render),
        "rendering_tin": tin(x.render),
        "billing_npi": npi(x.bill),
        "billing_tin": tin(x.bill),
        "facility_npi": npi(x.fac),
        "facility_ccn": pick(r.ccn_vocab, np.where(x.fac >= 0, ccn_of[np.maximum(x.fac, 0)], -1)),
        "paid_date": dates(x.paid_date),
        "paid_amount": money(x.paid),
        "allowed_amount": money(x.allowed),
        "charge_amount": money(x.charge),
        "coinsurance_amount": money(x.coins),
        "copayment_amount": money(x.copay),
        "deductible_amount": money(x.deduct),
        "diagnosis_code_type": const("icd-10-cm", n),
    }
    for i in range(5):
        cols[f"diagnosis_code_{i + 1}"] = pick(K.ICD.arrow, x.dx[:, i])
    cols["diagnosis_poa_1"] = pick(["Y"], np.where(x.poa1, 0, -1))
    cols["in_network_flag"] = pa.array(x.in_network)
    cols["payment_arrangement"] = pick(list(PAYMENT_ARRANGEMENTS), x.arrangement.astype(np.int32))
    cols["claim_status"] = pick(["paid", "denied"], x.denied.astype(np.int32))
    cols["substance_use_redacted"] = pa.array(x.redacted)
    cols["data_source"] = const(names.DATA_SOURCE, n)
    return _table("medical_claim", cols)


def pharmacy_claim_table(ctx: Ctx, cid: ChunkIds, x: PharmacyLines, chunk_no: int) -> pa.Table:
    r = ctx.roster
    n = x.n
    ndcs = [ref.DRUGS[k].ndc for k in DRUG_KEYS]
    cols = {
        "claim_id": ids("RX", chunk_no * CLAIMS_PER_CHUNK + x.claim),
        "claim_line_number": pa.array(np.ones(n, dtype=np.int32)),
        "adjustment_sequence": pa.array(x.adj_seq.astype(np.int32)),
        "person_id": cid.person_of_seg(ctx, x.seg),
        "member_id": cid.member_of_seg(x.seg),
        "payer": cid.payer(ctx, x.seg),
        "plan": cid.plan(ctx, x.seg),
        "prescribing_provider_npi": pick(r.npi, x.prescriber),
        "dispensing_provider_npi": pick(r.pharmacy_npi, x.pharmacy.astype(np.int32)),
        "dispensing_date": dates(x.day),
        "ndc_code": pick(ndcs, x.drug),
        "quantity": decimal_from_int(x.quantity_milli, QUANTITY),
        "days_supply": pa.array(x.days_supply.astype(np.int32)),
        "refills": pa.array(x.refills.astype(np.int32)),
        "paid_date": dates(x.paid_date),
        "paid_amount": money(x.paid),
        "allowed_amount": money(x.allowed),
        "copayment_amount": money(x.copay),
        "in_network_flag": pa.array(np.ones(n, dtype=bool)),
        "data_source": const(names.DATA_SOURCE, n),
    }
    return _table("pharmacy_claim", cols)


def lab_result_table(ctx: Ctx, cid: ChunkIds, labs: LabResults, chunk_no: int) -> pa.Table:
    n = labs.n
    num = chunk_no * CLAIMS_PER_CHUNK + np.arange(n)
    tenths = labs.value_tenths
    result = pc.binary_join_element_wise(
        pc.cast(pa.array(tenths // 10), pa.string()), pc.cast(pa.array(tenths % 10), pa.string()), "."
    )
    high = tenths > 56
    desc = "Hemoglobin A1c/Hemoglobin.total in Blood"
    cols = {
        "lab_result_id": ids("L", num),
        "person_id": cid.person_of_seg(ctx, labs.seg),
        "patient_id": cid.member_of_seg(labs.seg),
        "encounter_id": ids("C", chunk_no * CLAIMS_PER_CHUNK + labs.claim),
        "accession_number": ids("A", num),
        "source_code_type": const("loinc", n),
        "source_code": const(LOINC_HBA1C, n),
        "source_description": const(desc, n),
        "source_component": const("Hemoglobin A1c", n),
        "normalized_code_type": const("loinc", n),
        "normalized_code": const(LOINC_HBA1C, n),
        "normalized_description": const(desc, n),
        "normalized_component": const("Hemoglobin A1c", n),
        "status": const("final", n),
        "result": result,
        "result_date": dates(labs.resulted),
        "collection_date": dates(labs.collected),
        "source_units": const("%", n),
        "normalized_units": const("%", n),
        "source_reference_range_low": const("4.0", n),
        "source_reference_range_high": const("5.6", n),
        "normalized_reference_range_low": const("4.0", n),
        "normalized_reference_range_high": const("5.6", n),
        "source_abnormal_flag": pick(["H"], np.where(high, 0, -1)),
        "normalized_abnormal_flag": pick(["abnormal", "normal"], np.where(high, 0, 1)),
        "specimen": const("blood", n),
        "ordering_practitioner_id": pick(ctx.roster.npi, labs.orderer),
        "data_source": const(names.DATA_SOURCE, n),
    }
    return _table("lab_result", cols)


def observation_table(ctx: Ctx, cid: ChunkIds, obs: Observations, chunk_no: int) -> pa.Table:
    k = obs.n
    n = 2 * k
    pair = np.repeat(np.arange(k), 2)
    which = np.tile(np.array([0, 1]), k)  # 0 systolic, 1 diastolic
    num = chunk_no * CLAIMS_PER_CHUNK + np.arange(n)
    value = np.where(which == 0, obs.systolic[pair], obs.diastolic[pair])
    codes = [LOINC_SYSTOLIC_BP, LOINC_DIASTOLIC_BP]
    descs = ["Systolic blood pressure", "Diastolic blood pressure"]
    seg = obs.seg[pair]
    cols = {
        "observation_id": ids("O", num),
        "person_id": cid.person_of_seg(ctx, seg),
        "patient_id": cid.member_of_seg(seg),
        "encounter_id": ids("C", chunk_no * CLAIMS_PER_CHUNK + obs.claim[pair]),
        "panel_id": ids("BP", chunk_no * CLAIMS_PER_CHUNK + pair),
        "observation_date": dates(obs.day[pair]),
        "observation_type": const("vital-signs", n),
        "source_code_type": const("loinc", n),
        "source_code": pick(codes, which),
        "source_description": pick(descs, which),
        "normalized_code_type": const("loinc", n),
        "normalized_code": pick(codes, which),
        "normalized_description": pick(descs, which),
        "result": pc.cast(pa.array(value), pa.string()),
        "source_units": const("mm[Hg]", n),
        "normalized_units": const("mm[Hg]", n),
        "data_source": const(names.DATA_SOURCE, n),
    }
    return _table("observation", cols)


def employer_group_table() -> pa.Table:
    """One row per employer group and period of constant administrator and ACO opt-in."""
    rows: dict[str, list] = {c: [] for c in (
        "group_id", "employer_id", "employer_name", "administrator_payer", "funding", "aco_opt_in",
        "effective_start_date", "effective_end_date", "data_source")}
    for e in names.EMPLOYERS:
        changes = sorted({d for d, _ in e.administrators} | {d for d, _ in e.aco_opt_in})
        for i, d in enumerate(changes):
            admin = [p for dd, p in e.administrators if dd <= d][-1]
            opt = [o for dd, o in e.aco_opt_in if dd <= d][-1]
            end = changes[i + 1] - dt.timedelta(days=1) if i + 1 < len(changes) else None
            rows["group_id"].append(e.group_id)
            rows["employer_id"].append(e.employer_id)
            rows["employer_name"].append(e.name)
            rows["administrator_payer"].append(admin)
            rows["funding"].append("self_funded")
            rows["aco_opt_in"].append(opt)
            rows["effective_start_date"].append(d)
            rows["effective_end_date"].append(end)
            rows["data_source"].append(names.DATA_SOURCE)
    schema = pa.schema([
        ("group_id", pa.string()), ("employer_id", pa.string()), ("employer_name", pa.string()),
        ("administrator_payer", pa.string()), ("funding", pa.string()), ("aco_opt_in", pa.bool_()),
        ("effective_start_date", pa.date32()), ("effective_end_date", pa.date32()), ("data_source", pa.string()),
    ])
    return pa.Table.from_pydict(rows, schema=schema)


def plain(table: pa.Table) -> pa.Table:
    """The same table with dictionary columns decoded to plain strings."""
    cols = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def written_schema(table: pa.Table) -> pa.Schema:
    """Schema as written: dictionary columns are plain strings."""
    return pa.schema([
        pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in table.schema
    ])
