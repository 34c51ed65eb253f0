"""ACME_FILE, ACME_POSTHOOK, TLS_KEYBITS, TLS_CERTDAYS, CERTBOT_DIR: defaults, overrides, bad values."""

from __future__ import annotations

from pathlib import Path

from pbx.tls import settings


def test_defaults() -> None:
    tls, warnings = settings.parse({}, "Tele.Example.com.")
    assert warnings == []
    assert tls.hostname == "tele.example.com" and tls.domain == "example.com"
    assert tls.acme_file == Path("/acme/acme.json")
    assert tls.certbot_dir == Path("/etc/letsencrypt")
    assert tls.posthook == "pbx tls reload"
    assert (tls.key_bits, tls.cert_days) == (2048, 30)
    assert (tls.cert_file, tls.key_file) == (
        Path("/etc/ssl/asterisk/cert.pem"),
        Path("/etc/ssl/asterisk/priv_key.pem"),
    )


def test_overrides_and_an_empty_posthook() -> None:
    env = {
        "ACME_FILE": "/x/a.json",
        "CERTBOT_DIR": "/le",
        "ACME_POSTHOOK": "",
        "TLS_KEYBITS": "4096",
        "TLS_CERTDAYS": "7",
    }
    tls, warnings = settings.parse(env, "pbx")
    assert warnings == []
    assert (tls.acme_file, tls.certbot_dir, tls.posthook) == (Path("/x/a.json"), Path("/le"), None)
    assert (tls.key_bits, tls.cert_days) == (4096, 7)
    assert (
        settings.parse({"ACME_POSTHOOK": "sv restart asterisk"}, "pbx")[0].posthook == "sv restart asterisk"
    )


def test_bad_values_warn_and_fall_back() -> None:
    env = {"TLS_KEYBITS": "1024", "TLS_CERTDAYS": "soon", "ACME_FILE": "acme.json"}
    tls, warnings = settings.parse(env, "pbx")
    assert (tls.key_bits, tls.cert_days, tls.acme_file) == (2048, 30, Path("/acme/acme.json"))
    assert len(warnings) == 3
    assert any("TLS_KEYBITS='1024' is outside 2048 to 8192" in w for w in warnings)
    assert any("TLS_CERTDAYS='soon'" in w for w in warnings)
    assert any("ACME_FILE='acme.json' is not an absolute path" in w for w in warnings)
