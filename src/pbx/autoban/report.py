"""What AutoBan tells people and monitoring: status (JSON), the overview, set listings, `who`, metrics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pbx.autoban.addresses import key_label, parse_address
from pbx.autoban.config import format_duration
from pbx.autoban.policy import LISTS, TIMED, Policy, Record, Set

EventCounts = Mapping[str, int]


def when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def element(record: Record, which: Set, now: float, prefix: int) -> dict[str, Any]:
    since = {Set.WATCH: record.watch_since, Set.JAIL: record.jail_since, Set.PAROLE: record.jail_until}
    out: dict[str, Any] = {
        "address": key_label(record.key, prefix),
        "since": since[which],
        "until": record.until(which),
        "remaining": round(record.until(which) - now, 3),
    }
    if which is Set.WATCH:
        out["count"] = record.count
    if which is not Set.WATCH:
        out["sentence"] = record.sentence
        out["jailings"] = record.jailings
    return out


def sets(policy: Policy, wanted: tuple[Set, ...], now: float) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    prefix = policy.config.ipv6_prefix
    for which in wanted:
        if which in LISTS:
            static, dynamic = policy.list_entries(which)
            out[which.value] = [{"entry": e, "from": "config"} for e in static] + [
                {"entry": e, "from": "command"} for e in dynamic
            ]
        else:
            members = sorted(policy.members(which, now), key=lambda r: r.until(which))
            out[which.value] = [element(r, which, now, prefix) for r in members]
    return out


def render_sets(listing: Mapping[str, list[Any]]) -> str:
    lines = []
    for name, items in listing.items():
        lines.append(f"{name} ({len(items)}):")
        for item in items:
            if "entry" in item:
                lines.append(f"  {item['entry']}  ({item['from']})")
            else:
                extra = f"  {item['count']} event(s)" if "count" in item else ""
                left = format_duration(item["remaining"])
                lines.append(f"  {item['address']}  until {when(item['until'])} ({left} left){extra}")
    return "\n".join(lines)


def render_show(status: Mapping[str, Any]) -> str:
    lines = [f"AutoBan: {status['state']}" + (f" ({status['reason']})" if status.get("reason") else "")]
    ami = status.get("ami", {})
    lines.append(
        f"AMI: {'connected' if ami.get('connected') else 'not connected'}, {ami.get('connects', 0)} login(s)"
    )
    cfg = status.get("config", {})
    if cfg:
        lines.append(
            "policy: jail after {maxcount} within {w}, jail {j}, x{repeatmult:g} on parole, at most {m}, "
            "IPv6 by /{ipv6_prefix}".format(
                w=format_duration(cfg["watchtime"]),
                j=format_duration(cfg["jailtime"]),
                m=format_duration(cfg["maxjailtime"]),
                **cfg,
            )
        )
    sizes = status.get("sets", {})
    lines.append("sets: " + ", ".join(f"{name} {n}" for name, n in sizes.items()))
    counters = status.get("counters", {})
    if counters:
        lines.append(
            f"jailings {counters.get('jailings', 0)}, releases {counters.get('releases', 0)}, "
            f"nft batches {counters.get('nft_batches', 0)}, nft errors {counters.get('nft_errors', 0)}"
        )
        events = counters.get("events", {})
        if events:
            lines.append("events: " + ", ".join(f"{k} {v}" for k, v in sorted(events.items())))
        dropped = counters.get("dropped", {})
        if dropped:
            lines.append("dropped packets: " + ", ".join(f"{k} {v['packets']}" for k, v in dropped.items()))
    return "\n".join(lines)


def who(policy: Policy, text: str, now: float) -> dict[str, Any]:
    address = parse_address(text)
    key = policy.key_of(address)
    out: dict[str, Any] = {
        "address": str(address),
        "key": key_label(key, policy.config.ipv6_prefix),
        "allowed": policy.allowed(address),
        "denied": policy.denied(address),
        "sets": [],
    }
    for which in LISTS:
        static, dynamic = policy.list_entries(which)
        hits = [e for e in [*static, *dynamic] if _entry_has(e, address)]
        if hits:
            out[f"{which.value}_entries"] = hits
    record = policy.records.get(key)
    if record is not None:
        out["sets"] = [w.value for w in TIMED if record.in_set(w, now)]
        out["record"] = {
            "first_seen": record.first_seen,
            "last_seen": record.last_seen,
            "events": dict(record.events),
            "count": record.count if record.watched(now) else 0,
            "jailings": record.jailings,
            "sentence": record.sentence,
            **{f"{w.value}_until": record.until(w) for w in TIMED if record.in_set(w, now)},
            "jail_since": record.jail_since or None,
        }
    return out


def _entry_has(entry: str, address: object) -> bool:
    from pbx.autoban.addresses import AddressList

    return address in AddressList([entry])


def render_who(info: Mapping[str, Any], now: float) -> str:
    lines = [f"{info['address']} (banned as {info['key']})"]
    if info.get("allowed"):
        lines.append(f"  on the allow list: {', '.join(info.get('allow_entries', ['built in']))}")
    if info.get("denied"):
        lines.append(f"  on the deny list: {', '.join(info.get('deny_entries', []))}")
    lines.append(f"  in: {', '.join(info['sets']) or 'no timed set'}")
    record = info.get("record")
    if record:
        events = ", ".join(f"{k} x{v}" for k, v in sorted(record["events"].items())) or "none"
        lines.append(f"  seen {when(record['first_seen'])} .. {when(record['last_seen'])}: {events}")
        if record.get("jail_since"):
            lines.append(
                f"  jailed {record['jailings']} time(s); last at {when(record['jail_since'])} "
                f"for {format_duration(record['sentence'])}"
            )
        for name in ("watch", "jail", "parole"):
            until = record.get(f"{name}_until")
            if until:
                lines.append(f"  {name} until {when(until)} ({format_duration(until - now)} left)")
        if record.get("count"):
            lines.append(f"  {record['count']} weighted event(s) in the current watch window")
    if info.get("hostname"):
        lines.append(f"  reverse DNS: {info['hostname']}")
    return "\n".join(lines)


def metrics(status: Mapping[str, Any]) -> str:
    """Prometheus text exposition of the counters (also written to /var/lib/autoban/metrics.prom)."""
    counters = status.get("counters", {})
    out: list[str] = []

    def metric(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP autoban_{name} {text}")
        out.append(f"# TYPE autoban_{name} {kind}")
        out.extend(f"autoban_{name}{labels} {value:g}" for labels, value in samples)

    metric(
        "up",
        "gauge",
        "1 when AutoBan enforces: its nftables table is in place (whether AMI events arrive: ami_connected)",
        [("", status["state"] == "active")],
    )
    metric("ami_connected", "gauge", "1 while logged in to AMI", [("", status["ami"]["connected"])])
    metric("ami_logins_total", "counter", "AMI logins", [("", status["ami"]["connects"])])
    metric(
        "events_total",
        "counter",
        "Counted security events by name",
        [(f'{{event="{k}"}}', v) for k, v in sorted(counters.get("events", {}).items())],
    )
    metric(
        "event_outcomes_total",
        "counter",
        "What counted events led to",
        [(f'{{outcome="{k}"}}', v) for k, v in sorted(counters.get("outcomes", {}).items())],
    )
    metric("jailings_total", "counter", "Addresses jailed", [("", counters.get("jailings", 0))])
    metric("releases_total", "counter", "Addresses released", [("", counters.get("releases", 0))])
    metric("nft_batches_total", "counter", "nftables transactions", [("", counters.get("nft_batches", 0))])
    metric(
        "nft_errors_total", "counter", "nftables transactions refused", [("", counters.get("nft_errors", 0))]
    )
    metric(
        "watch_dropped_total",
        "counter",
        "Watched-only addresses dropped because maxwatched was reached",
        [("", counters.get("watch_dropped", 0))],
    )
    metric("saves_total", "counter", "State saves", [("", counters.get("saves", 0))])
    metric(
        "save_seconds",
        "gauge",
        "Duration of the last state save (written off the event loop)",
        [("", counters.get("save_seconds", 0.0))],
    )
    metric(
        "elements",
        "gauge",
        "Elements per set",
        [(f'{{set="{k}"}}', v) for k, v in status.get("sets", {}).items()],
    )
    metric(
        "dropped_packets_total",
        "counter",
        "Packets dropped per rule",
        [(f'{{rule="{k}"}}', v["packets"]) for k, v in sorted(counters.get("dropped", {}).items())],
    )
    return "\n".join(out) + "\n"
