// Providers: the API-key providers (add, edit, enable/disable, delete; keys and models in a detail
// dialog), the model routes (ordered, each with its failover targets), "where does this name go",
// import and export. Keys only ever show masked here; the export is the one place they leave.
import { $, api, boot, confirmDialog, download, el, failed, fmt, icon, ready, t, toast } from "./core.js";

const POOL = "chatgpt";
const state = { providers: [], routes: [], editing: null, detail: null };

async function load() {
  const data = await api("GET", "/admin/providers");
  state.providers = data.providers;
  state.routes = data.routes;
  render();
  if (state.detail) renderDetail(state.providers.find((p) => p.id === state.detail));
}

function now() {
  return Date.now() / 1000;
}

function usableKeys(provider) {
  return provider.keys.filter((k) => k.status === "active" && !(k.cooldown_until && k.cooldown_until > now()));
}

function modelIds(provider) {
  return [...new Set([...provider.fetched_models.map((m) => m.id), ...provider.models])];
}

function button(label, iconName, onclick, extra = {}) {
  return el("button", { type: "button", class: "icon ghost", title: label, "aria-label": label, onclick, ...extra }, icon(iconName));
}

// --- the providers table -------------------------------------------------------------------------

function statusBadge(provider) {
  if (!provider.enabled) return el("span", { class: "badge disabled" }, t("pstatus.disabled"));
  if (!usableKeys(provider).length) return el("span", { class: "badge bad" }, t("pstatus.no_keys"));
  return el("span", { class: "badge active" }, t("pstatus.enabled"));
}

function providerRow(provider) {
  const models = modelIds(provider);
  const modelsCell = el("div", { class: "stack", style: { gap: "3px", alignItems: "flex-start" } },
    models.length ? t("pmodels.count", { n: models.length }) : el("span", { class: "muted" }, t("pmodels.none")));
  if (provider.models_error) modelsCell.append(el("span", { class: "badge warn", title: provider.models_error }, t("providers.models_error", { error: provider.models_error.slice(0, 60) })));
  return el("tr", { dataset: { id: provider.id } },
    el("td", { "data-label": t("pcol.provider") }, el("div", { class: "who" }, el("strong", {}, provider.name), el("span", { class: "mono" }, provider.id))),
    el("td", { "data-label": t("pcol.wire") }, el("span", { class: "badge plain info" }, t(`kind.${provider.kind}`)), " ", el("span", { class: "small muted" }, t(`wire.${provider.wire}`))),
    el("td", { "data-label": t("pcol.keys") }, t("pkeys.count", { usable: usableKeys(provider).length, total: provider.keys.length })),
    el("td", { "data-label": t("pcol.models") }, modelsCell),
    el("td", { "data-label": t("pcol.status") }, statusBadge(provider)),
    el("td", { class: "actions" },
      button(t("ui.show"), "eye", () => openDetail(provider.id), { "data-action": "detail" }),
      button(t("providers.edit"), "edit", () => openEditor(provider), { "data-action": "edit" }),
      button(provider.enabled ? t("action.disable") : t("action.enable"), "power", () => toggle(provider), { "data-action": "toggle" }),
      button(t("action.delete"), "trash", () => remove(provider), { "data-action": "delete" })));
}

function render() {
  $("#providers-body").replaceChildren(...state.providers.map(providerRow));
  $("#providers-empty").hidden = state.providers.length > 0;
  $("#providers-table").hidden = state.providers.length === 0;
  renderRoutes();
}

async function toggle(provider) {
  try {
    await api("PATCH", `/admin/providers/${provider.id}`, { enabled: !provider.enabled });
    await load();
  } catch (error) {
    failed(error);
  }
}

async function remove(provider) {
  const yes = await confirmDialog({ title: t("providers.delete_title", { name: provider.name }), text: t("providers.delete_text"),
    confirm: t("action.delete"), danger: true });
  if (!yes) return;
  try {
    await api("DELETE", `/admin/providers/${provider.id}`);
    toast(t("providers.deleted", { name: provider.name }), "ok");
    await load();
  } catch (error) {
    failed(error);
  }
}

// --- adding and editing ----------------------------------------------------------------------------

function fillWires(kind, chosen) {
  const wires = boot.kinds[kind].wires;
  $("#pf-wire").replaceChildren(...wires.map((wire) => el("option", { value: wire, selected: wire === chosen }, t(`wire.${wire}`))));
  $("#pf-base-url").placeholder = boot.kinds[kind].base_url || "http://host:8000/v1";
}

