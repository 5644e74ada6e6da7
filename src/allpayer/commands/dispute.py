"""CLI: ``allpayer dispute`` records a practice's disputed attribution in the transactional store."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("dispute", help="Flag a disputed attribution (a practice believes a member month is attributed "
                                 "wrongly); recorded in the store's attribution_disputes table for review.")
    def dispute_cmd(
        db: Path = typer.Option(..., "--db", help="The DuckDB database whose store receives the dispute."),
        program: str = typer.Option(..., "--program", help="Program id, e.g. vt-2024-medicaid."),
        member: str = typer.Option(..., "--member", help="The member id as shown on the practice report."),
        month: str = typer.Option(..., "--month", metavar="YYYY-MM", help="The attributed month disputed."),
        practice: str = typer.Option(..., "--practice", help="The practice raising the dispute."),
        reason: str = typer.Option(..., "--reason", help="Why the attribution is wrong."),
        by: str = typer.Option(None, "--by", help="Who flags it (a name or user id)."),
        store: str = typer.Option(None, "--store", metavar="URL", help="Store URL (default sqlite beside the database)."),
    ) -> None:
        from allpayer.reports import disputes
        from allpayer.store import default_store_url, open_store

        s = open_store(store or default_store_url(db))
        try:
            print(disputes.flag(s, program, member, month, practice, reason, flagged_by=by))
        finally:
            s.close()
