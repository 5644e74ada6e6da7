"""Roles and tenant isolation: what each principal may read, enforced where data is queried.

Every read of the snapshot goes through `scoped(principal, dataset, snapshot)`, which returns the
dataset's Ibis table already filtered to the principal's organization, or raises `Denied`. The
routes never filter by tenant themselves; they add only the user's own filters (program, year,
month, paging) on top of the scoped table, so a route cannot widen what a role sees.

Roles and their scope (see docs/api.md for the full matrix):

- ``aco_admin``, ``aco_analyst``: everything the ACO holds (claim detail of members who opted out
  of data sharing and Part 2 claims still withheld).
- ``payer``: the rows of its own programs (programs whose terms name it as ``payer``).
- ``employer``: summary data of its own group only, and of it exactly what the employer's report
  shows (`allpayer.reports.employer.disclosure`: cost by category of members who share data,
  invoiced member months hidden where the report hides them); never a member-level dataset.
- ``practice``: its own attributed patients, care gaps and practice-level rates.
- ``hospital``: its own fixed payments, shadow-claim performance and distribution share, and the
  members attributed in its health service area (HSA).
- ``regulator``: aggregates only (program and ACO level).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import ibis
import ibis.expr.types as ir

from allpayer.api.auth import Principal
from allpayer.reports.suppression import THRESHOLD as SMALL_CELL

ACO = ("aco_admin", "aco_analyst")


class Denied(Exception):
    """The principal's role may not read this dataset."""


class NotAvailable(Exception):
    """The snapshot has no such table yet (the stage that writes it has not run)."""


@dataclass
class Context:
    """What scoping needs beyond the principal: the snapshot and the organization maps."""

    con: object  # Ibis DuckDB connection to the published snapshot
    program_payer: dict[str, str] = field(default_factory=dict)
    hospital_hsa: dict[str, str] = field(default_factory=dict)
    snapshot_id: str = ""  # identity of the published file (inode, mtime, size): part of every cache key

    def has(self, table: str) -> bool:
        return table in self.tables

    @property
    def tables(self) -> set[str]:
        if not hasattr(self, "_tables"):
            self._tables = set(self.con.list_tables())
        return self._tables

    def table(self, name: str) -> ir.Table:
        """The snapshot's table `name` (its schema read once per snapshot)."""
        cache = self.__dict__.setdefault("_table_cache", {})
        if name not in cache:
            cache[name] = self.con.table(name)
        return cache[name]

    def programs_of(self, payer: str) -> list[str]:
        return sorted(p for p, who in self.program_payer.items() if who == payer)


Rule = Callable[[ir.Table, Principal, Context], ir.Table]


