from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.files import write_atomic


def test_replaces_the_content_whole_with_the_mode_asked(tmp_path: Path) -> None:
    dest = tmp_path / "state.json"
    write_atomic(dest, "old")
    write_atomic(dest, [b"n", b"e", b"w"], 0o644)
    assert dest.read_text() == "new"
    assert dest.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_temporary_file_goes_where_asked(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    write_atomic(tmp_path / "x", b"data", tmp_dir=tmp_path / "tmp", durable=False)
    assert (tmp_path / "x").read_bytes() == b"data"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_failure_while_writing_keeps_the_old_content_and_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "state.json"
    write_atomic(dest, b"old")

    def broken() -> Iterator[bytes]:
        yield b"half"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(dest, broken())
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "x", b"data")
