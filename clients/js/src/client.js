'use strict';
// The socket glue: ticket, connection, reconnection, renewal. The bookkeeping it drives lives in
// small pure modules (positions.js, backoff.js, sends.js, store.js); the socket.io client is
// injected (`options.io`), so the whole client runs against a fake socket in the unit tests.
//
// One connection at a time. Its life: ask ticket (or reuse the last ticket's nodes), open a
// socket.io connection with the handshake auth `{token, resume}`, wait for `auth_result`,
// join the groups (the server resumes each group at join time from the handshake's `resume`),
// then live: sends go out, the token is renewed before it expires. When the connection ends
// for any reason but a business server's `by_server` disconnect, the client goes back through
// the ticket's other nodes, then a fresh ticket, waiting an exponential backoff with jitter
// between attempts. A gap in a channel's positions (the server dropped messages for this
// connection) ends the connection too, and the next one resumes from before the gap.

const { Emitter } = require('./emitter');
const { PositionBook } = require('./positions');
const { Backoff, backoffDelay } = require('./backoff');
const { SendQueue } = require('./sends');
const { PositionStore, memoryStore, positionsKey } = require('./store');
const { fetchTicket } = require('./ticket');
const { GruError, asObject, isRateLimited } = require('./errors');

const DEFAULTS = {
  appType: 'web',
  groups: [],
  transports: ['websocket', 'polling'],
  sendTimeoutMs: 60000,
  ackTimeoutMs: 15000,
  maxInFlight: 1,
  requestTimeoutMs: 20000,
  connectTimeoutMs: 10000,
  ticketTimeoutMs: 10000,
  backoffMinMs: 200,
  backoffMaxMs: 10000,
  renewBeforeMs: 60000,
  degradedAfter: 3,
  // A ticket whose token has less than this left is not worth connecting with.
  minTokenLifeMs: 5000,
  autoConnect: true,
  // Positions reach the store at most this often (and on close, and when a page is hidden);
  // 0 writes them at every message.
  storeFlushMs: 250,
};

/** The global object's `name` (window, document), if there is one. */
function global(name) {
  return typeof globalThis !== 'undefined' ? globalThis[name] : undefined;
}

/** The name of the transport socket.io uses now under `socket` (`websocket`, `polling`), or null. */
function transportName(socket) {
  try {
    const engine = socket && socket.io && socket.io.engine;
    const name = engine && engine.transport && engine.transport.name;
    return typeof name === 'string' ? name : null;
  } catch (_) {
    return null;
  }
}

function defaultIo() {
  let mod;
  try {
    // eslint-disable-next-line global-require
    mod = require('socket.io-client');
  } catch (e) {
    throw new GruError('bad_request', 'socket.io-client is not installed: `npm install socket.io-client@4`, or pass options.io', { cause: e });
  }
  const io = typeof mod === 'function' ? mod : (mod.io || mod.default);
  if (typeof io !== 'function') throw new GruError('bad_request', 'socket.io-client exports no io()');
  return io;
}

/** A group id as the server reads it in `join`/`leave`: a whole number. */
function groupId(g) {
  const n = typeof g === 'string' && /^\d+$/.test(g) ? Number(g) : g;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new GruError('bad_request', `group ids are whole numbers below 2^53, not ${JSON.stringify(g)}`);
  }
  return n;
}

function groupList(groups) {
  const list = Array.isArray(groups) ? groups : [groups];
  return [...new Set(list.map(groupId))];
}

