"""Incoming SMS -> Asterisk, through a call file whose text lives in its own file.

Why call files: Asterisk's own spool (/var/spool/asterisk/outgoing, kept under /srv) is durable by
itself. A call file renamed into it is processed as soon as Asterisk runs, whether it was up, down or
restarting when the SMS came in, and websmsd can crash right after answering the ITSP without losing
anything. AMI would need Asterisk up at that moment and a second durable queue of ours in front of it.

Why the text is not in the call file: Asterisk skips call-file lines over 1023 bytes, and a long or
non-Latin SMS is easily longer. The call file carries only the path of the text; the dialplan context
dp_entry_websms_in reads it with FILE() into MESSAGE(body), so its length is not limited by any line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pbx.websms.queue import Spool, atomic_write, new_id

OUTGOING_DIR = Path("/var/spool/asterisk/outgoing")
CONTEXT = "dp_entry_websms_in"
CALL_PREFIX = "websms-"
# The most one SIP MESSAGE carries: what extensions_websms.conf reads back with FILE() (4 x 2000 bytes).
PART_BYTES = 8000
_SAFE = re.compile(r"[A-Za-z0-9+ ._-]{1,32}")


@dataclass(frozen=True)
class Inbound:
    to: str  # +E.164, the PBX user's number
    sender: str  # +E.164 or an alphanumeric sender id
    body: str
    message_id: str = ""  # the provider's id, for duplicate detection


def message_key(interface: str, message_id: str) -> str:
    """A file-name-safe key: the same provider message always maps to the same key."""
    if not message_id:
        return new_id()
    return hashlib.sha256(f"{interface}\0{message_id}".encode()).hexdigest()[:32]


def split_text(text: str, limit: int = PART_BYTES) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, cut between characters (never inside one).

    Every SMS a provider allows (1600 characters, 6400 bytes at most) is one piece.
    """
    parts: list[str] = []
    start, size = 0, 0
    for i, char in enumerate(text):
        width = len(char.encode())
        if size + width > limit:
            parts.append(text[start:i])
            start, size = i, 0
        size += width
    parts.append(text[start:])
    return parts


def call_file(msg: Inbound, body_file: Path, key: str) -> str:
    """The call file text. Every value is checked to be one plain line (no injection of directives)."""
    for value in (msg.to, msg.sender):
        if not _SAFE.fullmatch(value):
            raise ValueError(f"unsafe value for a call file: {value!r}")
    if not re.fullmatch(r"[0-9a-f-]{1,64}", key):
        raise ValueError(f"unsafe key for a call file: {key!r}")
    if not re.fullmatch(r"[A-Za-z0-9/._+-]+", str(body_file)):
        raise ValueError(f"unsafe body file path: {body_file}")
    return (
        f"Channel: Local/{msg.to}@{CONTEXT}\n"
        f'CallerID: "" <{msg.sender}>\n'
        "MaxRetries: 0\n"
        "WaitTime: 30\n"
        "Application: NoOp\n"
        "Data: websms\n"
        f"Setvar: WEBSMS_FROM={msg.sender}\n"
        f"Setvar: WEBSMS_BODYFILE={body_file}\n"
        f"Setvar: WEBSMS_KEY={key}\n"
        "Archive: no\n"
    )


def hand_over(spool: Spool, msg: Inbound, interface: str, outgoing_dir: Path = OUTGOING_DIR) -> bool:
    """Put `msg` durably in Asterisk's hands. False when it is a duplicate of one already handed over.

    Order matters for crash safety: text, then call file, then the seen mark. A crash in between can
    at worst deliver a message twice (if the provider retries), never lose it.
    """
    key = message_key(interface, msg.message_id)
    if msg.message_id and spool.is_seen(key):
        return False
    parts = split_text(msg.body)
    for number, text in enumerate(parts, start=1):
        part_key = key if len(parts) == 1 else f"{key}-{number}"
        body_file = spool.body_path(part_key)
        atomic_write(body_file, text.encode(), spool.tmp)
        call = call_file(msg, body_file, part_key).encode()
        atomic_write(outgoing_dir / f"{CALL_PREFIX}{part_key}.call", call, spool.tmp)
    if msg.message_id:
        spool.mark_seen(key)
    return True


def pending_keys(outgoing_dir: Path = OUTGOING_DIR) -> set[str]:
    """Keys of our call files Asterisk has not processed yet (their texts must stay)."""
    try:
        return {p.name[len(CALL_PREFIX) : -len(".call")] for p in outgoing_dir.glob(f"{CALL_PREFIX}*.call")}
    except OSError:
        return set()
