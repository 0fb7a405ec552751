// The daemon's status page in a real headless browser (Debian's chromium, driven by
// playwright-core): `node status_page.mjs URL [INSTRUMENT…]`. tests/it/page.rs runs it against a
// daemon with simulated instruments.
//
// Without JavaScript: the page loads, lists each instrument named, every plot has as many points as
// its server-rendered `data-points` says (and some), and the runs are listed.
// With JavaScript: the same, then, without a reload, a new reading arrives over the event stream
// and shows (a new point on its plot, a changed last reading), and a new run appears in the runs
// section and its end shows there too.
//
// Every wait is for a condition in the page (waitForFunction), bounded by TIMEOUT_MS; never a
// fixed sleep. Exits 1 with a message saying what was not seen.
//
// Environment: CHROMIUM (default /usr/bin/chromium), STATUS_PAGE_TIMEOUT_MS (default 60000).

import { fail, run, withBrowser } from "./browser.mjs";

const [url, ...instruments] = process.argv.slice(2);
const TIMEOUT_MS = Number(process.env.STATUS_PAGE_TIMEOUT_MS || 60000);

// Waits for `predicate` to hold in the page; on timeout, fails with `what`.
async function until(page, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: TIMEOUT_MS });
  } catch (e) {
    fail(`${what}: not seen (${e.message.split("\n")[0]})`);
  }
}

// What the page shows now: instruments, plots (dots and data-points), runs.
function snapshot() {
  const text = (el) => (el ? el.textContent.trim() : "");
  return {
    title: document.title,
    instruments: Array.from(document.querySelectorAll("#instruments tr[data-instrument]"), (tr) => ({
      name: tr.dataset.instrument,
      state: text(tr.children[1]),
      last: text(tr.querySelector("td.last")),
    })),
    plots: Array.from(document.querySelectorAll("svg.plot"), (svg) => ({
      series: svg.dataset.series,
      dataPoints: Number(svg.dataset.points),
      dots: svg.querySelectorAll("circle").length,
    })),
    runs: Array.from(document.querySelectorAll("#runs tr[data-run]"), (tr) => ({
      id: Number(tr.dataset.run),
      status: text(tr.querySelector("td.status")),
      readings: Number(text(tr.querySelector("td.readings"))),
    })),
  };
}

// What both the plain and the scripted page must show as rendered.
function checkRendered(shown, how) {
  if (!shown.title.startsWith("tsagent")) fail(`${how}: the page's title is ${JSON.stringify(shown.title)}`);
  const names = shown.instruments.map((i) => i.name);
  if (names.length === 0) fail(`${how}: no instrument is listed`);
  for (const name of instruments) {
    if (!names.includes(name)) fail(`${how}: instrument ${name} is not listed (listed: ${names.join(", ")})`);
  }
  if (shown.plots.length === 0) fail(`${how}: no plot`);
  for (const p of shown.plots) {
    if (!(p.dataPoints > 0)) fail(`${how}: plot ${p.series} says it has ${p.dataPoints} points`);
    if (p.dots !== p.dataPoints) {
      fail(`${how}: plot ${p.series} draws ${p.dots} points where the page's data says ${p.dataPoints}`);
    }
  }
  if (shown.runs.length === 0) fail(`${how}: no run is listed`);
}

async function withoutScript(browser) {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const response = await page.goto(url, { waitUntil: "load", timeout: TIMEOUT_MS });
  if (!response || !response.ok()) fail(`without JavaScript: GET ${url} answered ${response && response.status()}`);
  const shown = await page.evaluate(snapshot);
  checkRendered(shown, "without JavaScript");
  await context.close();
  return shown;
}

async function withScript(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  let navigations = 0;
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  const response = await page.goto(url, { waitUntil: "load", timeout: TIMEOUT_MS });
  if (!response || !response.ok()) fail(`with JavaScript: GET ${url} answered ${response && response.status()}`);
  const before = await page.evaluate(snapshot);
  checkRendered(before, "with JavaScript");
  // Set once, lost on any reload: every wait below requires it.
  await page.evaluate(() => {
    window.loadedOnce = true;
  });

  // A reading arrives over the event stream and shows: a new point on its plot, with the plot's
  // data-points following, and its instrument's last reading changed.
  await until(
    page,
    "a new reading on a plot and in the instrument's last reading, without reload",
    (old) => {
      if (!window.loadedOnce) return false;
      const grown = Array.from(document.querySelectorAll("svg.plot")).some((svg) => {
        const was = old.plots.find((p) => p.series === svg.dataset.series);
        const dots = svg.querySelectorAll("circle").length;
        return dots === Number(svg.dataset.points) && (!was || dots > was.dots);
      });
      const changed = Array.from(document.querySelectorAll("#instruments td.last")).some((td) => {
        const was = old.instruments.find((i) => i.name === td.dataset.instrument);
        return was && td.textContent.trim() !== was.last;
      });
      return grown && changed;
    },
    before,
  );

  // A run that was not listed when the page loaded appears (run_started), then shows its end
  // (run_ended) with the readings it took.
  const known = before.runs.map((r) => r.id);
  const newest = Math.max(...known);
  await until(
    page,
    `a run after run ${newest} in the runs section, without reload`,
    (after) => window.loadedOnce && Array.from(document.querySelectorAll("#runs tr[data-run]")).some((tr) => Number(tr.dataset.run) > after),
    newest,
  );
  await until(
    page,
    `the end of a run after run ${newest}, with its readings, in the runs section, without reload`,
    (after) =>
      window.loadedOnce &&
      Array.from(document.querySelectorAll("#runs tr[data-run]")).some((tr) => {
        const status = tr.querySelector("td.status").textContent.trim();
        const readings = Number(tr.querySelector("td.readings").textContent.trim());
        return Number(tr.dataset.run) > after && status !== "running" && readings > 0;
      }),
    newest,
  );
  const after = await page.evaluate(snapshot);
  checkRendered(after, "with JavaScript, after live updates");
  if (navigations !== 1) fail(`the page navigated ${navigations} times; live updates must not reload it`);
  if (errors.length > 0) fail(`the page's script failed: ${errors.join("; ")}`);
  await context.close();
  return { before, after };
}

async function main() {
  if (!url) fail("usage: node status_page.mjs URL [INSTRUMENT…]");
  await withBrowser(TIMEOUT_MS, async (browser) => {
    const plain = await withoutScript(browser);
    const { before, after } = await withScript(browser);
    const dots = (s) => s.plots.map((p) => `${p.series}: ${p.dots}`).join(", ");
    console.log(`ok without JavaScript: ${plain.instruments.length} instrument(s), points ${dots(plain)}, ${plain.runs.length} run(s)`);
    console.log(`ok with JavaScript: points ${dots(before)} → ${dots(after)}; runs ${before.runs[0].id} → ${after.runs[0].id} (${after.runs[0].status})`);
  });
}

run("status page", main);
