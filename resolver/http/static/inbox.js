// Content-reports inbox: every report page by page (with the total), delete, CSV export.
"use strict";
(() => {
  const { $, el, fmt, say, getJSON, request, fillTable } = SR;
  const PAGE = 50;
  let offset = 0;
  let total = 0;

  function selected() {
    return [...document.querySelectorAll("#reports input[type=checkbox]:checked")].map((c) => Number(c.value));
  }
  function syncButtons() {
    $("delete").disabled = selected().length === 0;
  }

  async function remove(ids) {
    try {
      const r = await request("POST", "/api/v1/content-reports/delete", { ids });
      say(`Đã xoá ${r.deleted} báo cáo · Deleted ${r.deleted} reports`);
    } catch (e) {
      say(e.message, true);
    }
    await load();
  }

  async function load() {
    let data;
    try {
      data = await getJSON(`/api/v1/content-reports?limit=${PAGE}&offset=${offset}`);
    } catch (e) {
      say(e.message, true);
      return;
    }
    total = data.total;
    if (offset >= total && offset > 0) {
      offset = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE);
      return load();
    }
    $("retention").textContent = data.retention_days
      ? `Báo cáo được giữ ${data.retention_days} ngày · Reports are kept ${data.retention_days} days.` : "";
    $("full").hidden = !data.full;
    $("full").textContent = `Hộp thư đã đầy (${fmt(data.cap)}): trang chặn đang từ chối báo cáo mới; hãy xuất và xoá · ` +
      `The inbox is full (${fmt(data.cap)}): the block page refuses new reports; export and delete some.`;
    fillTable($("reports"), data.reports.map((r) => {
      const box = el("input");
      box.type = "checkbox";
      box.value = String(r.id);
      box.setAttribute("aria-label", "#" + r.id);
      box.addEventListener("change", syncButtons);
      const del = el("button", "Xoá · Delete", "no");
      del.type = "button";
      del.addEventListener("click", () => remove([r.id]));
      return [box, "#" + r.id, new Date(r.created * 1000).toLocaleString("vi-VN"), r.url, r.note || "–", del];
    }), "Không có báo cáo nào · No reports");
    $("range").textContent = total
      ? `${fmt(offset + 1)}–${fmt(offset + data.reports.length)} / ${fmt(total)}` : "0";
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + data.reports.length >= total;
    $("all").checked = false;
    syncButtons();
  }

  $("all").addEventListener("change", () => {
    for (const c of document.querySelectorAll("#reports input[type=checkbox]")) c.checked = $("all").checked;
    syncButtons();
  });
  $("delete").addEventListener("click", () => remove(selected()));
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
  $("next").addEventListener("click", () => { offset += PAGE; load(); });
  load();
})();
