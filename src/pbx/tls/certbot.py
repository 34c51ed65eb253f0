"""certbot's layout: `<CERTBOT_DIR>/live/<name>/fullchain.pem` and `privkey.pem` (symlinks into archive/).

The folder name is only certbot's label (`example.com-0001` after a re-issue), so the names inside each
certificate decide which one fits.
"""

from __future__ import annotations

from pathlib import Path

CERT, KEY = "fullchain.pem", "privkey.pem"


def _scan(certbot_dir: Path) -> tuple[list[Path], str | None]:
    live = certbot_dir / "live"
    try:
        if not live.is_dir():
            return [], None
        found: list[Path] = []
        for folder in sorted(p for p in live.iterdir() if p.is_dir()):
            if (folder / CERT).is_file() and (folder / KEY).is_file():
                found += [folder / CERT, folder / KEY]
        return found, None
    except OSError as err:  # e.g. live/ readable by root only while we run as another user
        return [], f"{live}: unreadable: {err.strerror or err}"


def files(certbot_dir: Path) -> list[Path]:
    """Every fullchain.pem/privkey.pem pair under live/, in a stable order (symlinks not resolved)."""
    return _scan(certbot_dir)[0]


def read(certbot_dir: Path) -> tuple[dict[str, tuple[bytes, bytes]], list[str]]:
    """live/<name> -> (full chain, key) as bytes, and the problems met (unreadable folders or files).

    A lineage that vanishes while read (certbot between two renames) is skipped silently.
    """
    paths, problem = _scan(certbot_dir)
    problems = [problem] if problem else []
    found: dict[str, tuple[bytes, bytes]] = {}
    for folder in sorted({f.parent for f in paths}):
        try:
            found[folder.name] = ((folder / CERT).read_bytes(), (folder / KEY).read_bytes())
        except FileNotFoundError:
            continue
        except OSError as err:
            problems.append(f"certbot live/{folder.name}: unreadable: {err.strerror or err}")
    return found, problems
