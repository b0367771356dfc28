'use strict';
// What the client tells about its connections and does on its own: the `connection`,
// `transport`, `notice` and `ticket` events, `client.connection`, `dropConnection()`,
// `mapUrl`, the `replayed` flag, gap detection, and when positions reach the store.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { createClient, memoryStore } = require('../src/index');
const { gruServer, makeClient, live, sleep, waitFor } = require('./fake');

const msg = (channel, epoch, position) => ({
  id: position, createTime: 1, fromId: 2, msgType: 0, target: { id: '1', type: -1 }, content: `${channel}#${position}`, expireTime: 0, channel, epoch, position,
});
const ok = (data) => ({ success: true, errorCode: 0, msg: 'ok', data });

/** Wraps `server`'s socket handling: `hook(socket, index, entry, answer)` sees each emit first. */
function hookEmits(server, hook) {
  const base = server.onSocket;
  server.onSocket = (s) => {
    base(s);
    const answer = s.onEmit;
    const index = server.io.sockets.indexOf(s);
    s.onEmit = (e) => hook(s, index, e, answer);
  };
}

test('the `connection` event and client.connection: spear, transport, resume, attempt; null when not live', async (t) => {
  const server = gruServer({ userPlace: { epoch: '100', position: 5 } });
  const client = makeClient(t, server, { autoConnect: false });
  const tickets = [];
  client.on('ticket', (tk) => tickets.push(tk));
  assert.equal(client.connection, null);
  await client.connect();
  await live(client);
  assert.equal(client.connections.length, 1);
  const [info] = client.connections;
  assert.deepEqual({ ...info, since: 0 }, {
    url: 'http://s1', id: 4, name: 'node_4', transport: 'websocket', transports: ['websocket'], resume: {}, attempt: 1, since: 0,
  });
  assert.ok(info.since > 0 && info.since <= Date.now());
  assert.deepEqual(client.connection, info);
  assert.deepEqual(tickets.map((tk) => tk.nodes.map((n) => `${n.id}:${n.name}:${n.url}`)), [['4:node_4:http://s1', '5:node_5:http://s2', '6:node_6:http://s3']]);
  assert.equal(typeof tickets[0].expiresAtMs, 'number');

  // The state event comes after the connection event: a state listener can read it.
  server.io.sockets[0].fire('msg', msg('u:1', '100', 6));
  assert.equal(client.dropConnection(), true);
  assert.equal(client.connection, null);
  await waitFor('a second connection', () => client.connections.length === 2);
  const again = client.connections[1];
  assert.equal(again.url, 'http://s2', 'the ticket\'s next spear');
  assert.deepEqual(again.resume, { 'u:1': { epoch: '100', position: 6 } }, 'what it presented');
  assert.equal(again.attempt, 1);
  await client.close();
  assert.equal(client.connection, null);
  assert.equal(client.dropConnection(), false, 'nothing to drop');
});

test('dropConnection() closes socket.io\'s transport: the usual lost-connection path, with resume', async (t) => {
  const server = gruServer({ userPlace: { epoch: '100', position: 5 } });
  const client = makeClient(t, server);
  await live(client);
  const [first] = server.io.sockets;
  first.fire('msg', msg('u:1', '100', 6));
  assert.equal(client.dropConnection(), true);
  assert.equal(first.io.engine.readyState, 'closed', 'through the engine\'s transport');
  assert.equal(first.disconnected, true);
  assert.deepEqual(client.states[2], { state: 'reconnecting', reason: 'transport close' });
  await waitFor('live again', () => client.stats.reconnects === 1 && client.state === 'live');
  assert.deepEqual(server.io.sockets[1].opts.auth.resume, { 'u:1': { epoch: '100', position: 6 } });

  // A socket without an engine: ended by hand, the same way.
  const bare = gruServer();
  const base = bare.onSocket;
  bare.onSocket = (s) => { delete s.io; base(s); };
  const other = makeClient(t, bare);
  await live(other);
  assert.equal(other.dropConnection(), true);
  await waitFor('live again', () => other.stats.reconnects === 1 && other.state === 'live');
  assert.equal(other.states[2].reason, 'transport close');
  assert.equal(other.connections[0].transport, null, 'no engine: no transport name');
});

test('an upgrade of the live connection\'s transport is told (`transport`) and shown in client.connection', async (t) => {
  const server = gruServer();
  const client = makeClient(t, server, { transports: ['polling', 'websocket'] });
  const upgrades = [];
  client.on('transport', (e) => upgrades.push(e));
  await live(client);
  assert.equal(client.connection.transport, 'polling');
  server.io.sockets[0].io.engine.upgrade('websocket');
  assert.deepEqual(upgrades, [{ transport: 'websocket', transports: ['polling', 'websocket'], url: 'http://s1' }]);
  assert.equal(client.connection.transport, 'websocket');
  assert.deepEqual(client.connection.transports, ['polling', 'websocket']);
});