class GruClient extends Emitter {
  constructor(options = {}) {
    super();
    const o = { ...DEFAULTS, ...options };
    if (!o.ticketUrl) throw new TypeError('createClient: ticketUrl is required');
    if (o.userId === undefined || o.userId === null || !/^\d+$/.test(String(o.userId))) {
      throw new TypeError('createClient: userId must be a whole number or a decimal string');
    }
    if (typeof o.name !== 'string' || !o.name) throw new TypeError('createClient: name is required');
    if (!o.token1 && typeof o.getToken1 !== 'function') throw new TypeError('createClient: token1 or getToken1 is required');
    if (o.mapUrl !== undefined && typeof o.mapUrl !== 'function') throw new TypeError('createClient: mapUrl must be a function');
    this.options = o;
    this.userId = o.userId;
    this.name = o.name;
    this.appType = o.appType;
    this.userChannel = `u:${o.userId}`;
    this.stats = {
      sendRetries: 0, duplicatesDropped: 0, reconnects: 0, connects: 0, connectAttempts: 0,
      ticketRequests: 0, resyncs: 0, renewals: 0, gaps: 0,
    };
    this._io = o.io || null;
    this._random = o.random || Math.random;
    this._groups = new Set(groupList(o.groups));
    this._book = new PositionBook();
    this._store = new PositionStore(o.store || memoryStore(), o.storeKey || positionsKey(o.userId),
      (e) => this._error(new GruError('store', `positions store: ${(e && e.message) || e}`, { cause: e })),
      { flushMs: o.storeFlushMs });
    this._snapshot = () => this._book.snapshot();
    const backoffOpts = { minMs: o.backoffMinMs, maxMs: o.backoffMaxMs, random: () => this._random() };
    this._backoffOpts = backoffOpts;
    this._backoff = new Backoff(backoffOpts);
    this._sends = new SendQueue({
      sendTimeoutMs: o.sendTimeoutMs,
      ackTimeoutMs: o.ackTimeoutMs,
      maxInFlight: o.maxInFlight,
      retryDelay: (n) => backoffDelay(n, backoffOpts),
      newId: o.newClientMsgId,
      onRetry: () => { this.stats.sendRetries += 1; },
      onWithoutIds: (reply) => this._error(new GruError('no_history',
        `the server keeps no message history and refuses clientMsgIds (${reply.msg}): messages go without one, at least once instead of exactly once`,
        { errorCode: reply.errorCode })),
    });
    this._state = 'idle';
    this._stateReason = undefined;
    this._conn = null;
    this._ticket = null;
    this._untried = [];
    this._needFreshTicket = true;
    this._retryAfterMs = 0;
    this._everLive = false;
    this._closed = false;
    this._looping = false;
    this._started = null;
    this._liveWaiters = new Set();
    this._sleeps = new Set();
    this._renewTimer = null;
    this._gapTimes = [];
    this._watchPage();
    if (o.autoConnect) this.connect();
  }

  /**
   * In a browser, positions waiting for their flush are written when the page is hidden or
   * goes away (a reload, a closed tab: the page may not get another chance).
   */
  _watchPage() {
    const win = global('window');
    if (!win || typeof win.addEventListener !== 'function' || this.options.storeFlushMs <= 0) return;
    const onHide = () => this._store.flush();
    const onVisibility = () => {
      const doc = global('document');
      if (!doc || doc.visibilityState === 'hidden') this._store.flush();
    };
    win.addEventListener('pagehide', onHide);
    win.addEventListener('visibilitychange', onVisibility);
    this._unwatchPage = () => {
      win.removeEventListener('pagehide', onHide);
      win.removeEventListener('visibilitychange', onVisibility);
    };
  }

  /** The current state: idle (before connect()), connecting, live, reconnecting, degraded, closed. */
  get state() {
    return this._state;
  }

  /** The joined (or to be joined) groups. */
  get groups() {
    return [...this._groups];
  }

  /** The known place of every channel, `{channel: {epoch, position}}`. */
  positions() {
    return this._book.snapshot();
  }

  /**
   * The live connection, or null: `{url, spearUrl?, id?, name?, transport, transports, resume,
   * attempt, since}` (see the README's `connection` event).
   */
  get connection() {
    const conn = this._conn;
    return conn && conn.live ? this._connectionInfo(conn) : null;
  }

  /**
   * Drops the current connection abruptly, as a lost network would: socket.io's transport is
   * closed under it, without a socket.io disconnect, so the client goes through its usual
   * reconnection and resume. A test and debugging aid; true if there was a connection to drop.
   */
  dropConnection() {
    const conn = this._conn;
    if (!conn || conn.ended || !conn.socket || this._closed) return false;
    let engine = null;
    try {
      engine = conn.socket.io && conn.socket.io.engine;
    } catch (_) { /* not socket.io's socket */ }
    const transport = engine && engine.transport;
    if (transport && typeof transport.close === 'function' && engine.readyState === 'open') {
      // socket.io sees its transport close: 'disconnect' with reason 'transport close'.
      try {
        transport.close();
      } catch (_) { /* closed already */ }
    }
    // A socket without an engine (or one that said nothing): the same path, by hand.
    if (!conn.ended) this._end(conn, { kind: 'disconnect', reason: 'transport close' });
    return true;
  }

