// History: the daily roll-ups (GET /api/v1/history) as cards, charts and tables.
"use strict";
(() => {
  const { $, el, option, fmt, say, catName, getJSON, fillTable, drawBars, lineChart } = SR;
  const params = new URLSearchParams(location.search);
  let period = ["day", "week", "6months"].includes(params.get("period")) ? params.get("period") : "week";
  let profile = params.get("profile") || "";

  function num(v) {
    return { text: v === null || v === undefined ? "–" : fmt(v), cls: "n" };
  }

  async function load() {
    for (const b of $("periods").querySelectorAll("button")) {
      b.setAttribute("aria-pressed", b.dataset.period === period ? "true" : "false");
    }
    const q = new URLSearchParams({ period });
    if (profile) q.set("profile", profile);
    history.replaceState(null, "", "?" + q.toString());
    let h;
    try {
      h = await getJSON("/api/v1/history?" + q.toString());
    } catch (e) {
      say("Không lấy được lịch sử · Could not load the history: " + e.message, true);
      return;
    }
    say("");
    const cov = h.coverage;
    const cover = $("coverage");
    cover.textContent = `${h.from} → ${h.to}: ${cov.covered}/${cov.days} ngày có số liệu · days with data` +
      (cov.complete ? "" : " (ngày không có số liệu không tính là 0 · days without data are not zero)");
    cover.className = "msg" + (cov.complete ? "" : " warn");
    for (const k of ["queries", "blocked", "mandated", "safesearch"]) $("t-" + k).textContent = fmt(h.totals[k]);
    const days = h.per_day.map((d) => (period === "6months" ? d.day : d.day.slice(5)));
    lineChart($("chart-queries"), days, [
      { label: "truy vấn · queries", color: "#2160a8", values: h.per_day.map((d) => d.queries) },
    ], "Queries per day");
    lineChart($("chart-blocked"), days, [
      { label: "bị chặn · blocked", color: "#c9302c", values: h.per_day.map((d) => d.blocked) },
      { label: "bắt buộc · mandated", color: "#a86400", values: h.per_day.map((d) => d.mandated) },
    ], "Blocked per day");
    drawBars($("by-category"), h.by_category.slice(0, 15).map((c) => ({ label: catName(h.category_names, c.category), value: c.blocked })), "Blocked by category");
    fillTable($("per-profile"), h.per_profile.map((p) => [SR.link("/dashboard/profiles/" + encodeURIComponent(p.profile), p.profile), num(p.queries), num(p.blocked), num(p.mandated)]), "Chưa có · None");
    fillTable($("top"), h.top_blocked.map((t) => [t.domain, num(t.blocked)]), profile ? "Chỉ có cho tất cả các nhóm · Only for all profiles" : "Chưa có · None");
    fillTable($("per-day"), [...h.per_day].reverse().map((d) => d.covered
      ? [d.day, num(d.queries), num(d.blocked), num(d.mandated)]
      : [d.day, { text: "không có số liệu · no data", cls: "warn" }, "", ""]), "–");
  }

  async function init() {
    for (const b of $("periods").querySelectorAll("button")) {
      b.addEventListener("click", () => { period = b.dataset.period; load(); });
    }
    try {
      const list = await getJSON("/api/v1/profiles");
      for (const p of list.profiles) $("profile").append(option(p.id));
    } catch (e) {
      say(e.message, true);
    }
    $("profile").value = profile;
    $("profile").addEventListener("change", () => { profile = $("profile").value; load(); });
    await load();
  }
  init();
})();
