"""websms.conf -> typed interfaces. Pure: reads a parsed Config, never the network.

Sections: `[websms]` (outgoing, one interface per index), `[websmsd]` (incoming, likewise). A key written
`key [idx] = v` belongs to interface `idx`; a key without an index is the default of every interface of
that section; a key nobody wrote comes from the interface's `provider` preset, then from the built-in
default (those of the image this one succeeds). Without any index there is one interface, named "".
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pbx.asterisk.conf import Config, ConfigError, Entry, Section, as_int, read_config
from pbx.websms import providers

log = logging.getLogger(__name__)

DEFAULT_FILE = Path("/etc/asterisk/websms.conf")

AUTH_METHODS = ("none", "plain", "basic", "bearer", "zadarma")
BODY_FORMATS = ("form", "json")
SIG_METHODS = (
    "none",
    "twilio",
    "plivo",
    "plivo-v2",
    "telnyx",
    "zadarma",
    "vonage",
    "vonage-md5",
    "vonage-sha1",
    "vonage-sha256",
    "vonage-sha512",
)

OUT_DEFAULTS = {
    "url_host": "http://localhost",
    "url_path": "/",
    "auth_method": "basic",
    "auth_user": "",
    "auth_secret": "",
    "key_user": "",
    "key_secret": "",
    "key_to": "To",
    "key_from": "From",
    "key_body": "Body",
    "body_format": "form",
    "resp_check": "",
    "val_numform": "",
    "val_unicode": "",
    "val_static": "",
}
IN_DEFAULTS = {
    "url_path": "",
    "remt_addr": "",
    "key_to": "To",
    "key_from": "From",
    "key_body": "Body",
    "key_id": "",
    "key_echo": "",
    "resp_ack": "",
    "resp_type": "text/plain",
    "val_require": "",
    "val_numform": "",
    "sig_method": "none",
    "sig_secret": "",
    "url_public": "",
}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Outgoing:
    """One ITSP API to send through."""

    index: str
    provider: str
    url_host: str
    url_path: str
    auth_method: str
    auth_user: str
    auth_secret: str
    key_user: str
    key_secret: str
    key_to: str
    key_from: str
    key_body: str
    body_format: str
    resp_check: str
    val_numform: str
    val_unicode: str
    val_static: tuple[tuple[str, str], ...]

    @property
    def url(self) -> str:
        return self.url_host + self.url_path

    @property
    def name(self) -> str:
        return self.index or "(default)"


@dataclass(frozen=True)
class Incoming:
    """One ITSP webhook to accept: chosen by URL path and/or source address."""

    index: str
    provider: str
    url_paths: tuple[str, ...]
    remt_addr: tuple[Network, ...]
    key_to: str
    key_from: str
    key_body: str
    key_id: str
    key_echo: str
    resp_ack: str
    resp_type: str
    val_require: tuple[str, str] | None
    val_numform: str
    sig_method: str
    sig_secret: str
    url_public: str

    @property
    def name(self) -> str:
        return self.index or "(default)"


@dataclass(frozen=True)
class Daemon:
    """Settings of websmsd as a whole (not per interface)."""

    prox_addr: tuple[Network, ...] = ()
    prox_header: str = "X-Forwarded-For"
    timeout: float = 15.0
    retry_first: int = 30
    retry_max: int = 1800
    retry_expire: int = 86400


@dataclass(frozen=True)
class WebSMSConfig:
    outgoing: tuple[Outgoing, ...] = ()
    incoming: tuple[Incoming, ...] = ()
    daemon: Daemon = field(default_factory=Daemon)

    def outgoing_for(self, index: str) -> Outgoing:
        """The interface for WEBSMS_INDEX `index`; empty means the first one written."""
        if not self.outgoing:
            raise ValueError("no [websms] interface is configured in websms.conf")
        if not index:
            return self.outgoing[0]
        for iface in self.outgoing:
            if iface.index == index:
                return iface
        known = ", ".join(i.name for i in self.outgoing)
        raise ValueError(f"WEBSMS_INDEX={index!r} names no [websms] interface (known: {known})")


def load(path: Path = DEFAULT_FILE) -> WebSMSConfig:
    """Read websms.conf; a missing file means WebSMS is not configured (empty config)."""
    if not path.exists():
        return WebSMSConfig()
    return parse(read_config(path))


def parse(config: Config) -> WebSMSConfig:
    if config.get("astqueue") is not None:
        log.warning("%s: [astqueue] is ignored: incoming SMS enter context dp_entry_websms_in", config.path)
    out = config.get("websms")
    inc = config.get("websmsd")
    outgoing = tuple(_outgoing(out, idx) for idx in _indices(out)) if out is not None else ()
    incoming = tuple(_incoming(inc, idx) for idx in _indices(inc)) if inc is not None else ()
    if out is not None and not _written(out):
        outgoing = ()
    if inc is not None and not _written(inc):
        incoming = ()
    return WebSMSConfig(outgoing, incoming, _daemon(out, inc))


# Keys that tune the daemon or the retry queue as a whole: they configure no interface by themselves.
DAEMON_KEYS = frozenset({"prox_addr", "prox_header", "timeout", "retry_first", "retry_max", "retry_expire"})


def _written(section: Section) -> bool:
    """True when the section configures an interface: any key beyond the daemon-wide ones.

    Uncommenting only `prox_addr` or `retry_first` must not open a webhook to anyone nor point the
    outgoing side at the built-in default URL.
    """
    return any(e.key.lower() not in DAEMON_KEYS for e in section.entries)


def unprotected(cfg: WebSMSConfig) -> list[str]:
    """Names of incoming interfaces that accept a webhook from anyone: no signature check, no remt_addr."""
    return [i.name for i in cfg.incoming if i.sig_method == "none" and not i.remt_addr]


def _indices(section: Section) -> list[str]:
    seen: list[str] = []
    for e in section.entries:
        if e.index is not None and e.index not in seen:
            seen.append(e.index)
    return seen or [""]


def _entry(section: Section, key: str, index: str) -> Entry | None:
    """The entry that sets `key` for interface `index`: its own, else the section-wide one."""
    wanted = key.lower()
    own = plain = None
    for e in section.entries:
        if e.key.lower() != wanted:
            continue
        if e.index is None:
            plain = e
        elif e.index == index:
            own = e
    return own or plain


class _Lookup:
    """Values for one interface: written > preset > built-in default, with file:line for errors."""

    def __init__(self, section: Section, index: str, presets: dict, defaults: dict[str, str]) -> None:
        self.section, self.index, self.defaults = section, index, defaults
        entry = _entry(section, "provider", index)
        self.provider_entry = entry
        self.provider = entry.value.strip().lower() if entry else ""
        if self.provider and self.provider not in presets:
            self.fail(entry, f"provider: expected one of {', '.join(providers.NAMES)}, got {entry.value!r}")
        self.preset = presets.get(self.provider, {})

    def entry(self, key: str) -> Entry | None:
        return _entry(self.section, key, self.index)

    def __call__(self, key: str) -> str:
        entry = self.entry(key)
        if entry is not None:
            return entry.value.strip()
        return self.preset.get(key, self.defaults[key])

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self(key).lower()
        if value not in allowed:
            self.fail(self.entry(key), f"{key}: expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def fail(self, entry: Entry | None, message: str) -> None:
        where = f"[{self.section.name}]" + (f" [{self.index}]" if self.index else "")
        # A value that came from a preset is wrong because of the provider line: point there.
        entry = entry or self.provider_entry
        if entry is None:
            raise ConfigError(self.section.file, self.section.line, f"{where} {message}")
        raise ConfigError(entry.file, entry.line, f"{where} {message}")


def _outgoing(section: Section, index: str) -> Outgoing:
    get = _Lookup(section, index, dict(providers.OUTGOING), OUT_DEFAULTS)
    host = get("url_host").rstrip("/")
    if "://" not in host:
        host = "https://" + host  # the original's samples wrote bare host names
    if not host.startswith(("https://", "http://")):
        get.fail(get.entry("url_host"), f"url_host: expected an http(s) URL, got {host!r}")
    auth_user = get("auth_user")
    path = get("url_path").replace("{auth_user}", auth_user)
    if path and not path.startswith("/"):
        path = "/" + path
    static = _pairs(get, "val_static")
    unicode = get("val_unicode")
    if unicode and unicode.upper() != "UCS-2" and "=" not in unicode:
        get.fail(get.entry("val_unicode"), f"val_unicode: expected UCS-2 or key=value, got {unicode!r}")
    numform = _numform(get)
    return Outgoing(
        index=index,
        provider=get.provider,
        url_host=host,
        url_path=path,
        auth_method=get.choice("auth_method", AUTH_METHODS),
        auth_user=auth_user,
        auth_secret=get("auth_secret"),
        key_user=get("key_user"),
        key_secret=get("key_secret"),
        key_to=get("key_to"),
        key_from=get("key_from"),
        key_body=get("key_body"),
        body_format=get.choice("body_format", BODY_FORMATS),
        resp_check=get("resp_check"),
        val_numform=numform.upper(),
        val_unicode=unicode,
        val_static=static,
    )


def _numform(get: _Lookup) -> str:
    """val_numform, which both directions accept: E164 or nothing."""
    numform = get("val_numform")
    if numform and numform.upper() != "E164":
        get.fail(get.entry("val_numform"), f"val_numform: expected E164 or nothing, got {numform!r}")
    return numform


def _pairs(get: _Lookup, key: str) -> tuple[tuple[str, str], ...]:
    raw = get(key)
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            get.fail(get.entry(key), f"{key}: expected key1=value1,key2=value2, got {raw!r}")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def _incoming(section: Section, index: str) -> Incoming:
    get = _Lookup(section, index, dict(providers.INCOMING), IN_DEFAULTS)
    paths = tuple(p.strip() for p in get("url_path").split(",") if p.strip())
    for p in paths:
        if not p.startswith("/"):
            get.fail(get.entry("url_path"), f"url_path: expected paths starting with /, got {p!r}")
    require = get("val_require")
    required: tuple[str, str] | None = None
    if require:
        name, eq, value = require.partition("=")
        if not eq:
            get.fail(get.entry("val_require"), f"val_require: expected field=value, got {require!r}")
        required = (name.strip(), value.strip())
    sig = get.choice("sig_method", SIG_METHODS)
    secret = get("sig_secret")
    if sig != "none" and not secret:
        get.fail(get.entry("sig_method"), f"sig_method = {sig} needs sig_secret (the provider's key)")
    public = get("url_public").rstrip("/")
    if public and not re.match(r"https?://", public):
        get.fail(get.entry("url_public"), f"url_public: expected an http(s) URL, got {public!r}")
    numform = _numform(get)
    return Incoming(
        index=index,
        provider=get.provider,
        url_paths=paths,
        remt_addr=_networks(get, "remt_addr"),
        key_to=get("key_to"),
        key_from=get("key_from"),
        key_body=get("key_body"),
        key_id=get("key_id"),
        key_echo=get("key_echo"),
        resp_ack=get("resp_ack"),
        resp_type=get("resp_type"),
        val_require=required,
        val_numform=numform.upper(),
        sig_method=sig,
        sig_secret=secret,
        url_public=public,
    )


def parse_networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR ranges, IPv4 and IPv6 (ValueError on a bad one)."""
    nets: list[Network] = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        nets.append(ipaddress.ip_network(item, strict=False))
    return tuple(nets)


