// Resume with the official clients, over every transport (WebSocket, long-polling, and the
// default: polling upgraded to WebSocket).
//
// After a spear kill: Alice keeps her last {epoch, position} per channel — from every `msg` and
// `resync`, and from the answers' `data.positions` for a channel she has no place of yet (where
// it went live: her starting point) —, her spear dies (kill -9), Bob sends to her and to their
// group meanwhile, and Alice reconnects to her ticket's backup spear presenting her positions:
// in Gru's `auth` event (socket.io-client 4 and 2), or in the handshake `auth: {token, resume}`
// (socket.io-client 4 only: the `auth` option is protocol v5's). She gets every message she
// missed, once, in order, each channel's before its answer (`auth`/`auth_result` for her own
// channel, `join`/`subscribe` for the group) — which names the place of the last one —, then
// live messages at the next positions. Each combination has a cluster of its own: the kill
// takes the second spear away.
//
// On `gru dev`, the smallest case of the handshake resume of the user's own channel
// (`handshake_resume_own_channel`): m4, m5 missed after m1–m3, replayed before `auth_result`,
// then m6 live.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  TRANSPORTS, startCluster, startDev, ticket, connect, assertTransport, once, waitFor,
} = require('./harness');

const GROUP = 10;
const RELAY = process.env.GRU_E2E_ROCKETMQ ? 'RocketMQ' : 'Redis';
// Deadlines for what must happen; generous, they only end a test that would hang.
const DEADLINE_MS = 20000;
// After the last expected message, how long to keep watching for a stray copy.
const SETTLE_MS = 300;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A client that keeps its positions as docs/api.md says, and logs in `s.inbox`, in the order
// they arrived, every `msg`, `resync`, `auth_result` and (through ask()) acknowledgement.
function track(s, positions) {
  s.inbox = [];
  s.positions = positions;
  s.on('msg', (m) => {
    s.inbox.push(m);
    positions[m.channel] = { epoch: m.epoch, position: m.position };
  });
  s.on('resync', (r) => {
    s.inbox.push({ resync: r });
    positions[r.channel] = { epoch: r.epoch, position: r.position };
  });
  s.on('auth_result', (r) => {
    s.inbox.push({ auth_result: r });
    startingPoints(positions, r);
  });
}

// An answer's `data.positions` are where its channels went live: the starting point of each
// channel the client has no place of yet.
function startingPoints(positions, reply) {
  for (const [channel, at] of Object.entries((reply && reply.data && reply.data.positions) || {})) {
    if (!positions[channel]) positions[channel] = { epoch: at.epoch, position: at.position };
  }
}

