"""The durable spool under /var/spool/asterisk/websms (a symlink into /srv): nothing is acknowledged
before it is on disk.

Every file is written whole to `tmp/`, flushed with fsync, renamed into place and its folder fsynced:
after a crash a file is either complete or absent. Layout:

* `outgoing/<id>.json`  outgoing SMS the ITSP could not take yet (retried by websmsd); a malformed one
                        is renamed `<id>.json.bad` and left alone
* `bodies/<key>.txt`     texts of incoming SMS, read by the dialplan (call files carry only the path)
* `seen/<key>`           incoming message ids already handed to Asterisk (providers retry webhooks);
                        created with O_EXCL, holding `claimed` while the hand-over is in progress
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pbx import files

log = logging.getLogger("pbx.websmsd")

DEFAULT_ROOT = Path("/var/spool/asterisk/websms")
FOLDERS = ("tmp", "outgoing", "bodies", "seen")
# A seen mark holding this is a hand-over in progress; an empty one is a message handed over.
CLAIMED = b"claimed\n"
# No hand-over takes this long: a claim this old was left by a crash.
CLAIM_STALE = 60.0


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def atomic_write(dest: Path, data: bytes, tmp_dir: Path, mode: int = 0o640) -> None:
    """Write `data` to `dest` so that a crash leaves either the old state or the whole new file.

    Run as root (`websms` from `docker exec`), the file takes the owner of its folder, so that Asterisk
    and websmsd (user asterisk) can still read and remove it.
    """
    owner = _owner(dest.parent) if os.geteuid() == 0 else None
    files.write_atomic(dest, data, mode, tmp_dir=tmp_dir, owner=owner)


@dataclass
class Queued:
    """An outgoing SMS waiting for the ITSP."""

    id: str
    index: str
    to: str
    sender: str
    body: str
    created: float
    attempts: int = 0
    next_at: float = 0.0
    reason: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Queued:
        """ValueError for anything but a queue entry with values of the right types."""
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        item = cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})
        for name in ("id", "index", "to", "sender", "body", "reason"):
            if not isinstance(getattr(item, name), str):
                raise ValueError(f"{name} is not a string")
        for name in ("created", "attempts", "next_at"):
            value = getattr(item, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} is not a number: {value!r}")
        return item


def backoff(attempts: int, first: int, ceiling: int) -> float:
    """Seconds to wait after `attempts` failed tries: first, 2*first, 4*first ... at most `ceiling`."""
    return float(min(ceiling, first * 2 ** max(0, attempts - 1)))


class Spool:
    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root
        self.tmp, self.outgoing, self.bodies, self.seen = (root / f for f in FOLDERS)

    def ensure(self) -> Spool:
        """Create the folders (owned like the spool's parent, i.e. asterisk, when run as root)."""
        parent_owner = _owner(self.root.parent) if self.root.parent.exists() else None
        for folder in (self.root, *(self.root / f for f in FOLDERS)):
            if not folder.is_dir():
                folder.mkdir(mode=0o750, parents=True, exist_ok=True)
                if os.geteuid() == 0 and parent_owner:
                    os.chown(folder, *parent_owner)
        return self

    # --- outgoing -----------------------------------------------------------------------------------
    def enqueue(self, item: Queued) -> None:
        atomic_write(self.outgoing / f"{item.id}.json", item.to_json(), self.tmp)

    def update(self, item: Queued) -> None:
        self.enqueue(item)

    def remove(self, item: Queued) -> None:
        (self.outgoing / f"{item.id}.json").unlink(missing_ok=True)
        files.fsync_dir(self.outgoing)

    def queued(self) -> list[Queued]:
        items: list[Queued] = []
        for path in sorted(self.outgoing.glob("*.json")):
            try:
                data = path.read_bytes()
            except OSError:
                continue  # removed meanwhile
            try:
                items.append(Queued.from_json(data))
            except (ValueError, TypeError, KeyError) as err:
                # Never crash the worker over one file, nor retry it forever: set it aside, once.
                log.error("outgoing queue: %s is malformed (%s): renamed to .bad", path, err)
                self._set_aside(path)
        return items

    def set_aside(self, item: Queued) -> None:
        """Rename an entry that cannot be processed to `<id>.json.bad` (kept for a human to look at)."""
        self._set_aside(self.outgoing / f"{item.id}.json")

    def _set_aside(self, path: Path) -> None:
        try:
            path.rename(path.with_name(path.name + ".bad"))
        except OSError as err:
            log.error("outgoing queue: cannot rename %s: %s", path, err)

    def due(self, now: float) -> list[Queued]:
        return [q for q in self.queued() if q.next_at <= now]

    # --- incoming -----------------------------------------------------------------------------------
    def body_path(self, key: str) -> Path:
        return self.bodies / f"{key}.txt"

    def is_seen(self, key: str) -> bool:
        try:
            return (self.seen / key).read_bytes() != CLAIMED
        except FileNotFoundError:
            return False

    def claim(self, key: str, now: float | None = None) -> str:
        """Claim message `key` for hand-over: "new" (ours now), "done" (handed over before) or "busy"
        (another request is at it). O_CREAT|O_EXCL makes the first of two concurrent claims win.
        """
        path = self.seen / key
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileExistsError:
            try:
                content, mtime = path.read_bytes(), path.stat().st_mtime
            except FileNotFoundError:
                return self.claim(key, now)  # released meanwhile
            if content != CLAIMED:
                return "done"  # an empty mark: also those written before claims existed
            if (time.time() if now is None else now) - mtime < CLAIM_STALE:
                return "busy"
            os.utime(path)  # left by a crash: take it over
            return "new"
        try:
            os.write(fd, CLAIMED)
            os.fsync(fd)
        finally:
            os.close(fd)
        files.fsync_dir(self.seen)
        return "new"

    def release(self, key: str) -> None:
        (self.seen / key).unlink(missing_ok=True)

    def mark_seen(self, key: str) -> None:
        atomic_write(self.seen / key, b"", self.tmp)

    def sweep(self, live_keys: set[str], now: float | None = None, body_age: float = 86400.0) -> int:
        """Remove bodies no call file refers to any more (older than a day) and week-old seen marks."""
        now = time.time() if now is None else now
        removed = 0
        for path in self.bodies.glob("*.txt"):
            try:
                if path.stem not in live_keys and now - path.stat().st_mtime > body_age:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        for path in self.seen.iterdir():
            try:
                if now - path.stat().st_mtime > 7 * 86400:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        for path in self.tmp.iterdir():
            try:
                if now - path.stat().st_mtime > 3600:
                    path.unlink()
            except OSError:
                continue
        return removed


def new_id() -> str:
    """Sortable by creation time, unique without coordination."""
    return f"{time.time_ns():x}-{secrets.token_hex(4)}"
