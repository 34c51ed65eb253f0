"""Seed /etc/asterisk from the image when it is empty; never touch a configuration that exists.

Seed files mark every password with a token; each token becomes a fresh password, which is printed
once, at this first start, so no image ever ships a well-known default.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pbx.container.secrets import TOKEN, new_password

log = logging.getLogger(__name__)

_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_KEY = re.compile(r"^\s*([^=;\s][^=;]*?)\s*=>?")


@dataclass(frozen=True)
class Generated:
    file: str
    section: str
    key: str
    secret: str

    def describe(self) -> str:
        return f"{self.file} [{self.section}] {self.key} = {self.secret}"


def fill_secrets(
    text: str, filename: str, make: Callable[[], str] = new_password
) -> tuple[str, list[Generated]]:
    """Replace every token by a new secret and say where each one went (section and key)."""
    out: list[str] = []
    made: list[Generated] = []
    section = ""
    for original in text.splitlines(keepends=True):
        if m := _SECTION.match(original):
            section = m.group(1)
        key_match = _KEY.match(original)
        key = key_match.group(1) if key_match else "?"
        line = original
        while TOKEN in line:
            secret = make()
            made.append(Generated(filename, section, key, secret))
            line = line.replace(TOKEN, secret, 1)
        out.append(line)
    return "".join(out), made


def is_empty(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def seed(target: Path, source: Path, owner: str | None = "asterisk") -> list[Generated] | None:
    """Copy the seed into an empty target. Returns the secrets made, or None when target had content."""
    if not is_empty(target):
        log.info("%s has a configuration: left untouched", target)
        return None
    target.mkdir(parents=True, exist_ok=True)
    made: list[Generated] = []
    for src in sorted(source.rglob("*")):
        dst = target / src.relative_to(source)
        if src.is_dir():
            dst.mkdir(exist_ok=True)
            continue
        text, secrets = fill_secrets(src.read_text(encoding="utf-8"), dst.name)
        made += secrets
        tmp = dst.with_name(dst.name + ".seeding")
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o640)
        tmp.replace(dst)
    if owner:
        for path in [target, *target.rglob("*")]:
            shutil.chown(path, owner, owner)
    return made


def announce(made: list[Generated], target: Path) -> str:
    """The banner printed once, whatever SYSLOG_LEVEL says: the only place these passwords are shown."""
    lines = [f"pbx: seeded {target} with the default configuration."]
    if made:
        lines.append("pbx: generated passwords (shown only now; change them in the files named):")
        lines += [f"pbx:   {g.describe()}" for g in made]
    return "\n".join(lines)
