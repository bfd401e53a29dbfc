// Cairn Explorer, the Pipelines view: the intake's log pipelines as Datadog's Logs Pipelines
// JSON in an editor, with a live preview of what they do to sample logs (the current query's
// latest logs, or logs pasted here) before anything is saved. It speaks
// /api/v1/logs/config/pipelines (GET, PUT) and its /preview, and uses app.js's helpers, so data
// reaches the page only as text nodes.
"use strict";

const PL_SAMPLES = 10;
const PL_PREVIEW_DELAY_MS = 400;
const PL_TEMPLATE = {
  name: "my pipeline",
  is_enabled: true,
  filter: { query: "source:myapp" },
  processors: [
    {
      type: "grok-parser", name: "parse the message", is_enabled: true, source: "message", samples: [],
      grok: { support_rules: "", match_rules: "access_rule %{ip:network.client.ip} %{word:http.method} %{notSpace:http.url} %{integer:http.status_code}" },
    },
    { type: "status-remapper", name: "status from level", is_enabled: true, sources: ["level"] },
  ],
};

const pstate = { loaded: false, saved: null, samples: [], sampleNote: "", timer: null, generation: 0,
  dirty: false, file: "" };

function plStatus(text) { $("pl-status").textContent = text; }

function plShowError(msg) {
  const box = $("pl-error");
  clear(box);
  if (msg) appendText(box, msg);
  box.hidden = !msg;
}

// The editor's pipelines, or an error naming the line and column of the first JSON mistake.
function plParse() {
  const text = $("pl-editor").value;
  if (!text.trim()) return { pipelines: [] };
  try {
    const v = JSON.parse(text);
    const list = Array.isArray(v) ? v : (v && Array.isArray(v.pipelines) ? v.pipelines : [v]);
    return { pipelines: list };
  } catch (e) {
    const at = jsonErrorOffset(text);
    const before = text.slice(0, at);
    const line = before.split("\n").length;
    const where = "line " + line + ", column " + (before.length - before.lastIndexOf("\n")) + ": ";
    return { error: "The editor does not hold valid JSON: " + where + e.message };
  }
}

// Where JSON text first goes wrong, as an offset: the browser's own message does not always
// say (Chromium quotes the text around it instead), and an author needs the line.
function jsonErrorOffset(text) {
  let i = 0;
  const ws = () => { while (i < text.length && " \t\r\n".includes(text[i])) i++; };
  const fail = () => { throw i; };
  const lit = (word) => { if (text.startsWith(word, i)) i += word.length; else fail(); };
  const str = () => {
    if (text[i] !== '"') fail();
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i++;
      else if (text.charCodeAt(i) < 0x20) fail();
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  const num = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m || !m[0]) fail();
    i += m[0].length;
  };
  const value = (depth) => {
    if (depth > 500) fail();
    ws();
    const c = text[i];
    if (c === "{") {
      i++; ws();
      if (text[i] === "}") { i++; return; }
      for (;;) {
        ws(); str(); ws();
        if (text[i] !== ":") fail();
        i++;
        value(depth + 1); ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "}") { i++; return; }
        fail();
      }
    }
    if (c === "[") {
      i++; ws();
      if (text[i] === "]") { i++; return; }
      for (;;) {
        value(depth + 1); ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "]") { i++; return; }
        fail();
      }
    }
    if (c === '"') return str();
    if (c === "t") return lit("true");
    if (c === "f") return lit("false");
    if (c === "n") return lit("null");
    return num();
  };
  try { value(0); ws(); if (i < text.length) fail(); } catch (at) { if (typeof at === "number") return at; throw at; }
  return text.length;
}

function plRenderList(pipelines) {
  const ol = $("pl-list");
  clear(ol);
  if (!pipelines.length) {
    ol.appendChild(el("li", "empty", "No pipelines: logs are stored as they arrive."));
    return;
  }
  for (const p of pipelines) {
    const li = el("li", "pl-item" + (p && p.is_enabled === false ? " disabled" : ""));
    li.appendChild(dataEl("span", "pl-name", (p && p.name) || "(unnamed)"));
    if (p && p.is_enabled === false) li.appendChild(el("span", "pl-badge", "disabled"));
    const q = p && p.filter && p.filter.query;
    li.appendChild(dataEl("div", "pl-filter", q ? "filter: " + q : "every log"));
    const procs = Array.isArray(p && p.processors) ? p.processors : [];
    li.appendChild(el("div", "note", procs.map((x) => (x && (x.name || x.type)) || "?").join(" → ") || "no processors"));
    ol.appendChild(li);
  }
}

// A stored log (search API shape) as a client would have sent it, so the preview sees what the
// pipelines see at ingest. `_cairn` (the intake's own record of earlier processing) is left out.
function plAsSent(log) {
  const a = log.attributes || {};
  const out = Object.assign({}, a.attributes || {});
  delete out._cairn;
  const tags = [];
  for (const t of a.tags || []) {
    if (t.startsWith("source:")) out.ddsource = t.slice(7);
    else tags.push(t);
  }
  out.message = a.message;
  if (a.status) out.status = a.status;
  if (a.service) out.service = a.service;
  if (a.host) out.hostname = a.host;
  if (tags.length) out.ddtags = tags.join(",");
  if (a.timestamp) out.timestamp = a.timestamp;
  return out;
}

