from __future__ import annotations

import pytest

from pbx.autoban.addresses import parse_entry
from pbx.autoban.firewall import (
    MAX_TIMEOUT_MS,
    Firewall,
    FirewallError,
    render_bulk,
    render_list,
    render_put,
    render_remove,
    render_table,
    timeout_ms,
)
from pbx.autoban.policy import Put, Remove, Set

T0 = 1_800_000_000.0


class Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.batches: list[str] = []
        self.fail = fail

    def run(self, commands: str) -> str:
        if self.fail:
            self.fail -= 1
            raise FirewallError("Error: Could not process rule: No such file or directory")
        self.batches.append(commands)
        return ""


def test_table_has_every_set_and_masks_ipv6_to_the_prefix() -> None:
    text = render_table(64)
    lines = text.splitlines()
    by_set = {line.split()[1]: line.strip() for line in lines if line.strip().startswith("set ")}
    assert sorted(by_set) == sorted(
        f"{which}{v}" for which in ("watch", "jail", "parole", "allow", "deny") for v in (4, 6)
    )
    for name in ("watch4", "watch6", "jail4", "jail6", "parole4", "parole6"):
        assert by_set[name] == f"set {name} {{ type ipv{name[-1]}_addr; flags timeout; size 1048576; }}"
    for name in ("allow4", "allow6", "deny4", "deny6"):
        assert by_set[name] == f"set {name} {{ type ipv{name[-1]}_addr; flags interval; }}"
    assert "ip6 saddr & ffff:ffff:ffff:ffff:: @jail6" in text
    assert "type filter hook prerouting priority raw" in text
    # allow first: the allow list wins over deny and jail
    assert lines.index("    ip saddr @allow4 accept") < min(i for i, x in enumerate(lines) if "drop" in x)
    # the table is replaced in the same transaction, whether it existed or not
    assert lines[:2] == ["add table inet autoban", "delete table inet autoban"]


def test_table_without_masking_for_a_full_prefix() -> None:
    assert "ip6 saddr @jail6 counter drop" in render_table(128)
    assert "ip6 saddr & ffff:ff00:: @jail6" in render_table(24)


def test_a_put_is_valid_whatever_the_kernel_holds() -> None:
    assert render_put(Put(Set.JAIL, "192.0.2.7", T0 + 1200), T0) == [
        "add element inet autoban jail4 { 192.0.2.7 timeout 1s }",
        "delete element inet autoban jail4 { 192.0.2.7 }",
        "add element inet autoban jail4 { 192.0.2.7 timeout 1200000ms }",
    ]
    assert render_put(Put(Set.WATCH, "2001:db8::", T0 + 1.5), T0)[-1] == (
        "add element inet autoban watch6 { 2001:db8:: timeout 1500ms }"
    )


def test_a_removal_never_fails_on_a_missing_element() -> None:
    assert render_remove(Remove(Set.PAROLE, "192.0.2.7")) == [
        "add element inet autoban parole4 { 192.0.2.7 timeout 1s }",
        "delete element inet autoban parole4 { 192.0.2.7 }",
    ]


def test_timeouts_are_clamped_to_what_nftables_takes() -> None:
    assert timeout_ms(T0 + 100 * 86400, T0) == MAX_TIMEOUT_MS
    assert timeout_ms(T0 - 5, T0) == 1


def test_lists_are_reloaded_whole_per_family() -> None:
    lines = render_list(Set.DENY, [parse_entry("10.0.0.0/8"), parse_entry("192.0.2.1-192.0.2.9")])
    assert lines == [
        "flush set inet autoban deny4",
        "add element inet autoban deny4 { 10.0.0.0/8, 192.0.2.1-192.0.2.9 }",
        "flush set inet autoban deny6",
    ]


def test_bulk_groups_by_set() -> None:
    lines = render_bulk(
        [
            Put(Set.JAIL, "192.0.2.7", T0 + 10),
            Put(Set.JAIL, "192.0.2.8", T0 + 20),
            Put(Set.JAIL, "2001:db8::", T0 + 1),
        ],
        T0,
    )
    assert lines == [
        "add element inet autoban jail4 { 192.0.2.7 timeout 10000ms, 192.0.2.8 timeout 20000ms }",
        "add element inet autoban jail6 { 2001:db8:: timeout 1000ms }",
    ]


def test_changes_are_batched_into_one_transaction() -> None:
    runner = Recorder()
    firewall = Firewall(runner, 64)
    assert firewall.flush() == 0 and runner.batches == []
    firewall.put(Put(Set.WATCH, "192.0.2.7", T0 + 60), T0)
    firewall.put(Put(Set.WATCH, "192.0.2.8", T0 + 60), T0)
    firewall.remove(Remove(Set.WATCH, "192.0.2.9"))
    assert firewall.flush() == 8
    assert len(runner.batches) == 1 and runner.batches[0].count("\n") == 7
    assert firewall.batches == 1


def test_a_refused_batch_raises_and_is_not_kept() -> None:
    runner = Recorder(fail=1)
    firewall = Firewall(runner, 64)
    firewall.put(Put(Set.JAIL, "192.0.2.7", T0 + 60), T0)
    with pytest.raises(FirewallError):
        firewall.flush()
    assert firewall.pending == []


def test_permission_errors_are_recognised() -> None:
    assert FirewallError("netlink: Error: cache initialization failed: Operation not permitted").denied
    assert not FirewallError("Error: value too large").denied


def test_teardown_removes_the_table_whether_or_not_it_exists() -> None:
    runner = Recorder()
    firewall = Firewall(runner, 64)
    firewall.put(Put(Set.JAIL, "192.0.2.7", T0 + 60), T0)
    firewall.teardown()
    assert runner.batches == ["add table inet autoban\ndelete table inet autoban"]
    assert firewall.pending == []
