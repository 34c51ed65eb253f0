"""Real certificates for the TLS unit tests, made by the openssl CLI (EC keys: milliseconds each)."""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pbx.tls.settings import TlsSettings


@dataclass(frozen=True)
class Cert:
    cert_pem: bytes
    key_pem: bytes

    def b64(self) -> tuple[str, str]:
        return base64.b64encode(self.cert_pem).decode(), base64.b64encode(self.key_pem).decode()


def make(cn: str, *sans: str, days: int = 90) -> Cert:
    with tempfile.TemporaryDirectory() as tmp:
        key, cert = Path(tmp) / "k.pem", Path(tmp) / "c.pem"
        alt = ",".join(f"DNS:{n}" for n in (sans or (cn,)))
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", str(days), "-subj", f"/CN={cn}", "-addext", f"subjectAltName={alt}",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        return Cert(cert.read_bytes(), key.read_bytes())


def v1(*entries: tuple[str, list[str] | None, Cert]) -> str:
    """A Traefik 1 acme.json."""
    certs = []
    for main, sans, c in entries:
        cert, key = c.b64()
        certs.append({"Domain": {"Main": main, "SANs": sans}, "Certificate": cert, "Key": key})
    doc = {"Account": {"Email": "ops@example.test", "Registration": {}}, "Certificates": certs,
           "HTTPChallenges": {}, "TLSChallenges": {}}  # fmt: skip
    return json.dumps(doc, indent=2)


def v2(resolvers: dict[str, list[tuple[str, list[str] | None, Cert]]], upper: bool = False) -> str:
    """A Traefik 2/3 acme.json; `upper` spells the keys as some tools (and Traefik 1) do."""
    doc: dict[str, object] = {}
    for name, entries in resolvers.items():
        certs = []
        for main, sans, c in entries:
            cert, key = c.b64()
            if upper:
                certs.append({"Domain": {"Main": main, "SANs": sans}, "Certificate": cert, "Key": key})
            else:
                domain: dict[str, object] = {"main": main}
                if sans is not None:
                    domain["sans"] = sans
                certs.append({"domain": domain, "certificate": cert, "key": key, "Store": "default"})
        doc[name] = {"Account": {"Email": "ops@example.test"}, "Certificates": certs or None}
    return json.dumps(doc, indent=2)


def make_ca(cn: str) -> Cert:
    """A root CA (for a test's own trust store) whose key signs leaves with `make_signed`."""
    with tempfile.TemporaryDirectory() as tmp:
        key, cert = Path(tmp) / "k.pem", Path(tmp) / "c.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "365", "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        return Cert(cert.read_bytes(), key.read_bytes())


def make_signed(ca: Cert, cn: str, *sans: str, days: int = 90) -> Cert:
    """A server certificate for `cn` issued by `ca`; its cert_pem is the full chain (leaf, then `ca`)."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "ca.pem").write_bytes(ca.cert_pem)
        (d / "ca.key").write_bytes(ca.key_pem)
        (d / "ext").write_text(
            "subjectAltName="
            + ",".join(f"DNS:{n}" for n in (sans or (cn,)))
            + "\nextendedKeyUsage=serverAuth\n"
        )
        subprocess.run(
            ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", f"/CN={cn}", "-keyout", str(d / "k.pem"), "-out", str(d / "r.csr")],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["openssl", "x509", "-req", "-in", str(d / "r.csr"), "-CA", str(d / "ca.pem"),
             "-CAkey", str(d / "ca.key"), "-days", str(days), "-extfile", str(d / "ext"),
             "-out", str(d / "c.pem")],
            check=True, capture_output=True,
        )  # fmt: skip
        return Cert((d / "c.pem").read_bytes() + ca.cert_pem, (d / "k.pem").read_bytes())


def tls_settings(tmp_path: Path, hostname: str, **changes: object) -> TlsSettings:
    """TLS settings whose every file lives under tmp_path, no ownership changes and no posthook."""
    fields: dict[str, object] = {
        "hostname": hostname,
        "cert_file": tmp_path / "ssl/cert.pem",
        "key_file": tmp_path / "ssl/priv_key.pem",
        "acme_file": tmp_path / "acme/acme.json",
        "certbot_dir": tmp_path / "letsencrypt",
        "owner": None,
        "posthook": None,
    }
    fields.update(changes)
    return TlsSettings(**fields)  # type: ignore[arg-type]
