"""`minivm-send`: hand a voicemail mail, as MiniVM pipes it in, to an SMTP server.

app_minivm writes the complete mail (headers, text and the recording as a MIME attachment) to a file and
runs its ``mailcmd`` with that file on stdin, in the background: nobody looks at the exit status, so the
log line this command writes (to Asterisk's stderr, i.e. ``docker logs``) is how an operator learns that a
mail went out or why it did not. The options are those of the script this command succeeds:

    mailcmd = minivm-send -H smtp.example.com:587 -P starttls -u user -p secret -f voicemail@example.com
"""

from __future__ import annotations

import argparse
import logging
import smtplib
import ssl
import sys
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from typing import BinaryIO, ClassVar

from pbx.settings import Settings

log = logging.getLogger("pbx.minivm-send")

PROTOCOLS = ("smtp", "smtps", "tls", "starttls")
DEFAULT_PORTS = {"smtp": 25, "smtps": 465, "tls": 465, "starttls": 587}
TIMEOUT = 30.0


@dataclass(frozen=True)
class Relay:
    """Where and how to deliver: the mail server, its protocol and the optional login."""

    host: str
    port: int
    protocol: str = "smtp"
    username: str | None = None
    password: str | None = None
    sender: str | None = None

    @property
    def implicit_tls(self) -> bool:
        return self.protocol in {"smtps", "tls"}


