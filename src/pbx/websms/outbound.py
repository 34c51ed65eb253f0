"""Outgoing SMS: the provider's HTTP request (pure, byte-exact) and what its answer means.

`build_request` decides every byte; `classify` decides SENT / RETRY / FAILED from the status and body;
`send` is the only effect: one HTTPS request with the certificate verified (never turned off).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from pbx import __version__
from pbx.websms import signatures
from pbx.websms.config import Outgoing

Status = Literal["SENT", "RETRY", "FAILED"]

# GSM 03.38 default alphabet and its extension table: text outside it needs a Unicode SMS.
GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€\f"
)
_NUMBER_JUNK = re.compile(r"[\s().\-/]")
_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_SENDER = re.compile(r"[A-Za-z0-9+ ._-]{1,32}")
MAX_ANSWER = 64 * 1024


@dataclass(frozen=True)
class Message:
    to: str
    sender: str
    body: str


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str


def number(raw: str, what: str) -> str:
    """A phone number as given (+E.164 or digits), without spaces, dashes, dots or brackets."""
    cleaned = _NUMBER_JUNK.sub("", raw)
    if not _NUMBER.fullmatch(cleaned):
        raise ValueError(f"{what} {raw!r} is not a phone number")
    return cleaned


def sender(raw: str) -> str:
    """The sender: a number, or an alphanumeric sender id (up to 32 plain characters)."""
    stripped = raw.strip()
    if _NUMBER.fullmatch(_NUMBER_JUNK.sub("", stripped)):
        return _NUMBER_JUNK.sub("", stripped)
    if not _SENDER.fullmatch(stripped):
        raise ValueError(f"sender {raw!r} is neither a phone number nor a sender id")
    return stripped


def numform(value: str, form: str) -> str:
    """E164 means the provider wants international numbers without the leading '+'."""
    return value.removeprefix("+") if form == "E164" else value


def is_gsm7(text: str) -> bool:
    return all(c in GSM7 for c in text)


def to_ucs2(text: str) -> str:
    """Limit text to the Basic Multilingual Plane (UCS-2): other characters become U+FFFD."""
    return "".join(c if ord(c) <= 0xFFFF else "\ufffd" for c in text)


def fields(iface: Outgoing, msg: Message) -> list[tuple[str, str]]:
    """The request's key/value pairs in the order they are written (before form sorting)."""
    body = to_ucs2(msg.body) if iface.val_unicode.upper() == "UCS-2" else msg.body
    pairs = [
        (iface.key_to, numform(msg.to, iface.val_numform)),
        (iface.key_from, numform(msg.sender, iface.val_numform)),
        (iface.key_body, body),
    ]
    if iface.auth_method == "plain":
        pairs += [(iface.key_user, iface.auth_user), (iface.key_secret, iface.auth_secret)]
    pairs += list(iface.val_static)
    if "=" in iface.val_unicode and not is_gsm7(body):
        name, _, value = iface.val_unicode.partition("=")
        pairs.append((name.strip(), value.strip()))
    return pairs


def form_body(pairs: list[tuple[str, str]], php: bool = False) -> str:
    """Sorted by key, as the original did (and Zadarma's signature requires).

    `php`: `~` as %7E, like PHP's http_build_query, which Zadarma's server uses to check the signature.
    """
    body = urlencode(sorted(pairs, key=lambda kv: kv[0]))
    return body.replace("~", "%7E") if php else body


def json_body(pairs: list[tuple[str, str]]) -> bytes:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key.endswith("[]"):
            doc[key[:-2]] = [value]
        else:
            doc[key] = value
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def build_request(iface: Outgoing, msg: Message) -> Request:
    pairs = fields(iface, msg)
    headers: list[tuple[str, str]] = [
        ("Accept", "application/json"),
        ("User-Agent", f"pbx-websms/{__version__}"),
    ]
    if iface.body_format == "json":
        body = json_body(pairs)
        headers.append(("Content-Type", "application/json"))
    else:
        query = form_body(pairs, php=iface.auth_method == "zadarma")
        body = query.encode()
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    if iface.auth_method == "basic":
        token = base64.b64encode(f"{iface.auth_user}:{iface.auth_secret}".encode()).decode()
        headers.append(("Authorization", f"Basic {token}"))
    elif iface.auth_method == "bearer":
        headers.append(("Authorization", f"Bearer {iface.auth_secret}"))
    elif iface.auth_method == "zadarma":
        query = form_body(pairs, php=True) if iface.body_format == "form" else ""
        signature = signatures.zadarma_request(iface.auth_secret, iface.url_path, query)
        headers.append(("Authorization", f"{iface.auth_user}:{signature}"))
    return Request("POST", iface.url, tuple(headers), body)


def lookup(doc: Any, path: str) -> Any:
    """`a.b.0.c` in decoded JSON (a numeric part indexes a list); None when absent.

    A string met on the way that holds JSON is decoded (Zadarma sends a JSON document in a form field).
    """
    node = doc
    for part in path.split(".") if path else []:
        if isinstance(node, str):
            try:
                node = json.loads(node)
            except ValueError:
                return None
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def scalar(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_response(check: str, text: str) -> bool:
    """`resp_check`: "key=value" (dotted path into the JSON answer) or "/regex/" (searched in the text)."""
    if not check:
        return True
    if len(check) >= 2 and check.startswith("/") and check.endswith("/"):
        return re.search(check[1:-1], text) is not None
    key, _, expected = check.partition("=")
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return scalar(lookup(doc, key.strip())) == expected.strip()


def classify(iface: Outgoing, status: int, text: str) -> Outcome:
    """What the ITSP's answer means. 408, 425, 429 and 5xx are worth retrying; other errors are final."""
    short = " ".join(text.split())[:200]
    if 200 <= status < 300:
        if check_response(iface.resp_check, text):
            return Outcome("SENT", f"HTTP {status}")
        return Outcome("FAILED", f"HTTP {status} but resp_check {iface.resp_check!r} failed: {short}")
    if status in (408, 425, 429) or status >= 500:
        return Outcome("RETRY", f"HTTP {status}: {short}")
    return Outcome("FAILED", f"HTTP {status}: {short}")


async def send(request: Request, timeout: float) -> tuple[int, str]:
    """Perform the request (TLS verified by aiohttp's default context); network errors raise OSError."""

    import aiohttp

    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout, auto_decompress=True) as session,
            session.request(
                request.method,
                request.url,
                data=request.body,
                headers=list(request.headers),
                allow_redirects=False,
            ) as response,
        ):
            # An answer is a short status document: never hold more than this of it in memory.
            raw = b""
            while len(raw) < MAX_ANSWER:
                chunk = await response.content.read(MAX_ANSWER - len(raw))
                if not chunk:
                    break
                raw += chunk
            return response.status, raw.decode(response.charset or "utf-8", errors="replace")
    except (TimeoutError, aiohttp.ClientError) as err:
        raise OSError(f"{request.url}: {type(err).__name__}: {err}") from err


async def deliver(iface: Outgoing, msg: Message, timeout: float) -> Outcome:
    """Send one SMS now and say what became of it (network trouble means RETRY)."""
    request = build_request(iface, msg)
    try:
        status, text = await send(request, timeout)
    except OSError as err:
        return Outcome("RETRY", str(err))
    return classify(iface, status, text)
