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
