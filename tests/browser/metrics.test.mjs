// The Explorer's Metrics view in a real headless Chromium against a real intake (run.sh):
// metric name autocompletion, scope and group-by, one line per group with legend and hover
// values, the service-check grid, the events timeline, and the link from a log to its host's
// metrics and events. The data goes in through the intake's own Datadog endpoints.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./launch.mjs";

const URL = process.env.INTAKE_URL;
const TOKEN = process.env.INTAKE_TOKEN;
const ARTIFACTS = process.env.ARTIFACTS;
const XSS = `<img src=x onerror="window.__pwned='event'">`;

let context, page;
const pageErrors = [];
const dialogs = [];

async function post(path, body, status) {
  const resp = await fetch(URL + path, {
    method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body),
  });
  assert.equal(resp.status, status, path + ": " + await resp.text());
}

// Constant values per host, so every aggregation has an exact expected answer: avg 20, sum 40,
// by host 10 and 30, whatever the bucket size.
async function fixtures() {
  const now = Math.floor(Date.now() / 1000);
  const start = Math.floor((now - 600) / 15) * 15;
  const points = (v) => Array.from({ length: 40 }, (_, i) => [start + i * 15, v]).filter(([t]) => t <= now);
  await post("/api/v1/series", { series: [
    { metric: "mtest.requests", type: "gauge", host: "web-1", tags: ["service:shop", "env:prod"], points: points(10) },
    { metric: "mtest.requests", type: "gauge", host: "web-2", tags: ["service:shop", "env:prod"], points: points(30) },
    { metric: "mtest.queue", type: "gauge", host: "db-1", tags: ["service:db", "env:prod"], points: points(5) },
  ] }, 202);
  await post("/api/v1/check_run", [
    { check: "shop.can_connect", host_name: "web-1", timestamp: now, status: 0, message: "", tags: ["service:shop"] },
    { check: "shop.can_connect", host_name: "web-2", timestamp: now, status: 2, message: "connection refused " + XSS, tags: ["service:shop"] },
    { check: "db.up", host_name: "db-1", timestamp: now, status: 1, message: "slow", tags: ["service:db"] },
  ], 202);
  await post("/api/v1/events", { title: "deploy " + XSS, text: "version 2\nrolled out", host: "web-1",
    tags: ["service:shop"], alert_type: "success", date_happened: now - 120 }, 202);
  await post("/api/v1/events", { title: "db failover", text: "", host: "db-1", tags: ["service:db"],
    alert_type: "error", date_happened: now - 240 }, 202);
  await post("/api/v2/logs", [{ message: "checkout failed", timestamp: Date.now() - 60_000, hostname: "web-1",
    service: "shop", ddsource: "python", status: "error" }], 202);
}

before(async () => {
  assert.ok(URL && TOKEN, "INTAKE_URL and INTAKE_TOKEN are set by run.sh");
  await fixtures();
  context = await launch("metrics", { width: 1500, height: 1000 });
  page = context.pages()[0] || await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  await page.goto(URL + "/?token=" + TOKEN);
});

after(async () => {
  if (context) await context.close();
});

const queryText = () => page.locator("#m-query .m-query-text").textContent();
const lines = () => page.locator("#m-chart svg path.line").count();
const legend = async () => {
  const rows = page.locator("#m-legend .lg-row:not(.lg-head)");
  const out = [];
  for (let i = 0; i < await rows.count(); i++) {
    out.push({ label: await rows.nth(i).locator(".lg-label").textContent(), avg: await rows.nth(i).locator(".lg-avg").textContent() });
  }
  return out;
};
async function waitQuery(text) {
  await page.waitForFunction((t) => {
    const q = document.querySelector("#m-query .m-query-text");
    return q && q.textContent === t && document.querySelector("#m-chart-wrap").getAttribute("aria-busy") === "false" &&
      document.querySelector("#m-legend .lg-row:not(.lg-head)");
  }, text, { timeout: 10_000 });
}

