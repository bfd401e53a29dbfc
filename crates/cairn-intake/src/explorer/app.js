// Cairn Explorer, the Logs view (metrics.js holds the Metrics view, analytics.js the other
// visualisations, patterns, saved views and export). Every piece of data reaches the page
// through appendText, as text nodes, never as markup; the server's Content-Security-Policy
// forbids inline script.
"use strict";

const PAGE = 100;
// Later pages are larger: a reader who scrolls past the first hundred usually keeps going.
const NEXT_PAGE = 500;
// Rows kept in the list. Past this the page says how many more match and how to narrow.
const MAX_ROWS = 10000;
const FACETS = [
  { facet: "source", title: "Source", field: "source" },
  { facet: "service", title: "Service", field: "service" },
  { facet: "status", title: "Status", field: "status" },
  { facet: "host", title: "Host", field: "host" },
  { facet: "tags", title: "Tags", field: null },
];
const FACET_TOP = 15;
const FACET_MORE = 100;
const STATUSES = ["emerg", "alert", "critical", "error", "warn", "notice", "info", "debug", "ok"];
const RANGES_MS = { "15m": 9e5, "1h": 36e5, "4h": 144e5, "1d": 864e5, "2d": 1728e5, "7d": 6048e5 };
const PRESETS = Object.keys(RANGES_MS);
const INTERVALS = [1e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5];
const VIZ = ["list", "timeseries", "toplist", "table", "patterns"];
// While tailing, counts, chart and facets are refreshed this often (the list every poll).
const LIVE_REFRESH_MS = 5000;

const $ = (id) => document.getElementById(id);

// The view: everything a link, a history entry or a saved view restores.
const logView = { query: "", range: "15m", from: "now-15m", to: "now", facets: [], columns: [],
  viz: "list", an: {}, tz: "local" };
// The page's own working state.
const state = { cursor: null, loading: false, live: false, liveAfter: null, liveTimer: null,
  liveBefore: null, liveCount: 0, liveRefreshed: 0, generation: 0, selected: null, shownRange: null,
  total: null, moreLimit: {}, attrTypes: null, attrsMissing: false, appliedHash: null, detailLog: null };
const viewListeners = [];

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

function button(cls, text, title, onClick) {
  const b = el("button", cls, text);
  b.type = "button";
  if (title) b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

function plural(n, word) { return Number(n).toLocaleString("en-US") + " " + word + (n === 1 ? "" : "s"); }

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
    const detail = typeof first === "string" ? first : first && (first.detail || first.title);
    const err = new Error(detail || ("HTTP " + resp.status));
    err.status = resp.status;
    throw err;
  }
  return data;
}

function loadJSON(key, fallback) {
  try { const v = JSON.parse(localStorage.getItem(key)); return v === null ? fallback : v; } catch { return fallback; }
}
function saveJSON(key, v) { try { localStorage.setItem(key, JSON.stringify(v)); } catch { /* private mode */ } }

// ---- Time: bounds as the API takes them ("now-15m", epoch ms), resolved here to draw.
const UNIT_MS = { ms: 1, s: 1e3, m: 6e4, min: 6e4, h: 36e5, d: 864e5, w: 6048e5 };
function relMs(s) {
  const m = /^now(?:([+-])(\d+)(ms|s|min|m|h|d|w))?$/.exec(s);
  if (!m) return null;
  return m[1] ? (m[1] === "-" ? -1 : 1) * Number(m[2]) * UNIT_MS[m[3]] : 0;
}
// Text typed into a from/to box: now-relative stays relative; epoch ms and ISO dates become
// epoch ms. A date without a zone is read in the zone the page shows (the UTC/local toggle).
function parseBound(text) {
  const s = String(text).trim();
  if (relMs(s) !== null) return s;
  if (/^\d+$/.test(s)) return Number(s);
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i.exec(s);
  if (!m) throw new Error(`"${s}" is not a time: use now, now-2h, 2026-05-01 12:00 or 2026-05-01T12:00:00Z`);
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map((x) => Number(x || 0));
  const ms = Number(((m[7] || "") + "00").slice(0, 3));
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) throw new Error(`"${s}" is not a valid date`);
  let t;
  if (m[8]) {
    t = Date.UTC(y, mo - 1, d, h, mi, sec, ms);
    if (m[8].toUpperCase() !== "Z") {
      const z = /([+-])(\d{2}):?(\d{2})/.exec(m[8]);
      t -= (z[1] === "-" ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3])) * 6e4;
    }
  } else if (logView.tz === "utc") t = Date.UTC(y, mo - 1, d, h, mi, sec, ms);
  else t = new Date(y, mo - 1, d, h, mi, sec, ms).getTime();
  if (isNaN(t)) throw new Error(`"${s}" is not a valid date`);
  return t;
}
function resolve(bound, now) {
  if (typeof bound === "number") return bound;
  const r = relMs(String(bound));
  if (r !== null) return now + r;
  const n = Number(bound);
  return isNaN(n) ? Date.parse(bound) : n;
}
function timeRange() {
  const now = Date.now();
  return { from: resolve(logView.from, now), to: resolve(logView.to, now) };
}

