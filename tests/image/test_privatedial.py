"""PrivateDial end to end: real Asterisk, real phones (baresip), sipp as caller and as ITSP, real SMTP.

One PBX container, one "phones" peer (three baresip softphones: alice over TCP, bob's two devices over
UDP and TCP; sipp for scripted calls and texts) and one "itsp" peer (sipp as the provider, aiosmtpd as the
mail server) share the module's network, so every test reuses the same booted containers.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from tests.image.docker import Container, Network, docker, wait_for

pytestmark = pytest.mark.image
ROOT = Path(__file__).resolve().parents[2]
SIPP = ROOT / "tests/sipp"

ALICE, BOB, CAROL, DAVE = "+12025550101", "+12025550102", "+12025550103", "+12025550104"
ERIN = "+12025550105"
PASSWORD = {
    "alice": "Alice-Test-Pass-2026",
    "bob": "Bob-Test-Pass-2026",
    "carol": "Carol-Test-Pass-2026",
    "erin": "Erin-Test-Pass-2026",
}
TRUNK_ACCOUNT, TRUNK_SECRET = "5550100", "Itsp-Trunk-Secret-2026"
SMTP_PORT = 8025
PBX_HOST, PHONES_HOST, ITSP_HOST = 10, 20, 30

ENDPOINTS = f"""\
[alice](w_term_io)
hint_exten = {ALICE}
endpoint/callerid = Alice <{ALICE}>
inbound_auth/username = alice
inbound_auth/password = {PASSWORD["alice"]}

[bob](w_term_io)
hint_exten = {BOB}
endpoint/callerid = Bob <{BOB}>
inbound_auth/username = bob
inbound_auth/password = {PASSWORD["bob"]}

; never registered: calls go to voicemail, mailed to carol@example.test
[carol](w_term_io)
hint_exten = {CAROL}
endpoint/callerid = Carol <{CAROL}>
inbound_auth/username = carol
inbound_auth/password = {PASSWORD["carol"]}
endpoint/mailboxes = carol@example.test

; never registered; the test mail server refuses its mailbox
[dave](w_term_io)
hint_exten = {DAVE}
endpoint/callerid = Dave <{DAVE}>
inbound_auth/username = dave
inbound_auth/password = Dave-Test-Pass-2026
endpoint/mailboxes = refused@example.test

