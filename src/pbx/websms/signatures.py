"""Webhook signatures of the providers that sign, and Zadarma's request signing. Pure functions.

Every check compares in constant time and returns False (never raises) on a malformed signature, so a
forged request is simply refused with a 4xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

# Telnyx refuses to be replayed after 5 minutes; we allow the same skew.
TELNYX_TOLERANCE = 300


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def twilio(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the full URL followed by every POST name+value, sorted."""
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_ok(token: str, url: str, params: Iterable[tuple[str, str]], signature: str) -> bool:
    return bool(signature) and _same(twilio(token, url, list(params)), signature)


def plivo_v2(token: str, url: str, nonce: str) -> str:
    """X-Plivo-Signature-V2: base64 HMAC-SHA256 of the URL without its query string, then the nonce."""
    parts = urlsplit(url)
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return base64.b64encode(
        hmac.new(token.encode(), (bare + nonce).encode(), hashlib.sha256).digest()
    ).decode()


def plivo_v2_ok(token: str, url: str, nonce: str, signature: str) -> bool:
    # The header may carry several comma-separated signatures (one per active token).
    expected = plivo_v2(token, url, nonce)
    return bool(nonce) and any(_same(expected, s.strip()) for s in signature.split(",") if s.strip())


def _plivo_query(pairs: Iterable[tuple[str, str]]) -> str:
    """`k=v&k=v`, keys sorted, the values of a repeated key sorted too."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return "&".join(f"{k}={v}" for k in sorted(grouped) for v in sorted(grouped[k]))


def _plivo_params(pairs: Iterable[tuple[str, str]]) -> str:
    """`k1v1k2v2`, keys sorted, the values of a repeated key sorted too."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return "".join(f"{k}{v}" for k in sorted(grouped) for v in sorted(grouped[k]))


def plivo_v3_base(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The string Plivo's V3 signature covers (before `.nonce`), per Plivo's SDKs.

    GET: URL without query + `?` + the sorted query (URL query and `params` merged), if any.
    POST with parameters: URL + `?` + sorted URL query (+ `.` when there is one) + sorted `keyvalue` pairs.
    POST without: the URL with its query sorted.
    """
    parts = urlsplit(url)
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = parse_qsl(parts.query, keep_blank_values=True)
    posted = list(params)
    if method.upper() == "GET":
        merged = _plivo_query([*query, *posted])
        return bare + (f"?{merged}" if merged else "")
    sorted_query = _plivo_query(query)
    if not posted:
        return bare + (f"?{sorted_query}" if sorted_query else "")
    return bare + "?" + (f"{sorted_query}." if sorted_query else "") + _plivo_params(posted)


def plivo_v3(token: str, method: str, url: str, params: Iterable[tuple[str, str]], nonce: str) -> str:
    """X-Plivo-Signature-V3: base64 HMAC-SHA256 of the base string, `.`, the nonce."""
    data = f"{plivo_v3_base(method, url, params)}.{nonce}".encode()
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha256).digest()).decode()


def plivo_v3_ok(
    token: str, method: str, url: str, params: Iterable[tuple[str, str]], nonce: str, signature: str
) -> bool:
    """V3 covers the POST parameters (V2 covers only URL and nonce: replayable with any body).

    Plivo's SDKs hash the UTF-8 bytes of the string read as Latin-1 (non-ASCII text is encoded twice);
    a signature over the plain UTF-8 string is accepted too.
    """
    if not nonce or not signature:
        return False
    pairs = list(params)
    plain = f"{plivo_v3_base(method, url, pairs)}.{nonce}"
    candidates = {plain.encode(), plain.encode().decode("latin-1").encode()}
    key = token.encode()
    expected = [base64.b64encode(hmac.new(key, c, hashlib.sha256).digest()).decode() for c in candidates]
    given = [s.strip() for s in signature.split(",") if s.strip()]
    return any(_same(e, g) for e in expected for g in given)


_VONAGE_HMAC = {
    "vonage-md5": "md5",
    "vonage-sha1": "sha1",
    "vonage-sha256": "sha256",
    "vonage-sha512": "sha512",
}


def vonage(secret: str, params: Mapping[str, str], method: str = "vonage") -> str:
    """Vonage's `sig`: `&key=value` for each parameter but sig, sorted, `&` and `=` in values as `_`.

    `vonage` (md5hash) appends the secret and takes MD5; the HMAC methods key the HMAC with it.
    """
    data = "".join(
        f"&{k}={v.replace('&', '_').replace('=', '_')}" for k, v in sorted(params.items()) if k != "sig"
    ).encode()
    if method == "vonage":
        return hashlib.md5(data + secret.encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), data, _VONAGE_HMAC[method]).hexdigest()


def vonage_ok(secret: str, params: Mapping[str, str], method: str = "vonage") -> bool:
    signature = params.get("sig", "")
    return bool(signature) and _same(vonage(secret, params, method), signature.lower())


def telnyx_ok(
    public_key_b64: str, body: bytes, timestamp: str, signature_b64: str, now: float | None = None
) -> bool:
    """telnyx-signature-ed25519 over `timestamp|body` with the account's public key (base64)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        stamp = int(timestamp)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    if abs((time.time() if now is None else now) - stamp) > TELNYX_TOLERANCE:
        return False
    try:
        key.verify(signature, f"{timestamp}|".encode() + body)
    except InvalidSignature:
        return False
    return True


def zadarma_webhook(secret: str, signed: str) -> str:
    """Zadarma's `Signature` header: base64 of the hex HMAC-SHA1 (PHP's hash_hmac) of the signed field."""
    return base64.b64encode(
        hmac.new(secret.encode(), signed.encode(), hashlib.sha1).hexdigest().encode()
    ).decode()


def zadarma_webhook_ok(secret: str, signed: str, signature: str) -> bool:
    return bool(signature) and _same(zadarma_webhook(secret, signed), signature)


def zadarma_request(secret: str, method_path: str, query: str) -> str:
    """Zadarma API request signature: base64(hex HMAC-SHA1(path + query + md5hex(query)))."""
    data = method_path + query + hashlib.md5(query.encode(), usedforsecurity=False).hexdigest()
    return base64.b64encode(
        hmac.new(secret.encode(), data.encode(), hashlib.sha1).hexdigest().encode()
    ).decode()
