"""The public block page: what a child sees after the resolver pointed a blocked name at us.

It answers GET for any Host and any path (a blocked site's whole URL lands here), says why the
site is blocked (the category, the service by name, the authorities' list), for which profile
(its display name), when a schedule block lifts ("Mở lại lúc 11:30"), who runs the network
(`organisation` in the config), shows the hotline prominently, and offers two small forms:
"request unblock" (for teachers and parents; never for the mandated list, which no one here can
lift) and "report harmful content". Form posts need a token issued with the page (bound to Host
and client address), are rate-limited per client address, are capped in size and stored without
any personal data.

HTTPS: with the school CA (`blockpage.ca`, resolver/http/blocktls.py) a device that installed
the CA gets a certificate for the blocked name and this page; other devices get a certificate
error. The CA certificate itself is served at FORM_BASE/school-ca.crt for setting devices up.
"""

from __future__ import annotations

import asyncio
import html
import logging
import ssl
import string
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from resolver.http.i18n import TEXT, category_label, opens_text, pick_language
from resolver.http.ports import ResolverControl
from resolver.http.security import CSP_NO_SCRIPT, FormTokens, RateLimiter, add_security_headers
from resolver.lists.normalize import is_ip_literal, name_or_reason
from resolver.policy.blockinfo import BlockInfo
from resolver.policy.decision import Decision, Tier
from resolver.store.base import RequestStore

log = logging.getLogger(__name__)

FORM_BASE = "/.well-known/safe-resolver"
MAX_BODY = 16 * 1024  # bytes; a form post is a few hundred
MAX_NOTE = 500  # characters
MAX_URL = 2000

_PAGE = string.Template(
    resources.files("resolver.http").joinpath("templates/page.html").read_text(encoding="utf-8")
)
_e = html.escape


@dataclass(frozen=True, slots=True)
class BlockPageConfig:
    control: ResolverControl
    store: RequestStore | None
    hotline: str
    hotline_name: str | None  # None: the national hotline's name in the page language
    lang_default: str
    tokens: FormTokens
    limiter: RateLimiter
    organisation: tuple[str, str, str]  # name, address, contact ("": not shown)


CONFIG = web.AppKey("blockpage_config", BlockPageConfig)


def make_blockpage_app(
    control: ResolverControl,
    *,
    hotline: str = "111",
    hotline_name: str | None = None,
    store: RequestStore | None = None,
    lang_default: str = "vi",
    rate_limit: tuple[int, float] = (5, 600.0),
    organisation: tuple[str, str, str] = ("", "", ""),
) -> web.Application:
    """The block-page app. `store=None` hides the forms (nowhere to keep requests).

    `rate_limit` is (posts, seconds) per client address across both forms; `organisation` is
    the config's (name, address, contact) of who runs the network.
    """
    if lang_default not in TEXT:
        raise ValueError(f"blockpage language must be one of {', '.join(TEXT)}")
    app = web.Application(client_max_size=MAX_BODY)
    app[CONFIG] = BlockPageConfig(
        control=control,
        store=store,
        hotline=hotline,
        hotline_name=hotline_name,
        lang_default=lang_default,
        tokens=FormTokens(),
        limiter=RateLimiter(*rate_limit),
        organisation=organisation,
    )
    app.on_response_prepare.append(add_security_headers(CSP_NO_SCRIPT))
    app.router.add_get(f"{FORM_BASE}/school-ca.crt", get_school_ca)
    app.router.add_post(f"{FORM_BASE}/unblock", post_unblock)
    app.router.add_post(f"{FORM_BASE}/report", post_report)
    app.router.add_get("/{tail:.*}", get_page)
    return app


# -- request helpers --------------------------------------------------------------------------


def request_host(request: web.Request) -> str | None:
    """The Host header as a normalized name or IP literal; "" if absent; None if malformed."""
    raw = request.headers.get("Host", "").strip()
    if not raw:
        return ""
    if raw.startswith("["):
        literal, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        return literal if is_ip_literal(literal) else None
    host, sep, port = raw.rpartition(":")
    if not sep:
        host = raw
    elif not port.isdigit():
        return None
    if is_ip_literal(host):
        return host
    name, reason = name_or_reason(host)
    return None if reason else name


def _client(request: web.Request) -> str:
    return request.remote or ""


def _lang(request: web.Request) -> str:
    cfg = request.app[CONFIG]
    return pick_language(
        request.query.get("lang"), request.headers.get("Accept-Language"), cfg.lang_default
    )


def _info(request: web.Request, host: str) -> BlockInfo | None:
    if not host:
        return None
    try:
        return request.app[CONFIG].control.block_info(_client(request), host)
    except Exception:  # the page must render even if the lookup fails
        log.exception("block page: block_info(%r) failed", host)
        return None


