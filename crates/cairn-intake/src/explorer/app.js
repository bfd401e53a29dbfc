// Cairn Explorer, the Logs view (metrics.js holds the Metrics view). Every piece of data reaches
// the page through appendText, as text nodes, never as markup; the server's
// Content-Security-Policy forbids inline script.
"use strict";

const PAGE = 100;
const MAX_ROWS = 5000;
const FACETS = [
  { facet: "source", title: "Source", field: "source" },
  { facet: "service", title: "Service", field: "service" },
  { facet: "status", title: "Status", field: "status" },
  { facet: "host", title: "Host", field: "host" },
  { facet: "tags", title: "Tags", field: null },
];
const STATUSES = ["emerg", "alert", "critical", "error", "warn", "notice", "info", "debug", "ok"];
const RANGES_MS = { "15m": 9e5, "1h": 36e5, "4h": 144e5, "1d": 864e5, "2d": 1728e5, "7d": 6048e5 };
const INTERVALS = [1e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5];

const $ = (id) => document.getElementById(id);
const state = { query: "", range: "15m", from: null, to: null, cursor: null, loading: false,
  live: false, liveAfter: null, liveTimer: null, generation: 0, selected: null };

// Unicode direction controls, the set `cairn logs` marks too. Obeyed, they make stored text
// read as something else ("\u202E0001$" shows as "$1000"), so the page never lets the browser
// apply one: each is replaced on screen by a visible marker, and the stored value is kept for
// filters and the API.
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
const BIDI_NAMES = {
  0x061c: "ARABIC LETTER MARK", 0x200e: "LEFT-TO-RIGHT MARK", 0x200f: "RIGHT-TO-LEFT MARK",
  0x202a: "LEFT-TO-RIGHT EMBEDDING", 0x202b: "RIGHT-TO-LEFT EMBEDDING",
  0x202c: "POP DIRECTIONAL FORMATTING", 0x202d: "LEFT-TO-RIGHT OVERRIDE",
  0x202e: "RIGHT-TO-LEFT OVERRIDE", 0x2066: "LEFT-TO-RIGHT ISOLATE",
  0x2067: "RIGHT-TO-LEFT ISOLATE", 0x2068: "FIRST STRONG ISOLATE", 0x2069: "POP DIRECTIONAL ISOLATE",
};
function bidiMarker(c) {
  return "<U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + ">";
}

// The one way text reaches the page: appended as text nodes, each direction control as a
// marker element that says which control it is.
function appendText(node, text) {
  const s = String(text);
  let last = 0;
  for (const m of s.matchAll(BIDI_CONTROLS)) {
    if (m.index > last) node.appendChild(document.createTextNode(s.slice(last, m.index)));
    const mark = document.createElement("span");
    mark.className = "bidi";
    mark.textContent = bidiMarker(m[0]);
    mark.title = "Invisible " + BIDI_NAMES[m[0].codePointAt(0)] + ", shown here instead of applied";
    node.appendChild(mark);
    last = m.index + m[0].length;
  }
  if (last < s.length) node.appendChild(document.createTextNode(s.slice(last)));
  return node;
}

// For attributes such as title, which cannot hold elements: the markers as text, and the
// value wrapped in an isolate so that its own strong right-to-left text stays inside it.
function plainText(text) {
  return "\u2068" + String(text).replace(BIDI_CONTROLS, bidiMarker) + "\u2069";
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) appendText(e, text);
  return e;
}

// An element showing a value from the data: isolated (app.css), so that right-to-left text in
// one value cannot reorder the labels and values around it.
function dataEl(tag, cls, value) {
  const e = el(tag, cls, value);
  e.classList.add("data");
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

function apiKey() { return sessionStorage.getItem("cairn-api-key") || ""; }

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey()) headers["DD-API-KEY"] = apiKey();
  const resp = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 403) {
    $("key-form").hidden = false;
    throw new Error("This intake needs an API key.");
  }
  if (!resp.ok) {
    // v2 APIs answer {"errors":[{"detail":…}]}, Datadog's v1 APIs {"errors":["…"]}.
    const first = data && data.errors && data.errors[0];
    const detail = typeof first === "string" ? first : first && first.detail;
    throw new Error(detail || ("HTTP " + resp.status));
  }
  return data;
}

