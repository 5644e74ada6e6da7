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
