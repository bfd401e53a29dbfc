// The Pipelines view (issue 12): the intake's pipelines as Datadog JSON in an editor, a live
// preview on the current query's logs before saving, saving through PUT, errors named, and
// the detail pane of a stored log saying which pipeline and processors changed it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { URL, ARTIFACTS, unique, intake, ingest, search, open, hashOf, waitRows, assertNothingInjected, XSS } from "./helpers.mjs";

const SVC = unique("pl");
let ctx, page;

const pipeline = (name, matchRules) => ({
  name,
  is_enabled: true,
  filter: { query: "service:" + SVC },
  processors: [
    { type: "grok-parser", name: "parse access line", source: "message", samples: [],
      grok: { support_rules: "", match_rules: matchRules } },
    { type: "status-remapper", name: "status from code class", sources: ["level"] },
  ],
});
const RULES = "access %{ip:network.client.ip} %{word:http.method} %{notSpace:http.url} %{integer:http.status_code} %{word:level}";

before(async () => {
  const now = Date.now();
  await ingest([
    { message: "10.0.0.1 GET /home 200 info", service: SVC, hostname: "web1", timestamp: now - 60_000 },
    { message: "10.0.0.2 POST /login 500 error", service: SVC, hostname: "web2", timestamp: now - 50_000 },
    { message: XSS, service: SVC, hostname: "web3", timestamp: now - 40_000 },
  ]);
  for (let i = 0; i < 50 && (await search("service:" + SVC)).length < 3; i++) await new Promise((r) => setTimeout(r, 100));
  ctx = await open("pipelines", hashOf({ q: "service:" + SVC, range: "1h" }));
  page = ctx.page;
  await waitRows(page, 3);
});
after(async () => {
  if (ctx) await ctx.context.close();
  await intake("/api/v1/logs/config/pipelines", { method: "PUT", body: "[]" });
});

test("the editor previews a pipeline on the query's logs before it is saved, and saving applies it", async () => {
  await page.click("#nav-pipelines");
  await page.waitForSelector("#pipelines-view:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#pl-sample-note").textContent.includes("3 logs"));
  assert.equal(JSON.parse(await page.inputValue("#pl-editor")).length, 0);
  await page.waitForFunction(() => document.querySelectorAll("#pl-results .pl-result").length === 3);
  await page.fill("#pl-editor", JSON.stringify([pipeline("access logs", RULES)], null, 2));
  await page.waitForFunction(() => document.querySelectorAll("#pl-results .pl-step").length > 0 &&
    !document.querySelector("#pl-results").hasAttribute("aria-busy"));
  const steps = await page.locator("#pl-results .pl-step").allTextContents();
  assert.ok(steps.some((s) => s.startsWith("access logs › parse access line")), steps.join("|"));
  const text = await page.locator("#pl-results").textContent();
  assert.ok(text.includes("POST") && text.includes("/login"), text);
  assert.equal(await page.textContent("#pl-status"), "Edited, not saved");
  // Nothing is saved by previewing.
  assert.deepEqual(await (await intake("/api/v1/logs/config/pipelines")).json(), []);
  await assertNothingInjected(page);
  await page.screenshot({ path: `${ARTIFACTS}/pipelines-preview.png` });

  await page.click("#pl-save");
  await page.waitForFunction(() => document.querySelector("#pl-status").textContent.startsWith("Saved"));
  const saved = await (await intake("/api/v1/logs/config/pipelines")).json();
  assert.equal(saved.length, 1);
  assert.equal(saved[0].name, "access logs");
  assert.ok(saved[0].id, "a saved pipeline has an id");
  assert.equal(saved[0].processors[0].grok.match_rules, RULES);

  // A log ingested now goes through it, and its detail pane says so.
  await ingest([{ message: "10.0.0.9 DELETE /item/7 503 error", service: SVC, hostname: "web9", timestamp: Date.now() - 1000 }]);
  let stored = [];
  for (let i = 0; i < 50 && !stored.length; i++) {
    stored = await search("service:" + SVC + " @http.method:DELETE");
    if (!stored.length) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(stored.length, 1, "the processed log is found by its extracted attribute");
  assert.equal(stored[0].attributes.status, "error");
  assert.equal(stored[0].attributes.attributes.http.status_code, 503);
  await page.goto(URL + "/" + hashOf({ q: "service:" + SVC + " @http.method:DELETE", range: "1h" }));
  await waitRows(page, 1);
  await page.click("#list .row");
  await page.waitForSelector("#processed");
  const processed = await page.textContent("#processed");
  assert.ok(processed.includes("access logs") && processed.includes("parse access line"), processed);
});

test("a mistake in the editor or a definition the intake refuses is named, and nothing saved is lost", async () => {
  await page.goto(URL + "/" + hashOf({ view: "pipelines" }));
  await page.waitForFunction(() => JSON.parse(document.querySelector("#pl-editor").value || "[]").length === 1);
  await page.fill("#pl-editor", '[{"name": "broken",\n "processors": [}]');
  await page.waitForSelector("#pl-error:not([hidden])");
  assert.match(await page.textContent("#pl-error"), /line 2/);
  await page.fill("#pl-editor", JSON.stringify([{ name: "bad", processors: [{ type: "no-such-processor" }] }]));
  await page.click("#pl-save");
  await page.waitForFunction(() => document.querySelector("#pl-status").textContent === "Not saved");
  const err = await page.textContent("#pl-error");
  assert.ok(err.includes("no-such-processor"), err);
  const saved = await (await intake("/api/v1/logs/config/pipelines")).json();
  assert.equal(saved.length, 1);
  assert.equal(saved[0].name, "access logs");
  await page.click("#pl-revert");
  await page.waitForFunction(() => JSON.parse(document.querySelector("#pl-editor").value)[0].name === "access logs");
  assert.deepEqual(ctx.errors.filter((e) => !e.startsWith("dialog")), []);
});

test("pasted sample logs are previewed too, a line that is not JSON as a message", async () => {
  await page.selectOption("#pl-sample-from", "custom");
  await page.fill("#pl-custom", `{"message": "10.1.1.1 PUT /x 201 info", "service": "${SVC}"}\nplain text line`);
  await page.waitForFunction(() => document.querySelectorAll("#pl-results .pl-result").length === 2 &&
    !document.querySelector("#pl-results").hasAttribute("aria-busy"));
  const traces = await page.locator("#pl-results .pl-trace").allTextContents();
  assert.ok(traces[0].includes("access logs"), traces.join("|"));
  assert.ok(traces[1].includes("no pipeline matched"), traces.join("|"));
});
