"""`minivm-send`: hand a voicemail mail, as MiniVM pipes it in, to an SMTP server.

app_minivm writes the complete mail (headers, text and the recording as a MIME attachment) to a file and
runs its ``mailcmd`` with that file on stdin, in the background: nobody looks at the exit status, so the
log line this command writes (to Asterisk's stderr, i.e. ``docker logs``) is how an operator learns that a
mail went out or why it did not. The options are those of the script this command succeeds:

    mailcmd = minivm-send -H smtp.example.com:587 -P starttls -u user
              --password-file /etc/asterisk/minivm.secret -f voicemail@example.com   (one line)

A mail that fails for a temporary reason (a 4xx reply, a connection or DNS error, a timeout) is not lost:
it is written atomically into the spool directory (persisted under /srv) and sent again by
``minivm-send --retry-spool`` (with the same options; without -H they are read from minivm.conf's mailcmd):
every 5 minutes by the minivm-retry service (``--every 300``), and after every mail that went out.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import secrets
import shlex
import smtplib
import ssl
import sys
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import BinaryIO, ClassVar

from pbx import files
from pbx.asterisk.conf import read_config
from pbx.settings import Settings

log = logging.getLogger("pbx.minivm-send")

PROTOCOLS = ("smtp", "smtps", "tls", "starttls")
DEFAULT_PORTS = {"smtp": 25, "smtps": 465, "tls": 465, "starttls": 587}
TIMEOUT = 30.0
SPOOL = Path("/var/spool/asterisk/minivm-send")
MINIVM_CONF = Path("/etc/asterisk/minivm.conf")
# Added to a spooled mail: whom it is still to go to (others may have taken it already).
SPOOL_RECIPIENTS = "X-Minivm-Send-Recipients"


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


def read_password_file(path: str) -> str:
    """The first line of the file (a trailing newline is not part of the password)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ValueError(f"password file {path}: {reason}") from None
    password = text.splitlines()[0] if text.strip() else ""
    if not password:
        raise ValueError(f"password file {path} is empty")
    return password


def relay_from_args(args: argparse.Namespace) -> Relay:
    protocol = args.protocol.lower()
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {args.protocol!r}: choose from {', '.join(PROTOCOLS)}")
    if args.password and args.password_file:
        raise ValueError("give -p or --password-file, not both")
    password = read_password_file(args.password_file) if args.password_file else args.password
    if protocol == "smtp" and args.username:
        # Refusing beats sending a password in clear text across the internet.
        raise ValueError("-u/-p need an encrypted connection: use -P starttls or -P smtps")
    if bool(args.username) != bool(password):
        raise ValueError("give both -u and -p (or --password-file), or neither")
    host, port = parse_host(args.host or "", protocol)
    return Relay(host, port, protocol, args.username or None, password or None, args.sender or None)


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


def deliver(
    mail: EmailMessage, relay: Relay, to: list[str] | None = None, timeout: float = TIMEOUT
) -> tuple[list[str], dict[str, tuple[int, bytes]]]:
    """Send over SMTP; returns the recipients taken and those refused (while others were taken).
    Raises OSError/smtplib errors on failure. The CA file may be set with SSL_CERT_FILE."""
    context = ssl.create_default_context()
    to = to or recipients(mail)
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
    return [addr for addr in to if addr not in refused], dict(refused)


