// The Explorer against the issue 11 contract where this intake may not have the endpoint yet:
// the browser answers GET /api/v2/logs/attributes, the aggregate's min/max and GET
// …/events/{id}/context itself (page.route) with the shapes of the contract, so the page's side
// is tested on its own. The same features against the real endpoints are in facets.test.mjs and
// detail.test.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, ingest, open, hashOf, waitRows, waitQuery, unique, search, assertNothingInjected, XSS } from "./helpers.mjs";

const SERVICE = unique("mock");
const base = `service:${SERVICE}`;
let context, page, errors, logs;

before(async () => {
  const t0 = Date.now() - 2 * 3600_000;
  const batch = [];
  for (let i = 0; i < 20; i++) {
    batch.push({ message: i === 3 ? XSS : `mocked ${i}`, timestamp: t0 + i * 1000, service: SERVICE, hostname: "mh", status: "info", duration_ms: i * 10 });
  }
  await ingest(batch);
  logs = (await search(base)).reverse(); // oldest first
  ({ context, page, errors } = await open("mocked"));
  await page.route("**/api/v2/logs/attributes?**", (route) => route.fulfill({
    contentType: "application/json",
    body: JSON.stringify({ data: [
      { path: "duration_ms", type: "number", count: 20 }, { path: "http.status_code", type: "number", count: 5 },
      { path: "user.name", type: "string", count: 3 }, { path: XSS, type: "string", count: 1 }] }),
  }));
  await page.route("**/api/v2/logs/analytics/aggregate", async (route) => {
    const body = JSON.parse(route.request().postData() || "{}");
    const compute = body.compute || [];
    if (compute.length && compute.every((c) => c.aggregation === "min" || c.aggregation === "max")) {
      assert.equal(compute[0].metric, "@duration_ms");
      assert.equal(compute[0].type, "total");
      return route.fulfill({ contentType: "application/json",
        body: JSON.stringify({ data: { buckets: [{ by: {}, computes: { c0: 0, c1: 190 } }] }, meta: { status: "done" } }) });
    }
    return route.continue();
  });
  await page.route("**/api/v2/logs/events/*/context?**", (route) => {
    const id = decodeURIComponent(new URL(route.request().url()).pathname.split("/")[5]);
    const i = logs.findIndex((l) => l.id === id);
    if (i < 0) return route.fulfill({ status: 404, contentType: "application/json", body: JSON.stringify({ errors: [{ status: "404", title: "not found", detail: "no log " + id }] }) });
    return route.fulfill({ contentType: "application/json",
      body: JSON.stringify({ data: { before: logs.slice(Math.max(0, i - 3), i), log: logs[i], after: logs.slice(i + 1, i + 4) } }) });
  });
  await page.goto(page.url().split("#")[0] + hashOf({ q: base, range: "4h" }));
  await page.reload();
  await waitRows(page, 20);
});

after(async () => { if (context) await context.close(); });

test("add facet suggests the known attribute paths, as text", async () => {
  await page.focus("#facet-input");
  await page.fill("#facet-input", "@");
  await page.waitForFunction(() => document.querySelectorAll("#facet-suggest option").length === 4);
  const values = await page.locator("#facet-suggest option").evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(values, ["@duration_ms", "@http.status_code", "@user.name", "@" + XSS]);
  assert.ok(await page.locator("#facet-add-note").isHidden());
  await assertNothingInjected(page);
});

test("a number facet gets a range prefilled from min/max and applies [a TO b]", async () => {
  await page.fill("#facet-input", "@duration_ms");
  await page.press("#facet-input", "Enter");
  const box = page.locator('#facets .facet[data-facet="@duration_ms"] .range');
  await box.waitFor();
  assert.equal(await box.locator(".rmin").inputValue(), "0");
  assert.equal(await box.locator(".rmax").inputValue(), "190");
  assert.equal(await box.locator(".rslider").getAttribute("max"), "190");
  // A string facet has none.
  await page.fill("#facet-input", "@user.name");
  await page.press("#facet-input", "Enter");
  await page.waitForSelector('#facets .facet[data-facet="@user.name"]');
  assert.equal(await page.locator('#facets .facet[data-facet="@user.name"] .range').count(), 0);
  await box.locator(".rmin").fill("50");
  await box.locator(".rmax").fill("120");
  await box.locator(".rapply").click();
  await waitQuery(page, `${base} @duration_ms:[50 TO 120]`);
  await waitRows(page, 8);
  await page.screenshot({ path: `${ARTIFACTS}/mocked-range-facet.png` });
  // The range shown is the one in the query; Clear takes it out.
  const box2 = page.locator('#facets .facet[data-facet="@duration_ms"] .range');
  await page.waitForFunction(() => document.querySelector('#facets .facet[data-facet="@duration_ms"] .rmin')?.value === "50");
  await box2.locator(".rclear").click();
  await waitQuery(page, base);
  await waitRows(page, 20);
});

test("view in context shows the logs around, this one highlighted, as text", async () => {
  await page.fill("#query", `${base} @duration_ms:50`);
  await page.press("#query", "Enter");
  await waitRows(page, 1);
  await page.locator("#list .row").first().click();
  await page.click("#view-context");
  await page.waitForSelector("#context .ctx-row.self");
  const rows = await page.locator("#context .ctx-row").evaluateAll((rs) => rs.map((r) => [r.className, r.querySelector(".c-msg").textContent]));
  assert.deepEqual(rows, [["ctx-row before", "mocked 2"], ["ctx-row before", XSS], ["ctx-row before", "mocked 4"],
    ["ctx-row self", "mocked 5"], ["ctx-row after", "mocked 6"], ["ctx-row after", "mocked 7"], ["ctx-row after", "mocked 8"]]);
  assert.match(await page.locator("#context").innerText(), /3 logs before, 3 logs after/);
  await assertNothingInjected(page);
  await page.screenshot({ path: `${ARTIFACTS}/mocked-context.png` });
  // A row of the context opens that log.
  await page.locator("#context .ctx-row", { hasText: "mocked 7" }).click();
  await page.waitForFunction(() => document.querySelector("#detail .message").textContent === "mocked 7");
  assert.deepEqual(errors, []);
});
