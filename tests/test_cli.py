import pytest

from allpayer.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "allpayer" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error():
    assert main(["no-such-command"]) != 0


def test_exit_code_from_a_command_is_returned():
    import typer

    from allpayer.cli import app

    @app.command("_exit-seven", hidden=True)
    def _seven() -> None:
        raise typer.Exit(7)

    try:
        assert main(["_exit-seven"]) == 7
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "_exit-seven"]


def test_a_command_runs_with_fewer_garbage_collections():
    """While a command runs, the collector's thresholds are the CLI's; afterwards (even after an
    error) they are what they were, since the CLI also runs inside other programs and tests."""
    import gc

    import typer

    from allpayer.cli import GC_THRESHOLDS, app

    seen = []

    @app.command("_thresholds", hidden=True)
    def _thresholds(fail: bool = False) -> None:
        seen.append(gc.get_threshold())
        if fail:
            raise typer.Exit(3)

    before = gc.get_threshold()
    assert before != GC_THRESHOLDS
    try:
        assert main(["_thresholds"]) == 0
        assert gc.get_threshold() == before
        assert main(["_thresholds", "--fail"]) == 3
        assert gc.get_threshold() == before
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "_thresholds"]
    assert seen == [GC_THRESHOLDS, GC_THRESHOLDS]


def test_settle_refuses_program_where_it_would_settle_every_program(tmp_path, capsys):
    """``--program`` limits a what-if, a payer-report comparison or a diff; a settlement settles and
    posts every program of the year, so ``--program`` there is refused before anything is read,
    not ignored."""
    db = tmp_path / "a.duckdb"
    assert main(["settle", "--db", str(db), "--year", "2024", "--program", "vt-2024-medicare"]) == 2
    err = capsys.readouterr().err
    assert "--program" in err and "every program" in err


def _quality_summary(monkeypatch, programs):
    """Run `allpayer quality` on a stub stage whose published summary is `programs`."""
    import datetime as dt
    from types import SimpleNamespace

    import allpayer.commands.quality as command
    import allpayer.quality.run

    quality = SimpleNamespace(rows={"care_gaps": 0}, not_implemented={}, not_reportable={})
    outcome = SimpleNamespace(run_id="R1", paid_through=dt.date(2025, 3, 31), quality=quality, supplemental_load=None)
    monkeypatch.setattr(allpayer.quality.run, "quality_year", lambda *a, **k: outcome)
    monkeypatch.setattr(command, "_summary", lambda db, year: programs)
    return main(["quality", "--db", "x.duckdb", "--year", "2024", "--no-reports"])


def _measure(measure_id, denominator, numerator, rate, note=None):
    return {"measure_id": measure_id, "denominator": denominator, "exclusions": 0, "numerator": numerator,
            "rate": rate, "points": None, "max_points": None, "status": "scored", "note": note}


def test_quality_summary_piped_keeps_whole_program_and_measure_ids(monkeypatch, capsys):
    """Into a pipe or a log file the quality table is as wide as its cells (as `settle`, `load` and
    `demo` print theirs): at 80 columns every program id was cut to 'vt-202…'."""
    from decimal import Decimal

    programs = [{"program_id": "vt-2024-uvmmc-employees", "quality_score": Decimal("0.5"), "measures_scored": 1,
                 "measures": [_measure("hedis_fuh_7d", 40, 20, Decimal("0.5"), "denominator 40 below the minimum 30")]}]
    assert _quality_summary(monkeypatch, programs) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "hedis_fuh_7d" in line)
    assert "vt-2024-uvmmc-employees" in row and "denominator 40 below the minimum 30" in row


