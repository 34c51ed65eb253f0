"""The `tls` service: keep the installed certificate equal to the one the sources offer.

Cheap polling: every POLL seconds one stat() per watched file (mtime, size, inode; symlinks followed, so
certbot's renewals show). Only when that changes are the files read and hashed, and only a new hash is
parsed. Traefik rewrites acme.json in place, so a read can catch half a document: that is retried every
poll until it parses (or the file changes again), and only reported when it stays broken.

inotify would need a C binding or ctypes, and misses changes on some network file systems; one stat a
second costs next to nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pbx.container import services
from pbx.tls import acme, reload, selfsigned, sources, store
from pbx.tls.settings import DEFAULT_POSTHOOK, TlsSettings

log = logging.getLogger(__name__)

POLL = 1.0
REPORT_AFTER = 30.0  # a source unreadable this long is an error worth logging
POSTHOOK_TIMEOUT = 120.0
RENEW_CHECK = 3600.0  # how often to look at the self-signed certificate's expiry

Signature = tuple[tuple[str, int, int, int] | tuple[str], ...]


def signature(files: list[Path]) -> Signature:
    sig: list[tuple[str, int, int, int] | tuple[str]] = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            sig.append((str(f),))
            continue
        sig.append((str(f), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(sig)


@dataclass
class Watcher:
    tls: TlsSettings
    poll: float = POLL
    report_after: float = REPORT_AFTER
    _signature: Signature | None = None
    _digest: str | None = None
    _failing_since: float | None = None  # a failure worth a retry at every poll (half-written file)
    _unreadable: frozenset[str] = frozenset()  # sources that cannot be read now: retried every poll
    _reported: set[str] = field(default_factory=set)

    def due(self) -> bool:
        """Has anything on disk changed since the last look, or is a retry pending?

        After a bad pair (key and certificate that do not belong together) no retry is pending: reading
        the same files again would give the same answer at the cost of openssl runs, every second.
        """
        sig = signature(sources.watched_files(self.tls))
        changed = sig != self._signature
        self._signature = sig
        return changed or self._failing_since is not None or bool(self._unreadable)

    def _note_unreadable(self, problems: tuple[str, ...]) -> None:
        """Log each distinct unreadable source once (again if it recovers and breaks anew)."""
        for problem in problems:
            if problem not in self._unreadable:
                log.error("TLS: certificate source unreadable, ignored until it can be read: %s", problem)
        for problem in self._unreadable - set(problems):
            log.warning("TLS: certificate source readable again (was: %s)", problem)
        self._unreadable = frozenset(problems)

    def _once(self, level: int, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            log.log(level, "TLS: %s", message)

    def step(self) -> bool:
        """One look at the sources; True when a new certificate was installed."""
        try:
            snap = sources.snapshot(self.tls)
        except OSError as err:  # snapshot reports unreadable sources itself; this is a last resort
            snap = sources.Snapshot(self.tls.acme_file, None, problems=(f"reading the sources: {err}",))
        self._note_unreadable(snap.problems)
        digest = snap.digest()
        if digest == self._digest and self._failing_since is None:
            return False
        notes: list[str] = []
        try:
            chosen, why = sources.choose(snap, self.tls.hostname, notes)
            installed = chosen is not None and store.install(
                chosen.pair, self.tls.cert_file, self.tls.key_file, self.tls.owner
            )
        except store.PairError as err:
            # Not a moment in a rewrite but a bad pair in the source: nothing to gain from checking the same
            # content again (even while another source's retry keeps the polls going); wait for new content.
            self._failing_since = None
            self._digest = digest
            self._once(
                logging.ERROR, f"not installing a certificate: {err}; waiting for the source to change"
            )
            return False
        except (acme.AcmeError, OSError) as err:
            # Half-written acme.json, certbot between its two symlink swaps, a file replaced while read:
            # try again next poll.
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            if now - self._failing_since >= self.report_after and str(err) not in self._reported:
                self._reported.add(str(err))
                log.error("TLS: %s (still, after %.0f s)", err, now - self._failing_since)
            else:
                log.debug("TLS: not ready yet: %s", err)
            return False
        finally:
            for note in notes:
                self._once(logging.WARNING, note)
        self._failing_since = None
        self._digest = digest
        if chosen is None:
            # Only a source that offers nothing for HOSTNAME is worth a warning; none yet is normal.
            nothing_yet = snap.acme is None and not snap.certbot and not snap.problems
            self._once(
                logging.INFO if nothing_yet else logging.WARNING, f"keeping the current certificate: {why}"
            )
            return False
        if installed:
            log.warning("TLS: installed the new certificate from %s", chosen.origin)
        return installed

    def renew(self, now: datetime | None = None) -> bool:
        """Replace our self-signed certificate when it nears its end (TLS_CERTDAYS is short: 30 days)."""
        try:
            made = selfsigned.ensure(self.tls, now)
        except (OSError, ValueError) as err:
            log.error("TLS: renewing the self-signed certificate failed: %s", err)
            return False
        if made:
            log.warning("TLS: made a new self-signed certificate: %s", made)
        return made is not None

    async def run(self) -> None:
        # Usually the first step only learns the state (`pbx init` installed the certificate Asterisk
        # started with); if a source changed in between, Asterisk must reload like after any change.
        self.due()
        if self.step():
            await run_posthook(self.tls)
        checked = time.monotonic()
        while True:
            await asyncio.sleep(self.poll)
            if self.due() and self.step():
                await run_posthook(self.tls)
            if time.monotonic() - checked >= RENEW_CHECK:
                checked = time.monotonic()
                if self.renew():
                    await run_posthook(self.tls)


TIMED_OUT = 124  # the exit status timeout(1) gives a command it had to stop
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def program_name(command: str) -> str:
    """What a log may say about a hook: its program, never its arguments or variables (tokens). Pure."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: the shell will say so; the log only needs a name
        words = command.split()
    for word in words:
        if not _ASSIGNMENT.match(word):
            return os.path.basename(word.strip("'\"")) or "?"
    return "?"


