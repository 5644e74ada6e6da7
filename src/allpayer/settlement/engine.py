"""Terms-driven year-end settlement between a payer and the ACO (spec/domain.md R8).

`settle_program(program, inputs)` settles one payer program for one performance year. The
aggregates (target, actual TCOC, truncation, member months, quality score, fixed payments) are
read from the engine's tables beforehand (`allpayer.settlement.inputs`); what is left is small,
so the steps run in plain Python over integer cents and `Decimal` rates.

The steps and their order are the program's ``settlement.steps`` term. Each step writes named
lines: an amount in cents (or a rate), the terms key that produced it and a note. A product of
money and a rate is rounded to cents at once, on its own line, with ``settlement.rounding``.

Step by step (T = target, A = actual, G = T - A, g = G / T):

- ``actual_tcoc``: A. Where the program has a fixed prospective payment reconciled in the
  settlement and the payments stage has computed it, A is the fixed-payment definition (DVHA's
  ATCOC: FPP paid + CPR paid + FFS paid outside their scopes + the other shadow claims at their
  allowed amount, each part on a line of its own); otherwise the FFS basis (shadow claims priced).
- ``truncation``: A less the amounts above the per-member truncation threshold.
- ``gross_result``: G and g. With a ``settlement.completion_factor`` term (claims incurred in the
  year but paid after the run-out), A is first completed: A x the factor, rounded to cents, on
  lines of its own (not in a forecast, whose actual is already completed to ultimate).
- ``msr_test``: the minimum savings rate (fixed, or by population size) and minimum loss rate
  (or the MSR when ``symmetric``). A result inside the threshold is not shared; with
  ``share_from: above_threshold`` only the part beyond it is.
- ``share``: ``savings_rate`` x G for savings, ``loss_rate`` x G for losses.
- ``corridor``: the sum over bands of ``aco_share`` x the part of G inside the band (bands on g).
- ``quality_modifier``: in the order of ``quality_modifiers``: ``multiplier`` (shared x score),
  ``gate`` (no shared savings below ``min_score``, or when the gate is not met), ``loss_side``
  (shared losses re-rated at clamp(1 - max_rate x score, floor, ceiling); the score counts as 0
  when the program's gate is not met), ``withhold_return``
  (withheld dollars x score, added to the result).
- ``cap``: the smallest of the caps (a rate of the target or of participant revenue).
- ``advance_payments``: payments made during the year against the settlement, netted.
- ``sequestration``: a reduction of savings (or of both) at the term's rate.
- ``net``: what the payer pays the ACO (negative: what the ACO owes the payer).

The combined result adds the fixed payment performance (FPP paid less the FFS value of shadow
claims, R4) when the payments stage has computed it; otherwise it adds zero and says so.

>>> from allpayer.terms import load_program, programs_dir
>>> p = load_program(programs_dir() / "vermont" / "2024" / "medicaid.yaml")
>>> r = settle_program(p, SettlementInputs(target_cents=4_560_000_000, actual_cents=4_410_000_000,
...                                         member_months=114_000))
>>> r.amount("corridor_shared")
136800000
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, ROUND_HALF_UP
from typing import Iterable

from allpayer.errors import AllpayerError
from allpayer.money import apply_rate, cents_to_dollars, dollars_to_cents

ZERO = Decimal(0)
ONE = Decimal(1)

ASSUMED_FULL_CREDIT = "quality not yet measured: assumed full credit"


class SettlementError(AllpayerError):
    """A program cannot be settled with the inputs given."""


@dataclass(frozen=True)
class SettlementInputs:
    """The aggregates one program's settlement reads, all for its performance year.

    Money is integer cents. ``None`` means not available (the statement says so where it
    matters).
    """

    target_cents: int
    actual_cents: int
    member_months: int = 0
    members: int | None = None
    truncated_amount_cents: int | None = None
    fixed_payment_actual_cents: int | None = None
    fpp_paid_cents: int | None = None
    fixed_payment_performance_cents: int | None = None
    quality_score: Decimal | None = None
    quality_gate_met: bool | None = None
    participant_revenue_cents: int | None = None
    participant_revenue_note: str | None = None
    withheld_cents: int | None = None
    actual_note: str | None = None
    eligible_member_months: int | None = None
    months_without_target: int | None = None
    fixed_payment_note: str | None = None
    fixed_payment_parts: tuple[tuple[str, int], ...] = ()
    """The parts of the fixed-payment actual, (``tcoc_fixed_payment`` column, cents) in the order of
    `FIXED_PAYMENT_PARTS`; empty when the table has no parts (then only the total is shown)."""
    completed_to_ultimate: bool = False  # the actual already includes claims after the run-out (a forecast)


FIXED_PAYMENT_PARTS: dict[str, tuple[str, str]] = {
    "fpp_paid_cents": ("fpp_paid", "FPP paid by the payer (net of the withhold), in place of its shadow claims"),
    "cpr_paid_cents": ("cpr_paid", "CPR paid by the payer (cpr.payer_to_aco), in place of the CPR practices' "
                                   "shadow claims"),
    "ffs_outside_scope_cents": ("ffs_outside_scope", "FFS paid by the payer outside the FPP and CPR"),
    "shadow_outside_scope_cents": ("shadow_outside_scope", "shadow claims no FPP or CPR replaces (capitated "
                                                           "outside the ACO), at their allowed amount"),
}
"""The parts of the fixed-payment actual (``tcoc_fixed_payment`` column -> line id, label)."""


@dataclass(frozen=True)
class Line:
    """One named line of a settlement statement."""

    line_no: int
    line_id: str
    label: str
    step: str
    amount_cents: int | None = None
    rate: Decimal | None = None
    term: str = ""
    note: str = ""
    depends: tuple[str, ...] = ()


@dataclass
class Settlement:
    """One program's settlement for one performance year, with its lines in order."""

    program_id: str
    performance_year: int
    payer: str
    aco_id: str
    kind: str
    steps: tuple[str, ...]
    lines: list[Line] = field(default_factory=list)
    target_cents: int = 0
    actual_cents: int = 0
    gross_cents: int = 0
    shared_cents: int = 0
    net_cents: int = 0
    fixed_payment_performance_cents: int = 0
    combined_cents: int = 0
    method: str = "generic"

    def line(self, line_id: str) -> Line:
        for ln in self.lines:
            if ln.line_id == line_id:
                return ln
        raise KeyError(line_id)

    def has(self, line_id: str) -> bool:
        return any(ln.line_id == line_id for ln in self.lines)

    def amount(self, line_id: str) -> int | None:
        return self.line(line_id).amount_cents

    def rate(self, line_id: str) -> Decimal | None:
        return self.line(line_id).rate


