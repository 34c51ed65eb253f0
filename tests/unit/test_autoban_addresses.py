from __future__ import annotations

import ipaddress

import pytest

from pbx.autoban.addresses import (
    AddressList,
    Interval,
    ban_key,
    default_gateways,
    key_label,
    merge,
    parse_address,
    parse_entry,
    remote_address,
)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("IPV4/UDP/192.0.2.7/5060", "192.0.2.7"),
        ("IPV4/TCP/192.0.2.7/37412", "192.0.2.7"),
        ("IPV6/UDP/2001:db8::1/5060", "2001:db8::1"),
        ("IPV6/TLS/2001:db8:0:0:0:0:0:1/5061", "2001:db8::1"),
        ("IPV4/192.0.2.8/5060", "192.0.2.8"),
        ("IPV6/2001:db8::2/5060", "2001:db8::2"),
        ("ipv4/udp/192.0.2.9/5060", "192.0.2.9"),
        ("192.0.2.10", "192.0.2.10"),
        ("192.0.2.10:5060", "192.0.2.10"),
        ("[2001:db8::3]:5060", "2001:db8::3"),
        ("IPV6/UDP/::ffff:192.0.2.11/5060", "192.0.2.11"),
        ("  IPV4/UDP/192.0.2.12/5060  ", "192.0.2.12"),
    ],
)
def test_remote_address_forms(field: str, expected: str) -> None:
    assert str(remote_address(field)) == expected


@pytest.mark.parametrize("field", ["", "IPV4/UDP//5060", "IPV4/UDP/not-an-ip/5060", "garbage", "IPV6/UDP/"])
def test_remote_address_without_an_address_is_none(field: str) -> None:
    assert remote_address(field) is None


def test_ban_key_keeps_ipv4_and_prefixes_ipv6() -> None:
    assert ban_key(ipaddress.ip_address("192.0.2.7"), 64) == "192.0.2.7"
    assert ban_key(ipaddress.ip_address("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 64) == "2001:db8:1:2::"
    assert ban_key(ipaddress.ip_address("2001:db8:1:2:aaaa::1"), 48) == "2001:db8:1::"
    assert ban_key(ipaddress.ip_address("2001:db8::1"), 128) == "2001:db8::1"


def test_key_label_shows_the_prefix_for_ipv6_only() -> None:
    assert key_label("2001:db8::", 64) == "2001:db8::/64"
    assert key_label("192.0.2.7", 64) == "192.0.2.7"
    assert key_label("2001:db8::1", 128) == "2001:db8::1"


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("192.0.2.7", "192.0.2.7", "192.0.2.7"),
        ("10.0.0.0/8", "10.0.0.0", "10.255.255.255"),
        ("10.1.2.3/8", "10.0.0.0", "10.255.255.255"),
        ("192.0.2.1-192.0.2.9", "192.0.2.1", "192.0.2.9"),
        ("2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
        ("2001:db8::1 - 2001:db8::5", "2001:db8::1", "2001:db8::5"),
    ],
)
def test_parse_entry(text: str, first: str, last: str) -> None:
    entry = parse_entry(text)
    assert entry.first == int(ipaddress.ip_address(first))
    assert entry.last == int(ipaddress.ip_address(last))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("300.1.2.3", "not an IP address"),
        ("10.0.0.0/33", "not an address, CIDR"),
        ("192.0.2.9-192.0.2.1", "ends before it starts"),
        ("192.0.2.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("example.com", "not an IP address"),
    ],
)
def test_parse_entry_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_entry(text)


def test_interval_renders_as_nftables_spells_it() -> None:
    assert parse_entry("10.0.0.0/8").render() == "10.0.0.0/8"
    assert parse_entry("192.0.2.7").render() == "192.0.2.7"
    assert parse_entry("192.0.2.1-192.0.2.9").render() == "192.0.2.1-192.0.2.9"
    assert parse_entry("192.0.2.0-192.0.2.255").render() == "192.0.2.0/24"


def test_merge_joins_overlapping_and_adjacent_but_not_families() -> None:
    merged = merge(
        [parse_entry("10.0.0.0/24"), parse_entry("10.0.1.0/24"), parse_entry("10.0.0.5"), parse_entry("::1")]
    )
    assert merged == [
        Interval(4, int(ipaddress.ip_address("10.0.0.0")), int(ipaddress.ip_address("10.0.1.255"))),
        parse_entry("::1"),
    ]


def test_address_list_membership() -> None:
    entries = AddressList(["10.0.0.0/8", "192.0.2.1-192.0.2.9", "2001:db8::/32"])
    assert ipaddress.ip_address("10.200.1.1") in entries
    assert ipaddress.ip_address("192.0.2.9") in entries
    assert ipaddress.ip_address("192.0.2.10") not in entries
    assert ipaddress.ip_address("11.0.0.1") not in entries
    assert ipaddress.ip_address("2001:db8:ffff::1") in entries
    assert ipaddress.ip_address("2001:db9::1") not in entries
    assert "10.0.0.1" not in entries  # text is not an address


def test_address_list_remove_by_meaning() -> None:
    entries = AddressList(["10.0.0.0/8"])
    assert entries.remove("10.1.1.1/8")
    assert ipaddress.ip_address("10.0.0.1") not in entries
    assert not entries.remove("10.0.0.0/8")


def test_parse_address_strips_brackets_and_zone() -> None:
    assert str(parse_address("[2001:db8::1]")) == "2001:db8::1"
    assert str(parse_address("fe80::1%eth0")) == "fe80::1"


ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
IPV6_ROUTE = (
    "fd002800000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fd002800000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
)


def test_default_gateways_from_the_kernel_route_tables() -> None:
    assert default_gateways(ROUTE, IPV6_ROUTE) == {
        ipaddress.ip_address("172.17.0.1"),
        ipaddress.ip_address("fd00:2800::1"),
    }
    assert default_gateways("Iface\tDestination\n", "garbage\n") == frozenset()
