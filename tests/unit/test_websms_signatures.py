"""Webhook signatures against the providers' published examples, and tampered variants."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pbx.websms import signatures

# Twilio's request-validation example (auth token 12345), as published in Twilio's docs and SDK tests.
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]
TWILIO_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_twilio_published_example() -> None:
    assert signatures.twilio("12345", TWILIO_URL, TWILIO_PARAMS) == TWILIO_SIGNATURE
    assert signatures.twilio_ok("12345", TWILIO_URL, reversed(TWILIO_PARAMS), TWILIO_SIGNATURE)


def test_twilio_tampered() -> None:
    tampered = [*TWILIO_PARAMS[:2], ("Digits", "9999"), *TWILIO_PARAMS[3:]]
    assert not signatures.twilio_ok("12345", TWILIO_URL, tampered, TWILIO_SIGNATURE)
    assert not signatures.twilio_ok("12345", TWILIO_URL + "&x=1", TWILIO_PARAMS, TWILIO_SIGNATURE)
    assert not signatures.twilio_ok("54321", TWILIO_URL, TWILIO_PARAMS, TWILIO_SIGNATURE)
    assert not signatures.twilio_ok("12345", TWILIO_URL, TWILIO_PARAMS, "")
    assert not signatures.twilio_ok("12345", TWILIO_URL, TWILIO_PARAMS, "garbage ✗")


# Plivo's V2 example (from Plivo's SDK tests): URL, nonce and auth token -> signature.
PLIVO_SIGNATURE = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="


def test_plivo_v2_published_example() -> None:
    assert signatures.plivo_v2("my_auth_token", "https://answer.url", "12345") == PLIVO_SIGNATURE
    # The query string is not signed; a header may list several signatures.
    assert signatures.plivo_v2_ok("my_auth_token", "https://answer.url?a=b", "12345", f"x, {PLIVO_SIGNATURE}")


def test_plivo_v2_tampered() -> None:
    assert not signatures.plivo_v2_ok("my_auth_tokens", "https://answer.url", "12345", PLIVO_SIGNATURE)
    assert not signatures.plivo_v2_ok("my_auth_token", "https://answer.url", "123456", PLIVO_SIGNATURE)
    assert not signatures.plivo_v2_ok("my_auth_token", "https://answer.url", "", PLIVO_SIGNATURE)


VONAGE_PARAMS = {
    "msisdn": "447700900001",
    "to": "447700900000",
    "messageId": "0A0000000123ABCD1",
    "text": "Hello & welcome = yes",
    "type": "text",
    "timestamp": "1461152279",
}


def vonage_reference(secret: str, params: dict[str, str], digest: str | None) -> str:
    """Vonage's documented scheme, written out separately from the code under test."""
    data = ""
    for key in sorted(params):
        data += "&" + key + "=" + params[key].replace("&", "_").replace("=", "_")
    if digest is None:
        return hashlib.md5((data + secret).encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), data.encode(), digest).hexdigest()


def test_vonage_md5hash_and_hmac_methods() -> None:
    signed = {**VONAGE_PARAMS, "sig": vonage_reference("s3cret", VONAGE_PARAMS, None)}
    assert signatures.vonage_ok("s3cret", signed)
    for method, digest in (("vonage-sha256", "sha256"), ("vonage-sha512", "sha512"), ("vonage-md5", "md5")):
        signed = {**VONAGE_PARAMS, "sig": vonage_reference("s3cret", VONAGE_PARAMS, digest).upper()}
        assert signatures.vonage_ok("s3cret", signed, method)


def test_vonage_tampered() -> None:
    signed = {**VONAGE_PARAMS, "sig": vonage_reference("s3cret", VONAGE_PARAMS, None)}
    assert not signatures.vonage_ok("s3cret", {**signed, "text": "Hello"})
    assert not signatures.vonage_ok("other", signed)
    assert not signatures.vonage_ok("s3cret", VONAGE_PARAMS)


def telnyx_keys() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key, base64.b64encode(public).decode()


