'use strict';
// A fake socket.io client and a fake ticket, enough to drive the client without a server.
// A FakeSocket records what the client emits (with its ack callback) and lets a test fire
// server events at it; `fakeIo(onSocket)` is an `io` factory that hands each new socket to
// `onSocket` (the test's "server"). `gruServer()` is a scripted spear that answers like gru.

/**
 * What the client reads of socket.io's engine (`socket.io.engine`): its transport's name, its
 * `upgrade` event, and `transport.close()` (dropConnection), which the socket sees as a lost
 * transport (`disconnect` with `transport close`).
 */
class FakeEngine {
  constructor(socket, name) {
    this.socket = socket;
    this.readyState = 'open';
    this.handlers = new Map();
    this.transport = this._transport(name);
  }

  _transport(name) {
    return {
      name,
      close: () => {
        if (this.readyState !== 'open') return;
        this.readyState = 'closed';
        this.socket.fire('disconnect', 'transport close');
      },
    };
  }

  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(fn);
    return this;
  }

  off(event, fn) {
    this.handlers.set(event, (this.handlers.get(event) || []).filter((f) => f !== fn));
    return this;
  }

  /** socket.io upgraded to `name` (`websocket`). */
  upgrade(name) {
    this.transport = this._transport(name);
    for (const fn of [...(this.handlers.get('upgrade') || [])]) fn(this.transport);
  }
}

class FakeSocket {
  constructor(url, opts) {
    this.url = url;
    this.opts = opts;
    this.handlers = new Map();
    this.emitted = [];
    this.disconnected = false;
    this.onEmit = null;
    this.io = { engine: new FakeEngine(this, (opts && opts.transports && opts.transports[0]) || 'polling') };
  }

  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(fn);
    return this;
  }

  off(event, fn) {
    if (event === undefined) this.handlers.clear();
    else if (fn === undefined) this.handlers.delete(event);
    else this.handlers.set(event, (this.handlers.get(event) || []).filter((f) => f !== fn));
    return this;
  }

  emit(event, payload, ack) {
    const entry = { event, payload, ack };
    this.emitted.push(entry);
    if (this.onEmit) this.onEmit(entry);
    return this;
  }

  disconnect() {
    this.disconnected = true;
    return this;
  }

  close() {
    return this.disconnect();
  }

  /** The server side: fires `event` at the client's listeners. */
  fire(event, ...args) {
    for (const fn of [...(this.handlers.get(event) || [])]) fn(...args);
  }

  /** What the client emitted of `event`. */
  sent(event) {
    return this.emitted.filter((e) => e.event === event);
  }
}

function fakeIo(onSocket) {
  const sockets = [];
  const io = (url, opts) => {
    const s = new FakeSocket(url, opts);
    sockets.push(s);
    if (onSocket) onSocket(s);
    return s;
  };
  io.sockets = sockets;
  return io;
}

