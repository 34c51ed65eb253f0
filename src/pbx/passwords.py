"""Password hygiene: warn loudly at every start about SIP passwords that scanners crack quickly.

SIP digest passwords are attacked around the clock by scanners (svcrack and friends); a short one or one
from a single character class falls in hours. The check is pure (`weaknesses`, `weak_passwords`); `warn`
is the one effect, called by `pbx init` before Asterisk starts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pbx.asterisk.conf import Config, ConfigError, read_config
from pbx.container.secrets import TOKEN

MIN_LENGTH = 10
# The files res_pjsip and its config wizard read (the wizard file includes pjsip_endpoint.conf).
PJSIP_FILES = ("pjsip.conf", "pjsip_wizard.conf")
# Keys holding a password: the wizard's per-object form and a plain "type = auth" section's own.
WIZARD_KEYS = ("inbound_auth/password", "outbound_auth/password")
CLASSES = (
    ("lower case letters", str.islower),
    ("upper case letters", str.isupper),
    ("digits", str.isdigit),
)


@dataclass(frozen=True)
class WeakPassword:
    where: str  # file:line
    section: str
    key: str
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.where} [{self.section}] {self.key}: {'; '.join(self.reasons)}"


def weaknesses(password: str) -> list[str]:
    """Why `password` is weak (empty when it is fine). Never includes the password itself."""
    if TOKEN in password:
        return ["still the seed placeholder, not a password"]
    reasons: list[str] = []
    if len(password) < MIN_LENGTH:
        reasons.append(f"shorter than {MIN_LENGTH} characters ({len(password)})")
    missing = [name for name, test in CLASSES if not any(test(c) for c in password)]
    if missing:
        reasons.append("no " + " and no ".join(missing))
    return reasons


def weak_passwords(configs: Iterable[Config]) -> list[WeakPassword]:
    found: list[WeakPassword] = []
    for config in configs:
        for section in config:
            keys = list(WIZARD_KEYS)
            if (section.get("type") or "").lower() == "auth":
                keys.append("password")
            for key in keys:
                value = section.get(key)
                if value is None:
                    continue
                reasons = weaknesses(value)
                if reasons:
                    found.append(WeakPassword(section.where(key), section.name, key, tuple(reasons)))
    return found


def warn(config_dir: Path, out: TextIO = sys.stderr) -> int:
    """Print one warning line per weak password (whatever SYSLOG_LEVEL says); returns how many."""
    configs: list[Config] = []
    for name in PJSIP_FILES:
        path = config_dir / name
        if not path.is_file():
            continue
        try:
            configs.append(read_config(path))
        except (ConfigError, OSError) as err:
            print(f"pbx: warning: SIP passwords not checked: {err}", file=out, flush=True)
    weak = weak_passwords(configs)
    for item in weak:
        print(f"pbx: WARNING: weak SIP password: {item.describe()}", file=out, flush=True)
    if weak:
        print(
            f"pbx: WARNING: use at least {MIN_LENGTH} characters with lower and upper case letters and"
            " digits; SIP passwords are attacked by scanners all day.",
            file=out,
            flush=True,
        )
    return len(weak)
