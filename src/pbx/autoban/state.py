"""AutoBan's memory on disk: every record with its absolute deadlines, and the lists added by commands.

Deadlines are wall-clock times, so a restart (or a new container on the same /srv) continues each
sentence with its *remaining* time. Written atomically: a temporary file, fsync, rename, fsync of the
folder; a crash leaves the old file or the new one, never half of one.

Saving is split so that the daemon's event loop never waits long for it: `encode_async` turns the
records into JSON on the loop, ENCODE_CHUNK records per step (a few milliseconds; events are read in
between; each record is encoded as it is at one moment, and a record that changes meanwhile marks the
state dirty again, so the next save has it), and `write_atomic` puts the pieces on disk in a thread
(`asyncio.to_thread`: write and fsync). Encoding in a thread instead would not spare the loop: JSON
encoding holds the interpreter lock, and one `json.dumps` of 100,000 records held it for half a second.
Records are written as arrays in the order of `FIELDS` (no dict per record); files of version 1 (one
object per record) still load.

A file that cannot be read at all is moved aside (`state.json.bad-<time>`) before anything else is
written, so that a hand-edit gone wrong is never silently overwritten by an empty state.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pbx import files
from pbx.autoban.policy import Policy, Record, Set

log = logging.getLogger(__name__)

STATE = Path("/var/lib/autoban/state.json")
VERSION = 2
READABLE_VERSIONS = (1, 2)
# The on-disk order of a record's fields (a record is a JSON array in this order).
FIELDS = (
    "key",
    "count",
    "watch_since",
    "watch_until",
    "jail_since",
    "jail_until",
    "parole_until",
    "sentence",
    "jailings",
    "first_seen",
    "last_seen",
    "events",
    "released",
)
_TIMES = frozenset(
    {"watch_since", "watch_until", "jail_since", "jail_until", "parole_until", "sentence"}
    | {"first_seen", "last_seen"}
)
_INTS = frozenset({"count", "jailings"})
ENCODE_CHUNK = 500  # records encoded per step of the event loop (about 2 ms on a slow core)

RecordTuple = tuple[
    str, int, float, float, float, float, float, float, int, float, float, dict[str, int], bool
]


@dataclass
class Saved:
    records: list[Record] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    saved_at: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """The state at one moment, in plain values that the loop may keep changing behind it."""

    saved_at: float
    allow: list[str]
    deny: list[str]
    records: list[RecordTuple]


@contextmanager
def _no_gc() -> Iterator[None]:
    # Copying 100,000 records makes 200,000 new containers: the cyclic collector would walk the whole
    # heap several times over (3x the copy itself), for nothing, since tuples of plain values hold no cycle.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _tuples(records: Iterable[Record], now: float) -> list[RecordTuple]:
    with _no_gc():
        return [
            (
                r.key,
                r.count,
                r.watch_since,
                r.watch_until,
                r.jail_since,
                r.jail_until,
                r.parole_until,
                r.sentence,
                r.jailings,
                r.first_seen,
                r.last_seen,
                dict(r.events),
                r.released,
            )
            for r in records
            if r.watch_until > now or r.jail_until > now or r.parole_until > now
        ]


def _lists(policy: Policy) -> tuple[list[str], list[str]]:
    return list(policy.dynamic[Set.ALLOW].entries), list(policy.dynamic[Set.DENY].entries)


def snapshot(policy: Policy, now: float) -> Snapshot:
    """The whole state at once (commands in tests, the synchronous save)."""
    return Snapshot(now, *_lists(policy), _tuples(policy.records.values(), now))


def _head(snap_at: float, allow: list[str], deny: list[str]) -> bytes:
    head = {"version": VERSION, "saved_at": snap_at, "fields": FIELDS, "allow": allow, "deny": deny}
    return json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"records":['


def _encode(records: list[RecordTuple], first: bool) -> bytes:
    part = json.dumps(records, separators=(",", ":"))[1:-1].encode()
    return part if first or not part else b"," + part


def render(snap: Snapshot) -> str:
    return (_head(snap.saved_at, snap.allow, snap.deny) + _encode(snap.records, True) + b"]}").decode()


async def encode_async(policy: Policy, now: float, chunk: int = ENCODE_CHUNK) -> list[bytes]:
    """The file's content in pieces, made a chunk of records per step of the event loop."""
    pieces = [_head(now, *_lists(policy))]
    records = list(policy.records.values())
    first = True
    for start in range(0, len(records), chunk):
        part = _encode(_tuples(records[start : start + chunk], now), first)
        if part:
            pieces.append(part)
            first = False
        await asyncio.sleep(0)
    pieces.append(b"]}")
    return pieces