// Emits Gru's way and waits for the acknowledgement, which is logged in `s.inbox` where it
// arrived (in the ack callback: messages that came after it in the same packet batch are
// handled before a promise continuation runs) and taken for starting points.
function ask(s, event, payload, ms = DEADLINE_MS) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ack for ${event} within ${ms} ms`)), ms);
    t.unref(); // as harness.js's deadlines
    s.emit(event, JSON.stringify(payload), (reply) => {
      clearTimeout(t);
      s.inbox.push({ ack: event, reply });
      if (reply && reply.success) startingPoints(s.positions, reply);
      resolve(reply);
    });
  });
}

// What `s.inbox` shows: message contents, `resync …`, `auth_result`, `ack:<event>`.
function shown(s) {
  return s.inbox.map((e) => {
    if (e.ack) return `ack:${e.ack}`;
    if (e.auth_result) return 'auth_result';
    if (e.resync) return `resync ${JSON.stringify(e.resync)}`;
    return e.content;
  });
}

const place = (x) => ({ epoch: x.epoch, position: x.position });

// Joins GROUP: `join` (the modern event) with socket.io-client 4, Gru's `subscribe` with 2.
function joinGroup(s, version, uid) {
  return version === 2
    ? ask(s, 'subscribe', { userId: uid, subscribeGroups: [{ id: GROUP, name: 'class 10' }] })
    : ask(s, 'join', { groups: [GROUP] });
}

// Connects and authenticates: with the handshake (`auth` option; the answer comes as
// `auth_result`) or with Gru's `auth` event; returns the answer.
async function authenticate(s, how, uid, name, token, resume) {
  if (how === 'handshake') {
    const result = once(s, 'auth_result', DEADLINE_MS);
    await once(s, 'connect', DEADLINE_MS);
    return result;
  }
  await once(s, 'connect', DEADLINE_MS);
  return ask(s, 'auth', { id: uid, name, appType: 'web', token2: token, ...(resume ? { resume } : {}) });
}

const COMBOS = TRANSPORTS.flatMap((transport) => [
  { transport, version: 4, how: 'auth' },
  { transport, version: 2, how: 'auth' },
  // socket.io-client 2 has no handshake `auth` option (it would put the token in the query
  // string, which gru does not read): the handshake resume is socket.io-client 4's.
  { transport, version: 4, how: 'handshake' },
]);

for (const { transport, version, how } of COMBOS) {
  const tag = `${transport}, socket.io-client@${version}, resume in the ${how === 'auth' ? '`auth` event' : 'handshake'}`;
  describe(`resume after a spear is killed (${RELAY} relay): ${tag}`, () => {
    let c;
    const open = [];
    before(async () => { c = await startCluster({ spears: 2 }); });
    after(async () => {
      for (const s of open) s.close();
      if (c) assert.equal(await c.stop(), 0, 'the surviving nodes exit cleanly');
    });

    test(`${tag}: Alice gets what she missed on another spear, exactly once and in order, then live messages`, async () => {
      const a = (await ticket(c.base, 1, 'alice', c.token1(1, 'alice'))).data;
      const b = (await ticket(c.base, 2, 'bob', c.token1(2, 'bob'))).data;
      const other = [b.addr, ...b.backupNodes.map((n) => n.addr)].find((addr) => addr !== a.addr);
      assert.ok(other, `a second spear for Bob: ${JSON.stringify(b)}`);

      const alicePositions = {};
      const handshake = (resume) => (how === 'handshake' ? { auth: { token: a.token, ...(resume ? { resume } : {}) } } : {});
      const alice = connect(version, a.addr, { transport, ...handshake() });
      open.push(alice);
      track(alice, alicePositions);
      const authed = await authenticate(alice, how, 1, 'alice', a.token);
      assert.equal(authed.success, true, JSON.stringify(authed));
      const userLive = authed.data.positions && authed.data.positions['u:1'];
      assert.ok(userLive, `the answer names where u:1 went live: ${JSON.stringify(authed)}`);
      const joined = await joinGroup(alice, version, 1);
      assert.equal(joined.success, true, JSON.stringify(joined));
      const groupLive = joined.data.positions && joined.data.positions[`g:${GROUP}`];
      assert.ok(groupLive, `the answer names where g:${GROUP} went live: ${JSON.stringify(joined)}`);
      // Her starting points, before any message.
      assert.deepEqual(alicePositions, { 'u:1': place(userLive), [`g:${GROUP}`]: place(groupLive) });

      const bob = connect(version, other, { transport });
      open.push(bob);
      track(bob, {});
      assert.equal((await authenticate(bob, 'auth', 2, 'bob', b.token)).success, true);
      assert.equal((await joinGroup(bob, version, 2)).success, true);

      const send = async (type, target, content) => {
        const r = await ask(bob, 'msg', { type, target: { id: target, type: 1 }, content });
        assert.equal(r.success, true, JSON.stringify(r));
        assert.equal(typeof r.data.epoch, 'string');
        return r.data;
      };
      // One message on her own channel before the kill: its place follows the starting point.
      // The group has none: her place there stays the one the join answered.
      const first = await send(0, 1, 'before-1');
      await waitFor('Alice to receive before-1', DEADLINE_MS, async () => alice.inbox.some((m) => m.content === 'before-1'));
      assert.deepEqual(place(first), { epoch: userLive.epoch, position: userLive.position + 1 });
      assert.deepEqual(alicePositions, { 'u:1': place(first), [`g:${GROUP}`]: place(groupLive) });

      // Her spear dies; the client library sees the connection drop.
      const aliceSpear = a.name.replace('node_', '');
      const gone = once(alice, 'disconnect', DEADLINE_MS);
      await c.kill(Number(aliceSpear));
      await gone;
      const missedU = [];
      const missedG = [];
      for (let i = 1; i <= 3; i += 1) missedU.push(await send(0, 1, `missed-u-${i}`));
      for (let i = 1; i <= 2; i += 1) missedG.push(await send(1, GROUP, `missed-g-${i}`));
      // The group's first message follows where it went live for Alice.
      assert.deepEqual(place(missedG[0]), { epoch: groupLive.epoch, position: groupLive.position + 1 });

      // Back through her ticket's backup spear, presenting her positions.
      const backup = a.backupNodes.map((n) => n.addr).find((addr) => addr !== a.addr);
      assert.ok(backup, `a backup spear in Alice's ticket: ${JSON.stringify(a)}`);
      assert.equal(backup, other, 'the surviving spear');
      const presented = JSON.parse(JSON.stringify(alicePositions));
      const deadInbox = alice.inbox.length;
      const again = connect(version, backup, { transport, ...handshake(presented) });
      open.push(again);
      track(again, alicePositions);
      const resumed = await authenticate(again, how, 1, 'alice', a.token, presented);
      assert.equal(resumed.success, true, JSON.stringify(resumed));
      assert.deepEqual(resumed.data.positions, { 'u:1': place(missedU[2]) },
        `the ${how} answer names the place of the last replayed message of u:1`);
      const rejoined = await joinGroup(again, version, 1);
      assert.equal(rejoined.success, true, JSON.stringify(rejoined));
      assert.deepEqual(rejoined.data.positions, { [`g:${GROUP}`]: place(missedG[1]) },
        'the join answer names the place of the last replayed message of the group');

      // Live messages, one at a time (their order across channels is not the point).
      const liveU = await send(0, 1, 'live-u');
      await waitFor('Alice to receive live-u', DEADLINE_MS, async () => again.inbox.some((m) => m.content === 'live-u'));
      const liveG = await send(1, GROUP, 'live-g');
      await waitFor('Alice to receive live-g', DEADLINE_MS, async () => again.inbox.some((m) => m.content === 'live-g'));
      await sleep(SETTLE_MS);

      assert.equal(alice.inbox.length, deadInbox, 'nothing reached the dead connection');
      const answers = how === 'auth'
        ? ['ack:auth', 'auth_result'] // the event's acknowledgement and its `auth_result`
        : ['auth_result']; // the handshake's answer
      assert.deepEqual(shown(again), [
        'missed-u-1', 'missed-u-2', 'missed-u-3', ...answers,
        'missed-g-1', 'missed-g-2', `ack:${version === 2 ? 'subscribe' : 'join'}`,
        'live-u', 'live-g',
      ], 'every missed message once, each channel in order and before its answer, then the live ones');
      // Each replayed or live message is the one Bob's ack described.
      const acks = [...missedU, ...missedG, liveU, liveG];
      const delivered = again.inbox.filter((m) => m.content !== undefined);
      for (const [i, ack] of acks.entries()) {
        const m = delivered[i];
        assert.deepEqual([m.id, m.channel, m.epoch, m.position], [ack.id, ack.channel, ack.epoch, ack.position], m.content);
      }
      assert.deepEqual(place(liveU), { epoch: missedU[2].epoch, position: missedU[2].position + 1 });
      assert.deepEqual(place(liveG), { epoch: missedG[1].epoch, position: missedG[1].position + 1 });
      assert.deepEqual(alicePositions, { 'u:1': place(liveU), [`g:${GROUP}`]: place(liveG) });
      await assertTransport(again);
    });
  });
}

