"""Hand-made patients for the event-based quality measures (ED visits, stays, follow-ups).

Extends `tests.quality.helpers.World` with the claims these measures look at: an ED visit (a
facility claim with revenue code 0450 and a professional claim with POS 23 the same day), an
inpatient stay (bill type 111 with admission and discharge dates and a discharge disposition),
an office or behavioral-health visit, and the result rows of an event measure in date order.
"""

from __future__ import annotations

import datetime as dt

from allpayer.quality import framework
from tests.quality.helpers import D, World


class EventWorld(World):
    def ed(self, pid: str, date: dt.date, dx=("F329",), *, professional: bool = True, **kw) -> str:
        """An ED visit: facility claim (rev 0450, bill type 131) plus, by default, the ED doctor's claim."""
        cid = self.claim(pid, date, dx=dx, claim_type="institutional", bill_type="131", revenue="0450",
                         hcpcs="99284", pos=None, **kw)
        if professional:
            self.claim(pid, date, dx=dx, hcpcs="99284", pos="23", **kw)
        return cid

    def stay(self, pid: str, admit: dt.date, discharge: dt.date, dx=("F329",), *, disposition="01",
             bill_type="111", drg=None, procedures=(), **kw) -> str:
        """An inpatient (or, with another bill type, nonacute) stay on one institutional claim."""
        cid = self.claim(pid, admit, dx=dx, claim_type="institutional", bill_type=bill_type, revenue="0120",
                         pos=None, **kw)
        row = self.claims[-1]
        row.update(claim_end_date=discharge, admission_date=admit, discharge_date=discharge,
                   discharge_disposition_code=disposition, drg_code=drg, paid_date=discharge)
        for i, px in enumerate(procedures, start=1):
            row[f"procedure_code_{i}"] = px
        return cid

    def visit(self, pid: str, date: dt.date, hcpcs="90834", dx=("F329",), *, pos="11", **kw) -> str:
        """An office (or behavioral-health) visit."""
        return self.claim(pid, date, dx=dx, hcpcs=hcpcs, pos=pos, **kw)

    def event_results(self, measure_id: str, **kw) -> list[dict]:
        """The measure's result rows, in (person, event date, event id) order."""
        m = framework.registry()[measure_id]
        ctx = kw.pop("ctx", None) or self.context(**kw)
        # executed on Ibis's default backend, where the measures cache their shared inputs
        out = framework.evaluate(m, ctx).to_pyarrow().to_pylist()
        return sorted(out, key=lambda r: (r["person_id"], r["event_date"] or D(1900, 1, 1), r["event_id"]))


def summary(results: list[dict]) -> list[tuple]:
    """(person, event date, in denominator, excluded, reason, numerator) of each row."""
    return [(r["person_id"], r["event_date"], r["in_denominator"], r["excluded"], r["exclusion_reason"],
             r["in_numerator"]) for r in results]