  /** Starts connecting (done by createClient unless autoConnect is false). Resolves once the stored positions are loaded. */
  connect() {
    if (this._started) return this._started;
    this._started = (async () => {
      const stored = await this._store.load();
      // Anything that arrived in between (nothing can: no connection yet) would win.
      this._book = new PositionBook({ ...stored, ...this._book.snapshot() });
      if (!this._closed) this._loop('connecting');
    })().catch((e) => this._error(e));
    return this._started;
  }

  /**
   * Sends `content` to `to` ({user: id} or {group: id}); resolves with the ack's data
   * `{id, createTime, channel, epoch, position}` once the server acknowledged it. The promise
   * carries its `clientMsgId`; pass one to resend a message of an earlier session.
   */
  send({ to, content, clientMsgId } = {}) {
    if (this._closed) return Promise.reject(new GruError('closed', 'send: the client is closed'));
    let added;
    try {
      added = this._sends.add({ to, content, clientMsgId });
    } catch (e) {
      return Promise.reject(e);
    }
    const { promise } = added;
    promise.clientMsgId = added.clientMsgId;
    return promise;
  }

  /** Joins groups (kept across reconnects); resolves with the join answer's data. */
  async join(groups) {
    const list = groupList(groups);
    if (list.length === 0) throw new GruError('bad_request', 'join: no group');
    const added = list.filter((g) => !this._groups.has(g));
    for (const g of list) this._groups.add(g);
    try {
      const reply = await this._request('join', { groups: list });
      this._applyAnswer(reply.data && reply.data.positions);
      return reply.data || {};
    } catch (e) {
      // All or none: what this call added is not joined.
      if (e.code !== 'timeout' && e.code !== 'closed') for (const g of added) this._groups.delete(g);
      throw e;
    }
  }

  /** Leaves groups and forgets their positions; resolves with the leave answer's data. */
  async leave(groups) {
    const list = groupList(groups);
    if (list.length === 0) throw new GruError('bad_request', 'leave: no group');
    for (const g of list) {
      this._groups.delete(g);
      this._book.forget(`g:${g}`);
    }
    this._persist();
    // Not live: the next connection joins only the groups still wanted (and leaves any that an
    // attempt under way joined from an earlier list).
    if (!(this._conn && this._conn.live)) return { groups: list };
    const reply = await this._request('leave', { groups: list });
    return reply.data || {};
  }

  /** The online members of a group, across every spear: `{groupId, userIds}`. */
  async online(group) {
    const reply = await this._request('online', { groupId: groupId(group) });
    return reply.data || {};
  }

  /** Closes the connection for good; pending sends are rejected. Resolves when positions are stored. */
  close() {
    this._shutdown('closed');
    return this._store.flushed();
  }

  // --- connection loop -------------------------------------------------------------------

  async _loop(firstState, reason) {
    if (this._looping || this._closed) return;
    this._looping = true;
    try {
      this._setState(firstState, reason);
      let attempt = 0;
      while (!this._closed) {
        if (attempt > 0 || firstState !== 'connecting') {
          const wait = Math.max(this._backoff.next(), this._retryAfterMs);
          this._retryAfterMs = 0;
          await this._sleep(wait);
          if (this._closed) return;
        }
        attempt += 1;
        if (attempt > this.options.degradedAfter) this._setState('degraded', this._stateReason);
        if (this._needFreshTicket || !this._ticket || this._untried.length === 0 || this._expiringSoon(this._ticket)) {
          let ticket;
          try {
            ticket = await this._fetchTicket();
          } catch (e) {
            if (this._closed) return;
            this._error(e);
            if (this._fatalTicketError(e)) {
              this._shutdown(e.code === 'token1' ? 'token1_invalid' : 'ticket_refused', e.message);
              return;
            }
            if (e.retryAfterMs) this._retryAfterMs = e.retryAfterMs;
            continue;
          }
          if (this._closed) return;
          this._ticket = ticket;
          this._untried = [...ticket.nodes];
          this._needFreshTicket = false;
          this.emit('ticket', {
            nodes: ticket.nodes.map((n) => ({ ...n })), expiresAtMs: ticket.expiresAtMs, legacy: ticket.legacy,
          });
        }
        const node = this._untried.shift();
        let conn = null;
        try {
          conn = await this._attempt(node, attempt);
        } catch (e) {
          // A bug or a broken io factory must not stop the loop for good.
          this._error(e instanceof GruError ? e : new GruError('connect', `connect to ${node.url}: ${(e && e.message) || e}`, { cause: e }));
          if (this._conn) this._end(this._conn, { kind: 'connect_error' });
        }
        if (conn && !conn.ended) {
          // Not looping any more before anyone hears of the live connection: a loss reported
          // from a 'state' listener must start a new loop.
          this._looping = false;
          this._goLive(conn);
          return;
        }
      }
    } finally {
      this._looping = false;
    }
  }

