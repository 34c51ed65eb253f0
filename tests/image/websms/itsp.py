"""A stand-in ITSP for the WebSMS image tests (runs in the peer container, python3-aiohttp).

serve:  an SMS API on :8000 that records every request (requests.jsonl) and answers 201 like Twilio, or
        503 while the file `down` exists in its folder.
post:   a Twilio-style webhook (form, X-Twilio-Signature) carrying the text of a file to websmsd.
"""

import base64
import hashlib
import hmac
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path("/tmp/itsp")


async def handle(request):
    from aiohttp import web

    body = await request.read()
    record = {
        "method": request.method,
        "path": request.path_qs,
        "headers": dict(request.headers),
        "body": base64.b64encode(body).decode(),
    }
    down = (HERE / "down").exists()
    record["answered"] = 503 if down else 201
    with (HERE / "requests.jsonl").open("a") as log:
        log.write(json.dumps(record) + "\n")
    if down:
        return web.Response(status=503, text="maintenance")
    return web.json_response({"sid": "SM0001", "status": "queued"}, status=201)


def serve() -> None:
    from aiohttp import web

    HERE.mkdir(parents=True, exist_ok=True)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, port=8000, print=None)


def post(url: str, token: str, to: str, sender: str, text_file: str, sid: str, forge: str = "") -> None:
    text = Path(text_file).read_text(encoding="utf-8")
    params = {"To": to, "From": sender, "Body": text, "MessageSid": sid}
    signed = url + "".join(k + v for k, v in sorted(params.items()))
    signature = base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()
    request = urllib.request.Request(  # noqa: S310 (the test run's own http URL)
        url,
        data=urllib.parse.urlencode(params).encode(),
        headers={"X-Twilio-Signature": forge or signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            print(answer.status, answer.read().decode())
    except urllib.error.HTTPError as err:
        print(err.code, err.read().decode())


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        post(*sys.argv[2:])
