// Saved views (issue 11 item 7): save the current view under a name, list, open, delete, and a
// shareable #saved=<name> link, on load and in an open tab.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { URL, ARTIFACTS, marker, ingest, call, available, waitIndexed, openExplorer, search, assertNoInjection } from "./fe2-helpers.mjs";

const M = marker("vw");
const SVC = M + "-svc";
const XSS_NAME = `${M} <img src=x onerror="window.__pwned='view'">`;
const PLAIN = M + " errors by host";
let ctx, page;

before(async () => {
  const now = Date.now();
  await ingest(Array.from({ length: 12 }, (_, i) => ({ message: `saved view log ${i}`, service: SVC, hostname: "vh" + (i % 4),
    status: i % 3 ? "info" : "error", timestamp: now - 10_000 - i * 1000 })));
  await waitIndexed("service:" + SVC, 12);
  ctx = await openExplorer("views");
  page = ctx.page;
});
after(async () => { if (ctx) await ctx.context.close(); });

async function openMenu() {
  if (await page.locator("#views-panel").isHidden()) await page.click("#views-button");
  await page.waitForSelector("#views-panel:not([hidden])");
}
async function saveAs(name) {
  await openMenu();
  await page.fill("#view-name", name);
  await page.click("#view-save");
  await page.waitForFunction((n) => [...document.querySelectorAll("#view-list .an-view")].some((li) => li.dataset.name === n), name);
}
const item = (name) => page.locator("#view-list .an-view").filter({ has: page.locator(".an-view-open", { hasText: name }) });

// Runs the whole flow; `real` says whether the intake's own store answers.
async function flow(real) {
  const q = `service:${SVC} status:error`;
  await search(page, q);
  await page.evaluate(() => window.CairnExplorer.set({ viz: "toplist", an: { agg: "count", by: ["host"], limit: 5 } }));
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-top").length === 4);
  const saved = await page.evaluate(() => window.CairnExplorer.state());
  await saveAs(PLAIN);
  await saveAs(XSS_NAME);
  const names = await page.locator("#view-list .an-view-open").allTextContents();
  assert.ok(names.includes(XSS_NAME) && names.includes(PLAIN), names.join("|"));
  await assertNoInjection(page);
  await page.screenshot({ path: `${ARTIFACTS}/views-menu${real ? "" : "-mocked"}.png` });
  if (real) {
    const r = await call("GET", "/api/v2/logs/views/" + encodeURIComponent(XSS_NAME));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.data.state.query, q);
    assert.equal(r.json.data.state.viz, "toplist");
    assert.deepEqual(r.json.data.state.an.by, ["host"]);
  }

  // Somewhere else, then open the saved view from the menu.
  await page.keyboard.press("Escape");
  await search(page, "service:" + SVC);
  await page.selectOption("#viz", "list");
  await openMenu();
  await item(PLAIN).locator(".an-view-open").click();
  await page.waitForFunction((q) => window.CairnExplorer.state().query === q, q);
  assert.equal(await page.inputValue("#query"), q);
  assert.equal(await page.locator("#viz").inputValue(), "toplist");
  await page.waitForFunction(() => document.querySelectorAll("#analytics .an-top").length === 4);
  const now = await page.evaluate(() => window.CairnExplorer.state());
  assert.deepEqual({ q: now.query, viz: now.viz, an: now.an, range: now.range }, { q: saved.query, viz: saved.viz, an: saved.an, range: saved.range });

  // The shareable link, pasted into the open tab (hashchange).
  await search(page, "service:" + SVC);
  await page.selectOption("#viz", "list");
  const href = await item(XSS_NAME).locator(".an-view-link").getAttribute("href");
  assert.equal(href, "#saved=" + encodeURIComponent(XSS_NAME));
  await page.evaluate((h) => { location.hash = h; }, href);
  await page.waitForFunction((q) => window.CairnExplorer.state().query === q, q);
  await page.waitForFunction(() => window.CairnExplorer.state().viz === "toplist");
  await page.waitForFunction(() => !location.hash.includes("saved="));

  // The link opened in a fresh tab.
  const fresh = await ctx.context.newPage();
  const errors = [];
  fresh.on("pageerror", (e) => errors.push(String(e)));
  if (!real) await mock(fresh);
  await fresh.goto(URL + "/" + href);
  await fresh.waitForFunction((q) => window.CairnExplorer && window.CairnExplorer.state().query === q, q, { timeout: 10_000 });
  await fresh.waitForFunction(() => window.CairnExplorer.state().viz === "toplist");
  await fresh.waitForFunction(() => document.querySelectorAll("#analytics .an-top").length === 4);
  assert.equal(await fresh.inputValue("#query"), q);
  // A stored state with junk in it opens only its well-formed parts.
  if (!real) {
    globalThis.__fe2Views.set("junk", { name: "junk", state: { query: "service:junk", facets: 5, columns: [1],
      viz: "<img src=x onerror=alert(1)>", an: [], tz: "mars", range: "15m", from: {}, to: null }, created_at: "", updated_at: "" });
    await fresh.evaluate(() => { location.hash = "#saved=junk"; });
    await fresh.waitForFunction(() => window.CairnExplorer.state().query === "service:junk");
    const st = await fresh.evaluate(() => window.CairnExplorer.state());
    assert.ok(Array.isArray(st.facets) && Array.isArray(st.columns) && ["list", "toplist"].includes(st.viz), JSON.stringify(st));
    globalThis.__fe2Views.delete("junk");
  }
  // An unknown name says so.
  await fresh.evaluate(() => { location.hash = "#saved=" + encodeURIComponent("no such view " + Math.random()); });
  await fresh.waitForSelector("#an-note:not([hidden])");
  assert.match(await fresh.locator("#an-note").textContent(), /Could not open the saved view/);
  assert.deepEqual(errors, []);
  await fresh.close();

  // Delete.
  await openMenu();
  await item(XSS_NAME).locator(".an-view-del").click();
  await page.waitForFunction((n) => ![...document.querySelectorAll("#view-list .an-view")].some((li) => li.dataset.name === n), XSS_NAME);
  await item(PLAIN).locator(".an-view-del").click();
  await page.waitForFunction((n) => ![...document.querySelectorAll("#view-list .an-view")].some((li) => li.dataset.name === n), PLAIN);
  if (real) assert.equal((await call("GET", "/api/v2/logs/views/" + encodeURIComponent(PLAIN))).status, 404);

  // A name the API would refuse is refused here first, with the rule.
  await page.fill("#view-name", "x".repeat(101));
  await page.evaluate(() => { document.querySelector("#view-name").value = "x".repeat(101); });
  await page.click("#view-save");
  await page.waitForFunction(() => /1 to 100 characters/.test(document.querySelector("#views-status").textContent));
  await page.keyboard.press("Escape");
  await page.selectOption("#viz", "list");
  await assertNoInjection(page);
  assert.deepEqual(ctx.errors, []);
  assert.deepEqual(ctx.dialogs, []);
}

