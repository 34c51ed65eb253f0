"""websms and websmsd over real HTTP on loopback: an aiohttp stand-in ITSP, the daemon's own app."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pbx.websms import config as wconfig
from pbx.websms import send, signatures
from pbx.websms.daemon import ConfigWatch, Daemon, make_app
from pbx.websms.outbound import Message
from pbx.websms.queue import Spool
from pbx.websms.send import submit
from tests.unit.test_websms_agi import FakeAsterisk


class ITSP:
    """An HTTP server on 127.0.0.1 answering with `status`; records each request's form."""

    def __init__(self) -> None:
        self.status = 201
        self.delay = 0.0
        self.answer: bytes | None = None
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow ITSP
        self.seen.append(
            {
                "path": request.path,
                "form": dict(await request.post()),
                "auth": request.headers.get("Authorization"),
            }
        )
        if self.answer is not None:
            return web.Response(body=self.answer, status=self.status, content_type="text/plain")
        return web.json_response({"status": "ok"}, status=self.status)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def itsp() -> Iterator[tuple[ITSP, int]]:
    import threading

    stub, port = ITSP(), free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stub.handle)
    # A short shutdown: a slow request still in flight is cancelled at teardown, not left pending for the
    # garbage collector to report after pytest has closed its output.
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield stub, port
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def write_conf(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "websms.conf"
    path.write_text(
        "[websms]\n"
        f"url_host = http://127.0.0.1:{port}\nurl_path = /send\nauth_user = u\nauth_secret = p\n"
        "retry_first = 1\nretry_max = 4\nretry_expire = 3600\ntimeout = 3\n"
        "[websmsd]\nurl_path = /sms\nkey_id = Sid\nresp_ack = <ok/>\nresp_type = text/xml\n" + extra
    )
    return path


MSG = Message("+15557654321", "+12025550101", "Hej 😀")


def test_submit_sent_refused_and_queued(itsp: tuple[ITSP, int], tmp_path: Path) -> None:
    stub, port = itsp
    cfg = wconfig.load(write_conf(tmp_path, port))
    spool = Spool(tmp_path / "spool")
    assert submit(cfg, spool, MSG, "", 3).status == "SENT"
    assert stub.seen[-1] == {
        "path": "/send",
        "form": {"To": MSG.to, "From": MSG.sender, "Body": MSG.body},
        "auth": "Basic dTpw",
    }
    stub.status = 400
    assert submit(cfg, spool, MSG, "", 3).status == "FAILED"
    stub.status = 503
    result = submit(cfg, spool, MSG, "", 3)
    assert (result.status, result.reason) == ("QUEUED", 'HTTP 503: {"status": "ok"}')
    (queued,) = spool.queued()
    assert (queued.to, queued.body, queued.attempts) == (MSG.to, MSG.body, 1)


def test_agi_queues_rather_than_waiting_for_a_slow_itsp(
    itsp: tuple[ITSP, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dialplan (one serial queue for every text in the PBX) waits for the AGI: 2 s at most."""
    stub, port = itsp
    stub.delay = 2.6  # slower than the AGI's budget, within the daemon's timeout of 3 s
    fake = FakeAsterisk({"WEBSMS_TO": MSG.to, "WEBSMS_FROM": MSG.sender}, MSG.body)
    monkeypatch.setattr("sys.stdin", fake)
    monkeypatch.setattr("sys.stdout", fake)
    spool = Spool(tmp_path / "spool")
    args = argparse.Namespace(config=write_conf(tmp_path, port), spool=spool.root)
    assert send.AGI_TIMEOUT <= 2.0
    assert send._run_agi(args) == 0
    assert 'SET VARIABLE WEBSMS_STATUS "QUEUED"' in fake.commands
    (queued,) = spool.queued()
    assert (queued.to, queued.sender, queued.body) == (MSG.to, MSG.sender, MSG.body)


def test_only_the_first_64_kib_of_the_itsp_answer_is_read(itsp: tuple[ITSP, int], tmp_path: Path) -> None:
    stub, port = itsp
    stub.answer = b"x" * (64 * 1024) + b"ACCEPTED"
    path = write_conf(tmp_path, port)
    path.write_text(path.read_text().replace("[websms]\n", "[websms]\nresp_check = /ACCEPTED/\n"))
    cfg = wconfig.load(path)
    result = submit(cfg, Spool(tmp_path / "spool"), MSG, "", 3)
    assert result.status == "FAILED" and "resp_check" in result.reason
    stub.answer = b"x" * 1000 + b"ACCEPTED"
    assert submit(cfg, Spool(tmp_path / "spool"), MSG, "", 3).status == "SENT"


def test_unreachable_itsp_queues(tmp_path: Path) -> None:
    cfg = wconfig.load(write_conf(tmp_path, free_port()))
    spool = Spool(tmp_path / "spool")
    result = submit(cfg, spool, MSG, "", 3)
    assert result.status == "QUEUED" and "127.0.0.1" in result.reason
    assert len(spool.queued()) == 1


def test_queue_retried_until_sent_then_removed(itsp: tuple[ITSP, int], tmp_path: Path) -> None:
    stub, port = itsp
    path = write_conf(tmp_path, port)
    spool = Spool(tmp_path / "spool")
    stub.status = 503
    submit(wconfig.load(path), spool, MSG, "", 3)
    daemon = Daemon(ConfigWatch(path), spool, tmp_path)
    (item,) = spool.queued()
    asyncio.run(daemon.retry_once(now=item.next_at + 0.1))
    (item,) = spool.queued()
    assert item.attempts == 2 and "503" in item.reason
    stub.status = 201
    asyncio.run(daemon.retry_once(now=item.next_at + 0.1))
    assert spool.queued() == []
    assert len(stub.seen) == 3


def test_malformed_queue_file_is_set_aside_and_the_queue_keeps_going(
    itsp: tuple[ITSP, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stub, port = itsp
    path = write_conf(tmp_path, port)
    spool = Spool(tmp_path / "spool")
    stub.status = 503
    submit(wconfig.load(path), spool, MSG, "", 3)
    bad = spool.outgoing / "0-bad.json"
    bad.write_text(
        '{"id": "0-bad", "index": "", "to": "+1555", "sender": "+1666", "body": "x", '
        '"created": "yesterday", "attempts": 1, "next_at": 0}'
    )
    stub.status = 201
    daemon = Daemon(ConfigWatch(path), spool, tmp_path)
    caplog.set_level(logging.ERROR, logger="pbx.websmsd")
    asyncio.run(daemon.retry_once(now=1e12))
    assert spool.queued() == []  # the good one was sent
    assert [r["form"]["Body"] for r in stub.seen] == [MSG.body, MSG.body]
    assert sorted(p.name for p in spool.outgoing.iterdir()) == ["0-bad.json.bad"]
    assert caplog.text.count("0-bad.json is malformed") == 1
    asyncio.run(daemon.retry_once(now=1e12))
    assert caplog.text.count("0-bad.json is malformed") == 1


def test_unexpected_error_on_one_item_sets_it_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_conf(tmp_path, free_port())
    spool = Spool(tmp_path / "spool")
    submit(wconfig.load(path), spool, MSG, "", 3)
    (item,) = spool.queued()

    async def broken(*_: object) -> None:
        raise TypeError("unsupported operand")

    monkeypatch.setattr("pbx.websms.daemon.deliver", broken)
    caplog.set_level(logging.ERROR, logger="pbx.websmsd")
    assert asyncio.run(Daemon(ConfigWatch(path), spool, tmp_path).retry_once(now=1e12)) == 1
    assert [p.name for p in spool.outgoing.iterdir()] == [f"{item.id}.json.bad"]
    assert "TypeError: unsupported operand" in caplog.text


def test_queue_gives_up_on_refusal(itsp: tuple[ITSP, int], tmp_path: Path) -> None:
    stub, port = itsp
    path = write_conf(tmp_path, port)
    spool = Spool(tmp_path / "spool")
    stub.status = 429
    submit(wconfig.load(path), spool, MSG, "", 3)
    stub.status = 401
    asyncio.run(Daemon(ConfigWatch(path), spool, tmp_path).retry_once(now=1e12))
    assert spool.queued() == []


async def post(
    daemon: Daemon, path: str, data: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    async with TestClient(TestServer(make_app(daemon))) as client:
        answer = await client.post(
            path,
            data=urlencode(data),
            headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        )
        return answer.status, await answer.text(), answer.headers.get("Content-Type", "")


def test_webhook_is_on_disk_before_the_2xx_and_duplicates_acknowledged(tmp_path: Path) -> None:
    outgoing = tmp_path / "outgoing"
    outgoing.mkdir()
    daemon = Daemon(ConfigWatch(write_conf(tmp_path, 1)), Spool(tmp_path / "spool"), outgoing)
    form = {"To": "+12025550101", "From": "+15551234567", "Body": "line\nline 😀", "Sid": "S1"}
    assert asyncio.run(post(daemon, "/sms", form)) == (200, "<ok/>", "text/xml; charset=utf-8")
    (call,) = outgoing.glob("websms-*.call")
    body_file = next(line.split("=", 1)[1] for line in call.read_text().splitlines() if "BODYFILE" in line)
    assert Path(body_file).read_text() == "line\nline 😀"
    call.unlink()
    assert asyncio.run(post(daemon, "/sms", form))[0] == 200
    assert list(outgoing.iterdir()) == []
    assert asyncio.run(post(daemon, "/other", form))[0] == 404
    assert asyncio.run(post(daemon, "/sms", {"To": "+1202"}))[0] == 400


def test_webhook_not_stored_is_not_acknowledged(tmp_path: Path) -> None:
    daemon = Daemon(ConfigWatch(write_conf(tmp_path, 1)), Spool(tmp_path / "spool"), tmp_path / "no-such-dir")
    form = {"To": "+12025550101", "From": "+15551234567", "Body": "x", "Sid": "S2"}
    assert asyncio.run(post(daemon, "/sms", form))[0] == 503
    # Not marked seen: the provider's retry is delivered once the spool works again.
    (tmp_path / "no-such-dir").mkdir()
    assert asyncio.run(post(daemon, "/sms", form))[0] == 200
    assert len(list((tmp_path / "no-such-dir").iterdir())) == 1


def test_signed_webhook_with_public_url(tmp_path: Path) -> None:
    outgoing = tmp_path / "out"
    outgoing.mkdir()
    extra = "sig_method = twilio\nsig_secret = tok\nurl_public = https://pbx.example.com\n"
    daemon = Daemon(ConfigWatch(write_conf(tmp_path, 1, extra)), Spool(tmp_path / "spool"), outgoing)
    form = {"To": "+12025550101", "From": "+15551234567", "Body": "signed", "Sid": "S3"}
    good = signatures.twilio("tok", "https://pbx.example.com/sms", form.items())
    assert asyncio.run(post(daemon, "/sms", form, {"X-Twilio-Signature": good}))[0] == 200
    assert asyncio.run(post(daemon, "/sms", {**form, "Sid": "S4"}, {"X-Twilio-Signature": good}))[0] == 403


def test_broken_config_keeps_the_last_good_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pbx.websmsd")
    path = write_conf(tmp_path, 1)
    watch = ConfigWatch(path)
    assert watch.current.incoming[0].url_paths == ("/sms",)
    path.write_text("[websmsd]\nremt_addr = nonsense\n")
    import os

    os.utime(path, (1, 1))
    watch.checked = 0
    assert watch.refresh().incoming[0].url_paths == ("/sms",)
    assert "websms.conf:2" in caplog.text


def test_open_incoming_interface_is_warned_about_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pbx.websmsd")
    ConfigWatch(write_conf(tmp_path, 1))
    assert "incoming interface (default) has neither sig_method nor remt_addr" in caplog.text
    caplog.clear()
    ConfigWatch(write_conf(tmp_path, 1, "remt_addr = 127.0.0.1\n"))
    assert "neither sig_method nor remt_addr" not in caplog.text


def test_shell_command_prints_the_outcome(
    itsp: tuple[ITSP, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pbx import cli

    stub, port = itsp
    path = write_conf(tmp_path, port)
    spool = str(tmp_path / "spool")
    args = ["+1 555 765-4321", "+12025550101", "Hi there", "", "--config", str(path), "--spool", spool]
    assert cli.main(args, invoked_as="websms") == 0
    assert capsys.readouterr().out == "SENT: HTTP 201\n"
    assert stub.seen[-1]["form"]["To"] == "+15557654321"
    stub.status = 403
    assert cli.main(args, invoked_as="websms") == 1
    assert capsys.readouterr().out.startswith("FAILED: HTTP 403")
    assert (
        cli.main(
            ["+1555", "+1666", "x", "nope", "--config", str(path), "--spool", spool], invoked_as="websms"
        )
        == 1
    )
    assert "WEBSMS_INDEX='nope' names no [websms] interface" in capsys.readouterr().err
