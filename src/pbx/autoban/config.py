"""autoban.conf -> typed settings. Every mistake is a ConfigError naming file:line and the key.

[autoban]
enabled     = yes          ; no: the autoband service is not started
maxcount    = 10           ; weighted events within watchtime that jail an address
watchtime   = 20m          ; the watch window, and the parole after a release
jailtime    = 20m          ; the first sentence
repeatmult  = 6            ; an event on parole jails for repeatmult x the last sentence
maxjailtime = 7d           ; no sentence is longer (at most 24d: nftables' limit)
ipv6_prefix = 64           ; IPv6 attackers are banned by this network
maxwatched  = 200000       ; watched-only addresses kept at most (the oldest are dropped first)
allow       = 192.0.2.0/24 ; repeatable, comma-separated; never watched nor jailed (loopback always is)
deny        = 198.51.100.7 ; repeatable, comma-separated; dropped from the first packet

[events]                   ; optional: the counted events and their weights (replaces the default)
InvalidPassword = 2
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pbx.asterisk.conf import ConfigError, Section, as_bool, as_int, read_config

CONF = Path("/etc/asterisk/autoban.conf")

# The security events that mean someone tries what they may not (Asterisk's security_events.h names).
DEFAULT_EVENTS: Mapping[str, int] = {
    "InvalidAccountID": 1,
    "ChallengeResponseFailed": 1,
    "InvalidPassword": 1,
    "FailedACL": 1,
    "RequestBadFormat": 1,
    "RequestNotAllowed": 1,
    "RequestNotSupported": 1,
    "AuthMethodNotAllowed": 1,
    "InvalidTransport": 1,
}

# nftables takes element timeouts below 2^31 ms: about 24.8 days.
MAX_TIMEOUT = 24 * 86400
_DURATION_RE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = (7 * 86400, 86400, 3600, 60, 1)
_EVENT_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_KEYS = frozenset(
    {"enabled", "maxcount", "watchtime", "jailtime", "repeatmult", "maxjailtime", "ipv6_prefix"}
    | {"maxwatched", "allow", "deny"}
)
# Sections of the predecessor's file that we read elsewhere (manager.conf) or no longer need.
_IGNORED_SECTIONS = frozenset({"asmanager", "nftables"})


def parse_duration(text: str) -> int:
    """Seconds from `1d2h3m4s` (any subset, in that order, also `w`) or a plain number of seconds."""
    raw = text.strip().lower()
    if raw.isdigit():
        return int(raw)
    match = _DURATION_RE.fullmatch(raw)
    if not raw or match is None:
        raise ValueError(f"expected a duration like 20m, 1d2h3m4s or seconds, got {text!r}")
    return sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS, strict=True) if g)


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration for display: 93784 -> 1d2h3m4s."""
    left = max(0, round(seconds))
    if left == 0:
        return "0s"
    out = []
    for unit, letter in zip(_UNITS[1:], "dhms", strict=True):
        amount, left = divmod(left, unit)
        if amount:
            out.append(f"{amount}{letter}")
    return "".join(out)


@dataclass(frozen=True)
class Config:
    enabled: bool = True
    maxcount: int = 10
    watchtime: int = 1200
    jailtime: int = 1200
    repeatmult: float = 6.0
    maxjailtime: int = 7 * 86400
    ipv6_prefix: int = 64
    maxwatched: int = 200_000
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    events: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_EVENTS))


def _duration(section: Section, key: str, default: int, minimum: int = 1, maximum: int = MAX_TIMEOUT) -> int:
    value = section.get(key)
    if value is None or value == "":
        return default
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise _error(section, key, str(err)) from None
    if seconds < minimum:
        raise _error(section, key, f"expected at least {minimum} s, got {value!r}")
    if seconds > maximum:
        raise _error(section, key, f"expected at most {format_duration(maximum)}, got {value!r}")
    return seconds


def _error(section: Section, key: str, message: str) -> ConfigError:
    file, _, line = section.where(key).rpartition(":")
    return ConfigError(file, int(line), f"[{section.name}] {key}: {message}")


