// The Patterns view (issue 11 item 3): templates with their variable parts marked, counts,
// status mix, a sample, and a click that lists the pattern's logs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, marker, ingest, call, available, waitIndexed, openExplorer, search, assertNoInjection } from "./fe2-helpers.mjs";

const M = marker("pt");
const SVC = M + "-svc";
const XSS = `<img src=x onerror="window.__pwned='pattern'">`;
let ctx, page;

// Three templates with known counts; the third carries markup in its constant part.
function fixtures() {
  const now = Date.now();
  const logs = [];
  for (let i = 0; i < 40; i++) {
    logs.push({ message: `user u${i} logged in from 10.0.${i % 5}.${i}`, service: SVC, status: i % 10 === 0 ? "error" : "info",
      timestamp: now - 20_000 - i * 1000 });
  }
  for (let i = 0; i < 25; i++) {
    logs.push({ message: `payment ${1000 + i} failed after ${i * 3} ms`, service: SVC, status: i % 2 ? "error" : "warn",
      timestamp: now - 20_500 - i * 1000 });
  }
  for (let i = 0; i < 12; i++) {
    logs.push({ message: `render ${XSS} widget ${i} done`, service: SVC, status: "info", timestamp: now - 21_000 - i * 1000 });
  }
  return logs;
}

before(async () => {
  await ingest(fixtures());
  await waitIndexed("service:" + SVC, 77);
  ctx = await openExplorer("patterns");
  page = ctx.page;
});
after(async () => { if (ctx) await ctx.context.close(); });

test("the patterns view clusters the query's messages into marked templates", async (t) => {
  if (!await available(t, "patterns (BE2)", "POST", "/api/v2/logs/analytics/patterns",
    { filter: { query: "service:" + SVC, from: "now-1h", to: "now" } })) return;
  await search(page, "service:" + SVC);
  await page.selectOption("#viz", "patterns");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-pattern").length >= 3, null, { timeout: 10_000 });
  assert.equal(await page.locator("#list").isHidden(), true);
  const items = await page.evaluate(() => [...document.querySelectorAll("#analytics .an-pattern")].map((li) => ({
    count: li.querySelector(".an-p-count").textContent,
    template: li.querySelector(".an-p-template").textContent,
    vars: li.querySelectorAll(".an-p-template .an-p-var").length,
    segs: [...li.querySelectorAll(".an-p-seg")].map((s) => s.dataset.status),
    sample: li.querySelector(".an-p-sample-msg") && li.querySelector(".an-p-sample-msg").textContent,
    query: li.dataset.query,
  })));
  assert.deepEqual(items.map((i) => i.count), ["40", "25", "12"], JSON.stringify(items));
  const [login, payment, render] = items;
  assert.match(login.template, /^user <\*> logged in from <\*>$/);
  assert.ok(login.vars >= 2, "the variable parts are marked");
  assert.deepEqual(login.segs.sort(), ["error", "info"]);
  assert.match(login.sample, /^user u\d+ logged in from 10\.0\./);
  assert.match(payment.template, /^payment <\*> failed after <\*> ms$/);
  assert.deepEqual(payment.segs.sort(), ["error", "warn"]);
  // Markup in a template is text (the miner may take parts of it as variable).
  assert.match(render.template, /^render <img src=.*widget <\*> done$/);
  assert.ok(render.vars >= 1);
  assert.ok(render.sample.includes(XSS), render.sample);
  await assertNoInjection(page);
  await page.screenshot({ path: `${ARTIFACTS}/patterns.png` });
  await page.evaluate(() => { document.documentElement.dataset.theme = "dark"; });
  await page.screenshot({ path: `${ARTIFACTS}/patterns-dark.png` });
  await page.evaluate(() => { delete document.documentElement.dataset.theme; });

  // A click lists exactly that pattern's logs, back in the list view.
  await page.locator("#analytics .an-pattern").nth(1).click();
  await page.waitForFunction(() => window.CairnExplorer.state().viz === "list");
  await page.waitForFunction(() => document.querySelectorAll("#list .row").length === 25, null, { timeout: 10_000 });
  assert.equal(await page.inputValue("#query"), "service:" + SVC + " " + payment.query);
  const msgs = await page.locator("#list .row .c-msg").allTextContents();
  assert.ok(msgs.every((m) => /^payment \d+ failed after \d+ ms$/.test(m)), msgs.join("\n"));
  // Back returns to the patterns.
  await page.goBack();
  await page.waitForFunction(() => window.CairnExplorer.state().viz === "patterns");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-pattern").length >= 3);
  assert.deepEqual(ctx.errors, []);
  assert.deepEqual(ctx.dialogs, []);
});