function pad(n, w) { return String(n).padStart(w || 2, "0"); }
function parts(ms) {
  const d = new Date(ms);
  return logView.tz === "utc"
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
}
// Epoch ms or an ISO string, in the zone of the UTC/local toggle.
function fmtTime(t) {
  const ms = typeof t === "number" ? t : Date.parse(t);
  if (isNaN(ms)) return String(t);
  const [y, mo, d, h, mi, s, f] = parts(ms);
  return y + "-" + pad(mo) + "-" + pad(d) + " " + pad(h) + ":" + pad(mi) + ":" + pad(s) + "." + pad(f, 3);
}
function fmtInput(b) {
  if (typeof b !== "number") return String(b);
  const [y, mo, d, h, mi, s] = parts(b);
  return y + "-" + pad(mo) + "-" + pad(d) + " " + pad(h) + ":" + pad(mi) + ":" + pad(s);
}
function zoneName() {
  if (logView.tz === "utc") return "UTC";
  const off = -new Date().getTimezoneOffset();
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
  return name + " (UTC" + (off < 0 ? "−" : "+") + pad(Math.floor(Math.abs(off) / 60)) + ":" + pad(Math.abs(off) % 60) + ")";
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

// ---- Query text made from clicks. The lexer (src/query/lex.rs) ends a word at whitespace and
// ( ) [ ] { } ", and treats unescaped : * ? as syntax; a backslash makes any character literal.
const WORD_SAFE = /^[A-Za-z0-9_.\/@:-]+$/;
function quoteValue(v) {
  const s = String(v);
  return WORD_SAFE.test(s) ? s : '"' + s.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}
function escapeName(s) { return String(s).replace(/[\s()[\]{}"\\:*?]/g, (c) => "\\" + c); }
// One step of an @path: dots inside a key are escaped so that they are not read as nesting.
function escapeStep(s) { return escapeName(s).replace(/\./g, "\\."); }
// Whether the query language can name this attribute path (it has no way to write an empty
// key, nor a `"` inside one).
function pathWritable(steps) { return steps.length > 0 && steps.every((s) => s !== "" && !s.includes('"')); }
function attrField(steps) { return "@" + steps.map(escapeStep).join("."); }
function fieldFilter(field, value) { return field + ":" + quoteValue(value); }
function tagFilter(tag) {
  const i = tag.indexOf(":");
  if (i <= 0) return quoteValue(tag);
  return escapeName(tag.slice(0, i)) + ":" + quoteValue(tag.slice(i + 1));
}
// A facet name as the aggregate API takes it ("service", "@http.status", "env") → its field
// as the query writes it.
function facetField(facet) {
  if (facet.startsWith("@")) return "@" + facet.slice(1).split(".").map(escapeName).join(".");
  return escapeName(facet);
}

// The query's top-level terms (split at whitespace outside quotes, brackets and parentheses),
// so a clicked filter can be found again and removed instead of being added twice.
function splitTerms(q) {
  const out = [];
  let cur = "", depth = 0, quote = false;
  for (let i = 0; i < q.length; i++) {
    const c = q[i];
    if (c === "\\" && i + 1 < q.length) { cur += c + q[++i]; continue; }
    if (quote) { cur += c; if (c === '"') quote = false; continue; }
    if (c === '"') { quote = true; cur += c; continue; }
    if ("([{".includes(c)) depth++;
    if (")]}".includes(c)) depth = Math.max(0, depth - 1);
    if (/\s/.test(c) && depth === 0) { if (cur) out.push(cur); cur = ""; continue; }
    cur += c;
  }
  if (cur) out.push(cur);
  return out;
}
function termState(term) {
  const terms = splitTerms(logView.query);
  if (terms.includes(term)) return "on";
  if (terms.includes("-" + term)) return "off";
  return "";
}
// Click: include (or remove the inclusion); Alt-click: exclude (or remove the exclusion).
function toggleFilter(term, exclude) {
  const q = logView.query.trim();
  let terms = q && q !== "*" ? splitTerms(q) : [];
  if (terms.some((t) => t === "OR" || t === "||")) {
    // A top-level OR: removing one term would change what the rest means; AND the filter on.
    setView({ query: "(" + q + ") " + (exclude ? "-" : "") + term });
    return;
  }
  const want = (exclude ? "-" : "") + term;
  const had = terms.includes(want);
  terms = terms.filter((t) => t !== term && t !== "-" + term);
  if (!had) terms.push(want);
  setView({ query: terms.join(" ") });
}
// ANDs a fragment into the query, unless it is already one of its terms.
function filterBy(fragment) {
  const f = String(fragment).trim();
  if (!f) return;
  const q = logView.query.trim();
  const terms = q && q !== "*" ? splitTerms(q) : [];
  if (terms.includes(f)) return;
  if (terms.some((t) => t === "OR" || t === "||")) setView({ query: "(" + q + ") " + f });
  else setView({ query: terms.concat([f]).join(" ") });
}

// ---- URL state: the whole view lives in the fragment, so a view can be reloaded or shared,
// and every change is a history entry.
function viewHash(v) {
  const p = new URLSearchParams();
  if (v.query) p.set("q", v.query);
  if (v.range === "custom") { p.set("from", String(v.from)); p.set("to", String(v.to)); } else p.set("range", v.range);
  if (v.facets.length) p.set("facets", JSON.stringify(v.facets));
  if (v.columns.length) p.set("cols", JSON.stringify(v.columns));
  if (v.viz !== "list") p.set("viz", v.viz);
  if (v.an && Object.keys(v.an).length) p.set("an", JSON.stringify(v.an));
  if (v.tz === "utc") p.set("tz", "utc");
  return "#" + p.toString();
}
function strList(x) { return Array.isArray(x) ? x.filter((s) => typeof s === "string" && s) : null; }
function parseJSONParam(p, key) { try { return p.has(key) ? JSON.parse(p.get(key)) : undefined; } catch { return undefined; } }
function viewFromHash(hash) {
  const p = new URLSearchParams(hash.replace(/^#/, ""));
  const v = { query: p.get("q") || "" };
  const bound = (s) => (/^\d+$/.test(s) ? Number(s) : s);
  if (p.get("from") && p.get("to")) {
    v.range = "custom"; v.from = bound(p.get("from")); v.to = bound(p.get("to"));
  } else {
    v.range = RANGES_MS[p.get("range")] ? p.get("range") : "15m";
  }
  const facets = strList(parseJSONParam(p, "facets"));
  v.facets = facets || loadJSON("cairn-facets", []);
  const cols = strList(parseJSONParam(p, "cols"));
  v.columns = cols || loadJSON("cairn-columns", []);
  v.viz = VIZ.includes(p.get("viz")) ? p.get("viz") : "list";
  const an = parseJSONParam(p, "an");
  v.an = an && typeof an === "object" && !Array.isArray(an) ? an : {};
  v.tz = p.get("tz") === "utc" ? "utc" : (p.has("tz") ? "local" : loadJSON("cairn-tz", "local") === "utc" ? "utc" : "local");
  return v;
}
function normalise(v) {
  if (v.range !== "custom") { v.from = "now-" + v.range; v.to = "now"; }
  v.facets = [...new Set(v.facets)];
  v.columns = [...new Set(v.columns)];
}
function copyView() {
  return JSON.parse(JSON.stringify(logView));
}

// Merges into the view, shows it, and records it as a history entry.
function setView(partial, opts) {
  opts = opts || {};
  const p = Object.assign({}, partial || {});
  if (("from" in p || "to" in p) && !("range" in p)) p.range = "custom";
  const before = JSON.stringify([logView.query, logView.range, logView.from, logView.to, logView.tz]);
  const beforeViz = logView.viz, beforeFacets = JSON.stringify(logView.facets), beforeCols = JSON.stringify(logView.columns);
  Object.assign(logView, p);
  normalise(logView);
  saveJSON("cairn-facets", logView.facets);
  saveJSON("cairn-columns", logView.columns);
  saveJSON("cairn-tz", logView.tz);
  const hash = viewHash(logView);
  if (hash !== location.hash || opts.replace) {
    if (opts.replace) history.replaceState(null, "", hash); else history.pushState(null, "", hash);
  }
  state.appliedHash = location.hash;
  logsHash = hash;
  syncControls();
  // Only what changed is fetched again, so that adding a column or a facet keeps the list,
  // its scroll position and the open log.
  const searchChanged = before !== JSON.stringify([logView.query, logView.range, logView.from, logView.to, logView.tz]);
  if (searchChanged || (logView.viz === "list" && beforeViz !== "list")) { runSearch(); return; }
  if (JSON.stringify(logView.columns) !== beforeCols) rerenderRows();
  if (JSON.stringify(logView.facets) !== beforeFacets) loadFacets(state.generation, state.filter).catch(() => {});
  emitChange();
}
function rerenderRows() {
  const list = $("list");
  for (const old of [...list.children]) {
    const row = logRow(old.log, false);
    if (old === state.selected) { state.selected = row; row.classList.add("selected"); }
    list.replaceChild(row, old);
  }
}

function syncControls() {
  $("query").value = logView.query;
  const custom = logView.range === "custom";
  $("range").querySelector('option[value="custom"]').hidden = !custom;
  $("range").value = logView.range;
  $("abs").hidden = !custom && !state.absOpen;
  $("from-input").value = fmtInput(custom ? logView.from : "now-" + logView.range);
  $("to-input").value = fmtInput(custom ? logView.to : "now");
  $("tz").textContent = logView.tz === "utc" ? "UTC" : "Local";
  $("tz").title = "Times are shown in " + zoneName() + ": click for " + (logView.tz === "utc" ? "local time" : "UTC");
  $("tz").setAttribute("aria-pressed", String(logView.tz === "utc"));
  $("c-time-head").textContent = "Date (" + (logView.tz === "utc" ? "UTC" : "local") + ")";
  const list = logView.viz === "list";
  for (const id of ["list-head", "list", "more"]) $(id).hidden = !list;
  $("analytics").hidden = list;
  renderColumnHeads();
}

// ---- Facets.
function facetTitle(facet) {
  const f = FACETS.find((x) => x.facet === facet);
  return f ? f.title : facet;
}
function facetTerm(facet, value) {
  if (facet === "tags") return tagFilter(value);
  return fieldFilter(facetField(facet), value);
}
// The value of a term such as `@a:"x y"` or `env:prod`, as the lexer reads it.
function termValue(text) {
  if (text.startsWith('"') && text.endsWith('"') && text.length >= 2) return text.slice(1, -1).replace(/\\(.)/g, "$1");
  return text.replace(/\\(.)/g, "$1");
}
function excludedValues(facet) {
  const out = [];
  for (const t of splitTerms(logView.query)) {
    if (!t.startsWith("-")) continue;
    if (facet === "tags") continue;
    const prefix = "-" + facetField(facet) + ":";
    if (!t.startsWith(prefix)) continue;
    const v = termValue(t.slice(prefix.length));
    if ("-" + facetTerm(facet, v) === t) out.push(v);
  }
  return out;
}
function isNumberFacet(facet) {
  if (!facet.startsWith("@")) return false;
  const t = state.attrTypes && state.attrTypes.get(facet.slice(1));
  return t === undefined || t === "number" || t === "mixed";
}
function rangeTerm(facet, lo, hi) { return facetField(facet) + ":[" + lo + " TO " + hi + "]"; }
function currentRangeTerm(facet) {
  const prefix = facetField(facet) + ":[";
  return splitTerms(logView.query).find((t) => t.startsWith(prefix)) || null;
}

async function loadFacets(gen, filter) {
  const names = FACETS.map((f) => f.facet).concat(logView.facets);
  const results = await Promise.all(names.map((facet) => {
    const limit = state.moreLimit[facet] ? FACET_MORE : FACET_TOP;
    const top = api("POST", "/api/v2/logs/analytics/aggregate", { filter, group_by: [{ facet, limit }] })
      .then((r) => ({ buckets: r.data.buckets, limit }), (e) => ({ buckets: [], limit, error: e.message }));
    const minmax = isNumberFacet(facet)
      ? api("POST", "/api/v2/logs/analytics/aggregate", { filter, compute: [
        { aggregation: "min", metric: facet, type: "total" }, { aggregation: "max", metric: facet, type: "total" }] })
        .then((r) => { const b = r.data.buckets[0]; return b ? [b.computes.c0, b.computes.c1] : null; }, () => null)
      : Promise.resolve(null);
    return Promise.all([top, minmax]).then(([t, mm]) => Object.assign(t, { minmax: mm }));
  }));
  if (gen !== state.generation) return;
  const panel = $("facet-list");
  clear(panel);
  names.forEach((facet, i) => panel.appendChild(facetBox(facet, results[i])));
}

function facetBox(facet, res) {
  const custom = !FACETS.some((f) => f.facet === facet);
  const box = el("section", "facet" + (state.live ? " live" : ""));
  box.dataset.facet = facet;
  const h = el("h3");
  h.appendChild(dataEl("span", "facet-name", facetTitle(facet)));
  if (custom) {
    h.appendChild(button("facet-remove", "×", "Remove this facet", () =>
      setView({ facets: logView.facets.filter((f) => f !== facet) })));
  }
  box.appendChild(h);
  const mm = res.minmax;
  if (mm && typeof mm[0] === "number" && typeof mm[1] === "number") box.appendChild(rangeBox(facet, mm));
  if (res.error) box.appendChild(el("div", "empty", "unavailable: " + res.error));
  else if (!res.buckets.length) box.appendChild(el("div", "empty", "none"));
  const ul = el("ul");
  for (const b of res.buckets) {
    const raw = b.by[facet];
    if (raw === undefined || raw === null) continue;
    const value = String(raw);
    const term = facetTerm(facet, value);
    const li = el("li");
    const on = termState(term);
    if (on) li.classList.add(on === "on" ? "sel" : "excl");
    li.title = "Click to filter, click again to remove, Alt-click to exclude";
    li.dataset.value = value;
    li.appendChild(dataEl("span", "v", value));
    li.appendChild(el("span", "n", Number(b.computes.c0).toLocaleString("en-US")));
    li.addEventListener("click", (ev) => toggleFilter(term, ev.altKey));
    ul.appendChild(li);
  }
  // An excluded value has no logs left to count, but stays listed so that it can be put back.
  for (const value of excludedValues(facet)) {
    if (res.buckets.some((b) => String(b.by[facet]) === value)) continue;
    const li = el("li", "excl");
    li.title = "Excluded: click to put it back";
    li.dataset.value = value;
    li.appendChild(dataEl("span", "v", value));
    li.appendChild(el("span", "n", "excluded"));
    li.addEventListener("click", () => toggleFilter(facetTerm(facet, value), true));
    ul.appendChild(li);
  }
  box.appendChild(ul);
  if (res.buckets.length >= res.limit && res.limit < FACET_MORE) {
    box.appendChild(button("facet-more", "Show more", "Show up to " + FACET_MORE + " values", () => {
      state.moreLimit[facet] = true;
      loadFacets(state.generation, currentFilter()).catch(() => {});
    }));
  } else if (state.moreLimit[facet]) {
    box.appendChild(button("facet-more", "Show less", null, () => {
      delete state.moreLimit[facet];
      loadFacets(state.generation, currentFilter()).catch(() => {});
    }));
  }
  return box;
}

// A numeric facet: min/max prefilled from the current query's values (or the range already in
// the query), applied as `@x:[a TO b]`.
function rangeBox(facet, mm) {
  const box = el("form", "range");
  let lo = mm[0], hi = mm[1];
  const cur = currentRangeTerm(facet);
  const m = cur && /:\[(\S+) TO (\S+)\]$/.exec(cur);
  if (m) { lo = m[1] === "*" ? lo : Number(m[1]); hi = m[2] === "*" ? hi : Number(m[2]); }
  const step = Number.isInteger(mm[0]) && Number.isInteger(mm[1]) ? "1" : "any";
  const mk = (cls, v, label) => {
    const i = el("input", cls);
    i.type = "number"; i.step = step; i.value = String(v); i.setAttribute("aria-label", label + " of " + plainText(facet));
    return i;
  };
  const min = mk("rmin", lo, "minimum"), max = mk("rmax", hi, "maximum");
  const slider = el("input", "rslider");
  slider.type = "range"; slider.min = String(mm[0]); slider.max = String(mm[1]); slider.step = step;
  slider.value = String(hi);
  slider.setAttribute("aria-label", "maximum of " + plainText(facet));
  slider.addEventListener("input", () => { max.value = slider.value; });
  box.appendChild(min);
  box.appendChild(el("span", "rto", "–"));
  box.appendChild(max);
  box.appendChild(slider);
  const apply = el("button", "rapply", "Apply");
  apply.type = "submit";
  box.appendChild(apply);
  if (cur) box.appendChild(button("rclear", "Clear", "Remove this range from the query", () =>
    setView({ query: splitTerms(logView.query).filter((t) => t !== cur).join(" ") })));
  box.appendChild(el("div", "rbounds", "values " + mm[0] + " to " + mm[1]));
  box.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const a = Number(min.value), b = Number(max.value);
    if (min.value === "" || max.value === "" || !isFinite(a) || !isFinite(b)) return;
    const terms = splitTerms(logView.query).filter((t) => t !== cur);
    terms.push(rangeTerm(facet, Math.min(a, b), Math.max(a, b)));
    setView({ query: terms.join(" ") });
  });
  return box;
}

function addFacet(name) {
  let f = String(name).trim();
  if (!f) return;
  if (f.startsWith("@") && f.length === 1) return;
  if (!f.startsWith("@") && state.attrTypes && state.attrTypes.has(f)) f = "@" + f;
  if (FACETS.some((x) => x.facet === f) || logView.facets.includes(f)) return;
  setView({ facets: logView.facets.concat([f]) });
}

// Known attribute paths for "add facet" (GET /api/v2/logs/attributes); without that endpoint
// any path can still be typed.
let attrTimer = null;
async function loadAttributes(prefix) {
  if (state.attrsMissing) return;
  try {
    const r = await api("GET", "/api/v2/logs/attributes?" + new URLSearchParams({ prefix, limit: "100" }));
    const dl = $("facet-suggest");
    clear(dl);
    if (!state.attrTypes) state.attrTypes = new Map();
    for (const a of r.data || []) {
      state.attrTypes.set(a.path, a.type);
      // A suggestion is shown by the browser as it is, so one holding a direction control
      // (which it would obey) is left out; such a path can still be typed.
      if (String(a.path).search(BIDI_CONTROLS) >= 0) continue;
      const o = document.createElement("option");
      o.value = "@" + a.path;
      o.label = a.type + (a.count !== undefined ? " · " + Number(a.count).toLocaleString("en-US") : "");
      dl.appendChild(o);
    }
  } catch (e) {
    if (e.status === 404 || e.status === 405) {
      state.attrsMissing = true;
      $("facet-add-note").textContent = "No attribute suggestions on this intake: type a path such as @http.status";
      $("facet-add-note").hidden = false;
    }
  }
}

// ---- Volume chart: stacked by status, with a count axis and a time axis.
function pickInterval(span) {
  const ideal = span / 60;
  return INTERVALS.find((s) => s >= ideal) || INTERVALS[INTERVALS.length - 1];
}
function countStep(max, n) {
  const raw = max / n;
  const mag = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
  return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || mag * 10;
}
const TIME_STEPS = [1e3, 5e3, 15e3, 3e4, 6e4, 3e5, 9e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5];
function timeLabel(ms, span) {
  const [, mo, d, h, mi, s] = parts(ms);
  if (span <= 3e5) return pad(h) + ":" + pad(mi) + ":" + pad(s);
  if (span <= 864e5 * 1.5) return pad(h) + ":" + pad(mi);
  return pad(mo) + "-" + pad(d) + " " + pad(h) + ":" + pad(mi);
}
function clearChart() {
  clear($("chart")); clear($("chart-y")); clear($("chart-x")); $("chart-axes").textContent = "";
  $("total").textContent = ""; $("chart-range").textContent = "";
  state.total = null;
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
  let total = 0, max = 0;
  for (const b of r.data.buckets) {
    const status = b.by.status;
    for (const p of b.computes.c0 || []) {
      const i = Math.floor((Date.parse(p.time) - start) / interval);
      if (i >= 0 && i < n) { bins[i][status] = (bins[i][status] || 0) + p.value; total += p.value; }
    }
  }
  bins.forEach((bin) => { max = Math.max(max, Object.values(bin).reduce((a, c) => a + c, 0)); });
  const step = countStep(Math.max(max, 1), 2);
  const top = Math.max(step, Math.ceil(Math.max(max, 1) / step) * step);
  const chart = $("chart");
  clear(chart);
  bins.forEach((bin, i) => {
    const bar = el("div", "bar");
    const t0 = start + i * interval;
    const sum = Object.values(bin).reduce((a, c) => a + c, 0);
    bar.title = fmtTime(t0) + "  " + plural(sum, "log");
    for (const s of STATUSES.concat(Object.keys(bin).filter((k) => !STATUSES.includes(k)))) {
      if (!bin[s]) continue;
      const seg = el("div", "seg " + statusClass(s));
      seg.style.height = (100 * bin[s] / top) + "%";
      bar.appendChild(seg);
    }
    bar.addEventListener("click", () => setView({ range: "custom", from: t0, to: t0 + interval - 1 }));
    chart.appendChild(bar);
  });
  // Count axis: 0, the nice steps, the top; labelled in logs.
  const y = $("chart-y");
  clear(y);
  for (let v = 0; v <= top; v += step) {
    const t = el("span", "tick", v.toLocaleString("en-US"));
    t.style.bottom = (100 * v / top) + "%";
    y.appendChild(t);
  }

  // Time axis: ticks on round times of the shown zone.
  const x = $("chart-x");
  clear(x);
  const span = range.to - range.from;
  const tstep = TIME_STEPS.find((s) => s >= span / 7) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = logView.tz === "utc" ? 0 : new Date(range.from).getTimezoneOffset() * 60000;
  const end = start + n * interval;
  for (let t = Math.ceil((start - offset) / tstep) * tstep + offset; t <= end; t += tstep) {
    const at = (t - start) / (end - start);
    // A label cut by the chart's edge says nothing.
    if (at < 0.02 || at > 0.97) continue;
    const tick = el("span", "tick", timeLabel(t, span));
    tick.style.left = (100 * at) + "%";
    x.appendChild(tick);
  }
  $("chart-axes").textContent = "Bars: logs per " + fmtSpan(interval) + " · time in " + zoneName();
  state.total = total;
  $("total").textContent = plural(total, "log");
  $("chart-range").textContent = fmtTime(range.from) + " → " + fmtTime(range.to);
  updateMore();
}
function fmtSpan(ms) {
  for (const [u, v] of [["d", 864e5], ["h", 36e5], ["m", 6e4], ["s", 1e3]]) if (ms >= v && ms % v === 0) return ms / v + u;
  return ms + "ms";
}

// ---- Log list, with the columns the reader added.
function columnValue(log, col) {
  const a = log.attributes;
  if (!col.startsWith("@")) {
    if (["service", "host", "status", "message"].includes(col)) return a[col];
    const pre = col + ":";
    const t = (a.tags || []).find((x) => x.startsWith(pre));
    return t === undefined ? undefined : t.slice(pre.length);
  }
  let v = a.attributes;
  for (const step of col.slice(1).split(".")) {
    if (v === null || typeof v !== "object" || !(step in v)) return undefined;
    v = v[step];
  }
  return v;
}
function gridColumns() {
  return "190px 70px 140px 120px " + logView.columns.map(() => "minmax(80px, 160px) ").join("") + "1fr";
}
function renderColumnHeads() {
  const head = $("list-head");
  for (const c of [...head.querySelectorAll(".c-extra")]) c.remove();
  const msg = head.querySelector(".c-msg");
  for (const col of logView.columns) {
    const h = el("span", "c-extra");
    h.dataset.col = col;
    h.appendChild(dataEl("span", "col-name", col));
    h.appendChild(button("col-remove", "×", "Remove this column", () =>
      setView({ columns: logView.columns.filter((c) => c !== col) })));
    head.insertBefore(h, msg);
  }
  document.documentElement.style.setProperty("--list-cols", gridColumns());
}

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
  for (const col of logView.columns) {
    const v = columnValue(log, col);
    const cell = dataEl("span", "c-extra", v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
    cell.dataset.col = col;
    row.appendChild(cell);
  }
  row.appendChild(dataEl("span", "c-msg", a.message));
  row.log = log;
  row.addEventListener("click", () => { select(row); showDetail(log); });
  return row;
}

function updateMore() {
  if (state.live || logView.viz !== "list") return;
  const shown = $("list").childElementCount;
  const more = $("more");
  if (state.loading) return;
  if (!shown) { more.textContent = "No logs match."; return; }
  if (state.cursor && shown < MAX_ROWS) { more.textContent = plural(shown, "log") + " shown: scroll for more"; return; }
  if (state.cursor && shown >= MAX_ROWS) {
    const rest = state.total !== null && state.total > shown ? state.total - shown : null;
    more.textContent = shown.toLocaleString("en-US") + " logs shown, the most this page lists" +
      (rest !== null ? ": " + plural(rest, "more log") + " match" : ": more match") +
      ". Narrow the query, or click the chart to zoom into a shorter time range.";
    return;
  }
  more.textContent = (shown === 1 ? "1 log" : "All " + plural(shown, "log")) + " shown";
}

async function loadPage(gen, filter) {
  if (state.loading) return;
  state.loading = true;
  $("more").textContent = "Loading…";
  try {
    const first = !state.cursor;
    const r = await api("POST", "/api/v2/logs/events/search",
      { filter, sort: "-timestamp", page: { limit: first ? PAGE : NEXT_PAGE, cursor: state.cursor || undefined } });
    if (gen !== state.generation) return;
    const list = $("list");
    const room = MAX_ROWS - list.childElementCount;
    for (const log of r.data.slice(0, room)) list.appendChild(logRow(log, false));
    state.cursor = r.meta.page.after || null;
  } finally {
    state.loading = false;
  }
  if (gen === state.generation) { updateMore(); maybeLoadMore(); }
}

function maybeLoadMore() {
  const list = $("list");
  if (!state.cursor || state.loading || state.live || logView.viz !== "list") return;
  if (list.scrollTop + list.clientHeight >= list.scrollHeight - 400 && list.childElementCount < MAX_ROWS) {
    loadPage(state.generation, state.filter).catch((e) => showError(e.message));
  }
}

// ---- Selection and keyboard.
function select(row) {
  if (state.selected) state.selected.classList.remove("selected");
  state.selected = row;
  if (row) { row.classList.add("selected"); row.scrollIntoView({ block: "nearest" }); }
}
function moveSelection(delta) {
  const list = $("list");
  const cur = state.selected && state.selected.parentNode === list ? state.selected : null;
  const next = cur ? (delta > 0 ? cur.nextElementSibling : cur.previousElementSibling) : list.firstElementChild;
  if (!next) return;
  select(next);
  if (!$("detail").hidden) showDetail(next.log);
  if (delta > 0) maybeLoadMore();
}
function onKey(ev) {
  if ($("logs-view").hidden) return;
  const t = ev.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) {
    if (ev.key === "Escape") t.blur();
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  // Enter and the arrows on a focused control are that control's.
  if (t && t !== document.body && t.closest && t.closest("button, a, summary, [role=listbox]") && ev.key !== "Escape") return;
  if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); moveSelection(1); } else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); moveSelection(-1); } else if (ev.key === "Enter" && state.selected && state.selected.log) { ev.preventDefault(); showDetail(state.selected.log); } else if (ev.key === "Escape") closeDetail();
}

