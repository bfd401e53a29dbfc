// Dark mode (issue 11, item 7): follows prefers-color-scheme until the toggle picks a theme,
// which the browser keeps.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ARTIFACTS, ingest, open, hashOf, waitRows, unique } from "./helpers.mjs";

const SERVICE = unique("theme");
const contexts = [];

after(async () => { for (const c of contexts) await c.close(); });

// Relative luminance of a computed `rgb(...)` colour, 0 (black) to 1 (white).
function luminance(rgb) {
  const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map((v) => Number(v) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
async function colours(page) {
  return page.evaluate(() => ({
    body: getComputedStyle(document.body).backgroundColor,
    list: getComputedStyle(document.querySelector("#list")).backgroundColor,
    text: getComputedStyle(document.querySelector("#list .row .c-msg")).color,
    theme: document.documentElement.dataset.theme || null,
  }));
}

test("a dark system gets the dark theme, and the toggle overrides it, persisted", async () => {
  await ingest([{ message: "themed", timestamp: Date.now() - 2 * 3600_000, service: SERVICE, status: "error" }]);
  const { context, page, errors } = await open("theme-dark", hashOf({ q: `service:${SERVICE}`, range: "4h" }), { colorScheme: "dark" });
  contexts.push(context);
  await waitRows(page, 1);
  let c = await colours(page);
  assert.equal(c.theme, null, "no choice made yet");
  assert.ok(luminance(c.body) < 0.2 && luminance(c.list) < 0.2, JSON.stringify(c));
  assert.ok(luminance(c.text) > 0.6, JSON.stringify(c));
  assert.equal(await page.textContent("#theme"), "Auto");
  await page.screenshot({ path: `${ARTIFACTS}/theme-dark.png` });
  await page.click("#theme");
  c = await colours(page);
  assert.equal(c.theme, "light");
  assert.ok(luminance(c.list) > 0.8, JSON.stringify(c));
  await page.reload();
  await waitRows(page, 1);
  c = await colours(page);
  assert.equal(c.theme, "light", "the choice survives a reload");
  assert.equal(await page.textContent("#theme"), "Light");
  await page.click("#theme");
  assert.equal((await colours(page)).theme, "dark");
  await page.click("#theme");
  c = await colours(page);
  assert.equal(c.theme, null, "back to following the system");
  assert.ok(luminance(c.list) < 0.2);
  assert.deepEqual(errors, []);
});

test("a light system gets the light theme; the dark toggle works there too", async () => {
  const { context, page } = await open("theme-light", hashOf({ q: `service:${SERVICE}`, range: "4h" }), { colorScheme: "light" });
  contexts.push(context);
  await waitRows(page, 1);
  let c = await colours(page);
  assert.ok(luminance(c.list) > 0.8, JSON.stringify(c));
  await page.click("#theme");
  await page.click("#theme");
  c = await colours(page);
  assert.equal(c.theme, "dark");
  assert.ok(luminance(c.list) < 0.2, JSON.stringify(c));
  await page.locator("#list .row").first().click();
  await page.waitForSelector("#detail:not([hidden])");
  const detailBg = await page.evaluate(() => getComputedStyle(document.querySelector("#detail")).backgroundColor);
  assert.ok(luminance(detailBg) < 0.2, detailBg);
  await page.screenshot({ path: `${ARTIFACTS}/theme-dark-toggle.png` });
});
