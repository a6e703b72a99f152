"""The content-reports inbox: reports of harmful sites sent from the block page, for the admin.

Every report is reachable, page by page, with the total (no silent cut at the first rows); the
store's cap (MAX_CONTENT_REPORTS: a flood of form posts must not fill the disk) is shown when
reached, since the block page then refuses new reports. Reports leave by the admin's Delete or
by their own retention (`querylog.content_reports_retention_days`, applied hourly by the
server). The CSV export is for a spreadsheet: reports carry whatever a visitor typed, so every
text cell is quoted and one that would start a formula is made inert
(`resolver.store.reports.spreadsheet_cell`).
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from typing import Any

from aiohttp import web

from resolver.http.admin_keys import CONFIG
from resolver.http.params import int_param, json_error
from resolver.http.params import request_store as _store
from resolver.store.base import SEARCH_LIMIT_MAX, RequestStore
from resolver.store.reports import spreadsheet_cell
from resolver.store.sqlite import MAX_CONTENT_REPORTS

API = "/api/v1"
PAGE = 50
MAX_DELETE = 1000  # ids one delete may name


def setup_inbox(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{API}/content-reports", content_reports)
    r.add_post(f"{API}/content-reports/delete", delete_reports)
    r.add_get(f"{API}/content-reports.csv", export_csv)


async def content_reports(request: web.Request) -> web.Response:
    store = _store(request)
    try:
        limit = int_param(request, "limit", PAGE, 1, SEARCH_LIMIT_MAX)
        offset = int_param(request, "offset", 0, 0, 10 * MAX_CONTENT_REPORTS)
    except ValueError as exc:
        return json_error(str(exc))
    rows = await asyncio.to_thread(store.list_content_reports, limit, offset)
    total = await asyncio.to_thread(store.count_content_reports)
    retention = request.app[CONFIG].control.status().get("content_reports_retention_days")
    return web.json_response({
        "reports": rows, "total": total, "offset": offset, "limit": limit,
        "cap": MAX_CONTENT_REPORTS, "full": total >= MAX_CONTENT_REPORTS,
        "retention_days": retention,
    })  # fmt: skip


async def delete_reports(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return json_error("body is not JSON")
    ids = body.get("ids") if isinstance(body, dict) else None
    if (
        not isinstance(ids, list)
        or not 0 < len(ids) <= MAX_DELETE
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        return json_error(f'expected {{"ids": [1, 2, ...]}} (1 to {MAX_DELETE} ids)')
    deleted = await asyncio.to_thread(_store(request).delete_content_reports, ids)
    return web.json_response({"deleted": deleted})


def _all_reports(store: RequestStore) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = store.list_content_reports(SEARCH_LIMIT_MAX, len(rows))
        rows += page
        if len(page) < SEARCH_LIMIT_MAX:
            return rows


def reports_csv(rows: list[dict[str, Any]]) -> str:
    """id, received (local time), url, note: text cells quoted and inert in a spreadsheet."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
    w.writerow(["id", "received", "url", "note"])
    for row in rows:
        received = datetime.fromtimestamp(row["created"]).astimezone()
        w.writerow(spreadsheet_cell(cell) for cell in (
            row["id"], received.isoformat(timespec="seconds"), row["url"], row["note"]
        ))  # fmt: skip
    return out.getvalue()


async def export_csv(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(_all_reports, _store(request))
    day = datetime.now().strftime("%Y-%m-%d")
    return web.Response(
        # The byte-order mark makes spreadsheet programs read the Vietnamese text as UTF-8.
        body=("\ufeff" + reports_csv(rows)).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="content-reports-{day}.csv"'},
    )
