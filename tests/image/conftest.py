"""Image tests: the Debian-flavor images, built once per run by scripts/test.sh (or here, if missing)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.image.docker import Container, Network, docker, unique

ROOT = Path(__file__).resolve().parents[2]


def _image(target: str) -> str:
    name = os.environ.get(f"PBX_TEST_IMAGE_{target.upper()}", f"pbx-test:{target}-debian")
    if subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False).returncode:
        subprocess.run([str(ROOT / "scripts/build.sh"), target, "debian", name.split(":")[0]], check=True)
    return name


@pytest.fixture(scope="session")
def base_image() -> str:
    return _image("base")


@pytest.fixture(scope="session")
def mini_image() -> str:
    return _image("mini")


@pytest.fixture(scope="session")
def peer_image() -> str:
    """sipp, baresip, sipvicious, aiohttp and aiosmtpd on Debian sid (tests/peer/Dockerfile)."""
    name = os.environ.get("PBX_TEST_IMAGE_PEER", "pbx-test-peer:latest")
    subprocess.run([str(ROOT / "scripts/peer-image.sh"), name], check=True)
    return name


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    """A docker network of this test module's own, IPv4 and IPv6, with explicit subnets.

    Traffic in the tests goes only to containers on such networks (or loopback).
    """
    net = Network.create()
    yield net
    net.remove()


@pytest.fixture
def volume() -> Iterator[str]:
    name = unique("srv")
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)


def _containers() -> Iterator[Callable[..., Container]]:
    made: list[Container] = []

    def make(image: str, *options: str, command: tuple[str, ...] = ()) -> Container:
        c = Container(image, options=list(options), command=list(command)).start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.remove()


@pytest.fixture
def make_container() -> Iterator[Callable[..., Container]]:
    """Start containers that are removed after the test."""
    yield from _containers()


@pytest.fixture(scope="module")
def module_containers() -> Iterator[Callable[..., Container]]:
    """Start containers shared by the tests of a module, removed after the last one."""
    yield from _containers()


@pytest.fixture
def pbx(base_image: str, make_container: Callable[..., Container]) -> Container:
    """A booted base container with a fast healthcheck, on its own anonymous /srv."""
    c = make_container(
        base_image,
        *("--cap-add", "NET_ADMIN"),  # as documented: AutoBan programs nftables
        *("--health-interval=1s", "--health-timeout=8s", "--health-retries=1"),
    )
    c.wait_booted()
    return c
