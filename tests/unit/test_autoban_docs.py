"""docs/autoban.md, the seed autoban.conf, the service and the demo say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pbx.autoban import config, daemon, report, state

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "autoban.md").read_text()


def test_every_key_is_documented() -> None:
    for key in config._KEYS:
        assert f"| `{key}` |" in DOCS, key


def test_every_metric_is_documented() -> None:
    status = {"state": "active", "ami": {"connected": True, "connects": 1}}
    names = set(re.findall(r"^# TYPE (autoban_\w+)", report.metrics(status), re.M))
    assert "autoban_watch_dropped_total" in names
    for name in names:
        assert f"`{name}" in DOCS, name


def test_the_metrics_file_is_where_the_docs_say_and_the_state_is_persisted() -> None:
    path = state.STATE.parent / daemon.METRICS_NAME
    assert f"`{path}` (mode 0644)" in DOCS
    persisted = (ROOT / "image" / "persist.list").read_text().split()
    assert str(path.parent) in persisted
    assert "/run/autoban/metrics.prom" not in DOCS


@pytest.mark.parametrize(
    "path",
    [
        "docs/autoban.md",
        "config/autoban/autoban.conf",
        "image/sv/autoband/run",
        "demo/docker-compose.yml",
        "demo/traefik/docker-compose.yml",
    ],
)
def test_net_admin_is_the_one_capability_asked_for(path: str) -> None:
    text = (ROOT / path).read_text().lower()
    assert "net_admin" in text
    assert "--cap-add net_raw" not in text and "- net_raw" not in text


def test_the_capability_hint_is_the_documented_one() -> None:
    assert daemon.CAPABILITY_HINT == "run the container with --cap-add NET_ADMIN"
    assert f"({daemon.CAPABILITY_HINT})" in DOCS