def _reason_text(decision: Decision, lang: str) -> str:
    t = TEXT[lang]
    if decision.tier is Tier.MANDATED:
        return t["mandated"]
    if decision.tier is Tier.DENY_LIST:
        return t["tier_deny"]
    if decision.tier is Tier.SCHEDULE:
        return t["tier_schedule"]
    return category_label(decision.category, lang)


# -- rendering --------------------------------------------------------------------------------


def _page(lang: str, title: str, body: str, status: int = 200) -> web.Response:
    other = "en" if lang == "vi" else "vi"
    text = _PAGE.substitute(
        lang=lang,
        title=_e(title),
        body=body,
        switch_href=f"?lang={other}",
        switch_lang=other,
        switch_label=_e(TEXT[lang]["switch"]),
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _hotline(cfg: BlockPageConfig, lang: str) -> str:
    t = TEXT[lang]
    number = _e(cfg.hotline)
    tel = _e("".join(ch for ch in cfg.hotline if ch.isdigit() or ch == "+"))
    return (
        f'<section class="hotline" id="hotline"><h2>{_e(t["help_title"])}</h2>'
        f"<p>{_e(t['help_text'])}</p>"
        f'<a class="call" href="tel:{tel}">{number}</a>'
        f'<p class="who">{_e(cfg.hotline_name or t["hotline_name"])}</p></section>'
    )


def _organisation(cfg: BlockPageConfig, lang: str) -> str:
    """Who runs the network, from the config's `organisation` (nothing when unset)."""
    name, address, contact = cfg.organisation
    if not (name or contact):
        return ""
    t = TEXT[lang]
    lines = [f'<p class="org-name">{_e(name)}</p>' if name else ""]
    if address:
        lines.append(f"<p>{_e(address)}</p>")
    if contact:
        lines.append(f'<p>{_e(t["org_contact"])}: <span id="org-contact">{_e(contact)}</span></p>')
    return (
        f'<section class="org" id="organisation"><h2>{_e(t["org_title"])}</h2>'
        f"{''.join(lines)}</section>"
    )


def _forms(cfg: BlockPageConfig, lang: str, token: str, info: BlockInfo | None) -> str:
    if cfg.store is None:
        return ""
    t = TEXT[lang]
    hidden = f'<input type="hidden" name="token" value="{_e(token)}">'
    out = ""
    if info is not None and info.decision.tier is not Tier.MANDATED:
        out += (
            f"<details><summary>{_e(t['unblock_title'])}</summary>"
            f'<form method="post" action="{FORM_BASE}/unblock?lang={lang}">{hidden}'
            f"<p>{_e(t['unblock_help'])}</p>"
            f'<label for="note-u">{_e(t["note"])}</label>'
            f'<textarea id="note-u" name="note" rows="3" maxlength="{MAX_NOTE}"></textarea>'
            f'<button type="submit">{_e(t["send_unblock"])}</button></form></details>'
        )
    out += (
        f"<details><summary>{_e(t['report_title'])}</summary>"
        f'<form method="post" action="{FORM_BASE}/report?lang={lang}">{hidden}'
        f"<p>{_e(t['report_help'])}</p>"
        f'<label for="url-r">{_e(t["report_url"])}</label>'
        f'<input type="text" id="url-r" name="url" maxlength="{MAX_URL}" required>'
        f'<label for="note-r">{_e(t["note"])}</label>'
        f'<textarea id="note-r" name="note" rows="3" maxlength="{MAX_NOTE}"></textarea>'
        f'<button type="submit">{_e(t["send_report"])}</button></form></details>'
    )
    return out


def _message(lang: str, title: str, message: str, status: int, error: bool) -> web.Response:
    t = TEXT[lang]
    body = (
        f"<h1>{_e(title)}</h1>"
        f'<p class="msg{" err" if error else ""}" role="status">{_e(message)}</p>'
        f'<a class="back" href="/?lang={lang}">{_e(t["back"])}</a>'
    )
    return _page(lang, title, body, status)


def _error(lang: str, key: str, status: int) -> web.Response:
    return _message(lang, TEXT[lang]["title"], TEXT[lang][key], status, error=True)


# -- handlers ---------------------------------------------------------------------------------


async def get_page(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    lang = _lang(request)
    host = request_host(request)
    if host is None:
        return _error(lang, "err_input", 400)
    t = TEXT[lang]
    info = _info(request, host)
    mandated = info is not None and info.decision.tier is Tier.MANDATED
    facts = ""
    if host:
        facts += f'<div><dt>{_e(t["site"])}</dt><dd id="site">{_e(host)}</dd></div>'
    if info is not None:
        if info.service_name:
            facts += (
                f"<div><dt>{_e(t['service'])}</dt>"
                f'<dd id="service">{_e(info.service_name[lang])}</dd></div>'
            )
        profile = info.profile_name.get(lang) or info.decision.profile
        facts += (
            f"<div><dt>{_e(t['reason'])}</dt>"
            f'<dd id="reason">{_e(_reason_text(info.decision, lang))}</dd></div>'
            f'<div><dt>{_e(t["profile"])}</dt><dd id="profile">{_e(profile)}</dd></div>'
        )
    opens = ""
    if info is not None and info.opens_at is not None:
        opens = f'<p class="opens" id="opens">{_e(opens_text(info.opens_at, lang))}</p>'
    lead = t["lead_unknown"] if info is None else t["lead_mandated" if mandated else "lead"]
    todo = [t["todo_back"]]
    if mandated:
        todo.append(t["mandated_note"])
    else:
        todo.append(t["todo_wait"] if opens else t["todo_ask"])
    token = cfg.tokens.issue(f"{host}|{_client(request)}")
    body = (
        f"<h1>{_e(t['title'])}</h1>"
        f'<p class="lead">{_e(lead)}</p>'
        + opens
        + (f'<dl class="facts">{facts}</dl>' if facts else "")
        + _hotline(cfg, lang)
        + f"<h2>{_e(t['todo_title'])}</h2>"
        + '<ul class="todo">'
        + "".join(f"<li>{_e(item)}</li>" for item in todo)
        + "</ul>"
        + _forms(cfg, lang, token, info)
        + _organisation(cfg, lang)
    )
    return _page(lang, t["title"], body)


async def get_school_ca(request: web.Request) -> web.Response:
    """The school CA's certificate (DER, what phones and Windows install from a download);
    404 without a CA. Public: a certificate is no secret, its key never leaves the box."""
    pem = request.app[CONFIG].control.school_ca()
    if pem is None:
        raise web.HTTPNotFound(text="no school CA is configured (blockpage.ca)\n")
    return web.Response(
        body=ssl.PEM_cert_to_DER_cert(pem.decode("ascii")),
        content_type="application/x-x509-ca-cert",
        headers={"Content-Disposition": 'attachment; filename="school-ca.crt"'},
    )


async def _checked_form(request: web.Request) -> tuple[str, str, dict[str, str]] | web.Response:
    """Common checks of both forms: (lang, host, fields) or the error response to send."""
    cfg = request.app[CONFIG]
    lang = _lang(request)
    host = request_host(request)
    if host is None or cfg.store is None:
        return _error(lang, "err_input", 400 if host is None else 404)
    form = await request.post()  # over MAX_BODY: aiohttp answers 413
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if len(fields) != len(form):  # file uploads have no business here
        return _error(lang, "err_input", 400)
    if not cfg.tokens.check(fields.get("token", ""), f"{host}|{_client(request)}"):
        return _error(lang, "err_token", 403)
    if not cfg.limiter.allow(_client(request)):
        return _error(lang, "err_rate", 429)
    return lang, host, fields


def _clean(text: str, limit: int) -> str | None:
    """Trimmed text without control characters (newlines kept), or None if over `limit`."""
    text = "".join(ch for ch in text.strip() if ch.isprintable() or ch == "\n")
    return text if len(text) <= limit else None


async def post_unblock(request: web.Request) -> web.Response:
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    lang, host, fields = checked
    note = _clean(fields.get("note", ""), MAX_NOTE)
    if note is None:
        return _error(lang, "err_input", 400)
    info = _info(request, host)
    if info is None:
        return _error(lang, "err_not_blocked", 400)
    decision = info.decision
    if decision.tier is Tier.MANDATED:  # no allow reaches the mandated list: refuse here
        return _error(lang, "err_mandated", 403)
    store = request.app[CONFIG].store
    assert store is not None
    stored = await asyncio.to_thread(
        store.add_unblock, host, decision.profile, decision.category, note
    )
    if stored is None:
        return _error(lang, "err_full", 503)
    t = TEXT[lang]
    return _message(lang, t["thanks_title"], t["thanks_unblock"], 200, error=False)


async def post_report(request: web.Request) -> web.Response:
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    lang, _host, fields = checked
    url = _clean(fields.get("url", ""), MAX_URL)
    note = _clean(fields.get("note", ""), MAX_NOTE)
    if not url or note is None or "\n" in url:
        return _error(lang, "err_input", 400)
    store = request.app[CONFIG].store
    assert store is not None
    if await asyncio.to_thread(store.add_content_report, url, note) is None:
        return _error(lang, "err_full", 503)
    t = TEXT[lang]
    return _message(lang, t["thanks_title"], t["thanks_report"], 200, error=False)
