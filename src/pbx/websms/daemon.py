"""`websmsd`: the ITSP's webhooks in (aiohttp on WEBSMSD_PORT), the outgoing queue out.

A webhook is answered 2xx only after its message is on disk as a call file in Asterisk's spool (see
deliver.py). Queued outgoing SMS are retried with exponential backoff until sent, refused or expired;
each final outcome is logged. websms.conf is re-read when it changes; a broken file keeps the last good
configuration (and says why), so a typo never takes the service down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from pbx.asterisk.conf import ConfigError
from pbx.settings import Settings
from pbx.websms import config as wconfig
from pbx.websms.deliver import OUTGOING_DIR, hand_over, pending_keys
from pbx.websms.inbound import Verdict, WebhookRequest, choose, client_address, decide, within
from pbx.websms.outbound import Message, deliver
from pbx.websms.queue import DEFAULT_ROOT, Queued, Spool, backoff
from pbx.websms.settings import websmsd_port

log = logging.getLogger("pbx.websmsd")

MAX_BODY = 256 * 1024
QUEUE_POLL = 1.0
SWEEP_EVERY = 600.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="listen port (default: WEBSMSD_PORT)")
    parser.add_argument("--host", default=None, help="listen address (default: every address, IPv4 and IPv6)")
    parser.add_argument("--config", type=Path, default=wconfig.DEFAULT_FILE, help=argparse.SUPPRESS)
    parser.add_argument("--spool", type=Path, default=DEFAULT_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--outgoing-dir", type=Path, default=OUTGOING_DIR, help=argparse.SUPPRESS)


class ConfigWatch:
    """The current configuration, re-read when the file's mtime changes (checked at most once a second)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current = wconfig.WebSMSConfig()
        self.stamp: float | None = -1.0
        self.checked = 0.0
        self.refresh(force=True)

    def _mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def refresh(self, force: bool = False) -> wconfig.WebSMSConfig:
        now = time.monotonic()
        if not force and now - self.checked < 1.0:
            return self.current
        self.checked = now
        stamp = self._mtime()
        if stamp == self.stamp:
            return self.current
        self.stamp = stamp
        try:
            self.current = wconfig.load(self.path)
        except (ConfigError, OSError) as err:
            log.error("%s (keeping the previous configuration)", err)
            return self.current
        names = ", ".join(i.name for i in self.current.incoming) or "none"
        outs = ", ".join(i.name for i in self.current.outgoing) or "none"
        log.info("configuration loaded: incoming interfaces %s; outgoing interfaces %s", names, outs)
        for name in wconfig.unprotected(self.current):
            log.warning(
                "WARNING: incoming interface %s has neither sig_method nor remt_addr: ANYONE who can reach "
                "this port can inject SMS to your users; set sig_method (and sig_secret) or remt_addr",
                name,
            )
        return self.current


