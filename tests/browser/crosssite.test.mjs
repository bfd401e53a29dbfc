// Another web page (served from another 127.0.0.1 port by a tiny node server) tries to read
// from and write to the intake with an <img>, a link, a form POST and fetches, in a browser
// that holds the Explorer's cookie: every attempt is refused, the intake stays up, nothing
// lands. And the Explorer opened with ?token= ends up signed in with the token gone from the
// address bar. Needs INTAKE_URL and INTAKE_TOKEN (run.sh).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { chromium } from "playwright-core";

const URL = process.env.INTAKE_URL;
const TOKEN = process.env.INTAKE_TOKEN;
const MARK = `xsite${Date.now()}`;
const DEEP = "(".repeat(3000) + "a" + ")".repeat(3000);

let browser, evil, evilUrl;

function evilPage() {
  const tail = `${URL}/api/v2/logs/events/tail?query=${encodeURIComponent(DEEP)}`;
  // A text/plain form is a "simple" request: no CORS preflight, so only the intake can stop it.
  return `<!doctype html><html><body>
<img id="img" src="${tail}">
<a id="link" href="${URL}/api/v2/logs/events/tail?query=${MARK}">logs</a>
<form id="form" method="POST" action="${URL}/api/v2/logs" enctype="text/plain">
  <input name='[{"message":"${MARK} form","x":"' value='"}]'>
</form>
<script src="/evil.js"></script>
</body></html>`;
}

function evilScript() {
  return `
window.results = {};
(async () => {
  try {
    await fetch(${JSON.stringify(URL + "/api/v2/logs")}, { method: "POST", mode: "no-cors",
      credentials: "include", headers: { "Content-Type": "text/plain" },
      body: JSON.stringify([{ message: ${JSON.stringify(MARK + " fetch")} }]) });
    window.results.post = "sent";
  } catch (e) { window.results.post = "error " + e; }
  try {
    const r = await fetch(${JSON.stringify(URL + "/api/v2/logs/events/tail?query=*")}, { credentials: "include" });
    window.results.read = "read " + (await r.text()).length;
  } catch (e) { window.results.read = "blocked"; }
  window.results.done = true;
})();`;
}

async function intake(path, init = {}) {
  return fetch(URL + path, { ...init, headers: { Authorization: `Bearer ${TOKEN}`, ...(init.headers || {}) } });
}

before(async () => {
  assert.ok(URL && TOKEN, "INTAKE_URL and INTAKE_TOKEN are set by run.sh");
  evil = http.createServer((req, res) => {
    if (req.url === "/evil.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" });
      res.end(evilScript());
    } else {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end(evilPage());
    }
  });
  await new Promise((ok) => evil.listen(0, "127.0.0.1", ok));
  evilUrl = `http://127.0.0.1:${evil.address().port}/`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (evil) evil.close();
});

test("the Explorer opened with ?token= is signed in and the token leaves the address bar", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const resp = await page.goto(`${URL}/?token=${TOKEN}`);
  assert.equal(resp.status(), 200);
  const href = await page.evaluate(() => location.href);
  // The page may add its state as a fragment (#range=…); the query is gone.
  assert.equal(href.split("#")[0], URL + "/");
  assert.ok(!href.includes(TOKEN));
  // HttpOnly: the page's scripts cannot read the cookie.
  assert.ok(!(await page.evaluate(() => document.cookie)).includes(TOKEN));
  const cookies = await context.cookies(URL);
  const c = cookies.find((c) => c.value === TOKEN);
  assert.ok(c, "the cookie is set");
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, "Strict");
  // The page's own API calls get through with it.
  const status = await page.evaluate(async () => (await fetch("/api/v1/validate")).status);
  assert.equal(status, 200);
  await context.close();
});

test("a page on another port can neither read nor write, even with the cookie set", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // The strongest case: the browser holds the Explorer's cookie (named after the port).
  const port = new globalThis.URL(URL).port;
  await context.addCookies([{ name: `cairn_intake_${port}`, value: TOKEN, url: URL + "/",
    httpOnly: true, sameSite: "Strict" }]);
  const intakeAnswers = [];
  page.on("response", (r) => { if (r.url().startsWith(URL)) intakeAnswers.push([r.url(), r.status()]); });
  await page.goto(evilUrl);
  await page.waitForFunction(() => window.results && window.results.done, null, { timeout: 10_000 });
  const results = await page.evaluate(() => window.results);
  assert.equal(results.read, "blocked", "CORS keeps the answer from the page");
  // The form POST navigates to the intake, which refuses it.
  const [formResp] = await Promise.all([page.waitForNavigation(), page.evaluate(() => document.getElementById("form").submit())]);
  assert.equal(formResp.status(), 403);
  // The link, too.
  await page.goto(evilUrl);
  const [linkResp] = await Promise.all([page.waitForNavigation(), page.click("#link")]);
  assert.equal(linkResp.status(), 403);
  // The <img> failed to load (the intake refused it before parsing its 6,001-character query).
  await page.goto(evilUrl);
  await page.waitForFunction(() => document.getElementById("img").complete, null, { timeout: 10_000 });
  assert.equal(await page.evaluate(() => document.getElementById("img").naturalWidth), 0);
  // Chromium reports the navigations (form, link); the no-cors fetch and the <img> are opaque
  // to the page, which is why the store is checked below.
  assert.ok(intakeAnswers.length >= 2, JSON.stringify(intakeAnswers));
  assert.ok(intakeAnswers.every(([, s]) => s === 403), JSON.stringify(intakeAnswers));
  await context.close();

  // The intake is still up, and nothing landed.
  const v = await intake("/api/v1/validate");
  assert.equal(v.status, 200);
  const r = await intake("/api/v2/logs/events/search", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ filter: { query: MARK, from: "now-1h", to: "now+1h" } }),
  });
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.data.length, 0, JSON.stringify(body.data));
});
