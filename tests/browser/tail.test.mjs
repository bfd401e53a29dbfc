// Live tail (issue 11, item 6): counts, chart and facets follow while tailing, the footer
// tells the truth after stopping, and the range comes back to what it was.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, ingest, open, hashOf, waitRows, unique } from "./helpers.mjs";

const SERVICE = unique("tail");
const base = `service:${SERVICE}`;
let context, page, errors;

before(async () => {
  const old = Date.now() - 2 * 3600_000;
  await ingest([
    { message: "before tailing 1", timestamp: old, service: SERVICE, status: "info", hostname: "t1" },
    { message: "before tailing 2", timestamp: old + 1000, service: SERVICE, status: "info", hostname: "t1" },
  ]);
  ({ context, page, errors } = await open("tail", hashOf({ q: base, range: "4h" })));
  await waitRows(page, 2);
});

after(async () => { if (context) await context.close(); });

const serviceCount = () => page.locator(`#facets .facet[data-facet="service"] li[data-value="${SERVICE}"] .n`).textContent();

test("while tailing, the list, the total, the chart and the facets follow new logs", async () => {
  assert.equal(await page.locator("#total").textContent(), "2 logs");
  const hash = new URL(page.url()).hash;
  await page.click("#live");
  await page.waitForFunction(() => document.querySelector("#more").textContent.startsWith("Live"));
  assert.equal(await page.inputValue("#range"), "15m", "tailing shows the past 15 minutes");
  assert.equal(new URL(page.url()).hash, hash, "tailing is not a view of its own in the history");
  await waitRows(page, 0);
  await ingest([1, 2, 3].map((i) => ({ message: `while tailing ${i}`, service: SERVICE, status: i === 3 ? "error" : "info", hostname: "t2" })));
  await waitRows(page, 3);
  assert.match(await page.locator("#more").textContent(), /3 new logs so far/);
  // Counts, chart and facets are refreshed every few seconds.
  await page.waitForFunction(() => document.querySelector("#total").textContent === "3 logs", null, { timeout: 15_000 });
  await page.waitForFunction((s) => document.querySelector(`#facets .facet[data-facet="service"] li[data-value="${s}"] .n`)?.textContent === "3", SERVICE, { timeout: 15_000 });
  assert.ok(await page.locator("#chart .bar .seg.st-error").count() >= 1, "the chart shows the new error");
  assert.ok(await page.locator("#facets .facet.live").count() > 0, "the facets say they are live");
  await page.screenshot({ path: `${ARTIFACTS}/tail-live.png` });
});

test("stopping puts the range back and the footer says what happened", async () => {
  await page.click("#live");
  await page.waitForFunction(() => document.querySelector("#range").value === "4h");
  await waitRows(page, 5);
  await page.waitForFunction(() => document.querySelector("#more").textContent.startsWith("Live tail stopped"));
  assert.equal(await page.locator("#more").textContent(), "Live tail stopped after 3 new logs. All 5 logs shown");
  assert.equal(await page.locator("#total").textContent(), "5 logs");
  assert.equal(await serviceCount(), "5");
  assert.equal(await page.locator("#facets .facet.live").count(), 0);
  assert.equal(await page.getAttribute("#live", "aria-pressed"), "false");
  // Nothing comes in after stopping.
  await ingest([{ message: "after tailing", service: SERVICE, status: "info" }]);
  await page.waitForTimeout(2500);
  assert.equal(await page.locator("#list .row").count(), 5);
  await page.screenshot({ path: `${ARTIFACTS}/tail-stopped.png` });
  assert.deepEqual(errors, []);
});