function openEditor(provider = null) {
  state.editing = provider;
  $("#provider-dialog-title").textContent = provider ? t("providers.edit") : t("providers.add");
  $("#pf-kind").value = provider ? provider.kind : "openai";
  $("#pf-kind").disabled = Boolean(provider);
  $("#pf-id").value = provider ? provider.id : "";
  $("#pf-id").disabled = Boolean(provider);
  $("#pf-name").value = provider ? provider.name : "";
  $("#pf-base-url").value = provider ? provider.base_url : "";
  $("#pf-keys").value = "";
  $("#pf-keys-field").hidden = Boolean(provider);
  $("#pf-models").value = provider ? provider.models.join("\n") : "";
  $("#pf-enabled").checked = provider ? provider.enabled : true;
  fillWires($("#pf-kind").value, provider ? provider.wire : null);
  $("#provider-dialog").showModal();
}

function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

async function saveProvider(event) {
  event.preventDefault();
  const body = { name: $("#pf-name").value.trim() || null, base_url: $("#pf-base-url").value.trim() || null, wire: $("#pf-wire").value,
    models: lines($("#pf-models").value), enabled: $("#pf-enabled").checked };
  if (!body.name) delete body.name;
  if (!body.base_url) delete body.base_url;
  try {
    let saved;
    if (state.editing) {
      saved = (await api("PATCH", `/admin/providers/${state.editing.id}`, body)).provider;
    } else {
      Object.assign(body, { kind: $("#pf-kind").value, keys: lines($("#pf-keys").value) });
      if ($("#pf-id").value.trim()) body.id = $("#pf-id").value.trim();
      saved = (await api("POST", "/admin/providers", body)).provider;
    }
    $("#provider-dialog").close();
    toast(t("providers.saved", { name: saved.name }), "ok");
    await load();
  } catch (error) {
    failed(error);
  }
}

// --- one provider: keys and models ------------------------------------------------------------------

function keyRow(provider, key) {
  const resting = key.status === "active" && key.cooldown_until && key.cooldown_until > now();
  const status = resting ? "resting" : key.status;
  const badgeClass = { active: "active", disabled: "disabled", invalid: "bad", resting: "rate_limited" }[status];
  const info = el("div", { class: "stack", style: { gap: "2px", alignItems: "flex-start" } },
    el("span", { class: `badge ${badgeClass}`, title: key.last_error || "" }, t(`kstatus.${status}`)));
  if (resting) info.append(el("span", { class: "small muted" }, t("pdetail.cooling", { time: fmt.ago(key.cooldown_until) })));
  if (key.last_error) info.append(el("span", { class: "small muted" }, key.last_error.slice(0, 120)));
  const enabled = key.status !== "disabled";
  return el("tr", { dataset: { key: key.id } },
    el("td", {}, el("div", { class: "who" }, el("strong", { class: "mono" }, key.masked), el("span", {}, key.label || ""))),
    el("td", {}, info),
    el("td", { class: "num small" }, t("pdetail.requests", { n: fmt.number(key.requests) })),
    el("td", { class: "actions" },
      button(enabled ? t("action.disable") : t("action.enable"), "power",
        () => keyChange(provider, key, "PATCH", { status: enabled ? "disabled" : "active" }), { "data-action": "key-toggle" }),
      button(t("action.delete"), "trash", () => keyDelete(provider, key), { "data-action": "key-delete" })));
}

function renderDetail(provider) {
  if (!provider) {
    $("#detail-dialog").close();
    return;
  }
  $("#detail-title").textContent = `${provider.name} · ${t(`kind.${provider.kind}`)}`;
  $("#detail-fields").replaceChildren(
    el("dt", {}, t("pdetail.id")), el("dd", { class: "mono" }, provider.id),
    el("dt", {}, t("pdetail.base_url")), el("dd", { class: "mono" }, provider.base_url),
    el("dt", {}, t("pform.wire")), el("dd", {}, t(`wire.${provider.wire}`)));
  $("#keys-body").replaceChildren(...provider.keys.map((key) => keyRow(provider, key)));
  const fetched = provider.models_fetched_at ? t("pdetail.fetched", { when: fmt.ago(provider.models_fetched_at) }) : t("pdetail.never");
  $("#models-state").textContent = provider.models_error ? `${fetched} · ${t("providers.models_error", { error: provider.models_error })}` : fetched;
  const manual = new Set(provider.models);
  $("#models-list").replaceChildren(...modelIds(provider).map((id) =>
    el("span", { class: "chip mono" }, id, manual.has(id) ? el("span", { class: "muted small" }, ` · ${t("pdetail.manual")}`) : null)));
}

function openDetail(id) {
  state.detail = id;
  renderDetail(state.providers.find((p) => p.id === id));
  $("#detail-dialog").showModal();
}

async function keyChange(provider, key, method, body) {
  try {
    await api(method, `/admin/providers/${provider.id}/keys/${key.id}`, body);
    await load();
  } catch (error) {
    failed(error);
  }
}

async function keyDelete(provider, key) {
  if (await confirmDialog({ title: t("pdetail.key_delete_title"), text: key.masked, confirm: t("action.delete"), danger: true })) {
    await keyChange(provider, key, "DELETE");
  }
}

