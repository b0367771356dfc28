// playground_browser's browser half (tests/monitor/playground.rs runs it). Two pages of the
// playground on $GRU_HTTP, as two users the ticket places on two different spears: A's token1 is
// minted by the page through `gru dev`'s route (the cluster runs with the dev secret), B's is
// pasted. A's client opens on long-polling and upgrades to WebSocket. A sends B a unicast, B
// sends their group a message, and A asks who is online; each page's conversation must show
// what arrived, from whom, at which place. Then A's "kill my connection" drops its socket under
// the SDK: the client sees the connection lost, reconnects and resumes, and a unicast B sends
// meanwhile reaches A once.
'use strict';

const assert = require('node:assert/strict');
const { launch, say, until, run } = require('./browser');
const { tid, openPlayground, userElsewhere, connect, send, conversation, count, finishPages } = require('./playground_page');

const group = Number(process.env.GROUP);

/** The received rows of `page` whose content is `content`. */
async function received(page, content) {
  return (await conversation(page, 'in')).filter((m) => m.content === content);
}

run(async () => {
  const browser = await launch();
  const events = [];
  try {
    const a = await openPlayground(browser, 'a', events);
    const b = await openPlayground(browser, 'b', events);

    const userA = 1001;
    // The page's long-polling goes across origins (the spear answers CORS), then upgrades.
    const spearA = await connect(a.page, { uid: userA, groups: [group], transports: 'polling,websocket' });
    const transports = await until(`user ${userA} upgraded`, 20000, async () => {
      const seen = (await a.page.getAttribute(tid('spear'), 'data-transports')) || '';
      return seen.includes('websocket') && seen;
    });
    assert.equal(transports, 'polling,websocket', `user ${userA} opened on polling, then upgraded`);
    say('connected', { user: userA, spear: spearA, token: 'minted by the page', transports });

    // B: a user the ticket places on the other spear, with a pasted token1.
    const { uid: userB, token: tokenB } = await userElsewhere(spearA, 2001);
    const spearB = await connect(b.page, { uid: userB, token1: tokenB, groups: [group] });
    say('connected', { user: userB, spear: spearB, token: 'pasted' });
    assert.notEqual(spearA, spearB, 'the two users are on different spears');

    const unicast = `unicast from ${userA} to ${userB} @${Date.now()}`;
    await send(a.page, { user: userB }, unicast);
    const [gotUnicast] = await until('B receives the unicast', 10000, () => received(b.page, unicast).then((r) => r.length && r));
    assert.equal(gotUnicast.from, userA, 'from A');
    assert.equal(gotUnicast.channel, `u:${userB}`, "on B's channel");
    assert.ok(gotUnicast.position >= 1, `with its place: ${JSON.stringify(gotUnicast)}`);
    say('unicast', { to: userB, shown: gotUnicast });

    const broadcast = `group ${group} from ${userB} @${Date.now()}`;
    await send(b.page, { group }, broadcast);
    const [atA] = await until('A receives the group message', 10000, () => received(a.page, broadcast).then((r) => r.length && r));
    const [atB] = await until('B receives its own group message', 10000, () => received(b.page, broadcast).then((r) => r.length && r));
    assert.equal(atA.channel, `g:${group}`);
    assert.equal(atA.position, atB.position, 'one place for both');
    const [acked] = await until("B's send acknowledged", 10000, async () => {
      const out = (await conversation(b.page, 'out')).filter((m) => m.content === broadcast && m.status === 'acked');
      return out.length && out;
    });
    assert.equal(acked.position, atB.position, 'the ack names the place it was delivered at');
    say('broadcast', { group, at_a: atA, at_b: atB });

    await a.page.fill(tid('online-group'), String(group));
    await a.page.click(tid('online'));
    const online = await until('online answered', 10000, () => a.page.getAttribute(tid('online-result'), 'data-users'));
    say('online', { group, users: online.split(',').map(Number) });

    // "kill my connection": the transport closed under socket.io, no disconnect packet.
    const meanwhile = `to ${userA} around the kill @${Date.now()}`;
    await a.page.click(tid('kill'));
    await send(b.page, { user: userA }, meanwhile);
    await until('A live again after the kill', 20000, async () => (await a.page.textContent(tid('state'))) === 'live' && (await count(a.page, 'reconnects')) === 1);
    const [got] = await until('A receives what B sent around the kill', 10000, () => received(a.page, meanwhile).then((r) => r.length && r));
    assert.equal((await received(a.page, meanwhile)).length, 1, 'once');
    const states = await a.page.$$eval(`${tid('log')} [data-event="state"]`, (rows) => rows.map((r) => r.textContent));
    const lost = states.find((s) => s.includes('reconnecting'));
    assert.ok(lost, `the loss is logged: ${JSON.stringify(states)}`);
    say('kill_button', {
      reason: /\(([^)]*)\)/.exec(lost)[1],
      spear_after: Number(await a.page.getAttribute(tid('spear'), 'data-spear')),
      replayed: got.replayed,
      duplicates_dropped: await count(a.page, 'duplicates'),
    });

    await finishPages(events, { a: a.page, b: b.page }, 'playground');
  } finally {
    await browser.close();
  }
});
