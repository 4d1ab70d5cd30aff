// Proxies: the pool's proxies with their health (checked on a schedule, or now), adding, editing,
// importing and exporting them (credentials never come back: user names masked, passwords left
// out), each account's mode, and the health-check settings.
import { $, $$, api, confirmDialog, download, el, every, failed, fmt, icon, importSummary, ready, rowSelection, t, toast } from "./core.js";

const state = { proxies: [], accounts: [], editing: null, busy: false };
const selection = rowSelection({ body: "#assign-body", all: "#assign-all", bar: "#assign-bar", count: "#assign-count",
  ids: () => state.accounts.map((a) => a.id) });

async function load() {
  const data = await api("GET", "/admin/proxies");
  state.proxies = data.proxies;
  state.accounts = data.accounts;
  selection.keep(new Set(state.accounts.map((a) => a.id)));
  $("#default-proxy").textContent = data.default.url || t("proxies.default_direct");
  const form = $("#check-form");
  if (!form.contains(document.activeElement)) {
    form.elements["proxies.check_interval_minutes"].value = data.check.interval_minutes;
    form.elements["proxies.check_url"].value = data.check.url || "";
  }
  render();
}

function proxyName(proxy) {
  return proxy.name || `${proxy.host}:${proxy.port}`;
}

function healthOf(proxy) {
  return proxy.enabled ? proxy.status : "disabled";
}

function actionButton(label, iconName, onclick, extra = {}) {
  return el("button", { class: "icon ghost", title: label, "aria-label": label, onclick, ...extra }, icon(iconName));
}

function proxyRow(proxy) {
  const health = healthOf(proxy);
  const who = el("div", { class: "who" }, el("strong", {}, proxyName(proxy)), el("span", { class: "mono" }, proxy.url));
  const status = el("div", { class: "stack", style: { gap: "3px", alignItems: "flex-start" } },
    el("span", { class: `badge ${health === "unknown" ? "info" : health === "unreachable" ? "bad" : health}`, title: proxy.last_error || "" },
      t(`phealth.${health}`)),
    proxy.last_error && proxy.status === "unreachable" ? el("span", { class: "small muted error-text" }, proxy.last_error) : null);
  return el("tr", { dataset: { id: proxy.id, health } },
    el("td", { "data-label": t("pcol.proxy") }, who),
    el("td", { "data-label": t("pcol.type") }, el("span", { class: "badge plain info" }, proxy.scheme.toUpperCase())),
    el("td", { "data-label": t("col.status"), class: "status" }, status),
    el("td", { "data-label": t("pcol.latency"), class: "num latency" }, fmt.ms(proxy.latency_ms)),
    el("td", { "data-label": t("pcol.exit_ip"), class: "mono exit-ip" }, proxy.exit_ip || t("ui.none")),
    el("td", { "data-label": t("pcol.accounts"), class: "num" }, fmt.number(proxy.accounts)),
    el("td", { "data-label": t("pcol.checked"), class: "nowrap", title: proxy.checked_at ? fmt.dateTime(proxy.checked_at) : "" },
      fmt.ago(proxy.checked_at)),
    el("td", { class: "actions" },
      actionButton(t("proxies.check"), "gauge", () => check([proxy.id]), { "data-action": "check" }),
      actionButton(t("proxies.edit"), "edit", () => openEditor(proxy), { "data-action": "edit" }),
      actionButton(proxy.enabled ? t("action.disable") : t("action.enable"), "power", () => setEnabled(proxy, !proxy.enabled),
        { "data-action": proxy.enabled ? "disable" : "enable" }),
      actionButton(t("action.delete"), "trash", () => remove(proxy), { "data-action": "delete", class: "icon ghost danger" })),
  );
}

function modeOptions(selected) {
  const options = ["default", "direct", "automatic"].map((mode) => el("option", { value: mode, selected: selected === mode }, t(`pmode.${mode}`)));
  const pinned = state.proxies.map((p) => el("option", { value: `specific:${p.id}`, selected: selected === `specific:${p.id}` },
    t("pmode.specific", { name: proxyName(p) })));
  return [...options, pinned.length ? el("optgroup", { label: t("pmode.specific_group") }, ...pinned) : null];
}

function through(route) {
  if (route.blocked) return el("span", { class: "small error-text" }, route.blocked);
  if (route.mode === "direct") return el("span", { class: "muted" }, t("proxies.direct"));
  if (route.mode === "default") return el("span", { class: "muted" }, $("#default-proxy").textContent);
  return el("span", {}, route.proxy_name || t("ui.none"));
}

