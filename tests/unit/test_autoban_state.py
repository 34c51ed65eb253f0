from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path

import pytest

from pbx.autoban import state
from pbx.autoban.config import Config
from pbx.autoban.policy import Policy, Set

T0 = 1_800_000_000.0


def jailed_policy() -> Policy:
    p = Policy(Config(maxcount=1, jailtime=100, watchtime=60))
    p.event(ipaddress.ip_address("192.0.2.7"), "InvalidPassword", T0)
    p.event(ipaddress.ip_address("2001:db8::9"), "InvalidAccountID", T0)
    p.add_to_list(Set.DENY, "198.51.100.0/24", T0)
    p.add_to_list(Set.ALLOW, "203.0.113.5", T0)
    return p


def test_round_trip_keeps_deadlines_lists_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    state.save(jailed_policy(), T0 + 1, path)
    saved = state.load(path)
    assert saved.saved_at == T0 + 1
    assert saved.deny == ["198.51.100.0/24"] and saved.allow == ["203.0.113.5"]
    again = Policy(Config(maxcount=1, jailtime=100, watchtime=60))
    again.restore(saved.records, saved.allow, saved.deny, T0 + 50)
    assert sorted(r.key for r in again.members(Set.JAIL, T0 + 50)) == ["192.0.2.7", "2001:db8::"]
    record = again.records["2001:db8::"]
    assert (record.jail_until, record.events, record.jailings) == (T0 + 100, {"InvalidAccountID": 1}, 1)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left


def test_a_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    assert state.load(tmp_path / "none.json").records == []


@pytest.mark.parametrize("text", ["{", "[]", '{"version": 99}'])
def test_an_unreadable_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=str(path)):
        state.load(path)


def test_a_bad_record_is_skipped_not_fatal(tmp_path: Path) -> None:
    doc = json.loads(state.dump(jailed_policy(), T0))
    doc["records"].append({"key": "x", "nonsense": 1})
    doc["records"].append("not even a dict")
    saved = state.parse(json.dumps(doc))
    assert len(saved.records) == 2


def test_expired_records_are_not_written() -> None:
    doc = json.loads(state.dump(jailed_policy(), T0 + 1000))
    assert doc["records"] == []


# --- A1: cheap snapshots, written off the loop ------------------------------------------------------


def test_records_are_written_as_plain_arrays_and_read_back() -> None:
    doc = json.loads(state.dump(jailed_policy(), T0))
    assert doc["version"] == 2 and doc["fields"] == list(state.FIELDS)
    first = doc["records"][0]
    assert isinstance(first, list) and first[0] == "192.0.2.7"
    assert dict(zip(state.FIELDS, first, strict=True))["jail_until"] == T0 + 100
    saved = state.parse(json.dumps(doc))
    assert [r.key for r in saved.records] == ["192.0.2.7", "2001:db8::"]


def test_a_version_1_file_with_one_object_per_record_still_loads() -> None:
    doc = {
        "version": 1,
        "saved_at": T0,
        "allow": [],
        "deny": [],
        "records": [{"key": "192.0.2.7", "jail_until": T0 + 100, "jailings": 1, "events": {"X": 2}}],
    }
    saved = state.parse(json.dumps(doc))
    assert saved.records[0].jail_until == T0 + 100 and saved.records[0].events == {"X": 2}


def test_a_snapshot_does_not_change_with_the_policy_behind_it() -> None:
    p = jailed_policy()
    snap = state.snapshot(p, T0)
    p.records["192.0.2.7"].events["InvalidPassword"] = 99
    assert snap.records[0][11] == {"InvalidPassword": 1}


