"""websms.conf -> interfaces: indexes, defaults, presets, errors naming file:line."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest

from pbx.asterisk.conf import ConfigError, parse_config
from pbx.websms import config as wconfig
from pbx.websms.settings import websmsd_port


def parse(text: str) -> wconfig.WebSMSConfig:
    return wconfig.parse(parse_config(text, "/etc/asterisk/websms.conf"))


def test_original_defaults_for_a_minimal_section() -> None:
    cfg = parse("[websms]\nurl_host = api.example.com\nurl_path = /sms/send/\nauth_user = u\nauth_secret = s")
    (out,) = cfg.outgoing
    assert out.index == ""
    assert out.url == "https://api.example.com/sms/send/"  # a bare host gets https, never plain http
    assert (out.auth_method, out.key_to, out.key_from, out.key_body) == ("basic", "To", "From", "Body")
    assert out.body_format == "form"
    assert cfg.incoming == ()


def test_commented_seed_configures_nothing() -> None:
    seed = Path(__file__).resolve().parents[2] / "config/websms/websms.conf"
    cfg = wconfig.parse(parse_config(seed.read_text(), seed))
    assert cfg.outgoing == () and cfg.incoming == ()


def test_missing_file_is_an_empty_configuration(tmp_path: Path) -> None:
    assert wconfig.load(tmp_path / "websms.conf") == wconfig.WebSMSConfig()


def test_indexed_interfaces_share_unindexed_defaults() -> None:
    cfg = parse(
        "[websms]\n"
        "url_host [api-1] = api.example1.com\n"
        "url_path         = /sms/send/\n"
        "auth_user [api-1] = user1\n"
        "url_host [api-2] = api.example2.com\n"
        "auth_user [api-2] = user2\n"
        "key_body [api-2] = text\n"
    )
    one, two = cfg.outgoing
    assert (one.index, one.url, one.auth_user, one.key_body) == (
        "api-1",
        "https://api.example1.com/sms/send/",
        "user1",
        "Body",
    )
    assert (two.index, two.url, two.auth_user, two.key_body) == (
        "api-2",
        "https://api.example2.com/sms/send/",
        "user2",
        "text",
    )
    assert cfg.outgoing_for("") is one
    assert cfg.outgoing_for("api-2") is two
    with pytest.raises(ValueError, match=r"WEBSMS_INDEX='api-3'.*api-1, api-2"):
        cfg.outgoing_for("api-3")


def test_empty_brackets_number_incoming_interfaces_in_order() -> None:
    cfg = parse(
        "[websmsd]\n"
        "remt_addr [] = 1.2.3.4/24\n"
        "url_path [] = /incoming1\n"
        "remt_addr [] = 5.6.7.8,5.6.7.9\n"
        "url_path [] = /incoming2\n"
        "key_body [] = text\n"
    )
    # "[]" numbers per key, as PHP does: each key's first "[]" is interface 0, its second is 1.
    first, second = cfg.incoming
    assert [i.index for i in cfg.incoming] == ["0", "1"]
    assert first.remt_addr == (ipaddress.ip_network("1.2.3.0/24"),)
    assert first.url_paths == ("/incoming1",)
    assert first.key_body == "text"
    assert second.url_paths == ("/incoming2",)
    assert second.remt_addr == (ipaddress.ip_network("5.6.7.8/32"), ipaddress.ip_network("5.6.7.9/32"))
    assert second.key_body == "Body"


def test_presets_fill_in_and_written_keys_win() -> None:
    cfg = parse(
        "[websms]\nprovider = twilio\nauth_user = AC123\nauth_secret = tok\n"
        "key_body [x] = Text\nprovider [x] = twilio\n"
    )
    (out,) = cfg.outgoing
    assert out.index == "x"
    assert out.url == "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
    assert out.key_body == "Text"
    assert out.key_to == "To"


def test_incoming_preset_and_signature_secret_required() -> None:
    cfg = parse("[websmsd]\nprovider = telnyx\nsig_secret = a2V5\n")
    (inc,) = cfg.incoming
    assert inc.key_body == "data.payload.text"
    assert inc.val_require == ("data.event_type", "message.received")
    assert inc.sig_method == "telnyx"
    with pytest.raises(ConfigError, match=r"websms.conf:2: \[websmsd\] sig_method = twilio needs sig_secret"):
        parse("[websmsd]\nprovider = twilio\n")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[websms]\nauth_method = digest\n", r"websms.conf:2: \[websms\] auth_method: expected one of none"),
        ("[websms]\nprovider [b] = acme\n", r"websms.conf:2: \[websms\] \[b\] provider: expected one of"),
        ("[websms]\nbody_format = xml\n", r"websms.conf:2:.*body_format"),
        ("[websms]\nval_static = novalue\n", r"websms.conf:2:.*val_static: expected key1=value1"),
        ("[websms]\nval_unicode = UTF-16\n", r"websms.conf:2:.*val_unicode: expected UCS-2 or key=value"),
        ("[websms]\nval_numform = national\n", r"websms.conf:2:.*val_numform"),
        ("[websms]\nurl_host = ftp://x\n", r"websms.conf:2:.*url_host"),
        ("[websms]\nretry_first = soon\n", r"websms.conf:2:.*retry_first"),
        ("[websmsd]\nremt_addr = 10.0.0.0/33\n", r"websms.conf:2: \[websmsd\] remt_addr: expected addresses"),
        ("[websmsd]\nurl_path = sms\n", r"websms.conf:2:.*url_path: expected paths starting with /"),
        ("[websmsd]\nprox_addr [a] = 10.0.0.1\n", r"websms.conf:2: \[websmsd\] prox_addr applies to all"),
        ("[websmsd]\nprox_addr = nowhere\n", r"websms.conf:2: \[websmsd\] prox_addr"),
        ("[websmsd]\nval_require = onlyname\n", r"websms.conf:2:.*val_require: expected field=value"),
        ("[websmsd]\nsig_method = md5\n", r"websms.conf:2:.*sig_method: expected one of"),
    ],
)
def test_bad_values_name_file_line_and_key(text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        parse(text)


def test_proxy_settings_and_php_header_spelling() -> None:
    cfg = parse("[websmsd]\nprox_addr = 172.16.0.0/12, fd00::/8\nprox_header = HTTP_X_FORWARDED_FOR\n")
    assert cfg.daemon.prox_addr == (ipaddress.ip_network("172.16.0.0/12"), ipaddress.ip_network("fd00::/8"))
    assert cfg.daemon.prox_header == "X-Forwarded-For"
    # Secure by default: no proxy is trusted unless configured.
    assert parse("[websmsd]\nurl_path = /a\n").daemon.prox_addr == ()


def test_retry_settings() -> None:
    cfg = parse("[websms]\nretry_first = 2\nretry_max = 8\nretry_expire = 60\ntimeout = 3\n")
    assert (cfg.daemon.retry_first, cfg.daemon.retry_max, cfg.daemon.retry_expire) == (2, 8, 60)
    assert cfg.daemon.timeout == 3.0


@pytest.mark.parametrize(
    ("raw", "port"),
    [
        (" 8080", 8080),
        ("80", 80),
        ("", None),
        ("no", None),
        ("0", None),
        ("70000", None),
        ("8o", None),
        ("٣", None),
    ],
)
def test_websmsd_port(raw: str, port: int | None) -> None:
    assert websmsd_port({"WEBSMSD_PORT": raw}) == port
    assert websmsd_port({}) is None


def test_astqueue_section_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pbx.websms.config")
    parse("[astqueue]\ncontext = dp_entry_text_in\n")
    assert "[astqueue] is ignored" in caplog.text


def test_every_example_in_the_docs_parses() -> None:
    """docs/websms.md's examples work as written (at least as far as the configuration reader goes)."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs/websms.md").read_text()
    blocks = [b for b in re.findall(r"```ini\n(.*?)```", doc, re.S) if "[websms" in b]
    assert len(blocks) >= 9
    for block in blocks:
        cfg = parse(block)
        assert cfg.outgoing or cfg.incoming, block


def test_daemon_wide_keys_alone_configure_no_interface() -> None:
    # The seed's example lines prox_addr/prox_header and retry_* uncommented on their own.
    cfg = parse(
        "[websms]\nretry_first = 10\nretry_max = 60\nretry_expire = 600\ntimeout = 5\n"
        "[websmsd]\nprox_addr = 172.16.0.0/12\nprox_header = X-Forwarded-For\n"
    )
    assert cfg.outgoing == () and cfg.incoming == ()
    assert (cfg.daemon.retry_first, cfg.daemon.timeout) == (10, 5.0)
    assert cfg.daemon.prox_addr == (ipaddress.ip_network("172.16.0.0/12"),)
    with pytest.raises(ValueError, match="no \\[websms\\] interface"):
        cfg.outgoing_for("")


def test_unprotected_incoming_interfaces_are_named() -> None:
    cfg = parse(
        "[websmsd]\nurl_path[open] = /open\nurl_path[ip] = /ip\nremt_addr[ip] = 10.0.0.1\n"
        "provider[signed] = twilio\nsig_secret[signed] = t\n"
    )
    assert wconfig.unprotected(cfg) == ["open"]
