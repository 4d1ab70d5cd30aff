// Keys: the client access keys, what each spent of its budget and has in flight; create (the key
// is shown this once), edit, enable/disable, reset the budget, delete. Refreshes itself.
import { $, api, confirmDialog, copyText, el, every, failed, fmt, icon, ready, t, toast } from "./core.js";

const state = { keys: [], editing: null };

async function load() {
  state.keys = (await api("GET", "/admin/keys")).keys;
  render();
}

function money(unit, value) {
  return unit === "usd" ? fmt.usd(value) : t("budget.tokens", { n: fmt.number(value) });
}

function budgetCell(key) {
  const spent = key.spent;
  const budget = key.budget;
  if (!budget) {
    return el("span", { class: "muted small" }, t("keys.no_budget"), " · ",
      t("keys.spent_only", { used: `${t("budget.tokens", { n: fmt.number(spent.tokens) })}, ${fmt.usd(spent.usd)}` }));
  }
  const used = budget.unit === "usd" ? spent.usd : spent.tokens;
  const share = Math.min(100, (100 * used) / budget.limit);
  const level = share >= 100 ? "bad" : share >= 80 ? "warn" : "";
  const box = el("div", { class: "stack", style: { gap: "3px", minWidth: "180px" } },
    el("span", { class: "small budget-text" }, t("budget.of", { used: money(budget.unit, used), limit: money(budget.unit, budget.limit) }),
      " ", el("span", { class: "muted" }, t(`budget.${budget.period}`))),
    el("div", { class: `bar ${level}`, role: "meter", "aria-valuenow": Math.round(share), "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-label": t("kcol.budget") }, el("i", { style: { width: `${share}%` } })));
  if (spent.resets_at) {
    box.append(el("span", { class: "small muted", title: fmt.dateTime(spent.resets_at) }, t("budget.resets", { when: fmt.ago(spent.resets_at) })));
  }
  return box;
}

function modelsCell(key) {
  if (!key.allowed_models) return el("span", { class: "muted small" }, t("keys.all_models"));
  return el("div", { class: "chips" }, ...key.allowed_models.map((name) => el("span", { class: "chip mono" }, name)));
}

function actionButton(label, iconName, onclick) {
  return el("button", { class: "icon ghost", title: label, "aria-label": label, onclick }, icon(iconName));
}

function row(key) {
  const enabled = key.enabled;
  const statusClass = { active: "active", disabled: "disabled", expired: "expired", over_budget: "warn" }[key.status];
  return el("tr", { dataset: { id: key.id, status: key.status } },
    el("td", { "data-label": t("kcol.key") }, el("div", { class: "who" }, el("strong", {}, key.label), el("span", { class: "mono" }, `${key.prefix}_…`))),
    el("td", { "data-label": t("kcol.status") }, el("span", { class: `badge ${statusClass}` }, t(`kstatus.${key.status}`))),
    el("td", { "data-label": t("kcol.budget") }, budgetCell(key)),
    el("td", { "data-label": t("kcol.models") }, modelsCell(key)),
    el("td", { "data-label": t("kcol.concurrency"), class: "num in-flight" },
      key.max_concurrency ? t("keys.in_flight", { n: fmt.number(key.in_flight), max: fmt.number(key.max_concurrency) })
        : `${fmt.number(key.in_flight)} (${t("keys.no_limit")})`),
    el("td", { "data-label": t("kcol.expires"), class: "nowrap" }, key.expires_at ? fmt.dateTime(key.expires_at) : t("keys.never")),
    el("td", { "data-label": t("kcol.last_used"), title: key.spent.last_used_at ? fmt.dateTime(key.spent.last_used_at) : "" },
      fmt.ago(key.spent.last_used_at)),
    el("td", { class: "actions" },
      actionButton(t("kaction.usage"), "gauge", () => location.assign(`/dashboard/usage?hours=24&key_id=${encodeURIComponent(key.id)}`)),
      actionButton(t("kaction.edit"), "edit", () => openForm(key)),
      actionButton(t(enabled ? "action.disable" : "action.enable"), "power", () => change(key, { enabled: !enabled }, "kdone.saved")),
      actionButton(t("kaction.reset"), "refresh", () => reset(key)),
      actionButton(t("action.delete"), "trash", () => remove(key))));
}

