"""The HTML report for the authorities: one self-contained page, charts drawn here as inline SVG.

No script, no CDN, no web font: the file opens offline, on a phone and on paper. Labels are
bilingual (Vietnamese / English) because the same file goes to the school board and to the
province. It states who made it (the config's `organisation`), the period, the time zone the
days are cut in, which days have no data (a red banner: never a silent gap), the mandated list
versions in force, and the figures.

Phones: the viewport meta and fluid widths keep the page within the screen; below 600 px each
table row becomes a small card whose cells carry their column's name (`data-label`), so no
table is wider than the screen. Print: A4 margins, sections kept whole where they fit, table
heads repeated on every page.

Names are whatever clients asked for, so every one is HTML-escaped (tables and SVG labels alike),
and text cells carry `mso-number-format: "\\@"` so a spreadsheet that opens or pastes the
table keeps `=1+2.xvideos.com` as text instead of evaluating it.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from resolver.http.i18n import category_label

_e = html.escape

_CSS = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: "Segoe UI", "Noto Sans", Roboto, Arial, sans-serif; color: #1f2d3d;
  margin: 0 auto; padding: 16px; max-width: 980px; line-height: 1.4; overflow-wrap: break-word; }
h1 { font-size: 1.45rem; margin: 0 0 8px; } h1 small { display: block; font-size: 1rem;
  color: #475569; font-weight: normal; }
h2 { font-size: 1.1rem; margin: 26px 0 8px; border-bottom: 2px solid #2160a8; padding-bottom: 3px; }
dl.meta { display: grid; grid-template-columns: minmax(0, 13em) minmax(0, 1fr); gap: 3px 12px;
  margin: 8px 0 14px; }
dl.meta dt { color: #475569; } dl.meta dd { margin: 0; font-weight: 600; }
.banner { border-radius: 8px; padding: 10px 14px; margin: 12px 0; }
.banner.ok { background: #e8f6ec; border: 1px solid #86c99a; }
.banner.gap { background: #fdecec; border: 2px solid #d9534f; }
.banner ul { margin: 6px 0 0; padding-left: 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; }
.card { background: #f3f8ff; border-radius: 10px; padding: 10px 12px; }
.card b { display: block; font-size: 1.4rem; font-variant-numeric: tabular-nums; }
.card.mandated { background: #fff4e5; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 5px 8px; text-align: left;
  vertical-align: top; }
th { background: #f1f5f9; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.n { white-space: nowrap; }
td.t { mso-number-format: "\\@"; overflow-wrap: anywhere; }
tr.nodata td { color: #b91c1c; }
code { font-size: .85em; word-break: break-all; }
svg { display: block; width: 100%; height: auto; }
.bar { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 2px 10px;
  margin: 0 0 8px; align-items: center; }
.bar .label { grid-column: 1 / -1; }
.bar .track { background: #f1f5f9; border-radius: 4px; height: 14px; }
.bar .fill { display: block; background: #d9534f; border-radius: 4px; height: 14px; }
.bar .v { font-variant-numeric: tabular-nums; }
p.note { color: #475569; font-size: .85rem; }
@media (max-width: 600px) {
  body { padding: 10px; }
  dl.meta { grid-template-columns: minmax(0, 1fr); } dl.meta dd { margin-bottom: 4px; }
  table, tbody, tr, td { display: block; width: 100%; }
  thead { display: none; }
  tr { border: 1px solid #e2e8f0; border-radius: 8px; margin-bottom: 8px; padding: 4px 0; }
  td, td.n { display: flex; justify-content: space-between; gap: 10px; border: 0;
    padding: 2px 10px; text-align: right; white-space: normal; }
  td::before { content: attr(data-label); color: #475569; text-align: left; flex: 0 1 45%; }
}
@media print {
  @page { size: A4; margin: 14mm; }
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  section { break-inside: avoid-page; } section.long { break-inside: auto; }
  thead { display: table-header-group; } tr { break-inside: avoid; }
  .banner, .card, .bar .fill { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

BLUE, RED = "#2160a8", "#d9534f"
COUNT_LABELS = {
    "queries": "Truy vấn / Queries",
    "blocked": "Bị chặn / Blocked",
    "mandated": "Danh sách bắt buộc / Mandated",
    "safesearch": "Tìm kiếm an toàn / Safe search",
    "rewritten": "Chuyển hướng / Rewritten",
}
ACTION_LABELS = {
    "blocked": "Chặn / Blocked",
    "rewritten": "Chuyển hướng (RPZ) / Redirected (RPZ)",
    "servfail": "Chuyển hướng, lỗi máy chủ / Redirect failed",
    "refused": "Từ chối / Refused",
}
REASONS = {
    "no data": "không có dữ liệu (máy chủ tắt hoặc chưa cài đặt) / no data (server down or "
    "not installed yet)",
    "after the report was made": "sau thời điểm lập báo cáo / after the report was made",
}


def _n(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}".replace(",", ".")  # Vietnamese thousands separator


def day_chart(per_day: list[dict[str, Any]], width: int = 940, height: int = 240) -> str:
    """Bars of queries per day with the blocked share in red; days with no data get a grey
    mark under the axis."""
    if not per_day:
        return "<p>—</p>"
    left, bottom, top = 64, 40, 14
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((row["queries"] or 0) for row in per_day) or 1
    step = plot_w / len(per_day)
    bar = max(1.0, step * 0.8)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Truy vấn mỗi ngày / Queries per day">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#94a3b8"/>',
        f'<text x="{left - 6}" y="{top + 10}" text-anchor="end" font-size="12">{_n(peak)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="12">0</text>',
    ]
    label_every = max(1, len(per_day) // 10)
    for i, row in enumerate(per_day):
        x = left + i * step + (step - bar) / 2
        if not row["covered"]:
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h + 2}" width="{bar:.1f}" height="5" '
                f'fill="#9ca3af"><title>{_e(row["day"])}: không có dữ liệu / no data</title></rect>'
            )
        else:
            hq = plot_h * row["queries"] / peak
            hb = plot_h * row["blocked"] / peak
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - hq:.1f}" width="{bar:.1f}" '
                f'height="{hq:.1f}" fill="{BLUE}"><title>{_e(row["day"])}: '
                f"{_n(row['queries'])}</title></rect>"
                f'<rect x="{x:.1f}" y="{top + plot_h - hb:.1f}" width="{bar:.1f}" '
                f'height="{hb:.1f}" fill="{RED}"><title>{_e(row["day"])}: '
                f"{_n(row['blocked'])}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 20}" text-anchor="middle" '
                f'font-size="11">{_e(row["day"][5:])}</text>'
            )
    parts.append(
        f'<text x="{left}" y="{height - 4}" font-size="12" fill="{BLUE}">'
        "■ Truy vấn / Queries</text>"
        f'<text x="{left + 190}" y="{height - 4}" font-size="12" fill="{RED}">■ Bị chặn / Blocked'
        f'</text><text x="{left + 370}" y="{height - 4}" font-size="12" fill="#6b7280">'
        "■ Không có dữ liệu / No data</text></svg>"
    )
    return "".join(parts)


def bar_chart(items: list[tuple[str, int]]) -> str:
    """Horizontal bars, one per (label, value), as HTML (the label above its bar), so they
    reflow to any width and stay readable on a phone, unlike text inside a scaled SVG."""
    if not items:
        return "<p>—</p>"
    peak = max(v for _, v in items) or 1
    rows = "".join(
        f'<div class="bar"><span class="label">{_e(label)}</span><span class="track">'
        f'<span class="fill" style="width:{max(0.5, 100 * value / peak):.1f}%"></span></span>'
        f'<span class="v">{_n(value)}</span></div>'
        for label, value in items
    )
    return f'<div class="bars">{rows}</div>'


def _table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    """A table whose cells carry their header (`data-label`) for the phone layout; numbers
    are right-aligned (as are their columns' heads), None is a dash, anything else escaped
    text."""
    numeric = [
        all(c is None or isinstance(c, int | float) for c in column)
        and any(c is not None for c in column)
        for column in zip(*rows, strict=True)
    ] or [False] * len(headers)
    head = "".join(
        f'<th class="n">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>"
        for h, num in zip(headers, numeric, strict=True)
    )
    body = []
    for r, row in enumerate(rows):
        cells = []
        for h, c in zip(headers, row, strict=True):
            label = f' data-label="{_e(h)}"'
            if isinstance(c, float):
                number = f"{c:.1f}".replace(".", ",")  # Vietnamese decimal comma
                cells.append(f'<td class="n"{label}>{number}</td>')
            elif isinstance(c, int) or c is None:
                cells.append(f'<td class="n"{label}>{_n(c)}</td>')
            else:
                cells.append(f'<td class="t"{label}>{_e(str(c))}</td>')
        css = f' class="{classes[r]}"' if classes and classes[r] else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _offset(report: dict[str, Any]) -> str:
    """The UTC offset the report's time zone had when it was made (e.g. UTC+07:00)."""
    offset = datetime.fromisoformat(report["generated"]).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else ""


def _meta(report: dict[str, Any]) -> str:
    org = report["organisation"]
    unset = "(chưa khai báo / not set: organisation in config.yaml)"
    period = f"{report['from']} – {report['to']}"
    if report["period"]:
        period = f"{report['period']}: {period}"
    period += f" ({report['coverage']['days']} ngày / days)"
    rows = [
        ("Đơn vị / Organisation", org["name"] or unset),
        ("Địa chỉ / Address", org["address"] or "—"),
        ("Liên hệ / Contact", org["contact"] or "—"),
        ("Kỳ báo cáo / Reporting period", period),
        ("Múi giờ / Time zone", f"{report['timezone']} ({_offset(report)})"),
        ("Nhóm người dùng / Profile", report["profile"] or "tất cả / all"),
        ("Lập lúc / Generated", report["generated"]),
    ]
    return '<dl class="meta">' + "".join(
        f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows
    ) + "</dl>"  # fmt: skip


def _coverage(report: dict[str, Any]) -> str:
    cov = report["coverage"]
    if cov["complete"] and not cov["partial"]:
        return (
            f'<div class="banner ok">Có dữ liệu cho cả {_n(cov["covered"])}/{_n(cov["days"])} '
            f"ngày của kỳ báo cáo. / Data for all {cov['days']} days of the period.</div>"
        )
    items = [
        f"<li>{_e(m['from'])}{' – ' + _e(m['to']) if m['days'] > 1 else ''} "
        f"({m['days']} ngày / days): {_e(REASONS.get(m['reason'], m['reason']))}</li>"
        for m in cov["missing"]
    ]
    if cov["partial"]:
        items.append(
            "<li>Máy chủ chỉ hoạt động một phần ngày / Server up only part of the day: "
            + _e(", ".join(cov["partial"]))
            + "</li>"
        )
    return (
        f'<div class="banner gap"><b>⚠ Kỳ báo cáo không được bao phủ đầy đủ / The period is NOT '
        f"fully covered:</b> có dữ liệu cho {_n(cov['covered'])}/{_n(cov['days'])} ngày / data "
        f"for {cov['covered']} of {cov['days']} days. Các số liệu dưới đây chỉ tính những ngày "
        f"có dữ liệu. / The figures below count the covered days only.<ul>{''.join(items)}</ul>"
        "</div>"
    )


def _versions(report: dict[str, Any]) -> str:
    rows, classes = [], []
    for v in report["list_versions"]:
        version = f"serial {v['serial']}" if v["serial"] is not None else ""
        if v["digest"]:
            version = (version + " " if version else "") + f"sha256 {v['digest']}"
        fetched = v["fetched_at"].replace("T", " ").replace("Z", " UTC") if v["fetched_at"] else "—"
        rows.append([
            v["source"] or "", version or "—", v["rules"], fetched,
            v["in_force_from"][:16].replace("T", " "), v["state"] or "",
        ])  # fmt: skip
        classes.append("nodata" if v["state"] == "withdrawn" else "")
    if not rows:
        return (
            "<p>Không có danh sách bắt buộc nào được ghi nhận trong kỳ. / No mandated list "
            "version is recorded for the period.</p>"
        )
    return _table(
        ["Danh sách / List", "Phiên bản / Version", "Quy tắc / Rules", "Tải về / Fetched",
         "Áp dụng từ / In force from", "Trạng thái / State"],
        rows, classes,
    )  # fmt: skip


def to_html(report: dict[str, Any]) -> str:
    t = report["totals"]
    cards = "".join(
        f'<div class="card{" mandated" if key == "mandated" else ""}">{_e(COUNT_LABELS[key])}'
        f"<b>{_n(t[key])}</b></div>"
        for key in ("queries", "blocked", "mandated", "safesearch")
    )
    counts_head = [COUNT_LABELS[k] for k in ("queries", "blocked", "mandated", "safesearch")]
    categories = [
        (" / ".join(category_label(r["category"] or None, lg) for lg in ("vi", "en")), r["blocked"])
        for r in report["by_category"]
    ]
    mandated = report["mandated"]
    req = report["requests"]
    per_day = report["per_day"]
    top = report["top_blocked"]
    top_part = (
        _table(
            ["Tên miền / Domain", "Lượt chặn / Blocked"], [[r["domain"], r["blocked"]] for r in top]
        )
        + '<p class="note">Tên miền đăng ký được (eTLD+1). Mỗi ngày lưu 1.000 tên miền bị chặn '
        "nhiều nhất, nên số lượt là giới hạn dưới. / Registrable domains (eTLD+1). Each day keeps "
        "its 1,000 most blocked, so counts are lower bounds.</p>"
        if report["profile"] is None
        else "<p>Chỉ có cho tất cả các nhóm. / Kept for all profiles together only.</p>"
    )
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Báo cáo lọc nội dung DNS / DNS filtering report {_e(report['from'])} – "
        f"{_e(report['to'])}</title><style>{_CSS}</style></head><body>"
        "<header><h1>Báo cáo lọc nội dung DNS<small>DNS content-filtering report (Decision "
        "468/QĐ-TTg)</small></h1>"
        + _meta(report)
        + "</header>"
        + _coverage(report)
        + f'<section><h2>Tổng hợp / Totals</h2><div class="cards">{cards}</div></section>'
        + "<section><h2>Danh sách bắt buộc của cơ quan chức năng / Lists mandated by the "
        "authorities</h2>"
        + _table(
            ["Cách trả lời / Answered as", "Lượt / Answers"],
            [[ACTION_LABELS.get(a, a), n] for a, n in mandated["by_action"].items()]
            + [["Tổng / Total", mandated["hits"]]],
        )
        + "<h3>Phiên bản áp dụng trong kỳ / Versions in force in the period</h3>"
        + _versions(report)
        + "</section><section><h2>Bị chặn theo danh mục / Blocked by category</h2>"
        + bar_chart(categories)
        + "</section><section><h2>Theo nhóm người dùng / Per profile</h2>"
        + _table(
            ["Nhóm / Profile", *counts_head],
            [
                [r["profile"] or "—", r["queries"], r["blocked"], r["mandated"], r["safesearch"]]
                for r in report["per_profile"]
            ],
        )
        + "</section><section><h2>Yêu cầu và phản ánh / Requests and reports</h2>"
        + _table(
            ["Loại / Kind", "Số lượng / Count"],
            [
                [
                    "Yêu cầu mở chặn được chấp thuận / Unblock requests approved",
                    req["unblock_approved"],
                ],
                ["Yêu cầu mở chặn bị từ chối / Unblock requests rejected", req["unblock_rejected"]],
                [
                    "Phản ánh nội dung độc hại / Harmful-content reports received",
                    req["content_report"],
                ],
                [
                    "Lần nạp chính sách thành công / Policy reloads succeeded",
                    report["reloads"]["ok"],
                ],
                [
                    "Lần nạp chính sách thất bại / Policy reloads failed",
                    report["reloads"]["failed"],
                ],
            ],
        )
        + '</section><section class="long"><h2>Tên miền bị chặn nhiều nhất / Most blocked '
        "domains</h2>"
        + top_part
        + '</section><section class="long"><h2>Theo ngày / Per day</h2>'
        + day_chart(per_day)
        + _table(
            ["Ngày / Day", "Giờ hoạt động / Hours up", *counts_head[:3]],
            [[r["day"], r["up_hours"], r["queries"], r["blocked"], r["mandated"]] for r in per_day],
            ["" if r["covered"] else "nodata" for r in per_day],
        )
        + '</section><footer><p class="note">Chỉ gồm số liệu tổng hợp; không có địa chỉ hay '
        "định danh người dùng. Mã SHA-256 của tệp này được ghi trong nhật ký kiểm toán của máy "
        "chủ (kiểm tra: <code>safe-resolver audit --verify TỆP</code>). / Aggregates only; no "
        "client address or identifier. The SHA-256 of this file is recorded in the server's "
        "audit trail (check: <code>safe-resolver audit --verify FILE</code>).</p></footer>"
        "</body></html>\n"
    )
