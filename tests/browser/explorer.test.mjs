// The Log Explorer in a real headless Chromium against a real intake (started by run.sh).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./launch.mjs";

const URL = process.env.INTAKE_URL;
// The intake's token (run.sh): API calls send it, the page gets it once via ?token=.
const TOKEN = process.env.INTAKE_TOKEN;
const ARTIFACTS = process.env.ARTIFACTS;
const XSS_MESSAGE = `login from <img src=x onerror="window.__pwned='message'"> <script>window.__pwned='script'</script>`;
const XSS_ATTR = `<img src=x onerror="window.__pwned='attribute'">`;

let context, page;
const pageErrors = [];
const dialogs = [];

async function ingest(logs) {
  const resp = await fetch(URL + "/api/v2/logs", {
    method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(logs),
  });
  assert.equal(resp.status, 202, await resp.text());
}

function fixtures() {
  const now = Date.now();
  const logs = [];
  const services = ["web", "api", "db"];
  for (let i = 0; i < 30; i++) {
    logs.push({
      message: `request ${i} handled`, timestamp: now - 60_000 - i * 1000, hostname: `host-${i % 2}`,
      service: services[i % 3], ddsource: i % 3 === 2 ? "postgres" : "python",
      status: i % 5 === 0 ? "error" : "info", ddtags: `env:prod,shard:${i % 3}`,
      duration_ms: i * 10, http: { status_code: i % 5 === 0 ? 500 : 200 },
    });
  }
  logs.push({
    message: XSS_MESSAGE, timestamp: now - 30_000, hostname: "host-<b>x</b>", service: "evil",
    ddsource: "python", status: "warn", ddtags: "env:prod,owner:<script>x</script>",
    payload: XSS_ATTR, nested: { html: "<script>window.__pwned='nested'</script>", list: ["<b>bold</b>", 1, true, null] },
  });
  return logs;
}

before(async () => {
  assert.ok(URL && TOKEN, "INTAKE_URL and INTAKE_TOKEN are set by run.sh");
  await ingest(fixtures());
  context = await launch("");
  page = context.pages()[0] || await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
});

after(async () => {
  if (context) await context.close();
});

const rows = () => page.locator("#list .row");

async function waitRows(n) {
  await page.waitForFunction((n) => document.querySelectorAll("#list .row").length === n, n, { timeout: 10_000 });
}

test("the explorer lists every log newest first with facets and a volume chart", async () => {
  // The URL cairn prints: the intake trades the token for a cookie and redirects to "/".
  await page.goto(URL + "/?token=" + TOKEN);
  assert.equal(page.url().split("#")[0], URL + "/", "the token left the address bar");
  await waitRows(31);
  const first = await rows().first().locator(".c-service").textContent();
  assert.equal(first, "evil", "the newest log comes first");
  await page.waitForSelector('#facets .facet[data-facet="service"] li');
  const services = await page.locator('#facets .facet[data-facet="service"] li .v').allTextContents();
  assert.deepEqual(services.sort(), ["api", "db", "evil", "web"]);
  const apiCount = await page.locator('#facets .facet[data-facet="service"] li[data-value="api"] .n').textContent();
  assert.equal(apiCount, "10");
  assert.ok(await page.locator("#chart .bar .seg").count() > 0, "the chart has bars");
  assert.match(await page.locator("#total").textContent(), /^31 logs$/);
});

test("clicking a facet value adds it to the query and filters the list", async () => {
  await page.locator('#facets .facet[data-facet="service"] li[data-value="api"]').click();
  await waitRows(10);
  assert.equal(await page.inputValue("#query"), "service:api");
  const services = await rows().locator(".c-service").allTextContents();
  assert.ok(services.every((s) => s === "api"), services.join(","));
  await page.locator('#facets .facet[data-facet="tags"] li[data-value="shard:1"]').click();
  await waitRows(10);
  assert.equal(await page.inputValue("#query"), "service:api shard:1");
});

test("a typed query filters the list, and a bad one shows where it is wrong", async () => {
  await page.fill("#query", "status:error @duration_ms:>100");
  await page.press("#query", "Enter");
  await waitRows(3);
  const statuses = await rows().locator(".c-status").allTextContents();
  assert.deepEqual(statuses, ["error", "error", "error"]);
  await page.fill("#query", "service:(a OR");
  await page.press("#query", "Enter");
  await page.waitForSelector("#query-error:not([hidden])");
  assert.match(await page.locator("#query-error").textContent(), /query error at column 13/);
});

test("a log with markup in it is shown as text and runs nothing", async () => {
  await page.fill("#query", "service:evil");
  await page.press("#query", "Enter");
  await waitRows(1);
  assert.equal(await rows().first().locator(".c-msg").textContent(), XSS_MESSAGE);
  await rows().first().click();
  await page.waitForSelector("#detail:not([hidden])");
  assert.equal(await page.locator("#detail .message").textContent(), XSS_MESSAGE);
  const tree = await page.locator("#detail .tree").textContent();
  // Strings are shown as they are, between quotes (line breaks kept), not JSON-escaped.
  assert.ok(tree.includes('"' + XSS_ATTR + '"'), tree);
  assert.ok(tree.includes("<script>window.__pwned='nested'</script>"), tree);
  assert.ok(tree.includes("<b>bold</b>"), tree);
  const chips = await page.locator("#detail .chip").allTextContents();
  assert.ok(chips.includes("owner:<script>x</script>"), chips.join(","));
  const injected = await page.evaluate(() => ({
    imgs: document.querySelectorAll("img").length,
    bolds: document.querySelectorAll("b").length - document.querySelectorAll("header b").length,
    inlineScripts: [...document.scripts].filter((s) => !s.src).length,
    pwned: window.__pwned === undefined ? null : window.__pwned,
  }));
  assert.deepEqual(injected, { imgs: 0, bolds: 0, inlineScripts: 0, pwned: null });
  assert.deepEqual(dialogs, []);
  assert.deepEqual(pageErrors, []);
  await page.screenshot({ path: `${ARTIFACTS}/explorer-markup-as-text.png` });
});

test("clicking an attribute in the detail pane filters on it", async () => {
  await page.fill("#query", "");
  await page.press("#query", "Enter");
  await waitRows(31);
  await rows().nth(1).click();
  await page.waitForSelector("#detail:not([hidden])");
  await page.screenshot({ path: `${ARTIFACTS}/explorer.png` });
  await page.locator("#detail .tree li.leaf", { hasText: "status_code" }).first().click();
  await page.waitForFunction(() => document.querySelector("#query").value.startsWith("@http.status_code:"));
  const q = await page.inputValue("#query");
  const expected = q.endsWith("500") ? 6 : 24;
  await waitRows(expected);
});

test("live tail shows new logs as they arrive", async () => {
  await page.fill("#query", "service:tailed");
  await page.press("#query", "Enter");
  await page.locator("#live").click();
  await page.waitForFunction(() => document.querySelector("#more").textContent.startsWith("Live"), null, { timeout: 10_000 });
  await ingest([{ message: "arrived while watching", service: "tailed", status: "info" }]);
  await waitRows(1);
  assert.equal(await rows().first().locator(".c-msg").textContent(), "arrived while watching");
  await page.locator("#live").click();
});
