// The Gru client journey with the official clients, against `gru dev` and against a cluster,
// over every transport (WebSocket, long-polling, and the default: polling upgraded to
// WebSocket) with socket.io-client 4 and 2: ticket → spear → auth → subscribe → unicast →
// group broadcast (sender included) → online, a resend under one clientMsgId delivered once,
// a bad token refused, an event before auth disconnecting, and the modern handshake auth.
// Every answer that brings a connection into a
// channel names where it went live (`data.positions`); the channel's next message is the one
// after it. One `gru dev` and one cluster serve every combination: each has its own users and
// groups.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  TRANSPORTS, startDev, startCluster, ticket, connect, firstTransport, assertTransport, once, call, waitFor,
} = require('./harness');

// A place in a channel's history as answers and messages give it.
function assertPlace(p, what) {
  assert.ok(p, `${what}: a position`);
  assert.equal(typeof p.epoch, 'string', `${what}: epoch is a decimal string (${JSON.stringify(p)})`);
  assert.match(p.epoch, /^[0-9]+$/, what);
  assert.equal(typeof p.position, 'number', `${what}: position is a number (${JSON.stringify(p)})`);
}

// Sends `event`, which the spear must answer with 1003 and then close the connection: the
// answer comes (as the ack and as `<event>_result`) before the connection ends, and the client
// sees the server's disconnect ('io server disconnect': a connection the server closed is not
// reconnected by the client library on its own), not a broken transport.
async function refusedAndClosed(s, event, payload) {
  const closed = once(s, 'disconnect');
  closed.catch(() => {}); // awaited below unless an earlier step failed
  let result = 'none';
  s.once(`${event}_result`, (r) => { result = r; });
  const reply = await Promise.race([
    call(s, event, payload),
    closed.then((reason) => assert.fail(`the connection ended (${reason}) before the answer to ${event} came`)),
  ]);
  assert.equal(reply.success, false, JSON.stringify(reply));
  assert.equal(reply.errorCode, 1003, JSON.stringify(reply));
  const reason = await closed;
  assert.deepEqual(result, reply, `${event}_result arrives before the disconnect (which came with reason ${reason})`);
  assert.equal(reason, 'io server disconnect', 'the client saw the server close the connection');
}

