'use strict';
// One error type for everything the client rejects or reports, with a stable `code`.

/** Server result codes (docs/api.md). */
const SYSTEM_ERROR = 1001;
const NOT_ALLOWED = 1002;
const PARAM_ERROR = 1003;

const CODE_NAMES = { [SYSTEM_ERROR]: 'system_error', [NOT_ALLOWED]: 'not_allowed', [PARAM_ERROR]: 'bad_request' };

class GruError extends Error {
  /**
   * `code`: a stable string (`not_allowed`, `bad_request`, `system_error`, `timeout`,
   * `closed`, `ticket`, `token1`, `connect`, `store`, ...); `details`: `errorCode` (the server's
   * numeric code), `data` (the reply's data), `status` (HTTP), `cause`.
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'GruError';
    this.code = code;
    if (details.errorCode !== undefined) this.errorCode = details.errorCode;
    if (details.data !== undefined) this.data = details.data;
    if (details.status !== undefined) this.status = details.status;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
    if (details.cause !== undefined) this.cause = details.cause;
  }

  /** The error for a failed reply envelope `{success: false, errorCode, msg, data}`. */
  static fromReply(event, reply) {
    const errorCode = reply && typeof reply.errorCode === 'number' ? reply.errorCode : undefined;
    const code = CODE_NAMES[errorCode] || 'refused';
    const msg = (reply && reply.msg) || 'refused';
    return new GruError(code, `${event}: ${errorCode !== undefined ? `${errorCode} ` : ''}${msg}`, {
      errorCode,
      data: reply ? reply.data : undefined,
    });
  }
}

/** A reply as an object: the server answers objects, but a JSON string is accepted too. */
function asObject(x) {
  if (typeof x === 'string') {
    try {
      return JSON.parse(x);
    } catch (_) {
      return undefined;
    }
  }
  return x;
}

/**
 * Whether a failed reply is only "not now": a rate limit (1002 "too many ... per second"),
 * answered like a system error although its code is 1002.
 */
function isRateLimited(reply) {
  return reply != null && reply.errorCode === NOT_ALLOWED
    && typeof reply.msg === 'string' && /too many (messages|requests) per second/.test(reply.msg);
}

module.exports = { GruError, asObject, isRateLimited, SYSTEM_ERROR, NOT_ALLOWED, PARAM_ERROR };
