"""The few things the TLS add-on asks of the `openssl` command line tool.

The openssl CLI (not python3-cryptography) because it is already in every flavor of the image, mini
included, where the shell init makes the same self-signed certificate without Python; one tool, one
behaviour. Private keys travel through pipes, never through argv or a world-readable file.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TIMEOUT = 30.0  # reading a certificate or key: milliseconds
# Making a key: an 8192-bit RSA key (TLS_KEYBITS' maximum) takes from seconds to a few minutes of CPU,
# depending on luck and the host; pbx init waits for it.
KEYGEN_TIMEOUT = 600.0


class OpenSSLError(ValueError):
    """openssl refused the input (not PEM, encrypted key, ...) or is missing."""


def _run(args: list[str], data: bytes = b"", timeout: float = TIMEOUT) -> bytes:
    try:
        done = subprocess.run(
            ["openssl", *args], input=data, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as err:
        raise OpenSSLError("the openssl command is not installed") from err
    except subprocess.TimeoutExpired as err:
        raise OpenSSLError(f"openssl {args[0]} took longer than {timeout:.0f} s") from err
    if done.returncode != 0:
        first = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[0]
        raise OpenSSLError(f"openssl {args[0]}: {first}")
    return done.stdout


def certificate_public_key(cert_pem: bytes) -> bytes:
    """The public key of the first certificate in `cert_pem` (the leaf of a chain), as PEM."""
    return _run(["x509", "-noout", "-pubkey"], cert_pem)


def private_key_public_key(key_pem: bytes) -> bytes:
    # -passin keeps openssl from prompting on a terminal for an encrypted key: it must fail instead.
    return _run(["pkey", "-pubout", "-passin", "pass:"], key_pem)


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    not_after: datetime
    names: tuple[str, ...]  # DNS names of the subjectAltName extension
    fingerprint: str  # SHA-256, hex with colons

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


_FIELD = re.compile(r"^(subject|issuer|notAfter|sha256 Fingerprint)=(.*)$", re.M)


def parse_info(text: str) -> CertificateInfo:
    """Parse `openssl x509 -noout -subject -issuer -enddate -fingerprint -sha256 -ext subjectAltName`."""
    fields = {k: v.strip() for k, v in _FIELD.findall(text)}
    try:
        not_after = datetime.strptime(fields["notAfter"], "%b %d %H:%M:%S %Y GMT").replace(tzinfo=UTC)
        names = tuple(re.findall(r"DNS:([^,\s]+)", text))
        return CertificateInfo(
            fields["subject"], fields["issuer"], not_after, names, fields["sha256 Fingerprint"]
        )
    except (KeyError, ValueError) as err:
        raise OpenSSLError(f"unexpected output of openssl x509: {err}") from err


def certificate_info(cert_pem: bytes) -> CertificateInfo:
    args = ["x509", "-noout", "-nameopt", "RFC2253", "-subject", "-issuer", "-enddate"]
    out = _run([*args, "-fingerprint", "-sha256", "-ext", "subjectAltName"], cert_pem)
    return parse_info(out.decode(errors="replace"))


def make_self_signed(key_out: Path, cert_out: Path, hostname: str, bits: int, days: int) -> None:
    """A new RSA key and a certificate for `hostname` (subject CN and SAN), valid `days` days."""
    subject = f"/CN={hostname}/O=pbx self-signed"
    _run(
        [
            "req", "-x509", "-newkey", f"rsa:{bits}", "-nodes", "-sha256", "-days", str(days),
            "-subj", subject,
            "-addext", f"subjectAltName=DNS:{hostname}",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=serverAuth",
            "-keyout", str(key_out), "-out", str(cert_out),
        ],
        timeout=KEYGEN_TIMEOUT,
    )  # fmt: skip


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def chain_verifies(chain_pem: bytes, ca_file: Path) -> bool:
    """Does the leaf of `chain_pem` verify for a TLS server, up to a root in `ca_file`?

    The rest of the chain serves as intermediates only (never as roots). False when `ca_file` is missing.
    """
    certs = _PEM_CERT.findall(chain_pem)
    if not certs or not ca_file.is_file():
        return False
    args = ["verify", "-CAfile", str(ca_file), "-purpose", "sslserver"]
    with tempfile.NamedTemporaryFile(prefix="pbx-chain-", suffix=".pem") as rest:
        if len(certs) > 1:
            rest.write(b"".join(c if c.endswith(b"\n") else c + b"\n" for c in certs[1:]))
            rest.flush()
            args += ["-untrusted", rest.name]
        try:
            _run(args, certs[0])
        except OpenSSLError:
            return False
    return True
