"""`pbx logfilter NAME`: the runit log service of Asterisk.

Asterisk writes its console log to stdout; runit pipes it here; we keep the lines that SYSLOG_LEVEL asks
for and write them to stdout, which is `docker logs`. Asterisk's own logger.conf decides what it emits at
all; this decides what the container shows, so one variable governs every service.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from dataclasses import dataclass, field
from typing import TextIO

from pbx.settings import LogOptions, Settings

# Syslog severities: 0 emergency ... 3 error, 4 warning, 5 notice, 6 info, 7 debug.
SEVERITY = {
    "ERROR": 3,
    "WARNING": 4,
    "NOTICE": 5,
    "SECURITY": 5,
    "VERBOSE": 6,
    "DTMF": 7,
    "DEBUG": 7,
    "TRACE": 7,
}
UNTAGGED = 6  # banner lines and verbose output carry no level: treat them as info

# [timestamp] LEVEL[thread][callid]: file.c:123 function: message
_LINE = re.compile(
    r"^\[(?P<time>[^\]]*)\] (?P<level>[A-Z]+)\[(?P<thread>\d+)\](?:\[(?P<call>[^\]]*)\])?: "
    r"(?:(?P<where>[\w./-]+:\d+ \w+): )?(?P<message>.*)$"
)


@dataclass(frozen=True)
class Line:
    severity: int
    text: str


def parse(raw: str, options: LogOptions) -> Line:
    """Classify one console line and shorten it as SYSLOG_OPTIONS asks."""
    m = _LINE.match(raw)
    if m is None:
        return Line(UNTAGGED, raw.strip())
    level = m["level"]
    parts: list[str] = []
    if not options.strip_time:
        parts.append(f"[{m['time']}]")
    head = level if options.small else f"{level}[{m['thread']}]"
    if m["call"]:
        head += f"[{m['call']}]"
    parts.append(head + ":")
    if m["where"] and not options.small:
        parts.append(m["where"] + ":")
    parts.append(m["message"])
    return Line(SEVERITY.get(level, UNTAGGED), " ".join(parts))


@dataclass
class Filter:
    """Decides, line by line, what reaches the container log."""

    level: int
    options: LogOptions
    _last: str | None = field(default=None, init=False)

    def feed(self, raw: str) -> str | None:
        raw = raw.rstrip("\r\n")
        if not raw.strip():
            return None
        line = parse(raw, self.options)
        if line.severity >= self.level:
            return None
        if self.options.dedupe and line.text == self._last:
            return None
        self._last = line.text
        return line.text


def run(name: str, level: int, options: LogOptions, source: TextIO, sink: TextIO) -> None:
    keep = Filter(level, options)
    for raw in source:
        text = keep.feed(raw)
        if text is not None:
            sink.write(f"{name}: {text}\n")
            sink.flush()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the service name each line is prefixed with")


def command(args: argparse.Namespace, settings: Settings) -> int:
    return main(args.name, settings.syslog_level, settings.log)


def main(name: str, level: int, options: LogOptions) -> int:
    # Undecodable bytes must not kill the log pipe: Asterisk would then block on a full pipe.
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")
    run(name, level, options, sys.stdin, sys.stdout)
    return 0