class _Book:
    def __init__(self, result: Settlement):
        self.result = result

    def add(self, line_id: str, label: str, step: str, *, amount: int | None = None, rate: Decimal | None = None,
            term: str = "", note: str = "", depends: Iterable[str] = ()) -> int | Decimal | None:
        if self.result.has(line_id):
            raise SettlementError(f"internal: line {line_id} written twice")
        if "result_counted" in depends and not self.result.has("result_counted"):
            depends = ["gross_result" if d == "result_counted" else d for d in depends]
        depends = [d for d in depends if self.result.has(d)]
        self.result.lines.append(Line(len(self.result.lines) + 1, line_id, label, step,
                                      None if amount is None else int(amount), rate, term, note, tuple(depends)))
        return amount if amount is not None else rate


def _at_end(value, program):
    """A dated term's value for the settlement: the value in force on the last day of the year."""
    return value.at(program.effective.end)


def _rate_from_table(table, members: int | None, what: str, how: str = "step") -> tuple[Decimal, str]:
    """The rate of a population table for `members`: the rate of the last row whose
    ``min_members`` it reaches (``step``), or (``linear``, ``settlement.population_rates``) a rate
    moving in a straight line through the row's band, from the row's rate at its ``min_members`` to
    the next row's rate at the band's last member count (one below the next row's
    ``min_members``), as CMS's MSR table is read (42 CFR 425.604(b): 5,000-5,999 members,
    3.9%-3.6%). The last row's rate applies from its ``min_members`` on. Exact: no rounding."""
    if members is None:
        raise SettlementError(f"{what} by population size needs the number of members")
    i = None
    for j, row in enumerate(table):
        if members >= row.min_members:
            i = j
    if i is None:
        raise SettlementError(f"{what}: {members} members is below the smallest population row ({table[0].min_members})")
    row = table[i]
    if how == "linear" and i + 1 < len(table):
        nxt = table[i + 1]
        last = nxt.min_members - 1
        if last > row.min_members:
            rate = row.rate + (nxt.rate - row.rate) * Decimal(members - row.min_members) / Decimal(last - row.min_members)
        else:
            rate = row.rate
        return rate, (f"{members:,} members: in the band {row.min_members:,}-{last:,}, from {row.rate} to {nxt.rate} "
                      f"in a straight line")
    return row.rate, f"{members:,} members: row from {row.min_members:,}"


