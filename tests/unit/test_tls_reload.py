"""After `pbx tls reload`: a real TLS handshake on loopback tells whether the new certificate is served."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pbx.tls import openssl, reload, watch
from pbx.tls.settings import DEFAULT_POSTHOOK, TlsSettings
from tests.unit import tls_certs

SERVED = tls_certs.make("tele.example.com")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A TLS server on loopback serving SERVED, for as many handshakes as the tests make."""
    folder = tmp_path_factory.mktemp("server")
    (folder / "c.pem").write_bytes(SERVED.cert_pem)
    (folder / "k.pem").write_bytes(SERVED.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "c.pem", folder / "k.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(2)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    stop.set()
    thread.join()
    listener.close()


def test_the_served_fingerprint_is_the_one_openssl_prints(server: tuple[str, int]) -> None:
    assert reload.served_fingerprint(server) == openssl.certificate_info(SERVED.cert_pem).fingerprint


def test_the_installed_certificate_served_is_confirmed(
    server: tuple[str, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cert.pem").write_bytes(SERVED.cert_pem + tls_certs.make("ca").cert_pem)  # a chain: the leaf
    with caplog.at_level(logging.INFO):
        assert reload.verify_served(tmp_path / "cert.pem", server, wait=0)
    assert "serves the new certificate" in caplog.text


def test_an_old_certificate_still_served_is_an_error_naming_the_fallback(
    server: tuple[str, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cert.pem").write_bytes(tls_certs.make("tele.example.com").cert_pem)  # a newer one
    with caplog.at_level(logging.ERROR):
        assert not reload.verify_served(tmp_path / "cert.pem", server, wait=0.3)
    served = openssl.certificate_info(SERVED.cert_pem).fingerprint
    assert f"still serves SHA256 {served}, not the installed certificate" in caplog.text
    assert "`sv restart asterisk`" in caplog.text


def test_nothing_listening_is_an_error_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "cert.pem").write_bytes(SERVED.cert_pem)
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    with caplog.at_level(logging.ERROR):
        assert not reload.verify_served(tmp_path / "cert.pem", ("127.0.0.1", port), wait=0)
    assert "still serves no certificate (no TLS handshake" in caplog.text


def test_the_default_posthook_runs_in_process_with_the_installed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Path, Path]] = []
    monkeypatch.setattr(
        reload, "reload", lambda http_conf, cert_file: calls.append((http_conf, cert_file)) or 1
    )
    tls = TlsSettings(cert_file=tmp_path / "cert.pem", posthook=DEFAULT_POSTHOOK, owner=None)
    assert asyncio.run(watch.run_posthook(tls)) == 1
    assert calls == [(reload.HTTP_CONF, tmp_path / "cert.pem")]
    assert asyncio.run(watch.run_posthook(replace(tls, posthook=" pbx tls reload "))) == 1
    assert len(calls) == 2
