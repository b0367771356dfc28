// What the playground's browser tests share (playground.js, playground_resume.js): opening the
// page behind the admin login, a panel's controls by their data-testid, connecting a user,
// sending, and reading a panel's conversation and counters.
'use strict';

const assert = require('node:assert/strict');
const { until, login, say, screenshot } = require('./browser');

const base = `http://${process.env.GRU_HTTP}`;

/** The selector of panel `n`'s element `name` (`p1-state`, ...). */
function tid(name, n = 1) {
  return `[data-testid="p${n}-${name}"]`;
}

/** A new page (its own browser context: its own storage and network) on the playground, signed in. */
async function openPlayground(browser, label, events) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => events.push({ page: label, error: String(e) }));
  await login(page, base);
  await page.goto(`${base}/playground`);
  return { context, page, label };
}

/** A token1 minted by `gru dev`'s route, as a business system would hand one to its page. */
async function devToken(uid, name) {
  const resp = await fetch(`${base}/api/v1/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.GRU_ADMIN_KEY}` },
    body: JSON.stringify({ user_id: uid, user_name: name, app_type: 'web' }),
  });
  assert.equal(resp.status, 200, 'the dev token route answers');
  return (await resp.json()).token;
}

/** The spear the ticket places `uid` on now. */
async function placement(uid, token) {
  const q = new URLSearchParams({ user_id: uid, user_name: `user${uid}`, app_type: 'web', token });
  const resp = await fetch(`${base}/api/v1/ticket?${q}`);
  assert.equal(resp.status, 200, 'ticket answers');
  return (await resp.json()).spear.id;
}

/** A user from `from` on that the ticket places on another spear than `spear`, with its token1. */
async function userElsewhere(spear, from) {
  for (let uid = from; uid < from + 200; uid++) {
    const token = await devToken(uid, `user${uid}`);
    if ((await placement(uid, token)) !== spear) return { uid, token };
  }
  throw new Error(`no user from ${from} on is placed off spear ${spear}`);
}

/**
 * Connects panel `n` of `page` as `uid` (token1 pasted when given, else minted by the page),
 * in `groups`, over `transports` (a value of the panel's select); waits until it is live and
 * on a known spear; returns that spear's id.
 */
async function connect(page, { uid, token1, groups, transports, n = 1 }) {
  await page.fill(tid('user', n), String(uid));
  await page.fill(tid('name', n), `user${uid}`);
  await page.fill(tid('groups', n), groups.join(', '));
  await page.fill(tid('token1', n), token1 || '');
  if (transports) await page.selectOption(tid('transports', n), transports);
  await page.click(tid('connect', n));
  await until(`user ${uid} live`, 20000, async () => {
    const state = await page.textContent(tid('state', n));
    if (state === 'closed') throw new Error(`user ${uid} closed: ${await page.textContent(tid('log', n))}`);
    return state === 'live';
  });
  const spear = await until(`user ${uid} on a known spear`, 10000, () => page.getAttribute(tid('spear', n), 'data-spear'));
  return Number(spear);
}

/** Sends through panel `n`'s form: to a user (`{user}`) or a group (`{group}`), `repeat` numbered copies. */
async function send(page, to, content, { n = 1, repeat = 1 } = {}) {
  const group = to.group !== undefined;
  await page.selectOption(tid('msg-type', n), group ? '1' : '0');
  await page.fill(tid('msg-target', n), String(group ? to.group : to.user));
  await page.fill(tid('msg-content', n), content);
  await page.fill(tid('msg-repeat', n), String(repeat));
  await page.click(tid('send', n));
}

/** The contents `content` becomes with `repeat` (the panel numbers its copies). */
function copies(content, repeat) {
  return repeat === 1 ? [content] : Array.from({ length: repeat }, (_, i) => `${content} (${i + 1}/${repeat})`);
}

/** Panel `n`'s conversation rows of direction `dir` (`in`: received, `out`: sent), in order. */
async function conversation(page, dir = 'in', n = 1) {
  return page.$$eval(
    `${tid('conversation', n)} [data-dir="${dir}"]`,
    (rows) =>
      rows.map((r) => ({
        channel: r.dataset.channel,
        position: r.dataset.position === undefined ? null : Number(r.dataset.position),
        content: r.dataset.content,
        from: r.dataset.from === undefined ? null : Number(r.dataset.from),
        replayed: r.dataset.replayed === '1',
        status: r.dataset.status,
      })),
  );
}

/** Panel `n`'s counter `name` (`received`, `duplicates`, `retries`, `reconnects`, `resyncs`). */
async function count(page, name, n = 1) {
  return Number(await page.textContent(tid(`count-${name}`, n)));
}

/** Panel `n`'s place in `channel` (`{epoch, position}`), or null. */
async function place(page, channel, n = 1) {
  const row = page.locator(`${tid('positions', n)} [data-channel="${channel}"]`);
  if ((await row.count()) === 0) return null;
  return { epoch: await row.getAttribute('data-epoch'), position: Number(await row.getAttribute('data-position')) };
}

/** The end of a playground script: no page reported an error, and a screenshot of each page. */
async function finishPages(events, pages, prefix) {
  assert.deepEqual(events, [], 'no error in the pages');
  for (const [name, page] of Object.entries(pages)) {
    say('screenshot', { path: await screenshot(page, `${prefix}-${name}.png`) });
  }
}

module.exports = { base, tid, openPlayground, devToken, placement, userElsewhere, connect, send, copies, conversation, count, place, finishPages };
