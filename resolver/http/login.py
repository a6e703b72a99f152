"""Logging in to the admin app: a user of the users file (or the admin token) gets a session.

`POST /login` takes `user` and `password` (an empty user name with the admin token as the
password logs in as admin; the older form field `token` still works). Attempts are limited per
client address (every attempt) and per user name (wrong passwords only, so a teacher cannot be
locked out by others' correct logins); each outcome is counted for /metrics. Argon2 verification
runs in a thread: it takes tens of milliseconds on purpose. A new login always gets a fresh
session id (no fixation); `POST /logout` ends the session on the server.
"""

from __future__ import annotations

import asyncio
import hmac
import html
from importlib import resources

from aiohttp import web

from resolver.http.admin_keys import ACCESS, CONFIG, SESSION_COOKIE
from resolver.http.users import password_stamp, verify_password

LOGIN_HTML = resources.files("resolver.http").joinpath("templates/login.html").read_text("utf-8")
HOME = "/dashboard"
MESSAGES = {
    401: "Sai tên đăng nhập hoặc mật khẩu. / Wrong user name or password.",
    429: "Quá nhiều lần thử, hãy đợi rồi thử lại. / Too many attempts: wait and try again.",
}


def setup_login(app: web.Application) -> None:
    r = app.router
    r.add_get("/login", login_page)
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout)


def local_target(value: object) -> str:
    """Where to go after logging in: a path on this site, never another site (open redirect)."""
    text = value if isinstance(value, str) else ""
    ok = text.startswith("/") and not text.startswith(("//", "/\\")) and "\n" not in text
    return text if ok and not text.startswith("/login") else HOME


def login_form(status: int = 200, target: str = HOME) -> web.Response:
    """The log-in page, with the message for a refused attempt (`status` 401 or 429)."""
    body = LOGIN_HTML.replace("__NEXT__", html.escape(target, quote=True))
    if status in MESSAGES:
        body = body.replace("<!--error-->", f'<p class="error" role="alert">{MESSAGES[status]}</p>')
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")


async def login_page(request: web.Request) -> web.Response:
    target = local_target(request.query.get("next"))
    if request.get(ACCESS):
        raise web.HTTPSeeOther(target)
    return login_form(target=target)


async def login_submit(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    if cfg.token is None and cfg.users is None:
        return web.Response(status=403, text="no admin token or users file: use loopback")
    if not cfg.login_limiter.allow(request.remote or ""):
        cfg.logins["rate_limited"] += 1
        return login_form(429)
    form = await request.post()
    name = str(form.get("user") or "").strip()
    password = str(form.get("password") or form.get("token") or "")
    target = local_target(form.get("next"))
    if not name:  # the admin token
        if cfg.token and hmac.compare_digest(password.encode(), cfg.token.encode()):
            cfg.logins["ok"] += 1
            return _start(request, "token", "", target)
        cfg.logins["wrong_token"] += 1
        return login_form(401, target)
    key = name.lower()
    if cfg.users is None or cfg.user_failures.full(key):
        cfg.logins["rate_limited" if cfg.users else "unknown_user"] += 1
        return login_form(429 if cfg.users else 401, target)
    user = cfg.users.get(name)
    if not await asyncio.to_thread(verify_password, user, password) or user is None:
        cfg.user_failures.note(key)
        cfg.logins["unknown_user" if user is None else "wrong_password"] += 1
        return login_form(401, target)
    cfg.logins["ok"] += 1
    return _start(request, user.name, password_stamp(user), target)


def _start(request: web.Request, user: str, stamp: str, target: str) -> web.Response:
    cfg = request.app[CONFIG]
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        cfg.sessions.revoke(old)  # a fresh id at each login (no session fixation)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        SESSION_COOKIE,
        cfg.sessions.create(user, stamp),
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
