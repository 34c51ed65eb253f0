"""The decisions of AutoBan, as a pure state machine: events and commands in, actions out.

No I/O and no clock: every call gets `now` (seconds since the epoch, so that a saved state means the
same after a restart). The daemon turns the actions into nftables elements and log lines.

    watch --(maxcount weighted events within watchtime)--> jail --(sentence served)--> parole
    parole --(any counted event within watchtime)--> jail for repeatmult x the last sentence (capped)
    parole --(watchtime quiet)--> forgotten;   watch --(window over)--> forgotten

The allow list wins over everything; an address on the deny list is dropped by the firewall already,
so its events are only counted.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pbx.autoban.addresses import (
    LOOPBACK,
    AddressList,
    Interval,
    IPAddress,
    ban_key,
    parse_address,
    parse_entry,
)
from pbx.autoban.config import Config


class Set(StrEnum):
    """The sets of the original AutoBan, by the names its CLI uses."""

    WATCH = "watch"
    JAIL = "jail"
    PAROLE = "parole"
    ALLOW = "allow"
    DENY = "deny"


TIMED = (Set.WATCH, Set.JAIL, Set.PAROLE)
LISTS = (Set.ALLOW, Set.DENY)


@dataclass(slots=True)
class Record:
    """What AutoBan knows about one key (an IPv4 address or an IPv6 prefix)."""

    key: str
    count: int = 0  # weighted events in the current watch window
    watch_since: float = 0.0
    watch_until: float = 0.0
    jail_since: float = 0.0
    jail_until: float = 0.0
    parole_until: float = 0.0
    sentence: float = 0.0  # the last sentence, the base of the next escalation
    jailings: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    released: bool = True  # the release of the current sentence was reported

    def watched(self, now: float) -> bool:
        return self.watch_until > now and not self.jailed(now)

    def jailed(self, now: float) -> bool:
        return self.jail_until > now

    def paroled(self, now: float) -> bool:
        return self.parole_until > now and not self.jailed(now)

    def alive(self, now: float) -> bool:
        return self.watch_until > now or self.jail_until > now or self.parole_until > now

    def in_set(self, which: Set, now: float) -> bool:
        return {Set.WATCH: self.watched, Set.JAIL: self.jailed, Set.PAROLE: self.paroled}[which](now)

    def until(self, which: Set) -> float:
        return {Set.WATCH: self.watch_until, Set.JAIL: self.jail_until, Set.PAROLE: self.parole_until}[which]


# --- actions: what the firewall and the log must do -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Put:
    """Put `key` into a timed set until `until` (replacing any element there)."""

    set: Set
    key: str
    until: float


@dataclass(frozen=True, slots=True)
class Remove:
    set: Set
    key: str


@dataclass(frozen=True, slots=True)
class ListChanged:
    """The allow or deny list changed: the firewall reloads that list whole."""

    set: Set


@dataclass(frozen=True, slots=True)
class Jailed:
    """For the log: `key` was jailed (manual: by a command)."""

    key: str
    sentence: float
    until: float
    count: int
    events: tuple[tuple[str, int], ...]
    jailings: int
    manual: bool = False


@dataclass(frozen=True, slots=True)
class Released:
    """For the log: `key` left jail (served: its time ran out; else by a command)."""

    key: str
    served: bool
    parole_until: float


Action = Put | Remove | ListChanged | Jailed | Released


class Outcome(StrEnum):
    """What one event did, for the counters."""

    IGNORED = "ignored"  # not a counted event, or no address in it
    ALLOWED = "allowed"
    DENIED = "denied"
    JAILED_ALREADY = "jailed_already"
    WATCHED = "watched"
    JAILED = "jailed"


class Policy:
    def __init__(self, config: Config, extra_allow: Iterable[str] = ()) -> None:
        self.config = config
        # Static entries (the config file, loopback, the AMI host) and the ones added by commands.
        loopback = AddressList(LOOPBACK)
        extra = [e for e in extra_allow if not _within(e, loopback)]
        self.static = {
            Set.ALLOW: AddressList([*LOOPBACK, *extra, *config.allow]),
            Set.DENY: AddressList(config.deny),
        }
        self.dynamic = {Set.ALLOW: AddressList(), Set.DENY: AddressList()}
        self.records: dict[str, Record] = {}
        self._deadlines: list[tuple[float, str]] = []
        # Records opened by events that were never jailed nor paroled, oldest first: the ones dropped
        # when spoofed sources would otherwise fill memory and the kernel sets (config.maxwatched).
        self._watch_only: OrderedDict[str, None] = OrderedDict()
        self.watch_dropped = 0

    # --- queries ------------------------------------------------------------------------------------

    def key_of(self, address: IPAddress) -> str:
        return ban_key(address, self.config.ipv6_prefix)

    def allowed(self, address: IPAddress) -> bool:
        return address in self.static[Set.ALLOW] or address in self.dynamic[Set.ALLOW]

    def denied(self, address: IPAddress) -> bool:
        return address in self.static[Set.DENY] or address in self.dynamic[Set.DENY]

    def members(self, which: Set, now: float) -> list[Record]:
        return [r for r in self.records.values() if r.in_set(which, now)]

    def list_entries(self, which: Set) -> tuple[list[str], list[str]]:
        """(static, dynamic) entries of the allow or deny list."""
        return list(self.static[which].entries), list(self.dynamic[which].entries)

    def list_intervals(self, which: Set) -> list[Interval]:
        return AddressList([*self.static[which].entries, *self.dynamic[which].entries]).intervals()

    # --- events -------------------------------------------------------------------------------------

    def event(  # noqa: PLR0911 - one return per outcome reads best
        self, address: IPAddress, name: str, now: float
    ) -> tuple[Outcome, list[Action]]:
        weight = self.config.events.get(name, 0)
        if weight <= 0:
            return Outcome.IGNORED, []
        if self.allowed(address):
            return Outcome.ALLOWED, []
        key = self.key_of(address)
        record = self.records.get(key)
        if self.denied(address):
            if record is not None:
                _tally(record, name, now)
            return Outcome.DENIED, []
        actions: list[Action] = []
        if record is None:
            record = self.records[key] = Record(key, first_seen=now)
            self._watch_only[key] = None
            actions += self._drop_oldest_watched()
        _tally(record, name, now)
        if record.jailed(now):
            return Outcome.JAILED_ALREADY, []
        if record.paroled(now):
            sentence = min(record.sentence * self.config.repeatmult, self.config.maxjailtime)
            return Outcome.JAILED, actions + self._jail(record, sentence, now, record.count + weight)
        if record.watch_until <= now:
            record.count, record.watch_since = 0, now
            record.watch_until = now + self.config.watchtime
            actions.append(Put(Set.WATCH, key, record.watch_until))
            self._remember(record.watch_until, key)
        record.count += weight
        if record.count >= self.config.maxcount:
            return Outcome.JAILED, actions + self._jail(record, self.config.jailtime, now, record.count)
        return Outcome.WATCHED, actions

    def _drop_oldest_watched(self) -> list[Action]:
        actions: list[Action] = []
        while len(self._watch_only) > self.config.maxwatched:
            key, _ = self._watch_only.popitem(last=False)
            if self.records.pop(key, None) is not None:
                self.watch_dropped += 1
                actions.append(Remove(Set.WATCH, key))
        return actions

    def _forget(self, key: str) -> None:
        self.records.pop(key, None)
        self._watch_only.pop(key, None)

    def _jail(
        self, record: Record, sentence: float, now: float, count: int, manual: bool = False
    ) -> list[Action]:
        self._watch_only.pop(record.key, None)
        sentence = max(1.0, min(sentence, self.config.maxjailtime))
        record.jail_since, record.jail_until = now, now + sentence
        record.parole_until = record.jail_until + self.config.watchtime
        record.sentence, record.released = sentence, False
        record.jailings += 1
        had_watch = record.watch_until > now
        record.count, record.watch_until = 0, 0.0
        self._remember(record.jail_until, record.key)
        self._remember(record.parole_until, record.key)
        actions: list[Action] = [
            Put(Set.JAIL, record.key, record.jail_until),
            Put(Set.PAROLE, record.key, record.parole_until),
            Jailed(
                record.key,
                sentence,
                record.jail_until,
                count,
                tuple(sorted(record.events.items())),
                record.jailings,
                manual,
            ),
        ]
        if had_watch:
            actions.append(Remove(Set.WATCH, record.key))
        return actions

    # --- time ---------------------------------------------------------------------------------------

    def _remember(self, deadline: float, key: str) -> None:
        heapq.heappush(self._deadlines, (deadline, key))

    def next_deadline(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    def expire(self, now: float) -> list[Action]:
        """Releases whose time came, and records with nothing left to remember dropped."""
        actions: list[Action] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, key = heapq.heappop(self._deadlines)
            record = self.records.get(key)
            if record is None:
                continue
            if not record.released and record.jail_until <= now:
                record.released = True
                actions.append(Released(key, True, record.parole_until))
            if not record.alive(now):
                self._forget(key)
        return actions

    # --- commands -----------------------------------------------------------------------------------

    def jail(self, address: IPAddress, now: float, sentence: float | None = None) -> list[Action]:
        """`autoban add jail = ADDR`: jail now for jailtime (or `sentence`)."""
        if self.allowed(address):
            raise ValueError(f"{address} is on the allow list: remove it there first")
        key = self.key_of(address)
        record = self.records.setdefault(key, Record(key, first_seen=now, last_seen=now))
        return self._jail(record, sentence or self.config.jailtime, now, record.count, manual=True)

    def parole(self, address: IPAddress, now: float) -> list[Action]:
        if self.allowed(address):
            raise ValueError(f"{address} is on the allow list: remove it there first")
        key = self.key_of(address)
        record = self.records.setdefault(key, Record(key, first_seen=now, last_seen=now))
        self._watch_only.pop(key, None)
        record.parole_until = max(record.jail_until, now) + self.config.watchtime
        record.sentence = record.sentence or self.config.jailtime
        self._remember(record.parole_until, key)
        return [Put(Set.PAROLE, key, record.parole_until)]

    def watch(self, address: IPAddress, now: float) -> list[Action]:
        if self.allowed(address):
            raise ValueError(f"{address} is on the allow list: remove it there first")
        key = self.key_of(address)
        record = self.records.setdefault(key, Record(key, first_seen=now, last_seen=now))
        if record.watch_until <= now:
            record.count, record.watch_since = 0, now
        record.watch_until = now + self.config.watchtime
        self._remember(record.watch_until, key)
        return [Put(Set.WATCH, key, record.watch_until)]

    def release(self, key: str, which: Set, now: float) -> list[Action]:
        """Take `key` out of one timed set at once (`autoban del jail = ADDR`)."""
        record = self.records.get(key)
        if record is None or not record.in_set(which, now):
            return []
        actions: list[Action] = [Remove(which, key)]
        if which is Set.JAIL:
            record.jail_until, record.released = now, True
            # Parole starts now: the released address is watched as closely as one that served its time.
            record.parole_until = now + self.config.watchtime
            self._remember(record.parole_until, key)
            actions += [Put(Set.PAROLE, key, record.parole_until), Released(key, False, record.parole_until)]
        elif which is Set.PAROLE:
            record.parole_until = now
        else:
            record.watch_until, record.count = now, 0
        if not record.alive(now):
            self._forget(key)
        return actions

    def add_to_list(self, which: Set, entry: str, now: float) -> list[Action]:
        interval = self.dynamic[which].add(entry)
        actions: list[Action] = [ListChanged(which)]
        if which is Set.ALLOW:
            # The allow list wins: whoever it now covers is forgiven at once.
            for key in [k for k, r in self.records.items() if _covers(interval, r.key)]:
                for timed in TIMED:
                    actions += self.release(key, timed, now)
                self._forget(key)
        return actions

    def remove_from_list(self, which: Set, entry: str) -> list[Action]:
        if self.dynamic[which].remove(entry):
            return [ListChanged(which)]
        wanted = parse_entry(entry)
        if wanted in self.static[which].entries.values():
            raise ValueError(
                f"{entry} is on the {which.value} list of autoban.conf (or built in): not removed"
            )
        return []

    def clear(self, which: Set, now: float) -> list[Action]:
        if which in LISTS:
            if not self.dynamic[which]:
                return []
            self.dynamic[which].clear()
            return [ListChanged(which)]
        actions: list[Action] = []
        for key in [r.key for r in self.members(which, now)]:
            actions += self.release(key, which, now)
        return actions

    # --- persistence --------------------------------------------------------------------------------

    def restore(
        self, records: Iterable[Record], allow: Iterable[str], deny: Iterable[str], now: float
    ) -> list[str]:
        """Take back a saved state; the entries and records that cannot be used, each with why.

        One bad list entry costs that entry only. IPv6 records are re-keyed to the current
        ipv6_prefix (it may have changed since the save); records that now share a key are merged,
        keeping the harsher state.
        """
        skipped: list[str] = []
        for which, entries in ((Set.ALLOW, allow), (Set.DENY, deny)):
            for entry in entries:
                try:
                    self.dynamic[which].add(entry)
                except ValueError as err:
                    skipped.append(f"{which.value} entry {entry!r}: {err}")
        # Oldest first, so that the watch-only order (and what a cap drops first) follows first_seen.
        for record in sorted(self._usable(records, now, skipped), key=lambda r: r.first_seen):
            known = self.records.get(record.key)
            kept = record if known is None else _harsher(known, record)
            self.records[kept.key] = kept
            if kept.jailings == 0 and kept.parole_until <= now and kept.jail_until <= now:
                self._watch_only[kept.key] = None
            else:
                self._watch_only.pop(kept.key, None)
            for deadline in (kept.watch_until, kept.jail_until, kept.parole_until):
                if deadline > now:
                    self._remember(deadline, kept.key)
        self._drop_oldest_watched()
        return skipped

    def _usable(self, records: Iterable[Record], now: float, skipped: list[str]) -> list[Record]:
        """The records still alive and not allowed, keyed by the current ipv6_prefix."""
        out = []
        for record in records:
            if not record.alive(now):
                continue
            try:
                address = parse_address(record.key)
            except ValueError as err:
                skipped.append(f"record {record.key!r}: {err}")
                continue
            if self.allowed(address):
                continue
            record.key = self.key_of(address)
            out.append(record)
        return out

    def timed_elements(self, now: float) -> list[Put]:
        """Every timed-set element as it should be in the firewall now (for a rebuild)."""
        out: list[Put] = []
        for record in self.records.values():
            for which in TIMED:
                if record.in_set(which, now) or (which is Set.PAROLE and record.parole_until > now):
                    out.append(Put(which, record.key, record.until(which)))
        return out


def _harsher(a: Record, b: Record) -> Record:
    """Two records of one key merged: the harsher one's state, both histories."""
    keep, other = (a, b) if _severity(a) >= _severity(b) else (b, a)
    for name, n in other.events.items():
        keep.events[name] = keep.events.get(name, 0) + n
    keep.first_seen = min(keep.first_seen, other.first_seen)
    keep.last_seen = max(keep.last_seen, other.last_seen)
    keep.jailings = max(keep.jailings, other.jailings)
    keep.sentence = max(keep.sentence, other.sentence)
    return keep


def _severity(record: Record) -> tuple[float, float, float, int]:
    return (record.jail_until, record.parole_until, record.sentence, record.count)


def _tally(record: Record, name: str, now: float) -> None:
    record.events[name] = record.events.get(name, 0) + 1
    record.last_seen = now


def _within(entry: str, entries: AddressList) -> bool:
    try:
        return parse_address(entry) in entries
    except ValueError:
        return False


def _covers(interval: Interval, key: str) -> bool:
    try:
        address = parse_address(key)
    except ValueError:
        return False
    return address.version == interval.version and interval.first <= int(address) <= interval.last