def _all(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
    return t


def _own_programs(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
    programs = ctx.programs_of(p.org_id or "")
    if not programs:
        return t.filter(ibis.literal(False))
    return t.filter(t.program_id.isin(programs))


def _column_is_org(column: str) -> Rule:
    def rule(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
        return t.filter(t[column] == (p.org_id or ""))

    return rule


def _hospital_hsa(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
    hsa = ctx.hospital_hsa.get(p.org_id or "")
    if hsa is None:
        return t.filter(ibis.literal(False))
    return t.filter(t.hsa == hsa)


def attributed_to(t: ir.Table, practice_id: str, ctx: Context) -> ir.Table:
    """Rows of `t` (program_id, person_id, and performance_year or, failing it, year) of the
    persons attributed to `practice_id` in any month of the row's program and performance year."""
    if not ctx.has("attribution"):
        return t.filter(ibis.literal(False))
    a = ctx.table("attribution")
    a = a.filter(a.attributed & (a.practice_id == practice_id))
    year = "performance_year" if "performance_year" in t.columns else "year"
    keys = ["program_id", year, "person_id"]
    return t.semi_join(a.select("program_id", "person_id", **{year: a.performance_year}).distinct(), keys)


def _attributed_to_practice(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
    """Rows of the persons attributed to the principal's practice (their base-year scores included)."""
    return attributed_to(t, p.org_id or "", ctx)


def _where(**equal) -> Rule:
    def rule(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
        for col, values in equal.items():
            t = t.filter(t[col].isin(values))
        return t

    return rule


def _quality_level(level: str, org: str) -> Rule:
    def rule(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
        want = p.org_id if org == "org" else ctx.hospital_hsa.get(p.org_id or "", "")
        return t.filter((t.level == level) & (t.level_id == want))

    return rule


def _small(count: ir.IntegerValue) -> ir.BooleanValue:
    """A count the reports never show (`allpayer.reports.suppression.is_small`): 1 to 10."""
    return (count > 0) & (count < SMALL_CELL)


def _regulator_quality(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
    """The ACO and program rows of ``quality_rates`` as the regulator's report shows them: a rate
    whose denominator, numerator or their difference is a count from 1 to 10
    (`allpayer.reports.employer.rate_hidden`) has its counts and rate withheld, and the exclusions
    with them (or alone, when they or the eligible members left are such a count). An ACO row is
    withheld with its counts where a program row of the same measure and year is: the ACO's
    counts less the other programs' would give the withheld one."""
    t = t.filter(t.level.isin(["aco", "program"]))
    d, n, e = t.denominator.fill_null(0), t.numerator.fill_null(0), t.exclusions.fill_null(0)
    t = t.mutate(_hidden=(d < SMALL_CELL) | _small(n) | _small(d - n), _hidden_excl=_small(e) | _small(d - e))
    prog = t.filter(t.level == "program")
    held = prog.filter(prog._hidden).select(_m="measure_id", _y="performance_year").distinct()
    t = t.left_join(held, (t.level == "aco") & (t.measure_id == held._m) & (t.performance_year == held._y))
    hidden = t._hidden | t._m.notnull()
    withheld = {c: ibis.ifelse(hidden, ibis.null(t.schema()[c]), t[c]) for c in ("denominator", "numerator", "rate")}
    withheld["exclusions"] = ibis.ifelse(hidden | t._hidden_excl, ibis.null(t.schema()["exclusions"]), t.exclusions)
    return t.mutate(**withheld).drop("_hidden", "_hidden_excl", "_m", "_y")


def _tcoc_level(level: str, org: str) -> Rule:
    """``tcoc_summary`` rows of one level: the program totals (``level`` 'program'; in a table
    without the column, `program_totals`), never the remainder of the members with no HSA,
    practice or employer, which has no hsa, practice_id nor employer_id either; an HSA, practice or
    employer row has that column set."""

    def rule(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
        if level == "program":
            return t.filter(t.level == "program") if "level" in t.columns else program_totals(t)
        want = p.org_id if org == "org" else ctx.hospital_hsa.get(p.org_id or "", "")
        return t.filter(t[level] == want)

    return rule


def employer_disclosure(ctx: Context, org: str, year: int):
    """The employer report's decisions for `org` and performance year `year`
    (`allpayer.reports.employer.disclosure`), or None when the employer has no member months that
    year. Made once per snapshot: every employer-visible figure of the API and the dashboard is
    read through it, so that they show what the report shows and hide what it hides."""
    from allpayer.reports.base import ReportError
    from allpayer.reports.employer import disclosure

    cache = ctx.__dict__.setdefault("_employer_disclosure", {})
    if (org, year) not in cache:
        try:
            cache[(org, year)] = disclosure(ctx.con, org, int(year))
        except ReportError:
            cache[(org, year)] = None
    return cache[(org, year)]


def _distinct(ctx: Context, t: ir.Table, column: str) -> list:
    return sorted(v for v in ctx.con.to_pyarrow(t.select(column).distinct()).column(column).to_pylist() if v is not None)


# The figures of an employer's ``tcoc_summary`` row that its report shows (the employer's member
# months and FFS cost, and that cost by category of the members who share data); every other
# amount (allowed, paid, claim lines, ...) is withheld: categories of those include members who
# opted out, and their total less the report's categories would itemize the opted-out cost.
EMPLOYER_TCOC_SHOWN = ("member_months", "ffs_paid_cents", "ffs_paid_pmpm", "ffs_paid_pmpy")
OPT_OUT_COST = "opt_out_ffs_paid_cents"


def employer_tcoc_figures(d) -> dict:
    """Column -> value of an employer's ``tcoc_summary`` row as its report shows it (`d`: its
    `employer_disclosure`); a column left out is withheld (NULL). Nothing is shown when the report
    hides the member months, or when the employer's members were in several programs that year
    (the report shows the employer's figures, never their split by program). The category columns
    are those of members who share data, and the opted-out members' cost is one total
    (``opt_out_ffs_paid_cents``), hidden with the smallest category when fewer than 11 opted out."""
    if d is None or not d.show_totals or len(d.programs) != 1:
        return {}
    out: dict = {"member_months": d.member_months, "ffs_paid_cents": d.cost_cents}
    out.update({f"{c}_ffs_paid_cents": v for c, v in d.categories.items() if c not in d.hidden_categories})
    if not d.opt_out_hidden:
        out[OPT_OUT_COST] = d.opt_out_cost
    return out


def _employer_tcoc(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
    """The employer's ``tcoc_summary`` rows with the figures of its report (`employer_tcoc_figures`)
    and every other amount NULL: the table's raw category columns include members who opted out of
    data sharing, and less the report's categories they would give each opted-out category cost."""
    org = p.org_id or ""
    t = t.filter(t.employer_id == org)
    amounts = [c for c, typ in t.schema().items() if typ.is_numeric() and c != "year"]

    def with_figures(part: ir.Table, figures: dict) -> ir.Table:
        cols = {c: (ibis.literal(figures[c], part.schema()[c]) if c in figures else
                    part[c] if c in EMPLOYER_TCOC_SHOWN and "member_months" in figures else
                    ibis.null(part.schema()[c])) for c in amounts}
        cols[OPT_OUT_COST] = ibis.literal(figures.get(OPT_OUT_COST), "int64")
        return part.mutate(**cols)

    years = _distinct(ctx, t, "year")
    parts = [with_figures(t.filter(t.year == y), employer_tcoc_figures(employer_disclosure(ctx, org, y))) for y in years]
    return ibis.union(*parts, distinct=False) if parts else with_figures(t.filter(ibis.literal(False)), {})


def employer_invoice_months_shown(ctx: Context, org: str, t: ir.Table) -> set:
    """The months of `t` (the employer's ``value_payment_invoices`` rows) whose invoiced member
    months and amounts the employer's report shows for the month's performance year, and in which
    one program invoiced the employer (the report shows a month's sum over programs, never its
    split)."""
    per = ctx.con.to_pyarrow(t.group_by(["performance_year", "month"]).aggregate(programs=t.program_id.nunique())
                             ).to_pylist()
    shown = set()
    for r in per:
        d = employer_disclosure(ctx, org, r["performance_year"])
        if d is not None and r["programs"] == 1 and d.invoice_shown(r["month"]):
            shown.add(r["month"])
    return shown


def employer_ledger_months_shown(ctx: Context, org: str) -> set[str]:
    """The months (``YYYY-MM``) whose balance of the ``employer:<org>`` ledger account the employer
    may read: those whose invoice its report shows (`employer_invoice_months_shown`). A month's
    balance is its invoiced amount, which over the month's PMPM gives the invoiced member months."""
    if not ctx.has("value_payment_invoices"):
        return set()
    t = ctx.table("value_payment_invoices")
    return {m.strftime("%Y-%m") for m in employer_invoice_months_shown(ctx, org, t.filter(t.employer_id == org))}


def _employer_invoices(t: ir.Table, p: Principal, ctx: Context) -> ir.Table:
    """The employer's invoice rows, member months, amount and working (which quotes the member
    months) NULL and ``suppressed`` true in the months its report hides
    (`employer_invoice_months_shown`)."""
    t = t.filter(t.employer_id == (p.org_id or ""))
    months = sorted(employer_invoice_months_shown(ctx, p.org_id or "", t))
    shown = t.month.isin(months) if months else ibis.literal(False)
    hide = {c: ibis.ifelse(shown, t[c], ibis.null(t.schema()[c])) for c in ("member_months", "amount_cents", "working")}
    return t.mutate(**hide, suppressed=~shown)


def program_totals(t: ir.Table) -> ir.Table:
    """The program-total rows of ``tcoc_summary``.

    The table stacks program, HSA, practice and employer aggregates without a level column; a row
    with no hsa, practice_id nor employer_id is either the program total or the HSA/practice
    remainder of members with none. The program total counts every member, so it is the one with
    the most member months (ties are identical rows)."""
    t = t.filter(t.hsa.isnull() & t.practice_id.isnull() & t.employer_id.isnull())
    w = ibis.window(group_by=[t.program_id, t.year], order_by=[ibis.desc(t.member_months), ibis.desc(t.ffs_paid_cents),
                                                                 ibis.desc(t.allowed_cents)])
    return t.mutate(_rank=ibis.row_number().over(w)).filter(lambda x: x._rank == 0).drop("_rank")


@dataclass(frozen=True)
class Dataset:
    """One readable dataset: its snapshot table, sort keys, whether rows are about members, and
    the rule each allowed role's rows pass through (a role not listed is denied)."""

    name: str
    table: str
    keys: tuple[str, ...]
    member_level: bool
    rules: dict[str, Rule]
    filters: tuple[str, ...] = ("program_id", "performance_year")


def _aco(**more: Rule) -> dict[str, Rule]:
    return {"aco_admin": _all, "aco_analyst": _all, **more}


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset("rosters", "attribution", ("program_id", "month", "member_id"), True,
                _aco(payer=_own_programs, practice=_column_is_org("practice_id"), hospital=_hospital_hsa),
                ("program_id", "performance_year", "month", "practice_id", "attributed")),
        Dataset("care_gaps", "care_gaps", ("program_id", "practice_id", "person_id", "gap_id"), True,
                _aco(payer=_own_programs, practice=_column_is_org("practice_id")),
                ("program_id", "practice_id", "measure_id")),
        Dataset("risk_scores", "risk_scores",
                ("program_id", "performance_year", "scored_for", "payment_year", "person_id"), True,
                _aco(payer=_own_programs, practice=_attributed_to_practice),
                ("program_id", "performance_year", "scored_for", "person_id")),
        Dataset("risk_factors", "risk_score_factors",
                ("program_id", "performance_year", "scored_for", "payment_year", "person_id", "model_version",
                 "factor_type", "factor"), True,
                _aco(payer=_own_programs, practice=_attributed_to_practice),
                ("program_id", "performance_year", "scored_for", "person_id", "model_version")),
        Dataset("high_cost_claimants", "high_cost_claimants", ("program_id", "year", "rank", "member_id"), True,
                _aco(payer=_own_programs, practice=_attributed_to_practice),
                ("program_id", "performance_year")),
        Dataset("claims", "medical_claim", ("claim_id", "claim_line_number", "adjustment_sequence"), True,
                _aco(payer=_column_is_org("payer")), ("payer", "claim_type")),
        Dataset("tcoc", "tcoc_summary", ("program_id", "year", "hsa", "practice_id", "employer_id"), False,
                _aco(payer=_own_programs, practice=_tcoc_level("practice_id", "org"), hospital=_tcoc_level("hsa", "hsa"),
                     employer=_employer_tcoc, regulator=_tcoc_level("program", ""))),
        Dataset("targets", "targets", ("program_id", "cell_id", "month"), False,
                _aco(payer=_own_programs, regulator=_all)),
        Dataset("quality_rates", "quality_rates", ("program_id", "measure_id", "level", "level_id", "performance_year"), False,
                _aco(payer=_own_programs, practice=_quality_level("practice", "org"),
                     hospital=_quality_level("hsa", "hsa"), regulator=_regulator_quality),
                ("program_id", "performance_year", "measure_id", "level")),
        Dataset("quality_scores", "quality_program_scores", ("program_id", "performance_year"), False,
                _aco(payer=_own_programs, regulator=_all)),
        Dataset("fpp_payments", "fpp_hospital_payments", ("program_id", "month", "hospital_id"), False,
                _aco(payer=_own_programs, hospital=_column_is_org("hospital_id")),
                ("program_id", "month", "hospital_id")),
        Dataset("fixed_payment_performance", "fixed_payment_performance", ("program_id", "hospital_id", "performance_year"), False,
                _aco(payer=_own_programs, hospital=_column_is_org("hospital_id"), regulator=_where(hospital_id=["ALL"])),
                ("program_id", "performance_year", "hospital_id")),
        Dataset("invoices", "value_payment_invoices", ("employer_id", "program_id", "month"), False,
                _aco(payer=_own_programs, employer=_employer_invoices),
                ("program_id", "employer_id", "month")),
        Dataset("settlements", "settlement_statements", ("program_id", "performance_year", "version"), False,
                _aco(payer=_own_programs, regulator=_all), ("program_id", "performance_year", "version")),
        Dataset("settlement_lines", "settlement_lines", ("program_id", "performance_year", "version", "line_no"), False,
                _aco(payer=_own_programs, regulator=_all), ("program_id", "performance_year", "version")),
        Dataset("distribution", "distribution", ("program_id", "performance_year", "version", "participant_id"), False,
                _aco(payer=_own_programs, hospital=_column_is_org("participant_id")),
                ("program_id", "performance_year", "version", "participant_id")),
    ]
}


def allowed(role: str, dataset: str) -> bool:
    return role in DATASETS[dataset].rules


def scoped(principal: Principal, dataset: str, ctx: Context) -> ir.Table:
    """The rows of `dataset` that `principal` may read, as an Ibis table.

    Raises `Denied` when the role may not read the dataset at all, `NotAvailable` when the snapshot
    does not hold its table. Claim detail never includes members who opted out of data sharing nor
    Part 2 claims, and risk factors and high-cost claimants never a person who opted out or has a
    Part 2 claim, whatever the role (`allpayer.inputs.privacy`).
    """
    d = DATASETS[dataset]
    rule = d.rules.get(principal.role)
    if rule is None:
        raise Denied(dataset)
    if principal.role not in ACO and principal.role != "regulator" and not principal.org_id:
        raise Denied(dataset)
    if not ctx.has(d.table):
        raise NotAvailable(d.table)
    from allpayer.inputs import privacy

    t = ctx.table(d.table)
    if d.table == "medical_claim":
        t = privacy.releasable(t, ctx.table("eligibility"), t)
    elif privacy.is_clinical_detail(d.table, t.columns):
        t = privacy.person_releasable(t, ctx.table("eligibility"), ctx.table("medical_claim"))
    return rule(t, principal, ctx)


# Ledger accounts each role may see (the ledger lives in the store, not the snapshot).
def ledger_account_filter(principal: Principal) -> str | None:
    """The one account an organization role sees; None for ACO roles (all accounts).
    Raises `Denied` for roles that see no ledger."""
    if principal.role in ACO:
        return None
    if principal.role in ("payer", "employer", "practice", "hospital") and principal.org_id:
        return f"{principal.role}:{principal.org_id}"
    raise Denied("ledger_balances")


def may_see_org_page(principal: Principal, kind: str, org_id: str) -> bool:
    """Whether a dashboard page of organization `org_id` of `kind` (practice, hospital, employer,
    payer) is open to the principal."""
    if principal.role in ACO:
        return True
    return principal.role == kind and principal.org_id == org_id