test("the Metrics tab lists the metrics and completes a metric name", async () => {
  await page.click("#nav-metrics");
  await page.waitForSelector('#metric-names li[data-value="mtest.requests"]');
  const names = await page.locator("#metric-names li").allTextContents();
  assert.ok(names.includes("mtest.queue") && names.includes("mtest.requests"), names.join(" "));
  await page.fill("#m-name", "");
  await page.type("#m-name", "reque");
  await page.waitForSelector("#m-name-suggest:not([hidden]) li");
  const suggested = await page.locator("#m-name-suggest li").allTextContents();
  assert.ok(suggested.includes("mtest.requests"), suggested.join(" "));
  assert.ok(!suggested.includes("mtest.queue"), "only names holding the text are offered");
  // Keyboard: down to the first suggestion, Enter takes it and graphs.
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Enter");
  await waitQuery("avg:mtest.requests{*}");
  assert.equal(await lines(), 1);
  assert.deepEqual(await legend(), [{ label: "*", avg: "20" }]);
  assert.match(page.url(), /view=metrics/);
  assert.match(page.url(), /m=mtest.requests/);
});

test("group-by draws one line per group with a legend and hover values", async () => {
  await page.click("#m-by");
  await page.type("#m-by", "ho");
  await page.waitForSelector('#m-by-suggest:not([hidden]) li[data-value="host"]');
  await page.click('#m-by-suggest li[data-value="host"]');
  await waitQuery("avg:mtest.requests{*} by {host}");
  assert.equal(await lines(), 2);
  assert.deepEqual(await legend(), [{ label: "host:web-1", avg: "10" }, { label: "host:web-2", avg: "30" }]);
  // Axis labels exist on both axes.
  assert.ok(await page.locator("#m-chart svg text.x-label").count() >= 2);
  assert.ok(await page.locator("#m-chart svg text.y-label").count() >= 2);
  // Hover in the middle of the plot: the values of both lines at that time, largest first.
  const box = await page.locator("#m-chart svg rect.overlay").boundingBox();
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
  await page.waitForSelector("#m-tooltip:not([hidden]) .tip-row");
  const tip = await page.locator("#m-tooltip .tip-row").allTextContents();
  assert.deepEqual(tip, ["host:web-230", "host:web-110"]);
  if (ARTIFACTS) await page.screenshot({ path: `${ARTIFACTS}/metrics-group-by.png`, fullPage: true });
  // A legend click hides that line, a second shows it again.
  await page.mouse.move(0, 0);
  await page.click('#m-legend .lg-row[data-series="1"]');
  assert.equal(await lines(), 1);
  await page.click('#m-legend .lg-row[data-series="1"]');
  assert.equal(await lines(), 2);
  // Space aggregation.
  await page.selectOption("#m-agg", "sum");
  await page.fill("#m-by", "");
  await page.click("#m-graph");
  await waitQuery("sum:mtest.requests{*}");
  assert.deepEqual(await legend(), [{ label: "*", avg: "40" }]);
  await page.selectOption("#m-agg", "avg");
});

