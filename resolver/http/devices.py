"""Setting up a child's device for encrypted DNS: one page per device on the admin app.

For each device declared in the policy the page gives what each system asks for: an Apple
configuration profile (`.mobileconfig`, payload `com.apple.dnsSettings.managed`, DoH or DoT) for
iPhone, iPad and Mac; the Android "Private DNS" host name (`{token}-{profile}.{server name}`);
the DoH URL for Windows 11 and browsers, also as a QR code (inline SVG, `segno`) to scan with the
phone. Vietnamese by default, English by `?lang=en` or Accept-Language. The device's token is its
identity: the page says to keep it private. Admin access only (the admin app's middleware).

With a school CA (`blockpage.ca`) the pages also offer its certificate (`/school-ca.crt`) with
its fingerprint and how each system installs it, for the HTTPS block page.
"""

from __future__ import annotations

import hashlib
import html
import plistlib
import ssl
import string
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

import segno
from aiohttp import web

from resolver.http.admin_keys import CONFIG
from resolver.http.i18n import TEXT, pick_language

_PAGE = string.Template(
    resources.files("resolver.http").joinpath("templates/device.html").read_text(encoding="utf-8")
)
_e = html.escape
PROFILE_NAMESPACE = uuid.UUID("6f1b7c1e-3c53-4d5e-9d3a-5a2f0e7f1c11")  # our payload UUIDs


@dataclass(frozen=True, slots=True)
class DeviceSetup:
    """What one device is told to use; "" where that listener is off."""

    name: str
    profile: str
    doh_url: str  # https://dns.example.vn/dns-query/family/<token>
    dot_host: str  # <token>-family.dns.example.vn (Android Private DNS, Apple DoT)
    dot_port: int


def device_setups(
    devices: dict[str, str], doh_ports: list[int], dot_ports: list[int], server_name: str
) -> list[DeviceSetup]:
    """The set-up of each device from its DoH path identity (`profile/token`, by name), the
    encrypted listeners' ports and the server's public name."""
    out = []
    for name, path in sorted(devices.items()):
        profile, _, token = path.partition("/")
        doh = ""
        if doh_ports:
            port = "" if doh_ports[0] == 443 else f":{doh_ports[0]}"
            doh = f"https://{server_name}{port}/dns-query/{path}"
        dot = f"{token}-{profile}.{server_name}" if dot_ports else ""
        out.append(DeviceSetup(name, profile, doh, dot, dot_ports[0] if dot_ports else 0))
    return out


def mobileconfig(setup: DeviceSetup, protocol: str) -> bytes:
    """An Apple configuration profile (XML plist) that sets encrypted DNS for the whole device:
    `protocol` "doh" (DNSProtocol HTTPS, ServerURL) or "dot" (TLS, ServerName). Its UUIDs are
    derived from the device and endpoint, so installing it again replaces the same profile."""
    if protocol == "doh":
        settings: dict[str, Any] = {"DNSProtocol": "HTTPS", "ServerURL": setup.doh_url}
        key = setup.doh_url
    else:
        settings = {"DNSProtocol": "TLS", "ServerName": setup.dot_host}
        key = f"{setup.dot_host}:{setup.dot_port}"
    ident = f"vn.safe-resolver.dns.{setup.name}.{protocol}"
    payload = {
        "PayloadType": "com.apple.dnsSettings.managed",
        "PayloadIdentifier": ident + ".settings",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, "payload|" + key)).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": f"safe-resolver DNS ({setup.name})",
        "DNSSettings": settings,
    }
    profile = {
        "PayloadContent": [payload],
        "PayloadDisplayName": f"safe-resolver: {setup.name}",
        "PayloadDescription": "Encrypted DNS with child-protection filtering (safe-resolver).",
        "PayloadIdentifier": ident,
        "PayloadType": "Configuration",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, "profile|" + key)).upper(),
        "PayloadVersion": 1,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def qr_svg(text: str) -> str:
    """`text` as a QR code in inline SVG (no image file, no script: the page's CSP allows it)."""
    code = segno.make(text, error="m")
    return str(code.svg_inline(scale=4, title="QR", dark="#1f2d3d", omitsize=True))


def setup_devices(app: web.Application) -> None:
    """Add the device pages to the admin app."""
    app.router.add_get("/devices", devices_page)
    app.router.add_get("/school-ca.crt", school_ca)
    app.router.add_get("/devices/{name}", device_page)
    app.router.add_get("/devices/{name}/{protocol}.mobileconfig", device_profile)


def _setups(request: web.Request) -> dict[str, DeviceSetup]:
    return {s.name: s for s in request.app[CONFIG].control.device_setups()}


def _lang(request: web.Request) -> str:
    return pick_language(request.query.get("lang"), request.headers.get("Accept-Language"))


def _page(lang: str, title: str, body: str, switch: str) -> web.Response:
    t = TEXT[lang]
    text = _PAGE.substitute(
        lang=lang, title=_e(title), body=body, switch=_e(switch), switch_label=_e(t["switch"])
    )
    return web.Response(text=text, content_type="text/html", charset="utf-8")


