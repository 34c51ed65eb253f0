from __future__ import annotations

from pathlib import Path

import pytest

from pbx.settings import LogOptions, parse


def test_defaults_when_nothing_is_set() -> None:
    settings, warnings = parse({}, default_hostname="box")
    assert warnings == []
    assert settings.syslog_level == 4
    assert settings.log == LogOptions(small=True, dedupe=True, strip_time=True)
    assert settings.hostname == "box"
    assert settings.entry_dir == Path("/etc/docker/entry.d")
    assert settings.exit_dir == Path("/etc/docker/exit.d")


@pytest.mark.parametrize("raw, level", [("0", 0), ("8", 8), (" 6 ", 6), ("", 4)])
def test_syslog_level_accepts_0_to_8(raw: str, level: int) -> None:
    settings, warnings = parse({"SYSLOG_LEVEL": raw})
    assert (settings.syslog_level, warnings) == (level, [])


@pytest.mark.parametrize(
    "raw, message",
    [
        ("9", "SYSLOG_LEVEL='9' is outside 0 to 8; using 4"),
        ("-1", "SYSLOG_LEVEL='-1' is outside 0 to 8; using 4"),
        ("loud", "SYSLOG_LEVEL='loud' is not a whole number from 0 to 8; using 4"),
        ("4.5", "SYSLOG_LEVEL='4.5' is not a whole number from 0 to 8; using 4"),
    ],
)
def test_invalid_syslog_level_warns_and_uses_the_default(raw: str, message: str) -> None:
    settings, warnings = parse({"SYSLOG_LEVEL": raw})
    assert settings.syslog_level == 4
    assert warnings == [message]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("-SDt", LogOptions(True, True, True)),
        ("D", LogOptions(False, True, False)),
        ("", LogOptions(False, False, False)),
        ("-t", LogOptions(False, False, True)),
    ],
)
def test_syslog_options_letters(raw: str, expected: LogOptions) -> None:
    settings, warnings = parse({"SYSLOG_OPTIONS": raw})
    assert settings.log == expected
    assert warnings == []


def test_unknown_syslog_option_letters_are_named() -> None:
    settings, warnings = parse({"SYSLOG_OPTIONS": "-SqZ"})
    assert settings.log == LogOptions(small=True, dedupe=False, strip_time=False)
    assert len(warnings) == 1
    assert "unknown letter(s) Zq" in warnings[0]


def test_hostname_and_domain() -> None:
    settings, _ = parse({"HOSTNAME": "tele.example.com"})
    assert settings.hostname == "tele.example.com"
    assert settings.domain == "example.com"
    assert parse({"HOSTNAME": "tele"})[0].domain == ""


def test_hook_directories_must_be_absolute() -> None:
    settings, warnings = parse({"DOCKER_ENTRY_DIR": "hooks", "DOCKER_EXIT_DIR": "/x/exit"})
    assert settings.entry_dir == Path("/etc/docker/entry.d")
    assert settings.exit_dir == Path("/x/exit")
    assert warnings == ["DOCKER_ENTRY_DIR='hooks' is not an absolute path; using /etc/docker/entry.d"]
