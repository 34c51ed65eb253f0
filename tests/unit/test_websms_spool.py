"""The durable spool and the hand-over to Asterisk: atomic files, call files, duplicates, parts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pbx.websms.deliver import (
    Inbound,
    call_file,
    hand_over,
    message_key,
    pending_keys,
    sip_user,
    split_text,
)
from pbx.websms.queue import Queued, Spool, atomic_write, backoff


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "websms").ensure()


def test_atomic_write_leaves_no_temporary_files(spool: Spool) -> None:
    dest = spool.bodies / "x.txt"
    atomic_write(dest, b"one", spool.tmp)
    atomic_write(dest, b"two", spool.tmp)
    assert dest.read_bytes() == b"two"
    assert list(spool.tmp.iterdir()) == []
    assert oct(dest.stat().st_mode & 0o777) == "0o640"


def test_atomic_write_failure_cleans_up(spool: Spool) -> None:
    with pytest.raises(OSError):
        atomic_write(spool.root / "missing-dir" / "x", b"data", spool.tmp)
    assert list(spool.tmp.iterdir()) == []


def test_queue_round_trip_and_due(spool: Spool) -> None:
    a = Queued("a", "", "+1", "+2", "text 😀", created=100.0, attempts=1, next_at=150.0)
    b = Queued("b", "x", "+1", "+2", "later", created=100.0, attempts=1, next_at=500.0)
    spool.enqueue(a)
    spool.enqueue(b)
    (spool.outgoing / "junk.json").write_text("{not json")
    assert [q.id for q in spool.queued()] == ["a", "b"]
    assert spool.due(200.0) == [a]
    a.attempts, a.next_at = 2, 300.0
    spool.update(a)
    assert spool.queued()[0].attempts == 2
    spool.remove(a)
    assert [q.id for q in spool.queued()] == ["b"]


@pytest.mark.parametrize(("attempts", "wait"), [(1, 30), (2, 60), (3, 120), (6, 960), (7, 1800), (30, 1800)])
def test_backoff_doubles_to_a_ceiling(attempts: int, wait: float) -> None:
    assert backoff(attempts, 30, 1800) == wait


def test_call_file_carries_only_the_path_of_the_text(tmp_path: Path) -> None:
    msg = Inbound("+12025550101", "+15551234567", "line 1\nline 2\n" * 500)
    text = call_file(msg, Path("/var/spool/asterisk/websms/bodies/k1.txt"), "abc123")
    assert text == (
        "Channel: Local/+12025550101@dp_entry_websms_in\n"
        'CallerID: "" <+15551234567>\n'
        "MaxRetries: 48\n"
        "RetryTime: 300\n"
        "WaitTime: 30\n"
        "Application: NoOp\n"
        "Data: websms\n"
        "Setvar: WEBSMS_FROM=+15551234567\n"
        "Setvar: WEBSMS_BODYFILE=/var/spool/asterisk/websms/bodies/k1.txt\n"
        "Setvar: WEBSMS_KEY=abc123\n"
        "Archive: no\n"
    )
    assert max(len(line) for line in text.splitlines()) < 1023


def test_alphanumeric_sender_id_becomes_a_valid_sip_user() -> None:
    assert sip_user("+15551234567") == "+15551234567"
    assert sip_user("Bank Alert") == "BankAlert"
    assert sip_user("  ") == "anonymous"
    text = call_file(Inbound("+12025550101", "Bank Alert", "x"), Path("/tmp/b.txt"), "abc")
    assert 'CallerID: "Bank Alert" <BankAlert>\n' in text
    assert "Setvar: WEBSMS_FROM=BankAlert\n" in text


@pytest.mark.parametrize(
    "msg",
    [
        Inbound("+1555\nApplication: System", "+1666", "x"),
        Inbound("+1555", "x\nSetvar: A=1", "x"),
        Inbound("+1555@evil", "+1666", "x"),
    ],
)
def test_call_file_refuses_injection(msg: Inbound) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        call_file(msg, Path("/tmp/b.txt"), "abc")


def test_hand_over_writes_text_then_call_file_and_drops_duplicates(spool: Spool, tmp_path: Path) -> None:
    outgoing = tmp_path / "outgoing"
    outgoing.mkdir()
    msg = Inbound("+12025550101", "+15551234567", "Привет 😀\nbye", message_id="SM1")
    assert hand_over(spool, msg, "twilio", outgoing)
    key = message_key("twilio", "SM1")
    assert (spool.bodies / f"{key}.txt").read_text() == "Привет 😀\nbye"
    assert f"WEBSMS_BODYFILE={spool.bodies}/{key}.txt" in (outgoing / f"websms-{key}.call").read_text()
    assert pending_keys(outgoing) == {key}
    # The provider retries: acknowledged again, nothing new for Asterisk.
    (outgoing / f"websms-{key}.call").unlink()
    assert not hand_over(spool, msg, "twilio", outgoing)
    assert list(outgoing.iterdir()) == []
    # The same id on another interface is another message.
    assert hand_over(spool, msg, "other", outgoing)


def test_first_of_two_concurrent_hand_overs_wins(spool: Spool, tmp_path: Path) -> None:
    key = message_key("twilio", "SM1")
    assert spool.claim(key) == "new"
    # A second request for the same id while the first is at it: not acknowledged (503, retried).
    msg = Inbound("+12025550101", "+15551234567", "hi", message_id="SM1")
    with pytest.raises(OSError, match="being handed over"):
        hand_over(spool, msg, "twilio", tmp_path)
    assert list(tmp_path.glob("websms-*.call")) == []
    # A claim left by a crash is taken over once stale.
    assert spool.claim(key, now=time.time() + 3600) == "new"
    spool.release(key)
    assert hand_over(spool, msg, "twilio", tmp_path)
    assert spool.claim(key) == "done" and spool.is_seen(key)
    assert not hand_over(spool, msg, "twilio", tmp_path)


def test_failed_hand_over_releases_its_claim(spool: Spool, tmp_path: Path) -> None:
    msg = Inbound("+12025550101", "+15551234567", "hi", message_id="SM2")
    with pytest.raises(OSError):
        hand_over(spool, msg, "", tmp_path / "missing")
    assert not spool.is_seen(message_key("", "SM2"))
    assert hand_over(spool, msg, "", tmp_path)


def test_unlistable_call_spool_skips_the_sweep(spool: Spool, tmp_path: Path) -> None:
    import asyncio

    from pbx.websms.daemon import ConfigWatch, Daemon

    not_a_dir = tmp_path / "outgoing"
    not_a_dir.write_text("")
    with pytest.raises(OSError):
        pending_keys(not_a_dir)
    body = spool.body_path("pending")
    body.write_text("x")
    os.utime(body, (1_000_000.0, 1_000_000.0))
    daemon = Daemon(ConfigWatch(tmp_path / "websms.conf"), spool, not_a_dir)
    with pytest.raises(OSError):
        asyncio.run(daemon.sweep())
    assert body.exists()


def test_messages_without_id_are_never_deduplicated(spool: Spool, tmp_path: Path) -> None:
    msg = Inbound("+12025550101", "+15551234567", "ok")
    assert hand_over(spool, msg, "", tmp_path) and hand_over(spool, msg, "", tmp_path)
    assert len(list(tmp_path.glob("websms-*.call"))) == 2


def test_long_text_becomes_parts_cut_between_characters(spool: Spool, tmp_path: Path) -> None:
    text = "я😀" * 2000  # 12000 bytes
    parts = split_text(text, 8000)
    assert "".join(parts) == text
    assert all(len(p.encode()) <= 8000 for p in parts) and len(parts) == 2
    assert split_text("", 8000) == [""]
    assert split_text("😀😀😀", 8) == ["😀😀", "😀"]
    hand_over(spool, Inbound("+1555", "+1666", text, "id"), "", tmp_path)
    bodies = sorted(spool.bodies.glob("*-*.txt"))
    assert [len(p.read_bytes()) for p in bodies] == [len(parts[0].encode()), len(parts[1].encode())]
    assert len(list(tmp_path.glob("websms-*-[12].call"))) == 2


def test_sweep_keeps_pending_texts(spool: Spool) -> None:
    for key in ("live", "done"):
        (spool.bodies / f"{key}.txt").write_text("x")
    (spool.seen / "old").write_text("")
    old = 1_000_000.0
    for path in (*spool.bodies.iterdir(), *spool.seen.iterdir()):
        os.utime(path, (old, old))
    assert spool.sweep({"live"}, now=old + 8 * 86400) == 2
    assert [p.name for p in spool.bodies.iterdir()] == ["live.txt"]
    assert list(spool.seen.iterdir()) == []
