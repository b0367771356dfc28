// What the browser tests share: headless Debian Chromium driven by playwright-core, a JSON line
// protocol with the Rust test that runs the script (stdout: one JSON object a line; stdin: one
// line when the test has done what a step asked), and deadlines instead of sleeps.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { chromium } = require('playwright-core');

/** Chromium with the flags the tests agree on; playwright gives it a fresh temp profile. */
async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Tells the Rust test about a step. */
function say(step, fields) {
  process.stdout.write(`${JSON.stringify({ step, ...fields })}\n`);
}

const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
const early = [];
lines.on('line', (line) => (waiting.length ? waiting.shift()(line) : early.push(line)));

/** The next line the Rust test writes. */
function hear() {
  return early.length ? Promise.resolve(early.shift()) : new Promise((resolve) => waiting.push(resolve));
}

/** Polls `probe` until it returns something truthy, or fails after `ms` naming `what`. */
async function until(what, ms, probe) {
  const deadline = Date.now() + ms;
  let lastError = null;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${ms} ms${lastError ? ` (last error: ${lastError.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The admin key the test gave ($GRU_ADMIN_KEY): the admin surface's pages and JSON need it. */
const adminKey = process.env.GRU_ADMIN_KEY || '';

/** GETs JSON from `base` + `path` on an admin surface, with the admin key. */
async function get(base, p) {
  const resp = await fetch(`${base}${p}`, { headers: { authorization: `Bearer ${adminKey}` } });
  if (!resp.ok) throw new Error(`GET ${p}: ${resp.status}`);
  return resp.json();
}

/** Signs `page` in on the admin surface at `base` through its login page, as an operator
 * would; the session cookie then serves every page of that surface. */
async function login(page, base) {
  await page.goto(`${base}/login`);
  await page.fill('[data-testid="login-key"]', adminKey);
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('[data-testid="login-submit"]')]);
}

/** Saves a full-page screenshot as `name` under $SCREENSHOTS (the tests set it; by hand: the
 * workspace's target/screenshots); returns its path. */
async function screenshot(page, name) {
  const dir = process.env.SCREENSHOTS || path.join(__dirname, '..', '..', '..', 'target', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Runs `main`; any failure is printed as a `failed` step and exits non-zero. */
function run(main) {
  main()
    .then(() => process.exit(0))
    .catch((e) => {
      say('failed', { error: String(e && e.stack ? e.stack : e) });
      process.exit(1);
    });
}

module.exports = { launch, say, hear, until, get, login, screenshot, run };