test("without the patterns API the view says so instead of showing stale results", async (t) => {
  const r = await call("POST", "/api/v2/logs/analytics/patterns", { filter: { query: "service:" + SVC } });
  if (r.status !== 404) { t.skip("the patterns API exists on this build"); return; }
  await search(page, "service:" + SVC);
  await page.selectOption("#viz", "patterns");
  await page.waitForSelector("#analytics .an-error");
  assert.match(await page.locator("#analytics .an-error").textContent(), /404/);
  assert.equal(await page.locator("#analytics .an-pattern").count(), 0);
  await page.selectOption("#viz", "list");
});

// The same view against an answer shaped exactly as the contract says, so the page is checked
// on any build; the click then runs the real search.
test("the patterns view renders a contract-shaped answer (mocked API) and its click lists the pattern", async () => {
  const sample = { id: "x1", type: "log", attributes: { timestamp: new Date().toISOString(), status: "error", service: SVC,
    host: "h", message: `payment 1001 failed after 3 ms ${XSS}`, tags: [], attributes: {} } };
  const answer = { data: { patterns: [
    { id: "p1", template: "payment <*> failed after <*> ms", count: 25, status: { error: 12, warn: 13 }, sample,
      query: '"payment" "failed after" "ms"' },
    { id: "p2", template: `render ${XSS} widget <*> done`, count: 12, status: { info: 12 }, sample, query: '"render"' },
  ] }, meta: { elapsed: 12, status: "done", scanned: 77, truncated: false } };
  let asked = null;
  await page.route("**/api/v2/logs/analytics/patterns", (route) => {
    asked = route.request().postDataJSON();
    return route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(answer) });
  });
  try {
    await search(page, "service:" + SVC);
    await page.selectOption("#viz", "patterns");
    await page.waitForFunction(() => document.querySelectorAll("#analytics .an-pattern").length === 2);
    assert.equal(asked.filter.query, "service:" + SVC);
    assert.ok(asked.limit <= 100000 && asked.max_patterns > 0, JSON.stringify(asked));
    const first = page.locator("#analytics .an-pattern").first();
    assert.equal(await first.locator(".an-p-template").textContent(), "payment <*> failed after <*> ms");
    assert.deepEqual(await first.locator(".an-p-var").allTextContents(), ["<*>", "<*>"]);
    assert.equal(await first.locator(".an-p-count").textContent(), "25");
    const widths = await first.locator(".an-p-seg").evaluateAll((s) => s.map((x) => x.dataset.status + " " + x.style.width));
    assert.deepEqual(widths, ["error 48%", "warn 52%"]);
    assert.match(await first.locator(".an-p-mix").getAttribute("title"), /error 12, warn 13/);
    assert.match(await page.locator("#analytics .an-detail").textContent(), /2 patterns from 77 logs/);
    assert.equal(await page.locator("#analytics .an-pattern").nth(1).locator(".an-p-template").textContent(), `render ${XSS} widget <*> done`);
    await assertNoInjection(page);
    await page.screenshot({ path: `${ARTIFACTS}/patterns-mocked.png` });
    await first.click();
    await page.waitForFunction(() => window.CairnExplorer.state().viz === "list");
    assert.equal(await page.inputValue("#query"), `service:${SVC} "payment" "failed after" "ms"`);
    await page.waitForFunction(() => document.querySelectorAll("#list .row").length === 25, null, { timeout: 10_000 });
    await page.goBack();
    await page.waitForFunction(() => window.CairnExplorer.state().viz === "patterns");
    assert.equal(await page.inputValue("#query"), "service:" + SVC);
  } finally {
    await page.unroute("**/api/v2/logs/analytics/patterns");
    await page.selectOption("#viz", "list");
  }
  assert.deepEqual(ctx.errors, []);
});
