"""Addresses as AutoBan meets them: in security events, in lists, and as the keys it bans.

Pure functions only. An attacker is banned by *key*: an IPv4 address as is, an IPv6 address by the
network of its first `ipv6_prefix` bits, since one IPv6 host usually owns a whole /64 and would otherwise
walk around a ban by changing its interface identifier.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK = ("127.0.0.0/8", "::1")


def parse_address(text: str) -> IPAddress:
    """One address, IPv4 or IPv6 (brackets and an IPv4-mapped IPv6 form accepted)."""
    raw = text.strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    try:
        address = ipaddress.ip_address(raw.split("%", 1)[0])
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def remote_address(field: str) -> IPAddress | None:
    """The address of a security event's RemoteAddress, or None when there is none to blame.

    Forms seen: `IPV4/UDP/1.2.3.4/5060`, `IPV6/UDP/2001:db8::1/5060`, without the transport
    (`IPV4/1.2.3.4/5060`), and a bare address with or without a port (`[2001:db8::1]:5060`).
    """
    parts = [p for p in field.strip().split("/") if p]
    if not parts:
        return None
    if parts[0].upper() in ("IPV4", "IPV6"):
        parts = parts[1:]
        if parts and parts[0].upper() in ("UDP", "TCP", "TLS", "WS", "WSS", "SCTP"):
            parts = parts[1:]
        candidates = parts[:1]
    else:
        candidates = [field.strip()]
    for candidate in candidates:
        for text in _with_and_without_port(candidate):
            try:
                return parse_address(text)
            except ValueError:
                continue
    return None


def _with_and_without_port(text: str) -> list[str]:
    out = [text]
    if text.startswith("[") and "]:" in text:
        out.append(text[1 : text.index("]:")])
    elif text.count(":") == 1:
        out.append(text.split(":", 1)[0])
    return out


def ban_key(address: IPAddress, ipv6_prefix: int) -> str:
    """The text AutoBan bans: the IPv4 address, or the IPv6 network address of the /ipv6_prefix."""
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    network = ipaddress.IPv6Network((address, ipv6_prefix), strict=False)
    return str(network.network_address)


def key_label(key: str, ipv6_prefix: int) -> str:
    """How a key reads to people: an IPv6 key shows its prefix length."""
    return f"{key}/{ipv6_prefix}" if ":" in key and ipv6_prefix < 128 else key


@dataclass(frozen=True, order=True)
class Interval:
    """An inclusive range of one family: what a list entry means."""

    version: int
    first: int
    last: int

    def render(self) -> str:
        """nftables' spelling: a plain address, a prefix when it is one, else `a-b`."""
        cls = ipaddress.IPv4Address if self.version == 4 else ipaddress.IPv6Address
        first, last = cls(self.first), cls(self.last)
        if self.first == self.last:
            return str(first)
        networks = list(ipaddress.summarize_address_range(first, last))
        if len(networks) == 1:
            return str(networks[0])
        return f"{first}-{last}"


def parse_entry(text: str) -> Interval:
    """A list entry: one address, a CIDR range (`10.0.0.0/8`, host bits allowed) or `a-b`."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty address")
    if "-" in raw:
        low_text, _, high_text = raw.partition("-")
        low, high = parse_address(low_text), parse_address(high_text)
        if low.version != high.version:
            raise ValueError(f"range {text!r} mixes IPv4 and IPv6")
        if int(high) < int(low):
            raise ValueError(f"range {text!r} ends before it starts")
        return Interval(low.version, int(low), int(high))
    if "/" in raw:
        try:
            network = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise ValueError(f"not an address, CIDR range or a-b range: {text!r}") from None
        return Interval(network.version, int(network.network_address), int(network.broadcast_address))
    address = parse_address(raw)
    return Interval(address.version, int(address), int(address))


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping and adjacent ranges joined: nftables refuses overlaps in one batch."""
    out: list[Interval] = []
    for item in sorted(intervals):
        if out and out[-1].version == item.version and item.first <= out[-1].last + 1:
            if item.last > out[-1].last:
                out[-1] = Interval(item.version, out[-1].first, item.last)
        else:
            out.append(item)
    return out


class AddressList:
    """An allow or deny list: entries as written, and a fast membership test over their union."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.entries: dict[str, Interval] = {}
        self._firsts: dict[int, list[int]] = {4: [], 6: []}
        self._lasts: dict[int, list[int]] = {4: [], 6: []}
        for entry in entries:
            self.entries[entry] = parse_entry(entry)
        self._index()

    def _index(self) -> None:
        merged = merge(self.entries.values())
        for version in (4, 6):
            mine = [i for i in merged if i.version == version]
            self._firsts[version] = [i.first for i in mine]
            self._lasts[version] = [i.last for i in mine]

    def add(self, entry: str) -> Interval:
        interval = parse_entry(entry)
        self.entries[entry] = interval
        self._index()
        return interval

    def remove(self, entry: str) -> bool:
        """Remove the entry written as `entry` (or meaning the same range); True if one was there."""
        wanted = parse_entry(entry)
        names = [name for name, interval in self.entries.items() if interval == wanted]
        for name in names:
            del self.entries[name]
        self._index()
        return bool(names)

    def clear(self) -> None:
        self.entries.clear()
        self._index()

    def intervals(self) -> list[Interval]:
        return merge(self.entries.values())

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        value, firsts = int(address), self._firsts[address.version]
        i = bisect.bisect_right(firsts, value) - 1
        return i >= 0 and value <= self._lasts[address.version][i]

    def __len__(self) -> int:
        return len(self.entries)


def default_gateways(route: str, ipv6_route: str = "") -> frozenset[IPAddress]:
    """The default gateways in the kernel's /proc/net/route and /proc/net/ipv6_route tables."""
    out: set[IPAddress] = set()
    for line in route.splitlines()[1:]:
        cols = line.split()
        # Iface Destination Gateway Flags RefCnt Use Metric Mask ...; hex in host (little-endian) order
        if len(cols) >= 8 and cols[1] == "00000000" and cols[7] == "00000000" and cols[2] != "00000000":
            try:
                out.add(ipaddress.IPv4Address(bytes.fromhex(cols[2])[::-1]))
            except ValueError:
                continue
    for line in ipv6_route.splitlines():
        cols = line.split()
        # destination, its prefix length, source, its prefix length, next hop, ... (hex, network order)
        if len(cols) < 5 or cols[1] != "00" or cols[0].strip("0") or not cols[4].strip("0"):
            continue
        try:
            out.add(ipaddress.IPv6Address(bytes.fromhex(cols[4])))
        except ValueError:
            continue
    return frozenset(out)
