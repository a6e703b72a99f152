"""Page texts in Vietnamese (the default) and English, and how a request picks its language.

Texts are plain strings: every value is HTML-escaped where it is put into a page. Category
display names come from the list catalogue (`blocklists/catalogue.yaml`) when it can be read,
else the category id is shown as it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping

from resolver.lists.catalogue import load_catalogue

log = logging.getLogger(__name__)

LANGS = ("vi", "en")

TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Trang này đã bị chặn",
        "lead": "Trang web này đã được chặn để giữ an toàn cho em khi lên mạng.",
        "lead_unknown": "Trang này không thể mở qua mạng của trường.",
        "site": "Trang web",
        "reason": "Lý do",
        "profile": "Nhóm người dùng",
        "mandated": "Theo yêu cầu của cơ quan chức năng",
        "category_generic": "Nội dung không phù hợp",
        "tier_deny": "Nằm trong danh sách chặn của nhà trường / nhà mạng",
        "tier_schedule": "Chưa đến giờ được phép sử dụng",
        "help_title": "Em cần giúp đỡ hay đang lo lắng?",
        "help_text": "Hãy gọi miễn phí, bất kỳ lúc nào:",
        "hotline_name": "Tổng đài quốc gia bảo vệ trẻ em",
        "todo_title": "Em có thể làm gì?",
        "todo_back": "Quay lại trang trước và tiếp tục học tập, vui chơi an toàn.",
        "todo_ask": (
            "Nếu cần trang này cho việc học, hãy nhờ thầy cô hoặc bố mẹ gửi yêu cầu mở chặn."
        ),
        "unblock_title": "Yêu cầu mở chặn (dành cho thầy cô, phụ huynh)",
        "unblock_help": "Không cần ghi tên hay thông tin cá nhân. Quản trị viên sẽ xem xét.",
        "note": "Vì sao cần trang này? (không bắt buộc)",
        "send_unblock": "Gửi yêu cầu",
        "report_title": "Báo cáo nội dung độc hại",
        "report_help": "Thấy trang web có nội dung xấu, nguy hiểm? Hãy cho chúng tôi biết.",
        "report_url": "Địa chỉ trang web",
        "send_report": "Gửi báo cáo",
        "thanks_title": "Cảm ơn bạn!",
        "thanks_unblock": "Yêu cầu mở chặn đã được gửi tới quản trị viên.",
        "thanks_report": "Báo cáo đã được gửi. Cảm ơn bạn đã giúp giữ an toàn cho mọi người.",
        "back": "Quay lại",
        "switch": "English",
        "err_token": "Biểu mẫu đã hết hạn. Hãy tải lại trang và thử lại.",
        "err_rate": "Bạn đã gửi quá nhiều lần. Hãy thử lại sau ít phút.",
        "err_full": "Hộp thư yêu cầu đang đầy. Hãy liên hệ trực tiếp với nhà trường.",
        "err_input": "Nội dung gửi không hợp lệ.",
        "err_not_blocked": "Trang này hiện không bị chặn.",
    },
    "en": {
        "title": "This page is blocked",
        "lead": "This website has been blocked to keep you safe online.",
        "lead_unknown": "This page cannot be opened on this network.",
        "site": "Website",
        "reason": "Reason",
        "profile": "User group",
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
        "unblock_title": "Request unblocking (for teachers and parents)",
        "unblock_help": "No name or personal details needed. An administrator will review it.",
        "note": "Why is this site needed? (optional)",
        "send_unblock": "Send request",
        "report_title": "Report harmful content",
        "report_help": "Seen a website with harmful or dangerous content? Let us know.",
        "report_url": "Website address",
        "send_report": "Send report",
        "thanks_title": "Thank you!",
        "thanks_unblock": "Your unblock request has been sent to the administrator.",
        "thanks_report": "Your report has been sent. Thank you for helping keep everyone safe.",
        "back": "Go back",
        "switch": "Tiếng Việt",
        "err_token": "This form has expired. Please reload the page and try again.",
        "err_rate": "Too many submissions. Please try again in a few minutes.",
        "err_full": "The request box is full. Please contact the school directly.",
        "err_input": "The form contents are not valid.",
        "err_not_blocked": "This page is not blocked at the moment.",
    },
}


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