function timeRange() {
  if (state.range === "custom") return { from: state.from, to: state.to };
  const to = Date.now();
  return { from: to - RANGES_MS[state.range], to };
}

function pad(n, w) { return String(n).padStart(w || 2, "0"); }
function fmtTime(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) +
    ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
}

function statusClass(s) { return "st-" + (STATUSES.includes(s) ? s : "other"); }

function showError(msg) {
  const box = $("query-error");
  clear(box);
  // The server's message can quote the query, which can come from a shared link.
  if (msg) appendText(box, msg);
  box.hidden = !msg;
}

// The query box is a plain input and cannot show markers, yet a shared link or a clicked tag
// can put direction controls in it; then the query is repeated below it with them marked.
function showQueryNote(query) {
  const box = $("query-note");
  clear(box);
  box.hidden = query.search(BIDI_CONTROLS) < 0;
  if (box.hidden) return;
  box.appendChild(document.createTextNode("This query holds invisible direction controls: "));
  box.appendChild(dataEl("code", null, query));
}

// ---- URL state: the query and range live in the fragment so a view can be reloaded or shared.
function saveHash() {
  const p = new URLSearchParams();
  if (state.query) p.set("q", state.query);
  if (state.range === "custom") { p.set("from", state.from); p.set("to", state.to); } else p.set("range", state.range);
  logsHash = "#" + p.toString();
  history.replaceState(null, "", logsHash);
}
function loadHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  state.query = p.get("q") || "";
  if (p.get("from") && p.get("to")) {
    state.range = "custom"; state.from = Number(p.get("from")); state.to = Number(p.get("to"));
  } else if (RANGES_MS[p.get("range")]) state.range = p.get("range");
  $("query").value = state.query;
  $("range").value = state.range;
  $("range").querySelector('option[value="custom"]').hidden = state.range !== "custom";
}

// ---- Adding filters from clicks.
function quoteValue(v) {
  return /^[A-Za-z0-9_.\/@:-]+$/.test(v) ? v : '"' + v.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}
function addFilter(term, exclude) {
  const t = (exclude ? "-" : "") + term;
  const q = $("query").value.trim();
  $("query").value = q && q !== "*" ? q + " " + t : t;
  runSearch();
}
function fieldFilter(field, value) { return field + ":" + quoteValue(value); }
function tagFilter(tag) {
  const i = tag.indexOf(":");
  if (i <= 0) return quoteValue(tag);
  return tag.slice(0, i) + ":" + quoteValue(tag.slice(i + 1));
}

// ---- Facets.
async function loadFacets(gen, filter) {
  const panel = $("facets");
  const results = await Promise.all(FACETS.map((f) =>
    api("POST", "/api/v2/logs/analytics/aggregate", { filter, group_by: [{ facet: f.facet, limit: 15 }] })
      .then((r) => r.data.buckets).catch(() => [])));
  if (gen !== state.generation) return;
  clear(panel);
  FACETS.forEach((f, i) => {
    const box = el("section", "facet");
    box.dataset.facet = f.facet;
    box.appendChild(el("h3", null, f.title));
    const ul = el("ul");
    const buckets = results[i];
    if (!buckets.length) box.appendChild(el("div", "empty", "none"));
    for (const b of buckets) {
      const value = String(b.by[f.facet]);
      const li = el("li");
      li.title = "Click to filter, Alt-click to exclude";
      li.dataset.value = value;
      li.appendChild(dataEl("span", "v", value));
      li.appendChild(el("span", "n", Number(b.computes.c0).toLocaleString()));
      li.addEventListener("click", (ev) =>
        addFilter(f.field ? fieldFilter(f.field, value) : tagFilter(value), ev.altKey));
      ul.appendChild(li);
    }
    box.appendChild(ul);
    panel.appendChild(box);
  });
}

