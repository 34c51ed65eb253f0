"""The default ACME_POSTHOOK (`pbx tls reload`): make Asterisk use the new certificate, keeping calls.

`module reload res_pjsip.so` restarts only the transports whose files changed: registrations and calls
(even calls over TLS) stay up, new TLS connections get the new certificate. A restart of Asterisk would
drop every call. Asterisk's HTTPS server (http.conf) re-reads its files on `module reload http`.

A reload that "succeeds" proves nothing (PJSIP reports success even when it keeps the old listener), so
afterwards a TLS handshake with 5061 on loopback compares the certificate served with the one installed.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import subprocess
import time
from pathlib import Path

from pbx.asterisk.conf import ConfigError, as_bool, read_config
from pbx.tls import openssl
from pbx.tls.settings import CERT_FILE

log = logging.getLogger(__name__)

HTTP_CONF = Path("/etc/asterisk/http.conf")
# The [tls] transport binds 0.0.0.0:5061 (pjsip_transport.conf), so loopback reaches it.
SIP_TLS = ("127.0.0.1", 5061)
VERIFY_WAIT = 5.0  # the transport restarts in the background of the reload: give it a moment


def https_enabled(http_conf: Path = HTTP_CONF) -> bool:
    try:
        general = read_config(http_conf).get("general")
    except (ConfigError, OSError):
        return False
    if general is None:
        return False
    return as_bool(general, "enabled", False) and as_bool(general, "tlsenable", False)


def commands(http_conf: Path = HTTP_CONF) -> list[str]:
    wanted = ["module reload res_pjsip.so"]
    if https_enabled(http_conf):
        wanted.append("module reload http")
    return wanted


def served_fingerprint(address: tuple[str, int], timeout: float = 3.0) -> str:
    """SHA-256 of the certificate a TLS server at `address` sends (hex with colons, as openssl prints it).

    Nothing is verified: the question is only which certificate is served. OSError/ssl.SSLError when no
    handshake completes.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(address, timeout=timeout) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def verify_served(
    cert_file: Path = CERT_FILE, address: tuple[str, int] = SIP_TLS, wait: float = VERIFY_WAIT
) -> bool:
    """Does `address` serve the installed certificate (within `wait` seconds)? Logs the answer."""
    try:
        wanted = openssl.certificate_info(cert_file.read_bytes()).fingerprint
    except (OSError, openssl.OpenSSLError) as err:
        log.error("TLS reload: cannot read the installed certificate %s: %s", cert_file, err)
        return False
    where = f"{address[0]}:{address[1]}"
    deadline = time.monotonic() + wait
    while True:
        try:
            served = served_fingerprint(address)
        except (OSError, ssl.SSLError) as err:
            served = f"no certificate (no TLS handshake: {err})"
        if served == wanted:
            log.info("TLS reload: %s serves the new certificate (SHA256 %s)", where, wanted)
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    log.error(
        "TLS reload: %s still serves %s, not the installed certificate (SHA256 %s): Asterisk did not take"
        " it up; `sv restart asterisk` does (and drops the calls in progress)",
        where,
        served if served.startswith("no ") else f"SHA256 {served}",
        wanted,
    )
    return False


def reload(
    http_conf: Path = HTTP_CONF, cert_file: Path = CERT_FILE, address: tuple[str, int] = SIP_TLS
) -> int:
    failed = 0
    for cli in commands(http_conf):
        try:
            done = subprocess.run(
                ["asterisk", "-rx", cli], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            log.error("TLS reload: asterisk -rx '%s': %s", cli, err)
            failed += 1
            continue
        answer = (done.stdout + done.stderr).strip()
        if done.returncode != 0 or "Unable to connect" in answer or "No such module" in answer:
            log.error("TLS reload: asterisk -rx '%s' failed: %s", cli, answer or done.returncode)
            failed += 1
        else:
            log.info("TLS reload: %s: %s", cli, answer or "done")
    if not failed and not verify_served(cert_file, address):
        failed += 1
    return 1 if failed else 0
