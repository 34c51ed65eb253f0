"""WebSMS end to end: a real PBX, a real HTTP server as the ITSP, a real SIP UA (sipp) as alice's phone.

Containers (one network, module-scoped): the PBX; the ITSP (tests/image/websms/itsp.py on aiohttp,
answering like Twilio and posting Twilio-signed webhooks); the UA (sipp registered as alice over TCP,
answering every text with 200 OK and tracing what it receives; it registers again after each restart
of Asterisk). The UA's host is also "outside remt_addr" for the access test.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.image.docker import Container, Network, wait_for

pytestmark = pytest.mark.image

HERE = Path(__file__).resolve().parent / "websms"
ALICE = "+12025550101"
OUTSIDE = "+15557654321"
TOKEN = "secret-token-0123"
PBX, ITSP, UA = 10, 20, 30


@pytest.fixture(scope="module")
def itsp(network: Network, peer_image: str, module_containers: Callable[..., Container]) -> Container:
    c = module_containers(
        peer_image,
        f"--network={network.name}",
        f"--ip={network.address4(ITSP)}",
        "-v",
        f"{HERE}:/sipp:ro",
        command=("python3", "/sipp/itsp.py", "serve"),
    )
    wait_for("the ITSP to listen", lambda: "8000" in c.exec("ss", "-ltn", check=False))
    return c


@pytest.fixture(scope="module")
def ua(network: Network, peer_image: str, module_containers: Callable[..., Container]) -> Container:
    return module_containers(
        peer_image,
        f"--network={network.name}",
        f"--ip={network.address4(UA)}",
        "-v",
        f"{HERE}:/sipp:ro",
        "-w",
        "/tmp",
        command=("sleep", "infinity"),
    )


def websms_conf(network: Network) -> str:
    # Index "0" also works with a dialplan that passes WEBSMS_INDEX=0 for endpoints without set_var.
    return (
        "[websms]\n"
        "provider [0] = twilio\n"
        f"url_host = http://{network.address4(ITSP)}:8000\n"
        "auth_user = AC0001\n"
        f"auth_secret = {TOKEN}\n"
        "retry_first = 1\n"
        "retry_max = 2\n"
        "[websmsd]\n"
        "provider = twilio\n"
        "url_path = /sms\n"
        f"remt_addr = {network.address4(ITSP)}\n"
        f"sig_secret = {TOKEN}\n"
    )


@pytest.fixture(scope="module")
def pbx(
    network: Network,
    base_image: str,
    itsp: Container,
    ua: Container,
    module_containers: Callable[..., Container],
) -> Container:
    c = module_containers(
        base_image, f"--network={network.name}", f"--ip={network.address4(PBX)}", "-e", "SYSLOG_LEVEL=8"
    )
    c.wait_booted()
    c.exec("sh", "-c", f"cat > /etc/asterisk/websms.conf <<'EOF'\n{websms_conf(network)}EOF")
    wait_for("websmsd to run", lambda: c.run("sv", "status", "/etc/service/websmsd").stdout.startswith("run"))
    return c


class Phone:
    """alice's softphone: sipp registered over TCP, answering texts and qualify OPTIONS with 200 OK.

    Each registration traces into its own file (a restart of Asterisk ends the TCP connection, and the
    phone registers again, as a real one does).
    """

    def __init__(self, pbx: Container, ua: Container, network: Network) -> None:
        self.pbx, self.ua, self.network = pbx, ua, network
        self.registrations = 0
        self.pid = ""
        self.log = ""

    def register(self) -> None:
        self.registrations += 1
        port = 5070 + self.registrations
        self.log = f"/tmp/alice-{self.registrations}.log"
        self.pid = self.ua.exec(
            "sh",
            "-c",
            f"nohup sipp -sf /sipp/register.xml -oocsf /sipp/inbox.xml -t t1 -p {port} -s alice -au alice "
            f"-ap '{alice_password(self.pbx)}' -m 1 -trace_msg -message_file {self.log} -nostdin "
            f"{self.network.address4(PBX)}:5060 >/dev/null 2>&1 & echo $!",
        ).strip()
        contact = f"{self.network.address4(UA)}:{port}"
        wait_for(
            "alice's phone to register and answer qualify",
            lambda: any(contact in line and "Avail" in line for line in self.contacts()),
            30,
        )

    def contacts(self) -> list[str]:
        return self.pbx.run("asterisk", "-rx", "pjsip show contacts").stdout.splitlines()

    def hang_up(self) -> None:
        """Ends the current registration's sipp (it would otherwise hold a dead TCP connection)."""
        self.ua.exec("sh", "-c", f"kill {self.pid}; true")

    def received(self) -> list[bytes]:
        """Bodies of every MESSAGE this registration received, byte for byte (sipp's trace)."""
        raw = subprocess.run(
            ["docker", "exec", self.ua.name, "cat", self.log], capture_output=True, check=False
        ).stdout
        texts = []
        for m in re.finditer(
            rb"received \[\d+\] bytes\s*:?\s*MESSAGE sip:[^\r]*\r\n(.*?)\r\n\r\n", raw, re.S
        ):
            length = int(re.search(rb"Content-Length: *(\d+)", m.group(1)).group(1))  # type: ignore[union-attr]
            texts.append(raw[m.end() : m.end() + length])
        return texts


