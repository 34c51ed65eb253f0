"""A thin, typed wrapper over the docker CLI for the image tests: real containers, nothing mocked."""

from __future__ import annotations

import json
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


def docker(*args: str, check: bool = True, timeout: float = 120, input_text: str | None = None) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, input=input_text
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def unique(prefix: str) -> str:
    return f"pbxtest-{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 60, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Container:
    image: str
    name: str = field(default_factory=lambda: unique("pbx"))
    options: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    def start(self) -> Container:
        docker("run", "-d", "--name", self.name, *self.options, self.image, *self.command)
        return self

    def exec(self, *cmd: str, check: bool = True, timeout: float = 60, user: str | None = None) -> str:
        extra = ["-u", user] if user else []
        return docker("exec", *extra, self.name, *cmd, check=check, timeout=timeout)

    def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.name, *cmd], capture_output=True, text=True, timeout=timeout, check=False
        )

    def asterisk(self, command: str) -> str:
        return self.exec("asterisk", "-rx", command)

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True, check=False)
        return done.stdout + done.stderr

    def inspect(self) -> dict:
        return json.loads(docker("inspect", self.name))[0]

    def health(self) -> str:
        return self.inspect()["State"].get("Health", {}).get("Status", "none")

    def running(self) -> bool:
        return bool(self.inspect()["State"]["Running"])

    def wait_booted(self, timeout: float = 90) -> None:
        def booted() -> bool:
            done = self.run("asterisk", "-rx", "core waitfullybooted", timeout=20)
            return "fully booted" in done.stdout

        wait_for(f"Asterisk in {self.name} to boot", booted, timeout)

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


@dataclass
class Network:
    """A user-defined bridge in 172.28.0.0/14 (IPv4) and fd00:28::/32 (IPv6), made by the test run."""

    name: str
    subnet4: str
    subnet6: str

    @classmethod
    def create(cls) -> Network:
        for _ in range(20):
            b, c = random.randint(28, 31), random.randint(0, 255)
            subnet4, subnet6 = f"172.{b}.{c}.0/24", f"fd00:28:{b:x}:{c:x}::/64"
            name = unique("net")
            done = subprocess.run(
                ["docker", "network", "create", "--ipv6", "--subnet", subnet4, "--subnet", subnet6, name],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0:
                return cls(name, subnet4, subnet6)
        raise RuntimeError(f"could not create a test network: {done.stderr}")

    def address4(self, host: int) -> str:
        """The IPv4 address of host number `host` in this network (.1 is the gateway)."""
        return self.subnet4.rsplit(".", 1)[0] + f".{host}"

    def address6(self, host: int) -> str:
        return self.subnet6.split("::")[0] + f"::{host:x}"

    def remove(self) -> None:
        docker("network", "rm", self.name, check=False)
