// Cairn Explorer, the Monitors view: the intake's log monitors with their state per group, a
// form that builds Datadog's log monitor query (`logs("…").index("*").rollup(…).by(…).last(…) > N`),
// the history of each monitor's transitions and an "evaluate now". It speaks Datadog's
// /api/v1/monitor API (and Cairn's /history and /evaluate), and uses app.js's helpers, so data
// reaches the page only as text nodes.
"use strict";

const MON_REFRESH_MS = 15000;
const MON_STATES = { "OK": "ok", "Warn": "warn", "Alert": "alert", "No Data": "nodata" };
// The monitor query Datadog writes for a log alert, taken apart to fill the form back in.
const MON_QUERY_RE = /^logs\("((?:[^"\\]|\\.)*)"\)(?:\.index\("[^"]*"\))?\.rollup\("(\w+)"(?:\s*,\s*"([^"]*)")?\)(?:\.by\(([^)]*)\))?\.last\("(\w+)"\)\s*(>=|<=|>|<)\s*(-?[\d.eE+]+)\s*$/;

const mstateMon = { list: [], editing: null, onMissingData: null, timer: null, selected: null, generation: 0 };

function monShowError(id, msg) {
  const box = $(id);
  clear(box);
  if (msg) appendText(box, msg);
  box.hidden = !msg;
}