  _fatalTicketError(e) {
    if (e.code === 'bad_request') return true;
    // A given token1 that ticket refuses will be refused again; getToken1 may mint a new one.
    return e.code === 'token1' && typeof this.options.getToken1 !== 'function';
  }

  async _fetchTicket() {
    const o = this.options;
    let token1 = o.token1;
    if (typeof o.getToken1 === 'function') {
      try {
        token1 = await o.getToken1();
      } catch (e) {
        throw new GruError('token1', `getToken1 failed: ${(e && e.message) || e}`, { cause: e });
      }
    }
    this.stats.ticketRequests += 1;
    const ticket = await fetchTicket({
      ticketUrl: o.ticketUrl, userId: o.userId, name: o.name, appType: o.appType, token1,
      fetch: o.fetch, timeoutMs: o.ticketTimeoutMs,
    });
    if (ticket.nodes.length === 0) throw new GruError('ticket', 'ticket: no spear in the answer');
    return ticket;
  }

  _expiringSoon(ticket) {
    return ticket.expiresAtMs != null && ticket.expiresAtMs - Date.now() < this.options.minTokenLifeMs;
  }

  /** One connection attempt to `node`: the connection once it answered and joined, else null. */
  async _attempt(node, attempt = 1) {
    const o = this.options;
    const ticket = this._ticket;
    const groups = [...this._groups];
    const resume = this._book.resumeMap([this.userChannel, ...groups.map((g) => `g:${g}`)]);
    const conn = {
      node,
      url: node.url,
      name: node.name,
      attempt,
      resume,
      // Channels whose backlog the server replays on this connection (those it presents a
      // place of), until the answer that puts each live: auth_result, or the group's join.
      replaying: new Set(Object.keys(resume)),
      transports: [],
      socket: null,
      live: false,
      ended: false,
      pending: new Set(),
    };
    this._conn = conn;
    this._book.newConnection(Object.keys(resume));
    this.stats.connectAttempts += 1;
    const auth = { token: ticket.token };
    if (Object.keys(resume).length > 0) auth.resume = resume;

    const first = new Promise((resolve) => { conn.settle = resolve; });
    try {
      if (o.mapUrl) {
        const mapped = o.mapUrl(node.url, { ...node });
        if (typeof mapped !== 'string' || !mapped) throw new GruError('connect', `mapUrl(${node.url}) gave no URL`);
        conn.url = mapped;
      }
      if (!this._io) this._io = defaultIo();
      conn.socket = this._io(conn.url, {
        transports: o.transports,
        tryAllTransports: true,
        timeout: o.connectTimeoutMs,
        ...o.ioOptions,
        auth,
        reconnection: false,
        forceNew: true,
      });
    } catch (e) {
      this._conn = null;
      conn.ended = true;
      this._error(e instanceof GruError ? e : new GruError('connect', `connect to ${conn.url}: ${e.message}`, { cause: e }));
      if (e instanceof GruError && e.code === 'bad_request') this._shutdown('no_socket_io', e.message);
      return null;
    }
    this._listen(conn);
    const timer = setTimeout(() => this._end(conn, { kind: 'timeout', msg: `no auth_result within ${o.connectTimeoutMs} ms` }),
      o.connectTimeoutMs);
    const outcome = await first;
    clearTimeout(timer);
    if (!outcome.ok) {
      if (outcome.error) this._error(outcome.error);
      return null;
    }
    if (groups.length > 0 && !(await this._joinOnConnect(conn, groups))) return null;
    // Groups left while this attempt was under way.
    const gone = groups.filter((g) => !this._groups.has(g));
    if (gone.length > 0 && (await this._call(conn, 'leave', { groups: gone })).lost) return null;
    if (conn.ended || this._closed) return null;
    return conn;
  }

