// The JavaScript SDK (clients/js, `gru-client`) against a real `gru dev`, over the official
// socket.io-client 4:
//
// - two SDK clients chat (unicasts both ways, a group) over the default transports
//   (WebSocket first) and over long-polling only; each reports its connection (spear, transport);
//   `dropConnection()` drops one under the SDK, and what is sent to it meanwhile arrives once;
// - WebSocket blocked: a small HTTP proxy in front of the spear forwards plain HTTP (long-polling)
//   and refuses every WebSocket upgrade; the client, pointed at it with `mapUrl`, falls back to
//   long-polling, says so in its connection, and chats;
// - a "page reload": a client with a store closes, messages are sent to it meanwhile, and a new
//   client on the same store and user gets exactly those, once, flagged `replayed`, then live
//   ones; and a "crash" (a store that missed its last flush) replays what came since the last
//   flush, flagged, and nothing else.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { io } = require('sio4');
const { createClient, memoryStore } = require('../../clients/js');
const { startDev, waitFor } = require('./harness');

// Deadlines for what must happen; generous, they only end a test that would hang.
const DEADLINE_MS = 15000;
// After the last expected message, how long to keep watching for a stray copy.
const SETTLE_MS = 300;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// gru dev's server API key (README).
const SERVER_API_KEY = 'INSECURE-dev-server-api-key-0000000001';
// gru dev's per-connection send queue (spear.send_queue_packets).
const SEND_QUEUE = 256;

let dev;
before(async () => {
  dev = await startDev();
});
after(async () => {
  if (dev) assert.equal(await dev.stop(), 0, 'gru dev exits cleanly');
});

