// Accounts: the pool's table, adding accounts (browser login, pasted token or URL, device code,
// import), export, and per-row and batch actions. Long actions run a few requests at a time and
// show their progress; the table refreshes itself, so a login finished elsewhere appears.
import { $, api, confirmDialog, download, eachLimited, el, every, failed, fmt, icon, importSummary, ready, rowSelection, t, tabs, toast } from "./core.js";

const state = { accounts: [], usage: {}, addOpen: false, busy: false };
const selection = rowSelection({ body: "#accounts-body", all: "#select-all", bar: "#batch-bar", count: "#batch-count",
  ids: () => state.accounts.map((a) => a.id) });

// --- loading and drawing ------------------------------------------------------------------------

async function load() {
  const [list, summary] = await Promise.all([
    api("GET", "/auth/accounts?quota=true"),
    api("GET", "/admin/usage-stats/summary?hours=24").catch(() => ({ by_account: [] })),
  ]);
  state.accounts = list.accounts;
  state.usage = Object.fromEntries(summary.by_account.map((row) => [row.key, row]));
  selection.keep(new Set(state.accounts.map((a) => a.id)));
  render();
}

function name(account) {
  return account.label || account.email || account.chatgpt_account_id || account.id;
}

function windowLabel(minutes) {
  if (!minutes) return "";
  return minutes >= 1440 ? t("quota.window_days", { n: Math.round(minutes / 1440) }) : t("quota.window_hours", { n: Math.round(minutes / 60) });
}

function quotaCell(quota) {
  const now = Date.now() / 1000;
  const windows = quota ? [quota.primary, quota.secondary].filter(Boolean) : [];
  if (!windows.length) return el("span", { class: "muted small" }, t("quota.unchecked"));
  const box = el("div", { class: "quota" });
  for (const window of windows) {
    const over = window.reset_at && window.reset_at <= now;
    const used = over ? 0 : Math.max(0, Math.min(100, window.used_percent));
    const level = used >= 90 ? "bad" : used >= 70 ? "warn" : "";
    box.append(
      el("span", { class: "label" }, windowLabel(window.window_minutes) || "—"),
      el("div", { class: `bar ${level}`, role: "meter", "aria-valuenow": Math.round(used), "aria-valuemin": 0, "aria-valuemax": 100,
        "aria-label": windowLabel(window.window_minutes) }, el("i", { style: { width: `${used}%` } })),
      el("span", { class: "pct" }, `${Math.round(used)}%`),
    );
    if (window.reset_at && !over) {
      box.append(el("span", { class: "reset", title: fmt.dateTime(window.reset_at) }, t("quota.resets", { when: fmt.ago(window.reset_at) })));
    }
  }
  return box;
}

function statusCell(account) {
  const cell = el("div", { class: "stack", style: { gap: "3px", alignItems: "flex-start" } },
    el("span", { class: `badge ${account.status}`, title: account.proxy?.blocked || account.last_error || "" }, t(`status.${account.status}`)));
  if (account.needs_login && account.status !== "expired") {
    cell.append(el("span", { class: "badge needs_login", title: account.last_error || "" }, t("status.needs_login")));
  }
  if (account.cooldown_until && ["rate_limited", "cooldown"].includes(account.status)) {
    cell.append(el("span", { class: "small muted", title: fmt.dateTime(account.cooldown_until) }, t("status.until", { time: fmt.ago(account.cooldown_until) })));
  }
  return cell;
}

function actionButton(label, iconName, onclick, extra = {}) {
  return el("button", { class: "icon ghost", title: label, "aria-label": label, onclick, ...extra }, icon(iconName));
}

function row(account) {
  const usage = state.usage[account.id] || {};
  const tokens = (usage.input_tokens || 0) + (usage.output_tokens || 0);
  const enabled = account.status !== "disabled";
  const checkbox = el("input", { type: "checkbox", class: "select", "aria-label": t("col.select", { name: name(account) }),
    checked: selection.selected.has(account.id), onchange: (event) => selection.toggle(account.id, event.target.checked) });
  const who = el("div", { class: "who" }, el("strong", {}, name(account)),
    el("span", {}, account.label && account.email ? account.email : account.chatgpt_account_id));
  return el("tr", { dataset: { id: account.id, status: account.status }, class: selection.selected.has(account.id) ? "selected" : "" },
    el("td", {}, checkbox),
    el("td", { "data-label": t("col.account") }, who),
    el("td", { "data-label": t("col.plan") }, account.plan ? el("span", { class: "badge plain info" }, account.plan) : t("ui.none")),
    el("td", { "data-label": t("col.status"), class: "status" }, statusCell(account)),
    el("td", { "data-label": t("col.quota") }, quotaCell(account.quota)),
    el("td", { "data-label": t("col.requests"), class: "num requests" }, fmt.number(usage.requests || 0)),
    el("td", { "data-label": t("col.tokens"), class: "num", title: `${fmt.number(usage.input_tokens || 0)} / ${fmt.number(usage.output_tokens || 0)}` },
      fmt.compact(tokens)),
    el("td", { "data-label": t("col.last_used"), class: "nowrap", title: account.last_used_at ? fmt.dateTime(account.last_used_at) : "" },
      fmt.ago(account.last_used_at)),
    el("td", { class: "actions" },
      actionButton(t("action.check"), "gauge", () => checkAccounts([account.id]), { "data-action": "check" }),
      actionButton(t("action.refresh"), "refresh", () => refreshToken(account), { "data-action": "refresh", disabled: !account.has_refresh_token }),
      actionButton(enabled ? t("action.disable") : t("action.enable"), "power", () => setStatus([account.id], enabled ? "disabled" : "active"),
        { "data-action": enabled ? "disable" : "enable" }),
      actionButton(t("action.delete"), "trash", () => remove([account.id]), { "data-action": "delete", class: "icon ghost danger" })),
  );
}

