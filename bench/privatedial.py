"""PrivateDial figures: calls per second and concurrent calls through the dialplan, with the PBX's CPU use.

Three containers on a docker network of the run's own: the PBX (the image under test), a caller (sipp
UAC, authenticating as a user, sending audio from a pcap) and an ITSP (sipp's built-in UAS, echoing the
audio). Every call takes the full PrivateDial path: digest auth, dp_entry_call_inout, dp_lookup (a
national number rewritten to +E.164), dp_call_inout, sub_dial_trunk, out on the trunk; media is relayed
by Asterisk both ways (direct_media = no). The baseline, measured in the same run on the same PBX, is a
one-line dialplan (Dial straight to the trunk) reached by another user: the ratio shows what the
PrivateDial dialplan costs per call. CPU is the PBX container's (its cgroup): Asterisk plus the log
pipeline. Figures only, never pass/fail.

Usage: python3 bench/privatedial.py [--image pbx-test:base-debian] [--peer pbx-test-peer:latest]
       [--rates 10,20,40,80] [--seconds 10] [--concurrent 50,100,200] [--trials 3]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Bench-Pass-2026-Xy"  # noqa: S105 - a throw-away container's test user
NATIONAL = "12125550199"  # trunk prefix 1 + national number: the dialplan makes it +12125550199

ENDPOINTS = f"""\
[alice](w_term_io)
hint_exten = +12025550101
endpoint/callerid = Alice <+12025550101>
inbound_auth/username = alice
inbound_auth/password = {PASSWORD}

; the baseline: same template, but its calls enter a one-line dialplan
[direct](w_term_io)
hint_exten = +12025550109
endpoint/context = bench_direct
inbound_auth/username = direct
inbound_auth/password = {PASSWORD}

[itsp](w_trunk)
remote_hosts = {{itsp}}:5060
sends_registrations = no
aor/qualify_frequency = 0
"""

BASELINE = """
[bench_direct]
exten => _X.,1,Dial(PJSIP/+1${EXTEN:1}@itsp)
 same => n,Hangup()
"""


def run(*cmd: str, check: bool = True, timeout: float = 600) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr or done.stdout}")
    return done.stdout


def docker(*args: str, check: bool = True, timeout: float = 600) -> str:
    return run("docker", *args, check=check, timeout=timeout)


@dataclass
class Lab:
    network: str
    prefix: str
    names: list[str]

    def ip(self, host: int) -> str:
        return f"{self.prefix}.{host}"

    def start(self, name: str, host: int, image: str, *options: str, command: tuple[str, ...] = ()) -> str:
        full = f"privatedial-bench-{name}-{uuid.uuid4().hex[:6]}"
        docker(
            "run",
            "-d",
            "--name",
            full,
            "--network",
            self.network,
            "--ip",
            self.ip(host),
            *options,
            image,
            *command,
        )
        self.names.append(full)
        return full

    def close(self) -> None:
        for name in self.names:
            docker("rm", "-f", "-v", name, check=False)
        docker("network", "rm", self.network, check=False)


def make_lab() -> Lab:
    for _ in range(20):
        prefix = f"172.{random.randint(28, 31)}.{random.randint(0, 255)}"
        name = f"privatedial-bench-{uuid.uuid4().hex[:6]}"
        made = subprocess.run(
            ["docker", "network", "create", "--subnet", f"{prefix}.0/24", name],
            capture_output=True,
            check=False,
        )
        if made.returncode == 0:
            return Lab(name, prefix, [])
    raise RuntimeError("could not create a docker network for the benchmark")


def write(container: str, path: str, text: str, append: bool = False) -> None:
    subprocess.run(
        ["docker", "exec", "-i", container, "sh", "-c", f"cat {'>>' if append else '>'} {path}"],
        input=text,
        text=True,
        check=True,
    )


def cpu_seconds(container: str) -> float:
    """CPU time the container's cgroup has used so far (cgroup v2, else v1)."""
    text = docker("exec", container, "sh", "-c", "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || true")
    if m := re.search(r"^usage_usec (\d+)", text, re.M):
        return int(m.group(1)) / 1e6
    v1 = docker("exec", container, "cat", "/sys/fs/cgroup/cpuacct/cpuacct.usage")
    return int(v1) / 1e9


