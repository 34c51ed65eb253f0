"""Outgoing requests, byte for byte, per auth method and preset; what the ITSP's answer means."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from pbx.asterisk.conf import parse_config
from pbx.websms import config as wconfig
from pbx.websms import providers
from pbx.websms.outbound import (
    Message,
    build_request,
    check_response,
    classify,
    is_gsm7,
    number,
    numform,
    sender,
    to_ucs2,
)

MSG = Message("+46700000001", "+46700000002", "Hej 😀 & =")
UA = ("User-Agent", "pbx-websms/0.1.0")


def iface(text: str) -> wconfig.Outgoing:
    return wconfig.parse(parse_config("[websms]\n" + text)).outgoing[0]


def header(req, name: str) -> str | None:
    return next((v for k, v in req.headers if k == name), None)


def test_basic_form_exact_bytes() -> None:
    req = build_request(
        iface("url_host = https://api.example.com\nurl_path = /sms/send/\nauth_user = u\nauth_secret = p\n"),
        MSG,
    )
    assert (req.method, req.url) == ("POST", "https://api.example.com/sms/send/")
    assert req.body == b"Body=Hej+%F0%9F%98%80+%26+%3D&From=%2B46700000002&To=%2B46700000001"
    assert req.headers == (
        ("Accept", "application/json"),
        UA,
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Authorization", "Basic dTpw"),
    )


def test_none_sends_no_credentials() -> None:
    req = build_request(iface("auth_method = none\nauth_user = u\nauth_secret = p\n"), MSG)
    assert header(req, "Authorization") is None
    assert req.body == b"Body=Hej+%F0%9F%98%80+%26+%3D&From=%2B46700000002&To=%2B46700000001"


def test_plain_puts_credentials_in_the_form() -> None:
    out = iface(
        "auth_method = plain\nkey_user = api_key\nkey_secret = api_secret\nauth_user = k1\nauth_secret = s1\n"
    )
    req = build_request(out, MSG)
    assert header(req, "Authorization") is None
    assert req.body == (
        b"Body=Hej+%F0%9F%98%80+%26+%3D&From=%2B46700000002&To=%2B46700000001&api_key=k1&api_secret=s1"
    )


def test_bearer_json_exact_bytes() -> None:
    req = build_request(iface("auth_method = bearer\nauth_secret = KEY9\nbody_format = json\n"), MSG)
    assert req.body == '{"To":"+46700000001","From":"+46700000002","Body":"Hej 😀 & ="}'.encode()
    assert header(req, "Authorization") == "Bearer KEY9"
    assert header(req, "Content-Type") == "application/json"


def test_zadarma_signature_header() -> None:
    req = build_request(iface("provider = zadarma\nauth_user = KEY\nauth_secret = SECRET\n"), MSG)
    assert req.url == "https://api.zadarma.com/v1/sms/send/"
    query = "caller_id=46700000002&message=Hej+%F0%9F%98%80+%26+%3D&number=46700000001"
    assert req.body == query.encode()
    # Zadarma's published algorithm, spelled out independently: base64 of the hex HMAC-SHA1 of
    # method path + sorted query + md5(sorted query).
    md5 = hashlib.md5(query.encode(), usedforsecurity=False).hexdigest()
    digest = hmac.new(b"SECRET", ("/v1/sms/send/" + query + md5).encode(), hashlib.sha1).hexdigest()
    assert header(req, "Authorization") == "KEY:" + base64.b64encode(digest.encode()).decode()


def test_zadarma_encodes_tilde_like_php() -> None:
    """PHP's http_build_query (Zadarma's side of the signature) writes ~ as %7E; urlencode keeps it."""
    req = build_request(
        iface("provider = zadarma\nauth_user = KEY\nauth_secret = SECRET\n"),
        Message("+46700000001", "+46700000002", "a~b"),
    )
    query = "caller_id=46700000002&message=a%7Eb&number=46700000001"
    assert req.body == query.encode()
    md5 = hashlib.md5(query.encode(), usedforsecurity=False).hexdigest()
    digest = hmac.new(b"SECRET", ("/v1/sms/send/" + query + md5).encode(), hashlib.sha1).hexdigest()
    assert header(req, "Authorization") == "KEY:" + base64.b64encode(digest.encode()).decode()
    # Other methods keep the standard form encoding.
    plain = build_request(iface("auth_method = none\n"), Message("+1555", "+1666", "a~b"))
    assert plain.body == b"Body=a~b&From=%2B1666&To=%2B1555"


def test_val_static_and_numform() -> None:
    req = build_request(iface("auth_method = none\nval_numform = E164\nval_static = a=1, b = two\n"), MSG)
    assert req.body == b"Body=Hej+%F0%9F%98%80+%26+%3D&From=46700000002&To=46700000001&a=1&b=two"


def test_val_unicode_key_value_only_when_needed() -> None:
    out = iface("auth_method = none\nval_unicode = type=unicode\n")
    assert build_request(out, MSG).body.endswith(b"&type=unicode")
    plain = build_request(out, Message("+1555", "+1666", "plain GSM text @ £"))
    assert b"type=unicode" not in plain.body


def test_val_unicode_ucs2_replaces_characters_beyond_the_bmp() -> None:
    req = build_request(iface("auth_method = none\nval_unicode = UCS-2\n"), MSG)
    assert req.body.startswith(b"Body=Hej+%EF%BF%BD+%26")  # U+FFFD in UTF-8
    assert to_ucs2("я😀") == "я\ufffd"


PRESET_EXPECTED = {
    "twilio": (
        "https://api.twilio.com/2010-04-01/Accounts/ACC/Messages.json",
        b"Body=Hej+%F0%9F%98%80+%26+%3D&From=%2B46700000002&To=%2B46700000001",
        "Basic QUNDOlNFQw==",
    ),
    "telnyx": (
        "https://api.telnyx.com/v2/messages",
        '{"to":"+46700000001","from":"+46700000002","text":"Hej 😀 & ="}'.encode(),
        "Bearer SEC",
    ),
    "vonage": (
        "https://rest.nexmo.com/sms/json",
        b"api_key=ACC&api_secret=SEC&from=46700000002&text=Hej+%F0%9F%98%80+%26+%3D&to=46700000001&type=unicode",
        None,
    ),
    "plivo": (
        "https://api.plivo.com/v1/Account/ACC/Message/",
        '{"dst":"46700000001","src":"46700000002","text":"Hej 😀 & ="}'.encode(),
        "Basic QUNDOlNFQw==",
    ),
    "46elks": (
        "https://api.46elks.com/a1/sms",
        b"from=%2B46700000002&message=Hej+%F0%9F%98%80+%26+%3D&to=%2B46700000001",
        "Basic QUNDOlNFQw==",
    ),
    "sinch": (
        "https://us.sms.api.sinch.com/xms/v1/ACC/batches",
        '{"to":["+46700000001"],"from":"+46700000002","body":"Hej 😀 & ="}'.encode(),
        "Bearer SEC",
    ),
}


@pytest.mark.parametrize("name", sorted(PRESET_EXPECTED))
def test_preset_requests_exact(name: str) -> None:
    url, body, auth = PRESET_EXPECTED[name]
    req = build_request(iface(f"provider = {name}\nauth_user = ACC\nauth_secret = SEC\n"), MSG)
    assert (req.url, req.body, header(req, "Authorization")) == (url, body, auth)


def test_every_preset_has_both_directions() -> None:
    assert set(providers.OUTGOING) == set(providers.INCOMING) == set(providers.NAMES)
    assert {"twilio", "telnyx", "vonage", "plivo", "46elks", "zadarma", "sinch"} <= set(providers.NAMES)


@pytest.mark.parametrize(
    ("status", "text", "check", "expected"),
    [
        (201, '{"sid":"SM1"}', "", "SENT"),
        (200, '{"status":"success"}', "status=success", "SENT"),
        (200, '{"status":"error"}', "status=success", "FAILED"),
        (200, '{"messages":[{"status":"0"}]}', "messages.0.status=0", "SENT"),
        (200, '{"messages":[{"status":"9"}]}', "messages.0.status=0", "FAILED"),
        (200, "OK queued", "/queued/", "SENT"),
        (200, "not json", "status=success", "FAILED"),
        (429, "slow down", "", "RETRY"),
        (503, "maintenance", "", "RETRY"),
        (500, "", "", "RETRY"),
        (408, "", "", "RETRY"),
        (401, "bad credentials", "", "FAILED"),
        (400, "bad number", "", "FAILED"),
        (302, "", "", "FAILED"),
    ],
)
def test_classify(status: int, text: str, check: str, expected: str) -> None:
    out = iface(f"resp_check = {check}\n" if check else "auth_method = none\n")
    assert classify(out, status, text).status == expected


def test_check_response_booleans_and_numbers() -> None:
    assert check_response("ok=true", json.dumps({"ok": True}))
    assert check_response("n=1", json.dumps({"n": 1}))


@pytest.mark.parametrize(
    ("raw", "expected"), [("+46 70-000 00 01", "+46700000001"), ("(555) 123.4567", "5551234567")]
)
def test_number_cleanup(raw: str, expected: str) -> None:
    assert number(raw, "to") == expected


@pytest.mark.parametrize("raw", ["", "+", "alice", "+1;x", "1" * 21, "sip:+1555@x"])
def test_number_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        number(raw, "destination")


def test_sender_accepts_alphanumeric_ids_only_when_plain() -> None:
    assert sender("MyShop") == "MyShop"
    assert sender("+1 555 0100") == "+15550100"
    with pytest.raises(ValueError):
        sender("bad\nid")


def test_e164_and_gsm7() -> None:
    assert numform("+4670", "E164") == "4670"
    assert numform("+4670", "") == "+4670"
    assert is_gsm7("Hello @ £ € {x}")
    assert not is_gsm7("Привет")