def is_temporary(err: BaseException) -> bool:
    """Worth trying again later: a 4xx reply, a dropped or refused connection, a timeout, DNS. Not: a 5xx
    reply, a TLS or certificate failure, a server without STARTTLS (those need the operator)."""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return bool(err.recipients) and all(400 <= code < 500 for code, _ in err.recipients.values())
    if isinstance(err, smtplib.SMTPResponseException):
        return 400 <= err.smtp_code < 500
    if isinstance(err, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(err, smtplib.SMTPException | ssl.SSLError | ssl.CertificateError):
        return False
    return isinstance(err, OSError)


def spool(raw: bytes, to: list[str], directory: Path = SPOOL) -> Path:
    """Keep the mail for a later try: written to a temporary file, synced, then renamed, so that the spool
    holds only whole mails, even across a crash."""
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    head = f"{SPOOL_RECIPIENTS}: {', '.join(to)}\r\n".encode()
    final = directory / f"{time.time_ns()}-{secrets.token_hex(4)}.eml"
    files.write_atomic(final, head + raw)
    return final


def unspool(path: Path) -> tuple[bytes, list[str]]:
    """A spooled mail as MiniVM wrote it, and the recipients it is still to go to."""
    data = path.read_bytes()
    first, _, rest = data.partition(b"\n")
    name, _, value = first.decode("utf-8", "replace").partition(":")
    if name.strip().lower() != SPOOL_RECIPIENTS.lower():
        return data, []
    return rest, [addr.strip() for addr in value.split(",") if addr.strip()]


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
    parser.add_argument(
        "-p", dest="password", help="login password (visible to every local process: use --password-file)"
    )
    parser.add_argument(
        "--password-file", metavar="PATH", help="read the login password from the first line of this file"
    )
    parser.add_argument("-f", dest="sender", metavar="ADDRESS", help="envelope sender (MAIL FROM)")
    parser.add_argument("-e", dest="echo", action="store_true", help="also write the log lines to stdout")
    parser.add_argument(
        "--retry-spool",
        action="store_true",
        help="send the mails kept after temporary failures (no -H: the options of minivm.conf's mailcmd)",
    )
    parser.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="with --retry-spool: keep running, and try the spool this often (the minivm-retry service)",
    )
    parser.add_argument("--spool", type=Path, metavar="DIR", help=f"spool directory (default {SPOOL})")


def setup_log(echo: bool) -> None:
    # Success and failure are always shown (Asterisk ignores our exit status), whatever SYSLOG_LEVEL says.
    log.setLevel(logging.INFO)
    log.propagate = False
    streams = [sys.stderr, sys.stdout] if echo else [sys.stderr]
    log.handlers[:] = [logging.StreamHandler(stream) for stream in streams]
    for handler in log.handlers:
        handler.setFormatter(AsteriskStyle())


def command(args: argparse.Namespace, settings: Settings, stdin: BinaryIO | None = None) -> int:
    setup_log(args.echo)
    directory: Path = args.spool or SPOOL
    if args.retry_spool and args.every:
        asyncio.run(retry_periodically(args, directory, args.every))
        return 0
    if args.retry_spool:
        return retry_command(args, directory)
    raw = (stdin or sys.stdin.buffer).read()
    warn_about_password_option(args)
    try:
        relay = relay_from_args(args)
        mail = parse_mail(raw)
    except ValueError as err:
        log.error("voicemail mail NOT sent: %s", err)
        return 2
    status = send(raw, mail, relay, recipients(mail), directory)
    if status == SENT and any(directory.glob("*.eml")):
        retry_spool(relay, directory)  # the server takes mail again: a good time for the ones kept
    return EXIT[status]


SENT, KEPT, FAILED = "sent", "kept", "failed"
# Kept is not sent: 1 as well (the log line says that it was kept).
EXIT = {SENT: 0, KEPT: 1, FAILED: 1}


def warn_about_password_option(args: argparse.Namespace) -> None:
    if args.password:
        log.warning(
            "-p puts the mail password on the command line, where every local process can read it "
            "(/proc/*/cmdline): put it in a file (mode 0640, owner asterisk) and use --password-file"
        )


def send(
    raw: bytes,
    mail: EmailMessage,
    relay: Relay,
    to: list[str],
    directory: Path,
    spooled: Path | None = None,
) -> str:
    """Deliver one mail and log the outcome; on a temporary failure keep it in the spool (or leave it there,
    when it came from there). Returns SENT, KEPT or FAILED."""
    where = f"{relay.host}:{relay.port} ({relay.protocol})"
    what = "spooled voicemail mail" if spooled else "voicemail mail"
    try:
        taken, refused = deliver(mail, relay, to)
    except smtplib.SMTPRecipientsRefused as err:
        taken, refused = [], dict(err.recipients)  # each recipient on its own: some may be worth a retry
    except Exception as err:  # the last resort too: one clear line in the log, never a traceback
        reason = describe_failure(err)
        if not is_temporary(err):
            log.error("%s to %s NOT sent via %s: %s", what, ", ".join(to), where, reason)
            return FAILED
        return keep(raw, to, directory, spooled, f"{what} to {', '.join(to)} NOT sent via {where}: {reason}")
    if taken:
        log.info("%s sent to %s via %s, %s", what, ", ".join(taken), where, summary(mail))
    if not refused:
        return SENT
    later = [addr for addr, (code, _) in refused.items() if 400 <= code < 500]
    failed = [addr for addr in refused if addr not in later]
    if failed:
        reason = "; ".join(f"{addr}: {refused[addr][0]} {_text(refused[addr][1])}" for addr in failed)
        failed_to = ", ".join(failed)
        log.error("%s to %s NOT sent via %s: recipient(s) refused: %s", what, failed_to, where, reason)
    if later:
        reason = "; ".join(f"{addr}: {refused[addr][0]} {_text(refused[addr][1])}" for addr in later)
        failure = f"{what} to {', '.join(later)} NOT sent via {where}: recipient(s) refused for now: {reason}"
        if keep(raw, later, directory, spooled, failure) == KEPT and not failed:
            return KEPT
    return FAILED