class Daemon:
    def __init__(self, watch: ConfigWatch, spool: Spool, outgoing_dir: Path) -> None:
        self.watch, self.spool, self.outgoing_dir = watch, spool, outgoing_dir

    # --- webhooks -----------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        cfg = await asyncio.to_thread(self.watch.refresh)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            log.warning("webhook from %s refused: body over %d bytes", request.remote, MAX_BODY)
            return web.Response(status=413, text="Payload Too Large\n")
        peer = request.remote or ""
        client = client_address(peer, request.headers.get(cfg.daemon.prox_header), cfg.daemon.prox_addr)
        req = WebhookRequest(
            method=request.method,
            path=request.path,
            query=tuple(request.query.items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            content_type=request.headers.get("Content-Type", ""),
            peer=peer,
            url="",
        )
        verdict = decide(cfg.incoming, _with_url(req, request, cfg, client), client)
        iface = verdict.interface
        name = iface.name if iface else "-"
        if verdict.status >= 400:
            log.warning("webhook refused with %d on interface %s: %s", verdict.status, name, verdict.log)
            return web.Response(status=verdict.status, text=verdict.text)
        if verdict.messages and iface is not None:
            try:
                fresh = await asyncio.to_thread(self._store, verdict, iface.index)
            except (OSError, ValueError) as err:
                # No 2xx: the provider will retry, and nothing was acknowledged that is not on disk.
                log.error("webhook on interface %s not stored, answered 503: %s", name, err)
                return web.Response(status=503, text="Service Unavailable\n")
            for msg, is_new in zip(verdict.messages, fresh, strict=True):
                if is_new:
                    log.info("SMS from %s to %s accepted on interface %s", msg.sender, msg.to, name)
                else:
                    log.info("SMS %s from %s is a duplicate: acknowledged again", msg.message_id, msg.sender)
        elif verdict.log:
            log.info("interface %s: %s", name, verdict.log)
        return web.Response(status=200, text=verdict.text, content_type=_mime(verdict.content_type))

    def _store(self, verdict: Verdict, index: str) -> list[bool]:
        self.spool.ensure()
        return [hand_over(self.spool, m, index, self.outgoing_dir) for m in verdict.messages]

    # --- outgoing queue -----------------------------------------------------------------------------
    async def retry_once(self, now: float | None = None) -> int:
        """Try every due queued SMS once; returns how many were tried."""
        cfg = await asyncio.to_thread(self.watch.refresh)
        now = time.time() if now is None else now
        due = await asyncio.to_thread(self.spool.due, now)
        for item in due:
            try:
                await self._retry(cfg, item)
            except Exception:
                # One bad entry must not end the retry task: report it once and set it aside.
                log.exception("SMS %s: cannot be processed; its queue file is renamed to .bad", item.id)
                await asyncio.to_thread(self.spool.set_aside, item)
        return len(due)

    async def _retry(self, cfg: wconfig.WebSMSConfig, item: Queued) -> None:
        who = f"SMS {item.id} to {item.to} from {item.sender}"
        try:
            iface = cfg.outgoing_for(item.index)
        except ValueError as err:
            log.error("%s failed: %s", who, err)
            await asyncio.to_thread(self.spool.remove, item)
            return
        outcome = await deliver(iface, Message(item.to, item.sender, item.body), cfg.daemon.timeout)
        item.attempts += 1
        if outcome.status == "SENT":
            log.warning("%s SENT after %d attempts: %s", who, item.attempts, outcome.reason)
            await asyncio.to_thread(self.spool.remove, item)
        elif outcome.status == "FAILED" or time.time() - item.created > cfg.daemon.retry_expire:
            log.error("%s FAILED after %d attempts: %s", who, item.attempts, outcome.reason)
            await asyncio.to_thread(self.spool.remove, item)
        else:
            item.reason = outcome.reason
            item.next_at = time.time() + backoff(item.attempts, cfg.daemon.retry_first, cfg.daemon.retry_max)
            log.info("%s still QUEUED (attempt %d): %s", who, item.attempts, outcome.reason)
            await asyncio.to_thread(self.spool.update, item)

    async def sweep(self) -> int:
        """Remove texts no pending call file refers to. OSError (and no sweep) when Asterisk's spool
        cannot be listed: without the list every pending text would look unused."""
        keys = await asyncio.to_thread(pending_keys, self.outgoing_dir)
        return await asyncio.to_thread(self.spool.sweep, keys)

    async def queue_loop(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                await self.retry_once()
                if time.monotonic() - last_sweep > SWEEP_EVERY:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except OSError as err:
                log.error("outgoing queue: %s", err)
            except Exception:
                log.exception("outgoing queue: unexpected error (the queue keeps running)")
            await asyncio.sleep(QUEUE_POLL)


def _mime(content_type: str) -> str:
    return content_type.split(";", maxsplit=1)[0].strip() or "text/plain"


def _with_url(
    req: WebhookRequest, request: web.Request, cfg: wconfig.WebSMSConfig, client: str
) -> WebhookRequest:
    """The URL the provider signed: url_public (if set) + path and query, else rebuilt from the request."""
    iface, _ = choose(cfg.incoming, req.path, client)
    if iface is not None and iface.url_public:
        base = iface.url_public
    else:
        scheme = request.scheme
        if request.remote and within(request.remote, cfg.daemon.prox_addr):
            scheme = request.headers.get("X-Forwarded-Proto", scheme)
        base = f"{scheme}://{request.host}"
    return replace(req, url=base + request.path_qs)


def make_app(daemon: Daemon) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{tail:.*}", daemon.handle)
    return app


async def serve(daemon: Daemon, host: str | None, port: int) -> None:
    runner = web.AppRunner(make_app(daemon), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    log.warning("websmsd listening on port %d", port)
    queue = asyncio.create_task(daemon.queue_loop())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        queue.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await queue
        await runner.cleanup()


def command(args: argparse.Namespace, settings: Settings) -> int:
    port = args.port if args.port is not None else websmsd_port(os.environ)
    if port is None:
        raise ValueError("WEBSMSD_PORT is unset or not a port number: websmsd is disabled")
    spool = Spool(args.spool)
    try:
        spool.ensure()
    except OSError as err:
        log.error("spool %s: %s", args.spool, err)
    daemon = Daemon(ConfigWatch(args.config), spool, args.outgoing_dir)
    dialplan = args.config.parent / "extensions_websms.conf"
    if daemon.watch.current.incoming and not dialplan.exists():
        # A configuration from before WebSMS existed is never re-seeded: say what is missing.
        log.error(
            "%s is missing: incoming SMS cannot enter Asterisk; copy it from /usr/share/pbx/seed/asterisk/",
            dialplan,
        )
    asyncio.run(serve(daemon, args.host, port))
    return 0
