"""WebSMS: text messages between the PBX's phones and an ITSP's HTTP API, with nothing lost.

`websms` (send.py) sends one SMS out, from the dialplan (AGI) or a shell; `websmsd` (daemon.py) takes the
ITSP's webhooks in, hands them to Asterisk through call files, and retries queued outgoing SMS.
"""
