"""Reader for Asterisk-style ``.conf`` files, shared by every add-on.

Every add-on reads its settings through this one module so that they all accept the same syntax and
every mistake in a file is reported the same way: ``<file>:<line>: <what was expected>``.

Syntax accepted (Asterisk's, plus the indexed keys of PHP ini files that the WebSMS add-on uses):

* ``[name]`` starts a section; ``key = value`` and ``key => value`` are the same thing.
* ``;`` starts a comment to the end of the line; ``\\;`` is a literal ``;``. This holds inside double
  quotes too (as in Asterisk), so a value that needs a ``;`` must always escape it. Any other backslash
  is kept as written.
* ``;-- ... --;`` is a block comment; it may span lines, sit inside a line, and nest (as in Asterisk).
* ``[name](!)`` is a template, ``[name](a,b)`` copies the entries of the earlier sections or templates
  ``a`` then ``b`` before its own, ``[name](!,a)`` is a template built on ``a``, and ``[name](+)`` adds
  entries to the first earlier section of that name. Inheritance is resolved when the header is read,
  like Asterisk does, so a base must appear before the section that uses it.
* A section name may repeat; each occurrence is its own section (PJSIP names endpoint, aor and auth
  alike).
* ``#include file`` / ``#tryinclude file`` (optionally in ``"..."`` or ``<...>``), relative to the
  including file's directory; glob patterns expand in sorted order. ``#exec`` is refused.
* A key may repeat: ``getall`` returns every value in order, ``get`` the last one.
* A value wholly in double quotes loses the quotes.
* ``key[idx] = v`` and ``key[] = v`` give an entry an index; ``[]`` takes the next integer after the
  largest integer index of that key in the section (0 if none), as PHP does.

Decisions where Asterisk is loose or silent:

* Keys and section names match case-insensitively (Asterisk's own lookups do), but keep their spelling.
* An included file starts in the including file's current section, and after the ``#include`` the
  including file goes on in the section it was in, whatever the included file opened (as Asterisk).
* A base name or ``(+)`` target that occurs several times means its first occurrence (as Asterisk).
* ``as_bool``/``as_int`` treat an empty value (``key =``) like a missing key: they return the default.
* Errors point where the fix goes: an unclosed block comment at the line that opened it, a missing
  ``#include`` at the ``#include`` line, a mistake inside an included file at that file's line.
* ``#tryinclude`` skips only a missing file; an unreadable one is still an error.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

__all__ = [
    "Config",
    "ConfigError",
    "Entry",
    "Section",
    "as_bool",
    "as_int",
    "parse_config",
    "read_config",
]

_DIRECTIVE_RE = re.compile(r"#([A-Za-z]+)(.*)", re.DOTALL)
# Whitespace is allowed between the key and its "[": the WebSMS files are written as "key [idx] = v".
_KEY_INDEX_RE = re.compile(r"(?P<key>[^\[\]]*?)\s*\[(?P<index>[^\[\]]*)\]")
# Only canonical non-negative decimals count for "[]" numbering, as PHP treats "03" as a string key.
_ARRAY_INT_RE = re.compile(r"0|[1-9][0-9]*")
# Plain ASCII digits only: int() would also take "1_000", " 7" and non-ASCII digits.
_INT_RE = re.compile(r"[+-]?[0-9]+")
_GLOB_CHARS = frozenset("*?[")
_TRUE_WORDS = frozenset({"yes", "true", "on", "1"})
_FALSE_WORDS = frozenset({"no", "false", "off", "0"})
_SHOWN_TEXT_MAX = 60


class ConfigError(ValueError):
    """A config file that cannot be read or does not follow the syntax; says where and what was expected."""

    def __init__(self, file: Path | str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line is not None else f"{file}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type[ConfigError], tuple[Path | str, int | None, str]]:
        # The default pickling would call __init__ with the formatted text only; keep it copyable
        # (multiprocessing, copy.copy) by rebuilding from the three attributes.
        return (type(self), (self.file, self.line, self.message))


@dataclass(frozen=True)
class Entry:
    """One ``key = value`` line, with where it was written (kept when a template's entry is inherited)."""

    key: str
    value: str
    index: str | None  # None unless the key used [idx] or []
    file: Path
    line: int


@dataclass
class Section:
    """A ``[name]`` section (or template) and its entries, inherited ones first."""

    name: str
    file: Path
    line: int
    is_template: bool
    bases: tuple[str, ...]  # names it inherits from, as written
    entries: list[Entry] = field(default_factory=list)
    # Per key (lower-cased): the number "key[]" takes next. Kept as we go so numbering is O(1) per entry.
    _next_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    @overload
    def get(self, key: str, default: str) -> str: ...
    @overload
    def get(self, key: str, default: None = None) -> str | None: ...
    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of the last entry of ``key`` (Asterisk's "last wins"), or ``default``."""
        entry = self._last(key)
        return default if entry is None else entry.value

    def getall(self, key: str) -> list[str]:
        """Every value of ``key`` in file order, indexed or not (for options that may repeat)."""
        wanted = key.lower()
        return [e.value for e in self.entries if e.key.lower() == wanted]

    def indexed(self, key: str) -> dict[str, str]:
        """The ``key[idx] = value`` entries as ``{idx: value}``; a repeated index keeps its last value.

        Entries of ``key`` written without an index are not included.
        """
        wanted = key.lower()
        return {e.index: e.value for e in self.entries if e.index is not None and e.key.lower() == wanted}

    def keys(self) -> list[str]:
        """Distinct keys in first-seen order, spelled as first written."""
        seen: dict[str, str] = {}
        for e in self.entries:
            seen.setdefault(e.key.lower(), e.key)
        return list(seen.values())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._last(key) is not None

    def where(self, key: str) -> str:
        """``file:line`` of the last entry of ``key`` (the section header if absent), for callers' errors."""
        entry = self._last(key)
        if entry is None:
            return f"{self.file}:{self.line}"
        return f"{entry.file}:{entry.line}"

    def _last(self, key: str) -> Entry | None:
        wanted = key.lower()
        for e in reversed(self.entries):
            if e.key.lower() == wanted:
                return e
        return None

    def _append(self, entry: Entry) -> None:
        self.entries.append(entry)
        if entry.index is not None and _ARRAY_INT_RE.fullmatch(entry.index):
            folded = entry.key.lower()
            self._next_index[folded] = max(self._next_index.get(folded, 0), int(entry.index) + 1)

    def _next_auto_index(self, key: str) -> str:
        return str(self._next_index.get(key.lower(), 0))


@dataclass
class Config:
    """A parsed file with its includes: every section and template in the order they were written."""

    path: Path
    sections: list[Section] = field(default_factory=list)

    def __iter__(self) -> Iterator[Section]:
        """Real sections only: templates exist to be inherited, not to configure anything themselves."""
        return (s for s in self.sections if not s.is_template)

    def get(self, name: str) -> Section | None:
        """The first non-template section called ``name``."""
        return next(iter(self.all(name)), None)

    def all(self, name: str) -> list[Section]:
        """Every non-template section called ``name``, in order (PJSIP reuses one name per object type)."""
        wanted = name.lower()
        return [s for s in self if s.name.lower() == wanted]

    def names(self) -> list[str]:
        """Distinct non-template section names in first-seen order."""
        seen: dict[str, str] = {}
        for s in self:
            seen.setdefault(s.name.lower(), s.name)
        return list(seen.values())

    def templates(self) -> list[Section]:
        return [s for s in self.sections if s.is_template]


def read_config(path: str | Path) -> Config:
    """Read and parse ``path`` and everything it includes."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read file: {_reason(exc)}") from None
    return _Parser(file).run(_decode(data, file))


def parse_config(text: str, path: str | Path = "<string>") -> Config:
    """Parse ``text`` as if read from ``path``: errors name it, includes are relative to its folder."""
    return _Parser(Path(path)).run(text)


def as_bool(section: Section, key: str, default: bool) -> bool:
    """``key`` as a boolean (yes/no, true/false, on/off, 1/0, any case); ``default`` if unset or empty."""
    entry = section._last(key)
    if entry is None or entry.value == "":
        return default
    word = entry.value.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ConfigError(
        entry.file, entry.line, f"[{section.name}] {entry.key}: expected yes or no, got {entry.value!r}"
    )


def as_int(
    section: Section, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``key`` as a decimal integer within ``minimum``..``maximum``; ``default`` if unset or empty."""
    entry = section._last(key)
    if entry is None or entry.value == "":
        return default
    number = int(entry.value) if _INT_RE.fullmatch(entry.value) else None
    if (
        number is None
        or (minimum is not None and number < minimum)
        or (maximum is not None and number > maximum)
    ):
        raise ConfigError(
            entry.file,
            entry.line,
            f"[{section.name}] {entry.key}: expected {_int_wanted(minimum, maximum)}, got {entry.value!r}",
        )
    return number


def _int_wanted(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer between {minimum} and {maximum}"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _shown(text: str) -> str:
    """``text`` quoted for a message, shortened so one bad line cannot flood a log."""
    if len(text) > _SHOWN_TEXT_MAX:
        text = text[: _SHOWN_TEXT_MAX - 3] + "..."
    return repr(text)


def _decode(data: bytes, file: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Point at the offending line and byte column: "invalid UTF-8" alone is useless in a long file.
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            file, line, f"expected UTF-8 text, got byte 0x{data[exc.start]:02x} at column {column}"
        ) from None


@dataclass
class _BlockComment:
    """Block-comment state carried from one line to the next within one file."""

    depth: int = 0
    opened_at: int = 0


def _strip_comments(raw: str, lineno: int, block: _BlockComment) -> str:
    """``raw`` without its comments, with ``\\;`` turned into ``;``."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        if block.depth:
            close, nested = raw.find("--;", i), raw.find(";--", i)
            if close < 0 and nested < 0:
                break  # the rest of the line is inside the comment
            if nested >= 0 and (close < 0 or nested < close):
                block.depth += 1
                i = nested + 3
            else:
                block.depth -= 1
                i = close + 3
            continue
        semi = raw.find(";", i)
        if semi < 0:
            out.append(raw[i:])
            break
        if semi > i and raw[semi - 1] == "\\":
            out.append(raw[i : semi - 1] + ";")
            i = semi + 1
            continue
        out.append(raw[i:semi])
        if not raw.startswith("--", semi + 1):
            break  # a plain ";" comment runs to the end of the line
        block.depth, block.opened_at = 1, lineno
        i = semi + 3
    return "".join(out)


class _Parser:
    """One parse of a root file and its includes into a single ``Config``."""

    def __init__(self, root: Path) -> None:
        self.config = Config(path=root)
        self.root_dir = root.parent
        # First section of each (lower-cased) name: what a base name or a (+) refers to.
        self.first_by_name: dict[str, Section] = {}
        # Files being parsed, outermost first: (resolved path, path as opened) to spot include loops.
        self.stack: list[tuple[Path, Path]] = []

    def run(self, text: str) -> Config:
        root = self.config.path
        self.stack.append((root.resolve(), root))
        self.parse_text(text, root, None)
        return self.config

    def parse_text(self, text: str, file: Path, current: Section | None) -> None:
        text = text.removeprefix("\ufeff")
        block = _BlockComment()
        # split("\n") rather than splitlines(): the latter also breaks on \f, \x1c, U+2028... and would
        # make our line numbers disagree with the editor's.
        for lineno, raw in enumerate(text.split("\n"), start=1):
            line = _strip_comments(raw.removesuffix("\r"), lineno, block).strip()
            if not line:
                continue
            if line.startswith("#"):
                self.directive(line, file, lineno, current)
            elif line.startswith("["):
                current = self.section(line, file, lineno)
            else:
                self.option(line, file, lineno, current)
        if block.depth:
            raise ConfigError(
                file, block.opened_at, f"unterminated block comment (opened at line {block.opened_at})"
            )

    def section(self, line: str, file: Path, lineno: int) -> Section:
        close = line.find("]")
        if close < 0:
            raise ConfigError(file, lineno, f'unterminated section header: expected "]", got {_shown(line)}')
        name = line[1:close].strip()
        if not name:
            raise ConfigError(
                file, lineno, f'expected a section name between "[" and "]", got {_shown(line)}'
            )
        options = self.header_options(line[close + 1 :].strip(), name, file, lineno)
        if "+" in options:
            if len(options) != 1:
                raise ConfigError(file, lineno, f'expected "(+)" alone after [{name}], got {_shown(line)}')
            target = self.first_by_name.get(name.lower())
            if target is None:
                raise ConfigError(file, lineno, f"[{name}](+) adds to a section that does not exist")
            return target
        section = Section(
            name=name,
            file=file,
            line=lineno,
            is_template="!" in options,
            bases=tuple(o for o in options if o != "!"),
        )
        for base in section.bases:
            source = self.first_by_name.get(base.lower())
            if source is None:
                raise ConfigError(file, lineno, f"section [{name}] inherits from unknown template {base!r}")
            # Entry is frozen, so sharing the objects is safe; each keeps the file:line it was written at.
            for entry in list(source.entries):
                section._append(entry)
        self.config.sections.append(section)
        self.first_by_name.setdefault(name.lower(), section)
        return section

    @staticmethod
    def header_options(rest: str, name: str, file: Path, lineno: int) -> list[str]:
        """The items of ``(…)`` after ``[name]``: ``!``, ``+`` and base names."""
        if not rest:
            return []
        if not (rest.startswith("(") and rest.endswith(")")):
            raise ConfigError(
                file, lineno, f'expected "(options)" or end of line after [{name}], got {_shown(rest)}'
            )
        options = [o.strip() for o in rest[1:-1].split(",")]
        if "" in options:
            raise ConfigError(
                file, lineno, f'expected "!", "+" or a template name in every item of {_shown(rest)}'
            )
        return options

    def option(self, line: str, file: Path, lineno: int, current: Section | None) -> None:
        left, eq, right = line.partition("=")
        if not eq:
            raise ConfigError(
                file, lineno, f'expected "key = value", "[section]" or "#include", got {_shown(line)}'
            )
        key, index = self.split_key(left.strip(), file, lineno)
        if current is None:
            raise ConfigError(file, lineno, f"option {key!r} appears before any [section]")
        value = right.removeprefix(">").strip()  # "=>" is the same operator as "="
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if index == "":
            index = current._next_auto_index(key)
        current._append(Entry(key=key, value=value, index=index, file=file, line=lineno))

    @staticmethod
    def split_key(left: str, file: Path, lineno: int) -> tuple[str, str | None]:
        """``key`` -> (key, None); ``key[idx]`` -> (key, idx); ``key[]`` -> (key, "") meaning "next"."""
        key, index = left, None
        if "[" in left or "]" in left:
            match = _KEY_INDEX_RE.fullmatch(left)
            if match is None:
                raise ConfigError(
                    file, lineno, f'expected "key", "key[index]" or "key[]" before "=", got {_shown(left)}'
                )
            key, index = match["key"].strip(), match["index"].strip()
        if not key:
            raise ConfigError(file, lineno, f'expected an option name before "=", got {_shown(left)}')
        return key, index

    def directive(self, line: str, file: Path, lineno: int, current: Section | None) -> None:
        match = _DIRECTIVE_RE.fullmatch(line)
        word = match[1].lower() if match else ""
        if word in ("exec", "tryexec"):
            raise ConfigError(
                file, lineno, f"#{word} is not supported (it would run a program): expected #include"
            )
        if match is None or word not in ("include", "tryinclude"):
            raise ConfigError(file, lineno, f'expected "#include" or "#tryinclude", got {_shown(line)}')
        required = word == "include"
        name = self.include_name(match[2].strip(), word, file, lineno)
        for target in self.include_targets(name, required, word, file, lineno):
            self.include(target, name, required, file, lineno, current)

    @staticmethod
    def include_name(arg: str, word: str, file: Path, lineno: int) -> str:
        for opener, closer in (('"', '"'), ("<", ">")):
            if arg.startswith(opener):
                if len(arg) < 2 or not arg.endswith(closer):
                    raise ConfigError(
                        file, lineno, f"expected #{word} {opener}file{closer}, got #{word} {_shown(arg)}"
                    )
                arg = arg[1:-1].strip()
                break
        if not arg:
            raise ConfigError(file, lineno, f"expected a file name after #{word}")
        return arg

    def include_targets(self, name: str, required: bool, word: str, file: Path, lineno: int) -> list[Path]:
        if not _GLOB_CHARS.intersection(name):
            return [Path(name) if os.path.isabs(name) else file.parent / name]
        # Escape the including file's own folder: only the pattern as written may carry wildcards.
        pattern = name if os.path.isabs(name) else os.path.join(glob.escape(str(file.parent)), name)
        matches = [Path(m) for m in sorted(glob.glob(pattern)) if os.path.isfile(m)]
        if not matches and required:
            raise ConfigError(file, lineno, f"#{word} {name!r}: expected at least one file, none matches")
        return matches

    def include(
        self, target: Path, name: str, required: bool, file: Path, lineno: int, current: Section | None
    ) -> None:
        resolved = target.resolve()
        opened = [real for real, _ in self.stack]
        if resolved in opened:
            chain = [shown for _, shown in self.stack] + [target]
            shown = " -> ".join(self.display(p) for p in chain)
            raise ConfigError(file, lineno, f"include loop: {shown}")
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            if not required:
                return
            raise ConfigError(file, lineno, f"cannot include {name!r}: No such file or directory") from None
        except OSError as exc:
            raise ConfigError(file, lineno, f"cannot include {name!r}: {_reason(exc)}") from None
        text = _decode(data, target)
        self.stack.append((resolved, target))
        try:
            self.parse_text(text, target, current)
        finally:
            self.stack.pop()

    def display(self, path: Path) -> str:
        """``path`` relative to the root file's folder when under it: loop chains stay readable."""
        # normpath only for display: "sub/../a.conf" reads better as "a.conf".
        path = Path(os.path.normpath(path))
        try:
            return str(path.relative_to(os.path.normpath(self.root_dir)))
        except ValueError:
            return str(path)
