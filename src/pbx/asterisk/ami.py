"""An asyncio client of the Asterisk Manager Interface (AMI), shared by every add-on.

AMI is a line protocol: each message is `Key: value` lines ended by an empty line. Responses carry the
ActionID of the action they answer; events arrive in between at any time. One reader task reads all the
time, so Asterisk never finds our socket full and never drops us as a slow reader; events wait in a queue
for the consumer.

Asterisk truncates any line longer than about 1024 bytes: long payloads never belong in one header.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pbx.asterisk.conf import ConfigError, as_int, read_config

log = logging.getLogger(__name__)

MANAGER_CONF = Path("/etc/asterisk/manager.conf")
_END = b"\r\n\r\n"
_LIMIT = 1 << 20  # one message; Command output can be long


class AMIError(Exception):
    """AMI refused us, or the connection broke."""


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    username: str
    secret: str

    @classmethod
    def from_manager_conf(cls, path: Path = MANAGER_CONF, user: str = "pbx") -> Credentials:
        """The add-ons' AMI account, read where Asterisk reads it, so the secret lives in one file."""
        conf = read_config(path)
        general = conf.get("general")
        host, port = "127.0.0.1", 5038
        if general is not None:
            bound = general.get("bindaddr", host)
            # A wildcard bind still answers on loopback; never connect to an outside address.
            host = "127.0.0.1" if bound in ("0.0.0.0", "::", "") else bound  # noqa: S104
            port = as_int(general, "port", port, minimum=1, maximum=65535)
        account = conf.get(user)
        if account is None:
            raise ConfigError(path, None, f"no [{user}] section: the add-ons' AMI account is missing")
        secret = account.get("secret")
        if not secret:
            raise ConfigError(path, None, f"[{user}] has no secret")
        return cls(host, port, user, secret)


class Message(Mapping[str, str]):
    """One AMI message. Keys are case-insensitive; a repeated key keeps every value in `items_all`."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.items_all = pairs
        self._first: dict[str, str] = {}
        for key, value in pairs:
            self._first.setdefault(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return self._first[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, key: str) -> list[str]:
        wanted = key.lower()
        return [v for k, v in self.items_all if k.lower() == wanted]

    @property
    def is_success(self) -> bool:
        return self.get("Response", "").lower() in ("success", "goodbye", "follows")

    @property
    def is_event(self) -> bool:
        return "event" in self._first

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}: {'***' if k.lower() == 'secret' else v}" for k, v in self.items_all)
        return f"Message({shown})"


def parse(block: bytes) -> Message:
    pairs: list[tuple[str, str]] = []
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if sep:
            pairs.append((key.strip(), value.strip()))
        else:
            # `Command` output of old Asterisk versions comes as bare lines
            pairs.append(("Output", line))
    return Message(pairs)


FieldValue = str | int | list[str]


def encode(action: str, action_id: str, fields: Mapping[str, FieldValue]) -> bytes:
    """The wire form of an action. A CR or LF in a value would smuggle in another header: refused."""
    lines = [("Action", action), ("ActionID", action_id)]
    for key, value in fields.items():
        values = value if isinstance(value, list) else [str(value)]
        lines += [(key, v) for v in values]
    out = []
    for key, value in lines:
        if any(c in key + value for c in "\r\n") or ":" in key:
            raise ValueError(f"AMI field {key!r} contains a line break or colon")
        out.append(f"{key}: {value}\r\n")
    return ("".join(out) + "\r\n").encode()


_CLOSED = object()


class AMI:
    """One logged-in AMI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._events: asyncio.Queue[Message | object] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.banner = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            self.banner = (await self._reader.readline()).decode(errors="replace").strip()
            while True:
                block = await self._reader.readuntil(_END)
                message = parse(block)
                action_id = message.get("ActionID")
                waiter = self._pending.pop(action_id, None) if action_id and "response" in message else None
                if waiter is not None:
                    if not waiter.done():
                        waiter.set_result(message)
                elif message.is_event:
                    self._events.put_nowait(message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.LimitOverrunError) as err:
            log.debug("AMI connection ended: %r", err)
        finally:
            self.closed.set()
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(AMIError("AMI connection closed"))
            self._pending.clear()
            self._events.put_nowait(_CLOSED)

    async def action(self, name: str, timeout: float = 10.0, **fields: FieldValue) -> Message:
        if self.closed.is_set():
            raise AMIError("AMI connection closed")
        action_id = f"pbx-{next(self._ids)}"
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = waiter
        self._writer.write(encode(name, action_id, fields))
        try:
            await self._writer.drain()
            return await asyncio.wait_for(waiter, timeout)
        except (ConnectionError, OSError) as err:
            raise AMIError(f"AMI write failed: {err}") from err
        except TimeoutError as err:
            raise AMIError(f"AMI action {name} got no response within {timeout:.0f} s") from err
        finally:
            self._pending.pop(action_id, None)

    async def events(self) -> AsyncIterator[Message]:
        """Every event until the connection closes."""
        while True:
            item = await self._events.get()
            if item is _CLOSED:
                return
            assert isinstance(item, Message)  # noqa: S101 - the queue holds nothing else
            yield item

    async def close(self) -> None:
        if not self.closed.is_set():
            with contextlib.suppress(AMIError, OSError):
                await self.action("Logoff", timeout=2)
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def connect(creds: Credentials, events: str = "on", timeout: float = 5.0) -> AMI:
    """Connect and log in. `events`: "on", "off", or a class list such as "security"."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(creds.host, creds.port, limit=_LIMIT), timeout
        )
    except (OSError, TimeoutError) as err:
        raise AMIError(f"cannot reach AMI at {creds.host}:{creds.port}: {err or 'timeout'}") from err
    client = AMI(reader, writer)
    client.start()
    try:
        answer = await client.action(
            "Login", timeout=timeout, Username=creds.username, Secret=creds.secret, Events=events
        )
    except AMIError:
        await client.close()
        raise
    if not answer.is_success:
        await client.close()
        raise AMIError(f"AMI refused login of {creds.username!r}: {answer.get('Message', 'no reason given')}")
    return client


@dataclass
class Backoff:
    """Exponential wait between reconnects: 0.5 s doubling up to 30 s, back to the start on success."""

    first: float = 0.5
    limit: float = 30.0
    _next: float = 0.0

    def next(self) -> float:
        self._next = self.first if self._next == 0 else min(self.limit, self._next * 2)
        return self._next

    def reset(self) -> None:
        self._next = 0.0


async def run_forever(
    creds: Callable[[], Credentials] | Credentials,
    on_connect: Callable[[AMI], Awaitable[None]],
    on_event: Callable[[Message], Awaitable[None]],
    *,
    events: str = "on",
    backoff: Backoff | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Stay connected: log in, hand every event over, and reconnect with backoff when AMI goes away.

    `creds` may be a function so that a changed secret in manager.conf is read again at each reconnect.
    """
    backoff = backoff or Backoff()
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            current = creds() if callable(creds) else creds
            client = await connect(current, events=events)
        except (AMIError, ConfigError, OSError) as err:
            wait = backoff.next()
            log.warning("AMI: %s; retrying in %.1f s", err, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            continue
        backoff.reset()
        log.info("AMI: connected to %s:%d (%s)", current.host, current.port, client.banner)
        try:
            await on_connect(client)
            async for event in client.events():
                await on_event(event)
                if stop.is_set():
                    break
        except AMIError as err:
            log.warning("AMI: %s", err)
        finally:
            await client.close()
        if not stop.is_set():
            log.warning("AMI: connection lost; reconnecting")
