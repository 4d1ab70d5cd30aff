// Logs: the request log with filters, search and paging (live while on the first page), each row
// opening its details (bodies when capture is on), and the errors grouped by kind.
import { $, $$, api, boot, el, every, failed, fmt, ready, t, tabs } from "./core.js";

const PAGE = 50;
const state = { offset: 0, total: 0, errorHours: 24 };
const accountName = (id) => (id ? boot.accounts[id] || id : t("series.no_account"));
const keyName = (id) => (id ? boot.keys[id] || id : t("ui.none"));

for (const [id, name] of Object.entries(boot.accounts)) $("#filter-account").append(el("option", { value: id }, name));
for (const [id, name] of Object.entries(boot.keys)) $("#filter-key").append(el("option", { value: id }, name));
for (const model of boot.models) $("#filter-model").append(el("option", { value: model }, model));

function statusClass(row) {
  if (row.status >= 500 || row.status === 0) return "bad";
  if (row.status >= 400 || row.error) return "warn";
  return "ok";
}

function when(ts) {
  const sameDay = new Date(ts * 1000).toDateString() === new Date().toDateString();
  return sameDay ? fmt.time(ts) : fmt.dateTime(ts);
}

function logRow(row) {
  const model = row.requested_model && row.requested_model !== row.model
    ? el("span", {}, el("span", { class: "muted" }, `${row.requested_model} → `), row.model)
    : row.model;
  return el("tr", { class: "clickable", dataset: { id: row.id }, tabindex: 0, onclick: () => openDetail(row.id),
    onkeydown: (event) => event.key === "Enter" && openDetail(row.id) },
    el("td", { "data-label": t("lcol.time"), class: "nowrap", title: fmt.dateTime(row.ts) }, when(row.ts)),
    el("td", { "data-label": t("lcol.protocol") }, row.protocol),
    el("td", { "data-label": t("lcol.model"), class: "mono small" }, model),
    el("td", { "data-label": t("lcol.account") }, row.provider ? t("logs.via_provider", { provider: row.provider }) : accountName(row.account_id)),
    el("td", { "data-label": t("lcol.key") }, keyName(row.key_id)),
    el("td", { "data-label": t("lcol.status"), title: row.error || "" }, el("span", { class: `status-code ${statusClass(row)}` }, row.status),
      row.error ? el("span", { class: "small muted" }, ` ${row.error.slice(0, 60)}`) : null),
    el("td", { "data-label": t("lcol.ttfb"), class: "num" }, fmt.ms(row.ttfb_ms)),
    el("td", { "data-label": t("lcol.duration"), class: "num" }, fmt.ms(row.duration_ms)),
    el("td", { "data-label": t("lcol.tokens"), class: "num" },
      row.input_tokens === null ? t("ui.none") : `${fmt.number(row.input_tokens)} / ${fmt.number(row.output_tokens)}`));
}

async function loadRequests() {
  const params = new URLSearchParams({ limit: PAGE, offset: state.offset });
  for (const [name, value] of new FormData($("#filters"))) if (value) params.set(name, value);
  const page = await api("GET", `/admin/logs?${params}`);
  state.total = page.total;
  $("#log-body").replaceChildren(...page.logs.map(logRow));
  $("#log-empty").hidden = page.logs.length > 0;
  $("#log-page").textContent = page.total ? t("logs.page", { from: state.offset + 1, to: state.offset + page.logs.length, total: page.total }) : "";
  $("#log-newer").disabled = state.offset === 0;
  $("#log-older").disabled = state.offset + PAGE >= page.total;
}

function reload() {
  state.offset = 0;
  loadRequests().catch(failed);
}

let typing = null;
$("#filters").addEventListener("input", (event) => {
  if (event.target.id === "live") return;
  clearTimeout(typing);
  typing = setTimeout(reload, event.target.type === "search" ? 250 : 0);
});
$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  reload();
});
$("#log-newer").addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - PAGE);
  loadRequests().catch(failed);
});
$("#log-older").addEventListener("click", () => {
  state.offset += PAGE;
  loadRequests().catch(failed);
});

every(5, async () => {
  if ($("#live").checked && state.offset === 0 && !$("#detail").open) await loadRequests();
});

// --- details ------------------------------------------------------------------------------------

