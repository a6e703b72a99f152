// Overview: polls the admin JSON API; live timeline, the last 7 days from the roll-ups, lists,
// upstreams and pending unblock requests. Approve/reject/reload are same-origin POSTs.
"use strict";
(() => {
  const { $, el, svgEl, fmt, ago, say, catName, getJSON, request, fillTable, drawBars, lineChart } = SR;
  const POLL_MS = 5000;
  const SLOW_MS = 60000; // history and lists change slowly
  const KEEP = 120; // samples in the timeline (10 minutes at 5 s)
  const samples = [];
  let features = { querylog: false, requests: false };
  let names = {};
  let slowAt = 0;

  function drawTimeline() {
    const box = $("timeline");
    const W = 900, H = 200, L = 50, B = 24;
    const s = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Queries over time" });
    const rates = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1], b = samples[i];
      const dt = Math.max(0.001, b.t - a.t);
      rates.push({ t: b.t, q: Math.max(0, b.total - a.total) / dt, bl: Math.max(0, b.blocked - a.blocked) / dt });
    }
    if (rates.length < 2) {
      s.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#5b6b7b" }, "Đang thu thập… · Collecting…"));
      box.replaceChildren(s);
      return;
    }
    const max = Math.max(1, ...rates.map((r) => r.q));
    const x = (i) => L + (i * (W - L - 10)) / (KEEP - 1);
    const y = (v) => H - B - (v / max) * (H - B - 10);
    s.append(svgEl("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: "#c5d0dc" }));
    s.append(svgEl("text", { x: L - 6, y: 16, "text-anchor": "end", "font-size": 12, fill: "#5b6b7b" }, max.toFixed(1)));
    s.append(svgEl("text", { x: L - 6, y: H - B, "text-anchor": "end", "font-size": 12, fill: "#5b6b7b" }, "0"));
    const offset = KEEP - rates.length;
    const line = (key, color) =>
      svgEl("polyline", {
        points: rates.map((r, i) => `${x(i + offset).toFixed(1)},${y(r[key]).toFixed(1)}`).join(" "),
        fill: "none", stroke: color, "stroke-width": 2.5,
      });
    s.append(line("q", "#2160a8"), line("bl", "#c9302c"));
    s.append(svgEl("text", { x: L + 4, y: H - 6, "font-size": 12, fill: "#2160a8" }, "— truy vấn/s · queries/s"));
    s.append(svgEl("text", { x: L + 200, y: H - 6, "font-size": 12, fill: "#c9302c" }, "— bị chặn/s · blocked/s"));
    box.replaceChildren(s);
  }

  async function refreshStats() {
    const [status, stats] = await Promise.all([getJSON("/api/v1/status"), getJSON("/api/v1/stats")]);
    features = status.features || features;
    names = stats.category_names || {};
    $("status").textContent =
      `v${status.version ?? "?"} · thế hệ chính sách · policy gen ${status.policy_generation ?? "?"} · ` +
      `chạy · up ${ago(Date.now() / 1000 - (status.uptime || 0)).replace(/ trước| ago/g, "")}`;
    const q = stats.queries;
    const blocked = q.by_action.blocked || 0;
    samples.push({ t: stats.time, total: q.total, blocked });
    while (samples.length > KEEP + 1) samples.shift();
    const n = samples.length;
    const rate = n > 1 ? (samples[n - 1].total - samples[n - 2].total) / Math.max(0.001, samples[n - 1].t - samples[n - 2].t) : null;
    $("c-qps").textContent = rate === null ? "–" : rate.toFixed(1);
    $("c-total").textContent = fmt(q.total);
    $("c-blocked").textContent = fmt(blocked);
    const lookups = stats.cache.hits + stats.cache.misses;
    $("c-cache").textContent = lookups ? ((100 * stats.cache.hits) / lookups).toFixed(0) + "%" : "–";
    $("c-dropped").textContent = fmt(stats.querylog.dropped);
    drawTimeline();
    const cats = Object.entries(q.by_category).sort((a, b) => b[1] - a[1]).slice(0, 12);
    drawBars($("categories"), cats.map(([id, v]) => ({ label: catName(names, id), value: v })), "Blocked by category");
    fillTable($("upstreams"), stats.upstreams.map((u) => [
      u.address,
      el("span", u.healthy ? "tốt · up" : "lỗi · down", u.healthy ? "good" : "bad"),
      { text: fmt(u.errors), cls: "n" },
      { text: u.latency_avg_ms === null ? "–" : u.latency_avg_ms.toFixed(1), cls: "n" },
    ]), "Không có máy chủ · No upstreams");
  }

  async function refreshLog() {
    if (!features.querylog) {
      fillTable($("top"), [], "Nhật ký truy vấn đang tắt · Query log disabled");
      return;
    }
    const summary = await getJSON("/api/v1/querylog/summary?hours=24&top=10");
    fillTable($("top"), summary.top_blocked.map((r) => [r.qname, { text: fmt(r.blocked), cls: "n" }]), "Chưa có · None yet");
  }

  async function refreshWeek() {
    if (!features.querylog) {
      $("week").replaceChildren(el("p", "Nhật ký truy vấn đang tắt: không có số liệu theo ngày · Query log disabled: no daily figures", "empty"));
      return;
    }
    const h = await getJSON("/api/v1/history?period=week");
    const days = h.per_day.map((d) => d.day.slice(5));
    lineChart($("week"), days, [
      { label: "truy vấn · queries", color: "#2160a8", values: h.per_day.map((d) => d.queries) },
      { label: "bị chặn · blocked", color: "#c9302c", values: h.per_day.map((d) => d.blocked) },
    ], "Last 7 days");
  }

  const WORST = ["stale", "missing", "failing", "never-fetched", "ok", "bundled"];
  async function refreshLists() {
    const data = await getJSON("/api/v1/lists");
    const by = new Map();
    for (const row of data.lists) {
      const c = by.get(row.category) || { rules: 0, states: [] };
      c.rules += row.rules || 0;
      c.states.push(row.state);
      by.set(row.category, c);
    }
    fillTable($("lists"), [...by.entries()].map(([cat, c]) => {
      const worst = WORST.find((s) => c.states.includes(s)) || "ok";
      return [catName(data.category_names, cat), { text: fmt(c.rules), cls: "n" }, SR.listState(worst)];
    }), "Chưa nạp danh sách · No lists loaded");
  }

  function decideButton(id, action, label, cls) {
    const b = el("button", label, cls);
    b.type = "button";
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await request("POST", `/api/v1/unblock-requests/${id}/${action}`);
        say(`#${id}: ${action === "approve" ? "đã duyệt · approved" : "đã từ chối · rejected"}`);
      } catch (e) {
        say(`#${id}: ${e.message}`, true);
      }
      refreshRequests().catch((e) => say(e.message, true));
    });
    return b;
  }

  async function refreshRequests() {
    if (!features.requests) {
      fillTable($("requests"), [], "Chưa cấu hình nơi lưu · No request store configured");
      return;
    }
    const data = await getJSON("/api/v1/unblock-requests?status=pending");
    fillTable($("requests"), data.requests.map((r) => {
      const buttons = el("span");
      buttons.append(decideButton(r.id, "approve", "Duyệt · Approve", "ok"), " ", decideButton(r.id, "reject", "Từ chối · Reject", "no"));
      return ["#" + r.id, r.host, r.profile, catName(names, r.category), r.note, new Date(r.created * 1000).toLocaleString("vi-VN"), buttons];
    }), "Không có yêu cầu nào · No pending requests");
  }

  async function tick() {
    try {
      await refreshStats();
      const jobs = [refreshLog(), refreshRequests()];
      if (Date.now() - slowAt > SLOW_MS) {
        slowAt = Date.now();
        jobs.push(refreshWeek(), refreshLists());
      }
      await Promise.all(jobs);
    } catch (e) {
      say("Không lấy được dữ liệu · Could not load data: " + e.message, true);
    }
  }

  $("reload").addEventListener("click", async () => {
    try {
      const r = await request("POST", "/api/v1/reload");
      say(`Đã tải lại · Reloaded: generation ${r.generation} (${(r.duration || 0).toFixed(2)} s)`);
    } catch (e) {
      say("Tải lại thất bại · Reload failed: " + e.message, true);
    }
  });
  $("flush").addEventListener("click", async () => {
    try {
      const r = await request("POST", "/api/v1/cache/flush");
      say(`Đã xoá ${r.flushed} mục · Flushed ${r.flushed} entries`);
    } catch (e) {
      say(e.message, true);
    }
  });

  tick();
  setInterval(tick, POLL_MS);
})();
