'use strict';
// The client against a fake socket.io and a fake ticket: what it presents, what it keeps, when
// it reconnects and where, and what its sends become.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { createClient, memoryStore } = require('../src/index');
const { gruServer, fakeTicket, jsonResponse, makeClient, live, sleep, waitFor } = require('./fake');

const stateNames = (client) => client.states.map((s) => s.state);
const msg = (channel, epoch, position, content = `${channel}#${position}`) => ({
  id: position, createTime: 1, fromId: 2, msgType: 0, target: { id: '1', type: -1 }, content, expireTime: 0, channel, epoch, position,
});

test('connects with the handshake auth and socket.io\'s own reconnection off, joins its groups, goes live', async (t) => {
  const server = gruServer({ groupPlace: () => ({ epoch: '200', position: 3 }) });
  const fetch = fakeTicket();
  const client = makeClient(t, server, { groups: [10, '11'], fetch, ioOptions: { path: '/socket.io' } });
  await live(client);
  assert.deepEqual(stateNames(client), ['connecting', 'live']);
  const [s] = server.io.sockets;
  assert.equal(s.url, 'http://s1');
  assert.deepEqual(s.opts.auth, { token: 't1' }, 'no resume without a known place');
  assert.equal(s.opts.reconnection, false);
  assert.equal(s.opts.forceNew, true);
  assert.deepEqual(s.opts.transports, ['websocket', 'polling']);
  assert.equal(s.opts.path, '/socket.io');
  assert.deepEqual(s.sent('join').map((e) => e.payload), [{ groups: [10, 11] }]);
  const asked = new URL(fetch.calls[0]);
  assert.equal(asked.pathname, '/api/v1/ticket');
  assert.equal(asked.searchParams.get('token'), 'T1');
  assert.deepEqual(client.positions(), {
    'u:1': { epoch: '100', position: 0 }, 'g:10': { epoch: '200', position: 3 }, 'g:11': { epoch: '200', position: 3 },
  }, 'the starting points from auth_result and join');
  assert.equal(client.stats.connects, 1);
  assert.equal(client.stats.reconnects, 0);
});

test('duplicates are dropped and counted; positions follow every message', async (t) => {
  const server = gruServer({ userPlace: { epoch: '100', position: 5 }, groupPlace: () => ({ epoch: '200', position: 3 }) });
  const client = makeClient(t, server, { groups: [10] });
  await live(client);
  const [s] = server.io.sockets;
  s.fire('msg', msg('u:1', '100', 6));
  s.fire('msg', msg('u:1', '100', 6));
  s.fire('msg', msg('u:1', '100', 5));
  s.fire('msg', msg('g:10', '200', 4));
  s.fire('msg', JSON.stringify(msg('g:10', '200', 5)));
  s.fire('msg', msg('g:10', '200', 3));
  s.fire('msg', { content: 'no place (history off)', fromId: 2 });
  assert.deepEqual(client.messages.map((m) => m.content), ['u:1#6', 'g:10#4', 'g:10#5', 'no place (history off)']);
  assert.equal(client.stats.duplicatesDropped, 3);
  assert.deepEqual(client.positions(), { 'u:1': { epoch: '100', position: 6 }, 'g:10': { epoch: '200', position: 5 } });
});

test('a message of a new epoch is taken', async (t) => {
  const server = gruServer({ userPlace: { epoch: '100', position: 5 } });
  const client = makeClient(t, server);
  await live(client);
  server.io.sockets[0].fire('msg', msg('u:1', '300', 1));
  assert.equal(client.messages.length, 1);
  assert.deepEqual(client.positions()['u:1'], { epoch: '300', position: 1 });
});

