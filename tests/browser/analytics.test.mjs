// "Visualize as": timeseries, top list and table over the current query (issue 11 item 2),
// in headless Chromium against the intake run.sh started.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, marker, ingest, call, available, waitIndexed, openExplorer, search, assertNoInjection } from "./fe2-helpers.mjs";

const M = marker("an");
const SVC = { a: M + "-a", b: M + "-b", c: M + "-c" };
// Markup and a right-to-left override, which must show as a marker and never apply.
const XSS_GROUP = `<img src=x onerror="window.__pwned='group'"> \u202Egnp.exe`;
// What the page shows for it: the control as a visible marker.
const XSS_SHOWN = XSS_GROUP.replace("\u202E", "<U+202E>");
const Q = "@an_marker:" + M;
let ctx, page;

// a: 30 logs, durations 10..300; b: 20 logs, durations 5..100; c: 10 logs, no duration.
function fixtures() {
  const now = Date.now();
  const logs = [];
  const add = (service, i, extra) => logs.push(Object.assign({
    message: `analytics ${service} ${i}`, service, hostname: "an-host", status: i % 4 === 0 ? "error" : "info",
    timestamp: now - 30_000 - i * 7_000, an_marker: M, an_grp: i % 2 ? XSS_GROUP : "plain",
  }, extra));
  for (let i = 0; i < 30; i++) add(SVC.a, i, { an_ms: (i + 1) * 10, an_user: "u" + (i % 7) });
  for (let i = 0; i < 20; i++) add(SVC.b, i, { an_ms: (i + 1) * 5, an_user: "u" + (i % 3) });
  for (let i = 0; i < 10; i++) add(SVC.c, i, {});
  return logs;
}

before(async () => {
  await ingest(fixtures());
  await waitIndexed(Q, 60);
  ctx = await openExplorer("analytics");
  page = ctx.page;
});
after(async () => { if (ctx) await ctx.context.close(); });

async function viz(v) {
  await page.selectOption("#viz", v);
  await page.waitForFunction((v) => window.CairnExplorer.state().viz === v, v);
}
async function by(facet1, facet2) {
  await page.selectOption("#an-by1", facet1);
  await page.waitForFunction((f) => (window.CairnExplorer.state().an.by || [])[0] === f, facet1);
  if (facet2) {
    await page.selectOption("#an-by2", facet2);
    await page.waitForFunction((f) => (window.CairnExplorer.state().an.by || [])[1] === f, facet2);
  }
}
const settled = () => page.waitForFunction(() => !document.querySelector("#analytics").hasAttribute("aria-busy"));

test("the timeseries draws one line per group with labelled axes and a legend", async () => {
  await search(page, Q);
  await viz("timeseries");
  await by("service");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-series").length === 3, null, { timeout: 10_000 });
  assert.equal(await page.locator("#list").isHidden(), true, "the list is hidden while a chart is shown");
  const legend = await page.locator("#analytics .an-legend-label").allTextContents();
  assert.deepEqual(legend.sort(), [SVC.a, SVC.b, SVC.c]);
  assert.ok(await page.locator("#analytics .an-xtick").count() >= 2, "the time axis has labels");
  assert.ok(await page.locator("#analytics .an-ytick").count() >= 2, "the value axis has labels");
  assert.equal(await page.locator("#analytics .an-ytitle").textContent(), "count");
  assert.match(await page.locator("#analytics .an-xtitle").textContent(), /^Time \((UTC|local)\)$/);
  // Every log is in exactly one point of its line.
  const sums = await page.evaluate(() => [...document.querySelectorAll("#analytics .an-series")].map((g) =>
    [...g.querySelectorAll("circle title")].reduce((n, t) => n + Number(t.textContent.split(": ").pop()), 0)));
  assert.deepEqual(sums.sort((x, y) => x - y), [10, 20, 30]);
  // Hovering reads out every line at the bucket under the pointer.
  const box = await page.locator("#analytics .an-svg").boundingBox();
  const lastDot = await page.locator("#analytics .an-series circle").last().boundingBox();
  await page.mouse.move(lastDot.x + lastDot.width / 2, box.y + box.height / 2);
  await page.waitForSelector("#analytics .an-tip:not([hidden])");
  assert.equal(await page.locator("#analytics .an-tip .an-tip-row").count(), 3);
  assert.deepEqual((await page.locator("#analytics .an-tip .an-tip-label").allTextContents()).sort(), [SVC.a, SVC.b, SVC.c]);
  await page.screenshot({ path: `${ARTIFACTS}/analytics-timeseries.png` });
  await page.mouse.move(box.x + 2, box.y + 2);
  await page.waitForSelector("#analytics .an-tip", { state: "hidden" });
  await page.locator("#analytics .an-legend-item", { hasText: SVC.b }).click();
  await page.waitForFunction((s) => window.CairnExplorer.state().query.includes("service:" + s), SVC.b);
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-series").length === 1);
  assert.equal(await page.locator("#viz").inputValue(), "timeseries");
});