// ---- Volume chart: stacked by status.
function pickInterval(span) {
  const ideal = span / 60;
  return INTERVALS.find((s) => s >= ideal) || INTERVALS[INTERVALS.length - 1];
}
async function loadChart(gen, filter, range) {
  const interval = pickInterval(range.to - range.from);
  const r = await api("POST", "/api/v2/logs/analytics/aggregate", {
    filter, compute: [{ aggregation: "count", type: "timeseries", interval: interval + "ms" }],
    group_by: [{ facet: "status", limit: 20 }],
  });
  if (gen !== state.generation) return;
  const start = Math.floor(range.from / interval) * interval;
  const n = Math.max(1, Math.ceil((range.to - start + 1) / interval));
  const bins = Array.from({ length: n }, () => ({}));
  let total = 0, max = 1;
  for (const b of r.data.buckets) {
    const status = b.by.status;
    for (const p of b.computes.c0 || []) {
      const i = Math.floor((Date.parse(p.time) - start) / interval);
      if (i >= 0 && i < n) { bins[i][status] = (bins[i][status] || 0) + p.value; total += p.value; }
    }
  }
  bins.forEach((bin) => { max = Math.max(max, Object.values(bin).reduce((a, c) => a + c, 0)); });
  const chart = $("chart");
  clear(chart);
  bins.forEach((bin, i) => {
    const bar = el("div", "bar");
    const t0 = start + i * interval;
    const sum = Object.values(bin).reduce((a, c) => a + c, 0);
    bar.title = fmtTime(new Date(t0).toISOString()) + "  " + sum.toLocaleString() + " logs";
    for (const s of STATUSES.concat(Object.keys(bin).filter((k) => !STATUSES.includes(k)))) {
      if (!bin[s]) continue;
      const seg = el("div", "seg " + statusClass(s));
      seg.style.height = (100 * bin[s] / max) + "%";
      bar.appendChild(seg);
    }
    bar.addEventListener("click", () => {
      state.range = "custom"; state.from = t0; state.to = t0 + interval - 1;
      $("range").querySelector('option[value="custom"]').hidden = false;
      $("range").value = "custom";
      runSearch();
    });
    chart.appendChild(bar);
  });
  $("total").textContent = total.toLocaleString() + " logs";
  $("chart-range").textContent = fmtTime(new Date(range.from).toISOString()) + " → " + fmtTime(new Date(range.to).toISOString());
}

// ---- Log list.
function logRow(log, fresh) {
  const a = log.attributes;
  const row = el("div", "row" + (fresh ? " fresh" : ""));
  row.setAttribute("role", "listitem");
  row.dataset.id = log.id;
  row.appendChild(dataEl("span", "c-time", fmtTime(a.timestamp)));
  const st = el("span", "c-status");
  st.appendChild(dataEl("span", "status " + statusClass(a.status), a.status));
  row.appendChild(st);
  row.appendChild(dataEl("span", "c-service", a.service));
  row.appendChild(dataEl("span", "c-host", a.host));
  row.appendChild(dataEl("span", "c-msg", a.message));
  row.addEventListener("click", () => showDetail(log, row));
  return row;
}

async function loadPage(gen, filter) {
  if (state.loading) return;
  state.loading = true;
  $("more").textContent = "Loading…";
  try {
    const r = await api("POST", "/api/v2/logs/events/search",
      { filter, sort: "-timestamp", page: { limit: PAGE, cursor: state.cursor || undefined } });
    if (gen !== state.generation) return;
    const list = $("list");
    for (const log of r.data) list.appendChild(logRow(log, false));
    state.cursor = r.meta.page.after || null;
    const shown = list.childElementCount;
    $("more").textContent = state.cursor && shown < MAX_ROWS ? "Scroll for more" :
      (shown ? shown.toLocaleString() + " logs shown" : "No logs match.");
  } finally {
    state.loading = false;
  }
}