for (const [target, start] of [['gru dev', startDev], ['a cluster', startCluster]]) {
  describe(`against ${target}`, () => {
    let dev;
    before(async () => { dev = await start(); });
    after(async () => { if (dev) assert.equal(await dev.stop(), 0, `${target} exits cleanly`); });

    // Connects over `transport` and authenticates with Gru's `auth` event; returns the socket
    // and where the user's channel went live.
    async function authed(version, transport, user, name) {
      const t = await ticket(dev.base, user, name, dev.token1(user, name));
      assert.equal(t.success, true, JSON.stringify(t));
      assert.equal(t.errorCode, 0);
      const s = connect(version, t.data.addr, { transport });
      assert.equal(s.transports[0], firstTransport(transport), `${transport} starts on ${firstTransport(transport)}`);
      await once(s, 'connect');
      const resultEvent = once(s, 'auth_result');
      const reply = await call(s, 'auth', { id: user, name, appType: 'web', token1: 'unused', token2: t.data.token });
      assert.equal(reply.success, true, JSON.stringify(reply));
      assert.equal(reply.data.userId, user, JSON.stringify(reply));
      const live = reply.data.positions && reply.data.positions[`u:${user}`];
      assertPlace(live, `auth of ${user}: where u:${user} went live (${JSON.stringify(reply)})`);
      const result = await resultEvent;
      assert.equal(result.errorCode, 0, 'auth_result is emitted too');
      assert.deepEqual(result.data, reply.data, 'auth_result carries the answer of the ack');
      return { s, live };
    }

    TRANSPORTS.forEach((transport, ti) => {
      [4, 2].forEach((version, vi) => {
        // Users and a group of this combination alone.
        const k = ti * 2 + vi;
        const uid = (n) => 1000 + k * 100 + n;
        const GROUP = 10 + k;
        const tag = `${transport}, socket.io-client@${version}`;

        test(`${tag}: the Gru journey`, async () => {
          const [A, B] = [uid(1), uid(2)];
          const { s: a } = await authed(version, transport, A, 'alice');
          const { s: b, live: bLive } = await authed(version, transport, B, 'bob');
          try {
            const groupLive = {};
            for (const [s, user] of [[a, A], [b, B]]) {
              const sub = await call(s, 'subscribe', { userId: user, subscribeGroups: [{ id: GROUP, name: `class ${GROUP}` }] });
              assert.equal(sub.success, true, JSON.stringify(sub));
              assert.deepEqual(sub.data.groups, [GROUP], JSON.stringify(sub));
              groupLive[user] = sub.data.positions && sub.data.positions[`g:${GROUP}`];
              assertPlace(groupLive[user], `subscribe of ${user}: where g:${GROUP} went live (${JSON.stringify(sub)})`);
            }
            assert.deepEqual(groupLive[A], groupLive[B], 'the group went live at the same place for both');

            // Unicast a → b: the first message of b's channel after where it went live.
            const got = once(b, 'msg');
            const sent = await call(a, 'msg', { type: 0, target: { id: B, type: 1 }, content: 'hello bob' });
            assert.equal(sent.success, true, JSON.stringify(sent));
            assert.equal(sent.msg, 'received');
            assert.deepEqual([sent.data.channel, sent.data.epoch, sent.data.position],
              [`u:${B}`, bLive.epoch, bLive.position + 1], `the unicast's place (${JSON.stringify(sent)})`);
            const m = await got;
            assert.equal(m.content, 'hello bob');
            assert.equal(m.fromId, A);
            assert.equal(m.msgType, 0);
            assert.equal(m.target.id, String(B));
            assert.ok(m.id > 0 && m.id === sent.data.id, 'the message id comes from idgen');
            assert.ok(Math.abs(m.createTime - Date.now()) < 60000, 'createTime is milliseconds');
            assert.deepEqual([m.channel, m.epoch, m.position], [sent.data.channel, sent.data.epoch, sent.data.position],
              `the delivered place is the acknowledged one (${JSON.stringify(m)})`);

            // Group broadcast reaches every member, the sender included.
            const toA = once(a, 'msg');
            const toB = once(b, 'msg');
            const g = await call(b, 'msg', { type: 1, target: { id: GROUP, type: 1 }, content: 'hello class' });
            assert.equal(g.success, true, JSON.stringify(g));
            assert.deepEqual([g.data.channel, g.data.epoch, g.data.position],
              [`g:${GROUP}`, groupLive[A].epoch, groupLive[A].position + 1], `the broadcast's place (${JSON.stringify(g)})`);
            const [ma, mb] = await Promise.all([toA, toB]);
            for (const x of [ma, mb]) {
              assert.equal(x.content, 'hello class');
              assert.deepEqual([x.channel, x.epoch, x.position], [g.data.channel, g.data.epoch, g.data.position], JSON.stringify(x));
            }
            assert.ok(mb.id > m.id, 'ids increase');

            const online = await call(a, 'online', String(GROUP));
            assert.deepEqual(online.data.userIds, [A, B]);

            const badType = await call(a, 'msg', { type: 7, target: { id: GROUP }, content: 'x' });
            assert.equal(badType.errorCode, 1003);
            const malformed = await call(a, 'msg', '{not json');
            assert.equal(malformed.errorCode, 1003);

            // The whole journey went the way the transport says.
            await assertTransport(a);
            await assertTransport(b);
          } finally {
            a.close();
            b.close();
          }
        });

        test(`${tag}: a resend with the same clientMsgId gets the first ack and delivers once`, async () => {
          const [A, B] = [uid(5), uid(6)];
          const { s: a } = await authed(version, transport, A, 'resender');
          const { s: b } = await authed(version, transport, B, 'receiver');
          await assertTransport(a);
          const got = [];
          b.on('msg', (m) => got.push(typeof m === 'string' ? JSON.parse(m) : m));
          const send = (content, clientMsgId) => call(a, 'msg', { type: 0, target: { id: B }, content, clientMsgId });
          const first = await send('once', `c-${k}-1`);
          assert.equal(first.success, true, JSON.stringify(first));
          assert.deepEqual(await send('once', `c-${k}-1`), first, 'the resend answers the first ack');
          const reused = await send('another', `c-${k}-1`);
          assert.equal(reused.errorCode, 1003, JSON.stringify(reused));
          const end = await send('end', `c-${k}-2`);
          assert.equal(end.data.position, first.data.position + 1, 'nothing stored in between');
          await waitFor('the receiver to get the end', 20000, async () => got.some((m) => m.content === 'end'));
          assert.deepEqual(got.map((m) => m.content), ['once', 'end'], 'each message delivered once');
          a.close();
          b.close();
        });

        test(`${tag}: a bad token is refused and the connection closed`, async () => {
          const user = uid(3);
          const t = await ticket(dev.base, user, 'carol', dev.token1(user, 'carol'));
          const s = connect(version, t.data.addr, { transport });
          try {
            assert.equal(s.transports[0], firstTransport(transport));
            await once(s, 'connect');
            await refusedAndClosed(s, 'auth', { id: user, name: 'carol', appType: 'web', token2: t.data.token + 'x' });
          } finally {
            s.close();
          }
        });

        test(`${tag}: an event before auth disconnects`, async () => {
          const user = uid(4);
          const t = await ticket(dev.base, user, 'dave', dev.token1(user, 'dave'));
          const s = connect(version, t.data.addr, { transport });
          try {
            assert.equal(s.transports[0], firstTransport(transport));
            await once(s, 'connect');
            await refusedAndClosed(s, 'subscribe', { userId: user, subscribeGroups: [{ id: GROUP }] });
          } finally {
            s.close();
          }
        });
      });

      // socket.io-client 4 only: the handshake `auth` option is protocol v5's; socket.io-client 2
      // could only put the token into the query string, which gru does not read.
      test(`${transport}, socket.io-client@4: the modern handshake auth`, async () => {
        const user = 1605 + ti * 100;
        const GROUP = 20 + ti;
        const t = await ticket(dev.base, user, 'erin', dev.token1(user, 'erin'));
        const s = connect(4, t.data.addr, { transport, auth: { token: t.data.token } });
        const result = once(s, 'auth_result');
        try {
          assert.equal(s.transports[0], firstTransport(transport));
          await once(s, 'connect');
          // No auth event: the handshake authenticated, and the answer comes as auth_result.
          const r = await result;
          assert.equal(r.success, true, JSON.stringify(r));
          assert.equal(r.errorCode, 0);
          assert.equal(r.data.userId, user, JSON.stringify(r));
          assertPlace(r.data.positions && r.data.positions[`u:${user}`], `auth_result: where u:${user} went live (${JSON.stringify(r)})`);

          const joined = await call(s, 'join', { groups: [GROUP] });
          assert.equal(joined.success, true, JSON.stringify(joined));
          const live = joined.data.positions && joined.data.positions[`g:${GROUP}`];
          assertPlace(live, `join: where g:${GROUP} went live (${JSON.stringify(joined)})`);
          const got = once(s, 'msg');
          const sent = await call(s, 'msg', { type: 1, target: { id: GROUP }, content: 'modern' });
          assert.equal(sent.success, true, JSON.stringify(sent));
          const m = await got;
          assert.equal(m.content, 'modern');
          assert.deepEqual([m.channel, m.epoch, m.position], [`g:${GROUP}`, live.epoch, live.position + 1], JSON.stringify(m));
          await assertTransport(s);
        } finally {
          s.close();
        }

        const bad = connect(4, t.data.addr, { transport, auth: { token: 'v1.forged.token' } });
        try {
          const err = await once(bad, 'connect_error');
          assert.match(err.message, /1003/);
        } finally {
          bad.close();
        }
      });
    });
  });
}
