// Facets on any attribute (issue 11, item 1): added from the panel and from the detail pane,
// top values with counts, show more, toggling values, persisted, range facets for numbers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, ingest, open, hashOf, waitRows, waitQuery, unique, missing, hasMeasures, assertNothingInjected, XSS } from "./helpers.mjs";

const SERVICE = unique("fac");
const base = `service:${SERVICE}`;
let context, page, errors;

before(async () => {
  const now = Date.now();
  const logs = [];
  for (let i = 0; i < 40; i++) {
    logs.push({
      message: `facet log ${i}`, timestamp: now - 2 * 3600_000 - i * 1000, hostname: "fh", service: SERVICE,
      status: "info", http: { status_code: i % 4 === 0 ? 500 : 200 }, user: `u${String(i % 20).padStart(2, "0")}`,
      duration_ms: i * 5, label: i === 0 ? XSS : "plain",
    });
  }
  await ingest(logs);
  ({ context, page, errors } = await open("facets", hashOf({ q: base, range: "4h" })));
  await waitRows(page, 40);
});

after(async () => { if (context) await context.close(); });

const facet = (f) => page.locator(`#facets .facet[data-facet="${f}"]`);

test("a facet on any attribute shows its top values with counts, and persists", async () => {
  await page.fill("#facet-input", "@http.status_code");
  await page.press("#facet-input", "Enter");
  await page.waitForSelector('#facets .facet[data-facet="@http.status_code"] li');
  const values = await facet("@http.status_code").locator("li .v").allTextContents();
  assert.deepEqual(values, ["200", "500"]);
  assert.equal(await facet("@http.status_code").locator('li[data-value="500"] .n').textContent(), "10");
  assert.deepEqual(await page.evaluate(() => JSON.parse(localStorage.getItem("cairn-facets"))), ["@http.status_code"]);
  await page.reload();
  await page.waitForSelector('#facets .facet[data-facet="@http.status_code"] li');
  // Without the fragment, the list comes from the browser's storage.
  await page.goto(page.url().split("#")[0] + hashOf({ q: base, range: "4h" }));
  await page.reload();
  await page.waitForSelector('#facets .facet[data-facet="@http.status_code"] li');
  await page.screenshot({ path: `${ARTIFACTS}/facets-attribute.png` });
});

test("a value toggles its filter; Alt-click excludes; never twice", async () => {
  const v500 = () => facet("@http.status_code").locator('li[data-value="500"]');
  await v500().click();
  await waitQuery(page, `${base} @http.status_code:500`);
  await waitRows(page, 10);
  assert.equal(await v500().getAttribute("class"), "sel");
  await v500().click();
  await waitQuery(page, base);
  await waitRows(page, 40);
  await v500().click({ modifiers: ["Alt"] });
  await waitQuery(page, `${base} -@http.status_code:500`);
  await waitRows(page, 30);
  await v500().click({ modifiers: ["Alt"] });
  await waitQuery(page, base);
  // The built-in facet of the service already in the query: one click removes it, not doubles it.
  await facet("service").locator(`li[data-value="${SERVICE}"]`).click();
  await waitQuery(page, "");
  await facet("service").locator(`li[data-value="${SERVICE}"]`).click();
  await waitQuery(page, base);
  await waitRows(page, 40);
});

test("show more lists past the top 15", async () => {
  await page.fill("#facet-input", "@user");
  await page.press("#facet-input", "Enter");
  await page.waitForSelector('#facets .facet[data-facet="@user"] li');
  assert.equal(await facet("@user").locator("li").count(), 15);
  await facet("@user").locator(".facet-more").click();
  await page.waitForFunction(() => document.querySelectorAll('#facets .facet[data-facet="@user"] li').length === 20);
  assert.equal(await facet("@user").locator('li[data-value="u00"] .n').textContent(), "2");
});

test("a facet's values from the data are text", async () => {
  await page.fill("#facet-input", "@label");
  await page.press("#facet-input", "Enter");
  await page.waitForSelector('#facets .facet[data-facet="@label"] li');
  const values = await facet("@label").locator("li .v").allTextContents();
  assert.ok(values.includes(XSS), JSON.stringify(values));
  await facet("@label").locator("li", { hasText: "onerror" }).click();
  await waitQuery(page, `${base} @label:"${XSS.replace(/"/g, '\\"')}"`);
  await waitRows(page, 1);
  await assertNothingInjected(page);
  await facet("@label").locator("li", { hasText: "onerror" }).click();
  await waitRows(page, 40);
  assert.deepEqual(errors, []);
});

test("a facet can be added from the detail pane, and removed", async () => {
  await page.locator("#list .row").first().click();
  const leaf = page.locator('#detail .tree li.leaf[data-path="duration_ms"]');
  await leaf.hover();
  await leaf.locator(".add-facet").click();
  await page.waitForSelector('#facets .facet[data-facet="@duration_ms"]');
  const saved = await page.evaluate(() => JSON.parse(localStorage.getItem("cairn-facets")));
  assert.ok(saved.includes("@duration_ms"), JSON.stringify(saved));
  await facet("@user").locator(".facet-remove").click();
  await page.waitForFunction(() => !document.querySelector('#facets .facet[data-facet="@user"]'));
});

test("a numeric facet is a range: min and max from the data, applied as [a TO b]", async (t) => {
  if (!(await hasMeasures())) { t.skip("needs min/max in the aggregate API (issue 11 backend, BE1)"); console.log("# skipped: the aggregate API has no min/max here"); return; }
  const box = facet("@duration_ms").locator(".range");
  await box.waitFor();
  assert.equal(await box.locator(".rmin").inputValue(), "0");
  assert.equal(await box.locator(".rmax").inputValue(), "195");
  await box.locator(".rmin").fill("10");
  await box.locator(".rmax").fill("50");
  await box.locator(".rapply").click();
  await waitQuery(page, `${base} @duration_ms:[10 TO 50]`);
  await waitRows(page, 9);
  // Applying again replaces the range instead of adding a second one.
  const box2 = facet("@duration_ms").locator(".range");
  await page.waitForFunction(() => document.querySelector('#facets .facet[data-facet="@duration_ms"] .rmin').value === "10");
  await box2.locator(".rmax").fill("100");
  await box2.locator(".rapply").click();
  await waitQuery(page, `${base} @duration_ms:[10 TO 100]`);
  await waitRows(page, 19);
  await page.screenshot({ path: `${ARTIFACTS}/facets-range.png` });
  await facet("@duration_ms").locator(".rclear").click();
  await waitQuery(page, base);
});

test("add facet completes known attribute paths", async (t) => {
  if (await missing("GET", "/api/v2/logs/attributes?prefix=&limit=5")) {
    t.skip("needs GET /api/v2/logs/attributes (issue 11 backend, BE1)");
    console.log("# skipped: GET /api/v2/logs/attributes answers 404 here; the panel says so:",
      await page.locator("#facet-add-note").textContent());
    assert.equal(await page.locator("#facet-add-note").isHidden(), false, "the panel says suggestions are unavailable");
    return;
  }
  await page.fill("#facet-input", "@http.");
  await page.waitForFunction(() => [...document.querySelectorAll("#facet-suggest option")].some((o) => o.value === "@http.status_code"));
});
