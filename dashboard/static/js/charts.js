// Time-series charts on uPlot (vendored in static/vendor/uplot, see vendor.json): themed from the
// page's CSS variables, resized with their card, redrawn when the theme changes. Each chart keeps
// its numbers in a <details> table beside it, for reading exact values and for screen readers.
/* global uPlot */
import { $$, el, fmt, lang, t } from "./core.js";

const charts = new Map(); // container id -> {plot, spec}

let probe = null;

/** A colour variable of the stylesheet as the canvas needs it: resolved (light or dark) to rgb(). */
export function cssColor(name) {
  if (!probe) probe = document.body.appendChild(el("span", { hidden: true }));
  probe.style.color = `var(${name})`;
  return getComputedStyle(probe).color;
}

export function seriesColor(index) {
  return cssColor(`--chart-${(index % 8) + 1}`);
}

function alpha(color, opacity) {
  const [r, g, b] = color.match(/\d+/g);
  return `rgba(${r}, ${g}, ${b}, ${opacity})`;
}

// The time axis in the page's language and the viewer's time zone (uPlot's own tick labels are
// English: "3pm", "Mar 5"): times of day, dates, months, each as Intl writes them.
const TICK = {
  time: new Intl.DateTimeFormat(lang, { hour: "numeric", minute: "2-digit" }),
  day: new Intl.DateTimeFormat(lang, { month: "short", day: "numeric" }),
  month: new Intl.DateTimeFormat(lang, { year: "numeric", month: "short" }),
};
const DAY = 86400;

/** uPlot's ``axes[0].values``: a label per tick; below a day apart, the date under the first tick and each midnight. */
export function timeTicks(u, splits, axisIndex, space, increment) {
  if (increment >= 28 * DAY) return splits.map((s) => TICK.month.format(new Date(s * 1000)));
  if (increment >= DAY) return splits.map((s) => TICK.day.format(new Date(s * 1000)));
  return splits.map((s, i) => {
    const date = new Date(s * 1000);
    const time = TICK.time.format(date);
    return i === 0 || (date.getHours() === 0 && date.getMinutes() === 0) ? `${time}\n${TICK.day.format(date)}` : time;
  });
}

/** Every bucket start from ``since`` to now (the API leaves empty buckets out). */
export function bucketAxis(since, size, now = Date.now() / 1000) {
  const axis = [];
  for (let start = Math.floor(since / size) * size; start <= now; start += size) axis.push(start);
  return axis;
}

/** Values of ``field`` on the axis, 0 where the API had no point. */
export function onAxis(axis, points, field, missing = 0) {
  const byStart = new Map(points.map((p) => [p.bucket_start, p]));
  return axis.map((start) => byStart.get(start)?.[field] ?? missing);
}

function dataTable(spec) {
  const head = el("tr", {}, el("th", {}, t("chart.time")), ...spec.series.map((s) => el("th", { class: "num" }, s.label)));
  const rows = spec.x.map((x, i) => el("tr", {}, el("td", { class: "nowrap" }, fmt.dateTime(x)),
    ...spec.series.map((s) => el("td", { class: "num" }, s.values[i] === null ? t("ui.none") : fmt.number(s.values[i])))));
  return el("details", { class: "data" }, el("summary", {}, t("chart.show_data")),
    el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows.reverse()))));
}

function build(container, spec) {
  const axis = { stroke: cssColor("--muted"), grid: { stroke: cssColor("--border"), width: 1 }, ticks: { stroke: cssColor("--border"), width: 1 } };
  const stacked = spec.stacked === true;
  // Stacked bars: each series is drawn as the running total of itself and those after it, the
  // legend and the data table still show its own value.
  const drawn = spec.series.map((s, i) => (stacked ? s.values.map((_, j) => spec.series.slice(i).reduce((sum, o) => sum + (o.values[j] || 0), 0)) : s.values));
  const series = [{ label: t("chart.time"), value: (u, v) => (v === null ? "" : fmt.dateTime(v)) }, ...spec.series.map((s, i) => {
    const color = s.color || seriesColor(i);
    const bars = spec.kind === "bars";
    return {
      label: s.label,
      stroke: color,
      width: bars ? 1 : 2,
      fill: bars ? alpha(color, 0.75) : alpha(color, 0.12),
      points: { show: spec.x.length < 40, size: 4 },
      paths: bars ? uPlot.paths.bars({ size: [0.7, 40], align: 0 }) : undefined,
      value: (u, v, si, idx) => {
        const raw = idx === null || idx === undefined ? null : spec.series[si - 1].values[idx];
        return raw === null || raw === undefined ? "—" : (spec.format || fmt.number)(raw);
      },
      spanGaps: false,
    };
  })];
  const opts = {
    width: Math.max(container.clientWidth, 200),
    height: spec.height || 240,
    series,
    axes: [{ ...axis, values: timeTicks }, { ...axis, size: spec.tick ? 76 : 56, values: (u, ticks) => ticks.map((v) => (spec.tick || fmt.compact)(v)) }],
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    cursor: { drag: { x: true, y: false }, points: { size: 6 } },
    legend: { live: true },
  };
  return new uPlot(opts, [spec.x, ...drawn], container);
}

/** Draw (or redraw) a chart into the element with ``id``.
 * spec: {x, series: [{label, values, color?}], kind?, stacked?, format? (values), tick? (the y axis)} */
export function timeChart(id, spec) {
  const container = document.getElementById(id);
  charts.get(id)?.plot?.destroy();
  container.replaceChildren();
  const empty = !spec.x.length || spec.series.every((s) => s.values.every((v) => !v));
  if (empty) {
    container.append(el("div", { class: "chart-empty" }, t("chart.empty")));
    charts.set(id, { plot: null, spec });
    return;
  }
  const target = el("div");
  container.append(target, dataTable(spec));
  charts.set(id, { plot: build(target, spec), spec });
}

const resizer = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const chart = charts.get(entry.target.id);
    if (chart?.plot) chart.plot.setSize({ width: Math.max(entry.contentRect.width, 200), height: chart.spec.height || 240 });
  }
});

export function watchSize() {
  for (const node of $$(".chart")) resizer.observe(node);
}

document.addEventListener("themechange", () => {
  for (const [id, chart] of charts) timeChart(id, chart.spec);
});
