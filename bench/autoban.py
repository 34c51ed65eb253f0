"""AutoBan figures: latency from the threshold event to the element in the jail set, sustained events
per second with 100,000 watched addresses, the daemon's memory there, and what saving that state costs.
Figures only, never pass/fail.

Runs inside a throw-away container of the base image (nftables needs a network namespace of its own:
`--cap-add NET_ADMIN --network none`). Events travel the real path: Asterisk's AMI wire format over TCP
on loopback (a stand-in AMI server in the same process), the add-ons' AMI client, the daemon's engine
and scheduling (flush per burst, state saves to a real file, off the loop, at most one every 2 s), the
policy, and libnftables batches into the kernel. The baselines, measured in the same run: what the
predecessor did per event (an `nft` process; it ran about eight per event, we time only one), and the
first version's save (a dict per record with dataclasses.asdict, JSON and disk on the event loop).

Usage: python3 bench/autoban.py [--image pbx-test:base-debian] [--watched 100000] [--trials 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def outside(args: argparse.Namespace) -> int:
    command = [
        "docker", "run", "--rm", "--cap-add", "NET_ADMIN", "--network", "none",
        "-v", f"{HERE}:/bench/autoban.py:ro", "-e", "PYTHONPATH=/usr/local/lib/pbx/python",
        "--entrypoint", "python3", args.image, "/bench/autoban.py", "--inside",
        "--watched", str(args.watched), "--trials", str(args.trials),
    ]  # fmt: skip
    return subprocess.run(command, check=False).returncode


# --- inside the container ------------------------------------------------------------------------


def event_block(name: str, address: str, serial: int) -> bytes:
    """One security event as Asterisk 22 writes it on the AMI (same fields, similar size)."""
    family = "IPV6" if ":" in address else "IPV4"
    return (
        f"Event: {name}\r\nPrivilege: security,all\r\nTimestamp: 1795716000.{serial:06d}\r\n"
        f"EventTV: 2026-11-26T18:00:00.{serial % 1000000:06d}+0000\r\nSeverity: Error\r\nService: PJSIP\r\n"
        f"EventVersion: 2\r\nAccountID: alice\r\nSessionID: 0x7f{serial:010x}\r\n"
        f"LocalAddress: IPV4/UDP/172.28.0.10/5060\r\nRemoteAddress: {family}/UDP/{address}/5060\r\n"
        f"Challenge: 1795716000/{serial:032x}\r\nReceivedChallenge: 1795716000/{serial:032x}\r\n"
        f"ReceivedHash: {serial:032x}\r\n\r\n"
    ).encode()


def address(n: int) -> str:
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class FakeAMI:
    """Just enough of Asterisk's manager: banner, login, and events pushed by the benchmark."""

    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.port = 0

    async def start(self) -> None:
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        while True:
            try:
                block = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line)
            answer = "Goodbye" if fields.get("Action") == "Logoff" else "Success"
            writer.write(f"Response: {answer}\r\nActionID: {fields.get('ActionID', '')}\r\n\r\n".encode())
            if fields.get("Action") == "Login":
                self.writer = writer
                self.connected.set()

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def nft_process(element: str) -> float:
    started = time.perf_counter()
    subprocess.run(["nft", f"add element inet autoban {element}"], check=True)
    return time.perf_counter() - started


class LoopLag:
    """The longest the event loop went without running a 1 ms timer: what a blocking save costs."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - started - 0.001)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._probe())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


def old_save(policy: object, path: Path) -> None:
    """The first version's save, for the baseline: asdict per record, JSON and disk in one go."""
    from dataclasses import asdict

    from pbx.autoban import state
    from pbx.autoban.policy import Set

    now = time.time()
    doc = {
        "version": 1,
        "saved_at": now,
        "allow": list(policy.dynamic[Set.ALLOW].entries),  # type: ignore[attr-defined]
        "deny": list(policy.dynamic[Set.DENY].entries),  # type: ignore[attr-defined]
        "records": [asdict(r) for r in policy.records.values() if r.alive(now)],  # type: ignore[attr-defined]
    }
    state.write_atomic(path, json.dumps(doc, separators=(",", ":")))


