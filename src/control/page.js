// The status page, live. Without JavaScript the page is whole and refreshes itself every minute;
// with it, it follows the daemon's event stream (/events): each committed reading becomes a point
// on its plot, its instrument's last reading and its run's count, without a reload; a run's start
// or end, an instrument's change, a custody event or a seal fetch the page again and swap the parts
// that changed, so the server's rendering stays the only one.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
// The plot's size and margins, as page.rs lays it out (WIDTH, HEIGHT, 10-unit margins).
const WIDTH = 640;
const HEIGHT = 160;
// The hub's bounds (SERIES_POINTS, SERIES_SPAN_US): the page keeps what the server would show.
const MAX_POINTS = Number(document.body.dataset.seriesPoints);
const SPAN_US = Number(document.body.dataset.seriesSpanUs);

function plotOf(name) {
  for (const svg of document.querySelectorAll("svg.plot")) {
    if (svg.dataset.series === name) return svg;
  }
  return null;
}

// A plot for a series that had no point when the page was rendered, made as page.rs makes one.
function newPlot(name) {
  const section = document.getElementById("plots");
  if (!section) return null;
  for (const empty of section.querySelectorAll("p.empty")) empty.remove();
  const title = document.createElement("h3");
  title.textContent = name;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "plot");
  svg.dataset.series = name;
  svg.dataset.points = "0";
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("width", WIDTH);
  svg.setAttribute("height", HEIGHT);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${name} over the last 24 h`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  svg.append(line);
  for (const [cls, y] of [["hi", 12], ["lo", HEIGHT - 2]]) {
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("class", cls);
    text.setAttribute("x", 10);
    text.setAttribute("y", y);
    text.setAttribute("font-size", 10);
    svg.append(text);
  }
  section.append(title, svg);
  return svg;
}

// Adds a point, drops what the hub would drop (older than a day, beyond the cap), and lays the
// plot out again on its new range, with page.rs's arithmetic.
function addPoint(svg, t, v) {
  const dot = document.createElementNS(SVG, "circle");
  dot.setAttribute("r", "1.5");
  dot.dataset.t = String(t);
  dot.dataset.v = String(v);
  const lo = svg.querySelector("text.lo");
  svg.insertBefore(dot, svg.querySelector("text.hi") || lo);
  let dots = Array.from(svg.querySelectorAll("circle"));
  while (dots.length > 0 && (t - Number(dots[0].dataset.t) > SPAN_US || dots.length > MAX_POINTS)) {
    dots.shift().remove();
  }
  const points = dots.map((c) => [Number(c.dataset.t), Number(c.dataset.v)]);
  const first = points[0][0];
  const last = points[points.length - 1][0];
  let low = Infinity;
  let high = -Infinity;
  for (const [, value] of points) {
    low = Math.min(low, value);
    high = Math.max(high, value);
  }
  const spanT = Math.max(last - first, 1);
  const spanV = high > low ? high - low : 1;
  const coords = [];
  points.forEach(([time, value], i) => {
    const x = ((time - first) / spanT) * (WIDTH - 20) + 10;
    const y = HEIGHT - 10 - ((value - low) / spanV) * (HEIGHT - 20);
    dots[i].setAttribute("cx", x.toFixed(1));
    dots[i].setAttribute("cy", y.toFixed(1));
    coords.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  const line = svg.querySelector("polyline");
  if (line) line.setAttribute("points", coords.join(" "));
  const hi = svg.querySelector("text.hi");
  if (hi) hi.textContent = high.toFixed(9);
  if (lo) lo.textContent = low.toFixed(9);
  svg.dataset.points = String(dots.length);
}

// Fetches the page again and swaps the parts named; one fetch at a time, the parts asked for
// meanwhile gathered into the next one.
let wanted = null;
let fetching = false;
async function refresh(ids) {
  wanted = new Set([...(wanted || []), ...ids]);
  if (fetching) return;
  fetching = true;
  while (wanted) {
    const parts = wanted;
    wanted = null;
    try {
      const response = await fetch("/", { cache: "no-store" });
      if (!response.ok) continue;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const id of parts) {
        const shown = document.getElementById(id);
        const fresh = page.getElementById(id);
        if (shown && fresh) shown.replaceWith(document.importNode(fresh, true));
      }
    } catch {
      // The daemon is away: the page keeps what it shows, and the stream's return refreshes it.
    }
  }
  fetching = false;
}

const SECTIONS = ["instruments", "run", "runs", "custody", "bundles"];
const live = document.getElementById("live");
const source = new EventSource("/events");
source.addEventListener("reading", (e) => {
  const r = JSON.parse(e.data);
  const li = document.createElement("li");
  li.className = "reading";
  li.textContent = `run ${r.run_id} reading ${r.done}/${r.total} seq=${r.seq} ${r.instrument} ${r.raw} ${r.unit}`;
  live.prepend(li);
  while (live.children.length > 50) live.lastChild.remove();
  const cell = document.querySelector(`td.last[data-instrument="${CSS.escape(r.instrument)}"]`);
  if (cell) cell.textContent = `${r.raw} ${r.unit} (seq ${r.seq})`;
  const done = document.getElementById("done");
  if (done) done.textContent = r.done;
  const count = document.querySelector(`tr[data-run="${r.run_id}"] td.readings`);
  if (count) count.textContent = r.done;
  const value = r.measurement && typeof r.measurement === "object" ? r.measurement.value : undefined;
  if (typeof value === "number" && r.utc_us) {
    const name = `${r.instrument} (${r.unit})`;
    const svg = plotOf(name) || newPlot(name);
    if (svg) addPoint(svg, r.utc_us, value);
  }
});
for (const kind of ["queued", "run_started", "run_ended", "instrument", "custody", "sealed"]) {
  source.addEventListener(kind, () => refresh(SECTIONS));
}
// Events were dropped (a slow page) or the stream came back after an outage: what they said is
// in the page as the server renders it now, plots included.
source.addEventListener("missed", () => refresh([...SECTIONS, "plots"]));
let opened = false;
source.addEventListener("open", () => {
  if (opened) refresh([...SECTIONS, "plots"]);
  opened = true;
});
