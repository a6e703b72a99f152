// Overview: polls the admin JSON API; live timeline, the last 7 days from the roll-ups, lists,
// upstreams (readers: admin, viewer), pending unblock requests with how long to open them,
// the unblocks and pauses in force with revoke, and the pause form (admin, teacher: hers).
// What the user's role may call decides what is shown. Actions are same-origin requests.
"use strict";
(() => {
  const { $, el, option, svgEl, fmt, ago, say, catName, getJSON, request, fillTable, drawBars, lineChart } = SR;
  const POLL_MS = 5000;
  const SLOW_MS = 60000; // history and lists change slowly
  const KEEP = 120; // samples in the timeline (10 minutes at 5 s)
  const samples = [];
  let features = { querylog: false, requests: false };
  let names = {};
  let slowAt = 0;
  let me = { user: "", role: "", profiles: null, permissions: [] };
  const can = (method, route) => SR.can(me, method, route);
  // How long an approval lasts, chosen per pending request (kept across the 5 s redraws).
  const DURATIONS = [
    ["60", "1 giờ · 1 hour"],
    ["today", "Hết hôm nay · Until end of today"],
    ["date", "Đến hết ngày… · Until a date…"],
    ["permanent", "Luôn luôn · Permanently"],
  ];
  const chosen = {};
  const drawn = { requests: "", entries: "" };
  let zone;
  const when = (ts, tz) =>
    new Date(ts * 1000).toLocaleString("vi-VN", { timeZone: tz || zone, dateStyle: "short", timeStyle: "short" });

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

  function approveBody(id) {
    const c = chosen[id] || { mode: DURATIONS[0][0], date: "" };
    if (c.mode === "date") {
      if (!c.date) throw new Error("chọn ngày · pick a date");
      return { until: c.date };
    }
    return /^\d+$/.test(c.mode) ? { minutes: Number(c.mode) } : { until: c.mode };
  }

  function durationPicker(id) {
    const c = (chosen[id] = chosen[id] || { mode: DURATIONS[0][0], date: "" });
    const select = el("select");
    select.setAttribute("aria-label", `Mở yêu cầu #${id} trong · Open request #${id} for`);
    for (const [value, label] of DURATIONS) select.append(option(value, label));
    select.value = c.mode;
    const day = el("input");
    day.type = "date";
    day.value = c.date;
    day.hidden = c.mode !== "date";
    day.setAttribute("aria-label", `Ngày kết thúc #${id} · Last day #${id}`);
    select.addEventListener("change", () => {
      c.mode = select.value;
      day.hidden = c.mode !== "date";
    });
    day.addEventListener("change", () => (c.date = day.value));
    return [select, day];
  }

  function decideButton(id, action, label, cls) {
    const b = el("button", label, cls);
    b.type = "button";
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        const r = await request("POST", `/api/v1/unblock-requests/${id}/${action}`, action === "approve" ? approveBody(id) : undefined);
        const until = r.entry && r.entry.until ? " → " + when(r.entry.until) : "";
        say(`#${id}: ${action === "approve" ? "đã duyệt · approved" + until : "đã từ chối · rejected"}`);
      } catch (e) {
        say(`#${id}: ${e.message}`, true);
        b.disabled = false;
      }
      refreshRequests().catch((e) => say(e.message, true));
      refreshEntries().catch((e) => say(e.message, true));
    });
    return b;
  }

  async function refreshRequests() {
    if (!features.requests) {
      fillTable($("requests"), [], "Chưa cấu hình nơi lưu · No request store configured");
      return;
    }
    const data = await getJSON("/api/v1/unblock-requests?status=pending");
    const key = JSON.stringify(data.requests.map((r) => r.id));
    if (key === drawn.requests) return; // redrawing would close an open duration picker
    drawn.requests = key;
    const decide = can("POST", "/api/v1/unblock-requests/{id}/approve");
    fillTable($("requests"), data.requests.map((r) => {
      const act = el("span", null, "act");
      if (decide) {
        act.append(...durationPicker(r.id), decideButton(r.id, "approve", "Duyệt · Approve", "ok"),
          decideButton(r.id, "reject", "Từ chối · Reject", "no"));
      }
      return ["#" + r.id, r.host, r.profile, catName(names, r.category), r.note, new Date(r.created * 1000).toLocaleString("vi-VN"), act];
    }), "Không có yêu cầu nào · No pending requests");
  }

  const KINDS = { allow: "Mở chặn · Unblock", pause: "Tạm dừng · Pause" };
  function targetText(e) {
    if (e.target_kind === "category") return catName(names, e.target);
    if (e.target_kind === "service") return "dịch vụ · service " + e.target;
    return e.target;
  }

  function revokeButton(e) {
    const b = el("button", "Thu hồi · Revoke", "no");
    b.type = "button";
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await request("DELETE", `/api/v1/overlay/${e.id}`);
        say(`${targetText(e)} (${e.profile}): đã thu hồi · revoked`);
      } catch (err) {
        say(err.message, true);
        b.disabled = false;
      }
      refreshEntries().catch((err) => say(err.message, true));
    });
    return b;
  }

  async function refreshEntries() {
    const data = await getJSON("/api/v1/overlay");
    zone = data.timezone;
    const key = JSON.stringify(data.entries.map((e) => [e.id, e.until]));
    if (key === drawn.entries) return;
    drawn.entries = key;
    const revoke = can("DELETE", "/api/v1/overlay/{id}");
    fillTable($("entries"), data.entries.map((e) => [
      KINDS[e.kind] || e.kind,
      e.profile,
      targetText(e),
      e.until ? when(e.until, data.timezone) : "luôn luôn · permanent",
      e.by,
      e.note,
      revoke ? revokeButton(e) : "",
    ]), "Không có · None");
  }

  async function tick() {
    try {
      const jobs = [refreshRequests(), refreshEntries()];
      if (can("GET", "/api/v1/stats")) {
        await refreshStats();
        jobs.push(refreshLog());
        if (Date.now() - slowAt > SLOW_MS) {
          slowAt = Date.now();
          jobs.push(refreshWeek(), refreshLists());
        }
      }
      await Promise.all(jobs);
    } catch (e) {
      say("Không lấy được dữ liệu · Could not load data: " + e.message, true);
    }
  }

  async function start() {
    me = await SR.me();
    const readers = can("GET", "/api/v1/stats");
    for (const e of document.querySelectorAll(".stats")) e.hidden = !readers;
    if (!readers) {
      $("status").textContent = "";
      features.requests = true; // the request list answers 404 if no store is configured
    }
    $("reload").hidden = !can("POST", "/api/v1/reload");
    $("flush").hidden = !can("POST", "/api/v1/cache/flush");
    if (can("POST", "/api/v1/pauses")) {
      $("pause-section").hidden = false;
      for (const p of me.profiles || []) $("p-profiles").append(option(p, ""));
      if (me.profiles && me.profiles.length === 1) $("p-profile").value = me.profiles[0];
    }
  }

  function fillTargets() {
    const list = $("p-targets");
    list.replaceChildren();
    if ($("p-kind").value !== "category") return;
    for (const [id, n] of Object.entries(names)) list.append(option(id, n.vi + " · " + n.en));
  }
  $("p-kind").addEventListener("change", fillTargets);

  $("pause-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const kind = $("p-kind").value;
    const body = { profile: $("p-profile").value.trim(), minutes: Number($("p-minutes").value) };
    body[kind] = $("p-target").value.trim();
    try {
      const r = await request("POST", "/api/v1/pauses", body);
      say(`${body.profile}: ${targetText(r.entry)} — tạm dừng đến · paused until ${when(r.entry.until)}`);
      $("p-target").value = "";
    } catch (e) {
      say("Không tạm dừng được · Could not pause: " + e.message, true);
    }
    refreshEntries().catch((e) => say(e.message, true));
  });

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

  start()
    .then(async () => {
      await tick();
      fillTargets(); // the category names come with the first stats
      setInterval(tick, POLL_MS);
    })
    .catch((e) => say("Không lấy được dữ liệu · Could not load data: " + e.message, true));
})();
