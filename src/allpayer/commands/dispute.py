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

        _check_in_snapshot(db, program, member, month, practice)
        s = open_store(store or default_store_url(db))
        try:
            print(disputes.flag(s, program, member, month, practice, reason, flagged_by=by))
        finally:
            s.close()


def _check_in_snapshot(db: Path, program: str, member: str, month: str, practice: str) -> None:
    """Refuse a dispute about a member month the published snapshot does not have (the member was
    not in the program that month, or the program or practice id is misspelt): a reviewer could do
    nothing with it. Checked only as far as the snapshot can tell (before a run, nothing is)."""
    from allpayer import runs
    from allpayer.api.orgs import check_org
    from allpayer.errors import AllpayerError
    from allpayer.reports.disputes import parse_month

    first = parse_month(month)
    if not db.exists():
        raise AllpayerError(f"{db}: database not found")
    con = runs.open_snapshot(db)
    try:
        check_org(db, "practice", practice, "--practice", con)
        if "member_months" not in con.list_tables():
            return
        raw = con.con
        if not raw.execute("SELECT 1 FROM member_months WHERE program_id = ? LIMIT 1", [program]).fetchall():
            known = [r[0] for r in raw.execute("SELECT DISTINCT program_id FROM member_months ORDER BY 1").fetchall()]
            raise AllpayerError(f"--program {program}: no such program in {db} (known: {', '.join(known)})")
        if not raw.execute("SELECT 1 FROM member_months WHERE program_id = ? AND member_id = ? AND month = ? LIMIT 1",
                           [program, member, first]).fetchall():
            raise AllpayerError(f"--member {member}: not a member of {program} in {month} (no member month in {db})")
    finally:
        con.disconnect()
