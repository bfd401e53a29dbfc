// Cairn Explorer, the Metrics view: a metric query built from a name, a scope and a group-by,
// charted one line per group, with the scope's service checks and events beside it. It speaks
// the intake's Datadog-shaped APIs (/api/v1/query, /api/v1/metrics,
// /api/v2/metrics/{name}/all-tags, /api/v1/check_run, /api/v1/events) and uses app.js's helpers,
// so data reaches the page only as text nodes (and SVG attributes computed here, never data).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#632ca6", "#1f77b4", "#e5484d", "#1f8a4c", "#f5a524", "#17becf", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22"];
const SUGGESTIONS = 20;
// The chart's margins: room for the value labels on the left and the time labels below.
const M = { l: 64, r: 14, t: 10, b: 26 };
const CHART_H = 260;
const TIME_STEPS_S = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
  43200, 86400, 172800, 604800];

const mstate = { name: "", agg: "avg", scope: "", by: "", as: "", range: "1h", from: null, to: null,
  generation: 0, allNames: [], scopedNames: [], tags: [], tagsFor: null, series: [], hidden: new Set(), events: [],
  shownRange: null };

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function mRange() {
  if (mstate.range === "custom") return { from: mstate.from, to: mstate.to };
  const to = Date.now();
  return { from: to - RANGES_MS[mstate.range], to };
}

function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (v !== 0 && (Math.abs(v) >= 1e15 || Math.abs(v) < 1e-4)) return v.toExponential(3);
  return String(Number(v.toPrecision(6)));
}
function fmtAxis(v) {
  const a = Math.abs(v);
  for (const [div, suffix] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= div) return String(Number((v / div).toPrecision(3))) + suffix;
  }
  return String(Number(v.toPrecision(3)));
}
function fmtClock(ms, withDate, withSeconds) {
  const d = new Date(ms);
  const hm = pad(d.getHours()) + ":" + pad(d.getMinutes()) + (withSeconds ? ":" + pad(d.getSeconds()) : "");
  return withDate ? pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + hm : hm;
}

// The terms a scope ANDs, `*` dropped; the positive ones also filter service checks, events and
// the metric list (the read APIs have no negation).
function scopeTerms(scope) {
  return scope.split(",").map((s) => s.trim()).filter((s) => s && s !== "*");
}
function positiveTerms(scope) { return scopeTerms(scope).filter((t) => !t.startsWith("!")); }
function groupKeys(by) { return by.split(",").map((s) => s.trim()).filter(Boolean); }

function buildQuery() {
  let q = mstate.agg + ":" + mstate.name + "{" + (scopeTerms(mstate.scope).join(",") || "*") + "}";
  const by = groupKeys(mstate.by);
  if (by.length) q += " by {" + by.join(",") + "}";
  if (mstate.as) q += "." + mstate.as + "()";
  return q;
}

function saveMetricsHash() {
  const p = new URLSearchParams({ view: "metrics" });
  if (mstate.name) p.set("m", mstate.name);
  if (mstate.agg !== "avg") p.set("agg", mstate.agg);
  if (mstate.scope) p.set("scope", mstate.scope);
  if (mstate.by) p.set("by", mstate.by);
  if (mstate.as) p.set("as", mstate.as);
  if (mstate.range === "custom") { p.set("from", mstate.from); p.set("to", mstate.to); } else p.set("range", mstate.range);
  history.replaceState(null, "", "#" + p.toString());
}

function showMetricsError(msg) {
  const box = $("m-error");
  clear(box);
  if (msg) appendText(box, msg);
  box.hidden = !msg;
}

