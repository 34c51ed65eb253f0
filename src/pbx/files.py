"""Writing files so that a crash leaves the old content or the whole new one, never half of either.

Every add-on that keeps something under /srv (AutoBan's state, WebSMS's spools, kept voicemail mails)
writes through here: a temporary file, synced, renamed into place, then its folder synced, so that the
rename itself survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pieces(data: bytes | str | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(data, str):
        return (data.encode(),)
    if isinstance(data, bytes):
        return (data,)
    return data


def write_atomic(
    path: Path,
    data: bytes | str | Iterable[bytes],
    mode: int = 0o600,
    *,
    durable: bool = True,
    tmp_dir: Path | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """`data` (or its pieces, written one by one) as the new content of `path`.

    The temporary file is made exclusively (no one else's file or link is written through) in `tmp_dir`,
    by default `path`'s own folder; it must be on the same file system. `owner` (uid, gid) and `mode` are
    set on the open file before anything is written. `durable=False` skips both syncs, for files that are
    rewritten often and cheap to lose (counters).
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=tmp_dir or path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if owner is not None:
                os.fchown(out.fileno(), *owner)
            os.fchmod(out.fileno(), mode)
            for piece in _pieces(data):
                out.write(piece)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
