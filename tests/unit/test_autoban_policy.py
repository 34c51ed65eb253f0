from __future__ import annotations

import ipaddress

import pytest

from pbx.autoban.config import Config
from pbx.autoban.policy import (
    Jailed,
    ListChanged,
    Outcome,
    Policy,
    Put,
    Released,
    Remove,
    Set,
)

A = ipaddress.ip_address("192.0.2.7")
B = ipaddress.ip_address("192.0.2.8")
T0 = 1_800_000_000.0


def policy(**changes: object) -> Policy:
    base = {"maxcount": 3, "watchtime": 60, "jailtime": 100, "repeatmult": 4.0, "maxjailtime": 1000}
    base.update(changes)
    return Policy(Config(**base))  # type: ignore[arg-type]


def hit(p: Policy, address: object, now: float, times: int = 1, name: str = "InvalidPassword") -> list:
    out: list = []
    for _ in range(times):
        outcome, actions = p.event(address, name, now)  # type: ignore[arg-type]
        out.append((outcome, actions))
    return out


def test_below_the_threshold_only_watches() -> None:
    p = policy()
    (first, actions), (second, more) = hit(p, A, T0, 2)
    assert first is Outcome.WATCHED and actions == [Put(Set.WATCH, "192.0.2.7", T0 + 60)]
    assert second is Outcome.WATCHED and more == []  # the window is already in the firewall
    assert p.records["192.0.2.7"].count == 2
    assert [r.key for r in p.members(Set.WATCH, T0)] == ["192.0.2.7"]


def test_the_threshold_jails_and_starts_parole_after_the_sentence() -> None:
    p = policy()
    results = hit(p, A, T0, 3)
    outcome, actions = results[-1]
    assert outcome is Outcome.JAILED
    assert Put(Set.JAIL, "192.0.2.7", T0 + 100) in actions
    assert Put(Set.PAROLE, "192.0.2.7", T0 + 160) in actions
    assert Remove(Set.WATCH, "192.0.2.7") in actions
    jailed = next(a for a in actions if isinstance(a, Jailed))
    assert (jailed.sentence, jailed.count, jailed.jailings, jailed.events) == (
        100,
        3,
        1,
        (("InvalidPassword", 3),),
    )
    assert [r.key for r in p.members(Set.JAIL, T0 + 1)] == ["192.0.2.7"]
    assert p.members(Set.WATCH, T0 + 1) == []


def test_events_spread_wider_than_the_window_never_jail() -> None:
    p = policy()
    for i in range(10):
        outcome, _ = p.event(A, "InvalidPassword", T0 + i * 31)
        assert outcome is Outcome.WATCHED
    assert p.members(Set.JAIL, T0 + 400) == []


def test_a_new_window_starts_when_the_old_one_is_over() -> None:
    p = policy()
    hit(p, A, T0, 2)
    outcome, actions = p.event(A, "InvalidPassword", T0 + 61)
    assert outcome is Outcome.WATCHED
    assert actions == [Put(Set.WATCH, "192.0.2.7", T0 + 121)]
    assert p.records["192.0.2.7"].count == 1


def test_events_while_jailed_are_counted_but_change_nothing() -> None:
    p = policy()
    hit(p, A, T0, 3)
    outcome, actions = p.event(A, "InvalidPassword", T0 + 5)
    assert outcome is Outcome.JAILED_ALREADY and actions == []
    assert p.records["192.0.2.7"].events["InvalidPassword"] == 4
    assert p.records["192.0.2.7"].jail_until == T0 + 100


def test_release_is_reported_once_when_the_time_comes() -> None:
    p = policy()
    hit(p, A, T0, 3)
    assert p.expire(T0 + 99) == []
    assert p.expire(T0 + 100) == [Released("192.0.2.7", True, T0 + 160)]
    assert p.expire(T0 + 101) == []
    assert [r.key for r in p.members(Set.PAROLE, T0 + 101)] == ["192.0.2.7"]


def test_an_event_on_parole_jails_at_once_for_repeatmult_times_the_sentence() -> None:
    p = policy()
    hit(p, A, T0, 3)
    outcome, actions = p.event(A, "InvalidAccountID", T0 + 120)
    assert outcome is Outcome.JAILED
    assert Put(Set.JAIL, "192.0.2.7", T0 + 120 + 400) in actions
    assert Put(Set.PAROLE, "192.0.2.7", T0 + 120 + 400 + 60) in actions
    assert next(a for a in actions if isinstance(a, Jailed)).jailings == 2


