from __future__ import annotations

import io

import pytest

from pbx.logfilter import Filter, parse, run
from pbx.settings import LogOptions

ERROR = (
    "[2026-11-26 17:40:29] ERROR[2403]: res_config_ldap.c:1907 parse_config: No directory URL or host found."
)
NOTICE = "[2026-11-26 17:40:29] NOTICE[2403]: loader.c:2568 load_modules: 364 modules will be loaded."
WARNING_CALL = "[Nov 26 17:40:29] WARNING[77][C-00000001]: chan_pjsip.c:12 f: call trouble"
ALL_OFF = LogOptions(small=False, dedupe=False, strip_time=False)


def test_full_line_is_kept_whole_without_options() -> None:
    line = parse(ERROR, ALL_OFF)
    assert line.severity == 3
    assert line.text == ERROR


def test_small_and_strip_time_shorten_the_line() -> None:
    assert parse(ERROR, LogOptions()).text == "ERROR: No directory URL or host found."


def test_call_id_is_kept_even_when_small() -> None:
    line = parse(WARNING_CALL, LogOptions())
    assert (line.severity, line.text) == (4, "WARNING[C-00000001]: call trouble")


def test_untagged_lines_count_as_info() -> None:
    line = parse("  == Manager registered action DBGet", LogOptions())
    assert (line.severity, line.text) == (6, "== Manager registered action DBGet")


@pytest.mark.parametrize(
    "level, shown",
    [(0, []), (3, []), (4, ["ERROR"]), (5, ["ERROR", "WARNING"]), (6, ["ERROR", "WARNING", "NOTICE"])],
)
def test_level_decides_what_is_shown(level: int, shown: list[str]) -> None:
    keep = Filter(level, LogOptions())
    out = [keep.feed(raw) for raw in (ERROR, WARNING_CALL, NOTICE, "verbose chatter")]
    assert [text.split("[")[0].split(":")[0] for text in out if text] == shown


def test_level_8_shows_untagged_lines() -> None:
    assert Filter(8, LogOptions()).feed("verbose chatter") == "verbose chatter"
    assert Filter(6, LogOptions()).feed("verbose chatter") is None


def test_dedupe_drops_only_immediate_repeats() -> None:
    keep = Filter(8, LogOptions())
    fed = [keep.feed(x) for x in ("a", "a", "b", "a")]
    assert fed == ["a", None, "b", "a"]
    assert [Filter(8, ALL_OFF).feed(x) for x in ("a", "a")] == ["a", "a"]


def test_blank_lines_are_dropped() -> None:
    assert Filter(8, LogOptions()).feed("   \n") is None


def test_run_prefixes_the_service_name() -> None:
    sink = io.StringIO()
    run("asterisk", 5, LogOptions(), io.StringIO(f"{ERROR}\n{NOTICE}\n"), sink)
    assert sink.getvalue() == "asterisk: ERROR: No directory URL or host found.\n"