test('WebSocket refused, long-polling taken: the connection\'s transport is polling, not both', async (t) => {
  const server = gruServer();
  const base = server.onSocket;
  server.onSocket = (s) => {
    // socket.io-client tryAllTransports: the WebSocket fails and the engine opens on polling,
    // before socket.io connects (queued before the fake's connect).
    setImmediate(() => { s.io.engine.transport = s.io.engine._transport('polling'); });
    base(s);
  };
  const client = makeClient(t, server);
  await live(client);
  assert.deepEqual(server.io.sockets[0].opts.transports, ['websocket', 'polling']);
  assert.equal(client.connection.transport, 'polling');
  assert.deepEqual(client.connection.transports, ['polling']);
});

test('mapUrl rewrites every spear URL the ticket hands out; the ticket\'s stays in spearUrl', async (t) => {
  const server = gruServer({ refuse: (s) => (server.io.sockets.indexOf(s) === 0 ? 'spear unreachable' : null) });
  const seen = [];
  const client = makeClient(t, server, {
    mapUrl: (url, node) => {
      seen.push(node.name);
      return url.replace('http://', 'http://gateway.test/');
    },
  });
  await live(client);
  assert.deepEqual(server.io.sockets.map((s) => s.url), ['http://gateway.test/s1', 'http://gateway.test/s2']);
  assert.deepEqual(seen, ['node_4', 'node_5']);
  assert.equal(client.connection.url, 'http://gateway.test/s2');
  assert.equal(client.connection.spearUrl, 'http://s2');
  assert.equal(client.connection.attempt, 2, 'the second attempt');
  assert.match(client.errors[0].message, /gateway\.test\/s1/);
  assert.throws(() => createClient({ ticketUrl: 'http://t', userId: 1, name: 'a', token1: 'x', mapUrl: 'no', autoConnect: false }), /mapUrl/);
});

test('messages of a presented channel before its answer are flagged replayed; live ones are not', async (t) => {
  const store = memoryStore();
  store.setItem('gru-client:1:positions', JSON.stringify({ v: 1, channels: { 'u:1': { epoch: '100', position: 5 }, 'g:10': { epoch: '200', position: 3 } } }));
  const server = gruServer({ silent: () => true, groupPlace: (g) => (g === 10 ? { epoch: '200', position: 4 } : { epoch: '300', position: 7 }) });
  hookEmits(server, (s, i, e, answer) => {
    if (e.event === 'join') {
      // Each group's backlog comes before the join's answer; g:11 (no place presented) is live at once.
      s.fire('msg', msg('g:10', '200', 4));
      s.fire('msg', msg('g:11', '300', 8));
    }
    answer(e);
  });
  const client = makeClient(t, server, { store, groups: [10, 11] });
  await waitFor('a socket', () => server.io.sockets.length === 1);
  const [s] = server.io.sockets;
  assert.deepEqual(s.opts.auth.resume, { 'u:1': { epoch: '100', position: 5 }, 'g:10': { epoch: '200', position: 3 } });
  s.fire('connect');
  s.fire('msg', msg('u:1', '100', 6));
  s.fire('msg', msg('g:10', '200', 4)); // a live g:10 message would come after the join: none here
  s.fire('auth_result', ok({ userId: 1, positions: { 'u:1': { epoch: '100', position: 6 } } }));
  await live(client);
  s.fire('msg', msg('u:1', '100', 7));
  s.fire('msg', msg('g:10', '200', 5));
  assert.deepEqual(client.messages.map((m) => `${m.content}${m.replayed ? ' replayed' : ''}`), [
    'u:1#6 replayed', 'g:10#4 replayed', 'g:11#8', 'u:1#7', 'g:10#5',
  ]);
  assert.equal(client.stats.duplicatesDropped, 1, 'the second g:10#4');
});

