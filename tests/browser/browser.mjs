// What the browser tests share: starting Debian's chromium the same way, failing with a message
// that says what was not seen, and the exit status the Rust tests read.

import { chromium } from "playwright-core";

// Headless, as root in CI (no sandbox), and nothing reaching out to the network: a CI machine's
// network may be closed, and Chromium's background connections would only be refused. Each launch
// has a fresh profile (playwright makes a scratch user-data-dir and removes it).
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A check that did not hold: reported as its message alone, without a stack. */
export class Failure extends Error {}

/** Stops the test with `message`. */
export function fail(message) {
  throw new Failure(message);
}

/**
 * Runs `use(browser)` on a freshly started chromium (CHROMIUM, default /usr/bin/chromium) and
 * closes it whatever happens. A browser that cannot start fails with the install command.
 */
export async function withBrowser(timeoutMs, use) {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  let browser;
  try {
    try {
      browser = await chromium.launch({ executablePath, headless: true, args: ARGS, timeout: timeoutMs });
    } catch (e) {
      fail(
        `cannot start ${executablePath} (${e.message.split("\n")[0]}); ` +
          "install it with `apt-get install -y chromium && npm ci --prefix tests/browser`",
      );
    }
    return await use(browser);
  } finally {
    if (browser) await browser.close();
  }
}

/** Runs `main` and exits 0, or 1 with `name: what failed` on stderr. */
export function run(name, main) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(`${name}: ${e instanceof Failure ? e.message : e.stack || e}`);
      process.exit(1);
    },
  );
}
