"""`autoban` (also `pbx autoban`): talk to the running daemon, or run it (`autoban daemon`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pbx.autoban import commands, report
from pbx.settings import Settings

SOCKET = Path("/run/autoban/control.sock")
DNS_DEADLINE = 2.0

HELP = """\
usage: autoban COMMAND

  show [--json]                     overview: state, policy, set sizes, counters
  list [SET...] [--json]            the elements of the sets (default: all)
  add DSET... = [SSET...] [ADDR...] add addresses, or the elements of other sets
  del DSET... = [SSET...] [ADDR...] remove them;  del all = all  empties every set
  who ADDR [--json]                 why an address is watched or jailed, since and until when
  metrics                           counters in the Prometheus text format
  daemon                            run the daemon (the autoband service does)

SET: watch, jail, parole, allow (whitelist), deny (blacklist), all.
ADDR: 192.0.2.7, 2001:db8::7; allow and deny also take 10.0.0.0/8 and 192.0.2.1-192.0.2.9.
Examples:  autoban add jail = 192.0.2.7    autoban del jail = 192.0.2.7
           autoban add deny = jail         autoban add allow = 192.168.0.0/16
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("words", nargs=argparse.REMAINDER, help="a command; `autoban help` lists them")
    parser.usage = "%(prog)s COMMAND ... (see `%(prog)s help`)"
    parser.add_help = False


def ask(doc: dict[str, Any], path: Path = SOCKET, timeout: float = 10.0) -> dict[str, Any]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise OSError(f"the AutoBan daemon is not running (no {path}); see `sv status autoband`") from None
    with client:
        client.sendall(json.dumps(doc).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    return json.loads(data or b"{}")


def reverse_dns(address: str, deadline: float = DNS_DEADLINE) -> str | None:
    """The name of `address`, or None after `deadline` seconds: the lookup runs in a daemon thread,
    which the interpreter does not wait for at exit (a pool's worker would be joined)."""
    found: list[str] = []

    def look_up() -> None:
        with contextlib.suppress(OSError, UnicodeError):
            found.append(socket.gethostbyaddr(address)[0])

    worker = threading.Thread(target=look_up, name="autoban-rdns", daemon=True)
    worker.start()
    worker.join(deadline)
    return found[0] if found else None


def command(args: argparse.Namespace, _settings: Settings) -> int:
    request = commands.parse(list(args.words))
    if request.verb == "help":
        print(HELP, end="")
        return 0
    if request.verb == "daemon":
        from pbx.autoban import daemon

        return daemon.main()
    answer = ask(request.to_wire())
    if not answer.get("ok") and "result" not in answer:
        raise ValueError(answer.get("error", "the daemon gave no answer"))
    result = answer["result"]
    if request.verb == "who":
        result["hostname"] = reverse_dns(result["address"])
        print(json.dumps(result, indent=2) if request.json else report.render_who(result, time.time()))
    elif request.verb == "show":
        print(json.dumps(result, indent=2) if request.json else report.render_show(result))
    elif request.verb == "list":
        print(json.dumps(result, indent=2) if request.json else report.render_sets(result))
    elif request.verb == "metrics":
        print(result, end="")
    else:
        print("\n".join(result))
    if not answer.get("ok"):
        print(f"autoban: {answer.get('error')}", file=sys.stderr)
        return 1
    return 0
