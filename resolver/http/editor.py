"""The policy editor's API: forms in, the admin's YAML out, checked before anything is saved.

  GET  /api/v1/policy          the forms' model, the categories and age modes, kept versions
  POST /api/v1/policy/preview  {base, edits, samples}: the diff, `check`'s verdict, explain
  POST /api/v1/policy          {base, edits, samples}: the same, then save and reload if it passed
  POST /api/v1/policy/undo     {base}: put the version before the last save back, and reload

Every change goes the same way: the edit is applied to the file's text with its comments and
layout kept (`resolver.build.policyedit`), the result is written to a temporary copy beside
the policy and compiled by `safe-resolver check`'s own code in an idle child process
(`resolver.build.trial`: it reads every list, which must not stall the server), with the
samples explained against it. Errors come back as `file:line:column: message`, naming the
policy file; nothing is saved unless the check passed. A save keeps the replaced version for
undo, writes the file atomically and reloads. `base` is the digest of the text the form was
loaded from: a save over someone else's change is refused (409), not merged blindly.

Only an admin may use it (`resolver.http.roles`); a policy from a bundle is edited on the
policy host, never here.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from resolver.build import policyedit
from resolver.build.child import ChildFailed, run_idle
from resolver.build.policyedit import EditError, PolicyChanged
from resolver.http.admin_keys import CONFIG
from resolver.http.history import category_names
from resolver.http.params import json_error
from resolver.lists.catalogue import CatalogueError, load_catalogue
from resolver.lists.services import load_services
from resolver.policy.decision import BlockMode
from resolver.policy.presets import PRESETS, preset_categories
from resolver.policy.safesearch import LEVELS
from resolver.policy.schema import MANDATED

API = "/api/v1"
MAX_SAMPLES = 20
EDITING = web.AppKey("policy_editing", asyncio.Lock)  # one change to the file at a time


def setup_editor(app: web.Application) -> None:
    app[EDITING] = asyncio.Lock()
    r = app.router
    r.add_get(f"{API}/policy", policy_get)
    r.add_post(f"{API}/policy/preview", policy_preview)
    r.add_post(f"{API}/policy", policy_save)
    r.add_post(f"{API}/policy/undo", policy_undo)


class NotEditable(Exception):
    """Why this server's policy cannot be edited here (a 409 with the reason)."""


def policy_path(request: web.Request) -> Path:
    """The policy file the server builds from; NotEditable when there is none or it comes
    from a bundle."""
    status = request.app[CONFIG].control.status()
    if status.get("bundle"):
        raise NotEditable("this server takes its policy from a bundle: edit it on the policy host")
    if not status.get("policy"):
        raise NotEditable("this server runs without a policy file")
    return Path(status["policy"])


def _catalogue() -> list[str]:
    try:
        return [c for c in load_catalogue().categories if c != MANDATED]
    except CatalogueError:
        return []


def _services() -> list[dict[str, str]] | None:
    """The services a profile or schedule can block or allow (`resolver.lists.services`);
    None when the catalogue cannot be read (the form then shows the ids as written)."""
    try:
        services = load_services().services.values()
    except CatalogueError:
        return None
    return [{"id": s.id, "name_vi": s.name_vi, "name_en": s.name_en, "category": s.category}
            for s in services]  # fmt: skip


def _read(policy: Path) -> dict[str, Any]:
    """The file, its digest and the forms' model (blocking)."""
    text = policy.read_text(encoding="utf-8")
    out: dict[str, Any] = {"sha256": policyedit.digest(text), "model": None, "error": None}
    try:
        out["model"] = policyedit.model(text)
    except EditError as exc:
        out["error"] = str(exc)
    return out


async def policy_get(request: web.Request) -> web.Response:
    try:
        policy = policy_path(request)
    except NotEditable as exc:
        return web.json_response({"editable": False, "reason": str(exc)})
    try:
        read = await asyncio.to_thread(_read, policy)
    except (OSError, UnicodeDecodeError) as exc:
        return web.json_response({"editable": False, "reason": f"cannot read {policy}: {exc}"})
    categories = await asyncio.to_thread(_catalogue)
    reason = await asyncio.to_thread(policyedit.not_editable, policy)
    return web.json_response({
        "file": str(policy),
        "editable": reason is None and read["model"] is not None,
        "reason": reason or read["error"],
        "sha256": read["sha256"],
        "model": read["model"],
        "categories": categories,
        "category_names": category_names(categories),
        "presets": {
            p.id: {"title": p.title, "categories": sorted(preset_categories(p, under16=None)),
                   "safe_search": p.safe_search, "youtube": p.youtube}
            for p in PRESETS.values()
        },
        "block_modes": [m.value for m in BlockMode],
        "levels": list(LEVELS),
        "services": await asyncio.to_thread(_services),
        "versions": await asyncio.to_thread(policyedit.list_versions, policy),
    })  # fmt: skip


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise EditError("body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("base"), str):
        raise EditError('expected {"base": "<sha256 of the file as loaded>", ...}')
    return body


def _samples(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SAMPLES:
        raise EditError(f"samples: a list of at most {MAX_SAMPLES} {{client, name}}")
    out = []
    for item in value:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) and 0 < len(item[k]) <= 253 for k in ("client", "name")
        ):
            raise EditError("samples: each one is {client, name} (text)")
        out.append({"client": item["client"], "name": item["name"]})
    return out


