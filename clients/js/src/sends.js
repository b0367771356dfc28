'use strict';
// Outgoing messages until the server acknowledges them. Each send gets a clientMsgId once and
// keeps it for every attempt, so the server answers a resend with the first attempt's ack and
// delivers nothing twice (on any spear, within its dedupe window). An entry is sent when the
// client is live, and sent again after a connection loss, an ack that did not come in time,
// or an answer that says "not now" (1001 without `stored`, a rate limit) — until it is
// acknowledged, refused for good (1002, 1003) or past its deadline.

const { GruError, asObject, isRateLimited, SYSTEM_ERROR, PARAM_ERROR } = require('./errors');

let fallbackCounter = 0;

/** A fresh clientMsgId: a random UUID where the platform has one (36 bytes, within 1–64). */
function newClientMsgId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  if (c && typeof c.getRandomValues === 'function') {
    const bytes = c.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  // No crypto (very old runtimes): unique enough within one user's dedupe window.
  fallbackCounter += 1;
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}-${fallbackCounter.toString(36)}`;
}

function utf8Length(s) {
  if (typeof TextEncoder !== 'undefined') return new TextEncoder().encode(s).length;
  return unescape(encodeURIComponent(s)).length;
}

/** Checks a caller's clientMsgId: a string of 1–64 bytes (UTF-8). */
function validClientMsgId(id) {
  return typeof id === 'string' && id.length > 0 && utf8Length(id) <= 64;
}

/** The `msg` payload for `to` ({user: id} or {group: id}) and `content`. */
function msgPayload(to, content, clientMsgId) {
  if (!to || typeof to !== 'object') throw new GruError('bad_request', 'send: `to` must be {user: id} or {group: id}');
  const isUser = to.user !== undefined && to.user !== null;
  const isGroup = to.group !== undefined && to.group !== null;
  if (isUser === isGroup) throw new GruError('bad_request', 'send: `to` must name exactly one of user or group');
  if (typeof content !== 'string') throw new GruError('bad_request', 'send: `content` must be a string');
  return { type: isUser ? 0 : 1, target: { id: isUser ? to.user : to.group }, content, clientMsgId };
}

/**
 * The server's answer to a clientMsgId when the cluster keeps no history (history.enabled =
 * false): there is nowhere to remember the id, so the message must go without one.
 */
function isClientIdWithoutHistory(reply) {
  return reply != null && reply.errorCode === PARAM_ERROR && typeof reply.msg === 'string'
    && /clientMsgId/.test(reply.msg) && /history/.test(reply.msg) && !/already used/.test(reply.msg);
}

/** What an ack means for its send: 'done', 'retry', 'without_id' or 'fail'. */
function classifyAck(reply) {
  if (!reply || typeof reply !== 'object') return 'retry';
  if (reply.success === true) return 'done';
  if (isClientIdWithoutHistory(reply)) return 'without_id';
  // Stored in the history: it will be delivered, from the history, once. The send is done; a
  // resend as a new message would be a second copy.
  if (reply.errorCode === SYSTEM_ERROR && reply.data && reply.data.stored === true) return 'done';
  // No id, history or relay unavailable, an uncertain append, a local-only delivery: the
  // same clientMsgId again, which the server answers with the first outcome if it counted.
  if (reply.errorCode === SYSTEM_ERROR) return 'retry';
  if (isRateLimited(reply)) return 'retry';
  return 'fail';
}

class SendQueue {
  /**
   * Options: sendTimeoutMs (deadline of a send from its call), ackTimeoutMs (an attempt with no
   * answer is sent again after this), maxInFlight (attempts awaiting an answer or a retry at
   * once; 1 keeps every send in call order), retryDelay(n) (the wait before the n-th retry after
   * a "not now" answer), newId(), onRetry(entry) (an attempt after the first goes out),
   * onWithoutIds(reply) (the server keeps no history and refuses clientMsgIds: from then on
   * messages go without one, at least once instead of exactly once).
   */
  constructor(opts = {}) {
    this.sendTimeoutMs = opts.sendTimeoutMs ?? 60000;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 15000;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 1);
    this.retryDelay = opts.retryDelay || (() => 1000);
    this.newId = opts.newId || newClientMsgId;
    this.onRetry = opts.onRetry || (() => {});
    this.onWithoutIds = opts.onWithoutIds || (() => {});
    this.withoutIds = false;
    this.entries = [];
    this.transport = null;
  }

  /** Unsettled sends, in call order. */
  get size() {
    return this.entries.length;
  }

  /** Queues a send; returns {clientMsgId, promise}. Throws GruError on bad arguments. */
  add({ to, content, clientMsgId } = {}) {
    const id = clientMsgId === undefined ? this.newId() : clientMsgId;
    if (!validClientMsgId(id)) throw new GruError('bad_request', 'send: clientMsgId must be a string of 1 to 64 bytes');
    const payload = msgPayload(to, content, id);
    const entry = {
      clientMsgId: id,
      payload,
      state: 'queued',
      attempts: 0,
      failures: 0,
      seq: 0,
      transport: null,
      settled: false,
    };
    const promise = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    entry.deadline = setTimeout(() => {
      this._settle(entry, new GruError('timeout',
        `send: not acknowledged within ${this.sendTimeoutMs} ms (clientMsgId ${id}; sending it again with this clientMsgId is safe)`,
        { data: { clientMsgId: id, lastReply: entry.lastReply } }));
    }, this.sendTimeoutMs);
    this.entries.push(entry);
    this.pump();
    return { clientMsgId: id, promise };
  }

  /**
   * The live connection's sender, `{emit(payload, ack)}`, or null while not live. Attempts in
   * flight on a connection that is gone are queued again: they go out, with their clientMsgId,
   * on the next one.
   */
  setTransport(transport) {
    if (transport === this.transport) return;
    const previous = this.transport;
    this.transport = transport;
    for (const e of this.entries) {
      if (e.state === 'inflight' && e.transport === previous) {
        clearTimeout(e.ackTimer);
        e.state = 'queued';
      }
    }
    this.pump();
  }

  /** Sends what may go now. */
  pump() {
    if (!this.transport) return;
    let busy = this.entries.filter((e) => e.state === 'inflight' || e.state === 'waiting').length;
    for (const e of this.entries) {
      if (busy >= this.maxInFlight) break;
      if (e.state !== 'queued') continue;
      this._emit(e);
      busy += 1;
    }
  }

  /** Rejects every unsettled send with `err` (the client closed). */
  rejectAll(err) {
    for (const e of [...this.entries]) this._settle(e, err);
  }

  _emit(e) {
    const transport = this.transport;
    e.state = 'inflight';
    e.transport = transport;
    if (this.withoutIds && e.payload.clientMsgId !== undefined) {
      const { clientMsgId, ...rest } = e.payload;
      e.payload = rest;
    }
    e.attempts += 1;
    e.seq += 1;
    const seq = e.seq;
    if (e.attempts > 1) this.onRetry(e);
    e.ackTimer = setTimeout(() => {
      if (e.settled || e.seq !== seq || e.state !== 'inflight') return;
      // No answer in time on a connection that looks alive: the same clientMsgId again.
      e.state = 'queued';
      this.pump();
    }, this.ackTimeoutMs);
    try {
      transport.emit(e.payload, (raw) => this._onAck(e, seq, asObject(raw)));
    } catch (_) {
      clearTimeout(e.ackTimer);
      e.state = 'queued';
    }
  }

  _onAck(e, seq, reply) {
    if (e.settled) return;
    const outcome = classifyAck(reply);
    // Any attempt's success settles the send (all attempts carry the same clientMsgId);
    // a failure counts only for the latest attempt.
    if (outcome === 'done') {
      this._settle(e, null, reply.data || {});
      return;
    }
    if (seq !== e.seq) return;
    clearTimeout(e.ackTimer);
    if (outcome === 'fail') {
      this._settle(e, GruError.fromReply('msg', reply));
      return;
    }
    if (outcome === 'without_id') {
      // Refused before anything was stored: the same message again without its id, and every
      // later one too.
      if (!this.withoutIds) {
        this.withoutIds = true;
        this.onWithoutIds(reply);
      }
      e.state = 'queued';
      this.pump();
      return;
    }
    e.state = 'waiting';
    e.lastReply = reply;
    const wait = this.retryDelay(e.failures);
    e.failures += 1;
    e.retryTimer = setTimeout(() => {
      if (e.settled || e.state !== 'waiting') return;
      e.state = 'queued';
      this.pump();
    }, wait);
  }

  _settle(e, err, data) {
    if (e.settled) return;
    e.settled = true;
    clearTimeout(e.deadline);
    clearTimeout(e.ackTimer);
    clearTimeout(e.retryTimer);
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.splice(i, 1);
    if (err) e.reject(err);
    else e.resolve(data);
    this.pump();
  }
}

module.exports = { SendQueue, newClientMsgId, validClientMsgId, msgPayload, classifyAck, isClientIdWithoutHistory };