def _pmpm(cents: int, member_months: int) -> Decimal:
    """Dollars per member month, to the hundredth of a cent (a shown ratio, not money).

    >>> _pmpm(100_000, 3)
    Decimal('333.3333')
    """
    return (Decimal(cents) / 100 / Decimal(member_months)).quantize(Decimal("0.0001"), rounding="ROUND_HALF_UP")


def _clamp(x: int, lo: int | None, hi: int | None) -> int:
    if lo is not None and x < lo:
        return lo
    if hi is not None and x > hi:
        return hi
    return x


def _complete(program, inputs: SettlementInputs, book: _Book, A: int, actual_line: str, mode) -> tuple[int, str]:
    """The actual with the contract's completion factor for claims paid after the run-out
    (``settlement.completion_factor``): A x factor, rounded to cents; unchanged without the term or
    when the actual is already completed to ultimate (a forecast)."""
    term = program.settlement.completion_factor
    if term is None:
        return A, actual_line
    factor = term.value
    label = "completion factor: claims incurred in the year and paid after the run-out"
    if inputs.completed_to_ultimate:
        book.add("completion_factor", label, "gross_result", rate=factor, term="settlement.completion_factor",
                 note="not applied: this actual is already completed to ultimate with development factors")
        return A, actual_line
    months = int(program.settlement.runout_months.value)
    book.add("completion_factor", label, "gross_result", rate=factor, term="settlement.completion_factor",
             note=f"applied to the claims paid within the {months}-month run-out")
    completed = apply_rate(A, factor, mode)
    book.add("completion", "claims after the run-out: actual x (completion factor - 1)", "gross_result",
             amount=completed - A, term="settlement.completion_factor", depends=(actual_line, "completion_factor"))
    book.add("actual_completed", "actual TCOC completed", "gross_result", amount=completed,
             term="settlement.completion_factor", depends=(actual_line, "completion"))
    return completed, "actual_completed"


def _fixed_payment_parts(program, inputs: SettlementInputs, book: _Book, A: int, step: str) -> tuple[str, ...]:
    """One line per part of the fixed-payment actual (`FIXED_PAYMENT_PARTS`); the parts must add
    up to the actual read. Returns the line ids."""
    ids = []
    for column, cents in inputs.fixed_payment_parts:
        line_id, label = FIXED_PAYMENT_PARTS[column]
        book.add(line_id, label, step, amount=int(cents), term="tcoc_fixed_payment", note=column)
        ids.append(line_id)
    total = sum(int(c) for _, c in inputs.fixed_payment_parts)
    if ids and total != A:
        raise SettlementError(f"{program.program_id}: the parts of the fixed-payment TCOC add up to "
                              f"{cents_to_dollars(total)}, not its actual {cents_to_dollars(A)}: re-run the payments")
    return tuple(ids)


