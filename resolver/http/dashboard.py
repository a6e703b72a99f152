"""The dashboard: one page on the admin listener, polling the admin JSON API with a small script.

No CDN, no framework: `static/dashboard.js` (same origin, allowed by the CSP) fetches
`/api/v1/stats`, `/api/v1/status`, `/api/v1/querylog/summary` and `/api/v1/unblock-requests` every
few seconds and draws the charts as SVG. Everything it shows from the server goes through
`textContent`, never `innerHTML`. Approve/reject/reload buttons are same-origin `fetch` POSTs,
which the admin app's CSRF check accepts and a cross-site page cannot forge. Logging in and out
is `resolver.http.login`.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

_FILES = resources.files("resolver.http")
DASHBOARD_HTML = _FILES.joinpath("templates/dashboard.html").read_bytes()
DASHBOARD_JS = _FILES.joinpath("static/dashboard.js").read_bytes()


def setup_dashboard(app: web.Application) -> None:
    """Add the dashboard routes to the admin app."""
    r = app.router
    r.add_get("/", index)
    r.add_get("/dashboard", dashboard_page)
    r.add_get("/static/dashboard.js", dashboard_js)


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/dashboard")


async def dashboard_page(request: web.Request) -> web.Response:
    return web.Response(body=DASHBOARD_HTML, content_type="text/html", charset="utf-8")


async def dashboard_js(request: web.Request) -> web.Response:
    return web.Response(body=DASHBOARD_JS, content_type="text/javascript", charset="utf-8")