@pytest.fixture(scope="module")
def alice(pbx: Container, ua: Container, network: Network) -> Phone:
    phone = Phone(pbx, ua, network)
    phone.register()
    return phone


# --- helpers -------------------------------------------------------------------------------------------
def alice_password(pbx: Container) -> str:
    """The password generated for alice at first start."""
    endpoints = pbx.exec("cat", "/etc/asterisk/pjsip_endpoint.conf")
    found = re.search(r"\[alice\].*?inbound_auth/password = (\S+)", endpoints, re.S)
    assert found, "alice's generated password not found"
    return found.group(1)


def itsp_requests(itsp: Container) -> list[dict]:
    done = itsp.run("cat", "/tmp/itsp/requests.jsonl")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def form(record: dict) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(base64.b64decode(record["body"]).decode(), keep_blank_values=True))


def phone_sends(pbx: Container, ua: Container, network: Network, to: str, text: str) -> None:
    """alice's phone sends a SIP MESSAGE (digest-authenticated) to `to`."""
    scenario = (HERE / "send.xml").read_text().replace("@USER@", "alice").replace("@BODY@", text)
    name = f"/tmp/send-{uuid.uuid4().hex[:6]}.xml"
    subprocess.run(
        ["docker", "exec", "-i", ua.name, "sh", "-c", f"cat > {name}"], input=scenario.encode(), check=True
    )
    done = ua.run(
        "sipp", "-sf", name, "-t", "t1", "-s", to, "-au", "alice", "-ap", alice_password(pbx),
        "-m", "1", "-nostdin", "-timeout", "20", f"{network.address4(PBX)}:5060",
    )  # fmt: skip
    assert done.returncode == 0, f"sipp could not send the text: {done.stdout}{done.stderr}"


def itsp_posts(
    itsp: Container, pbx_addr: str, text: str, sid: str, forge: str = "", via: Container | None = None
) -> str:
    """The ITSP (or `via`, another host) posts a Twilio-signed webhook carrying `text`; returns the status."""
    host = via or itsp
    name = f"/tmp/text-{uuid.uuid4().hex[:6]}.txt"
    subprocess.run(
        ["docker", "exec", "-i", host.name, "sh", "-c", f"cat > {name}"], input=text.encode(), check=True
    )
    args = [f"http://{pbx_addr}:8080/sms", TOKEN, ALICE, "+15551234567", name, sid]
    done = host.run("python3", "/sipp/itsp.py", "post", *args, *([forge] if forge else []))
    return done.stdout.split()[0] if done.stdout else done.stderr


def long_text() -> str:
    line = 'Привет 😀 «WebSMS» ${EXTEN} \\ "quoted", a; b\n'
    text = (line * 80)[:1599] + "!"
    assert len(text) == 1600
    return text


