"""runit supervision: which services run, their state, and stopping them all.

The image holds every service definition in /etc/sv; only the enabled ones are linked into /etc/service,
the folder runsvdir watches, so a disabled add-on costs nothing and never shows as down in the health.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pbx.autoban.config import service_enabled as autoban_enabled
from pbx.settings import Settings
from pbx.websms.settings import websmsd_port

log = logging.getLogger(__name__)

AVAILABLE = Path("/etc/sv")
ACTIVE = Path("/etc/service")


@dataclass(frozen=True)
class Service:
    name: str
    enabled: Callable[[Settings], bool]


# Add-ons add themselves here with the rule that enables them.
SERVICES: tuple[Service, ...] = (
    Service("asterisk", lambda _settings: True),
    # The TLS certificate watcher: installs renewed Traefik/certbot certificates, renews the self-signed one.
    Service("tls", lambda _settings: True),
    # WebSMS runs only when WEBSMSD_PORT is a port number (unset or non-numeric disables it).
    Service("websmsd", lambda _settings: websmsd_port(os.environ) is not None),
    # AutoBan runs when /etc/asterisk/autoban.conf exists and does not say enabled = no.
    Service("autoband", lambda _settings: autoban_enabled()),
    # Voicemail mails kept after a temporary SMTP failure are sent again (idle while the spool is empty).
    Service("minivm-retry", lambda _settings: True),
)


def wanted(settings: Settings, services: tuple[Service, ...] = SERVICES) -> list[str]:
    return [s.name for s in services if s.enabled(settings)]


def register(names: list[str], available: Path = AVAILABLE, active: Path = ACTIVE) -> None:
    """Link exactly the wanted services into the runsvdir folder (and unlink the others)."""
    active.mkdir(parents=True, exist_ok=True)
    for link in active.iterdir():
        if link.name not in names and link.is_symlink():
            link.unlink()
    for name in names:
        link, definition = active / name, available / name
        if not definition.is_dir():
            log.error("service %s has no definition in %s: not started", name, available)
            continue
        if not link.exists():
            link.symlink_to(definition)


def state(service_dir: Path) -> str:
    """runit's own word for the service: 'run', 'down', 'finish', or 'unknown' before runsv starts."""
    try:
        return (service_dir / "supervise" / "stat").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def states(active: Path = ACTIVE) -> dict[str, str]:
    if not active.is_dir():
        return {}
    return {p.name: state(p) for p in sorted(active.iterdir())}


def stop_all(active: Path = ACTIVE, wait: float = 6.0) -> None:
    """Bring every service down at once: TERM, then KILL for any still up after `wait` seconds."""
    dirs = [str(p) for p in sorted(active.iterdir())] if active.is_dir() else []
    if not dirs:
        return
    try:
        subprocess.run(
            ["sv", "-w", str(int(wait)), "force-stop", *dirs],
            timeout=wait + 2,
            check=False,
            stdout=subprocess.DEVNULL,
        )
    except (subprocess.TimeoutExpired, OSError) as err:
        log.error("stopping services: %s", err)
