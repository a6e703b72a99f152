"""`lists update` against a real aiohttp server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import sys
from pathlib import Path

import pytest
from aiohttp import web

from resolver.lists.catalogue import ListsSettings, Source, fetched_copy
from resolver.update.progress import LineProgress
from resolver.update.runner import meta_path, update_sources

GOOD = "".join(f"site{i}.example\n" for i in range(100))


class Served:
    """What the test server answers for each path, and what it was asked."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        status, body, headers = self.bodies[request.path]
        etag = headers.get("ETag")
        if etag and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(status=status, body=body, headers=headers)


@pytest.fixture
async def server(aiohttp_server):
    served = Served()
    app = web.Application()
    app.router.add_get("/{name}", served.handle)
    srv = await aiohttp_server(app, host="127.0.0.1", port=0)
    served.base = str(srv.make_url("/"))  # type: ignore[attr-defined]
    return served


def settings(tmp_path: Path, **kw) -> ListsSettings:
    args = {
        "dir": tmp_path / "lists",
        "catalogue_sources": False,
        "min_keep_ratio": 0.5,
        "max_bytes": 1_000_000,
    } | kw
    return ListsSettings(**args)


def source(served: Served, tmp_path: Path, name: str, fmt: str = "auto") -> Source:
    return Source(
        id=name,
        category="adult",
        format=fmt,
        url=served.base + name,  # type: ignore[attr-defined]
        local_path=fetched_copy(tmp_path / "lists", name),
    )


async def run(sources: list[Source], conf: ListsSettings) -> tuple[list, str]:
    out = io.StringIO()
    outcomes = await update_sources(sources, conf, LineProgress(out, live=False), timeout=10)
    return outcomes, out.getvalue()


async def test_fetch_then_not_modified(server: Served, tmp_path: Path) -> None:
    server.bodies["/a"] = (
        200,
        GOOD.encode(),
        {"ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"},
    )
    conf = settings(tmp_path)
    src = source(server, tmp_path, "a")
    [first], text = await run([src], conf)
    assert (first.status, first.ok, first.entries) == ("updated", True, 100)
    assert src.local_path.read_text() == GOOD
    meta = json.loads(meta_path(src.local_path).read_text())
    assert meta["etag"] == '"v1"' and meta["entries"] == 100 and len(meta["sha256"]) == 64
    assert meta["url"] == src.url
    assert "ok   [1/1] adult/a: updated, 100 rules" in text
    [second], _ = await run([src], conf)
    assert (second.status, second.ok, second.entries) == ("unchanged", True, 100)
    headers = server.requests[-1][1]
    assert headers["If-None-Match"] == '"v1"'
    assert headers["If-Modified-Since"] == "Mon, 01 Jan 2024 00:00:00 GMT"


async def test_failures_keep_the_last_good_copy(server: Served, tmp_path: Path) -> None:
    conf = settings(tmp_path, max_bytes=5000)
    src = source(server, tmp_path, "b")
    server.bodies["/b"] = (200, GOOD.encode(), {})
    [ok], _ = await run([src], conf)
    assert ok.ok
    bad_bodies = {
        "HTTP 500": (500, b"oops", {}),
        "shrank from 100 to 10 rules": (200, GOOD[: GOOD.index("site10.")].encode(), {}),
        "too large": (200, b"x.example\n" * 1000, {}),
        "no rules": (200, bytes(range(256)) * 10, {}),
        "truncated-file": (200, gzip.compress(GOOD.encode() * 3)[:200], {}),
    }
    for why, body in bad_bodies.items():
        server.bodies["/b"] = body
        [outcome], text = await run([src], conf)
        assert (outcome.status, outcome.ok) == ("kept", False), why
        assert why in outcome.message and "last good copy kept" in outcome.message
        assert "FAIL [1/1] adult/b: kept" in text
        assert src.local_path.read_text() == GOOD, why
        assert not list((tmp_path / "lists").glob(".*part")), "temp file left behind"


async def test_gzip_bodies(server: Served, tmp_path: Path) -> None:
    compressed = gzip.compress(GOOD.encode())
    server.bodies["/file.gz"] = (200, compressed, {})
    server.bodies["/encoded"] = (200, compressed, {"Content-Encoding": "gzip"})
    conf = settings(tmp_path)
    outcomes, _ = await run(
        [source(server, tmp_path, "file.gz"), source(server, tmp_path, "encoded")], conf
    )
    assert [(o.status, o.entries) for o in outcomes] == [("updated", 100), ("updated", 100)]


async def test_one_failure_does_not_stop_the_others(server: Served, tmp_path: Path) -> None:
    server.bodies["/good"] = (200, GOOD.encode(), {})
    local = tmp_path / "mandated.txt"
    local.write_text("||gov.example^\n")
    sources = [
        source(server, tmp_path, "missing"),
        source(server, tmp_path, "good"),
        Source(id="moet", category="mandated", format="auto", local_path=local, path=local),
    ]
    server.bodies["/missing"] = (404, b"", {})
    outcomes, _ = await run(sources, settings(tmp_path))
    assert [(o.status, o.ok) for o in outcomes] == [
        ("kept", False),
        ("updated", True),
        ("local", True),
    ]
    assert "no copy yet" in outcomes[0].message


async def test_cli_exit_codes(server: Served, tmp_path: Path) -> None:
    server.bodies["/ok"] = (200, GOOD.encode(), {})
    server.bodies["/broken"] = (500, b"", {})
    policy = tmp_path / "policy.yaml"
    config = tmp_path / "config.yaml"
    config.write_text("policy: policy.yaml\n")
    base = server.base  # type: ignore[attr-defined]

    async def cli(*sources: str) -> tuple[int, str]:
        entries = "".join(
            f"    - {{id: {s}, category: adult, url: '{base}{s}'}}\n" for s in sources
        )
        policy.write_text(
            f"lists:\n  dir: fetched\n  catalogue_sources: false\n  sources:\n{entries}"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "resolver",
            "lists",
            "update",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    code, out = await cli("ok")
    assert code == 0, out
    assert (tmp_path / "fetched" / "ok.list").read_text() == GOOD
    code, out = await cli("ok", "broken")
    assert code == 1, out
    assert "1 of 2 sources failed: broken" in out
    policy.write_text("lists:\n  sources: [{id: x, category: cooking, url: 'http://x'}]\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "resolver",
        "lists",
        "update",
        "--policy",
        str(policy),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"lists.sources[0].category" in err
