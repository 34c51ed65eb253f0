"""Environment variables -> typed settings, in one place.

An invalid value never stops the container (that would be a crash loop under a restart policy): it gets
one clear warning naming the variable, the value and the default used instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SYSLOG_FLAGS = {
    "S": "smaller output: drop the thread id and the source location",
    "D": "drop a line that repeats the one before it",
    "t": "strip Asterisk's own timestamp (docker logs adds one)",
}


@dataclass(frozen=True)
class LogOptions:
    small: bool = True
    dedupe: bool = True
    strip_time: bool = True


@dataclass(frozen=True)
class Settings:
    syslog_level: int = 4
    log: LogOptions = field(default_factory=LogOptions)
    hostname: str = "pbx"
    entry_dir: Path = Path("/etc/docker/entry.d")
    exit_dir: Path = Path("/etc/docker/exit.d")

    @property
    def domain(self) -> str:
        return domain_of(self.hostname)


def domain_of(hostname: str) -> str:
    """The host name less its first label, as TLS certificate matching uses it."""
    _, _, rest = hostname.partition(".")
    return rest


def int_in_range(
    env: Mapping[str, str], name: str, default: int, low: int, high: int, warn: list[str]
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        warn.append(f"{name}={raw!r} is not a whole number from {low} to {high}; using {default}")
        return default
    if not low <= value <= high:
        warn.append(f"{name}={raw!r} is outside {low} to {high}; using {default}")
        return default
    return value


def _log_options(env: Mapping[str, str], warn: list[str]) -> LogOptions:
    raw = env.get("SYSLOG_OPTIONS")
    if raw is None:
        return LogOptions()
    letters = raw.strip().lstrip("-")
    unknown = sorted({c for c in letters if c not in SYSLOG_FLAGS})
    if unknown:
        known = ", ".join(f"{k} ({v})" for k, v in SYSLOG_FLAGS.items())
        warn.append(f"SYSLOG_OPTIONS={raw!r}: ignoring unknown letter(s) {''.join(unknown)}; known: {known}")
    return LogOptions(small="S" in letters, dedupe="D" in letters, strip_time="t" in letters)


def absolute_path(env: Mapping[str, str], name: str, default: Path, warn: list[str]) -> Path:
    """The variable as an absolute path; otherwise a warning in `warn` and the default."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.startswith("/"):
        warn.append(f"{name}={raw!r} is not an absolute path; using {default}")
        return default
    return Path(raw)


def parse(env: Mapping[str, str], default_hostname: str = "pbx") -> tuple[Settings, list[str]]:
    """Settings from an environment, with the warnings to log. Pure: no I/O."""
    warn: list[str] = []
    settings = Settings(
        syslog_level=int_in_range(env, "SYSLOG_LEVEL", 4, 0, 8, warn),
        log=_log_options(env, warn),
        hostname=env.get("HOSTNAME", "").strip() or default_hostname,
        entry_dir=absolute_path(env, "DOCKER_ENTRY_DIR", Path("/etc/docker/entry.d"), warn),
        exit_dir=absolute_path(env, "DOCKER_EXIT_DIR", Path("/etc/docker/exit.d"), warn),
    )
    return settings, warn


def from_environment() -> tuple[Settings, list[str]]:
    return parse(os.environ, socket.gethostname())
