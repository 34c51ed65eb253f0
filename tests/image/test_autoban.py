"""AutoBan in the real image: real Asterisk security events, real nftables in the PBX container, real
scanners (sipvicious) and a real SIP user agent (sipp) in their own containers on the test network.

The PBX runs with NET_ADMIN only (what the docs ask for), so that its rules live in its own network
namespace only.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.image.docker import Container, Network, docker, unique, wait_for

pytestmark = pytest.mark.image

CAPS = ("--cap-add", "NET_ADMIN")
MAXCOUNT = 5
JAILTIME = 600
IPV6_PREFIX = 124  # a /124 keeps the PBX's own /64 out of the attacker's ban on the test network

# One SIP OPTIONS over UDP (IPv4 or IPv6): exit 0 when anything comes back in time.
PROBE = r"""
import socket, sys, time
host, wait = sys.argv[1], float(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
uri = host if family == socket.AF_INET else "[" + host + "]"
tag = str(time.time_ns())
msg = (
    "OPTIONS sip:" + uri + " SIP/2.0\r\nVia: SIP/2.0/UDP probe:5099;branch=z9hG4bK-" + tag + "\r\n"
    "From: <sip:probe@probe>;tag=1\r\nTo: <sip:probe@probe>\r\nCall-ID: probe-" + tag + "\r\n"
    "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(wait)
s.sendto(msg.encode(), (host, 5060))
try:
    s.recvfrom(4096)
except OSError:
    sys.exit(1)
"""

IPV6_TRANSPORT = """
[udp6]
type = transport
protocol = udp
bind = [::]:5060
"""

# A legitimate user: REGISTER with digest auth, then an authenticated call to bob. Bob has no device
# registered: the dialplan ends the call with 480, or his voicemail answers it (then we hang up).
LEGIT = r"""
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="legit user: register and call">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[field0]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Expires: 60
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[field0]@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
[authentication username=[field0] password=[field1]]
Expires: 60
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
  <send retrans="500"><![CDATA[
INVITE sip:[field2]@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag01[call_number]
To: <sip:[field2]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
  <send><![CDATA[
ACK sip:[field2]@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag01[call_number]
To: <sip:[field2]@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
INVITE sip:[field2]@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag01[call_number]
To: <sip:[field2]@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
[authentication username=[field0] password=[field1]]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" optional="true" next="answered"/>
  <recv response="480"/>
  <send><![CDATA[
ACK sip:[field2]@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag01[call_number]
To: <sip:[field2]@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop next="done"/>
  <label id="answered"/>
  <send><![CDATA[
ACK sip:[field2]@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag01[call_number]
To: <sip:[field2]@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[
BYE sip:[field2]@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag01[call_number]
To: <sip:[field2]@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
  <label id="done"/>
</scenario>
"""


def autoban_conf(network: Network) -> str:
    return (
        "[autoban]\n"
        f"maxcount = {MAXCOUNT}\nwatchtime = 2m\njailtime = {JAILTIME}\nrepeatmult = 6\n"
        f"ipv6_prefix = {IPV6_PREFIX}\n"
        f"deny = {network.address4(44)}/30\n"
    )


@dataclass
class Site:
    network: Network
    volume: str
    image: str
    peer_image: str
    pbx: Container | None = None
    peers: dict[str, Container] = field(default_factory=dict)

    @property
    def pbx_ip(self) -> str:
        return self.network.address4(10)

    @property
    def pbx_ip6(self) -> str:
        return self.network.address6(10)

    def start_pbx(self) -> Container:
        self.pbx = Container(
            self.image,
            name=unique("autoban-pbx"),
            options=[
                *CAPS,
                "--network",
                self.network.name,
                "--ip",
                self.pbx_ip,
                "--ip6",
                self.pbx_ip6,
                "-v",
                f"{self.volume}:/srv",
                "-e",
                "SYSLOG_LEVEL=6",
            ],
        ).start()
        self.pbx.wait_booted()
        return self.pbx

    def peer(self, name: str, host: int, ip6: bool = False) -> Container:
        if name not in self.peers:
            options = ["--network", self.network.name, "--ip", self.network.address4(host)]
            if ip6:
                options += ["--ip6", self.network.address6(host)]
            self.peers[name] = Container(
                self.peer_image,
                name=unique(f"autoban-{name}"),
                options=options,
                command=["sleep", "infinity"],
            ).start()
        return self.peers[name]

    def autoban(self, *words: str) -> Any:
        assert self.pbx is not None
        return json.loads(self.pbx.exec("autoban", *words, "--json"))

    def jailed(self) -> dict[str, dict[str, Any]]:
        return {item["address"]: item for item in self.autoban("list", "jail")["jail"]}

    def wait_active(self) -> None:
        def active() -> bool:
            assert self.pbx is not None
            done = self.pbx.run("autoban", "show", "--json")
            if done.returncode != 0:
                return False
            status = json.loads(done.stdout)
            return status["state"] == "active" and status["ami"]["connected"]

        wait_for("AutoBan active and logged in to AMI", active, timeout=40)


def answered(peer: Container, host: str, wait: float = 1.5) -> bool:
    return peer.run("python3", "-c", PROBE, host, str(wait), timeout=30).returncode == 0


@pytest.fixture(scope="module")
def site(base_image: str, peer_image: str, network: Network) -> Iterator[Site]:
    volume = unique("autoban-srv")
    docker("volume", "create", volume)
    s = Site(network, volume, base_image, peer_image)
    try:
        pbx = s.start_pbx()
        docker(
            "exec",
            "-i",
            pbx.name,
            "sh",
            "-c",
            "cat > /etc/asterisk/autoban.conf",
            input_text=autoban_conf(network),
        )
        docker(
            "exec",
            "-i",
            pbx.name,
            "sh",
            "-c",
            "cat >> /etc/asterisk/pjsip_transport.conf",
            input_text=IPV6_TRANSPORT,
        )
        pbx.exec("sv", "restart", "asterisk")
        pbx.wait_booted()
        pbx.exec("sv", "restart", "autoband")
        s.wait_active()
        yield s
    finally:
        for peer in s.peers.values():
            peer.remove()
        if s.pbx is not None:
            s.pbx.remove()
        docker("volume", "rm", "-f", volume, check=False)


def legit_call(site: Site) -> None:
    """Register and call as alice from her own container; fails the test if anything goes wrong."""
    assert site.pbx is not None
    password = site.pbx.exec(
        "sh", "-c", "sed -n 's/^inbound_auth\\/password = //p' /etc/asterisk/pjsip_endpoint.conf | head -1"
    ).strip()
    peer = site.peer("legit", 30)
    docker("exec", "-i", peer.name, "sh", "-c", "cat > /work/legit.xml", input_text=LEGIT)
    docker(
        "exec",
        "-i",
        peer.name,
        "sh",
        "-c",
        "cat > /work/users.csv",
        input_text=f"SEQUENTIAL\nalice;{password};+12025550102\n",
    )
    done = peer.run(
        "sipp", "-sf", "/work/legit.xml", "-inf", "/work/users.csv", "-m", "1", "-timeout", "20s", "-nostdin",
        "-trace_err", "-error_file", "/work/errors.log", site.pbx_ip, timeout=40,
    )  # fmt: skip
    errors = peer.run("cat", "/work/errors.log").stdout
    assert done.returncode == 0, f"the legitimate user failed: {done.stdout[-1500:]}{errors[-1500:]}"


def test_a_deny_listed_range_is_dropped_from_the_first_packet(site: Site) -> None:
    denied = site.peer("denied", 45)  # inside deny = .44/30
    assert not answered(denied, site.pbx_ip)
    status = site.autoban("show")
    assert status["counters"]["dropped"]["deny4"]["packets"] >= 1
    assert site.autoban("who", site.network.address4(45))["denied"] is True
    assert status["sets"]["deny"] == 1


def test_a_scanner_is_jailed_and_gets_no_answer_while_a_user_keeps_working(site: Site) -> None:
    assert site.pbx is not None
    legit_call(site)
    attacker = site.peer("attacker", 20)
    attacker_ip = site.network.address4(20)
    assert answered(attacker, site.pbx_ip)
    scan = attacker.run(
        "timeout", "60", "sipvicious_svcrack", "-u", "alice", "-r", "1-400", site.pbx_ip, timeout=90
    )
    jailed = site.jailed()
    assert attacker_ip in jailed, (scan.stdout[-2000:], scan.stderr[-2000:])
    # svcrack gives up only after 10 s without any answer: the jail held from the 5th attempt on
    assert "found nothing" in scan.stdout + scan.stderr
    assert JAILTIME - 90 < jailed[attacker_ip]["remaining"] <= JAILTIME
    assert not answered(attacker, site.pbx_ip)
    status = site.autoban("show")
    assert status["counters"]["dropped"]["jail4"]["packets"] >= 1
    assert status["counters"]["jailings"] >= 1
    assert attacker_ip in site.pbx.exec("nft", "list", "set", "inet", "autoban", "jail4")
    assert f"jailed {attacker_ip} for 10m after {MAXCOUNT} weighted event(s)" in site.pbx.logs()
    who = site.autoban("who", attacker_ip)
    assert who["sets"] == ["jail"]
    assert sum(who["record"]["events"].values()) >= MAXCOUNT
    # the user in the other container still registers and calls
    legit_call(site)
    assert site.network.address4(30) not in site.jailed()


def test_an_ipv6_attacker_is_jailed_by_its_prefix(site: Site) -> None:
    attacker = site.peer("attacker6", 0x21, ip6=True)
    attacker_ip6 = site.network.address6(0x21)
    assert answered(attacker, site.pbx_ip6)
    attacker.run(
        "timeout", "60", "sipvicious_svcrack", "-6", "-u", "alice", "-r", "1-400", site.pbx_ip6, timeout=90
    )
    key = site.network.address6(0x20) + f"/{IPV6_PREFIX}"
    assert key in site.jailed(), site.autoban("show")
    assert not answered(attacker, site.pbx_ip6)
    assert site.autoban("who", attacker_ip6)["sets"] == ["jail"]
    assert site.autoban("show")["counters"]["dropped"]["jail6"]["packets"] >= 1
    # IPv4 from the same container is another key: not jailed
    assert answered(attacker, site.pbx_ip)


def test_autoban_del_releases_at_once(site: Site) -> None:
    assert site.pbx is not None
    probe = site.peer("probe", 50)
    probe_ip = site.network.address4(50)
    assert answered(probe, site.pbx_ip)
    assert f"jail: added {probe_ip}" in site.pbx.exec("autoban", "add", "jail", "=", probe_ip)
    assert not answered(probe, site.pbx_ip)
    assert f"jail: removed {probe_ip}" in site.pbx.exec("autoban", "del", "jail", "=", probe_ip)
    assert f"released {probe_ip} (released by command" in site.pbx.logs()
    assert answered(probe, site.pbx_ip)
    # Released means on parole: that OPTIONS from an unknown user was an InvalidAccountID event, which
    # on parole jails again at once, for repeatmult (6) times the last sentence. The answer to the
    # OPTIONS may reach the probe before AMI has delivered that event to AutoBan: wait for the jailing.
    wait_for("the paroled probe to be jailed again", lambda: probe_ip in site.jailed(), timeout=10)
    assert site.jailed()[probe_ip]["sentence"] == 6 * JAILTIME
    assert not answered(probe, site.pbx_ip)


def test_bad_addresses_and_set_names_are_clear_errors(site: Site) -> None:
    assert site.pbx is not None
    done = site.pbx.run("autoban", "add", "prison", "=", "192.0.2.1")
    assert done.returncode == 1 and "unknown set 'prison'" in done.stderr
    done = site.pbx.run("autoban", "add", "jail", "=", "192.0.2.300")
    assert done.returncode == 1 and "not an IP address: '192.0.2.300'" in done.stderr
    assert "Traceback" not in done.stderr


def write_conf(site: Site, text: str) -> None:
    assert site.pbx is not None
    docker("exec", "-i", site.pbx.name, "sh", "-c", "cat > /etc/asterisk/autoban.conf", input_text=text)


def test_enabled_no_takes_effect_on_a_service_restart(site: Site) -> None:
    assert site.pbx is not None
    jailed_before = set(site.jailed())
    write_conf(site, autoban_conf(site.network) + "enabled = no\n")
    site.pbx.exec("sv", "restart", "autoband")

    def disabled() -> bool:
        status = site.autoban("show")
        return status["state"] == "inactive" and status["reason"] == "disabled in autoban.conf"

    wait_for("autoban show to say disabled", disabled, timeout=20)
    assert site.pbx.run("nft", "list", "table", "inet", "autoban").returncode != 0
    assert "autoban_up 0" in site.pbx.exec("autoban", "metrics")
    # the deny-listed range reaches Asterisk again: AutoBan is really off
    assert answered(site.peer("denied", 45), site.pbx_ip)
    write_conf(site, autoban_conf(site.network))
    site.pbx.exec("sv", "restart", "autoband")
    site.wait_active()
    assert set(site.jailed()) == jailed_before  # the jail survived the pause


def test_events_from_the_default_gateway_are_warned_about_once(site: Site) -> None:
    assert site.pbx is not None
    gateway = site.network.address4(1)
    # From this host, packets to the test network leave from the bridge's address: the PBX's gateway,
    # which is what every client looks like behind docker's userland proxy.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for n in range(2):
            tag = f"autoban-gateway-{n}"
            options = (
                f"OPTIONS sip:{site.pbx_ip} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {gateway}:5099;branch=z9hG4bK-{tag}\r\n"
                f"From: <sip:probe@probe>;tag={n}\r\nTo: <sip:probe@probe>\r\nCall-ID: {tag}\r\n"
                "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            s.sendto(options.encode(), (site.pbx_ip, 5060))

    def counted() -> bool:
        who = site.autoban("who", gateway)
        return sum(who.get("record", {}).get("events", {}).values()) >= 2

    wait_for("both events from the gateway counted", counted, timeout=10)
    lines = [line for line in site.pbx.logs().splitlines() if "default gateway" in line]
    assert len(lines) == 1 and f"came from {gateway}, this container's default gateway" in lines[0]
    site.pbx.exec("autoban", "del", "watch", "=", gateway)


def test_a_damaged_state_file_is_moved_aside_and_autoban_keeps_enforcing(site: Site) -> None:
    assert site.pbx is not None
    site.pbx.exec("sv", "stop", "autoband")  # it saves at exit: damage the file after that
    site.pbx.exec("sh", "-c", 'printf \'{"version": 2, "saved_at": [\' > /var/lib/autoban/state.json')
    site.pbx.exec("sv", "start", "autoband")
    site.wait_active()
    names = site.pbx.exec("ls", "/var/lib/autoban").split()
    assert any(name.startswith("state.json.bad-") for name in names), names
    assert "moved it to /var/lib/autoban/state.json.bad-" in site.pbx.logs()
    assert "Traceback" not in site.pbx.logs()
    assert site.autoban("show")["sets"]["deny"] == 1  # the config's list is enforced again
    assert not answered(site.peer("denied", 45), site.pbx_ip)


def test_ami_down_and_back_the_daemon_reconnects_and_keeps_counting(site: Site) -> None:
    assert site.pbx is not None
    before = site.autoban("show")
    site.pbx.exec("sv", "restart", "asterisk")
    site.pbx.wait_booted()

    def relogged() -> bool:
        ami = site.autoban("show")["ami"]
        return ami["connected"] and ami["connects"] > before["ami"]["connects"]

    wait_for("AutoBan to log in to AMI again", relogged, timeout=40)
    counter = site.peer("counter", 60)
    counter.run("timeout", "30", "sipvicious_svcrack", "-u", "alice", "-r", "1-1", site.pbx_ip, timeout=40)
    who = site.autoban("who", site.network.address4(60))
    assert who["sets"] == ["watch"]
    assert sum(who["record"]["events"].values()) >= 1
    assert sum(site.autoban("show")["counters"]["events"].values()) > sum(
        before["counters"]["events"].values()
    )


def test_a_new_container_on_the_same_srv_keeps_the_jail_with_its_remaining_time(site: Site) -> None:
    assert site.pbx is not None
    prisoner = site.network.address4(70)
    site.pbx.exec("autoban", "add", "jail", "=", prisoner)
    first = site.jailed()[prisoner]["until"]
    site.pbx.remove()
    site.start_pbx()
    site.wait_active()
    after = site.jailed()
    assert prisoner in after
    assert after[prisoner]["until"] == pytest.approx(first, abs=0.01)
    assert 0 < after[prisoner]["remaining"] < JAILTIME
    listing = site.pbx.exec("nft", "list", "set", "inet", "autoban", "jail4")
    assert prisoner in listing
    # autoban.conf lives on /srv too: its deny list is back
    assert site.autoban("show")["sets"]["deny"] == 1


def test_without_net_admin_autoban_says_so_once_and_the_container_stays_healthy(
    base_image: str, make_container: Callable[..., Container]
) -> None:
    c = make_container(base_image, "--health-interval=1s", "--health-timeout=8s", "--health-retries=1")
    c.wait_booted()

    def reported() -> bool:
        done = c.run("autoban", "show", "--json")
        return done.returncode == 0 and json.loads(done.stdout)["state"] == "inactive"

    wait_for("autoban show to report inactive", reported, timeout=30)
    status = json.loads(c.exec("autoban", "show", "--json"))
    assert "NET_ADMIN" in status["reason"]
    wait_for("docker's health status 'healthy'", lambda: c.health() == "healthy", timeout=30)
    assert "run" in c.exec("sv", "status", "autoband")
    errors = [line for line in c.logs().splitlines() if "AutoBan does not enforce" in line]
    assert len(errors) == 1, c.logs()
    assert "(run the container with --cap-add NET_ADMIN)" in errors[0]
