"""Password hygiene: which SIP passwords are weak, and the warnings `pbx init` prints."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pbx import passwords
from pbx.asterisk.conf import parse_config
from pbx.container.secrets import TOKEN, new_password

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("good", ["Summer-Rain-2026", "aB3defghij", "Xk9-Xk9-Xk9-a"])
def test_strong_passwords_pass(good: str) -> None:
    assert passwords.weaknesses(good) == []


def test_generated_passwords_always_pass() -> None:
    for _ in range(200):
        assert passwords.weaknesses(new_password()) == []


@pytest.mark.parametrize(
    ("weak", "reasons"),
    [
        ("aB3", ["shorter than 10 characters (3)"]),
        ("password123", ["no upper case letters"]),
        ("PASSWORD123", ["no lower case letters"]),
        ("Passwordxyz", ["no digits"]),
        ("1234567890", ["no lower case letters and no upper case letters"]),
        (
            "",
            [
                "shorter than 10 characters (0)",
                "no lower case letters and no upper case letters and no digits",
            ],
        ),
        (TOKEN, ["still the seed placeholder, not a password"]),
    ],
)
def test_weak_passwords_say_why(weak: str, reasons: list[str]) -> None:
    assert passwords.weaknesses(weak) == reasons


def test_reasons_never_contain_the_password() -> None:
    assert all("secret" not in r for r in passwords.weaknesses("secret"))


WIZARD = """\
[w_term](!)
type = wizard
inbound_auth/password = Template-Pass-1

[alice](w_term)
inbound_auth/password = alice

[bob](w_term)
inbound_auth/password = Bob-Strong-Pass-9

[itsp]
type = wizard
outbound_auth/password = 12345

[auth-x]
type = auth
password = short

[endpoint-x]
type = endpoint
password = not-an-auth-section
"""


def test_weak_passwords_are_found_with_file_line_and_section() -> None:
    found = passwords.weak_passwords([parse_config(WIZARD, "pjsip_wizard.conf")])
    described = [w.describe() for w in found]
    assert described == [
        "pjsip_wizard.conf:6 [alice] inbound_auth/password: shorter than 10 characters (5); "
        "no upper case letters and no digits",
        "pjsip_wizard.conf:13 [itsp] outbound_auth/password: shorter than 10 characters (5); "
        "no lower case letters and no upper case letters",
        "pjsip_wizard.conf:17 [auth-x] password: shorter than 10 characters (5); "
        "no upper case letters and no digits",
    ]


def test_warn_prints_one_line_per_weak_password(tmp_path: Path) -> None:
    (tmp_path / "pjsip_wizard.conf").write_text(WIZARD)
    out = io.StringIO()
    assert passwords.warn(tmp_path, out) == 3
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("pbx: WARNING: weak SIP password:") for line in lines) == 3
    assert "alice\n" not in out.getvalue() and "12345" not in out.getvalue()


def test_warn_is_quiet_for_strong_passwords_and_missing_files(tmp_path: Path) -> None:
    out = io.StringIO()
    assert passwords.warn(tmp_path, out) == 0
    (tmp_path / "pjsip.conf").write_text("[a]\ntype = auth\npassword = Strong-Pass-2026\n")
    assert passwords.warn(tmp_path, out) == 0
    assert out.getvalue() == ""


def test_a_broken_file_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "pjsip.conf").write_text("[a]\n#include missing.conf\n")
    out = io.StringIO()
    assert passwords.warn(tmp_path, out) == 0
    assert "SIP passwords not checked" in out.getvalue()
    assert "pjsip.conf:2" in out.getvalue()


def test_the_seed_has_only_generated_passwords(tmp_path: Path) -> None:
    # After seeding, every token is a generated password: nothing to warn about.
    for src in (ROOT / "config/privatedial").iterdir():
        (tmp_path / src.name).write_text(src.read_text().replace(TOKEN, new_password()))
    out = io.StringIO()
    assert passwords.warn(tmp_path, out) == 0, out.getvalue()