const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, probe, ms = 2000) {
  const start = Date.now();
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

function jsonResponse(status, body, headers = {}) {
  return {
    status,
    headers: { get: (k) => headers[k.toLowerCase()] ?? null },
    text: async () => JSON.stringify(body),
  };
}

/**
 * A fake ticket (fetch): each call answers a modern ticket for `nodes` (URLs) with token
 * `t<n>` and `expires_at` `expiresIn` seconds ahead; `calls` records the requested URLs.
 * `answer(n)` may override the n-th answer (return a response).
 */
function fakeTicket({ nodes = ['http://s1', 'http://s2', 'http://s3'], expiresIn = 3600, answer } = {}) {
  const calls = [];
  const fetch = async (url) => {
    calls.push(url);
    const n = calls.length;
    const custom = answer && answer(n, url);
    if (custom) return custom;
    const now = Math.floor(Date.now() / 1000);
    const [first, ...rest] = typeof nodes === 'function' ? nodes(n) : nodes;
    return jsonResponse(200, {
      spear: { id: 4, name: 'node_4', url: first },
      backups: rest.map((url, i) => ({ id: 5 + i, name: `node_${5 + i}`, url })),
      token: `t${n}`,
      issued_at: now,
      expires_at: now + (typeof expiresIn === 'function' ? expiresIn(n) : expiresIn),
    });
  };
  fetch.calls = calls;
  return fetch;
}

/**
 * A scripted spear for every socket: connects, answers `auth_result` (with `userPlace`, the
 * user channel's place), answers `join` with `groupPlace(gid)`, `msg` with `onMsg(payload,
 * socket)` (default: a success ack with increasing positions per channel), `online` and
 * `leave`. `refuse(socket)` returning a string makes the connection fail with that
 * connect_error.
 */
function gruServer({ uid = 1, userPlace = { epoch: '100', position: 0 }, groupPlace, onMsg, refuse, silent } = {}) {
  const heads = new Map();
  let nextId = 1000;
  const defaultAck = (p) => {
    const channel = p.type === 0 ? `u:${p.target.id}` : `g:${p.target.id}`;
    const position = (heads.get(channel) || 0) + 1;
    heads.set(channel, position);
    nextId += 1;
    return { success: true, errorCode: 0, msg: 'received', data: { id: nextId, createTime: Date.now(), channel, epoch: '100', position } };
  };
  const server = {
    heads,
    io: null,
    onSocket(s) {
      s.onEmit = ({ event, payload, ack }) => {
        const reply = (r) => { if (ack) setImmediate(() => ack(r)); };
        if (event === 'join') {
          const positions = {};
          for (const g of payload.groups) {
            const at = groupPlace ? groupPlace(g, s) : undefined;
            if (at) positions[`g:${g}`] = at;
          }
          reply({ success: true, errorCode: 0, msg: 'ok', data: { groups: payload.groups, positions } });
        } else if (event === 'leave') {
          reply({ success: true, errorCode: 0, msg: 'ok', data: { groups: payload.groups } });
        } else if (event === 'online') {
          reply({ success: true, errorCode: 0, msg: 'ok', data: { groupId: payload.groupId, userIds: [uid] } });
        } else if (event === 'msg') {
          const r = onMsg ? onMsg(payload, s, defaultAck) : defaultAck(payload);
          if (r !== undefined) reply(r);
        } else if (event === 'auth') {
          reply({ success: true, errorCode: 0, msg: 'ok', data: { userId: uid } });
        }
      };
      if (silent && silent(s)) return;
      setImmediate(() => {
        const refused = refuse && refuse(s);
        if (refused) {
          s.fire('connect_error', new Error(refused));
          return;
        }
        s.fire('connect');
        const positions = userPlace ? { [`u:${uid}`]: typeof userPlace === 'function' ? userPlace(s) : userPlace } : undefined;
        s.fire('auth_result', { success: true, errorCode: 0, msg: 'ok', data: { userId: uid, ...(positions ? { positions } : {}) } });
      });
    },
  };
  server.io = fakeIo((s) => server.onSocket(s));
  return server;
}

/**
 * A client of `server` with fast backoff that records its events (`errors`, `states`,
 * `messages`, `resyncs`, `connections`, `notices`), closed by the test `t`'s end.
 */
function makeClient(t, server, opts = {}) {
  // Required here, not at the top: src/index does not need the fakes, the fakes need it.
  const { createClient } = require('../src/index');
  const client = createClient({
    ticketUrl: 'http://ticket.test:8080',
    userId: 1,
    name: 'alice',
    token1: 'T1',
    io: server.io,
    fetch: opts.fetch || fakeTicket(),
    backoffMinMs: 1,
    backoffMaxMs: 5,
    ...opts,
  });
  const record = { errors: 'error', states: 'state', messages: 'message', resyncs: 'resync', connections: 'connection', notices: 'notice' };
  for (const [list, event] of Object.entries(record)) {
    client[list] = [];
    client.on(event, (v) => client[list].push(v));
  }
  t.after(() => client.close());
  return client;
}

/** Resolves once `client` is live. */
const live = (client) => waitFor('the client to be live', () => client.state === 'live');

module.exports = { FakeSocket, FakeEngine, fakeIo, fakeTicket, gruServer, jsonResponse, makeClient, live, tick, sleep, waitFor };
