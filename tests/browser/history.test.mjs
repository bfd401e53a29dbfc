// Time and history (issue 11, item 5): from/to inputs taking now-2h and ISO dates, zoom out,
// chart axes, the UTC/local toggle, every view change a history entry that Back/Forward
// restore, a pasted link applying in an open tab, a syntax error clearing stale numbers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, ingest, open, hashOf, waitRows, waitQuery, unique } from "./helpers.mjs";

const SERVICE = unique("his");
const base = `service:${SERVICE}`;
const NOW = Date.now();
// Two hours ago (3 logs, one an error) and half an hour ago (2 logs).
const OLD = NOW - 2 * 3600_000;
const RECENT = NOW - 30 * 60_000;
let context, page, errors;

before(async () => {
  await ingest([
    { message: "old one", timestamp: OLD, service: SERVICE, status: "info", hostname: "h1" },
    { message: "old two", timestamp: OLD + 1000, service: SERVICE, status: "error", hostname: "h1" },
    { message: "old three", timestamp: OLD + 2000, service: SERVICE, status: "info", hostname: "h2" },
    { message: "recent one", timestamp: RECENT, service: SERVICE, status: "info", hostname: "h1" },
    { message: "recent two", timestamp: RECENT + 1000, service: SERVICE, status: "info", hostname: "h2" },
  ]);
  // A zone far from UTC, so that the toggle visibly changes every time.
  ({ context, page, errors } = await open("history", hashOf({ q: base, range: "4h" }), { timezoneId: "Asia/Kolkata" }));
  await waitRows(page, 5);
});

after(async () => { if (context) await context.close(); });

const rowTimes = () => page.locator("#list .row .c-time").allTextContents();

test("the chart has labelled count and time axes", async () => {
  // The chart comes from its own request, which may land after the rows.
  await page.waitForFunction(() => document.querySelectorAll("#chart-y .tick").length >= 2 && document.querySelectorAll("#chart-x .tick").length >= 3);
  const y = await page.locator("#chart-y .tick").allTextContents();
  assert.ok(y.length >= 2 && y[0] === "0", JSON.stringify(y));
  const x = await page.locator("#chart-x .tick").allTextContents();
  assert.ok(x.length >= 3 && x.every((t) => /^\d\d:\d\d$/.test(t)), JSON.stringify(x));
  assert.match(await page.locator("#chart-axes").textContent(), /^Bars: logs per \S+ · time in Asia\/(Kolkata|Calcutta) \(UTC\+05:30\)$/);
  await page.screenshot({ path: `${ARTIFACTS}/history-axes.png` });
});

test("the UTC/local toggle changes every time shown and says which zone", async () => {
  const local = await rowTimes();
  const iso = new Date(RECENT + 1000).toISOString().replace("T", " ").replace("Z", "");
  assert.notEqual(local[0], iso);
  await page.click("#tz");
  await page.waitForFunction(() => document.querySelector("#tz").textContent === "UTC");
  await page.waitForFunction((iso) => document.querySelector("#list .row .c-time")?.textContent === iso, iso);
  assert.equal(await page.locator("#c-time-head").textContent(), "Date (UTC)");
  assert.match(page.url(), /tz=utc/);
  assert.match(await page.locator("#chart-axes").textContent(), /time in UTC$/);
  await page.click("#tz");
  await page.waitForFunction(() => document.querySelector("#tz").textContent === "Local");
  assert.deepEqual(await rowTimes(), local);
});

test("every view change is a history entry: Back and Forward restore it", async () => {
  await page.fill("#query", `${base} status:error`);
  await page.press("#query", "Enter");
  await waitRows(page, 1);
  await page.selectOption("#range", "1h");
  await waitRows(page, 0);
  await page.goBack();
  await waitRows(page, 1);
  assert.equal(await page.inputValue("#range"), "4h");
  assert.equal(await page.inputValue("#query"), `${base} status:error`);
  await page.goBack();
  await waitRows(page, 5);
  assert.equal(await page.inputValue("#query"), base);
  await page.goForward();
  await waitRows(page, 1);
  await page.goForward();
  await page.waitForFunction(() => document.querySelector("#range").value === "1h");
  await page.waitForFunction(() => document.querySelector("#more").textContent === "No logs match.");
  // Back from a facet click, too.
  await page.selectOption("#range", "4h");
  await waitRows(page, 1);
  await page.locator('#facets .facet[data-facet="host"] li[data-value="h1"]').click();
  await waitQuery(page, `${base} status:error host:h1`);
  await page.goBack();
  await waitQuery(page, `${base} status:error`);
});

