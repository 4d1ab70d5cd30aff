// What every page shares: the boot data, words, the management API with the CSRF token, DOM
// building (text only, never HTML from data), formatting with the browser's Intl, dialogs, toasts.

export const boot = JSON.parse(document.getElementById("boot").textContent);
export const lang = boot.lang === "zh" ? "zh-CN" : "en";

export function t(key, values = {}) {
  const text = boot.strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A management API call. The session cookie authenticates it; changes carry the CSRF token. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json", "X-CSRF-Token": boot.csrf };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, t("ui.offline"), "offline");
  }
  if (response.status === 401) {
    toast(t("ui.session_gone"), "bad");
    setTimeout(() => location.assign(`/dashboard/login?next=${encodeURIComponent(location.pathname)}`), 800);
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new ApiError(response.status, error.message || response.statusText, error.code);
  }
  return data;
}

/** el("button", {class: "x", onclick: f}, "text", child...) — children are text or nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style" && typeof value === "object") {
      for (const [property, setting] of Object.entries(value)) {
        if (property.startsWith("--")) node.style.setProperty(property, setting);
        else node.style[property] = setting;
      }
    }
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(ns, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

// --- formatting ---------------------------------------------------------------------------------

const numberFormat = new Intl.NumberFormat(lang);
const compactFormat = new Intl.NumberFormat(lang, { notation: "compact", maximumFractionDigits: 1 });
const relative = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
const usdCents = new Intl.NumberFormat(lang, { style: "currency", currency: "USD" });
const usdSmall = new Intl.NumberFormat(lang, { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4 });

export const fmt = {
  number: (n) => (n === null || n === undefined ? t("ui.none") : numberFormat.format(n)),
  compact: (n) => (n === null || n === undefined ? t("ui.none") : compactFormat.format(n)),
  percent: (fraction, digits = 1) =>
    new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: digits }).format(fraction),
  ms: (n) => (n === null || n === undefined ? t("ui.none") : t("unit.ms", { n: numberFormat.format(Math.round(n)) })),
  /** US dollars: cents from $1 up, four decimals below (one request costs fractions of a cent). */
  usd: (n) => (n === null || n === undefined ? t("ui.none") : (Math.abs(n) >= 1 || n === 0 ? usdCents : usdSmall).format(n)),
  tps: (n) => (n === null || n === undefined ? t("ui.none") : t("unit.tps", { n: numberFormat.format(Math.round(n)) })),
  dateTime: (seconds) => new Date(seconds * 1000).toLocaleString(lang),
  time: (seconds) => new Date(seconds * 1000).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" }),
  /** "3 minutes ago" / "in 2 hours", in the chosen language. */
  ago(seconds) {
    if (!seconds) return t("ui.none");
    const delta = seconds - Date.now() / 1000;
    const size = Math.abs(delta);
    if (size < 45) return relative.format(Math.round(delta), "second");
    if (size < 90 * 60) return relative.format(Math.round(delta / 60), "minute");
    if (size < 36 * 3600) return relative.format(Math.round(delta / 3600), "hour");
    return relative.format(Math.round(delta / 86400), "day");
  },
};

// --- feedback -----------------------------------------------------------------------------------

export function toast(message, kind = "") {
  const node = el("div", { class: `toast ${kind}`, role: kind === "bad" ? "alert" : "status" }, message);
  document.getElementById("toasts").append(node);
  setTimeout(() => node.remove(), kind === "bad" ? 8000 : 4000);
}

export function failed(error) {
  toast(t("ui.error", { error: error.message || error }), "bad");
}