async def devices_page(request: web.Request) -> web.Response:
    lang = _lang(request)
    t = TEXT[lang]
    setups = _setups(request)
    if setups:
        items = "".join(
            f'<li><a href="/devices/{_e(s.name)}?lang={lang}">{_e(s.name)}</a> '
            f"<span class=muted>({_e(t['dev_profile'])}: {_e(s.profile)})</span></li>"
            for s in setups.values()
        )
        body = f"<ul class=devices>{items}</ul>"
    else:
        body = f"<p class=muted>{_e(t['dev_none'])}</p>"
    body += _ca_section(request, lang)
    other = "en" if lang == "vi" else "vi"
    return _page(lang, t["dev_list_title"], body, f"/devices?lang={other}")


async def device_page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    setup = _setups(request).get(name)
    lang = _lang(request)
    t = TEXT[lang]
    if setup is None:
        raise web.HTTPNotFound(text=t["dev_unknown"])
    sections = [
        f"<p class=lead>{_e(t['dev_lead'])}</p>",
        f"<p class=warn>{_e(t['dev_secret'])}</p>",
    ]
    if setup.doh_url or setup.dot_host:
        links = []
        if setup.doh_url:
            links.append(_download(setup, "doh", t["dev_apple_doh"]))
        if setup.dot_host:
            links.append(_download(setup, "dot", t["dev_apple_dot"]))
        sections.append(
            f"<section><h2>{_e(t['dev_apple'])}</h2><p>{_e(t['dev_apple_how'])}</p>"
            f"<p class=buttons>{''.join(links)}</p></section>"
        )
    if setup.dot_host:
        port_note = "" if setup.dot_port == 853 else f" <p class=warn>{_e(t['dev_dot_port'])}</p>"
        sections.append(
            f"<section><h2>{_e(t['dev_android'])}</h2><p>{_e(t['dev_android_how'])}</p>"
            f"<p><code id=dot-host>{_e(setup.dot_host)}</code></p>{port_note}</section>"
        )
    if setup.doh_url:
        sections.append(
            f"<section><h2>{_e(t['dev_doh'])}</h2><p>{_e(t['dev_doh_how'])}</p>"
            f"<p><code id=doh-url>{_e(setup.doh_url)}</code></p>"
            f"<figure class=qr>{qr_svg(setup.doh_url)}<figcaption>{_e(t['dev_qr'])}</figcaption>"
            "</figure></section>"
        )
    if len(sections) == 2:
        sections.append(f"<p class=warn>{_e(t['dev_no_listener'])}</p>")
    body = (
        f"<dl class=facts><div><dt>{_e(t['dev_device'])}</dt><dd>{_e(setup.name)}</dd></div>"
        f"<div><dt>{_e(t['dev_profile'])}</dt><dd>{_e(setup.profile)}</dd></div></dl>"
        + "".join(sections)
        + _ca_section(request, lang)
        + f'<p><a href="/devices?lang={lang}">{_e(t["dev_all"])}</a></p>'
    )
    other = "en" if lang == "vi" else "vi"
    title = f"{t['dev_title']}: {setup.name}"
    return _page(lang, title, body, f"/devices/{_e(setup.name)}?lang={other}")


def _ca_der(request: web.Request) -> bytes | None:
    pem = request.app[CONFIG].control.school_ca()
    return None if pem is None else ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))


def _ca_section(request: web.Request, lang: str) -> str:
    """The school CA's download, fingerprint and per-system steps; "" without a CA."""
    der = _ca_der(request)
    if der is None:
        return ""
    t = TEXT[lang]
    fingerprint = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    steps = "".join(
        f"<li>{_e(t[key])}</li>"
        for key in ("ca_ios", "ca_android", "ca_windows", "ca_macos", "ca_chromeos")
    )
    return (
        f'<section id="school-ca"><h2>{_e(t["ca_title"])}</h2><p>{_e(t["ca_lead"])}</p>'
        f'<p class=buttons><a class=button id="get-ca" href="/school-ca.crt" download>'
        f"{_e(t['ca_download'])}</a></p>"
        f"<p>{_e(t['ca_fingerprint'])}: <code id=ca-fingerprint>{fingerprint}</code></p>"
        f"<ul>{steps}</ul></section>"
    )


async def school_ca(request: web.Request) -> web.Response:
    """The school CA's certificate (DER) for the HTTPS block page; 404 without one."""
    der = _ca_der(request)
    if der is None:
        raise web.HTTPNotFound(text="no school CA is configured (blockpage.ca)\n")
    return web.Response(
        body=der,
        content_type="application/x-x509-ca-cert",
        headers={"Content-Disposition": 'attachment; filename="school-ca.crt"'},
    )


def _download(setup: DeviceSetup, protocol: str, label: str) -> str:
    href = f"/devices/{_e(setup.name)}/{protocol}.mobileconfig"
    return f'<a class=button id="get-{protocol}" href="{href}" download>{_e(label)}</a>'


async def device_profile(request: web.Request) -> web.Response:
    name, protocol = request.match_info["name"], request.match_info["protocol"]
    setup = _setups(request).get(name)
    if setup is None or protocol not in ("doh", "dot"):
        raise web.HTTPNotFound(text="unknown device or protocol")
    if not (setup.doh_url if protocol == "doh" else setup.dot_host):
        raise web.HTTPNotFound(text=f"no {protocol} listener is configured")
    return web.Response(
        body=mobileconfig(setup, protocol),
        content_type="application/x-apple-aspen-config",
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{protocol}.mobileconfig"',
            "Cache-Control": "no-store",
        },
    )
