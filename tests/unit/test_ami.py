"""The AMI client's framing and bookkeeping, against an in-process server speaking the AMI wire format.

The image tests check the same client against a real Asterisk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbx.asterisk import ami
from pbx.asterisk.conf import ConfigError


def test_encode_writes_one_header_per_line_and_repeats_lists() -> None:
    wire = ami.encode(
        "Originate", "pbx-1", {"Channel": "Local/1@x", "Variable": ["A=1", "B=2"], "Timeout": 5}
    )
    assert wire == (
        b"Action: Originate\r\nActionID: pbx-1\r\nChannel: Local/1@x\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\nTimeout: 5\r\n\r\n"
    )


@pytest.mark.parametrize("value", ["a\r\nAction: Command", "x\ny", "z\r"])
def test_encode_refuses_header_injection(value: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        ami.encode("MessageSend", "pbx-1", {"Body": value})


def test_parse_is_case_insensitive_and_keeps_repeats() -> None:
    msg = ami.parse(b"Response: Success\r\nActionID: pbx-2\r\nOutput: a\r\nOutput: b: c\r\n\r\n")
    assert msg["response"] == "Success" and msg.is_success and not msg.is_event
    assert msg.getall("OUTPUT") == ["a", "b: c"]
    assert ami.parse(b"Event: InvalidPassword\r\n\r\n").is_event


def test_secret_is_masked_in_repr() -> None:
    assert "s3cret" not in repr(ami.Message([("Action", "Login"), ("Secret", "s3cret")]))


def test_credentials_come_from_manager_conf(tmp_path: Path) -> None:
    conf = tmp_path / "manager.conf"
    conf.write_text("[general]\nbindaddr = 0.0.0.0\nport = 5039\n[pbx]\nsecret = abc\n")
    assert ami.Credentials.from_manager_conf(conf) == ami.Credentials("127.0.0.1", 5039, "pbx", "abc")


def test_missing_account_names_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "manager.conf"
    conf.write_text("[general]\nport = 5038\n")
    with pytest.raises(ConfigError, match=r"manager\.conf: no \[pbx\] section"):
        ami.Credentials.from_manager_conf(conf)


def test_bad_port_names_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "manager.conf"
    conf.write_text("[general]\nport = many\n[pbx]\nsecret = x\n")
    with pytest.raises(ConfigError, match=r"manager\.conf:2: "):
        ami.Credentials.from_manager_conf(conf)


def test_backoff_doubles_to_the_limit_and_resets() -> None:
    b = ami.Backoff(0.5, 4)
    assert [b.next() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    b.reset()
    assert b.next() == 0.5


class FakeAsterisk:
    """Speaks AMI: a banner, Login, and answers out of order with events in between."""

    def __init__(self, secret: str = "pw") -> None:
        self.secret = secret
        self.logins = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                msg = ami.parse(await reader.readuntil(b"\r\n\r\n"))
                aid = msg["ActionID"]
                if msg["Action"] == "Login":
                    self.logins += 1
                    ok = msg["Secret"] == self.secret
                    status, text = ("Success", "accepted") if ok else ("Error", "failed")
                    writer.write(
                        f"Response: {status}\r\nActionID: {aid}\r\n"
                        f"Message: Authentication {text}\r\n\r\n".encode()
                    )
                elif msg["Action"] == "Logoff":
                    writer.write(f"Response: Goodbye\r\nActionID: {aid}\r\n\r\n".encode())
                elif msg["Action"] == "Ping":
                    writer.write(b"Event: FailedACL\r\nRemoteAddress: IPV4/UDP/192.0.2.1/5060\r\n\r\n")
                    writer.write(f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n\r\n".encode())
                elif msg["Action"] == "Hangup":
                    writer.close()
                    return
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()


async def _serve(fake: FakeAsterisk) -> tuple[asyncio.Server, ami.Credentials]:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, ami.Credentials("127.0.0.1", port, "pbx", "pw")


def test_action_gets_its_response_and_events_are_queued() -> None:
    async def scenario() -> None:
        server, creds = await _serve(FakeAsterisk())
        async with server:
            client = await ami.connect(creds)
            assert client.banner == "Asterisk Call Manager/9.0.0"
            answers = await asyncio.gather(client.action("Ping"), client.action("Ping"))
            assert [a["Ping"] for a in answers] == ["Pong", "Pong"]
            events = client.events()
            first = await anext(events)
            assert first["Event"] == "FailedACL"
            await client.close()

    asyncio.run(scenario())


def test_refused_login_is_an_error_with_the_reason() -> None:
    async def scenario() -> None:
        server, creds = await _serve(FakeAsterisk(secret="other"))
        async with server:
            with pytest.raises(ami.AMIError, match="Authentication failed"):
                await ami.connect(creds)

    asyncio.run(scenario())


def test_unreachable_ami_is_an_error() -> None:
    async def scenario() -> None:
        server, creds = await _serve(FakeAsterisk())
        server.close()
        await server.wait_closed()
        with pytest.raises(ami.AMIError, match="cannot reach AMI"):
            await ami.connect(creds)

    asyncio.run(scenario())


def test_closed_connection_fails_pending_actions_and_ends_events() -> None:
    async def scenario() -> None:
        server, creds = await _serve(FakeAsterisk())
        async with server:
            client = await ami.connect(creds)
            with pytest.raises(ami.AMIError, match="closed"):
                await client.action("Hangup", timeout=5)
            assert [e async for e in client.events()] == []
            assert client.closed.is_set()
            await client.close()

    asyncio.run(scenario())


def test_run_forever_reconnects_after_a_drop() -> None:
    async def scenario() -> None:
        fake = FakeAsterisk()
        server, creds = await _serve(fake)
        stop = asyncio.Event()
        connects = 0

        async def on_connect(client: ami.AMI) -> None:
            nonlocal connects
            connects += 1
            if connects == 1:
                with pytest.raises(ami.AMIError):
                    await client.action("Hangup", timeout=5)
            else:
                stop.set()
                await client.action("Ping")

        async def on_event(_event: ami.Message) -> None:
            return None

        async with server:
            await asyncio.wait_for(
                ami.run_forever(creds, on_connect, on_event, backoff=ami.Backoff(0.01, 0.05), stop=stop), 10
            )
        assert connects == 2 and fake.logins == 2

    asyncio.run(scenario())
