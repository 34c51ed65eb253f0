from __future__ import annotations

from pathlib import Path

import pytest

from pbx.container.persist import Persisted, PersistListError, apply, parse_list


def test_parse_list_reads_paths_and_owners() -> None:
    text = "# comment\n/etc/asterisk  asterisk\n\n/var/lib/pbx root # trailing\n"
    assert parse_list(text) == [
        Persisted(Path("/etc/asterisk"), "asterisk"),
        Persisted(Path("/var/lib/pbx"), "root"),
    ]


@pytest.mark.parametrize("line", ["relative/path asterisk", "/only-a-path", "/a b c"])
def test_parse_list_names_the_bad_line(line: str) -> None:
    with pytest.raises(PersistListError, match=r"^persist\.list:2: expected 'ABSOLUTE_PATH OWNER'"):
        parse_list(f"/ok root\n{line}\n")


def _entries(root: Path, *names: str) -> list[Persisted]:
    return [Persisted(root / name, "nobody") for name in names]


def _apply(root: Path, entries: list[Persisted], mounted: set[Path] = frozenset()) -> Path:
    srv = root / "srv"
    apply(entries, srv, is_mount=lambda p: p in mounted, chown=False)
    return srv


def _kept(srv: Path, live: Path) -> Path:
    return srv / live.relative_to("/")


def test_first_start_moves_the_image_content_under_srv(tmp_path: Path) -> None:
    live = tmp_path / "etc" / "asterisk"
    live.mkdir(parents=True)
    (live / "a.conf").write_text("image")
    srv = _apply(tmp_path, _entries(tmp_path, "etc/asterisk"))
    assert live.is_symlink()
    assert live.resolve() == _kept(srv, live).resolve()
    assert (live / "a.conf").read_text() == "image"


def test_a_missing_path_is_created_under_srv(tmp_path: Path) -> None:
    live = tmp_path / "var" / "lib" / "pbx"
    srv = _apply(tmp_path, _entries(tmp_path, "var/lib/pbx"))
    assert live.is_symlink() and _kept(srv, live).is_dir()


def test_an_existing_srv_wins_over_the_image_content(tmp_path: Path) -> None:
    live = tmp_path / "spool"
    live.mkdir()
    (live / "image-only").write_text("x")
    srv = tmp_path / "srv"
    kept = _kept(srv, live)
    kept.mkdir(parents=True)
    (kept / "voicemail").write_text("keep me")
    _apply(tmp_path, _entries(tmp_path, "spool"))
    assert sorted(p.name for p in live.iterdir()) == ["voicemail"]
    assert (live / "voicemail").read_text() == "keep me"


def test_applying_twice_is_harmless(tmp_path: Path) -> None:
    live = tmp_path / "log"
    live.mkdir()
    (live / "cdr.csv").write_text("1")
    entries = _entries(tmp_path, "log")
    _apply(tmp_path, entries)
    _apply(tmp_path, entries)
    assert (live / "cdr.csv").read_text() == "1"


def test_a_directly_mounted_path_is_left_alone(tmp_path: Path) -> None:
    live = tmp_path / "etc-asterisk"
    live.mkdir()
    (live / "mine.conf").write_text("mine")
    srv = _apply(tmp_path, _entries(tmp_path, "etc-asterisk"), mounted={live})
    assert not live.is_symlink()
    assert not _kept(srv, live).exists()
    assert (live / "mine.conf").read_text() == "mine"
