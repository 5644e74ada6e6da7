"""Payer, plan and employer-group names used in generated data.

They follow `allpayer/programs/vermont/README.md` (the names the Vermont example programs select
their members by). Keep every name the generator writes in this one module.

Plan entities: one coverage a person can hold, i.e. (payer, payer_type, plan, group). Self-funded
groups are administered by a payer (plan ``aso``); the State of Vermont and UVM Medical Center
plans move from BCBSVT to MVP on 2024-01-01, which gives their members a new ``member_id`` under
the new payer (same ``person_id``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DATA_SOURCE = "allpayer-synth"
"""Value of every table's ``data_source`` column."""

MEDICARE = "medicare"
MEDICAID = "medicaid"
BCBSVT = "bcbsvt"
MVP = "mvp"

PAYERS: tuple[str, ...] = (MEDICARE, MEDICAID, BCBSVT, MVP)
"""Payers with provider-roster rows (self-funded plans use their administrator's rows)."""

PLAN_MEDICARE = "medicare_ffs"
PLAN_MEDICAID = "vmng"
PLAN_QHP = "qhp"
PLAN_ASO = "aso"


@dataclass(frozen=True)
class Employer:
    """A self-funded employer group and who administers it, by date."""

    group_id: str
    employer_id: str
    name: str
    share: float
    """Share of the self-funded population in this group."""
    administrators: tuple[tuple[dt.date, str], ...]
    """(from date, payer) pairs, ascending."""
    aco_opt_in: tuple[tuple[dt.date, bool], ...]
    """(from date, opted in) pairs, ascending."""
    group_start: dt.date = dt.date(2015, 1, 1)


EMPLOYERS: tuple[Employer, ...] = (
    Employer(
        "SOV",
        "EMP-SOV",
        "State of Vermont",
        0.15,
        ((dt.date(2015, 1, 1), BCBSVT), (dt.date(2024, 1, 1), MVP)),
        ((dt.date(2015, 1, 1), False), (dt.date(2021, 1, 1), True)),
    ),
    Employer(
        "UVMMC",
        "EMP-UVMMC",
        "University of Vermont Medical Center",
        0.11,
        ((dt.date(2015, 1, 1), BCBSVT), (dt.date(2024, 1, 1), MVP)),
        ((dt.date(2015, 1, 1), False), (dt.date(2018, 1, 1), True)),
    ),
    Employer(
        "GMMFG",
        "EMP-GMMFG",
        "Green Mountain Manufacturing",
        0.22,
        ((dt.date(2015, 1, 1), BCBSVT),),
        ((dt.date(2015, 1, 1), False), (dt.date(2020, 1, 1), True)),
    ),
    Employer(
        "LCSCH",
        "EMP-LCSCH",
        "Lake Champlain School Employees Trust",
        0.30,
        ((dt.date(2015, 1, 1), BCBSVT),),
        ((dt.date(2015, 1, 1), False),),
    ),
    Employer(
        "NEKCOOP",
        "EMP-NEKCOOP",
        "Northeast Kingdom Cooperative",
        0.10,
        ((dt.date(2015, 1, 1), MVP),),
        ((dt.date(2015, 1, 1), False), (dt.date(2019, 1, 1), True)),
    ),
    Employer(
        "VTSKI",
        "EMP-VTSKI",
        "Vermont Ski Resorts Group",
        0.12,
        ((dt.date(2015, 1, 1), MVP),),
        ((dt.date(2015, 1, 1), False),),
    ),
)


@dataclass(frozen=True)
class PlanEntity:
    """One coverage: what an eligibility row names."""

    key: str
    payer: str
    payer_type: str
    plan: str
    group_id: str | None
    group_name: str | None
    member_prefix: str
    """Prefix of this coverage's member ids."""


def _entities() -> tuple[PlanEntity, ...]:
    out = [
        PlanEntity("medicare", MEDICARE, "medicare", PLAN_MEDICARE, None, None, "1"),
        PlanEntity("medicaid", MEDICAID, "medicaid", PLAN_MEDICAID, None, None, "VT"),
        PlanEntity("bcbsvt_qhp", BCBSVT, "commercial", PLAN_QHP, None, None, "ZIB"),
        PlanEntity("mvp_qhp", MVP, "commercial", PLAN_QHP, None, None, "MVQ"),
    ]
    seen = set()
    for e in EMPLOYERS:
        for _, payer in e.administrators:
            if (e.group_id, payer) in seen:
                continue
            seen.add((e.group_id, payer))
            prefix = ("ZIS" if payer == BCBSVT else "MVS") + e.group_id[:2]
            out.append(
                PlanEntity(f"{payer}_aso_{e.group_id}", payer, "self_funded", PLAN_ASO, e.group_id, e.name, prefix)
            )
    return tuple(out)


PLAN_ENTITIES: tuple[PlanEntity, ...] = _entities()
ENTITY_INDEX = {e.key: i for i, e in enumerate(PLAN_ENTITIES)}


def entity_for(group_id: str, payer: str) -> int:
    """Index of the self-funded plan entity of `group_id` administered by `payer`."""
    return ENTITY_INDEX[f"{payer}_aso_{group_id}"]


# Coverage mix of the synthetic state's ACO-attributable population (persons by first coverage).
# The brief gives Medicare FFS ~20%, Medicaid ~27%, BCBSVT QHP ~12%, MVP QHP ~8%, self-funded ~25%
# (92%); the remaining ~8% of Vermonters (Medicare Advantage, other carriers, uninsured) send no
# data to the ACO and are left out, so the shares below are those five scaled to 100%.
COVERAGE_MIX: dict[str, float] = {
    "medicare": 0.20 / 0.92,
    "medicaid": 0.27 / 0.92,
    "bcbsvt_qhp": 0.12 / 0.92,
    "mvp_qhp": 0.08 / 0.92,
    "self_funded": 0.25 / 0.92,
}

MEDICAID_AID_CATEGORIES = ("child", "adult_parent", "adult_expansion", "aged_blind_disabled")
"""Medicaid rate cells written to ``aid_category``."""