function accountRow(account) {
  const name = account.label || account.email || account.id;
  const route = account.proxy;
  const current = route.mode === "specific" ? `specific:${route.proxy_id}` : route.mode;
  const modeSelect = el("select", { class: "mode", "aria-label": t("proxies.mode_of", { name }), onchange: (event) => assignFromValue([account.id], event.target.value) },
    ...modeOptions(current));
  const status = account.status;
  return el("tr", { dataset: { id: account.id, mode: route.mode }, class: selection.selected.has(account.id) ? "selected" : "" },
    el("td", {}, el("input", { type: "checkbox", class: "select", "aria-label": t("col.select", { name }), checked: selection.selected.has(account.id),
      onchange: (event) => selection.toggle(account.id, event.target.checked) })),
    el("td", { "data-label": t("col.account") }, el("div", { class: "who" }, el("strong", {}, name), el("span", {}, account.email || account.id))),
    el("td", { "data-label": t("col.status"), class: "status" }, el("span", { class: `badge ${status}`, title: route.blocked || account.last_error || "" },
      t(`status.${status}`))),
    el("td", { "data-label": t("pcol.mode") }, modeSelect),
    el("td", { "data-label": t("pcol.through"), class: "through" }, through(route)),
  );
}

function render() {
  const n = state.proxies.length;
  $("#proxies-count").textContent = t("proxies.count", { n });
  $("#proxies-empty").hidden = n > 0;
  $("#proxies-wrap").hidden = n === 0;
  const counts = {};
  for (const proxy of state.proxies) counts[healthOf(proxy)] = (counts[healthOf(proxy)] || 0) + 1;
  $("#health-chips").replaceChildren(...Object.entries(counts).map(([health, count]) =>
    el("span", { class: `badge ${health === "unknown" ? "info" : health === "unreachable" ? "bad" : health}` }, `${count} ${t(`phealth.${health}`)}`)));
  $("#proxies-body").replaceChildren(...state.proxies.map(proxyRow));
  $("#assign-body").replaceChildren(...state.accounts.map(accountRow));
  $("#no-accounts").hidden = state.accounts.length > 0;
  $("#assign-table").hidden = state.accounts.length === 0;
  const batchMode = $("#assign-mode").value || "automatic";
  $("#assign-mode").replaceChildren(...modeOptions(batchMode));
  selection.render();
}

$("#assign-clear").addEventListener("click", () => {
  selection.selected.clear();
  render();
});

$("#assign-apply").addEventListener("click", () => assignFromValue([...selection.selected], $("#assign-mode").value));

// --- actions ------------------------------------------------------------------------------------

async function assignFromValue(ids, value) {
  const [mode, proxyId] = value.split(":");
  try {
    const result = await api("POST", "/admin/proxies/assign", { account_ids: ids, mode, proxy_id: proxyId });
    toast(t("proxies.assigned", { n: result.updated }), "ok");
  } catch (error) {
    failed(error);
  }
  await load();
}

async function check(ids) {
  if (state.busy) return;
  state.busy = true;
  for (const id of ids) $(`#proxies-body tr[data-id="${id}"] .status .badge`)?.replaceChildren(el("span", { class: "spinner" }), t("proxies.checking"));
  try {
    const result = await api("POST", "/admin/proxies/check", { ids });
    const bad = result.proxies.filter((p) => p.status === "unreachable").length;
    toast(t("proxies.checked", { n: result.proxies.length, bad }), bad ? "bad" : "ok");
  } catch (error) {
    failed(error);
  } finally {
    state.busy = false;
  }
  await load();
}

async function setEnabled(proxy, enabled) {
  try {
    await api("PATCH", `/admin/proxies/${encodeURIComponent(proxy.id)}`, { enabled });
  } catch (error) {
    failed(error);
  }
  await load();
}

async function remove(proxy) {
  const yes = await confirmDialog({ title: t("proxies.delete_title"), text: t("proxies.delete_text", { name: proxyName(proxy) }),
    confirm: t("action.delete"), danger: true });
  if (!yes) return;
  try {
    await api("DELETE", `/admin/proxies/${encodeURIComponent(proxy.id)}`);
    toast(t("proxies.deleted", { name: proxyName(proxy) }), "ok");
  } catch (error) {
    failed(error);
  }
  await load();
}

$("#check-all").addEventListener("click", () => check(state.proxies.filter((p) => p.enabled).map((p) => p.id)));

