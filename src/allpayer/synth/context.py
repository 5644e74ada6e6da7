"""Per-chunk context shared by the claim, pharmacy and clinical generators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allpayer.synth import names
from allpayer.synth import reference as ref
from allpayer.synth.population import NO_DEATH, People, Segments
from allpayer.synth.roster import Roster
from allpayer.synth.span import Span

PAYER_TYPES = ("medicare", "medicaid", "commercial", "self_funded")
ENTITY_PTYPE = np.array([PAYER_TYPES.index(e.payer_type) for e in names.PLAN_ENTITIES], dtype=np.int8)
ENTITY_PAYER = np.array([names.PAYERS.index(e.payer) for e in names.PLAN_ENTITIES], dtype=np.int8)


@dataclass
class Ctx:
    """Everything a generator needs about one chunk."""

    rng: np.random.Generator
    people: People
    segs: Segments
    span: Span
    roster: Roster
    sp: np.ndarray  # person of each segment
    w0: np.ndarray  # first day of service window (inclusive)
    w1: np.ndarray  # last day of service window (inclusive); < w0 when the segment has none
    years: np.ndarray  # exposure in years
    age: np.ndarray  # age at the window's midpoint
    ptype: np.ndarray
    payer: np.ndarray
    hsa: np.ndarray
    free_after: np.ndarray  # uncovered days after the segment (large when none follows)
    top_dx: np.ndarray  # (n, 4) first four chronic condition codes per person

    @classmethod
    def build(cls, rng, people: People, segs: Segments, span: Span, roster: Roster) -> "Ctx":
        sp = segs.person
        death = people.death[sp]
        w0 = np.maximum(segs.start, span.start_day)
        w1 = np.minimum(np.minimum(segs.end, span.end_day), np.where(death == NO_DEATH, span.end_day, death))
        days = np.maximum(w1 - w0 + 1, 0)
        years = days / 365.25
        mid = (w0 + w1) / 2
        age = np.maximum((mid - people.birth[sp]) / 365.25, 0)
        same_next = np.zeros(len(sp), dtype=bool)
        same_next[:-1] = sp[1:] == sp[:-1]
        nxt = np.full(len(sp), 10**9, dtype=np.int64)
        nxt[:-1] = np.where(same_next[:-1], segs.start[1:], 10**9)
        free_after = np.where((death == NO_DEATH) & (segs.end < span.end_day), nxt - segs.end - 1, 0)
        free_after = np.minimum(free_after, span.end_day - segs.end)
        # top four condition codes per person (in condition order)
        cc = people.cond_code
        order = np.argsort(cc < 0, axis=1, kind="stable")
        top = np.take_along_axis(cc, order, axis=1)[:, :4]
        return cls(
            rng=rng, people=people, segs=segs, span=span, roster=roster, sp=sp, w0=w0, w1=w1, years=years, age=age,
            ptype=ENTITY_PTYPE[segs.entity], payer=ENTITY_PAYER[segs.entity], hsa=people.hsa[sp],
            free_after=free_after, top_dx=top,
        )

    # -----------------------------------------------------------------------------------------
    def cond(self, key: str) -> np.ndarray:
        """Per-segment flag: the segment's person has condition `key`."""
        return self.people.cond[self.sp, ref.COND[key]]

    def events(self, rate_per_year: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poisson events per segment at the given annual rates: (segment index, day) per event."""
        lam = np.maximum(rate_per_year, 0) * self.years
        counts = self.rng.poisson(lam)
        seg = np.repeat(np.arange(len(lam)), counts)
        span_days = self.w1[seg] - self.w0[seg] + 1
        day = self.w0[seg] + (self.rng.random(len(seg)) * span_days).astype(np.int64)
        return seg, day

    def dx_rows(self, seg: np.ndarray, primary: np.ndarray) -> np.ndarray:
        """(k, 5) diagnosis indices: the principal code, then the person's chronic codes."""
        k = len(seg)
        dx = np.full((k, 5), -1, dtype=np.int32)
        dx[:, 0] = primary
        others = self.top_dx[self.sp[seg]]
        others = np.where(others == primary[:, None], -1, others)
        order = np.argsort(others < 0, axis=1, kind="stable")
        dx[:, 1:] = np.take_along_axis(others, order, axis=1)
        return dx

    def random_condition_code(self, seg: np.ndarray, among: list[str] | None = None) -> np.ndarray:
        """A random one of the person's condition codes (or -1 when the person has none)."""
        cc = self.people.cond_code[self.sp[seg]]
        if among is not None:
            cols = [ref.COND[c] for c in among]
            cc = cc[:, cols]
        score = self.rng.random(cc.shape) * (cc >= 0)
        j = np.argmax(score, axis=1)
        out = cc[np.arange(len(seg)), j]
        return np.where(score.max(axis=1) > 0, out, -1).astype(np.int32)

    def age_rate(self, table: dict[int, float]) -> np.ndarray:
        """Per-segment rate from an {age lower bound: rate} table."""
        bounds = np.array(sorted(table))
        vals = np.array([table[b] for b in bounds])
        return vals[np.searchsorted(bounds, self.age, side="right") - 1]
