"""CLI: ``allpayer quality`` computes quality measure results, rates, scores and care gaps."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from allpayer.commands._backend import (backend_option, check_backend, reports_on_publish, reports_option, snapshot_db,
                                        spark_master_option, spark_remote_option)
from allpayer.commands._console import stage_progress

console = Console()
if not console.is_terminal:  # piped or logged: wide enough for whole program and measure ids and notes
    console = Console(width=160)
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command(
        "quality",
        help="Compute quality measure results, rates by practice/HSA/program/ACO, program quality scores and "
        "care gaps for a performance year (after `allpayer run`), and publish them as a new snapshot.",
    )
    def quality_cmd(
        db: Path = typer.Option(..., "--db", help="The DuckDB database file (loaded, with `allpayer run` done for the "
                                "year), or a warehouse folder with --backend spark."),
        year: int = typer.Option(..., "--year", help="Performance year (required: never defaults to today)."),
        paid_through: str = typer.Option(
            None, "--paid-through", metavar="YYYY-MM-DD",
            help="Claims cutoff; also the date care-gap days left are counted from. Default: the latest paid date loaded.",
        ),
        valuesets: Path = typer.Option(
            None, "--valuesets", metavar="FILE",
            help="Your licensed value-set CSV (value_set,code_system,code,match,description,source); its sets "
            "replace the project's sets of the same name. Default: the project's lists (rates labelled not certified).",
        ),
        benchmarks: Path = typer.Option(
            None, "--benchmarks", metavar="FILE",
            help="Benchmark tables CSV (benchmark_table,measure_id,percentile,rate,source) for measures whose terms "
            "name a benchmark_table.",
        ),
        supplemental: Path = typer.Option(
            None, "--supplemental", metavar="FILE",
            help="Supplemental lab results (lab_result columns; data_source starting with 'supplemental'), loaded "
            "and validated first; they can close care gaps.",
        ),
        supplied_results: Path = typer.Option(
            None, "--supplied-results", metavar="FILE",
            help="Risk-standardized results supplied by CMS (e.g. QID 479, 484), loaded as supplied, never recomputed.",
        ),
        care_gaps_out: Path = typer.Option(
            None, "--care-gaps-out", metavar="FILE.csv", help="Also write the year's care gaps to this CSV file."
        ),
        terms: list[Path] = typer.Option(
            None, "--terms", help="Contract-terms files or folders (default: the shipped Vermont programs)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        backend: str = backend_option(),
        spark_master: str = spark_master_option(),
        spark_remote: str = spark_remote_option(),
        reports: bool | None = reports_option(),
    ) -> None:
        from allpayer import runs
        from allpayer.quality.run import quality_year
        from allpayer.reports.base import pct

        with stage_progress(err) as progress, reports_on_publish(reports):
            out = quality_year(db, year, terms=terms or None, paid_through=runs.parse_date(paid_through),
                               valuesets=valuesets, benchmarks=benchmarks, supplied_results=supplied_results,
                               supplemental=supplemental, progress=progress,
                               backend=check_backend(backend, spark_remote), spark_master=spark_master,
                               spark_remote=spark_remote)
        # what was published, read back (on a warehouse, through views of its Parquet tables)
        with snapshot_db(db, backend, spark_remote, write=False) as published:
            if care_gaps_out is not None:
                from allpayer.quality.care_gaps import export_csv

                export_csv(published, year, care_gaps_out)
            summary = _summary(published, year)
        q = out.quality
        if as_json:
            print(json.dumps({"run_id": out.run_id, "db": str(db), "year": year,
                              "paid_through": out.paid_through.isoformat(), "rows": q.rows,
                              "programs": summary, "not_implemented": q.not_implemented,
                              "not_reportable": q.not_reportable,
                              "supplemental": (out.supplemental_load.__dict__ if out.supplemental_load else None),
                              "care_gaps_out": str(care_gaps_out) if care_gaps_out else None}, indent=2, default=str))
            return
        if out.supplemental_load is not None:
            s = out.supplemental_load
            console.print(f"supplemental labs: read {s.read:,} = loaded {s.loaded:,} + already loaded "
                          f"{s.already_loaded:,} + quarantined {s.quarantined:,}")
        t = Table(title=f"Quality {out.run_id}: PY{year}, claims paid through {out.paid_through}")
        for c in ("program", "measure", "denominator", "excl.", "numerator", "rate", "points", "note"):
            t.add_column(c, justify="right" if c in ("denominator", "excl.", "numerator", "rate", "points") else "left")
        for p in summary:
            for m in p["measures"]:
                rate = pct(m["rate"])
                pts = "" if m["points"] is None else f"{m['points']}/{m['max_points']}"
                t.add_row(p["program_id"], m["measure_id"], _n(m["denominator"]), _n(m["exclusions"]),
                          _n(m["numerator"]), rate, pts, m["note"] or "")
            score = "not measured" if p["quality_score"] is None else pct(p["quality_score"], 2)
            t.add_row(p["program_id"], "[b]quality score[/b]", "", "", "", score, "", f"{p['measures_scored']} measures scored")
        console.print(t)
        console.print(f"care gaps: {q.rows.get('care_gaps', 0):,}" + (f" (written to {care_gaps_out})" if care_gaps_out else ""))
        console.print(f"published {db}; rates labelled not certified use the project's own code lists")


def _n(v) -> str:
    return "" if v is None else f"{v:,}"


def _summary(db: Path, year: int) -> list[dict]:
    from allpayer.runs import open_snapshot

    con = open_snapshot(db)
    try:
        r = con.table("quality_rates")
        rates = r.filter((r.performance_year == year) & (r.level == "program")).to_pyarrow().to_pylist()
        s = con.table("quality_scores")
        sc = {(x["program_id"], x["measure_id"]): x for x in s.filter(s.performance_year == year).to_pyarrow().to_pylist()}
        ps = con.table("quality_program_scores")
        progs = ps.filter(ps.performance_year == year).order_by("program_id").to_pyarrow().to_pylist()
    finally:
        con.disconnect()
    by_rate = {(x["program_id"], x["measure_id"]): x for x in rates}
    out = []
    for p in progs:
        ms = []
        for (pid, mid), x in sorted(sc.items()):
            if pid != p["program_id"]:
                continue
            rr = by_rate.get((pid, mid), {})
            ms.append({"measure_id": mid, "denominator": rr.get("denominator"), "exclusions": rr.get("exclusions"),
                       "numerator": rr.get("numerator"), "rate": x["rate"], "points": x["points"],
                       "max_points": x["max_points"], "status": x["status"], "note": x["note"] or rr.get("note")})
        out.append({**p, "measures": ms})
    return out