/** A modal question; resolves true when confirmed. */
export function confirmDialog({ title, text, confirm = t("ui.confirm"), danger = false, body = null }) {
  return new Promise((resolve) => {
    const yes = el("button", { class: danger ? "danger solid" : "primary", value: "yes", id: "confirm-yes" }, confirm);
    const dialog = el("dialog", { class: "confirm" },
      el("form", { method: "dialog" },
        el("div", { class: "dialog-body" }, el("h2", {}, title), text ? el("p", {}, text) : null, body),
        el("div", { class: "dialog-foot" }, el("button", { value: "no" }, t("ui.cancel")), yes)));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    yes.focus();
  });
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain http from another machine is no secure context: no async clipboard there.
    const area = el("textarea", { style: { position: "fixed", opacity: "0" } }, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast(t("ui.copied"), "ok");
}

export function download(filename, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** An import's answer (``{added, updated, failed, errors}``) in one line, each failed entry named. */
export function importSummary(result) {
  const summary = t("import.result", result);
  const errors = result.errors.map((e) => `#${e.index + 1}: ${e.error}`).join(" · ");
  return errors ? `${summary} — ${errors}` : summary;
}

/** Run async ``work`` on every item with at most ``limit`` at once, reporting each one done. */
export async function eachLimited(items, limit, work, onDone) {
  let next = 0;
  let done = 0;
  async function worker() {
    while (next < items.length) {
      const item = items[next++];
      let outcome;
      try {
        outcome = { item, value: await work(item) };
      } catch (error) {
        outcome = { item, error };
      }
      done += 1;
      onDone?.(outcome, done);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Every few seconds while the tab is visible (and once at once). */
export function every(seconds, task) {
  let timer = null;
  const run = async () => {
    clearTimeout(timer);
    if (!document.hidden) await task().catch(() => {});
    timer = setTimeout(run, seconds * 1000);
  };
  document.addEventListener("visibilitychange", () => !document.hidden && run());
  run();
  return { stop: () => clearTimeout(timer), now: run };
}

/** Checkboxes (``input.select``) on the rows of table body ``body`` (each ``tr`` with
 * ``data-id``), a select-all box ``all`` and a bar ``bar`` shown while rows are selected, its count
 * in ``count``. ``ids()`` lists every row's id. Call ``render()`` after redrawing the rows. */
export function rowSelection({ body, all, bar, count, ids }) {
  const selected = new Set();
  function render() {
    const n = selected.size;
    const total = ids().length;
    $(bar).hidden = n === 0;
    $(count).textContent = t("batch.selected", { n });
    $(all).checked = n > 0 && n === total;
    $(all).indeterminate = n > 0 && n < total;
    for (const tr of $$(`${body} tr`)) tr.classList.toggle("selected", selected.has(tr.dataset.id));
  }
  $(all).addEventListener("change", (event) => {
    selected.clear();
    if (event.target.checked) for (const id of ids()) selected.add(id);
    for (const box of $$(`${body} input.select`)) box.checked = event.target.checked;
    render();
  });
  return {
    selected,
    render,
    toggle(id, on) {
      if (on) selected.add(id);
      else selected.delete(id);
      render();
    },
    /** Forget rows that are gone. */
    keep(current) {
      for (const id of [...selected]) if (!current.has(id)) selected.delete(id);
    },
  };
}

/** Tabs: buttons with role=tab and aria-controls, each showing its panel. */
export function tabs(root) {
  const all = $$("[role=tab]", root);
  for (const tab of all) {
    tab.addEventListener("click", () => {
      for (const other of all) {
        other.setAttribute("aria-selected", String(other === tab));
        document.getElementById(other.getAttribute("aria-controls")).hidden = other !== tab;
      }
    });
  }
}

/** Called last by each page's script: its controls work from now on (tests wait for this). */
export function ready() {
  document.body.dataset.ready = "true";
}

// --- the frame: language and theme switches (cookies, so the server renders the same) ----------------

function remember(name, value) {
  document.cookie = `${name}=${value}; path=/; max-age=31536000; samesite=lax`;
}

document.getElementById("lang-switch")?.addEventListener("change", (event) => {
  remember("codex_proxy_lang", event.target.value);
  location.reload();
});

document.getElementById("theme-switch")?.addEventListener("change", (event) => {
  remember("codex_proxy_theme", event.target.value);
  document.documentElement.dataset.theme = event.target.value;
  document.dispatchEvent(new CustomEvent("themechange"));
});

window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  document.dispatchEvent(new CustomEvent("themechange"));
});