// ---- Detail pane.
function filterAction(node, term, what) {
  node.classList.add("clickable");
  node.title = "Click to filter on " + plainText(what) + ", Alt-click to exclude";
  node.addEventListener("click", (ev) => { ev.stopPropagation(); toggleFilter(term, ev.altKey); });
}
function valueNode(v) {
  if (v === null) return dataEl("span", "lit", "null");
  // A string as it is, line breaks and all (app.css keeps them), between visible quotes.
  if (typeof v === "string") return dataEl("span", "str", '"' + v + '"');
  if (typeof v === "number") return dataEl("span", "num", String(v));
  return dataEl("span", "lit", String(v));
}
function leafActions(steps) {
  const box = el("span", "acts");
  const facet = "@" + steps.join(".");
  box.appendChild(button("act add-facet", "facet", "Add @" + plainText(steps.join(".")) + " as a facet", (ev) => {
    ev.stopPropagation(); addFacet(facet);
  }));
  box.appendChild(button("act add-column", "column", "Add @" + plainText(steps.join(".")) + " as a list column", (ev) => {
    ev.stopPropagation();
    if (!logView.columns.includes(facet)) setView({ columns: logView.columns.concat([facet]) });
  }));
  return box;
}
// `steps` is the path to `obj`; `queryable` is false below an array element, which the query
// language cannot address (an array attribute matches when any of its elements does).
function tree(obj, steps, queryable) {
  const ul = el("ul", steps.length ? null : "tree");
  const isArr = Array.isArray(obj);
  const entries = isArr ? obj.map((v, i) => [String(i), v]) : Object.entries(obj);
  for (const [k, v] of entries) {
    const li = el("li");
    const here = isArr ? steps : steps.concat([k]);
    const ok = queryable && pathWritable(here);
    const key = dataEl("span", "key" + (isArr ? " idx" : ""), !isArr && k === "" ? '""' : k);
    li.appendChild(key);
    li.appendChild(document.createTextNode(": "));
    const name = "@" + here.join(".");
    if (ok && !isArr) filterAction(key, attrField(here) + ":*", name + " being present");
    if (v !== null && typeof v === "object") {
      li.appendChild(document.createTextNode(Array.isArray(v) ? "[" + v.length + "]" : "{}"));
      li.appendChild(tree(v, here, ok && !isArr));
    } else {
      const val = valueNode(v);
      li.appendChild(val);
      li.classList.add("leaf");
      if (ok) {
        // The query language has no way to ask for a JSON null; the key being there is the
        // closest it gets.
        const term = v === null ? attrField(here) + ":*" : fieldFilter(attrField(here), String(v));
        li.dataset.path = here.join(".");
        li.dataset.filter = term;
        filterAction(val, term, term);
        li.addEventListener("click", (ev) => { ev.stopPropagation(); toggleFilter(term, ev.altKey); });
        if (!isArr) li.appendChild(leafActions(here));
        li.title = "Click to filter on @" + plainText(here.join("."));
      } else {
        li.classList.add("nofilter");
        li.title = queryable ? "The query language cannot name this key (it is empty or holds a double quote)" :
          "Inside an array element: filter on the array's values instead";
      }
    }
    ul.appendChild(li);
  }
  return ul;
}

