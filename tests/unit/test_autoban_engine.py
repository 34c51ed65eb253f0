from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from pathlib import Path

import pytest

from pbx.autoban import commands, state
from pbx.autoban.config import Config
from pbx.autoban.engine import Engine
from pbx.autoban.firewall import Firewall, FirewallError
from pbx.autoban.policy import Outcome, Policy, Set

T0 = 1_800_000_000.0


class Recorder:
    def __init__(self) -> None:
        self.batches: list[str] = []
        self.fail_next = 0

    def run(self, commands: str) -> str:
        if self.fail_next:
            self.fail_next -= 1
            raise FirewallError("Error: No such file or directory")
        self.batches.append(commands)
        return ""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, **conf: object) -> tuple[Engine, Recorder, Clock]:
    config = Config(**{"maxcount": 3, "watchtime": 60, "jailtime": 100, **conf})  # type: ignore[arg-type]
    runner, clock = Recorder(), Clock()
    engine = Engine(config, Policy(config), Firewall(runner, 64), tmp_path / "state.json", clock)
    engine.rebuild()
    return engine, runner, clock


def event(name: str, address: str) -> dict[str, str]:
    return {"Event": name, "RemoteAddress": address, "Service": "PJSIP"}


def test_the_jailing_event_is_flushed_at_once_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine, runner, _ = make(tmp_path)
    engine.want_flush = lambda: None  # as in the daemon: flushed when the loop has read every event
    caplog.set_level(logging.WARNING)
    assert engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.7/5060")) is Outcome.WATCHED
    assert engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.7/5061")) is Outcome.WATCHED
    assert engine.on_event(event("InvalidAccountID", "IPV4/TCP/192.0.2.7/5060")) is Outcome.JAILED
    last = runner.batches[-1]
    assert "add element inet autoban jail4 { 192.0.2.7 timeout 100000ms }" in last
    assert "add element inet autoban watch4 { 192.0.2.7 timeout 60000ms }" in last  # batched together
    assert "jailed 192.0.2.7 for 1m40s after 3 weighted event(s)" in caplog.text
    assert "InvalidAccountID x1, InvalidPassword x2" in caplog.text
    assert engine.stats.jailings == 1 and engine.stats.events["InvalidPassword"] == 2


def test_other_events_and_bad_addresses_are_ignored(tmp_path: Path) -> None:
    engine, runner, _ = make(tmp_path)
    before = len(runner.batches)
    assert engine.on_event(event("ChallengeSent", "IPV4/UDP/192.0.2.7/5060")) is Outcome.IGNORED
    assert engine.on_event(event("InvalidPassword", "garbage")) is Outcome.IGNORED
    assert engine.on_event({"Event": "InvalidPassword"}) is Outcome.IGNORED
    assert len(runner.batches) == before


def test_a_refused_batch_rebuilds_the_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine, runner, _ = make(tmp_path, maxcount=1)
    runner.fail_next = 1
    engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.7/5060"))
    assert engine.stats.nft_errors == 1
    rebuilt = runner.batches[-1]
    assert rebuilt.startswith("add table inet autoban\ndelete table inet autoban")
    assert "jail4 { 192.0.2.7 timeout 100000ms }" in rebuilt
    assert "rebuilding the table" in caplog.text


