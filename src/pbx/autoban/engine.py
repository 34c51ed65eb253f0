"""The engine: the policy's decisions turned into firewall batches, log lines, counters and saves.

Synchronous on purpose (the daemon calls it from its event loop, the benchmark calls it directly).
Changes are queued and flushed as one nftables transaction when the loop has read every event waiting;
a jailing is flushed at once, so the attacker's next packet already meets the rule. A save is split:
the JSON made on the loop in small steps, the disk written in a thread (`save_async`).

When nftables refuses a batch the table is rebuilt whole from the policy; when the rebuild fails too,
further rebuilds back off (1 s doubling to a minute) instead of running on every event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pbx.autoban import commands, state
from pbx.autoban.addresses import IPAddress, key_label, remote_address
from pbx.autoban.config import Config, format_duration
from pbx.autoban.firewall import Firewall, FirewallError
from pbx.autoban.policy import (
    LISTS,
    Action,
    Jailed,
    ListChanged,
    Outcome,
    Policy,
    Put,
    Released,
    Remove,
    Set,
)

log = logging.getLogger("pbx.autoban")

REBUILD_BACKOFF_MIN = 1.0
REBUILD_BACKOFF_MAX = 60.0


@dataclass
class Stats:
    events: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    jailings: int = 0
    releases: int = 0
    nft_errors: int = 0
    saves: int = 0
    save_seconds: float = 0.0  # the last save, snapshot to rename
    ami_connects: int = 0
    ami_connected: bool = False


class Engine:
    def __init__(
        self,
        config: Config,
        policy: Policy,
        firewall: Firewall,
        state_path: Path | None = state.STATE,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.policy = policy
        self.firewall = firewall
        self.state_path = state_path
        self.clock = clock
        self.monotonic = monotonic
        self.stats = Stats()
        self.dirty = False
        self.started_at = clock()
        # The container's default gateways: with docker's userland proxy every client looks like one.
        self.gateways: frozenset[IPAddress] = frozenset()
        self._gateway_warned: set[IPAddress] = set()
        self.rebuild_backoff = 0.0  # seconds; 0 while nftables takes our batches
        self._rebuild_at = 0.0  # monotonic time before which no rebuild is tried
        self._needs_rebuild = False
        # Set by the daemon: ask the loop for a flush soon / a save later.
        self.want_flush: Callable[[], None] = self.flush
        self.want_save: Callable[[], None] = lambda: None

    # --- start --------------------------------------------------------------------------------------

    def restore(self, saved: state.Saved) -> None:
        now = self.clock()
        skipped = self.policy.restore(saved.records, saved.allow, saved.deny, now)
        if skipped:
            log.warning(
                "restoring the saved state: skipped %d item(s) that cannot be used; the first: %s",
                len(skipped),
                skipped[0],
            )
        jailed = len(self.policy.members(Set.JAIL, now))
        if saved.records or saved.allow or saved.deny:
            log.warning(
                "restored %d address(es), %d in jail, from a state saved %s ago",
                len(self.policy.records),
                jailed,
                format_duration(now - saved.saved_at) if saved.saved_at else "?",
            )

    def rebuild(self) -> None:
        """The whole table from the policy, in one transaction (start, or repair after an error)."""
        now = self.clock()
        lists = {which: self.policy.list_intervals(which) for which in LISTS}
        self.firewall.setup(self.policy.timed_elements(now), lists, now)

    # --- events -------------------------------------------------------------------------------------

    def on_event(self, event: Mapping[str, str]) -> Outcome:
        name = event.get("Event", "")
        if name not in self.config.events:
            return Outcome.IGNORED
        self.stats.events[name] += 1
        address = remote_address(event.get("RemoteAddress", ""))
        if address is None:
            self.stats.outcomes[Outcome.IGNORED] += 1
            log.debug("%s without a usable RemoteAddress: %r", name, event.get("RemoteAddress"))
            return Outcome.IGNORED
        if address in self.gateways and address not in self._gateway_warned:
            self._gateway_warned.add(address)
            log.warning(
                "%s came from %s, this container's default gateway: if docker's userland proxy forwards "
                "your SIP port, every client looks like this address and AutoBan would jail them all "
                "(publish the port with the proxy off or use host networking; see docs/autoban.md)",
                name,
                address,
            )
        outcome, actions = self.policy.event(address, name, self.clock())
        self.stats.outcomes[outcome] += 1
        if actions:
            self.apply(actions)
            if outcome is Outcome.JAILED:
                self.flush()
        return outcome

    def apply(self, actions: list[Action]) -> None:
        now = self.clock()
        for action in actions:
            if isinstance(action, Put):
                self.firewall.put(action, now)
            elif isinstance(action, Remove):
                self.firewall.remove(action)
            elif isinstance(action, ListChanged):
                self.firewall.load_list(action.set, self.policy.list_intervals(action.set))
            elif isinstance(action, Jailed):
                self.stats.jailings += 1
                self._log_jailed(action)
            elif isinstance(action, Released):
                self.stats.releases += 1
                self._log_released(action)
        self.dirty = True
        self.want_flush()
        self.want_save()

    def _label(self, key: str) -> str:
        return key_label(key, self.config.ipv6_prefix)

    def _log_jailed(self, jailed: Jailed) -> None:
        counts = ", ".join(f"{name} x{n}" for name, n in jailed.events) or "none"
        why = "by command" if jailed.manual else f"after {jailed.count} weighted event(s)"
        log.warning(
            "jailed %s for %s %s (jailing #%d; events so far: %s)",
            self._label(jailed.key),
            format_duration(jailed.sentence),
            why,
            jailed.jailings,
            counts,
        )

    def _log_released(self, released: Released) -> None:
        how = "sentence served" if released.served else "released by command"
        parole = format_duration(released.parole_until - self.clock())
        log.warning("released %s (%s; on parole for %s)", self._label(released.key), how, parole)

    def flush(self) -> None:
        if self._needs_rebuild:
            # The table is out of step: only a rebuild helps, and it waits for its backoff.
            self.firewall.pending.clear()
            if self.monotonic() >= self._rebuild_at:
                self._try_rebuild()
            return
        try:
            self.firewall.flush()
        except FirewallError as err:
            # Someone changed the table under us, or the kernel refused: rebuild it whole from our state.
            self.stats.nft_errors += 1
            log.error("nftables refused a batch (%s); rebuilding the table", err)
            self._try_rebuild()

    def _try_rebuild(self) -> None:
        try:
            self.rebuild()
        except FirewallError as again:
            self.stats.nft_errors += 1
            doubled = max(REBUILD_BACKOFF_MIN, self.rebuild_backoff * 2)
            self.rebuild_backoff = min(REBUILD_BACKOFF_MAX, doubled)
            self._rebuild_at = self.monotonic() + self.rebuild_backoff
            self._needs_rebuild = True
            log.error(
                "nftables: rebuilding the table failed too (%s); next try in %s",
                again,
                format_duration(self.rebuild_backoff),
            )
            return
        if self._needs_rebuild:
            log.warning("nftables: the table is rebuilt and enforcing again")
        self._needs_rebuild, self.rebuild_backoff = False, 0.0

    # --- time and disk ------------------------------------------------------------------------------

    def tick(self) -> None:
        actions = self.policy.expire(self.clock())
        if actions:
            self.apply(actions)
        elif self._needs_rebuild:
            self.flush()

    def take_snapshot(self) -> state.Snapshot | None:
        """The state to write, if anything changed since the last one (cheap: runs on the loop)."""
        if self.state_path is None or not self.dirty:
            return None
        self.dirty = False
        return state.snapshot(self.policy, self.clock())

    def _saved(self, started: float, error: OSError | None) -> None:
        if error is None:
            self.stats.saves += 1
            self.stats.save_seconds = time.perf_counter() - started
        else:
            self.dirty = True
            log.error("cannot save the AutoBan state to %s: %s", self.state_path, error)

    def save(self) -> None:
        """Save now, in this thread (tests, the benchmark's baseline; the daemon uses save_async)."""
        started = time.perf_counter()
        snap = self.take_snapshot()
        if snap is None or self.state_path is None:
            return
        try:
            state.write_snapshot(snap, self.state_path)
        except OSError as err:
            self._saved(started, err)
        else:
            self._saved(started, None)

    async def save_async(self) -> None:
        """Save with the JSON and the disk in a thread: the loop keeps reading events meanwhile."""
        started = time.perf_counter()
        if self.state_path is None or not self.dirty:
            return
        self.dirty = False
        pieces = await state.encode_async(self.policy, self.clock())
        try:
            await asyncio.to_thread(state.write_atomic, self.state_path, pieces)
        except OSError as err:
            self._saved(started, err)
        else:
            self._saved(started, None)

    # --- commands -----------------------------------------------------------------------------------

    def command(self, request: commands.Request, save: bool = True) -> commands.Result:
        """Carry out a command; with save=False the caller saves (the daemon: off its loop) before it
        acknowledges the command."""
        result = commands.execute(self.policy, request, self.clock())
        if result.actions:
            self.apply(result.actions)
            self.flush()
            if save:
                # A command's change is saved before it is acknowledged.
                self.save()
        return result