def active_calls(pbx: str) -> int:
    out = docker("exec", pbx, "asterisk", "-rx", "core show channels count")
    m = re.search(r"(\d+) active call", out)
    return int(m.group(1)) if m else 0


def wait_idle(pbx: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while active_calls(pbx) and time.monotonic() < deadline:
        time.sleep(0.5)


@dataclass
class Result:
    offered: int
    ok: int
    failed: int
    seconds: float
    cpu: float  # PBX CPU seconds used

    hold: float = 0.0  # seconds each call is held: the last ones end that long after the last start

    @property
    def cps(self) -> float:
        busy = self.seconds - self.hold
        return self.ok / busy if busy > 0 else 0.0

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu / self.ok if self.ok else float("nan")


def sipp_calls(
    uac: str, pbx: str, lab: Lab, user: str, rate: float, calls: int, hold_ms: int, limit: int
) -> Result:
    before, start = cpu_seconds(pbx), time.monotonic()
    out = docker(
        "exec", uac, "sipp", "-sf", "/sipp/privatedial_call.xml", "-s", NATIONAL, "-au", user, "-ap",
        PASSWORD, "-key", "user", user, "-r", str(rate), "-m", str(calls), "-l", str(limit), "-d",
        str(hold_ms), "-mi", lab.ip(20), "-min_rtp_port", "20000", "-max_rtp_port", "40000", "-nostdin",
        "-timeout", f"{int(calls / rate + hold_ms / 1000 + 60)}s", lab.ip(10),
        check=False, timeout=calls / rate + hold_ms / 1000 + 120,
    )  # fmt: skip
    seconds = time.monotonic() - start
    cpu = cpu_seconds(pbx) - before
    ok = _stat(out, "Successful call")
    failed = _stat(out, "Failed call")
    wait_idle(pbx)
    return Result(calls, ok, failed, seconds, cpu, hold_ms / 1000)


def _stat(screen: str, label: str) -> int:
    found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(found[-1]) if found else 0


def concurrent(uac: str, pbx: str, lab: Lab, target: int) -> tuple[int, float]:
    """Hold `target` calls up at once; returns the peak of active calls and the PBX's CPU % while every
    one of them carries audio. Each caller sends 7 s of audio (sipp's pcap) from its answer, which the ITSP
    echoes: the calls start within 2 s, and CPU is measured from 3 s to 6 s, when all of them talk."""
    rate, hold_ms = max(10, target // 2), 10000
    command = [
        "docker", "exec", uac, "sipp", "-sf", "/sipp/privatedial_call.xml", "-s", NATIONAL, "-au", "alice",
        "-ap", PASSWORD, "-key", "user", "alice", "-r", str(rate), "-m", str(target), "-l", str(target),
        "-d", str(hold_ms), "-mi", lab.ip(20), "-min_rtp_port", "20000", "-max_rtp_port", "40000",
        "-nostdin", "-timeout", "120s", lab.ip(10),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    time.sleep(3)
    before, start = cpu_seconds(pbx), time.monotonic()
    peak = active_calls(pbx)
    time.sleep(max(0.5, 6 - (time.monotonic() - started)))
    peak = max(peak, active_calls(pbx))
    cpu_pct = 100 * (cpu_seconds(pbx) - before) / (time.monotonic() - start)
    process.wait(timeout=180)
    wait_idle(pbx)
    return peak, cpu_pct


def setup(args: argparse.Namespace, lab: Lab) -> tuple[str, str]:
    pbx = lab.start("pbx", 10, args.image)
    deadline = time.monotonic() + 90
    while "fully booted" not in docker("exec", pbx, "asterisk", "-rx", "core waitfullybooted", check=False):
        if time.monotonic() > deadline:
            raise RuntimeError("Asterisk did not boot")
        time.sleep(0.5)
    write(pbx, "/etc/asterisk/pjsip_endpoint.conf", ENDPOINTS.format(itsp=lab.ip(30)))
    write(pbx, "/etc/asterisk/extensions.conf", BASELINE, append=True)
    docker(
        "exec", pbx, "sed", "-i", "s/^DP_TRUNK =.*/DP_TRUNK = itsp/", "/etc/asterisk/extensions_local.conf"
    )
    # Each call has two legs of two ports each: the seed's 100 ports carry 25 calls, too few here.
    docker("exec", pbx, "sed", "-i", "s/^rtpend = .*/rtpend = 20000/", "/etc/asterisk/rtp.conf")
    for command in ("module reload res_pjsip.so", "dialplan reload", "module reload res_rtp_asterisk.so"):
        docker("exec", pbx, "asterisk", "-rx", command)
    sipp = f"{ROOT / 'tests/sipp'}:/sipp:ro"
    uas = ("-sn", "uas", "-p", "5060", "-mi", lab.ip(30), "-rtp_echo", "-nostdin")
    lab.start("itsp", 30, args.peer, "--entrypoint", "sipp", command=uas)
    uac = lab.start("uac", 20, args.peer, "-v", sipp, "--entrypoint", "sleep", command=("infinity",))
    return pbx, uac


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", default="pbx-test:base-debian")
    parser.add_argument("--peer", default="pbx-test-peer:latest")
    parser.add_argument("--rates", default="10,20,40,80", help="call rates to offer (calls/s)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each rate step")
    parser.add_argument("--concurrent", default="50,100,200", help="numbers of simultaneous calls to hold")
    parser.add_argument("--trials", type=int, default=3, help="trials for the CPU per call figure")
    args = parser.parse_args()
    lab = make_lab()
    try:
        pbx, uac = setup(args, lab)
        print(
            f"PBX {args.image}; calls: sipp UAC -> PBX (PrivateDial) -> trunk -> sipp UAS, audio both ways\n"
        )
        print("calls per second (hold 2 s):")
        head = ("offered", "completed", "failed", "calls/s", "PBX CPU %", "CPU ms/call")
        print("  " + " ".join(f"{h:>11}" for h in head))
        best = 0.0
        for rate in [float(r) for r in args.rates.split(",")]:
            r = sipp_calls(uac, pbx, lab, "alice", rate, int(rate * args.seconds), 2000, 10000)
            cpu_pct = 100 * r.cpu / r.seconds
            row = (
                f"{rate:.0f}",
                r.ok,
                r.failed,
                f"{r.cps:.1f}",
                f"{cpu_pct:.1f}",
                f"{r.cpu_ms_per_call:.2f}",
            )
            print("  " + " ".join(f"{v:>11}" for v in row))
            if r.failed == 0:
                best = max(best, r.cps)
        print(f"  highest rate without a failed call: {best:.1f} calls/s\n")

        print("concurrent calls (all up at once, audio both ways on each):")
        print(f"  {'target':>8} {'peak active':>12} {'PBX CPU %':>10}")
        for target in [int(t) for t in args.concurrent.split(",")]:
            peak, cpu_pct = concurrent(uac, pbx, lab, target)
            print(f"  {target:>8} {peak:>12} {cpu_pct:>10.1f}")

        rate = float(args.rates.split(",")[0])
        calls = int(rate * args.seconds)
        private, direct = [], []
        for _ in range(args.trials):
            private.append(sipp_calls(uac, pbx, lab, "alice", rate, calls, 500, 10000).cpu_ms_per_call)
            direct.append(sipp_calls(uac, pbx, lab, "direct", rate, calls, 500, 10000).cpu_ms_per_call)
        p, d = statistics.median(private), statistics.median(direct)
        print(f"\nPBX CPU per call (median of {args.trials} x {calls} calls at {rate:.0f}/s, hold 0.5 s):")
        print(f"  PrivateDial dialplan: {p:.2f} ms")
        print(f"  baseline (one-line dialplan): {d:.2f} ms")
        print(f"  ratio PrivateDial / baseline: {p / d:.2f}")
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
