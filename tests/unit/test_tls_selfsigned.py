"""The self-signed certificate of the first start: when it is made, what it names, what it never touches."""

from __future__ import annotations

import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbx.tls import openssl, selfsigned, store
from pbx.tls.settings import TlsSettings
from tests.unit import tls_certs

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def info(subject: str, names: tuple[str, ...], days_left: float) -> openssl.CertificateInfo:
    return openssl.CertificateInfo(subject, subject, NOW + timedelta(days=days_left), names, "AA")


def settings(tmp_path: Path, hostname: str = "tele.example.com") -> TlsSettings:
    return TlsSettings(
        hostname=hostname,
        cert_file=tmp_path / "ssl/cert.pem",
        key_file=tmp_path / "ssl/priv_key.pem",
        owner=None,
    )


def test_needs_new_decisions() -> None:
    ours = "O=pbx self-signed,CN=tele.example.com"
    assert selfsigned.needs_new(None, "tele.example.com", NOW) == "no certificate yet"
    assert selfsigned.needs_new(info(ours, ("tele.example.com",), 20), "tele.example.com", NOW) is None
    assert "expires" in (
        selfsigned.needs_new(info(ours, ("tele.example.com",), 0.5), "tele.example.com", NOW) or ""
    )
    assert "not pbx.example.org" in (
        selfsigned.needs_new(info(ours, ("tele.example.com",), 20), "pbx.example.org", NOW) or ""
    )
    # a certificate the user put there is never replaced, expired or not
    assert selfsigned.needs_new(info("CN=tele.example.com", ("x",), -3), "tele.example.com", NOW) is None


@pytest.mark.parametrize(
    ("hostname", "usable"),
    [
        ("tele.example.com", "tele.example.com"),
        ("pbx", "pbx"),
        ("a/b", "pbx"),
        ("x" * 64, "pbx"),
        ("-a.com", "pbx"),
    ],
)
def test_usable_name(hostname: str, usable: str) -> None:
    assert selfsigned.usable_name(hostname) == usable


def test_ensure_makes_a_matching_pair_for_the_hostname_once(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    assert selfsigned.ensure(tls) == "no certificate yet"
    pair = store.read(tls.cert_file, tls.key_file)
    assert pair is not None
    store.check_pair(pair)
    made = openssl.certificate_info(pair.cert_pem)
    assert made.names == ("tele.example.com",)
    assert "CN=tele.example.com" in made.subject and made.self_signed
    assert 29 <= (made.not_after - datetime.now(UTC)).days <= 30
    assert stat.S_IMODE(tls.key_file.stat().st_mode) == 0o600
    assert selfsigned.ensure(tls) is None
    assert store.read(tls.cert_file, tls.key_file) == pair


def test_ensure_honours_key_bits_and_days(tmp_path: Path) -> None:
    tls = replace(settings(tmp_path), key_bits=3072, cert_days=5)
    selfsigned.ensure(tls)
    text = openssl._run(["x509", "-noout", "-text"], tls.cert_file.read_bytes()).decode()
    assert "Public-Key: (3072 bit)" in text
    assert (openssl.certificate_info(tls.cert_file.read_bytes()).not_after - datetime.now(UTC)).days == 4


def test_a_new_hostname_gets_a_new_self_signed_certificate(tmp_path: Path) -> None:
    selfsigned.ensure(settings(tmp_path))
    assert selfsigned.ensure(settings(tmp_path, "pbx.example.org"))
    assert openssl.certificate_info(settings(tmp_path).cert_file.read_bytes()).names == ("pbx.example.org",)


def test_a_users_own_certificate_is_left_alone(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    own = tls_certs.make("somewhere.else")
    store.install(store.Pair(own.cert_pem, own.key_pem), tls.cert_file, tls.key_file, owner=None)
    assert selfsigned.ensure(tls) is None
    assert tls.cert_file.read_bytes() == own.cert_pem


def test_a_missing_or_empty_key_means_no_certificate(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    selfsigned.ensure(tls)
    tls.key_file.write_bytes(b"")
    assert selfsigned.ensure(tls) == "no certificate yet"
    store.check_pair(store.read(tls.cert_file, tls.key_file) or store.Pair(b"", b""))
