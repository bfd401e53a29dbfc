// The Monitors view (issue 12): "Create monitor" from a Logs query, the form building Datadog's
// log monitor query, the list with states, evaluate now per group, mute and delete, every value
// from the data shown as text.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { URL, ARTIFACTS, unique, intake, ingest, search, open, hashOf, waitRows, assertNothingInjected, XSS } from "./helpers.mjs";

const SVC = unique("mon");
let ctx, page;

before(async () => {
  const now = Date.now();
  const logs = [];
  for (let i = 0; i < 5; i++) logs.push({ message: "boom " + i, service: SVC, hostname: "h1", status: "error", timestamp: now - 30_000 - i * 1000 });
  for (let i = 0; i < 2; i++) logs.push({ message: "bang " + i, service: SVC, hostname: "h2", status: "error", timestamp: now - 30_000 - i * 1000 });
  logs.push({ message: "fine", service: SVC, hostname: "h1", status: "info", timestamp: now - 30_000 });
  await ingest(logs);
  for (let i = 0; i < 50 && (await search("service:" + SVC)).length < 8; i++) await new Promise((r) => setTimeout(r, 100));
  ctx = await open("monitors", hashOf({ q: `service:${SVC} status:error`, range: "1h" }));
  page = ctx.page;
  await waitRows(page, 7);
});
after(async () => { if (ctx) await ctx.context.close(); });

async function monitors() {
  const r = await intake("/api/v1/monitor");
  assert.equal(r.status, 200);
  return (await r.json()).filter((m) => (m.query || "").includes(SVC));
}

test("a monitor created from the Logs view's query evaluates per group", async () => {
  await page.click("#create-monitor");
  await page.waitForSelector("#mon-form:not([hidden])");
  assert.equal(await page.inputValue("#mf-search"), `service:${SVC} status:error`);
  await page.fill("#mf-critical", "3");
  await page.fill("#mf-warning", "1");
  await page.fill("#mf-by1", "host");
  await page.fill("#mf-name", XSS);
  const query = await page.inputValue("#mf-query");
  assert.equal(query, `logs("service:${SVC} status:error").index("*").rollup("count").by("host").last("5m") > 3`);
  await page.click("#mf-save");
  await page.waitForSelector("#mon-form", { state: "hidden" });
  const list = await monitors();
  assert.equal(list.length, 1);
  assert.equal(list[0].name, XSS);
  assert.equal(list[0].type, "log alert");
  assert.equal(list[0].query, query);
  assert.equal(list[0].options.thresholds.critical, 3);
  assert.equal(list[0].options.thresholds.warning, 1);
  await page.waitForFunction((id) => !!document.querySelector(`#mon-rows tr[data-id="${id}"]`), String(list[0].id));
  assert.equal(await page.locator("#mon-rows .mon-name").first().textContent(), XSS);
  await assertNothingInjected(page);

  await page.click("#mon-rows tr");
  await page.waitForSelector("#mon-evaluate");
  await page.click("#mon-evaluate");
  await page.waitForFunction(() => document.querySelectorAll("#mon-eval tr").length === 2);
  const rows = await page.locator("#mon-eval tr").allTextContents();
  const h1 = rows.find((r) => r.includes("h1"));
  const h2 = rows.find((r) => r.includes("h2"));
  assert.ok(h1 && h1.includes("5"), rows.join("|"));
  assert.ok(h2 && h2.includes("2"), rows.join("|"));
  assert.match(h1, /alert/i);
  assert.match(h2, /warn/i);
  await page.screenshot({ path: `${ARTIFACTS}/monitors.png` });
});

test("a monitor is muted, unmuted and deleted from the list", async () => {
  const [m] = await monitors();
  const row = page.locator(`#mon-rows tr[data-id="${m.id}"]`);
  await row.getByRole("button", { name: "Mute" }).click();
  await page.waitForFunction((id) => document.querySelector(`#mon-rows tr[data-id="${id}"]`).textContent.includes("muted"), String(m.id));
  await row.getByRole("button", { name: "Unmute" }).click();
  await page.waitForFunction((id) => !document.querySelector(`#mon-rows tr[data-id="${id}"]`).textContent.includes("muted"), String(m.id));
  page.once("dialog", (d) => d.accept());
  page.removeAllListeners("dialog");
  page.on("dialog", (d) => d.accept());
  await row.getByRole("button", { name: "Delete" }).click();
  await page.waitForFunction((id) => !document.querySelector(`#mon-rows tr[data-id="${id}"]`), String(m.id));
  assert.equal((await monitors()).length, 0);
});

test("the form refuses a monitor the intake cannot evaluate and says why", async () => {
  await page.click("#mon-new");
  await page.fill("#mf-name", "broken");
  await page.fill("#mf-critical", "1");
  await page.fill("#mf-query", 'logs("service:x").rollup("median").last("5m") > 1');
  await page.click("#mf-save");
  await page.waitForSelector("#mf-error:not([hidden])");
  assert.ok((await page.textContent("#mf-error")).length > 0);
  assert.equal((await monitors()).length, 0);
  await page.click("#mf-cancel");
});

test("editing a monitor keeps Datadog's on_missing_data and the options the form does not show", async () => {
  const r = await intake("/api/v1/monitor", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      name: "imported", type: "log alert",
      query: `logs("service:${SVC}").rollup("count").last("5m") > 100`,
      options: { thresholds: { critical: 100 }, on_missing_data: "show_no_data", escalation_message: "still", evaluation_delay: 60 },
    }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  const id = (await r.json()).id;
  // The list reloads every 15 s; a page opened on the view (as from a bookmark) loads it at once.
  await page.goto(URL + "/#view=monitors");
  await page.reload();
  const row = page.locator(`#mon-rows tr[data-id="${id}"]`);
  await row.waitFor();
  await row.getByRole("button", { name: "Edit" }).click();
  await page.waitForSelector("#mon-form:not([hidden])");
  assert.equal(await page.isChecked("#mf-nodata"), false, "show_no_data does not notify");
  await page.check("#mf-nodata");
  await page.click("#mf-save");
  await page.waitForSelector("#mon-form", { state: "hidden" });
  const m = (await monitors()).find((x) => x.id === id);
  assert.equal(m.options.on_missing_data, "show_and_notify_no_data");
  assert.equal(m.options.notify_no_data ?? false, false);
  assert.equal(m.options.escalation_message, "still");
  assert.equal(m.options.evaluation_delay, 60);
});