def test_releases_are_logged_on_tick(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine, _, clock = make(tmp_path, maxcount=1)
    caplog.set_level(logging.WARNING)
    engine.on_event(event("InvalidPassword", "IPV6/UDP/2001:db8::1/5060"))
    clock.now = T0 + 100
    engine.tick()
    assert "released 2001:db8::/64 (sentence served; on parole for 1m)" in caplog.text
    assert engine.stats.releases == 1


def test_commands_are_saved_before_they_are_acknowledged(tmp_path: Path) -> None:
    engine, runner, _ = make(tmp_path)
    result = engine.command(commands.parse(["add", "jail", "=", "192.0.2.9"]))
    assert result.lines == ["jail: added 192.0.2.9"]
    assert "jail4 { 192.0.2.9 timeout 100000ms }" in runner.batches[-1]
    saved = state.load(tmp_path / "state.json")
    assert [r.key for r in saved.records] == ["192.0.2.9"]


def test_restart_restores_remaining_time(tmp_path: Path) -> None:
    engine, _, _ = make(tmp_path, maxcount=1)
    engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.7/5060"))
    engine.save()
    again, runner, clock2 = make(tmp_path, maxcount=1)
    clock2.now = T0 + 30
    again.restore(state.load(tmp_path / "state.json"))
    again.rebuild()
    assert "jail4 { 192.0.2.7 timeout 70000ms }" in runner.batches[-1]
    assert [r.key for r in again.policy.members(Set.JAIL, clock2.now)] == ["192.0.2.7"]


# --- A1: the slow half of a save runs in a thread ---------------------------------------------------


def test_save_async_writes_the_file_in_another_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _, _ = make(tmp_path)
    engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.7/5060"))
    threads: list[str] = []
    write = state.write_atomic

    def spy(path: Path, pieces: list[bytes]) -> None:
        threads.append(threading.current_thread().name)
        write(path, pieces)

    monkeypatch.setattr(state, "write_atomic", spy)
    asyncio.run(engine.save_async())
    assert threads and threads[0] != threading.main_thread().name
    assert [r.key for r in state.load(tmp_path / "state.json").records] == ["192.0.2.7"]
    assert engine.stats.saves == 1 and not engine.dirty
    asyncio.run(engine.save_async())  # nothing changed: nothing written
    assert len(threads) == 1


def test_a_failed_async_save_is_retried_later(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine, _, _ = make(tmp_path)
    engine.state_path = tmp_path / "file" / "state.json"
    (tmp_path / "file").write_text("not a folder")
    engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.7/5060"))
    asyncio.run(engine.save_async())
    assert engine.dirty and engine.stats.saves == 0
    assert "cannot save the AutoBan state" in caplog.text


# --- A3: a bad saved entry is one warning, not an empty start ---------------------------------------


def test_restore_warns_once_for_bad_entries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine, _, _ = make(tmp_path)
    saved = state.Saved(allow=["bad", "worse"], deny=["203.0.113.0/24"], saved_at=T0)
    engine.restore(saved)
    assert caplog.text.count("skipped 2 item(s)") == 1
    assert engine.policy.list_entries(Set.DENY) == ([], ["203.0.113.0/24"])


# --- A4: after a failed rebuild, rebuilds back off --------------------------------------------------


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_rebuild_backs_off_instead_of_running_on_every_event(tmp_path: Path) -> None:
    engine, runner, _ = make(tmp_path, maxcount=1)
    mono = Monotonic()
    engine.monotonic = mono
    attempts = 0
    real_run = runner.run

    def failing(commands: str) -> str:
        nonlocal attempts
        attempts += 1
        raise FirewallError("Error: Could not process rule: No buffer space available")

    runner.run = failing  # type: ignore[method-assign]
    engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.1/5060"))
    assert attempts == 2 and engine.stats.nft_errors == 2  # the batch, then one rebuild
    for n in range(2, 50):
        engine.on_event(event("InvalidPassword", f"IPV4/UDP/192.0.2.{n}/5060"))
    assert attempts == 2  # no rebuild per event while backing off
    mono.now += 1.0
    engine.tick()
    assert attempts == 3 and engine.rebuild_backoff == 2.0  # tried again, failed, waits longer
    mono.now += 2.0
    runner.run = real_run  # type: ignore[method-assign]
    engine.tick()
    assert engine.rebuild_backoff == 0.0
    rebuilt = runner.batches[-1]
    assert rebuilt.startswith("add table inet autoban") and "192.0.2.49 timeout" in rebuilt
    engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.50/5060"))
    assert "jail4 { 192.0.2.50 timeout 100000ms }" in runner.batches[-1]  # plain batches again


def test_dropped_watch_records_leave_the_kernel_too(tmp_path: Path) -> None:
    engine, runner, _ = make(tmp_path, maxwatched=2)
    for n in range(1, 4):
        engine.on_event(event("InvalidPassword", f"IPV4/UDP/192.0.2.{n}/5060"))
        engine.flush()
    assert "delete element inet autoban watch4 { 192.0.2.1 }" in runner.batches[-1]
    assert engine.policy.watch_dropped == 1


# --- A7: the default gateway as a source is worth one warning ---------------------------------------


def test_events_from_the_default_gateway_warn_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine, _, _ = make(tmp_path)
    engine.gateways = frozenset({ipaddress.ip_address("172.17.0.1")})
    for _ in range(3):
        engine.on_event(event("InvalidPassword", "IPV4/UDP/172.17.0.1/5060"))
    engine.on_event(event("InvalidPassword", "IPV4/UDP/192.0.2.7/5060"))
    warnings = [r.getMessage() for r in caplog.records if "default gateway" in r.getMessage()]
    assert len(warnings) == 1 and "172.17.0.1" in warnings[0] and "userland proxy" in warnings[0]
