"""`pbx health`: healthy only when Asterisk itself answers and every enabled service runs.

A process that exists is not enough: a hung Asterisk keeps its PID. We ask it over its control socket,
with a deadline, whether it has fully booted.
"""

from __future__ import annotations

import argparse
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pbx.container import services
from pbx.settings import Settings

ASTERISK_DEADLINE = 5.0
BOOTED = "fully booted"


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reasons: tuple[str, ...]

    def report(self) -> str:
        return "healthy" if self.healthy else "unhealthy: " + "; ".join(self.reasons)


def judge(asterisk_answer: str | None, service_states: dict[str, str]) -> Verdict:
    """Pure: the verdict from what Asterisk answered (None: no answer in time) and runit's states."""
    reasons: list[str] = []
    if asterisk_answer is None:
        reasons.append(f"Asterisk did not answer within {ASTERISK_DEADLINE:.0f} s")
    elif BOOTED not in asterisk_answer:
        reasons.append(f"Asterisk is not ready: {asterisk_answer.strip()[:200] or 'no answer'}")
    reasons += [f"service {name} is {st}" for name, st in service_states.items() if st != "run"]
    return Verdict(not reasons, tuple(reasons))


def ask_asterisk(deadline: float = ASTERISK_DEADLINE) -> str | None:
    try:
        done = subprocess.run(
            ["asterisk", "-rx", "core waitfullybooted"],
            capture_output=True,
            text=True,
            timeout=deadline,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    except OSError as err:
        return f"cannot run asterisk: {err}"
    return done.stdout + done.stderr


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Prints 'healthy' or 'unhealthy: <reasons>'; the image's HEALTHCHECK runs it."


def command(_args: argparse.Namespace, _settings: Settings) -> int:
    return main()


def main(active: Path = services.ACTIVE) -> int:
    verdict = judge(ask_asterisk(), services.states(active))
    print(verdict.report())
    return 0 if verdict.healthy else 1
