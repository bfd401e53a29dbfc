// Shared by the Explorer's browser tests (not a test itself: run.sh only runs *.test.mjs).
//
// The intake is shared by every *.test.mjs file, and explorer.test.mjs counts every log of the
// last 15 minutes: tests that run before it put their logs hours in the past, and every test
// uses a service of its own (`unique`), opening the page on a query for it.
import assert from "node:assert/strict";
import { launch } from "./launch.mjs";

export const URL = process.env.INTAKE_URL;
export const TOKEN = process.env.INTAKE_TOKEN;
export const ARTIFACTS = process.env.ARTIFACTS;

export function unique(prefix) {
  return prefix + Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
}

export function intake(path, init = {}) {
  return fetch(URL + path, {
    ...init,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}`, ...(init.headers || {}) },
  });
}

export async function ingest(logs) {
  for (let i = 0; i < logs.length; i += 1000) {
    const resp = await intake("/api/v2/logs", { method: "POST", body: JSON.stringify(logs.slice(i, i + 1000)) });
    assert.equal(resp.status, 202, await resp.text());
  }
}

export async function search(query, from = "now-1d", to = "now+1h", limit = 100) {
  const resp = await intake("/api/v2/logs/events/search", {
    method: "POST", body: JSON.stringify({ filter: { query, from, to }, page: { limit } }),
  });
  assert.equal(resp.status, 200, await resp.clone().text());
  return (await resp.json()).data;
}

// Whether an endpoint another branch adds is missing here: the test that needs it is skipped
// with a note instead of failing.
export async function missing(method, path, body) {
  const resp = await intake(path, { method, body: body ? JSON.stringify(body) : undefined });
  return resp.status === 404 || resp.status === 405;
}

// Whether the aggregate API computes min/max of a measure (issue 11, contract A).
export async function hasMeasures() {
  const resp = await intake("/api/v2/logs/analytics/aggregate", {
    method: "POST",
    body: JSON.stringify({ filter: { query: "*", from: "now-1h", to: "now" },
      compute: [{ aggregation: "min", metric: "@x", type: "total" }] }),
  });
  return resp.status === 200;
}

// A fresh Chromium profile on the Explorer with `hash` applied; collects page errors.
export async function open(profile, hash, options) {
  const context = await launch(profile, null, options);
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", async (d) => { errors.push("dialog: " + d.message()); await d.dismiss(); });
  await page.goto(URL + "/?token=" + TOKEN);
  if (hash) {
    await page.goto(URL + "/" + hash);
    await page.reload();
  }
  return { context, page, errors };
}

export function hashOf(params) {
  return "#" + new URLSearchParams(params).toString();
}

export async function waitRows(page, n, timeout = 10_000) {
  await page.waitForFunction((n) => document.querySelectorAll("#list .row").length === n, n, { timeout });
}

export async function waitQuery(page, q) {
  await page.waitForFunction((q) => document.querySelector("#query").value === q, q, { timeout: 10_000 });
}

// Nothing from the data became markup or ran.
export async function assertNothingInjected(page) {
  const injected = await page.evaluate(() => ({
    imgs: document.querySelectorAll("img").length,
    bolds: document.querySelectorAll("b").length - document.querySelectorAll("header b").length,
    inlineScripts: [...document.scripts].filter((s) => !s.src).length,
    pwned: window.__pwned === undefined ? null : window.__pwned,
  }));
  assert.deepEqual(injected, { imgs: 0, bolds: 0, inlineScripts: 0, pwned: null });
}

export const XSS = `<img src=x onerror="window.__pwned='x'"><b>bold</b><script>window.__pwned='s'</script>`;