def test_escalation_is_capped_by_maxjailtime() -> None:
    p = policy()
    now = T0
    hit(p, A, now, 3)
    sentences = []
    for _ in range(4):
        now = p.records["192.0.2.7"].jail_until + 1
        _, actions = p.event(A, "InvalidPassword", now)
        sentences.append(next(a for a in actions if isinstance(a, Jailed)).sentence)
    assert sentences == [400, 1000, 1000, 1000]


def test_parole_over_forgets_the_history_of_sentences() -> None:
    p = policy()
    hit(p, A, T0, 3)
    p.expire(T0 + 200)
    assert "192.0.2.7" not in p.records
    results = hit(p, A, T0 + 200, 3)
    jailed = next(a for a in results[-1][1] if isinstance(a, Jailed))
    assert jailed.sentence == 100


def test_weights_count_and_unknown_events_are_ignored() -> None:
    p = policy(events={"InvalidPassword": 2, "InvalidAccountID": 1})
    assert p.event(A, "ChallengeSent", T0)[0] is Outcome.IGNORED
    assert p.event(A, "SuccessfulAuth", T0)[0] is Outcome.IGNORED
    assert p.event(A, "InvalidAccountID", T0)[0] is Outcome.WATCHED
    assert p.event(A, "InvalidPassword", T0)[0] is Outcome.JAILED  # 1 + 2 = maxcount


def test_ipv6_attackers_are_jailed_by_prefix() -> None:
    p = policy()
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
        outcome, actions = p.event(ipaddress.ip_address(host), "InvalidPassword", T0)
    assert outcome is Outcome.JAILED
    assert Put(Set.JAIL, "2001:db8:1:2::", T0 + 100) in actions
    outcome, _ = p.event(ipaddress.ip_address("2001:db8:1:3::1"), "InvalidPassword", T0)
    assert outcome is Outcome.WATCHED  # the neighbouring /64 is someone else


def test_ipv6_prefix_is_configurable() -> None:
    p = policy(ipv6_prefix=128, maxcount=1)
    _, actions = p.event(ipaddress.ip_address("2001:db8::5"), "InvalidPassword", T0)
    assert Put(Set.JAIL, "2001:db8::5", T0 + 100) in actions


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_is_always_allowed(address: str) -> None:
    p = policy(maxcount=1)
    assert p.event(ipaddress.ip_address(address), "InvalidPassword", T0) == (Outcome.ALLOWED, [])
    assert p.records == {}


def test_the_allow_list_wins_over_the_deny_list_and_commands() -> None:
    p = policy(maxcount=1, allow=("192.0.2.0/24",), deny=("192.0.2.0/24",))
    assert p.event(A, "InvalidPassword", T0)[0] is Outcome.ALLOWED
    with pytest.raises(ValueError, match="allow list"):
        p.jail(A, T0)


def test_extra_allow_covers_the_ami_host() -> None:
    p = Policy(Config(maxcount=1), extra_allow=["192.0.2.7"])
    assert p.event(A, "InvalidPassword", T0)[0] is Outcome.ALLOWED


def test_denied_addresses_are_not_watched() -> None:
    p = policy(maxcount=1, deny=("192.0.2.0/28",))
    assert p.event(A, "InvalidPassword", T0) == (Outcome.DENIED, [])
    assert p.records == {}
    assert p.event(ipaddress.ip_address("192.0.2.200"), "InvalidPassword", T0)[0] is Outcome.JAILED


def test_allowing_a_jailed_address_releases_it() -> None:
    p = policy()
    hit(p, A, T0, 3)
    actions = p.add_to_list(Set.ALLOW, "192.0.2.0/30", T0 + 1)
    assert actions[0] == ListChanged(Set.ALLOW)
    assert Remove(Set.JAIL, "192.0.2.7") not in actions  # .7 is not in /30
    actions = p.add_to_list(Set.ALLOW, "192.0.2.0/29", T0 + 1)
    assert Remove(Set.JAIL, "192.0.2.7") in actions
    assert "192.0.2.7" not in p.records


