"""CLI: ``allpayer generate`` writes a synthetic Vermont-like population."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from allpayer.errors import AllpayerError

HELP = (
    "Generate a synthetic Vermont-like population (eligibility, medical and pharmacy claims, labs, blood "
    "pressure, provider roster, employer groups, and the payer files: attribution list, voluntary alignment, "
    "exclusion events, targets) into a folder, seeded and reproducible."
)


def _parse_years(first: list[str] | None, extra: list[str]) -> tuple[int, ...] | None:
    """Years from ``--years 2022 2023 2024`` (the values after the first arrive as extra
    arguments) or ``--years 2022,2023,2024``."""
    tokens = [t for v in (first or []) for t in v.replace(",", " ").split()] + list(extra)
    if not tokens:
        return None
    if extra and not first:
        raise AllpayerError(f"unexpected argument(s): {' '.join(extra)}")
    years = []
    for t in tokens:
        if not t.isdigit():
            raise AllpayerError(f"--years takes whole years like 2022 2023 2024, got {t!r}")
        years.append(int(t))
    return tuple(years)


def register(app: typer.Typer) -> None:
    @app.command(
        "generate",
        help=HELP,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
    )
    def generate_cmd(
        ctx: typer.Context,
        members: int = typer.Option(20_000, "--members", help="Number of people (person_id) to generate."),
        seed: int = typer.Option(1, "--seed", help="Random seed: the same seed and options give identical files."),
        out: Path = typer.Option(..., "--out", help="Output folder (created if missing); table files in it are replaced."),
        fmt: str = typer.Option(
            "parquet",
            "--format",
            help=(
                "File format: parquet or csv; cclf writes Parquet and also the Medicare members as a monthly CCLF zip "
                "in OUT/cclf/; fhir writes FHIR R4 bulk NDJSON (roster and employer groups stay Parquet)."
            ),
        ),
        years: list[str] = typer.Option(
            None,
            "--years",
            help="Service years, consecutive (e.g. --years 2022 2023 2024). Default 2022-2024; paid dates run 3 months past the last.",
        ),
        inject_errors: float = typer.Option(
            0.0,
            "--inject-errors",
            metavar="RATE",
            help="Share of rows (0-0.5) to make deliberately bad, for testing validation; they are listed in injected_errors.csv.",
        ),
        dhmc_fpp: bool = typer.Option(
            False, "--dhmc-fpp/--no-dhmc-fpp", help="Pay Dartmouth-Hitchcock (Upper Valley HSA) by FPP for Medicare and Medicaid."
        ),
    ) -> None:
        from allpayer.synth import DEFAULT_YEARS, RosterOptions, generate
        from allpayer.synth.generator import check_args

        span_years = _parse_years(years, list(ctx.args)) or DEFAULT_YEARS
        as_fhir = fmt == "fhir"
        if as_fhir and inject_errors:
            raise AllpayerError("--inject-errors works with --format parquet or csv, not fhir")
        cclf = fmt == "cclf"
        if fmt not in ("parquet", "csv", "cclf", "fhir"):
            raise AllpayerError(f"--format must be one of parquet, csv, cclf, fhir; got {fmt!r}")
        fmt = "parquet" if (cclf or as_fhir) else fmt
        check_args(members, seed, fmt, span_years, inject_errors)
        console = Console(stderr=True)
        started = time.perf_counter()
        progress = Progress(
            TextColumn("[bold]generating[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("people"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        final_out = out
        if as_fhir:
            from allpayer.synth.fhir_writer import native_staging

            staging = native_staging(out)
            out = staging.path
        try:
            with progress:
                task = progress.add_task("generate", total=members if members > 0 else None)
                manifest = generate(
                    members,
                    seed,
                    out,
                    fmt=fmt,
                    years=span_years,
                    inject_errors=inject_errors,
                    progress=lambda done, total: progress.update(task, completed=done),
                    roster_options=RosterOptions(dhmc_fpp=dhmc_fpp),
                )
            if as_fhir:
                manifest = staging.finish(manifest, final_out)
                out = final_out
        except OSError as exc:
            raise AllpayerError(f"{final_out}: cannot write ({exc.strerror or exc})") from exc
        finally:
            if as_fhir:
                staging.cleanup()
        if cclf:
            import datetime as dt

            from allpayer.synth.cclf_writer import write_cclf

            written = write_cclf(
                out, out / "cclf", performance_year=manifest.years[-1],
                file_date=dt.date.fromisoformat(manifest.paid_through), zip_delivery=True,
            )
        seconds = time.perf_counter() - started
        table = Table(title=f"{out} ({manifest.format}, seed {manifest.seed}, {manifest.service_start}..{manifest.service_end})")
        table.add_column("table")
        table.add_column("file")
        table.add_column("rows", justify="right")
        if manifest.injected_errors:
            table.add_column("bad rows", justify="right")
        for name, rows in manifest.row_counts.items():
            cells = [name, manifest.files[name], f"{rows:,}"]
            if manifest.injected_errors:
                cells.append(f"{sum(manifest.injected_errors.get(name, {}).values()):,}")
            table.add_row(*cells)
        Console().print(table)
        total = sum(manifest.row_counts.values())
        Console().print(f"{manifest.members:,} people, {total:,} rows in {seconds:.1f} s; manifest: {out / 'manifest.json'}")
        if cclf:
            Console().print(f"Medicare members as CCLF: {written[0]}")