async function plLoadSamples() {
  const gen = ++pstate.generation;
  if ($("pl-sample-from").value === "custom") {
    const logs = [];
    const lines = $("pl-custom").value.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (!line) continue;
      try {
        const v = JSON.parse(line);
        logs.push(typeof v === "object" && v !== null ? v : { message: String(v) });
      } catch {
        logs.push({ message: line });
      }
    }
    pstate.samples = logs;
    pstate.sampleNote = logs.length ? plural(logs.length, "pasted log") + " (a line that is not JSON is a message)" :
      "Paste logs, one JSON object (or plain message) per line.";
    return;
  }
  const v = window.CairnExplorer.state();
  const query = v.query || "*";
  try {
    const r = await api("POST", "/api/v2/logs/events/search",
      { filter: { query, from: v.from, to: v.to }, page: { limit: PL_SAMPLES }, sort: "-timestamp" });
    if (gen !== pstate.generation) return;
    pstate.samples = (r.data || []).map(plAsSent);
    pstate.sampleNote = pstate.samples.length ?
      "The latest " + plural(pstate.samples.length, "log") + " of the Logs view's query " + JSON.stringify(query) + "." :
      "The Logs view's query " + JSON.stringify(query) + " matches no logs in its time range: paste some instead.";
  } catch (e) {
    pstate.samples = [];
    pstate.sampleNote = "Could not fetch sample logs: " + e.message;
  }
}

function plSchedulePreview(delay) {
  clearTimeout(pstate.timer);
  pstate.timer = setTimeout(plPreview, delay);
}

async function plPreview() {
  const out = $("pl-results");
  $("pl-sample-note").textContent = pstate.sampleNote;
  const parsed = plParse();
  if (parsed.error) { plShowError(parsed.error); return; }
  plShowError("");
  plRenderList(parsed.pipelines);
  if (!pstate.samples.length) { clear(out); plShowError(""); return; }
  const gen = ++pstate.generation;
  out.setAttribute("aria-busy", "true");
  let r;
  try {
    r = await api("POST", "/api/v1/logs/config/pipelines/preview", { pipelines: parsed.pipelines, logs: pstate.samples });
  } catch (e) {
    if (gen === pstate.generation) { out.removeAttribute("aria-busy"); plShowError(e.message); }
    return;
  }
  if (gen !== pstate.generation) return;
  out.removeAttribute("aria-busy");
  plShowError("");
  clear(out);
  r.forEach((res, i) => out.appendChild(plResult(pstate.samples[i], res)));
}

function plResult(sample, res) {
  const card = el("div", "pl-result");
  const trace = (res && res.trace) || {};
  const steps = Array.isArray(trace.steps) ? trace.steps : [];
  const head = el("div", "pl-trace");
  if (trace.error) head.appendChild(dataEl("span", "pl-err", "error, kept as it arrived: " + trace.error));
  else if (!steps.length) head.appendChild(el("span", "note", "no pipeline matched"));
  for (const s of steps) {
    const procs = Array.isArray(s.processors) ? s.processors : [];
    head.appendChild(dataEl("span", "pl-step", s.pipeline + (procs.length ? " › " + procs.join(", ") : " (nothing changed)")));
  }
  card.appendChild(head);
  card.appendChild(dataEl("pre", "pl-in", (sample && sample.message !== undefined) ? String(sample.message) : JSON.stringify(sample)));
  const log = (res && res.log) || {};
  card.appendChild(tree(log, [], false));
  return card;
}

async function plLoad() {
  plStatus("Loading…");
  try {
    const r = await api("GET", "/api/v1/logs/config/pipelines");
    const list = r;
    pstate.saved = list;
    $("pl-editor").value = JSON.stringify(list, null, 2);
    pstate.dirty = false;
    pstate.loaded = true;
    plStatus(list.length ? plural(list.length, "pipeline") + " saved" : "No pipelines yet");
    plRenderList(list);
  } catch (e) {
    plStatus("");
    plShowError("Could not load the pipelines: " + e.message);
  }
}

async function plSave() {
  const parsed = plParse();
  if (parsed.error) { plShowError(parsed.error); return; }
  plStatus("Saving…");
  try {
    const r = await api("PUT", "/api/v1/logs/config/pipelines", parsed.pipelines);
    const list = r;
    pstate.saved = list;
    $("pl-editor").value = JSON.stringify(list, null, 2);
    pstate.dirty = false;
    plShowError("");
    plStatus("Saved: new logs go through " + plural(list.length, "pipeline"));
    plRenderList(list);
  } catch (e) {
    plStatus("Not saved");
    plShowError(e.message);
  }
}

async function openPipelines() {
  if (!pstate.loaded) await plLoad();
  await plLoadSamples();
  plSchedulePreview(0);
}

document.addEventListener("DOMContentLoaded", () => {
  window.CairnExplorer.view("pipelines", openPipelines);
  $("pl-editor").addEventListener("input", () => {
    pstate.dirty = true;
    plStatus("Edited, not saved");
    plSchedulePreview(PL_PREVIEW_DELAY_MS);
  });
  $("pl-save").addEventListener("click", plSave);
  $("pl-revert").addEventListener("click", async () => { await plLoad(); plSchedulePreview(0); });
  $("pl-add").addEventListener("click", () => {
    const parsed = plParse();
    if (parsed.error) { plShowError(parsed.error); return; }
    $("pl-editor").value = JSON.stringify(parsed.pipelines.concat([PL_TEMPLATE]), null, 2);
    pstate.dirty = true;
    plStatus("Edited, not saved");
    plSchedulePreview(0);
  });
  $("pl-sample-from").addEventListener("change", async () => {
    $("pl-custom").hidden = $("pl-sample-from").value !== "custom";
    await plLoadSamples();
    plSchedulePreview(0);
  });
  $("pl-custom").addEventListener("input", async () => { await plLoadSamples(); plSchedulePreview(PL_PREVIEW_DELAY_MS); });
  $("pl-refresh").addEventListener("click", async () => { await plLoadSamples(); plSchedulePreview(0); });
  window.addEventListener("beforeunload", (ev) => { if (pstate.dirty) ev.preventDefault(); });
});