def test_quality_summary_rounds_rates_half_up_as_the_reports(monkeypatch, capsys):
    """A rate of 1/16 is 6.25%: shown 6.3% (half up, as the reports show it), not 6.2% (a float
    formatted half to even); a quality score of 0.83125 is 83.13%."""
    from decimal import Decimal

    programs = [{"program_id": "vt-2024-medicaid", "quality_score": Decimal("0.8312500000"), "measures_scored": 1,
                 "measures": [_measure("cdev", 80, 5, Decimal("0.0625000000"))]}]
    assert _quality_summary(monkeypatch, programs) == 0
    rows = {line.split("│")[2].strip(): line for line in capsys.readouterr().out.splitlines() if line.count("│") == 9}
    assert "6.3%" in rows["cdev"] and "6.2%" not in rows["cdev"]
    assert "83.13%" in rows["quality score"]


def test_run_as_of_a_load_that_is_not_in_the_database_is_refused(tmp_path, capsys):
    """``--as-of-load`` names a published load run; a misspelt id matched no load, so the run read
    no input row at all and published empty member months, attribution and TCOC over the last good
    results. It is refused, naming the option and the loads there are, and nothing is published."""
    from allpayer import runs
    from allpayer.inputs.load import load_folder

    from .inputs.conftest import build_delivery

    db = tmp_path / "a.duckdb"
    load = load_folder(build_delivery(tmp_path / "in"), db)
    before = runs.published_runs(db)
    assert main(["run", "--db", str(db), "--year", "2024", "--as-of-load", "20240101T000000Z-nope",
                 "--no-reports"]) == 2
    err = capsys.readouterr().err
    assert "--as-of-load 20240101T000000Z-nope" in err and load.run_id in err
    assert runs.published_runs(db) == before


@pytest.mark.parametrize("raised, rc, said", [
    (FileNotFoundError(2, "No such file or directory", "/no/such/folder/out.csv"), 1,
     "error: /no/such/folder/out.csv: No such file or directory"),
    (PermissionError(13, "Permission denied", "/root/x.csv"), 1, "error: /root/x.csv: Permission denied"),
    (RuntimeError("Query interrupted"), 130, "aborted"),
    (KeyboardInterrupt(), 130, "aborted"),
])
def test_a_file_error_or_an_interrupt_is_a_plain_message_not_an_internal_error(monkeypatch, capsys, raised, rc, said):
    """A file that cannot be written and Ctrl-C (which the database reports as its own error) are
    the user's, not the program's: one plain line and the usual exit code."""
    from allpayer import cli

    def boom(**kw):
        raise raised

    monkeypatch.setattr(cli, "app", boom)
    assert cli.main(["export", "x"]) == rc
    err = " ".join(capsys.readouterr().err.split())
    assert said in err and "internal error" not in err


def test_generate_names_every_format_it_writes(tmp_path, capsys):
    assert main(["generate", "--members", "10", "--out", str(tmp_path / "o"), "--format", "xml"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "--format must be one of parquet, csv, cclf, fhir; got 'xml'" in err


def test_users_add_refuses_a_database_that_does_not_exist(tmp_path, capsys):
    """A misspelt --db made a user store beside a database that is not there (users no API
    serves); it is refused, naming the path, and nothing is created."""
    db = tmp_path / "nope.duckdb"
    assert main(["users", "add", "ana", "--role", "aco_admin", "--password", "long-enough", "--db", str(db)]) == 2
    assert f"{db}: database not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_invoice_refuses_an_out_suffix_it_does_not_write(tmp_path, capsys, monkeypatch):
    """``--out x.txt`` wrote CSV under a .txt name; the suffix chooses the format (.csv, .html,
    .htm, .pdf) and any other is refused before the snapshot is read, as `export` does."""
    from allpayer import runs

    monkeypatch.setattr(runs, "open_snapshot", lambda db: pytest.fail("the snapshot was read"))
    out = tmp_path / "x.txt"
    assert main(["ledger", "invoice", "--db", str(tmp_path / "a.duckdb"), "--employer", "EMP-A", "--month", "2024-03",
                 "--out", str(out)]) == 2
    assert f"--out {out}: expected a file name ending in .csv, .html, .htm, .pdf" in capsys.readouterr().err
    assert not out.exists()
