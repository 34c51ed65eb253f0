"""The TLS add-on's environment variables, typed, with a warning (never a crash) for a bad value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pbx.settings import Settings

CERT_FILE = Path("/etc/ssl/asterisk/cert.pem")
KEY_FILE = Path("/etc/ssl/asterisk/priv_key.pem")
DEFAULT_POSTHOOK = "pbx tls reload"


@dataclass(frozen=True)
class TlsSettings:
    hostname: str = "pbx"
    cert_file: Path = CERT_FILE
    key_file: Path = KEY_FILE
    acme_file: Path = Path("/acme/acme.json")
    certbot_dir: Path = Path("/etc/letsencrypt")
    # None: nothing runs after a new certificate is installed (ACME_POSTHOOK set but empty).
    posthook: str | None = DEFAULT_POSTHOOK
    cert_days: int = 30
    key_bits: int = 2048
    owner: str | None = "asterisk"  # None: leave ownership alone (tests)

    @property
    def domain(self) -> str:
        _, _, rest = self.hostname.partition(".")
        return rest


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int, warn: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        warn.append(f"{name}={raw!r} is not a whole number from {low} to {high}; using {default}")
        return default
    if not low <= value <= high:
        warn.append(f"{name}={raw!r} is outside {low} to {high}; using {default}")
        return default
    return value


def _path(env: Mapping[str, str], name: str, default: Path, warn: list[str]) -> Path:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.startswith("/"):
        warn.append(f"{name}={raw!r} is not an absolute path; using {default}")
        return default
    return Path(raw)


def parse(env: Mapping[str, str], hostname: str) -> tuple[TlsSettings, list[str]]:
    """TLS settings from an environment plus the warnings to log. Pure."""
    warn: list[str] = []
    # Unset: the default; set but empty: no posthook at all.
    raw_hook = env.get("ACME_POSTHOOK")
    posthook = DEFAULT_POSTHOOK if raw_hook is None else (raw_hook.strip() or None)
    settings = TlsSettings(
        hostname=hostname.strip().rstrip(".").lower(),
        acme_file=_path(env, "ACME_FILE", Path("/acme/acme.json"), warn),
        certbot_dir=_path(env, "CERTBOT_DIR", Path("/etc/letsencrypt"), warn),
        posthook=posthook,
        # Below 2048 bits OpenSSL's default security level refuses the key. Above 8192 bits a key takes
        # minutes of CPU (at every renewal, during a start) and gains nothing a phone can use.
        key_bits=_int(env, "TLS_KEYBITS", 2048, 2048, 8192, warn),
        cert_days=_int(env, "TLS_CERTDAYS", 30, 1, 36500, warn),
    )
    return settings, warn


def from_environment(settings: Settings) -> tuple[TlsSettings, list[str]]:
    return parse(os.environ, settings.hostname)