// ---- Autocompletion: one list under an input; arrows move, Enter or a click takes, Esc closes.
function combo(input, list, candidates, take) {
  let active = -1;
  const items = () => Array.from(list.children);
  const close = () => { list.hidden = true; active = -1; input.setAttribute("aria-expanded", "false"); };
  const mark = () => items().forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
  const open = () => {
    clear(list);
    active = -1;
    for (const c of candidates(input.value, input.selectionStart)) {
      const li = dataEl("li", null, c.label);
      li.setAttribute("role", "option");
      li.dataset.value = c.value;
      // mousedown, not click: it comes before the input's blur closes the list.
      li.addEventListener("mousedown", (ev) => { ev.preventDefault(); close(); take(c.value); });
      list.appendChild(li);
    }
    list.hidden = !list.childElementCount;
    input.setAttribute("aria-expanded", String(!list.hidden));
  };
  input.addEventListener("input", open);
  input.addEventListener("focus", open);
  input.addEventListener("blur", close);
  input.addEventListener("keydown", (ev) => {
    if (list.hidden) return;
    const n = list.childElementCount;
    if (ev.key === "ArrowDown") { active = (active + 1) % n; mark(); ev.preventDefault(); }
    else if (ev.key === "ArrowUp") { active = (active - 1 + n) % n; mark(); ev.preventDefault(); }
    else if (ev.key === "Escape") { close(); ev.preventDefault(); }
    else if (ev.key === "Enter" && active >= 0) {
      ev.preventDefault();
      const v = items()[active].dataset.value;
      close();
      take(v);
    }
  });
}

// Substring matches, those starting with the text first.
function matching(values, text) {
  const t = text.toLowerCase();
  const hits = values.filter((v) => v.toLowerCase().includes(t));
  hits.sort((a, b) => (b.toLowerCase().startsWith(t) - a.toLowerCase().startsWith(t)) || a.localeCompare(b));
  return hits.slice(0, SUGGESTIONS);
}

// The comma-separated term the caret is in, for scope and group-by lists.
function currentTerm(text, caret) {
  const at = caret === null || caret === undefined ? text.length : caret;
  const start = text.lastIndexOf(",", at - 1) + 1;
  let end = text.indexOf(",", at);
  if (end < 0) end = text.length;
  return { start, end, term: text.slice(start, end).trim() };
}
function replaceTerm(input, value) {
  const { start, end } = currentTerm(input.value, input.selectionStart);
  const before = input.value.slice(0, start).replace(/\s+$/, "");
  const after = input.value.slice(end);
  input.value = before + value + after;
}

// Refreshed at every graph, so that a metric a check started sending is offered without a reload.
async function refreshAllNames() {
  const since = Math.floor(Date.now() / 1000) - 7 * 86400;
  const r = await api("GET", "/api/v1/metrics?from=" + since);
  mstate.allNames = r.metrics || [];
}

// Asked again at every graph (new tags appear as checks run); the last answer stays offered
// until the new one arrives.
async function loadTags(name) {
  if (mstate.tagsFor !== name) mstate.tags = [];
  mstate.tagsFor = name;
  if (!name) return;
  const since = Math.floor(Date.now() / 1000) - 7 * 86400;
  try {
    const r = await api("GET", "/api/v2/metrics/" + encodeURIComponent(name) + "/all-tags?from=" + since);
    if (mstate.tagsFor === name) mstate.tags = r.data.attributes.tags || [];
  } catch (e) {
    // An unknown metric has no tags to offer; the query itself says what is wrong.
  }
}

function setupCombos() {
  combo($("m-name"), $("m-name-suggest"), (text) =>
    matching(mstate.allNames, text.trim()).map((v) => ({ value: v, label: v })),
  (v) => { $("m-name").value = v; graph(); });
  combo($("m-scope"), $("m-scope-suggest"), (text, caret) => {
    const { term } = currentTerm(text, caret);
    const neg = term.startsWith("!");
    return matching(mstate.tags, neg ? term.slice(1) : term).map((t) => ({ value: (neg ? "!" : "") + t, label: (neg ? "!" : "") + t }));
  }, (v) => { replaceTerm($("m-scope"), v); graph(); });
  combo($("m-by"), $("m-by-suggest"), (text, caret) => {
    const keys = Array.from(new Set(["host"].concat(mstate.tags.map((t) => t.includes(":") ? t.slice(0, t.indexOf(":")) : null).filter(Boolean))));
    return matching(keys, currentTerm(text, caret).term).map((k) => ({ value: k, label: k }));
  }, (v) => { replaceTerm($("m-by"), v); graph(); });
}