  /** `conn` answered and joined: sends go out, waiters go on, the token will be renewed. */
  _goLive(conn) {
    conn.live = true;
    conn.since = Date.now();
    conn.replaying.clear();
    this._noteTransport(conn);
    this._backoff.reset();
    this._untried = this._ticket.nodes.filter((n) => n.url !== conn.node.url);
    this.stats.connects += 1;
    if (this._everLive) this.stats.reconnects += 1;
    this._everLive = true;
    this._sends.setTransport({ emit: (payload, ack) => conn.socket.emit('msg', payload, ack) });
    this._scheduleRenewal(conn);
    for (const waiter of [...this._liveWaiters]) waiter.resolve(conn);
    this.emit('connection', this._connectionInfo(conn));
    this._setState('live', undefined);
  }

  /** What the application sees of `conn` (the `connection` event, `client.connection`). */
  _connectionInfo(conn) {
    const info = { url: conn.url };
    if (conn.url !== conn.node.url) info.spearUrl = conn.node.url;
    if (conn.node.id !== undefined) info.id = conn.node.id;
    if (conn.node.name !== undefined) info.name = conn.node.name;
    info.transport = conn.transports.length > 0 ? conn.transports[conn.transports.length - 1] : null;
    info.transports = [...conn.transports];
    info.resume = JSON.parse(JSON.stringify(conn.resume));
    info.attempt = conn.attempt;
    info.since = conn.since;
    return info;
  }

  /** Records the transport socket.io uses now under `conn` (or `name`), if it changed; true if it did. */
  _noteTransport(conn, name = transportName(conn.socket)) {
    if (!name || conn.transports[conn.transports.length - 1] === name) return false;
    conn.transports.push(name);
    return true;
  }

  _listen(conn) {
    const s = conn.socket;
    // The transport the engine opens with; tentative: one that fails (WebSocket refused) is
    // replaced by the next (long-polling) before socket.io connects.
    this._noteTransport(conn);
    s.on('connect', () => {
      const name = transportName(s);
      if (name && !conn.upgraded) conn.transports = [name];
    });
    // socket.io upgrades long-polling to WebSocket (transports ['polling', 'websocket']).
    let engine = null;
    try {
      engine = s.io && s.io.engine;
    } catch (_) { /* not socket.io's socket */ }
    if (engine && typeof engine.on === 'function') {
      conn.engine = engine;
      conn.onUpgrade = (transport) => {
        conn.upgraded = true;
        const name = (transport && typeof transport.name === 'string' && transport.name) || transportName(s);
        if (conn.ended || !this._noteTransport(conn, name) || !conn.live) return;
        const transports = [...conn.transports];
        this.emit('transport', { transport: transports[transports.length - 1], transports, url: conn.url });
      };
      engine.on('upgrade', conn.onUpgrade);
    }
    s.on('msg', (m) => this._onMsg(conn, asObject(m)));
    s.on('resync', (r) => this._onResync(conn, asObject(r)));
    s.on('auth_result', (raw) => {
      const r = asObject(raw);
      if (conn.authed) return; // a renewal's answer comes as an ack and as auth_result
      conn.authed = true;
      conn.replaying.delete(this.userChannel);
      if (r && r.success) {
        this._applyAnswer(r.data && r.data.positions);
        conn.settle({ ok: true });
      } else {
        this._needFreshTicket = true;
        this._end(conn, { kind: 'auth_failed', error: GruError.fromReply('auth', r) });
      }
    });
    s.on('server_shutdown', (raw) => {
      const p = asObject(raw) || {};
      this._notice(conn, { event: 'server_shutdown', msg: p.msg, reconnect: p.reconnect, payload: p });
      // The spear is stopping, drained or fenced and says where to go: through ticket, which
      // knows where there is room (its backups may be the next to go, or already full).
      if (p.reconnect === 'ticket') this._needFreshTicket = true;
      this._end(conn, { kind: 'server_shutdown', msg: p.msg });
    });
    s.on('server_disconnect', (raw) => {
      const p = asObject(raw) || {};
      const data = p.data || {};
      this._notice(conn, {
        event: 'server_disconnect', msg: p.msg, reason: data.reason, reconnect: data.reconnect, errorCode: p.errorCode, payload: p,
      });
      if (data.reason === 'by_server') {
        // A business server closed the user's connections: no reconnect.
        this._shutdown('by_server', p.msg);
        return;
      }
      if (data.reason === 'token_expired' || data.reconnect === 'ticket') this._needFreshTicket = true;
      this._end(conn, { kind: 'server_disconnect', reason: data.reason, msg: p.msg });
    });
    s.on('connect_error', (err) => {
      const msg = (err && err.message) || String(err);
      // A refused token will be refused by every node of its ticket.
      if (/token/i.test(msg)) this._needFreshTicket = true;
      this._end(conn, {
        kind: 'connect_error',
        msg,
        error: new GruError('connect', `connect to ${conn.url}: ${msg}`, { cause: err }),
      });
    });
    s.on('disconnect', (reason) => this._end(conn, { kind: 'disconnect', reason }));
  }

