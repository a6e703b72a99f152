// List status: GET /api/v1/lists (what `lists update` really did, what serves).
"use strict";
(() => {
  const { $, el, fmt, ago, when, say, catName, getJSON, fillTable, listState, LIST_STATES } = SR;
  const PROBLEMS = new Set(["never-fetched", "failing", "stale", "missing"]);
  let data = null;

  function dated(ts) {
    if (!ts) return el("span", "–", "muted");
    const span = el("span", ago(ts));
    span.title = when(ts);
    return span;
  }

  function render() {
    const only = $("only-problems").checked;
    const rows = data.lists.filter((r) => !only || PROBLEMS.has(r.state));
    const counts = {};
    for (const r of data.lists) counts[r.state] = (counts[r.state] || 0) + 1;
    $("summary").replaceChildren(...Object.keys(LIST_STATES).filter((s) => counts[s]).map((s) => {
      const card = el("div", null, "card" + (PROBLEMS.has(s) ? (s === "never-fetched" ? " mandated" : " blocked") : ""));
      card.append(el("div", fmt(counts[s]), "v"), el("div", LIST_STATES[s][0], "k"));
      return card;
    }));
    fillTable($("lists"), rows.map((r) => {
      const error = el("span");
      if (r.last_error) {
        error.append(el("span", r.last_error, "bad"), el("br"), el("span", ago(r.last_error_at), "muted"));
      } else error.append(el("span", "–", "muted"));
      const success = r.kind === "bundled" || r.kind === "file"
        ? el("span", r.file_time ? "tệp · file " + ago(r.file_time) : "–", "muted")
        : r.last_success ? dated(r.last_success) : el("span", "chưa bao giờ · never", "warn");
      return [
        catName(data.category_names, r.category),
        r.id,
        listState(r.state),
        { text: r.serving ? fmt(r.rules) : "không dùng · not serving", cls: "n" },
        success,
        error,
        el("span", r.url || r.path, "muted"),
      ];
    }), only ? "Không có vấn đề · No problems" : "Chưa nạp danh sách · No lists loaded");
  }

  async function load() {
    try {
      data = await getJSON("/api/v1/lists");
      render();
    } catch (e) {
      say(e.message, true);
    }
  }
  $("only-problems").addEventListener("change", () => data && render());
  load();
  setInterval(load, 60000);
})();
