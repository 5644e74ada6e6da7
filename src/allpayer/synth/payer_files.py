"""Files payers send besides claims and eligibility: Medicare's attribution list, beneficiaries'
voluntary alignment, exclusion events, and Medicaid's target PMPMs.

- ``payer_attribution``: Medicare's prospective list for each service year's program
  (``vt-<year>-medicare``, the shipped Vermont terms): beneficiaries whose primary care clinician
  is in the ACO's Medicare network at the start of the year, for each month they are enrolled,
  with the clinician's practice, NPI and TIN. Medicare assigns from its own claims window, so a
  few of its members differ from the engine's assignment (about 3% are left off at random, as a
  list built from older claims would): the reconciliation shows them.
- ``voluntary_alignment``: about 5% of Medicare beneficiaries with a primary care clinician
  designate one; a fifth of those designate a clinician other than the one they see most.
- ``exclusion_event``: Medicare reports hospice elections (most beneficiaries who die enter
  hospice in their last two months) and moves out of the service area (about 1% a year).
- ``payer_target``: the Medicaid program's target PMPM by aid category and month
  (``vt-<year>-medicaid``), from `MEDICAID_TARGET_PMPM` trended 4% a year: synthetic figures
  near the generated cost, for the target reconciliation.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from allpayer.synth import names
from allpayer.synth.population import NO_DEATH
from allpayer.synth.roster import PERIOD_START_DAYS
from allpayer.synth.span import to_date
from allpayer.synth.tables import _table, const, dates, pick

if TYPE_CHECKING:
    from allpayer.synth.context import Ctx
    from allpayer.synth.tables import ChunkIds

MEDICARE = names.PAYERS.index(names.MEDICARE)
LIST_DROP_P = 0.03
ALIGN_P = 0.05
ALIGN_OTHER_P = 0.2
HOSPICE_P = 0.6
MOVE_P_PER_YEAR = 0.01

MEDICAID_TARGET_PMPM = {"child": "240.00", "adult_parent": "590.00", "adult_expansion": "560.00",
                        "aged_blind_disabled": "2450.00"}
"""Medicaid target PMPM of the span's first year by aid category (synthetic)."""
MEDICAID_TREND = "0.04"


def program_id(year: int, kind: str) -> str:
    return f"vt-{year}-{kind}"


def _practice_of_entity(ctx: Ctx) -> np.ndarray:
    """Roster practice_id of every entity (by its NPI), as a string array."""
    r = ctx.roster.table
    by_npi = dict(zip(r.column("npi").to_pylist(), r.column("practice_id").to_pylist()))
    return np.array([by_npi.get(n) for n in ctx.roster.npi.to_pylist()], dtype=object)


def _period(day: np.ndarray | int) -> np.ndarray:
    return np.clip(np.searchsorted(PERIOD_START_DAYS, day, side="right") - 1, 0, len(PERIOD_START_DAYS) - 1)


def _medicare_segments(ctx: Ctx) -> np.ndarray:
    return np.nonzero((ctx.payer == MEDICARE) & (ctx.w1 >= ctx.w0))[0]


def payer_attribution_table(ctx: Ctx, cid: ChunkIds, rng: np.random.Generator) -> pa.Table:
    ppl, span = ctx.people, ctx.span
    seg = _medicare_segments(ctx)
    pcp = ppl.pcp[ctx.sp[seg]]
    seg, pcp = seg[pcp >= 0], pcp[pcp >= 0]
    rows_seg, rows_month = [], []
    for yi, y in enumerate(span.years):
        y0 = span.year_start_day(y)
        in_net = ctx.roster.in_network[pcp, MEDICARE, _period(y0)]
        listed = in_net & (rng.random(len(seg)) >= LIST_DROP_P)
        for m in range(12):
            m0 = int(span.month_start(np.array([yi * 12 + m]))[0])
            covered = listed & (ctx.w0[seg] <= m0) & (ctx.w1[seg] >= m0)
            rows_seg.append(seg[covered])
            rows_month.append(np.full(int(covered.sum()), m0, dtype=np.int64))
    s = np.concatenate(rows_seg) if rows_seg else np.zeros(0, dtype=np.int64)
    month = np.concatenate(rows_month) if rows_month else np.zeros(0, dtype=np.int64)
    ent = ppl.pcp[ctx.sp[s]]
    years = np.array([to_date(int(d)).year for d in month], dtype=np.int64) if len(month) else month
    pids = [program_id(int(y), "medicare") for y in span.years]
    practice = _practice_of_entity(ctx)
    cols = {
        "payer": const(names.MEDICARE, len(s)),
        "program_id": pick(pids, (years - span.years[0]).astype(np.int32)),
        "member_id": cid.member_of_seg(s),
        "month": dates(month),
        "practice_id": pa.array(practice[ent].tolist(), pa.string()),
        "npi": ctx.roster.npi.take(pa.array(ent)),
        "tin": ctx.roster.tin.take(pa.array(ctx.roster.billing[ent])),
        "data_source": const(names.DATA_SOURCE, len(s)),
    }
    return _table("payer_attribution", cols)


