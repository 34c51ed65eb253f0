"""Which certificate names serve this PBX: HOSTNAME or its domain, wildcards included. Pure."""

from __future__ import annotations

# Lower rank is better: the host's own name beats a wildcard that covers it, which beats a certificate
# for the bare domain (usable when phones are configured with the domain name).
EXACT_HOST, WILDCARD_HOST, EXACT_DOMAIN, WILDCARD_DOMAIN = range(4)
NO_MATCH = 99


def normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def covers(pattern: str, name: str) -> bool:
    """Does the certificate name `pattern` (maybe `*.example.com`) cover `name`?

    A wildcard stands for exactly one leftmost label, as in RFC 6125: `*.example.com` covers
    `tele.example.com` but neither `example.com` nor `a.b.example.com`.
    """
    pattern, name = normalize(pattern), normalize(name)
    if not pattern or not name:
        return False
    if pattern.startswith("*."):
        label, dot, rest = name.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return pattern == name


def rank(cert_names: list[str], hostname: str) -> int:
    """How well a certificate with these names fits `hostname` (see the constants); NO_MATCH if not."""
    host = normalize(hostname)
    _, _, domain = host.partition(".")
    best = NO_MATCH
    for pattern in cert_names:
        wild = normalize(pattern).startswith("*.")
        if covers(pattern, host):
            best = min(best, WILDCARD_HOST if wild else EXACT_HOST)
        elif domain and covers(pattern, domain):
            best = min(best, WILDCARD_DOMAIN if wild else EXACT_DOMAIN)
    return best