test('a gap in a channel\'s positions: error `gap`, nothing out of order, and a resume from before it on the same spear', async (t) => {
  const server = gruServer({
    userPlace: { epoch: '100', position: 5 },
    groupPlace: () => ({ epoch: '200', position: 3 }),
    silent: (s) => server.io.sockets.indexOf(s) === 1,
  });
  const client = makeClient(t, server, { groups: [10] });
  await live(client);
  const [first] = server.io.sockets;
  first.fire('msg', msg('u:1', '100', 6));
  first.fire('msg', msg('u:1', '100', 9)); // 7 and 8 never came (dropped for a full send queue)
  first.fire('msg', msg('u:1', '100', 10)); // after the gap, on the same connection: not delivered
  assert.deepEqual(client.messages.map((m) => m.content), ['u:1#6']);
  assert.equal(client.errors.length, 1);
  const [gap] = client.errors;
  assert.equal(gap.code, 'gap');
  assert.deepEqual(gap.data, { channel: 'u:1', epoch: '100', position: 6, received: 9, missing: 2 });
  assert.equal(client.stats.gaps, 1);
  assert.equal(first.disconnected, true);
  assert.deepEqual(client.states[2], { state: 'reconnecting', reason: 'gap' });
  assert.deepEqual(client.positions()['u:1'], { epoch: '100', position: 6 }, 'the place stays before the gap');

  await waitFor('a second connection', () => server.io.sockets.length === 2);
  const second = server.io.sockets[1];
  assert.equal(second.url, 'http://s1', 'the same spear: the gap was this connection\'s, not the spear\'s');
  assert.deepEqual(second.opts.auth.resume, { 'u:1': { epoch: '100', position: 6 }, 'g:10': { epoch: '200', position: 3 } });
  second.fire('connect');
  for (const p of [7, 8, 9, 10]) second.fire('msg', msg('u:1', '100', p));
  second.fire('auth_result', ok({ userId: 1, positions: { 'u:1': { epoch: '100', position: 10 } } }));
  await live(client);
  second.fire('msg', msg('u:1', '100', 11));
  assert.deepEqual(client.messages.map((m) => `${m.content}${m.replayed ? ' replayed' : ''}`), [
    'u:1#6', 'u:1#7 replayed', 'u:1#8 replayed', 'u:1#9 replayed', 'u:1#10 replayed', 'u:1#11',
  ]);
  assert.equal(client.errors.length, 1);
});

test('a gap in a group during its replay ends the attempt, and the next one resumes it', async (t) => {
  const server = gruServer({ userPlace: { epoch: '100', position: 0 }, groupPlace: () => ({ epoch: '200', position: 9 }) });
  const store = memoryStore();
  store.setItem('gru-client:1:positions', JSON.stringify({ v: 1, channels: { 'g:10': { epoch: '200', position: 3 } } }));
  hookEmits(server, (s, i, e, answer) => {
    if (e.event === 'join' && i === 0) {
      s.fire('msg', msg('g:10', '200', 4));
      s.fire('msg', msg('g:10', '200', 6)); // 5 is missing
      return; // the connection is gone: no answer
    }
    if (e.event === 'join') for (const p of [5, 6, 7, 8, 9]) s.fire('msg', msg('g:10', '200', p));
    answer(e);
  });
  const client = makeClient(t, server, { store, groups: [10] });
  await live(client);
  assert.equal(client.stats.gaps, 1);
  assert.deepEqual(server.io.sockets.map((s) => s.url), ['http://s1', 'http://s1']);
  assert.deepEqual(server.io.sockets[1].opts.auth.resume['g:10'], { epoch: '200', position: 4 });
  assert.deepEqual(client.messages.map((m) => m.position), [4, 5, 6, 7, 8, 9]);
  assert.ok(client.messages.every((m) => m.replayed));
  assert.deepEqual(client.states.map((s) => s.state), ['connecting', 'live'], 'never live in between');
});

test('a group joined on a live connection whose first message jumps past its stored place: a local resync, no reconnect', async (t) => {
  const store = memoryStore();
  store.setItem('gru-client:1:positions', JSON.stringify({ v: 1, channels: { 'g:11': { epoch: '200', position: 2 } } }));
  const server = gruServer({ groupPlace: () => ({ epoch: '200', position: 9 }) });
  hookEmits(server, (s, i, e, answer) => {
    // The group is live at once: a message may come before the join's answer.
    if (e.event === 'join') s.fire('msg', msg('g:11', '200', 10));
    answer(e);
  });
  const client = makeClient(t, server, { store });
  await live(client);
  await client.join(11);
  assert.deepEqual(client.resyncs, [{ channel: 'g:11', epoch: '200', position: 9, reason: 'gap', local: true }]);
  assert.deepEqual(client.messages.map((m) => m.content), ['g:11#10']);
  assert.equal(client.stats.gaps, 0);
  assert.equal(server.io.sockets.length, 1);
  assert.deepEqual(client.positions()['g:11'], { epoch: '200', position: 10 });
});

