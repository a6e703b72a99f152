"""Page texts in Vietnamese (the default) and English, and how a request picks its language.

Texts are plain strings: every value is HTML-escaped where it is put into a page. Category
display names come from the list catalogue (`blocklists/catalogue.yaml`) when it can be read,
else the category id is shown as it is. Each page's texts are a section of their own in both
languages (block page, device set-up pages, ...): keep new texts in their page's section.

Form of address on the block page (Vietnamese): the child is "em", as a teacher or parent
speaks to a pupil of primary or secondary-school age, on the page and on the thank-you pages;
texts that a teacher or parent may be the one reading (the unblock request, its thanks, the
errors after a form) use no form of address at all, so no adult is called "em" and no child
"bạn". Nothing names the network's owner as a school ("của trường"): the same page serves an
ISP's subscribers, and the configured `organisation` is shown by name instead.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import datetime

from resolver.lists.catalogue import load_catalogue

log = logging.getLogger(__name__)

LANGS = ("vi", "en")

TEXT: dict[str, dict[str, str]] = {
    "vi": {
        # -- block page and its thank-you pages (the child is "em": see the module doc) --
        "title": "Trang này đã bị chặn",
        "lead": "Trang web này đã được chặn để giữ an toàn cho em khi lên mạng.",
        "lead_mandated": "Trang web này bị chặn theo quy định của cơ quan chức năng.",
        "lead_unknown": "Trang này không mở được trên mạng này.",
        "site": "Trang web",
        "service": "Dịch vụ",
        "reason": "Lý do",
        "profile": "Nhóm người dùng",
        "opens": "Mở lại lúc {time}",
        "opens_day": "Mở lại lúc {time}, {day}",
        "mandated": "Theo yêu cầu của cơ quan chức năng",
        "category_generic": "Nội dung không phù hợp",
        "tier_deny": "Nằm trong danh sách chặn riêng của mạng này",
        "tier_schedule": "Chưa đến giờ được phép sử dụng",
        "help_title": "Em cần giúp đỡ hay đang lo lắng?",
        "help_text": "Hãy gọi miễn phí, bất kỳ lúc nào:",
        "hotline_name": "Tổng đài quốc gia bảo vệ trẻ em",
        "todo_title": "Em có thể làm gì?",
        "todo_back": "Quay lại trang trước và tiếp tục học tập, vui chơi an toàn.",
        "todo_ask": (
            "Nếu cần trang này cho việc học, em hãy nhờ thầy cô hoặc bố mẹ gửi yêu cầu mở chặn."
        ),
        "todo_wait": "Em có thể quay lại trang này khi đến giờ được phép.",
        "mandated_note": (
            "Trang này nằm trong danh sách chặn bắt buộc của cơ quan chức năng, áp dụng cho mọi "
            "người: người quản lý mạng này không thể mở chặn."
        ),
        "unblock_title": "Yêu cầu mở chặn (dành cho thầy cô, phụ huynh)",
        "unblock_help": "Không cần ghi tên hay thông tin cá nhân. Quản trị viên sẽ xem xét.",
        "note": "Vì sao cần trang này? (không bắt buộc)",
        "send_unblock": "Gửi yêu cầu",
        "report_title": "Báo cáo nội dung độc hại",
        "report_help": "Em thấy trang web có nội dung xấu, nguy hiểm? Hãy cho chúng tôi biết.",
        "report_url": "Địa chỉ trang web",
        "send_report": "Gửi báo cáo",
        "org_title": "Người quản lý mạng",
        "org_contact": "Liên hệ",
        "thanks_title": "Cảm ơn!",
        "thanks_unblock": "Yêu cầu mở chặn đã được gửi tới quản trị viên.",
        "thanks_report": "Báo cáo đã được gửi. Cảm ơn em đã giúp giữ an toàn cho mọi người.",
        "back": "Quay lại",
        "switch": "English",
        "err_token": "Biểu mẫu đã hết hạn. Hãy tải lại trang và thử lại.",
        "err_rate": "Đã gửi quá nhiều lần. Hãy thử lại sau ít phút.",
        "err_full": "Hộp thư yêu cầu đang đầy. Hãy báo trực tiếp cho người quản lý mạng.",
        "err_input": "Nội dung gửi không hợp lệ.",
        "err_not_blocked": "Trang này hiện không bị chặn.",
        "err_mandated": (
            "Trang này bị chặn theo yêu cầu của cơ quan chức năng nên không thể yêu cầu mở chặn."
        ),
        # -- device set-up pages (admin) --
        "dev_title": "Cài đặt thiết bị",
        "dev_list_title": "Thiết bị của gia đình",
        "dev_none": "Chính sách chưa khai báo thiết bị nào (mục devices:).",
        "dev_unknown": "Không có thiết bị này trong chính sách.",
        "dev_all": "Tất cả thiết bị",
        "dev_device": "Thiết bị",
        "dev_profile": "Hồ sơ lọc",
        "dev_lead": (
            "Làm theo một trong các cách dưới đây trên thiết bị của con. Sau đó thiết bị luôn "
            "được lọc nội dung, kể cả khi dùng 4G hay Wi-Fi bên ngoài."
        ),
        "dev_secret": (
            "Giữ kín các địa chỉ trên trang này: chúng chứa mã riêng của thiết bị. "
            "Ai có mã này sẽ dùng được bộ lọc như thiết bị của con."
        ),
        "dev_apple": "iPhone, iPad, Mac",
        "dev_apple_how": (
            "Mở trang này bằng Safari trên thiết bị, tải hồ sơ cấu hình, rồi vào Cài đặt → "
            "Đã tải về hồ sơ → Cài đặt."
        ),
        "dev_apple_doh": "Tải hồ sơ (DNS qua HTTPS)",
        "dev_apple_dot": "Tải hồ sơ (DNS qua TLS)",
        "dev_android": "Android",
        "dev_android_how": (
            "Vào Cài đặt → Mạng và Internet → DNS riêng tư (Private DNS) → Tên máy chủ của nhà "
            "cung cấp DNS riêng tư, rồi nhập:"
        ),
        "dev_dot_port": "Android chỉ dùng cổng 853: máy chủ này nghe DNS qua TLS ở cổng khác.",
        "dev_doh": "Windows 11 và trình duyệt",
        "dev_doh_how": (
            "Windows 11: Cài đặt → Mạng → DNS → Mã hoá DNS (DNS qua HTTPS) → mẫu thủ công. "
            "Chrome, Edge, Firefox: Cài đặt → Bảo mật → DNS an toàn → Tuỳ chỉnh. Dán địa chỉ:"
        ),
        "dev_qr": "Quét mã để mở địa chỉ trên điện thoại",
        "dev_no_listener": "Máy chủ chưa bật DNS mã hoá (dot_listen, doh_listen).",
        "ca_title": "Trang chặn qua HTTPS: chứng chỉ của mạng này",
        "ca_lead": (
            "Cài chứng chỉ này trên thiết bị do nhà trường / gia đình quản lý để trẻ thấy trang "
            "chặn thay vì lỗi bảo mật khi mở trang bị chặn bằng https://. Chỉ cài trên thiết bị "
            "mình quản lý; kiểm tra mã vân tay trước khi tin cậy."
        ),
        "ca_download": "Tải chứng chỉ (school-ca.crt)",
        "ca_fingerprint": "Mã vân tay SHA-256",
        "ca_ios": (
            "iPhone, iPad: mở tệp đã tải, vào Cài đặt > Đã tải về hồ sơ > Cài đặt; rồi Cài đặt > "
            "Cài đặt chung > Giới thiệu > Cài đặt tin cậy chứng nhận: bật chứng chỉ này."
        ),
        "ca_android": (
            "Android: Cài đặt > Bảo mật > Mã hoá và thông tin xác thực > Cài đặt chứng chỉ > "
            "Chứng chỉ CA, chọn tệp đã tải."
        ),
        "ca_windows": (
            "Windows: mở tệp > Cài đặt chứng chỉ > Máy cục bộ > Đặt tất cả chứng chỉ vào kho "
            "sau: Trusted Root Certification Authorities."
        ),
        "ca_macos": (
            "macOS: mở tệp trong Keychain Access (chuỗi khoá System), mở chứng chỉ > Tin cậy > "
            "Luôn tin cậy."
        ),
        "ca_chromeos": (
            "Chromebook, Linux, Firefox: Cài đặt trình duyệt > Quyền riêng tư và bảo mật > Quản "
            "lý chứng chỉ > Cơ quan cấp chứng chỉ > Nhập, tin cậy để nhận dạng trang web."
        ),
    },
    "en": {
        # -- block page and its thank-you pages --
        "title": "This page is blocked",
        "lead": "This website has been blocked to keep you safe online.",
        "lead_mandated": "This website is blocked by order of the authorities.",
        "lead_unknown": "This page cannot be opened on this network.",
        "site": "Website",
        "service": "Service",
        "reason": "Reason",
        "profile": "User group",
        "opens": "Opens again at {time}",
        "opens_day": "Opens again on {day} at {time}",
        "mandated": "Mandated by the authorities",
        "category_generic": "Unsuitable content",
        "tier_deny": "On this network's own block list",
        "tier_schedule": "Not allowed at this time of day",
        "help_title": "Need help or feeling worried?",
        "help_text": "Call for free, any time:",
        "hotline_name": "National Child Protection Hotline",
        "todo_title": "What can you do?",
        "todo_back": "Go back to the previous page and keep learning and playing safely.",
        "todo_ask": (
            "If you need this page for school, ask a teacher or parent to request unblocking."
        ),
        "todo_wait": "You can come back to this page when it is allowed again.",
        "mandated_note": (
            "This site is on the authorities' mandated list, which applies to everyone: this "
            "network's administrators cannot unblock it."
        ),
        "unblock_title": "Request unblocking (for teachers and parents)",
        "unblock_help": "No name or personal details needed. An administrator will review it.",
        "note": "Why is this site needed? (optional)",
        "send_unblock": "Send request",
        "report_title": "Report harmful content",
        "report_help": "Seen a website with harmful or dangerous content? Let us know.",
        "report_url": "Website address",
        "send_report": "Send report",
        "org_title": "This network is run by",
        "org_contact": "Contact",
        "thanks_title": "Thank you!",
        "thanks_unblock": "The unblock request has been sent to the administrator.",
        "thanks_report": "Your report has been sent. Thank you for helping keep everyone safe.",
        "back": "Go back",
        "switch": "Tiếng Việt",
        "err_token": "This form has expired. Please reload the page and try again.",
        "err_rate": "Too many submissions. Please try again in a few minutes.",
        "err_full": "The request box is full. Please tell the network's administrators directly.",
        "err_input": "The form contents are not valid.",
        "err_not_blocked": "This page is not blocked at the moment.",
        "err_mandated": "This site is blocked by order of the authorities: it cannot be unblocked.",
        # -- device set-up pages (admin) --
        "dev_title": "Set up a device",
        "dev_list_title": "Family devices",
        "dev_none": "The policy declares no devices yet (the devices: section).",
        "dev_unknown": "There is no such device in the policy.",
        "dev_all": "All devices",
        "dev_device": "Device",
        "dev_profile": "Filtering profile",
        "dev_lead": (
            "Follow one of the ways below on your child's device. From then on it is filtered "
            "everywhere, on mobile data and on other Wi-Fi networks too."
        ),
        "dev_secret": (
            "Keep the addresses on this page private: they hold the device's own code. "
            "Anyone who has it can use the filter as this device."
        ),
        "dev_apple": "iPhone, iPad, Mac",
        "dev_apple_how": (
            "Open this page in Safari on the device, download the configuration profile, then "
            "go to Settings → Profile Downloaded → Install."
        ),
        "dev_apple_doh": "Download profile (DNS over HTTPS)",
        "dev_apple_dot": "Download profile (DNS over TLS)",
        "dev_android": "Android",
        "dev_android_how": (
            "Go to Settings → Network & internet → Private DNS → Private DNS provider hostname, "
            "and enter:"
        ),
        "dev_dot_port": (
            "Android only uses port 853: this server listens for DNS over TLS on another."
        ),
        "dev_doh": "Windows 11 and browsers",
        "dev_doh_how": (
            "Windows 11: Settings → Network → DNS → DNS over HTTPS → manual template. "
            "Chrome, Edge, Firefox: Settings → Privacy and security → Secure DNS → Custom. "
            "Paste the address:"
        ),
        "dev_qr": "Scan to open the address on the phone",
        "dev_no_listener": (
            "Encrypted DNS is not switched on on this server (dot_listen, doh_listen)."
        ),
        "ca_title": "HTTPS block page: this network's certificate",
        "ca_lead": (
            "Install this certificate on devices the school or family manages, so children see "
            "the block page instead of a security error when a blocked site is opened with "
            "https://. Install it only on devices you manage; check the fingerprint first."
        ),
        "ca_download": "Download the certificate (school-ca.crt)",
        "ca_fingerprint": "SHA-256 fingerprint",
        "ca_ios": (
            "iPhone, iPad: open the downloaded file, Settings > Profile Downloaded > Install; "
            "then Settings > General > About > Certificate Trust Settings: turn it on."
        ),
        "ca_android": (
            "Android: Settings > Security > Encryption & credentials > Install a certificate > "
            "CA certificate, choose the downloaded file."
        ),
        "ca_windows": (
            "Windows: open the file > Install Certificate > Local Machine > Place all "
            "certificates in: Trusted Root Certification Authorities."
        ),
        "ca_macos": (
            "macOS: open the file in Keychain Access (System keychain), open the certificate > "
            "Trust > Always Trust."
        ),
        "ca_chromeos": (
            "Chromebook, Linux, Firefox: browser settings > Privacy and security > Manage "
            "certificates > Authorities > Import, trust for identifying websites."
        ),
    },
}


# Days for "opens again on ...": Monday first, as datetime.weekday() counts.
WEEKDAYS = {
    "vi": ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")  # fmt: skip


def opens_text(when: datetime, lang: str) -> str:
    """ "Mở lại lúc 11:30" today; with the day ("thứ Hai 09/03") when it is another day."""
    t = TEXT[lang]
    clock = f"{when:%H:%M}"
    if when.date() == datetime.now(when.tzinfo).date():
        return t["opens"].format(time=clock)
    weekday = WEEKDAYS[lang][when.weekday()]
    day = (
        f"{weekday} {when:%d/%m}"
        if lang == "vi"
        else f"{weekday} {when.day} {MONTHS_EN[when.month - 1]}"
    )
    return t["opens_day"].format(time=clock, day=day)


def pick_language(query_lang: str | None, accept_language: str | None, default: str = "vi") -> str:
    """`?lang=` wins; then the highest-weighted supported Accept-Language entry; then `default`."""
    if query_lang in LANGS:
        return query_lang
    best, best_q = default, -1.0
    for part in (accept_language or "")[:512].split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-", 1)[0]
        if lang not in LANGS:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = lang, q
    return best


@functools.cache
def _catalogue_names() -> Mapping[str, Mapping[str, str]]:
    """category id -> {"vi": name, "en": name}, or {} if the catalogue is unavailable."""
    try:
        catalogue = load_catalogue()
    except Exception as exc:  # a broken catalogue must not break the block page: show ids
        log.warning("category catalogue unavailable, showing category ids: %s", exc)
        return {}
    return {
        cat_id: {"vi": cat.name_vi, "en": cat.name_en}
        for cat_id, cat in catalogue.categories.items()
    }


def category_label(category: str | None, lang: str) -> str:
    """A category's display name in `lang` (the id itself when the catalogue lacks it)."""
    if not category:
        return TEXT[lang]["category_generic"]
    return _catalogue_names().get(category, {}).get(lang) or category
