"""Extension points: every executable in entry.d (before services start) and exit.d (at stop), in order."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


def find(directory: Path) -> list[Path]:
    """Executables in name order; other files are named in a warning so a missing chmod is noticed."""
    if not directory.is_dir():
        return []
    found: list[Path] = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and os.access(path, os.X_OK):
            found.append(path)
        elif path.is_file():
            log.warning("%s is not executable: skipped (chmod +x it to run it)", path)
    return found


def run_all(directory: Path, budget: float | None = None) -> int:
    """Run the hooks one after the other; a failing hook is logged and the next one runs anyway.

    `budget` bounds the whole directory (exit hooks must finish inside docker's stop grace period).
    Returns the number of hooks that failed.
    """
    failed = 0
    deadline = None if budget is None else time.monotonic() + budget
    for hook in find(directory):
        timeout = None if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            result = subprocess.run([str(hook)], timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            log.error("hook %s did not finish within %.1f s: stopped", hook, timeout or 0)
            failed += 1
            continue
        except OSError as err:
            log.error("hook %s could not start: %s", hook, err)
            failed += 1
            continue
        if result.returncode != 0:
            log.error("hook %s exited with status %d", hook, result.returncode)
            failed += 1
        else:
            log.info("hook %s done", hook)
    return failed