def settle_program(program, inputs: SettlementInputs) -> Settlement:
    """Settle `program` (`ProgramTerms`) on `inputs` following its ``settlement.steps``."""
    s = program.settlement
    mode = s.rounding
    res = Settlement(program_id=program.program_id, performance_year=program.performance_year, payer=program.payer,
                     aco_id=program.aco.id, kind=program.kind, steps=tuple(s.steps))
    book = _Book(res)
    T = int(inputs.target_cents)
    if T <= 0:
        raise SettlementError(f"{program.program_id}: the target must be positive to settle (got {cents_to_dollars(T)})")
    two_sided = s.risk == "two_sided"
    quality_measured = inputs.quality_score is not None
    q = inputs.quality_score if quality_measured else ONE
    gate_met = inputs.quality_gate_met

    mm_note = "attributed and eligible member months of the performance year (attribution): the population of " \
              "the target and of the actual below"
    book.add("member_months", "attributed member months", "inputs", amount=None, rate=Decimal(inputs.member_months),
             term="attribution", note=mm_note)
    if inputs.eligible_member_months is not None:
        outside = inputs.eligible_member_months - inputs.member_months
        book.add("eligible_member_months", "program member months (eligible), for reference", "inputs",
                 rate=Decimal(inputs.eligible_member_months), term="tcoc_member_month",
                 note=f"{outside:,} eligible months not attributed: outside the settlement on both sides")
    t_note = (f"method {program.target.method}: each rate cell's target PMPM x its attributed member months, "
              f"rounded {s.rounding.replace('_', ' ')} per cell (targets x attribution)")
    if inputs.months_without_target:
        t_note += f"; {inputs.months_without_target:,} attributed months have no target PMPM"
    book.add("target", "target (expected TCOC) of the attributed member months", "inputs", amount=T, term="target",
             note=t_note, depends=("member_months",))
    if inputs.member_months:
        book.add("target_pmpm", "target PMPM: target / attributed member months", "inputs",
                 rate=_pmpm(T, inputs.member_months), term="target", depends=("target", "member_months"))
    book.add("quality_score", "quality score", "inputs", rate=q, term="quality_program_scores",
             note="measured" if quality_measured else ASSUMED_FULL_CREDIT)

    A = int(inputs.actual_cents)
    G = 0
    g = ZERO
    g_eff = 0  # result that counts after the MSR/MLR test
    shared = 0
    extra = 0  # withhold returned: added after sharing
    net = 0
    actual_line = "actual_ffs"
    book.add("actual_ffs", "actual TCOC, FFS basis (shadow claims priced)", "inputs", amount=A, term="tcoc_member_month",
             note=inputs.actual_note or "ffs_paid_cents of the attributed member months", depends=("member_months",))

    for step in s.steps:
        if step == "actual_tcoc":
            fpp = program.payments.fpp
            depends: tuple[str, ...] = ("actual_ffs",)
            if fpp is not None and fpp.reconciliation == "in_settlement":
                if inputs.fixed_payment_actual_cents is not None:
                    A = int(inputs.fixed_payment_actual_cents)
                    depends = _fixed_payment_parts(program, inputs, book, A, step) or depends
                    note = ("fixed-payment definition: FPP paid + CPR paid + FFS paid outside their scopes + other "
                            "shadow claims at allowed (tcoc_fixed_payment)")
                    if inputs.fixed_payment_note:
                        note += f", {inputs.fixed_payment_note}"
                else:
                    note = ("fixed-payment TCOC not yet computed (no tcoc_fixed_payment): FFS basis with shadow "
                            "claims priced")
                term = "payments.fpp.reconciliation"
            else:
                note = "FFS basis" if fpp is None else "FPP reconciled separately: FFS-equivalent expenditure"
                term = "settlement.steps"
            book.add("actual_tcoc", "actual TCOC", step, amount=A, term=term, note=note, depends=depends)
            actual_line = "actual_tcoc"
        elif step == "truncation":
            cut = int(inputs.truncated_amount_cents or 0)
            book.add("truncated_amount", "amount above the truncation threshold", step, amount=-cut,
                     term="target.truncation",
                     note="per-member truncation (tcoc_truncation)" if inputs.truncated_amount_cents is not None
                     else "no truncation amounts found: nothing removed")
            A = A - cut
            book.add("actual_truncated", "actual TCOC after truncation", step, amount=A, term="target.truncation",
                     depends=(actual_line, "truncated_amount"))
            actual_line = "actual_truncated"
        elif step == "gross_result":
            A, actual_line = _complete(program, inputs, book, A, actual_line, mode)
            G = T - A
            g = Decimal(G) / Decimal(T)
            book.add("gross_result", "gross savings (+) or losses (-): target - actual", step, amount=G,
                     term="settlement.steps", depends=("target", actual_line))
            book.add("gross_rate", "gross result as a share of target", step, rate=g.quantize(Decimal("1e-10")),
                     term="settlement.steps", depends=("gross_result",))
            g_eff = G
        elif step == "msr_test":
            g_eff = _msr_test(program, inputs, book, G, g, T, two_sided, mode)
        elif step == "share":
            shared = _share(program, book, g_eff, two_sided, mode)
        elif step == "corridor":
            shared = _corridor(program, book, g_eff, T, two_sided, mode)
        elif step == "quality_modifier":
            shared, extra = _quality(program, inputs, book, shared, g_eff, q, quality_measured, gate_met, mode)
        elif step == "cap":
            shared = _cap(program, inputs, book, shared, T, mode)
        elif step == "advance_payments":
            adv = sum(dollars_to_cents(a.annual_amount.value) for a in program.payments.advance_payments)
            names = ", ".join(a.name for a in program.payments.advance_payments)
            book.add("advance_payments", "advance payments made during the year", step, amount=-adv,
                     term="payments.advance_payments", note=names)
            extra -= adv
        elif step == "sequestration":
            seq = s.sequestration
            rate = _at_end(seq.rate, program)
            base = shared if (shared > 0 or seq.applies_to == "both") else 0
            amount = apply_rate(base, rate, mode) if base else 0
            book.add("sequestration_rate", "sequestration rate", step, rate=rate, term="settlement.sequestration.rate")
            book.add("sequestration", "sequestration", step, amount=-amount, term="settlement.sequestration",
                     note=f"applies to {seq.applies_to}" + ("" if base else ": nothing to reduce"),
                     depends=(*[ln.line_id for ln in res.lines if ln.line_id.endswith("_shared")][-1:],
                              "sequestration_rate"))
            extra -= amount
        elif step == "net":
            last = [ln.line_id for ln in res.lines if ln.line_id.endswith("_shared")]
            book.add("shared", "shared result (after sharing, corridor, quality and caps)", step, amount=shared,
                     term="settlement.steps", note="" if last else "no sharing step: nothing shared",
                     depends=tuple(last[-1:]))
            net = shared + extra
            book.add("net", "net settlement: payer pays ACO (+) or ACO pays payer (-)", step, amount=net,
                     term="settlement.steps", depends=tuple(ln.line_id for ln in res.lines if ln.amount_cents is not None
                                                           and ln.step not in ("inputs",)))
        else:  # pragma: no cover - the terms model allows no other step
            raise SettlementError(f"unknown settlement step {step!r}")

    if inputs.member_months:
        book.add("actual_pmpm", "actual PMPM: actual TCOC counted / attributed member months", "pmpm",
                 rate=_pmpm(A, inputs.member_months), term="settlement.steps", depends=(actual_line, "member_months"))
    res.target_cents = T
    res.actual_cents = A
    res.gross_cents = G
    res.shared_cents = res.amount("shared")
    res.net_cents = net
    fpp_perf = inputs.fixed_payment_performance_cents
    if fpp_perf is None:
        pays = program.payments
        why = ("the program has no fixed prospective payments (payments.fpp): zero"
               if pays is None or pays.fpp is None
               else "not yet computed (no fixed_payment_performance rows for the program and year): zero")
        book.add("fixed_payment_performance", "fixed payment performance (FPP paid - shadow claims)", "combined",
                 amount=0, term="fixed_payment_performance", note=why)
    else:
        book.add("fixed_payment_performance", "fixed payment performance (FPP paid - shadow claims)", "combined",
                 amount=int(fpp_perf), term="fixed_payment_performance")
    res.fixed_payment_performance_cents = int(fpp_perf or 0)
    res.combined_cents = net + res.fixed_payment_performance_cents
    book.add("combined", "combined result: settlement + fixed payment performance", "combined",
             amount=res.combined_cents, term="settlement.steps", depends=("net", "fixed_payment_performance"))
    return res


