"""Provider presets: what each ITSP's SMS API expects, as data.

A preset only fills in defaults: any key written in websms.conf wins over it. `{auth_user}` in a URL
path is replaced by the interface's auth_user (the account id that Twilio, Plivo and Sinch put in the
path). Field names with dots address nested JSON (`data.payload.text`), a numeric part indexes a list
(`to.0.phone_number`), and an outgoing field name ending in `[]` sends the value as a one-element list.
"""

from __future__ import annotations

from types import MappingProxyType

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

# Outgoing ([websms]) defaults per provider.
OUTGOING: MappingProxyType[str, MappingProxyType[str, str]] = MappingProxyType(
    {
        name: MappingProxyType(keys)
        for name, keys in {
            "twilio": {
                "url_host": "https://api.twilio.com",
                "url_path": "/2010-04-01/Accounts/{auth_user}/Messages.json",
                "auth_method": "basic",
                "body_format": "form",
                "key_to": "To",
                "key_from": "From",
                "key_body": "Body",
            },
            "telnyx": {
                "url_host": "https://api.telnyx.com",
                "url_path": "/v2/messages",
                "auth_method": "bearer",
                "body_format": "json",
                "key_to": "to",
                "key_from": "from",
                "key_body": "text",
            },
            "vonage": {
                "url_host": "https://rest.nexmo.com",
                "url_path": "/sms/json",
                "auth_method": "plain",
                "key_user": "api_key",
                "key_secret": "api_secret",
                "body_format": "form",
                "key_to": "to",
                "key_from": "from",
                "key_body": "text",
                "val_numform": "E164",
                "val_unicode": "type=unicode",
                "resp_check": "messages.0.status=0",
            },
            "plivo": {
                "url_host": "https://api.plivo.com",
                "url_path": "/v1/Account/{auth_user}/Message/",
                "auth_method": "basic",
                "body_format": "json",
                "key_to": "dst",
                "key_from": "src",
                "key_body": "text",
                "val_numform": "E164",
            },
            "46elks": {
                "url_host": "https://api.46elks.com",
                "url_path": "/a1/sms",
                "auth_method": "basic",
                "body_format": "form",
                "key_to": "to",
                "key_from": "from",
                "key_body": "message",
                "resp_check": "status=created",
            },
            "zadarma": {
                "url_host": "https://api.zadarma.com",
                "url_path": "/v1/sms/send/",
                "auth_method": "zadarma",
                "body_format": "form",
                "key_to": "number",
                "key_from": "caller_id",
                "key_body": "message",
                "val_numform": "E164",
                "resp_check": "status=success",
            },
            "sinch": {
                "url_host": "https://us.sms.api.sinch.com",
                "url_path": "/xms/v1/{auth_user}/batches",
                "auth_method": "bearer",
                "body_format": "json",
                "key_to": "to[]",
                "key_from": "from",
                "key_body": "body",
            },
        }.items()
    }
)

# Incoming ([websmsd]) defaults per provider.
INCOMING: MappingProxyType[str, MappingProxyType[str, str]] = MappingProxyType(
    {
        name: MappingProxyType(keys)
        for name, keys in {
            "twilio": {
                "key_to": "To",
                "key_from": "From",
                "key_body": "Body",
                "key_id": "MessageSid",
                "sig_method": "twilio",
                "resp_ack": TWIML_EMPTY,
                "resp_type": "text/xml",
            },
            "telnyx": {
                "key_to": "data.payload.to.0.phone_number",
                "key_from": "data.payload.from.phone_number",
                "key_body": "data.payload.text",
                "key_id": "data.payload.id",
                "val_require": "data.event_type=message.received",
                "sig_method": "telnyx",
            },
            "vonage": {
                "key_to": "to",
                "key_from": "msisdn",
                "key_body": "text",
                "key_id": "messageId",
                "val_numform": "E164",
                "sig_method": "vonage",
            },
            "plivo": {
                "key_to": "To",
                "key_from": "From",
                "key_body": "Text",
                "key_id": "MessageUUID",
                "val_numform": "E164",
                "sig_method": "plivo",
            },
            "46elks": {
                "key_to": "to",
                "key_from": "from",
                "key_body": "message",
                "key_id": "id",
            },
            "zadarma": {
                "key_to": "result.caller_did",
                "key_from": "result.caller_id",
                "key_body": "result.text",
                # Zadarma sends no message id: the signed `result` document itself identifies a retry.
                "key_id": "result",
                "val_require": "event=SMS",
                "val_numform": "E164",
                "key_echo": "zd_echo",
                "sig_method": "zadarma",
            },
            "sinch": {
                "key_to": "to",
                "key_from": "from",
                "key_body": "body",
                "key_id": "id",
                "val_require": "type=mo_text",
                "val_numform": "E164",
            },
        }.items()
    }
)

NAMES: tuple[str, ...] = tuple(OUTGOING)
