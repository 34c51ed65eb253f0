"""Traefik's acme.json (v1, v2, v3 layouts) and which certificate fits HOSTNAME."""

from __future__ import annotations

import json
from functools import cache

import pytest

from pbx.tls import acme, names
from tests.unit import tls_certs
from tests.unit.tls_certs import Cert

HOST = "tele.example.com"


@cache
def cert(cn: str, *sans: str) -> Cert:
    return tls_certs.make(cn, *sans)


def mains(found: list[acme.AcmeCertificate]) -> list[str]:
    return [c.main for c in found]


# --- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("tele.example.com", "tele.example.com", True),
        ("TELE.Example.com.", "tele.example.com", True),
        ("*.example.com", "tele.example.com", True),
        ("*.example.com", "example.com", False),  # a wildcard needs one label
        ("*.example.com", "a.tele.example.com", False),  # ... exactly one
        ("*.example.com", ".example.com", False),
        ("example.com", "tele.example.com", False),
        ("", "tele.example.com", False),
    ],
)
def test_covers(pattern: str, name: str, expected: bool) -> None:
    assert names.covers(pattern, name) is expected


def test_rank_prefers_the_host_then_a_wildcard_then_the_domain() -> None:
    assert names.rank(["other.example.com", HOST], HOST) == names.EXACT_HOST
    assert names.rank(["*.example.com"], HOST) == names.WILDCARD_HOST
    assert names.rank(["example.com"], HOST) == names.EXACT_DOMAIN
    assert names.rank(["*.com"], HOST) == names.WILDCARD_DOMAIN
    assert names.rank(["www.example.com", "example.org"], HOST) == names.NO_MATCH
    # a single-label HOSTNAME has no domain: nothing but its own name fits
    assert names.rank(["example.com"], "tele") == names.NO_MATCH


# --- parsing ----------------------------------------------------------------------------------------


def test_v1_certificates_with_sans() -> None:
    text = tls_certs.v1(
        ("example.com", ["www.example.com"], cert("example.com")),
        ("tele.example.com", None, cert("tele.example.com")),
    )
    found = acme.parse(text)
    assert mains(found) == ["example.com", "tele.example.com"]
    assert found[0].sans == ("www.example.com",) and found[1].sans == ()
    assert found[0].resolver == ""
    assert found[1].cert_pem == cert("tele.example.com").cert_pem
    assert found[1].key_pem == cert("tele.example.com").key_pem


def test_v2_several_resolvers_and_domains() -> None:
    text = tls_certs.v2(
        {
            "le": [
                ("example.com", ["www.example.com"], cert("example.com")),
                ("*.example.com", ["example.com"], cert("*.example.com")),
            ],
            "other": [("example.org", None, cert("example.org"))],
        }
    )
    found = acme.parse(text)
    assert [(c.resolver, c.main) for c in found] == [
        ("le", "example.com"),
        ("le", "*.example.com"),
        ("other", "example.org"),
    ]
    assert acme.candidates(found, HOST)[0].main == "*.example.com"


def test_v3_empty_resolver_and_capitalised_keys() -> None:
    # Traefik 3 writes "Certificates": null for a resolver that has none yet; keys in any case.
    text = tls_certs.v2(
        {"staging": [], "prod": [("tele.example.com", ["sip.example.com"], cert("tele.example.com"))]},
        upper=True,
    )
    found = acme.parse(text)
    assert [(c.resolver, c.main, c.sans) for c in found] == [("prod", HOST, ("sip.example.com",))]
    assert json.loads(text)["staging"]["Certificates"] is None


def test_keys_are_case_insensitive_everywhere() -> None:
    c, k = cert("tele.example.com").b64()
    doc = {
        "LE": {
            "ACCOUNT": {},
            "certificates": [{"DOMAIN": {"MAIN": HOST, "SaNs": []}, "CERTIFICATE": c, "KEY": k}],
        }
    }
    found = acme.parse(json.dumps(doc))
    assert mains(found) == [HOST] and found[0].resolver == "LE"


def test_a_file_with_no_certificates_yet() -> None:
    assert acme.parse(json.dumps({"le": {"Account": {"Email": "x"}, "Certificates": None}})) == []
    assert acme.parse(json.dumps({"Account": {"Email": "x"}, "Certificates": None})) == []
    assert acme.parse("{}") == []


def test_raw_pem_is_accepted_too() -> None:
    c = cert("tele.example.com")
    doc = {
        "le": {
            "Certificates": [
                {"domain": {"main": HOST}, "certificate": c.cert_pem.decode(), "key": c.key_pem.decode()}
            ]
        }
    }
    assert acme.parse(json.dumps(doc))[0].cert_pem == c.cert_pem


# --- matching ---------------------------------------------------------------------------------------


def test_san_match_and_host_beats_wildcard_beats_domain() -> None:
    text = tls_certs.v2(
        {
            "a": [("example.com", None, cert("example.com"))],
            "b": [("*.example.com", None, cert("*.example.com"))],
            "c": [("sip.example.com", ["tele.example.com"], cert("sip.example.com", "tele.example.com"))],
        }
    )
    found = acme.parse(text)
    assert mains(acme.candidates(found, HOST)) == ["sip.example.com"]
    assert mains(acme.candidates(found[:2], HOST)) == ["*.example.com"]
    assert mains(acme.candidates(found[:1], HOST)) == ["example.com"]


def test_equal_fits_are_all_returned_in_file_order() -> None:
    text = tls_certs.v2({"staging": [(HOST, None, cert(HOST))], "prod": [(HOST, None, cert(HOST, HOST))]})
    assert [c.resolver for c in acme.candidates(acme.parse(text), HOST)] == ["staging", "prod"]


def test_no_match() -> None:
    text = tls_certs.v1(("example.org", ["*.example.org"], cert("example.org")))
    found = acme.parse(text)
    assert acme.candidates(found, HOST) == []
    assert "example.org/*.example.org" in acme.describe(found)


# --- unreadable files -------------------------------------------------------------------------------


def test_half_written_file_is_an_acme_error_naming_the_place() -> None:
    text = tls_certs.v2({"le": [(HOST, None, cert(HOST))]})
    with pytest.raises(acme.AcmeError, match=r"^/acme/acme.json:\d+:\d+: not complete JSON"):
        acme.parse(text[: len(text) // 2], "/acme/acme.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("{not json", "not complete JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"Certificates": {"x": 1}, "Account": {}}', "Certificates is not a list"),
        ('{"le": {"Certificates": [42]}}', r"le.Certificates\[0\]: not an object"),
        ('{"le": {"Certificates": [{"certificate": "x"}]}}', "no domain"),
        ('{"le": {"Certificates": [{"domain": {"main": 3}}]}}', "main name"),
        (
            '{"le": {"Certificates": [{"domain": {"main": "a"}, "certificate": "%%%", "key": "x"}]}}',
            "not base64",
        ),
        (
            '{"le": {"Certificates": [{"domain": {"main": "a"}, "certificate": "aGVsbG8=", "key": "x"}]}}',
            "not PEM",
        ),
        (
            '{"le": {"Certificates": [{"domain": {"main": "a"}, "certificate": "", "key": "x"}]}}',
            "no certificate",
        ),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(acme.AcmeError, match=message):
        acme.parse(text)


def test_bytes_input_and_utf8_damage_do_not_raise_other_errors() -> None:
    with pytest.raises(acme.AcmeError):
        acme.parse(b'{"le": \xff\xfe')
