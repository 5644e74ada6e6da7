"""Annual wellness visits for Medicare members (AWV).

The share of attributed members with an annual wellness visit (`annual_wellness_visit`: HCPCS
G0438 initial, G0439 subsequent) in the measurement year. Population: attributed members of any
age, continuously enrolled over the year (one gap of up to 45 days, enrolled on 31 December).
Exclusion: hospice in the measurement year. The terms list this measure for the Medicare program
(OneCare's 2025 Population Health Model target, the national all-ACO 50th percentile, 51.80%).
"""

from __future__ import annotations

import ibis.expr.types as ir

from allpayer.quality.framework import Measure, MeasureContext, register
from allpayer.quality.measures.well_care import visit_measure


def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    return visit_measure(ctx, population, "annual_wellness_visit")


MEASURE = register(
    Measure(
        id="awv",
        name="Annual wellness visit (Medicare)",
        kind="member",
        compute=compute,
        valuesets=("annual_wellness_visit", "hospice"),
        description=__doc__.split("\n\n", 1)[1],
        source="CMS Medicare annual wellness visit (42 CFR 410.15); OneCare 2025 Population Health Model (S15)",
    )
)
