// The lab's report in a real headless browser (Debian's chromium, driven by playwright-core):
// `node report.mjs REPORT_HTML SCREENSHOT_PNG`. tests/it/report.rs runs it on a report written from
// a fixture; the README's picture (docs/report.png) is taken the same way from the demo's report.
//
// The page is loaded from file:// with JavaScript off (the report has none and needs none), and
// must show its result table with the value and expanded uncertainty, the budget, and every plot
// drawn: an SVG with both axes and as many markers as its data-points says. Then a full-page PNG
// screenshot is saved. Exits 1 with a message saying what was not seen.
//
// Environment: CHROMIUM (default /usr/bin/chromium), REPORT_TIMEOUT_MS (default 60000).

import { pathToFileURL } from "node:url";
import path from "node:path";
import { fail, run, withBrowser } from "./browser.mjs";

const [html, screenshot] = process.argv.slice(2);
const TIMEOUT_MS = Number(process.env.REPORT_TIMEOUT_MS || 60000);

// What the page shows: the result, the budget's rows, each plot's axes and markers, and any
// resource it tried to load (it must need none).
function snapshot() {
  const text = (el) => (el ? el.textContent.trim() : "");
  return {
    title: document.title,
    result: text(document.querySelector("#result")),
    resultRows: document.querySelectorAll("#result table.result tr").length,
    budgetRows: document.querySelectorAll("#budget table.budget tbody tr").length,
    plots: Array.from(document.querySelectorAll("#plots svg.plot"), (svg) => {
      const box = svg.getBoundingClientRect();
      return {
        kind: svg.dataset.kind,
        dataPoints: Number(svg.dataset.points),
        markers: svg.querySelectorAll("g.data circle.pt").length,
        xAxis: text(svg.querySelector("g.axis.x text.label")),
        yAxis: text(svg.querySelector("g.axis.y text.label")),
        width: box.width,
        height: box.height,
      };
    }),
  };
}

async function main() {
  if (!html || !screenshot) fail("usage: node report.mjs REPORT_HTML SCREENSHOT_PNG");
  await withBrowser(TIMEOUT_MS, async (browser) => {
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1000, height: 800 } });
    const page = await context.newPage();
    const requests = [];
    page.on("request", (r) => {
      if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) requests.push(r.url());
    });
    const url = pathToFileURL(path.resolve(html)).href;
    const response = await page.goto(url, { waitUntil: "load", timeout: TIMEOUT_MS });
    if (!response || !response.ok()) fail(`${url} did not load`);
    const shown = await page.evaluate(snapshot);
    if (!shown.title) fail("the report has no title");
    if (shown.resultRows < 5) fail(`the result table has ${shown.resultRows} rows`);
    if (!/U = /.test(shown.result)) fail(`the result shows no expanded uncertainty: ${shown.result}`);
    if (shown.budgetRows === 0) fail("the budget has no rows");
    if (shown.plots.length === 0) fail("no plot");
    for (const p of shown.plots) {
      if (!p.xAxis || !p.yAxis) fail(`plot ${p.kind} lacks an axis label (x: ${p.xAxis}, y: ${p.yAxis})`);
      if (!(p.dataPoints > 0) || p.markers !== p.dataPoints) {
        fail(`plot ${p.kind} draws ${p.markers} markers where it says ${p.dataPoints}`);
      }
      if (!(p.width > 100 && p.height > 50)) fail(`plot ${p.kind} is ${p.width}×${p.height}`);
    }
    if (requests.length > 0) fail(`the report is not self-contained: it loaded ${requests.join(", ")}`);
    await page.screenshot({ path: screenshot, fullPage: true });
    // The print layout renders too (A4, @media print).
    await page.emulateMedia({ media: "print" });
    const printed = await page.evaluate(() => document.querySelectorAll("svg.plot").length);
    if (printed !== shown.plots.length) fail(`in print, ${printed} plots of ${shown.plots.length}`);
    console.log(
      `ok: result rows ${shown.resultRows}, budget rows ${shown.budgetRows}, plots ` +
        shown.plots.map((p) => `${p.kind}: ${p.markers}`).join(", ") +
        `; screenshot ${screenshot}`,
    );
    await context.close();
  });
}

run("report", main);