async def inside(args: argparse.Namespace) -> None:  # noqa: PLR0915 - one straight measurement script
    import logging
    import tempfile

    from pbx.asterisk import ami
    from pbx.autoban import state
    from pbx.autoban.daemon import Daemon
    from pbx.autoban.firewall import Nft
    from pbx.autoban.policy import Outcome, Set

    logging.getLogger("pbx").setLevel(logging.ERROR)  # a log line per jailing would be measured too
    folder = Path(tempfile.mkdtemp(prefix="autoban-bench-"))
    conf_path, state_path = folder / "autoban.conf", folder / "state.json"
    conf_path.write_text("[autoban]\nmaxcount = 3\nwatchtime = 1h\njailtime = 1h\n")
    daemon = Daemon(conf_path, state_path, runner=Nft)  # the daemon's own flush and save scheduling
    engine = daemon.engine = daemon.start_engine()
    assert engine is not None, daemon.reason
    server = FakeAMI()
    await server.start()
    client = await ami.connect(ami.Credentials("127.0.0.1", server.port, "bench", "bench"), events="security")
    await server.connected.wait()
    handled = 0
    jailed_at: dict[str, float] = {}
    progress = asyncio.Event()
    target = 0

    async def consume() -> None:
        nonlocal handled
        async for event in client.events():
            if engine.on_event(event) is Outcome.JAILED:
                jailed_at[event["RemoteAddress"].split("/")[2]] = time.perf_counter()
            handled += 1
            if handled >= target:
                progress.set()

    consumer = asyncio.get_running_loop().create_task(consume())

    async def push(data: bytes, count: int) -> float:
        nonlocal target
        target = handled + count
        progress.clear()
        started = time.perf_counter()
        await server.send(data)
        await progress.wait()
        return time.perf_counter() - started

    # 1. latency: the third (threshold) event of a fresh address -> its element committed in jail4
    latencies, serial = [], 0
    for trial in range(args.trials):
        where = f"192.168.{trial >> 8}.{trial & 255}"
        await push(b"".join(event_block("InvalidPassword", where, serial + i) for i in range(2)), 2)
        serial += 2
        started = time.perf_counter()
        await push(event_block("InvalidPassword", where, serial), 1)
        serial += 1
        latencies.append(jailed_at[where] - started)
    checked = all(engine.firewall.contains(Set.JAIL, f"192.168.0.{i}") for i in range(min(args.trials, 50)))
    baseline_latency = [
        nft_process(f"jail4 {{ 172.16.{i >> 8}.{i & 255} timeout 3600s }}") for i in range(50)
    ]

    # 2. 100,000 watched: one event per new address (each a new kernel element), then a sustained mix
    rss_before = rss_mib()
    blob = b"".join(event_block("InvalidAccountID", address(n), serial + n) for n in range(args.watched))
    serial += args.watched
    populate = await push(blob, args.watched)
    del blob
    gc.collect()
    rss_watched = rss_mib()
    watched = len(engine.policy.members(Set.WATCH, time.time()))
    # every watched address once more (count 2 of 3), and one in twenty twice (count 3: jailed)
    mix = [(n * 7919) % args.watched for n in range(args.watched)] + list(range(0, args.watched, 20))
    blob = b"".join(event_block("ChallengeResponseFailed", address(n), serial + i) for i, n in enumerate(mix))
    sustained = await push(blob, len(mix))
    baseline_sustained = [
        nft_process(f"watch4 {{ 10.255.{i >> 8}.{i & 255} timeout 3600s }}") for i in range(100)
    ]
    consumer.cancel()
    await client.close()
    saves_during_events = engine.stats.saves

    # 3. saving the state of 100,000 addresses, three times each: the daemon's save (JSON made on the
    # loop in steps, disk in a thread), the loop's own stalls without a save (noise), the first version
    save_trials, loop_lags, idle_lags, baseline_saves = [], [], [], []
    for _ in range(3):
        engine.dirty = True
        with LoopLag() as lag:
            started = time.perf_counter()
            await daemon.save_now()
            save_trials.append(time.perf_counter() - started)
            await asyncio.sleep(0.002)
        loop_lags.append(lag.worst)
        with LoopLag() as idle:
            await asyncio.sleep(save_trials[-1])
        idle_lags.append(idle.worst)
        started = time.perf_counter()
        old_save(engine.policy, folder / "old.json")
        baseline_saves.append(time.perf_counter() - started)
    saved_records = len(state.load(state_path).records)
    state_size = state_path.stat().st_size / 1024 / 1024

    median = statistics.median
    ours, theirs = median(latencies) * 1000, median(baseline_latency) * 1000
    rate, base_rate = len(mix) / sustained, 1 / median(baseline_sustained)
    per_address = (rss_watched - rss_before) * 1024 * 1024 / max(watched, 1)
    lines = [
        f"AutoBan benchmark (inside a PBX container, libnftables in-process, kernel {_kernel()})",
        f"latency, threshold event written to the AMI socket -> element in jail4 ({args.trials} runs):",
        f"  median {ours:.2f} ms, p90 {statistics.quantiles(latencies, n=10)[-1] * 1000:.2f} ms"
        f" (elements verified in the kernel: {checked})",
        f"  baseline, one `nft` process per event: median {theirs:.2f} ms; ratio {theirs / ours:.1f}x",
        f"events/s with {watched:,} watched addresses:",
        f"  populating, one new watched address (kernel element) per event: {args.watched / populate:,.0f}/s",
        f"  sustained mix over them: {len(mix):,} events, {engine.stats.jailings - args.trials:,} jailings:"
        f" {rate:,.0f}/s",
        f"  baseline, one `nft` process per event: {base_rate:,.1f}/s; ratio {rate / base_rate:,.0f}x",
        f"memory (VmRSS of the process): {rss_before:.1f} MiB before, {rss_watched:.1f} MiB with"
        f" {watched:,} watched ({per_address:.0f} B per address)",
        f"state saves to {state_path} while the events above ran: {saves_during_events}",
        f"saving {saved_records:,} records ({state_size:.1f} MiB, median of 3):",
        f"  whole save {median(save_trials) * 1000:.0f} ms (JSON on the loop in steps of"
        f" {state.ENCODE_CHUNK:,} records, disk in a thread); the longest the loop waited during it:"
        f" {median(loop_lags) * 1000:.1f} ms (without a save: {median(idle_lags) * 1000:.1f} ms)",
        f"  baseline, asdict per record + JSON + disk on the loop: {median(baseline_saves) * 1000:.0f} ms"
        f" (the loop waits for all of it); ratio of the longest waits"
        f" {median(baseline_saves) / max(median(loop_lags), 1e-6):.0f}x",
    ]
    print("\n".join(lines))


def _kernel() -> str:
    return Path("/proc/sys/kernel/osrelease").read_text().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="pbx-test:base-debian")
    parser.add_argument("--watched", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        asyncio.run(inside(args))
        return 0
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
