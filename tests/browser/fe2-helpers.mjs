// Shared by the analytics, patterns, saved views and export tests: seeding, probing an API
// that may not exist yet on this build, and opening the Explorer.
import assert from "node:assert/strict";
import { launch } from "./launch.mjs";

export const URL = process.env.INTAKE_URL;
export const TOKEN = process.env.INTAKE_TOKEN;
export const ARTIFACTS = process.env.ARTIFACTS;

// A marker unique to one run, so each test sees only its own logs.
export function marker(prefix) {
  return prefix + Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
}

export async function ingest(logs) {
  const resp = await fetch(URL + "/api/v2/logs", {
    method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(logs),
  });
  assert.equal(resp.status, 202, await resp.text());
}

export async function call(method, path, body) {
  const resp = await fetch(URL + path, {
    method, headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: resp.status, text, json, headers: resp.headers };
}

// Whether an endpoint this test needs is on this build: 404 (no such route) or a 400 that
// refuses the request shape means "not yet", and the test is skipped with a note saying so.
export async function available(t, what, method, path, body) {
  const r = await call(method, path, body);
  if (r.status === 404 || r.status === 405 || (r.status === 400 && body !== undefined)) {
    const msg = `${what}: ${method} ${path} answered ${r.status} on this build (${r.text.slice(0, 160)}); skipped`;
    console.log("SKIP " + msg);
    t.skip(msg);
    return false;
  }
  return true;
}

// Logs arrive in the store a moment after the 202: wait until a search sees them all.
export async function waitIndexed(query, n) {
  for (let i = 0; i < 100; i++) {
    const r = await call("POST", "/api/v2/logs/events/search", { filter: { query, from: "now-1h", to: "now" }, page: { limit: 1000 } });
    if (r.status === 200 && r.json.data.length >= n) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`the ${n} logs for ${query} were never searchable`);
}

export async function openExplorer(profile) {
  const context = await launch(profile);
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  const dialogs = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  await page.goto(URL + "/?token=" + TOKEN);
  await page.waitForSelector("#viz");
  return { context, page, errors, dialogs };
}

export async function search(page, query) {
  await page.fill("#query", query);
  await page.press("#query", "Enter");
  await page.waitForFunction((q) => window.CairnExplorer.state().query === q, query);
}

// Nothing from the data became markup or ran.
export async function assertNoInjection(page) {
  const injected = await page.evaluate(() => ({
    imgs: document.querySelectorAll("img").length,
    inlineScripts: [...document.scripts].filter((s) => !s.src).length,
    pwned: window.__pwned === undefined ? null : window.__pwned,
    // No direction control reaches the page's text (they are shown as markers).
    controls: (() => {
      const re = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/;
      const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      const found = [];
      for (let n = w.nextNode(); n; n = w.nextNode()) if (re.test(n.data)) found.push(n.data);
      return found;
    })(),
  }));
  assert.deepEqual(injected, { imgs: 0, inlineScripts: 0, pwned: null, controls: [] });
}