def parse_host(text: str, protocol: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port); the port defaults per protocol."""
    text = text.strip()
    if not text:
        raise ValueError("no mail host: give -H host[:port] in minivm.conf mailcmd")
    port_text = ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"mail host {text!r}: expected [address] or [address]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    if not host:
        raise ValueError(f"mail host {text!r} has no host name")
    if not port_text:
        return host, DEFAULT_PORTS[protocol]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"mail host {text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


def relay_from_args(args: argparse.Namespace) -> Relay:
    protocol = args.protocol.lower()
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {args.protocol!r}: choose from {', '.join(PROTOCOLS)}")
    if protocol == "smtp" and args.username:
        # Refusing beats sending a password in clear text across the internet.
        raise ValueError("-u/-p need an encrypted connection: use -P starttls or -P smtps")
    if bool(args.username) != bool(args.password):
        raise ValueError("give both -u and -p, or neither")
    host, port = parse_host(args.host or "", protocol)
    return Relay(host, port, protocol, args.username or None, args.password or None, args.sender or None)


def parse_mail(raw: bytes) -> EmailMessage:
    """The mail MiniVM wrote; it must name at least one recipient."""
    if not raw.strip():
        raise ValueError("no mail on stdin")
    mail = message_from_bytes(raw, policy=policy.SMTP)
    if not isinstance(mail, EmailMessage):  # pragma: no cover - policy.SMTP always makes EmailMessage
        raise TypeError("unexpected message class")
    if not recipients(mail):
        raise ValueError("the mail has no To/Cc address")
    return mail


def recipients(mail: EmailMessage) -> list[str]:
    fields = [str(v) for key in ("To", "Cc", "Bcc") for v in mail.get_all(key, [])]
    return [addr for _, addr in getaddresses(fields) if "@" in addr]


def envelope_sender(mail: EmailMessage, relay: Relay) -> str:
    """-f wins; else the From address of the mail (MiniVM's serveremail/fromaddress)."""
    if relay.sender:
        return relay.sender
    found = [addr for _, addr in getaddresses([str(v) for v in mail.get_all("From", [])]) if addr]
    return found[0] if found else ""


def summary(mail: EmailMessage) -> str:
    attached = [part.get_filename() for part in mail.iter_attachments()]
    names = ", ".join(name for name in attached if name) or "none"
    return f"subject {str(mail.get('Subject', ''))!r}, attachment(s): {names}"


def deliver(mail: EmailMessage, relay: Relay, timeout: float = TIMEOUT) -> list[str]:
    """Send over SMTP; returns the recipients taken. Raises OSError/smtplib errors on failure."""
    context = ssl.create_default_context()
    to = recipients(mail)
    del mail["Bcc"]
    smtp: smtplib.SMTP
    if relay.implicit_tls:
        smtp = smtplib.SMTP_SSL(relay.host, relay.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if relay.protocol == "starttls":
            # smtplib.starttls raises SMTPNotSupportedError when the server does not offer it: we never
            # fall back to plain text.
            smtp.starttls(context=context)
            smtp.ehlo()
        if relay.username and relay.password:
            smtp.login(relay.username, relay.password)
        refused = smtp.send_message(mail, from_addr=envelope_sender(mail, relay), to_addrs=to)
    return [addr for addr in to if addr not in refused]


def describe_failure(err: BaseException) -> str:  # noqa: PLR0911 - one case per kind of failure
    """One line that says why, for the log."""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        parts = [f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in err.recipients.items()]
        return "recipient(s) refused: " + "; ".join(parts)
    if isinstance(err, smtplib.SMTPResponseException):
        return f"server said {err.smtp_code} {_text(err.smtp_error)}"
    if isinstance(err, smtplib.SMTPNotSupportedError):
        return f"server does not support it: {err}"
    if isinstance(err, ssl.SSLError | ssl.CertificateError):
        return f"TLS failed: {err}"
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError):
        return err.strerror or str(err) or type(err).__name__
    return str(err) or type(err).__name__


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class AsteriskStyle(logging.Formatter):
    """Lines shaped like Asterisk's own console lines, because they share its stderr: the log service
    (pbx logfilter) then ranks them by SYSLOG_LEVEL like Asterisk's, so a failed mail shows as an ERROR by
    default, and a sent one as a NOTICE."""

    LEVELS: ClassVar[dict[int, str]] = {
        logging.INFO: "NOTICE",
        logging.WARNING: "WARNING",
        logging.ERROR: "ERROR",
    }

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, "%Y-%m-%d %H:%M:%S") + f".{int(record.msecs):03d}"
        level = self.LEVELS.get(record.levelno, record.levelname)
        return f"[{when}] {level}[{record.process}]: minivm-send: {record.getMessage()}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "Send the mail on stdin (as MiniVM's mailcmd) to an SMTP server."
    parser.add_argument("-H", dest="host", metavar="HOST[:PORT]", help="the mail server")
    parser.add_argument(
        "-P", dest="protocol", default="smtp", metavar="PROTOCOL", help="smtp, smtps, tls or starttls"
    )
    parser.add_argument("-u", dest="username", help="login name")
    parser.add_argument("-p", dest="password", help="login password")
    parser.add_argument("-f", dest="sender", metavar="ADDRESS", help="envelope sender (MAIL FROM)")
    parser.add_argument("-e", dest="echo", action="store_true", help="also write the log lines to stdout")


def command(args: argparse.Namespace, settings: Settings, stdin: BinaryIO | None = None) -> int:
    # Success and failure are always shown (Asterisk ignores our exit status), whatever SYSLOG_LEVEL says.
    log.setLevel(logging.INFO)
    log.propagate = False
    streams = [sys.stderr, sys.stdout] if args.echo else [sys.stderr]
    log.handlers[:] = [logging.StreamHandler(stream) for stream in streams]
    for handler in log.handlers:
        handler.setFormatter(AsteriskStyle())
    raw = (stdin or sys.stdin.buffer).read()
    try:
        relay = relay_from_args(args)
        mail = parse_mail(raw)
    except ValueError as err:
        log.error("voicemail mail NOT sent: %s", err)
        return 2
    to = ", ".join(recipients(mail))
    where = f"{relay.host}:{relay.port} ({relay.protocol})"
    try:
        taken = deliver(mail, relay)
    except (OSError, smtplib.SMTPException) as err:
        log.error("voicemail mail to %s NOT sent via %s: %s", to, where, describe_failure(err))
        return 1
    log.info("voicemail mail sent to %s via %s, %s", ", ".join(taken), where, summary(mail))
    return 0
