"""nftables, driven in-process through libnftables, in batches: one transaction per batch of decisions.

One `inet` table serves IPv4 and IPv6. The timed sets (watch, jail, parole) are hash sets of keys with
per-element timeouts, so the kernel releases an address on time even if the daemon is gone. IPv6 keys
are prefixes: the rule masks the source address to `ipv6_prefix` bits before the lookup, which keeps
those sets plain hashes (fast at 100,000 elements). The allow and deny lists are interval sets (single
addresses, CIDR and a-b ranges), reloaded whole when they change.

Replacing an element's timeout: re-adding an element refreshes its timeout only on newer kernels, and
deleting a missing one fails the whole batch. So a put is `add, delete, add` and a removal `add,
delete`: each step is valid whatever the kernel holds, on every kernel version.

The rendering is pure (unit-tested); `Nft` is the only code that touches the kernel.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pbx.autoban.addresses import Interval
from pbx.autoban.policy import LISTS, TIMED, Put, Remove, Set

log = logging.getLogger(__name__)

FAMILY = "inet"
TABLE = "autoban"
SET_SIZE = 1 << 20
# nftables takes element timeouts below 2^31 ms (about 24.8 days).
MAX_TIMEOUT_MS = (1 << 31) - 1


class FirewallError(Exception):
    """nftables refused a batch; `denied` when the container lacks NET_ADMIN."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.denied = "Operation not permitted" in message or "Permission denied" in message


def set_name(which: Set, key_or_version: str | int) -> str:
    if isinstance(key_or_version, int):
        return f"{which.value}{key_or_version}"
    return f"{which.value}{6 if ':' in key_or_version else 4}"


def render_table(ipv6_prefix: int) -> str:
    """The whole table, replacing any earlier one in the same transaction."""
    mask = ipaddress.IPv6Network(("::", ipv6_prefix)).netmask
    six = f"ip6 saddr & {mask}" if ipv6_prefix < 128 else "ip6 saddr"
    sets = []
    for which in TIMED:
        for version, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            sets.append(
                f"  set {set_name(which, version)} {{ type {kind}; flags timeout; size {SET_SIZE}; }}"
            )
    for which in LISTS:
        for version, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            sets.append(f"  set {set_name(which, version)} {{ type {kind}; flags interval; }}")
    # raw priority: dropped before conntrack spends anything on them; the allow list is looked at first.
    rules = [
        "    ip saddr @allow4 accept",
        "    ip6 saddr @allow6 accept",
        '    ip saddr @deny4 counter drop comment "deny4"',
        '    ip6 saddr @deny6 counter drop comment "deny6"',
        '    ip saddr @jail4 counter drop comment "jail4"',
        f'    {six} @jail6 counter drop comment "jail6"',
    ]
    return "\n".join(
        [
            f"add table {FAMILY} {TABLE}",
            f"delete table {FAMILY} {TABLE}",
            f"table {FAMILY} {TABLE} {{",
            *sets,
            "  chain prerouting {",
            "    type filter hook prerouting priority raw; policy accept;",
            *rules,
            "  }",
            "}",
        ]
    )


def timeout_ms(until: float, now: float) -> int:
    return max(1, min(MAX_TIMEOUT_MS, round((until - now) * 1000)))


def render_put(put: Put, now: float) -> list[str]:
    where = f"element {FAMILY} {TABLE} {set_name(put.set, put.key)}"
    return [
        f"add {where} {{ {put.key} timeout 1s }}",
        f"delete {where} {{ {put.key} }}",
        f"add {where} {{ {put.key} timeout {timeout_ms(put.until, now)}ms }}",
    ]


def render_remove(remove: Remove) -> list[str]:
    where = f"element {FAMILY} {TABLE} {set_name(remove.set, remove.key)}"
    return [f"add {where} {{ {remove.key} timeout 1s }}", f"delete {where} {{ {remove.key} }}"]