def _set_shared(book: _Book, name: str, amount: int, term: str, note: str = "", depends: Iterable[str] = (),
                step: str | None = None) -> int:
    """The running shared result: one line per step that sets it (``<name>_shared``); ``net``
    writes the final ``shared`` line."""
    prev = [ln.line_id for ln in book.result.lines if ln.line_id.endswith("_shared")]
    book.add(f"{name}_shared", f"shared result after {name.replace('_', ' ')}", step or name, amount=amount,
             term=term, note=note, depends=(*prev[-1:], *depends))
    return amount


def _msr_test(program, inputs, book, G, g, T, two_sided, mode) -> int:
    s = program.settlement
    if s.msr_by_population is not None:
        msr, how = _rate_from_table(s.msr_by_population, inputs.members, "MSR", s.population_rates)
        msr_term = "settlement.msr_by_population"
    elif s.msr is not None:
        msr, how, msr_term = _at_end(s.msr, program), "fixed", "settlement.msr"
    else:
        msr, how, msr_term = ZERO, "none", "settlement.msr"
    if s.symmetric:
        mlr, mhow, mlr_term = msr, "symmetric: the MSR", "settlement.symmetric"
    elif s.mlr_by_population is not None:
        mlr, mhow = _rate_from_table(s.mlr_by_population, inputs.members, "MLR", s.population_rates)
        mlr_term = "settlement.mlr_by_population"
    elif s.mlr is not None:
        mlr, mhow, mlr_term = _at_end(s.mlr, program), "fixed", "settlement.mlr"
    else:
        mlr, mhow, mlr_term = ZERO, "one-sided: losses not shared", "settlement.risk"
    book.add("msr", "minimum savings rate (MSR)", "msr_test", rate=msr, term=msr_term, note=how)
    if two_sided:
        book.add("mlr", "minimum loss rate (MLR)", "msr_test", rate=mlr, term=mlr_term, note=mhow)
    if G > 0:
        met = g >= msr
        threshold = apply_rate(T, msr, "up")
        kind = "savings"
        rate_line = "msr"
    elif G < 0:
        met = two_sided and (-g) >= mlr
        threshold = apply_rate(T, mlr, "up")
        kind = "losses"
        rate_line = "mlr" if two_sided else "msr"
    else:
        met, threshold, kind, rate_line = False, 0, "none", "msr"
    if G < 0 and not two_sided:
        eff, note = 0, "one-sided program: losses are not shared"
    elif not met:
        eff, note = 0, f"{kind} inside the threshold: not shared" if G else "no savings or losses"
    elif s.share_from == "above_threshold":
        eff = G - threshold if G > 0 else G + threshold
        note = f"{kind} beyond the threshold of {cents_to_dollars(threshold)}"
    else:
        eff, note = G, f"{kind} reach the threshold: shared from the first dollar"
    book.add("msr_threshold_met", "threshold met (1) or not (0)", "msr_test", rate=Decimal(int(bool(met))),
             term=msr_term if G >= 0 else mlr_term, depends=("gross_rate", rate_line))
    book.add("result_counted", "result that counts after the threshold test", "msr_test", amount=eff,
             term="settlement.share_from", note=note, depends=("gross_result", "msr_threshold_met"))
    return eff