test('positions are persisted in the store and a reload presents them in the handshake', async (t) => {
  const store = memoryStore();
  const server = gruServer({ userPlace: { epoch: '100', position: 5 }, groupPlace: () => ({ epoch: '200', position: 3 }) });
  const first = makeClient(t, server, { groups: [10], store });
  await live(first);
  server.io.sockets[0].fire('msg', msg('u:1', '100', 6));
  server.io.sockets[0].fire('msg', msg('g:10', '200', 4));
  assert.equal(store.getItem('gru-client:1:positions'), null, 'not written yet: within storeFlushMs');
  await first.close();
  assert.deepEqual(JSON.parse(store.getItem('gru-client:1:positions')).channels,
    { 'u:1': { epoch: '100', position: 6 }, 'g:10': { epoch: '200', position: 4 } }, 'close() wrote them');

  // The page reloads: a new client over the same store.
  const second = makeClient(t, server, { groups: [10], store });
  await live(second);
  const s = server.io.sockets[1];
  assert.deepEqual(s.opts.auth, {
    token: 't1',
    resume: { 'u:1': { epoch: '100', position: 6 }, 'g:10': { epoch: '200', position: 4 } },
  });
  // The replay of what was missed, then a copy of what the store had already: dropped.
  s.fire('msg', msg('g:10', '200', 4));
  s.fire('msg', msg('g:10', '200', 5));
  assert.deepEqual(second.messages.map((m) => m.content), ['g:10#5']);
  await second.close();

  // Another user on the same store keeps its own key.
  const bob = makeClient(t, gruServer({ uid: 2 }), { userId: 2, name: 'bob', store, storeFlushMs: 0 });
  await live(bob);
  assert.equal(bob.stats.connects, 1);
  assert.ok(store.getItem('gru-client:2:positions'), 'storeFlushMs 0: written at once');
  assert.deepEqual(JSON.parse(store.getItem('gru-client:1:positions')).channels['g:10'], { epoch: '200', position: 5 });
});

test('an async store is read before connecting', async (t) => {
  const data = new Map([['gru-client:1:positions', JSON.stringify({ v: 1, channels: { 'u:1': { epoch: '9', position: 41 } } })]]);
  const store = {
    getItem: (k) => new Promise((r) => setTimeout(() => r(data.get(k) ?? null), 5)),
    setItem: (k, v) => new Promise((r) => setTimeout(() => { data.set(k, v); r(); }, 5)),
  };
  const server = gruServer({ userPlace: { epoch: '9', position: 43 } });
  const client = makeClient(t, server, { store });
  await live(client);
  assert.deepEqual(server.io.sockets[0].opts.auth.resume, { 'u:1': { epoch: '9', position: 41 } });
});

test('a resync sets the channel\'s place, is emitted, and is what the next connection presents', async (t) => {
  const server = gruServer({ userPlace: { epoch: '100', position: 5 }, groupPlace: () => ({ epoch: '200', position: 3 }) });
  const client = makeClient(t, server, { groups: [10] });
  await live(client);
  const s = server.io.sockets[0];
  const r = { channel: 'g:10', epoch: '201', position: 0, reason: 'epoch' };
  s.fire('resync', r);
  assert.deepEqual(client.resyncs, [r]);
  assert.equal(client.stats.resyncs, 1);
  assert.deepEqual(client.positions()['g:10'], { epoch: '201', position: 0 });
  s.fire('msg', msg('g:10', '201', 1));
  s.fire('msg', msg('g:10', '201', 1));
  assert.equal(client.messages.length, 1);
  s.fire('resync', { channel: 'g:10', epoch: '201', position: 7, reason: 'retention' });

  s.fire('disconnect', 'transport close');
  await waitFor('a second connection', () => server.io.sockets.length === 2);
  assert.deepEqual(server.io.sockets[1].opts.auth.resume, {
    'u:1': { epoch: '100', position: 5 }, 'g:10': { epoch: '201', position: 7 },
  });
  await live(client);
  assert.equal(client.stats.reconnects, 1);
});

test('sends made before live wait; one in flight when the connection drops goes again with the same clientMsgId', async (t) => {
  let answer = false;
  const server = gruServer({ onMsg: (p, s, ack) => (answer ? ack(p) : undefined) });
  const client = makeClient(t, server);
  const sending = client.send({ to: { user: 2 }, content: 'hello' });
  assert.equal(typeof sending.clientMsgId, 'string');
  await live(client);
  const first = server.io.sockets[0];
  await waitFor('the send to go out', () => first.sent('msg').length === 1);
  assert.deepEqual(first.sent('msg')[0].payload, { type: 0, target: { id: 2 }, content: 'hello', clientMsgId: sending.clientMsgId });

  answer = true;
  first.fire('disconnect', 'transport close');
  await waitFor('a second connection', () => server.io.sockets.length === 2);
  const ack = await sending;
  assert.deepEqual(Object.keys(ack).sort(), ['channel', 'createTime', 'epoch', 'id', 'position']);
  const second = server.io.sockets[1];
  assert.equal(second.sent('msg')[0].payload.clientMsgId, sending.clientMsgId);
  assert.equal(client.stats.sendRetries, 1);
  assert.equal(client.stats.reconnects, 1);
});

