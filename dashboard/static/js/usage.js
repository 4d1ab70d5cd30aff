// Usage: totals, charts over time (requests, tokens, per account, per model, latency) and
// percentiles for the chosen range, all from the request log.
import { $, $$, api, boot, el, failed, fmt, ready, t } from "./core.js";
import { bucketAxis, onAxis, seriesColor, timeChart, watchSize } from "./charts.js";

const GRANULARITY = { 1: "five_min", 6: "five_min", 24: "hourly", 168: "hourly", 720: "daily" };
const BUCKET_SECONDS = { five_min: 300, hourly: 3600, daily: 86400 };
const TOP = 7; // lines per chart; the rest are summed into one

const params = new URLSearchParams(location.search);
let hours = Number(params.get("hours"));
if (!(hours in GRANULARITY)) hours = 24;
let keyId = params.get("key_id") || "";
const keyName = (key) => (key ? boot.keys[key] || key : t("series.proxy_key"));

for (const [id, label] of Object.entries(boot.keys)) $("#key-filter").append(el("option", { value: id }, label));
if (keyId && !$(`#key-filter option[value="${CSS.escape(keyId)}"]`)) $("#key-filter").append(el("option", { value: keyId }, keyId));
$("#key-filter").value = keyId;

function stat(key, value, sub = "") {
  const box = $(`[data-stat="${key}"]`);
  $(".value", box).textContent = value;
  $(".sub", box).textContent = sub;
}

function renderTotals(summary, latency) {
  const totals = summary.totals;
  stat("requests", fmt.number(totals.requests));
  stat("success", totals.requests ? fmt.percent(totals.succeeded / totals.requests) : t("ui.none"));
  stat("errors", fmt.number(totals.failed));
  stat("cost", fmt.usd(totals.cost_usd), t("stat.cost_note"));
  stat("cost_per_request", totals.requests ? fmt.usd(totals.cost_usd / totals.requests) : t("ui.none"));
  stat("input", fmt.compact(totals.input_tokens), fmt.number(totals.input_tokens));
  stat("output", fmt.compact(totals.output_tokens), fmt.number(totals.output_tokens));
  stat("cached", fmt.compact(totals.cached_tokens),
    totals.input_tokens ? t("stat.cached_share", { pct: fmt.percent(totals.cached_tokens / totals.input_tokens) }) : "");
  stat("ttfb", fmt.ms(latency.ttfb_ms.p50), latency.ttfb_ms.count ? `p90 ${fmt.ms(latency.ttfb_ms.p90)}` : "");
  stat("tps", fmt.tps(latency.tokens_per_second.p50), latency.tokens_per_second.count ? `p90 ${fmt.tps(latency.tokens_per_second.p90)}` : "");
}

/** Requests per bucket for each key (account or model): the busiest TOP, the rest summed. */
function perKey(axis, points, label) {
  const totals = new Map();
  for (const p of points) totals.set(p.key, (totals.get(p.key) || 0) + p.requests);
  const ranked = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a));
  const shown = ranked.slice(0, TOP);
  const series = shown.map((key, i) => ({
    label: label(key),
    values: onAxis(axis, points.filter((p) => p.key === key), "requests"),
    color: seriesColor(i),
  }));
  const rest = new Set(ranked.slice(TOP));
  if (rest.size) {
    const sums = new Map();
    for (const p of points) if (rest.has(p.key)) sums.set(p.bucket_start, (sums.get(p.bucket_start) || 0) + p.requests);
    series.push({ label: `+${rest.size}`, values: axis.map((x) => sums.get(x) || 0), color: seriesColor(TOP) });
  }
  return series;
}

function bars(id, rows, label) {
  const max = Math.max(1, ...rows.map((r) => r.requests));
  const list = rows.map((row, i) => el("div", { class: "hbar", style: { "--series": seriesColor(i) } },
    el("span", { class: "name", title: label(row.key) }, label(row.key)),
    el("div", { class: "bar" }, el("i", { style: { width: `${(100 * row.requests) / max}%` } })),
    el("span", { class: "value", title: `${fmt.number(row.input_tokens)} / ${fmt.number(row.output_tokens)}` }, fmt.number(row.requests)),
    el("span", { class: "cost", title: t("stat.cost") }, fmt.usd(row.cost_usd))));
  $(`#${id}`).replaceChildren(...(list.length ? list : [el("p", { class: "muted" }, t("chart.empty"))]));
}

/** Per client key: requests, errors, tokens and cost, each key a link to its own usage. */
function keysTable(rows) {
  const link = (key) => (key ? el("a", { href: `?hours=${hours}&key_id=${encodeURIComponent(key)}` }, keyName(key)) : keyName(key));
  $("#keys-usage tbody").replaceChildren(...rows.map((row) => el("tr", { dataset: { key: row.key || "none" } },
    el("td", { "data-label": t("lcol.key") }, link(row.key)),
    el("td", { "data-label": t("ucol.requests"), class: "num" }, fmt.number(row.requests)),
    el("td", { "data-label": t("ucol.errors"), class: "num" }, fmt.number(row.failed)),
    el("td", { "data-label": t("ucol.tokens"), class: "num" }, `${fmt.number(row.input_tokens)} / ${fmt.number(row.output_tokens)}`),
    el("td", { "data-label": t("ucol.cost"), class: "num" }, fmt.usd(row.cost_usd)))));
  $("#keys-usage").hidden = rows.length === 0;
  $("#keys-usage-empty").hidden = rows.length > 0;
}

