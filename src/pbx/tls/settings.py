"""The TLS add-on's environment variables, typed, with a warning (never a crash) for a bad value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pbx.settings import Settings, absolute_path, domain_of, int_in_range

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
        return domain_of(self.hostname)


def parse(env: Mapping[str, str], hostname: str) -> tuple[TlsSettings, list[str]]:
    """TLS settings from an environment plus the warnings to log. Pure."""
    warn: list[str] = []
    # Unset: the default; set but empty: no posthook at all.
    raw_hook = env.get("ACME_POSTHOOK")
    posthook = DEFAULT_POSTHOOK if raw_hook is None else (raw_hook.strip() or None)
    settings = TlsSettings(
        hostname=hostname.strip().rstrip(".").lower(),
        acme_file=absolute_path(env, "ACME_FILE", Path("/acme/acme.json"), warn),
        certbot_dir=absolute_path(env, "CERTBOT_DIR", Path("/etc/letsencrypt"), warn),
        posthook=posthook,
        # Below 2048 bits OpenSSL's default security level refuses the key. Above 8192 bits a key takes
        # minutes of CPU (at every renewal, during a start) and gains nothing a phone can use.
        key_bits=int_in_range(env, "TLS_KEYBITS", 2048, 2048, 8192, warn),
        cert_days=int_in_range(env, "TLS_CERTDAYS", 30, 1, 36500, warn),
    )
    return settings, warn


def from_environment(settings: Settings) -> tuple[TlsSettings, list[str]]:
    return parse(os.environ, settings.hostname)
