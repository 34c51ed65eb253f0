"""A self-signed certificate when there is no other: TLS works from the first start.

Only certificates this module made (subject O=pbx self-signed) are ever replaced by it: when they near
their end or no longer name HOSTNAME. A certificate the user put in place is left alone.
"""

from __future__ import annotations

import logging
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pbx.tls import openssl, store
from pbx.tls.settings import TlsSettings

log = logging.getLogger(__name__)

MARK = "O=pbx self-signed"
RENEW_BEFORE = timedelta(days=1)
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def usable_name(hostname: str) -> str:
    """HOSTNAME if it can be a certificate name, else "pbx" (an odd HOSTNAME must not block TLS)."""
    return hostname if _HOSTNAME.match(hostname) else "pbx"


def needs_new(info: openssl.CertificateInfo | None, hostname: str, now: datetime) -> str | None:
    """Why a new self-signed certificate is due (None: keep what is there). Pure."""
    if info is None:
        return "no certificate yet"
    if MARK not in info.subject:
        return None
    if info.not_after - now < RENEW_BEFORE:
        return f"the self-signed certificate expires {info.not_after:%Y-%m-%d %H:%M} UTC"
    if usable_name(hostname) not in info.names:
        return f"the self-signed certificate names {', '.join(info.names)}, not {hostname}"
    return None


def current_info(tls: TlsSettings) -> openssl.CertificateInfo | None:
    """The installed certificate, or None when it or its key is missing, empty or unreadable."""
    try:
        if tls.key_file.stat().st_size == 0:
            return None
        return openssl.certificate_info(tls.cert_file.read_bytes())
    except (OSError, openssl.OpenSSLError):
        return None


def installed_mismatch(tls: TlsSettings) -> str | None:
    """Why the installed key does not belong to the installed certificate, or None if it does.

    store.install renames the key, then the certificate: a kill between the two leaves a pair that
    serves no TLS at all, whoever made it. Only a definite mismatch counts: an encrypted key the user
    configured a password for is not ours to judge.
    """
    try:
        pair = store.read(tls.cert_file, tls.key_file)
        if pair is not None:
            store.check_pair(pair, "the installed certificate")
    except store.KeyMismatch as err:
        return str(err)
    except (OSError, store.PairError):
        pass
    return None


def ensure(tls: TlsSettings, now: datetime | None = None) -> str | None:
    """Make and install a self-signed certificate if one is due; returns why it was made, or None."""
    info = current_info(tls)
    reason = needs_new(info, tls.hostname, now or datetime.now(UTC))
    if reason is None and info is not None:
        reason = installed_mismatch(tls)
        if reason is not None:
            log.error("TLS: %s (an install was interrupted?): replacing it with a self-signed pair", reason)
    if reason is None:
        return None
    name = usable_name(tls.hostname)
    if name != tls.hostname:
        log.warning("HOSTNAME=%r cannot name a certificate; the self-signed one names %r", tls.hostname, name)
    with tempfile.TemporaryDirectory(prefix="pbx-tls-") as tmp:
        key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
        openssl.make_self_signed(key, cert, name, tls.key_bits, tls.cert_days)
        store.install(store.Pair(cert.read_bytes(), key.read_bytes()), tls.cert_file, tls.key_file, tls.owner)
    return reason