def keep(raw: bytes, to: list[str], directory: Path, spooled: Path | None, failure: str) -> str:
    if spooled is not None:
        log.error("%s; still kept in %s for the next try", failure, spooled)
        return KEPT
    try:
        path = spool(raw, to, directory)
    except OSError as err:
        log.error("%s; and it could NOT be kept in %s: %s", failure, directory, describe_failure(err))
        return FAILED
    log.error("%s; kept in %s, to be sent by minivm-send --retry-spool", failure, path)
    return KEPT


def retry_command(args: argparse.Namespace, directory: Path) -> int:
    if not args.host:
        args = mailcmd_args(args)
    warn_about_password_option(args)
    try:
        relay = relay_from_args(args)
    except ValueError as err:
        log.error("spooled voicemail mails NOT sent: %s", err)
        return 2
    return retry_spool(relay, directory)


def mailcmd_args(args: argparse.Namespace, conf: Path | None = None) -> argparse.Namespace:
    """The options of minivm.conf's ``[general] mailcmd`` (so that the retry needs no copy of them)."""
    conf = conf or MINIVM_CONF
    general = read_config(conf).get("general")
    line = general.get("mailcmd", "") if general else ""
    parser = argparse.ArgumentParser(prog="mailcmd", add_help=False, exit_on_error=False)
    configure(parser)
    try:
        parsed = parser.parse_args(shlex.split(line)[1:])
    except (argparse.ArgumentError, ValueError) as err:
        raise ValueError(f"{conf}: mailcmd {line!r}: {err}") from None
    parsed.retry_spool, parsed.spool, parsed.echo = True, args.spool, args.echo
    return parsed


async def retry_periodically(
    args: argparse.Namespace, directory: Path, every: float, rounds: int | None = None
) -> None:
    """The minivm-retry service: a round whenever the spool holds mail (the options are read anew each
    time, so a corrected minivm.conf applies at the next round); an empty spool costs a directory listing."""
    done = 0
    while rounds is None or done < rounds:
        if directory.is_dir() and any(directory.glob("*.eml")):
            try:
                await asyncio.to_thread(retry_command, args, directory)
            except (OSError, ValueError) as err:
                log.error("spooled voicemail mails NOT sent: %s", err)
        done += 1
        await asyncio.sleep(every)


def retry_spool(relay: Relay, directory: Path) -> int:
    """Try every kept mail once, oldest first: sent ones are removed, refused ones renamed to .failed.
    One retry at a time (the service, a mail that just went out, a hand-run): the others skip it, so that
    no mail is sent twice."""
    if not directory.is_dir():
        return 0
    with open(directory / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        return _retry_locked(relay, directory)


def _retry_locked(relay: Relay, directory: Path) -> int:
    status = 0
    for path in sorted(directory.glob("*.eml")):
        if not path.exists():
            continue
        try:
            raw, to = unspool(path)
            mail = parse_mail(raw)
        except (OSError, ValueError) as err:
            log.error("spooled voicemail mail %s is unreadable: %s", path, err)
            path.rename(path.with_suffix(".failed"))
            status = 1
            continue
        outcome = send(raw, mail, relay, to or recipients(mail), directory, spooled=path)
        if outcome == SENT:
            path.unlink()
        elif outcome == FAILED:
            path.rename(path.with_suffix(".failed"))
            status = 1
        else:
            status = max(status, 1)
    return status
