"""The few AGI commands websms needs, over the stdin/stdout pipes Asterisk gives an AGI program."""

from __future__ import annotations

import base64
import re
from typing import TextIO

_RESPONSE = re.compile(r"(?P<code>\d{3}) result=(?P<result>-?\d+)(?: \((?P<data>.*)\))?")
# Bytes of the text fetched per AGI round trip: its base64 form stays well under Asterisk's 4 KiB
# buffer for function results, and base64 keeps line breaks of the text out of the line protocol.
BODY_CHUNK = 2000
# Asterisk's MESSAGE() function hands back at most 4095 bytes (its result buffer is 4 KiB): a body of
# this many bytes or more may have been cut, and a text that long from a phone often arrives empty.
MESSAGE_LIMIT = 4095


class AGIError(RuntimeError):
    pass


class AGI:
    def __init__(self, reader: TextIO, writer: TextIO) -> None:
        self.reader, self.writer = reader, writer
        self.env: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        """Read the agi_* environment Asterisk sends first (ends with an empty line)."""
        for raw in self.reader:
            line = raw.rstrip("\n")
            if not line:
                break
            key, _, value = line.partition(":")
            self.env[key.strip()] = value.strip()
        return self.env

    def command(self, text: str) -> tuple[int, str | None]:
        self.writer.write(text + "\n")
        self.writer.flush()
        line = self.reader.readline()
        if not line:
            raise AGIError(f"Asterisk hung up during {text.split()[0:2]}")
        match = _RESPONSE.match(line.rstrip("\n"))
        if match is None or match["code"] != "200":
            raise AGIError(f"AGI {text.split()[0:2]} failed: {line.strip()}")
        return int(match["result"]), match["data"]

    def get(self, expression: str) -> str:
        """The value of a dialplan expression such as ${WEBSMS_TO}; empty when unset."""
        result, data = self.command(f"GET FULL VARIABLE {expression}")
        return data if result == 1 and data is not None else ""

    def message_body(self) -> bytes:
        """MESSAGE(body) as Asterisk gives it (at most MESSAGE_LIMIT bytes), fetched in base64 chunks.

        Judge it with `body_problem` before use: Asterisk cuts longer bodies without saying so.
        """
        raw = b""
        while len(raw) < MESSAGE_LIMIT:
            chunk = base64.b64decode(
                self.get(f"${{BASE64_ENCODE(${{MESSAGE(body):{len(raw)}:{BODY_CHUNK}}})}}")
            )
            raw += chunk
            if len(chunk) < BODY_CHUNK:
                break
        return raw

    def set(self, name: str, value: str) -> None:
        clean = value.replace("\\", "/").replace('"', "'").replace("\n", " ")
        self.command(f'SET VARIABLE {name} "{clean}"')

    def verbose(self, text: str, level: int = 1) -> None:
        clean = text.replace('"', "'").replace("\n", " ")
        self.command(f'VERBOSE "{clean}" {level}')


def body_problem(raw: bytes) -> str | None:
    """Why a body read through MESSAGE() must not be sent (None when it is whole and not empty)."""
    if not raw or len(raw) >= MESSAGE_LIMIT:
        return (
            f"empty or too long for Asterisk's MESSAGE() ({len(raw)} bytes read; "
            f"a text must be 1 to {MESSAGE_LIMIT - 1} bytes of UTF-8)"
        )
    return None