def _share(program, book, G, two_sided, mode) -> int:
    s = program.settlement
    if G > 0:
        rate = _at_end(s.savings_rate, program)
        book.add("sharing_rate", "savings sharing rate", "share", rate=rate, term="settlement.savings_rate")
    elif G < 0 and two_sided:
        rate = _at_end(s.loss_rate, program)
        book.add("sharing_rate", "loss sharing rate", "share", rate=rate, term="settlement.loss_rate")
    else:
        rate = ZERO
        book.add("sharing_rate", "sharing rate", "share", rate=rate, term="settlement.risk",
                 note="nothing to share" if G == 0 else "one-sided program: losses are not shared")
    amount = apply_rate(G, rate, program.settlement.rounding)
    return _set_shared(book, "share", amount, "settlement.savings_rate" if G >= 0 else "settlement.loss_rate",
                       "result counted x sharing rate", ("result_counted", "sharing_rate"))


def _corridor(program, book, G, T, two_sided, mode) -> int:
    s = program.settlement
    total = 0
    for i, band in enumerate(s.corridors):
        lo = None if band.lower is None else apply_rate(T, band.lower, mode)
        hi = None if band.upper is None else apply_rate(T, band.upper, mode)
        part = _clamp(G, lo, hi) - _clamp(0, lo, hi)
        share = apply_rate(part, band.aco_share, mode)
        rng = f"{'-inf' if band.lower is None else band.lower} to {'+inf' if band.upper is None else band.upper} of target"
        book.add(f"corridor_{i + 1}_part", f"corridor band {i + 1}: part of the result inside the band", "corridor",
                 amount=part, term=f"settlement.corridors[{i}]",
                 note=f"band {rng}: {cents_to_dollars(lo) if lo is not None else '-inf'} to "
                      f"{cents_to_dollars(hi) if hi is not None else '+inf'}",
                 depends=("result_counted" if book.result.has("result_counted") else "gross_result", "target"))
        book.add(f"corridor_{i + 1}_rate", f"corridor band {i + 1}: ACO share", "corridor", rate=band.aco_share,
                 term=f"settlement.corridors[{i}].aco_share")
        book.add(f"corridor_{i + 1}_aco", f"corridor band {i + 1}: ACO's part", "corridor", amount=share,
                 term=f"settlement.corridors[{i}]", depends=(f"corridor_{i + 1}_part", f"corridor_{i + 1}_rate"))
        total += share
    if not two_sided and total < 0:  # guarded by the terms model; kept as a belt
        total = 0
    shared = _set_shared(book, "corridor", total, "settlement.corridors", "sum of the ACO's parts of every band",
                         tuple(f"corridor_{i + 1}_aco" for i in range(len(s.corridors))))
    book.add("payer_keeps", "payer keeps (+) or absorbs (-) outside the ACO's share", "corridor", amount=G - total,
             term="settlement.corridors", depends=("corridor_shared",))
    return shared