test('a 1001 is retried on the live connection; 1002 and 1003 reject', async (t) => {
  const seen = new Map();
  const server = gruServer({
    onMsg: (p, s, ack) => {
      seen.set(p.clientMsgId, (seen.get(p.clientMsgId) || 0) + 1);
      if (p.content === 'forbidden') return { success: false, errorCode: 1002, msg: 'group 99 is not allowed for this user' };
      if (p.content === 'bad') return { success: false, errorCode: 1003, msg: 'clientMsgId already used for another message' };
      if (p.content === 'flaky' && seen.get(p.clientMsgId) < 3) return { success: false, errorCode: 1001, msg: 'no message id: ids unavailable; retry later' };
      return ack(p);
    },
  });
  const client = makeClient(t, server, { maxInFlight: 4 });
  await live(client);
  const flaky = client.send({ to: { group: 10 }, content: 'flaky' });
  const forbidden = client.send({ to: { group: 99 }, content: 'forbidden' });
  const bad = client.send({ to: { user: 2 }, content: 'bad', clientMsgId: 'mine-1' });
  await assert.rejects(forbidden, (e) => e.code === 'not_allowed' && e.errorCode === 1002);
  await assert.rejects(bad, (e) => e.code === 'bad_request' && e.errorCode === 1003);
  assert.equal((await flaky).channel, 'g:10');
  assert.equal(seen.get(flaky.clientMsgId), 3);
  assert.equal(seen.get('mine-1'), 1, 'a final error is not retried');
  assert.equal(client.stats.sendRetries, 2);
  await assert.rejects(client.send({ to: { user: 2 } }), /content/);
});

test('server_shutdown {reconnect: "ticket"}: a fresh ticket at once, then its nodes in order, with backoff; degraded after failed attempts', async (t) => {
  const fetch = fakeTicket({ nodes: ['http://s1', 'http://s2', 'http://s3'] });
  const server = gruServer({ refuse: (s) => (server.io.sockets.indexOf(s) === 1 || server.io.sockets.indexOf(s) === 2 ? 'this spear is being drained: reconnect through ticket' : null) });
  const client = makeClient(t, server, { fetch, degradedAfter: 2 });
  await live(client);
  server.io.sockets[0].fire('server_shutdown', { reconnect: 'ticket', msg: 'the spear is stopping' });
  assert.equal(server.io.sockets[0].disconnected, true, 'the client closes the old socket itself');
  await waitFor('a fourth connection', () => server.io.sockets.length === 4);
  await live(client);
  // The spear said where to go: through ticket (not to the old ticket's backups, which may
  // be full or the next to go), whose answer's nodes are then tried in order.
  assert.deepEqual(server.io.sockets.map((s) => s.url), ['http://s1', 'http://s1', 'http://s2', 'http://s3']);
  assert.equal(fetch.calls.length, 2, 'one fresh ticket, at once');
  assert.equal(server.io.sockets[3].opts.auth.token, 't2');
  assert.deepEqual(stateNames(client), ['connecting', 'live', 'reconnecting', 'degraded', 'live']);
  assert.equal(client.states[2].reason, 'server_shutdown');
  assert.equal(client.errors.filter((e) => e.code === 'connect').length, 2);
});

test('a lost connection goes to the ticket\'s next node; a refused token gets a fresh ticket at once', async (t) => {
  const fetch = fakeTicket({ nodes: ['http://s1', 'http://s2', 'http://s3'] });
  const server = gruServer({ refuse: (s) => (server.io.sockets.indexOf(s) === 1 ? '1003: invalid token: token expired' : null) });
  const client = makeClient(t, server, { fetch });
  await live(client);
  server.io.sockets[0].fire('disconnect', 'ping timeout');
  await waitFor('a third connection', () => server.io.sockets.length === 3);
  await live(client);
  assert.deepEqual(server.io.sockets.map((s) => s.url), ['http://s1', 'http://s2', 'http://s1']);
  assert.equal(fetch.calls.length, 2);
  assert.equal(client.states[2].reason, 'ping timeout');
});