# --- A2: a damaged or hand-edited file never crashes the daemon --------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        ["192.0.2.1", "x", 0, 0, 0, T0 + 9, 0, 0, 0, 0, 0, {}, False],  # count is text
        ["192.0.2.2", 0, 0, 0, 0, "soon", 0, 0, 0, 0, 0, {}, False],  # a deadline is text
        ["192.0.2.3", 0, 0, 0, 0, T0 + 9, 0, 0, 0, 0, 0, ["X"], False],  # events is a list
        [5, 0, 0, 0, 0, T0 + 9, 0, 0, 0, 0, 0, {}, False],  # the key is a number
        ["192.0.2.5", 0, 0, 0, 0, T0 + 9, 0, 0, 0, 0, 0, {}, "no"],  # released is text
        ["192.0.2.6", 0, 0],  # too short
        {"key": "192.0.2.7", "jail_until": None},
        {"key": "192.0.2.8", "count": True},
        None,
    ],
)
def test_records_of_the_wrong_types_are_skipped(bad: object) -> None:
    doc = json.loads(state.dump(jailed_policy(), T0))
    doc["records"].append(bad)
    saved = state.parse(json.dumps(doc))
    assert [r.key for r in saved.records] == ["192.0.2.7", "2001:db8::"]


def test_many_bad_items_cost_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    doc = json.loads(state.dump(jailed_policy(), T0))
    doc["records"] += [{"key": "x", "count": "many"}] * 50
    doc["allow"].append(7)
    state.parse(json.dumps(doc), "s.json")
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "skipped 51 saved item(s)" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "text",
    [
        '{"version": 2, "saved_at": [1]}',
        '{"version": 2, "saved_at": "yesterday"}',
        '{"version": 2, "records": {"a": 1}}',
        '{"version": 2, "allow": "10.0.0.0/8"}',
        '{"version": 2, "fields": 3}',
        "[" * 100_000,
    ],
)
def test_a_file_of_the_wrong_shape_is_a_value_error_not_a_type_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"s\.json"):
        state.parse(text, "s.json")


def test_an_unreadable_file_is_moved_aside_and_the_state_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 2, "saved_at": "garbage"')
    saved, writable = state.load_or_set_aside(path, clock=lambda: T0)
    assert saved.records == [] and writable
    assert not path.exists()
    aside = [p.name for p in tmp_path.iterdir()]
    assert aside == ["state.json.bad-20270115T080000Z"]
    assert "moved it to" in caplog.text


def test_binary_garbage_is_moved_aside_too(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    saved, writable = state.load_or_set_aside(path, clock=lambda: T0)
    assert saved.records == [] and writable and not path.exists()


def test_a_file_that_cannot_be_moved_aside_is_not_saved_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    path.write_text("{")

    def refuse(*_: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(state.os, "replace", refuse)
    saved, writable = state.load_or_set_aside(path)
    assert saved.records == [] and not writable
    assert path.read_text() == "{"


def test_a_missing_file_is_not_moved_anywhere(tmp_path: Path) -> None:
    saved, writable = state.load_or_set_aside(tmp_path / "state.json")
    assert saved.records == [] and writable and list(tmp_path.iterdir()) == []


def test_encoding_in_steps_gives_the_same_document_and_lets_the_loop_run() -> None:
    p = Policy(Config(maxcount=5, watchtime=60))
    for n in range(7):
        p.event(ipaddress.ip_address(f"192.0.2.{n}"), "InvalidPassword", T0)
    p.event(ipaddress.ip_address("192.0.2.0"), "InvalidAccountID", T0)
    p.records["192.0.2.3"].watch_until = T0 - 1  # over: not written, whichever chunk it is in
    steps = 0

    async def run() -> list[bytes]:
        nonlocal steps

        async def count() -> None:
            nonlocal steps
            while True:
                steps += 1
                await asyncio.sleep(0)

        counter = asyncio.get_running_loop().create_task(count())
        pieces = await state.encode_async(p, T0, chunk=2)
        counter.cancel()
        return pieces

    pieces = asyncio.run(run())
    assert json.loads(b"".join(pieces)) == json.loads(state.dump(p, T0))
    assert len(json.loads(b"".join(pieces))["records"]) == 6
    assert steps >= 3  # the loop ran other work while the records were encoded
    empty = asyncio.run(state.encode_async(Policy(Config()), T0))
    assert json.loads(b"".join(empty))["records"] == []
