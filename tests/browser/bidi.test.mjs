// Text that lies: Unicode direction controls in log data are shown as visible markers in the
// Explorer and never applied, each value is its own bidi island, and the stored value is kept
// (the API returns it unchanged, and a filter made by clicking still finds the log). Needs
// INTAKE_URL and INTAKE_TOKEN (run.sh).
//
// The intake is shared with the other *.test.mjs files, and explorer.test.mjs counts every log
// of the last 15 minutes: these logs are two hours old, under a service of their own, and the
// page is opened on a four-hour range filtered on that service.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const URL = process.env.INTAKE_URL;
const TOKEN = process.env.INTAKE_TOKEN;
const ARTIFACTS = process.env.ARTIFACTS;
const SERVICE = `bidi${Date.now()}`;
// Obeyed, this reads "amount: ok $1000"; the tag reads "rlo:admin".
const MESSAGE = "amount: \u202E0001$ \u202Dok";
const TAG = "rlo:\u202Enimda";
const ATTR_KEY = "\u2066key\u2069";
const ATTR_VALUE = "\u2067value\u2069 \u200Fend\u200E \u061C";
const HOST = "db\u202Ebad";
const CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/;

let browser, page;
const pageErrors = [];

async function intake(path, init = {}) {
  return fetch(URL + path, {
    ...init,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}`, ...(init.headers || {}) },
  });
}

async function storedLog() {
  const resp = await intake("/api/v2/logs/events/search", {
    method: "POST",
    body: JSON.stringify({ filter: { query: `service:${SERVICE}`, from: "now-1d", to: "now+1h" } }),
  });
  assert.equal(resp.status, 200);
  const body = await resp.json();
  assert.equal(body.data.length, 1, JSON.stringify(body));
  return body.data[0].attributes;
}

const row = () => page.locator("#list .row").first();

async function waitRows(n) {
  await page.waitForFunction((n) => document.querySelectorAll("#list .row").length === n, n, { timeout: 10_000 });
}

before(async () => {
  assert.ok(URL && TOKEN, "INTAKE_URL and INTAKE_TOKEN are set by run.sh");
  const resp = await intake("/api/v2/logs", {
    method: "POST",
    body: JSON.stringify([{
      message: MESSAGE, timestamp: Date.now() - 2 * 3600_000, hostname: HOST, service: SERVICE,
      ddsource: "python", status: "info", ddtags: `env:prod,${TAG}`,
      [ATTR_KEY]: ATTR_VALUE, nested: { [ATTR_KEY]: [ATTR_VALUE] },
    }]),
  });
  assert.equal(resp.status, 202, await resp.text());
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1500, height: 900 } });
  page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(URL + "/?token=" + TOKEN);
  // Only the fragment changes, which loads nothing by itself: reload to read it.
  await page.goto(URL + "/#" + new URLSearchParams({ q: `service:${SERVICE}`, range: "4h" }));
  await page.reload();
  await waitRows(1);
});

after(async () => {
  if (browser) await browser.close();
});

test("the stored log keeps its direction controls", async () => {
  const a = await storedLog();
  assert.equal(a.message, MESSAGE);
  assert.equal(a.host, HOST);
  assert.ok(a.tags.includes(TAG), JSON.stringify(a.tags));
  assert.equal(a.attributes[ATTR_KEY], ATTR_VALUE);
  assert.deepEqual(a.attributes.nested, { [ATTR_KEY]: [ATTR_VALUE] });
});

test("a row shows each direction control as a marker and applies none", async () => {
  const text = await row().innerText();
  assert.ok(!CONTROLS.test(text), JSON.stringify(text));
  assert.equal(await row().locator(".c-msg").innerText(), "amount: <U+202E>0001$ <U+202D>ok");
  assert.equal(await row().locator(".c-host").innerText(), "db<U+202E>bad");
  assert.equal(await row().locator(".c-msg .bidi").count(), 2);
  // The marker says what it stands for.
  assert.match(await row().locator(".c-msg .bidi").first().getAttribute("title"), /RIGHT-TO-LEFT OVERRIDE/);
});

test("facet values show the markers too", async () => {
  await page.waitForSelector('#facets .facet[data-facet="tags"] li');
  const tags = await page.locator('#facets .facet[data-facet="tags"] li .v').allInnerTexts();
  assert.ok(tags.includes("rlo:<U+202E>nimda"), JSON.stringify(tags));
  const hosts = await page.locator('#facets .facet[data-facet="host"] li .v').allInnerTexts();
  assert.deepEqual(hosts, ["db<U+202E>bad"]);
  assert.ok(!CONTROLS.test(await page.locator("#facets").innerText()));
});

test("the detail pane shows markers in the message, tags, host, keys and values", async () => {
  await row().click();
  await page.waitForSelector("#detail:not([hidden])");
  const detail = await page.locator("#detail").innerText();
  assert.ok(!CONTROLS.test(detail), JSON.stringify(detail));
  assert.equal(await page.locator("#detail .message").innerText(), "amount: <U+202E>0001$ <U+202D>ok");
  const chips = await page.locator("#detail .chip").allInnerTexts();
  assert.ok(chips.includes("rlo:<U+202E>nimda"), JSON.stringify(chips));
  const kv = await page.locator("#detail .kv").innerText();
  assert.ok(kv.includes("db<U+202E>bad"), kv);
  const tree = await page.locator("#detail .tree").innerText();
  assert.ok(tree.includes('<U+2066>key<U+2069>: "<U+2067>value<U+2069> <U+200F>end<U+200E> <U+061C>"'), tree);
  // Tooltips cannot hold markers as elements; they hold them as text.
  const titles = await page.locator("#detail [title]").evaluateAll((els) => els.map((e) => e.title));
  assert.ok(titles.includes("Click to filter on @\u2068<U+2066>key<U+2069>\u2069"), JSON.stringify(titles));
  // ...inside an isolate of the page's own (U+2068 … U+2069), and nothing else raw.
  const stripped = titles.map((t) => t.replace(/\u2068([^\u2068\u2069]*)\u2069/g, "$1"));
  assert.ok(stripped.every((t) => !CONTROLS.test(t)), JSON.stringify(titles));
  await page.screenshot({ path: `${ARTIFACTS}/explorer-bidi.png` });
});

test("every value from the data is isolated from the text around it", async () => {
  const styles = await page.evaluate(() => [
    "#list .row .c-msg", "#list .row .c-host", "#list .row .c-service", "#facets .facet li .v",
    "#detail .message", "#detail .chip", "#detail .kv .v", "#detail .tree .key", "#detail .tree .str",
  ].map((sel) => [sel, getComputedStyle(document.querySelector(sel)).unicodeBidi]));
  for (const [sel, value] of styles) assert.equal(value, "isolate", sel);
  // Nothing on the page still holds a raw control, in text or in the DOM's text nodes.
  const raw = await page.evaluate((src) => {
    const re = new RegExp(src);
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const found = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) if (re.test(n.data)) found.push(n.data);
    return found;
  }, CONTROLS.source);
  assert.deepEqual(raw, []);
});

test("clicking the tag filters on the stored value and the query shows its markers", async () => {
  await page.locator("#detail .chip", { hasText: "rlo:" }).click();
  await page.waitForSelector("#query-note:not([hidden])");
  assert.equal(await page.inputValue("#query"), `service:${SERVICE} rlo:"\u202Enimda"`);
  await waitRows(1);
  assert.equal(await row().locator(".c-msg").innerText(), "amount: <U+202E>0001$ <U+202D>ok");
  const note = await page.locator("#query-note").innerText();
  assert.ok(note.includes(`rlo:"<U+202E>nimda"`), note);
  assert.ok(!CONTROLS.test(note), note);
  assert.deepEqual(pageErrors, []);
});

test("an attribute added as a column and as a facet shows the markers too", async () => {
  await row().click();
  await page.waitForSelector("#detail:not([hidden])");
  const leafIndex = () => page.evaluate((k) => [...document.querySelectorAll("#detail .tree li.leaf")].findIndex((li) => li.dataset.path === k), ATTR_KEY);
  let leaf = page.locator("#detail .tree li.leaf").nth(await leafIndex());
  await leaf.hover();
  await leaf.locator(".add-column").click();
  await page.waitForSelector("#list-head .c-extra");
  assert.equal(await page.locator("#list-head .c-extra .col-name").innerText(), "@<U+2066>key<U+2069>");
  assert.equal(await row().locator(".c-extra").innerText(), "<U+2067>value<U+2069> <U+200F>end<U+200E> <U+061C>");
  leaf = page.locator("#detail .tree li.leaf").nth(await leafIndex());
  await leaf.hover();
  await leaf.locator(".add-facet").click();
  await page.waitForSelector("#facets .facet:last-child li");
  const facet = page.locator("#facets .facet").last();
  assert.equal(await facet.locator(".facet-name").innerText(), "@<U+2066>key<U+2069>");
  assert.deepEqual(await facet.locator("li .v").allInnerTexts(), ["<U+2067>value<U+2069> <U+200F>end<U+200E> <U+061C>"]);
  assert.equal(await row().locator(".c-extra").evaluate((e) => getComputedStyle(e).unicodeBidi), "isolate");
  const raw = await page.evaluate((src) => {
    const re = new RegExp(src);
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const found = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) if (re.test(n.data)) found.push(n.data);
    return found;
  }, CONTROLS.source);
  assert.deepEqual(raw, []);
  await page.screenshot({ path: `${ARTIFACTS}/explorer-bidi-column-facet.png` });
  assert.deepEqual(pageErrors, []);
});