test('server_disconnect by_server: closed with the reason, no reconnect, sends rejected', async (t) => {
  const server = gruServer({ onMsg: () => undefined });
  const client = makeClient(t, server);
  await live(client);
  const pending = client.send({ to: { user: 2 }, content: 'never acked' });
  server.io.sockets[0].fire('server_disconnect', { success: false, errorCode: 1003, msg: 'account suspended', data: { reason: 'by_server' } });
  server.io.sockets[0].fire('disconnect', 'io server disconnect');
  await assert.rejects(pending, (e) => e.code === 'closed');
  assert.equal(client.state, 'closed');
  assert.deepEqual(client.states.at(-1), { state: 'closed', reason: 'by_server', msg: 'account suspended' });
  await sleep(30);
  assert.equal(server.io.sockets.length, 1, 'no reconnect');
  await assert.rejects(client.send({ to: { user: 2 }, content: 'x' }), (e) => e.code === 'closed');
  await assert.rejects(client.online(10), (e) => e.code === 'closed');
});

test('server_disconnect token_expired: reconnect with a fresh ticket', async (t) => {
  const fetch = fakeTicket();
  const server = gruServer();
  const client = makeClient(t, server, { fetch });
  await live(client);
  server.io.sockets[0].fire('server_disconnect', { success: false, errorCode: 1003, msg: 'the token expired', data: { reason: 'token_expired', reconnect: 'ticket' } });
  await waitFor('a second connection', () => server.io.sockets.length === 2);
  await live(client);
  assert.equal(fetch.calls.length, 2);
  assert.equal(server.io.sockets[1].opts.auth.token, 't2');
  assert.deepEqual(client.states[2], { state: 'reconnecting', reason: 'token_expired' });
});

test('the token is renewed with auth on the live connection before it expires', async (t) => {
  const fetch = fakeTicket({ expiresIn: (n) => (n === 1 ? 0.6 : 3600) });
  const server = gruServer();
  const client = makeClient(t, server, { fetch, minTokenLifeMs: 100, token1: undefined, getToken1: async () => 'fresh-T1' });
  await live(client);
  await waitFor('a renewal', () => client.stats.renewals === 1);
  const s = server.io.sockets[0];
  assert.deepEqual(s.sent('auth').map((e) => e.payload), [{ id: 1, name: 'alice', appType: 'web', token2: 't2' }]);
  assert.equal(new URL(fetch.calls[1]).searchParams.get('token'), 'fresh-T1');
  assert.equal(server.io.sockets.length, 1, 'the same connection');
  assert.equal(client.state, 'live');
});

test('a renewal the spear refuses moves the client to the fresh ticket\'s spear', async (t) => {
  const fetch = fakeTicket({ expiresIn: (n) => (n === 1 ? 0.6 : 3600), nodes: (n) => (n === 1 ? ['http://s1'] : ['http://s9']) });
  const server = gruServer();
  const base = server.onSocket;
  server.onSocket = (s) => {
    base(s);
    const answer = s.onEmit;
    s.onEmit = (e) => (e.event === 'auth'
      ? setImmediate(() => e.ack({ success: false, errorCode: 1003, msg: 'invalid token: not for this spear' }))
      : answer(e));
  };
  const client = makeClient(t, server, { fetch, minTokenLifeMs: 100 });
  await live(client);
  await waitFor('a second connection', () => server.io.sockets.length === 2);
  await live(client);
  assert.equal(server.io.sockets[1].url, 'http://s9');
  assert.equal(server.io.sockets[1].opts.auth.token, 't2');
  assert.equal(fetch.calls.length, 2);
});

