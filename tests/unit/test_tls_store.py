"""The key/certificate pairing check and the atomic install, with real openssl and real files."""

from __future__ import annotations

import os
import stat
import subprocess
from functools import cache
from pathlib import Path

import pytest

from pbx.tls import openssl, store
from tests.unit import tls_certs
from tests.unit.tls_certs import Cert


@cache
def cert(cn: str) -> Cert:
    return tls_certs.make(cn)


def pair(c: Cert) -> store.Pair:
    return store.Pair(c.cert_pem, c.key_pem)


def test_a_matching_pair_passes() -> None:
    store.check_pair(pair(cert("a.example.com")))


def test_a_full_chain_is_checked_by_its_leaf() -> None:
    leaf, other = cert("a.example.com"), cert("ca.example.com")
    store.check_pair(store.Pair(leaf.cert_pem + other.cert_pem, leaf.key_pem))
    with pytest.raises(store.PairError, match="does not belong"):
        store.check_pair(store.Pair(other.cert_pem + leaf.cert_pem, leaf.key_pem))


def test_a_key_of_another_certificate_is_refused() -> None:
    with pytest.raises(store.PairError, match="does not belong"):
        store.check_pair(store.Pair(cert("a.example.com").cert_pem, cert("b.example.com").key_pem))


def test_garbage_is_refused_with_a_clear_message() -> None:
    with pytest.raises(store.PairError, match="certificate is not readable"):
        store.check_pair(store.Pair(b"-----BEGIN CERTIFICATE-----\nxx\n", cert("a.example.com").key_pem))
    with pytest.raises(store.PairError, match="private key is not readable"):
        store.check_pair(store.Pair(cert("a.example.com").cert_pem, b"not a key"))


def test_an_encrypted_key_is_refused_not_prompted_for(tmp_path: Path) -> None:
    plain = tmp_path / "k.pem"
    plain.write_bytes(cert("a.example.com").key_pem)
    encrypted = subprocess.run(
        ["openssl", "pkey", "-in", str(plain), "-aes256", "-passout", "pass:secret"],
        capture_output=True,
        check=True,
    ).stdout
    with pytest.raises(store.PairError, match="encrypted"):
        store.check_pair(store.Pair(cert("a.example.com").cert_pem, encrypted))


def test_install_writes_both_files_with_safe_modes(tmp_path: Path) -> None:
    cert_file, key_file = tmp_path / "ssl/cert.pem", tmp_path / "ssl/priv_key.pem"
    assert store.install(pair(cert("a.example.com")), cert_file, key_file, owner=None)
    assert cert_file.read_bytes() == cert("a.example.com").cert_pem
    assert key_file.read_bytes() == cert("a.example.com").key_pem
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_file.stat().st_mode) == 0o644
    assert sorted(p.name for p in cert_file.parent.iterdir()) == ["cert.pem", "priv_key.pem"]  # no leftovers


def test_install_of_the_same_pair_changes_nothing(tmp_path: Path) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "priv_key.pem"
    assert store.install(pair(cert("a.example.com")), cert_file, key_file, owner=None)
    inode = cert_file.stat().st_ino
    assert not store.install(pair(cert("a.example.com")), cert_file, key_file, owner=None)
    assert cert_file.stat().st_ino == inode


def test_a_mismatched_pair_leaves_the_installed_files_alone(tmp_path: Path) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "priv_key.pem"
    store.install(pair(cert("a.example.com")), cert_file, key_file, owner=None)
    bad = store.Pair(cert("b.example.com").cert_pem, cert("a.example.com").key_pem)
    with pytest.raises(store.PairError):
        store.install(bad, cert_file, key_file, owner=None)
    assert store.read(cert_file, key_file) == pair(cert("a.example.com"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "priv_key.pem"]


def test_a_stale_temporary_file_does_not_block_the_install(tmp_path: Path) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "priv_key.pem"
    (tmp_path / ".priv_key.pem.new").write_text("left by a crash")
    assert store.install(pair(cert("a.example.com")), cert_file, key_file, owner=None)
    assert key_file.read_bytes() == cert("a.example.com").key_pem


def test_certificate_info_reads_names_expiry_and_fingerprint() -> None:
    c = tls_certs.make("tele.example.com", "tele.example.com", "*.example.com", days=10)
    info = openssl.certificate_info(c.cert_pem)
    assert info.names == ("tele.example.com", "*.example.com")
    assert "CN=tele.example.com" in info.subject and info.self_signed
    assert len(info.fingerprint.split(":")) == 32
    assert 9 <= (info.not_after - __import__("datetime").datetime.now(info.not_after.tzinfo)).days <= 10


def test_the_owner_is_set_on_the_open_descriptor_never_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "priv_key.pem"
    calls: list[tuple[str, int, int, int]] = []

    def fchown(fd: int, uid: int, gid: int) -> None:
        st = os.fstat(fd)
        calls.append(("fchown", st.st_ino, uid, gid))
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 0  # private and empty until owned

    def by_name(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"chown by path: {args}")

    monkeypatch.setattr(os, "fchown", fchown)
    monkeypatch.setattr(os, "chown", by_name)
    monkeypatch.setattr(os, "lchown", by_name)
    monkeypatch.setattr(store, "_ids", lambda owner: (4242, 4343))
    assert store.install(pair(cert("a.example.com")), cert_file, key_file, owner="asterisk")
    assert sorted(calls) == sorted(
        [("fchown", key_file.stat().st_ino, 4242, 4343), ("fchown", cert_file.stat().st_ino, 4242, 4343)]
    )
    assert stat.S_IMODE(cert_file.stat().st_mode) == 0o644


def test_an_unknown_owner_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="no user and group 'no-such-user-here'"):
        store.install(
            pair(cert("a.example.com")), tmp_path / "c.pem", tmp_path / "k.pem", owner="no-such-user-here"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_planted_as_the_temporary_file_is_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (tmp_path / ".priv_key.pem.new").symlink_to(target)
    assert store.install(pair(cert("a.example.com")), tmp_path / "cert.pem", tmp_path / "priv_key.pem", None)
    assert target.read_text() == "untouched"
