// Profiles: the list (/dashboard/profiles) and one profile (/dashboard/profiles/<id>), from
// GET /api/v1/profiles[/<id>]: what it blocks now, its schedules, devices and today's figures.
"use strict";
(() => {
  const { $, el, fmt, say, catName, getJSON, fillTable, link, badge } = SR;
  const id = decodeURIComponent(location.pathname.replace(/^\/dashboard\/profiles\/?/, ""));
  // A schedule's times in the policy's time zone (the school's clock), whatever the browser's is.
  const t = (ts, timeZone) => new Date(ts * 1000).toLocaleString("vi-VN", { weekday: "short", hour: "2-digit", minute: "2-digit", timeZone });

  function chips(box, items, empty, cls) {
    box.replaceChildren(...(items.length ? items.map((i) => el("span", i, "chip" + (cls ? " " + cls : ""))) : [el("span", empty, "empty")]));
  }

  async function showList() {
    $("list-view").hidden = false;
    const data = await getJSON("/api/v1/profiles");
    fillTable($("profiles"), data.profiles.map((p) => [
      link("/dashboard/profiles/" + encodeURIComponent(p.id), p.id),
      p.internet_off ? badge("tắt Internet · internet off", "bad")
        : p.schedules_active.length ? badge(p.schedules_active.join(", "), "warn") : el("span", "–", "muted"),
      { text: fmt(p.categories), cls: "n" },
      p.block_mode,
      { text: fmt(p.devices), cls: "n" },
      p.log ? "có · yes" : "không · no",
    ]), "Chưa có chính sách · No policy loaded");
  }

  function scheduleNow(s) {
    const span = el("span");
    span.append(s.active ? badge("đang chạy · active", "warn") : badge("không chạy · off", ""));
    if (s.next_change) {
      span.append(" ", el("span", (s.active ? "đến · until " : "bắt đầu · starts ") + t(s.next_change, s.timezone), "muted"));
    }
    return span;
  }

  async function showOne() {
    const [p, who] = await Promise.all([getJSON("/api/v1/profiles/" + encodeURIComponent(id)), SR.me()]);
    const names = p.category_names;
    $("title").textContent = `Nhóm · Profile: ${p.id}`;
    document.title = `safe-resolver · ${p.id}`;
    $("detail-view").hidden = false;
    $("description").textContent = [p.description, p.age ? `tuổi · age ${p.age}` : "", p.default ? "nhóm mặc định · default profile" : ""].filter(Boolean).join(" · ");
    const today = p.today;
    for (const k of ["queries", "blocked", "mandated"]) $("d-" + k).textContent = today && today.totals ? fmt(today.totals[k]) : "–";
    $("d-now").textContent = p.internet_off ? "tắt Internet · internet off"
      : p.schedules_active.length ? p.schedules_active.join(", ") : "bình thường · normal";
    const q = encodeURIComponent(p.id);
    $("to-log").href = "/dashboard/log?profile=" + q;
    $("to-history").href = "/dashboard/history?period=week&profile=" + q;
    $("to-edit").href = "/dashboard/policy#profile=" + q;
    $("to-history").hidden = !SR.can(who, "GET", "/dashboard/history");
    $("to-edit").hidden = !SR.can(who, "GET", "/dashboard/policy");
    const setup = SR.can(who, "GET", "/devices/{name}"); // the set-up pages show device secrets
    const base = new Set(p.categories);
    const now = p.blocked_now.map((c) => ({ c, extra: !base.has(c) }));
    const box = $("categories");
    box.replaceChildren(...now.map(({ c, extra }) => {
      const chip = el("span", catName(names, c), "chip" + (extra ? " extra" : ""));
      if (extra) chip.title = "Do lịch đang chạy · Because a schedule is active";
      return chip;
    }));
    if (!now.length) box.append(el("span", "Chỉ danh sách bắt buộc · Only the mandated list", "empty"));
    const ss = p.safe_search_now;
    $("safe-search").textContent = `Google/Bing: ${ss.search} · YouTube: ${ss.youtube}`;
    $("block-mode").textContent = `${p.block_mode} (TTL ${p.block_ttl} s)` + (p.bypass ? " · chống vượt rào · bypass prevention" : "");
    fillTable($("schedules"), p.schedules.map((s) => [
      s.name,
      s.windows.join(", ") + (s.except.length ? ` (trừ · except ${s.except.length} ngày · days)` : ""),
      s.internet_off ? "tắt Internet · internet off" : s.block.map((c) => catName(names, c)).join(", ") || (s.safe_search ? `safe search ${s.safe_search}` : "–"),
      scheduleNow(s),
    ]), "Không có lịch · No schedules");
    chips($("block-services"), p.block_services, "–");
    chips($("allow-services"), p.allow_services, "–");
    chips($("allow"), p.allow, "–");
    chips($("deny"), p.deny, "–");
    const devices = $("devices");
    if (p.devices.length) {
      const ul = el("ul");
      for (const d of p.devices) {
        const li = el("li");
        if (setup) li.append(link("/devices/" + encodeURIComponent(d), d), " ", el("span", "cài đặt · set-up page", "muted"));
        else li.append(d);
        ul.append(li);
      }
      devices.replaceChildren(ul);
    } else devices.replaceChildren(el("p", "Không có thiết bị riêng · No devices of its own", "empty"));
    const nets = p.networks.slice();
    if (p.network_count > nets.length) nets.push(`… +${fmt(p.network_count - nets.length)}`);
    chips($("networks"), nets, p.default ? "mọi thiết bị khác · every other client" : "–");
    fillTable($("top"), (today && today.top_blocked ? today.top_blocked : []).map((r) => [r.qname, { text: fmt(r.blocked), cls: "n" }]),
      p.log ? "Chưa có · None yet" : "Nhóm này không ghi nhật ký · This profile is not logged");
  }

  (id ? showOne() : showList()).catch((e) => say(e.message, true));
})();