  /** A `server_shutdown` or `server_disconnect`, told to the application as a `notice`. */
  _notice(conn, notice) {
    const out = { event: notice.event };
    for (const [k, v] of Object.entries(notice)) if (v !== undefined) out[k] = v;
    out.url = conn.url;
    this.emit('notice', out);
  }

  /** Ends `conn` (once): closes its socket and, if it was live, reconnects. */
  _end(conn, why) {
    if (conn.ended) return;
    conn.ended = true;
    conn.why = why;
    // After a gap the same spear is the first to try: it is not the spear's fault.
    if (why.kind === 'gap' && !this._closed) this._untried.unshift(conn.node);
    if (conn.engine && conn.onUpgrade) {
      try { conn.engine.off('upgrade', conn.onUpgrade); } catch (_) { /* an engine without off() */ }
    }
    const s = conn.socket;
    if (s) {
      try { s.off(); } catch (_) { /* a socket without off() */ }
      try { s.disconnect(); } catch (_) { /* already closed */ }
    }
    if (this._conn === conn) this._conn = null;
    for (const done of [...conn.pending]) done();
    conn.pending.clear();
    if (conn.settle) conn.settle({ ok: false, error: why.error });
    if (conn.live) {
      conn.live = false;
      this._sends.setTransport(null);
      clearTimeout(this._renewTimer);
      // The reason: socket.io's disconnect reason, the server_disconnect's reason
      // (token_expired, auth_timeout), or what ended it (server_shutdown, timeout, ...).
      if (!this._closed) this._loop('reconnecting', why.reason || why.kind);
    }
  }

  /** Joins `groups` on a fresh connection; false if the connection ended meanwhile. */
  async _joinOnConnect(conn, groups) {
    const reply = await this._call(conn, 'join', { groups });
    if (reply.lost) return false;
    if (reply.timeout) {
      this._end(conn, { kind: 'timeout', msg: 'no answer to join' });
      return false;
    }
    if (reply.success) {
      for (const g of groups) conn.replaying.delete(`g:${g}`);
      this._applyAnswer(reply.data && reply.data.positions);
      return true;
    }
    // All or none: one refused group (outside the token, too many) keeps out the others.
    // Join them one by one and drop the refused ones.
    this._error(GruError.fromReply('join', reply));
    for (const g of groups) {
      const one = await this._call(conn, 'join', { groups: [g] });
      if (one.lost) return false;
      if (one.timeout) {
        this._end(conn, { kind: 'timeout', msg: 'no answer to join' });
        return false;
      }
      conn.replaying.delete(`g:${g}`);
      if (one.success) {
        this._applyAnswer(one.data && one.data.positions);
      } else if (!isRateLimited(one) && one.errorCode !== 1001) {
        this._groups.delete(g);
        this._error(Object.assign(GruError.fromReply('join', one), { group: g }));
      } else {
        this._error(Object.assign(GruError.fromReply('join', one), { group: g }));
      }
    }
    return true;
  }

  /** Emits `event` on `conn` and waits for its ack: the reply, `{lost: true}` or `{timeout: true}`. */
  _call(conn, event, payload, timeoutMs = this.options.requestTimeoutMs) {
    return new Promise((resolve) => {
      if (conn.ended) {
        resolve({ lost: true });
        return;
      }
      let timer = null;
      const lost = () => { clearTimeout(timer); resolve({ lost: true }); };
      conn.pending.add(lost);
      timer = setTimeout(() => { conn.pending.delete(lost); resolve({ timeout: true }); }, Math.max(0, timeoutMs));
      try {
        conn.socket.emit(event, payload, (raw) => {
          clearTimeout(timer);
          conn.pending.delete(lost);
          resolve(asObject(raw) || { success: false, errorCode: 1003, msg: 'empty reply' });
        });
      } catch (e) {
        clearTimeout(timer);
        conn.pending.delete(lost);
        resolve({ lost: true });
      }
    });
  }

