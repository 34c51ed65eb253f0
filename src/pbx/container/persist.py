"""Keep every file worth keeping under /srv, so that one volume holds the whole PBX.

Each persistent path (listed in persist.list, shared with the shell init of the `mini` image) becomes a
symlink to the same path below /srv. The first container on an empty /srv moves the image's content
there; a later container on the same /srv finds it and drops the image's copy. A path the user mounted
directly is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Persisted:
    path: Path
    owner: str


class PersistListError(ValueError):
    pass


def parse_list(text: str, source: str = "persist.list") -> list[Persisted]:
    """Lines of `PATH OWNER`; `#` starts a comment."""
    entries: list[Persisted] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[0].startswith("/"):
            raise PersistListError(f"{source}:{number}: expected 'ABSOLUTE_PATH OWNER', got {raw.strip()!r}")
        entries.append(Persisted(Path(fields[0]), fields[1]))
    return entries


def kept_path(srv: Path, live: Path) -> Path:
    return srv / live.relative_to("/")


def _chown_tree(root: Path, owner: str) -> None:
    for here, dirs, files in os.walk(root):
        for name in [here, *(os.path.join(here, n) for n in dirs + files)]:
            shutil.chown(name, owner, owner)


def apply(
    entries: list[Persisted],
    srv: Path = Path("/srv"),
    is_mount: Callable[[Path], bool] = os.path.ismount,
    chown: bool = True,
) -> None:
    for entry in entries:
        live, kept = entry.path, kept_path(srv, entry.path)
        if live.is_symlink() and Path(os.readlink(live)) == kept:
            fresh = not kept.exists()
            kept.mkdir(parents=True, exist_ok=True)
        elif live.is_dir() and is_mount(live):
            log.info("%s is mounted directly: kept where it is", live)
            continue
        else:
            fresh = not kept.exists()
            if fresh:
                kept.parent.mkdir(parents=True, exist_ok=True)
                if live.is_dir():
                    # copy, then remove: a crash in between leaves both copies, never none
                    shutil.copytree(live, kept, symlinks=True)
                else:
                    kept.mkdir()
                log.info("%s: first start on this /srv, moved into %s", live, kept)
            if live.is_symlink() or live.is_file():
                live.unlink()
            elif live.exists():
                shutil.rmtree(live)
            live.parent.mkdir(parents=True, exist_ok=True)
            live.symlink_to(kept)
        if chown:
            if fresh:
                _chown_tree(kept, entry.owner)
            else:
                # Only the top: a volume made by hand may be root's, but a deep chown at every start is slow.
                shutil.chown(kept, entry.owner, entry.owner)
