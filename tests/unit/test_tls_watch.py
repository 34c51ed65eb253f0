"""The watcher service's steps: install on a real change only, tolerate a half-written acme.json."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest

from pbx.tls import command, openssl, reload, watch
from pbx.tls.settings import TlsSettings
from tests.unit import tls_certs
from tests.unit.tls_certs import Cert

HOST = "tele.example.com"


@cache
def cert(cn: str, *sans: str) -> Cert:
    return tls_certs.make(cn, *sans)


@pytest.fixture
def tls(tmp_path: Path) -> TlsSettings:
    (tmp_path / "acme").mkdir()
    return tls_certs.tls_settings(tmp_path, HOST)


def test_installs_once_per_real_change(tls: TlsSettings) -> None:
    w = watch.Watcher(tls)
    assert w.due()
    assert not w.step()  # no source yet
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, cert(HOST))]}))
    assert w.due() and w.step()
    assert tls.cert_file.read_bytes() == cert(HOST).cert_pem
    assert not w.due()
    # rewritten with the same content (Traefik saves the whole file on every account change)
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, cert(HOST))]}) + " ")
    assert w.due() and not w.step()
    # a renewal
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, cert(HOST, HOST, "sip." + HOST))]}))
    assert w.due() and w.step()
    assert tls.cert_file.read_bytes() == cert(HOST, HOST, "sip." + HOST).cert_pem


def test_a_half_written_file_is_retried_until_complete(
    tls: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    w = watch.Watcher(tls, report_after=60)
    text = tls_certs.v2({"le": [(HOST, None, cert(HOST))]})
    tls.acme_file.write_text(text[: len(text) // 2])
    with caplog.at_level(logging.WARNING):
        assert w.due() and not w.step()
        # nothing changed on disk, but a retry is pending
        assert w.due() and not w.step()
    assert caplog.records == []  # a short-lived half file is no error
    assert not tls.cert_file.exists()
    with tls.acme_file.open("a") as f:  # the writer finishes
        f.write(text[len(text) // 2 :])
    assert w.due() and w.step()
    assert tls.key_file.read_bytes() == cert(HOST).key_pem


def test_a_file_that_stays_broken_is_reported_once(
    tls: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    w = watch.Watcher(tls, report_after=0)
    tls.acme_file.write_text('{"le": ')
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            w.due()
            w.step()
    assert len(caplog.records) == 1 and "not complete JSON" in caplog.text


def test_a_mismatched_pair_in_the_source_is_never_installed(tls: TlsSettings) -> None:
    good, other = cert(HOST), cert("other." + HOST)
    w = watch.Watcher(tls, report_after=60)
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, good)]}))
    assert w.due() and w.step()
    c, _ = good.b64()
    _, k = other.b64()
    entry = {"domain": {"main": HOST}, "certificate": c, "key": k}
    tls.acme_file.write_text(json.dumps({"le": {"Certificates": [entry]}}))
    assert w.due() and not w.step()
    assert tls.key_file.read_bytes() == good.key_pem


def test_no_match_keeps_the_current_certificate(tls: TlsSettings, caplog: pytest.LogCaptureFixture) -> None:
    w = watch.Watcher(tls)
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, cert(HOST))]}))
    assert w.due() and w.step()
    tls.acme_file.write_text(tls_certs.v1(("example.org", None, cert("example.org"))))
    with caplog.at_level(logging.WARNING):
        assert w.due() and not w.step()
    assert "keeping the current certificate" in caplog.text
    assert tls.cert_file.read_bytes() == cert(HOST).cert_pem


def test_signature_sees_size_mtime_and_presence(tmp_path: Path) -> None:
    f = tmp_path / "a"
    missing = watch.signature([f])
    f.write_text("x")
    first = watch.signature([f])
    assert first != missing
    os.utime(f, ns=(1, 2))
    assert watch.signature([f]) != first


def test_posthook_runs_in_a_shell_with_the_file_names(
    tls: TlsSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "hook.out"
    hooked = replace(tls, posthook=f'echo "$TLS_CERT_FILE $TLS_KEY_FILE $SVDIR" > {out}; exit 3')
    monkeypatch.delenv("SVDIR", raising=False)
    assert asyncio.run(watch.run_posthook(hooked)) == 3
    # SVDIR: the predecessor's `sv restart asterisk` finds the runit service
    assert out.read_text().split() == [str(tls.cert_file), str(tls.key_file), "/etc/service"]
    assert asyncio.run(watch.run_posthook(tls)) is None  # ACME_POSTHOOK= (empty): nothing runs


def test_the_default_reload_covers_https_only_when_enabled(tmp_path: Path) -> None:
    conf = tmp_path / "http.conf"
    assert reload.commands(conf) == ["module reload res_pjsip.so"]  # no http.conf
    conf.write_text("[general]\nenabled = yes\ntlsenable = no\n")
    assert reload.commands(conf) == ["module reload res_pjsip.so"]
    conf.write_text("[general]\nenabled = yes\ntlsenable = yes\n")
    assert reload.commands(conf) == ["module reload res_pjsip.so", "module reload http"]


def test_the_self_signed_certificate_is_renewed_near_its_end(tls: TlsSettings) -> None:
    w = watch.Watcher(tls)
    assert w.renew()  # none yet
    first = tls.cert_file.read_bytes()
    assert not w.renew()
    assert not w.renew(datetime.now(UTC) + timedelta(days=28))
    assert w.renew(datetime.now(UTC) + timedelta(days=29, hours=12))
    assert tls.cert_file.read_bytes() != first


def test_a_certificate_from_a_source_is_never_renewed_as_self_signed(tls: TlsSettings) -> None:
    w = watch.Watcher(tls)
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, cert(HOST))]}))
    assert w.due() and w.step()
    assert not w.renew(datetime.now(UTC) + timedelta(days=365))
    assert tls.cert_file.read_bytes() == cert(HOST).cert_pem


def test_an_unreadable_source_is_logged_once_and_retried_until_readable(
    tls: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    tls.acme_file.mkdir()  # Docker's directory for a bind-mounted host file that did not exist
    w = watch.Watcher(tls)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert w.due()  # a retry stays pending: permissions can change without a new mtime
            assert not w.step()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "is a directory" in errors[0].getMessage()
    tls.acme_file.rmdir()
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, cert(HOST))]}))
    assert w.due() and w.step()
    assert tls.cert_file.read_bytes() == cert(HOST).cert_pem
    assert not w.due()


def test_a_bad_pair_waits_for_the_file_to_change(
    tls: TlsSettings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good, other = cert(HOST), cert("other." + HOST)
    c, _ = good.b64()
    _, k = other.b64()
    bad = json.dumps({"le": {"Certificates": [{"domain": {"main": HOST}, "certificate": c, "key": k}]}})
    tls.acme_file.write_text(bad)
    runs: list[list[str]] = []
    real_run = openssl._run

    def counting(args: list[str], data: bytes = b"", timeout: float = openssl.TIMEOUT) -> bytes:
        runs.append(args)
        return real_run(args, data, timeout)

    monkeypatch.setattr(openssl, "_run", counting)
    w = watch.Watcher(tls, report_after=0)
    with caplog.at_level(logging.ERROR):
        assert w.due() and not w.step()
    assert runs and "does not belong" in caplog.text
    runs.clear()
    for _ in range(5):  # the polls of five seconds: no retry, no openssl
        if w.due():
            w.step()
    assert runs == []
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    # Another source unreadable: the polls go on for it, and the bad pair still waits.
    (tls.certbot_dir / "live").mkdir(parents=True)
    real_iterdir = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        if self.name == "live":
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    w.due()
    assert not w.step()  # the sources changed (a new problem): one more look at the pair
    runs.clear()
    for _ in range(3):
        assert w.due()  # the unreadable folder keeps a retry pending
        assert not w.step()
    assert runs == []
    monkeypatch.undo()
    monkeypatch.setattr(openssl, "_run", counting)
    tls.acme_file.write_text(tls_certs.v2({"le": [(HOST, None, good)]}))  # fixed
    assert w.due() and w.step()
    assert tls.key_file.read_bytes() == good.key_pem


def test_a_malformed_entry_is_warned_about_once_and_the_others_used(
    tls: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    doc = json.loads(tls_certs.v2({"le": [(HOST, None, cert(HOST))]}))
    doc["le"]["Certificates"].append({"domain": {"main": "x." + HOST}})
    tls.acme_file.write_text(json.dumps(doc))
    w = watch.Watcher(tls)
    with caplog.at_level(logging.WARNING):
        assert w.due() and w.step()
        tls.acme_file.write_text(json.dumps(doc) + " ")  # rewritten, same entries
        assert w.due() and not w.step()
    assert caplog.text.count("skipped a malformed entry") == 1
    assert "le.Certificates[1]: no certificate" in caplog.text
    assert tls.cert_file.read_bytes() == cert(HOST).cert_pem


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("pbx tls reload", "pbx"),
        ("TOKEN=s3cret /usr/local/bin/notify --token s3cret", "notify"),
        ("curl -H 'Authorization: Bearer s3cret' https://example.test/hook", "curl"),
        ("'/opt/my hooks/run' x", "run"),
        ("A=1 B=2", "?"),
    ],
)
def test_program_name_keeps_arguments_and_variables_out_of_the_log(command: str, name: str) -> None:
    assert watch.program_name(command) == name


def test_a_hook_that_hangs_is_stopped_with_its_children_and_fails(
    tls: TlsSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "child.pid"
    # The shell starts a child of its own, as `sh -c "sleep ...; ..."` hooks do, then waits for it.
    hook = f"TOKEN=s3cret sh -c 'sleep 60 & echo $! > {pid_file}; wait'"
    with caplog.at_level(logging.DEBUG):
        status = asyncio.run(watch.run_posthook(replace(tls, posthook=hook), timeout=1.0))
    assert status == watch.TIMED_OUT
    child = int(pid_file.read_text())

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state != "Z"

    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the hook's child survived the timeout"
    assert "s3cret" not in caplog.text and "ACME_POSTHOOK (sh) took longer than 1 s" in caplog.text


def test_a_failing_hook_logs_its_status_and_its_output_only_at_debug(
    tls: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    hook = replace(tls, posthook="curl_token=abc sh -c 'echo token abc refused; exit 7'")
    with caplog.at_level(logging.INFO):
        assert asyncio.run(watch.run_posthook(hook)) == 7
    assert "ACME_POSTHOOK (sh) exited 7" in caplog.text and "abc" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        asyncio.run(watch.run_posthook(hook))
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("token abc refused" in m for m in debug)


def test_sync_fails_when_the_hook_times_out(
    tls: TlsSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "POSTHOOK_TIMEOUT", 0.5)
    hooked = replace(tls, posthook="sleep 30")
    assert command.sync(hooked) == watch.TIMED_OUT  # a new self-signed certificate, then the hook
