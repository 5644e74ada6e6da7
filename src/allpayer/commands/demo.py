"""CLI: ``allpayer demo`` runs the demo cycle on a synthetic population."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from allpayer.commands._console import stage_progress

console = Console()
if not console.is_terminal:
    # Piped or logged output: wide enough that the summary tables keep whole program ids.
    console = Console(width=120)
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command(
        "demo",
        help="Run the demo cycle: generate a synthetic Vermont-like population, check the shipped terms, "
        "validate and load it into an embedded DuckDB file, run the performance year for every program "
        "(core tables, quality and care gaps, payments posted to the ledger), settle the published MSSP "
        "examples and the year with every payer, render every audience's reports, create demo users, "
        "summarize.",
    )
    def demo_cmd(
        out: Path = typer.Option(Path("demo"), "--out", help="Folder for the demo's data, database and outputs."),
        members: int = typer.Option(20_000, "--members", help="Number of people in the synthetic population."),
        seed: int = typer.Option(2024, "--seed", help="Random seed of the synthetic population."),
        year: int = typer.Option(2024, "--year", help="Performance year summarized."),
    ) -> None:
        from allpayer.demo import dollars, run_demo
        from allpayer.reports.base import pmpm_cents

        with stage_progress(err) as progress:
            res = run_demo(out, members=members, seed=seed, year=year, say=console.print, progress=progress)

        load = res.load
        t = Table(title=f"Loaded into {res.db} (run {load.run_id})")
        for col in ("table", "read", "loaded", "quarantined", "claims outside eligibility"):
            t.add_column(col, justify="right" if col != "table" else "left")
        for tl in load.tables:
            t.add_row(tl.table, f"{tl.read:,}", f"{tl.loaded + tl.already_loaded:,}", f"{tl.quarantined:,}",
                      f"{tl.outside_eligibility:,}" if tl.outside_eligibility is not None else "")
        console.print(t)

        p = Table(title=f"{res.year}: member months and allowed cost per member per month (claims paid through {load.paid_through})")
        for col in ("payer type", "member months", "allowed", "PMPM"):
            p.add_column(col, justify="right" if col != "payer type" else "left")
        for r in res.pmpm:
            p.add_row(r["payer_type"], f"{r['member_months']:,}", dollars(r["allowed_cents"]), dollars(r["pmpm_cents"]))
        console.print(p)

        g = Table(title=f"PY{res.year} by program: TCOC (fee-for-service basis) vs expected cost, run {res.run.run_id}")
        for col in ("program", "member months", "attributed", "TCOC PMPM", "target PMPM", "target - TCOC"):
            g.add_column(col, justify="right" if col != "program" else "left")
        for r in res.programs:
            mm = r["member_months"] or 1
            g.add_row(r["program_id"], f"{r['member_months']:,}", f"{r['attributed_member_months']:,}",
                      dollars(pmpm_cents(r["tcoc_cents"], mm)), dollars(pmpm_cents(r["target_cents"], mm)),
                      dollars(r["target_cents"] - r["tcoc_cents"]))
        console.print(g)

        m = res.mssp_summary
        console.print(
            f"MSSP: settled {m['settled']} published ACO results ({m['match_published']} reproduce CMS's figures), "
            f"earned savings ${m['earned']:,.2f}, owed losses ${-m['owed']:,.2f}"
        )
        console.print("\n[bold]Outputs[/]")
        console.print(f"  synthetic data   {res.data}")
        console.print(f"  database         {res.db}   (allpayer export TABLE --db {res.db} --out FILE.csv)")
        console.print(f"  quarantine       allpayer export quarantine --db {res.db} --out quarantine.csv")
        console.print(f"  MSSP settlement  {res.mssp_out}")
        if res.payments is not None:
            console.print(f"  payments ledger  allpayer ledger balance --db {res.db}   "
                          f"({len(res.payments.postings)} batches posted by run {res.payments.run_id})")
        if res.users:
            u = Table(title="Demo users of the dashboard and API (demo passwords: never use them outside a demo)")
            for col in ("user", "role", "organization", "password"):
                u.add_column(col)
            for r in res.users:
                u.add_row(r["username"], r["role"], r["org_id"] or "", r["password"])
            console.print(u)
        console.print("\n[bold]Serve the dashboard and API[/], then open http://127.0.0.1:8000/ and log in as one of "
                      "the users above:")
        console.print(f"  allpayer serve --db {res.db}", soft_wrap=True)