test("a link pasted into the open tab applies at once", async () => {
  await page.evaluate((h) => { location.hash = h; }, hashOf({ q: `${base} host:h2`, range: "4h" }));
  await waitRows(page, 2);
  assert.equal(await page.inputValue("#query"), `${base} host:h2`);
  await page.goBack();
  await waitQuery(page, `${base} status:error`);
});

test("from/to take now-2h style bounds and ISO dates", async () => {
  await page.fill("#query", base);
  await page.press("#query", "Enter");
  await waitRows(page, 5);
  await page.click("#abs-toggle");
  await page.fill("#from-input", "now-3h");
  await page.fill("#to-input", "now-1h");
  await page.press("#to-input", "Enter");
  await waitRows(page, 3);
  assert.match(page.url(), /from=now-3h&to=now-1h/);
  assert.equal(await page.inputValue("#range"), "custom");
  // ISO with a zone, read as given; without one, in the zone shown (here UTC after the toggle).
  await page.fill("#from-input", new Date(RECENT - 60_000).toISOString());
  await page.fill("#to-input", new Date(RECENT + 60_000).toISOString());
  await page.press("#from-input", "Enter");
  await waitRows(page, 2);
  assert.match(page.url(), new RegExp(`from=${RECENT - 60_000}&to=${RECENT + 60_000}`));
  await page.click("#tz");
  await page.waitForFunction(() => document.querySelector("#tz").textContent === "UTC");
  const noZone = (ms) => new Date(ms).toISOString().slice(0, 19).replace("T", " ");
  await page.fill("#from-input", noZone(OLD - 60_000));
  await page.fill("#to-input", noZone(OLD + 60_000));
  await page.press("#from-input", "Enter");
  await waitRows(page, 3);
  await page.click("#tz");
  // A bad bound is refused with a message, and nothing else changes.
  await page.fill("#from-input", "yesterday");
  await page.press("#from-input", "Enter");
  await page.waitForSelector("#query-error:not([hidden])");
  assert.match(await page.locator("#query-error").textContent(), /"yesterday" is not a time/);
  await page.screenshot({ path: `${ARTIFACTS}/history-absolute.png` });
});

test("zoom out doubles the range", async () => {
  await page.selectOption("#range", "15m");
  await waitRows(page, 0);
  await page.click("#zoom-out");
  await page.waitForFunction(() => document.querySelector("#range").value === "1h");
  await waitRows(page, 2);
  await page.click("#zoom-out");
  await page.waitForFunction(() => document.querySelector("#range").value === "4h");
  await waitRows(page, 5);
  // An absolute range grows around its middle (and never past now).
  await page.click("#abs-toggle");
  await page.fill("#from-input", String(OLD - 600_000));
  await page.fill("#to-input", String(OLD - 300_000));
  await page.press("#from-input", "Enter");
  await waitRows(page, 0);
  await page.click("#zoom-out");
  await page.waitForFunction(() => /from=\d+&to=\d+/.test(location.hash));
  const p = new URLSearchParams(new URL(page.url()).hash.slice(1));
  assert.equal(Number(p.get("to")) - Number(p.get("from")), 600_000);
  assert.equal(Number(p.get("from")), OLD - 750_000);
  await page.click("#zoom-out");
  await page.click("#zoom-out");
  await waitRows(page, 3);
});

test("a syntax error clears the totals and the chart of the last query", async () => {
  await page.selectOption("#range", "4h");
  await waitRows(page, 5);
  assert.equal(await page.locator("#total").textContent(), "5 logs");
  assert.ok(await page.locator("#chart .bar .seg").count() > 0);
  await page.fill("#query", `${base} (`);
  await page.press("#query", "Enter");
  await page.waitForSelector("#query-error:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#total").textContent === "");
  assert.equal(await page.locator("#chart .bar").count(), 0);
  assert.equal(await page.locator("#list .row").count(), 0);
  assert.equal(await page.locator("#facets .facet").count(), 0);
  await page.screenshot({ path: `${ARTIFACTS}/history-syntax-error.png` });
  await page.fill("#query", `${base} status:error`);
  await page.press("#query", "Enter");
  await waitRows(page, 1);
  assert.equal(await page.locator("#total").textContent(), "1 log");
  assert.deepEqual(errors, []);
});
