"""The base and mini images as a user runs them: real Asterisk 22, real runit, real docker volumes."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.image.docker import Container, Network, docker, wait_for

pytestmark = pytest.mark.image
ROOT = Path(__file__).resolve().parents[2]
DEMO_USERS = ("alice", "bob")
PASSWORD_LINE = re.compile(r"^pbx: +pjsip_endpoint\.conf \[(\w+)\] inbound_auth/password = (\S+)$", re.M)
ASTERISK_PID = "/run/asterisk/asterisk.pid"
CONTROL_SOCKET = "/run/asterisk/asterisk.ctl"


def test_base_turns_healthy_and_lists_the_demo_users(pbx: Container) -> None:
    wait_for("docker's health status 'healthy'", lambda: pbx.health() == "healthy", timeout=30)
    endpoints = pbx.asterisk("pjsip show endpoints")
    for user in DEMO_USERS:
        assert re.search(rf"Endpoint:\s+{user}\b", endpoints), endpoints


def test_asterisk_logs_reach_docker_logs_without_errors(
    base_image: str, make_container: Callable[..., Container]
) -> None:
    # as documented (and in the demo): AutoBan needs these to program nftables
    c = make_container(base_image, "--cap-add", "NET_ADMIN", "-e", "SYSLOG_LEVEL=6")
    c.wait_booted()
    wait_for("Asterisk's ready notice in docker logs", lambda: "asterisk: " in c.logs(), timeout=20)
    logs = c.logs()
    assert "NOTICE" in logs, logs  # level 6 lets notices through: the pipe to docker logs works
    assert [line for line in logs.splitlines() if "ERROR" in line] == []


def test_default_level_hides_notices(pbx: Container) -> None:
    logs = pbx.logs()
    assert "NOTICE" not in logs, logs
    assert "generated password" in logs  # the one-time banner shows whatever the level


def test_demo_passwords_are_generated_and_printed_once(
    base_image: str, make_container: Callable[..., Container], volume: str
) -> None:
    first = make_container(base_image, "-v", f"{volume}:/srv")
    first.wait_booted()
    printed = dict(PASSWORD_LINE.findall(first.logs()))
    assert set(printed) == set(DEMO_USERS)
    assert len(set(printed.values())) == 2
    conf = first.exec("cat", "/etc/asterisk/pjsip_endpoint.conf")
    for password in printed.values():
        assert len(password) >= 16 and password in conf
    assert "__GENERATED_SECRET__" not in first.exec("sh", "-c", "cat /etc/asterisk/*")
    manager = first.exec("cat", "/etc/asterisk/manager.conf")
    assert re.search(r"^\s*bindaddr\s*=\s*127\.0\.0\.1", manager, re.M)
    first.remove()
    again = make_container(base_image, "-v", f"{volume}:/srv")
    again.wait_booted()
    assert "generated password" not in again.logs()
    assert again.exec("cat", "/etc/asterisk/pjsip_endpoint.conf") == conf


def test_config_and_spool_survive_a_new_container_on_the_same_srv(
    base_image: str, make_container: Callable[..., Container], volume: str
) -> None:
    first = make_container(base_image, "-v", f"{volume}:/srv")
    first.wait_booted()
    first.exec("sh", "-c", "echo '; changed by the test' >> /etc/asterisk/extensions.conf")
    first.exec(
        "sh",
        "-c",
        "mkdir -p /var/spool/asterisk/voicemail/t && echo kept > /var/spool/asterisk/voicemail/t/msg",
    )
    first.exec("sh", "-c", "echo key > /var/lib/asterisk/test.key")
    first.asterisk("database put test survives yes")
    docker("stop", first.name)  # docker compose down, or an upgrade: stop, then remove
    docker("rm", first.name)
    second = make_container(base_image, "-v", f"{volume}:/srv")
    second.wait_booted()
    assert second.exec("tail", "-n1", "/etc/asterisk/extensions.conf").strip() == "; changed by the test"
    assert second.exec("cat", "/var/spool/asterisk/voicemail/t/msg").strip() == "kept"
    assert second.exec("cat", "/var/lib/asterisk/test.key").strip() == "key"
    assert "Value: yes" in second.asterisk("database get test survives")
    for path in ("/etc/asterisk", "/var/spool/asterisk", "/var/lib/asterisk", "/var/log/asterisk"):
        assert second.exec("readlink", path).strip() == f"/srv{path}"


def test_an_existing_etc_asterisk_is_left_untouched(
    base_image: str, make_container: Callable[..., Container], tmp_path: Path
) -> None:
    conf = tmp_path / "asterisk"
    conf.mkdir()
    (conf / "modules.conf").write_text("[modules]\nautoload = no\nload = pbx_config.so\n")
    (conf / "extensions.conf").write_text("[default]\nexten => 1,1,Hangup()\n")
    before = {p.name: p.read_bytes() for p in conf.iterdir()}
    c = make_container(base_image, "-v", f"{conf}:/etc/asterisk")
    c.wait_booted()
    assert {p.name: p.read_bytes() for p in conf.iterdir()} == before
    assert "seeded" not in c.logs()
    assert "1 priority" in c.asterisk("dialplan show 1@default")


def test_docker_stop_is_clean_and_runs_exit_hooks(
    base_image: str, make_container: Callable[..., Container], tmp_path: Path
) -> None:
    hooks = tmp_path / "exit.d"
    hooks.mkdir()
    hook = hooks / "10-mark"
    hook.write_text("#!/bin/sh\necho exit-hook-ran > /srv/exit-mark\n")
    hook.chmod(0o755)
    c = make_container(base_image, "-v", f"{hooks}:/etc/docker/exit.d:ro", "-e", "SYSLOG_LEVEL=7")
    c.wait_booted()
    started = time.monotonic()
    docker("stop", "-t", "10", c.name, timeout=30)
    took = time.monotonic() - started
    state = c.inspect()["State"]
    # 0, not 137: PID 1 finished on its own, docker never had to SIGKILL it
    assert state["ExitCode"] == 0, (state, took, c.logs())
    docker("cp", f"{c.name}:/srv/exit-mark", str(tmp_path / "mark"))
    assert (tmp_path / "mark").read_text() == "exit-hook-ran\n"
    logs = c.logs()
    assert "Asterisk cleanly ending" in logs, logs  # stopped by its own shutdown, not killed
    assert "(0 exit hook(s) failed)" in logs


def test_entry_hooks_run_in_name_order_before_asterisk(
    base_image: str, make_container: Callable[..., Container], tmp_path: Path
) -> None:
    hooks = tmp_path / "entry.d"
    hooks.mkdir()
    for name in ("20-second", "10-first"):
        (hooks / name).write_text(
            f"#!/bin/sh\necho {name} >> /srv/order\n"
            f"test -e {CONTROL_SOCKET} && echo late >> /srv/order; exit 0\n"
        )
        (hooks / name).chmod(0o755)
    (hooks / "30-not-executable").write_text("#!/bin/sh\necho never >> /srv/order\n")
    c = make_container(base_image, "-v", f"{hooks}:/etc/docker/entry.d:ro", "-e", "SYSLOG_LEVEL=5")
    c.wait_booted()
    assert c.exec("cat", "/srv/order").split() == ["10-first", "20-second"]
    assert "30-not-executable is not executable" in c.logs()


def test_a_killed_asterisk_comes_back(pbx: Container) -> None:
    before = pbx.exec("cat", ASTERISK_PID).strip()
    pbx.exec("sh", "-c", 'kill "$0" "$1"', "-KILL", before)

    def replaced() -> bool:
        now = pbx.run("cat", ASTERISK_PID).stdout.strip()
        return now not in ("", before) and "run: " in pbx.run("sv", "status", "asterisk").stdout

    wait_for("runit to restart Asterisk", replaced, timeout=30)
    pbx.wait_booted()
    assert pbx.exec("pbx", "health").strip() == "healthy"


def test_health_turns_unhealthy_when_asterisk_stops_answering(pbx: Container) -> None:
    wait_for("healthy", lambda: pbx.health() == "healthy", timeout=30)
    pid = pbx.exec("cat", ASTERISK_PID).strip()
    pbx.exec("sh", "-c", 'kill "$0" "$1"', "-STOP", pid)
    try:
        done = pbx.run("pbx", "health", timeout=30)
        assert done.returncode == 1
        assert "did not answer" in done.stdout
        wait_for("docker's health status 'unhealthy'", lambda: pbx.health() == "unhealthy", timeout=40)
    finally:
        pbx.exec("sh", "-c", 'kill "$0" "$1"', "-CONT", pid)
    wait_for("healthy again", lambda: pbx.health() == "healthy", timeout=40)


def test_invalid_settings_get_a_warning_and_a_safe_default(
    base_image: str, make_container: Callable[..., Container]
) -> None:
    c = make_container(base_image, "-e", "SYSLOG_LEVEL=loud", "-e", "SYSLOG_OPTIONS=-SDtx")
    c.wait_booted()
    logs = c.logs()
    assert "SYSLOG_LEVEL='loud' is not a whole number from 0 to 8; using 4" in logs
    assert "unknown letter(s) x" in logs
    assert c.exec("pbx", "health").strip() == "healthy"


def test_a_command_runs_in_a_prepared_container(base_image: str) -> None:
    out = subprocess.run(
        ["docker", "run", "--rm", base_image, "sh", "-c", "readlink /etc/asterisk; ls /etc/asterisk | wc -l"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out[0] == "/srv/etc/asterisk"
    assert int(out[1]) > 5


def test_mini_runs_asterisk_with_the_same_persistence_and_seeding(
    mini_image: str, make_container: Callable[..., Container], volume: str
) -> None:
    assert (
        docker(
            "run", "--rm", "--entrypoint", "sh", mini_image, "-c", "command -v python3 || echo none"
        ).strip()
        == "none"
    )
    c = make_container(mini_image, "-v", f"{volume}:/srv")
    c.wait_booted()
    printed = dict(PASSWORD_LINE.findall(c.logs()))
    assert set(printed) == set(DEMO_USERS), c.logs()
    conf = c.exec("cat", "/etc/asterisk/pjsip_endpoint.conf")
    assert all(pw in conf for pw in printed.values())
    assert "__GENERATED_SECRET__" not in c.exec("sh", "-c", "cat /etc/asterisk/*")
    assert c.exec("readlink", "/var/spool/asterisk").strip() == "/srv/var/spool/asterisk"
    endpoints = c.asterisk("pjsip show endpoints")
    assert all(user in endpoints for user in DEMO_USERS)
    assert [line for line in c.logs().splitlines() if "ERROR" in line] == []


def test_the_add_ons_ami_account_works_on_loopback_only(pbx: Container) -> None:
    answer = pbx.exec("pbx", "ami", "Command", "Command=core show version")
    assert "Response: Success" in answer and "Asterisk 22" in answer
    listening = pbx.exec("cat", "/proc/net/tcp")
    # AMI's port, bound to 127.0.0.1 (0100007F in /proc/net/tcp) and nowhere else
    port = f":{5038:04X}"
    rows = [line.split() for line in listening.splitlines()[1:]]
    binds = [row[1] for row in rows if row[1].endswith(port) and row[3] == "0A"]  # 0A: listening
    assert binds == [f"0100007F{port}"]
    wrong = pbx.run("pbx", "ami", "--user", "nobody", "CoreStatus")
    assert wrong.returncode == 1 and "no [nobody] section" in wrong.stderr


def test_a_softphone_registers_with_the_printed_credentials(
    base_image: str, peer_image: str, network: Network, make_container: Callable[..., Container]
) -> None:
    pbx = make_container(base_image, "--network", network.name, "--ip", network.address4(10))
    pbx.wait_booted()
    password = dict(PASSWORD_LINE.findall(pbx.logs()))["alice"]
    sipp = ROOT / "tests" / "sipp"

    def register(secret: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "run", "--rm", "--network", network.name, "-v", f"{sipp}:/sipp:ro", peer_image,
             "sipp", "-sf", "/sipp/demo_register.xml", "-s", "alice", "-au", "alice", "-ap", secret,
             "-t", "u1", "-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin",
             f"{network.address4(10)}:5060"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    refused = register("not-" + password)
    assert refused.returncode != 0
    assert "alice" not in pbx.asterisk("pjsip show contacts")
    accepted = register(password)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    contacts = pbx.asterisk("pjsip show contacts")
    assert "alice/sip:alice@" in contacts, contacts
