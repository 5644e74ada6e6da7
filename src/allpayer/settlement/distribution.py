"""Distribution of a program's net settlement to its risk-bearing participants (domain.md R9).

`distribute(net_cents, participants, reserve_rate, residual)`:

1. The reserve's own share first: ``reserve_rate`` x net (rounded with the terms' mode).
2. The rest is split over the participants in proportion to their weights, by largest
   remainder, so the parts sum to it exactly.
3. A participant whose running allocation would pass its Maximum Risk and Sharing Limit (in
   either direction) is held at the limit. With ``residual: pro_rata_uncapped`` what it could not
   take is split again over the participants not at their limit, and so on until nothing more is
   held back (at most one round per participant). With ``residual: reserve`` it goes to the
   reserve at once.
4. Whatever no participant can take goes to the ACO reserve.

So, to the cent: sum of final allocations + reserve = net, and no |final| exceeds its limit.

>>> parts = [Participant("a", Decimal(1), 1000), Participant("b", Decimal(1), 100)]
>>> d = distribute(1000, parts)
>>> [(a.participant_id, a.final_cents) for a in d.allocations], d.reserve_cents
([('a', 900), ('b', 100)], 0)
>>> d = distribute(-5000, parts)
>>> [a.final_cents for a in d.allocations], d.reserve_cents
([-1000, -100], -3900)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Sequence

from allpayer.money import apply_rate, largest_remainder

ZERO = Decimal(0)


@dataclass(frozen=True)
class Participant:
    """A risk-bearing participant: its weight and its limit (cents, applied to |allocation|)."""

    participant_id: str
    weight: Decimal
    limit_cents: int
    fixed_payment_performance_cents: int = 0
    hsa: str | None = None


@dataclass(frozen=True)
class Allocation:
    participant_id: str
    hsa: str | None
    weight: Decimal
    share: Decimal
    initial_cents: int
    limit_cents: int
    final_cents: int
    at_limit: bool
    rounds: int
    fixed_payment_performance_cents: int
    fixed_payment_performance_in_combined: bool = True
    """``settlement.distribution.include_fixed_payment_performance``: whether the combined result
    adds the fixed payment performance (it is shown either way)."""

    @property
    def combined_cents(self) -> int:
        fpp = self.fixed_payment_performance_cents if self.fixed_payment_performance_in_combined else 0
        return self.final_cents + fpp


@dataclass
class DistributionResult:
    net_cents: int
    reserve_rate_cents: int
    reserve_cents: int
    allocations: list[Allocation] = field(default_factory=list)
    rounds: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def distributed_cents(self) -> int:
        return sum(a.final_cents for a in self.allocations)


def distribute(
    net_cents: int,
    participants: Sequence[Participant],
    reserve_rate: Decimal = ZERO,
    residual: str = "pro_rata_uncapped",
    rounding: str = "half_up",
    *,
    include_fixed_payment_performance: bool = True,
) -> DistributionResult:
    """Allocate `net_cents` to `participants` within their limits; the rest to the reserve. Each
    allocation's combined result adds the participant's fixed payment performance when
    `include_fixed_payment_performance` is true."""
    if residual not in ("pro_rata_uncapped", "reserve"):
        raise ValueError(f"unknown residual rule {residual!r}")
    for p in participants:
        if p.weight < 0:
            raise ValueError(f"participant {p.participant_id}: negative weight")
        if p.limit_cents < 0:
            raise ValueError(f"participant {p.participant_id}: negative limit")
    net = int(net_cents)
    reserve_first = apply_rate(net, reserve_rate, rounding) if reserve_rate else 0
    remaining = net - reserve_first
    n = len(participants)
    alloc = [0] * n
    initial = [0] * n
    capped = [False] * n
    rounds_of = [0] * n
    wsum = sum((p.weight for p in participants), ZERO)
    res = DistributionResult(net_cents=net, reserve_rate_cents=reserve_first, reserve_cents=0)
    active = [i for i in range(n) if participants[i].weight > 0]
    if not active and remaining:
        res.notes.append("no participant with a positive weight: everything to the reserve")
    rnd = 0
    while remaining and active:
        rnd += 1
        this_round = list(active)
        parts = largest_remainder(remaining, [participants[i].weight for i in this_round])
        if rnd == 1:
            for i, part in zip(this_round, parts):
                initial[i] = part
        over = [i for i, part in zip(this_round, parts) if abs(alloc[i] + part) > participants[i].limit_cents]
        if not over or residual == "reserve":
            for i, part in zip(this_round, parts):
                rounds_of[i] = rnd
                if i in over:
                    limit = participants[i].limit_cents
                    part = (limit if remaining > 0 else -limit) - alloc[i]
                    capped[i] = True
                alloc[i] += part
                remaining -= part
            break
        for i in over:
            limit = participants[i].limit_cents
            to = limit if remaining > 0 else -limit
            remaining -= to - alloc[i]
            alloc[i] = to
            capped[i] = True
            rounds_of[i] = rnd
        active = [i for i in this_round if not capped[i]]
    res.rounds = rnd
    res.reserve_cents = reserve_first + remaining
    for i, p in enumerate(participants):
        res.allocations.append(Allocation(
            participant_id=p.participant_id, hsa=p.hsa, weight=p.weight,
            share=(p.weight / wsum).quantize(Decimal("1e-10")) if wsum else ZERO,
            initial_cents=initial[i], limit_cents=p.limit_cents, final_cents=alloc[i], at_limit=capped[i],
            rounds=rounds_of[i], fixed_payment_performance_cents=p.fixed_payment_performance_cents,
            fixed_payment_performance_in_combined=include_fixed_payment_performance,
        ))
    assert res.distributed_cents + res.reserve_cents == net
    return res


def participants_for(program, bases) -> tuple[list[Participant], list[str]]:
    """Participants of `program` from `allpayer.settlement.inputs.participant_bases`, weighted and
    limited as its ``settlement.distribution`` says."""
    d = program.settlement.distribution
    notes: list[str] = []
    rate = d.max_risk_and_sharing_limit.at(program.effective.end)
    out = []
    if d.weight_basis == "attributed_mm_x_target_pmpm":
        weights = [b.weight for b in bases]
    elif d.weight_basis == "ffs_revenue":
        weights = [Decimal(b.limit_base_cents) for b in bases]
    else:  # hsa_result: each participant's own result, in the direction of the program's result
        results = [b.target_cents - b.actual_cents for b in bases]
        weights = [Decimal(max(r, 0)) for r in results]
        notes.append("weights: each HSA's own savings (target - actual); HSAs with losses weigh 0 for savings")
    if d.limit_base == "negotiated_amount":
        notes.append("limit_base negotiated_amount: no negotiated amounts in the terms; limits on FFS cost instead")
    for b, w in zip(bases, weights):
        limit = apply_rate(b.limit_base_cents, rate, program.settlement.rounding)
        out.append(Participant(b.participant_id, w, limit, int(b.fixed_payment_performance_cents or 0), b.hsa))
    return out, notes


def distribute_program(program, net_cents: int, bases) -> DistributionResult:
    """Distribute one program's net settlement following its terms."""
    d = program.settlement.distribution
    participants, notes = participants_for(program, bases)
    if d.weight_basis == "hsa_result" and net_cents < 0:
        # losses: weight by each HSA's own losses
        participants = [
            Participant(p.participant_id, Decimal(max(b.actual_cents - b.target_cents, 0)), p.limit_cents,
                        p.fixed_payment_performance_cents, p.hsa)
            for p, b in zip(participants, bases)
        ]
    res = distribute(net_cents, participants, d.reserve_rate.at(program.effective.end), d.residual,
                     program.settlement.rounding,
                     include_fixed_payment_performance=d.include_fixed_payment_performance)
    if not d.include_fixed_payment_performance:
        notes.append("include_fixed_payment_performance false: combined results leave out fixed payment performance")
    res.notes[:0] = notes
    return res


__all__ = ["Participant", "Allocation", "DistributionResult", "distribute", "participants_for", "distribute_program"]