  /** An event with an ack on the live connection, waiting for one and retrying across reconnects. */
  async _request(event, payload) {
    const deadline = Date.now() + this.options.requestTimeoutMs;
    let limited = 0;
    for (;;) {
      const conn = await this._waitLive(deadline, event);
      const reply = await this._call(conn, event, payload, deadline - Date.now());
      if (reply.lost) continue;
      if (reply.timeout) throw new GruError('timeout', `${event}: no answer within ${this.options.requestTimeoutMs} ms`);
      if (reply.success) return reply;
      if (isRateLimited(reply) && Date.now() < deadline) {
        await this._sleep(Math.min(backoffDelay(limited, this._backoffOpts), Math.max(0, deadline - Date.now())));
        limited += 1;
        continue;
      }
      throw GruError.fromReply(event, reply);
    }
  }

  _waitLive(deadline, what) {
    if (this._closed) return Promise.reject(new GruError('closed', `${what}: the client is closed`));
    if (this._conn && this._conn.live) return Promise.resolve(this._conn);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (conn) => { clearTimeout(timer); this._liveWaiters.delete(waiter); resolve(conn); },
        reject: (e) => { clearTimeout(timer); this._liveWaiters.delete(waiter); reject(e); },
      };
      const timer = setTimeout(() => waiter.reject(new GruError('timeout', `${what}: not connected within ${this.options.requestTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()));
      this._liveWaiters.add(waiter);
    });
  }

  // --- what the server sends -----------------------------------------------------------

  _onMsg(conn, m) {
    if (conn.ended || !m) return;
    const outcome = this._book.accept(m);
    if (outcome === 'duplicate') {
      this.stats.duplicatesDropped += 1;
      return;
    }
    if (outcome === 'gap') {
      this._onGap(conn, m);
      return;
    }
    if (outcome === 'jump') {
      // A group joined on this live connection without its stored place: what lies between
      // that place and this message is not replayed here. Told like the answer's own gap.
      this.stats.resyncs += 1;
      this.emit('resync', { channel: m.channel, epoch: String(m.epoch), position: Number(m.position) - 1, reason: 'gap', local: true });
    }
    if (outcome !== 'unplaced') this._persist();
    if (!conn.live && conn.replaying.has(m.channel)) m.replayed = true;
    this.emit('message', m);
  }

  /**
   * A message further on than the next position of its channel, on a connection that continues
   * from the known place: the server did not deliver what lies between (it drops messages for
   * a connection whose send queue is full). Nothing is delivered out of order: this connection
   * ends and the next one (to the same spear first) resumes from the known place, which
   * replays the gap and this message.
   */
  _onGap(conn, m) {
    const at = this._book.get(m.channel);
    const missing = Number(m.position) - at.position - 1;
    this.stats.gaps += 1;
    this._error(new GruError('gap',
      `${m.channel}: position ${m.position} came after ${at.position} (epoch ${at.epoch}): ${missing} message(s) did not reach this connection; reconnecting to resume from ${at.position}`,
      { data: { channel: m.channel, epoch: at.epoch, position: at.position, received: Number(m.position), missing } }));
    // Gaps again and again (a server that keeps dropping): wait longer each time.
    const now = Date.now();
    this._gapTimes = this._gapTimes.filter((t) => now - t < 60000);
    this._gapTimes.push(now);
    if (this._gapTimes.length > 1) {
      this._retryAfterMs = Math.max(this._retryAfterMs, backoffDelay(this._gapTimes.length - 1, this._backoffOpts));
    }
    this._end(conn, { kind: 'gap', reason: 'gap' });
  }

  _onResync(conn, r) {
    if (conn.ended || !r) return;
    if (this._book.resync(r)) this._persist();
    this.stats.resyncs += 1;
    this.emit('resync', r);
  }

  /** An answer's `positions`: starting points, and a resync for a place that could not be resumed. */
  _applyAnswer(positions) {
    const outcome = this._book.fromAnswer(positions);
    let changed = false;
    for (const [channel, what] of Object.entries(outcome)) {
      if (what === 'seeded' || what === 'gap') changed = true;
      if (what === 'gap') {
        const at = this._book.get(channel);
        this.stats.resyncs += 1;
        this.emit('resync', { channel, epoch: at.epoch, position: at.position, reason: 'gap', local: true });
      }
    }
    if (changed) this._persist();
  }

  _persist() {
    this._store.save(this._snapshot);
  }

  // --- token renewal --------------------------------------------------------------------

  _scheduleRenewal(conn, delayMs) {
    clearTimeout(this._renewTimer);
    const exp = this._ticket && this._ticket.expiresAtMs;
    if (exp == null) return;
    let wait = delayMs;
    if (wait === undefined) {
      const left = exp - Date.now();
      // Well before exp; for a short-lived token, at half its remaining life.
      wait = Math.max(0, left - Math.min(this.options.renewBeforeMs, left / 2));
    }
    conn.renewAt = Date.now() + wait;
    // setTimeout's longest delay is 2^31-1 ms (24.8 days): a longer wait wakes up and waits again.
    this._renewTimer = setTimeout(() => this._renew(conn), Math.min(wait, 2 ** 31 - 1));
  }

  async _renew(conn) {
    if (!conn.live || conn.ended || this._closed) return;
    if (Date.now() < conn.renewAt - 1000) {
      this._scheduleRenewal(conn, conn.renewAt - Date.now());
      return;
    }
    const exp = this._ticket && this._ticket.expiresAtMs;
    let ticket;
    try {
      ticket = await this._fetchTicket();
    } catch (e) {
      if (!conn.live || conn.ended || this._closed) return;
      this._error(e);
      if (this._fatalTicketError(e)) return; // the connection lasts until exp, then the loop decides
      const left = (exp ?? Date.now()) - Date.now();
      const retry = Math.max(e.retryAfterMs || 0, backoffDelay(conn.renewFailures || 0, this._backoffOpts));
      conn.renewFailures = (conn.renewFailures || 0) + 1;
      if (left > 0) this._scheduleRenewal(conn, Math.min(retry, Math.max(0, left / 2)));
      return;
    }
    if (!conn.live || conn.ended || this._closed) return;
    const reply = await this._call(conn, 'auth', {
      id: this.userId, name: this.name, appType: this.appType, token2: ticket.token,
    });
    if (reply.lost || conn.ended || this._closed) {
      // The reconnect will use the fresh ticket.
      this._ticket = ticket;
      this._untried = [...ticket.nodes];
      this._needFreshTicket = false;
      return;
    }
    if (reply.timeout) {
      const retry = backoffDelay(conn.renewFailures || 0, this._backoffOpts);
      conn.renewFailures = (conn.renewFailures || 0) + 1;
      const left = (exp ?? Date.now()) - Date.now();
      if (left > 0) this._scheduleRenewal(conn, Math.min(retry, Math.max(0, left / 2)));
      return;
    }
    conn.renewFailures = 0;
    this._ticket = ticket;
    this._needFreshTicket = false;
    if (reply.success) {
      this.stats.renewals += 1;
      this._untried = ticket.nodes.filter((n) => n.url !== conn.node.url);
      this._scheduleRenewal(conn);
      return;
    }
    // The fresh token is not good here (ticket placed the user elsewhere and this spear is not
    // among its spears): move to where the fresh ticket says, before the old token expires.
    this._untried = [...ticket.nodes];
    this._error(GruError.fromReply('auth (renewal)', reply));
    this._end(conn, { kind: 'renewal_moved' });
  }

  // --- helpers --------------------------------------------------------------------------

  _setState(state, reason) {
    if (this._state === state && this._stateReason === reason) return;
    this._state = state;
    this._stateReason = reason;
    const event = { state };
    if (reason !== undefined) event.reason = reason;
    this.emit('state', event);
  }

  _error(e) {
    this.emit('error', e);
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const entry = { resolve };
      entry.timer = setTimeout(() => { this._sleeps.delete(entry); resolve(); }, Math.max(0, ms));
      this._sleeps.add(entry);
    });
  }

  _shutdown(reason, msg) {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._renewTimer);
    if (this._unwatchPage) this._unwatchPage();
    this._store.flush();
    for (const s of [...this._sleeps]) {
      clearTimeout(s.timer);
      s.resolve();
    }
    this._sleeps.clear();
    const err = new GruError('closed', `the client is closed (${reason}${msg ? `: ${msg}` : ''})`);
    this._sends.setTransport(null);
    this._sends.rejectAll(err);
    for (const waiter of [...this._liveWaiters]) waiter.reject(err);
    const conn = this._conn;
    if (conn) this._end(conn, { kind: 'closed' });
    const event = { state: 'closed', reason };
    if (msg !== undefined) event.msg = msg;
    this._state = 'closed';
    this._stateReason = reason;
    this.emit('state', event);
  }
}

/** Creates a client and starts connecting (unless `autoConnect: false`). */
function createClient(options) {
  return new GruClient(options);
}

module.exports = { GruClient, createClient, DEFAULTS };
