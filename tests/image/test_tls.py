"""TLS end to end: the self-signed first start, a Traefik acme.json renewal under load, SRTP calls.

Real parts only: the base image (Asterisk 22, the `tls` service), openssl s_client, sipp and baresip in
the peer container, and a raw-socket capture of the RTP that reaches the peer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbx.tls import openssl
from tests.image.docker import Container, Network, docker, unique, wait_for
from tests.unit import tls_certs

pytestmark = pytest.mark.image
HERE = Path(__file__).parent / "tls"
HOST = "tele.example.test"
PBX, PEER, MINI = 10, 20, 30
PASSWORD_LINE = re.compile(r"^pbx: +pjsip_endpoint\.conf \[alice\] inbound_auth/password = (\S+)$", re.M)

# Two users of the PrivateDial templates with SRTP (SDES) over TLS, and a dialplan of the test's own that
# records what Asterisk knows about each call leg: CHANNEL(pjsip,secure) / CHANNEL(rtp,secure,audio).
SRTP_USERS = """
[carol](w_term_io,_srtp_sdes)
hint_exten = +12025550103
endpoint/context = tls_test
inbound_auth/username = carol
inbound_auth/password = carol-Test-Secret-1

[dave](w_term_io,_srtp_sdes)
hint_exten = +12025550104
endpoint/context = tls_test
inbound_auth/username = dave
inbound_auth/password = dave-Test-Secret-1
"""
SRTP_DIALPLAN = """
[tls_test]
exten => +12025550104,1,Answer()
 same => n,Set(GLOBAL(TLS_TEST_CALLER)=${CHANNEL(pjsip,secure)}/${CHANNEL(rtp,secure,audio)})
 same => n,Dial(PJSIP/dave,20,U(tls_test_callee))
 same => n,Hangup()

[tls_test_callee]
exten => s,1,Set(GLOBAL(TLS_TEST_CALLEE)=${CHANNEL(pjsip,secure)}/${CHANNEL(rtp,secure,audio)})
 same => n,Return()
