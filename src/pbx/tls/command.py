"""`pbx tls ACTION`: the TLS certificate of the PBX.

prepare  install a certificate from the sources, else a self-signed one if none is there (pbx init)
watch    the `tls` service: install each new certificate from the sources, then run ACME_POSTHOOK
sync     one look at the sources now; run ACME_POSTHOOK if the certificate changed
show     the installed certificate: names, issuer, expiry, fingerprint
reload   make Asterisk use the installed files (the default ACME_POSTHOOK)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from pbx.settings import Settings
from pbx.tls import openssl, reload, selfsigned, store, watch
from pbx.tls.prepare import install_from_sources, prepare
from pbx.tls.settings import TlsSettings, from_environment

ACTIONS = ("prepare", "watch", "sync", "show", "reload")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (__doc__ or "").split("\n\n", 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", choices=ACTIONS)


def show(cert_pem: bytes, key_pem: bytes | None) -> str:
    info = openssl.certificate_info(cert_pem)
    left = info.not_after - datetime.now(UTC)
    lines = [
        f"subject:     {info.subject}",
        f"issuer:      {info.issuer}{'  (self-signed)' if info.self_signed else ''}",
        f"names:       {', '.join(info.names) or '-'}",
        f"expires:     {info.not_after:%Y-%m-%d %H:%M} UTC ({left.days} days left)",
        f"fingerprint: SHA256 {info.fingerprint}",
    ]
    if key_pem is not None:
        try:
            store.check_pair(store.Pair(cert_pem, key_pem))
            lines.append("key:         matches the certificate")
        except store.PairError as err:
            lines.append(f"key:         PROBLEM: {err}")
    return "\n".join(lines)


def sync(tls: TlsSettings) -> int:
    before = store.read(tls.cert_file, tls.key_file)
    chosen = install_from_sources(tls)
    made = None if chosen is not None else selfsigned.ensure(tls)
    print(
        f"using {chosen.origin}"
        if chosen
        else f"made a self-signed certificate: {made}"
        if made
        else "no change"
    )
    if store.read(tls.cert_file, tls.key_file) == before:
        return 0
    status = asyncio.run(watch.run_posthook(tls)) or 0
    return status if status >= 0 else 128 - status  # killed by a signal: as a shell reports it


def command(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "prepare":
        prepare(settings)  # prints the warnings itself, as it does under pbx init
        return 0
    tls, warnings = from_environment(settings)
    for warning in warnings:
        # Always shown, like the global settings' warnings: an ignored setting must not go unnoticed.
        print(f"pbx: warning: {warning}", file=sys.stderr, flush=True)
    if args.action == "watch":
        return watch.main(tls)
    if args.action == "reload":
        return reload.reload()
    if args.action == "sync":
        return sync(tls)
    pair = store.read(tls.cert_file, tls.key_file)
    if pair is None:
        print(f"no certificate at {tls.cert_file} and {tls.key_file}")
        return 1
    print(show(pair.cert_pem, pair.key_pem))
    return 0