test("a scope narrows the series, the service checks and the events", async () => {
  // Tag completion from the metric's own tags.
  await page.fill("#m-by", "host");
  await page.click("#m-scope");
  await page.type("#m-scope", "host:web-2");
  await page.waitForSelector('#m-scope-suggest:not([hidden]) li[data-value="host:web-2"]');
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Enter");
  await waitQuery("avg:mtest.requests{host:web-2} by {host}");
  assert.deepEqual(await legend(), [{ label: "host:web-2", avg: "30" }]);
  // Service checks and events of host web-2 only: the failing check, no event.
  await page.waitForSelector("#sc-grid .sc-cell");
  const cells = page.locator("#sc-grid .sc-cell");
  assert.equal(await cells.count(), 1);
  assert.equal(await cells.first().getAttribute("data-status"), "CRITICAL");
  assert.match(await cells.first().getAttribute("title"), /connection refused <img src=x/);
  await page.waitForSelector("#ev-list .empty");

  await page.fill("#m-scope", "service:shop");
  await page.fill("#m-by", "");
  await page.click("#m-graph");
  await waitQuery("avg:mtest.requests{service:shop}");
  await page.waitForFunction(() => document.querySelectorAll("#sc-grid .sc-cell").length === 2);
  const grid = await page.locator("#sc-grid .sc-name").allTextContents();
  assert.deepEqual(grid, ["shop.can_connect"], "db.up is outside the scope");
  const statuses = await page.locator("#sc-grid .sc-cell").evaluateAll((cs) => cs.map((c) => c.dataset.status));
  assert.deepEqual(statuses, ["OK", "CRITICAL"]);
  // The event: listed as text, marked on the strip and on the chart.
  await page.waitForSelector("#ev-list .ev-row");
  assert.deepEqual(await page.locator("#ev-list .ev-title").allTextContents(), ["deploy " + XSS]);
  assert.equal(await page.locator("#ev-strip .ev-dot.st-ok").count(), 1);
  assert.equal(await page.locator("#m-chart svg line.event-mark").count(), 1);
  await page.click("#ev-list .ev-row");
  assert.equal(await page.locator("#ev-list .ev-more pre").textContent(), "version 2\nrolled out");
  // The metric list shows only what the scope reports.
  const names = await page.locator("#metric-names li").allTextContents();
  assert.deepEqual(names, ["mtest.requests"]);
  if (ARTIFACTS) await page.screenshot({ path: `${ARTIFACTS}/metrics-scope.png`, fullPage: true });
});

test("a bad query shows the error and clears the stale chart", async () => {
  await page.fill("#m-scope", "service:shop}");
  await page.click("#m-graph");
  await page.waitForSelector("#m-error:not([hidden])");
  assert.match(await page.locator("#m-error").textContent(), /column \d+/);
  assert.equal(await lines(), 0);
  assert.equal(await page.locator("#m-legend .lg-row").count(), 0);
  await page.fill("#m-scope", "");
  await page.click("#m-graph");
  await waitQuery("avg:mtest.requests{*}");
  assert.ok(await page.locator("#m-error").isHidden());
});

test("a log's detail links to its host's metrics and events around that time", async () => {
  await page.click("#nav-logs");
  await page.fill("#query", "service:shop");
  await page.click("#search-button");
  await page.waitForFunction(() => document.querySelectorAll("#list .row").length === 1);
  await page.click("#list .row");
  const link = page.locator('#detail .related-link[data-field="host"]');
  assert.equal(await link.textContent(), "Same host web-1");
  await link.click();
  await page.waitForSelector("#metrics-view:not([hidden])");
  assert.equal(await page.inputValue("#m-scope"), "host:web-1");
  assert.equal(await page.inputValue("#m-range"), "custom");
  // No metric was named: the first the host reports is graphed.
  await waitQuery("avg:mtest.requests{host:web-1}");
  assert.deepEqual(await legend(), [{ label: "host:web-1", avg: "10" }]);
  assert.deepEqual(await page.locator("#metric-names li").allTextContents(), ["mtest.requests"]);
  await page.waitForSelector("#ev-list .ev-row");
  assert.deepEqual(await page.locator("#ev-list .ev-host").allTextContents(), ["web-1"]);
  assert.deepEqual(await page.locator("#sc-grid .sc-host").allTextContents(), ["web-1"]);
  if (ARTIFACTS) await page.screenshot({ path: `${ARTIFACTS}/metrics-from-log.png`, fullPage: true });
  // Back to the logs: the query is still there.
  await page.click("#nav-logs");
  await page.waitForFunction(() => document.querySelectorAll("#list .row").length === 1);
  assert.equal(await page.inputValue("#query"), "service:shop");
});

test("nothing from the data ran as code", async () => {
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(dialogs, []);
  assert.deepEqual(pageErrors, []);
});