function maybeLoadMore() {
  const list = $("list");
  if (!state.cursor || state.loading || state.live) return;
  if (list.scrollTop + list.clientHeight >= list.scrollHeight - 200 && list.childElementCount < MAX_ROWS) {
    loadPage(state.generation, currentFilter()).catch((e) => showError(e.message));
  }
}

// ---- Detail pane.
function valueNode(v) {
  if (v === null) return dataEl("span", "lit", "null");
  if (typeof v === "string") return dataEl("span", "str", JSON.stringify(v));
  if (typeof v === "number") return dataEl("span", "num", String(v));
  return dataEl("span", "lit", String(v));
}
function tree(obj, path) {
  const ul = el("ul", path ? null : "tree");
  const entries = Array.isArray(obj) ? obj.map((v, i) => [String(i), v]) : Object.entries(obj);
  for (const [k, v] of entries) {
    const li = el("li");
    const p = path ? path + "." + k : k;
    li.appendChild(dataEl("span", "key", k));
    li.appendChild(document.createTextNode(": "));
    if (v !== null && typeof v === "object") {
      li.appendChild(document.createTextNode(Array.isArray(v) ? "[" + v.length + "]" : "{}"));
      li.appendChild(tree(v, p));
    } else {
      li.appendChild(valueNode(v));
      if (!Array.isArray(obj)) {
        li.classList.add("leaf");
        li.title = "Click to filter on @" + plainText(p);
        li.addEventListener("click", (ev) => { ev.stopPropagation(); addFilter("@" + p + ":" + quoteValue(String(v)), ev.altKey); });
      }
    }
    ul.appendChild(li);
  }
  return ul;
}
function showDetail(log, row) {
  if (state.selected) state.selected.classList.remove("selected");
  state.selected = row;
  row.classList.add("selected");
  const a = log.attributes;
  const body = $("detail-body");
  clear(body);
  const kv = el("div", "kv");
  const source = (a.tags.find((t) => t.startsWith("source:")) || "").slice(7);
  for (const [k, v] of [["Date", fmtTime(a.timestamp)], ["Status", a.status], ["Service", a.service],
    ["Source", source], ["Host", a.host], ["ID", log.id]]) {
    kv.appendChild(el("span", "k", k));
    kv.appendChild(dataEl("span", "v", v || "—"));
  }
  body.appendChild(kv);
  body.appendChild(el("h4", null, "Message"));
  body.appendChild(dataEl("pre", "message", a.message));
  body.appendChild(el("h4", null, "Tags"));
  const chips = el("div", "chips");
  for (const t of a.tags) {
    const c = dataEl("span", "chip", t);
    c.title = "Click to filter";
    c.addEventListener("click", () => addFilter(tagFilter(t)));
    chips.appendChild(c);
  }
  body.appendChild(chips);
  body.appendChild(relatedLinks(a));
  body.appendChild(el("h4", null, "Attributes"));
  body.appendChild(Object.keys(a.attributes).length ? tree(a.attributes, "") : el("div", "empty", "none"));
  $("detail").hidden = false;
}

// The seed's "correlate": the metrics, service checks and events of this log's host and of its
// service, half an hour either side of it.
const RELATED_SPAN_MS = 30 * 60 * 1000;
function relatedLinks(a) {
  const box = el("div", "related");
  box.appendChild(el("h4", null, "Metrics and events"));
  const t = Date.parse(a.timestamp);
  for (const [field, value] of [["host", a.host], ["service", a.service]]) {
    if (!value || isNaN(t)) continue;
    const p = new URLSearchParams({ view: "metrics", scope: field + ":" + value,
      from: String(t - RELATED_SPAN_MS), to: String(t + RELATED_SPAN_MS) });
    const link = el("a", "related-link");
    link.href = "#" + p.toString();
    link.dataset.field = field;
    link.appendChild(document.createTextNode("Same " + field + " "));
    link.appendChild(dataEl("code", null, value));
    link.title = "Metrics, service checks and events of " + field + ":" + plainText(value) + " around this log";
    box.appendChild(link);
  }
  if (box.childElementCount === 1) box.appendChild(el("div", "empty", "no host or service"));
  return box;
}