def test_manual_jail_and_release() -> None:
    p = policy()
    actions = p.jail(B, T0)
    assert Put(Set.JAIL, "192.0.2.8", T0 + 100) in actions
    assert next(a for a in actions if isinstance(a, Jailed)).manual
    actions = p.release("192.0.2.8", Set.JAIL, T0 + 10)
    assert Remove(Set.JAIL, "192.0.2.8") in actions
    assert Released("192.0.2.8", False, T0 + 70) in actions
    assert Put(Set.PAROLE, "192.0.2.8", T0 + 70) in actions
    assert p.members(Set.JAIL, T0 + 10) == []
    assert p.release("192.0.2.8", Set.JAIL, T0 + 11) == []
    # the time-out of the released sentence reports nothing more
    assert [a for a in p.expire(T0 + 100) if isinstance(a, Released)] == []


def test_removing_a_config_entry_is_refused_with_a_reason() -> None:
    p = policy(deny=("198.51.100.0/24",))
    with pytest.raises(ValueError, match=r"autoban\.conf"):
        p.remove_from_list(Set.DENY, "198.51.100.0/24")
    assert p.remove_from_list(Set.DENY, "198.51.100.9") == []


def test_clear_lists_and_sets() -> None:
    p = policy()
    p.add_to_list(Set.DENY, "198.51.100.9", T0)
    hit(p, A, T0, 3)
    hit(p, B, T0, 1)
    assert p.clear(Set.DENY, T0) == [ListChanged(Set.DENY)]
    assert p.clear(Set.DENY, T0) == []
    actions = p.clear(Set.JAIL, T0 + 1)
    assert Remove(Set.JAIL, "192.0.2.7") in actions
    assert p.members(Set.WATCH, T0 + 1)[0].key == "192.0.2.8"


def test_restore_keeps_remaining_time_and_drops_the_expired() -> None:
    p = policy()
    hit(p, A, T0, 3)
    hit(p, B, T0, 1)
    records = list(p.records.values())
    again = policy()
    again.restore(records, ["203.0.113.1"], [], T0 + 61)  # B's window is over by then
    assert list(again.records) == ["192.0.2.7"]
    assert again.records["192.0.2.7"].jail_until == T0 + 100
    elements = again.timed_elements(T0 + 61)
    assert Put(Set.JAIL, "192.0.2.7", T0 + 100) in elements
    assert Put(Set.PAROLE, "192.0.2.7", T0 + 160) in elements
    assert again.allowed(ipaddress.ip_address("203.0.113.1"))
    assert again.expire(T0 + 100) == [Released("192.0.2.7", True, T0 + 160)]


def test_many_watched_addresses_expire_cheaply() -> None:
    p = policy(maxcount=10)
    for i in range(5000):
        p.event(ipaddress.ip_address(f"10.0.{i >> 8}.{i & 255}"), "InvalidPassword", T0)
    assert len(p.records) == 5000
    p.expire(T0 + 61)
    assert p.records == {}


# --- A3: one bad saved list entry costs that entry only ---------------------------------------------


def test_restore_skips_bad_list_entries_one_by_one() -> None:
    saved = policy(maxcount=1)
    hit(saved, A, T0)
    p = policy(maxcount=1)
    skipped = p.restore(
        list(saved.records.values()),
        ["not an address", "203.0.113.5"],
        ["10.0.0.0/8", "10.0.0.9-10.0.0.1"],
        T0 + 1,
    )
    assert len(skipped) == 2 and "not an address" in skipped[0] and "10.0.0.9-10.0.0.1" in skipped[1]
    assert [r.key for r in p.members(Set.JAIL, T0 + 1)] == ["192.0.2.7"]
    assert p.allowed(ipaddress.ip_address("203.0.113.5"))
    assert p.denied(ipaddress.ip_address("10.1.2.3"))


def test_restore_skips_a_record_whose_key_is_no_address() -> None:
    saved = policy(maxcount=1)
    hit(saved, A, T0)
    record = saved.records["192.0.2.7"]
    record.key = "nonsense"
    p = policy()
    assert p.restore([record], [], [], T0 + 1) == ["record 'nonsense': not an IP address: 'nonsense'"]
    assert p.records == {}


