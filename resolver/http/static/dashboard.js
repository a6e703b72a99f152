// safe-resolver dashboard: polls the admin JSON API and draws with SVG. No external code.
// Server data only ever reaches the page through textContent / setAttribute (never innerHTML).
"use strict";
(() => {
  const POLL_MS = 5000;
  const KEEP = 120; // samples in the timeline (10 minutes at 5 s)
  const SVGNS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const samples = [];
  let features = { querylog: false, requests: false };
  let names = {};

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("vi-VN"));
  function ago(ts) {
    if (!ts) return "–";
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 3600) return Math.round(s / 60) + " phút / min";
    if (s < 172800) return Math.round(s / 3600) + " giờ / h";
    return Math.round(s / 86400) + " ngày / days";
  }
  function catName(id) {
    const n = names[id];
    return n ? n.vi + " · " + n.en : id || "–";
  }
  function say(text, bad) {
    const m = $("msg");
    m.textContent = text;
    m.className = bad ? "bad" : "";
  }

  async function getJSON(path) {
    const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(path + " → HTTP " + r.status);
    return r.json();
  }
  async function post(path) {
    const r = await fetch(path, { method: "POST", credentials: "same-origin" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
    return body;
  }

  function fillRows(tbody, rows, emptyText) {
    tbody.replaceChildren();
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", emptyText, "empty");
      td.colSpan = 8;
      tr.append(td);
      tbody.append(tr);
      return;
    }
    for (const cells of rows) {
      const tr = el("tr");
      for (const c of cells) {
        const td = el("td");
        if (c instanceof Node) td.append(c);
        else td.textContent = c === null || c === undefined ? "" : String(c);
        tr.append(td);
      }
      tbody.append(tr);
    }
  }

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
      s.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#6b7a89" }, "Đang thu thập… / Collecting…"));
      box.replaceChildren(s);
      return;
    }
    const max = Math.max(1, ...rates.map((r) => r.q));
    const x = (i) => L + (i * (W - L - 10)) / (KEEP - 1);
    const y = (v) => H - B - (v / max) * (H - B - 10);
    s.append(svgEl("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: "#c5d0dc" }));
    s.append(svgEl("text", { x: L - 6, y: 16, "text-anchor": "end", "font-size": 12, fill: "#6b7a89" }, max.toFixed(1)));
    s.append(svgEl("text", { x: L - 6, y: H - B, "text-anchor": "end", "font-size": 12, fill: "#6b7a89" }, "0"));
    const offset = KEEP - rates.length;
    const line = (key, color) =>
      svgEl("polyline", {
        points: rates.map((r, i) => `${x(i + offset).toFixed(1)},${y(r[key]).toFixed(1)}`).join(" "),
        fill: "none", stroke: color, "stroke-width": 2.5,
      });
    s.append(line("q", "#2160a8"), line("bl", "#d9534f"));
    s.append(svgEl("text", { x: L + 4, y: H - 6, "font-size": 12, fill: "#2160a8" }, "— truy vấn/s · queries/s"));
    s.append(svgEl("text", { x: L + 200, y: H - 6, "font-size": 12, fill: "#d9534f" }, "— bị chặn/s · blocked/s"));
    box.replaceChildren(s);
  }

  function drawBars(box, items) {
    if (!items.length) {
      box.replaceChildren(el("p", "Chưa có lượt chặn nào · Nothing blocked yet", "empty"));
      return;
    }
    const W = 420, row = 40, H = items.length * row + 4;
    const s = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Blocked by category" });
    const max = Math.max(1, ...items.map((i) => i.value));
    items.forEach((it, i) => {
      const yy = i * row + 4;
      s.append(svgEl("text", { x: 0, y: yy + 12, "font-size": 12, fill: "#1f2d3d" }, it.label));
      const w = Math.max(2, ((W - 60) * it.value) / max);
      s.append(svgEl("rect", { x: 0, y: yy + 17, width: w.toFixed(1), height: 14, rx: 4, fill: "#d9534f" }));
      s.append(svgEl("text", { x: w + 6, y: yy + 29, "font-size": 12, fill: "#1f2d3d" }, fmt(it.value)));
    });
    box.replaceChildren(s);
  }

  async function refreshStats() {
    const [status, stats] = await Promise.all([getJSON("/api/v1/status"), getJSON("/api/v1/stats")]);
    features = status.features || features;
    names = stats.category_names || {};
    $("status").textContent =
      `v${status.version ?? "?"} · thế hệ chính sách / policy gen ${status.policy_generation ?? "?"} · ` +
      `chạy / up ${ago(Date.now() / 1000 - (status.uptime || 0))}`;
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
    drawBars($("categories"), cats.map(([id, v]) => ({ label: catName(id), value: v })));
    fillRows($("upstreams"), stats.upstreams.map((u) => [
      u.address,
      el("span", u.healthy ? "tốt · up" : "lỗi · down", u.healthy ? "good" : "bad"),
      fmt(u.errors),
      u.latency_avg_ms === null ? "–" : u.latency_avg_ms.toFixed(1),
    ]), "Không có máy chủ · No upstreams");
    fillRows($("lists"), stats.lists.map((l) => {
      const stale = l.updated && Date.now() / 1000 - l.updated > 7 * 86400;
      return [catName(l.category), fmt(l.rules), el("span", ago(l.updated), stale ? "bad" : "")];
    }), "Chưa nạp danh sách · No lists loaded");
  }

  async function refreshLog() {
    if (!features.querylog) {
      fillRows($("top"), [], "Nhật ký truy vấn đang tắt · Query log disabled");
      return;
    }
    const summary = await getJSON("/api/v1/querylog/summary?hours=24&top=10");
    fillRows($("top"), summary.top_blocked.map((r) => [r.qname, fmt(r.blocked)]), "Chưa có · None yet");
  }

  function decideButton(id, action, label, cls) {
    const b = el("button", label, cls);
    b.type = "button";
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await post(`/api/v1/unblock-requests/${id}/${action}`);
        say(`#${id}: ${action === "approve" ? "đã duyệt / approved" : "đã từ chối / rejected"}`);
      } catch (e) {
        say(`#${id}: ${e.message}`, true);
      }
      refreshRequests().catch((e) => say(e.message, true));
    });
    return b;
  }

  async function refreshRequests() {
    if (!features.requests) {
      fillRows($("requests"), [], "Chưa cấu hình nơi lưu · No request store configured");
      return;
    }
    const data = await getJSON("/api/v1/unblock-requests?status=pending");
    fillRows($("requests"), data.requests.map((r) => {
      const buttons = el("span");
      buttons.append(decideButton(r.id, "approve", "Duyệt · Approve", "ok"), " ", decideButton(r.id, "reject", "Từ chối · Reject", "no"));
      return ["#" + r.id, r.host, r.profile, catName(r.category), r.note, new Date(r.created * 1000).toLocaleString("vi-VN"), buttons];
    }), "Không có yêu cầu nào · No pending requests");
  }

  async function tick() {
    try {
      await refreshStats();
      await Promise.all([refreshLog(), refreshRequests()]);
    } catch (e) {
      say("Không lấy được dữ liệu / Could not load data: " + e.message, true);
    }
  }

  $("reload").addEventListener("click", async () => {
    try {
      const r = await post("/api/v1/reload");
      say(`Đã tải lại / Reloaded: generation ${r.generation} (${(r.duration || 0).toFixed(2)} s)`);
    } catch (e) {
      say("Tải lại thất bại / Reload failed: " + e.message, true);
    }
  });
  $("flush").addEventListener("click", async () => {
    try {
      const r = await post("/api/v1/cache/flush");
      say(`Đã xoá ${r.flushed} mục / Flushed ${r.flushed} entries`);
    } catch (e) {
      say(e.message, true);
    }
  });

  tick();
  setInterval(tick, POLL_MS);
})();