// ---- The list of metrics reported in the scope and range.
async function loadNames(gen, range) {
  const p = new URLSearchParams({ from: String(Math.floor(range.from / 1000)) });
  const tags = positiveTerms(mstate.scope);
  if (tags.length) p.set("tag_filter", tags.join(","));
  const r = await api("GET", "/api/v1/metrics?" + p.toString());
  if (gen !== mstate.generation) return [];
  mstate.scopedNames = r.metrics || [];
  renderNames();
  const note = $("metric-list-scope");
  clear(note);
  note.appendChild(document.createTextNode(mstate.scopedNames.length + " reported " + (tags.length ? "from " : "in range")));
  if (tags.length) note.appendChild(dataEl("code", null, tags.join(",")));
  return mstate.scopedNames;
}
function renderNames() {
  const ul = $("metric-names");
  clear(ul);
  const f = $("metric-filter").value.trim().toLowerCase();
  for (const name of mstate.scopedNames) {
    if (f && !name.toLowerCase().includes(f)) continue;
    const li = dataEl("li", name === mstate.name ? "selected" : null, name);
    li.dataset.value = name;
    li.title = "Graph " + plainText(name);
    li.addEventListener("click", () => { $("m-name").value = name; graph(); });
    ul.appendChild(li);
  }
  if (!ul.childElementCount) ul.appendChild(el("li", "empty", "none"));
}

// ---- The chart.
function niceStep(span, count) {
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}
function valueScale(series) {
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const [, v] of s.pointlist) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) { lo = 0; hi = 1; }
  lo = Math.min(lo, 0);
  if (hi <= lo) hi = lo + (Math.abs(lo) || 1);
  // Headroom, so that a line at the maximum does not run along the frame.
  hi += (hi - lo) * 0.05;
  const step = niceStep(hi - lo, 5);
  return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, step };
}

function seriesLabel(s) {
  return s.tag_set && s.tag_set.length ? s.tag_set.join(",") : (s.scope || "*");
}