// --- add and edit -------------------------------------------------------------------------------

function openEditor(proxy = null) {
  state.editing = proxy;
  const form = $("#proxy-form");
  form.reset();
  $("#proxy-dialog-title").textContent = proxy ? t("proxies.edit_title", { name: proxyName(proxy) }) : t("proxies.add");
  if (proxy) {
    for (const name of ["name", "scheme", "host", "port"]) form.elements[name].value = proxy[name] ?? "";
    form.elements.username.value = "";
    form.elements.username.placeholder = proxy.username || "";
  } else form.elements.username.placeholder = "";
  $("#password-hint").hidden = !(proxy && (proxy.has_password || proxy.username));
  $("#proxy-dialog").returnValue = "";
  $("#proxy-dialog").showModal();
}

$("#add-open").addEventListener("click", () => openEditor());

$("#proxy-dialog").addEventListener("close", async (event) => {
  if (event.target.returnValue !== "save") return;
  const form = $("#proxy-form");
  const value = (name) => form.elements[name].value.trim();
  const body = { name: value("name") || null, scheme: value("scheme"), host: value("host"), port: Number(value("port")) };
  const proxy = state.editing;
  // Credentials left blank while editing stay as they are; the page never had them.
  if (value("username") || !proxy) body.username = value("username") || null;
  if (form.elements.password.value || !proxy) body.password = form.elements.password.value || null;
  try {
    if (proxy) await api("PATCH", `/admin/proxies/${encodeURIComponent(proxy.id)}`, body);
    else await api("POST", "/admin/proxies", body);
    toast(t(proxy ? "proxies.saved" : "proxies.added", { name: body.name || `${body.host}:${body.port}` }), "ok");
  } catch (error) {
    failed(error);
    $("#proxy-dialog").showModal();
    return;
  }
  await load();
});

// --- import and export --------------------------------------------------------------------------

function openDialog(id) {
  const dialog = $(id);
  dialog.returnValue = ""; // closing with Escape keeps the last value otherwise
  dialog.showModal();
}

$("#import-open").addEventListener("click", () => openDialog("#import-dialog"));

$("#import-dialog").addEventListener("close", async (event) => {
  if (event.target.returnValue !== "import") return;
  const file = $("#import-file").files[0];
  const text = (file ? await file.text() : $("#import-text").value).trim();
  if (!text) {
    toast(t("add.empty"), "bad");
    return;
  }
  let body;
  try {
    body = text.startsWith("{") || text.startsWith("[") ? JSON.parse(text) : { text };
  } catch {
    toast(t("add.not_json"), "bad");
    return;
  }
  try {
    const result = await api("POST", "/admin/proxies/import", body);
    toast(importSummary(result), result.failed ? "bad" : "ok");
    $("#import-text").value = "";
    $("#import-file").value = "";
  } catch (error) {
    failed(error);
  }
  await load();
  setTimeout(load, 3000); // the background checks of what was imported
});

$("#export-open").addEventListener("click", () => openDialog("#export-dialog"));

for (const radio of $$("#export-dialog input[name=secrets]")) {
  radio.addEventListener("change", () => { $("#export-warning").hidden = $("#export-dialog input[name=secrets]:checked").value !== "yes"; });
}

$("#export-dialog").addEventListener("close", async (event) => {
  if (event.target.returnValue !== "download") return;
  const secrets = $("#export-dialog input[name=secrets]:checked").value === "yes";
  try {
    const exported = await api("GET", `/admin/proxies/export${secrets ? "?secrets=true" : ""}`);
    const day = new Date().toISOString().slice(0, 10);
    download(`codex-proxy-proxies${secrets ? "-with-secrets" : ""}-${day}.json`, JSON.stringify(exported, null, 2));
    toast(t("export.done_proxies", { n: exported.proxies.length }), "ok");
  } catch (error) {
    failed(error);
  }
});

// --- health-check settings ----------------------------------------------------------------------

$("#check-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const result = $(".result", form);
  const url = form.elements["proxies.check_url"].value.trim();
  const values = { "proxies.check_interval_minutes": Number(form.elements["proxies.check_interval_minutes"].value), "proxies.check_url": url || null };
  try {
    await api("POST", "/admin/settings", values);
    result.className = "result ok";
    result.textContent = t("proxies.checks_saved");
  } catch (error) {
    result.className = "result bad";
    result.textContent = error.message;
  }
});

every(10, load);
ready();
