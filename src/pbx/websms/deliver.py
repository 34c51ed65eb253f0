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
import os
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
# Asterisk retries a call file whose call was not answered: dp_entry_text_in answers only when the text
# reached a device, so a user with no phone registered gets it within RETRIES x RETRY_TIME (4 h).
RETRIES = 48
RETRY_TIME = 300
_SIP_USER_UNSAFE = re.compile(r"[^A-Za-z0-9+._-]")


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


def sip_user(sender: str) -> str:
    """The sender as the user part of MESSAGE(from)'s SIP URI: an E.164 number unchanged, an
    alphanumeric sender id ("Bank Alert") reduced to the characters valid there unescaped ("BankAlert").
    """
    return _SIP_USER_UNSAFE.sub("", sender) or "anonymous"


def call_file(msg: Inbound, body_file: Path, key: str) -> str:
    """The call file text. Every value is checked to be one plain line (no injection of directives)."""
    for value in (msg.to, msg.sender):
        if not _SAFE.fullmatch(value):
            raise ValueError(f"unsafe value for a call file: {value!r}")
    if not re.fullmatch(r"[0-9a-f-]{1,64}", key):
        raise ValueError(f"unsafe key for a call file: {key!r}")
    if not re.fullmatch(r"[A-Za-z0-9/._+-]+", str(body_file)):
        raise ValueError(f"unsafe body file path: {body_file}")
    user = sip_user(msg.sender)
    name = "" if user == msg.sender else msg.sender
    return (
        f"Channel: Local/{msg.to}@{CONTEXT}\n"
        f'CallerID: "{name}" <{user}>\n'
        f"MaxRetries: {RETRIES}\n"
        f"RetryTime: {RETRY_TIME}\n"
        "WaitTime: 30\n"
        "Application: NoOp\n"
        "Data: websms\n"
        f"Setvar: WEBSMS_FROM={user}\n"
        f"Setvar: WEBSMS_BODYFILE={body_file}\n"
        f"Setvar: WEBSMS_KEY={key}\n"
        "Archive: no\n"
    )


def hand_over(spool: Spool, msg: Inbound, interface: str, outgoing_dir: Path = OUTGOING_DIR) -> bool:
    """Put `msg` durably in Asterisk's hands. False when it is a duplicate of one already handed over.

    A provider's message id is claimed first (an O_EXCL file: of two concurrent deliveries of the same
    id, only the first goes on); then text, then call file; then the claim is marked done. A claim left
    by a crash is taken over once it is stale, so a crash can at worst deliver twice, never lose.
    OSError while another request is handing over the same id (the provider gets a 503 and retries).
    """
    key = message_key(interface, msg.message_id)
    if msg.message_id:
        state = spool.claim(key)
        if state == "done":
            return False
        if state == "busy":
            raise OSError(f"message {msg.message_id} is being handed over by another request")
    try:
        parts = split_text(msg.body)
        for number, text in enumerate(parts, start=1):
            part_key = key if len(parts) == 1 else f"{key}-{number}"
            body_file = spool.body_path(part_key)
            atomic_write(body_file, text.encode(), spool.tmp)
            call = call_file(msg, body_file, part_key).encode()
            atomic_write(outgoing_dir / f"{CALL_PREFIX}{part_key}.call", call, spool.tmp)
    except BaseException:
        if msg.message_id:
            spool.release(key)
        raise
    if msg.message_id:
        spool.mark_seen(key)
    return True


def pending_keys(outgoing_dir: Path = OUTGOING_DIR) -> set[str]:
    """Keys of our call files Asterisk has not processed yet (their texts must stay).

    OSError when the folder cannot be listed: the caller must then not sweep (an empty set would let
    it delete the texts of pending call files).
    """
    names = os.listdir(outgoing_dir)
    return {
        n[len(CALL_PREFIX) : -len(".call")]
        for n in names
        if n.startswith(CALL_PREFIX) and n.endswith(".call")
    }
