// Query-log search: GET /api/v1/querylog with the filters; pages by offset with `until` pinned
// to the first search's time, so that new queries do not shift the pages.
"use strict";
(() => {
  const { $, el, option, fmt, say, getJSON, fillTable } = SR;
  const PAGE = 100;
  const FIELDS = ["name", "profile", "action", "client", "qtype", "since", "until"];
  let shown = [];
  let query = null; // the URLSearchParams of the current search, without offset
  let names = {};

  const toInput = (ts) => {
    const d = new Date(ts * 1000 - new Date().getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  };
  const fromInput = (text) => (text ? new Date(text).getTime() / 1000 : null);

  function readForm() {
    const q = new URLSearchParams();
    const name = $("f-name").value.trim().toLowerCase();
    if (name) q.set($("f-contains").checked ? "contains" : "qname", name);
    for (const key of ["profile", "action", "client", "qtype"]) {
      const v = $("f-" + key).value.trim();
      if (v) q.set(key, v);
    }
    const since = fromInput($("f-since").value);
    if (since) q.set("since", String(since));
    const until = fromInput($("f-until").value);
    q.set("until", String(until || Date.now() / 1000)); // pinned: pages stay put
    return q;
  }

  function fillForm(params) {
    const name = params.get("qname") || params.get("contains") || "";
    $("f-name").value = name;
    $("f-contains").checked = params.has("contains");
    for (const key of ["profile", "action", "client", "qtype"]) $("f-" + key).value = params.get(key) || "";
    for (const key of ["since", "until"]) {
      const v = Number(params.get(key));
      $("f-" + key).value = v ? toInput(v) : "";
    }
  }

  function clientCell(client) {
    if (!client) return "–";
    const b = el("button", client, "link");
    b.type = "button";
    b.title = "Chỉ thiết bị này · Only this client";
    b.addEventListener("click", () => {
      $("f-client").value = client;
      search();
    });
    return b;
  }

  function render() {
    fillTable($("rows"), shown.map((r) => [
      new Date(r.ts * 1000).toLocaleString("vi-VN"),
      clientCell(r.client),
      r.profile,
      r.qname,
      r.qtype,
      { text: r.action, cls: r.action === "blocked" ? "bad" : "" },
      r.category ? SR.catName(names, r.category) : "",
      { text: Number(r.latency_ms).toFixed(1), cls: "n" },
    ]), "Không có truy vấn nào khớp · No queries match");
    $("count").textContent = `${fmt(shown.length)} dòng · rows`;
  }

  async function page(offset) {
    const q = new URLSearchParams(query);
    q.set("limit", String(PAGE));
    if (offset) q.set("offset", String(offset));
    const data = await getJSON("/api/v1/querylog?" + q.toString());
    $("clients").textContent = {
      pseudonymized: "Thiết bị được ẩn danh bằng mã đổi theo chu kỳ (không lưu địa chỉ IP) · Clients are pseudonyms under a rotating key (no IP address is stored)",
      full: "Địa chỉ thiết bị được lưu đầy đủ · Client addresses are stored in full",
      none: "Không lưu thiết bị · Clients are not stored",
    }[data.clients] || "";
    shown = offset ? shown.concat(data.rows) : data.rows;
    $("more").hidden = data.next_offset === null || data.next_offset === undefined;
    $("more").dataset.offset = data.next_offset ?? "";
    render();
  }

  async function search() {
    query = readForm();
    const visible = new URLSearchParams(query);
    history.replaceState(null, "", "?" + visible.toString());
    say("");
    try {
      await page(0);
    } catch (e) {
      say(e.message, true);
    }
  }

  async function init() {
    try {
      const [profiles, stats] = await Promise.all([getJSON("/api/v1/profiles").catch(() => ({ profiles: [] })),
        getJSON("/api/v1/stats").catch(() => ({}))]); // a teacher: her profiles, no school-wide figures
      names = stats.category_names || {};
      for (const p of profiles.profiles) $("f-profile").append(option(p.id));
    } catch (e) {
      say(e.message, true);
    }
    fillForm(new URLSearchParams(location.search));
    $("search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      search();
    });
    $("reset").addEventListener("click", () => {
      fillForm(new URLSearchParams());
      search();
    });
    $("more").addEventListener("click", () => page(Number($("more").dataset.offset)).catch((e) => say(e.message, true)));
    await search();
  }
  init();
})();