function render() {
  const any = state.accounts.length > 0;
  $("#toolbar").hidden = !any;
  $("#welcome").hidden = any;
  $("#add-title").hidden = !any;
  $("#accounts-card").hidden = !any;
  $("#add-panel").hidden = any && !state.addOpen;
  $("#add-toggle").setAttribute("aria-expanded", String(state.addOpen));
  $("#accounts-count").textContent = t("accounts.count", { n: state.accounts.length });
  const counts = {};
  for (const account of state.accounts) counts[account.status] = (counts[account.status] || 0) + 1;
  $("#status-chips").replaceChildren(...Object.entries(counts).map(([status, n]) => el("span", { class: `badge ${status}` }, `${n} ${t(`status.${status}`)}`)));
  $("#accounts-body").replaceChildren(...state.accounts.map(row));
  selection.render();
}

// --- actions ------------------------------------------------------------------------------------

function whoIs(id) {
  const account = state.accounts.find((a) => a.id === id);
  return account ? name(account) : id;
}

function showProgress(done, total) {
  $("#progress").hidden = false;
  $("#progress-text").textContent = t("progress.checking", { done, total });
  $("#progress-bar").style.width = `${total ? (100 * done) / total : 0}%`;
}

/** Ask the backend for each account's quota now, four at a time, with progress; never blocks the page. */
async function checkAccounts(ids) {
  if (state.busy) return;
  state.busy = true;
  let failures = 0;
  showProgress(0, ids.length);
  try {
    await eachLimited(ids, 4, (id) => api("GET", `/auth/accounts/${encodeURIComponent(id)}/quota`), (outcome, done) => {
      if (outcome.error) {
        failures += 1;
        if (ids.length === 1) failed(outcome.error);
      }
      showProgress(done, ids.length);
    });
    if (ids.length === 1 && !failures) toast(t("done.checked", { who: whoIs(ids[0]) }), "ok");
    $("#progress-text").textContent = t("progress.done", { total: ids.length, failed: failures });
    await load();
  } finally {
    state.busy = false;
    setTimeout(() => { if (!state.busy) $("#progress").hidden = true; }, 4000);
  }
}

async function refreshToken(account) {
  try {
    const result = await api("POST", `/auth/accounts/${encodeURIComponent(account.id)}/refresh`);
    toast(t("done.refreshed", { who: name(account) }), "ok");
    if (result.probe_error) toast(result.probe_error, "bad");
  } catch (error) {
    failed(error);
  }
  await load();
}

async function setStatus(ids, status) {
  try {
    const result = await api("POST", "/auth/accounts/batch-status", { ids, status });
    toast(t("done.status", { n: result.updated }), "ok");
  } catch (error) {
    failed(error);
  }
  await load();
}

async function remove(ids) {
  const yes = await confirmDialog({ title: t("confirm.delete_title"), text: t("confirm.delete", { n: ids.length }), confirm: t("action.delete"), danger: true });
  if (!yes) return;
  try {
    const result = await api("POST", "/auth/accounts/batch-delete", { ids });
    toast(t("done.deleted", { n: result.deleted }), "ok");
    for (const id of ids) selection.selected.delete(id);
  } catch (error) {
    failed(error);
  }
  await load();
}

$("#batch-bar").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-batch]");
  if (!button) return;
  const ids = [...selection.selected];
  const action = button.dataset.batch;
  if (action === "clear") {
    selection.selected.clear();
    render();
  } else if (action === "check") checkAccounts(ids);
  else if (action === "delete") remove(ids);
  else setStatus(ids, action);
});

$("#check-all").addEventListener("click", () => checkAccounts(state.accounts.map((a) => a.id)));

$("#add-toggle").addEventListener("click", () => {
  state.addOpen = !state.addOpen;
  render();
});

// --- adding accounts ----------------------------------------------------------------------------

tabs($("#add-panel"));

async function added(result) {
  const account = result.account || {};
  toast(t(result.created === false ? "add.updated" : "add.added", { who: account.email || account.label || account.id || "" }), "ok");
  state.addOpen = false;
  await load();
}

