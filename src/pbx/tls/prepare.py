"""What `pbx init` does for TLS before Asterisk starts: the certificate files exist and fit HOSTNAME.

A certificate from Traefik or certbot when one fits, else a self-signed one. Never fatal: a broken TLS
source must not keep the PBX from starting, it is logged and plain SIP still works.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

from pbx.settings import Settings
from pbx.tls import acme, selfsigned, sources, store
from pbx.tls.settings import TlsSettings, from_environment

log = logging.getLogger(__name__)


def install_from_sources(tls: TlsSettings) -> sources.Chosen | None:
    """Install the certificate the sources offer, if any (acme.json errors propagate)."""
    snap = sources.snapshot(tls)
    for problem in snap.problems:
        log.error("TLS: certificate source unreadable, ignored: %s", problem)
    notes: list[str] = []
    chosen, why = sources.choose(snap, tls.hostname, notes)
    for note in notes:
        log.warning("TLS: %s", note)
    if chosen is None:
        log.info("TLS: %s", why)
        return None
    if store.install(chosen.pair, tls.cert_file, tls.key_file, tls.owner):
        log.warning("TLS: installed the certificate from %s", chosen.origin)
    return chosen


def prepare(settings: Settings, owner: str | None = "asterisk") -> None:
    tls, warnings = from_environment(settings)
    for warning in warnings:
        print(f"pbx: warning: {warning}", file=sys.stderr, flush=True)
    tls = dataclasses.replace(tls, owner=owner)
    try:
        if install_from_sources(tls) is not None:
            return
    except (acme.AcmeError, store.PairError, OSError) as err:
        # The watcher retries; meanwhile start with whatever certificate there is, or a self-signed one:
        # a broken source must never leave 5061 without a certificate.
        log.error("TLS: %s", err)
    try:
        made = selfsigned.ensure(tls)
        if made:
            print(
                f"pbx: made a self-signed TLS certificate for {selfsigned.usable_name(tls.hostname)} "
                f"({tls.key_bits}-bit RSA, valid {tls.cert_days} days): {made}",
                file=sys.stderr,
                flush=True,
            )
    except (OSError, ValueError) as err:
        log.error("TLS: no certificate could be prepared, SIP over TLS will not work: %s", err)