def dump(policy: Policy, now: float) -> str:
    return render(snapshot(policy, now))


# --- reading ------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _record(item: object, fields: tuple[str, ...]) -> Record:
    """One record from its saved form (an array in `fields` order, or an object); TypeError if odd."""
    if isinstance(item, list):
        if len(item) != len(fields):
            raise TypeError(f"expected {len(fields)} fields, got {len(item)}")
        values = dict(zip(fields, item, strict=True))
    elif isinstance(item, dict):
        values = item
    else:
        raise TypeError(f"expected an array or an object, got {type(item).__name__}")
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"unexpected fields {sorted(unknown)}")
    if not isinstance(values.get("key"), str) or not values["key"]:
        raise TypeError("key: expected an address")
    for name, value in values.items():
        if name in _TIMES and not _is_number(value):
            raise TypeError(f"{name}: expected a number, got {value!r}")
        if name in _INTS and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise TypeError(f"{name}: expected a count, got {value!r}")
    events = values.get("events", {})
    if not isinstance(events, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in events.items()
    ):
        raise TypeError(f"events: expected names with counts, got {events!r}")
    if not isinstance(values.get("released", True), bool):
        raise TypeError(f"released: expected true or false, got {values['released']!r}")
    return Record(**values)


def parse(text: str, source: str = "state") -> Saved:
    """The saved state. ValueError when the file as a whole does not read as one; a record or a list
    entry that does not read right is skipped (one warning for all of them), not fatal."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{source}: not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{source}: expected an AutoBan state of version {VERSION}")
    saved_at = doc.get("saved_at", 0.0)
    fields = doc.get("fields", FIELDS)
    records, allow, deny = doc.get("records", []), doc.get("allow", []), doc.get("deny", [])
    if (
        not _is_number(saved_at)
        or not isinstance(records, list)
        or not isinstance(allow, list)
        or not isinstance(deny, list)
        or not isinstance(fields, list | tuple)
        or not all(isinstance(f, str) for f in fields)
    ):
        raise ValueError(f"{source}: saved_at, fields, records, allow or deny is not of the expected type")
    saved = Saved(saved_at=float(saved_at))
    skipped: list[str] = []
    for name, items in (("allow", allow), ("deny", deny)):
        for entry in items:
            if isinstance(entry, str):
                getattr(saved, name).append(entry)
            else:
                skipped.append(f"{name} entry {entry!r:.80}: not a string")
    for item in records:
        try:
            saved.records.append(_record(item, tuple(fields)))
        except (TypeError, ValueError) as err:
            skipped.append(f"record {item!r:.120}: {err}")
    if skipped:
        log.warning(
            "%s: skipped %d saved item(s) that do not read right; the first: %s",
            source,
            len(skipped),
            skipped[0],
        )
    return saved


def load(path: Path = STATE) -> Saved:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Saved()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not text ({err})") from None
    return parse(text, str(path))


def load_or_set_aside(path: Path = STATE, clock: Callable[[], float] = time.time) -> tuple[Saved, bool]:
    """(the saved state, whether saving over `path` is safe).

    A file that does not read is renamed to `<name>.bad-<time>` (one error logged) and the state
    starts empty. If even that fails, saving is not safe: the caller must not overwrite the file.
    """
    try:
        return load(path), True
    except (OSError, ValueError) as err:
        aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(clock()))}")
        try:
            os.replace(path, aside)
        except OSError as move:
            log.error(
                "cannot read the saved AutoBan state (%s) nor move it aside (%s): starting empty and "
                "NOT saving over it; fix or remove %s, then `sv restart autoband`",
                err,
                move,
                path,
            )
            return Saved(), False
        log.error("cannot read the saved AutoBan state (%s): moved it to %s and started empty", err, aside)
        return Saved(), True


# --- writing ------------------------------------------------------------------------------------------


def write_atomic(path: Path, text: str | Iterable[bytes], mode: int = 0o600, durable: bool = True) -> None:
    """`text` (or its pieces, written one by one) as the new content of `path`, all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(path, text, mode, durable=durable)


def write_snapshot(snap: Snapshot, path: Path = STATE) -> None:
    write_atomic(path, render(snap))


def save(policy: Policy, now: float, path: Path = STATE) -> None:
    write_snapshot(snapshot(policy, now), path)