/** Poll ``path`` until the login it describes ends; the account then joins the table. */
async function followLogin(path, stateNode, stillCurrent) {
  while (stillCurrent()) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    let status;
    try {
      status = await api("GET", path);
    } catch (error) {
      stateNode.textContent = t("add.login_failed", { error: error.message });
      return false;
    }
    if (status.status === "completed") {
      state.addOpen = false;
      await load();
      toast(t("add.added", { who: whoIs(status.account_id) }), "ok");
      return true;
    }
    if (status.status === "failed" || status.status === "expired") {
      stateNode.textContent = t("add.login_failed", { error: status.error || status.status });
      return false;
    }
  }
  return false;
}

let browserLogin = 0; // the login being followed; a newer one supersedes it

$("#login-start").addEventListener("click", async () => {
  const mine = ++browserLogin;
  // Opened now, while the click still counts as the user's: after an await, browsers block pop-ups.
  const tab = window.open("about:blank", "_blank");
  let started;
  try {
    started = await api("GET", "/auth/login");
  } catch (error) {
    tab?.close();
    failed(error);
    return;
  }
  $("#login-progress").hidden = false;
  $("#login-state").textContent = t("add.waiting");
  $("#login-link").href = started.auth_url;
  if (tab) {
    tab.opener = null;
    tab.location.href = started.auth_url;
  }
  $("#login-blocked").hidden = Boolean(tab);
  const done = await followLogin(`/auth/login/status?state=${encodeURIComponent(started.state)}`, $("#login-state"), () => mine === browserLogin);
  if (done) $("#login-progress").hidden = true;
});

async function finishWithUrl(url) {
  browserLogin += 1; // stop following: this settles it
  try {
    await added(await api("POST", "/auth/login/callback", { url }));
    $("#login-progress").hidden = true;
    return true;
  } catch (error) {
    toast(t("add.login_failed", { error: error.message }), "bad");
    return false;
  }
}

$("#login-url-submit").addEventListener("click", async () => {
  const url = $("#login-url").value.trim();
  if (url && (await finishWithUrl(url))) $("#login-url").value = "";
});

async function importText(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    toast(t("add.not_json"), "bad");
    return;
  }
  try {
    const result = await api("POST", "/auth/accounts/import", body);
    $("#import-result").textContent = importSummary(result);
    toast(t("import.result", result), result.failed ? "bad" : "ok");
    if (result.added || result.updated) await load();
  } catch (error) {
    failed(error);
  }
}

$("#paste-submit").addEventListener("click", async () => {
  const value = $("#paste-value").value.trim();
  const label = $("#paste-label").value.trim() || undefined;
  if (!value) {
    toast(t("add.empty"), "bad");
    return;
  }
  if (/^https?:\/\//i.test(value)) {
    if (await finishWithUrl(value)) $("#paste-value").value = "";
    return;
  }
  if (value.startsWith("{") || value.startsWith("[")) {
    await importText(value);
    return;
  }
  const body = value.startsWith("eyJ") ? { token: value, label } : { refreshToken: value, label };
  try {
    await added(await api("POST", "/auth/accounts", body));
    $("#paste-value").value = "";
    $("#paste-label").value = "";
  } catch (error) {
    toast(t("add.failed", { error: error.message }), "bad");
  }
});

let deviceLogin = 0;

$("#device-start").addEventListener("click", async () => {
  const mine = ++deviceLogin;
  let started;
  try {
    started = await api("POST", "/auth/login/device");
  } catch (error) {
    failed(error);
    return;
  }
  $("#device-progress").hidden = false;
  $("#device-code").textContent = started.user_code;
  const link = el("a", { href: started.verification_url, target: "_blank", rel: "noopener" }, started.verification_url);
  const [before, after] = t("add.device_waiting", { url: "\u0000" }).split("\u0000");
  $("#device-state").replaceChildren(before, link, after);
  const done = await followLogin(`/auth/login/device/${encodeURIComponent(started.login_id)}`, $("#device-state"), () => mine === deviceLogin);
  if (done) $("#device-progress").hidden = true;
});

$("#import-submit").addEventListener("click", async () => {
  const file = $("#import-file").files[0];
  const text = file ? await file.text() : $("#import-text").value.trim();
  if (!text) {
    toast(t("add.empty"), "bad");
    return;
  }
  await importText(text);
  $("#import-file").value = "";
});

// --- export -------------------------------------------------------------------------------------

$("#export-open").addEventListener("click", () => $("#export-dialog").showModal());

$("#export-dialog").addEventListener("close", async (event) => {
  const dialog = event.target;
  if (dialog.returnValue !== "download") return;
  const minimal = dialog.querySelector("input[name=format]:checked").value === "minimal";
  try {
    const exported = await api("GET", `/auth/accounts/export${minimal ? "?format=minimal" : ""}`);
    const day = new Date().toISOString().slice(0, 10);
    download(`codex-proxy-accounts${minimal ? "-minimal" : ""}-${day}.json`, JSON.stringify(exported, null, 2));
    toast(t("export.done", { n: exported.accounts.length }), "ok");
  } catch (error) {
    failed(error);
  }
});

every(15, load);
ready();
