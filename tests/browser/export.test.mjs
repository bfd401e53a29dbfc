// Export of the current query (issue 11 item 7): CSV and NDJSON through the Export menu,
// downloaded as files; CSV cells that a spreadsheet would run as formulas are defused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { ARTIFACTS, marker, ingest, available, waitIndexed, openExplorer, search, assertNoInjection } from "./fe2-helpers.mjs";

const M = marker("ex");
const SVC = M + "-svc";
const FORMULAS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"];
let ctx, page;

before(async () => {
  const now = Date.now();
  const logs = [];
  for (let i = 0; i < 30; i++) {
    logs.push({ message: i < FORMULAS.length ? FORMULAS[i] : `export line ${i}, "quoted"\nsecond line`, service: SVC,
      hostname: "eh", status: i % 2 ? "info" : "error", timestamp: now - 5_000 - i * 1000, ex_col: i === 0 ? "=1+1" : i, ddtags: "env:ex" });
  }
  await ingest(logs);
  await waitIndexed("service:" + SVC, 30);
  ctx = await openExplorer("export");
  page = ctx.page;
});
after(async () => { if (ctx) await ctx.context.close(); });

// RFC 4180: fields in double quotes may hold commas, quotes ("") and line breaks.
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || (c === "\r" && text[i + 1] === "\n")) { if (c === "\r") i++; row.push(field); rows.push(row); row = []; field = ""; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

async function download(format) {
  if (await page.locator("#export-panel").isHidden()) await page.click("#export-button");
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 15_000 }), page.click("#export-" + format)]);
  const path = await dl.path();
  return { name: dl.suggestedFilename(), text: await readFile(path, "utf8") };
}

test("the current query exports as CSV with the list's columns, formulas defused", async (t) => {
  if (!await available(t, "export (BE2)", "POST", "/api/v2/logs/events/export",
    { filter: { query: "service:" + SVC, from: "now-1h", to: "now" }, format: "csv", limit: 1 })) return;
  await search(page, "service:" + SVC);
  await page.evaluate(() => window.CairnExplorer.set({ columns: ["@ex_col"] }));
  const { name, text } = await download("csv");
  assert.match(name, /^cairn-logs-.+\.csv$/);
  const rows = parseCsv(text);
  assert.deepEqual(rows[0].slice(0, 7), ["timestamp", "status", "host", "service", "source", "message", "tags"]);
  // The column's name starts with @, so the header cell may be defused like any other.
  assert.ok(["@ex_col", "'@ex_col"].includes(rows[0][7]), rows[0][7]);
  assert.equal(rows.length, 31, text.slice(0, 500));
  const byMsg = new Map(rows.slice(1).map((r) => [r[5], r]));
  for (const f of FORMULAS) assert.ok(byMsg.has("'" + f), "defused: " + JSON.stringify(f) + " in " + [...byMsg.keys()].slice(0, 8).join("|"));
  assert.equal(byMsg.get("'" + FORMULAS[0])[7], "'=1+1");
  assert.ok(byMsg.has(`export line 29, "quoted"\nsecond line`), "quotes and line breaks survive");
  // Newest first.
  assert.equal(rows[1][5], "'" + FORMULAS[0]);
  await page.screenshot({ path: `${ARTIFACTS}/export-menu.png` });
  await page.keyboard.press("Escape");
});

test("the current query exports as NDJSON, one log per line as search returns it", async (t) => {
  if (!await available(t, "export (BE2)", "POST", "/api/v2/logs/events/export",
    { filter: { query: "service:" + SVC, from: "now-1h", to: "now" }, format: "ndjson", limit: 1 })) return;
  await search(page, "service:" + SVC + " status:error");
  const { name, text } = await download("ndjson");
  assert.match(name, /^cairn-logs-.+\.ndjson$/);
  const lines = text.split("\n").filter((l) => l);
  assert.equal(lines.length, 15);
  const logs = lines.map((l) => JSON.parse(l));
  assert.ok(logs.every((l) => l.type === "log" && l.attributes.service === SVC && l.attributes.status === "error"));
  assert.equal(logs[0].attributes.message, FORMULAS[0], "NDJSON keeps values as they are");
  await page.keyboard.press("Escape");
  await assertNoInjection(page);
});

test("export sends the contract's request and downloads the answer (mocked API)", async () => {
  let asked = null;
  const csv = "timestamp,status,host,service,source,message,tags,@ex_col\r\n2026-01-01T00:00:00Z,info,eh,s,,'=1+1,,'=2\r\n";
  await page.route("**/api/v2/logs/events/export", (route) => {
    asked = route.request().postDataJSON();
    return route.fulfill({ status: 200, headers: { "Content-Type": "text/csv; charset=utf-8",
      "Content-Disposition": 'attachment; filename="cairn-logs-20260101T000000Z.csv"' }, body: csv });
  });
  try {
    await search(page, "service:" + SVC);
    await page.evaluate(() => window.CairnExplorer.set({ columns: ["@ex_col", "tags"] }));
    const { name, text } = await download("csv");
    assert.equal(name, "cairn-logs-20260101T000000Z.csv");
    assert.equal(text, csv);
    assert.deepEqual(asked.filter.query, "service:" + SVC);
    assert.ok(asked.filter.from !== undefined && asked.filter.to !== undefined);
    assert.equal(asked.format, "csv");
    assert.deepEqual(asked.columns, ["@ex_col", "tags"]);
    assert.equal(asked.limit, 100000);
    assert.equal(asked.sort, "-timestamp");
    assert.match(await page.locator("#export-status").textContent(), /Downloaded cairn-logs-20260101T000000Z\.csv/);
  } finally { await page.unroute("**/api/v2/logs/events/export"); }
  // A refusal is shown, not swallowed.
  await page.route("**/api/v2/logs/events/export", (route) => route.fulfill({ status: 400, contentType: "application/json",
    body: JSON.stringify({ errors: [{ status: "400", title: "Bad Request", detail: "limit 200000 is above 100000" }] }) }));
  try {
    await page.click("#export-ndjson");
    await page.waitForFunction(() => /Export failed: limit 200000 is above 100000/.test(document.querySelector("#export-status").textContent));
    assert.equal(asked.format, "csv", "the refused request was not the mocked one above");
  } finally { await page.unroute("**/api/v2/logs/events/export"); }
  await page.screenshot({ path: `${ARTIFACTS}/export-mocked.png` });
  await page.keyboard.press("Escape");
  assert.deepEqual(ctx.errors, []);
  assert.deepEqual(ctx.dialogs, []);
});
