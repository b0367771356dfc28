// Resume after the spear a client was on is killed, with the official client: Alice keeps her
// last {epoch, position} per channel from every `msg`, her spear dies (kill -9), Bob sends to her
// and to their group meanwhile, and Alice reconnects to her ticket's backup spear presenting her
// positions. She gets every message she missed, once, in order, before a live one.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, ticket, connect, once, call, waitFor } = require('./harness');

const GROUP = 10;
const RELAY = process.env.GRU_E2E_ROCKETMQ ? 'RocketMQ' : 'Redis';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A client that keeps its positions as docs/api.md says.
function track(s, positions) {
  s.inbox = [];
  s.on('msg', (m) => {
    s.inbox.push(m);
    positions[m.channel] = { epoch: m.epoch, position: m.position };
  });
  s.on('resync', (r) => {
    s.inbox.push({ resync: r });
    positions[r.channel] = { epoch: r.epoch, position: r.position };
  });
}

describe(`resume after a spear is killed (${RELAY} relay)`, () => {
  let c;
  const open = [];
  after(async () => {
    for (const s of open) s.close();
    if (c) assert.equal(await c.stop(), 0, 'the surviving nodes exit cleanly');
  });
  before(async () => { c = await startCluster({ spears: 2 }); });

  test('Alice gets what she missed on another spear, exactly once and in order', async () => {
    const a = (await ticket(c.base, 1, 'alice', c.token1(1, 'alice'))).data;
    const b = (await ticket(c.base, 2, 'bob', c.token1(2, 'bob'))).data;
    const other = [b.addr, ...b.backupNodes.map((n) => n.addr)].find((addr) => addr !== a.addr);
    assert.ok(other, `a second spear for Bob: ${JSON.stringify(b)}`);
    const alicePositions = {};
    const alice = connect(4, a.addr);
    open.push(alice);
    track(alice, alicePositions);
    await once(alice, 'connect');
    assert.equal((await call(alice, 'auth', { id: 1, name: 'alice', appType: 'web', token2: a.token })).success, true);
    assert.equal((await call(alice, 'join', { groups: [GROUP] })).success, true);
    const bob = connect(4, other);
    open.push(bob);
    await once(bob, 'connect');
    assert.equal((await call(bob, 'auth', { id: 2, name: 'bob', appType: 'web', token2: b.token })).success, true);
    assert.equal((await call(bob, 'join', { groups: [GROUP] })).success, true);

    const send = async (type, target, content) => {
      const r = await call(bob, 'msg', { type, target: { id: target, type: 1 }, content });
      assert.equal(r.success, true, JSON.stringify(r));
      assert.equal(typeof r.data.epoch, 'string');
      return r.data;
    };
    await send(0, 1, 'before-1');
    await send(1, GROUP, 'before-2');
    await waitFor('Alice to receive both', 5000, async () => alice.inbox.length === 2);
    assert.deepEqual(Object.keys(alicePositions).sort(), [`g:${GROUP}`, 'u:1']);

    // Her spear dies; the client library sees the connection drop.
    const aliceSpear = a.name.replace('node_', '');
    const gone = once(alice, 'disconnect', 10000);
    await c.kill(Number(aliceSpear));
    await gone;
    const missed = [];
    for (let i = 1; i <= 3; i += 1) missed.push(await send(0, 1, `missed-u-${i}`));
    for (let i = 1; i <= 2; i += 1) missed.push(await send(1, GROUP, `missed-g-${i}`));

    // Back through her ticket's backup spear, presenting her positions.
    const backup = a.backupNodes.map((n) => n.addr).find((addr) => addr !== a.addr);
    assert.ok(backup, `a backup spear in Alice's ticket: ${JSON.stringify(a)}`);
    const again = connect(4, backup);
    open.push(again);
    const before = alice.inbox.length;
    track(again, alicePositions);
    await once(again, 'connect');
    const auth = await call(again, 'auth', { id: 1, name: 'alice', appType: 'web', token2: a.token, resume: alicePositions });
    assert.equal(auth.success, true, JSON.stringify(auth));
    assert.equal((await call(again, 'join', { groups: [GROUP] })).success, true);
    await send(1, GROUP, 'live-after');
    await waitFor('Alice to receive the live message', 5000,
      async () => again.inbox.some((m) => m.content === 'live-after'));
    await sleep(300);

    assert.equal(alice.inbox.length, before, 'nothing reached the dead connection');
    const got = again.inbox.map((m) => m.content ?? `resync ${JSON.stringify(m.resync)}`);
    assert.deepEqual(got, ['missed-u-1', 'missed-u-2', 'missed-u-3', 'missed-g-1', 'missed-g-2', 'live-after'],
      'every missed message once, each channel in order, before the live one');
    // Each replayed message is the one Bob's ack described.
    for (const [i, ack] of missed.entries()) {
      const m = again.inbox[i];
      assert.deepEqual([m.id, m.channel, m.epoch, m.position], [ack.id, ack.channel, ack.epoch, ack.position]);
    }
    for (const channel of ['u:1', `g:${GROUP}`]) {
      const ps = again.inbox.filter((m) => m.channel === channel).map((m) => m.position);
      for (let i = 1; i < ps.length; i += 1) assert.equal(ps[i], ps[i - 1] + 1, `${channel} positions ${ps}`);
    }
  });
});