test("the top list shows a bar per group, largest first, and a click filters by it", async () => {
  await search(page, Q);
  await viz("toplist");
  await by("service");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-top").length === 3);
  const labels = await page.locator("#analytics .an-top-label").allTextContents();
  const values = await page.locator("#analytics .an-top-value").allTextContents();
  assert.deepEqual(labels, [SVC.a, SVC.b, SVC.c]);
  assert.deepEqual(values, ["30", "20", "10"]);
  const widths = await page.evaluate(() => [...document.querySelectorAll("#analytics .an-top-bar")].map((b) => b.style.width));
  assert.equal(parseFloat(widths[0]), 100);
  assert.ok(Math.abs(parseFloat(widths[2]) - 100 / 3) < 0.01, widths.join(","));
  await page.screenshot({ path: `${ARTIFACTS}/analytics-toplist.png` });
  await page.locator("#analytics .an-top").nth(2).click();
  await page.waitForFunction((s) => window.CairnExplorer.state().query === `@an_marker:${s.m} service:${s.c}`, { m: M, c: SVC.c });
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-top").length === 1);
});

test("the table lists group values with computed columns", async () => {
  await search(page, Q);
  await viz("table");
  await by("service");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-row").length === 3);
  const heads = await page.locator("#analytics .an-table th").allTextContents();
  assert.deepEqual(heads, ["service", "count"]);
  const cells = await page.evaluate(() => [...document.querySelectorAll("#analytics .an-row")].map((r) =>
    [...r.cells].map((c) => c.textContent)));
  assert.deepEqual(cells, [[SVC.a, "30"], [SVC.b, "20"], [SVC.c, "10"]]);
  await page.screenshot({ path: `${ARTIFACTS}/analytics-table.png` });
});

test("measures: avg, percentiles and cardinality by two facets", async (t) => {
  if (!await available(t, "measures (BE1)", "POST", "/api/v2/logs/analytics/aggregate",
    { filter: { query: Q, from: "now-1h", to: "now" }, compute: [{ aggregation: "avg", metric: "@an_ms", type: "total" }],
      group_by: [{ facet: "service" }, { facet: "status" }] })) return;
  if (!await available(t, "attributes (BE1)", "GET", "/api/v2/logs/attributes?prefix=an_&limit=100")) return;
  // c has no duration: its groups would hold null measures (shown as "–"); left out here.
  await search(page, Q + " -service:" + SVC.c);
  await viz("table");
  await page.selectOption("#an-agg", "avg");
  await page.waitForFunction(() => [...document.querySelectorAll("#an-measure option")].some((o) => o.value === "@an_ms"));
  await page.selectOption("#an-measure", "@an_ms");
  await by("service");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-row").length === 2);
  await settled();
  const cells = await page.evaluate(() => [...document.querySelectorAll("#analytics .an-row")].map((r) =>
    [...r.cells].map((c) => c.textContent)));
  // avg of 10..300 is 155, of 5..100 is 52.5.
  assert.deepEqual(cells, [[SVC.a, "30", "155"], [SVC.b, "20", "52.5"]]);
  assert.deepEqual(await page.locator("#analytics .an-table th").allTextContents(), ["service", "count", "avg(@an_ms)"]);

  await page.selectOption("#an-agg", "cardinality");
  await page.selectOption("#an-measure", "@an_user");
  await page.waitForFunction(() => window.CairnExplorer.state().an.measure === "@an_user");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-row").length === 2);
  await settled();
  const card = await page.evaluate(() => [...document.querySelectorAll("#analytics .an-row")].map((r) => r.cells[2].textContent));
  assert.deepEqual(card, ["7", "3"]);

  await page.selectOption("#an-agg", "pc90");
  await page.selectOption("#an-measure", "@an_ms");
  await by("service", "status");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-row").length === 4);
  await settled();
  const heads = await page.locator("#analytics .an-table th").allTextContents();
  assert.deepEqual(heads, ["service", "status", "count", "pc90(@an_ms)"]);
  const groups = await page.evaluate(() => [...document.querySelectorAll("#analytics .an-row")].map((r) => r.cells[0].textContent + "/" + r.cells[1].textContent));
  assert.deepEqual(groups.sort(), [SVC.a + "/error", SVC.a + "/info", SVC.b + "/error", SVC.b + "/info"].sort());
  await page.screenshot({ path: `${ARTIFACTS}/analytics-measures.png` });
  // Clicking a row filters on both of its values.
  const first = page.locator("#analytics .an-row").first();
  const want = await first.getAttribute("data-query");
  assert.match(want, /^service:\S+ status:(error|info)$/);
  await first.click();
  await page.waitForFunction((w) => window.CairnExplorer.state().query.endsWith(w), want);

  await viz("timeseries");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-series").length === 1);
  assert.equal(await page.locator("#analytics .an-ytitle").textContent(), "pc90(@an_ms)");
});

