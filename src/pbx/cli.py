"""`pbx <command>`: the one entry point of the image's Python side.

Each command lives in its own module, which offers `configure(parser)` and `command(args, settings)`;
only the chosen module is imported, so `pbx health`, run every few seconds, starts fast. The command
names of the image this one succeeds (autoban, websms, websmsd, minivm-send) are symlinks to the
launcher: invoked under such a name, `pbx` runs that command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from pbx import __version__, log
from pbx.settings import from_environment

# name -> (module, one-line help). Add-ons register here.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("pbx.container.init", "PID 1: prepare /srv, seed, run hooks, supervise the services"),
    "health": ("pbx.health", "exit 0 when Asterisk answers and every enabled service runs"),
    "logfilter": ("pbx.logfilter", "filter a log stream by SYSLOG_LEVEL (runit log service)"),
    "tls": ("pbx.tls.command", "TLS certificate: prepare, watch (service), sync, show, reload"),
    "websms": ("pbx.websms.send", "send an SMS via the ITSP web API: websms TO FROM BODY [INDEX], or agi"),
    "websmsd": ("pbx.websms.daemon", "receive SMS webhooks from the ITSP and retry queued outgoing SMS"),
    "autoban": ("pbx.autoban.cli", "AutoBan: show, list, add, del, who, metrics; `autoban daemon` runs it"),
    "ami": ("pbx.asterisk.amicmd", "send one AMI action with the add-ons' account and print the answer"),
    "minivm-send": ("pbx.voicemail", "mail a voicemail piped in by MiniVM (minivm.conf mailcmd) over SMTP"),
}


def _split(argv: list[str], invoked_as: str) -> tuple[str, list[str]]:
    if invoked_as in COMMANDS:
        return invoked_as, argv
    top = argparse.ArgumentParser(prog="pbx", description="Container init and add-ons of the PBX image.")
    top.add_argument("--version", action="version", version=f"pbx {__version__}")
    top.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help=_summary())
    top.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
    ns = top.parse_args(argv)
    return str(ns.command), list(ns.args)


def _summary() -> str:
    return "; ".join(f"{name}: {text}" for name, (_, text) in sorted(COMMANDS.items()))


def main(argv: list[str] | None = None, invoked_as: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    invoked_as = invoked_as or Path(sys.argv[0]).name
    name, rest = _split(argv, invoked_as)
    module_name, text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=name if invoked_as == name else f"pbx {name}", description=text)
    module.configure(parser)
    args = parser.parse_args(rest)
    settings, warnings = from_environment()
    logger = log.setup(name, settings.syslog_level)
    for warning in warnings:
        # Always shown: an ignored setting must not go unnoticed at the default level.
        print(f"pbx: warning: {warning}", file=sys.stderr, flush=True)
    try:
        return int(module.command(args, settings))
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as err:
        # A clear one-line error (ConfigError names file:line), never a traceback.
        logger.critical("%s", err)
        logging.shutdown()
        print(f"{name}: {err}", file=sys.stderr)
        return 1