function renderChart() {
  const box = $("m-chart");
  clear(box);
  $("m-tooltip").hidden = true;
  const range = mstate.shownRange;
  const visible = mstate.series.map((s, i) => ({ s, i })).filter(({ i }) => !mstate.hidden.has(i));
  if (!range) return;
  const W = Math.max(320, box.clientWidth || 900);
  const H = CHART_H;
  const root = svgEl("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, class: "chart" });
  const x = (ms) => M.l + (ms - range.from) / Math.max(1, range.to - range.from) * (W - M.l - M.r);
  const ys = valueScale(visible.map(({ s }) => s));
  const y = (v) => M.t + (ys.hi - v) / (ys.hi - ys.lo) * (H - M.t - M.b);
  // Value axis.
  for (let v = ys.lo, k = 0; v <= ys.hi + ys.step / 2 && k < 20; v += ys.step, k++) {
    const yy = y(v);
    root.appendChild(svgEl("line", { x1: M.l, x2: W - M.r, y1: yy, y2: yy, class: "grid" }));
    const label = svgEl("text", { x: M.l - 6, y: yy + 4, "text-anchor": "end", class: "axis y-label" });
    label.textContent = fmtAxis(Math.abs(v) < ys.step / 1e6 ? 0 : v);
    root.appendChild(label);
  }
  // Time axis.
  const spanS = (range.to - range.from) / 1000;
  const stepS = TIME_STEPS_S.find((s) => spanS / s <= 7) || TIME_STEPS_S[TIME_STEPS_S.length - 1];
  const stepMs = stepS * 1000;
  const offset = new Date(range.from).getTimezoneOffset() * 60000;
  for (let t = Math.ceil((range.from - offset) / stepMs) * stepMs + offset; t <= range.to; t += stepMs) {
    const xx = x(t);
    root.appendChild(svgEl("line", { x1: xx, x2: xx, y1: M.t, y2: H - M.b, class: "grid" }));
    const label = svgEl("text", { x: xx, y: H - 8, "text-anchor": "middle", class: "axis x-label" });
    label.textContent = fmtClock(t, spanS > 86400, stepS < 60);
    root.appendChild(label);
  }
  // Events, under the lines, as in Datadog's event overlay.
  for (const e of mstate.events) {
    const t = e.date_happened * 1000;
    if (t < range.from || t > range.to) continue;
    const mark = svgEl("line", { x1: x(t), x2: x(t), y1: M.t, y2: H - M.b, class: "event-mark " + eventClass(e) });
    const title = svgEl("title");
    appendText(title, fmtTime(new Date(t).toISOString()) + "  " + e.title);
    mark.appendChild(title);
    root.appendChild(mark);
  }
  // One line per group; a null value breaks the line.
  for (const { s, i } of visible) {
    let d = "";
    let pen = false;
    const color = PALETTE[i % PALETTE.length];
    for (const [t, v] of s.pointlist) {
      if (v === null) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    }
    const path = svgEl("path", { d: d || "M0 0", class: "line", stroke: color, "data-series": i });
    root.appendChild(path);
    if (s.pointlist.filter(([, v]) => v !== null).length === 1) {
      const [t, v] = s.pointlist.find(([, v]) => v !== null);
      root.appendChild(svgEl("circle", { cx: x(t), cy: y(v), r: 3, fill: color }));
    }
  }
  const cross = svgEl("line", { x1: 0, x2: 0, y1: M.t, y2: H - M.b, class: "crosshair", visibility: "hidden" });
  root.appendChild(cross);
  const overlay = svgEl("rect", { x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, class: "overlay" });
  root.appendChild(overlay);
  overlay.addEventListener("mousemove", (ev) => hover(ev, root, cross, x));
  overlay.addEventListener("mouseleave", () => { cross.setAttribute("visibility", "hidden"); $("m-tooltip").hidden = true; });
  box.appendChild(root);
  if (!visible.length) box.appendChild(el("div", "chart-empty", mstate.series.length ? "Every line is hidden: click the legend to show one." : "No points in this range."));
}

// Hover: the values of every visible line at the point in time nearest the pointer.
function hover(ev, root, cross, x) {
  const rect = root.getBoundingClientRect();
  const px = ev.clientX - rect.left;
  let best = null;
  for (const [i, s] of mstate.series.entries()) {
    if (mstate.hidden.has(i)) continue;
    for (const [t, v] of s.pointlist) {
      if (v === null) continue;
      const dist = Math.abs(x(t) - px);
      if (!best || dist < best.dist) best = { t, dist };
    }
  }
  const tip = $("m-tooltip");
  if (!best) { tip.hidden = true; return; }
  const xx = x(best.t);
  cross.setAttribute("x1", xx);
  cross.setAttribute("x2", xx);
  cross.setAttribute("visibility", "visible");
  clear(tip);
  tip.appendChild(el("div", "tip-time", fmtTime(new Date(best.t).toISOString())));
  const rows = [];
  for (const [i, s] of mstate.series.entries()) {
    if (mstate.hidden.has(i)) continue;
    const p = s.pointlist.find(([t]) => t === best.t);
    if (p && p[1] !== null) rows.push({ i, s, v: p[1] });
  }
  rows.sort((a, b) => b.v - a.v);
  for (const { i, s, v } of rows) {
    const row = el("div", "tip-row");
    const sw = el("span", "sw");
    sw.style.background = PALETTE[i % PALETTE.length];
    row.appendChild(sw);
    row.appendChild(dataEl("span", "tip-label", seriesLabel(s)));
    row.appendChild(el("span", "tip-value", fmtNum(v)));
    tip.appendChild(row);
  }
  tip.hidden = false;
  const wrap = $("m-chart-wrap").getBoundingClientRect();
  const left = rect.left - wrap.left + xx + 12;
  tip.style.left = Math.min(left, wrap.width - tip.offsetWidth - 8) + "px";
  tip.style.top = (rect.top - wrap.top + 12) + "px";
}

function stats(s) {
  const vals = s.pointlist.map(([, v]) => v).filter((v) => v !== null);
  if (!vals.length) return { avg: null, min: null, max: null, last: null };
  return { avg: vals.reduce((a, b) => a + b, 0) / vals.length, min: Math.min(...vals), max: Math.max(...vals), last: vals[vals.length - 1] };
}

function renderLegend() {
  const box = $("m-legend");
  clear(box);
  if (!mstate.series.length) return;
  const head = el("div", "lg-row lg-head");
  for (const h of ["", "Group", "avg", "min", "max", "last"]) head.appendChild(el("span", null, h));
  box.appendChild(head);
  mstate.series.forEach((s, i) => {
    const row = el("div", "lg-row" + (mstate.hidden.has(i) ? " off" : ""));
    row.dataset.series = String(i);
    row.title = "Click to hide or show this line";
    const sw = el("span", "sw");
    sw.style.background = PALETTE[i % PALETTE.length];
    row.appendChild(sw);
    row.appendChild(dataEl("span", "lg-label", seriesLabel(s)));
    const st = stats(s);
    for (const k of ["avg", "min", "max", "last"]) row.appendChild(el("span", "lg-" + k, fmtNum(st[k])));
    row.addEventListener("click", () => {
      if (mstate.hidden.has(i)) mstate.hidden.delete(i); else mstate.hidden.add(i);
      renderLegend();
      renderChart();
    });
    box.appendChild(row);
  });
}

// ---- Service checks: the latest status per check, host and tag set, as a grid of cells.
const SC_CLASS = ["st-ok", "st-warn", "st-critical", "st-other"];
async function loadServiceChecks(gen) {
  const tags = positiveTerms(mstate.scope);
  const r = await api("GET", "/api/v1/check_run" + (tags.length ? "?" + new URLSearchParams({ tags: tags.join(",") }) : ""));
  if (gen !== mstate.generation) return;
  const grid = $("sc-grid");
  clear(grid);
  const byCheck = new Map();
  for (const c of r.checks || []) {
    if (!byCheck.has(c.check)) byCheck.set(c.check, []);
    byCheck.get(c.check).push(c);
  }
  if (!byCheck.size) grid.appendChild(el("div", "empty", "No service checks" + (tags.length ? " in this scope." : ".")));
  for (const [check, list] of byCheck) {
    const row = el("div", "sc-row");
    row.appendChild(dataEl("span", "sc-name", check));
    const cells = el("div", "sc-cells");
    for (const c of list) {
      const cell = el("span", "sc-cell " + (SC_CLASS[c.status] || "st-other"));
      cell.dataset.status = c.status_name;
      cell.appendChild(el("b", null, c.status_name));
      cell.appendChild(dataEl("span", "sc-host", c.host_name || "no host"));
      cell.title = plainText(c.status_name + " at " + fmtTime(new Date(c.timestamp * 1000).toISOString()) +
        (c.message ? "\n" + c.message : "") + (c.tags.length ? "\n" + c.tags.join(", ") : ""));
      cells.appendChild(cell);
    }
    row.appendChild(cells);
    grid.appendChild(row);
  }
}

// ---- Events: a strip over the range and the list, newest first.
function eventClass(e) {
  return { error: "st-error", warning: "st-warn", success: "st-ok" }[e.alert_type] || "st-info";
}
async function loadEvents(gen, range) {
  const p = new URLSearchParams({ start: String(Math.floor(range.from / 1000)), end: String(Math.ceil(range.to / 1000)) });
  const tags = positiveTerms(mstate.scope);
  if (tags.length) p.set("tags", tags.join(","));
  const r = await api("GET", "/api/v1/events?" + p.toString());
  if (gen !== mstate.generation) return;
  mstate.events = r.events || [];
  const strip = $("ev-strip");
  clear(strip);
  const list = $("ev-list");
  clear(list);
  for (const e of mstate.events) {
    const t = e.date_happened * 1000;
    const dot = el("span", "ev-dot " + eventClass(e));
    dot.style.left = (100 * (t - range.from) / Math.max(1, range.to - range.from)) + "%";
    dot.title = plainText(fmtTime(new Date(t).toISOString()) + "  " + e.title);
    strip.appendChild(dot);
    const row = el("div", "ev-row");
    row.setAttribute("role", "listitem");
    row.appendChild(dataEl("span", "ev-time", fmtTime(new Date(t).toISOString())));
    const badge = el("span", "ev-type");
    badge.appendChild(dataEl("span", "status " + eventClass(e), e.alert_type || "info"));
    row.appendChild(badge);
    row.appendChild(dataEl("span", "ev-title", e.title));
    row.appendChild(dataEl("span", "ev-host", e.host || ""));
    const more = el("div", "ev-more");
    more.hidden = true;
    if (e.text) more.appendChild(dataEl("pre", "message", e.text));
    const chips = el("div", "chips");
    for (const tag of e.tags) chips.appendChild(dataEl("span", "chip", tag));
    more.appendChild(chips);
    row.appendChild(more);
    row.addEventListener("click", () => { more.hidden = !more.hidden; });
    list.appendChild(row);
  }
  if (!mstate.events.length) list.appendChild(el("div", "empty", "No events in this range" + (tags.length ? " and scope." : ".")));
}

// ---- Graph: read the form, then the query, the list, the checks and the events in parallel.
async function graph() {
  mstate.name = $("m-name").value.trim();
  mstate.agg = $("m-agg").value;
  mstate.scope = $("m-scope").value.trim();
  mstate.by = $("m-by").value.trim();
  mstate.as = $("m-as").value;
  if (mstate.range !== "custom") $("m-range").querySelector('option[value="custom"]').hidden = true;
  const gen = ++mstate.generation;
  const range = mRange();
  // Busy until this query's answer is drawn, so nobody reads the last query's chart as this one's.
  $("m-chart-wrap").setAttribute("aria-busy", "true");
  showMetricsError("");
  const failed = (e) => { if (gen === mstate.generation) showMetricsError(e.message); };
  refreshAllNames().catch(() => {});
  const names = loadNames(gen, range).catch((e) => { failed(e); return []; });
  loadServiceChecks(gen).catch(failed);
  const events = loadEvents(gen, range).catch(failed);
  if (!mstate.name) {
    // Opened on a scope alone (a log's "same host" link): graph the first metric it reports.
    const first = (await names)[0];
    if (gen !== mstate.generation) return;
    if (first) { $("m-name").value = first; mstate.name = first; }
  }
  saveMetricsHash();
  loadTags(mstate.name);
  renderNames();
  $("m-title").textContent = "";
  $("m-chart-range").textContent = fmtTime(new Date(range.from).toISOString()) + " → " + fmtTime(new Date(range.to).toISOString());
  const query = $("m-query");
  clear(query);
  if (!mstate.name) {
    mstate.series = []; mstate.shownRange = null;
    renderChart(); renderLegend();
    query.appendChild(document.createTextNode("Pick a metric from the list or type its name."));
    $("m-chart-wrap").setAttribute("aria-busy", "false");
    return;
  }
  const text = buildQuery();
  query.appendChild(document.createTextNode("Query: "));
  query.appendChild(dataEl("code", "m-query-text", text));
  try {
    const p = new URLSearchParams({ from: String(Math.floor(range.from / 1000)), to: String(Math.ceil(range.to / 1000)), query: text });
    const r = await api("GET", "/api/v1/query?" + p.toString());
    await events;
    if (gen !== mstate.generation) return;
    mstate.series = r.series || [];
    mstate.hidden = new Set();
    mstate.shownRange = range;
    $("m-title").textContent = mstate.name + " · " + mstate.series.length + " series";
    renderChart();
    renderLegend();
    if (!mstate.series.length) $("m-chart").appendChild(el("div", "chart-empty", "No points for this query in this range."));
  } catch (e) {
    if (gen !== mstate.generation) return;
    // A stale chart under a new error would read as the answer to the new query.
    mstate.series = []; mstate.shownRange = null;
    renderChart(); renderLegend();
    showMetricsError(e.message);
  }
  $("m-chart-wrap").setAttribute("aria-busy", "false");
}

let metricsReady = false;
function openMetrics(p) {
  if (!metricsReady) {
    metricsReady = true;
    for (const o of $("range").options) $("m-range").appendChild(o.cloneNode(true));
    setupCombos();
    $("metric-form").addEventListener("submit", (ev) => { ev.preventDefault(); graph(); });
    for (const id of ["m-agg", "m-as"]) $(id).addEventListener("change", () => graph());
    $("m-range").addEventListener("change", () => { mstate.range = $("m-range").value; graph(); });
    $("metric-filter").addEventListener("input", renderNames);
    window.addEventListener("resize", () => { if (!$("metrics-view").hidden) renderChart(); });
  }
  $("m-name").value = p.get("m") || "";
  $("m-agg").value = ["avg", "sum", "min", "max"].includes(p.get("agg")) ? p.get("agg") : "avg";
  $("m-scope").value = p.get("scope") || "";
  $("m-by").value = p.get("by") || "";
  $("m-as").value = ["as_count", "as_rate"].includes(p.get("as")) ? p.get("as") : "";
  const from = Number(p.get("from")), to = Number(p.get("to"));
  if (p.get("from") && p.get("to") && from <= to) {
    mstate.range = "custom"; mstate.from = from; mstate.to = to;
  } else mstate.range = RANGES_MS[p.get("range")] ? p.get("range") : "1h";
  $("m-range").querySelector('option[value="custom"]').hidden = mstate.range !== "custom";
  $("m-range").value = mstate.range;
  graph();
}