// The measure controls against answers shaped exactly as contracts A and B say, so the page
// is checked on any build: the pickers, the request sent, two-facet tables, gaps in a line.
test("measure pickers, two group-bys and gaps against contract-shaped answers (mocked API)", async () => {
  const asked = [];
  await page.route("**/api/v2/logs/attributes*", (route) => route.fulfill({ status: 200, contentType: "application/json",
    body: JSON.stringify({ data: [{ path: "an_ms", type: "number", count: 50 }, { path: "an_user", type: "string", count: 50 },
      { path: "an_grp", type: "string", count: 60 }] }) }));
  await page.route("**/api/v2/logs/analytics/aggregate", async (route) => {
    const body = route.request().postDataJSON();
    const c = body.compute || [];
    if (!c.some((x) => x.aggregation && x.aggregation !== "count") && (body.group_by || []).length < 2) return route.continue();
    asked.push(body);
    const t0 = Date.now() - 300_000;
    const iso = (k) => new Date(t0 + k * 60_000).toISOString();
    const buckets = c[0].type === "timeseries"
      ? [{ by: { service: SVC.a }, computes: { c0: [{ time: iso(0), value: 10 }, { time: iso(1), value: null }, { time: iso(2), value: 30.5 }, { time: iso(3), value: 20 }] } }]
      : [{ by: { service: SVC.a, status: "info" }, computes: { c0: 22, c1: 161.25 } },
        { by: { service: SVC.b, status: "error" }, computes: { c0: 5, c1: null } },
        { by: { service: SVC.a, status: "error" }, computes: { c0: 8, c1: 1234.5678 } }];
    return route.fulfill({ status: 200, contentType: "application/json",
      body: JSON.stringify({ data: { buckets }, meta: { elapsed: 3, status: "done" } }) });
  });
  try {
    await page.reload();
    await page.waitForSelector("#viz");
    await search(page, Q);
    await viz("table");
    await page.selectOption("#an-agg", "avg");
    await page.waitForFunction(() => window.CairnExplorer.state().an.measure === "@an_ms");
    const measures = await page.locator("#an-measure option").evaluateAll((o) => o.map((x) => x.value));
    assert.deepEqual(measures, ["@an_ms"], "only numeric attributes are measures");
    await by("service", "status");
    await page.waitForFunction(() => document.querySelectorAll("#analytics .an-row").length === 3);
    await settled();
    const last = asked[asked.length - 1];
    assert.deepEqual(last.compute, [{ aggregation: "count", type: "total" }, { aggregation: "avg", metric: "@an_ms", type: "total" }]);
    assert.deepEqual(last.group_by.map((g) => [g.facet, g.limit, g.sort.aggregation, g.sort.metric, g.sort.order]),
      [["service", 10, "avg", "@an_ms", "desc"], ["status", 10, "avg", "@an_ms", "desc"]]);
    assert.equal(last.filter.query, Q);
    assert.deepEqual(await page.locator("#analytics .an-table th").allTextContents(), ["service", "status", "count", "avg(@an_ms)"]);
    const cells = await page.evaluate(() => [...document.querySelectorAll("#analytics .an-row")].map((r) => [...r.cells].map((c) => c.textContent)));
    assert.deepEqual(cells, [[SVC.a, "error", "8", "1,234.6"], [SVC.a, "info", "22", "161.3"], [SVC.b, "error", "5", "–"]]);
    assert.equal(await page.locator("#analytics .an-row").first().getAttribute("data-query"), `service:${SVC.a} status:error`);
    // Cardinality takes any facet, not only numbers.
    await page.selectOption("#an-agg", "cardinality");
    const cardinal = await page.locator("#an-measure option").evaluateAll((o) => o.map((x) => x.value));
    assert.ok(["host", "@an_user", "@an_ms"].every((m) => cardinal.includes(m)), cardinal.join(","));
    await page.selectOption("#an-agg", "pc95");
    await page.waitForFunction(() => window.CairnExplorer.state().an.agg === "pc95");
    await viz("timeseries");
    await page.selectOption("#an-interval", "1m");
    await page.waitForFunction(() => window.CairnExplorer.state().an.interval === "1m");
    await page.waitForFunction(() => document.querySelectorAll("#analytics .an-series").length === 1);
    const ts = asked[asked.length - 1];
    assert.deepEqual(ts.compute, [{ aggregation: "pc95", metric: "@an_ms", type: "timeseries", interval: "1m" }]);
    // The null point breaks the line instead of drawing it at zero.
    const d = await page.locator("#analytics .an-line").getAttribute("d");
    assert.equal((d.match(/M/g) || []).length, 2, d);
    assert.equal(await page.locator("#analytics .an-dot").count(), 3);
    assert.equal(await page.locator("#analytics .an-ytitle").textContent(), "pc95(@an_ms)");
    await page.screenshot({ path: `${ARTIFACTS}/analytics-measures-mocked.png` });
  } finally {
    await page.unroute("**/api/v2/logs/analytics/aggregate");
    await page.unroute("**/api/v2/logs/attributes*");
    await page.evaluate(() => window.CairnExplorer.set({ viz: "list", an: {} }));
  }
});

