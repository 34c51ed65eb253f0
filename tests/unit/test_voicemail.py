"""minivm-send: options, the mail MiniVM pipes in, and delivery to a real SMTP server on loopback."""

from __future__ import annotations

import argparse
import io
import smtplib
import socket
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from pbx import voicemail
from pbx.settings import Settings


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    voicemail.configure(parser)
    return parser.parse_args(list(argv))


def minivm_mail(to: str = "bob@example.test") -> bytes:
    """A mail shaped like the one app_minivm writes: headers, text, the WAV as base64 attachment."""
    mail = EmailMessage()
    mail["From"] = "PrivateDial Voicemail <voicemail@pbx.example>"
    mail["To"] = f"Bob <{to}>"
    mail["Subject"] = "Voicemail from +12025550101"
    mail.set_content("You have a new voicemail message.\n")
    mail.add_attachment(b"RIFF....WAVEfmt ", maintype="audio", subtype="x-wav", filename="msg0001.wav")
    return mail.as_bytes()


@pytest.mark.parametrize(
    ("text", "protocol", "expected"),
    [
        ("mx.example.com", "smtp", ("mx.example.com", 25)),
        ("mx.example.com", "starttls", ("mx.example.com", 587)),
        ("mx.example.com", "smtps", ("mx.example.com", 465)),
        ("mx.example.com:2525", "smtp", ("mx.example.com", 2525)),
        ("[2001:db8::1]:587", "starttls", ("2001:db8::1", 587)),
        ("[2001:db8::1]", "tls", ("2001:db8::1", 465)),
        ("2001:db8::1", "smtp", ("2001:db8::1", 25)),
    ],
)
def test_host_and_default_port(text: str, protocol: str, expected: tuple[str, int]) -> None:
    assert voicemail.parse_host(text, protocol) == expected


@pytest.mark.parametrize("text", ["", "mx:0", "mx:70000", "mx:abc", ":25", "[::1", "[::1]x"])
def test_bad_host_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="mail host"):
        voicemail.parse_host(text, "smtp")


def test_relay_from_options() -> None:
    relay = voicemail.relay_from_args(
        args("-H", "mx.example.com:587", "-P", "STARTTLS", "-u", "vm", "-p", "pw", "-f", "vm@example.com")
    )
    assert relay == voicemail.Relay("mx.example.com", 587, "starttls", "vm", "pw", "vm@example.com")
    assert not relay.implicit_tls
    assert voicemail.relay_from_args(args("-H", "mx", "-P", "smtps")).implicit_tls


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("-H", "mx", "-P", "pop3"), "choose from"),
        (("-H", "mx", "-u", "vm", "-p", "pw"), "encrypted connection"),
        (("-H", "mx", "-P", "starttls", "-u", "vm"), "both -u and -p"),
        ((), "no mail host"),
    ],
)
def test_refused_options(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        voicemail.relay_from_args(args(*argv))


def test_mail_recipients_and_envelope_sender() -> None:
    mail = voicemail.parse_mail(minivm_mail())
    assert voicemail.recipients(mail) == ["bob@example.test"]
    relay = voicemail.Relay("mx", 25)
    assert voicemail.envelope_sender(mail, relay) == "voicemail@pbx.example"
    assert voicemail.envelope_sender(mail, voicemail.Relay("mx", 25, sender="bounce@x.example")) == (
        "bounce@x.example"
    )
    assert "msg0001.wav" in voicemail.summary(mail)


@pytest.mark.parametrize(("raw", "message"), [(b"", "no mail on stdin"), (b"Subject: x\n\nhi\n", "no To")])
def test_bad_mail_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        voicemail.parse_mail(raw)


def test_failures_are_described_in_one_line() -> None:
    refused = smtplib.SMTPRecipientsRefused({"x@y": (550, b"5.1.1 no such user")})
    assert voicemail.describe_failure(refused) == "recipient(s) refused: x@y: 550 5.1.1 no such user"
    auth = smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials")
    assert voicemail.describe_failure(auth) == "server said 535 5.7.8 bad credentials"
    assert (
        voicemail.describe_failure(ConnectionRefusedError(111, "Connection refused")) == "Connection refused"
    )
    assert voicemail.describe_failure(TimeoutError()) == "timed out"


# --- against a real SMTP server (aiosmtpd) on loopback ---------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = controller_mod.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def run(argv: list[str], raw: bytes) -> int:
    return voicemail.command(args(*argv), Settings(), stdin=io.BytesIO(raw))


def test_mail_is_delivered_with_envelope_from(
    smtp_server: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp_server
    raw = minivm_mail()
    assert run(["-H", f"127.0.0.1:{port}", "-f", "bounce@pbx.example"], raw) == 0
    [(mail_from, rcpt, content)] = inbox.envelopes
    assert mail_from == "bounce@pbx.example"
    assert rcpt == ["bob@example.test"]
    assert b"msg0001.wav" in content
    assert "sent to bob@example.test" in capsys.readouterr().err


def test_refused_recipient_fails_with_the_reason(
    smtp_server: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp_server
    inbox.refuse.add("bob@example.test")
    assert run(["-H", f"127.0.0.1:{port}"], minivm_mail()) == 1
    assert inbox.envelopes == []
    err = capsys.readouterr().err
    assert "NOT sent" in err
    assert "550 5.1.1 mailbox unavailable" in err


def test_starttls_is_never_skipped(
    smtp_server: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp_server  # offers no STARTTLS: the mail must not go out in clear text
    assert run(["-H", f"127.0.0.1:{port}", "-P", "starttls", "-u", "vm", "-p", "pw"], minivm_mail()) == 1
    assert inbox.envelopes == []
    assert "STARTTLS extension not supported" in capsys.readouterr().err


def test_unreachable_server_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    assert run(["-H", f"127.0.0.1:{port}"], minivm_mail()) == 1
    assert "refused" in capsys.readouterr().err.lower()


def test_missing_host_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([], minivm_mail()) == 2
    assert "no mail host" in capsys.readouterr().err


def test_log_lines_are_ranked_by_the_log_service_like_asterisk_lines(
    smtp_server: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    from pbx.logfilter import parse
    from pbx.settings import LogOptions

    inbox, port = smtp_server
    inbox.refuse.add("bob@example.test")
    run(["-H", f"127.0.0.1:{port}"], minivm_mail())
    inbox.refuse.clear()
    run(["-H", f"127.0.0.1:{port}"], minivm_mail())
    failed, sent = capsys.readouterr().err.splitlines()
    assert parse(failed, LogOptions()).severity == 3  # ERROR: shown at the default SYSLOG_LEVEL=4
    assert parse(sent, LogOptions()).severity == 5  # NOTICE
    assert parse(failed, LogOptions()).text.startswith(
        "ERROR: minivm-send: voicemail mail to bob@example.test"
    )