function render() {
  $("#keys-count").textContent = t("keys.count", { n: fmt.number(state.keys.length) });
  $("#keys-empty").hidden = state.keys.length > 0;
  $("#keys-table").hidden = state.keys.length === 0;
  $("#keys-body").replaceChildren(...state.keys.map(row));
}

// --- changes ------------------------------------------------------------------------------------

async function change(key, body, done) {
  try {
    await api("PATCH", `/admin/keys/${encodeURIComponent(key.id)}`, body);
    toast(t(done, { label: key.label }), "ok");
  } catch (error) {
    failed(error);
  }
  await load().catch(failed);
}

async function reset(key) {
  if (!(await confirmDialog({ title: t("kconfirm.reset_title"), text: t("kconfirm.reset", { label: key.label }) }))) return;
  try {
    await api("POST", `/admin/keys/${encodeURIComponent(key.id)}/reset`);
    toast(t("kdone.reset", { label: key.label }), "ok");
  } catch (error) {
    failed(error);
  }
  await load().catch(failed);
}

async function remove(key) {
  const text = t("kconfirm.delete", { label: key.label });
  if (!(await confirmDialog({ title: t("kconfirm.delete_title"), text, confirm: t("action.delete"), danger: true }))) return;
  try {
    await api("DELETE", `/admin/keys/${encodeURIComponent(key.id)}`);
    toast(t("kdone.deleted", { label: key.label }), "ok");
  } catch (error) {
    failed(error);
  }
  await load().catch(failed);
}

// --- the form: create or edit -------------------------------------------------------------------

function localInput(seconds) {
  if (!seconds) return "";
  const date = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function openForm(key = null) {
  state.editing = key;
  $("#key-form").reset();
  $("#key-form-error").textContent = "";
  $("#key-form-title").textContent = key ? t("kform.edit_title", { label: key.label }) : t("kform.create_title");
  $("#key-form-submit").textContent = key ? t("ui.save") : t("kform.create");
  if (key) {
    $("#kf-label").value = key.label;
    $("#kf-expires").value = localInput(key.expires_at);
    $("#kf-models").value = (key.allowed_models || []).join(", ");
    $("#kf-budget").value = key.budget ? key.budget.limit : "";
    if (key.budget) {
      $("#kf-unit").value = key.budget.unit;
      $("#kf-period").value = key.budget.period;
    }
    $("#kf-concurrency").value = key.max_concurrency ?? "";
    $("#kf-enabled").checked = key.enabled;
  }
  $("#key-dialog").showModal();
  $("#kf-label").focus();
}

function formBody() {
  const models = $("#kf-models").value.split(",").map((name) => name.trim()).filter(Boolean);
  const limit = $("#kf-budget").value;
  const concurrency = $("#kf-concurrency").value;
  const expires = $("#kf-expires").value;
  return {
    label: $("#kf-label").value.trim(),
    expires_at: expires ? new Date(expires).getTime() / 1000 : null,
    allowed_models: models.length ? models : null,
    budget: limit === "" ? null : { limit: Number(limit), unit: $("#kf-unit").value, period: $("#kf-period").value },
    max_concurrency: concurrency === "" ? null : Number(concurrency),
    enabled: $("#kf-enabled").checked,
  };
}

$("#key-form").addEventListener("submit", async (event) => {
  if (event.submitter?.value !== "save") return;
  event.preventDefault();
  const body = formBody();
  const editing = state.editing;
  try {
    if (editing) {
      await api("PATCH", `/admin/keys/${encodeURIComponent(editing.id)}`, body);
      toast(t("kdone.saved", { label: body.label }), "ok");
    } else {
      const created = await api("POST", "/admin/keys", body);
      showCreated(created.api_key);
      toast(t("kdone.created", { label: body.label }), "ok");
    }
  } catch (error) {
    $("#key-form-error").textContent = error.message;
    return;
  }
  $("#key-dialog").close();
  await load().catch(failed);
});

function showCreated(secret) {
  $("#key-secret").textContent = secret;
  $("#key-created").hidden = false;
}

$("#key-copy").addEventListener("click", () => copyText($("#key-secret").textContent));
$("#key-created-done").addEventListener("click", () => {
  $("#key-secret").textContent = ""; // gone from the page: it is never shown again
  $("#key-created").hidden = true;
});
$("#key-new").addEventListener("click", () => openForm());

every(5, async () => {
  if (!$("#key-dialog").open) await load();
});
ready();
