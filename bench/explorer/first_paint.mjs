// Times the Log Explorer's first paint against a filled intake: from navigation to the moment
// the first log rows, the total and the volume chart are all on screen, over fresh pages of one
// browser context (the static files cached as for a returning user; API answers never are).
// Reference in the same run: the same page's load event, i.e. what the browser alone costs.
//
//   CAIRN_BENCH_HOLD=/tmp/hold cargo bench -p cairn-intake --bench intake &   # fills and holds
//   node bench/explorer/first_paint.mjs /tmp/hold                            # then deletes /tmp/hold
//
// Needs tests/browser's node_modules (npm ci there) and Chromium.
import { createRequire } from "node:module";
import { readFileSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(new URL("../../tests/browser/", import.meta.url));
const { chromium } = require("playwright-core");

const holdFile = process.argv[2];
const runs = Number(process.env.RUNS || 11);
const [url, token] = readFileSync(holdFile, "utf8").trim().split(" ");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
});
const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))];
const paint = [], load = [], facets = [];
try {
  // The token becomes a cookie once; every timed load then opens "/" as a returning user does.
  const context = await browser.newContext({ viewport: { width: 1500, height: 900 } });
  const warm = await context.newPage();
  await warm.goto(`${url}/?token=${token}`);
  await warm.close();
  for (let i = 0; i < runs; i++) {
    const page = await context.newPage();
    const t0 = Date.now();
    await page.goto(`${url}/#range=1d`, { waitUntil: "load" });
    load.push(Date.now() - t0);
    await page.waitForFunction(() =>
      document.querySelectorAll("#list .row").length > 0 &&
      /\d/.test(document.querySelector("#total")?.textContent || "") &&
      document.querySelectorAll("#chart svg *, #chart .bar").length > 0, null, { timeout: 60_000, polling: 5 });
    paint.push(Date.now() - t0);
    // The facets load after the first paint; the next load starts once they are in, so that
    // one load's facet queries never run under the next one's first paint.
    await page.waitForSelector('#facet-list .facet[data-facet="tags"]', { timeout: 60_000 });
    facets.push(Date.now() - t0);
    await page.close();
  }
  console.log(`explorer   first paint (rows + total + chart), 24 h range: p50 ${p50(paint)} ms p95 ${p95(paint)} ms over ${runs} loads`);
  console.log(`explorer   facets in (source, service, status, host, tags):   p50 ${p50(facets)} ms p95 ${p95(facets)} ms`);
  console.log(`reference  load event of the same page:                    p50 ${p50(load)} ms`);
} finally {
  await browser.close();
  rmSync(holdFile, { force: true });
}
