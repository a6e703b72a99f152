// safe-resolver dashboard: what every page's script shares. No external code.
// Server data only ever reaches the page through textContent / setAttribute (never innerHTML).
"use strict";
const SR = (() => {
  const SVGNS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

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
  function option(value, text) {  // a <select>'s choice: `text` shown (the value itself if none)
    const o = el("option", text === undefined ? value : text);
    o.value = value;
    return o;
  }
  function link(href, text) {
    const a = el("a", text);
    a.href = href;
    return a;
  }
  const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("vi-VN"));
  function ago(ts) {
    if (!ts) return "–";
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 90) return "vừa xong · just now";
    if (s < 3600) return Math.round(s / 60) + " phút trước · min ago";
    if (s < 172800) return Math.round(s / 3600) + " giờ trước · h ago";
    return Math.round(s / 86400) + " ngày trước · days ago";
  }
  const when = (ts) => (ts ? new Date(ts * 1000).toLocaleString("vi-VN") : "–");
  function say(text, bad, id) {
    const m = $(id || "msg");
    if (!m) return;
    m.textContent = text;
    m.className = "msg" + (bad ? " bad" : "");
  }
  function catName(names, id) {
    const n = (names || {})[id];
    return n ? n.vi + " · " + n.en : id || "–";
  }

  // Same-origin JSON calls. Without a session the admin app answers 401: go to the login page
  // and come back here afterwards.
  async function request(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (r.status === 401) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new Error("đăng nhập lại · please log in");
    }
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = new Error(data.error || path + " → HTTP " + r.status);
      e.status = r.status;
      e.data = data;
      throw e;
    }
    return data;
  }
  const getJSON = (path) => request("GET", path);

  // Rows of cells into a table body; each cell gets its column's header as data-label, which
  // the phone layout shows beside the value (tables become cards below 600 px).
  function fillTable(tbody, rows, emptyText) {
    const table = tbody.closest("table");
    table.classList.add("cardify");
    const labels = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    tbody.replaceChildren();
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", emptyText, "empty");
      td.colSpan = Math.max(1, labels.length);
      td.dataset.label = "";
      tr.append(td);
      tbody.append(tr);
      return;
    }
    for (const cells of rows) {
      const tr = el("tr");
      cells.forEach((c, i) => {
        const td = el("td");
        td.dataset.label = labels[i] || "";
        if (c instanceof Node) td.append(c);
        else if (c !== null && typeof c === "object") {
          td.textContent = c.text === null || c.text === undefined ? "" : String(c.text);
          if (c.cls) td.className = c.cls;
        } else td.textContent = c === null || c === undefined ? "" : String(c);
        tr.append(td);
      });
      tbody.append(tr);
    }
  }

  function drawBars(box, items, label, color) {
    if (!items.length) {
      box.replaceChildren(el("p", "Chưa có · Nothing yet", "empty"));
      return;
    }
    const W = 420, row = 40, H = items.length * row + 4;
    const s = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
    const max = Math.max(1, ...items.map((i) => i.value));
    items.forEach((it, i) => {
      const y = i * row + 4;
      s.append(svgEl("text", { x: 0, y: y + 12, "font-size": 12, fill: "#1f2d3d" }, it.label));
      const w = Math.max(2, ((W - 70) * it.value) / max);
      s.append(svgEl("rect", { x: 0, y: y + 17, width: w.toFixed(1), height: 14, rx: 4, fill: color || "#c9302c" }));
      s.append(svgEl("text", { x: w + 6, y: y + 29, "font-size": 12, fill: "#1f2d3d" }, fmt(it.value)));
    });
    box.replaceChildren(s);
  }

  // Daily series as lines; a day without data (null) is a gap, never a zero.
  function lineChart(box, days, series, label) {
    const W = 900, H = 220, L = 56, R = 12, T = 12, B = 28;
    const s = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
    const values = series.flatMap((se) => se.values.filter((v) => v !== null));
    const max = Math.max(1, ...values);
    const n = days.length;
    const x = (i) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
    const y = (v) => H - B - (v / max) * (H - B - T);
    s.append(svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#c5d0dc" }));
    s.append(svgEl("text", { x: L - 6, y: T + 10, "text-anchor": "end", "font-size": 12, fill: "#5b6b7b" }, fmt(max)));
    s.append(svgEl("text", { x: L - 6, y: H - B, "text-anchor": "end", "font-size": 12, fill: "#5b6b7b" }, "0"));
    const ticks = n <= 1 ? [0] : [0, Math.floor((n - 1) / 2), n - 1];
    for (const i of new Set(ticks)) {
      s.append(svgEl("text", { x: x(i), y: H - 8, "text-anchor": "middle", "font-size": 12, fill: "#5b6b7b" }, days[i]));
    }
    for (const se of series) {
      let run = [];
      const flush = () => {
        if (run.length > 1) {
          s.append(svgEl("polyline", { points: run.join(" "), fill: "none", stroke: se.color, "stroke-width": 2.5 }));
        }
        run = [];
      };
      se.values.forEach((v, i) => {
        if (v === null || v === undefined) return flush();
        run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
        if (n <= 31) {
          const dot = svgEl("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3.5, fill: se.color });
          dot.append(svgEl("title", {}, `${days[i]}: ${fmt(v)} ${se.label}`));
          s.append(dot);
        }
      });
      flush();
    }
    const legend = el("div", null, "legend");
    for (const se of series) {
      const item = el("span", se.label);
      item.style.setProperty("--c", se.color);
      legend.append(item);
    }
    box.replaceChildren(s, legend);
  }

  // A list source's state (resolver/update/status.py) as shown everywhere.
  const LIST_STATES = {
    ok: ["tốt · ok", "good"],
    bundled: ["có sẵn · bundled", ""],
    "never-fetched": ["chưa tải lần nào · never fetched", "warn"],
    failing: ["lần tải cuối bị lỗi · last fetch failed", "bad"],
    stale: ["đang dùng bản cũ · served from last good copy", "bad"],
    missing: ["thiếu tệp · file missing", "bad"],
  };
  function badge(text, cls) {
    return el("span", text, "badge" + (cls ? " " + cls : ""));
  }
  function listState(state) {
    const [text, cls] = LIST_STATES[state] || [state, ""];
    return badge(text, cls);
  }

  // Who is logged in and the routes her role may call (`/api/v1/me`, once per page). The pages
  // show only what she may use; the server checks every call anyway.
  let mePromise = null;
  const me = () => (mePromise = mePromise || getJSON("/api/v1/me"));
  const can = (who, method, route) => who.permissions.includes(method + " " + route);
  const ROLES = { admin: "quản trị · admin", teacher: "giáo viên · teacher", viewer: "xem · viewer" };
  async function initWho() {
    const who = await me();
    for (const a of document.querySelectorAll("#nav a")) a.hidden = !can(who, "GET", a.getAttribute("href"));
    const box = $("who");
    if (box) box.textContent = `${who.user} · ${ROLES[who.role] || who.role}` + (who.profiles ? " · " + who.profiles.join(", ") : "");
  }

  function initNav() {
    const header = document.querySelector("header");
    const toggle = $("nav-toggle");
    if (!header || !toggle) return;
    toggle.addEventListener("click", () => {
      const open = header.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
  initNav();
  initWho().catch((e) => say(e.message, true));

  return { $, el, option, svgEl, link, fmt, ago, when, say, catName, request, getJSON, fillTable, drawBars, lineChart, badge, listState, LIST_STATES, me, can };
})();