async function keyAdd() {
  const value = $("#key-new").value.trim();
  if (!value || !state.detail) return;
  try {
    await api("POST", `/admin/providers/${state.detail}/keys`, { keys: [value] });
    $("#key-new").value = "";
    await load();
  } catch (error) {
    failed(error);
  }
}

async function refreshModels() {
  const buttonNode = $("#models-refresh");
  buttonNode.disabled = true;
  try {
    await api("POST", `/admin/providers/${state.detail}/models/refresh`);
    await load();
  } catch (error) {
    failed(error);
  } finally {
    buttonNode.disabled = false;
  }
}

// --- routes ------------------------------------------------------------------------------------------

function targetLabel(target) {
  const where = target.provider === POOL ? t("routes.pool") : target.provider;
  return target.model ? `${where}: ${target.model}` : where;
}

function renderRoutes() {
  $("#routes-body").replaceChildren(...state.routes.map((route, index) => el("tr", { dataset: { pattern: route.pattern } },
    el("td", { class: "mono", "data-label": t("routes.pattern") }, route.pattern),
    el("td", { "data-label": t("routes.targets") }, el("div", { class: "chips" },
      ...route.targets.map((target, n) => el("span", { class: "chip" }, `${n + 1}. ${targetLabel(target)}`)))),
    el("td", { class: "actions" },
      button(t("routes.up"), "upload", () => moveRoute(index), { disabled: index === 0, "data-action": "route-up" }),
      button(t("action.delete"), "trash", () => saveRoutes(state.routes.filter((_, i) => i !== index)), { "data-action": "route-delete" })))));
  $("#routes-empty").hidden = state.routes.length > 0;
  $("#routes-table").hidden = state.routes.length === 0;
}

function parseTargets(text) {
  return text.split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
    const at = part.indexOf(":");
    return at > 0 ? { provider: part.slice(0, at).trim(), model: part.slice(at + 1).trim() } : { provider: part };
  });
}

async function saveRoutes(routes) {
  try {
    state.routes = (await api("PUT", "/admin/model-routes", { routes })).routes;
    renderRoutes();
    toast(t("routes.saved"), "ok");
    return true;
  } catch (error) {
    failed(error);
    return false;
  }
}

function moveRoute(index) {
  const routes = [...state.routes];
  [routes[index - 1], routes[index]] = [routes[index], routes[index - 1]];
  saveRoutes(routes);
}

async function addRoute(event) {
  event.preventDefault();
  const route = { pattern: $("#route-pattern").value.trim(), targets: parseTargets($("#route-targets").value) };
  if (await saveRoutes([...state.routes, route])) {
    $("#route-pattern").value = "";
    $("#route-targets").value = "";
  }
}

async function resolveName(event) {
  event.preventDefault();
  const model = $("#resolve-model").value.trim();
  try {
    const answer = await api("GET", `/admin/model-routes/resolve?model=${encodeURIComponent(model)}`);
    $("#resolve-result").textContent = t("routes.goes_to", { model, targets: answer.targets.map(targetLabel).join(" → ") });
  } catch (error) {
    failed(error);
  }
}

// --- import and export ----------------------------------------------------------------------------------

async function exportAll() {
  if (!(await confirmDialog({ title: t("providers.export"), text: t("providers.export_confirm"), confirm: t("export.download") }))) return;
  try {
    download("codex-proxy-providers.json", JSON.stringify(await api("GET", "/admin/providers/export"), null, 2));
  } catch (error) {
    failed(error);
  }
}

async function importAll(event) {
  event.preventDefault();
  const file = $("#pimport-file").files[0];
  const text = file ? await file.text() : $("#pimport-text").value;
  try {
    const result = await api("POST", "/admin/providers/import", JSON.parse(text));
    $("#pimport-result").textContent = [t("providers.imported", result), ...result.errors].join(" · ");
    await load();
  } catch (error) {
    failed(error);
  }
}

$("#provider-add").addEventListener("click", () => openEditor());
$("#pf-kind").addEventListener("change", (event) => fillWires(event.target.value, null));
$("#provider-form").addEventListener("submit", (event) => (event.submitter?.value === "save" ? saveProvider(event) : null));
$("#key-add").addEventListener("click", keyAdd);
$("#models-refresh").addEventListener("click", refreshModels);
$("#detail-dialog").addEventListener("close", () => { state.detail = null; });
$("#route-form").addEventListener("submit", addRoute);
$("#resolve-form").addEventListener("submit", resolveName);
$("#providers-export").addEventListener("click", exportAll);
$("#providers-import").addEventListener("click", () => $("#import-dialog").showModal());
$("#pimport-submit").addEventListener("click", importAll);
load().then(ready, (error) => { failed(error); ready(); });