function closeDetail() {
  $("detail").hidden = true;
  state.detailLog = null;
}
async function copyJSON(log) {
  const text = JSON.stringify(log, null, 2);
  let ok = false;
  try { await navigator.clipboard.writeText(text); ok = true; } catch {
    const ta = el("textarea");
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    try { ok = document.execCommand("copy"); } catch { ok = false; }
    ta.remove();
  }
  $("copy-note").textContent = ok ? "Copied" : "Copy failed";
  setTimeout(() => { $("copy-note").textContent = ""; }, 2000);
}

function showDetail(log) {
  state.detailLog = log;
  const a = log.attributes;
  const body = $("detail-body");
  clear(body);
  const bar = el("div", "detail-actions");
  bar.appendChild(button("", "Copy as JSON", "Copy this log as JSON", () => copyJSON(log)));
  bar.lastChild.id = "copy-json";
  bar.appendChild(button("", "View in context", "The logs just before and after this one from the same host and service", () => viewContext(log)));
  bar.lastChild.id = "view-context";
  const note = el("span", "note");
  note.id = "copy-note";
  note.setAttribute("role", "status");
  bar.appendChild(note);
  body.appendChild(bar);
  const kv = el("div", "kv");
  const source = (a.tags.find((t) => t.startsWith("source:")) || "").slice(7);
  for (const [k, v, field] of [["Date", fmtTime(a.timestamp)], ["Status", a.status, "status"], ["Service", a.service, "service"],
    ["Source", source, "source"], ["Host", a.host, "host"], ["ID", log.id]]) {
    kv.appendChild(el("span", "k", k));
    const val = dataEl("span", "v", v || "—");
    if (field && v) filterAction(val, fieldFilter(field, v), field + ":" + v);
    kv.appendChild(val);
  }
  body.appendChild(kv);
  body.appendChild(el("h4", null, "Message"));
  body.appendChild(dataEl("pre", "message", a.message));
  body.appendChild(el("h4", null, "Tags"));
  const chips = el("div", "chips");
  for (const t of a.tags) {
    const c = dataEl("span", "chip", t);
    c.title = "Click to filter, Alt-click to exclude";
    c.addEventListener("click", (ev) => toggleFilter(tagFilter(t), ev.altKey));
    chips.appendChild(c);
  }
  body.appendChild(chips);
  const ctx = el("div", "context");
  ctx.id = "context";
  ctx.hidden = true;
  body.appendChild(ctx);
  body.appendChild(relatedLinks(a));
  const processed = pipelineNote(a.attributes);
  if (processed) body.appendChild(processed);
  body.appendChild(el("h4", null, "Attributes"));
  body.appendChild(Object.keys(a.attributes).length ? tree(a.attributes, [], true) : el("div", "empty", "none"));
  $("detail").hidden = false;
}

