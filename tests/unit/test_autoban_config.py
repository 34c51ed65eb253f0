from __future__ import annotations

from pathlib import Path

import pytest

from pbx.asterisk.conf import ConfigError
from pbx.autoban import config
from pbx.autoban.addresses import parse_entry

SEED = Path(__file__).resolve().parents[2] / "config/autoban/autoban.conf"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20m", 1200),
        ("1d2h3m4s", 93784),
        ("90", 90),
        ("1h", 3600),
        ("2w", 1209600),
        ("1h30s", 3630),
        ("0", 0),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "1x", "3m2h", "-5", "1.5h", "twenty"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        config.parse_duration(text)


def test_format_duration_round_trips() -> None:
    for seconds in (1, 59, 60, 3600, 93784, 7 * 86400):
        assert config.parse_duration(config.format_duration(seconds)) == seconds
    assert config.format_duration(0) == "0s"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autoban.conf"
    path.write_text(text)
    return path


def test_the_seed_file_reads_as_the_defaults() -> None:
    assert config.load(SEED) == config.Config()


def test_every_key(tmp_path: Path) -> None:
    conf = config.load(
        write(
            tmp_path,
            "[autoban]\nenabled = no\nmaxcount = 3\nwatchtime = 1m\njailtime = 1h\nrepeatmult = 2.5\n"
            "maxjailtime = 2d\nipv6_prefix = 56\nallow = 10.0.0.0/8, 192.0.2.1\nallow = 2001:db8::/32\n"
            "deny = 198.51.100.1-198.51.100.9\n"
            "[events]\nInvalidPassword = 3\nInvalidAccountID = 0\nFailedACL = 1\n",
        )
    )
    assert conf.enabled is False
    assert (conf.maxcount, conf.watchtime, conf.jailtime, conf.repeatmult) == (3, 60, 3600, 2.5)
    assert (conf.maxjailtime, conf.ipv6_prefix) == (2 * 86400, 56)
    assert conf.allow == ("10.0.0.0/8", "192.0.2.1", "2001:db8::/32")
    assert conf.deny == ("198.51.100.1-198.51.100.9",)
    assert conf.events == {"InvalidPassword": 3, "FailedACL": 1}


def test_legacy_sections_are_ignored(tmp_path: Path) -> None:
    conf = config.load(
        write(tmp_path, "[asmanager]\nserver = 127.0.0.1\nsecret = x\n[autoban]\nmaxcount = 4\n")
    )
    assert conf.maxcount == 4


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[autoban]\nmaxcount = ten\n", 2, "[autoban] maxcount: expected an integer between 1 and 1000000"),
        ("[autoban]\nmaxcount = 0\n", 2, "maxcount"),
        ("[autoban]\n\nwatchtime = 20 minutes\n", 3, "[autoban] watchtime: expected a duration"),
        ("[autoban]\njailtime = 0\n", 2, "[autoban] jailtime: expected at least 1 s"),
        ("[autoban]\nmaxjailtime = 30d\n", 2, "[autoban] maxjailtime: expected at most 24d"),
        ("[autoban]\nrepeatmult = 0.5\n", 2, "[autoban] repeatmult: expected a number from 1 to 1000"),
        ("[autoban]\nrepeatmult = x\n", 2, "[autoban] repeatmult"),
        ("[autoban]\nipv6_prefix = 129\n", 2, "[autoban] ipv6_prefix"),
        ("[autoban]\nenabled = maybe\n", 2, "[autoban] enabled: expected yes or no"),
        ("[autoban]\nmaxcont = 3\n", 2, "[autoban] maxcont: unknown key"),
        ("[autoban]\nallow = 10.0.0.0/8 300.0.0.1\n", 2, "[autoban] allow: not an IP address: '300.0.0.1'"),
        ("[autoban]\ndeny = 10.0.0.9-10.0.0.1\n", 2, "[autoban] deny: range"),
        ("[events]\nInvalid-Password = 1\n", 2, "[events] Invalid-Password: expected an event name"),
        ("[events]\nInvalidPassword = -1\n", 2, "[events] InvalidPassword"),
        ("[autoban]\n[jail]\n", 2, "[jail]: expected [autoban] or [events]"),
    ],
)
def test_mistakes_name_file_line_and_key(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)


def test_service_rule(tmp_path: Path) -> None:
    assert config.service_enabled(tmp_path / "missing.conf") is False
    assert config.service_enabled(write(tmp_path, "[autoban]\nenabled = yes\n")) is True
    assert config.service_enabled(write(tmp_path, "[autoban]\nenabled = no\n")) is False
    assert config.service_enabled(write(tmp_path, "[autoban]\n")) is True
    # a mistake still starts the daemon, which reports it
    assert config.service_enabled(write(tmp_path, "[autoban]\nmaxcount = x\n")) is True


def test_list_values_are_split_on_commas_only(tmp_path: Path) -> None:
    conf = config.load(write(tmp_path, "[autoban]\nallow = 192.0.2.1 - 192.0.2.9 , 10.0.0.0/8,\n"))
    assert conf.allow == ("192.0.2.1 - 192.0.2.9", "10.0.0.0/8")
    policy_ranges = [parse_entry(e) for e in conf.allow]
    assert policy_ranges[0] == parse_entry("192.0.2.1-192.0.2.9")


def test_entries_separated_by_spaces_say_to_use_commas(tmp_path: Path) -> None:
    path = write(tmp_path, "[autoban]\ndeny = 192.0.2.1 192.0.2.2\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value).startswith(f"{path}:2: [autoban] deny: ")
    assert "separate entries with commas" in str(caught.value)


@pytest.mark.parametrize("name", ["autoban", "events"])
def test_a_repeated_section_is_refused_with_its_line(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, f"[{name}]\n\n[{name}]\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value) == f"{path}:3: [{name}]: repeated; keep one section"


def test_maxwatched(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, "[autoban]\nmaxwatched = 5000\n")).maxwatched == 5000
    assert config.Config().maxwatched == 200_000
    with pytest.raises(ConfigError, match="maxwatched"):
        config.load(write(tmp_path, "[autoban]\nmaxwatched = 0\n"))