async def run_posthook(tls: TlsSettings, timeout: float | None = None) -> int | None:
    """Run ACME_POSTHOOK; its exit status (TIMED_OUT when stopped), None when there is none."""
    if not tls.posthook:
        return None
    if tls.posthook.strip() == DEFAULT_POSTHOOK:
        # Our own reload runs in this process: its messages (the served certificate checked, or not)
        # reach the log at their own level instead of as a child's output, which is shown at debug only.
        return await asyncio.to_thread(reload.reload, reload.HTTP_CONF, tls.cert_file)
    timeout = POSTHOOK_TIMEOUT if timeout is None else timeout
    env = {**os.environ, "TLS_CERT_FILE": str(tls.cert_file), "TLS_KEY_FILE": str(tls.key_file)}
    # The predecessor's default hook was `sv restart asterisk`: make `sv NAME` find our runit services.
    env.setdefault("SVDIR", str(services.ACTIVE))
    name = program_name(tls.posthook)
    # A session (and so a process group) of its own: on timeout the whole hook goes, not just the shell.
    proc = await asyncio.create_subprocess_shell(
        tls.posthook,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        log.error("TLS: ACME_POSTHOOK (%s) took longer than %.0f s: stopped it", name, timeout)
        return TIMED_OUT
    # The output may echo what the command line holds (a token): only at debug level.
    log.debug("TLS: ACME_POSTHOOK (%s) said: %s", name, out.decode(errors="replace").strip())
    if proc.returncode:
        log.error(
            "TLS: ACME_POSTHOOK (%s) exited %s (SYSLOG_LEVEL=7 shows its output)", name, proc.returncode
        )
    else:
        log.info("TLS: ACME_POSTHOOK (%s) done", name)
    return proc.returncode


def main(tls: TlsSettings) -> int:
    log.info("TLS: watching %s and %s every %.0f s", tls.acme_file, tls.certbot_dir / "live", POLL)
    try:
        asyncio.run(Watcher(tls).run())
    except KeyboardInterrupt:
        return 0
    return 0