def _quality(program, inputs, book, shared, G, q, measured, gate_met, mode) -> tuple[int, int]:
    s = program.settlement
    extra = 0
    note_q = "" if measured else ASSUMED_FULL_CREDIT
    for i, m in enumerate(s.quality_modifiers):
        term = f"settlement.quality_modifiers[{i}]"
        applies = (m.applies_to == "both" or (m.applies_to == "savings" and shared > 0)
                   or (m.applies_to == "losses" and shared < 0))
        if m.method == "multiplier":
            if applies:
                new = apply_rate(shared, q, mode)
                shared = _set_shared(book, "quality_multiplier", new, term,
                                     f"shared x quality score {q}" + (f" ({note_q})" if note_q else ""),
                                     ("quality_score",), step="quality_modifier")
            else:
                _set_shared(book, "quality_multiplier", shared, term, f"applies to {m.applies_to} only: unchanged",
                            step="quality_modifier")
        elif m.method == "gate":
            min_score = m.min_score.value
            met = gate_met if gate_met is not None else (q >= min_score)
            how = ("gate_met from quality_program_scores" if gate_met is not None
                   else f"score {q} against min_score {min_score}" + (f" ({note_q})" if note_q else ""))
            new = shared if (met or not applies) else 0
            shared = _set_shared(book, "quality_gate", new, term,
                                 ("gate met: " if met else "gate not met: ") + how, ("quality_score",),
                                 step="quality_modifier")
        elif m.method == "loss_side":
            if G < 0:
                # a missed quality gate counts the score as 0 (MSSP ENHANCED: 75% when the quality
                # performance standard is not met, 42 CFR 425.610(f); domain.md M6)
                gate = next((g for g in s.quality_modifiers if g.method == "gate"), None)
                missed = gate is not None and not (gate_met if gate_met is not None else q >= gate.min_score.value)
                score = ZERO if missed else q
                raw = ONE - m.max_rate.value * score
                rate = min(max(raw, m.loss_rate_floor.value), m.loss_rate_ceiling.value)
                book.add("quality_loss_rate", "quality-adjusted loss rate: clamp(1 - max_rate x score)",
                         "quality_modifier", rate=rate, term=term,
                         note=("quality gate not met: score counts as 0; " if missed else "")
                              + f"1 - {m.max_rate.value} x {score} = {raw}, kept in [{m.loss_rate_floor.value}, "
                              f"{m.loss_rate_ceiling.value}]" + (f" ({note_q})" if note_q else ""),
                         depends=("quality_score",))
                new = apply_rate(G, rate, mode)
                shared = _set_shared(book, "quality_loss_side", new, term,
                                     "result counted x quality-adjusted loss rate",
                                     ("result_counted", "quality_loss_rate"), step="quality_modifier")
            else:
                _set_shared(book, "quality_loss_side", shared, term, "no losses: unchanged", step="quality_modifier")
        elif m.method == "withhold_return":
            withheld, how = _withheld(program, inputs, m, mode)
            book.add("withheld", "quality withhold", "quality_modifier", amount=withheld, term=how[0], note=how[1])
            back = apply_rate(withheld, q, mode)
            book.add("withhold_returned", "withhold returned: withheld x quality score", "quality_modifier",
                     amount=back, term=term, note=note_q, depends=("withheld", "quality_score"))
            extra += back
    return shared, extra


