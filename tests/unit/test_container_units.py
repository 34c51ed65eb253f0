"""Hooks and service registration against real files and real processes (no Docker needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pbx.container import hooks, services
from pbx.settings import Settings


def _hook(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    return path


def test_hooks_run_in_name_order_and_failures_do_not_stop_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _hook(tmp_path, "20-b", f"echo b >> {out}")
    _hook(tmp_path, "10-a", f"echo a >> {out}; exit 3")
    _hook(tmp_path, "30-c", f"echo c >> {out}")
    assert hooks.run_all(tmp_path) == 1
    assert out.read_text().split() == ["a", "b", "c"]


def test_a_non_executable_hook_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _hook(tmp_path, "10-x", "exit 0", mode=0o644)
    with caplog.at_level(logging.WARNING):
        assert hooks.find(tmp_path) == []
    assert "10-x is not executable" in caplog.text


def test_a_missing_hook_directory_is_no_error(tmp_path: Path) -> None:
    assert hooks.run_all(tmp_path / "nope") == 0


def test_exit_hooks_are_bounded_by_the_budget(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _hook(tmp_path, "10-slow", "sleep 30")
    _hook(tmp_path, "20-after", f"echo after >> {out}")
    assert hooks.run_all(tmp_path, budget=0.5) == 1
    assert out.read_text().split() == ["after"]


def test_register_links_exactly_the_wanted_services(tmp_path: Path) -> None:
    available, active = tmp_path / "sv", tmp_path / "service"
    for name in ("asterisk", "autoban"):
        (available / name).mkdir(parents=True)
    active.mkdir()
    (active / "autoban").symlink_to(available / "autoban")
    services.register(["asterisk"], available, active)
    assert sorted(p.name for p in active.iterdir()) == ["asterisk"]
    assert (active / "asterisk").resolve() == (available / "asterisk").resolve()


def test_wanted_follows_each_services_rule() -> None:
    table = (
        services.Service("asterisk", lambda _s: True),
        services.Service("websmsd", lambda s: s.syslog_level > 5),
    )
    assert services.wanted(Settings(syslog_level=4), table) == ["asterisk"]
    assert services.wanted(Settings(syslog_level=7), table) == ["asterisk", "websmsd"]


def test_state_reads_runits_status_file(tmp_path: Path) -> None:
    (tmp_path / "asterisk" / "supervise").mkdir(parents=True)
    (tmp_path / "asterisk" / "supervise" / "stat").write_text("run\n")
    (tmp_path / "autoban").mkdir()
    assert services.states(tmp_path) == {"asterisk": "run", "autoban": "unknown"}
