// window.CairnExplorer, the interface analytics.js builds on (issue 11 contract): state(),
// set(), api(), on("change"), fmtTime(), filterBy(); #viz-bar and #analytics.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ingest, open, hashOf, waitRows, waitQuery, unique } from "./helpers.mjs";

const SERVICE = unique("ifc");
const base = `service:${SERVICE}`;
let context, page, errors;

before(async () => {
  const t0 = Date.now() - 2 * 3600_000;
  await ingest([0, 1, 2].map((n) => ({ message: `ifc ${n}`, timestamp: t0 + n * 1000, service: SERVICE, status: "info", n })));
  ({ context, page, errors } = await open("interface", hashOf({ q: base, range: "4h" })));
  await waitRows(page, 3);
  await page.evaluate(() => {
    window.__changes = [];
    window.CairnExplorer.on("change", (s) => window.__changes.push(s));
  });
});

after(async () => { if (context) await context.close(); });

test("the page holds the containers analytics.js fills", async () => {
  assert.equal(await page.locator("#viz-bar").count(), 1);
  assert.equal(await page.locator("#analytics").count(), 1);
  assert.ok(await page.locator("#analytics").isHidden());
  // #viz-bar is above the chart.
  const order = await page.evaluate(() => !!(document.querySelector("#viz-bar").compareDocumentPosition(document.querySelector("#chart-wrap")) & Node.DOCUMENT_POSITION_FOLLOWING));
  assert.ok(order);
  const links = await page.evaluate(() => [...document.querySelectorAll("link[rel=stylesheet], script[src]")].map((e) => e.getAttribute("href") || e.getAttribute("src")));
  assert.deepEqual(links, ["/app.css", "/analytics.css", "/admin.css", "/app.js", "/metrics.js", "/analytics.js",
    "/pipelines.js", "/monitors.js"]);
});

test("state() is a copy of the view in the API's terms", async () => {
  const s = await page.evaluate(() => window.CairnExplorer.state());
  assert.deepEqual(s, { query: base, range: "4h", from: "now-4h", to: "now", facets: [], columns: [], viz: "list", an: {}, tz: "local" });
  const untouched = await page.evaluate(() => { const s = window.CairnExplorer.state(); s.query = "changed"; s.facets.push("x"); return window.CairnExplorer.state(); });
  assert.equal(untouched.query, base);
  assert.deepEqual(untouched.facets, []);
});

test("set() applies, records a history entry, tells listeners; viz hides the list", async () => {
  await page.evaluate(() => window.CairnExplorer.set({ viz: "timeseries", an: { measure: "@n", aggregation: "avg" } }));
  assert.ok(await page.locator("#list").isHidden());
  assert.ok(await page.locator("#list-head").isHidden());
  assert.ok(await page.locator("#more").isHidden());
  assert.equal(await page.getAttribute("#analytics", "hidden"), null, "#analytics is shown (analytics.js fills it)");
  const p = new URLSearchParams(new URL(page.url()).hash.slice(1));
  assert.equal(p.get("viz"), "timeseries");
  assert.deepEqual(JSON.parse(p.get("an")), { measure: "@n", aggregation: "avg" });
  let changes = await page.evaluate(() => window.__changes);
  assert.equal(changes.at(-1).viz, "timeseries");
  assert.deepEqual(changes.at(-1).an, { measure: "@n", aggregation: "avg" });
  // Back restores the list, and tells the listeners.
  await page.goBack();
  await waitRows(page, 3);
  assert.ok(await page.locator("#analytics").isHidden());
  changes = await page.evaluate(() => window.__changes);
  assert.equal(changes.at(-1).viz, "list");
  // The whole state comes back with Forward (or a reload of the link).
  await page.goForward();
  await page.waitForFunction(() => window.CairnExplorer.state().viz === "timeseries");
  await page.reload();
  await page.waitForFunction(() => window.CairnExplorer && window.CairnExplorer.state().an.measure === "@n");
  await page.evaluate(() => {
    window.__changes = [];
    window.CairnExplorer.on("change", (s) => window.__changes.push(s));
    window.CairnExplorer.set({ viz: "list" }, { replace: true });
  });
  await waitRows(page, 3);
  const len = await page.evaluate(() => history.length);
  await page.evaluate(() => window.CairnExplorer.set({ an: { x: 1 } }, { replace: true }));
  assert.equal(await page.evaluate(() => history.length), len, "replace makes no new entry");
});

test("filterBy() ANDs a fragment once", async () => {
  await page.evaluate(() => window.CairnExplorer.filterBy("@n:1"));
  await waitQuery(page, `${base} @n:1`);
  await waitRows(page, 1);
  await page.evaluate(() => window.CairnExplorer.filterBy("@n:1"));
  await page.waitForTimeout(300);
  assert.equal(await page.inputValue("#query"), `${base} @n:1`);
  const changes = await page.evaluate(() => window.__changes);
  assert.equal(changes.at(-1).query, `${base} @n:1`);
});

test("api() sends the Explorer's auth and rejects with the server's detail", async () => {
  const r = await page.evaluate(() => window.CairnExplorer.api("POST", "/api/v2/logs/events/search",
    { filter: { query: "*", from: "now-1h", to: "now" }, page: { limit: 1 } }));
  assert.ok(Array.isArray(r.data));
  const err = await page.evaluate(() => window.CairnExplorer.api("POST", "/api/v2/logs/events/search",
    { filter: { query: "(", from: "now-1h", to: "now" } }).then(() => null, (e) => e instanceof Error && e.message));
  assert.match(err, /query error/);
});

test("fmtTime() follows the UTC/local toggle", async () => {
  const t = Date.UTC(2026, 4, 1, 12, 0, 0, 5);
  await page.evaluate(() => window.CairnExplorer.set({ tz: "utc" }));
  assert.equal(await page.evaluate((t) => window.CairnExplorer.fmtTime(t), t), "2026-05-01 12:00:00.005");
  assert.equal(await page.evaluate(() => window.CairnExplorer.fmtTime("2026-05-01T12:00:00.005Z")), "2026-05-01 12:00:00.005");
  assert.equal((await page.evaluate(() => window.CairnExplorer.state())).tz, "utc");
  await page.evaluate(() => window.CairnExplorer.set({ tz: "local" }));
  assert.deepEqual(errors, []);
});
