"""`autoban daemon` (the autoband service): AMI security events in, nftables elements out.

It stays up whatever happens, so that runit never crash-loops it: without NET_ADMIN, or with a mistake
in autoban.conf, it logs one clear error, keeps answering `autoban show` with the reason, and (for a
config mistake) restarts itself once the file changes. The container's health is not affected: the PBX
works without AutoBan, and `autoban show` / `autoban metrics` (autoban_up 0) say that it does not
enforce. With `enabled = no` it removes its table and idles the same way.

Saves never stop the loop: the JSON and the disk are done in a thread, at most one save every
SAVE_EVERY seconds while events keep changing the state, at once after a command and at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pbx.asterisk import ami
from pbx.asterisk.conf import ConfigError
from pbx.autoban import commands, config, report, state
from pbx.autoban.addresses import default_gateways
from pbx.autoban.engine import Engine
from pbx.autoban.firewall import Firewall, FirewallError, Nft, Runner
from pbx.autoban.policy import LISTS, TIMED, Policy, Set

log = logging.getLogger("pbx.autoban")

RUN_DIR = Path("/run/autoban")
SOCKET = RUN_DIR / "control.sock"
METRICS_NAME = "metrics.prom"  # next to state.json: persisted, and readable for a textfile collector
SAVE_DELAY = 0.5  # debounce: a burst of changes is one write
SAVE_EVERY = 2.0  # under a steady stream of events: at most one save this often
TICK = 1.0
METRICS_EVERY = 10.0
CAPABILITY_HINT = "run the container with --cap-add NET_ADMIN"
DISABLED = "disabled in autoban.conf"
ROUTES = (Path("/proc/net/route"), Path("/proc/net/ipv6_route"))


class Daemon:
    def __init__(
        self,
        conf_path: Path = config.CONF,
        state_path: Path = state.STATE,
        runner: Callable[[], Runner] = Nft,
    ) -> None:
        self.conf_path = conf_path
        self.state_path = state_path
        self.metrics_path = state_path.parent / METRICS_NAME
        self.runner = runner
        self.engine: Engine | None = None
        self.reason = ""
        self.stop = asyncio.Event()
        self._save_handle: asyncio.TimerHandle | None = None
        self._save_lock: asyncio.Lock | None = None
        self._last_save = -SAVE_EVERY
        self._flush_pending = False
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones

    # --- status -------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        engine = self.engine
        out: dict[str, Any] = {
            "state": "active" if engine is not None and not self.reason else "inactive",
            "reason": self.reason,
            "ami": {"connected": False, "connects": 0},
        }
        if engine is None:
            return out
        now = engine.clock()
        stats = engine.stats
        out["ami"] = {"connected": stats.ami_connected, "connects": stats.ami_connects}
        cfg = engine.config
        out["config"] = {
            "maxcount": cfg.maxcount,
            "watchtime": cfg.watchtime,
            "jailtime": cfg.jailtime,
            "repeatmult": cfg.repeatmult,
            "maxjailtime": cfg.maxjailtime,
            "ipv6_prefix": cfg.ipv6_prefix,
            "maxwatched": cfg.maxwatched,
            "events": dict(cfg.events),
        }
        sizes = {w.value: 0 for w in TIMED}
        for record in engine.policy.records.values():
            for which in TIMED:
                if record.in_set(which, now):
                    sizes[which.value] += 1
        for which in LISTS:
            static, dynamic = engine.policy.list_entries(which)
            sizes[which.value] = len(static) + len(dynamic)
        out["sets"] = sizes
        dropped = {}
        if not self.reason:
            with contextlib.suppress(FirewallError, ValueError):
                dropped = {k: vars(v) for k, v in engine.firewall.drop_counters().items()}
        out["counters"] = {
            "events": dict(stats.events),
            "outcomes": {str(k): v for k, v in stats.outcomes.items()},
            "jailings": stats.jailings,
            "releases": stats.releases,
            "nft_batches": engine.firewall.batches,
            "nft_errors": stats.nft_errors,
            "saves": stats.saves,
            "save_seconds": round(stats.save_seconds, 4),
            "watch_dropped": engine.policy.watch_dropped,
            "dropped": dropped,
        }
        out["started_at"] = engine.started_at
        return out

    # --- control socket -----------------------------------------------------------------------------

    async def serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            answer = await self.handle(json.loads(line or b"{}"))
        except (ValueError, TimeoutError) as err:
            answer = {"ok": False, "error": f"bad request: {err}"}
        except Exception as err:  # a bug in one request must not take the daemon down
            log.exception("control request failed")
            answer = {"ok": False, "error": f"internal error: {err}"}
        with contextlib.suppress(OSError):
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
            writer.close()

    async def handle(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A request answered; a change is on disk (written off the loop) before the answer."""
        answer = self.answer(doc)
        if doc.get("op") in ("add", "del") and self.engine is not None:
            await self.save_now()
        return answer

    def answer(self, doc: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0911 - one per request kind
        request = commands.Request.from_wire(doc)
        if request.verb == "show":
            return {"ok": True, "result": self.status()}
        if request.verb == "metrics":
            return {"ok": True, "result": report.metrics(self.status())}
        engine = self.engine
        if engine is None:
            return {"ok": False, "error": f"AutoBan is inactive: {self.reason}"}
        now = engine.clock()
        if request.verb == "list":
            return {"ok": True, "result": report.sets(engine.policy, request.dsets or tuple(Set), now)}
        if request.verb == "who":
            return {"ok": True, "result": report.who(engine.policy, request.addrs[0], now)}
        if request.verb in ("add", "del"):
            if self.reason:
                return {"ok": False, "error": f"AutoBan is inactive: {self.reason}"}
            result = engine.command(request, save=False)  # saved by `handle`, off the loop
            return {"ok": result.failed == 0, "result": result.lines, "error": f"{result.failed} failed"}
        return {"ok": False, "error": f"unknown request {request.verb!r}"}

    # --- scheduling ---------------------------------------------------------------------------------

    def _want_flush(self) -> None:
        # Flush once the loop has handled every event already read: one transaction per burst.
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._do_flush)

    def _do_flush(self) -> None:
        self._flush_pending = False
        if self.engine is not None:
            self.engine.flush()

    def _want_save(self) -> None:
        if self._save_handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(SAVE_DELAY, self._last_save + SAVE_EVERY - loop.time())
        self._save_handle = loop.call_later(delay, self._start_save)

    def _start_save(self) -> None:
        self._save_handle = None
        # Counted from now, not from when the task runs: an event arriving in between must not schedule
        # a second save SAVE_DELAY later.
        self._last_save = asyncio.get_running_loop().time()
        self.spawn(self.save_now())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def save_now(self) -> None:
        """One save at a time, in the order asked: a later snapshot never loses to an earlier one."""
        if self.engine is None:
            return
        if self._save_lock is None:
            self._save_lock = asyncio.Lock()
        async with self._save_lock:
            self._last_save = asyncio.get_running_loop().time()
            await self.engine.save_async()

    async def ticker(self) -> None:
        last_metrics = 0.0
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), TICK)
            if self.engine is not None and not self.reason:
                self.engine.tick()
            if time.monotonic() - last_metrics >= METRICS_EVERY:
                last_metrics = time.monotonic()
                self.write_metrics()

    def write_metrics(self) -> None:
        # 0644 and not fsynced: counters for a textfile collector, rewritten every METRICS_EVERY seconds.
        with contextlib.suppress(OSError):
            state.write_atomic(self.metrics_path, report.metrics(self.status()), mode=0o644, durable=False)

    # --- AMI ----------------------------------------------------------------------------------------

    async def on_connect(self, client: ami.AMI) -> None:
        assert self.engine is not None  # noqa: S101 - AMI starts only with an engine
        self.engine.stats.ami_connects += 1
        self.engine.stats.ami_connected = True

        async def watch_close() -> None:
            await client.closed.wait()
            if self.engine is not None:
                self.engine.stats.ami_connected = False

        self.spawn(watch_close())

    async def on_event(self, event: ami.Message) -> None:
        if self.engine is None:
            return
        try:
            self.engine.on_event(event)
        except Exception:  # one odd event must not end the AMI session
            log.exception("AutoBan could not handle %r", event)

    # --- life ---------------------------------------------------------------------------------------

    def start_engine(self) -> Engine | None:
        """Config, state, firewall; None (with self.reason set and one line logged) when impossible."""
        try:
            conf = config.load(self.conf_path)
        except ConfigError as err:
            self.reason = f"configuration error: {err}"
            log.error("%s; AutoBan waits for the file to change", err)
            return None
        if not conf.enabled:
            return self.disable(conf)
        try:
            creds = ami.Credentials.from_manager_conf()
            extra_allow = [creds.host]
        except (ConfigError, OSError):
            extra_allow = []
        policy = Policy(conf, extra_allow)
        try:
            firewall = Firewall(self.runner(), conf.ipv6_prefix)
        except ImportError as err:
            self.reason = f"the nftables Python bindings are missing: {err}"
            log.error("AutoBan cannot start: %s", self.reason)
            return None
        saved, writable = state.load_or_set_aside(self.state_path)
        engine = Engine(conf, policy, firewall, self.state_path if writable else None)
        engine.gateways = _gateways()
        engine.restore(saved)
        try:
            engine.rebuild()
        except FirewallError as err:
            hint = f" ({CAPABILITY_HINT})" if err.denied else ""
            self.reason = f"nftables refused: {err}{hint}"
            log.error("AutoBan does not enforce: nftables refused%s: %s", hint, err)
            self.engine = engine  # `show` and `who` still tell what the state is
            return None
        engine.want_flush = self._want_flush
        engine.want_save = self._want_save
        return engine

    def disable(self, conf: config.Config) -> None:
        """`enabled = no`: no table left behind (its jail would keep dropping), and say so."""
        self.reason = DISABLED
        try:
            Firewall(self.runner(), conf.ipv6_prefix).teardown()
        except (ImportError, FirewallError) as err:
            log.info("AutoBan is disabled; could not check for a table to remove: %s", err)
        log.warning("AutoBan is %s: no firewall table, idle until the file changes", DISABLED)

    async def wait_for_config_change(self) -> None:
        def stamp() -> float:
            try:
                return self.conf_path.stat().st_mtime
            except OSError:
                return 0.0

        first = stamp()
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 2.0)
            if stamp() != first:
                log.error("%s changed: restarting AutoBan", self.conf_path)
                self.stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signo in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signo, self.stop.set)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        os.chmod(RUN_DIR, 0o700)
        SOCKET.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self.serve_control, path=str(SOCKET))
        os.chmod(SOCKET, 0o600)
        engine = self.start_engine()
        tasks = [loop.create_task(self.ticker())]
        if engine is not None:
            self.engine = engine
            log.info("AutoBan enforcing: %d address(es) known", len(engine.policy.records))
            tasks.append(
                loop.create_task(
                    ami.run_forever(
                        ami.Credentials.from_manager_conf,
                        self.on_connect,
                        self.on_event,
                        events="security",
                        stop=self.stop,
                    )
                )
            )
        elif self.reason.startswith("configuration error") or self.reason == DISABLED:
            tasks.append(loop.create_task(self.wait_for_config_change()))
        self.write_metrics()
        await self.stop.wait()
        server.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.engine is not None and self.engine is engine:
            if self._save_handle is not None:
                self._save_handle.cancel()
            self.engine.flush()
            self.engine.dirty = True
            await self.save_now()
        self.write_metrics()
        SOCKET.unlink(missing_ok=True)
        return 0


def _gateways() -> frozenset[Any]:
    texts = []
    for path in ROUTES:
        try:
            texts.append(path.read_text())
        except OSError:
            texts.append("")
    return default_gateways(*texts)


def main() -> int:
    return asyncio.run(Daemon().run())
