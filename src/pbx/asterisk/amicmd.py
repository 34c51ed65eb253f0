"""`pbx ami ACTION [Key=Value ...]`: send one AMI action with the add-ons' account and print the answer.

For people debugging the container, and for tests that check what the add-ons can reach.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from pbx.asterisk import ami
from pbx.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", help="the AMI action, e.g. CoreStatus, Command, DBGet")
    parser.add_argument("fields", nargs="*", metavar="Key=Value", help="fields of the action")
    parser.add_argument("--conf", type=Path, default=ami.MANAGER_CONF, help="manager.conf to read")
    parser.add_argument("--user", default="pbx", help="the AMI account in manager.conf")


def _fields(pairs: list[str]) -> dict[str, ami.FieldValue]:
    fields: dict[str, ami.FieldValue] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected Key=Value, got {pair!r}")
        previous = fields.get(key)
        # A repeated key (Variable=a=1 Variable=b=2) becomes repeated header lines.
        if previous is None:
            fields[key] = value
        else:
            fields[key] = [*(previous if isinstance(previous, list) else [str(previous)]), value]
    return fields


async def _run(args: argparse.Namespace) -> int:
    creds = ami.Credentials.from_manager_conf(args.conf, args.user)
    client = await ami.connect(creds, events="off")
    try:
        answer = await client.action(args.action, **_fields(args.fields))
    finally:
        await client.close()
    for key, value in answer.items_all:
        if key.lower() != "actionid":
            print(f"{key}: {value}")
    return 0 if answer.is_success else 1


def command(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        return asyncio.run(_run(args))
    except ami.AMIError as err:
        raise OSError(str(err)) from err
