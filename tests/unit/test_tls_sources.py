"""Choosing the certificate from acme.json and certbot's live/ folder (real files, real openssl)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from pbx.tls import acme, certbot, openssl, sources
from pbx.tls.settings import DEFAULT_POSTHOOK, TlsSettings
from tests.unit import tls_certs
from tests.unit.tls_certs import Cert

HOST = "tele.example.com"


@cache
def cert(cn: str, *sans: str, days: int = 90) -> Cert:
    return tls_certs.make(cn, *sans, days=days)


def settings(tmp_path: Path) -> TlsSettings:
    return tls_certs.tls_settings(tmp_path, HOST, posthook=DEFAULT_POSTHOOK)


def lineage(root: Path, name: str, c: Cert) -> None:
    """certbot's layout: live/<name>/*.pem are symlinks into archive/<name>/."""
    archive, live = root / "archive" / name, root / "live" / name
    archive.mkdir(parents=True)
    live.mkdir(parents=True)
    (archive / "fullchain1.pem").write_bytes(c.cert_pem)
    (archive / "privkey1.pem").write_bytes(c.key_pem)
    (live / certbot.CERT).symlink_to(f"../../archive/{name}/fullchain1.pem")
    (live / certbot.KEY).symlink_to(f"../../archive/{name}/privkey1.pem")