test('a group joined on a live connection: seeded, or a local resync when its stored place was not presented', async (t) => {
  const store = memoryStore();
  store.setItem('gru-client:1:positions', JSON.stringify({ v: 1, channels: { 'g:11': { epoch: '200', position: 2 } } }));
  const server = gruServer({ groupPlace: (g) => (g === 11 ? { epoch: '200', position: 9 } : { epoch: '300', position: 0 }) });
  const client = makeClient(t, server, { store });
  await live(client);
  const joined = await client.join([11, 12]);
  assert.deepEqual(joined.groups, [11, 12]);
  assert.deepEqual(client.groups, [11, 12]);
  assert.deepEqual(client.resyncs, [{ channel: 'g:11', epoch: '200', position: 9, reason: 'gap', local: true }]);
  assert.deepEqual(client.positions()['g:12'], { epoch: '300', position: 0 });
  assert.deepEqual(await client.online(11), { groupId: 11, userIds: [1] });
  assert.deepEqual(await client.leave(12), { groups: [12] });
  assert.deepEqual(client.groups, [11]);
  assert.equal(client.positions()['g:12'], undefined, 'a left group\'s place is forgotten');
});

test('a group refused at connect is dropped; the others are joined', async (t) => {
  const server = gruServer({ groupPlace: () => ({ epoch: '1', position: 0 }) });
  const base = server.onSocket;
  server.onSocket = (s) => {
    base(s);
    const answer = s.onEmit;
    s.onEmit = (e) => (e.event === 'join' && e.payload.groups.includes(99)
      ? setImmediate(() => e.ack({ success: false, errorCode: 1002, msg: 'group 99 is not allowed for this user' }))
      : answer(e));
  };
  const client = makeClient(t, server, { groups: [10, 99] });
  await live(client);
  assert.deepEqual(client.groups, [10]);
  assert.deepEqual(server.io.sockets[0].sent('join').map((e) => e.payload.groups), [[10, 99], [10], [99]]);
  assert.ok(client.errors.some((e) => e.group === 99 && e.code === 'not_allowed'));
});

test('a static token1 that ticket refuses closes the client; getToken1 is asked again', async (t) => {
  const refused = () => jsonResponse(401, { error: { code: 'bad_token', legacy_code: 711, message: 'token1 invalid or expired' } });
  const staticClient = makeClient(t, gruServer(), { fetch: fakeTicket({ answer: refused }) });
  await waitFor('closed', () => staticClient.state === 'closed');
  assert.equal(staticClient.states.at(-1).reason, 'token1_invalid');

  let minted = 0;
  const fetch = fakeTicket({ answer: (n) => (n < 3 ? refused() : undefined) });
  const minting = makeClient(t, gruServer(), { fetch, token1: undefined, getToken1: () => { minted += 1; return `T1-${minted}`; } });
  await live(minting);
  assert.equal(minted, 3);
  assert.equal(new URL(fetch.calls[2]).searchParams.get('token'), 'T1-3');
});

test('ticket\'s 429 is waited out (retry_after_ms)', async (t) => {
  const fetch = fakeTicket({ answer: (n) => (n === 1 ? jsonResponse(429, { error: { code: 'rate_limited', message: 'slow', retry_after_ms: 60 } }) : undefined) });
  const started = Date.now();
  const client = makeClient(t, gruServer(), { fetch });
  await live(client);
  assert.ok(Date.now() - started >= 55, 'waited the server\'s retry_after_ms, not the 1–5 ms backoff');
});

test('no auth_result in time: the attempt is abandoned and the next node tried', async (t) => {
  const server = gruServer({ silent: (s) => server.io.sockets.indexOf(s) === 0 });
  const client = makeClient(t, server, { connectTimeoutMs: 30 });
  await live(client);
  assert.deepEqual(server.io.sockets.map((s) => s.url), ['http://s1', 'http://s2']);
  assert.equal(server.io.sockets[0].disconnected, true);
});

test('close() rejects pending sends, closes the socket and stops for good', async (t) => {
  const server = gruServer({ onMsg: () => undefined });
  const client = makeClient(t, server);
  await live(client);
  const pending = client.send({ to: { user: 2 }, content: 'x' });
  await client.close();
  await assert.rejects(pending, (e) => e.code === 'closed');
  assert.equal(server.io.sockets[0].disconnected, true);
  assert.deepEqual(client.states.at(-1), { state: 'closed', reason: 'closed' });
  await sleep(20);
  assert.equal(server.io.sockets.length, 1);
});

test('the ES module entry exports the same API', async () => {
  const esm = await import('../index.mjs');
  const cjs = require('../src/index');
  assert.equal(esm.createClient, cjs.createClient);
  assert.equal(esm.default.GruError, cjs.GruError);
});