// ---- Live tail.
async function pollLive(gen) {
  if (!state.live || gen !== state.generation) return;
  try {
    const p = new URLSearchParams({ query: state.query, limit: "500" });
    if (state.liveAfter) p.set("after", state.liveAfter);
    const r = await api("GET", "/api/v2/logs/events/tail?" + p.toString());
    if (gen !== state.generation || !state.live) return;
    const list = $("list");
    for (const log of r.data) list.insertBefore(logRow(log, true), list.firstChild);
    while (list.childElementCount > MAX_ROWS) list.removeChild(list.lastChild);
    state.liveAfter = r.meta.page.after || state.liveAfter;
    $("more").textContent = "Live: showing logs as they arrive";
  } catch (e) {
    showError(e.message);
  }
  state.liveTimer = setTimeout(() => pollLive(gen), 1500);
}
function setLive(on) {
  state.live = on;
  $("live").setAttribute("aria-pressed", String(on));
  clearTimeout(state.liveTimer);
  if (on) {
    state.range = "15m"; $("range").value = "15m";
    runSearch();
  }
}

// ---- Search.
function currentFilter() {
  const r = timeRange();
  return { query: state.query, from: r.from, to: r.to };
}
async function runSearch() {
  state.query = $("query").value.trim();
  if (state.range !== "custom") $("range").querySelector('option[value="custom"]').hidden = true;
  saveHash();
  const gen = ++state.generation;
  const range = timeRange();
  const filter = { query: state.query, from: range.from, to: range.to };
  state.cursor = null;
  clearTimeout(state.liveTimer);
  clear($("list"));
  $("detail").hidden = true;
  showError("");
  showQueryNote(state.query);
  try {
    await Promise.all([loadPage(gen, filter), loadChart(gen, filter, range), loadFacets(gen, filter)]);
    if (state.live && gen === state.generation) {
      const first = $("list").firstChild;
      state.liveAfter = null;
      const start = await api("GET", "/api/v2/logs/events/tail?" + new URLSearchParams({ query: state.query, limit: "1" }));
      state.liveAfter = start.meta.page.after || (first && first.dataset.id) || null;
      pollLive(gen);
    }
  } catch (e) {
    if (gen === state.generation) { showError(e.message); $("more").textContent = ""; }
  }
}

// ---- Views: the fragment's `view` picks Logs (default) or Metrics; a link or a pasted address
// that changes the fragment applies at once.
let logsHash = "";
function route() {
  const p = new URLSearchParams(location.hash.slice(1));
  const metrics = p.get("view") === "metrics";
  $("logs-view").hidden = metrics;
  $("metrics-view").hidden = !metrics;
  $("search-form").hidden = metrics;
  for (const a of document.querySelectorAll("#views a")) {
    a.setAttribute("aria-current", String(a.dataset.view === (metrics ? "metrics" : "logs")));
  }
  document.title = metrics ? "Cairn Metrics" : "Cairn Log Explorer";
  if (metrics) {
    if (state.live) setLive(false);
    $("nav-logs").href = logsHash || "#";
    openMetrics(p);
  } else {
    loadHash();
    runSearch();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); runSearch(); });
  $("range").addEventListener("change", () => { state.range = $("range").value; runSearch(); });
  $("live").addEventListener("click", () => setLive(!state.live));
  $("list").addEventListener("scroll", maybeLoadMore);
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("cairn-api-key", $("api-key").value);
    $("key-form").hidden = true;
    route();
  });
  window.addEventListener("hashchange", route);
  route();
});