def test_nothing_mounted(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    snap = sources.snapshot(tls)
    assert snap.acme is None and snap.certbot == {}
    assert sources.choose(snap, HOST) == (None, "no certificate source")


def test_acme_json_wins_and_the_later_expiry_breaks_a_tie(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    tls.acme_file.parent.mkdir()
    old, new = cert(HOST, days=10), cert(HOST, HOST, days=80)
    tls.acme_file.write_text(tls_certs.v2({"first": [(HOST, None, old)], "second": [(HOST, None, new)]}))
    lineage(tls.certbot_dir, HOST, cert(HOST, "x." + HOST))
    chosen, _ = sources.choose(sources.snapshot(tls), HOST)
    assert chosen is not None
    assert chosen.pair.cert_pem == new.cert_pem and chosen.pair.key_pem == new.key_pem
    assert "resolver second" in chosen.origin


def test_certbot_is_used_when_acme_json_has_nothing_that_fits(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    tls.acme_file.parent.mkdir()
    tls.acme_file.write_text(tls_certs.v1(("example.org", None, cert("example.org"))))
    # the folder name is only a label: the names in the certificate decide
    lineage(tls.certbot_dir, "example.org", cert("example.org"))
    lineage(tls.certbot_dir, "misc-0001", cert("sip.example.com", "sip.example.com", "*.example.com"))
    chosen, _ = sources.choose(sources.snapshot(tls), HOST)
    assert chosen is not None and chosen.origin == "certbot live/misc-0001"
    assert chosen.pair.cert_pem == cert("sip.example.com", "sip.example.com", "*.example.com").cert_pem


def test_no_fit_anywhere_says_what_there_is(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    tls.acme_file.parent.mkdir()
    tls.acme_file.write_text(tls_certs.v1(("example.org", None, cert("example.org"))))
    lineage(tls.certbot_dir, "example.net", cert("example.net"))
    chosen, why = sources.choose(sources.snapshot(tls), HOST)
    assert chosen is None
    assert "has no certificate for tele.example.com (it has: example.org (v1))" in why
    assert "no certbot certificate for tele.example.com (it has: example.net)" in why


def test_a_half_written_acme_json_raises_for_a_retry(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    tls.acme_file.parent.mkdir()
    text = tls_certs.v2({"le": [(HOST, None, cert(HOST))]})
    tls.acme_file.write_text(text[: len(text) // 3])
    with pytest.raises(acme.AcmeError, match="not complete JSON"):
        sources.choose(sources.snapshot(tls), HOST)


def test_the_digest_follows_the_content_only(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    tls.acme_file.parent.mkdir()
    tls.acme_file.write_text("{}")
    first = sources.snapshot(tls).digest()
    tls.acme_file.write_text("{}")  # rewritten, same bytes
    assert sources.snapshot(tls).digest() == first
    tls.acme_file.write_text('{"le": {}}')
    assert sources.snapshot(tls).digest() != first
    tls.acme_file.unlink()
    assert sources.snapshot(tls).digest() not in (first, sources.Snapshot(tls.acme_file, b"").digest())


# --- unreadable sources (T1): reported, never raised -------------------------------------------------


def test_an_acme_json_that_is_a_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    # What Docker creates for `-v ./acme.json:/acme/acme.json` when the host file does not exist.
    tls.acme_file.mkdir(parents=True)
    lineage(tls.certbot_dir, HOST, cert(HOST))
    snap = sources.snapshot(tls)
    assert snap.acme is None
    assert len(snap.problems) == 1 and "is a directory" in snap.problems[0]
    chosen, _ = sources.choose(snap, HOST)  # the other source still counts
    assert chosen is not None and chosen.origin == f"certbot live/{HOST}"
    tls.acme_file.rmdir()
    assert sources.snapshot(tls).digest() != snap.digest()


def test_unreadable_files_and_folders_are_problems_not_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = settings(tmp_path)
    tls.acme_file.parent.mkdir()
    tls.acme_file.symlink_to(tls.acme_file.name)  # ELOOP: an OSError even for root
    lineage(tls.certbot_dir, HOST, cert(HOST))
    real_iterdir = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        if self.name == "live":  # as for a live/ readable by root only (the tests may run as root)
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert sources.watched_files(tls) == [tls.acme_file]
    snap = sources.snapshot(tls)
    assert snap.acme is None and snap.certbot == {}
    assert len(snap.problems) == 2, snap.problems
    assert "acme.json: unreadable: Too many levels of symbolic links" in snap.problems[0]
    assert "live: unreadable: Permission denied" in snap.problems[1]
    chosen, why = sources.choose(snap, HOST)
    assert chosen is None and "Permission denied" in why


# --- malformed entries (T6) ------------------------------------------------------------------------------


def test_a_malformed_entry_is_skipped_with_a_note_and_the_good_one_chosen(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    tls.acme_file.parent.mkdir()
    good = json.loads(tls_certs.v2({"le": [(HOST, None, cert(HOST))]}))
    good["le"]["Certificates"].insert(0, {"domain": {"main": HOST}, "certificate": "%%%", "key": "x"})
    good["other"] = {"Certificates": {"not": "a list"}}
    tls.acme_file.write_text(json.dumps(good))
    notes: list[str] = []
    chosen, _ = sources.choose(sources.snapshot(tls), HOST, notes)
    assert chosen is not None and chosen.pair.cert_pem == cert(HOST).cert_pem
    assert len(notes) == 2
    assert "le.Certificates[0]: certificate is not base64" in notes[0]
    assert "other.Certificates: Certificates is not a list" in notes[1]


# --- a trusted certificate beats a newer untrusted one (T8) --------------------------------------------


@cache
def ca(cn: str) -> Cert:
    return tls_certs.make_ca(cn)


def test_a_production_certificate_beats_a_newer_staging_one(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    tls.acme_file.parent.mkdir()
    trust = tmp_path / "ca-certificates.crt"
    trust.write_bytes(ca("Test Root X1").cert_pem)  # the CA store: production's root only
    production = tls_certs.make_signed(ca("Test Root X1"), HOST, days=30)
    staging = tls_certs.make_signed(ca("(STAGING) Test Root"), HOST, days=89)
    doc = tls_certs.v2({"staging": [(HOST, None, staging)], "le": [(HOST, None, production)]})
    tls.acme_file.write_text(doc)
    chosen, _ = sources.choose(sources.snapshot(tls), HOST, trust=trust)
    assert chosen is not None and chosen.origin.endswith("(resolver le)")
    assert chosen.pair.cert_pem == production.cert_pem
    # the same pair without a CA store (or both untrusted): the later expiry, as before
    chosen, _ = sources.choose(sources.snapshot(tls), HOST, trust=tmp_path / "none.crt")
    assert chosen is not None and chosen.origin.endswith("(resolver staging)")
    # both trusted: the later expiry
    trust.write_bytes(ca("Test Root X1").cert_pem + ca("(STAGING) Test Root").cert_pem)
    chosen, _ = sources.choose(sources.snapshot(tls), HOST, trust=trust)
    assert chosen is not None and chosen.origin.endswith("(resolver staging)")


def test_chain_verification_uses_the_chain_as_intermediates_only(tmp_path: Path) -> None:
    trust = tmp_path / "ca.crt"
    trust.write_bytes(ca("Test Root X1").cert_pem)
    leaf = tls_certs.make_signed(ca("Test Root X1"), HOST)
    assert openssl.chain_verifies(leaf.cert_pem, trust)
    # a chain that brings its own root along is not trusted for it
    other = tls_certs.make_signed(ca("Other Root"), HOST)
    assert not openssl.chain_verifies(other.cert_pem, trust)
    assert not openssl.chain_verifies(cert(HOST).cert_pem, trust)  # self-signed
    assert not openssl.chain_verifies(b"garbage", trust)
    assert not openssl.chain_verifies(leaf.cert_pem, tmp_path / "missing.crt")
