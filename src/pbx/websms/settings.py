"""WEBSMSD_PORT: the one environment variable of WebSMS (kept apart so `pbx init` imports no aiohttp)."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_PORT = 8080


def websmsd_port(env: Mapping[str, str]) -> int | None:
    """The port websmsd listens on, or None when WEBSMSD_PORT is unset or not a port number (disabled).

    The image sets WEBSMSD_PORT=8080; a user disables WebSMS with WEBSMSD_PORT= or any word.
    """
    raw = env.get("WEBSMSD_PORT", "").strip()
    if not raw.isascii() or not raw.isdigit():
        return None
    port = int(raw)
    return port if 1 <= port <= 65535 else None
