"""The AGI side of websms against a scripted Asterisk: variables in, long bodies, status out."""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path

import pytest

from pbx.websms import send
from pbx.websms.agi import AGI, MESSAGE_LIMIT, AGIError, body_problem


class FakeAsterisk:
    """Answers AGI commands like Asterisk does, from a dict of channel variables and a message body."""

    def __init__(self, variables: dict[str, str], body: str) -> None:
        # Like Asterisk's MESSAGE(body): the function result is cut at 4095 bytes.
        self.variables, self.body = variables, body.encode()[:MESSAGE_LIMIT]
        self.env = [
            "agi_request: /usr/local/bin/websms",
            "agi_channel: Message/ast_msg_queue",
            "agi_extension: +1999",
            "",
        ]
        self.commands: list[str] = []
        self.pending: list[str] = [line + "\n" for line in self.env]

    # the AGI reads from us
    def __iter__(self):
        return self

    def __next__(self) -> str:
        if not self.pending:
            raise StopIteration
        return self.pending.pop(0)

    def readline(self) -> str:
        return self.pending.pop(0) if self.pending else ""

    # and writes to us
    def write(self, text: str) -> None:
        command = text.rstrip("\n")
        self.commands.append(command)
        self.pending.append(self.answer(command) + "\n")

    def flush(self) -> None:
        pass

    def answer(self, command: str) -> str:
        chunk = re.fullmatch(
            r"GET FULL VARIABLE \$\{BASE64_ENCODE\(\$\{MESSAGE\(body\):(\d+):(\d+)\}\)\}", command
        )
        if chunk:
            start, size = int(chunk[1]), int(chunk[2])
            piece = self.body[start : start + size]
            return f"200 result=1 ({base64.b64encode(piece).decode()})" if piece else "200 result=0"
        var = re.fullmatch(r"GET FULL VARIABLE \$\{(\w+)\}", command)
        if var:
            value = self.variables.get(var[1])
            return "200 result=0" if value is None else f"200 result=1 ({value})"
        if command.startswith(("SET VARIABLE", "VERBOSE")):
            return "200 result=1"
        return "510 Invalid or unknown command"


def test_reads_variables_and_a_long_multiline_body() -> None:
    body = ('Line ✓ with (parens) and "quotes"\n' * 110)[:-1]
    assert 2000 < len(body.encode()) < MESSAGE_LIMIT
    fake = FakeAsterisk({"WEBSMS_TO": "+15557654321"}, body)
    agi = AGI(fake, fake)  # type: ignore[arg-type]
    assert agi.start()["agi_extension"] == "+1999"
    assert agi.get("${WEBSMS_TO}") == "+15557654321"
    assert agi.get("${WEBSMS_INDEX}") == ""
    raw = agi.message_body()
    assert raw == body.encode()
    assert body_problem(raw) is None
    assert len([c for c in fake.commands if "BASE64" in c]) == len(body.encode()) // 2000 + 1


def test_set_variable_quotes_safely() -> None:
    fake = FakeAsterisk({}, "")
    agi = AGI(fake, fake)  # type: ignore[arg-type]
    agi.start()
    agi.set("WEBSMS_REASON", 'HTTP 400: "bad"\nnumber \\ x')
    assert fake.commands[-1] == "SET VARIABLE WEBSMS_REASON \"HTTP 400: 'bad' number / x\""


def test_errors_and_hangup() -> None:
    fake = FakeAsterisk({}, "")
    agi = AGI(fake, fake)  # type: ignore[arg-type]
    agi.start()
    with pytest.raises(AGIError, match="failed: 510"):
        agi.command("NOPE")
    fake.write = lambda text: None  # type: ignore[method-assign]
    with pytest.raises(AGIError, match="hung up"):
        agi.command("GET FULL VARIABLE ${X}")


def test_body_asterisk_may_have_cut_or_emptied_is_refused() -> None:
    cyrillic = "Ж" * 1600  # 3200 bytes: fits
    assert body_problem(cyrillic.encode()) is None
    assert body_problem(b"x" * (MESSAGE_LIMIT - 1)) is None
    for raw in (b"", b"x" * MESSAGE_LIMIT):
        assert "empty or too long for Asterisk's MESSAGE()" in (body_problem(raw) or "")


@pytest.mark.parametrize("body", ["", "y" * 6000])
def test_agi_answers_failed_for_a_body_it_cannot_read_whole(
    body: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAsterisk({"WEBSMS_TO": "+15557654321", "WEBSMS_FROM": "+12025550101"}, body)
    monkeypatch.setattr("sys.stdin", fake)
    monkeypatch.setattr("sys.stdout", fake)
    args = argparse.Namespace(config=tmp_path / "websms.conf", spool=tmp_path / "spool")
    assert send._run_agi(args) == 0
    assert 'SET VARIABLE WEBSMS_STATUS "FAILED"' in fake.commands
    (reason,) = [c for c in fake.commands if c.startswith("SET VARIABLE WEBSMS_REASON")]
    assert "empty or too long for Asterisk's MESSAGE()" in reason
    assert not (tmp_path / "spool").exists()  # nothing queued for a text that was cut