; registered by a device that is gone at once (it never answers the PBX's OPTIONS)
[erin](w_term_io)
hint_exten = {ERIN}
endpoint/callerid = Erin <{ERIN}>
inbound_auth/username = erin
inbound_auth/password = {PASSWORD["erin"]}

[itsp](w_trunk)
remote_hosts = {{itsp}}:5060
; the test ITSP (sipp) takes calls, but no registrations and no OPTIONS
; (qualify would mark it unreachable, and calls to it would fail with 480)
sends_registrations = no
aor/qualify_frequency = 0
outbound_auth/username = {TRUNK_ACCOUNT}
outbound_auth/password = {TRUNK_SECRET}
endpoint/from_user = {TRUNK_ACCOUNT}
"""

# aiosmtpd keeping each mail as a file; one mailbox is refused, as a real server refuses unknown users.
SMTP_SERVER = f"""\
import pathlib, threading, time
from aiosmtpd.controller import Controller

class Keep:
    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("refused@"):
            return "550 5.1.1 <" + address + ">: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        out = pathlib.Path("/tmp/mail")
        out.mkdir(exist_ok=True)
        name = out / f"{{time.time_ns()}}.eml"
        head = f"X-Envelope-From: {{envelope.mail_from}}\\r\\n"
        head += f"X-Envelope-To: {{','.join(envelope.rcpt_tos)}}\\r\\n"
        name.write_bytes(head.encode() + envelope.original_content)
        return "250 2.0.0 kept"

Controller(Keep(), hostname="0.0.0.0", port={SMTP_PORT}).start()
threading.Event().wait()
"""

PHONE_CONFIG = """\
poll_method epoll
sip_listen 0.0.0.0:{port}
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{ctrl}
audio_source aufile,/tmp/tone.wav
audio_player aufile,/tmp/{name}/heard.wav
audio_alert aufile,/dev/null
"""

# name: (user, SIP port, control port, transport, answer mode)
PHONES = {
    "alice": ("alice", 5070, 4440, "tcp", "auto"),
    "bob1": ("bob", 5071, 4441, "udp", "auto"),
    "bob2": ("bob", 5072, 4442, "tcp", "manual"),
}

TONE = """\
import math, struct, wave
with wave.open("/tmp/tone.wav", "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                           for i in range(8000 * 120)))
"""

LOUDNESS = """\
import array, math, sys, wave
with wave.open(sys.argv[1]) as w:
    samples = array.array("h", w.readframes(w.getnframes()))
print(len(samples), int(math.sqrt(sum(x * x for x in samples) / len(samples))) if samples else 0)
"""

CONTROL = """\
import json, socket, sys
data = json.dumps({"command": sys.argv[2], "params": " ".join(sys.argv[3:]), "token": "t"}).encode()
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    s.sendall(b"%d:%s," % (len(data), data))
    s.settimeout(2)
    try:
        print(s.recv(65536).decode(errors="replace"))
    except TimeoutError:
        pass
"""


def docker_bytes(c: Container, path: str) -> bytes:
    return subprocess.run(["docker", "exec", c.name, "cat", path], capture_output=True, check=True).stdout


def write(container: Container, path: str, text: str) -> None:
    docker("exec", "-i", container.name, "sh", "-c", f"cat > {shlex.quote(path)}", input_text=text)


@pytest.fixture(scope="module")
def pbx(base_image: str, network: Network) -> Iterator[Container]:
    # SYSLOG_LEVEL=6: notices too, e.g. minivm-send's line for a mail sent
    c = Container(
        base_image,
        options=["--network", network.name, "--ip", network.address4(PBX_HOST), "-e", "SYSLOG_LEVEL=6"],
    )
    c.start()
    try:
        c.wait_booted()
        write(c, "/etc/asterisk/pjsip_endpoint.conf", ENDPOINTS.format(itsp=network.address4(ITSP_HOST)))
        c.exec("sed", "-i", "s/^DP_TRUNK =.*/DP_TRUNK = itsp/", "/etc/asterisk/extensions_local.conf")
        mailcmd = f"mailcmd = minivm-send -H {network.address4(ITSP_HOST)}:{SMTP_PORT} -f bounces@pbx.test"
        c.exec("sed", "-i", f"s/^mailcmd = .*/{mailcmd}/", "/etc/asterisk/minivm.conf")
        for command in ("module reload res_pjsip.so", "dialplan reload", "module reload app_minivm.so"):
            c.asterisk(command)
        wait_for("the test users", lambda: "dave" in c.asterisk("pjsip show endpoints"), timeout=20)
        yield c
    finally:
        c.remove()


@pytest.fixture(scope="module")
def itsp(peer_image: str, network: Network) -> Iterator[Container]:
    c = Container(
        peer_image,
        options=["--network", network.name, "--ip", network.address4(ITSP_HOST), "-v", f"{SIPP}:/sipp:ro"],
        command=["sleep", "infinity"],
    )
    c.start()
    try:
        write(c, "/tmp/smtp.py", SMTP_SERVER)
        docker("exec", "-d", c.name, "python3", "/tmp/smtp.py")
        yield c
    finally:
        c.remove()


@pytest.fixture(scope="module")
def phones(peer_image: str, network: Network, pbx: Container) -> Iterator[Container]:
    c = Container(
        peer_image,
        options=["--network", network.name, "--ip", network.address4(PHONES_HOST), "-v", f"{SIPP}:/sipp:ro"],
        command=["sleep", "infinity"],
    )
    c.start()
    try:
        write(c, "/tmp/tone.py", TONE)
        write(c, "/tmp/loudness.py", LOUDNESS)
        write(c, "/tmp/control.py", CONTROL)
        c.exec("python3", "/tmp/tone.py")
        server = network.address4(PBX_HOST)
        for name, (user, port, ctrl, transport, answer) in PHONES.items():
            c.exec("mkdir", "-p", f"/tmp/{name}")
            write(c, f"/tmp/{name}/config", PHONE_CONFIG.format(port=port, ctrl=ctrl, name=name))
            account = f"<sip:{user}@{server};transport={transport}>;auth_pass={PASSWORD[user]}"
            write(c, f"/tmp/{name}/accounts", f"{account};answermode={answer};regint=600\n")
            # -s: the SIP trace shows each MESSAGE exactly as it arrived
            docker("exec", "-d", c.name, "sh", "-c", f"baresip -s -f /tmp/{name} > /tmp/{name}/out.txt 2>&1")
        yield c
    finally:
        c.remove()


def contacts(pbx: Container) -> list[str]:
    return re.findall(r"^\s+Contact:\s+(\S+)", pbx.asterisk("pjsip show contacts"), re.M)


@pytest.fixture(scope="module")
def registered(pbx: Container, phones: Container) -> Container:
    def all_in() -> bool:
        found = contacts(pbx)
        return (
            sum(c.startswith("alice/") for c in found) == 1 and sum(c.startswith("bob/") for c in found) == 2
        )

    wait_for("alice's phone and bob's two phones to register", all_in, timeout=30)
    return phones


def phone_trace(phones: Container, name: str) -> bytes:
    """The phone's output as bytes: CR LF and every byte of a text exactly as received."""
    return docker_bytes(phones, f"/tmp/{name}/out.txt")


def phone_log(phones: Container, name: str) -> str:
    return phone_trace(phones, name).decode(errors="replace")


def control(phones: Container, name: str, command: str, *params: str) -> None:
    phones.exec("python3", "/tmp/control.py", str(PHONES[name][2]), command, *params)


def active_calls(pbx: Container) -> int:
    m = re.search(r"(\d+) active call", pbx.asterisk("core show channels count"))
    return int(m.group(1)) if m else -1


def sipp(peer: Container, scenario: str, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Run sipp once in `peer`; returns its exit status and the messages it sent and received."""
    log = f"/tmp/sipp-{time.monotonic_ns()}.log"
    done = peer.run(
        "sipp", "-sf", f"/sipp/{scenario}", *args, "-timeout", f"{int(timeout)}s", "-timeout_error",
        "-trace_msg", "-message_file", log, "-nostdin", timeout=timeout + 15,
    )  # fmt: skip
    return done.returncode, peer.exec("sh", "-c", f"cat {log} 2>/dev/null || true")


def received_messages(raw: bytes) -> list[tuple[str, bytes]]:
    """(From header, body bytes) of every MESSAGE request in a baresip SIP trace, cut by Content-Length."""
    found = []
    for m in re.finditer(rb"\nMESSAGE sip:[^\n]*\n", raw):
        head_end = raw.index(b"\r\n\r\n", m.end())
        head = raw[m.end() : head_end].decode(errors="replace")
        length = int(re.search(r"^Content-Length:\s*(\d+)", head, re.M | re.I).group(1))
        sender = re.search(r"^From:\s*(.*?)\r?$", head, re.M).group(1)
        found.append((sender, raw[head_end + 4 : head_end + 4 + length]))
    return found


def loudness(phones: Container, name: str) -> tuple[int, int]:
    samples, rms = phones.exec("python3", "/tmp/loudness.py", f"/tmp/{name}/heard.wav").split()
    return int(samples), int(rms)


# --- registrations and calls between users --------------------------------------------------------------


def test_users_register_several_devices_over_udp_and_tcp(pbx: Container, registered: Container) -> None:
    def registered_uris(user: str) -> list[str]:
        return re.findall(r"^\s*contact\s+:\s+(\S+)", pbx.asterisk(f"pjsip show aor {user}"), re.M)

    [alice] = registered_uris("alice")
    bob = registered_uris("bob")
    assert len(bob) == 2
    assert alice.endswith(";transport=TCP")
    # bob's two devices: one over UDP (the default, no transport parameter), one over TCP
    assert sorted(uri.endswith(";transport=TCP") for uri in bob) == [False, True]


def test_a_call_rings_all_devices_and_audio_flows_both_ways(pbx: Container, registered: Container) -> None:
    phones = registered
    control(phones, "alice", "dial", f"sip:{BOB}@{address(pbx)}")
    wait_for("bob's first phone to answer", lambda: "Call established" in phone_log(phones, "bob1"), 20)
    # Both devices were offered the call: the manual one rang, and stopped ringing when the other answered.
    assert "Incoming call from: Alice" in phone_log(phones, "bob2")
    wait_for("bob's second phone to stop ringing", lambda: "session closed" in phone_log(phones, "bob2"), 10)
    time.sleep(3)  # audio for three seconds: the only fixed wait, it is the length of the conversation
    stats = pbx.asterisk("pjsip show channelstats")
    rows = re.findall(r"^\s*\S+\s+(alice|bob)-\w+\s+\S+\s+\S+\s+(\d+)\s+\d+\s+\d+\s+\S+\s+(\d+)", stats, re.M)
    assert {who for who, _, _ in rows} == {"alice", "bob"}, stats
    for who, rx, tx in rows:
        assert int(rx) > 100 and int(tx) > 100, f"{who}: rx {rx} tx {tx}\n{stats}"
    control(phones, "alice", "hangup")
    wait_for("a clean hangup", lambda: active_calls(pbx) == 0, 10)
    assert "terminated" in phone_log(phones, "alice")
    assert "terminated" in phone_log(phones, "bob1")  # bob's phone got the BYE
    # Each side heard the other's 440 Hz tone, not silence: the audio really crossed the PBX both ways.
    for name in ("alice", "bob1"):
        samples, rms = loudness(phones, name)
        assert samples > 8000 and rms > 1000, (name, samples, rms)


def address(c: Container) -> str:
    return next(iter(c.inspect()["NetworkSettings"]["Networks"].values()))["IPAddress"]


def test_an_originated_call_connects_the_answering_user_to_the_number(
    pbx: Container, registered: Container
) -> None:
    phones = registered
    rings = phone_log(phones, "bob2").count("Incoming call from")
    # click-to-call: ring alice's phone; once it answers, dp_entry_answer calls bob's number
    pbx.asterisk(f"channel originate PJSIP/alice extension {BOB}@dp_entry_answer")
    wait_for(
        "bob's phones to ring", lambda: phone_log(phones, "bob2").count("Incoming call from") > rings, 15
    )
    wait_for("alice and bob connected", lambda: active_calls(pbx) == 1 and bridged(pbx), 15)
    pbx.asterisk("channel request hangup all")
    wait_for("the call to end", lambda: active_calls(pbx) == 0, 10)


def bridged(pbx: Container) -> bool:
    channels = pbx.asterisk("core show channels concise")
    return len(re.findall(r"^PJSIP/(?:alice|bob)-\w+!.*!Up!", channels, re.M)) == 2


# --- texts ----------------------------------------------------------------------------------------------


TEXT = (
    "Hi Bob,\nthis is line two.\n"
    "\tIndented line three: caf\u00e9, \u65e5\u672c, \U0001f389\U0001f44d\U0001f3fd"
)


def send_text(phones: Container, pbx: Container, user: str, number: str, body: str) -> tuple[int, str]:
    return sipp(
        phones, "privatedial_message.xml", "-s", number, "-au", user, "-ap", PASSWORD[user], "-key", "user",
        user, "-key", "body", body, "-m", "1", "-p", "5090", address(pbx),
    )  # fmt: skip


def test_a_text_reaches_all_devices_byte_identical(pbx: Container, registered: Container) -> None:
    phones = registered
    rc, trace = send_text(phones, pbx, "alice", BOB, TEXT)
    assert rc == 0, trace
    assert "SIP/2.0 202 Accepted" in trace
    expected = TEXT.encode()

    def arrived(name: str) -> bool:
        return any(body == expected for _, body in received_messages(phone_trace(phones, name)))

    for name in ("bob1", "bob2"):
        wait_for(f"the text on {name}", lambda n=name: arrived(n), 10)
        texts = received_messages(phone_trace(phones, name))
        senders = [sender for sender, body in texts if body == expected]
        assert f"sip:{ALICE}@" in senders[-1]  # the sender shows as alice's number: a reply reaches her


def test_a_text_to_an_offline_user_is_bounced_to_the_sender(pbx: Container, registered: Container) -> None:
    phones = registered
    rc, trace = send_text(phones, pbx, "alice", CAROL, "Are you there?")
    assert rc == 0, trace

    def bounced() -> list[tuple[str, bytes]]:
        texts = received_messages(phone_trace(phones, "alice"))
        return [(s, b) for s, b in texts if b.startswith(b"Not delivered")]

    wait_for("the notice of non-delivery on alice's phone", lambda: bool(bounced()), 10)
    sender, body = bounced()[-1]
    assert f"sip:{CAROL}@" in sender
    assert CAROL.encode() in body and b"offline" in body


# --- voicemail by email ---------------------------------------------------------------------------------


CALL = "privatedial_call.xml"
# MinivmGreet's prompts and the beep take about 10 s; the caller speaks after them.
VOICEMAIL_GREETING_MS = 12000


def mails(itsp: Container) -> list[bytes]:
    names = itsp.exec("sh", "-c", "ls /tmp/mail 2>/dev/null || true").split()
    return [docker_bytes(itsp, f"/tmp/mail/{name}") for name in sorted(names)]


def call(
    phones: Container,
    pbx: Container,
    user: str,
    number: str,
    hold_ms: int,
    scenario: str = "privatedial_call.xml",
) -> tuple[int, str]:
    return sipp(
        phones, scenario, "-s", number, "-au", user, "-ap", PASSWORD[user], "-key", "user", user,
        "-d", str(hold_ms), "-m", "1", "-p", "5090", "-mi", address(phones), address(pbx),
    )  # fmt: skip


def test_an_unanswered_call_leaves_voicemail_mailed_with_the_recording(
    pbx: Container, registered: Container, itsp: Container
) -> None:
    before = len(mails(itsp))
    rc, trace = call(registered, pbx, "alice", CAROL, VOICEMAIL_GREETING_MS, "privatedial_voicemail.xml")
    assert rc == 0, trace
    wait_for("the voicemail mail", lambda: len(mails(itsp)) > before, 30)
    mail = message_from_bytes(mails(itsp)[-1], policy=policy.default)
    assert mail["X-Envelope-From"] == "bounces@pbx.test"
    assert mail["X-Envelope-To"] == "carol@example.test"
    assert ALICE in str(mail["Subject"])
    [attachment] = list(mail.iter_attachments())
    audio = attachment.get_content()
    assert attachment.get_filename().endswith(".wav")
    assert audio[:4] == b"RIFF" and len(audio) > 8000  # more than half a second of 8 kHz 16-bit audio
    wait_for("minivm-send's log line", lambda: "voicemail mail sent to carol@example.test" in pbx.logs(), 10)


def test_a_refused_voicemail_mail_is_logged_with_the_reason(
    pbx: Container, registered: Container, itsp: Container
) -> None:
    rc, trace = call(registered, pbx, "alice", DAVE, VOICEMAIL_GREETING_MS, "privatedial_voicemail.xml")
    assert rc == 0, trace
    wait_for("the failure in docker logs", lambda: "refused@example.test NOT sent" in pbx.logs(), 30)
    line = next(x for x in pbx.logs().splitlines() if "refused@example.test NOT sent" in x)
    assert "ERROR" in line and "550 5.1.1" in line and "mailbox unavailable" in line


def test_a_mail_kept_after_a_temporary_failure_is_sent_by_the_retry(
    pbx: Container, itsp: Container, network: Network
) -> None:
    before = len(mails(itsp))
    mail = "From: voicemail@pbx.test\nTo: kept@example.test\nSubject: kept voicemail\n\nhello\n"
    # As MiniVM runs it (user asterisk), against a port where no mail server listens: a temporary failure.
    down = f"{network.address4(ITSP_HOST)}:{SMTP_PORT + 1}"
    done = subprocess.run(
        ["docker", "exec", "-i", "-u", "asterisk", pbx.name, "minivm-send", "-H", down],
        input=mail.encode(), capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "kept in /var/spool/asterisk/minivm-send/" in done.stderr.decode()
    kept = pbx.exec("sh", "-c", "ls /var/spool/asterisk/minivm-send/*.eml").split()
    assert len(kept) == 1
    # The retry takes minivm.conf's mailcmd (the test mail server, -f bounces@pbx.test).
    out = docker("exec", "-u", "asterisk", pbx.name, "minivm-send", "--retry-spool", "-e")
    assert "spooled voicemail mail sent to kept@example.test" in out
    wait_for("the kept mail", lambda: len(mails(itsp)) > before, 10)
    sent = message_from_bytes(mails(itsp)[-1], policy=policy.default)
    assert sent["X-Envelope-From"] == "bounces@pbx.test" and sent["Subject"] == "kept voicemail"
    assert pbx.exec("sh", "-c", "ls /var/spool/asterisk/minivm-send/ | grep -c eml || true").strip() == "0"


# --- the trunk ------------------------------------------------------------------------------------------


def test_outbound_calls_leave_on_the_trunk_in_e164_with_digest_auth(
    pbx: Container, registered: Container, itsp: Container
) -> None:
    uas = f"/tmp/itsp-{time.monotonic_ns()}.log"
    docker(
        "exec", "-d", itsp.name, "sipp", "-sf", "/sipp/privatedial_itsp_uas.xml", "-key", "account",
        TRUNK_ACCOUNT, "-key", "secret", TRUNK_SECRET, "-m", "2", "-p", "5060", "-timeout", "60s",
        "-trace_msg", "-message_file", uas, "-nostdin",
    )  # fmt: skip
    wait_for("the ITSP to listen", lambda: ":5060" in itsp.exec("ss", "-lun"), 10)
    # An international number as dialled, and a national one (trunk prefix 1) that must become +1...
    for dialled in ("+442079460123", "12125550199"):
        rc, trace = call(registered, pbx, "alice", dialled, hold_ms=500)
        assert rc == 0, trace
    wait_for("the ITSP's log", lambda: "BYE sip:" in itsp.exec("sh", "-c", f"cat {uas} || true"), 10)
    seen = itsp.exec("cat", uas)
    invites = re.findall(r"^INVITE sip:([^@]+)@", seen, re.M)
    assert invites[::2] == ["+442079460123", "+12125550199"]
    assert re.search(rf'Authorization: Digest username="{TRUNK_ACCOUNT}"', seen)
    assert "SIP/2.0 403" not in seen  # the ITSP checked the digest and accepted it
    assert re.search(rf"^From: .*<sip:{TRUNK_ACCOUNT}@", seen, re.M)


def test_an_incoming_call_from_the_itsp_rings_the_users_devices(
    pbx: Container, registered: Container, itsp: Container
) -> None:
    phones = registered
    rings = phone_log(phones, "bob2").count("Incoming call from")
    # The provider sends the DID; it is recognised by its address, so no password is asked.
    rc, trace = sipp(
        itsp, "privatedial_call.xml", "-s", BOB, "-key", "user", "+14155550123", "-d", "1000", "-m", "1",
        "-p", "5060", "-mi", address(itsp), address(pbx),
    )  # fmt: skip
    assert rc == 0, trace
    assert "401 Unauthorized" not in trace
    wait_for(
        "bob's second phone to ring",
        lambda: phone_log(phones, "bob2").count("Incoming call from") > rings,
        10,
    )
    assert phone_log(phones, "bob2").count("Incoming call from") == rings + 1
    wait_for("the call to end", lambda: active_calls(pbx) == 0, 10)


def test_a_text_from_the_itsp_reaches_the_users_devices(
    pbx: Container, registered: Container, itsp: Container
) -> None:
    phones = registered
    body = "From the phone network: \u00e4\u00f6\u00fc \U0001f600"
    rc, trace = sipp(
        itsp, "privatedial_message.xml", "-s", BOB, "-key", "user", "+14155550123", "-key", "body", body,
        "-m", "1", "-p", "5060", address(pbx),
    )  # fmt: skip
    assert rc == 0, trace
    assert "401 Unauthorized" not in trace  # the provider is recognised by its address

    def arrived(name: str) -> list[str]:
        return [s for s, b in received_messages(phone_trace(phones, name)) if b == body.encode()]

    for name in ("bob1", "bob2"):
        wait_for(f"the provider's text on {name}", lambda n=name: bool(arrived(n)), 10)
        assert "sip:+14155550123@" in arrived(name)[-1]


def start_itsp_uas(itsp: Container, calls: int) -> str:
    """sipp as the provider (digest auth) for `calls` calls, in the background; returns its trace file."""
    wait_for("the ITSP's port to be free", lambda: ":5060 " not in itsp.exec("ss", "-lun"), 20)
    uas = f"/tmp/itsp-{time.monotonic_ns()}.log"
    docker(
        "exec", "-d", itsp.name, "sh", "-c",
        "echo $$ > /tmp/uas.pid && exec sipp -sf /sipp/privatedial_itsp_uas.xml "
        f"-key account {TRUNK_ACCOUNT} -key secret {TRUNK_SECRET} -m {calls} -p 5060 -timeout 60s "
        f"-trace_msg -message_file {uas} -nostdin",
    )  # fmt: skip
    wait_for("the ITSP to listen", lambda: ":5060" in itsp.exec("ss", "-lun"), 10)
    return uas


def test_emergency_numbers_leave_on_the_trunk_as_dialled(
    pbx: Container, registered: Container, itsp: Container
) -> None:
    uas = start_itsp_uas(itsp, 2)
    # 112 starts with the trunk prefix 1: as an ordinary number it would become +112.
    for dialled in ("911", "112"):
        rc, trace = call(registered, pbx, "alice", dialled, hold_ms=500)
        assert rc == 0, trace
    wait_for("both calls on the ITSP", lambda: itsp.exec("cat", uas).count("BYE sip:") >= 2, 10)
    invites = re.findall(r"^INVITE sip:([^@]+)@", itsp.exec("cat", uas), re.M)
    assert invites[::2] == ["911", "112"]
    wait_for("the calls to end", lambda: active_calls(pbx) == 0, 10)


def test_a_dial_string_with_other_channels_is_refused(
    pbx: Container, registered: Container, itsp: Container
) -> None:
    uas = start_itsp_uas(itsp, 1)
    try:
        # "&" would add channels to Dial(PJSIP/<number>@itsp): a local call and a second trunk call
        rc, trace = sipp(
            registered, "privatedial_call_refused.xml", "-s", "+1&Local/s%40dp_call_in&PJSIP/+2",
            "-au", "alice", "-ap", PASSWORD["alice"], "-key", "user", "alice", "-m", "1", "-p", "5090",
            address(pbx),
        )  # fmt: skip
        assert rc == 0, trace  # 404: unallocated number
        wait_for("the refusal in the log", lambda: "Refused dialled string" in pbx.logs(), 10)
        line = next(x for x in pbx.logs().splitlines() if "Refused dialled string" in x)
        assert "+1&Local/s@dp_call_in&PJSIP/+2" in line and ALICE in line
        assert active_calls(pbx) == 0
        assert "Local/" not in pbx.asterisk("core show channels")
        assert "INVITE" not in itsp.exec("sh", "-c", f"cat {uas} 2>/dev/null || true")  # nothing on the trunk
    finally:
        itsp.exec("sh", "-c", "kill $(cat /tmp/uas.pid) 2>/dev/null || true")


def test_a_text_to_a_registered_but_unreachable_device_is_bounced(
    pbx: Container, registered: Container
) -> None:
    phones = registered
    # erin's device registers and is gone: it never answers the PBX's qualify (OPTIONS)
    rc, trace = sipp(
        phones, "demo_register.xml", "-s", "erin", "-au", "erin", "-ap", PASSWORD["erin"], "-m", "1",
        "-p", "5093", address(pbx),
    )  # fmt: skip
    assert rc == 0, trace
    wait_for(
        "erin's device to be unreachable",
        lambda: re.search(
            r"^\s+Contact:\s+erin/\S+\s+\S+\s+Unavail", pbx.asterisk("pjsip show contacts"), re.M
        ),
        20,
    )
    rc, trace = send_text(phones, pbx, "alice", ERIN, "Still there?")
    assert rc == 0, trace

    def bounced() -> list[bytes]:
        texts = received_messages(phone_trace(phones, "alice"))
        return [b for s, b in texts if b.startswith(b"Not delivered") and f"sip:{ERIN}@" in s]

    # MessageSend took it (SUCCESS: queued), but an unreachable device does not count as a delivery
    wait_for("the notice of non-delivery on alice's phone", lambda: bool(bounced()), 10)
    assert b"offline" in bounced()[-1]


def websms_call_file(pbx: Container, number: str, sender: str, body: str) -> str:
    """An incoming SMS handed over as WebSMS does it: a call file whose Local channel enters
    dp_entry_websms_in; once that channel is answered, the call file's application logs `tag`."""
    tag = f"websms-test-{time.monotonic_ns()}"
    write(pbx, f"/var/spool/asterisk/{tag}.txt", body)
    write(
        pbx,
        f"/var/spool/asterisk/{tag}.call",
        f"Channel: Local/{number}@dp_entry_websms_in\nMaxRetries: 0\nRetryTime: 1\n"
        f"Setvar: WEBSMS_FROM={sender}\nSetvar: WEBSMS_BODYFILE=/var/spool/asterisk/{tag}.txt\n"
        f"Application: Log\nData: NOTICE,{tag} answered\n",
    )
    pbx.exec("chown", "asterisk:", f"/var/spool/asterisk/{tag}.call", f"/var/spool/asterisk/{tag}.txt")
    pbx.exec("mv", f"/var/spool/asterisk/{tag}.call", "/var/spool/asterisk/outgoing/")
    return tag


def test_an_sms_from_websms_is_answered_only_when_delivered(pbx: Container, registered: Container) -> None:
    phones = registered
    body = "SMS via WebSMS \u00e9\U0001f680"
    # A sender with characters that have no place in a SIP URI: only [A-Za-z0-9+._-] are kept.
    tag = websms_call_file(pbx, BOB, "+1 (415) 555<0199>", body)
    wait_for("the delivered SMS's channel to be answered", lambda: f"{tag} answered" in pbx.logs(), 15)
    hostname = pbx.inspect()["Config"]["Hostname"]

    def arrived(name: str) -> list[str]:
        return [s for s, b in received_messages(phone_trace(phones, name)) if b == body.encode()]

    for name in ("bob1", "bob2"):
        wait_for(f"the SMS on {name}", lambda n=name: bool(arrived(n)), 10)
        assert f"<sip:+14155550199@{hostname}>" in arrived(name)[-1]  # DP_DOMAIN empty: the host name

    # Carol has no device: the call file's call must fail unanswered, so that Asterisk would retry it.
    tag = websms_call_file(pbx, CAROL, "+14155550199", "for carol")
    wait_for(
        "the call file to give up",
        lambda: re.search(rf"Local/\{CAROL}@dp_entry_websms_in.*expired", pbx.logs()),
        15,
    )
    assert f"{tag} answered" not in pbx.logs()
    assert re.search(rf"to \{CAROL} not delivered: no device of carol", pbx.logs())


# --- unauthenticated sources ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["INVITE", "MESSAGE"])
def test_calls_and_texts_from_an_unauthenticated_source_are_rejected(
    pbx: Container, registered: Container, method: str
) -> None:
    phones = registered
    rings = phone_log(phones, "bob2").count("Incoming call from")
    texts = len(received_messages(phone_trace(phones, "bob2")))
    rejection = f"Request '{method}' from '<sip:mallory@"
    rejected = pbx.logs().count(rejection)
    for user in ("alice", "mallory"):  # a real user without the password, and an unknown one
        rc, trace = sipp(
            phones, f"privatedial_unauth_{method.lower()}.xml", "-s", BOB, "-key", "user", user,
            "-m", "1", "-p", "5091", address(pbx),
        )  # fmt: skip
        assert rc == 0, trace
        assert re.search(r"^SIP/2.0 (401|407|403) ", trace, re.M)
    # Asterisk logs the unknown sender once it has answered the last request: nothing follows after that.
    wait_for("Asterisk's rejection of mallory", lambda: pbx.logs().count(rejection) > rejected, 10)
    assert phone_log(phones, "bob2").count("Incoming call from") == rings
    assert len(received_messages(phone_trace(phones, "bob2"))) == texts


# --- password hygiene -----------------------------------------------------------------------------------


def test_weak_passwords_are_warned_about_at_start(base_image: str) -> None:
    script = (
        "pbx init true && sed -i 's/^inbound_auth\\/password = .*/inbound_auth\\/password = secret/' "
        "/etc/asterisk/pjsip_endpoint.conf && pbx init true"
    )
    out = docker("run", "--rm", "--entrypoint", "sh", base_image, "-c", f"({script}) 2>&1")
    assert "generated passwords" in out
    # Only the second start warns (the generated demo passwords are strong): once for alice, once for bob.
    warnings = [x for x in out.splitlines() if "weak SIP password" in x]
    assert len(warnings) == 2, out
    assert all("pjsip_endpoint.conf:" in x and "shorter than 10" in x for x in warnings)
    assert "secret" not in " ".join(warnings)