function field(label, value) {
  return [el("dt", {}, label), el("dd", {}, value ?? t("ui.none"))];
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

async function openDetail(id) {
  let detail;
  try {
    detail = await api("GET", `/admin/logs/${id}`);
  } catch (error) {
    failed(error);
    return;
  }
  const row = detail.log;
  $("#detail-title").textContent = t("detail.title", { id: row.id });
  $("#detail-fields").replaceChildren(
    ...field(t("lcol.time"), fmt.dateTime(row.ts)),
    ...field(t("detail.request_id"), el("code", {}, row.request_id)),
    ...field(t("detail.path"), el("code", {}, row.path)),
    ...field(t("lcol.protocol"), row.protocol),
    ...field(t("lcol.model"), row.model),
    ...field(t("detail.requested"), row.requested_model),
    ...field(t("lcol.account"), row.account_id ? `${detail.log.account_name || row.account_id} (${row.account_id})` : null),
    ...field(t("lcol.provider"), row.provider),
    ...field(t("lcol.status"), el("span", { class: `status-code ${statusClass(row)}` }, row.status)),
    ...(row.error ? field(t("detail.error"), el("span", { class: "mono small" }, row.error)) : []),
    ...field(t("detail.stream"), row.stream ? t("yes") : t("no")),
    ...field(t("lcol.ttfb"), fmt.ms(row.ttfb_ms)),
    ...field(t("lcol.duration"), fmt.ms(row.duration_ms)),
    ...field(t("lcol.tokens"), row.input_tokens === null ? null : `${fmt.number(row.input_tokens)} / ${fmt.number(row.output_tokens)}`),
    ...field(t("detail.cached"), fmt.number(row.cached_tokens)),
    ...field(t("detail.reasoning"), fmt.number(row.reasoning_tokens)),
    ...field(t("lcol.key"), row.key_id ? `${detail.log.key_label || row.key_id} (sk-proxy-${row.key_id})` : null),
    ...field(t("detail.cost"), row.cost_usd === null ? null : fmt.usd(row.cost_usd)),
    ...field(t("detail.attempts"), row.attempts),
  );
  const bodies = detail.bodies;
  const cut = bodies?.truncated ? ` ${t("detail.truncated")}` : "";
  $("#detail-bodies").replaceChildren(...(bodies
    ? [el("h3", {}, t("detail.request_body") + cut), el("pre", { class: "body", id: "detail-request" }, pretty(bodies.request)),
       el("h3", {}, t("detail.response_body") + cut), el("pre", { class: "body", id: "detail-response" }, pretty(bodies.response))]
    : [el("div", { class: "notice", id: "detail-no-body" }, detail.capture_bodies ? t("detail.no_body") : t("detail.bodies_off"))]));
  $("#detail").showModal();
}

// --- errors -------------------------------------------------------------------------------------

function errorGroup(group) {
  const example = group.example;
  return el("details", { class: "error-group", dataset: { status: group.status } },
    el("summary", {},
      el("span", { class: "count" }, `${fmt.number(group.count)}×`),
      el("span", { class: "kind" }, group.kind),
      el("span", { class: "small muted", title: fmt.dateTime(group.last_ts) }, t("errors.last", { when: fmt.ago(group.last_ts) }))),
    el("div", { class: "stack small", style: { padding: "8px 0 0 50px" } },
      group.models.length ? el("span", {}, t("errors.models", { list: group.models.join(", ") })) : null,
      group.accounts.length ? el("span", {}, t("errors.accounts", { list: group.accounts.map(accountName).join(", ") })) : null,
      el("span", {}, `${t("errors.example")}: `, el("a", { href: "#", onclick: (event) => { event.preventDefault(); openDetail(example.id); } },
        `#${example.id} · ${fmt.dateTime(example.ts)} · ${example.protocol} ${example.model}`))));
}

async function loadErrors() {
  const { groups } = await api("GET", `/admin/logs/errors?hours=${state.errorHours}`);
  const total = groups.reduce((sum, g) => sum + g.count, 0);
  $("#errors-subtitle").textContent = t("errors.subtitle", { range: t(`range.${state.errorHours}`) });
  $("#error-groups").replaceChildren(...(groups.length ? groups.map(errorGroup) : [el("p", { class: "muted" }, t("errors.empty"))]));
  if (state.errorHours === 24) {
    $("#error-count").hidden = total === 0;
    $("#error-count").textContent = fmt.number(total);
  }
}

for (const button of $$("#error-range button")) {
  button.addEventListener("click", () => {
    state.errorHours = Number(button.dataset.hours);
    for (const other of $$("#error-range button")) other.setAttribute("aria-pressed", String(other === button));
    loadErrors().catch(failed);
  });
}

tabs($("#log-tabs"));
$("#tab-errors").addEventListener("click", () => loadErrors().catch(failed));
if (location.hash === "#errors") $("#tab-errors").click();
loadErrors().catch(() => {});
ready();