function percentiles(latency) {
  const rows = [["chart.ttfb", latency.ttfb_ms, fmt.ms], ["chart.tps", latency.tokens_per_second, fmt.tps]];
  $("#percentiles tbody").replaceChildren(...rows.map(([key, spread, format]) => el("tr", {},
    el("td", {}, t(key)), el("td", { class: "num" }, format(spread.p50)), el("td", { class: "num" }, format(spread.p90)),
    el("td", { class: "num" }, format(spread.p99)), el("td", { class: "num" }, fmt.number(spread.count)))));
}

async function load() {
  const granularity = GRANULARITY[hours];
  const scope = keyId ? `&key_id=${encodeURIComponent(keyId)}` : "";
  const query = `hours=${hours}&granularity=${granularity}${scope}`;
  const [summary, timeline, accounts, models, keys, latency] = await Promise.all([
    api("GET", `/admin/usage-stats/summary?hours=${hours}${scope}`),
    api("GET", `/admin/usage-stats/history?${query}`),
    api("GET", `/admin/usage-stats/series?${query}&group=account`),
    api("GET", `/admin/usage-stats/series?${query}&group=model`),
    api("GET", `/admin/usage-stats/series?${query}&group=key`),
    api("GET", `/admin/usage-stats/latency?${query}`),
  ]);
  Object.assign(boot.keys, keys.names);
  const axis = bucketAxis(Date.now() / 1000 - hours * 3600, BUCKET_SECONDS[granularity]);
  const points = timeline.data_points;
  const accountName = (key) => (key ? accounts.names[key] || key : t("series.no_account"));
  const modelName = (key) => key || t("ui.none");
  renderTotals(summary, latency);
  timeChart("chart-requests", { x: axis, kind: "bars", stacked: true, series: [
    { label: t("series.succeeded"), values: onAxis(axis, points, "succeeded"), color: seriesColor(0) },
    { label: t("series.failed"), values: onAxis(axis, points, "failed"), color: seriesColor(1) },
  ] });
  timeChart("chart-tokens", { x: axis, format: fmt.compact, series: [
    { label: t("series.input"), values: onAxis(axis, points, "input_tokens"), color: seriesColor(0) },
    { label: t("series.output"), values: onAxis(axis, points, "output_tokens"), color: seriesColor(2) },
    { label: t("series.cached"), values: onAxis(axis, points, "cached_tokens"), color: seriesColor(4) },
  ] });
  timeChart("chart-accounts", { x: axis, series: perKey(axis, accounts.data_points, accountName) });
  timeChart("chart-models", { x: axis, series: perKey(axis, models.data_points, modelName) });
  timeChart("chart-keys", { x: axis, series: perKey(axis, keys.data_points, keyName) });
  timeChart("chart-cost", { x: axis, kind: "bars", format: fmt.usd, tick: fmt.usd, series: [
    { label: t("series.cost"), values: onAxis(axis, points, "cost_usd"), color: seriesColor(3) },
  ] });
  timeChart("chart-ttfb", { x: axis, format: fmt.ms, series: [
    { label: "p50", values: onAxis(axis, latency.points, "ttfb_p50", null), color: seriesColor(0) },
    { label: "p90", values: onAxis(axis, latency.points, "ttfb_p90", null), color: seriesColor(3) },
  ] });
  timeChart("chart-tps", { x: axis, format: fmt.tps, series: [
    { label: "p50", values: onAxis(axis, latency.points, "tps_p50", null), color: seriesColor(2) },
    { label: "p90", values: onAxis(axis, latency.points, "tps_p90", null), color: seriesColor(5) },
  ] });
  bars("bars-accounts", summary.by_account, accountName);
  bars("bars-models", summary.by_model, modelName);
  keysTable(summary.by_key);
  percentiles(latency);
  document.body.dataset.loaded = `${hours}${scope}`;
}

function remember() {
  history.replaceState(null, "", `?hours=${hours}${keyId ? `&key_id=${encodeURIComponent(keyId)}` : ""}`);
}

$("#key-filter").addEventListener("change", (event) => {
  keyId = event.target.value;
  remember();
  load().catch(failed);
});

for (const button of $$("#range button")) {
  button.setAttribute("aria-pressed", String(Number(button.dataset.hours) === hours));
  button.addEventListener("click", () => {
    hours = Number(button.dataset.hours);
    for (const other of $$("#range button")) other.setAttribute("aria-pressed", String(other === button));
    remember();
    load().catch(failed);
  });
}

watchSize();
load().catch(failed);
ready();
