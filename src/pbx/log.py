"""Logging for every pbx command: one line per event on stderr, which runit hands to `docker logs`.

SYSLOG_LEVEL counts like syslog priorities plus one: 0 shows nothing, 1 emergencies only ... 4 errors
or worse (the default), 5 adds warnings, 6 notices, 7 info, 8 debug.
"""

from __future__ import annotations

import logging
import sys

# Python has no emergency/alert/critical/notice split; map our 0-8 scale onto its levels.
_PYTHON_LEVEL = {
    0: logging.CRITICAL + 10,
    1: logging.CRITICAL,
    2: logging.CRITICAL,
    3: logging.CRITICAL,
    4: logging.ERROR,
    5: logging.WARNING,
    6: logging.INFO,
    7: logging.INFO,
    8: logging.DEBUG,
}


def python_level(syslog_level: int) -> int:
    return _PYTHON_LEVEL[max(0, min(8, syslog_level))]


def setup(name: str, syslog_level: int) -> logging.Logger:
    """Configure the root logger once for a command; `name` prefixes each line (the service)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{name}: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(python_level(syslog_level))
    return logging.getLogger("pbx")
