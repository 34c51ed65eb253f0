"""`pbx init`: PID 1 of the base image.

1. persistence (/srv) and seeding, 2. entry hooks, 3. runit starts the enabled services, 4. wait, reaping
orphans. On SIGTERM (docker stop): exit hooks, every service stopped, every process gone, exit 0 well
inside docker's 10 s grace period.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pbx.container import hooks, persist, seed, services
from pbx.passwords import warn as warn_weak_passwords
from pbx.settings import Settings
from pbx.tls.prepare import prepare as prepare_tls

log = logging.getLogger(__name__)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
WATCHED = STOP_SIGNALS | {signal.SIGCHLD}
EXIT_HOOK_BUDGET = 3.0
SERVICE_STOP_WAIT = 5.0


@dataclass(frozen=True)
class Layout:
    """Where the image keeps things; tests point it elsewhere."""

    srv: Path = Path("/srv")
    persist_list: Path = Path("/usr/share/pbx/persist.list")
    seed_dir: Path = Path("/usr/share/pbx/seed/asterisk")
    config_dir: Path = Path("/etc/asterisk")
    run_dir: Path = Path("/run/asterisk")
    user: str = "asterisk"


def prepare(settings: Settings, layout: Layout = Layout()) -> None:
    """Everything that must hold before any service starts."""
    entries = persist.parse_list(layout.persist_list.read_text(), str(layout.persist_list))
    persist.apply(entries, layout.srv)
    made = seed.seed(layout.config_dir, layout.seed_dir, layout.user)
    if made is not None:
        print(seed.announce(made, layout.config_dir), file=sys.stderr, flush=True)
    prepare_tls(settings, layout.user)  # the TLS transport needs its certificate before Asterisk starts
    warn_weak_passwords(layout.config_dir)  # loud, at every start: weak SIP passwords get cracked
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(layout.run_dir, layout.user, layout.user)


def _unblock() -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _reap() -> list[int]:
    """Collect every exited child (orphans included: as PID 1 we inherit them)."""
    gone: list[int] = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return gone
        if pid == 0:
            return gone
        gone.append(pid)


def _end_everything(grace: float = 1.0) -> None:
    """Signal every process but ourselves (kill(-1) spares PID 1), then KILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            _reap()
            try:
                os.kill(-1, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def stop(settings: Settings, runsvdir: int | None) -> None:
    started = time.monotonic()
    _unblock()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    failed = hooks.run_all(settings.exit_dir, budget=EXIT_HOOK_BUDGET)
    services.stop_all(wait=SERVICE_STOP_WAIT)
    if runsvdir is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(runsvdir, signal.SIGHUP)
    _end_everything()
    print(f"pbx: stopped in {time.monotonic() - started:.1f} s ({failed} exit hook(s) failed)", flush=True)


def supervise(settings: Settings) -> int:
    runsvdir_bin = shutil.which("runsvdir")
    if runsvdir_bin is None:
        log.critical("runsvdir not found: this image lacks runit")
        return 1
    services.register(services.wanted(settings))
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    child = subprocess.Popen([runsvdir_bin, "-P", str(services.ACTIVE)], preexec_fn=_unblock)  # noqa: PLW1509
    runsvdir: int | None = child.pid
    while True:
        info = signal.sigtimedwait(WATCHED, 5.0)
        if runsvdir in _reap():
            log.critical("runsvdir exited: stopping the container so docker can restart it")
            stop(settings, None)
            return 1
        if info is not None and info.si_signo in STOP_SIGNALS:
            stop(settings, runsvdir)
            return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "cmd", nargs=argparse.REMAINDER, help="run this instead of the services, once prepared"
    )


def command(args: argparse.Namespace, settings: Settings) -> int:
    return main(settings, args.cmd)


def main(settings: Settings, command: list[str]) -> int:
    # Until supervision starts, a SIGTERM must not be ignored (PID 1 ignores signals it has no handler for).
    def early_stop(_signo: int, _frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, early_stop)
    if os.getpid() != 1:
        log.info("not PID 1: orphans of services will not be reaped by us")
    prepare(settings)
    hooks.run_all(settings.entry_dir)
    if command:
        # `docker run IMAGE CMD...`: a prepared container that runs CMD instead of the services
        os.execvp(command[0], command)
    sys.stdout.flush()
    return supervise(settings)