# --- A4: spoofed sources cannot grow memory and kernel sets without bound ---------------------------


def test_watch_only_records_are_capped_oldest_first() -> None:
    p = policy(maxwatched=3, maxcount=2)
    hit(p, A, T0, 2)  # jailed: never dropped by the cap
    addresses = [ipaddress.ip_address(f"198.51.100.{n}") for n in range(1, 6)]
    dropped_actions = []
    for n, address in enumerate(addresses):
        ((outcome, actions),) = hit(p, address, T0 + n)
        assert outcome is Outcome.WATCHED
        dropped_actions += [a for a in actions if isinstance(a, Remove)]
    assert sorted(p.records) == ["192.0.2.7", "198.51.100.3", "198.51.100.4", "198.51.100.5"]
    assert p.watch_dropped == 2
    assert dropped_actions == [Remove(Set.WATCH, "198.51.100.1"), Remove(Set.WATCH, "198.51.100.2")]


def test_a_jailed_record_leaves_the_watch_only_queue() -> None:
    p = policy(maxwatched=2, maxcount=2)
    hit(p, A, T0)  # watch-only, the oldest
    hit(p, A, T0 + 1)  # now jailed
    hit(p, B, T0 + 2)
    hit(p, ipaddress.ip_address("192.0.2.9"), T0 + 3)
    assert "192.0.2.7" in p.records and p.watch_dropped == 0
    hit(p, ipaddress.ip_address("192.0.2.10"), T0 + 4)
    assert "192.0.2.8" not in p.records and p.watch_dropped == 1


def test_expired_records_leave_the_watch_only_queue() -> None:
    p = policy(maxwatched=2)
    hit(p, A, T0)
    hit(p, B, T0)
    p.expire(T0 + 61)
    assert p.records == {}
    hit(p, A, T0 + 62)
    hit(p, B, T0 + 62)
    assert p.watch_dropped == 0


def test_restore_applies_the_cap_too() -> None:
    saved = policy()
    for n in range(5):
        hit(saved, ipaddress.ip_address(f"198.51.100.{n}"), T0 + n)
    p = policy(maxwatched=2)
    p.restore(list(saved.records.values()), [], [], T0 + 10)
    assert sorted(p.records) == ["198.51.100.3", "198.51.100.4"] and p.watch_dropped == 3


# --- A5: a changed ipv6_prefix re-keys restored records ---------------------------------------------


def test_restore_rekeys_ipv6_records_and_merges_keeping_the_harsher_state() -> None:
    before = policy(ipv6_prefix=124, maxcount=2)
    jailed, watched = ipaddress.ip_address("2001:db8::10"), ipaddress.ip_address("2001:db8::20")
    hit(before, jailed, T0, 2)
    hit(before, watched, T0 + 1, name="InvalidAccountID")
    assert sorted(before.records) == ["2001:db8::10", "2001:db8::20"]
    after = policy(ipv6_prefix=64, maxcount=2)
    after.restore(list(before.records.values()), [], [], T0 + 2)
    assert list(after.records) == ["2001:db8::"]
    record = after.records["2001:db8::"]
    assert record.jailed(T0 + 2) and record.jail_until == T0 + 100
    assert record.events == {"InvalidPassword": 2, "InvalidAccountID": 1}
    assert record.first_seen == T0 and record.last_seen == T0 + 1
    # the merged key is what the firewall gets, and later events find it
    assert [(e.set, e.key) for e in after.timed_elements(T0 + 2)] == [
        (Set.JAIL, "2001:db8::"),
        (Set.PAROLE, "2001:db8::"),
    ]
    ((outcome, _),) = hit(after, ipaddress.ip_address("2001:db8::99"), T0 + 3)
    assert outcome is Outcome.JAILED_ALREADY


def test_restore_rekeys_to_a_longer_prefix_too() -> None:
    before = policy(ipv6_prefix=48, maxcount=1)
    hit(before, ipaddress.ip_address("2001:db8:0:5::1"), T0)
    after = policy(ipv6_prefix=64, maxcount=1)
    after.restore(list(before.records.values()), [], [], T0 + 1)
    assert list(after.records) == ["2001:db8::"]