function monQuoted(s) { return '"' + String(s).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"'; }

// The query the form's fields describe.
function monBuildQuery() {
  const rollup = $("mf-rollup").value;
  let q = "logs(" + monQuoted($("mf-search").value.trim() || "*") + ").index(\"*\").rollup(" + monQuoted(rollup);
  if (rollup !== "count") q += ", " + monQuoted($("mf-measure").value.trim());
  q += ")";
  const by = [$("mf-by1").value.trim(), $("mf-by2").value.trim()].filter(Boolean);
  if (by.length) q += ".by(" + by.map(monQuoted).join(",") + ")";
  q += ".last(" + monQuoted($("mf-window").value) + ") " + $("mf-op").value + " " + ($("mf-critical").value || "0");
  return q;
}

function monSyncQuery() {
  $("mf-measure").hidden = $("mf-rollup").value === "count";
  $("mf-query").value = monBuildQuery();
}

// Fills the builder fields from a query it can read; a query it cannot stays as written.
function monFillFromQuery(q) {
  const m = MON_QUERY_RE.exec(q || "");
  if (!m) return false;
  $("mf-search").value = m[1].replace(/\\(.)/g, "$1");
  $("mf-rollup").value = m[2];
  $("mf-measure").value = m[3] || "";
  const by = (m[4] || "").split(",").map((s) => s.trim().replace(/^"|"$/g, "")).filter(Boolean);
  $("mf-by1").value = by[0] || "";
  $("mf-by2").value = by[1] || "";
  if ([...$("mf-window").options].some((o) => o.value === m[5])) $("mf-window").value = m[5];
  $("mf-op").value = m[6];
  $("mf-critical").value = m[7];
  $("mf-measure").hidden = m[2] === "count";
  return true;
}

function numOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function monBody() {
  const thresholds = { critical: numOrNull("mf-critical") };
  for (const [k, id] of [["warning", "mf-warning"], ["critical_recovery", "mf-critical-recovery"], ["warning_recovery", "mf-warning-recovery"]]) {
    const v = numOrNull(id);
    if (v !== null) thresholds[k] = v;
  }
  const options = { thresholds };
  const notify = $("mf-nodata").checked;
  if (mstateMon.onMissingData) {
    // A monitor that uses Datadog's newer option keeps it: that option decides over notify_no_data.
    options.on_missing_data = notify ? "show_and_notify_no_data" : (mstateMon.onMissingData === "show_and_notify_no_data" ? "default" : mstateMon.onMissingData);
  } else {
    options.notify_no_data = notify;
    if (notify) options.no_data_timeframe = numOrNull("mf-nodata-minutes") || 10;
  }
  const renotify = numOrNull("mf-renotify");
  if (renotify) options.renotify_interval = renotify;
  return {
    name: $("mf-name").value.trim(),
    type: "log alert",
    query: $("mf-query").value.trim(),
    message: $("mf-message").value,
    options,
  };
}

function monOpenForm(monitor, prefillSearch) {
  mstateMon.editing = monitor ? monitor.id : null;
  mstateMon.onMissingData = monitor && monitor.options ? monitor.options.on_missing_data || null : null;
  $("mon-form-title").textContent = monitor ? "Edit monitor" : "New monitor";
  $("mon-form").reset();
  monShowError("mf-error", "");
  $("mf-status").textContent = "";
  if (monitor) {
    $("mf-name").value = monitor.name || "";
    $("mf-message").value = monitor.message || "";
    const o = monitor.options || {};
    const t = o.thresholds || {};
    $("mf-warning").value = t.warning ?? "";
    $("mf-critical-recovery").value = t.critical_recovery ?? "";
    $("mf-warning-recovery").value = t.warning_recovery ?? "";
    $("mf-nodata").checked = o.on_missing_data ? o.on_missing_data === "show_and_notify_no_data" : !!o.notify_no_data;
    if (o.no_data_timeframe) $("mf-nodata-minutes").value = o.no_data_timeframe;
    $("mf-renotify").value = o.renotify_interval || 0;
    monFillFromQuery(monitor.query);
    $("mf-query").value = monitor.query || "";
  } else {
    $("mf-search").value = prefillSearch || "";
    $("mf-critical").value = "10";
    $("mf-name").value = prefillSearch ? "Logs matching " + prefillSearch : "";
    $("mf-message").value = "{{value}} logs matched on {{group}}";
    monSyncQuery();
  }
  $("mon-form").hidden = false;
  $("mf-name").focus();
}

async function monSave(ev) {
  ev.preventDefault();
  const body = monBody();
  $("mf-status").textContent = "Saving…";
  try {
    const saved = mstateMon.editing === null ?
      await api("POST", "/api/v1/monitor", body) :
      await api("PUT", "/api/v1/monitor/" + encodeURIComponent(mstateMon.editing), body);
    $("mon-form").hidden = true;
    mstateMon.selected = saved && saved.id !== undefined ? saved.id : mstateMon.selected;
    // The form was opened from a link (`new=1`): drop it so a reload does not open it again.
    if (new URLSearchParams(location.hash.slice(1)).get("new")) history.replaceState(null, "", "#view=monitors");
    await monLoad();
  } catch (e) {
    $("mf-status").textContent = "Not saved";
    monShowError("mf-error", e.message);
  }
}

function monState(m) { return m.overall_state || "OK"; }

// Each group's state, from Datadog's `state.groups` (an object keyed by group).
function monGroups(m) {
  return Object.values((m.state && m.state.groups) || {});
}

function stateBadge(s) { return el("span", "mon-state ms-" + (MON_STATES[s] || "other"), s || "—"); }

function monRender() {
  const rows = $("mon-rows");
  clear(rows);
  $("mon-empty").hidden = mstateMon.list.length > 0;
  $("mon-table").hidden = !mstateMon.list.length;
  for (const m of mstateMon.list) {
    const tr = el("tr", m.id === mstateMon.selected ? "selected" : null);
    tr.dataset.id = m.id;
    const st = el("td");
    st.appendChild(stateBadge(monState(m)));
    if (monMuted(m)) st.appendChild(el("span", "pl-badge", "muted"));
    tr.appendChild(st);
    tr.appendChild(dataEl("td", "mon-name", m.name || "(unnamed)"));
    tr.appendChild(dataEl("td", "mon-query", m.query || ""));
    const groups = monGroups(m);
    const bad = groups.filter((g) => g.status && g.status !== "OK").length;
    tr.appendChild(el("td", null, groups.length ? (bad ? bad + " of " + groups.length + " not OK" : plural(groups.length, "group") + " OK") : "—"));
    const actions = el("td", "mon-actions");
    actions.appendChild(button("", "Edit", "Edit this monitor", (e) => { e.stopPropagation(); monOpenForm(m); }));
    actions.appendChild(button("", monMuted(m) ? "Unmute" : "Mute", "Muted monitors keep their states but notify no one",
      (e) => { e.stopPropagation(); monMute(m, !monMuted(m)); }));
    actions.appendChild(button("danger", "Delete", "Delete this monitor", (e) => { e.stopPropagation(); monDelete(m); }));
    tr.appendChild(actions);
    tr.addEventListener("click", () => { mstateMon.selected = m.id; monRender(); monDetail(m); });
    rows.appendChild(tr);
  }
}

function monMuted(m) { return !!m.muted; }

async function monLoad() {
  const gen = ++mstateMon.generation;
  $("mon-status").textContent = "Loading…";
  try {
    const r = await api("GET", "/api/v1/monitor");
    if (gen !== mstateMon.generation) return;
    mstateMon.list = r;
    monShowError("mon-error", "");
    $("mon-status").textContent = "Updated " + new Date().toLocaleTimeString();
    monRender();
    const sel = mstateMon.list.find((m) => m.id === mstateMon.selected);
    if (sel) monDetail(sel); else $("mon-detail").hidden = true;
  } catch (e) {
    $("mon-status").textContent = "";
    monShowError("mon-error", "Could not load the monitors: " + e.message);
  }
}

async function monMute(m, mute) {
  try {
    await api("POST", "/api/v1/monitor/" + encodeURIComponent(m.id) + (mute ? "/mute" : "/unmute"), {});
    await monLoad();
  } catch (e) { monShowError("mon-error", e.message); }
}

async function monDelete(m) {
  if (!window.confirm("Delete the monitor " + plainText(m.name) + "?")) return;
  try {
    await api("DELETE", "/api/v1/monitor/" + encodeURIComponent(m.id));
    if (mstateMon.selected === m.id) mstateMon.selected = null;
    await monLoad();
  } catch (e) { monShowError("mon-error", e.message); }
}

async function monDetail(m) {
  const box = $("mon-detail");
  clear(box);
  box.hidden = false;
  box.appendChild(dataEl("h3", null, m.name || "(unnamed)"));
  box.appendChild(dataEl("pre", "mon-q", m.query || ""));
  if (m.message) box.appendChild(dataEl("pre", "mon-msg", m.message));
  const bar = el("div", "pl-toolbar");
  const evalOut = el("div", "mon-eval");
  evalOut.id = "mon-eval";
  bar.appendChild(button("", "Evaluate now", "The value per group now, without changing any state", () => monEvaluate(m, evalOut)));
  bar.lastChild.id = "mon-evaluate";
  const logsLink = el("a", null, "Show the logs");
  const q = MON_QUERY_RE.exec(m.query || "");
  if (q) logsLink.href = "#" + new URLSearchParams({ q: q[1].replace(/\\(.)/g, "$1"), range: "1h" }).toString();
  bar.appendChild(logsLink);
  box.appendChild(bar);
  box.appendChild(evalOut);
  box.appendChild(el("h4", null, "Groups"));
  const groups = monGroups(m);
  if (!groups.length) {
    // A monitor just created has no state until the next round: show what it sees now.
    box.appendChild(el("div", "note", "Not evaluated yet, or no group has matched: the values now are above."));
    monEvaluate(m, evalOut);
  }
  else {
    const t = el("table", "mon-groups");
    for (const g of groups) {
      const tr = el("tr");
      const td = el("td");
      td.appendChild(stateBadge(g.status));
      tr.appendChild(td);
      tr.appendChild(dataEl("td", null, g.name));
      tr.appendChild(el("td", "num", g.value === undefined || g.value === null ? "" : String(g.value)));
      t.appendChild(tr);
    }
    box.appendChild(t);
  }
  box.appendChild(el("h4", null, "History"));
  const hist = el("div", "mon-history");
  hist.id = "mon-history";
  hist.appendChild(el("div", "note", "Loading…"));
  box.appendChild(hist);
  try {
    const r = await api("GET", "/api/v1/monitor/" + encodeURIComponent(m.id) + "/history");
    const list = r.history || [];
    clear(hist);
    if (!list.length) { hist.appendChild(el("div", "note", "No transitions yet.")); return; }
    const ul = el("ul");
    for (const h of list) {
      const li = el("li");
      li.appendChild(el("span", "note", window.CairnExplorer.fmtTime(h.date) + " "));
      li.appendChild(dataEl("span", null, (h.group || "*") + ": "));
      li.appendChild(stateBadge(h.from));
      li.appendChild(document.createTextNode(" → "));
      li.appendChild(stateBadge(h.to));
      if (h.value !== undefined && h.value !== null) li.appendChild(el("span", "note", " value " + String(h.value)));
      ul.appendChild(li);
    }
    hist.appendChild(ul);
  } catch (e) {
    clear(hist);
    hist.appendChild(el("div", "pl-err", "Could not load the history: " + e.message));
  }
}

async function monEvaluate(m, out) {
  clear(out);
  out.appendChild(el("div", "note", "Evaluating…"));
  try {
    const r = await api("POST", "/api/v1/monitor/" + encodeURIComponent(m.id) + "/evaluate", {});
    clear(out);
    const groups = r.groups || [];
    if (!groups.length) { out.appendChild(el("div", "note", "No logs match in the window: no group has a value.")); return; }
    const t = el("table", "mon-groups");
    for (const g of groups) {
      const tr = el("tr");
      const td = el("td");
      td.appendChild(stateBadge(g.state));
      tr.appendChild(td);
      tr.appendChild(dataEl("td", null, g.group));
      tr.appendChild(el("td", "num", g.value === undefined || g.value === null ? "no data" : String(g.value)));
      t.appendChild(tr);
    }
    out.appendChild(t);
  } catch (e) {
    clear(out);
    out.appendChild(el("div", "pl-err", e.message));
  }
}

function openMonitors(p) {
  clearInterval(mstateMon.timer);
  mstateMon.timer = setInterval(() => { if ($("monitors-view").hidden) clearInterval(mstateMon.timer); else monLoad(); }, MON_REFRESH_MS);
  monLoad();
  if (p.get("new")) monOpenForm(null, p.get("q") || "");
}

document.addEventListener("DOMContentLoaded", () => {
  window.CairnExplorer.view("monitors", openMonitors);
  $("mon-new").addEventListener("click", () => monOpenForm(null, ""));
  $("mon-reload").addEventListener("click", monLoad);
  $("mon-form").addEventListener("submit", monSave);
  $("mf-cancel").addEventListener("click", () => {
    $("mon-form").hidden = true;
    if (new URLSearchParams(location.hash.slice(1)).get("new")) history.replaceState(null, "", "#view=monitors");
  });
  for (const id of ["mf-search", "mf-rollup", "mf-measure", "mf-by1", "mf-by2", "mf-window", "mf-op", "mf-critical"]) {
    $(id).addEventListener("input", monSyncQuery);
    $(id).addEventListener("change", monSyncQuery);
  }
});
