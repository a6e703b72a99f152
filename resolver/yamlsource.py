"""YAML files an admin edits, loaded with the line and column of every key and value.

Admins make mistakes in policy and server files; every mistake must come back as
`file:line:column: message`, never as a traceback. This module loads YAML into plain Python values
while remembering where each value came from, refuses what PyYAML lets slip (duplicate keys), and
offers a small `Checker` that schema code (policy, server config) uses to report unknown keys with
a "did you mean" hint, wrong types and bad enum values, collecting every problem instead of stopping
at the first.

The resolver is YAML 1.2-like on purpose: only `true`/`false` are booleans (so `internet: off` and
the ccTLD `no` stay strings) and `07:00` is a string, not the sexagesimal integer 420.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]  # a key path into the document: ("profiles", "primary", "block", 0)

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MAX_NODES = 1_000_000  # refuse documents that would expand to more values than this (alias bombs)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style booleans and numbers (see module docstring)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF")
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), "-+0123456789")
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"), "-+0123456789."
)


if yaml.__with_libyaml__:

    class _FastLoader(yaml.CSafeLoader):
        """The same, parsed by libyaml: 10x faster (a policy listing 200,000 networks)."""

    _FastLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _LOADERS: tuple[type, ...] = (_FastLoader, _Loader)
else:
    _LOADERS = (_Loader,)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or suspicious) in a file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "severity": self.severity,
        }


class ConfigError(Exception):
    """A file could not be used; `problems` lists every error found (warnings may ride along)."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


@dataclass(slots=True)
class Document:
    """A loaded YAML file: the plain data plus where each key and value was written."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]]  # path -> (line, column) of the value
    keys: dict[Path_, tuple[int, int]]  # path -> (line, column) of the mapping key naming it

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Position of `path` (its key if `key`), falling back to the nearest known parent."""
        table = self.keys if key else self.values
        for cut in range(len(path), -1, -1):
            sub = path[:cut]
            if sub in table:
                return table[sub]
            if sub in self.values:
                return self.values[sub]
        return (1, 1)

    def problem(
        self, path: Path_, message: str, *, key: bool = False, severity: str = "error"
    ) -> Problem:
        line, column = self.where(path, key=key)
        return Problem(self.file, line, column, message, severity)


