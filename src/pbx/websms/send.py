"""`websms`: send one SMS now; if the ITSP cannot take it, queue it on disk for websmsd to retry.

Shell:    websms TO FROM BODY [INDEX]
Dialplan: AGI(/usr/local/bin/websms,agi) reads WEBSMS_TO, WEBSMS_FROM, WEBSMS_INDEX and MESSAGE(body)
          from the channel and sets WEBSMS_STATUS (SENT, QUEUED or FAILED) and WEBSMS_REASON.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pbx.settings import Settings
from pbx.websms import config as wconfig
from pbx.websms.agi import AGI, AGIError, body_problem
from pbx.websms.outbound import Message, Outcome, deliver, number, sender
from pbx.websms.queue import DEFAULT_ROOT, Queued, Spool, backoff, new_id

log = logging.getLogger("pbx.websms")

# Asterisk runs every message dialplan of the PBX on one serial queue, and it waits for this AGI: the
# direct attempt gets at most this long for connect + answer, then websmsd's queue takes over (QUEUED).
# A healthy ITSP answers in well under a second. (An ITSP that accepted the SMS after we gave up may
# then get it twice: better than holding up every other text in the PBX.)
AGI_TIMEOUT = 2.0


@dataclass(frozen=True)
class Result:
    status: str  # SENT, QUEUED or FAILED
    reason: str


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("to", help='destination number (+E.164), or "agi" when run by the dialplan')
    parser.add_argument("sender", nargs="?", metavar="from", help="sender: the user's number (+E.164)")
    parser.add_argument("body", nargs="?", help="the text")
    parser.add_argument(
        "index", nargs="?", default="", help="interface index in websms.conf (default: first)"
    )
    parser.add_argument("--config", type=Path, default=wconfig.DEFAULT_FILE, help=argparse.SUPPRESS)
    parser.add_argument("--spool", type=Path, default=DEFAULT_ROOT, help=argparse.SUPPRESS)


def submit(cfg: wconfig.WebSMSConfig, spool: Spool, msg: Message, index: str, timeout: float) -> Result:
    """Try once now; queue on a temporary failure. Never raises for the ITSP's or the network's faults."""
    iface = cfg.outgoing_for(index)
    outcome: Outcome = asyncio.run(deliver(iface, msg, timeout))
    where = f"interface {iface.name} ({iface.url_host})"
    if outcome.status == "SENT":
        log.info("SMS to %s from %s sent via %s: %s", msg.to, msg.sender, where, outcome.reason)
        return Result("SENT", outcome.reason)
    if outcome.status == "FAILED":
        log.error("SMS to %s from %s refused via %s: %s", msg.to, msg.sender, where, outcome.reason)
        return Result("FAILED", outcome.reason)
    now = time.time()
    item = Queued(
        id=new_id(),
        index=iface.index,
        to=msg.to,
        sender=msg.sender,
        body=msg.body,
        created=now,
        attempts=1,
        next_at=now + backoff(1, cfg.daemon.retry_first, cfg.daemon.retry_max),
        reason=outcome.reason,
    )
    spool.ensure().enqueue(item)
    log.warning("SMS to %s from %s queued for retry via %s: %s", msg.to, msg.sender, where, outcome.reason)
    return Result("QUEUED", outcome.reason)


def _run_agi(args: argparse.Namespace) -> int:
    agi = AGI(sys.stdin, sys.stdout)
    env = agi.start()
    try:
        to = agi.get("${WEBSMS_TO}") or env.get("agi_extension", "")
        frm = agi.get("${WEBSMS_FROM}") or agi.get("${CALLERID(num)}")
        index = agi.get("${WEBSMS_INDEX}")
        raw = agi.message_body()
        try:
            problem = body_problem(raw)
            if problem:
                # FAILED, not a silently shortened SMS: the dialplan bounces it to the sender.
                raise ValueError(problem)
            cfg = wconfig.load(args.config)
            msg = Message(number(to, "destination"), sender(frm), raw.decode("utf-8", errors="replace"))
            result = submit(cfg, Spool(args.spool), msg, index, min(AGI_TIMEOUT, cfg.daemon.timeout))
        except (ValueError, OSError) as err:
            log.error("SMS to %s from %s not sent: %s", to, frm, err)
            result = Result("FAILED", str(err))
        agi.set("WEBSMS_STATUS", result.status)
        agi.set("WEBSMS_REASON", result.reason[:200])
    except AGIError as err:
        log.error("%s", err)
        return 1
    return 0


def command(args: argparse.Namespace, settings: Settings) -> int:
    if args.to == "agi" and args.sender is None:
        return _run_agi(args)
    if args.sender is None or args.body is None:
        raise ValueError("usage: websms TO FROM BODY [INDEX]  (or: websms agi, from the dialplan)")
    cfg = wconfig.load(args.config)
    msg = Message(number(args.to, "destination"), sender(args.sender), args.body)
    result = submit(cfg, Spool(args.spool), msg, args.index, cfg.daemon.timeout)
    print(f"{result.status}: {result.reason}")
    return 1 if result.status == "FAILED" else 0
