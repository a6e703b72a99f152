"""The dashboard: pages on the admin listener, each drawn by a small script from the JSON API.

Pages: overview (live figures, the last 7 days, lists, upstreams, pending unblock requests),
history (`resolver.http.history`), query-log search (`resolver.http.logsearch`), profiles
(`resolver.http.profiles`), list status (`resolver.http.liststatus`), the content-reports inbox
(`resolver.http.inbox`), the policy editor (`resolver.http.editor`), and a link to the device
set-up pages (`resolver.http.devices`). Each is one layout (`templates/layout.html`: navigation
that folds behind a button on phones, the stylesheet inlined since the CSP allows inline styles
only) around the page's own HTML and script.

No CDN, no framework: the scripts in `static/` (same origin, allowed by the CSP) fetch the API
and draw charts as SVG. Everything they show from the server goes through `textContent`, never
`innerHTML`. State changes are same-origin `fetch` POSTs, which the admin app's CSRF check
accepts and a cross-site page cannot forge. Off loopback the browser logs in once on `/login`
and gets a session cookie; a page asked for without one is sent to `/login` (not shown a JSON
401); "Log out" (a same-origin POST to `/logout`) ends the session on the server.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import quote

from aiohttp import web

from resolver.http.admin_keys import ACCESS, CONFIG, SESSION_COOKIE
from resolver.http.editor import setup_editor
from resolver.http.history import setup_history
from resolver.http.inbox import setup_inbox
from resolver.http.liststatus import setup_list_status
from resolver.http.profiles import setup_profiles

_FILES = resources.files("resolver.http")
LOGIN_HTML = _FILES.joinpath("templates/login.html").read_bytes()
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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def is_page(path: str) -> bool:
    """A dashboard page (HTML for a browser), as opposed to the JSON API."""
    return path in HTML or path.startswith("/dashboard/profiles/")


def setup_dashboard(app: web.Application) -> None:
    """Add the dashboard's pages, scripts and endpoints to the admin app."""
    app.middlewares.insert(0, login_redirect)
    r = app.router
    r.add_get("/", index)
    for path in HTML:
        r.add_get(path, page)
    r.add_get("/dashboard/profiles/{id}", profile_page)
    r.add_get("/static/{name}", static_script)
    r.add_get("/login", login_page)
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout)
    setup_history(app)
    setup_profiles(app)
    setup_list_status(app)
    setup_inbox(app)
    setup_editor(app)


@web.middleware
async def login_redirect(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A browser asking for a page without a session goes to the login form, and back after.

    INTEGRATION(school-admin): the accounts branch owns login; its form should honour `next`
    (a same-origin path) and may well redirect every page itself, making this one redundant.
    """
    response = await handler(request)
    if response.status == 401 and request.method in ("GET", "HEAD") and is_page(request.path):
        raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe=""))
    return response


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


async def login_page(request: web.Request) -> web.Response:
    if request.get(ACCESS):
        raise web.HTTPSeeOther("/dashboard")
    return web.Response(body=LOGIN_HTML, content_type="text/html", charset="utf-8")


async def login_submit(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    if cfg.token is None:
        return web.Response(status=403, text="no admin token is configured: use loopback")
    if not cfg.login_limiter.allow(request.remote or ""):
        return web.Response(status=429, text="too many attempts, wait a minute")
    form = await request.post()
    given = form.get("token")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), cfg.token.encode()):
        return web.Response(status=401, text="wrong token")
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        cfg.sessions.revoke(old)  # a fresh id at each login (no session fixation)
    response = web.HTTPSeeOther("/dashboard")
    response.set_cookie(
        SESSION_COOKIE,
        cfg.sessions.create(),
        max_age=int(cfg.sessions.lifetime),
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        request.app[CONFIG].sessions.revoke(session)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
