from __future__ import annotations

from pbx.health import judge

BOOTED = "Asterisk has fully booted.\n"


def test_healthy_when_booted_and_every_service_runs() -> None:
    verdict = judge(BOOTED, {"asterisk": "run", "autoban": "run"})
    assert verdict.healthy
    assert verdict.report() == "healthy"


def test_no_answer_is_unhealthy_even_if_the_process_runs() -> None:
    verdict = judge(None, {"asterisk": "run"})
    assert not verdict.healthy
    assert verdict.report() == "unhealthy: Asterisk did not answer within 5 s"


def test_an_answer_that_is_not_booted_is_unhealthy() -> None:
    verdict = judge("Unable to connect to remote asterisk (does /var/run/asterisk/asterisk.ctl exist?)", {})
    assert not verdict.healthy
    assert "Asterisk is not ready: Unable to connect" in verdict.report()


def test_every_service_that_is_not_running_is_named() -> None:
    verdict = judge(BOOTED, {"asterisk": "run", "autoban": "down", "websmsd": "unknown"})
    assert verdict.reasons == ("service autoban is down", "service websmsd is unknown")
