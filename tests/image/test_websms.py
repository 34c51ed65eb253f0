"""WebSMS end to end: a real PBX, a real HTTP server as the ITSP, a real SIP UA (sipp) as alice's phone.

Containers (one network, module-scoped): the PBX; the ITSP (tests/image/websms/itsp.py on aiohttp,
answering like Twilio and posting Twilio-signed webhooks); the UA (sipp registered as alice over TCP,
answering every text with 200 OK and tracing what it receives). The UA's host is also "outside
remt_addr" for the access test.
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
    ua.exec(
        "sh",
        "-c",
        f"nohup sipp -sf /sipp/register.xml -oocsf /sipp/inbox.xml -t t1 -s alice -au alice "
        f"-ap '{alice_password(c)}' -m 1 -trace_msg -message_file /tmp/alice.log -nostdin "
        f"{network.address4(PBX)}:5060 >/dev/null 2>&1 &",
    )
    wait_for("alice to register", lambda: "alice/sip:alice@" in c.asterisk("pjsip show contacts"), 30)
    wait_for("websmsd to run", lambda: c.run("sv", "status", "/etc/service/websmsd").stdout.startswith("run"))
    return c


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


def received_texts(ua: Container) -> list[bytes]:
    """Bodies of every MESSAGE alice's phone received, byte for byte (sipp's trace)."""
    raw = subprocess.run(
        ["docker", "exec", ua.name, "cat", "/tmp/alice.log"], capture_output=True, check=False
    ).stdout
    texts = []
    for m in re.finditer(rb"received \[\d+\] bytes\s*:?\s*MESSAGE sip:[^\r]*\r\n(.*?)\r\n\r\n", raw, re.S):
        length = int(re.search(rb"Content-Length: *(\d+)", m.group(1)).group(1))  # type: ignore[union-attr]
        texts.append(raw[m.end() : m.end() + length])
    return texts


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


def test_webhook_reaches_the_phone_byte_identical_and_duplicates_once(
    pbx: Container, itsp: Container, ua: Container, network: Network
) -> None:
    text = long_text()
    before = len(received_texts(ua))
    assert itsp_posts(itsp, network.address4(PBX), text, "SM-long-1") == "200"
    wait_for("the phone to get the text", lambda: len(received_texts(ua)) > before, 20)
    assert received_texts(ua)[before] == text.encode()
    # The provider retries the same message: acknowledged, not delivered again. A later text arriving
    # alone shows the duplicate was not queued before it.
    assert itsp_posts(itsp, network.address4(PBX), text, "SM-long-1") == "200"
    assert itsp_posts(itsp, network.address4(PBX), "next one", "SM-next-1") == "200"
    wait_for("the next text", lambda: len(received_texts(ua)) > before + 1, 20)
    assert received_texts(ua)[before + 1 :] == [b"next one"]


def test_text_survives_websmsd_killed_right_after_its_2xx(
    pbx: Container, itsp: Container, ua: Container, network: Network
) -> None:
    before = len(received_texts(ua))
    text = f"acknowledged then killed {uuid.uuid4().hex[:8]} 🚀"
    status = itsp_posts(itsp, network.address4(PBX), text, f"SM-kill-{uuid.uuid4().hex[:6]}")
    pbx.exec("sh", "-c", "kill -9 $(cat /etc/service/websmsd/supervise/pid)")
    assert status == "200"
    wait_for("the phone to get the text", lambda: text.encode() in received_texts(ua)[before:], 20)
    wait_for(
        "runit to restart websmsd",
        lambda: pbx.run("sv", "status", "/etc/service/websmsd").stdout.startswith("run"),
    )


def test_forged_signature_and_foreign_address_are_refused(
    pbx: Container, itsp: Container, ua: Container, network: Network
) -> None:
    before = len(received_texts(ua))
    assert (
        itsp_posts(itsp, network.address4(PBX), "forged", "SM-forged", forge="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        == "403"
    )
    # Correctly signed, but from a host outside remt_addr.
    assert itsp_posts(itsp, network.address4(PBX), "foreign", "SM-foreign", via=ua) == "403"
    assert itsp_posts(itsp, network.address4(PBX), "genuine", "SM-genuine") == "200"
    wait_for("the genuine text", lambda: len(received_texts(ua)) > before, 20)
    assert received_texts(ua)[before:] == [b"genuine"]
    logs = pbx.logs()
    assert "bad or missing twilio signature" in logs
    assert f"address not allowed ({network.address4(UA)} /sms)" in logs


def test_text_waits_on_disk_while_asterisk_is_down(pbx: Container, itsp: Container, network: Network) -> None:
    """Runs last: it restarts Asterisk, which ends alice's TCP registration."""
    text = f"sent while Asterisk was down {uuid.uuid4().hex[:8]}"
    pbx.exec("sv", "-w", "30", "stop", "/etc/service/asterisk")
    try:
        assert itsp_posts(itsp, network.address4(PBX), text, f"SM-down-{uuid.uuid4().hex[:6]}") == "200"
        calls = pbx.exec("sh", "-c", "ls /var/spool/asterisk/outgoing/websms-*.call")
        assert calls.strip(), "no call file waiting in Asterisk's spool"
        pbx.exec("sh", "-c", "kill -9 $(cat /etc/service/websmsd/supervise/pid)")
    finally:
        pbx.exec("sv", "start", "/etc/service/asterisk")
    pbx.wait_booted()
    # The dialplan read the whole text from the spool once Asterisk was back.
    wait_for("Asterisk to pick the SMS up", lambda: f"MESSAGE(body)={text}" in pbx.logs(), 30)
    wait_for(
        "the call file to be consumed",
        lambda: not pbx.run("sh", "-c", "ls /var/spool/asterisk/outgoing/websms-*.call").stdout.strip(),
        10,
    )
