"""Incoming webhooks: who may call (CIDR, proxies), which interface, signature, fields. Pure functions.

The aiohttp handler in daemon.py gathers a `WebhookRequest` and acts on the `Verdict` these return.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from pbx.websms import signatures
from pbx.websms.config import Incoming, Network
from pbx.websms.deliver import Inbound
from pbx.websms.outbound import lookup, number, scalar, sender


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]  # lower-case names
    body: bytes
    content_type: str
    peer: str  # the TCP peer address
    url: str  # the URL as the provider called it (for URL-signed methods)


@dataclass(frozen=True)
class Verdict:
    status: int
    text: str = ""
    content_type: str = "text/plain"
    log: str = ""
    messages: tuple[Inbound, ...] = ()
    interface: Incoming | None = None
    ignored: bool = False


@dataclass
class Payload:
    """The request's data: flat pairs (form and query), and the decoded document for dotted paths."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    docs: list[Any] = field(default_factory=list)  # one per message (a JSON array holds several)


def _address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(raw.strip().strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def within(raw: str, networks: Sequence[Network]) -> bool:
    addr = _address(raw)
    return addr is not None and any(addr.version == n.version and addr in n for n in networks)


def client_address(peer: str, header_value: str | None, proxies: Sequence[Network]) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the rightmost address in
    the proxy header that is not itself a trusted proxy (the leftmost entries are the client's to forge).
    """
    if not header_value or not within(peer, proxies):
        return peer
    hops = [h.strip() for h in header_value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not within(hop, proxies):
            return hop if _address(hop) is not None else peer
    return hops[0] if hops else peer


def choose(interfaces: Sequence[Incoming], path: str, client: str) -> tuple[Incoming | None, int]:
    """The first interface whose url_path (if set) and remt_addr (if set) both match.

    Without a match: 403 when some interface serves this path but not this address, else 404.
    """
    path_matched = False
    for iface in interfaces:
        if iface.url_paths and path not in iface.url_paths:
            continue
        path_matched = True
        if iface.remt_addr and not within(client, iface.remt_addr):
            continue
        return iface, 200
    return None, 403 if path_matched else 404


def payload(req: WebhookRequest) -> Payload:
    """Form, JSON object, JSON array (several messages) or GET query; query pairs are always included."""
    out = Payload(pairs=list(req.query))
    ctype = req.content_type.lower()
    text = req.body.decode("utf-8", errors="strict") if req.body else ""
    doc: Any = None
    if "json" in ctype or (text[:1] in ("{", "[") and "form" not in ctype):
        try:
            doc = json.loads(text) if text else None
        except ValueError as err:
            raise ValueError(f"body is not valid JSON: {err}") from None
        if doc is not None and not isinstance(doc, dict | list):
            raise ValueError("JSON body must be an object or an array")
    elif text:
        out.pairs += parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    base = dict(out.pairs)
    if isinstance(doc, list):
        out.docs = [{**base, **d} if isinstance(d, dict) else d for d in doc]
    elif isinstance(doc, dict):
        out.docs = [{**base, **doc}]
    else:
        out.docs = [base]
    return out


def field_value(doc: Any, path: str) -> str | None:
    return scalar(lookup(doc, path)) if path else None


def verify(iface: Incoming, req: WebhookRequest, data: Payload) -> bool:  # noqa: PLR0911
    """The provider's signature, when the interface has a sig_method."""
    method, secret, h = iface.sig_method, iface.sig_secret, req.headers
    if method == "none":
        return True
    if method == "twilio":
        params = data.pairs[len(req.query) :] if req.method == "POST" else []
        return signatures.twilio_ok(secret, req.url, params, h.get("x-twilio-signature", ""))
    if method in ("plivo", "plivo-v2"):
        # V3 (X-Plivo-Signature-V3, or -Ma-V3 with the main account's token) covers the parameters.
        v3 = ", ".join(filter(None, (h.get("x-plivo-signature-v3"), h.get("x-plivo-signature-ma-v3"))))
        if v3:
            params = data.pairs[len(req.query) :] if req.method == "POST" else []
            nonce = h.get("x-plivo-signature-v3-nonce", "")
            return signatures.plivo_v3_ok(secret, req.method, req.url, params, nonce, v3)
        # V2 signs only URL + nonce (a captured header fits any body): accepted only when configured.
        return method == "plivo-v2" and signatures.plivo_v2_ok(
            secret, req.url, h.get("x-plivo-signature-v2-nonce", ""), h.get("x-plivo-signature-v2", "")
        )
    if method == "telnyx":
        return signatures.telnyx_ok(
            secret, req.body, h.get("telnyx-timestamp", ""), h.get("telnyx-signature-ed25519", "")
        )
    if method == "zadarma":
        signed = dict(data.pairs).get("result", "")
        return signatures.zadarma_webhook_ok(secret, signed, h.get("signature", ""))
    if method.startswith("vonage"):
        params = {k: v for k, v in data.pairs}
        if data.docs and isinstance(data.docs[0], dict):
            params = {k: str(v) for k, v in data.docs[0].items() if scalar(v) is not None}
        return signatures.vonage_ok(secret, params, method)
    return False


def _e164(value: str, form: str) -> str:
    if form == "E164" and value.isdigit():
        return "+" + value
    return value


def extract(iface: Incoming, doc: Any) -> Inbound:
    """One message's fields; ValueError names what is missing or malformed."""
    to = field_value(doc, iface.key_to)
    frm = field_value(doc, iface.key_from)
    body = field_value(doc, iface.key_body)
    missing = [k for k, v in ((iface.key_to, to), (iface.key_from, frm), (iface.key_body, body)) if v is None]
    if to is None or frm is None or body is None:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    to_num = _e164(number(to, "destination"), iface.val_numform)
    from_num = _e164(sender(frm), iface.val_numform)
    return Inbound(to=to_num, sender=from_num, body=body, message_id=field_value(doc, iface.key_id) or "")


def decide(interfaces: Sequence[Incoming], req: WebhookRequest, client: str) -> Verdict:  # noqa: PLR0911
    """Everything about a webhook that needs no disk: the answer to give, or the messages to store."""
    iface, status = choose(interfaces, req.path, client)
    if iface is None:
        why = "address not allowed" if status == 403 else "no interface serves this path"
        return Verdict(
            status, "Forbidden\n" if status == 403 else "Not Found\n", log=f"{why} ({client} {req.path})"
        )
    if iface.key_echo:
        echo = dict(req.query).get(iface.key_echo)
        if echo is not None:
            return Verdict(200, echo, interface=iface, log=f"echo request answered ({client})", ignored=True)
    try:
        data = payload(req)
    except (ValueError, UnicodeDecodeError) as err:
        return Verdict(400, "Bad Request\n", interface=iface, log=f"unreadable request from {client}: {err}")
    if not verify(iface, req, data):
        return Verdict(
            403,
            "Forbidden\n",
            interface=iface,
            log=f"bad or missing {iface.sig_method} signature from {client}",
        )
    wanted = [d for d in data.docs if _required(iface, d)]
    if not wanted:
        return Verdict(
            200,
            iface.resp_ack,
            iface.resp_type,
            interface=iface,
            ignored=True,
            log=f"not an SMS, ignored ({client})",
        )
    try:
        messages = tuple(extract(iface, d) for d in wanted)
    except ValueError as err:
        return Verdict(400, "Bad Request\n", interface=iface, log=f"request from {client}: {err}")
    return Verdict(200, iface.resp_ack, iface.resp_type, interface=iface, messages=messages)


def _required(iface: Incoming, doc: Any) -> bool:
    if iface.val_require is None:
        return True
    path, expected = iface.val_require
    return field_value(doc, path) == expected
