// Settings: each card saves its own keys through POST /admin/settings and says whether they
// applied at once or wait for a restart; the key and the dashboard password have their own calls.
import { $, $$, api, confirmDialog, el, failed, ready, t, toast } from "./core.js";

function mask(key) {
  if (!key) return "—";
  return key.length > 12 ? `${key.slice(0, 5)}${"•".repeat(10)}${key.slice(-3)}` : "•".repeat(key.length);
}

function numbers(text) {
  return text.split(/[\s,]+/).filter(Boolean).map(Number);
}

function collect(form) {
  const values = {};
  for (const input of $$("[name]", form)) {
    const name = input.name;
    if (input.type === "radio") {
      if (input.checked) values[name] = input.value;
      continue;
    }
    const type = input.dataset.type;
    if (type === "bool") values[name] = input.checked;
    else if (type === "int") values[name] = Number(input.value);
    else if (type === "lines") values[name] = input.value.split("\n").map((line) => line.trim()).filter(Boolean);
    else if (type === "thresholds") {
      const [key, window] = [name.slice(0, name.lastIndexOf(".")), name.slice(name.lastIndexOf(".") + 1)];
      values[key] = { ...values[key], [window]: numbers(input.value) };
    } else values[name] = input.value.trim();
  }
  const aliases = $("#aliases", form);
  if (aliases) {
    values[aliases.dataset.name] = Object.fromEntries($$(".alias-row", aliases)
      .map((row) => [$(".alias-from", row).value.trim(), $(".alias-to", row).value.trim()])
      .filter(([from, to]) => from && to));
  }
  return values;
}

function showPending(keys) {
  $("#restart-banner").hidden = keys.length === 0;
  $("#restart-keys").textContent = t("settings.pending_text", { keys: keys.join(", ") });
}

/** The form's values that differ from what was last saved (only those are sent). */
function changes(form) {
  const values = collect(form);
  const saved = JSON.parse(form.dataset.saved);
  return Object.fromEntries(Object.entries(values).filter(([key, value]) => JSON.stringify(value) !== JSON.stringify(saved[key])));
}

for (const form of $$("form[data-settings]")) {
  form.dataset.saved = JSON.stringify(collect(form));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $(".result", form);
    const button = $("button[type=submit]", form);
    const changed = changes(form);
    result.className = "result";
    if (!Object.keys(changed).length) {
      result.textContent = t("settings.unchanged");
      return;
    }
    button.disabled = true;
    result.textContent = t("ui.saving");
    try {
      const saved = await api("POST", "/admin/settings", changed);
      form.dataset.saved = JSON.stringify(collect(form));
      result.textContent = saved.restart_needed.length ? t("settings.saved_restart", { keys: saved.restart_needed.join(", ") }) : t("settings.saved");
      result.classList.add(saved.restart_needed.length ? "warn" : "ok");
      showPending(saved.restart_pending);
    } catch (error) {
      result.textContent = error.message;
      result.classList.add("bad");
    } finally {
      button.disabled = false;
    }
  });
}

// --- aliases ------------------------------------------------------------------------------------

function aliasRow(from = "", to = "") {
  return el("div", { class: "alias-row" },
    el("input", { type: "text", class: "alias-from", value: from, "aria-label": t("settings.alias_from"), placeholder: t("settings.alias_from"), spellcheck: "false" }),
    el("span", { class: "arrow" }, "→"),
    el("input", { type: "text", class: "alias-to", list: "model-names", value: to, "aria-label": t("settings.alias_to"), placeholder: t("settings.alias_to"), spellcheck: "false" }),
    el("button", { type: "button", class: "small ghost alias-remove" }, t("settings.alias_remove")));
}

$("#alias-add").addEventListener("click", () => {
  const row = aliasRow();
  $("#aliases").append(row);
  $(".alias-from", row).focus();
});

$("#aliases").addEventListener("click", (event) => {
  if (event.target.closest(".alias-remove")) event.target.closest(".alias-row").remove();
});

// --- key and password ---------------------------------------------------------------------------

$("#settings-key-reveal").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const shown = button.getAttribute("aria-pressed") === "true";
  try {
    $("#settings-key").textContent = shown ? $("#settings-key").dataset.masked : (await api("GET", "/admin/server-key")).api_key || "—";
  } catch (error) {
    failed(error);
    return;
  }
  button.setAttribute("aria-pressed", String(!shown));
  $("span", button).textContent = shown ? t("ui.show") : t("ui.hide");
});

async function changeKey(body) {
  if (!(await confirmDialog({ title: t("settings.key"), text: t("settings.key_confirm"), danger: true }))) return;
  try {
    const { api_key: key } = await api("POST", "/admin/server-key", body);
    $("#settings-key").dataset.masked = mask(key);
    $("#settings-key").textContent = mask(key);
    $("#settings-key-reveal").setAttribute("aria-pressed", "false");
    $("#new-key").value = "";
    toast(t("settings.key_changed"), "ok");
  } catch (error) {
    failed(error);
  }
}

$("#key-generate").addEventListener("click", () => changeKey({ generate: true }));
$("#key-set").addEventListener("click", () => changeKey({ api_key: $("#new-key").value.trim() }));

async function changePassword(password) {
  try {
    const result = await api("POST", "/admin/dashboard-password", { password });
    $("#password-state").textContent = result.has_password ? t("settings.password_set") : t("settings.password_unset");
    $("#password-clear").disabled = !result.has_password;
    $("#new-password").value = "";
    toast(t("settings.password_changed"), "ok");
  } catch (error) {
    failed(error);
  }
}

$("#password-form").addEventListener("submit", (event) => {
  event.preventDefault();
  changePassword($("#new-password").value);
});
$("#password-clear").addEventListener("click", () => changePassword(null));
// When the release feed was last asked, in the viewer's time zone and language.
for (const node of $$("time[data-epoch]")) {
  const when = new Date(Number(node.dataset.epoch) * 1000);
  node.dateTime = when.toISOString();
  node.textContent = when.toLocaleString(document.documentElement.lang || undefined);
}
ready();