def render_list(which: Set, intervals: Iterable[Interval]) -> list[str]:
    lines = []
    by_version: dict[int, list[str]] = {4: [], 6: []}
    for interval in intervals:
        by_version[interval.version].append(interval.render())
    for version, items in by_version.items():
        name = set_name(which, version)
        lines.append(f"flush set {FAMILY} {TABLE} {name}")
        if items:
            lines.append(f"add element {FAMILY} {TABLE} {name} {{ {', '.join(items)} }}")
    return lines


def render_bulk(puts: Iterable[Put], now: float) -> list[str]:
    """Fresh elements into an empty table: one command per set (a rebuild of 100,000 is one batch)."""
    grouped: dict[str, list[str]] = {}
    for put in puts:
        grouped.setdefault(set_name(put.set, put.key), []).append(
            f"{put.key} timeout {timeout_ms(put.until, now)}ms"
        )
    return [
        f"add element {FAMILY} {TABLE} {name} {{ {', '.join(items)} }}" for name, items in grouped.items()
    ]


class Runner(Protocol):
    def run(self, commands: str) -> str: ...


class Nft:
    """libnftables in this process: no `nft` process per command."""

    def __init__(self) -> None:
        import nftables  # the distro's python3-nftables / py3-nftables

        self._nft = nftables.Nftables()
        self._nft.set_handle_output(False)

    def run(self, commands: str) -> str:
        rc, output, error = self._nft.cmd(commands)
        if rc != 0:
            raise FirewallError(error.strip() or f"nft failed ({rc})")
        return str(output)

    def run_json(self, commands: str) -> dict:
        self._nft.set_json_output(True)
        try:
            return json.loads(self.run(commands) or "{}")
        finally:
            self._nft.set_json_output(False)


@dataclass
class Counters:
    packets: int = 0
    bytes: int = 0


class Firewall:
    """Queue of changes, flushed as one transaction."""

    def __init__(self, runner: Runner, ipv6_prefix: int) -> None:
        self.runner = runner
        self.ipv6_prefix = ipv6_prefix
        self.pending: list[str] = []
        self.batches = 0
        self.commands = 0

    def setup(self, puts: Iterable[Put], lists: dict[Set, list[Interval]], now: float) -> None:
        """(Re)create the table with every element it must hold now, in one transaction."""
        lines = [render_table(self.ipv6_prefix), *render_bulk(puts, now)]
        for which, intervals in lists.items():
            lines += render_list(which, intervals)
        self.pending.clear()
        self._run(lines)

    def teardown(self) -> None:
        """Remove the table, whether it exists or not (AutoBan disabled)."""
        self.pending.clear()
        self._run([f"add table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}"])

    def put(self, put: Put, now: float) -> None:
        self.pending += render_put(put, now)

    def remove(self, remove: Remove) -> None:
        self.pending += render_remove(remove)

    def load_list(self, which: Set, intervals: Iterable[Interval]) -> None:
        self.pending += render_list(which, intervals)

    def flush(self) -> int:
        """Apply everything queued in one transaction; the number of commands applied."""
        if not self.pending:
            return 0
        lines, self.pending = self.pending, []
        self._run(lines)
        return len(lines)

    def _run(self, lines: list[str]) -> None:
        self.runner.run("\n".join(lines))
        self.batches += 1
        self.commands += len(lines)

    def drop_counters(self) -> dict[str, Counters]:
        """Packets dropped per rule (deny4, deny6, jail4, jail6)."""
        runner = self.runner
        if not isinstance(runner, Nft):
            return {}
        out: dict[str, Counters] = {}
        listing = runner.run_json(f"list chain {FAMILY} {TABLE} prerouting")
        for item in listing.get("nftables", []):
            rule = item.get("rule")
            if not rule or "comment" not in rule:
                continue
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    counter = expr["counter"]
                    out[rule["comment"]] = Counters(int(counter["packets"]), int(counter["bytes"]))
        return out

    def contains(self, which: Set, key: str) -> bool:
        """Whether the kernel holds `key` in a set now (tests and benchmarks)."""
        try:
            self.runner.run(f"get element {FAMILY} {TABLE} {set_name(which, key)} {{ {key} }}")
        except FirewallError:
            return False
        return True
