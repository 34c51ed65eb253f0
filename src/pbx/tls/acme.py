"""Traefik's acme.json: every certificate in it, and the one that fits this PBX. Pure: no I/O.

Layouts (keys compared case-insensitively, as Traefik's own JSON decoder does):
  Traefik 1:    {"Account": ..., "Certificates": [{"Domain": {"Main", "SANs"}, "Certificate", "Key"}]}
  Traefik 2, 3: {"<resolver>": {"Account": ..., "Certificates": [{"domain": {"main", "sans"},
                "certificate", "key", "Store"}]}, ...}
"certificate" is the base64 of the PEM full chain (leaf first), "key" the base64 of the PEM key.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from pbx.tls import names


class AcmeError(ValueError):
    """The file is not (yet) an acme.json we can read; a half-written file is one of these."""


@dataclass(frozen=True)
class AcmeCertificate:
    resolver: str  # "" for Traefik 1
    main: str
    sans: tuple[str, ...]
    cert_pem: bytes
    key_pem: bytes

    @property
    def names(self) -> list[str]:
        return [self.main, *self.sans]

    def label(self) -> str:
        where = f"resolver {self.resolver}" if self.resolver else "Traefik 1 store"
        return f"{self.main} ({where})"


def _get(mapping: dict[str, Any], key: str) -> Any:
    """Case-insensitive lookup; an exact match wins over a differently cased one."""
    if key in mapping:
        return mapping[key]
    wanted = key.lower()
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == wanted:
            return v
    return None


def _pem(value: Any, what: str, where: str) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise AcmeError(f"{where}: no {what}")
    text = value.strip()
    if text.startswith("-----BEGIN"):
        data = text.encode()
    else:
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise AcmeError(f"{where}: {what} is not base64") from err
    if b"-----BEGIN" not in data:
        raise AcmeError(f"{where}: {what} is not PEM")
    return data if data.endswith(b"\n") else data + b"\n"


def _entry(entry: Any, resolver: str, here: str) -> AcmeCertificate:
    if not isinstance(entry, dict):
        raise AcmeError(f"{here}: not an object")
    domain = _get(entry, "domain")
    if not isinstance(domain, dict):
        raise AcmeError(f"{here}: no domain")
    main = _get(domain, "main")
    sans = _get(domain, "sans") or []
    if not isinstance(main, str) or not isinstance(sans, list):
        raise AcmeError(f"{here}: domain needs a main name and a list of sans")
    return AcmeCertificate(
        resolver=resolver,
        main=main,
        sans=tuple(str(s) for s in sans),
        cert_pem=_pem(_get(entry, "certificate"), "certificate", here),
        key_pem=_pem(_get(entry, "key"), "key", here),
    )


def _skip(err: AcmeError, skipped: list[str] | None) -> list[AcmeCertificate]:
    if skipped is None:
        raise err
    skipped.append(f"skipped a malformed entry: {err}")
    return []


def _entries(store: Any, resolver: str, where: str, skipped: list[str] | None) -> list[AcmeCertificate]:
    if store is None:  # Traefik writes "Certificates": null before the first certificate
        return []
    if not isinstance(store, list):
        return _skip(AcmeError(f"{where}: Certificates is not a list"), skipped)
    found: list[AcmeCertificate] = []
    for i, entry in enumerate(store):
        try:
            found.append(_entry(entry, resolver, f"{where}[{i}]"))
        except AcmeError as err:
            _skip(err, skipped)
    return found


def parse(
    text: str | bytes, source: str = "acme.json", skipped: list[str] | None = None
) -> list[AcmeCertificate]:
    """Every certificate in an acme.json document, in file order.

    Without `skipped`, any malformed part raises AcmeError. With it, a malformed certificate entry (or
    Certificates list) is left out and described in `skipped`: one odd entry, e.g. written by another
    tool that shares the file, must not hide the good ones. A document that is not complete JSON always
    raises: that is a file being rewritten.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text.strip():
        raise AcmeError(f"{source}: empty (being rewritten?)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise AcmeError(f"{source}:{err.lineno}:{err.colno}: not complete JSON ({err.msg})") from err
    if not isinstance(doc, dict):
        raise AcmeError(f"{source}: not a JSON object")
    top = _get(doc, "certificates")
    # Traefik 1 keeps Account and Certificates at the top; Traefik 2/3 nest them per resolver.
    if isinstance(top, list) or _get(doc, "account") is not None:
        return _entries(top, "", f"{source}: Certificates", skipped)
    found: list[AcmeCertificate] = []
    for resolver, section in doc.items():
        if isinstance(section, dict):
            store = _get(section, "certificates")
            found += _entries(store, str(resolver), f"{source}: {resolver}.Certificates", skipped)
    return found


def candidates(certs: list[AcmeCertificate], hostname: str) -> list[AcmeCertificate]:
    """The certificates that fit `hostname`, best first: all of the best rank, in file order.

    Ties (e.g. a staging and a production resolver with the same name) are left to the caller, which can
    look inside the certificates (expiry).
    """
    ranked = [(names.rank(c.names, hostname), i, c) for i, c in enumerate(certs)]
    ranked = [r for r in ranked if r[0] != names.NO_MATCH]
    if not ranked:
        return []
    best = min(r[0] for r in ranked)
    return [c for r, _, c in sorted(ranked, key=lambda r: (r[0], r[1])) if r == best]


def describe(certs: list[AcmeCertificate]) -> str:
    return ", ".join(f"{'/'.join(c.names)} ({c.resolver or 'v1'})" for c in certs) or "none"