def test_telnyx_ed25519() -> None:
    key, public = telnyx_keys()
    body = b'{"data":{"event_type":"message.received"}}'
    stamp = "1700000000"
    signature = base64.b64encode(key.sign(stamp.encode() + b"|" + body)).decode()
    assert signatures.telnyx_ok(public, body, stamp, signature, now=1700000100)
    assert not signatures.telnyx_ok(public, body + b" ", stamp, signature, now=1700000100)
    assert not signatures.telnyx_ok(public, body, "1700000001", signature, now=1700000100)
    # Replayed after the 5-minute tolerance.
    assert not signatures.telnyx_ok(public, body, stamp, signature, now=1700000000 + 301)
    _, other = telnyx_keys()
    assert not signatures.telnyx_ok(other, body, stamp, signature, now=1700000100)
    assert not signatures.telnyx_ok(public, body, stamp, "not base64!", now=1700000100)
    assert not signatures.telnyx_ok("bad key", body, stamp, signature, now=1700000100)


def test_zadarma_webhook_signature() -> None:
    result = '{"caller_id":"+79000000001","caller_did":"+79000000002","text":"Привет"}'
    # PHP: base64_encode(hash_hmac('sha1', $result, $secret)) - hash_hmac returns hex.
    expected = base64.b64encode(
        hmac.new(b"zsecret", result.encode(), hashlib.sha1).hexdigest().encode()
    ).decode()
    assert signatures.zadarma_webhook("zsecret", result) == expected
    assert signatures.zadarma_webhook_ok("zsecret", result, expected)
    assert not signatures.zadarma_webhook_ok("zsecret", result.replace("Привет", "Hi"), expected)
    assert not signatures.zadarma_webhook_ok("zsecret", result, "")


def test_plivo_v3_follows_the_published_construction() -> None:
    """Plivo's SDKs (validate_v3_signature): POST = URL + "?" + sorted `keyvalue` params, then "." + nonce,
    HMAC-SHA256 with the auth token, base64; a URL query is sorted and ends with "." before the params.
    """
    form = [("To", "12025550101"), ("From", "15551234567"), ("Text", "Hi"), ("MessageUUID", "u1")]
    base = "https://answer.url/sms?From15551234567MessageUUIDu1TextHiTo12025550101"
    assert signatures.plivo_v3_base("POST", "https://answer.url/sms", form) == base
    assert (
        signatures.plivo_v3_base("POST", "https://answer.url/sms?b=2&a=1", form)
        == "https://answer.url/sms?a=1&b=2.From15551234567MessageUUIDu1TextHiTo12025550101"
    )
    assert (
        signatures.plivo_v3_base("POST", "https://answer.url/sms?b=2&a=1", [])
        == "https://answer.url/sms?a=1&b=2"
    )
    assert (
        signatures.plivo_v3_base("GET", "https://answer.url/sms?b=2&a=1", [])
        == "https://answer.url/sms?a=1&b=2"
    )
    expected = base64.b64encode(
        hmac.new(b"my_auth_token", (base + ".12345").encode(), hashlib.sha256).digest()
    ).decode()
    assert signatures.plivo_v3("my_auth_token", "POST", "https://answer.url/sms", form, "12345") == expected
    ok = signatures.plivo_v3_ok
    assert ok("my_auth_token", "POST", "https://answer.url/sms", form, "12345", f"x, {expected}")


def test_plivo_v3_tampered_and_sdk_encoding_of_non_ascii() -> None:
    hello = "\u041f\u0440\u0438\u0432\u0435\u0442"  # Cyrillic "Privet"
    url, form = "https://answer.url/sms", [("Text", hello), ("To", "1")]
    good = signatures.plivo_v3("tok", "POST", url, form, "n")
    ok = signatures.plivo_v3_ok
    assert ok("tok", "POST", url, form, "n", good)
    assert not ok("tok", "POST", url, [("Text", hello + "!"), ("To", "1")], "n", good)
    assert not ok("tok", "POST", url, form, "m", good)
    assert not ok("other", "POST", url, form, "n", good)
    assert not ok("tok", "POST", url, form, "", good)
    # Plivo's Python SDK hashes the UTF-8 bytes read as Latin-1: accepted as well.
    sdk = f"https://answer.url/sms?Text{hello}To1.n".encode().decode("latin-1").encode()
    sdk_sig = base64.b64encode(hmac.new(b"tok", sdk, hashlib.sha256).digest()).decode()
    assert ok("tok", "POST", url, form, "n", sdk_sig)
