from __future__ import annotations

import pytest

from pbx import cli


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"], invoked_as="pbx")
    assert exit_info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_every_registered_command_imports_and_configures() -> None:
    import argparse
    import importlib

    for name, (module_name, _) in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=name)
        module.configure(parser)
        assert callable(module.command)


def test_a_compatible_name_runs_its_command(capsys: pytest.CaptureFixture[str]) -> None:
    # invoked through a symlink named like the command: the first argument is not a command name
    with pytest.raises(SystemExit):
        cli.main(["--help"], invoked_as="logfilter")
    assert capsys.readouterr().out.startswith("usage: logfilter")


def test_invalid_environment_is_a_warning_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYSLOG_LEVEL", "99")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    assert cli.main(["logfilter", "x"], invoked_as="pbx") == 0
    assert "SYSLOG_LEVEL='99' is outside 0 to 8; using 4" in capsys.readouterr().err
