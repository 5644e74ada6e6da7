"""The demo cycle: generate a synthetic Vermont-like population, check the shipped terms,
validate and load the data, run the performance year (core tables, quality, payments), settle the
published MSSP examples and the year with every payer, render the reports, and summarize.

Each step calls the same library functions as the CLI commands. Generated data are reused when
the folder already holds a population made with the same arguments; the database is rebuilt from
it on every demo run, so the summary is always that of one clean load.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ibis

from allpayer.core.claims import medical_claim_lines, pharmacy_claim_lines
from allpayer.core.member_months import eligibility_months
from allpayer.money import cents_to_dollars
from allpayer.reports.base import pmpm_cents

REPO_ROOT = Path(__file__).resolve().parents[2]
MSSP_EXAMPLES = REPO_ROOT / "examples" / "mssp" / "cms_examples.csv"

Say = Callable[[str], None]


@dataclass
class DemoResult:
    out: Path
    data: Path
    db: Path
    members: int
    seed: int
    year: int
    reused_data: bool
    terms_files: int
    load: object
    pmpm: list[dict] = field(default_factory=list)
    run: object = None
    settlement: list[dict] = field(default_factory=list)
    programs: list[dict] = field(default_factory=list)
    quality: object = None
    care_gaps_out: Path | None = None
    mssp_out: Path | None = None
    mssp_summary: dict = field(default_factory=dict)
    payments: object = None
    reports: Path | None = None
    users: list[dict] = field(default_factory=list)


def _same_population(data: Path, members: int, seed: int) -> bool:
    """Whether `data` holds the population this version would generate: the same size and seed,
    no injected errors, and the same generator version (a newer generator gives other data for
    the same seed, e.g. the long-term institutional flag)."""
    from allpayer.synth import GENERATOR_VERSION

    manifest = data / "manifest.json"
    if not manifest.exists():
        return False
    try:
        m = json.loads(manifest.read_text())
    except ValueError:
        return False
    return (m.get("members") == members and m.get("seed") == seed and not m.get("injected_errors")
            and m.get("generator_version") == GENERATOR_VERSION)


def pmpm_by_payer_type(db: Path, year: int, paid_through: dt.date | None) -> list[dict]:
    """Member months and allowed PMPM (medical + pharmacy, shadow claims priced) by payer type."""
    from allpayer.runs import open_snapshot

    con = open_snapshot(db)
    try:
        start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
        mm = eligibility_months(con.table("eligibility"), start, end)
        months = mm.group_by("payer_type").aggregate(member_months=mm.count())
        med = medical_claim_lines(con.table("medical_claim"), paid_through)
        parts = [med.select("member_id", "payer", "plan", "service_month", "allowed_cents")]
        if "pharmacy_claim" in con.list_tables():
            rx = pharmacy_claim_lines(con.table("pharmacy_claim"), paid_through)
            parts.append(rx.select("member_id", "payer", "plan", "service_month", "allowed_cents"))
        lines = ibis.union(*parts, distinct=False)
        # Cost counts where the member was enrolled in that payer and plan in the service month.
        j = lines.join(
            mm.select("member_id", "payer", "plan", "month", "payer_type"),
            [lines.member_id == mm.member_id, lines.payer == mm.payer, lines.plan == mm.plan,
             lines.service_month == mm.month],
        )
        cost = j.group_by("payer_type").aggregate(allowed_cents=j.allowed_cents.sum())
        out = months.left_join(cost, "payer_type").select("payer_type", "member_months", "allowed_cents")
        rows = con.to_pyarrow(out.order_by("payer_type")).to_pylist()
    finally:
        con.disconnect()
    for r in rows:
        r["allowed_cents"] = int(r["allowed_cents"] or 0)
        r["pmpm_cents"] = pmpm_cents(r["allowed_cents"], r["member_months"]) or 0
    return rows


def program_summary(db: Path, year: int) -> list[dict]:
    """Per program: member months, attributed member months, FFS-basis TCOC and target, PMPMs."""
    from allpayer.runs import open_snapshot

    con = open_snapshot(db)
    try:
        mm = con.table("tcoc_member_month").filter(lambda t: t.performance_year == year)
        cost = mm.group_by("program_id").aggregate(member_months=mm.count(), tcoc_cents=mm.ffs_paid_cents.sum())
        att = con.table("attribution").filter(lambda t: (t.performance_year == year) & t.attributed & t.eligible)
        att = att.group_by("program_id").aggregate(attributed_member_months=att.count())
        tg = con.table("targets").filter(lambda t: t.performance_year == year)
        tg = tg.group_by("program_id").aggregate(target_cents=tg.target_cents.sum())
        out = cost.left_join(att, "program_id").select(cost, "attributed_member_months")
        out = out.left_join(tg, "program_id").select(out, "target_cents")
        rows = con.to_pyarrow(out.order_by("program_id")).to_pylist()
    finally:
        con.disconnect()
    for r in rows:
        r["attributed_member_months"] = int(r["attributed_member_months"] or 0)
        r["target_cents"] = int(r["target_cents"] or 0)
        r["tcoc_cents"] = int(r["tcoc_cents"] or 0)
    return rows


def run_demo(
    out: Path,
    members: int = 20_000,
    seed: int = 2024,
    year: int = 2024,
    say: Say = print,
    progress=None,
) -> DemoResult:
    """Run the demo cycle into `out` and return what it did."""
    from allpayer.inputs.load import load_folder
    from allpayer.settlement.mssp_csv import settle_file, totals, write_results
    from allpayer.settlement.mssp_terms import load_mssp_rules
    from allpayer.synth import generate
    from allpayer.terms import check_files, programs_dir

    out = Path(out)
    data = out / "data"
    db = out / "allpayer.duckdb"
    out.mkdir(parents=True, exist_ok=True)

    reused = _same_population(data, members, seed)
    if reused:
        say(f"1/5 reusing the synthetic population in {data} ({members:,} members, seed {seed})")
    else:
        say(f"1/5 generating a synthetic Vermont-like population: {members:,} members, seed {seed} -> {data}")
        if data.exists():
            shutil.rmtree(data)
        gen_progress = (lambda done, total: progress("generating people", done, total)) if progress else None
        generate(members=members, seed=seed, out=data, progress=gen_progress)

    terms_dir = programs_dir() / "vermont"
    results = check_files([terms_dir])
    bad = [r for r in results if not r.ok]
    if bad:
        from allpayer.errors import AllpayerError

        raise AllpayerError(f"shipped terms failed to load: {bad[0].error}")
    say(f"2/5 checked {len(results)} contract-terms files in {terms_dir}")

    say(f"3/5 validating and loading {data} -> {db}")
    for stale in out.glob("allpayer.duckdb*"):
        if stale.is_dir():  # the reports rendered from the last database
            shutil.rmtree(stale)
        else:
            stale.unlink()
    load = load_folder(data, db, progress=progress)

    res = DemoResult(out=out, data=data, db=db, members=members, seed=seed, year=year, reused_data=reused,
                     terms_files=len(results), load=load)
    res.pmpm = pmpm_by_payer_type(db, year, load.paid_through)

    from allpayer.pipeline import run_year
    from allpayer.reports.publish import no_rendering_on_publish

    say(f"4/5 running PY{year} for every program: member months, attribution, risk, TCOC, targets; quality; payments")
    # The core, quality and payments runs are followed within minutes by the settlement's run: only
    # that last publish renders the reports (see `reports_stage`).
    with no_rendering_on_publish():
        res.run = run_year(db, year, progress=progress)
    res.programs = program_summary(db, year)

    from allpayer.quality.care_gaps import export_csv
    from allpayer.quality.run import quality_year

    res.care_gaps_out = out / "care_gaps.csv"
    say(f"    quality measures, scores and care gaps for PY{year} -> {res.care_gaps_out}")
    with no_rendering_on_publish():
        res.quality = quality_year(db, year, progress=progress)
    export_csv(db, year, res.care_gaps_out)

    from allpayer.payments.common import parse_period
    from allpayer.payments.run import run_payments

    say(f"    paying PY{year}: fixed payments, CPR, PHM and Value Payment invoices, posted to the ledger")
    with no_rendering_on_publish():
        res.payments = run_payments(db, parse_period(year=year), paid_through=load.paid_through)

    mssp_out = out / "mssp_results.csv"
    say(f"5/5 settling the published MSSP examples {MSSP_EXAMPLES.name} -> {mssp_out}, then PY{year} with every payer")
    settled = settle_file(MSSP_EXAMPLES, load_mssp_rules())
    write_results(mssp_out, settled)
    earned, owed = totals(settled.settled)
    within = sum(
        1
        for r in settled.settled
        if _matches_published(r.settlement.earned_savings_losses, r.extras, r.settlement.aco.benchmark_total,
                              r.settlement.aco.performance_year)
    )
    res.mssp_summary = {
        "settled": len(settled.settled),
        "rejected": len(settled.rejected),
        "earned": earned,
        "owed": owed,
        "match_published": within,
    }
    res.mssp_out = mssp_out
    res.settlement = settle_stage(db, year, say)
    res.reports = reports_stage(db, year, say)

    from allpayer.api.demo_users import create_demo_users

    res.users = create_demo_users(db)
    say(f"    created {len(res.users)} demo users of the web dashboard and API (one per role)")
    return res


def reports_stage(db: Path, year: int, say: Say) -> Path:
    """Every audience's reports of the published run (HTML and CSV; PDF per report with
    `allpayer report KIND --format pdf`): rendered when the run was published, or here when that
    was switched off (ALLPAYER_RENDER_REPORTS=0)."""
    from allpayer.reports.base import latest_run_id
    from allpayer.reports.publish import render_all, reports_dir
    from allpayer.runs import open_snapshot

    con = open_snapshot(db)
    try:
        folder = reports_dir(db) / latest_run_id(con)
    finally:
        con.disconnect()
    if not (folder / "index.json").is_file():
        folder = render_all(db, year, ["html", "csv"])
    say(f"    reports for employers, practices, hospitals, payers and the regulator -> {folder / 'index.html'}")
    return folder


def settle_stage(db: Path, year: int, say: Say) -> list[dict]:
    """Settle every program of the year (initial version), distribute and post; say the nets."""
    from allpayer.settlement.run import settle_year

    say(f"    settling PY{year} with every payer: named lines, distribution to hospitals, ledger postings")
    out = settle_year(db, year, "initial")
    rows = []
    for pr in out.result.programs:
        s = pr.settlement
        rows.append({"program_id": s.program_id, "net_cents": s.net_cents, "combined_cents": s.combined_cents})
        advance = s.amount("advance_payments") if s.has("advance_payments") else None
        # an advance is a fixed amount of the contract (Medicare's is sized for Vermont's whole ACO,
        # not for the demo's population), so say it where it turns savings into a net owed
        paid = (f", shared {dollars(s.shared_cents)} less {dollars(-advance)} advanced in the year "
                f"(payments.advance_payments)") if advance else ""
        say(f"    {s.program_id}: gross {dollars(s.gross_cents)}{paid}, net settlement {dollars(s.net_cents)}")
    return rows


def _matches_published(earned, extras: dict, benchmark, year: int) -> bool:
    """Whether an earned amount reproduces CMS's published figure (where the row carries one):
    within $2 for PY2021+ (published rounded to the dollar), within 0.001% of the benchmark before."""
    from decimal import Decimal

    published = extras.get("expected_earned_savings_losses")
    if not published:
        return False
    tolerance = Decimal(2) if year >= 2021 else Decimal(benchmark) * Decimal("0.00001")
    return abs(Decimal(earned) - Decimal(published)) <= tolerance


def dollars(cents: int) -> str:
    """Cents as dollars for display, e.g. -$1,234.50."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${cents_to_dollars(abs(cents)):,.2f}"