def _number(section: Section, key: str, default: float) -> float:
    value = section.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise _error(section, key, f"expected a number >= 1, got {value!r}") from None
    if not 1 <= number <= 1000:
        raise _error(section, key, f"expected a number from 1 to 1000, got {value!r}")
    return number


def _entries(section: Section, key: str) -> tuple[str, ...]:
    from pbx.autoban.addresses import parse_entry

    out: list[str] = []
    for entry in section.entries:
        if entry.key.lower() != key:
            continue
        # Commas only separate entries: `192.0.2.1 - 192.0.2.9` is one range, spaces and all.
        for item in (part.strip() for part in entry.value.split(",")):
            if not item:
                continue
            try:
                parse_entry(item)
            except ValueError as err:
                raise ConfigError(
                    entry.file, entry.line, f"[{section.name}] {key}: {_entry_error(item, err)}"
                ) from None
            out.append(item)
    return tuple(out)


def _entry_error(item: str, err: ValueError) -> str:
    """Why `item` is no entry; for words separated by spaces, the first bad word, or the comma hint."""
    from pbx.autoban.addresses import parse_entry

    words = item.split()
    if len(words) < 2 or "-" in item:
        return str(err)
    for word in words:
        try:
            parse_entry(word)
        except ValueError as bad:
            return f"{bad} (separate entries with commas)"
    return f"expected one entry between commas, got {item!r} (separate entries with commas)"


def _events(section: Section) -> dict[str, int]:
    events: dict[str, int] = {}
    for entry in section.entries:
        if not _EVENT_RE.fullmatch(entry.key):
            raise ConfigError(entry.file, entry.line, f"[events] {entry.key}: expected an event name")
        events[entry.key] = as_int(section, entry.key, 1, minimum=0, maximum=1000)
    return {name: weight for name, weight in events.items() if weight > 0}


def parse(config_sections: list[Section], path: Path) -> Config:
    main: Section | None = None
    events: dict[str, int] | None = None
    for section in config_sections:
        name = section.name.lower()
        if name in ("autoban", "events") and (main if name == "autoban" else events) is not None:
            # Two of them would each be half of the policy: say so rather than guess which half wins.
            raise ConfigError(section.file, section.line, f"[{section.name}]: repeated; keep one section")
        if name == "autoban":
            main = section
        elif name == "events":
            events = _events(section)
        elif name not in _IGNORED_SECTIONS:
            raise ConfigError(section.file, section.line, f"[{section.name}]: expected [autoban] or [events]")
    if main is None:
        return Config(events=events if events is not None else dict(DEFAULT_EVENTS))
    for entry in main.entries:
        if entry.key.lower() not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise ConfigError(entry.file, entry.line, f"[autoban] {entry.key}: unknown key (known: {known})")
    return Config(
        enabled=as_bool(main, "enabled", True),
        maxcount=as_int(main, "maxcount", 10, minimum=1, maximum=1_000_000),
        watchtime=_duration(main, "watchtime", 1200),
        jailtime=_duration(main, "jailtime", 1200),
        repeatmult=_number(main, "repeatmult", 6.0),
        maxjailtime=_duration(main, "maxjailtime", 7 * 86400, maximum=MAX_TIMEOUT),
        ipv6_prefix=as_int(main, "ipv6_prefix", 64, minimum=16, maximum=128),
        maxwatched=as_int(main, "maxwatched", 200_000, minimum=1, maximum=10_000_000),
        allow=_entries(main, "allow"),
        deny=_entries(main, "deny"),
        events=events if events is not None else dict(DEFAULT_EVENTS),
    )


def load(path: Path = CONF) -> Config:
    conf = read_config(path)
    return parse(list(conf), path)


def service_enabled(path: Path = CONF) -> bool:
    """The autoband service rule: the file exists and does not say `enabled = no`.

    A file with a mistake still enables the service, so that the daemon reports the mistake.
    """
    if not path.is_file():
        return False
    try:
        return load(path).enabled
    except ConfigError:
        return True
