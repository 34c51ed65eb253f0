"""Where a certificate for this PBX comes from: Traefik's acme.json first, then certbot's live/ folder.

`snapshot` reads the sources once (its digest tells the watcher whether anything really changed);
`choose` decides from a snapshot which certificate and key fit HOSTNAME.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pbx.tls import acme, certbot, names, openssl
from pbx.tls.settings import TlsSettings
from pbx.tls.store import Pair

# The CA store of the base image (package ca-certificates, Debian and Alpine alike).
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Snapshot:
    acme_file: Path
    acme: bytes | None  # None: no such file, or unreadable (then named in `problems`)
    certbot: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    # Sources that exist but cannot be read (a directory where acme.json should be, no permission, an
    # I/O error): each is left out of the choice, reported, and read again at the next poll.
    problems: tuple[str, ...] = ()

    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(b"acme\0" + (self.acme if self.acme is not None else b"\xff-absent"))
        for name, (cert, key) in sorted(self.certbot.items()):
            h.update(b"\0certbot\0" + name.encode() + b"\0" + cert + b"\0" + key)
        for problem in self.problems:
            h.update(b"\0problem\0" + problem.encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Chosen:
    pair: Pair
    origin: str  # for the log: which file and which entry


def watched_files(tls: TlsSettings) -> list[Path]:
    return [tls.acme_file, *certbot.files(tls.certbot_dir)]


def snapshot(tls: TlsSettings) -> Snapshot:
    """The sources as they are now; never raises for a missing or unreadable source."""
    problems: list[str] = []
    data: bytes | None = None
    try:
        data = tls.acme_file.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        pass
    except IsADirectoryError:
        # What Docker makes of `-v ./acme.json:/acme/acme.json` when the host file does not exist yet.
        problems.append(
            f"{tls.acme_file} is a directory, not a file (a bind mount of a host file that did not exist?)"
        )
    except OSError as err:
        problems.append(f"{tls.acme_file}: unreadable: {err.strerror or err}")
    found, certbot_problems = certbot.read(tls.certbot_dir)
    return Snapshot(tls.acme_file, data, found, tuple(problems + certbot_problems))


def _latest(pairs: list[tuple[Pair, str]], trust: Path) -> tuple[Pair, str]:
    """Among equally fitting certificates, one that a phone trusts, then the one valid longest.

    Trusted: its chain verifies against the system's CA store, which a Let's Encrypt production
    certificate does and a staging one (or a self-signed one) does not, however new. Then a renewal
    beats its predecessor. Only ties cost openssl runs: one `verify` and one `x509` per candidate.
    """
    if len(pairs) == 1:
        return pairs[0]

    def preference(item: tuple[Pair, str]) -> tuple[bool, float]:
        trusted = openssl.chain_verifies(item[0].cert_pem, trust)
        try:
            return trusted, openssl.certificate_info(item[0].cert_pem).not_after.timestamp()
        except openssl.OpenSSLError:
            return trusted, float("-inf")

    return max(pairs, key=preference)


def choose(
    snap: Snapshot, hostname: str, notes: list[str] | None = None, trust: Path = CA_BUNDLE
) -> tuple[Chosen | None, str]:
    """The pair to install and where it came from, or None and why not.

    Raises acme.AcmeError when acme.json exists but is not (yet) complete JSON: the caller retries.
    Malformed entries in it are skipped and described in `notes` (for a warning) when it is given.
    """
    why: list[str] = []
    if snap.acme is not None:
        skipped: list[str] = []
        found = acme.parse(snap.acme, str(snap.acme_file), skipped)
        if notes is not None:
            notes += skipped
        best = acme.candidates(found, hostname)
        if best:
            pair, origin = _latest([(Pair(c.cert_pem, c.key_pem), c.label()) for c in best], trust)
            return Chosen(pair, f"{snap.acme_file}: {origin}"), ""
        why.append(f"{snap.acme_file} has no certificate for {hostname} (it has: {acme.describe(found)})")
    fitting: list[tuple[int, Pair, str]] = []
    for name, (cert, key) in snap.certbot.items():
        try:
            info = openssl.certificate_info(cert)
        except openssl.OpenSSLError as err:
            why.append(f"certbot live/{name}: {err}")
            continue
        fit = names.rank(list(info.names), hostname)
        if fit != names.NO_MATCH:
            fitting.append((fit, Pair(cert, key), f"certbot live/{name}"))
    if fitting:
        best_rank = min(f[0] for f in fitting)
        pair, origin = _latest([(p, o) for r, p, o in fitting if r == best_rank], trust)
        return Chosen(pair, origin), ""
    if snap.certbot:
        why.append(f"no certbot certificate for {hostname} (it has: {', '.join(sorted(snap.certbot))})")
    why += snap.problems
    return None, "; ".join(why) or "no certificate source"
