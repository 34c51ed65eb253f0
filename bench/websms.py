"""WebSMS figures: webhooks per second websmsd accepts durably, with p50/p99 latency, next to a no-op
aiohttp handler measured in the same run under the same load (the ceiling). Figures only, never pass/fail.

Each server runs in its own process on loopback; the load generator (aiohttp client, N concurrent
senders) in this one. The websmsd side is the real app (make_app, Daemon, Spool): every accepted webhook
is parsed, checked against its interface and written as text + call file with fsync before its 200, on
the filesystem of --dir (default: a temporary folder under the current directory, i.e. the real disk).

Usage: python3 bench/websms.py [--requests 2000] [--concurrency 16] [--dir PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

CONF = """[websmsd]
url_path = /sms
remt_addr = 127.0.0.1
key_id = Sid
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_websmsd(port: int, root: str) -> None:
    from aiohttp import web

    from pbx.websms.daemon import ConfigWatch, Daemon, make_app
    from pbx.websms.queue import Spool

    base = Path(root)
    (base / "outgoing").mkdir(parents=True, exist_ok=True)
    (base / "websms.conf").write_text(CONF)
    daemon = Daemon(ConfigWatch(base / "websms.conf"), Spool(base / "spool").ensure(), base / "outgoing")
    web.run_app(make_app(daemon), host="127.0.0.1", port=port, print=None, access_log=None)


def run_noop(port: int, _root: str) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def load(port: int, requests: int, concurrency: int, tag: str) -> tuple[float, list[float]]:
    import aiohttp

    latencies: list[float] = []
    counter = iter(range(requests))
    body_text = ("Привет 😀 benchmark text, two lines\nsecond line " * 4)[:160]

    async def sender(session: aiohttp.ClientSession) -> None:
        for n in counter:
            data = urlencode(
                {"To": "+12025550101", "From": "+15551234567", "Body": body_text, "Sid": f"{tag}-{n}"}
            )
            start = time.perf_counter()
            async with session.post(
                f"http://127.0.0.1:{port}/sms",
                data=data,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"HTTP {answer.status}")
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, latencies


async def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measure(target, args: argparse.Namespace, root: str, tag: str) -> tuple[float, list[float]]:
    port = free_port()
    process = multiprocessing.Process(target=target, args=(port, root), daemon=True)
    process.start()
    try:
        asyncio.run(wait_listening(port))
        asyncio.run(load(port, min(200, args.requests), args.concurrency, f"{tag}-warm"))  # warm-up
        return asyncio.run(load(port, args.requests, args.concurrency, tag))
    finally:
        process.terminate()
        process.join(5)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="websms-bench-", dir=args.dir) as root:
        durable_rate, durable_lat = measure(run_websmsd, args, root, "durable")
        calls = len(list((Path(root) / "outgoing").glob("websms-*.call")))
        noop_rate, noop_lat = measure(run_noop, args, root, "noop")
    print(
        f"WebSMS webhooks, {args.requests} requests, {args.concurrency} concurrent, loopback, disk {args.dir}"
    )
    print(f"{'server':<34}{'webhooks/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    rows = (
        ("websmsd (fsync'd call file each)", durable_rate, durable_lat),
        ("no-op aiohttp handler (ceiling)", noop_rate, noop_lat),
    )
    for name, rate, lat in rows:
        print(f"{name:<34}{rate:>12.0f}{percentile(lat, 50):>10.2f}{percentile(lat, 99):>10.2f}")
    print(f"websmsd reaches {durable_rate / noop_rate:.0%} of the ceiling; call files written: {calls}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