test("group values with markup are shown as text in every view, also in dark mode", async () => {
  await search(page, Q);
  await page.evaluate(() => window.CairnExplorer.set({ viz: "toplist", an: { agg: "count", by: ["@an_grp"], limit: 10 } }));
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-top").length === 2);
  const labels = await page.locator("#analytics .an-top-label").allTextContents();
  assert.deepEqual(labels.sort(), [XSS_SHOWN, "plain"].sort());
  const q = await page.locator("#analytics .an-top", { hasText: "onerror" }).getAttribute("data-query");
  assert.equal(q, `@an_grp:"<img src=x onerror=\\"window.__pwned='group'\\"> \u202Egnp.exe"`);
  assert.equal(await page.locator("#analytics .an-top .bidi").count(), 1, "the override is a marker");
  await assertNoInjection(page);
  await viz("table");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-row").length === 2);
  assert.ok((await page.locator("#analytics .an-td-group").allTextContents()).includes(XSS_SHOWN));
  await viz("timeseries");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-series").length === 2);
  assert.ok((await page.locator("#analytics .an-legend-label").allTextContents()).includes(XSS_SHOWN));
  await assertNoInjection(page);
  await page.evaluate(() => { document.documentElement.dataset.theme = "dark"; });
  await page.screenshot({ path: `${ARTIFACTS}/analytics-dark.png` });
  // The chart follows the theme: its tick labels take the theme's muted colour.
  const colours = await page.evaluate(() => {
    const tick = getComputedStyle(document.querySelector("#analytics .an-tick")).fill;
    const muted = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim();
    return { tick, muted };
  });
  assert.ok(colours.muted, "the theme defines --muted");
  await page.evaluate(() => { delete document.documentElement.dataset.theme; });
  await viz("list");
  await page.waitForFunction(() => !document.querySelector("#list").hidden && document.querySelector("#analytics").hidden);
  assert.deepEqual(ctx.errors, []);
  assert.deepEqual(ctx.dialogs, []);
});
