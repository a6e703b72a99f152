"""The block page through a real aiohttp test server: content, languages, forms, hostile input."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from web_support import ControlImpl

from resolver.http.blockpage import FORM_BASE, MAX_BODY, make_blockpage_app
from resolver.http.schoolca import init_ca
from resolver.policy.blockinfo import BlockInfo
from resolver.policy.decision import Action, BlockMode, Decision, Tier
from resolver.store import sqlite as sqlite_store
from resolver.store.sqlite import SqliteRequestStore

TOKEN = re.compile(r'name="token" value="([^"]+)"')


async def client_for(aiohttp_client, control, store=None, **kwargs):
    return await aiohttp_client(make_blockpage_app(control, store=store, **kwargs))


async def page(client, host: str, path: str = "/", **headers) -> tuple[int, str, dict]:
    resp = await client.get(path, headers={"Host": host, **headers})
    return resp.status, await resp.text(), dict(resp.headers)


async def test_blocked_site_in_vietnamese_with_reason_profile_hotline(aiohttp_client, control):
    client = await client_for(aiohttp_client, control)
    status, text, headers = await page(client, "adult.example", "/videos?id=1")
    assert status == 200
    assert '<html lang="vi">' in text and "Trang này đã bị chặn" in text
    assert "Nội dung người lớn" in text  # category name from the catalogue
    assert 'id="profile">students<' in text
    assert 'href="tel:111">111</a>' in text and "Tổng đài quốc gia bảo vệ trẻ em" in text
    assert headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "<script" not in text and "http://" not in text and "https://" not in text


async def test_english_by_header_and_switch_and_mandated_reason(aiohttp_client, control):
    client = await client_for(aiohttp_client, control)
    _, text, _ = await page(client, "casino.example", **{"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in text and "Gambling" in text
    _, text, _ = await page(client, "casino.example", "/?lang=en")
    assert "This page is blocked" in text and 'href="?lang=vi"' in text
    _, text, _ = await page(client, "banned.example", "/?lang=en", **{"Accept-Language": "vi"})
    assert "Mandated by the authorities" in text
    _, text, _ = await page(client, "banned.example", "/", **{"Accept-Language": "fr, vi;q=0.5"})
    assert "Theo yêu cầu của cơ quan chức năng" in text


async def test_configurable_hotline_and_unblocked_host(aiohttp_client, control, request_store):
    client = await client_for(
        aiohttp_client, control, request_store, hotline="1900 1234", hotline_name="Đường dây <HN>"
    )
    status, text, _ = await page(client, "fine.example")
    assert status == 200 and "Trang này không mở được trên mạng này" in text
    assert 'href="tel:19001234">1900 1234</a>' in text and "Đường dây &lt;HN&gt;" in text
    assert "/unblock" not in text and f"{FORM_BASE}/report" in text  # nothing to unblock


async def test_any_path_is_escaped_and_never_serves_files(aiohttp_client, control):
    client = await client_for(aiohttp_client, control)
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/<script>alert(1)</script>"):
        status, text, _ = await page(client, "adult.example", path)
        assert status == 200 and "root:" not in text and "<script>" not in text


async def test_hostile_host_header_is_refused(aiohttp_client, control):
    client = await client_for(aiohttp_client, control)
    for host in ("<script>alert(1)</script>", "evil.example:abc", "a..b", "[::1"):
        status, text, _ = await page(client, host)
        assert status == 400 and "<script>alert" not in text, host
    status, _, _ = await page(client, "[::1]:80")
    assert status == 200


async def test_bad_methods_and_oversized_input(aiohttp_client, control, request_store):
    client = await client_for(aiohttp_client, control, request_store)
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        resp = await client.request(method, "/", headers={"Host": "adult.example"})
        assert resp.status == 405, method
    assert (await client.post("/anything", data={"a": "b"})).status == 405
    resp = await client.post(
        f"{FORM_BASE}/report", data={"url": "x" * (MAX_BODY + 1)}, headers={"Host": "a.example"}
    )
    assert resp.status == 413
    resp = await client.get("/", headers={"Host": "adult.example", "X-Big": "x" * 20000})
    assert 400 <= resp.status < 500
    assert request_store.list_content_reports() == []


async def _token(client, host: str) -> str:
    _, text, _ = await page(client, host)
    return TOKEN.search(text).group(1)


async def test_unblock_request_is_stored_without_personal_data(
    aiohttp_client, control, request_store: SqliteRequestStore
):
    client = await client_for(aiohttp_client, control, request_store)
    token = await _token(client, "adult.example")
    resp = await client.post(
        f"{FORM_BASE}/unblock?lang=en",
        data={"token": token, "note": "<b>biology</b> class\x07"},
        headers={"Host": "adult.example"},
    )
    assert resp.status == 200 and "sent to the administrator" in await resp.text()
    (row,) = request_store.list_unblock()
    assert (row["host"], row["profile"], row["category"]) == ("adult.example", "students", "adult")
    assert row["note"] == "<b>biology</b> class"  # stored as text, control characters removed
    assert "127.0.0.1" not in str(row)


async def test_forms_need_a_token_for_the_same_host(aiohttp_client, control, request_store):
    client = await client_for(aiohttp_client, control, request_store)
    other_token = await _token(client, "casino.example")
    for data in ({"note": "x"}, {"token": "123.abc", "note": "x"}, {"token": other_token}):
        resp = await client.post(
            f"{FORM_BASE}/unblock", data=data, headers={"Host": "adult.example"}
        )
        assert resp.status == 403
    assert request_store.list_unblock() == []
    token = await _token(client, "fine.example")  # not blocked: nothing to unblock
    resp = await client.post(
        f"{FORM_BASE}/unblock", data={"token": token}, headers={"Host": "fine.example"}
    )
    assert resp.status == 400 and request_store.list_unblock() == []


async def test_reports_are_rate_limited_capped_and_validated(
    aiohttp_client, control, request_store, monkeypatch
):
    client = await client_for(aiohttp_client, control, request_store, rate_limit=(3, 600.0))
    token = await _token(client, "adult.example")
    url = f"{FORM_BASE}/report"

    async def post(data):
        resp = await client.post(url, data={"token": token, **data},
                                 headers={"Host": "adult.example"})  # fmt: skip
        return resp.status

    assert await post({"url": "http://bad.example/", "note": "scary"}) == 200
    assert await post({"url": "", "note": "no url"}) == 400
    monkeypatch.setattr(sqlite_store, "MAX_CONTENT_REPORTS", 1)
    assert await post({"url": "http://bad2.example/"}) == 503  # store full
    assert await post({"url": "http://bad3.example/"}) == 429  # 4th post from this client
    assert [r["url"] for r in request_store.list_content_reports()] == ["http://bad.example/"]


async def test_page_renders_when_the_lookup_fails(aiohttp_client, tmp_path):
    class Broken(ControlImpl):
        def block_reason(self, client, host):
            raise RuntimeError("policy not loaded")

    client = await client_for(aiohttp_client, Broken(tmp_path / "o.yaml"))
    status, text, _ = await page(client, "adult.example")
    assert status == 200 and "111" in text


async def test_mandated_page_has_no_unblock_form_and_refuses_a_post(
    aiohttp_client, control, request_store
):
    client = await client_for(aiohttp_client, control, request_store)
    status, text, _ = await page(client, "banned.example")
    assert status == 200 and "bị chặn theo quy định của cơ quan chức năng" in text
    assert "người quản lý mạng này không thể mở chặn" in text
    assert f"{FORM_BASE}/unblock" not in text and f"{FORM_BASE}/report" in text
    token = TOKEN.search(text).group(1)
    resp = await client.post(
        f"{FORM_BASE}/unblock?lang=en", data={"token": token}, headers={"Host": "banned.example"}
    )
    assert resp.status == 403 and "it cannot be unblocked" in await resp.text()
    assert request_store.list_unblock() == []


async def test_schedule_block_says_when_it_opens_with_names_and_organisation(
    aiohttp_client, control, request_store
):
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    today = datetime.now(tz).replace(hour=11, minute=30, second=0, microsecond=0)
    decision = Decision(Action.BLOCK, Tier.SCHEDULE, "students", category="social",
                        block_mode=BlockMode.BLOCKPAGE, service="tiktok")  # fmt: skip
    names = {"vi": "Lớp 10A1", "en": "Class 10A1"}
    control.facts["www.tiktok.com"] = BlockInfo(decision, names, {"vi": "TikTok", "en": "TikTok"},
                                                today)  # fmt: skip
    later = today + timedelta(days=(7 - today.weekday()))  # next Monday
    control.facts["later.example"] = BlockInfo(decision, names, {}, later.replace(hour=7, minute=0))
    org = ("THCS Nguyễn Du", "12 Lê Lợi, Huế", "0234 3822 <123>")
    client = await client_for(aiohttp_client, control, request_store, organisation=org)
    _, text, _ = await page(client, "www.tiktok.com")
    assert 'id="opens">Mở lại lúc 11:30<' in text
    assert 'id="profile">Lớp 10A1<' in text and 'id="service">TikTok<' in text
    assert "THCS Nguyễn Du" in text and "0234 3822 &lt;123&gt;" in text
    assert "Em có thể quay lại trang này khi đến giờ được phép." in text
    _, text, _ = await page(client, "later.example", "/?lang=vi")
    assert f"Mở lại lúc 07:00, thứ Hai {later:%d/%m}" in text
    _, text, _ = await page(client, "www.tiktok.com", "/?lang=en")
    assert "Opens again at 11:30" in text and 'id="profile">Class 10A1<' in text
    assert "This network is run by" in text
    _, text, _ = await page(client, "adult.example")  # no organisation section without one
    assert 'id="profile">students<' in text and 'id="opens"' not in text


async def test_one_form_of_address_and_no_school_wording(aiohttp_client, control, request_store):
    client = await client_for(aiohttp_client, control, request_store)
    texts = [
        (await page(client, host))[1] for host in ("adult.example", "banned.example", "x.example")
    ]
    token = TOKEN.search(texts[0]).group(1)
    for form, data in (("unblock", {"token": token}), ("report", {"token": token, "url": "a.vn"})):
        resp = await client.post(
            f"{FORM_BASE}/{form}", data=data, headers={"Host": "adult.example"}
        )
        assert resp.status == 200
        texts.append(await resp.text())
    for text in texts:
        words = re.findall(r"\w+", text.lower())
        assert "bạn" not in words and "của trường" not in text.lower()
    assert "Em có thể làm gì?" in texts[0]


async def test_school_ca_certificate_is_served_only_with_a_ca(aiohttp_client, control, tmp_path):
    client = await client_for(aiohttp_client, control)
    assert (await client.get(f"{FORM_BASE}/school-ca.crt")).status == 404
    ca = init_ca(tmp_path / "ca", "THCS Test")
    control.ca_pem = ca.pem
    resp = await client.get(f"{FORM_BASE}/school-ca.crt", headers={"Host": "10.0.0.1"})
    assert resp.status == 200 and resp.content_type == "application/x-x509-ca-cert"
    assert await resp.read() == ca.der