// Which pipelines and processors of the intake changed this log before it was stored (the
// intake records them under `_cairn`), and the error that made it keep the log as it arrived.
function pipelineNote(attrs) {
  const marks = attrs && attrs._cairn;
  if (!marks || typeof marks !== "object") return null;
  const steps = Array.isArray(marks.pipelines) ? marks.pipelines : [];
  const err = marks.pipeline_error;
  if (!steps.length && !err) return null;
  const box = el("div", "processed");
  box.id = "processed";
  box.appendChild(el("h4", null, "Processed by"));
  const ul = el("ul", "steps");
  for (const s of steps) {
    const li = el("li");
    const link = el("a", null);
    link.href = "#view=pipelines";
    appendText(link, String(s && s.pipeline));
    li.appendChild(link);
    const procs = Array.isArray(s && s.processors) ? s.processors : [];
    li.appendChild(el("span", "note", procs.length ? " › " + procs.join(", ") : " (matched; nothing changed)"));
    ul.appendChild(li);
  }
  box.appendChild(ul);
  if (err) box.appendChild(dataEl("div", "pl-err", "Pipeline error, stored as it arrived: " + err));
  return box;
}

// The logs around this one from its host and service, ignoring the query (GET …/context).
async function viewContext(log) {
  const box = $("context");
  clear(box);
  box.hidden = false;
  box.appendChild(el("h4", null, "In context: same host and service"));
  const status = el("div", "note", "Loading…");
  box.appendChild(status);
  let r;
  try {
    r = await api("GET", "/api/v2/logs/events/" + encodeURIComponent(log.id) + "/context?before=25&after=25");
  } catch (e) {
    status.textContent = e.status === 404 ? "This intake cannot show logs in context (or no longer holds this log)." : e.message;
    return;
  }
  if (state.detailLog !== log) return;
  status.remove();
  const list = el("div", "ctx-list");
  list.setAttribute("role", "list");
  const d = r.data || {};
  const add = (l, cls) => {
    const row = el("div", "ctx-row " + cls);
    row.setAttribute("role", "listitem");
    row.dataset.id = l.id;
    row.appendChild(dataEl("span", "c-time", fmtTime(l.attributes.timestamp)));
    const st = el("span", "c-status");
    st.appendChild(dataEl("span", "status " + statusClass(l.attributes.status), l.attributes.status));
    row.appendChild(st);
    row.appendChild(dataEl("span", "c-msg", l.attributes.message));
    if (cls !== "self") row.addEventListener("click", () => showDetail(l));
    list.appendChild(row);
    return row;
  };
  for (const l of d.before || []) add(l, "before");
  const self = add(d.log || log, "self");
  for (const l of d.after || []) add(l, "after");
  box.appendChild(el("div", "note", plural((d.before || []).length, "log") + " before, " + plural((d.after || []).length, "log") + " after"));
  box.appendChild(list);
  self.scrollIntoView({ block: "center" });
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

// ---- Live tail: the list grows as logs arrive; counts, chart and facets follow every few
// seconds over the past 15 minutes; stopping puts back the range the reader had.
async function pollLive(gen) {
  if (!state.live || gen !== state.generation) return;
  try {
    const p = new URLSearchParams({ query: logView.query, limit: "500" });
    if (state.liveAfter) p.set("after", state.liveAfter);
    const r = await api("GET", "/api/v2/logs/events/tail?" + p.toString());
    if (gen !== state.generation || !state.live) return;
    const list = $("list");
    for (const log of r.data) list.insertBefore(logRow(log, true), list.firstChild);
    while (list.childElementCount > MAX_ROWS) list.removeChild(list.lastChild);
    state.liveCount += r.data.length;
    state.liveAfter = r.meta.page.after || state.liveAfter;
    $("more").textContent = "Live: showing logs as they arrive (" + plural(state.liveCount, "new log") + " so far)";
    if (Date.now() - state.liveRefreshed >= LIVE_REFRESH_MS) {
      state.liveRefreshed = Date.now();
      const range = timeRange();
      const filter = { query: logView.query, from: range.from, to: range.to };
      state.filter = filter;
      await Promise.all([loadChart(gen, filter, range), loadFacets(gen, filter)]);
      if (gen === state.generation && state.live) emitChange();
    }
  } catch (e) {
    showError(e.message);
  }
  if (gen === state.generation && state.live) state.liveTimer = setTimeout(() => pollLive(gen), 1500);
}
function setLive(on) {
  if (on === state.live) return;
  clearTimeout(state.liveTimer);
  $("live").setAttribute("aria-pressed", String(on));
  document.body.classList.toggle("tailing", on);
  if (on) {
    state.liveBefore = { range: logView.range, from: logView.from, to: logView.to };
    state.live = true;
    state.liveCount = 0;
    Object.assign(logView, { range: "15m" });
    normalise(logView);
    syncControls();
    runSearch();
  } else {
    state.live = false;
    const before = state.liveBefore;
    state.liveBefore = null;
    const received = state.liveCount;
    if (before) Object.assign(logView, before);
    normalise(logView);
    syncControls();
    runSearch().then(() => {
      const more = $("more");
      more.textContent = "Live tail stopped after " + plural(received, "new log") + ". " + more.textContent;
    });
  }
}

// ---- Search.
function currentFilter() {
  const r = timeRange();
  return { query: logView.query, from: r.from, to: r.to };
}
function emitChange() {
  const s = copyView();
  for (const fn of viewListeners) { try { fn(s); } catch (e) { console.error(e); } }
}
async function runSearch() {
  if (state.live) clearTimeout(state.liveTimer);
  const gen = ++state.generation;
  const range = timeRange();
  const filter = { query: logView.query, from: range.from, to: range.to };
  state.filter = filter;
  state.shownRange = range;
  state.cursor = null;
  state.loading = false;
  state.selected = null;
  clear($("list"));
  closeDetail();
  showError("");
  showQueryNote(logView.query);
  emitChange();
  if (isNaN(range.from) || isNaN(range.to)) { clearChart(); showError("The time range is not valid."); return; }
  try {
    const jobs = [loadChart(gen, filter, range)];
    if (logView.viz === "list") jobs.push(loadPage(gen, filter));
    // Facets start once the list and chart are drawn: on a big store a host or tag facet has
    // to scan, and it must not hold up the first paint (nor take the browser's connections).
    jobs.push(Promise.allSettled(jobs.slice()).then(() => (gen === state.generation ? loadFacets(gen, filter) : null)));
    await Promise.all(jobs);
    if (state.live && gen === state.generation) {
      state.liveAfter = null;
      state.liveRefreshed = Date.now();
      const first = $("list").firstChild;
      const start = await api("GET", "/api/v2/logs/events/tail?" + new URLSearchParams({ query: logView.query, limit: "1" }));
      state.liveAfter = start.meta.page.after || (first && first.dataset.id) || null;
      pollLive(gen);
    }
  } catch (e) {
    if (gen === state.generation) {
      // What was drawn belongs to the previous query: it must not stand next to this error,
      // and nothing still loading for this query may draw it again.
      state.generation++;
      showError(e.message);
      clearChart();
      clear($("list"));
      clear($("facet-list"));
      $("more").textContent = "";
    }
  }
}

// ---- Time controls.
function zoomOut() {
  const i = PRESETS.indexOf(logView.range);
  if (i >= 0 && i < PRESETS.length - 1) { setView({ range: PRESETS[i + 1] }); return; }
  const now = Date.now();
  const r = timeRange();
  const span = Math.max(1000, r.to - r.from);
  if (String(logView.to) === "now" || logView.range !== "custom") {
    setView({ range: "custom", from: "now-" + Math.round(2 * span / 6e4) + "m", to: "now" });
    return;
  }
  let from = r.from - span / 2, to = r.to + span / 2;
  if (to > now) { from -= to - now; to = now; }
  setView({ range: "custom", from: Math.round(from), to: Math.round(to) });
}
function applyAbsolute() {
  let from, to;
  try {
    from = parseBound($("from-input").value);
    to = parseBound($("to-input").value);
  } catch (e) { showError(e.message); return false; }
  const now = Date.now();
  if (resolve(from, now) > resolve(to, now)) { showError("The range starts after it ends: from must be before to."); return false; }
  const preset = PRESETS.find((p) => from === "now-" + p) && to === "now" ? PRESETS.find((p) => from === "now-" + p) : null;
  setView(preset ? { query: $("query").value.trim(), range: preset } : { query: $("query").value.trim(), range: "custom", from, to });
  return true;
}

// ---- Theme: follows prefers-color-scheme until the reader picks one, which is kept.
const THEMES = ["auto", "light", "dark"];
function applyTheme(t) {
  if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
  const b = $("theme");
  if (b) {
    b.textContent = t === "dark" ? "Dark" : t === "light" ? "Light" : "Auto";
    b.title = "Theme: " + (t === "auto" ? "follows the system" : t) + " (click to change)";
    b.dataset.theme = t;
  }
}
function currentTheme() { const t = loadJSON("cairn-theme", "auto"); return THEMES.includes(t) ? t : "auto"; }
applyTheme(currentTheme());

// ---- Views: the fragment's `view` picks Logs (default), Metrics, Pipelines or Monitors; a link
// or a pasted address that changes the fragment applies at once, and Back/Forward restore each
// view. The other scripts register how to open their view (`CairnExplorer.view`).
let logsHash = "";
const VIEW_TITLES = { logs: "Cairn Log Explorer", metrics: "Cairn Metrics", pipelines: "Cairn Pipelines",
  monitors: "Cairn Monitors" };
const viewOpeners = { metrics: (p) => openMetrics(p) };
// Set by the first route(); a view registered after it opens itself (see `view` below).
let routed = false;
function route() {
  routed = true;
  const p = new URLSearchParams(location.hash.slice(1));
  const name = Object.hasOwn(VIEW_TITLES, p.get("view")) ? p.get("view") : "logs";
  for (const v of Object.keys(VIEW_TITLES)) $(v + "-view").hidden = v !== name;
  $("search-form").hidden = name !== "logs";
  for (const a of document.querySelectorAll("#views a")) {
    a.setAttribute("aria-current", String(a.dataset.view === name));
  }
  document.title = VIEW_TITLES[name];
  if (name !== "logs") {
    if (state.live) setLive(false);
    $("nav-logs").href = logsHash || "#";
    state.appliedHash = location.hash;
    if (viewOpeners[name]) viewOpeners[name](p);
    return;
  }
  if (state.appliedHash === location.hash && state.generation) return;
  if (state.live) { state.live = false; state.liveBefore = null; clearTimeout(state.liveTimer); $("live").setAttribute("aria-pressed", "false"); document.body.classList.remove("tailing"); }
  const v = viewFromHash(location.hash);
  Object.assign(logView, v);
  normalise(logView);
  saveJSON("cairn-facets", logView.facets);
  saveJSON("cairn-columns", logView.columns);
  const hash = viewHash(logView);
  logsHash = hash;
  // The first visit (or an old link) is rewritten to the full form without a new entry.
  if (hash !== location.hash) history.replaceState(null, "", hash);
  state.appliedHash = location.hash;
  syncControls();
  runSearch();
}

window.CairnExplorer = {
  state: copyView,
  set: setView,
  api,
  // A listener that comes after the first view was applied (from a DOMContentLoaded handler
  // that runs after this script's) still hears about it once.
  on(event, fn) {
    if (event !== "change" || typeof fn !== "function") return;
    viewListeners.push(fn);
    if (state.generation > 0) queueMicrotask(() => { try { fn(copyView()); } catch (e) { console.error(e); } });
  },
  fmtTime,
  filterBy,
  // Another script's view: `open(params)` runs each time the fragment selects it.
  view(name, open) {
    if (!Object.hasOwn(VIEW_TITLES, name) || typeof open !== "function") return;
    viewOpeners[name] = open;
    // Scripts register from their own DOMContentLoaded handlers, which run after app.js's
    // first route(): a page opened on this view (a bookmark, a reload) would stay empty.
    const p = new URLSearchParams(location.hash.slice(1));
    if (routed && p.get("view") === name) queueMicrotask(() => { try { open(p); } catch (e) { console.error(e); } });
  },
};

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!$("abs").hidden) { applyAbsolute(); return; }
    setView({ query: $("query").value.trim() });
  });
  $("range").addEventListener("change", () => {
    state.absOpen = false;
    if ($("range").value !== "custom") setView({ query: $("query").value.trim(), range: $("range").value });
  });
  $("abs-toggle").addEventListener("click", () => {
    state.absOpen = $("abs").hidden;
    $("abs").hidden = !state.absOpen && logView.range !== "custom";
    if (!$("abs").hidden) $("from-input").focus();
  });
  $("zoom-out").addEventListener("click", zoomOut);
  $("tz").addEventListener("click", () => setView({ tz: logView.tz === "utc" ? "local" : "utc" }));
  $("theme").addEventListener("click", () => {
    const next = THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length];
    saveJSON("cairn-theme", next);
    applyTheme(next);
  });
  applyTheme(currentTheme());
  $("live").addEventListener("click", () => setLive(!state.live));
  $("create-monitor").addEventListener("click", () => {
    const p = new URLSearchParams({ view: "monitors", new: "1", q: $("query").value.trim() });
    location.hash = "#" + p.toString();
  });
  $("list").addEventListener("scroll", maybeLoadMore);
  $("detail-close").addEventListener("click", closeDetail);
  $("facet-add").addEventListener("submit", (ev) => {
    ev.preventDefault();
    addFacet($("facet-input").value);
    $("facet-input").value = "";
  });
  $("facet-input").addEventListener("focus", () => loadAttributes($("facet-input").value.replace(/^@/, "")));
  $("facet-input").addEventListener("input", () => {
    clearTimeout(attrTimer);
    attrTimer = setTimeout(() => loadAttributes($("facet-input").value.replace(/^@/, "")), 150);
  });
  document.addEventListener("keydown", onKey);
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("cairn-api-key", $("api-key").value);
    $("key-form").hidden = true;
    state.appliedHash = null;
    route();
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("popstate", route);
  // Types of known attributes decide which facets get a range; fetched once, quietly.
  loadAttributes("");
  route();
});
