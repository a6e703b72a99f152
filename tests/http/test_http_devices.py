"""The device set-up pages on the admin app: the profile download is a valid Apple
configuration profile, the page gives every system's setting in both languages."""

from __future__ import annotations

import plistlib
from pathlib import Path

from web_support import AN_TOKEN, ControlImpl

from resolver.http.admin import make_admin_app
from resolver.http.devices import DeviceSetup, device_setups, mobileconfig
from resolver.http.schoolca import init_ca


async def _client(aiohttp_client, tmp_path: Path):  # type: ignore[no-untyped-def]
    app = make_admin_app(ControlImpl(tmp_path / "overlay.yaml"), token=None, store=None,
                         querylog=None)  # fmt: skip
    return await aiohttp_client(app)


def test_setups_follow_the_listeners() -> None:
    paths = {"an-phone": f"family/{AN_TOKEN}"}
    (setup,) = device_setups(paths, [8443], [853], "dns.example.vn")
    assert setup.doh_url == f"https://dns.example.vn:8443/dns-query/family/{AN_TOKEN}"
    assert setup.dot_host == f"{AN_TOKEN}-family.dns.example.vn"
    (off,) = device_setups(paths, [], [], "dns.example.vn")
    assert (off.doh_url, off.dot_host) == ("", "")


def test_mobileconfig_is_an_apple_dns_settings_profile() -> None:
    setup = DeviceSetup(
        "an-phone",
        "family",
        "https://dns.example.vn/dns-query/family/x",
        "x-family.dns.example.vn",
        853,
    )
    doh = plistlib.loads(mobileconfig(setup, "doh"))
    assert doh["PayloadType"] == "Configuration"
    (payload,) = doh["PayloadContent"]
    assert payload["PayloadType"] == "com.apple.dnsSettings.managed"
    assert payload["DNSSettings"] == {"DNSProtocol": "HTTPS", "ServerURL": setup.doh_url}
    dot = plistlib.loads(mobileconfig(setup, "dot"))
    assert dot["PayloadContent"][0]["DNSSettings"] == {
        "DNSProtocol": "TLS",
        "ServerName": "x-family.dns.example.vn",
    }
    assert dot["PayloadUUID"] != doh["PayloadUUID"]
    assert mobileconfig(setup, "doh") == mobileconfig(setup, "doh")  # reinstall replaces it


async def test_device_page_and_download(aiohttp_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = await _client(aiohttp_client, tmp_path)
    listing = await client.get("/devices", headers={"Accept-Language": "en"})
    assert listing.status == 200 and "an-phone" in await listing.text()
    page = await client.get("/devices/an-phone?lang=vi")
    text = await page.text()
    assert page.status == 200
    assert "DNS riêng tư" in text and f"{AN_TOKEN}-family.dns.example.vn" in text
    assert f"https://dns.example.vn/dns-query/family/{AN_TOKEN}" in text
    assert "<svg" in text  # the QR code, inline
    english = await (await client.get("/devices/an-phone?lang=en")).text()
    assert "Private DNS provider hostname" in english
    got = await client.get("/devices/an-phone/doh.mobileconfig")
    assert got.status == 200
    assert got.headers["Content-Type"] == "application/x-apple-aspen-config"
    assert "attachment" in got.headers["Content-Disposition"]
    profile = plistlib.loads(await got.read())
    assert profile["PayloadContent"][0]["DNSSettings"]["ServerURL"].endswith(AN_TOKEN)
    for path in ("/devices/nobody", "/devices/an-phone/ftp.mobileconfig",
                 "/devices/nobody/doh.mobileconfig"):  # fmt: skip
        assert (await client.get(path)).status == 404


async def test_device_pages_offer_the_school_ca_with_its_fingerprint(aiohttp_client, tmp_path):  # type: ignore[no-untyped-def]
    control = ControlImpl(tmp_path / "overlay.yaml")
    client = await aiohttp_client(make_admin_app(control, token=None, store=None, querylog=None))
    text = await (await client.get("/devices/an-phone")).text()
    assert 'id="school-ca"' not in text
    assert (await client.get("/school-ca.crt")).status == 404
    ca = init_ca(tmp_path / "ca", "THCS Test")
    control.ca_pem = ca.pem
    for path in ("/devices/an-phone", "/devices"):
        text = await (await client.get(path)).text()
        assert 'id="school-ca"' in text and ca.fingerprint in text, path
        assert "Cài đặt tin cậy chứng nhận" in text and "Trusted Root Certification" in text
    text = await (await client.get("/devices/an-phone?lang=en")).text()
    assert "Certificate Trust Settings" in text
    resp = await client.get("/school-ca.crt")
    assert resp.status == 200 and await resp.read() == ca.der
