// The detail pane (issue 11, item 4): copy as JSON, view in context, multi-line strings, long
// keys, click-to-filter with the query escaped right for any key and value, add as column,
// keyboard navigation. Runs before explorer.test.mjs: its logs are hours old.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, ingest, open, hashOf, waitRows, waitQuery, unique, missing, search, assertNothingInjected, XSS } from "./helpers.mjs";

const SERVICE = unique("det");
const HOST = unique("dh");
const base = `service:${SERVICE}`;
const STACK = "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\nValueError: bad";
const LONG_KEY = "k".repeat(180);
// Keys and values the query language must escape: spaces, colons, quotes, wildcards, parentheses.
const TRICKY = {
  "a b": "x y", "c:d": 'q"uote', e: { f: "v:w", "g h": "(paren) [br]" }, "star*": "s?", "back\\slash": "b\\s",
  num: 42, flag: true, nothing: null, list: ["one", 2],
};
let context, page, errors, logs;

before(async () => {
  const t0 = Date.now() - 3 * 3600_000;
  const batch = [];
  for (let i = 0; i < 9; i++) {
    batch.push({ message: i === 4 ? "the one " + XSS : `around ${i}`, timestamp: t0 + i * 1000, hostname: HOST,
      service: SERVICE, status: "info", n: i, ...(i === 4 ? { stack: STACK, [LONG_KEY]: "long", ...TRICKY, col: XSS } : {}) });
  }
  // Same service, another host: not part of the context.
  batch.push({ message: "elsewhere", timestamp: t0 + 4500, hostname: HOST + "-other", service: SERVICE, status: "info", n: 100 });
  await ingest(batch);
  logs = await search(base);
  ({ context, page, errors } = await open("detail", hashOf({ q: base, range: "4h" }),
    { permissions: ["clipboard-read", "clipboard-write"] }));
  await waitRows(page, 10);
});

after(async () => { if (context) await context.close(); });

const row = (n) => page.locator("#list .row").nth(n);
const one = () => logs.find((l) => l.attributes.attributes.n === 4);
// The first leaf of the open detail pane whose path is `path` (paths hold characters a CSS
// selector would need escaped).
async function leafOf(path) {
  const i = await page.evaluate((p) => [...document.querySelectorAll("#detail .tree li.leaf")].findIndex((li) => li.dataset.path === p), path);
  assert.ok(i >= 0, "no leaf for " + path);
  return page.locator("#detail .tree li.leaf").nth(i);
}

async function openOne() {
  await page.locator("#list .row", { hasText: "the one" }).click();
  await page.waitForSelector("#detail:not([hidden])");
}

test("copy as JSON puts the whole log on the clipboard", async () => {
  await openOne();
  await page.click("#copy-json");
  await page.waitForFunction(() => document.querySelector("#copy-note").textContent === "Copied");
  const copied = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
  assert.deepEqual(copied, one());
});

test("multi-line strings keep their line breaks and long keys wrap", async () => {
  const stack = page.locator('#detail .tree li.leaf[data-path="stack"] .str');
  assert.equal(await stack.innerText(), '"' + STACK + '"');
  assert.equal(await stack.evaluate((e) => getComputedStyle(e).whiteSpace), "pre-wrap");
  const overflow = await page.evaluate(() => { const d = document.querySelector("#detail"); return d.scrollWidth - d.clientWidth; });
  assert.ok(overflow <= 0, `the pane scrolls sideways by ${overflow}px`);
  await page.screenshot({ path: `${ARTIFACTS}/detail-multiline.png` });
});

// Every leaf's generated query finds this very log again: the escaping round-trips.
const EXPECTED = {
  "a b": '@a\\ b:"x y"',
  "c:d": '@c\\:d:"q\\"uote"',
  "e.f": "@e.f:v:w",
  "e.g h": '@e.g\\ h:"(paren) [br]"',
  "star*": '@star\\*:"s?"',
  num: "@num:42",
  flag: "@flag:true",
  list: "@list:one",
  nothing: "@nothing:*",
};
// A backslash in a key is written doubled, and src/query/sql.rs json_path() doubles it again
// for SQLite's quoted path step.
EXPECTED["back\\slash"] = '@back\\\\slash:"b\\\\s"';
for (const [path, term] of Object.entries(EXPECTED)) {
  test(`click-to-filter on ${path} writes ${term} and finds the log`, async () => {
    if (await page.locator("#detail").isHidden()) await openOne();
    const leaf = await leafOf(path);
    assert.equal(await leaf.getAttribute("data-filter"), term);
    await leaf.locator(".str, .num, .lit").first().click();
    await waitQuery(page, `${base} ${term}`);
    await waitRows(page, 1);
    assert.equal(await row(0).getAttribute("data-id"), one().id);
    // Clicking the value again takes the filter off.
    await openOne();
    const again = await leafOf(path);
    await again.locator(".str, .num, .lit").first().click();
    await waitQuery(page, base);
    await waitRows(page, 10);
  });
}

test("a key can be filtered on being present, and Alt-click excludes", async () => {
  await openOne();
  await page.locator('#detail .tree li.leaf[data-path="a b"] .key').click();
  await waitQuery(page, `${base} @a\\ b:*`);
  await waitRows(page, 1);
  await openOne();
  await page.locator('#detail .tree li.leaf[data-path="a b"] .key').click({ modifiers: ["Alt"] });
  await waitQuery(page, `${base} -@a\\ b:*`);
  await waitRows(page, 9);
  await page.fill("#query", base);
  await page.press("#query", "Enter");
  await waitRows(page, 10);
});