test("a view is saved under a name, listed, opened, shared by link and deleted", async (t) => {
  if (!await available(t, "saved views (BE2)", "GET", "/api/v2/logs/views")) return;
  await flow(true);
});

// An in-page store that answers exactly as contract E says, so the page is checked on any build.
async function mock(p) {
  const store = globalThis.__fe2Views || (globalThis.__fe2Views = new Map());
  await p.route(/\/api\/v2\/logs\/views(\/[^?]*)?(\?.*)?$/, async (route) => {
    const req = route.request();
    const u = new globalThis.URL(req.url());
    const name = u.pathname.startsWith("/api/v2/logs/views/") ? decodeURIComponent(u.pathname.slice("/api/v2/logs/views/".length)) : null;
    const json = (status, body) => route.fulfill({ status, contentType: "application/json", body: body === undefined ? "" : JSON.stringify(body) });
    const notFound = () => json(404, { errors: [{ status: "404", title: "Not Found", detail: `no saved view named ${JSON.stringify(name)}` }] });
    if (name === null) return json(200, { data: [...store.values()].sort((a, b) => (a.name < b.name ? -1 : 1)) });
    if (req.method() === "GET") return store.has(name) ? json(200, { data: store.get(name) }) : notFound();
    if (req.method() === "PUT") {
      const at = new Date().toISOString();
      const v = { name, state: req.postDataJSON().state, created_at: (store.get(name) || {}).created_at || at, updated_at: at };
      store.set(name, v);
      return json(200, { data: v });
    }
    if (req.method() === "DELETE") { if (!store.delete(name)) return notFound(); return route.fulfill({ status: 204, body: "" }); }
    return json(405, { errors: [{ status: "405", detail: "method" }] });
  });
}

test("the saved views menu works against a contract-shaped API (mocked)", async () => {
  await mock(page);
  try { await flow(false); } finally { await page.unroute(/\/api\/v2\/logs\/views(\/[^?]*)?(\?.*)?$/); }
});