def voluntary_alignment_table(ctx: Ctx, cid: ChunkIds, rng: np.random.Generator) -> pa.Table:
    ppl, span = ctx.people, ctx.span
    seg = _medicare_segments(ctx)
    pcp = ppl.pcp[ctx.sp[seg]]
    chosen = (pcp >= 0) & (rng.random(len(seg)) < ALIGN_P)
    seg, pcp = seg[chosen], pcp[chosen]
    other = ctx.roster.pick(rng, "pcp_adult", ctx.hsa[seg])
    npi_ent = np.where(rng.random(len(seg)) < ALIGN_OTHER_P, other, pcp).astype(np.int64)
    # designated some time in the two years before the enrollment span's first covered day
    day = ctx.w0[seg] - (rng.random(len(seg)) * 730).astype(np.int64)
    day = np.maximum(day, span.start_day - 730)
    cols = {
        "payer": const(names.MEDICARE, len(seg)),
        "member_id": cid.member_of_seg(seg),
        "npi": ctx.roster.npi.take(pa.array(npi_ent)),
        "tin": ctx.roster.tin.take(pa.array(ctx.roster.billing[npi_ent])),
        "designation_date": dates(day),
        "end_date": dates(np.zeros(len(seg), dtype=np.int64), np.ones(len(seg), dtype=bool)),
        "data_source": const(names.DATA_SOURCE, len(seg)),
    }
    return _table("voluntary_alignment", cols)


def exclusion_event_table(ctx: Ctx, cid: ChunkIds, rng: np.random.Generator) -> pa.Table:
    ppl = ctx.people
    seg = _medicare_segments(ctx)
    death = ppl.death[ctx.sp[seg]]
    dies = (death != NO_DEATH) & (death <= ctx.w1[seg] + 1)
    hospice = dies & (rng.random(len(seg)) < HOSPICE_P)
    h_seg = seg[hospice]
    h_day = np.maximum(death[hospice] - (rng.random(len(h_seg)) * 60).astype(np.int64), ctx.w0[h_seg])
    moves = rng.random(len(seg)) < MOVE_P_PER_YEAR * ctx.years[seg]
    m_seg = seg[moves]
    m_day = ctx.w0[m_seg] + (rng.random(len(m_seg)) * np.maximum(ctx.w1[m_seg] - ctx.w0[m_seg], 1)).astype(np.int64)
    s = np.concatenate([h_seg, m_seg])
    day = np.concatenate([h_day, m_day])
    reason = np.concatenate([np.zeros(len(h_seg), dtype=np.int32), np.ones(len(m_seg), dtype=np.int32)])
    n = len(s)
    cols = {
        "payer": const(names.MEDICARE, n),
        "member_id": cid.member_of_seg(s),
        "reason": pick(["hospice", "moved_out_of_area"], reason),
        "event_date": dates(day),
        "end_date": dates(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)),
        "program_id": const(None, n),
        "data_source": const(names.DATA_SOURCE, n),
    }
    return _table("exclusion_event", cols)


def payer_target_table(years) -> pa.Table:
    """Medicaid's target PMPM per aid category and month of every service year."""
    from decimal import ROUND_HALF_UP, Decimal

    rows: dict[str, list] = {c: [] for c in ("payer", "program_id", "cell_id", "month", "target_pmpm", "data_source")}
    first = min(years)
    for y in years:
        factor = (1 + Decimal(MEDICAID_TREND)) ** (y - first)
        for cell, pmpm in MEDICAID_TARGET_PMPM.items():
            value = (Decimal(pmpm) * factor).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            for m in range(1, 13):
                rows["payer"].append(names.MEDICAID)
                rows["program_id"].append(program_id(y, "medicaid"))
                rows["cell_id"].append(cell)
                rows["month"].append(dt.date(y, m, 1))
                rows["target_pmpm"].append(value)
                rows["data_source"].append(names.DATA_SOURCE)
    schema = pa.schema([("payer", pa.string()), ("program_id", pa.string()), ("cell_id", pa.string()),
                        ("month", pa.date32()), ("target_pmpm", pa.decimal128(18, 2)), ("data_source", pa.string())])
    return pa.Table.from_pydict(rows, schema=schema)
