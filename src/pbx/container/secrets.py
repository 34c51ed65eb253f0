"""Generated passwords: strong, yet easy to type on a phone's keyboard."""

from __future__ import annotations

import secrets
import string

TOKEN = "__GENERATED_SECRET__"  # noqa: S105 - a placeholder, not a password

# No characters that Asterisk's config syntax gives a meaning to (; = , [ ] " #) and none that look alike.
_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "Il1O0o")
_GROUPS, _GROUP_LEN = 4, 5


def new_password() -> str:
    """Four groups of five letters/digits joined by '-': about 110 bits, every character class present."""
    while True:
        groups = ["".join(secrets.choice(_ALPHABET) for _ in range(_GROUP_LEN)) for _ in range(_GROUPS)]
        word = "-".join(groups)
        if all(any(test(c) for c in word) for test in (str.islower, str.isupper, str.isdigit)):
            return word
