// Policy editor: forms over GET /api/v1/policy; Check (preview), Save and Undo post the forms'
// state and the digest of the file they were loaded from. The server applies only what changed,
// keeps the file's comments, runs `safe-resolver check` on the result and saves only if it passes.
"use strict";
(() => {
  const { $, el, option, fmt, say, catName, getJSON, request, fillTable } = SR;
  let data = null; // GET /api/v1/policy
  let fresh = []; // schedules added in the form, not yet saved

  const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);
  const field = (label, control) => {
    const l = el("label", label);
    l.append(control);
    return l;
  };
  function select(name, options, value) {
    const s = el("select");
    s.name = name;
    for (const [v, text] of options) s.append(option(v, text));
    s.value = value;
    return s;
  }
  function textarea(name, values) {
    const t = el("textarea");
    t.name = name;
    t.value = values.join("\n");
    return t;
  }
  function checks(name, items, chosen, labelOf) {
    const box = el("div", null, "checks");
    box.dataset.name = name;
    for (const item of items) {
      const l = el("label", null, "check");
      const c = el("input");
      c.type = "checkbox";
      c.value = item;
      c.checked = chosen.includes(item);
      l.append(c, labelOf ? labelOf(item) : item);
      box.append(l);
    }
    return box;
  }
  const checked = (box) => [...box.querySelectorAll("input:checked")].map((c) => c.value);

  // Services (blocklists/services.yaml) by name. An id written in the file but missing from the
  // catalogue stays listed, marked, so the check's error about it can be seen and cleared.
  function serviceLabel(id) {
    const s = (data.services || []).find((x) => x.id === id);
    return s ? `${s.name_vi} · ${s.name_en}` : `${id} (không có trong danh mục · not in the catalogue)`;
  }
  const serviceIds = (...written) => [...new Set([...(data.services || []).map((s) => s.id), ...written.flat()])];
  const SERVICE_CHOICES = [["", "theo danh mục · as the categories"], ["block", "chặn · block"], ["allow", "luôn cho phép · always allow"]];
  function serviceChoices(p) {
    const box = el("div", null, "checks");
    box.dataset.name = "services";
    for (const id of serviceIds(p.block_services, p.allow_services)) {
      const value = p.allow_services.includes(id) ? "allow" : p.block_services.includes(id) ? "block" : "";
      const s = select("service-" + id, SERVICE_CHOICES, value);
      s.dataset.service = id;
      box.append(field(serviceLabel(id), s));
    }
    return box;
  }
  const servicesChosen = (f, choice) =>
    [...f.querySelectorAll("[data-name=services] select")].filter((s) => s.value === choice).map((s) => s.dataset.service);
  const levelOptions = (extra) => [...extra, ...data.levels.map((l) => [l, l])];

  // -- profiles --------------------------------------------------------------------------------

  function profileForm(p) {
    const f = el("fieldset");
    f.id = "p-" + p.id;
    f.dataset.profile = p.id;
    f.append(el("legend", p.id));
    const ages = Object.keys(data.presets).map((id) => [id, `${id} · ${data.presets[id].title}`]);
    if (!data.presets[p.age]) ages.unshift([p.age, p.age]);
    const age = select("age", ages, p.age);
    const grid = el("div", null, "grid2");
    const desc = el("input");
    desc.name = "description";
    desc.value = p.description;
    grid.append(
      field("Mô tả · Description", desc),
      field("Độ tuổi · Age mode", age),
      field("Tìm kiếm an toàn · Safe search", select("level", levelOptions([]), p.safe_search.level)),
      field("YouTube", select("youtube", levelOptions([]), p.safe_search.youtube)),
      field("Cách chặn · Block mode", select("block_mode", data.block_modes.map((m) => [m, m]), p.block_mode)),
    );
    const log = el("label", null, "check");
    const logBox = el("input");
    logBox.type = "checkbox";
    logBox.name = "log";
    logBox.checked = p.log;
    log.append(logBox, "Ghi nhật ký truy vấn · Log queries");
    grid.append(log);
    const cats = checks("categories", data.categories, p.categories, (c) => catName(data.category_names, c));
    age.addEventListener("change", () => {
      const preset = data.presets[age.value];
      const wanted = new Set(preset ? preset.categories : p.categories);
      for (const c of p.block) wanted.add(c);
      for (const c of p.unblock) wanted.delete(c);
      for (const c of cats.querySelectorAll("input")) c.checked = wanted.has(c.value);
    });
    const scheduleNames = data.model.schedules.map((s) => s.name).concat(fresh.map((s) => s.name));
    const lists = el("div", null, "grid2");
    lists.append(
      field("Luôn cho phép (mỗi dòng một tên miền) · Always allow (one domain per line)", textarea("allow", p.allow)),
      field("Luôn chặn (mỗi dòng một tên miền) · Always block (one domain per line)", textarea("deny", p.deny)),
    );
    const services = el("fieldset");
    services.append(el("legend", "Dịch vụ · Services"));
    if (!data.services) {
      services.append(el("p", "Không đọc được danh mục dịch vụ · The services catalogue cannot be read", "bad"));
    }
    services.append(serviceChoices(p));
    f.append(grid, el("h3", "Danh mục bị chặn · Blocked categories"), cats,
      el("h3", "Lịch áp dụng · Schedules"), checks("schedules", scheduleNames, p.schedules), lists, services);
    return f;
  }

  function profileEdits(f) {
    const v = (name) => f.querySelector(`[name=${name}]`);
    return {
      description: v("description").value.trim(),
      age: v("age").value,
      categories: checked(f.querySelector("[data-name=categories]")),
      safe_search: { level: v("level").value, youtube: v("youtube").value },
      block_mode: v("block_mode").value,
      schedules: checked(f.querySelector("[data-name=schedules]")),
      allow: lines(v("allow").value),
      deny: lines(v("deny").value),
      log: v("log").checked,
      block_services: servicesChosen(f, "block"),
      allow_services: servicesChosen(f, "allow"),
    };
  }

  // -- schedules -------------------------------------------------------------------------------

  function scheduleForm(s, isNew) {
    const f = el("fieldset");
    f.id = "s-" + s.name;
    f.dataset.schedule = s.name;
    f.append(el("legend", s.name + (isNew ? " (mới · new)" : "")));
    const grid = el("div", null, "grid2");
    grid.append(
      field("Khung giờ, mỗi dòng một khung · Windows, one per line (mon-fri 07:00-11:30)", textarea("windows", s.windows)),
      field("Ngày nghỉ (không áp dụng) · Holidays (off), YYYY-MM-DD", textarea("except", s.except)),
      field("Ngày học bù (áp dụng) · Extra days (on), YYYY-MM-DD", textarea("extra", s.extra)),
      field("Tìm kiếm an toàn khi chạy · Safe search while active", select("safe_search", levelOptions([["", "không đổi · unchanged"]]), s.safe_search)),
      field("Internet khi chạy · Internet while active", select("internet", [["on", "bật · on"], ["off", "tắt · off"]], s.internet)),
    );
    f.append(grid, el("h3", "Chặn thêm khi chạy · Also block while active"),
      checks("block", data.categories, s.block, (c) => catName(data.category_names, c)),
      el("h3", "Chặn dịch vụ khi chạy · Block services while active"),
      checks("block_services", serviceIds(s.block_services), s.block_services, serviceLabel));
    if (!isNew) {
      const rm = el("label", null, "check");
      const box = el("input");
      box.type = "checkbox";
      box.name = "remove";
      rm.append(box, "Xoá lịch này · Delete this schedule");
      f.append(rm);
    }
    return f;
  }

  function scheduleEdits(f) {
    const v = (name) => f.querySelector(`[name=${name}]`);
    return {
      windows: lines(v("windows").value),
      block: checked(f.querySelector("[data-name=block]")),
      block_services: checked(f.querySelector("[data-name=block_services]")),
      safe_search: v("safe_search").value,
      internet: v("internet").value,
      except: lines(v("except").value),
      extra: lines(v("extra").value),
    };
  }

  // -- the whole form --------------------------------------------------------------------------

  function edits() {
    const out = { profiles: {}, schedules: {}, remove_schedules: [] };
    for (const f of document.querySelectorAll("#profile-forms fieldset[data-profile]")) out.profiles[f.dataset.profile] = profileEdits(f);
    for (const f of document.querySelectorAll("#schedule-forms fieldset[data-schedule]")) {
      const remove = f.querySelector("[name=remove]");
      if (remove && remove.checked) out.remove_schedules.push(f.dataset.schedule);
      else out.schedules[f.dataset.schedule] = scheduleEdits(f);
    }
    return out;
  }

  function samples() {
    const client = $("sample-client").value.trim() || data.model.sample_clients[$("sample-profile").value] || "";
    if (!client) return [];
    return lines($("samples").value).slice(0, 20).map((name) => ({ client, name }));
  }

  function showOnly(container, attr, value) {
    for (const f of container.querySelectorAll(`fieldset[${attr}]`)) f.hidden = f.getAttribute(attr) !== value;
  }

  function diffBlock(text) {
    const pre = el("pre");
    for (const line of text.split("\n")) {
      const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
      pre.append(el("span", line + "\n", cls));
    }
    return pre;
  }

  function showResult(r, title) {
    const box = $("result");
    box.replaceChildren();
    const errors = (r.problems || []).filter((p) => p.severity === "error");
    const ok = r.ok;
    box.append(el("p", title + " " + (ok ? "✓ Hợp lệ · Passes the check"
      : `✗ ${errors.length + (r.expect_failures || []).length} lỗi · errors: chưa lưu gì · nothing was saved`), ok ? "good" : "bad"));
    const problems = (r.problems || []).concat((r.expect_failures || []).map((m) => ({ severity: "error", text: "expect: " + m })));
    if (problems.length) {
      const ul = el("ul", null, "problems");
      for (const p of problems) {
        const text = p.text || `${p.file}:${p.line}:${p.column}: ${p.severity === "error" ? "" : p.severity + ": "}${p.message}`;
        ul.append(el("li", text, p.severity === "error" ? "bad" : "warn"));
      }
      box.append(ul);
    }
    if (r.explain && r.explain.length) {
      const table = el("table");
      const head = el("tr");
      for (const h of ["Tên miền · Name", "Nhóm · Profile", "Kết quả · Action", "Danh mục · Category", "Quy tắc · Rule"]) head.append(el("th", h));
      const thead = el("thead");
      thead.append(head);
      table.append(thead, el("tbody"));
      fillTable(table.querySelector("tbody"), r.explain.map((x) => x.error ? [x.name, "", { text: x.error, cls: "bad" }, "", ""]
        : [x.name, x.profile, { text: x.action, cls: x.action === "allow" ? "good" : "bad" }, x.category ? catName(data.category_names, x.category) : "–", x.rule || "–"]), "–");
      box.append(el("h3", "Thử với chính sách đã sửa · Samples against the edited policy"), table);
    } else if (ok) {
      box.append(el("p", "Chọn một nhóm có mạng hoặc nhập địa chỉ thiết bị để thử tên miền · Pick a profile with a network or type a client address to try names", "muted"));
    }
    if (r.diff !== undefined) {
      box.append(el("h3", "Thay đổi trong tệp · Changes to the file"), r.diff ? diffBlock(r.diff) : el("p", "Không có thay đổi · No changes", "muted"));
    }
  }

  async function act(path, body, title) {
    for (const b of document.querySelectorAll("#check button")) b.disabled = true;
    say("Đang kiểm tra… · Checking…");
    try {
      const r = await request("POST", path, body);
      showResult(r, title);
      return r;
    } catch (e) {
      if (e.data && e.data.problems) showResult(e.data, title);
      say(e.status === 422 ? "Không lưu: chính sách không qua kiểm tra · Not saved: the policy does not pass the check" : e.message, true);
      return null;
    } finally {
      for (const b of document.querySelectorAll("#check button")) b.disabled = !data.editable;
    }
  }

  function reloadText(r) {
    const rl = r.reload || {};
    return rl.ok ? `đã tải lại · reloaded (generation ${rl.generation})` : `tải lại lỗi · reload failed: ${rl.error}`;
  }

  async function load() {
    data = await getJSON("/api/v1/policy");
    fresh = [];
    $("file").textContent = data.file ? `${data.file} · sha256 ${data.sha256.slice(0, 12)}…` : "";
    $("reason").hidden = !data.reason;
    $("reason").textContent = data.reason || "";
    for (const b of document.querySelectorAll("#check button")) b.disabled = !data.editable;
    if (!data.model) {
      $("profile-forms").replaceChildren();
      $("schedule-forms").replaceChildren();
      return;
    }
    const wanted = new URLSearchParams(location.hash.slice(1)).get("profile") || $("profile-select").value;
    $("profile-forms").replaceChildren(...data.model.profiles.map(profileForm));
    $("schedule-forms").replaceChildren(...data.model.schedules.map((s) => scheduleForm(s, false)));
    for (const [id, sel] of [["profile-select", data.model.profiles.map((p) => p.id)], ["sample-profile", data.model.profiles.map((p) => p.id)],
      ["schedule-select", data.model.schedules.map((s) => s.name)]]) {
      $(id).replaceChildren(...sel.map((v) => option(v)));
    }
    if (wanted && data.model.profiles.some((p) => p.id === wanted)) $("profile-select").value = wanted;
    $("sample-profile").value = $("profile-select").value;
    showOnly($("profile-forms"), "data-profile", $("profile-select").value);
    showOnly($("schedule-forms"), "data-schedule", $("schedule-select").value);
    fillTable($("versions"), data.versions.map((v) => [new Date(v.saved_at * 1000).toLocaleString("vi-VN"), { text: fmt(v.size) + " B", cls: "n" }]),
      "Chưa có phiên bản nào · None kept yet");
    $("undo").disabled = !data.editable || !data.versions.length;
  }

  $("profile-select").addEventListener("change", () => {
    showOnly($("profile-forms"), "data-profile", $("profile-select").value);
    $("sample-profile").value = $("profile-select").value;
    history.replaceState(null, "", "#profile=" + encodeURIComponent($("profile-select").value));
  });
  $("schedule-select").addEventListener("change", () => showOnly($("schedule-forms"), "data-schedule", $("schedule-select").value));
  for (const b of $("tabs").querySelectorAll("button")) {
    b.addEventListener("click", () => {
      for (const other of $("tabs").querySelectorAll("button")) {
        other.setAttribute("aria-pressed", other === b ? "true" : "false");
        $("tab-" + other.dataset.tab).hidden = other !== b;
      }
    });
  }
  $("new-schedule").addEventListener("click", () => {
    const name = $("new-name").value.trim();
    if (!/^[A-Za-z0-9_-]{1,63}$/.test(name) || document.getElementById("s-" + name)) {
      say("Tên lịch: chữ, số, - hoặc _, chưa dùng · Schedule name: letters, digits, - or _, not used yet", true);
      return;
    }
    const s = { name, windows: ["mon-fri 07:00-11:30"], block: [], block_services: [], safe_search: "", internet: "on", except: [], extra: [] };
    fresh.push(s);
    $("schedule-forms").append(scheduleForm(s, true));
    $("schedule-select").append(option(name));
    $("schedule-select").value = name;
    showOnly($("schedule-forms"), "data-schedule", name);
    for (const box of document.querySelectorAll("#profile-forms [data-name=schedules]")) box.append(checks("x", [name], []).firstChild);
    $("new-name").value = "";
    say(`Đã thêm lịch ${name}; nhớ lưu · Schedule ${name} added; remember to save`);
  });
  $("preview").addEventListener("click", () =>
    act("/api/v1/policy/preview", { base: data.sha256, edits: edits(), samples: samples() }, "Kiểm tra · Check:").then((r) => r && say("")));
  $("save").addEventListener("click", async () => {
    const r = await act("/api/v1/policy", { base: data.sha256, edits: edits(), samples: samples() }, "Lưu · Save:");
    if (!r) return;
    if (r.unchanged) {
      say("Không có gì thay đổi · Nothing changed");
      return;
    }
    await load();
    say(`Đã lưu · Saved; ${reloadText(r)}`, !(r.reload || {}).ok);
  });
  $("undo").addEventListener("click", async () => {
    const r = await act("/api/v1/policy/undo", { base: data.sha256 }, "Hoàn tác · Undo:");
    if (!r) return;
    await load();
    say(`Đã khôi phục phiên bản trước · Restored the earlier version; ${reloadText(r)}`, !(r.reload || {}).ok);
  });

  load().catch((e) => say(e.message, true));
})();
