from __future__ import annotations

import itertools
import re
from pathlib import Path

from pbx.container.secrets import TOKEN, new_password
from pbx.container.seed import announce, fill_secrets, seed


def counter() -> itertools.count[int]:
    return itertools.count(1)


def test_each_token_gets_its_own_secret_and_is_located() -> None:
    numbers = counter()
    text = f"[alice](w_term_io)\ninbound_auth/password = {TOKEN}\n[pbx]\nsecret = {TOKEN} ; why\n"
    filled, made = fill_secrets(text, "x.conf", lambda: f"pw{next(numbers)}")
    assert filled == "[alice](w_term_io)\ninbound_auth/password = pw1\n[pbx]\nsecret = pw2 ; why\n"
    assert [(g.section, g.key, g.secret) for g in made] == [
        ("alice", "inbound_auth/password", "pw1"),
        ("pbx", "secret", "pw2"),
    ]
    assert made[0].describe() == "x.conf [alice] inbound_auth/password = pw1"


def test_text_without_tokens_is_unchanged() -> None:
    assert fill_secrets("[a]\nx = 1\n", "a.conf") == ("[a]\nx = 1\n", [])


def test_generated_passwords_are_strong_and_distinct() -> None:
    words = {new_password() for _ in range(200)}
    assert len(words) == 200
    for word in words:
        assert re.fullmatch(r"[A-Za-z0-9]{5}(-[A-Za-z0-9]{5}){3}", word)
        assert any(c.islower() for c in word) and any(c.isupper() for c in word)
        assert any(c.isdigit() for c in word)
        assert not set(word) & set(';=,[]"#Il1O0o')


def _seed_dir(tmp_path: Path) -> Path:
    src = tmp_path / "seed"
    (src / "sub").mkdir(parents=True)
    (src / "pjsip_endpoint.conf").write_text(f"[bob]\ninbound_auth/password = {TOKEN}\n")
    (src / "sub" / "extra.conf").write_text("[x]\n")
    return src


def test_seed_fills_an_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "etc"
    target.mkdir()
    made = seed(target, _seed_dir(tmp_path), owner=None)
    assert made is not None and len(made) == 1
    assert (
        target / "pjsip_endpoint.conf"
    ).read_text() == f"[bob]\ninbound_auth/password = {made[0].secret}\n"
    assert (target / "sub" / "extra.conf").read_text() == "[x]\n"
    assert (target / "pjsip_endpoint.conf").stat().st_mode & 0o777 == 0o640
    assert not list(target.rglob("*.seeding"))


def test_seed_never_touches_an_existing_configuration(tmp_path: Path) -> None:
    target = tmp_path / "etc"
    target.mkdir()
    (target / "mine.conf").write_text("[mine]\n")
    assert seed(target, _seed_dir(tmp_path), owner=None) is None
    assert [p.name for p in target.iterdir()] == ["mine.conf"]
    assert (target / "mine.conf").read_text() == "[mine]\n"


def test_announce_lists_every_password(tmp_path: Path) -> None:
    target = tmp_path / "etc"
    made = seed(target, _seed_dir(tmp_path), owner=None)
    assert made is not None
    banner = announce(made, target)
    assert f"pjsip_endpoint.conf [bob] inbound_auth/password = {made[0].secret}" in banner