def _networks(get: _Lookup, key: str) -> tuple[Network, ...]:
    try:
        return parse_networks(get(key))
    except ValueError as err:
        get.fail(get.entry(key), f"{key}: expected addresses or CIDR ranges, {err}")
    return ()


def _daemon(out: Section | None, inc: Section | None) -> Daemon:
    base = Daemon()
    prox_addr, prox_header = base.prox_addr, base.prox_header
    if inc is not None:
        for entry in inc.entries:
            if entry.key.lower() in ("prox_addr", "prox_header") and entry.index is not None:
                raise ConfigError(
                    entry.file,
                    entry.line,
                    f"[websmsd] {entry.key} applies to all interfaces: write it without [index]",
                )
        entry = _entry(inc, "prox_addr", "")
        if entry is not None:
            try:
                prox_addr = parse_networks(entry.value)
            except ValueError as err:
                raise ConfigError(entry.file, entry.line, f"[websmsd] prox_addr: {err}") from None
        entry = _entry(inc, "prox_header", "")
        if entry is not None and entry.value.strip():
            prox_header = header_name(entry.value.strip())
    numbers: dict[str, int] = {}
    if out is not None:
        numbers = {
            "timeout": as_int(out, "timeout", int(base.timeout), minimum=1, maximum=300),
            "retry_first": as_int(out, "retry_first", base.retry_first, minimum=1, maximum=86400),
            "retry_max": as_int(out, "retry_max", base.retry_max, minimum=1, maximum=86400),
            "retry_expire": as_int(out, "retry_expire", base.retry_expire, minimum=1, maximum=30 * 86400),
        }
    return Daemon(
        prox_addr=prox_addr,
        prox_header=prox_header,
        timeout=float(numbers.get("timeout", base.timeout)),
        retry_first=numbers.get("retry_first", base.retry_first),
        retry_max=numbers.get("retry_max", base.retry_max),
        retry_expire=numbers.get("retry_expire", base.retry_expire),
    )


def header_name(raw: str) -> str:
    """An HTTP header name; PHP's `HTTP_X_FORWARDED_FOR` spelling (the original's) is accepted too."""
    if raw.upper().startswith("HTTP_"):
        return "-".join(part.capitalize() for part in raw[5:].split("_"))
    return raw
