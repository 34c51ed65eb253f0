"""Unit tests share one process: keep what one test does to logging from reaching the next."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    # Commands under test call pbx.log.setup, which binds a handler to the sys.stderr of that moment (a
    # test's capture stream, closed after it). A server thread of a later test would log into it.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
