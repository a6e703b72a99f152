"""The HTML query-log report: one self-contained page, charts drawn here as inline SVG.

No script, no CDN, no web font: the file opens offline and prints. Labels are bilingual
(Vietnamese / English) because the same file goes to the school board and to the province.
Names are whatever clients asked for, so every one is HTML-escaped (tables and SVG labels alike),
and text cells carry `mso-number-format: "\\@"` so a spreadsheet that opens or pastes the
table keeps `=1+2.xvideos.com` as text instead of evaluating it.
"""

from __future__ import annotations

import html
from typing import Any

from resolver.http.i18n import category_label

_e = html.escape

_CSS = """
body { font-family: "Segoe UI", "Noto Sans", Roboto, Arial, sans-serif; color: #1f2d3d;
  margin: 24px; max-width: 980px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 28px; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 5px 8px; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.t { mso-number-format: "\\@"; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #f3f8ff; border-radius: 10px; padding: 10px 14px; min-width: 150px; }
.card b { display: block; font-size: 1.5rem; }
svg { max-width: 100%; height: auto; }
"""

BLUE, RED = "#2160a8", "#d9534f"


def _n(value: int) -> str:
    return f"{value:,}".replace(",", ".")  # Vietnamese thousands separator


def day_chart(per_day: list[dict[str, Any]], width: int = 940, height: int = 260) -> str:
    """Bars of queries per day with the blocked share in red."""
    if not per_day:
        return "<p>—</p>"
    left, bottom, top = 60, 40, 14
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(row["queries"] for row in per_day) or 1
    step = plot_w / len(per_day)
    bar = max(1.0, step * 0.8)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Queries per day">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#94a3b8"/>',
        f'<text x="{left - 6}" y="{top + 10}" text-anchor="end" font-size="11">{_n(peak)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    label_every = max(1, len(per_day) // 12)
    for i, row in enumerate(per_day):
        x = left + i * step + (step - bar) / 2
        hq = plot_h * row["queries"] / peak
        hb = plot_h * row["blocked"] / peak
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - hq:.1f}" width="{bar:.1f}" height="{hq:.1f}" '
            f'fill="{BLUE}"><title>{_e(row["day"])}: {_n(row["queries"])}</title></rect>'
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - hb:.1f}" width="{bar:.1f}" height="{hb:.1f}" '
            f'fill="{RED}"><title>{_e(row["day"])}: {_n(row["blocked"])}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                f'font-size="10">{_e(row["day"][5:])}</text>'
            )
    parts.append(
        f'<text x="{left}" y="{height - 4}" font-size="12" fill="{BLUE}">'
        "■ Truy vấn / Queries</text>"
        f'<text x="{left + 180}" y="{height - 4}" font-size="12" fill="{RED}">■ Bị chặn / Blocked'
        "</text></svg>"
    )
    return "".join(parts)


def bar_chart(items: list[tuple[str, int]], width: int = 940) -> str:
    """Horizontal bars, one per (label, value)."""
    if not items:
        return "<p>—</p>"
    row, label_w = 26, 300
    height = row * len(items) + 6
    peak = max(v for _, v in items) or 1
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Blocked by category">']
    for i, (label, value) in enumerate(items):
        y = i * row + 4
        w = max(2.0, (width - label_w - 90) * value / peak)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{_e(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="16" rx="3" fill="{RED}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12">{_n(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(
        f'<th class="n">{_e(h)}</th>' if i else f"<th>{_e(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_n(c)}</td>'
            if isinstance(c, int)
            else f'<td class="t">{_e(str(c))}</td>'
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: dict[str, Any]) -> str:
    t = report["totals"]
    scope = report["profile"] or "tất cả / all"
    cards = "".join(
        f'<div class="card">{_e(label)}<b>{_n(t[key])}</b></div>'
        for key, label in (
            ("queries", "Truy vấn / Queries"),
            ("blocked", "Bị chặn / Blocked"),
            ("mandated", "Theo danh sách bắt buộc / Mandated lists"),
            ("safesearch", "Tìm kiếm an toàn / Safe-search rewrites"),
        )
    )
    counts_head = ["Truy vấn / Queries", "Chặn / Blocked", "Bắt buộc / Mandated", "SafeSearch"]
    categories = [
        (" / ".join(category_label(r["category"] or None, lg) for lg in ("vi", "en")), r["blocked"])
        for r in report["by_category"]
    ]
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        "<title>Báo cáo lọc DNS / DNS filtering report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Báo cáo lọc nội dung DNS / DNS content-filtering report</h1>"
        f"<p>Từ / From <b>{_e(report['from'])}</b> đến / to <b>{_e(report['to'])}</b> · "
        f"Nhóm / Profile: <b>{_e(scope)}</b> · Lập lúc / Generated {_e(report['generated'])}</p>"
        f'<div class="cards">{cards}</div>'
        "<h2>Theo ngày / Per day</h2>"
        + day_chart(report["per_day"])
        + "<h2>Bị chặn theo danh mục / Blocked by category</h2>"
        + bar_chart(categories)
        + "<h2>Theo nhóm người dùng / Per profile</h2>"
        + _table(
            ["Nhóm / Profile", *counts_head],
            [
                [r["profile"], r["queries"], r["blocked"], r["mandated"], r["safesearch"]]
                for r in report["per_profile"]
            ],
        )
        + "<h2>Tên miền bị chặn nhiều nhất / Most blocked domains</h2>"
        + _table(
            ["Tên miền / Domain", "Lượt chặn / Blocked"],
            [[r["qname"], r["blocked"]] for r in report["top_blocked"]],
        )
        + "<h2>Chi tiết theo ngày / Daily detail</h2>"
        + _table(
            ["Ngày / Day", *counts_head],
            [
                [r["day"], r["queries"], r["blocked"], r["mandated"], r["safesearch"]]
                for r in report["per_day"]
            ],
        )
        + "<p><small>Chỉ gồm số liệu tổng hợp; không có địa chỉ hay định danh người dùng. / "
        "Aggregates only; no client address or identifier.</small></p></body></html>\n"
    )