# --- tests -----------------------------------------------------------------------------------------
def test_phone_text_to_outside_number_reaches_the_itsp(
    pbx: Container, itsp: Container, ua: Container, network: Network
) -> None:
    text = "Hi from alice 😀\nsecond line, «quotes» & 100%"
    before = len(itsp_requests(itsp))
    phone_sends(pbx, ua, network, OUTSIDE, text)
    wait_for("the ITSP to get the SMS", lambda: len(itsp_requests(itsp)) > before, 20)
    record = itsp_requests(itsp)[before]
    assert record["method"] == "POST"
    assert record["path"] == "/2010-04-01/Accounts/AC0001/Messages.json"
    assert (
        record["headers"]["Authorization"] == "Basic " + base64.b64encode(f"AC0001:{TOKEN}".encode()).decode()
    )
    assert record["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    fields = form(record)
    assert fields["To"] == OUTSIDE
    assert fields["From"] == ALICE
    # sipp writes the phone's line breaks as CRLF; WebSMS passes the body on unchanged.
    assert fields["Body"] == text.replace("\n", "\r\n")
    wait_for("the dialplan to log SENT", lambda: f"SMS from {ALICE} to {OUTSIDE}: SENT" in pbx.logs(), 10)


def test_itsp_down_then_up_delivers_the_queued_sms_once(
    pbx: Container, itsp: Container, ua: Container, network: Network
) -> None:
    text = f"queued while the ITSP is down {uuid.uuid4().hex[:8]}"
    itsp.exec("touch", "/tmp/itsp/down")
    try:
        phone_sends(pbx, ua, network, OUTSIDE, text)
        wait_for(
            "the ITSP to refuse the SMS with 503",
            lambda: any(r["answered"] == 503 and form(r).get("Body") == text for r in itsp_requests(itsp)),
            20,
        )
        wait_for("the dialplan to log QUEUED", lambda: f"to {OUTSIDE}: QUEUED" in pbx.logs(), 10)
        assert pbx.exec("ls", "/var/spool/asterisk/websms/outgoing").strip(), "nothing queued on disk"
    finally:
        itsp.exec("rm", "-f", "/tmp/itsp/down")
    wait_for(
        "the queued SMS to be delivered",
        lambda: any(r["answered"] == 201 and form(r).get("Body") == text for r in itsp_requests(itsp)),
        30,
    )
    wait_for(
        "the queue to empty", lambda: not pbx.exec("ls", "/var/spool/asterisk/websms/outgoing").strip(), 10
    )
    delivered = [r for r in itsp_requests(itsp) if r["answered"] == 201 and form(r).get("Body") == text]
    assert len(delivered) == 1
    assert "SENT after" in pbx.logs()


def test_text_too_long_for_asterisk_is_bounced_not_cut(
    pbx: Container, itsp: Container, ua: Container, alice: Phone, network: Network
) -> None:
    """Asterisk's MESSAGE(body) returns at most 4095 bytes: a longer text fails and the sender is told."""
    text = f"{uuid.uuid4().hex[:8]} " + "x" * 5000
    before, posts = len(alice.received()), len(itsp_requests(itsp))
    phone_sends(pbx, ua, network, OUTSIDE, text)
    wait_for("the dialplan to log FAILED", lambda: f"to {OUTSIDE}: FAILED" in pbx.logs(), 20)
    assert "too long for Asterisk" in pbx.logs()
    wait_for("the bounce to reach alice", lambda: len(alice.received()) > before, 20)
    assert alice.received()[before].startswith(b"Not delivered: " + OUTSIDE.encode())
    assert len(itsp_requests(itsp)) == posts, "a cut or empty text reached the ITSP"


def test_webhook_reaches_the_phone_byte_identical_and_duplicates_once(
    pbx: Container, itsp: Container, alice: Phone, network: Network
) -> None:
    text = long_text()
    before = len(alice.received())
    assert itsp_posts(itsp, network.address4(PBX), text, "SM-long-1") == "200"
    wait_for("the phone to get the text", lambda: len(alice.received()) > before, 20)
    assert alice.received()[before] == text.encode()
    # The provider retries the same message: acknowledged, not delivered again. A later text arriving
    # alone shows the duplicate was not queued before it.
    assert itsp_posts(itsp, network.address4(PBX), text, "SM-long-1") == "200"
    assert itsp_posts(itsp, network.address4(PBX), "next one", "SM-next-1") == "200"
    wait_for("the next text", lambda: len(alice.received()) > before + 1, 20)
    assert alice.received()[before + 1 :] == [b"next one"]


def waiting_calls(pbx: Container) -> list[str]:
    listing = pbx.run("sh", "-c", "ls /var/spool/asterisk/outgoing/websms-*.call 2>/dev/null").stdout
    return listing.split()


def delivered_after_asterisk_restarts(pbx: Container, alice: Phone, text: str) -> None:
    """Asterisk starts again with the text's call file waiting in its spool: the phone gets the text.

    The first attempt comes as Asterisk starts, before the phone has registered again: it is not
    answered, and Asterisk keeps the call file to retry after RetryTime (5 minutes). Once the phone is
    back, the test brings that retry forward (rewrites the call file, as if RetryTime had passed).
    """
    (call,) = waiting_calls(pbx)
    pbx.exec("sv", "start", "/etc/service/asterisk")
    pbx.wait_booted()
    # Not answered (no phone): Asterisk keeps the call file for the next try instead of dropping it.
    wait_for(
        "Asterisk's first, unanswered attempt",
        lambda: "EndRetry" in pbx.run("cat", call).stdout,
        30,
    )
    assert "MaxRetries: 48" in pbx.exec("cat", call)
    alice.register()
    tmp = "/var/spool/asterisk/websms/tmp/retry.call"
    pbx.exec("sh", "-c", f"cp -p {call} {tmp} && touch {tmp} && mv {tmp} {call}")
    wait_for("the phone to get the text", lambda: text.encode() in alice.received(), 30)
    assert alice.received().count(text.encode()) == 1
    wait_for("the call file to be consumed", lambda: not waiting_calls(pbx), 10)


def test_text_survives_websmsd_killed_right_after_its_2xx(
    pbx: Container, itsp: Container, alice: Phone, network: Network
) -> None:
    """Asterisk is stopped first so that the text can only be on disk when websmsd dies."""
    text = f"acknowledged then killed {uuid.uuid4().hex[:8]} 🚀\nline two «ok»"
    alice.hang_up()
    pbx.exec("sv", "-w", "30", "stop", "/etc/service/asterisk")
    try:
        status = itsp_posts(itsp, network.address4(PBX), text, f"SM-kill-{uuid.uuid4().hex[:6]}")
        pbx.exec("sh", "-c", "kill -9 $(cat /etc/service/websmsd/supervise/pid)")
        assert status == "200"
        assert len(waiting_calls(pbx)) == 1, "no call file waiting in Asterisk's spool"
    finally:
        if not waiting_calls(pbx):
            pbx.exec("sv", "start", "/etc/service/asterisk")
    delivered_after_asterisk_restarts(pbx, alice, text)
    wait_for(
        "runit to restart websmsd",
        lambda: pbx.run("sv", "status", "/etc/service/websmsd").stdout.startswith("run"),
    )


def test_forged_signature_and_foreign_address_are_refused(
    pbx: Container, itsp: Container, alice: Phone, ua: Container, network: Network
) -> None:
    before = len(alice.received())
    assert (
        itsp_posts(itsp, network.address4(PBX), "forged", "SM-forged", forge="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        == "403"
    )
    # Correctly signed, but from a host outside remt_addr.
    assert itsp_posts(itsp, network.address4(PBX), "foreign", "SM-foreign", via=ua) == "403"
    assert itsp_posts(itsp, network.address4(PBX), "genuine", "SM-genuine") == "200"
    wait_for("the genuine text", lambda: len(alice.received()) > before, 20)
    assert alice.received()[before:] == [b"genuine"]
    logs = pbx.logs()
    assert "bad or missing twilio signature" in logs
    assert f"address not allowed ({network.address4(UA)} /sms)" in logs


def test_text_waits_on_disk_while_asterisk_is_down(
    pbx: Container, itsp: Container, alice: Phone, network: Network
) -> None:
    text = f"sent while Asterisk was down {uuid.uuid4().hex[:8]}\nЖЖЖ 😀"
    alice.hang_up()
    pbx.exec("sv", "-w", "30", "stop", "/etc/service/asterisk")
    try:
        assert itsp_posts(itsp, network.address4(PBX), text, f"SM-down-{uuid.uuid4().hex[:6]}") == "200"
        assert len(waiting_calls(pbx)) == 1, "no call file waiting in Asterisk's spool"
    finally:
        if not waiting_calls(pbx):
            pbx.exec("sv", "start", "/etc/service/asterisk")
    delivered_after_asterisk_restarts(pbx, alice, text)
