"""The dashboard: pages on the admin listener, each drawn by a small script from the JSON API.

Pages: overview (live figures, the last 7 days, lists, upstreams, pending unblock requests
with how long to open them, the unblocks and pauses in force with revoke, the pause form),
history (`resolver.http.history`), query-log search (`resolver.http.logsearch`), profiles
(`resolver.http.profiles`), list status (`resolver.http.liststatus`), the content-reports inbox
(`resolver.http.inbox`), the policy editor (`resolver.http.editor`), and a link to the device
set-up pages (`resolver.http.devices`). Each is one layout (`templates/layout.html`: navigation
that folds behind a button on phones, the stylesheet inlined since the CSP allows inline styles
only) around the page's own HTML and script.

No CDN, no framework: the scripts in `static/` (same origin, allowed by the CSP) fetch the API
and draw charts as SVG. Everything they show from the server goes through `textContent`, never
`innerHTML`. State changes are same-origin `fetch` POSTs, which the admin app's CSRF check
accepts and a cross-site page cannot forge. Logging in and out, and sending a browser without
a session to the login page and back, are `resolver.http.login` and the admin app's access
check; who may open which page is `resolver.http.roles` (the navigation shows a user only the
pages her role opens, from `/api/v1/me`).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from resolver.http.editor import setup_editor
from resolver.http.history import setup_history
from resolver.http.inbox import setup_inbox
from resolver.http.liststatus import setup_list_status
from resolver.http.profiles import setup_profiles

_FILES = resources.files("resolver.http")
SCRIPTS = {
    name: _FILES.joinpath(f"static/{name}").read_bytes()
    for name in ("common.js", "dashboard.js", "history.js", "querylog.js", "profiles.js",
                 "lists.js", "inbox.js", "editor.js")
}  # fmt: skip
# (path, navigation label, page title, template, script); the navigation lists them in order.
PAGES = (
    ("/dashboard", "Tổng quan · Overview", "Bảng điều khiển · Dashboard", "dashboard.html",
     "dashboard.js"),
    ("/dashboard/history", "Lịch sử · History", "Lịch sử · History", "history.html", "history.js"),
    ("/dashboard/log", "Nhật ký · Query log", "Nhật ký truy vấn · Query log", "querylog.html",
     "querylog.js"),
    ("/dashboard/profiles", "Nhóm · Profiles", "Nhóm · Profiles", "profiles.html", "profiles.js"),
    ("/dashboard/lists", "Danh sách · Lists", "Danh sách chặn · Block lists", "lists.html",
     "lists.js"),
    ("/dashboard/reports", "Báo cáo nội dung · Reports", "Báo cáo nội dung · Content reports",
     "inbox.html", "inbox.js"),
    ("/dashboard/policy", "Chính sách · Policy", "Chính sách · Policy", "policy.html", "editor.js"),
)  # fmt: skip
DEVICES_LINK = ("/devices", "Thiết bị · Devices")


def _nav(current: str) -> str:
    links = [(path, label) for path, label, *_ in PAGES] + [DEVICES_LINK]
    marked = ' aria-current="page"'
    return "\n".join(
        f'    <a href="{path}"{marked if path == current else ""}>{label}</a>'
        for path, label in links
    )


def _text(name: str) -> str:
    return _FILES.joinpath(name).read_text(encoding="utf-8")


def render(path: str, title: str, template: str, script: str) -> bytes:
    """One page: the layout around `template`, with the navigation marking `path`."""
    text = (
        _text("templates/layout.html")
        .replace("<!--title-->", title)
        .replace("<!--css-->", _text("static/dashboard.css"))
        .replace("<!--nav-->", _nav(path))
        .replace("<!--main-->", _text(f"templates/{template}"))
        .replace("<!--script-->", script)
    )
    return text.encode("utf-8")


HTML = {path: render(path, title, template, script) for path, _, title, template, script in PAGES}


def setup_dashboard(app: web.Application) -> None:
    """Add the dashboard's pages, scripts and endpoints to the admin app."""
    r = app.router
    r.add_get("/", index)
    for path in HTML:
        r.add_get(path, page)
    r.add_get("/dashboard/profiles/{id}", profile_page)
    r.add_get("/static/{name}", static_script)
    setup_history(app)
    setup_profiles(app)
    setup_list_status(app)
    setup_inbox(app)
    setup_editor(app)


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/dashboard")


async def page(request: web.Request) -> web.Response:
    return web.Response(body=HTML[request.path], content_type="text/html", charset="utf-8")


async def profile_page(request: web.Request) -> web.Response:
    return web.Response(body=HTML["/dashboard/profiles"], content_type="text/html", charset="utf-8")


async def static_script(request: web.Request) -> web.Response:
    body = SCRIPTS.get(request.match_info["name"])
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=body, content_type="text/javascript", charset="utf-8",
        headers={"Cache-Control": "no-cache"},  # a new version's script, never an old one
    )  # fmt: skip
