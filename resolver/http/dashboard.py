"""The dashboard: one page on the admin listener, polling the admin JSON API with a small script.

No CDN, no framework: `static/dashboard.js` (same origin, allowed by the CSP) fetches
`/api/v1/stats`, `/api/v1/status`, `/api/v1/querylog/summary` and `/api/v1/unblock-requests` every
few seconds and draws the charts as SVG. Everything it shows from the server goes through
`textContent`, never `innerHTML`. Approve/reject/reload buttons are same-origin `fetch` POSTs,
which the admin app's CSRF check accepts and a cross-site page cannot forge. Off loopback the
browser logs in once on `/login` with the admin token and gets a session cookie; "Log out" (a
same-origin POST to `/logout`) ends the session on the server, not only in the browser.
"""

from __future__ import annotations

import hmac
from importlib import resources

from aiohttp import web

from resolver.http.admin_keys import ACCESS, CONFIG, SESSION_COOKIE

_FILES = resources.files("resolver.http")
DASHBOARD_HTML = _FILES.joinpath("templates/dashboard.html").read_bytes()
LOGIN_HTML = _FILES.joinpath("templates/login.html").read_bytes()
DASHBOARD_JS = _FILES.joinpath("static/dashboard.js").read_bytes()


def setup_dashboard(app: web.Application) -> None:
    """Add the dashboard routes to the admin app."""
    r = app.router
    r.add_get("/", index)
    r.add_get("/dashboard", dashboard_page)
    r.add_get("/static/dashboard.js", dashboard_js)
    r.add_get("/login", login_page)
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout)


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/dashboard")


async def dashboard_page(request: web.Request) -> web.Response:
    return web.Response(body=DASHBOARD_HTML, content_type="text/html", charset="utf-8")


async def dashboard_js(request: web.Request) -> web.Response:
    return web.Response(body=DASHBOARD_JS, content_type="text/javascript", charset="utf-8")


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
