"""The mini image's shell TLS (pbx-mini-init has no Python): same names and decisions as `pbx tls prepare`.

The functions are sourced from the real script (PBX_MINI_INIT_SOURCED=1 stops it before its main part)
and run by /bin/sh with the real openssl on certificates made for the test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pbx.tls import selfsigned
from pbx.tls.settings import parse
from tests.unit import tls_certs

SCRIPT = Path(__file__).parents[2] / "image/bin/pbx-mini-init"


def sh(snippet: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("HOSTNAME", "TLS_KEYBITS", "TLS_CERTDAYS")}
    return subprocess.run(
        ["sh", "-c", f'set -eu; . "$0"; {snippet}', str(SCRIPT)],
        env={**clean, "PBX_MINI_INIT_SOURCED": "1", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


@pytest.mark.parametrize(
    "hostname",
    ["tele.example.com", "Tele.Example.COM.", " pbx ", "a/b", "x" * 64, "-a.com", "a..b", "a b", "bad\nname",
     "a.b_c.d", "ok.", ""],
)  # fmt: skip
def test_the_name_is_the_one_python_would_use(hostname: str) -> None:
    normalised = parse({}, hostname)[0].hostname if hostname else "pbx"
    assert sh("tls_name", HOSTNAME=hostname).stdout == selfsigned.usable_name(normalised) + "\n"


@pytest.mark.parametrize(
    ("value", "used", "warned"),
    [("", "2048", False), ("4096", "4096", False), ("8192", "8192", False), ("16384", "2048", True),
     ("1024", "2048", True), ("4k", "2048", True), ("99999999999999999999", "2048", True)],
)  # fmt: skip
def test_key_bits_are_capped_like_python_caps_them(value: str, used: str, warned: bool) -> None:
    done = sh("tls_int TLS_KEYBITS 2048 2048 8192", TLS_KEYBITS=value)
    assert done.stdout == used + "\n"
    assert ("outside 2048 to 8192" in done.stderr) == warned
    python = parse({"TLS_KEYBITS": value}, "pbx")[0].key_bits
    assert str(python) == used


def self_signed(tmp_path: Path, name: str, days: int) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", str(days), "-subj", f"/CN={name}/O=pbx self-signed",
         "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(tmp_path / "priv_key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


def due(tmp_path: Path, name: str = "tele.example.com") -> str:
    return sh(f'tls_due "{tmp_path}" {name}').stdout.strip()


def test_due_when_missing_expiring_renamed_or_mismatched(tmp_path: Path) -> None:
    assert due(tmp_path) == "no certificate yet"
    self_signed(tmp_path, "tele.example.com", 30)
    assert due(tmp_path) == ""
    assert due(tmp_path, "pbx.example.org") == "the self-signed certificate does not name pbx.example.org"
    self_signed(tmp_path, "tele.example.com", 1)  # less than a day left (checkend 86400)
    assert due(tmp_path) == "the self-signed certificate expires within a day"
    self_signed(tmp_path, "tele.example.com", 30)
    (tmp_path / "priv_key.pem").write_bytes(tls_certs.make("other").key_pem)  # killed between the renames
    assert due(tmp_path) == "the key does not belong to the certificate"


def test_a_users_own_certificate_is_kept_even_expiring(tmp_path: Path) -> None:
    own = tls_certs.make("somewhere.else", days=1)
    (tmp_path / "cert.pem").write_bytes(own.cert_pem)
    (tmp_path / "priv_key.pem").write_bytes(own.key_pem)
    assert due(tmp_path) == ""