def load_yaml(path: Path | str) -> Document:
    """Read and load a YAML file; raises `ConfigError` for anything unreadable or malformed."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            [Problem(name, 1, 1, f"cannot read file: {exc.strerror or exc}")]
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([Problem(name, line, column, "file is not UTF-8 text")]) from None
    return load_yaml_text(text, name)


def load_yaml_text(text: str, file: str = "<string>") -> Document:
    """Load YAML text; an empty document is an empty mapping."""
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(exc, text, file)]) from None
    except yaml.YAMLError as exc:  # unmarked reader errors (e.g. control characters)
        first = str(exc).splitlines()[0] if str(exc) else "unreadable YAML"
        raise ConfigError([Problem(file, 1, 1, f"YAML error: {first}")]) from None
    except RecursionError:
        raise ConfigError([Problem(file, 1, 1, "YAML nested too deeply")]) from None
    doc = Document(file, {}, {(): (1, 1)}, {})
    if node is None:
        return doc
    builder = _Builder(doc)
    try:
        doc.data = builder.build(node, ())
    except RecursionError:
        builder.problems.append(Problem(file, 1, 1, "YAML nested too deeply"))
    if builder.problems:
        raise ConfigError(builder.problems)
    return doc


def _compose(text: str) -> yaml.Node | None:
    """The document's node tree, by libyaml when it is there. A document libyaml refuses is
    parsed again by PyYAML for its messages (which the tests pin). The two read every document
    PyYAML reads alike; libyaml also reads a few that PyYAML refuses (a tab after a value)."""
    for loader in _LOADERS[:-1]:
        try:
            return yaml.compose(text, Loader=loader)
        except (yaml.YAMLError, RecursionError):
            pass
    return yaml.compose(text, Loader=_LOADERS[-1])


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    lines = text.splitlines()
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    indent = source_line[: len(source_line) - len(source_line.lstrip(" \t"))]
    if "\t" in indent or "'\\t'" in str(exc.problem):
        return Problem(
            file,
            line,
            indent.find("\t") + 1 or column,
            "tab character in indentation; YAML indentation must use spaces",
        )
    message = exc.problem or "invalid YAML"
    if exc.context:
        message = f"{message} ({exc.context})"
    return Problem(file, line, column, f"YAML syntax error: {message}")


class _Builder:
    """Turns composed nodes into plain values, recording positions and refusing duplicate keys."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.problems: list[Problem] = []
        self.constructor = _Loader("")  # only its scalar constructors are used
        self.done: dict[int, Any] = {}
        self.open: set[int] = set()
        self.count = 0

    def _at(self, mark: yaml.Mark) -> tuple[int, int]:
        return (mark.line + 1, mark.column + 1)

    def _fail(self, node: yaml.Node, message: str) -> None:
        line, column = self._at(node.start_mark)
        self.problems.append(Problem(self.doc.file, line, column, message))

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.values.setdefault(path, self._at(node.start_mark))
        self.count += 1
        if self.count > _MAX_NODES:
            if self.count == _MAX_NODES + 1:
                self._fail(node, f"document expands to more than {_MAX_NODES} values")
            return None
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.open:
            self._fail(node, "recursive alias")
            return None
        self.open.add(key)
        try:
            value: Any
            if isinstance(node, yaml.MappingNode):
                value = self._mapping(node, path)
            elif isinstance(node, yaml.SequenceNode):
                value = [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            else:
                value = self._scalar(node)
        finally:
            self.open.discard(key)
        self.done[key] = value
        return value

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self._fail(node, f"unsupported value {node.value!r}: {exc.problem}")
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            self._fail(node, f"bad value {node.value!r}: {exc}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(key_node, "mapping keys must be plain scalars")
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._fail(key_node, "merge keys (<<) are not supported; write the keys out")
                continue
            key = self._scalar(key_node)
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)  # dates as keys stay usable as text
            if key in first_seen:
                self._fail(
                    key_node, f"duplicate key {key!r} (first defined on line {first_seen[key]})"
                )
                continue
            first_seen[key] = key_node.start_mark.line + 1
            child = (*path, key)
            self.doc.keys[child] = self._at(key_node.start_mark)
            result[key] = self.build(value_node, child)
        return result


# ----------------------------------------------------------------------------- schema checking


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' when one of `choices` is close to `word`, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


class Checker:
    """Collects problems while schema code walks a `Document`: every problem, not just the first."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.problems: list[Problem] = []

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def error(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, message, key=key))

    def warn(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, message, key=key, severity="warning"))

    def where(self, path: Path_) -> str:
        line, column = self.doc.where(path)
        return f"{self.doc.file}:{line}:{column}"

    def type_ok(self, path: Path_, value: Any, *types: type, what: str = "") -> bool:
        """True when `value` has one of `types` (bool is never an int here); else one error."""
        ok = not (isinstance(value, bool) and bool not in types) and isinstance(value, types)
        if not ok:
            expected = what or " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            self.error(path, f"{_label(path)} must be {expected}, not {_describe(value)}")
        return ok

    def mapping(
        self,
        path: Path_,
        value: Any,
        allowed: Iterable[str] | None,
        *,
        required: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Check `value` is a mapping with only `allowed` keys (None: any); returns it or {}."""
        if value is None:
            value = {}
        if not self.type_ok(path, value, dict):
            return {}
        if allowed is not None:
            allowed = list(allowed)
            for key in value:
                if key not in allowed:
                    self.error(
                        (*path, key),
                        f"unknown key {key!r} in {_label(path)}{suggest(str(key), allowed)}",
                        key=True,
                    )
        for key in required:
            if key not in value:
                self.error(path, f"{_label(path)} needs the key {key!r}")
        return dict(value)

    def choice(self, path: Path_, value: Any, choices: Sequence[str]) -> str | None:
        """An enum value: one of `choices` (compared as text), else an error with a suggestion."""
        text = str(value).lower() if isinstance(value, str | bool) else None
        if isinstance(value, bool):
            text = "off" if value is False else "on"
        if text in choices:
            return text
        self.error(
            path,
            f"{_label(path)} must be one of {', '.join(choices)}, not {value!r}"
            f"{suggest(str(value), choices)}",
        )
        return None

    def str_list(self, path: Path_, value: Any) -> list[str]:
        """A list of strings (a single string is accepted as a one-item list)."""
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not self.type_ok(path, value, list):
            return []
        out = []
        for i, item in enumerate(value):
            if self.type_ok((*path, i), item, str):
                out.append(item)
        return out


def _label(path: Path_) -> str:
    named = [str(p) for p in path if not isinstance(p, int)]
    return f'"{named[-1]}"' if named else "the document"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