def _trial_blocking(policy: Path, text: str, samples: list[dict[str, str]]) -> dict[str, Any]:
    with policyedit.trial_copy(policy, text) as copy:
        output = run_idle("resolver.build.trial", str(copy), str(policy), json.dumps(samples))
    result: dict[str, Any] = json.loads(output)
    return result


async def trial(policy: Path, text: str, samples: list[dict[str, str]]) -> dict[str, Any]:
    """`check`'s verdict on `text` as the policy, with the samples explained against it."""
    return await asyncio.to_thread(_trial_blocking, policy, text, samples)


async def _edited(request: web.Request) -> tuple[Path, str, str, dict[str, Any]]:
    """(policy, old text, edited text, body); raises EditError, NotEditable, PolicyChanged."""
    body = await _body(request)
    policy = policy_path(request)
    old = await asyncio.to_thread(policy.read_text, encoding="utf-8")
    if policyedit.digest(old) != body["base"]:
        raise PolicyChanged(f"{policy} changed since it was opened: load it again")
    new = await asyncio.to_thread(policyedit.apply_edits, old, body.get("edits"))
    return policy, old, new, body


async def _guarded(request: web.Request, action: Any) -> web.Response:
    """Run `action` one edit at a time, with its errors as JSON."""
    async with request.app[EDITING]:
        try:
            response: web.Response = await action(request)
        except EditError as exc:
            return json_error(str(exc))
        except (NotEditable, PolicyChanged) as exc:
            return json_error(str(exc), 409)
        except ChildFailed as exc:
            return json_error(f"the check could not run: {exc}", 500)
        except OSError as exc:
            return json_error(f"cannot write the policy: {exc}", 500)
        return response


async def policy_preview(request: web.Request) -> web.Response:
    async def preview(request: web.Request) -> web.Response:
        policy, old, new, body = await _edited(request)
        verdict = await trial(policy, new, _samples(body.get("samples")))
        return web.json_response(verdict | {"diff": policyedit.diff(old, new, str(policy))})

    return await _guarded(request, preview)


async def policy_save(request: web.Request) -> web.Response:
    async def save(request: web.Request) -> web.Response:
        policy, old, new, body = await _edited(request)
        verdict = await trial(policy, new, _samples(body.get("samples")))
        verdict["diff"] = policyedit.diff(old, new, str(policy))
        if not verdict["ok"]:
            return web.json_response(verdict | {"saved": False}, status=422)
        if new == old:
            return web.json_response(verdict | {"saved": False, "unchanged": True})
        version = await asyncio.to_thread(policyedit.save, policy, new, body["base"])
        reload = await request.app[CONFIG].control.reload()
        return web.json_response(verdict | {
            "saved": True, "version": version, "sha256": policyedit.digest(new), "reload": reload,
        })  # fmt: skip

    return await _guarded(request, save)


async def policy_undo(request: web.Request) -> web.Response:
    async def undo(request: web.Request) -> web.Response:
        body = await _body(request)
        policy = policy_path(request)
        versions = await asyncio.to_thread(policyedit.list_versions, policy)
        if not versions:
            return json_error("no earlier version is kept", 409)
        version = versions[0]["id"]
        text = await asyncio.to_thread(policyedit.read_version, policy, version)
        verdict = await trial(policy, text, [])
        if not verdict["ok"]:
            return web.json_response(verdict | {"restored": None}, status=422)
        await asyncio.to_thread(policyedit.restore, policy, version, body["base"])
        reload = await request.app[CONFIG].control.reload()
        return web.json_response(verdict | {
            "restored": version, "sha256": policyedit.digest(text), "reload": reload,
        })  # fmt: skip

    return await _guarded(request, undo)
