"""The PrivateDial seed configuration hangs together: contexts, subroutines, templates and the seams."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pbx.asterisk.conf import Config, read_config

CONF = Path(__file__).resolve().parents[2] / "config/privatedial"
ENTRY = (
    "dp_entry_call_inout",
    "dp_entry_call_in",
    "dp_entry_text_inout",
    "dp_entry_text_in",
    "dp_entry_answer",
)
ACTION = ("dp_lookup", "dp_call_inout", "dp_call_in", "dp_text_inout", "dp_text_in", "dp_answer")
SUBS = (
    "sub_dial_term",
    "sub_voicemail",
    "sub_dial_trunk",
    "sub_text_term",
    "sub_text_websms",
    "sub_rewrite_from",
    "sub_decode_body",
)


@pytest.fixture(scope="module")
def dialplan() -> Config:
    return read_config(CONF / "extensions.conf")


@pytest.fixture(scope="module")
def wizard() -> Config:
    return read_config(CONF / "pjsip_wizard.conf")


def test_every_level_of_the_dialplan_exists(dialplan: Config) -> None:
    names = set(dialplan.names())
    missing = [c for c in (*ENTRY, *ACTION, *SUBS, "dp_hint") if c not in names]
    assert missing == []


def test_every_goto_and_gosub_target_exists(dialplan: Config) -> None:
    names = set(dialplan.names())
    text = (CONF / "extensions.conf").read_text()
    targets = set(re.findall(r"\b(?:Goto|Gosub)\((\w+),", text))
    targets |= set(re.findall(r"hangup_handler_push\)=(\w+),", text))
    assert targets - names == set()
    assert {"dp_lookup", "sub_dial_term", "sub_voicemail_mail"} <= targets


def test_templates_enter_the_dialplan_at_entry_contexts(wizard: Config) -> None:
    templates = {t.name: t for t in wizard.templates()}
    expected = {
        "w_term_io": ("dp_entry_call_inout", "dp_entry_text_inout"),
        "w_term_i": ("dp_entry_call_in", "dp_entry_text_in"),
        "w_trunk": ("dp_entry_call_in", "dp_entry_text_in"),
    }
    for name, (calls, texts) in expected.items():
        assert templates[name].get("endpoint/context") == calls
        assert templates[name].get("endpoint/message_context") == texts
    assert templates["w_term_io"].get("hint_context") == "dp_hint"


def test_users_are_reached_by_their_numbers(wizard: Config) -> None:
    users = [s for s in wizard if s.get("accepts_registrations") == "yes"]
    assert {u.name for u in users} >= {"alice", "bob"}
    for user in users:
        assert re.fullmatch(r"\+[1-9]\d{6,14}", user.get("hint_exten", ""))
        assert user.get("inbound_auth/username") == user.name
        assert int(user.get("aor/max_contacts", "1")) > 1  # several devices per user


def test_user_data_stays_out_of_the_dialplan(dialplan: Config) -> None:
    values = " ".join(e.value for section in dialplan for e in section.entries)
    assert not re.search(r"\+?\d{6,}", values)  # no phone numbers outside comments
    site = dialplan.get("globals")
    assert site is not None
    assert Path(site.where("DP_COUNTRY_CODE").split(":")[0]).name == "extensions_local.conf"
    assert Path(site.where("DP_TRUNK").split(":")[0]).name == "extensions_local.conf"


def test_websms_seam(dialplan: Config) -> None:
    text = (CONF / "extensions.conf").read_text()
    assert text.rstrip().splitlines()[-1] == "#tryinclude extensions_websms.conf"
    websms = dialplan.get("sub_text_websms")
    assert websms is not None
    body = " ".join(e.value for e in websms.entries)
    for name in (
        "WEBSMS_TO",
        "WEBSMS_FROM",
        "WEBSMS_INDEX",
        "AGI(/usr/local/bin/websms,agi)",
        "WEBSMS_STATUS",
    ):
        assert name in body


def test_minivm_mails_through_minivm_send() -> None:
    minivm = read_config(CONF / "minivm.conf")
    general = minivm.get("general")
    assert general is not None
    assert (general.get("mailcmd") or "").split()[0] == "minivm-send"
    dialplan_template = read_config(CONF / "extensions.conf").get("globals")
    assert dialplan_template is not None
    template = minivm.get(f"template-{dialplan_template.get('DP_VOICEMAIL_TEMPLATE')}")
    assert template is not None and template.get("attachmedia") == "yes"


def priorities(dialplan: Config, context: str) -> list[str]:
    section = dialplan.get(context)
    assert section is not None, context
    return [e.value for e in section.entries if e.key in {"exten", "same"}]


def test_dialled_strings_are_refused_unless_plus_and_digits(dialplan: Config) -> None:
    # A pattern's "." takes any character ("&", "/"): only dp_lookup's FILTER check keeps a dialled
    # "+1&Local/..." out of Dial(PJSIP/<number>@<trunk>).
    for context in (*ENTRY, *ACTION):
        first = priorities(dialplan, context)[0]
        assert first.startswith("_[+0-9]X.,1,"), (context, first)
    for context in ENTRY:
        assert priorities(dialplan, context)[0].endswith(",1,Gosub(dp_lookup,${EXTEN},1)")
    lookup = priorities(dialplan, "dp_lookup")
    assert "FILTER(0-9,${EXTEN:1})" in lookup[0] and "?valid)" in lookup[0]
    refused = lookup[: next(i for i, p in enumerate(lookup) if "(valid)" in p)]
    assert refused[-1] == "n,Hangup(1)"
    assert not any("DP_NUMBER" in p for p in refused)


def test_emergency_numbers_go_to_the_trunk_unchanged(dialplan: Config) -> None:
    site = dialplan.get("globals")
    assert site is not None and site.get("DP_EMERGENCY") == "911,112"
    lookup = priorities(dialplan, "dp_lookup")
    emergency = next(i for i, p in enumerate(lookup) if "FIELDNUM(DP_EMERGENCY" in p)
    rewrite = next(i for i, p in enumerate(lookup) if "?intl)" in p)
    assert emergency < rewrite and lookup[emergency].endswith("?found)")  # not rewritten to +E.164
    calls = priorities(dialplan, "dp_call_inout")
    assert "FIELDNUM(DP_EMERGENCY" in calls[1] and calls[1].endswith("?emergency)")
    after = calls[next(i for i, p in enumerate(calls) if p.startswith("n(emergency)")) :]
    assert any("?trunk)" in p for p in after) and after[-1] == "n,Hangup(34)"


def test_an_undelivered_text_is_never_answered(dialplan: Config) -> None:
    # WebSMS's call files are retried only when their call was not answered.
    text_in = priorities(dialplan, "dp_text_in")
    answers = [i for i, p in enumerate(text_in) if "Answer()" in p]
    done = next(i for i, p in enumerate(text_in) if p.startswith("n(done),"))
    assert answers == [done]
    assert "DP_TEXT_STATUS" in text_in[done - 3] and text_in[done - 3].endswith("?done)")
    hangups = [p for p in text_in[:done] if "Hangup(" in p]
    assert hangups and all(re.search(r"Hangup\(\d+\)", p) for p in hangups)


def test_an_outside_sender_becomes_a_uri_safe_sip_uri(dialplan: Config) -> None:
    text_in = " ".join(priorities(dialplan, "dp_text_in"))
    assert "FILTER(A-Za-z0-9+._-,${DP_TEXT_FROM})" in text_in
    assert "DP_DOMAIN" in text_in and "ENV(HOSTNAME)" in text_in


def test_texts_count_only_reachable_devices(dialplan: Config) -> None:
    term = " ".join(priorities(dialplan, "sub_text_term"))
    assert "PJSIP_AOR(${ARG1},contact)" in term and "PJSIP_CONTACT(${id},status)" in term
    assert '"${status}" = "Reachable"]?Set(DP_TEXT_STATUS=DELIVERED)' in term


def test_minivm_example_keeps_the_password_off_the_command_line() -> None:
    examples = [x for x in (CONF / "minivm.conf").read_text().splitlines() if x.startswith(";mailcmd")]
    assert examples
    for line in examples:
        assert "--password-file /etc/asterisk/minivm.secret" in line and " -p " not in line
        assert " -f " in line  # a real envelope sender, not serveremail's voicemail@localhost
