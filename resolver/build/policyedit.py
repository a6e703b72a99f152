"""Editing the policy file from the dashboard's forms, keeping the admin's comments and layout.

Why a round-trip YAML library (ruamel.yaml): the policy file is the admin's document. Its
comments say why a site is allowed or which day is a holiday; a save that drops them, reorders
keys or reflows lists would destroy what the admin wrote. So an edit changes only the values the
form changed, in place: a list keeps its items' comments and its flow or block style, a scalar
keeps its key's comment, new keys go in beside their siblings. The file's indentation is found
by trying the usual layouts until one reproduces the unchanged file byte for byte; the dashboard
shows the diff before anything is saved.

ruamel's YAML 1.2 reading agrees with the resolver's loader (`resolver.yamlsource`): only
true/false are booleans, `07:00` and `off` stay strings, dates stay dates.

Every save keeps the version it replaces in `.<file>.versions/` beside the policy (the last
VERSIONS_KEPT), so a save can be undone. Nothing here validates the policy: the caller runs the
same check as `safe-resolver check` on a copy (`resolver.build.trial`) before saving.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import ipaddress
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from resolver.fileio import atomic_write
from resolver.policy.decision import BlockMode
from resolver.policy.presets import preset, preset_categories
from resolver.policy.safesearch import LEVELS
from resolver.policy.schema import DEFAULT_BLOCK_TTL, MANDATED

VERSIONS_KEPT = 20
VERSION_FORMAT = "%Y%m%dT%H%M%S.%fZ"  # a kept version's id: when it was replaced (UTC)
VERSION_ID = re.compile(r"\d{8}T\d{6}\.\d{6}Z")
# (mapping, sequence, offset) indentations tried in turn; the first that writes the unchanged
# file back byte for byte is the file's own.
LAYOUTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 4, 0), (4, 2, 0))
MAX_ITEMS = 5000  # entries one edited list may hold (allow/deny lists, windows, dates)
MAX_TEXT = 253  # characters of one entry (a domain name's length)
NETWORKS_SHOWN = 50  # client networks of a profile the pages list (an ISP's can be millions)
PROFILE_FIELDS = ("description", "age", "categories", "safe_search", "block_mode", "schedules",
                  "allow", "deny", "log", "block_services", "allow_services")  # fmt: skip
SCHEDULE_FIELDS = ("windows", "block", "block_services", "safe_search", "internet", "except",
                   "extra")  # fmt: skip


class EditError(ValueError):
    """The edit itself is malformed (not what the form sends): an HTTP 400, nothing saved."""


class PolicyChanged(Exception):
    """The file changed since the form was loaded (someone else saved, or a hand edit)."""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- reading and writing YAML with its layout --


def _yaml(layout: tuple[int, int, int]) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never fold a long line the admin wrote on one
    mapping, sequence, offset = layout
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _dump(y: YAML, data: Any) -> str:
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def load(text: str) -> tuple[YAML, Any]:
    """The document and the YAML instance (with the file's layout) that writes it back.
    Raises EditError when the file does not parse (the check would say where)."""
    try:
        data = _yaml(LAYOUTS[0]).load(text)
    except YAMLError as exc:
        raise EditError(f"the policy file does not parse: {exc}") from None
    if not isinstance(data, CommentedMap):
        raise EditError("the policy file is not a YAML mapping")
    best: tuple[int, tuple[int, int, int]] | None = None
    for layout in LAYOUTS:
        y = _yaml(layout)
        written = _dump(y, y.load(text))
        if written == text:
            return y, y.load(text)
        changed = sum(1 for line in difflib.ndiff(text.splitlines(), written.splitlines())
                      if line[:1] in "+-")  # fmt: skip
        if best is None or changed < best[0]:
            best = (changed, layout)
    assert best is not None
    y = _yaml(best[1])
    return y, y.load(text)


def diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), name, name, n=2
    ))  # fmt: skip


# -- the form's model --


def _strs(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items]


def _levels(value: Any, default: tuple[str, str]) -> tuple[str, str]:
    """`safe_search` as the schema reads it: a level, or {level, youtube}."""
    if isinstance(value, dict):
        level = str(value.get("level", default[0]))
        youtube = str(value.get("youtube", level if "level" in value else default[1]))
        return level, youtube
    if value is None:
        return default
    return str(value), str(value)


def effective_categories(spec: dict[str, Any]) -> set[str]:
    """The categories a profile blocks outside its schedules: its age mode's, plus `block`,
    minus `unblock` (the mandated list is never a profile's to choose)."""
    chosen = preset(str(spec.get("age", "unrestricted"))) or preset("unrestricted")
    assert chosen is not None
    under16 = spec.get("under16") if isinstance(spec.get("under16"), bool) else None
    base = set(preset_categories(chosen, under16=under16))
    return (base | set(_strs(spec.get("block")))) - set(_strs(spec.get("unblock"))) - {MANDATED}


def _age_base(spec: dict[str, Any], age: str) -> set[str]:
    chosen = preset(age) or preset("unrestricted")
    assert chosen is not None
    under16 = spec.get("under16") if isinstance(spec.get("under16"), bool) else None
    return set(preset_categories(chosen, under16=under16))


def profile_model(pid: str, spec: Any) -> dict[str, Any]:
    spec = spec if isinstance(spec, dict) else {}
    chosen = preset(str(spec.get("age", "unrestricted"))) or preset("unrestricted")
    assert chosen is not None
    level, youtube = _levels(spec.get("safe_search"), (chosen.safe_search, chosen.youtube))
    return {
        "id": pid,
        "description": str(spec.get("description") or ""),
        "age": str(spec.get("age", "unrestricted")),
        "under16": spec.get("under16") if isinstance(spec.get("under16"), bool) else None,
        "categories": sorted(effective_categories(spec)),
        "block": _strs(spec.get("block")),
        "unblock": _strs(spec.get("unblock")),
        "safe_search": {"level": level, "youtube": youtube},
        "block_mode": str(spec.get("block_mode", BlockMode.BLOCKPAGE.value)),
        "block_ttl": spec.get("block_ttl", DEFAULT_BLOCK_TTL),
        "schedules": _strs(spec.get("schedules")),
        "allow": _strs(spec.get("allow")),
        "deny": _strs(spec.get("deny")),
        "log": spec.get("log", True) is not False,
        # Service ids of blocklists/services.yaml, as written (the check names an unknown one).
        "block_services": _strs(spec.get("block_services")),
        "allow_services": _strs(spec.get("allow_services")),
    }


def schedule_model(name: str, spec: Any) -> dict[str, Any]:
    spec = spec if isinstance(spec, dict) else {}
    level, youtube = _levels(spec.get("safe_search"), ("", ""))
    return {
        "name": name,
        "windows": _strs(spec.get("windows")),
        "block": _strs(spec.get("block")),
        "block_services": _strs(spec.get("block_services")),
        "safe_search": level,
        "youtube": youtube,
        "internet": str(spec.get("internet", "on")),
        "except": _strs(spec.get("except")),
        "extra": _strs(spec.get("extra")),
    }


def model(text: str) -> dict[str, Any]:
    """What the forms show: every profile and schedule as plain values, the client networks
    of each profile (the first NETWORKS_SHOWN, and how many) and a sample client address per
    profile (for the explain preview)."""
    _, data = load(text)
    profiles, schedules = _section(data, "profiles"), _section(data, "schedules")
    clients = _section(data, "clients")
    networks = _section(clients, "networks")
    by_profile: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for net, pid in networks.items():
        counts[str(pid)] = counts.get(str(pid), 0) + 1
        shown = by_profile.setdefault(str(pid), [])
        if len(shown) < NETWORKS_SHOWN:
            shown.append(str(net))
    return {
        "profiles": [profile_model(str(pid), spec) for pid, spec in profiles.items()],
        "schedules": [schedule_model(str(name), spec) for name, spec in schedules.items()],
        "default_profile": str(clients.get("default") or ""),
        "networks": by_profile,
        "network_counts": counts,
        "sample_clients": sample_clients(networks),
    }


def _section(data: dict[str, Any], key: str) -> dict[Any, Any]:
    """`data[key]` when it is a mapping, else empty (the check reports a malformed file)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def sample_clients(networks: dict[Any, Any]) -> dict[str, str]:
    """Profile -> an address of its first network in `clients.networks` (one the explain
    preview can ask as); profiles reached only by default or by token have none."""
    out: dict[str, str] = {}
    for text, pid in networks.items():
        if str(pid) in out:
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(str(text), strict=False)
            host = net.network_address + 1 if net.num_addresses > 2 else net.network_address
            out[str(pid)] = str(host)
    return out


# -- applying the form's edits --


def apply_edits(text: str, edits: Any) -> str:
    """The file with the form's edits applied (only what changed). Raises EditError for an
    edit the form would never send (unknown profile, wrong types)."""
    if not isinstance(edits, dict):
        raise EditError("expected a JSON object of edits")
    unknown = set(edits) - {"profiles", "schedules", "remove_schedules"}
    if unknown:
        raise EditError(f"unknown edit sections: {sorted(unknown)}")
    y, data = load(text)
    for pid, changes in _mapping(edits.get("profiles"), "profiles").items():
        profiles = data.get("profiles")
        if not isinstance(profiles, CommentedMap) or pid not in profiles:
            raise EditError(f"unknown profile {pid!r}")
        if not isinstance(profiles[pid], CommentedMap):
            raise EditError(f"profile {pid!r} is not a mapping in the file: edit it by hand")
        _edit_profile(profiles[pid], _mapping(changes, f"profiles.{pid}"))
    removed = edits.get("remove_schedules") or []
    if not isinstance(removed, list) or not all(isinstance(n, str) for n in removed):
        raise EditError("remove_schedules: expected a list of schedule names")
    for name, changes in _mapping(edits.get("schedules"), "schedules").items():
        _edit_schedule(data, name, _mapping(changes, f"schedules.{name}"))
    for name in removed:
        schedules = data.get("schedules")
        if not isinstance(schedules, CommentedMap) or name not in schedules:
            raise EditError(f"unknown schedule {name!r}")
        del schedules[name]
    return _dump(y, data)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise EditError(f"{where}: expected an object")
    return value


def _text(value: Any, where: str, *, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit or "\n" in value or "\r" in value:
        raise EditError(f"{where}: expected one line of text (at most {limit} characters)")
    return value.strip()


def _texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise EditError(f"{where}: expected a list of at most {MAX_ITEMS} entries")
    out = []
    for item in value:
        text = _text(item, where)
        if text and text not in out:
            out.append(text)
    return out


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise EditError(f"{where}: expected one of {', '.join(allowed) or 'nothing'}")
    return str(value)


def _edit_profile(spec: CommentedMap, changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise EditError(f"unknown profile fields: {sorted(unknown)}")
    if "description" in changes:
        text = _text(changes["description"], "description", limit=500)
        if text != str(spec.get("description") or ""):
            _set_scalar(spec, "description", text)
    if "age" in changes:
        age = _text(changes["age"], "age")
        if age != str(spec.get("age", "unrestricted")):
            _set_scalar(spec, "age", age)
    if "categories" in changes:
        wanted = set(_texts(changes["categories"], "categories")) - {MANDATED}
        if wanted != effective_categories(spec):
            base = _age_base(spec, str(spec.get("age", "unrestricted")))
            _set_list(spec, "block", sorted(wanted - base))
            _set_list(spec, "unblock", sorted(base - wanted))
    if "safe_search" in changes:
        _edit_levels(spec, _mapping(changes["safe_search"], "safe_search"))
    if "block_mode" in changes:
        modes = tuple(m.value for m in BlockMode)
        mode = _choice(changes["block_mode"], "block_mode", modes)
        if mode != str(spec.get("block_mode", BlockMode.BLOCKPAGE.value)):
            _set_scalar(spec, "block_mode", mode)
    if "log" in changes:
        if not isinstance(changes["log"], bool):
            raise EditError("log: expected true or false")
        if changes["log"] != (spec.get("log", True) is not False):
            _set_scalar(spec, "log", changes["log"])
    for key in ("schedules", "allow", "deny", "block_services", "allow_services"):
        if key in changes:
            _set_list(spec, key, _texts(changes[key], key))


def _edit_levels(spec: CommentedMap, levels: dict[str, Any]) -> None:
    chosen = preset(str(spec.get("age", "unrestricted"))) or preset("unrestricted")
    assert chosen is not None
    now = _levels(spec.get("safe_search"), (chosen.safe_search, chosen.youtube))
    level = _choice(levels.get("level", now[0]), "safe_search.level", LEVELS)
    youtube = _choice(levels.get("youtube", now[1]), "safe_search.youtube", LEVELS)
    if (level, youtube) == now:
        return
    current = spec.get("safe_search")
    if isinstance(current, CommentedMap):
        current["level"] = level
        current["youtube"] = youtube
    elif level == youtube:
        _set_scalar(spec, "safe_search", level)
    else:
        _set_scalar(spec, "safe_search", _flow_map({"level": level, "youtube": youtube}))


def _edit_schedule(data: CommentedMap, name: str, changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(SCHEDULE_FIELDS)
    if unknown:
        raise EditError(f"unknown schedule fields: {sorted(unknown)}")
    _text(name, "schedule name", limit=63)
    schedules = data.get("schedules")
    if schedules is None:
        schedules = CommentedMap()
        _insert_top(data, "schedules", schedules)
    if not isinstance(schedules, CommentedMap):
        raise EditError("schedules: not a mapping in the file: edit it by hand")
    spec = schedules.get(name)
    if spec is None:
        spec = CommentedMap()
        _set_scalar(schedules, name, spec)
    if not isinstance(spec, CommentedMap):
        raise EditError(f"schedule {name!r} is not a mapping in the file: edit it by hand")
    if "windows" in changes:
        _set_list(spec, "windows", _texts(changes["windows"], "windows"))
    for key in ("block", "block_services"):
        if key in changes:
            _set_list(spec, key, _texts(changes[key], key))
    for key in ("except", "extra"):
        if key in changes:
            _set_list(spec, key, _texts(changes[key], key), dates=True)
    if "safe_search" in changes:
        level = _choice(changes["safe_search"], "safe_search", ("", *LEVELS))
        if level != _levels(spec.get("safe_search"), ("", ""))[0]:
            if level:
                _set_scalar(spec, "safe_search", level)
            else:
                spec.pop("safe_search", None)
    if "internet" in changes:
        internet = _choice(changes["internet"], "internet", ("on", "off"))
        if internet != str(spec.get("internet", "on")):
            _set_scalar(spec, "internet", internet)


# -- in-place changes that keep comments and style --


def _flow_map(values: dict[str, Any]) -> CommentedMap:
    out = CommentedMap(values)
    out.fa.set_flow_style()
    return out


def _set_scalar(mapping: CommentedMap, key: str, value: Any) -> None:
    """Set `key`. A new key goes last, unless comments or blank lines follow the last entry
    (the next section's heading, as the reader sees it): then it goes before that entry, so
    they stay where they are."""
    if key in mapping or not _trailing_comment(mapping):
        mapping[key] = value
    else:
        mapping.insert(len(mapping) - 1, key, value)


def _trailing_comment(node: Any) -> bool:
    """Whether comment lines or blank lines are attached after the last entry of `node`."""
    if isinstance(node, CommentedMap) and len(node):
        last = list(node)[-1]
        return bool(node.ca.items.get(last)) or _trailing_comment(node[last])
    if isinstance(node, CommentedSeq) and len(node):
        return bool(node.ca.items.get(len(node) - 1)) or _trailing_comment(node[-1])
    return False


def _insert_top(data: CommentedMap, key: str, value: Any) -> None:
    keys = list(data)
    position = keys.index("profiles") + 1 if "profiles" in keys else len(keys)
    data.insert(min(position, max(len(keys) - 1, 0)), key, value)


def _entry(text: str, dates: bool) -> Any:
    if dates:
        with contextlib.suppress(ValueError):
            return date.fromisoformat(text)
    return text


def _set_list(mapping: CommentedMap, key: str, values: list[str], *, dates: bool = False) -> None:
    """Make `mapping[key]` hold `values`: items kept keep their comments and place, removed
    ones go, new ones are appended; a new list is written in flow style (`[a, b]`)."""
    current = mapping.get(key)
    if not isinstance(current, CommentedSeq):
        if current is None and not values:
            return
        seq = CommentedSeq([_entry(v, dates) for v in values])
        seq.fa.set_flow_style()
        _set_scalar(mapping, key, seq)
        return
    if [str(item) for item in current] == values:
        return
    for index in range(len(current) - 1, -1, -1):
        if str(current[index]) not in values:
            del current[index]
    have = {str(item) for item in current}
    for value in values:
        if value not in have:
            current.append(_entry(value, dates))


# -- the file, its versions and trial copies --


def versions_dir(policy: Path) -> Path:
    return policy.with_name(f".{policy.name}.versions")


def not_editable(policy: Path) -> str | None:
    """Why the dashboard cannot save this file (None when it can): the folder must be writable
    (a save writes a new file and renames it over the old)."""
    folder = policy.parent
    if not policy.is_file():
        return f"{policy} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"{folder} is not writable by the resolver's user: the policy can only be edited by "
            "hand (under systemd, allow it with ReadWritePaths=, see the README)"
        )
    return None


def list_versions(policy: Path) -> list[dict[str, Any]]:
    """The kept versions, newest first: {id, saved_at (Unix time), size}."""
    folder = versions_dir(policy)
    out = []
    with contextlib.suppress(OSError):
        for path in folder.glob("*.yaml"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                out.append({"id": path.stem, "saved_at": stat.st_mtime, "size": stat.st_size})
    return sorted(out, key=lambda v: v["id"], reverse=True)


def read_version(policy: Path, version: str) -> str:
    """A kept version's text; KeyError when there is no such version."""
    if not VERSION_ID.fullmatch(version):
        raise KeyError(version)
    try:
        return (versions_dir(policy) / f"{version}.yaml").read_text(encoding="utf-8")
    except OSError:
        raise KeyError(version) from None


def save(policy: Path, new_text: str, expected: str) -> str:
    """Keep the current file as a version, then replace it with `new_text` (atomically, with
    its permission bits). `expected` is the digest of the text the edit started from: another
    save or a hand edit in between raises PolicyChanged. Returns the kept version's id."""
    old_text = policy.read_text(encoding="utf-8")
    if digest(old_text) != expected:
        raise PolicyChanged(f"{policy} changed since it was opened: load it again")
    version = datetime.now(UTC).strftime(VERSION_FORMAT)
    folder = versions_dir(policy)
    folder.mkdir(mode=0o750, exist_ok=True)
    atomic_write(folder / f"{version}.yaml", old_text.encode("utf-8"))
    _replace(policy, new_text)
    for old in list_versions(policy)[VERSIONS_KEPT:]:
        with contextlib.suppress(OSError):
            (folder / f"{old['id']}.yaml").unlink()
    return version


def restore(policy: Path, version: str, expected: str) -> None:
    """Put `version` back as the policy (undo) and drop it from the kept versions."""
    text = read_version(policy, version)
    if digest(policy.read_text(encoding="utf-8")) != expected:
        raise PolicyChanged(f"{policy} changed since it was opened: load it again")
    _replace(policy, text)
    with contextlib.suppress(OSError):
        (versions_dir(policy) / f"{version}.yaml").unlink()


def _replace(policy: Path, text: str) -> None:
    mode = policy.stat().st_mode & 0o777
    atomic_write(policy, text.encode("utf-8"))
    os.chmod(policy, mode)


@contextlib.contextmanager
def trial_copy(policy: Path, text: str) -> Iterator[Path]:
    """`text` in a temporary file beside the policy (its relative paths mean the same),
    removed afterwards."""
    fd, name = tempfile.mkstemp(prefix=f".{policy.stem}.trial-", suffix=".yaml", dir=policy.parent)
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        yield path
    finally:
        path.unlink(missing_ok=True)
