from allpayer.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "allpayer" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error():
    assert main(["no-such-command"]) != 0
