"""CLI: ``allpayer settle`` settles every payer program of a performance year.

- ``allpayer settle --db FILE --year YYYY [--version forecast|initial|final|restated]`` computes,
  publishes (``settlement_lines``, ``settlement_statements``, ``distribution``,
  ``employer_statements``) and posts to the ledger; ``--html DIR``/``--csv DIR`` write statements.
- ``--what-if`` with ``--set KEY=VALUE`` or ``--terms-file FILE``: re-settles on the published
  snapshot without writing anything and prints the difference line by line.
- ``--payer-report FILE.csv --program ID``: compares the published version with a payer's report.
- ``--diff-against VERSION|RUN_ID``: the published version against another version or run, with
  the cause of each variance.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from allpayer.commands._backend import (backend_option, check_backend, reports_on_publish, reports_option, snapshot_db,
                                        spark_master_option, spark_remote_option)
from allpayer.errors import AllpayerError
from allpayer.money import cents_to_dollars, exact_cents

out = Console(highlight=False, soft_wrap=True)
if not out.is_terminal:  # piped: wide enough for whole program ids and amounts
    out = Console(highlight=False, soft_wrap=True, width=160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _usd(cents) -> str:
    return "" if cents is None else f"{cents_to_dollars(int(cents)):,.2f}"


def _summary_table(result, title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for c in ("program", "target", "actual", "gross", "shared", "net", "fixed payment perf.", "combined"):
        t.add_column(c, justify="left" if c == "program" else "right")
    for pr in result.programs:
        s = pr.settlement
        t.add_row(s.program_id, _usd(s.target_cents), _usd(s.actual_cents), _usd(s.gross_cents), _usd(s.shared_cents),
                  _usd(s.net_cents), _usd(s.fixed_payment_performance_cents), _usd(s.combined_cents))
    return t


def _diff_table(program_id: str, rows: list[dict], title: str) -> Table:
    t = Table(title=f"{program_id}: {title}", title_justify="left")
    for c in ("line", "before", "after", "difference", "cause"):
        t.add_column(c, justify="right" if c in ("before", "after", "difference") else "left")
    for r in rows:
        if r["status"] == "same":
            continue

        def show(v):
            if v is None:
                return ""
            return _usd(v) if isinstance(v, int) else str(v)

        t.add_row(r["line_id"], show(r["before"]), show(r["after"]),
                  _usd(r["difference_cents"]) if r["difference_cents"] is not None else "", r["cause"])
    return t


def register(app: typer.Typer) -> None:
    @app.command(
        "settle",
        help="Settle every payer program of a performance year (terms-driven steps, named lines), distribute to "
        "risk-bearing participants, publish the tables and post to the ledger; or run a what-if, compare with a "
        "payer's report, or diff two versions.",
    )
    def settle_cmd(
        db: Path = typer.Option(..., "--db", help="The DuckDB database with the year's core run (`allpayer run`), "
                                "or a warehouse folder with --backend spark."),
        year: int = typer.Option(..., "--year", help="Performance year (required: never defaults to today)."),
        version: str = typer.Option("initial", "--version",
                                    help="Settlement version: forecast, initial, final or restated."),
        terms: list[Path] = typer.Option(None, "--terms",
                                         help="Contract-terms files or folders (default: the shipped Vermont programs)."),
        html: Path = typer.Option(None, "--html", metavar="DIR", help="Write HTML statements into this folder."),
        csv_dir: Path = typer.Option(None, "--csv", metavar="DIR", help="Write CSV statements into this folder."),
        no_post: bool = typer.Option(False, "--no-post", help="Publish the tables but post nothing to the ledger."),
        store: str = typer.Option(None, "--store", metavar="URL",
                                  help="Ledger store URL (default: sqlite:///<db>.store.sqlite)."),
        what_if: bool = typer.Option(False, "--what-if",
                                     help="Re-settle with changed terms on the published snapshot; write nothing."),
        sets: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                       help="What-if: change a terms key, e.g. settlement.savings_rate=0.6 (repeatable)."),
        terms_file: Path = typer.Option(None, "--terms-file", help="What-if: another terms file for the same program id."),
        program: str = typer.Option(None, "--program", help="Limit --set, --payer-report or a diff to one program id "
                                    "(a settlement settles every program of the year)."),
        payer_report: Path = typer.Option(None, "--payer-report", metavar="CSV",
                                          help="Compare the published version with a payer's report (line_id,amount)."),
        benchmark_report: list[str] = typer.Option(
            None, "--benchmark-report", metavar="PROGRAM_ID=CSV",
            help="Settle this Medicare program through the MSSP calculator with CMS's benchmark report (repeatable)."),
        participant_revenue: list[str] = typer.Option(
            None, "--participant-revenue", metavar="PROGRAM_ID=DOLLARS",
            help="The participants' revenue for a program's revenue caps, e.g. vt-2024-medicare=30000000.00 "
                 "(repeatable; overrides the terms' figure and the one computed from the claims)."),
        diff_against: str = typer.Option(None, "--diff-against", metavar="VERSION|RUN_ID",
                                         help="Diff the published version against another version or a settle run id."),
        backend: str = backend_option(),
        spark_master: str = spark_master_option(),
        spark_remote: str = spark_remote_option(),
        render_reports: bool | None = reports_option(),
    ) -> None:
        from allpayer.settlement.versions import check_version

        check_version(version)
        on = dict(backend=check_backend(backend, spark_remote), spark_master=spark_master, spark_remote=spark_remote)
        # what the settlement reads besides the snapshot and the terms: a what-if settles with them too
        supplied = dict(benchmark_reports=_benchmark_reports(benchmark_report) or None,
                        participant_revenue=_participant_revenue(participant_revenue) or None)
        if what_if:
            _what_if(db, year, version, terms, sets or [], terms_file, program, {**on, **supplied})
            return
        if sets or terms_file:
            raise AllpayerError("--set and --terms-file need --what-if (published results are never changed by them)")
        if program and payer_report is None and diff_against is None:
            raise AllpayerError(f"--program {program}: a settlement settles and posts every program of the year; "
                                "--program limits --what-if, --payer-report or --diff-against to one program")
        if payer_report is not None or diff_against is not None:
            # they read published lines only: on a warehouse, through views of its Parquet tables
            with snapshot_db(db, backend, spark_remote, write=False) as published:
                if payer_report is not None:
                    _payer_report(published, db, year, version, program, payer_report)
                else:
                    _diff(published, db, year, version, program, diff_against)
            return
        from allpayer.settlement.run import settle_year
        from allpayer.settlement.statement import write_statements

        with reports_on_publish(render_reports):
            res = settle_year(db, year, version, terms=terms or None, post=not no_post, store_url=store,
                              **supplied, **on)
        out.print(_summary_table(res.result, f"Settlement PY{year} ({version}), run {res.run_id}, claims paid through "
                                             f"{res.result.paid_through}, core run {res.result.core_run_id}"))
        for pr in res.result.programs:
            d = pr.distribution
            if d is not None:
                at = sum(1 for a in d.allocations if a.at_limit)
                out.print(f"{pr.settlement.program_id}: distributed {_usd(d.distributed_cents)} to "
                          f"{len(d.allocations)} participants ({at} at their limit), reserve {_usd(d.reserve_cents)}")
            for n in pr.notes:
                out.print(f"  note: {n}")
        for line in res.postings:
            out.print(f"ledger: {line}")
        for folder, as_html in ((html, True), (csv_dir, False)):
            if folder is not None:
                files = write_statements(res.result, folder, html=as_html, csv_files=not as_html, run_id=res.run_id)
                out.print(f"wrote {len(files)} {'HTML' if as_html else 'CSV'} statements to {folder}")
        out.print(f"published {db}: settlement_lines, settlement_statements, distribution, employer_statements "
                  f"(export with `allpayer export TABLE --db {db} --out FILE.csv`)")


def _benchmark_reports(items: list[str] | None) -> dict[str, Path]:
    """``--benchmark-report PROGRAM_ID=FILE.csv`` options: program id -> report file."""
    reports = {}
    for item in items or []:
        if "=" not in item:
            raise AllpayerError(f"--benchmark-report {item!r}: expected PROGRAM_ID=FILE.csv")
        pid, path = item.split("=", 1)
        reports[pid.strip()] = Path(path.strip())
    return reports


def _participant_revenue(items: list[str] | None) -> dict[str, int]:
    """``--participant-revenue PROGRAM_ID=DOLLARS`` options: program id -> cents."""
    revenue = {}
    for item in items or []:
        pid, sep, amount = item.partition("=")
        if not sep:
            raise AllpayerError(f"--participant-revenue {item!r}: expected PROGRAM_ID=DOLLARS")
        try:
            revenue[pid.strip()] = exact_cents(amount.strip())
        except ValueError as exc:
            raise AllpayerError(f"--participant-revenue {item!r}: {exc}") from None
    return revenue


def _what_if(db, year, version, terms, sets, terms_file, program, on: dict) -> None:
    from allpayer.settlement.run import load_terms
    from allpayer.settlement.whatif import replace_programs, what_if

    if not sets and terms_file is None:
        raise AllpayerError("--what-if needs --set KEY=VALUE or --terms-file FILE")
    programs, _ = load_terms(terms)
    programs = [p for p in programs if p.performance_year == year]
    changed = replace_programs(programs, sets=sets, terms_file=terms_file, program_id=program)
    w = what_if(db, year, version, programs, changed, **on)
    out.print(f"what-if on {db} (nothing written): {', '.join(sets) or terms_file}")
    for pid, rows in w.diffs.items():
        if any(r["status"] != "same" for r in rows):
            out.print(_diff_table(pid, rows, "published terms -> what-if"))
        else:
            out.print(f"{pid}: no change")


def _published(snap, db, year, version, program):
    """The published lines of `version` by program, read from `snap` (the snapshot of `db`)."""
    from allpayer.runs import open_snapshot
    from allpayer.settlement.run import read_published

    con = open_snapshot(snap)
    try:
        lines = read_published(con, year, version)
    finally:
        con.disconnect()
    if not lines:
        raise AllpayerError(f"{db}: no published {version} settlement for {year}: run `allpayer settle` first")
    if program:
        if program not in lines:
            raise AllpayerError(f"no {version} settlement for program {program!r} in {year}")
        lines = {program: lines[program]}
    return lines


def _payer_report(snap, db, year, version, program, path) -> None:
    from allpayer.settlement.compare import compare_with_payer, read_payer_report

    if not program:
        raise AllpayerError("--payer-report needs --program ID (a payer's report covers one program)")
    theirs = read_payer_report(path)
    ours = _published(snap, db, year, version, program)[program]
    rows = compare_with_payer(ours, theirs)
    t = Table(title=f"{program} PY{year} ({version}) against {path}", title_justify="left")
    for c in ("line", "ours", "theirs", "difference", "status"):
        t.add_column(c, justify="right" if c in ("ours", "theirs", "difference") else "left")
    for r in rows:
        t.add_row(r["line_id"], _usd(r["ours_cents"]), _usd(r["theirs_cents"]), _usd(r["difference_cents"]), r["status"])
    out.print(t)
    differ = sum(1 for r in rows if r["status"] == "differs")
    out.print(f"{sum(1 for r in rows if r['status'] == 'match')} lines match, {differ} differ")


def _diff(snap, db, year, version, program, other) -> None:
    from allpayer.runs import open_snapshot
    from allpayer.settlement.compare import diff_lines, lines_of_run
    from allpayer.settlement.versions import VERSIONS

    current = _published(snap, db, year, version, program)
    if other in VERSIONS:
        before = _published(snap, db, year, other, program)
        title = f"{other} -> {version}"
    else:
        con = open_snapshot(snap)
        try:
            before = lines_of_run(con, other, program)
        finally:
            con.disconnect()
        title = f"run {other} -> {version}"
    for pid, lines in current.items():
        if pid not in before:
            out.print(f"{pid}: not in {other}")
            continue
        out.print(_diff_table(pid, diff_lines(before[pid], lines), title))
