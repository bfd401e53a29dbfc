// Cairn Explorer: the other ways to look at the current query (timeseries, top list, table,
// patterns), saved views and export. It works only through window.CairnExplorer (app.js), keeps
// its own settings in the view's `an`, fills #viz-bar and renders into #analytics. Every value
// from the data reaches the page as text nodes, never as markup.
"use strict";
(() => {
  const X = window.CairnExplorer;
  if (!X) return;

  const VIZ = [["list", "List"], ["timeseries", "Timeseries"], ["toplist", "Top list"], ["table", "Table"], ["patterns", "Patterns"]];
  const AGGS = ["count", "avg", "sum", "min", "max", "median", "pc75", "pc90", "pc95", "pc99", "cardinality"];
  const INTERVALS = [["", "auto"], ["10s", "10 s"], ["1m", "1 min"], ["5m", "5 min"], ["15m", "15 min"], ["1h", "1 h"], ["1d", "1 day"]];
  const LIMITS = [5, 10, 25, 50, 100];
  const BASE_FACETS = ["service", "source", "status", "host", "tags"];
  // Series are told apart by theme colour first, then by dash, so dark mode needs nothing more.
  const COLORS = ["--accent", "--info", "--ok", "--warn", "--error"];
  const DASHES = ["", "7 4", "2 3"];
  const MAX_DOTS = 120;
  const PATTERN_LIMIT = 100000;
  const EXPORT_LIMIT = 100000;
  const SVG = "http://www.w3.org/2000/svg";
  const DEFAULT_AN = { agg: "count", measure: "", by: [], limit: 10, interval: "" };

  // ---- Text: the same rule as app.js, direction controls shown as markers, never applied.
  const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
  const marker = (c) => "<U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + ">";
  function appendText(node, text) {
    const s = String(text);
    let last = 0;
    for (const m of s.matchAll(BIDI)) {
      if (m.index > last) node.appendChild(document.createTextNode(s.slice(last, m.index)));
      const b = document.createElement("span");
      b.className = "bidi";
      b.textContent = marker(m[0]);
      node.appendChild(b);
      last = m.index + m[0].length;
    }
    if (last < s.length) node.appendChild(document.createTextNode(s.slice(last)));
    return node;
  }
  // For attributes, which cannot hold elements: markers as text, the value in an isolate.
  const plain = (text) => "\u2068" + String(text).replace(BIDI, marker) + "\u2069";
  // For text nodes that cannot hold elements (<option>, SVG <title>): markers only, so that no
  // control character, not even an isolate, is in the page's text.
  const marked = (text) => String(text).replace(BIDI, marker);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) appendText(e, text);
    return e;
  }
  function dataEl(tag, cls, text) { const e = el(tag, cls, text); e.classList.add("data"); return e; }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  const $ = (id) => document.getElementById(id);
  function option(select, value, label) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label === undefined ? value : label;
    select.appendChild(o);
    return o;
  }
  function fmtNum(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (typeof v !== "number") return String(v);
    return v.toLocaleString("en-US", { maximumFractionDigits: Math.abs(v) >= 100 ? 1 : 3 });
  }
  const plural = (n, word, many) => fmtNum(n) + " " + (n === 1 ? word : many || word + "s");

  // ---- Query terms for a group, written the way the query language reads them.
  const WORD_SAFE = /^[A-Za-z0-9_.\/@:-]+$/;
  const quoteValue = (v) => (WORD_SAFE.test(String(v)) ? String(v) : '"' + String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"');
  const escapeName = (s) => String(s).replace(/[\s()[\]{}"\\:*?]/g, (c) => "\\" + c);
  function facetField(facet) {
    if (facet.startsWith("@")) return "@" + facet.slice(1).split(".").map(escapeName).join(".");
    return escapeName(facet);
  }
  function groupTerm(facet, value) {
    if (value === null || value === undefined) return "-" + facetField(facet === "tags" ? "tags" : facet) + ":*";
    const v = String(value);
    if (facet === "tags") {
      const i = v.indexOf(":");
      return i <= 0 ? quoteValue(v) : escapeName(v.slice(0, i)) + ":" + quoteValue(v.slice(i + 1));
    }
    return facetField(facet) + ":" + quoteValue(v);
  }
  function groupQuery(by, bucket) { return by.map((f) => groupTerm(f, bucket.by ? bucket.by[f] : undefined)).join(" "); }
  function groupLabel(by, bucket) {
    if (!by.length) return "all logs";
    return by.map((f) => { const v = bucket.by ? bucket.by[f] : undefined; return v === null || v === undefined ? "(none)" : String(v); }).join(" · ");
  }

  // ---- Settings kept in the view's `an`, checked because a link can hold anything.
  function settings(s) {
    const a = Object.assign({}, DEFAULT_AN, s && s.an && typeof s.an === "object" ? s.an : {});
    if (!AGGS.includes(a.agg)) a.agg = "count";
    if (typeof a.measure !== "string") a.measure = "";
    a.by = Array.isArray(a.by) ? a.by.filter((f) => typeof f === "string" && f).slice(0, 2) : [];
    a.limit = LIMITS.includes(Number(a.limit)) ? Number(a.limit) : 10;
    if (!INTERVALS.some(([v]) => v === a.interval)) a.interval = "";
    return a;
  }
  function computeLabel(a) { return a.agg === "count" ? "count" : a.agg + "(" + (a.measure || "?") + ")"; }
  function compute(a, type) {
    const c = { aggregation: a.agg, type };
    if (a.agg !== "count") c.metric = a.measure;
    if (type === "timeseries" && a.interval) c.interval = a.interval;
    return c;
  }
  function groupBy(a) {
    const sort = { aggregation: a.agg, order: "desc", type: "measure" };
    if (a.agg !== "count") sort.metric = a.measure;
    return a.by.map((facet) => ({ facet, limit: a.limit, sort }));
  }
  const filterOf = (s) => ({ query: s.query || "", from: s.from, to: s.to });
  function changeAn(patch) {
    const a = Object.assign(settings(X.state()), patch);
    X.set({ an: a });
  }

  // ---- Known attributes (contract B), for the measure and group-by pickers.
  let attrs = null;
  let attrsNote = "";
  let attrsAt = 0;
  async function loadAttrs() {
    attrsAt = Date.now();
    try {
      const r = await X.api("GET", "/api/v2/logs/attributes?limit=1000");
      attrs = Array.isArray(r.data) ? r.data.filter((x) => x && typeof x.path === "string") : [];
      attrsNote = "";
    } catch (e) {
      attrs = [];
      attrsNote = "Known attributes are not available: " + e.message;
    }
    if (current) syncBar(current);
  }

  // ---- The bar: visualize as, measure controls, saved views, export.
  let built = false;
  let current = null;
  function build() {
    const bar = $("viz-bar");
    const root = $("analytics");
    if (!bar || !root) return false;
    built = true;
    const viz = el("select");
    viz.id = "viz";
    viz.setAttribute("aria-label", "Visualize as");
    for (const [v, l] of VIZ) option(viz, v, l);
    viz.addEventListener("change", () => X.set({ viz: viz.value }));
    const vizLabel = el("label", "an-label", "Visualize as ");
    vizLabel.appendChild(viz);
    bar.appendChild(vizLabel);

    const ctl = el("span", "an-controls");
    ctl.id = "an-controls";
    const agg = el("select");
    agg.id = "an-agg";
    agg.setAttribute("aria-label", "Aggregation");
    for (const g of AGGS) option(agg, g, g === "count" ? "count of logs" : g);
    agg.addEventListener("change", () => {
      const patch = { agg: agg.value };
      const a = settings(X.state());
      const choices = measureChoices(agg.value);
      // A measure the new aggregation cannot take (cardinality's "host" for avg) gives way.
      if (agg.value !== "count" && (!a.measure || (attrs && attrs.length && !choices.includes(a.measure)))) patch.measure = choices[0] || "";
      changeAn(patch);
    });
    const measure = el("select");
    measure.id = "an-measure";
    measure.setAttribute("aria-label", "Measure");
    measure.addEventListener("change", () => changeAn({ measure: measure.value }));
    const of = el("span", "an-of", "of");
    of.id = "an-of";
    const by1 = el("select");
    by1.id = "an-by1";
    by1.setAttribute("aria-label", "Group by");
    const by2 = el("select");
    by2.id = "an-by2";
    by2.setAttribute("aria-label", "Then group by");
    const onBy = () => changeAn({ by: [by1.value, by2.value].filter((f) => f) });
    by1.addEventListener("change", () => { if (!by1.value) by2.value = ""; onBy(); });
    by2.addEventListener("change", onBy);
    const limit = el("select");
    limit.id = "an-limit";
    limit.setAttribute("aria-label", "Groups shown");
    for (const n of LIMITS) option(limit, String(n), "top " + n);
    limit.addEventListener("change", () => changeAn({ limit: Number(limit.value) }));
    const interval = el("select");
    interval.id = "an-interval";
    interval.setAttribute("aria-label", "Interval");
    for (const [v, l] of INTERVALS) option(interval, v, l);
    interval.addEventListener("change", () => changeAn({ interval: interval.value }));
    const every = el("span", "an-of", "every");
    every.id = "an-every";
    ctl.append(agg, of, measure, el("span", "an-of", "by"), by1, by2, limit, every, interval);
    bar.appendChild(ctl);

    const tools = el("span", "an-tools");
    tools.append(buildViewsMenu(), buildExportMenu());
    bar.appendChild(tools);
    const note = el("div", "an-note");
    note.id = "an-note";
    note.setAttribute("role", "alert");
    note.hidden = true;
    bar.appendChild(note);
    document.addEventListener("click", (ev) => {
      // The export's own click on its download link keeps the menu (and its status) open.
      if (!ev.isTrusted) return;
      for (const p of document.querySelectorAll(".an-menu-panel")) {
        if (!p.hidden && !p.parentNode.contains(ev.target)) p.hidden = true;
      }
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape") return;
      for (const p of document.querySelectorAll(".an-menu-panel")) p.hidden = true;
    });
    // New attributes arrive with new logs: the pickers ask again, at most every 30 s.
    for (const sel of [measure, by1, by2]) sel.addEventListener("focus", () => { if (Date.now() - attrsAt > 30000) loadAttrs(); });
    loadAttrs();
    return true;
  }
  function note(msg) {
    const n = $("an-note");
    if (!n) return;
    clear(n);
    if (msg) appendText(n, msg);
    n.hidden = !msg;
  }

  function measureChoices(agg) {
    const list = attrs || [];
    if (agg === "cardinality") return BASE_FACETS.filter((f) => f !== "tags").concat(list.map((x) => "@" + x.path));
    return list.filter((x) => x.type === "number").map((x) => "@" + x.path);
  }
  function fillSelect(select, values, chosen, none) {
    // Refilled only when its options change, so that a tick of live tail does not close a
    // picker the reader has open.
    const sig = JSON.stringify([values, chosen || "", none === undefined ? null : none]);
    if (select.dataset.sig === sig) { select.value = chosen || ""; return; }
    select.dataset.sig = sig;
    clear(select);
    if (none !== undefined) option(select, "", none);
    const seen = new Set();
    for (const v of values) { if (!seen.has(v)) { seen.add(v); option(select, v, marked(v)); } }
    // A setting from a link or a saved view stays selectable even when it is not known here.
    if (chosen && !seen.has(chosen)) option(select, chosen, marked(chosen));
    select.value = chosen || "";
  }
  function syncBar(s) {
    const a = settings(s);
    $("viz").value = VIZ.some(([v]) => v === s.viz) ? s.viz : "list";
    const measures = s.viz === "timeseries" || s.viz === "toplist" || s.viz === "table";
    $("an-controls").hidden = !measures;
    $("an-agg").value = a.agg;
    const m = $("an-measure");
    const choices = measureChoices(a.agg);
    fillSelect(m, choices, a.measure, choices.length || a.measure ? undefined : "no numeric attribute");
    m.hidden = a.agg === "count";
    $("an-of").hidden = a.agg === "count";
    m.title = attrsNote;
    const facets = BASE_FACETS.concat((s.facets || []).filter((f) => typeof f === "string"),
      (attrs || []).map((x) => "@" + x.path));
    fillSelect($("an-by1"), facets, a.by[0] || "", "everything");
    fillSelect($("an-by2"), facets, a.by[1] || "", "and nothing else");
    $("an-by2").hidden = !a.by[0];
    $("an-limit").value = String(a.limit);
    $("an-limit").hidden = !a.by.length;
    $("an-interval").value = a.interval;
    $("an-interval").hidden = s.viz !== "timeseries";
    $("an-every").hidden = s.viz !== "timeseries";
  }

  // ---- Rendering #analytics.
  let generation = 0;
  function onChange(s) {
    current = s;
    if (!built && !build()) return;
    syncBar(s);
    const root = $("analytics");
    const gen = ++generation;
    if (s.viz === "list") { clear(root); return; }
    const job = s.viz === "patterns" ? renderPatterns : s.viz === "timeseries" ? renderTimeseries
      : s.viz === "toplist" ? renderToplist : s.viz === "table" ? renderTable : null;
    if (!job) return;
    root.setAttribute("aria-busy", "true");
    const isCurrent = () => gen === generation;
    job(s, root, isCurrent).catch((e) => {
      if (!isCurrent()) return;
      clear(root);
      const box = el("div", "an-error");
      box.setAttribute("role", "alert");
      appendText(box, e.message || String(e));
      root.appendChild(box);
    }).finally(() => { if (isCurrent()) root.removeAttribute("aria-busy"); });
  }
  function head(root, title, detail) {
    clear(root);
    const h = el("div", "an-head");
    h.appendChild(el("span", "an-title", title));
    if (detail) h.appendChild(el("span", "an-detail", detail));
    root.appendChild(h);
    return h;
  }
  function checkMeasure(a) {
    if (a.agg !== "count" && !a.measure) throw new Error("Pick a measure for " + a.agg + ": no numeric attribute is known yet.");
  }
  async function aggregate(s, computes, a) {
    const r = await X.api("POST", "/api/v2/logs/analytics/aggregate", { filter: filterOf(s), compute: computes, group_by: groupBy(a) });
    return (r && r.data && Array.isArray(r.data.buckets)) ? r.data.buckets : [];
  }
  function empty(root, text) { root.appendChild(el("div", "an-empty", text || "No logs match this query in this range.")); }

  // Bounds as the API takes them ("now-15m", ISO, ms) → ms, for the time axis.
  function resolveBound(b, now) {
    if (typeof b === "number") return b;
    const s = String(b || "").trim();
    if (s === "now") return now;
    const m = /^now-(\d+)([smhdw])$/.exec(s);
    if (m) return now - Number(m[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 }[m[2]];
    if (/^\d+$/.test(s)) return Number(s);
    const t = Date.parse(s);
    return Number.isNaN(t) ? null : t;
  }

  async function renderTimeseries(s, root, isCurrent) {
    const a = settings(s);
    checkMeasure(a);
    const buckets = await aggregate(s, [compute(a, "timeseries")], a);
    if (!isCurrent()) return;
    head(root, computeLabel(a) + (a.by.length ? " by " + a.by.join(", ") : ""), plural(buckets.length, "series", "series"));
    const series = buckets.map((b) => ({
      label: groupLabel(a.by, b), query: groupQuery(a.by, b),
      points: (Array.isArray(b.computes && b.computes.c0) ? b.computes.c0 : [])
        .map((p) => ({ t: Date.parse(p.time), v: p.value })).filter((p) => !Number.isNaN(p.t)),
    })).filter((x) => x.points.length);
    if (!series.length) { empty(root); return; }
    // Counts are zero where a bucket holds no logs (the API leaves such buckets out); other
    // aggregations have no value there, and their line breaks.
    if (a.agg === "count" || a.agg === "cardinality" || a.agg === "sum") zeroFill(s, a, series);
    root.appendChild(chart(s, a, series));
    const legend = el("div", "an-legend");
    legend.setAttribute("aria-label", "Legend");
    series.forEach((x, i) => {
      const item = el("button", "an-legend-item");
      item.type = "button";
      const sw = el("span", "an-swatch");
      sw.style.borderTopColor = "var(" + COLORS[i % COLORS.length] + ")";
      sw.style.borderTopStyle = DASHES[Math.floor(i / COLORS.length) % DASHES.length] ? "dashed" : "solid";
      item.appendChild(sw);
      item.appendChild(dataEl("span", "an-legend-label", x.label));
      if (a.by.length) {
        item.title = "Filter on " + plain(x.query);
        item.addEventListener("click", () => X.filterBy(x.query));
      }
      legend.appendChild(item);
    });
    root.appendChild(legend);
  }

  const UNIT_MS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5 };
  // The bucket width: the one asked for, else the smallest step between the points returned.
  function bucketMs(a, times) {
    const m = /^(\d+)([smhd])$/.exec(a.interval || "");
    if (m) return Number(m[1]) * UNIT_MS[m[2]];
    let best = Infinity;
    for (let i = 1; i < times.length; i++) best = Math.min(best, times[i] - times[i - 1]);
    return Number.isFinite(best) && best > 0 ? best : null;
  }
  function zeroFill(s, a, series) {
    let times = [...new Set(series.flatMap((x) => x.points.map((p) => p.t)))].sort((p, q) => p - q);
    const step = bucketMs(a, times);
    if (step) {
      // Whole buckets over the range, in the phase of the buckets the API returned.
      const now = Date.now();
      const lo = resolveBound(s.from, now), hi = resolveBound(s.to, now);
      const first = times[0];
      const start = lo === null ? first : first - Math.floor((first - lo) / step) * step;
      const end = hi === null ? times[times.length - 1] : hi;
      if ((end - start) / step <= 2000) {
        const all = [];
        for (let t = start; t <= end; t += step) all.push(t);
        times = [...new Set(all.concat(times))].sort((p, q) => p - q);
      }
    }
    for (const x of series) {
      const have = new Map(x.points.map((p) => [p.t, p.v]));
      x.points = times.map((t) => ({ t, v: have.has(t) ? have.get(t) : 0 }));
    }
  }

  function niceStep(span, target) {
    const raw = span / Math.max(1, target);
    const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    const f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  }
  const TIME_STEPS = [1e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5, 6048e5];
  function timeLabel(t, step) {
    const f = X.fmtTime(t);
    if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(f)) return f;
    if (step >= 864e5) return f.slice(5, 10);
    return step < 6e4 ? f.slice(11, 19) : f.slice(11, 16);
  }
  function chart(s, a, series) {
    const wrap = el("div", "an-chart");
    const W = Math.max(480, ($("analytics").clientWidth || 900) - 32), H = 280;
    const L = 64, R = 16, T = 12, B = 46;
    const now = Date.now();
    let t0 = resolveBound(s.from, now), t1 = resolveBound(s.to, now);
    const all = series.flatMap((x) => x.points);
    const tMin = Math.min(...all.map((p) => p.t)), tMax = Math.max(...all.map((p) => p.t));
    if (t0 === null || t0 > tMin) t0 = tMin;
    if (t1 === null || t1 < tMax) t1 = tMax;
    if (t1 <= t0) t1 = t0 + 1000;
    const vals = all.map((p) => p.v).filter((v) => typeof v === "number");
    let vMin = Math.min(0, ...vals), vMax = Math.max(0, ...vals);
    if (vMax === vMin) vMax = vMin + 1;
    const vStep = niceStep(vMax - vMin, 5);
    vMin = Math.floor(vMin / vStep) * vStep;
    vMax = Math.ceil(vMax / vStep) * vStep;
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = (v) => T + (vMax - v) / (vMax - vMin) * (H - T - B);
    const g = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", class: "an-svg" });
    g.appendChild(svg("title", {}, computeLabel(a) + " over time"));
    const axes = svg("g", { class: "an-axis" });
    for (let v = vMin; v <= vMax + vStep / 2; v += vStep) {
      axes.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "an-grid" }));
      axes.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "an-tick an-ytick" }, fmtNum(Number(v.toPrecision(12)))));
    }
    const step = TIME_STEPS.find((st) => (t1 - t0) / st <= 7) || TIME_STEPS[TIME_STEPS.length - 1];
    // Ticks fall on whole steps of the clock the page shows (UTC or local).
    const off = s.tz === "utc" ? 0 : -new Date(t0).getTimezoneOffset() * 6e4;
    for (let t = Math.ceil((t0 + off) / step) * step - off; t <= t1; t += step) {
      axes.appendChild(svg("line", { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4, class: "an-tickmark" }));
      axes.appendChild(svg("text", { x: x(t), y: H - B + 16, "text-anchor": "middle", class: "an-tick an-xtick" }, timeLabel(t, step)));
    }
    axes.appendChild(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "an-baseline" }));
    axes.appendChild(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "an-baseline" }));
    axes.appendChild(svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", class: "an-axis-title an-xtitle" },
      "Time (" + (s.tz === "utc" ? "UTC" : "local") + ")"));
    axes.appendChild(svg("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", class: "an-axis-title an-ytitle",
      transform: `rotate(-90 14 ${(T + H - B) / 2})` }, computeLabel(a)));
    g.appendChild(axes);
    series.forEach((sr, i) => {
      const color = "var(" + COLORS[i % COLORS.length] + ")";
      const dash = DASHES[Math.floor(i / COLORS.length) % DASHES.length];
      const line = svg("g", { class: "an-series", "data-series": i });
      let d = "", pen = false;
      for (const p of sr.points) {
        if (typeof p.v !== "number") { pen = false; continue; }
        d += (pen ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1);
        pen = true;
      }
      const path = svg("path", { d, class: "an-line", stroke: color, fill: "none" });
      path.style.stroke = color;
      if (dash) path.setAttribute("stroke-dasharray", dash);
      line.appendChild(path);
      // Dots only while they stay apart; the hover read-out serves dense lines.
      if (sr.points.length <= MAX_DOTS) for (const p of sr.points) {
        if (typeof p.v !== "number") continue;
        const dot = svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: sr.points.length === 1 ? 3.5 : 2.2, class: "an-dot" });
        dot.style.fill = color;
        // SVG <title> is text: the group value cannot become markup here either.
        dot.appendChild(svg("title", {}, marked(sr.label) + " — " + X.fmtTime(p.t) + ": " + fmtNum(p.v)));
        line.appendChild(dot);
      }
      g.appendChild(line);
    });
    wrap.appendChild(g);
    hover(wrap, g, series, { x, L, R, T, B, W, H, t0, t1 });
    return wrap;
  }

  // A read-out of every series at the bucket under the pointer, with a guide line.
  function hover(wrap, g, series, k) {
    const times = [...new Set(series.flatMap((sr) => sr.points.map((p) => p.t)))].sort((p, q) => p - q);
    if (!times.length) return;
    const guide = svg("line", { x1: 0, x2: 0, y1: k.T, y2: k.H - k.B, class: "an-guide", visibility: "hidden" });
    g.appendChild(guide);
    const tip = el("div", "an-tip");
    tip.setAttribute("role", "status");
    tip.hidden = true;
    wrap.appendChild(tip);
    const maps = series.map((sr) => new Map(sr.points.map((p) => [p.t, p.v])));
    g.addEventListener("mousemove", (ev) => {
      const box = g.getBoundingClientRect();
      const px = (ev.clientX - box.left) * (k.W / box.width);
      if (px < k.L || px > k.W - k.R) { guide.setAttribute("visibility", "hidden"); tip.hidden = true; return; }
      const t = k.t0 + (px - k.L) / (k.W - k.L - k.R) * (k.t1 - k.t0);
      let best = times[0];
      for (const c of times) if (Math.abs(c - t) < Math.abs(best - t)) best = c;
      const gx = k.x(best);
      guide.setAttribute("x1", gx);
      guide.setAttribute("x2", gx);
      guide.setAttribute("visibility", "visible");
      clear(tip);
      tip.appendChild(el("div", "an-tip-time", X.fmtTime(best)));
      const rows = series.map((sr, i) => ({ sr, i, v: maps[i].get(best) }))
        .filter((r) => r.v !== undefined).sort((p, q) => (q.v ?? -Infinity) - (p.v ?? -Infinity)).slice(0, 12);
      for (const r of rows) {
        const row = el("div", "an-tip-row");
        const sw = el("span", "an-swatch");
        sw.style.borderTopColor = "var(" + COLORS[r.i % COLORS.length] + ")";
        row.append(sw, dataEl("span", "an-tip-label", r.sr.label), el("span", "an-tip-value", fmtNum(r.v)));
        tip.appendChild(row);
      }
      tip.hidden = false;
      const left = ev.clientX - wrap.getBoundingClientRect().left;
      tip.style.left = Math.min(left + 14, wrap.clientWidth - tip.offsetWidth - 4) + "px";
      tip.style.top = "8px";
    });
    g.addEventListener("mouseleave", () => { guide.setAttribute("visibility", "hidden"); tip.hidden = true; });
  }

  async function renderToplist(s, root, isCurrent) {
    const a = settings(s);
    checkMeasure(a);
    const buckets = await aggregate(s, [compute(a, "total")], a);
    if (!isCurrent()) return;
    head(root, computeLabel(a) + (a.by.length ? " by " + a.by.join(", ") : ""), plural(buckets.length, "group"));
    const rows = buckets.map((b) => ({ b, v: b.computes ? b.computes.c0 : null }))
      .sort((p, q) => (typeof q.v === "number" ? q.v : -Infinity) - (typeof p.v === "number" ? p.v : -Infinity));
    if (!rows.length) { empty(root); return; }
    const max = Math.max(0, ...rows.map((r) => (typeof r.v === "number" ? Math.abs(r.v) : 0))) || 1;
    const list = el("ol", "an-toplist");
    for (const r of rows) {
      const li = el("li", "an-top");
      const q = groupQuery(a.by, r.b);
      li.dataset.query = q;
      const label = dataEl("span", "an-top-label", groupLabel(a.by, r.b));
      const track = el("span", "an-top-track");
      const bar = el("span", "an-top-bar");
      bar.style.width = (typeof r.v === "number" ? Math.abs(r.v) / max * 100 : 0).toFixed(2) + "%";
      track.appendChild(bar);
      li.append(label, track, el("span", "an-top-value", fmtNum(r.v)));
      if (a.by.length) {
        li.tabIndex = 0;
        li.title = "Filter on " + plain(q);
        li.addEventListener("click", () => X.filterBy(q));
        li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") X.filterBy(q); });
      }
      list.appendChild(li);
    }
    root.appendChild(list);
  }

  async function renderTable(s, root, isCurrent) {
    const a = settings(s);
    checkMeasure(a);
    const computes = [compute({ agg: "count" }, "total")];
    if (a.agg !== "count") computes.push(compute(a, "total"));
    const buckets = await aggregate(s, computes, a);
    if (!isCurrent()) return;
    head(root, computeLabel(a) + (a.by.length ? " by " + a.by.join(", ") : ""), plural(buckets.length, "row"));
    if (!buckets.length) { empty(root); return; }
    const sortKey = a.agg === "count" ? "c0" : "c1";
    const val = (b) => { const v = b.computes ? b.computes[sortKey] : null; return typeof v === "number" ? v : -Infinity; };
    buckets.sort((p, q) => val(q) - val(p));
    const table = el("table", "an-table");
    const thead = el("thead");
    const hr = el("tr");
    for (const f of a.by) hr.appendChild(dataEl("th", "an-th-group", f));
    hr.appendChild(el("th", "an-th-num", "count"));
    if (a.agg !== "count") hr.appendChild(el("th", "an-th-num", computeLabel(a)));
    thead.appendChild(hr);
    table.appendChild(thead);
    const tbody = el("tbody");
    for (const b of buckets) {
      const tr = el("tr", "an-row");
      const q = groupQuery(a.by, b);
      tr.dataset.query = q;
      for (const f of a.by) {
        const v = b.by ? b.by[f] : undefined;
        tr.appendChild(dataEl("td", "an-td-group", v === null || v === undefined ? "(none)" : String(v)));
      }
      tr.appendChild(el("td", "an-td-num", fmtNum(b.computes ? b.computes.c0 : null)));
      if (a.agg !== "count") tr.appendChild(el("td", "an-td-num", fmtNum(b.computes ? b.computes.c1 : null)));
      if (a.by.length) {
        tr.tabIndex = 0;
        tr.title = "Filter on " + plain(q);
        tr.addEventListener("click", () => X.filterBy(q));
        tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") X.filterBy(q); });
      }
      tbody.appendChild(tr);
    }
    table.appendChild(tbody);
    root.appendChild(table);
  }

  // ---- Patterns (contract C).
  const STATUS_VAR = { emerg: "--error", alert: "--error", critical: "--error", error: "--error", warn: "--warn",
    notice: "--info", info: "--info", debug: "--muted", ok: "--ok" };
  const STATUS_ORDER = ["emerg", "alert", "critical", "error", "warn", "notice", "info", "debug", "ok"];
  function openPattern(query) {
    const before = X.state().query;
    X.filterBy(query);
    // One history entry for the click: the filtered list replaces the entry filterBy made.
    if (X.state().query !== before) X.set({ viz: "list" }, { replace: true });
    else X.set({ viz: "list" });
  }
  async function renderPatterns(s, root, isCurrent) {
    const started = performance.now();
    const r = await X.api("POST", "/api/v2/logs/analytics/patterns", { filter: filterOf(s), limit: PATTERN_LIMIT, max_patterns: 50 });
    if (!isCurrent()) return;
    const pats = (r && r.data && Array.isArray(r.data.patterns)) ? r.data.patterns : [];
    const meta = (r && r.meta) || {};
    let detail = plural(pats.length, "pattern");
    if (typeof meta.scanned === "number") detail += " from " + plural(meta.scanned, "log");
    if (meta.truncated) detail += " (the newest " + fmtNum(PATTERN_LIMIT) + " only)";
    detail += " · " + Math.round(typeof meta.elapsed === "number" ? meta.elapsed : performance.now() - started) + " ms";
    head(root, "Patterns", detail);
    if (!pats.length) { empty(root); return; }
    const list = el("ol", "an-patterns");
    for (const p of pats) {
      const li = el("li", "an-pattern");
      li.tabIndex = 0;
      if (typeof p.query === "string") li.dataset.query = p.query;
      const count = el("span", "an-p-count", fmtNum(p.count));
      const mix = el("span", "an-p-mix");
      const st = p.status && typeof p.status === "object" ? p.status : {};
      const keys = Object.keys(st).sort((x, y) => (STATUS_ORDER.indexOf(x) + 99 * (STATUS_ORDER.indexOf(x) < 0)) - (STATUS_ORDER.indexOf(y) + 99 * (STATUS_ORDER.indexOf(y) < 0)));
      const total = keys.reduce((n, k) => n + (Number(st[k]) || 0), 0) || 1;
      const mixText = keys.map((k) => k + " " + fmtNum(st[k])).join(", ");
      mix.title = plain(mixText);
      mix.setAttribute("aria-label", "Status mix: " + plain(mixText));
      mix.setAttribute("role", "img");
      for (const k of keys) {
        const seg = el("span", "an-p-seg");
        seg.dataset.status = k;
        seg.style.width = ((Number(st[k]) || 0) / total * 100).toFixed(2) + "%";
        seg.style.background = "var(" + (STATUS_VAR[k] || "--muted") + ")";
        mix.appendChild(seg);
      }
      const tpl = dataEl("span", "an-p-template");
      String(p.template || "").split("<*>").forEach((part, i) => {
        if (i) { const v = el("span", "an-p-var", "<*>"); v.title = "variable part"; tpl.appendChild(v); }
        if (part) appendText(tpl, part);
      });
      const body = el("span", "an-p-body");
      body.appendChild(tpl);
      const sample = p.sample && p.sample.attributes;
      if (sample) {
        const sm = el("span", "an-p-sample");
        sm.appendChild(el("span", "an-p-sample-meta", X.fmtTime(sample.timestamp) + " " + (sample.service || "") + " "));
        sm.appendChild(dataEl("span", "an-p-sample-msg", sample.message || ""));
        body.appendChild(sm);
      }
      const mixWrap = el("span", "an-p-mixwrap");
      mixWrap.append(mix, el("span", "an-p-mixtext", keys.map((k) => k + " " + fmtNum(st[k])).join(" · ")));
      li.append(count, mixWrap, body);
      if (typeof p.query === "string" && p.query) {
        li.title = "Show the logs of this pattern";
        li.addEventListener("click", () => openPattern(p.query));
        li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openPattern(p.query); });
      }
      list.appendChild(li);
    }
    root.appendChild(list);
  }

  // ---- Saved views (contract E).
  const viewPath = (name) => "/api/v2/logs/views/" + encodeURIComponent(name);
  function viewsStatus(msg, bad) {
    const st = $("views-status");
    clear(st);
    if (msg) appendText(st, msg);
    st.classList.toggle("bad", !!bad);
  }
  function buildViewsMenu() {
    const menu = el("span", "an-menu");
    const button = el("button", "an-menu-button", "Saved views");
    button.type = "button";
    button.id = "views-button";
    button.setAttribute("aria-haspopup", "true");
    const panel = el("div", "an-menu-panel");
    panel.id = "views-panel";
    panel.hidden = true;
    button.addEventListener("click", () => {
      panel.hidden = !panel.hidden;
      button.setAttribute("aria-expanded", String(!panel.hidden));
      if (!panel.hidden) { refreshViews(); $("view-name").focus(); }
    });
    const form = el("form", "an-view-form");
    form.id = "view-form";
    form.autocomplete = "off";
    const input = el("input");
    input.id = "view-name";
    input.placeholder = "Name this view";
    input.maxLength = 100;
    input.spellcheck = false;
    input.setAttribute("aria-label", "Saved view name");
    const save = el("button", null, "Save");
    save.type = "submit";
    save.id = "view-save";
    form.append(input, save);
    form.addEventListener("submit", (ev) => { ev.preventDefault(); saveView(input.value); });
    const st = el("div", "an-menu-status");
    st.id = "views-status";
    st.setAttribute("role", "status");
    const list = el("ul", "an-view-list");
    list.id = "view-list";
    panel.append(form, st, list);
    menu.append(button, panel);
    return menu;
  }
  // A stored state is whatever was PUT: only the view's own keys, each of the right type, are
  // handed to set().
  function viewState(st) {
    if (!st || typeof st !== "object" || Array.isArray(st)) return null;
    const v = {};
    const bound = (b) => typeof b === "number" || (typeof b === "string" && b);
    const strs = (a) => Array.isArray(a) && a.every((x) => typeof x === "string");
    if (typeof st.query === "string") v.query = st.query;
    if (typeof st.range === "string" && st.range) v.range = st.range;
    if (bound(st.from) && bound(st.to)) { v.from = st.from; v.to = st.to; }
    if (strs(st.facets)) v.facets = st.facets;
    if (strs(st.columns)) v.columns = st.columns;
    if (VIZ.some(([x]) => x === st.viz)) v.viz = st.viz;
    v.an = st.an && typeof st.an === "object" && !Array.isArray(st.an) ? st.an : {};
    if (st.tz === "utc" || st.tz === "local") v.tz = st.tz;
    return v;
  }
  async function saveView(raw) {
    const name = String(raw).trim();
    if (!name || name.length > 100 || /[\u0000-\u001f\u007f-\u009f]/.test(name)) {
      viewsStatus("A name has 1 to 100 characters and no control characters.", true);
      return;
    }
    try {
      await X.api("PUT", viewPath(name), { state: X.state() });
      $("view-name").value = "";
      await refreshViews();
      viewsStatus("Saved “" + name + "”.");
    } catch (e) { viewsStatus("Could not save: " + e.message, true); }
  }
  async function refreshViews() {
    const list = $("view-list");
    let views;
    try {
      const r = await X.api("GET", "/api/v2/logs/views");
      views = Array.isArray(r.data) ? r.data : [];
    } catch (e) { clear(list); viewsStatus("Saved views are not available: " + e.message, true); return; }
    clear(list);
    viewsStatus(views.length ? "" : "No saved views yet.");
    for (const v of views) {
      if (!v || typeof v.name !== "string") continue;
      const li = el("li", "an-view");
      li.dataset.name = v.name;
      const open = dataEl("button", "an-view-open", v.name);
      open.type = "button";
      open.title = "Open " + plain(v.name) + (v.updated_at ? " (saved " + X.fmtTime(v.updated_at) + ")" : "");
      open.addEventListener("click", () => {
        const st = viewState(v.state);
        if (st) { X.set(st); $("views-panel").hidden = true; } else viewsStatus("This saved view holds no view.", true);
      });
      const link = el("a", "an-view-link", "link");
      link.href = "#saved=" + encodeURIComponent(v.name);
      link.title = "A link that opens this view by name";
      const del = el("button", "an-view-del", "Delete");
      del.type = "button";
      del.setAttribute("aria-label", "Delete " + plain(v.name));
      del.addEventListener("click", async () => {
        try { await X.api("DELETE", viewPath(v.name)); await refreshViews(); viewsStatus("Deleted “" + v.name + "”."); }
        catch (e) { viewsStatus("Could not delete: " + e.message, true); }
      });
      li.append(open, link, del);
      list.appendChild(li);
    }
  }
  function savedFromHash() {
    const h = location.hash.replace(/^#/, "");
    if (!/(^|&)saved=/.test(h)) return null;
    return new URLSearchParams(h).get("saved");
  }
  async function openSaved(name) {
    if (!name) return;
    try {
      const r = await X.api("GET", viewPath(name));
      const st = viewState(r && r.data && r.data.state);
      if (!st) throw new Error("it holds no view");
      note("");
      // The link stands for the view: it is replaced by the view's own address.
      X.set(st, { replace: true });
    } catch (e) {
      note("Could not open the saved view “" + name + "”: " + e.message);
    }
  }
  // Read now: app.js rewrites the address to the full view when the page loads.
  const initialSaved = savedFromHash();
  // Registered before app.js's own handlers (added on DOMContentLoaded), so they see the link
  // before app.js rewrites the address. A pasted link fires popstate, then hashchange: whichever
  // still sees it opens the view, once.
  let lastLink = { name: null, at: 0 };
  function onLink() {
    const n = savedFromHash();
    if (n === null) return;
    if (n === lastLink.name && Date.now() - lastLink.at < 1000) return;
    lastLink = { name: n, at: Date.now() };
    openSaved(n);
  }
  window.addEventListener("popstate", onLink);
  window.addEventListener("hashchange", onLink);

  // ---- Export (contract F).
  function buildExportMenu() {
    const menu = el("span", "an-menu");
    const button = el("button", "an-menu-button", "Export");
    button.type = "button";
    button.id = "export-button";
    button.setAttribute("aria-haspopup", "true");
    const panel = el("div", "an-menu-panel");
    panel.id = "export-panel";
    panel.hidden = true;
    button.addEventListener("click", () => { panel.hidden = !panel.hidden; button.setAttribute("aria-expanded", String(!panel.hidden)); });
    panel.appendChild(el("div", "an-menu-hint", "The logs of the current query, newest first, up to " + fmtNum(EXPORT_LIMIT) +
      ". CSV has the list's columns too."));
    for (const [fmt, label] of [["csv", "CSV"], ["ndjson", "NDJSON"]]) {
      const b = el("button", "an-export", label);
      b.type = "button";
      b.id = "export-" + fmt;
      b.addEventListener("click", () => exportLogs(fmt));
      panel.appendChild(b);
    }
    const st = el("div", "an-menu-status");
    st.id = "export-status";
    st.setAttribute("role", "status");
    panel.appendChild(st);
    menu.append(button, panel);
    return menu;
  }
  function exportStatus(msg, bad) {
    const st = $("export-status");
    clear(st);
    if (msg) appendText(st, msg);
    st.classList.toggle("bad", !!bad);
  }
  async function exportLogs(format) {
    const s = X.state();
    const body = { filter: filterOf(s), format, limit: EXPORT_LIMIT, sort: "-timestamp" };
    if (format === "csv" && Array.isArray(s.columns) && s.columns.length) body.columns = s.columns;
    // The body is a file, not JSON, so this cannot go through X.api; the same credentials
    // (the cookie, and the API key app.js keeps for this tab) go with it.
    const headers = { "Content-Type": "application/json" };
    const key = sessionStorage.getItem("cairn-api-key");
    if (key) headers["DD-API-KEY"] = key;
    exportStatus("Exporting…");
    try {
      const resp = await fetch("/api/v2/logs/events/export", { method: "POST", headers, body: JSON.stringify(body) });
      if (!resp.ok) {
        const data = await resp.json().catch(() => ({}));
        const first = data && data.errors && data.errors[0];
        throw new Error((typeof first === "string" ? first : first && first.detail) || "HTTP " + resp.status);
      }
      const blob = await resp.blob();
      const cd = resp.headers.get("Content-Disposition") || "";
      const m = /filename="?([^";]+)"?/.exec(cd);
      const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
      const name = m ? m[1].replace(/[\/\\]/g, "_") : "cairn-logs-" + stamp + "." + format;
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = name;
      a.hidden = true;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      exportStatus("Downloaded " + name + " (" + fmtNum(blob.size) + " bytes).");
    } catch (e) { exportStatus("Export failed: " + e.message, true); }
  }

  // ---- Wiring: app.js calls listeners from its own DOMContentLoaded handler, which can come
  // before this file's, so the bar is built on whichever comes first.
  X.on("change", onChange);
  document.addEventListener("DOMContentLoaded", () => {
    if (!built) build();
    if (!current) onChange(X.state());
    if (initialSaved !== null) openSaved(initialSaved);
  });
})();