test("a dotted key is escaped as @a\\.b and finds only the flat key", async () => {
  await ingest([
    { message: "dotted", timestamp: Date.now() - 3 * 3600_000, service: SERVICE + "-dot", "a.b": "x" },
    { message: "nested", timestamp: Date.now() - 3 * 3600_000 - 1000, service: SERVICE + "-dot", a: { b: "x" } },
  ]);
  await page.fill("#query", `service:${SERVICE}-dot`);
  await page.press("#query", "Enter");
  await waitRows(page, 2);
  await row(0).click();
  const leaf = page.locator("#detail .tree li.leaf").first();
  assert.equal(await leaf.getAttribute("data-filter"), "@a\\.b:x");
  await leaf.locator(".str").click();
  await waitQuery(page, `service:${SERVICE}-dot @a\\.b:x`);
  await waitRows(page, 1);
  await page.fill("#query", base); await page.press("#query", "Enter"); await waitRows(page, 10);
});

test("add as column shows the attribute in the list, persisted, as text", async () => {
  await page.fill("#query", base);
  await page.press("#query", "Enter");
  await waitRows(page, 10);
  await openOne();
  for (const path of ["col", "n"]) {
    const leaf = page.locator(`#detail .tree li.leaf[data-path="${path}"]`);
    await leaf.hover();
    await leaf.locator(".add-column").click();
    await page.waitForSelector(`#list-head .c-extra[data-col="@${path}"]`);
  }
  await waitRows(page, 10);
  const cells = await page.locator('#list .row .c-extra[data-col="@n"]').allTextContents();
  assert.deepEqual(cells.map(Number).sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 100].sort());
  assert.equal(await page.locator("#list .row", { hasText: "the one" }).locator('.c-extra[data-col="@col"]').textContent(), XSS);
  await assertNothingInjected(page);
  await page.reload();
  await page.waitForSelector('#list-head .c-extra[data-col="@n"]');
  assert.deepEqual(await page.evaluate(() => JSON.parse(localStorage.getItem("cairn-columns"))), ["@col", "@n"]);
  await page.screenshot({ path: `${ARTIFACTS}/detail-columns.png` });
  await page.locator('#list-head .c-extra[data-col="@col"] .col-remove').click();
  await page.waitForFunction(() => !document.querySelector('#list-head .c-extra[data-col="@col"]'));
});

test("j/k and the arrows move the selection, Enter opens, Esc closes", async () => {
  await waitRows(page, 10);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await page.keyboard.press("j");
  const selected = () => page.evaluate(() => [...document.querySelectorAll("#list .row")].findIndex((r) => r.classList.contains("selected")));
  const first = await selected();
  await page.keyboard.press("j");
  assert.equal(await selected(), first + 1);
  await page.keyboard.press("ArrowDown");
  assert.equal(await selected(), first + 2);
  await page.keyboard.press("k");
  await page.keyboard.press("ArrowUp");
  assert.equal(await selected(), first);
  await page.keyboard.press("Escape");
  assert.ok(await page.locator("#detail").isHidden());
  await page.keyboard.press("Enter");
  await page.waitForSelector("#detail:not([hidden])");
  const id = await page.locator("#list .row.selected").getAttribute("data-id");
  assert.ok((await page.locator("#detail .kv").innerText()).includes(id));
  await page.keyboard.press("j");
  const id2 = await page.locator("#list .row.selected").getAttribute("data-id");
  assert.notEqual(id2, id);
  assert.ok((await page.locator("#detail .kv").innerText()).includes(id2), "the open pane follows the selection");
  await page.keyboard.press("Escape");
  assert.ok(await page.locator("#detail").isHidden());
});

test("view in context lists the logs around this one from its host and service, as text", async (t) => {
  const id = one().id;
  if (await missing("GET", `/api/v2/logs/events/${encodeURIComponent(id)}/context?before=1&after=1`)) {
    t.skip("needs GET /api/v2/logs/events/{id}/context (issue 11 backend, BE2)");
    console.log("# skipped: the context endpoint answers 404 here");
    return;
  }
  // The query finds only this log; the context ignores it.
  await page.fill("#query", `${base} @n:4`);
  await page.press("#query", "Enter");
  await waitRows(page, 1);
  await row(0).click();
  await page.click("#view-context");
  await page.waitForSelector("#context .ctx-row.self");
  const ctx = await page.locator("#context .ctx-row").evaluateAll((rows) => rows.map((r) => [r.className, r.querySelector(".c-msg").textContent]));
  assert.deepEqual(ctx.map((r) => r[1]), ["around 0", "around 1", "around 2", "around 3", "the one " + XSS, "around 5", "around 6", "around 7", "around 8"]);
  assert.equal(ctx[4][0], "ctx-row self");
  assert.equal(await page.locator("#context .ctx-row.self").getAttribute("data-id"), id);
  await assertNothingInjected(page);
  await page.screenshot({ path: `${ARTIFACTS}/detail-context.png` });
});

test("nothing from the data ran", async () => {
  await assertNothingInjected(page);
  assert.deepEqual(errors, []);
});
