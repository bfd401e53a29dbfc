// Beyond 5,000 rows (issue 11, item 8): scrolling keeps loading with the search cursor up to
// the page's limit, then the footer says how many more match and how to narrow; "1 log".
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, ingest, open, hashOf, waitRows, unique } from "./helpers.mjs";

const SERVICE = unique("page");
const COUNT = 10_250;
let context, page, errors;

before(async () => {
  const t0 = Date.now() - 3 * 3600_000;
  const logs = [];
  for (let i = 0; i < COUNT; i++) {
    logs.push({ message: `paged ${i}`, timestamp: t0 + i * 100, service: SERVICE, status: "info", n: i });
  }
  logs.push({ message: "the only one", timestamp: t0, service: SERVICE + "-one", status: "info" });
  await ingest(logs);
  ({ context, page, errors } = await open("paging", hashOf({ q: `service:${SERVICE}`, range: "4h" })));
  await waitRows(page, 100);
});

after(async () => { if (context) await context.close(); });

test("scrolling past 5,000 rows keeps going, then says how many more match", async () => {
  assert.equal(await page.locator("#total").textContent(), "10,250 logs");
  assert.equal(await page.locator("#more").textContent(), "100 logs shown: scroll for more");
  const started = Date.now();
  for (let guard = 0; guard < 200; guard++) {
    const n = await page.locator("#list .row").count();
    if (n >= 10_000) break;
    await page.evaluate(() => { const l = document.querySelector("#list"); l.scrollTop = l.scrollHeight; });
    await page.waitForFunction((n) => document.querySelectorAll("#list .row").length > n, n, { timeout: 10_000 });
  }
  const ms = Date.now() - started;
  console.log(`# 10,000 rows reached by scrolling in ${ms} ms`);
  assert.equal(await page.locator("#list .row").count(), 10_000);
  await page.waitForFunction(() => !document.querySelector("#more").textContent.startsWith("Loading"));
  assert.equal(await page.locator("#more").textContent(),
    "10,000 logs shown, the most this page lists: 250 more logs match. Narrow the query, or click the chart to zoom into a shorter time range.");
  // Newest first all the way down, no gaps or repeats across pages.
  const ns = await page.locator("#list .row .c-msg").evaluateAll((els) => els.map((e) => Number(e.textContent.split(" ")[1])));
  assert.deepEqual(ns.slice(0, 3), [COUNT - 1, COUNT - 2, COUNT - 3]);
  assert.ok(ns.every((n, i) => n === COUNT - 1 - i), "rows are consecutive");
  await page.screenshot({ path: `${ARTIFACTS}/paging-limit.png` });
});

test("one log is \"1 log\"", async () => {
  await page.fill("#query", `service:${SERVICE}-one`);
  await page.press("#query", "Enter");
  await waitRows(page, 1);
  await page.waitForFunction(() => document.querySelector("#more").textContent === "1 log shown");
  assert.equal(await page.locator("#total").textContent(), "1 log");
  assert.match(await page.locator("#chart .bar").filter({ has: page.locator(".seg") }).first().getAttribute("title"), / 1 log$/);
  await page.fill("#query", `service:${SERVICE} @n:[0 TO 1]`);
  await page.press("#query", "Enter");
  await waitRows(page, 2);
  await page.waitForFunction(() => document.querySelector("#more").textContent === "All 2 logs shown");
  assert.deepEqual(errors, []);
});