test('server_shutdown and server_disconnect are told as `notice` before the client acts on them', async (t) => {
  const server = gruServer();
  const client = makeClient(t, server);
  await live(client);
  const order = [];
  client.on('notice', (n) => order.push(`notice ${n.event}`));
  client.on('state', (s) => order.push(`state ${s.state}`));
  server.io.sockets[0].fire('server_shutdown', JSON.stringify({ reconnect: 'ticket', msg: 'this spear is being drained: reconnect through ticket' }));
  assert.deepEqual(client.notices[0], {
    event: 'server_shutdown',
    msg: 'this spear is being drained: reconnect through ticket',
    reconnect: 'ticket',
    payload: { reconnect: 'ticket', msg: 'this spear is being drained: reconnect through ticket' },
    url: 'http://s1',
  });
  await waitFor('live again', () => client.stats.reconnects === 1 && client.state === 'live');
  const payload = { success: false, errorCode: 1003, msg: 'account suspended', data: { reason: 'by_server' } };
  server.io.sockets[1].fire('server_disconnect', payload);
  assert.deepEqual(client.notices[1], {
    event: 'server_disconnect', msg: 'account suspended', reason: 'by_server', errorCode: 1003, payload, url: 'http://s1',
  });
  assert.deepEqual(order, ['notice server_shutdown', 'state reconnecting', 'state live', 'notice server_disconnect', 'state closed']);
});

test('positions reach the store at most every storeFlushMs, and at once with storeFlushMs 0', async (t) => {
  const counting = () => {
    const mem = memoryStore();
    const store = { writes: 0, getItem: mem.getItem, setItem: (k, v) => { store.writes += 1; mem.setItem(k, v); } };
    return store;
  };
  const flood = (client, server, n) => {
    for (let p = 1; p <= n; p += 1) server.io.sockets[0].fire('msg', msg('u:1', '100', p));
    assert.equal(client.messages.length, n);
  };
  const lazyStore = counting();
  const lazyServer = gruServer({ userPlace: { epoch: '100', position: 0 } });
  const lazy = makeClient(t, lazyServer, { store: lazyStore, storeFlushMs: 40 });
  await live(lazy);
  flood(lazy, lazyServer, 500);
  assert.equal(lazyStore.writes, 0, 'nothing yet');
  await waitFor('the flush', () => lazyStore.writes > 0);
  assert.equal(lazyStore.writes, 1, 'one write for the starting point and 500 messages');
  assert.deepEqual(JSON.parse(lazyStore.getItem('gru-client:1:positions')).channels['u:1'], { epoch: '100', position: 500 });

  const eagerStore = counting();
  const eagerServer = gruServer({ userPlace: { epoch: '100', position: 0 } });
  const eager = makeClient(t, eagerServer, { store: eagerStore, storeFlushMs: 0 });
  await live(eager);
  flood(eager, eagerServer, 50);
  assert.equal(eagerStore.writes, 51, 'write-through: the starting point, then every message');
});

test('in a browser, positions waiting for their flush are written when the page is hidden or goes away', async (t) => {
  const hadWindow = 'window' in globalThis;
  const hadDocument = 'document' in globalThis;
  globalThis.window = new EventTarget();
  globalThis.document = { visibilityState: 'visible' };
  t.after(() => {
    if (!hadWindow) delete globalThis.window;
    if (!hadDocument) delete globalThis.document;
  });
  const mem = memoryStore();
  const stored = () => {
    const raw = mem.getItem('gru-client:1:positions');
    return raw ? JSON.parse(raw).channels['u:1'].position : null;
  };
  const server = gruServer({ userPlace: { epoch: '100', position: 0 } });
  const client = makeClient(t, server, { store: mem, storeFlushMs: 60000 });
  await live(client);
  server.io.sockets[0].fire('msg', msg('u:1', '100', 1));
  window.dispatchEvent(new Event('visibilitychange'));
  assert.equal(stored(), null, 'visible: nothing written');
  document.visibilityState = 'hidden';
  window.dispatchEvent(new Event('visibilitychange'));
  assert.equal(stored(), 1, 'hidden: written');
  server.io.sockets[0].fire('msg', msg('u:1', '100', 2));
  window.dispatchEvent(new Event('pagehide'));
  assert.equal(stored(), 2, 'pagehide: written');
  await client.close();
  // Closed: the listeners are gone (a later event writes nothing, and throws nothing).
  mem.setItem('gru-client:1:positions', '');
  window.dispatchEvent(new Event('pagehide'));
  await sleep(5);
  assert.equal(mem.getItem('gru-client:1:positions'), '');
});