describe('resume on gru dev', () => {
  let dev;
  const open = [];
  before(async () => { dev = await startDev(); });
  after(async () => {
    for (const s of open) s.close();
    if (dev) assert.equal(await dev.stop(), 0, 'gru dev exits cleanly');
  });

  TRANSPORTS.forEach((transport, ti) => {
    // socket.io-client 4 only: the handshake `auth` option is protocol v5's.
    test(`${transport}, socket.io-client@4: handshake_resume_own_channel: m4, m5 replayed before auth_result, m6 live, each once`, async () => {
      const [A, B] = [501 + ti * 10, 502 + ti * 10];
      const ta = (await ticket(dev.base, A, 'a', dev.token1(A, 'a'))).data;
      const tb = (await ticket(dev.base, B, 'b', dev.token1(B, 'b'))).data;
      const positions = {};
      const a = connect(4, ta.addr, { transport, auth: { token: ta.token } });
      open.push(a);
      track(a, positions);
      const first = await authenticate(a, 'handshake', A, 'a', ta.token);
      assert.equal(first.success, true, JSON.stringify(first));
      const b = connect(4, tb.addr, { transport, auth: { token: tb.token } });
      open.push(b);
      track(b, {});
      assert.equal((await authenticate(b, 'handshake', B, 'b', tb.token)).success, true);

      const send = async (content) => {
        const r = await ask(b, 'msg', { type: 0, target: { id: A, type: 1 }, content });
        assert.equal(r.success, true, JSON.stringify(r));
        assert.equal(r.data.channel, `u:${A}`);
        return r.data;
      };
      const acks = [];
      for (const n of [1, 2, 3]) acks.push(await send(`m${n}`));
      await waitFor('A to receive m1–m3', DEADLINE_MS, async () => a.inbox.filter((m) => m.content).length === 3);
      assert.deepEqual(acks.map((x) => x.position), [1, 2, 3], JSON.stringify(acks));
      assert.deepEqual(shown(a), ['auth_result', 'm1', 'm2', 'm3']);
      assert.deepEqual(positions, { [`u:${A}`]: place(acks[2]) }, 'A is at m3');

      const gone = once(a, 'disconnect', DEADLINE_MS);
      a.close();
      await gone;
      for (const n of [4, 5]) acks.push(await send(`m${n}`));
      assert.deepEqual(acks.map((x) => x.position), [1, 2, 3, 4, 5]);
      assert.ok(acks.every((x) => x.epoch === acks[0].epoch), 'one epoch');

      const presented = { [`u:${A}`]: place(acks[2]) };
      const again = connect(4, ta.addr, { transport, auth: { token: ta.token, resume: presented } });
      open.push(again);
      track(again, positions);
      const resumed = await authenticate(again, 'handshake', A, 'a', ta.token);
      assert.equal(resumed.success, true, JSON.stringify(resumed));
      assert.deepEqual(resumed.data.positions, { [`u:${A}`]: place(acks[4]) }, 'auth_result names m5\'s place');
      acks.push(await send('m6'));
      assert.equal(acks[5].position, 6);
      await waitFor('A to receive m6', DEADLINE_MS, async () => again.inbox.some((m) => m.content === 'm6'));
      await sleep(SETTLE_MS);
      assert.deepEqual(shown(again), ['m4', 'm5', 'auth_result', 'm6']);
      const got = again.inbox.filter((m) => m.content);
      for (const [i, ack] of acks.slice(3).entries()) {
        assert.deepEqual([got[i].id, got[i].channel, got[i].epoch, got[i].position], [ack.id, ack.channel, ack.epoch, ack.position]);
      }
      assert.deepEqual(shown(a), ['auth_result', 'm1', 'm2', 'm3'], 'nothing reached the closed connection');
      await assertTransport(again);
    });
  });
});
