// Two spears joined by the Redis relay (RocketMQ's with GRU_E2E_ROCKETMQ, see harness.js),
// with the official clients: users placed on both spears (one user connected to both), unicast
// both ways with either client, a group broadcast that reaches every member connection on both
// spears exactly once, `online` and stat's `/getGroupStat` listing the users of both spears, and
// a disconnect leaving them. One cluster; the journey runs once per transport (WebSocket,
// long-polling, and the default: polling upgraded to WebSocket), each time with its own users
// and group, alice and bob on socket.io-client 4, carol and dave on socket.io-client 2.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  TRANSPORTS, startCluster, ticket, connect, assertTransport, once, call, waitFor,
} = require('./harness');

// After the first copy of a message arrives, how long to keep counting copies.
const SETTLE_MS = 300;
// Deadlines for what must happen (a message arriving, presence changing): generous, since they
// only end a test that would otherwise hang.
const DEADLINE_MS = 20000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const RELAY = process.env.GRU_E2E_ROCKETMQ ? 'RocketMQ' : 'Redis';

describe(`two spears over the ${RELAY} relay`, () => {
  let c;
  before(async () => { c = await startCluster({ spears: 2 }); });
  after(async () => {
    if (c) assert.equal(await c.stop(), 0, 'the cluster exits cleanly');
  });

  TRANSPORTS.forEach((transport, ti) => describe(`over ${transport}`, () => {
    // This transport's users (from FIRST_UID on) and group.
    const FIRST_UID = 3001 + ti * 1000;
    const GROUP = 10 + ti;
    // Connections by name; each records every `msg` it receives in `inbox`.
    const conns = {};
    const users = {};
    let spearA;
    let spearB;

    after(() => {
      for (const s of Object.values(conns)) s.close();
    });

    async function authed(version, user, name, token, addr) {
      const s = connect(version, addr, { transport });
      s.inbox = [];
      s.on('msg', (m) => s.inbox.push(m));
      await once(s, 'connect');
      const reply = await call(s, 'auth', { id: user, name, appType: 'web', token1: 'unused', token2: token });
      assert.equal(reply.success, true, `auth of ${name} (${user}) on ${addr}: ${JSON.stringify(reply)}`);
      return s;
    }

    // Waits until `s` received a message with `content`, then SETTLE_MS more, and returns every
    // copy of it.
    async function received(s, content, what) {
      await waitFor(`${what} to receive ${JSON.stringify(content)} (got ${JSON.stringify(s.inbox)})`, DEADLINE_MS,
        async () => s.inbox.some((m) => m.content === content));
      await sleep(SETTLE_MS);
      return s.inbox.filter((m) => m.content === content);
    }

    async function online(s) {
      const r = await call(s, 'online', String(GROUP));
      assert.equal(r.success, true, JSON.stringify(r));
      return r.data.userIds;
    }

    async function groupStat() {
      return c.admin(`/getGroupStat?groupId=${GROUP}`);
    }

    // Polls `online` (asked on `s`) and `/getGroupStat` until both list exactly `want`.
    async function presenceIs(s, want, what) {
      let last = {};
      try {
        await waitFor(what, DEADLINE_MS, async () => {
          last = {};
          try { last.online = await online(s); } catch (e) { last.online = `error: ${e.message}`; }
          try { last.stat = await groupStat(); } catch (e) { last.stat = `error: ${e.message}`; }
          return JSON.stringify(last.online) === JSON.stringify(want)
            && JSON.stringify(last.stat) === JSON.stringify({ groupId: GROUP, userIds: want });
        });
      } catch (e) {
        assert.fail(`${e.message}: want ${JSON.stringify(want)}, last online ${JSON.stringify(last.online)}, `
          + `last /getGroupStat ${JSON.stringify(last.stat)}`);
      }
    }

    test(`${transport}: users are placed on both spears and connect (alice, bob: client 4; carol, dave: client 2)`, async () => {
      // Tickets for a range of users until each spear has two.
      const bySpear = new Map();
      for (let uid = FIRST_UID; uid < FIRST_UID + 80; uid++) {
        const name = `u${uid}`;
        const t = await ticket(c.base, uid, name, c.token1(uid, name));
        assert.equal(t.success, true, JSON.stringify(t));
        const list = bySpear.get(t.data.addr) ?? [];
        list.push({ uid, name, t });
        bySpear.set(t.data.addr, list);
        if (bySpear.size === 2 && [...bySpear.values()].every((l) => l.length >= 2)) break;
      }
      assert.equal(bySpear.size, 2, `ticket hands out both spears: ${JSON.stringify([...bySpear.keys()])}`);
      [spearA, spearB] = [...bySpear.keys()];
      const [[alice, carol], [bob, dave]] = [bySpear.get(spearA), bySpear.get(spearB)];
      assert.ok(alice && carol && bob && dave, 'two users on each spear');
      Object.assign(users, { alice, carol, bob, dave });

      conns.alice = await authed(4, alice.uid, alice.name, alice.t.data.token, spearA);
      conns.carol = await authed(2, carol.uid, carol.name, carol.t.data.token, spearA);
      conns.bob = await authed(4, bob.uid, bob.name, bob.t.data.token, spearB);
      conns.dave = await authed(2, dave.uid, dave.name, dave.t.data.token, spearB);
      // Alice's token is good on her placement and its backups: a second connection on B.
      const backups = (alice.t.data.backupNodes ?? []).map((b) => b.addr);
      assert.ok(backups.includes(spearB), `spear B ${spearB} is among alice's backups ${JSON.stringify(backups)}`);
      conns.alice2 = await authed(4, alice.uid, alice.name, alice.t.data.token, spearB);

      for (const [name, s] of Object.entries(conns)) {
        const uid = users[name.replace(/2$/, '')].uid;
        const sub = await call(s, 'subscribe', { userId: uid, subscribeGroups: [{ id: GROUP, name: `class ${GROUP}` }] });
        assert.equal(sub.success, true, `subscribe of ${name}: ${JSON.stringify(sub)}`);
      }
    });

    // One unicast: `from` sends to `to`; every connection of `to` gets it once, nobody else.
    async function unicast(from, to, content) {
      const sent = await call(conns[from], 'msg', { type: 0, target: { id: users[to].uid, type: 1 }, content });
      assert.equal(sent.success, true, `${from} → ${to}: ${JSON.stringify(sent)}`);
      assert.equal(sent.errorCode, 0);
      assert.equal(sent.msg, 'received');
      assert.ok(sent.data.id > 0, JSON.stringify(sent));
      const targets = Object.keys(conns).filter((n) => n.replace(/2$/, '') === to);
      for (const name of targets) {
        const copies = await received(conns[name], content, `${to}'s connection ${name}`);
        assert.equal(copies.length, 1, `${name} got ${content} ${copies.length} times: ${JSON.stringify(copies)}`);
        const m = copies[0];
        assert.equal(m.id, sent.data.id, `the delivered id is the acknowledged one (${JSON.stringify(m)})`);
        assert.equal(m.createTime, sent.data.createTime, JSON.stringify(m));
        assert.equal(m.fromId, users[from].uid);
        assert.equal(m.msgType, 0);
        assert.equal(m.target.id, String(users[to].uid), JSON.stringify(m));
        assert.deepEqual([m.channel, m.epoch, m.position], [sent.data.channel, sent.data.epoch, sent.data.position],
          `the delivered place is the acknowledged one (${JSON.stringify(m)})`);
      }
      for (const name of Object.keys(conns).filter((n) => !targets.includes(n))) {
        const stray = conns[name].inbox.filter((m) => m.content === content);
        assert.deepEqual(stray, [], `${name} is not a recipient of ${from} → ${to}`);
      }
    }

    test(`${transport}, socket.io-client@4: unicast A → B and B → A (to both of alice's connections)`, async () => {
      await unicast('alice', 'bob', 'alice on A to bob on B');
      await unicast('bob', 'alice', 'bob on B to alice on A and B');
    });

    test(`${transport}, socket.io-client@2: unicast A → B and B → A`, async () => {
      await unicast('carol', 'dave', 'carol on A to dave on B');
      await unicast('dave', 'carol', 'dave on B to carol on A');
    });

    test(`${transport}, socket.io-client@4 ↔ @2: unicast across spears and client generations`, async () => {
      await unicast('alice', 'dave', 'alice (4) on A to dave (2) on B');
      await unicast('dave', 'alice', 'dave (2) on B to alice (4) on A and B');
    });

    for (const sender of ['bob', 'carol']) {
      test(`${transport}: a group broadcast from ${sender} (client ${sender === 'bob' ? 4 : 2}) reaches every member connection on both spears once`, async () => {
        const content = `class ${GROUP} from ${sender}`;
        const sent = await call(conns[sender], 'msg', { type: 1, target: { id: GROUP, type: 1 }, content });
        assert.equal(sent.success, true, JSON.stringify(sent));
        assert.equal(sent.msg, 'received');
        const counts = {};
        const names = Object.keys(conns);
        await Promise.all(names.map(async (name) => {
          const copies = await received(conns[name], content, name).catch(() => []);
          counts[name] = copies.length;
          for (const m of copies) {
            assert.equal(m.id, sent.data.id, `${name}: ${JSON.stringify(m)}`);
            assert.equal(m.msgType, 1);
            assert.equal(m.fromId, users[sender].uid);
            assert.equal(m.target.id, String(GROUP));
            assert.deepEqual([m.channel, m.epoch, m.position], [sent.data.channel, sent.data.epoch, sent.data.position],
              `${name}: the delivered place is the acknowledged one (${JSON.stringify(m)})`);
          }
        }));
        assert.deepEqual(counts, Object.fromEntries(names.map((n) => [n, 1])),
          `copies per connection of ${JSON.stringify(content)} (ack ${JSON.stringify(sent.data)})`);
      });
    }

    test(`${transport}: online and /getGroupStat list the users of both spears`, async () => {
      const all = ['alice', 'bob', 'carol', 'dave'].map((n) => users[n].uid).sort((x, y) => x - y);
      await presenceIs(conns.alice, all, 'online on spear A to list both spears\' users');
      await presenceIs(conns.dave, all, 'online on spear B to list both spears\' users');
    });

    test(`${transport}: every connection took the ${transport} path`, async () => {
      for (const s of Object.values(conns)) await assertTransport(s);
    });

    test(`${transport}: a disconnected user leaves online; a user with a connection left stays`, async () => {
      conns.dave.close();
      delete conns.dave;
      const left = ['alice', 'bob', 'carol'].map((n) => users[n].uid).sort((x, y) => x - y);
      await presenceIs(conns.alice, left, 'dave (spear B) to leave online');
      await presenceIs(conns.bob, left, 'dave to leave online as seen on spear B');

      conns.alice2.close(); // alice is still connected on spear A
      delete conns.alice2;
      await sleep(1000);
      await presenceIs(conns.bob, left, 'alice to stay online with her connection on spear A');
    });
  }));
});