def _withheld(program, inputs, m, mode) -> tuple[int, tuple[str, str]]:
    if m.withhold is not None:
        rate = _at_end(m.withhold.rate, program)
        T = int(inputs.target_cents)
        return apply_rate(T, rate, mode), ("settlement.quality_modifiers.withhold", f"{rate} x target")
    fpp = program.payments.fpp
    if inputs.withheld_cents is not None:
        return int(inputs.withheld_cents), ("payments.fpp.withhold", "withheld from FPP payments (payments stage)")
    if fpp is not None and inputs.fpp_paid_cents is not None:
        rate = _at_end(fpp.withhold, program)
        # FPP paid is net of the withhold: withheld = paid x rate / (1 - rate)
        gross = Decimal(int(inputs.fpp_paid_cents)) / (ONE - rate) if rate < ONE else ZERO
        withheld = apply_rate(int(gross.to_integral_value(rounding=ROUND_HALF_UP)), rate, mode)  # cents, half up
        return withheld, ("payments.fpp.withhold", f"{rate} of the FPP before withhold (FPP paid / (1 - {rate}))")
    return 0, ("payments.fpp.withhold", "FPP payments not yet computed (no fixed_payment_performance): nothing withheld")


def _cap(program, inputs, book, shared, T, mode) -> int:
    caps = program.settlement.caps
    limits = caps.savings if shared > 0 else caps.losses if shared < 0 else []
    side = "savings" if shared >= 0 else "losses"
    candidates: list[tuple[int, str]] = []
    for i, lim in enumerate(limits):
        term = f"settlement.caps.{side}[{i}]"
        rate = lim.rate.value
        if lim.of == "target":
            amount = apply_rate(T, rate, mode)
            book.add(f"cap_{side}_{i + 1}", f"cap on shared {side}: {rate} x target", "cap", amount=amount, term=term,
                     depends=("target",))
        else:
            if inputs.participant_revenue_cents is None:
                book.add(f"cap_{side}_{i + 1}", f"cap on shared {side}: {rate} x participant revenue", "cap",
                         amount=None, term=term, note="participant revenue not given"
                         + (f" ({inputs.participant_revenue_note})" if inputs.participant_revenue_note else "")
                         + ": this cap is not applied")
                continue
            if not book.result.has("participant_revenue"):
                book.add("participant_revenue", "participant revenue (base of the revenue caps)", "cap",
                         amount=int(inputs.participant_revenue_cents), term="settlement.participant_revenue",
                         note=inputs.participant_revenue_note or "supplied")
            amount = apply_rate(int(inputs.participant_revenue_cents), rate, mode)
            book.add(f"cap_{side}_{i + 1}", f"cap on shared {side}: {rate} x participant revenue", "cap",
                     amount=amount, term=term, depends=("participant_revenue",))
        candidates.append((amount, f"cap_{side}_{i + 1}"))
    if not candidates:
        return _set_shared(book, "cap", shared, "settlement.caps", f"no cap on {side}")
    limit, which = min(candidates)
    if abs(shared) > limit:
        new = limit if shared > 0 else -limit
        return _set_shared(book, "cap", new, "settlement.caps", f"limited by {which}", (which,))
    return _set_shared(book, "cap", shared, "settlement.caps", f"below the smallest cap ({which})", (which,))


def with_overrides(inputs: SettlementInputs, **changes) -> SettlementInputs:
    """A copy of `inputs` with some fields changed (what-if on inputs, forecast ranges)."""
    return replace(inputs, **changes)


__all__ = [
    "SettlementInputs",
    "Settlement",
    "Line",
    "SettlementError",
    "settle_program",
    "with_overrides",
    "ASSUMED_FULL_CREDIT",
]
