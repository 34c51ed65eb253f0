"""`pbx tls prepare` (run by `pbx init`): whatever the sources do, 5061 gets a working pair."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pbx.settings import Settings
from pbx.tls import openssl, prepare, selfsigned, store
from pbx.tls.settings import TlsSettings
from tests.unit import tls_certs

HOST = "tele.example.com"


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TlsSettings:
    tls = tls_certs.tls_settings(tmp_path, HOST)
    monkeypatch.setattr(prepare, "from_environment", lambda settings: (tls, []))
    return tls


def test_an_acme_json_that_is_a_directory_still_gets_a_self_signed_certificate(
    tls: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    tls.acme_file.mkdir(parents=True)
    with caplog.at_level(logging.ERROR):
        prepare.prepare(Settings(hostname=HOST), owner=None)
    assert "is a directory" in caplog.text
    pair = store.read(tls.cert_file, tls.key_file)
    assert pair is not None
    store.check_pair(pair)
    assert selfsigned.MARK in openssl.certificate_info(pair.cert_pem).subject


def test_an_install_interrupted_between_the_renames_is_repaired_at_the_next_start(
    tls: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    prepare.prepare(Settings(hostname=HOST), owner=None)
    first = store.read(tls.cert_file, tls.key_file)
    assert first is not None
    # store.install renamed the new key into place, then was killed before the certificate's rename.
    tls.key_file.write_bytes(tls_certs.make("next." + HOST).key_pem)
    with caplog.at_level(logging.ERROR):
        prepare.prepare(Settings(hostname=HOST), owner=None)
    assert "does not belong to the certificate" in caplog.text
    repaired = store.read(tls.cert_file, tls.key_file)
    assert repaired is not None and repaired.cert_pem != first.cert_pem
    store.check_pair(repaired)


def test_a_half_installed_source_certificate_is_reinstalled_from_the_source(tls: TlsSettings) -> None:
    good = tls_certs.make(HOST)
    tls.acme_file.parent.mkdir()
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, good)]}))
    prepare.prepare(Settings(hostname=HOST), owner=None)
    tls.key_file.write_bytes(tls_certs.make("other." + HOST).key_pem)
    prepare.prepare(Settings(hostname=HOST), owner=None)
    assert store.read(tls.cert_file, tls.key_file) == store.Pair(good.cert_pem, good.key_pem)


def test_the_hourly_renewal_check_repairs_a_mismatch_too(tls: TlsSettings) -> None:
    selfsigned.ensure(tls)
    tls.key_file.write_bytes(tls_certs.make("other." + HOST).key_pem)
    assert selfsigned.ensure(tls) is not None
    pair = store.read(tls.cert_file, tls.key_file)
    assert pair is not None
    store.check_pair(pair)


def test_an_encrypted_key_of_the_users_is_not_replaced(tls: TlsSettings, tmp_path: Path) -> None:
    own = tls_certs.make(HOST)
    store.install(store.Pair(own.cert_pem, own.key_pem), tls.cert_file, tls.key_file, owner=None)
    encrypted = openssl._run(["pkey", "-aes256", "-passout", "pass:secret"], own.key_pem)
    tls.key_file.write_bytes(encrypted)
    assert selfsigned.ensure(tls) is None
    assert tls.key_file.read_bytes() == encrypted
