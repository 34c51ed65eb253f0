from __future__ import annotations

import argparse
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from pbx.autoban import cli, commands
from pbx.autoban.commands import Request, execute, parse
from pbx.autoban.config import Config
from pbx.autoban.policy import ListChanged, Policy, Put, Remove, Set

T0 = 1_800_000_000.0


def test_help_and_empty() -> None:
    assert parse([]).verb == "help"
    assert parse(["help"]).verb == "help"


def test_show_list_who_metrics() -> None:
    assert parse(["show", "--json"]) == Request("show", json=True)
    assert parse(["list"]).dsets == tuple(Set)
    assert parse(["list", "jail", "blacklist"]).dsets == (Set.JAIL, Set.DENY)
    assert parse(["who", "2001:db8::1"]).addrs == ("2001:db8::1",)
    assert parse(["metrics"]).verb == "metrics"


def test_add_and_del_forms() -> None:
    assert parse(["add", "jail", "=", "192.0.2.7"]) == Request("add", (Set.JAIL,), (), ("192.0.2.7",))
    assert parse(["add", "jail=192.0.2.7"]) == Request("add", (Set.JAIL,), (), ("192.0.2.7",))
    assert parse(["add", "blacklist", "=", "jail", "parole", "10.0.0.0/8"]) == Request(
        "add", (Set.DENY,), (Set.JAIL, Set.PAROLE), ("10.0.0.0/8",)
    )
    assert parse(["del", "all", "=", "all"]) == Request("del", tuple(Set), tuple(Set), ())
    assert parse(["del", "whitelist", "=", "192.0.2.1-192.0.2.9"]).dsets == (Set.ALLOW,)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frob"], "unknown command 'frob'"),
        (["add", "jail", "192.0.2.7"], "needs '='"),
        (["add", "=", "192.0.2.7"], "name the set"),
        (["add", "jail", "="], "name sets or addresses"),
        (["add", "prison", "=", "192.0.2.7"], "unknown set 'prison'"),
        (["add", "jail", "=", "192.0.2.300"], "not an IP address: '192.0.2.300'"),
        (["add", "jail", "=", "10.0.0.0/8"], "single addresses"),
        (["add", "all", "=", "192.0.2.7"], "'all' is only for del"),
        (["who"], "who takes one address"),
        (["who", "nobody"], "not an IP address"),
        (["show", "extra"], "takes no arguments"),
    ],
)
def test_parse_errors_are_clear(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(argv)


def test_wire_round_trip() -> None:
    request = parse(["add", "deny", "=", "jail", "192.0.2.7"])
    assert Request.from_wire(request.to_wire()) == request
    with pytest.raises(ValueError, match="unknown set"):
        Request.from_wire({"op": "add", "dsets": ["nope"]})


def jailing_policy() -> Policy:
    p = Policy(Config(maxcount=1, jailtime=100, watchtime=60))
    p.event(ipaddress.ip_address("192.0.2.7"), "InvalidPassword", T0)
    p.event(ipaddress.ip_address("2001:db8::5"), "InvalidPassword", T0)
    return p


def test_add_jail_and_del_jail() -> None:
    p = Policy(Config(jailtime=100, watchtime=60))
    result = execute(p, parse(["add", "jail", "=", "192.0.2.8"]), T0)
    assert result.lines == ["jail: added 192.0.2.8"] and result.failed == 0
    assert Put(Set.JAIL, "192.0.2.8", T0 + 100) in result.actions
    result = execute(p, parse(["del", "jail", "=", "192.0.2.8"]), T0 + 1)
    assert result.lines == ["jail: removed 192.0.2.8"]
    assert Remove(Set.JAIL, "192.0.2.8") in result.actions
    result = execute(p, parse(["del", "jail", "=", "192.0.2.8"]), T0 + 2)
    assert result.lines == ["jail: 192.0.2.8 was not there"]


def test_ipv6_addresses_mean_their_prefix() -> None:
    p = jailing_policy()
    result = execute(p, parse(["del", "jail", "=", "2001:db8::ffff"]), T0 + 1)
    assert result.lines == ["jail: removed 2001:db8::/64"]


def test_add_deny_from_the_jail_set() -> None:
    p = jailing_policy()
    result = execute(p, parse(["add", "deny", "=", "jail"]), T0 + 1)
    assert result.lines == ["deny: added 192.0.2.7", "deny: added 2001:db8::/64"]
    assert ListChanged(Set.DENY) in result.actions
    assert p.denied(ipaddress.ip_address("2001:db8::1234"))


def test_del_all_equals_all_empties_everything_but_the_config() -> None:
    p = Policy(Config(maxcount=1, deny=("198.51.100.0/24",)))
    p.event(ipaddress.ip_address("192.0.2.7"), "InvalidPassword", T0)
    p.add_to_list(Set.ALLOW, "203.0.113.1", T0)
    result = execute(p, parse(["del", "all", "=", "all"]), T0 + 1)
    assert result.failed == 0
    assert p.members(Set.JAIL, T0 + 1) == []
    assert p.list_entries(Set.ALLOW)[1] == []
    assert p.list_entries(Set.DENY)[0] == ["198.51.100.0/24"]


def test_del_a_set_from_itself_empties_it() -> None:
    p = jailing_policy()
    result = execute(p, parse(["del", "jail", "=", "jail"]), T0 + 1)
    assert result.lines == ["jail: emptied"]
    assert p.members(Set.JAIL, T0 + 1) == []
    assert len(p.members(Set.PAROLE, T0 + 1)) == 2


def test_refusals_are_counted_as_failures() -> None:
    p = Policy(Config(allow=("192.0.2.0/24",)))
    result = execute(p, parse(["add", "jail", "=", "192.0.2.7"]), T0)
    assert result.failed == 1
    assert "allow list" in result.lines[0]


def test_the_cli_module_configures() -> None:
    from pbx.autoban import cli

    parser = argparse.ArgumentParser(prog="autoban")
    cli.configure(parser)
    args = parser.parse_args(["add", "jail", "=", "192.0.2.7"])
    assert commands.parse(args.words).verb == "add"


def test_cli_says_when_the_daemon_is_not_running(tmp_path: object) -> None:
    from pathlib import Path

    from pbx.autoban import cli

    with pytest.raises(OSError, match="daemon is not running"):
        cli.ask({"op": "show"}, Path(str(tmp_path)) / "none.sock")


# --- A10: `autoban who` gives up on reverse DNS after its deadline, exit included -------------------

SLOW_DNS = """
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from pbx.autoban import cli
socket.gethostbyaddr = lambda address: time.sleep(30)
started = time.monotonic()
print(cli.reverse_dns("192.0.2.7", 0.2), round(time.monotonic() - started, 1))
"""


def test_reverse_dns_does_not_hold_up_the_command_after_its_deadline() -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    # A pool's worker thread would be joined at exit: 30 s, far past this timeout.
    done = subprocess.run(
        [sys.executable, "-c", SLOW_DNS, src], capture_output=True, text=True, timeout=15, check=True
    )
    # the 15 s timeout above is what fails a command held up by the 30 s lookup
    assert done.stdout.split()[0] == "None"


def test_reverse_dns_answers_when_the_resolver_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.socket, "gethostbyaddr", lambda a: ("pbx.example", [], [a]))
    assert cli.reverse_dns("192.0.2.7") == "pbx.example"
    monkeypatch.setattr(cli.socket, "gethostbyaddr", lambda a: (_ for _ in ()).throw(OSError("none")))
    assert cli.reverse_dns("192.0.2.7") is None
