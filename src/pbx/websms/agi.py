"""The few AGI commands websms needs, over the stdin/stdout pipes Asterisk gives an AGI program."""

from __future__ import annotations

import base64
import re
from typing import TextIO

_RESPONSE = re.compile(r"(?P<code>\d{3}) result=(?P<result>-?\d+)(?: \((?P<data>.*)\))?")
# Bytes of the text fetched per AGI round trip: its base64 form stays well under Asterisk's 4 KiB
# buffer for function results, and base64 keeps line breaks of the text out of the line protocol.
BODY_CHUNK = 2000
BODY_MAX = 64 * 1024


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

    def message_body(self) -> str:
        """MESSAGE(body) whole, whatever its length and line breaks (fetched in base64 chunks)."""
        raw = b""
        while len(raw) < BODY_MAX:
            chunk = base64.b64decode(
                self.get(f"${{BASE64_ENCODE(${{MESSAGE(body):{len(raw)}:{BODY_CHUNK}}})}}")
            )
            raw += chunk
            if len(chunk) < BODY_CHUNK:
                break
        return raw.decode("utf-8", errors="replace")

    def set(self, name: str, value: str) -> None:
        clean = value.replace("\\", "/").replace('"', "'").replace("\n", " ")
        self.command(f'SET VARIABLE {name} "{clean}"')

    def verbose(self, text: str, level: int = 1) -> None:
        clean = text.replace('"', "'").replace("\n", " ")
        self.command(f'VERBOSE "{clean}" {level}')