/** Publishes `contents` to user `uid` through gru dev's server API, in batches of 100. */
async function publish(uid, contents) {
  for (let i = 0; i < contents.length; i += 100) {
    const messages = contents.slice(i, i + 100).map((content) => ({ to: { user: uid }, content }));
    const r = await fetch(`${dev.base}/api/v1/publish/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SERVER_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages }),
    });
    const answer = await r.json();
    assert.equal(r.status, 200, JSON.stringify(answer));
    assert.equal(answer.failed, 0, JSON.stringify(answer));
  }
}

/** An SDK client for `uid` on gru dev, recording what it is told; closed at the test's end. */
function sdk(t, uid, opts = {}) {
  const name = `sdk${uid}`;
  const client = createClient({
    ticketUrl: dev.base,
    userId: uid,
    name,
    token1: dev.token1(uid, name),
    io,
    backoffMaxMs: 1000,
    ...opts,
  });
  client.inbox = [];
  client.errors = [];
  client.connections = [];
  client.on('message', (m) => client.inbox.push(m));
  client.on('error', (e) => client.errors.push(e));
  client.on('connection', (c) => client.connections.push(c));
  t.after(() => client.close());
  return client;
}

const live = (client) => waitFor(`user ${client.userId} live`, DEADLINE_MS, async () => {
  if (client.state === 'closed') throw Object.assign(new Error(`user ${client.userId} closed: ${client.errors.map((e) => e.message)}`), { fatal: true });
  return client.state === 'live';
});

/** The contents `client` received on `channel`, in order. */
const contents = (client, channel) => client.inbox.filter((m) => m.channel === channel).map((m) => m.content);

/** Waits until `client` has every content of `list` on `channel`. */
function arrived(client, channel, list) {
  return waitFor(`user ${client.userId} to get ${list.join(', ')} on ${channel}`, DEADLINE_MS, async () => {
    const got = new Set(contents(client, channel));
    return list.every((c) => got.has(c));
  });
}

/** Two users chat: a unicast each way and a message to their group; checks places and acks. */
async function chat(a, b, group, tag) {
  const toB = `${tag}: ${a.userId} to ${b.userId}`;
  const toA = `${tag}: ${b.userId} to ${a.userId}`;
  const toGroup = `${tag}: ${a.userId} to group ${group}`;
  const ackB = await a.send({ to: { user: b.userId }, content: toB });
  const ackA = await b.send({ to: { user: a.userId }, content: toA });
  const ackGroup = await a.send({ to: { group }, content: toGroup });
  await arrived(b, `u:${b.userId}`, [toB]);
  await arrived(a, `u:${a.userId}`, [toA]);
  await arrived(a, `g:${group}`, [toGroup]);
  await arrived(b, `g:${group}`, [toGroup]);
  for (const [client, content, ack] of [[b, toB, ackB], [a, toA, ackA], [a, toGroup, ackGroup], [b, toGroup, ackGroup]]) {
    const got = client.inbox.find((m) => m.content === content);
    assert.equal(got.channel, ack.channel, `${content}: delivered on the channel its ack names`);
    assert.equal(got.position, ack.position, `${content}: at the place its ack names`);
    assert.equal(got.replayed, undefined, `${content}: live, not replayed`);
  }
  assert.equal(b.inbox.find((m) => m.content === toB).fromId, a.userId);
}

describe('the SDK on gru dev', () => {
  test('two clients chat over the default transports: WebSocket first', async (t) => {
    const group = 601;
    const a = sdk(t, 6001, { groups: [group] });
    const b = sdk(t, 6002, { groups: [group] });
    await Promise.all([live(a), live(b)]);
    for (const c of [a, b]) {
      const info = c.connection;
      assert.equal(info.transport, 'websocket', 'WebSocket first, and it works');
      assert.deepEqual(info.transports, ['websocket']);
      assert.equal(info.name, 'node_1', 'the spear as the ticket named it');
      assert.equal(info.id, 1);
      assert.equal(info.attempt, 1);
      assert.deepEqual(c.connections, [info], 'one connection event');
    }
    await chat(a, b, group, 'websocket');

    // dropConnection(): the connection dies under the SDK; what b sends meanwhile reaches a once.
    const before = a.stats.reconnects;
    const states = [];
    a.on('state', (st) => states.push(st));
    assert.equal(a.dropConnection(), true);
    const meanwhile = await b.send({ to: { user: a.userId }, content: 'while a reconnects' });
    await waitFor('a live again', DEADLINE_MS, async () => a.state === 'live' && a.stats.reconnects === before + 1);
    assert.deepEqual(states, [{ state: 'reconnecting', reason: 'transport close' }, { state: 'live' }], 'the lost-connection path');
    assert.ok(a.connection.resume[`u:${a.userId}`], 'it presented its place');
    await arrived(a, `u:${a.userId}`, ['while a reconnects']);
    await sleep(SETTLE_MS);
    const got = a.inbox.filter((m) => m.content === 'while a reconnects');
    assert.equal(got.length, 1, 'once');
    assert.equal(got[0].position, meanwhile.position);
    await chat(a, b, group, 'after the drop');
    assert.deepEqual(a.errors.filter((e) => e.code !== 'connect'), [], 'no error but the lost connection');
  });

  test('two clients chat over long-polling only', async (t) => {
    const group = 602;
    const a = sdk(t, 6011, { groups: [group], transports: ['polling'] });
    const b = sdk(t, 6012, { groups: [group], transports: ['polling'] });
    await Promise.all([live(a), live(b)]);
    for (const c of [a, b]) {
      assert.equal(c.connection.transport, 'polling');
      assert.deepEqual(c.connection.transports, ['polling']);
    }
    await chat(a, b, group, 'polling');
    assert.deepEqual([...a.errors, ...b.errors], []);
  });

  test('WebSocket blocked by a proxy: the client falls back to long-polling and chats', async (t) => {
    const cluster = await dev.admin('/api/v1/cluster');
    const proxy = await wsBlockingProxy(`http://${cluster.spears[0].sio}`);
    t.after(() => proxy.close());
    const group = 603;
    const mapped = [];
    const a = sdk(t, 6021, {
      groups: [group],
      // The ticket hands out the spear's own address: go through the proxy instead.
      mapUrl: (url) => {
        mapped.push(url);
        return proxy.url;
      },
    });
    const b = sdk(t, 6022, { groups: [group] });
    await Promise.all([live(a), live(b)]);
    assert.deepEqual(mapped, [`http://${cluster.spears[0].sio}`]);
    assert.ok(proxy.upgradesRefused > 0, 'the client tried WebSocket first, through the proxy');
    assert.ok(proxy.requests > 0, 'and long-polling went through it');
    assert.deepEqual({ url: a.connection.url, spearUrl: a.connection.spearUrl, transport: a.connection.transport, transports: a.connection.transports }, {
      url: proxy.url, spearUrl: mapped[0], transport: 'polling', transports: ['polling'],
    });
    assert.equal(b.connection.transport, 'websocket', 'without the proxy: WebSocket');
    await chat(a, b, group, 'websocket blocked');
    assert.equal(a.connection.transport, 'polling', 'still polling: no upgrade through the proxy');
    assert.equal(a.stats.reconnects, 0);
  });

  test('a slow consumer: the spear drops messages for it, the SDK finds the gap and resumes it', async (t) => {
    const cluster = await dev.admin('/api/v1/cluster');
    const proxy = await wsBlockingProxy(`http://${cluster.spears[0].sio}`);
    t.after(() => proxy.close());
    const uid = 6041;
    // Long-polling through the proxy: when it holds the polls, nothing is read from the spear.
    const client = sdk(t, uid, { transports: ['polling'], mapUrl: () => proxy.url });
    await live(client);
    const flood = Array.from({ length: 2 * SEND_QUEUE }, (_, i) => `flood ${i + 1}`);
    proxy.hold();
    await publish(uid, flood);
    await sleep(100);
    proxy.release();
    // The queue's worth arrives; what did not fit was dropped for this connection. The next
    // message shows the gap.
    await waitFor('the queued messages', DEADLINE_MS, async () => client.inbox.length >= SEND_QUEUE / 2);
    await publish(uid, ['after the flood']);
    const all = [...flood, 'after the flood'];
    await arrived(client, `u:${uid}`, all);
    await sleep(SETTLE_MS);
    assert.deepEqual(contents(client, `u:${uid}`), all, 'every message, once, in order');
    assert.ok(client.stats.gaps >= 1, `the gap was found (${JSON.stringify(client.stats)})`);
    const gap = client.errors.find((e) => e.code === 'gap');
    assert.ok(gap && gap.data.missing > 0, `an error gap: ${client.errors.map((e) => e.message)}`);
    assert.ok(client.inbox.some((m) => m.replayed), 'the gap came by the replay');
    assert.equal(client.stats.duplicatesDropped, 0);
  });

  test('a page reload resumes from the store: what came meanwhile arrives once, replayed; a crash replays since the last flush', async (t) => {
    const store = memoryStore();
    const alice = 6031;
    const bob = sdk(t, 6032);
    const first = sdk(t, alice, { store });
    await Promise.all([live(first), live(bob)]);
    await bob.send({ to: { user: alice }, content: 'before the reload' });
    await arrived(first, `u:${alice}`, ['before the reload']);
    await first.close();
    const kept = JSON.parse(store.getItem(`gru-client:${alice}:positions`)).channels[`u:${alice}`];
    assert.equal(kept.position, first.inbox.at(-1).position, 'close() stored the last place');

    // The page is gone: three messages are sent to it.
    const away = ['while away 1', 'while away 2', 'while away 3'];
    for (const content of away) await bob.send({ to: { user: alice }, content });

    // The page is back: a new client on the same store.
    const second = sdk(t, alice, { store, storeFlushMs: 60000 });
    await live(second);
    assert.deepEqual(second.connection.resume, { [`u:${alice}`]: kept }, 'it presented the stored place');
    await arrived(second, `u:${alice}`, away);
    await bob.send({ to: { user: alice }, content: 'after the reload' });
    await arrived(second, `u:${alice}`, ['after the reload']);
    await sleep(SETTLE_MS);
    assert.deepEqual(second.inbox.map((m) => `${m.content}${m.replayed ? ' (replayed)' : ''}`),
      [...away.map((c) => `${c} (replayed)`), 'after the reload'], 'exactly those, once, in order; then live');
    assert.equal(second.stats.duplicatesDropped, 0);

    // A crash: the store still holds the place from before (storeFlushMs not over, no close).
    const crashed = memoryStore();
    crashed.setItem(`gru-client:${alice}:positions`, store.getItem(`gru-client:${alice}:positions`));
    await second.close();
    const third = sdk(t, alice, { store: crashed });
    await live(third);
    await arrived(third, `u:${alice}`, [...away, 'after the reload']);
    await sleep(SETTLE_MS);
    assert.deepEqual(third.inbox.map((m) => `${m.content}${m.replayed ? ' (replayed)' : ''}`),
      [...away, 'after the reload'].map((c) => `${c} (replayed)`), 'the unflushed window again, flagged, once');
    assert.deepEqual(third.inbox.map((m) => m.position), second.inbox.map((m) => m.position), 'at the same places');
  });
});

/**
 * An HTTP proxy on 127.0.0.1 in front of `target` that forwards plain requests (socket.io's
 * long-polling) and refuses every WebSocket upgrade with 403, as some corporate proxies do.
 * `hold()` keeps the requests that come from then on (a client that stops reading) until
 * `release()` forwards them.
 */
function wsBlockingProxy(target) {
  const to = new URL(target);
  const sockets = new Set();
  const proxy = { requests: 0, upgradesRefused: 0 };
  let held = null;
  const forward = (req, res) => {
    const upstream = http.request({
      host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host },
    }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  proxy.hold = () => { held = held || []; };
  proxy.release = () => {
    const waiting = held || [];
    held = null;
    for (const [req, res] of waiting) forward(req, res);
  };
  const server = http.createServer((req, res) => {
    proxy.requests += 1;
    if (held) held.push([req, res]);
    else forward(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket) => {
    proxy.upgradesRefused += 1;
    socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      proxy.url = `http://127.0.0.1:${server.address().port}`;
      proxy.close = () => new Promise((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      });
      resolve(proxy);
    });
  });
}
