"""The installed certificate and key: checked as a pair, then written atomically with safe modes.

Asterisk must never see a certificate with a key that does not belong to it: at reload time PJSIP then
stops serving TLS although the reload reports success. So a new pair is checked before anything is
written, both files are fully written under temporary names, and only then renamed into place, the key
first (the service reloads Asterisk after both renames, never between them).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from pbx import files
from pbx.tls import openssl


class PairError(ValueError):
    """The certificate and key do not belong together, or one of them is not readable PEM."""


class KeyMismatch(PairError):
    """Both are readable, but the key is not the certificate's."""


@dataclass(frozen=True)
class Pair:
    cert_pem: bytes  # the full chain, leaf first
    key_pem: bytes


def check_pair(pair: Pair, what: str = "certificate") -> None:
    """Raise PairError unless the key is the private half of the (leaf) certificate's public key."""
    try:
        cert_public = openssl.certificate_public_key(pair.cert_pem)
    except openssl.OpenSSLError as err:
        raise PairError(f"{what}: the certificate is not readable: {err}") from err
    try:
        key_public = openssl.private_key_public_key(pair.key_pem)
    except openssl.OpenSSLError as err:
        raise PairError(f"{what}: the private key is not readable (or is encrypted): {err}") from err
    if cert_public.strip() != key_public.strip():
        raise KeyMismatch(f"{what}: the private key does not belong to the certificate")


def read(cert_file: Path, key_file: Path) -> Pair | None:
    try:
        return Pair(cert_file.read_bytes(), key_file.read_bytes())
    except FileNotFoundError:
        return None


def _ids(owner: str) -> tuple[int, int]:
    """The uid and gid of `owner` (a user with a group of the same name, like asterisk:asterisk)."""
    try:
        return pwd.getpwnam(owner).pw_uid, grp.getgrnam(owner).gr_gid
    except KeyError as err:
        raise OSError(f"no user and group {owner!r} to own the TLS files") from err


def _write(path: Path, data: bytes, mode: int, owner: str | None) -> Path:
    tmp = path.with_name(f".{path.name}.new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    ids = _ids(owner) if owner is not None else None
    # Created private (0600) and exclusively: no one else's file or symlink is ever written through, and
    # nothing is readable by others before it has its owner. The owner is set on the open descriptor, not
    # by name, because the folder belongs to asterisk, who could swap the name for a link meanwhile.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            if ids is not None:
                os.fchown(f.fileno(), *ids)
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def install(pair: Pair, cert_file: Path, key_file: Path, owner: str | None) -> bool:
    """Put `pair` in place unless it is already there; True when the files changed.

    `owner` (a user and group name) owns both files, so Asterisk (running as that user) reads the key.
    """
    if read(cert_file, key_file) == pair:
        return False
    check_pair(pair)
    for folder in {cert_file.parent, key_file.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    key_tmp = _write(key_file, pair.key_pem, 0o600, owner)
    try:
        cert_tmp = _write(cert_file, pair.cert_pem, 0o644, owner)
    except BaseException:
        key_tmp.unlink(missing_ok=True)
        raise
    os.replace(key_tmp, key_file)
    os.replace(cert_tmp, cert_file)
    for folder in {cert_file.parent, key_file.parent}:
        files.fsync_dir(folder)
    return True