"""
BARESIP_CONFIG = """sip_listen {ip}:{port}
sip_verify_server no
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aufile.so
module srtp.so
module account.so
module menu.so
audio_source ausine,1000
audio_player aufile,/tmp/{user}/heard.wav
audio_alert aufile,/dev/null
ausrc_srate 48000
auplay_srate 48000
rtp_ports {rtp}
"""


@dataclass
class Site:
    network: Network
    pbx: Container
    peer: Container

    @property
    def pbx_ip(self) -> str:
        return self.network.address4(PBX)

    def put(self, container: Container, path: str, text: str) -> None:
        docker("exec", "-i", container.name, "sh", "-c", f"cat > {path}", input_text=text)

    def served(self, ip: str, port: int = 5061, *extra: str) -> bytes:
        """The leaf certificate a TLS client gets from ip:port, as PEM (b"" when the handshake fails)."""
        done = self.peer.run(
            "sh",
            "-c",
            f"openssl s_client -connect {ip}:{port} -servername {HOST} {' '.join(extra)}"
            " </dev/null 2>/dev/null | openssl x509 -outform PEM",
            timeout=20,
        )
        return done.stdout.encode() if done.returncode == 0 else b""


@pytest.fixture(scope="module")
def acme_volume() -> Iterator[str]:
    name = unique("acme")
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def site(base_image: str, peer_image: str, network: Network, acme_volume: str) -> Iterator[Site]:
    pbx = Container(
        base_image,
        options=[
            "--network", network.name, "--ip", network.address4(PBX),
            "-e", f"HOSTNAME={HOST}", "-e", "SYSLOG_LEVEL=6",
            # Traefik's folder, read-only as users mount it
            "-v", f"{acme_volume}:/acme:ro",
        ],
    )  # fmt: skip
    peer = Container(
        peer_image,
        options=["--network", network.name, "--ip", network.address4(PEER), "-v", f"{acme_volume}:/acme"],
        command=["sleep", "infinity"],
    )
    try:
        pbx.start()
        peer.start()
        pbx.wait_booted()
        yield Site(network, pbx, peer)
    finally:
        pbx.remove()
        peer.remove()


def test_first_start_serves_a_self_signed_certificate_for_hostname(site: Site) -> None:
    installed = site.pbx.exec("cat", "/etc/ssl/asterisk/cert.pem").encode()
    served = site.served(site.pbx_ip)
    assert served, "no TLS handshake on 5061"
    assert openssl.certificate_info(served).fingerprint == openssl.certificate_info(installed).fingerprint
    info = openssl.certificate_info(served)
    assert info.self_signed and info.names == (HOST,)
    assert f"CN={HOST}" in info.subject and "O=pbx self-signed" in info.subject
    # A client that trusts exactly this certificate verifies it, host name included.
    site.put(site.peer, "/tmp/pbx-cert.pem", installed.decode())
    verify = site.peer.run(
        "sh",
        "-c",
        f"openssl s_client -connect {site.pbx_ip}:5061 -CAfile /tmp/pbx-cert.pem -verify_hostname {HOST}"
        " -verify_return_error </dev/null 2>&1",
    )
    assert verify.returncode == 0 and "Verify return code: 0 (ok)" in verify.stdout, verify.stdout
    # TLS 1.3 is offered; pre-1.2 versions are not, even to a client that would accept them.
    assert (
        "TLSv1.3"
        in site.peer.run("sh", "-c", f"openssl s_client -connect {site.pbx_ip}:5061 </dev/null 2>&1").stdout
    )
    assert site.served(site.pbx_ip, 5061, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0") == b""
    # Kept under /srv, the key readable by Asterisk's user only.
    assert site.pbx.exec("readlink", "/etc/ssl/asterisk").strip() == "/srv/etc/ssl/asterisk"
    modes = site.pbx.exec(
        "stat", "-c", "%n %a %U:%G", "/srv/etc/ssl/asterisk/cert.pem", "/srv/etc/ssl/asterisk/priv_key.pem"
    )
    assert modes.split("\n")[:2] == [
        "/srv/etc/ssl/asterisk/cert.pem 644 asterisk:asterisk",
        "/srv/etc/ssl/asterisk/priv_key.pem 600 asterisk:asterisk",
    ]
    # The watcher service runs (and pbx health requires it to).
    assert site.pbx.exec("sv", "status", "/etc/service/tls").startswith("run:")


def test_a_new_acme_json_is_served_within_seconds_while_udp_registrations_go_on(site: Site) -> None:
    password = PASSWORD_LINE.search(site.pbx.logs())
    assert password, "alice's generated password was not printed"
    new = tls_certs.make("*.example.test", "*.example.test", "example.test")
    other = tls_certs.make("example.org", "example.org")
    text = tls_certs.v2(
        {"staging": [("example.org", None, other)], "le": [("*.example.test", ["example.test"], new)]}
    )
    wanted = openssl.certificate_info(new.cert_pem).fingerprint

    # HTTPS (WebSocket, ARI) on 8089 with the same files, as docs/tls.md tells users to enable it.
    site.pbx.exec(
        "sed", "-i", "-e", "s/^enabled = no/enabled = yes/", "-e", "s/^tlsenable = no/tlsenable = yes/",
        "/etc/asterisk/http.conf",
    )  # fmt: skip
    site.pbx.asterisk("module reload http")
    before = openssl.certificate_info(site.pbx.exec("cat", "/etc/ssl/asterisk/cert.pem").encode()).fingerprint
    wait_for(
        "8089 to serve the self-signed certificate",
        lambda: (
            (s := site.served(site.pbx_ip, 8089)) != b"" and openssl.certificate_info(s).fingerprint == before
        ),
        timeout=10,
    )

    # A REGISTER (with digest auth) over UDP ten times a second for 25 s; sipp exits 1 if any one fails.
    site.put(site.peer, "/tmp/register.xml", (HERE / "register.xml").read_text())
    sipp = (
        f"sipp {site.pbx_ip}:5060 -sf /tmp/register.xml -s alice -au alice -ap '{password.group(1)}'"
        f" -i {site.network.address4(PEER)} -p 5090 -r 10 -m 250 -l 10 -recv_timeout 2s -timeout 60s -nostdin"
    )
    site.peer.exec("rm", "-f", "/tmp/reg.rc")
    docker("exec", "-d", site.peer.name, "sh", "-c", f"{sipp} >/tmp/reg.out 2>&1; echo $? >/tmp/reg.rc")
    wait_for(
        "sipp's REGISTERs to reach Asterisk",
        lambda: "alice/sip:alice@" in site.pbx.asterisk("pjsip show contacts"),
        timeout=20,
    )

    # Traefik rewrites acme.json in place: the watcher first sees half a file, for a whole second and a half.
    site.put(site.peer, "/tmp/acme.json", text)
    site.peer.exec(
        "python3",
        "-c",
        "import time; t = open('/tmp/acme.json').read(); f = open('/acme/acme.json', 'w');"
        " f.write(t[: len(t) // 2]); f.flush(); time.sleep(1.5); f.write(t[len(t) // 2 :]); f.close()",
    )
    # "Within seconds" is this bound; how fast exactly is no test's business (a loaded CI host).
    wait_for(
        "5061 to serve the new certificate",
        lambda: (s := site.served(site.pbx_ip)) != b"" and openssl.certificate_info(s).fingerprint == wanted,
        timeout=15,
    )
    assert site.peer.run("test", "-e", "/tmp/reg.rc").returncode != 0, (
        "sipp ended before the swap: no overlap"
    )
    # `pbx tls reload` reloaded the web server too, and checked on its own that 5061 took the certificate up.
    wait_for(
        "8089 to serve the new certificate",
        lambda: (
            (s := site.served(site.pbx_ip, 8089)) != b"" and openssl.certificate_info(s).fingerprint == wanted
        ),
        timeout=10,
    )
    wait_for(
        "the reload's own check of 5061",
        lambda: f"TLS reload: 127.0.0.1:5061 serves the new certificate (SHA256 {wanted})" in site.pbx.logs(),
        timeout=10,
    )

    wait_for(
        "the REGISTER loop to end", lambda: site.peer.run("test", "-e", "/tmp/reg.rc").returncode == 0, 60
    )
    out = site.peer.exec("cat", "/tmp/reg.out")
    assert site.peer.exec("cat", "/tmp/reg.rc").strip() == "0", out
    assert re.search(r"Successful call\s*\|\s*\d+\s*\|\s*250\b", out), out
    assert re.search(r"Failed call\s*\|\s*\d+\s*\|\s*0\b", out), out

    logs = site.pbx.logs()
    assert (
        "tls: WARNING: TLS: installed the new certificate from /acme/acme.json: *.example.test (resolver le)"
        in logs
    )
    assert [line for line in logs.splitlines() if line.startswith("tls:") and "ERROR" in line] == []
    show = site.pbx.exec("pbx", "tls", "show")
    assert "*.example.test, example.test" in show and "matches the certificate" in show


def test_a_tls_call_with_srtp_is_encrypted_on_the_wire(site: Site) -> None:
    site.pbx.exec("sh", "-c", f"cat >> /etc/asterisk/pjsip_endpoint.conf <<'EOF'\n{SRTP_USERS}EOF")
    site.pbx.exec("sh", "-c", f"cat >> /etc/asterisk/extensions.conf <<'EOF'\n{SRTP_DIALPLAN}EOF")
    site.pbx.asterisk("module reload res_pjsip.so")
    site.pbx.asterisk("dialplan reload")
    assert "media_encryption                   : sdes" in site.pbx.asterisk("pjsip show endpoint dave")

    peer_ip = site.network.address4(PEER)
    for user, port, rtp, secret in (
        ("dave", 5070, "20000-20049", "dave"),
        ("carol", 5071, "20050-20099", "carol"),
    ):
        site.peer.exec("mkdir", "-p", f"/tmp/{user}")
        site.put(
            site.peer, f"/tmp/{user}/config", BARESIP_CONFIG.format(ip=peer_ip, port=port, user=user, rtp=rtp)
        )
        account = (
            f"<sip:{user}@{site.pbx_ip};transport=tls>"
            f";auth_pass={secret}-Test-Secret-1;mediaenc=srtp-mand;regint=600"
        )
        site.put(
            site.peer, f"/tmp/{user}/accounts", account + (";answermode=auto\n" if user == "dave" else "\n")
        )
    docker(
        "exec",
        "-d",
        "-w",
        "/tmp/dave",
        site.peer.name,
        "sh",
        "-c",
        "baresip -f /tmp/dave -t 60 >/tmp/dave/log 2>&1",
    )
    wait_for(
        "dave to register over TLS",
        lambda: "dave/sip:dave" in site.pbx.asterisk("pjsip show contacts"),
        timeout=20,
    )

    site.peer.exec("rm", "-f", "/tmp/rtp.json")
    site.put(site.peer, "/tmp/sniff.py", (HERE / "sniff.py").read_text())
    docker("exec", "-d", site.peer.name, "python3", "/tmp/sniff.py", site.pbx_ip, "15", "/tmp/rtp.json")
    dial = f"/dial sip:+12025550104@{site.pbx_ip};transport=tls"
    docker(
        "exec",
        "-d",
        "-w",
        "/tmp/carol",
        site.peer.name,
        "sh",
        "-c",
        f"baresip -f /tmp/carol -t 20 -e '{dial}' >/tmp/carol/log 2>&1",
    )

    def legs() -> dict[str, str]:
        found = re.findall(r"(TLS_TEST_CALLE[RE])=(\S*)", site.pbx.asterisk("dialplan show globals"))
        return dict(found)

    wait_for("both call legs to be answered", lambda: len(legs()) == 2, timeout=20)
    # Asterisk's own view of each leg: signalling over TLS, media encrypted (SRTP).
    assert legs() == {"TLS_TEST_CALLER": "1/1", "TLS_TEST_CALLEE": "1/1"}

    wait_for(
        "the RTP capture", lambda: site.peer.run("test", "-e", "/tmp/rtp.json").returncode == 0, timeout=30
    )
    packets = json.loads(site.peer.exec("cat", "/tmp/rtp.json"))
    assert len(packets) >= 50, packets
    assert len({p["dport"] for p in packets}) == 2  # the media of both legs (to carol and to dave)
    # PCMU, 20 ms: 160 bytes of audio. SRTP adds its 10-byte authentication tag and turns the 1 kHz tone
    # (a handful of distinct byte values in plain PCMU) into bytes that look random.
    assert {p["pt"] for p in packets} == {0}
    assert {p["len"] for p in packets} == {170}, packets[:5]
    assert min(p["distinct"] for p in packets) > 90, packets[:5]


def test_mini_serves_a_self_signed_certificate_too(
    mini_image: str, site: Site, make_container: Callable[..., Container]
) -> None:
    mini = make_container(
        mini_image,
        "--network",
        site.network.name,
        "--ip",
        site.network.address4(MINI),
        "-e",
        f"HOSTNAME={HOST}",
    )
    mini.wait_booted()
    served = site.served(site.network.address4(MINI))
    assert served, "mini: no TLS handshake on 5061"
    info = openssl.certificate_info(served)
    assert info.self_signed and info.names == (HOST,)
    installed = mini.exec("cat", "/etc/ssl/asterisk/cert.pem").encode()
    assert info.fingerprint == openssl.certificate_info(installed).fingerprint
    assert [line for line in mini.logs().splitlines() if "ERROR" in line] == []

    # mini has no watcher: a start renews its own self-signed certificate when less than a day is left.
    mini.exec(
        "sh", "-c",
        "cd /etc/ssl/asterisk && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
        f" -subj '/CN={HOST}/O=pbx self-signed' -addext subjectAltName=DNS:{HOST} -keyout priv_key.pem"
        " -out cert.pem 2>/dev/null && chown asterisk:asterisk cert.pem priv_key.pem",
    )  # fmt: skip
    expiring = openssl.certificate_info(mini.exec("cat", "/etc/ssl/asterisk/cert.pem").encode())
    docker("restart", mini.name)
    mini.wait_booted()
    served = site.served(site.network.address4(MINI))
    assert served, "mini: no TLS handshake on 5061 after the restart"
    renewed = openssl.certificate_info(served)
    assert renewed.fingerprint != expiring.fingerprint and renewed.names == (HOST,)
    assert (renewed.not_after - expiring.not_after).days >= 28  # TLS_CERTDAYS' 30 days, not 1
    assert "self-signed certificate expires within a day" in mini.logs()


def test_the_documented_itsp_transport_loads_with_server_verification(site: Site) -> None:
    """The commented [tls_itsp] example of pjsip_transport.conf, uncommented as docs/tls.md says, loads."""
    seeded = site.pbx.exec("cat", "/etc/asterisk/pjsip_transport.conf")
    example = seeded[seeded.index(";[tls_itsp]") :].splitlines()
    block = "\n".join(line[1:] for line in example if line.startswith(";"))
    site.pbx.exec("sh", "-c", f"cat >> /etc/asterisk/pjsip_transport.conf <<'EOF'\n\n{block}\nEOF")
    site.pbx.asterisk("module reload res_pjsip.so")
    shown = site.pbx.asterisk("pjsip show transport tls_itsp")
    assert re.search(r"verify_server\s*:\s*(Yes|true)", shown), shown
    assert re.search(r"ca_list_file\s*:\s*/etc/ssl/certs/ca-certificates.crt", shown), shown
    assert re.search(r"bind\s*:\s*0\.0\.0\.0:5062", shown), shown
    # the phones' transport is unchanged: no verification of the other side
    assert re.search(r"verify_server\s*:\s*(No|false)", site.pbx.asterisk("pjsip show transport tls")), shown
