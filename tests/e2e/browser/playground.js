// playground_browser's browser half (tests/monitor/playground.rs runs it). Two pages of the
// playground on $GRU_HTTP, as two users the ticket places on two different spears: A mints its
// token1 through `gru dev`'s route (the cluster runs with the dev secret), B has one pasted.
// A sends B a unicast, B sends their group a broadcast, and A asks who is online; each page's
// event log must show what arrived.
'use strict';

const assert = require('node:assert/strict');
const { launch, say, until, login, screenshot, run } = require('./browser');

const base = `http://${process.env.GRU_HTTP}`;
const group = Number(process.env.GROUP);

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

/** Fills client 1 of `page` and connects; returns the spear it landed on. */
async function connect(page, uid, token1) {
  const t = (id) => `[data-testid="p1-${id}"]`;
  await page.fill(t('user'), String(uid));
  await page.fill(t('name'), `user${uid}`);
  await page.fill(t('groups'), String(group));
  await page.fill(t('token1'), token1 || '');
  await page.click(t('connect'));
  await until(`user ${uid} connected`, 20000, async () => {
    const state = await page.textContent(t('state'));
    if (state === 'failed') throw new Error(`user ${uid}: ${await page.textContent(t('log'))}`);
    return state === 'connected';
  });
  // The page uses the client's default transports: long-polling across origins (CORS), then
  // the upgrade to WebSocket.
  const transports = await until(`user ${uid} upgraded`, 20000, async () => {
    const seen = (await page.getAttribute(t('spear'), 'data-transports')) || '';
    return seen.includes('websocket') && seen;
  });
  assert.equal(transports, 'polling,websocket', `user ${uid} opened on polling, then upgraded`);
  return Number(await page.getAttribute(t('spear'), 'data-spear'));
}

async function send(page, type, target, content) {
  const t = (id) => `[data-testid="p1-${id}"]`;
  await page.selectOption(t('msg-type'), String(type));
  await page.fill(t('msg-target'), String(target));
  await page.fill(t('msg-content'), content);
  await page.click(t('send'));
}

/** The `msg` events in `page`'s log whose text includes `content`. */
async function received(page, content) {
  return page.$$eval(
    '[data-testid="p1-log"] [data-event="msg"][data-dir="in"]',
    (rows, c) => rows.map((r) => r.textContent).filter((t) => t.includes(c)),
    content,
  );
}

run(async () => {
  const browser = await launch();
  try {
    const a = await browser.newPage({ viewport: { width: 760, height: 900 } });
    const b = await browser.newPage({ viewport: { width: 760, height: 900 } });
    for (const [name, page] of [['a', a], ['b', b]]) {
      page.on('pageerror', (e) => say('page_error', { page: name, error: String(e) }));
      await login(page, base);
      await page.goto(`${base}/playground`);
    }
    const userA = 1001;
    const spearA = await connect(a, userA, null);
    say('connected', { user: userA, spear: spearA, token: 'minted by the page' });

    // B: a user the ticket places on the other spear, with a pasted token1.
    let userB = null;
    let tokenB = null;
    for (let uid = 2001; uid < 2200 && userB === null; uid++) {
      const token = await devToken(uid, `user${uid}`);
      if ((await placement(uid, token)) !== spearA) [userB, tokenB] = [uid, token];
    }
    assert.ok(userB, 'some user is placed on the other spear');
    const spearB = await connect(b, userB, tokenB);
    say('connected', { user: userB, spear: spearB, token: 'pasted' });
    assert.notEqual(spearA, spearB, 'the two users are on different spears');

    const unicast = `unicast from ${userA} to ${userB} @${Date.now()}`;
    await send(a, 0, userB, unicast);
    const gotUnicast = await until('B receives the unicast', 10000, async () => (await received(b, unicast))[0]);
    assert.ok(gotUnicast.includes(`"fromId":${userA}`), `from A: ${gotUnicast}`);
    say('unicast', { to: userB, shown: gotUnicast });

    const broadcast = `group ${group} from ${userB} @${Date.now()}`;
    await send(b, 1, group, broadcast);
    const atA = await until('A receives the group message', 10000, async () => (await received(a, broadcast))[0]);
    const atB = await until('B receives its own group message', 10000, async () => (await received(b, broadcast))[0]);
    say('broadcast', { group, at_a: atA, at_b: atB });

    await a.fill('[data-testid="p1-online-group"]', String(group));
    await a.click('[data-testid="p1-online"]');
    const online = await until('online answered', 10000, () => a.getAttribute('[data-testid="p1-online-result"]', 'data-users'));
    say('online', { group, users: online.split(',').map(Number) });

    say('screenshot', { path: await screenshot(a, 'playground-a.png') });
    say('screenshot', { path: await screenshot(b, 'playground-b.png') });
  } finally {
    await browser.close();
  }
});
