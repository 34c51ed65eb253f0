"""The `autoban` command language, parsed (pure) and carried out on a Policy (pure).

    show [--json]                      list [SET...]
    add DSET... = [SSET...] [ADDR...]  del DSET... = [SSET...] [ADDR...]      del all = all
    who ADDR                           metrics                                 help

SET: watch, jail, parole, allow (or whitelist), deny (or blacklist); `all` means every one of them.
ADDR: an address; allow and deny also take CIDR (10.0.0.0/8) and a-b ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pbx.autoban.addresses import key_label, parse_address, parse_entry
from pbx.autoban.policy import LISTS, TIMED, Action, Policy, Set

SET_NAMES: dict[str, Set] = {s.value: s for s in Set} | {"whitelist": Set.ALLOW, "blacklist": Set.DENY}
ALL = "all"
VERBS = ("show", "list", "add", "del", "who", "metrics", "help", "daemon")


@dataclass(frozen=True)
class Request:
    verb: str
    dsets: tuple[Set, ...] = ()
    ssets: tuple[Set, ...] = ()
    addrs: tuple[str, ...] = ()
    json: bool = False

    def to_wire(self) -> dict[str, object]:
        return {
            "op": self.verb,
            "dsets": [s.value for s in self.dsets],
            "ssets": [s.value for s in self.ssets],
            "addrs": list(self.addrs),
        }

    @classmethod
    def from_wire(cls, doc: dict[str, object]) -> Request:
        def sets(name: str) -> tuple[Set, ...]:
            values = doc.get(name, [])
            if not isinstance(values, list):
                raise ValueError(f"{name}: expected a list")
            return tuple(_set(str(v)) for v in values)

        addrs = doc.get("addrs", [])
        if not isinstance(addrs, list):
            raise ValueError("addrs: expected a list")
        return cls(str(doc.get("op", "")), sets("dsets"), sets("ssets"), tuple(str(a) for a in addrs))


def _set(word: str) -> Set:
    try:
        return SET_NAMES[word.lower()]
    except KeyError:
        known = ", ".join([*SET_NAMES, ALL])
        raise ValueError(f"unknown set {word!r} (known: {known})") from None


def _sets(words: list[str]) -> tuple[Set, ...]:
    out: list[Set] = []
    for word in words:
        for one in Set if word.lower() == ALL else (_set(word),):
            if one not in out:
                out.append(one)
    return tuple(out)


def _is_set(word: str) -> bool:
    return word.lower() in SET_NAMES or word.lower() == ALL


def parse(argv: list[str]) -> Request:  # noqa: PLR0912 - one branch per verb
    """The words after `autoban` -> a Request; ValueError with a clear message otherwise."""
    words = [w for w in argv if w != "--json"]
    as_json = len(words) != len(argv)
    if not words or words[0] in ("help", "-h", "--help"):
        return Request("help")
    verb, rest = words[0].lower(), words[1:]
    if verb not in VERBS:
        raise ValueError(f"unknown command {words[0]!r} (known: {', '.join(VERBS)})")
    if verb in ("show", "metrics", "daemon"):
        if rest:
            raise ValueError(f"{verb} takes no arguments, got {' '.join(rest)!r}")
        return Request(verb, json=as_json)
    if verb == "list":
        return Request(verb, dsets=_sets(rest or [ALL]), json=as_json)
    if verb == "who":
        if len(rest) != 1:
            raise ValueError("who takes one address, e.g. autoban who 192.0.2.7")
        parse_address(rest[0])
        return Request(verb, addrs=(rest[0],), json=as_json)
    # add / del: "DSETS = SSETS ADDRS"; the "=" may stick to its neighbours ("jail=1.2.3.4")
    text = " ".join(rest).replace("=", " = ")
    left, sep, right = text.partition("=")
    if not sep:
        raise ValueError(f"{verb} needs '=': autoban {verb} jail = 192.0.2.7")
    dwords, swords = left.split(), right.split()
    if not dwords:
        raise ValueError(f"{verb}: name the set(s) before '=', e.g. {verb} jail = 192.0.2.7")
    dsets = _sets(dwords)
    if not swords:
        raise ValueError(f"{verb}: name sets or addresses after '='")
    ssets = _sets([w for w in swords if _is_set(w)])
    addrs = tuple(w for w in swords if not _is_set(w))
    if verb == "add" and any(w.lower() == ALL for w in dwords):
        raise ValueError("add: name the destination set(s); 'all' is only for del")
    for addr in addrs:
        parse_entry(addr)
        if any(d in TIMED for d in dsets):
            _single(addr)
    return Request(verb, dsets, ssets, addrs)


def _single(addr: str) -> None:
    try:
        parse_address(addr)
    except ValueError:
        raise ValueError(
            f"{addr}: watch, jail and parole take single addresses; put ranges on the deny list"
        ) from None


@dataclass
class Result:
    lines: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    failed: int = 0


def members(policy: Policy, which: Set, now: float) -> list[str]:
    """The elements of a set as words a command can take back."""
    if which in LISTS:
        static, dynamic = policy.list_entries(which)
        return [*static, *dynamic]
    return [r.key for r in policy.members(which, now)]


def execute(policy: Policy, request: Request, now: float) -> Result:
    """Carry out add/del on the policy; the lines to print and the actions for the firewall."""
    result = Result()
    elements: list[str] = list(request.addrs)
    for source in request.ssets:
        elements += [e for e in members(policy, source, now) if e not in elements]
    if request.verb == "del" and set(request.dsets) == set(Set) and set(request.ssets) == set(Set):
        for which in Set:
            actions = policy.clear(which, now)
            result.actions += actions
        result.lines.append("every set emptied (entries of autoban.conf stay)")
        return result
    for which in request.dsets:
        if request.verb == "del" and which in request.ssets and which not in LISTS:
            result.actions += policy.clear(which, now)
            result.lines.append(f"{which.value}: emptied")
            continue
        for element in elements:
            result.lines.append(_one(policy, request.verb, which, element, now, result))
    return result


def _one(policy: Policy, verb: str, which: Set, element: str, now: float, result: Result) -> str:
    label = f"{which.value}: {element}"
    try:
        if which in LISTS:
            entry = element
            if ":" in element and "/" not in element and "-" not in element and element in policy.records:
                entry = key_label(element, policy.config.ipv6_prefix)  # an IPv6 key means its prefix
            if verb == "add":
                result.actions += policy.add_to_list(which, entry, now)
                return f"{which.value}: added {entry}"
            actions = policy.remove_from_list(which, entry)
            result.actions += actions
            return f"{which.value}: removed {entry}" if actions else f"{label} was not there"
        address = parse_address(element)
        key = policy.key_of(address)
        shown = key_label(key, policy.config.ipv6_prefix)
        if verb == "del":
            actions = policy.release(key, which, now)
            result.actions += actions
            return f"{which.value}: removed {shown}" if actions else f"{which.value}: {shown} was not there"
        adders = {Set.JAIL: policy.jail, Set.PAROLE: policy.parole, Set.WATCH: policy.watch}
        result.actions += adders[which](address, now)
        return f"{which.value}: added {shown}"
    except ValueError as err:
        result.failed += 1
        return f"{label}: {err}"
