"""minivm-send: options, the mail MiniVM pipes in, and delivery to a real SMTP server on loopback."""

from __future__ import annotations

import argparse
import io
import smtplib
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from pbx import voicemail
from pbx.settings import Settings


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test keeps failed mails in its own spool, never in the host's /var/spool."""
    directory = tmp_path / "spool"
    monkeypatch.setattr(voicemail, "SPOOL", directory)
    return directory


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
        self.later: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address in self.later:
            return "451 4.3.0 try again later"
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


# --- the password from a file, not the command line ------------------------------------------------------


def test_password_file_is_read_and_its_newline_dropped(tmp_path: Path) -> None:
    secret = tmp_path / "minivm.secret"
    secret.write_text("s3cret pass\n")
    relay = voicemail.relay_from_args(
        args("-H", "mx", "-P", "starttls", "-u", "vm", "--password-file", str(secret))
    )
    assert relay.password == "s3cret pass"


@pytest.mark.parametrize(("content", "message"), [(None, "No such file"), ("\n", "is empty")])
def test_bad_password_file_is_a_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    secret = tmp_path / "minivm.secret"
    if content is not None:
        secret.write_text(content)
    with pytest.raises(ValueError, match=f"password file {secret}.*{message}"):
        voicemail.relay_from_args(
            args("-H", "mx", "-P", "starttls", "-u", "vm", "--password-file", str(secret))
        )


def test_password_on_the_command_line_still_works_but_is_warned_about(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        run(["-P", "starttls", "-u", "vm", "-p", "pw"], minivm_mail()) == 2
    )  # no -H: fails after the warning
    err = capsys.readouterr().err
    assert "WARNING" in err and "/proc/*/cmdline" in err and "--password-file" in err


def test_password_and_password_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        voicemail.relay_from_args(args("-H", "mx", "-u", "vm", "-p", "pw", "--password-file", str(tmp_path)))


# --- TLS and AUTH against a real server ------------------------------------------------------------------


