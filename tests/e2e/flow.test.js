// The Gru client journey with the official clients, against `gru dev` and against a cluster:
// ticket → spear → auth → subscribe → unicast → group broadcast (sender included) → online,
// a bad token refused, an event before auth disconnecting, and the modern handshake auth.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startDev, startCluster, ticket, connect, once, call } = require('./harness');

for (const [target, start] of [['gru dev', startDev], ['a cluster', startCluster]]) {
  describe(`against ${target}`, () => {
    let dev;
    before(async () => { dev = await start(); });
    after(async () => { if (dev) assert.equal(await dev.stop(), 0, `${target} exits cleanly`); });

    async function authed(version, user, name) {
      const t = await ticket(dev.base, user, name, dev.token1(user, name));
      assert.equal(t.success, true, JSON.stringify(t));
      assert.equal(t.errorCode, 0);
      const s = connect(version, t.data.addr);
      await once(s, 'connect');
      const resultEvent = once(s, 'auth_result');
      const reply = await call(s, 'auth', { id: user, name, appType: 'web', token1: 'unused', token2: t.data.token });
      assert.equal(reply.success, true, JSON.stringify(reply));
      assert.equal((await resultEvent).errorCode, 0, 'auth_result is emitted too');
      return s;
    }

    for (const version of [4, 2]) {
      test(`socket.io-client@${version}: the Gru journey`, async () => {
        const a = await authed(version, 1001, 'alice');
        const b = await authed(version, 1002, 'bob');
        try {
          for (const s of [a, b]) {
            const sub = await call(s, 'subscribe', { userId: s === a ? 1001 : 1002, subscribeGroups: [{ id: 10, name: 'class 10' }] });
            assert.equal(sub.success, true, JSON.stringify(sub));
          }

          // Unicast a → b.
          const got = once(b, 'msg');
          const sent = await call(a, 'msg', { type: 0, target: { id: 1002, type: 1 }, content: 'hello bob' });
          assert.equal(sent.success, true, JSON.stringify(sent));
          assert.equal(sent.msg, 'received');
          const m = await got;
          assert.equal(m.content, 'hello bob');
          assert.equal(m.fromId, 1001);
          assert.equal(m.msgType, 0);
          assert.equal(m.target.id, '1002');
          assert.ok(m.id > 0 && m.id === sent.data.id, 'the message id comes from idgen');
          assert.ok(Math.abs(m.createTime - Date.now()) < 60000, 'createTime is milliseconds');

          // Group broadcast reaches every member, the sender included.
          const toA = once(a, 'msg');
          const toB = once(b, 'msg');
          const g = await call(b, 'msg', { type: 1, target: { id: 10, type: 1 }, content: 'hello class' });
          assert.equal(g.success, true);
          const [ma, mb] = await Promise.all([toA, toB]);
          assert.equal(ma.content, 'hello class');
          assert.equal(mb.content, 'hello class');
          assert.ok(mb.id > m.id, 'ids increase');

          const online = await call(a, 'online', '10');
          assert.deepEqual(online.data.userIds, [1001, 1002]);

          const badType = await call(a, 'msg', { type: 7, target: { id: 10 }, content: 'x' });
          assert.equal(badType.errorCode, 1003);
          const malformed = await call(a, 'msg', '{not json');
          assert.equal(malformed.errorCode, 1003);
        } finally {
          a.close();
          b.close();
        }
      });

      test(`socket.io-client@${version}: a bad token is refused and the connection closed`, async () => {
        const t = await ticket(dev.base, 1003, 'carol', dev.token1(1003, 'carol'));
        const s = connect(version, t.data.addr);
        await once(s, 'connect');
        const closed = once(s, 'disconnect');
        const reply = await call(s, 'auth', { id: 1003, name: 'carol', appType: 'web', token2: t.data.token + 'x' });
        assert.equal(reply.success, false);
        assert.equal(reply.errorCode, 1003);
        await closed;
      });

      test(`socket.io-client@${version}: an event before auth disconnects`, async () => {
        const t = await ticket(dev.base, 1004, 'dave', dev.token1(1004, 'dave'));
        const s = connect(version, t.data.addr);
        await once(s, 'connect');
        const closed = once(s, 'disconnect');
        const reply = await call(s, 'subscribe', { userId: 1004, subscribeGroups: [{ id: 10 }] });
        assert.equal(reply.errorCode, 1003);
        await closed;
      });
    }

    test('socket.io-client@4: the modern handshake auth', async () => {
      const t = await ticket(dev.base, 1005, 'erin', dev.token1(1005, 'erin'));
      const s = connect(4, t.data.addr, { auth: { token: t.data.token } });
      await once(s, 'connect');
      try {
        const joined = await call(s, 'join', { groups: [20] });
        assert.equal(joined.success, true, JSON.stringify(joined));
        const got = once(s, 'msg');
        await call(s, 'msg', { type: 1, target: { id: 20 }, content: 'modern' });
        assert.equal((await got).content, 'modern');
      } finally {
        s.close();
      }

      const bad = connect(4, t.data.addr, { auth: { token: 'v1.forged.token' } });
      const err = await once(bad, 'connect_error');
      assert.match(err.message, /1003/);
      bad.close();
    });
  });
}