class Auth:
    def __init__(self, password: str) -> None:
        self.password = password
        self.seen: list[tuple[str, str, bool]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):  # aiosmtpd's authenticator
        from aiosmtpd.smtp import AuthResult

        login, password = auth_data.login.decode(), auth_data.password.decode()
        encrypted = server.transport.get_extra_info("ssl_object") is not None
        self.seen.append((login, password, encrypted))
        return AuthResult(success=password == self.password)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A server certificate for "localhost", its key, and an unrelated certificate (a CA nobody used)."""
    from tests.unit import tls_certs

    directory = tmp_path_factory.mktemp("certs")
    server, other = tls_certs.make("localhost"), tls_certs.make("localhost")
    (directory / "server.pem").write_bytes(server.cert_pem)
    (directory / "server.key").write_bytes(server.key_pem)
    (directory / "other.pem").write_bytes(other.cert_pem)
    return directory / "server.pem", directory / "server.key", directory / "other.pem"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["starttls", "smtps"])
def tls_server(request: pytest.FixtureRequest, certificates: tuple[Path, Path, Path]) -> Iterator[tuple]:
    """aiosmtpd with TLS (STARTTLS offered, or TLS from the start) that requires TLS before AUTH."""
    import ssl

    controller_mod = pytest.importorskip("aiosmtpd.controller")
    cert, key, _ = certificates
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox, auth, port = Inbox(), Auth("vm-pass"), free_port()
    options: dict[str, object] = {"authenticator": auth}
    if request.param == "starttls":
        options.update(tls_context=context, auth_require_tls=True, auth_required=True)
    else:
        # TLS from the start: aiosmtpd's auth_require_tls only knows STARTTLS, and every byte is encrypted
        options.update(ssl_context=context, auth_require_tls=False)
    controller = controller_mod.Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    yield request.param, inbox, auth, port
    controller.stop()


def test_login_over_tls_with_a_trusted_certificate(
    tls_server: tuple, certificates: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol, inbox, auth, port = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates[0]))  # how the client is told which CA to trust
    secret = tmp_path / "secret"
    secret.write_text("vm-pass\n")
    argv = ["-H", f"localhost:{port}", "-P", protocol, "-u", "vm", "--password-file", str(secret)]
    assert run(argv, minivm_mail()) == 0
    assert auth.seen == [("vm", "vm-pass", True)]  # the login went over TLS
    [(_, rcpt, _)] = inbox.envelopes
    assert rcpt == ["bob@example.test"]


def test_an_untrusted_certificate_fails_with_the_reason(
    tls_server: tuple,
    certificates: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spool_dir: Path,
) -> None:
    protocol, inbox, auth, port = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates[2]))  # trusts another certificate only
    assert run(["-H", f"localhost:{port}", "-P", protocol, "-u", "vm", "-p", "vm-pass"], minivm_mail()) == 1
    assert auth.seen == [] and inbox.envelopes == []  # the password never left
    err = capsys.readouterr().err
    assert "NOT sent" in err and "TLS failed" in err and "certificate verify failed" in err
    assert not list(spool_dir.glob("*.eml"))  # not a temporary failure: the operator must act


def test_auth_over_plain_smtp_is_refused(
    certificates: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    inbox, auth, port = Inbox(), Auth("vm-pass"), free_port()
    controller = controller_mod.Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=auth, auth_require_tls=True
    )
    controller.start()
    try:
        # the server would take AUTH only over TLS; minivm-send does not even try it in clear text
        assert run(["-H", f"127.0.0.1:{port}", "-u", "vm", "-p", "vm-pass"], minivm_mail()) == 2
        assert "encrypted connection" in capsys.readouterr().err
        # and the server does refuse it, so relying on the server alone would fail the same way
        with smtplib.SMTP("127.0.0.1", port) as smtp, pytest.raises(smtplib.SMTPException):
            smtp.login("vm", "vm-pass")
        assert auth.seen == [] and inbox.envelopes == []
    finally:
        controller.stop()


# --- refused recipients, temporary failures and the spool ------------------------------------------------


def two_recipients() -> bytes:
    return minivm_mail().replace(b"To: Bob <bob@example.test>", b"To: bob@example.test, eve@example.test")


def test_a_recipient_refused_while_another_is_taken_is_an_error(
    smtp_server: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp_server
    inbox.refuse.add("eve@example.test")
    assert run(["-H", f"127.0.0.1:{port}"], two_recipients()) == 1
    [(_, rcpt, _)] = inbox.envelopes
    assert rcpt == ["bob@example.test"]
    lines = capsys.readouterr().err.splitlines()
    assert any("NOTICE" in x and "sent to bob@example.test" in x for x in lines)
    [error] = [x for x in lines if "ERROR" in x]
    assert "eve@example.test NOT sent" in error and "550 5.1.1 mailbox unavailable" in error


def test_an_unexpected_error_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("unexpected state")

    monkeypatch.setattr(voicemail, "deliver", broken)
    assert run(["-H", "127.0.0.1:25"], minivm_mail()) == 1
    err = capsys.readouterr().err
    assert "NOT sent via 127.0.0.1:25 (smtp): unexpected state" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("err", "temporary"),
    [
        (smtplib.SMTPRecipientsRefused({"a@b": (450, b"busy")}), True),
        (smtplib.SMTPRecipientsRefused({"a@b": (550, b"no")}), False),
        (smtplib.SMTPSenderRefused(451, b"later", "x@y"), True),
        (smtplib.SMTPAuthenticationError(535, b"bad"), False),
        (smtplib.SMTPServerDisconnected("gone"), True),
        (smtplib.SMTPNotSupportedError("no STARTTLS"), False),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError(), True),
        (socket.gaierror(-3, "Temporary failure in name resolution"), True),
        (__import__("ssl").SSLCertVerificationError("certificate verify failed"), False),
        (RuntimeError("x"), False),
    ],
)
def test_temporary_failures(err: BaseException, temporary: bool) -> None:
    assert voicemail.is_temporary(err) is temporary


def test_a_temporary_failure_keeps_the_mail_and_the_retry_sends_it(
    smtp_server: tuple[Inbox, int], spool_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp_server
    raw = two_recipients()
    inbox.refuse.add("eve@example.test")
    inbox.later.add("bob@example.test")
    assert run(["-H", f"127.0.0.1:{port}"], raw) == 1
    assert len(list(spool_dir.glob("*.eml"))) == 1
    assert oct(spool_dir.stat().st_mode & 0o777) == "0o750"
    assert "kept in" in capsys.readouterr().err
    assert not list(spool_dir.glob(".tmp-*"))  # written whole, then renamed
    inbox.later.clear()
    assert run(["--retry-spool", "-H", f"127.0.0.1:{port}"], b"") == 0
    [(_, rcpt, content)] = inbox.envelopes
    assert rcpt == ["bob@example.test"]  # only the one still to go: eve refused for good
    assert b"msg0001.wav" in content and b"X-Minivm-Send" not in content
    assert list(spool_dir.glob("*.eml")) == []
    assert "spooled voicemail mail sent to bob@example.test" in capsys.readouterr().err


def test_mail_kept_while_the_server_is_down_goes_out_with_the_next_one(
    smtp_server: tuple[Inbox, int], spool_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp_server
    down = free_port()
    assert run(["-H", f"127.0.0.1:{down}"], minivm_mail("first@example.test")) == 1
    assert len(list(spool_dir.glob("*.eml"))) == 1
    err = capsys.readouterr().err
    assert "NOT sent" in err and "kept in" in err and "--retry-spool" in err
    assert run(["-H", f"127.0.0.1:{port}"], minivm_mail("second@example.test")) == 0
    assert [rcpt for _, rcpt, _ in inbox.envelopes] == [["second@example.test"], ["first@example.test"]]
    assert list(spool_dir.glob("*.eml")) == []


def test_retry_takes_the_options_of_minivm_conf_and_sets_refused_mails_aside(
    smtp_server: tuple[Inbox, int], spool_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, port = smtp_server
    conf = tmp_path / "minivm.conf"
    conf.write_text(f"[general]\nmailcmd = minivm-send -H 127.0.0.1:{port} -f bounces@pbx.example\n")
    monkeypatch.setattr(voicemail, "MINIVM_CONF", conf)
    ok = voicemail.spool(minivm_mail(), ["bob@example.test"], spool_dir)
    bad = voicemail.spool(minivm_mail("gone@example.test"), ["gone@example.test"], spool_dir)
    inbox.refuse.add("gone@example.test")
    assert run(["--retry-spool"], b"") == 1
    assert [(sender, rcpt) for sender, rcpt, _ in inbox.envelopes] == [
        ("bounces@pbx.example", ["bob@example.test"])
    ]
    assert not ok.exists() and not bad.exists() and bad.with_suffix(".failed").exists()


def test_the_retry_service_sends_kept_mail_at_its_next_round(
    smtp_server: tuple[Inbox, int], spool_dir: Path
) -> None:
    import asyncio

    inbox, port = smtp_server
    options = args("--retry-spool", "--every", "0.01", "-H", f"127.0.0.1:{port}")
    asyncio.run(voicemail.retry_periodically(options, spool_dir, 0.01, rounds=1))  # no spool yet: nothing
    voicemail.spool(minivm_mail(), ["bob@example.test"], spool_dir)
    asyncio.run(voicemail.retry_periodically(options, spool_dir, 0.01, rounds=2))
    assert [rcpt for _, rcpt, _ in inbox.envelopes] == [["bob@example.test"]]  # once, not once a round
    assert list(spool_dir.glob("*.eml")) == []


def test_only_one_retry_runs_at_a_time(smtp_server: tuple[Inbox, int], spool_dir: Path) -> None:
    import fcntl

    inbox, port = smtp_server
    voicemail.spool(minivm_mail(), ["bob@example.test"], spool_dir)
    with open(spool_dir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another retry is busy with the spool
        assert voicemail.retry_spool(voicemail.Relay("127.0.0.1", port), spool_dir) == 0
        assert inbox.envelopes == []
    assert voicemail.retry_spool(voicemail.Relay("127.0.0.1", port), spool_dir) == 0
    assert len(inbox.envelopes) == 1
