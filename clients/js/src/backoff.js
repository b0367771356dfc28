'use strict';
// Exponential backoff with full jitter above a floor: attempt n (0-based) waits a uniformly
// random time in [minMs, min(maxMs, minMs * 2^(n+1))]. Every delay is at least minMs and at
// most maxMs; the window doubles with each attempt until it reaches maxMs. The jitter spreads
// the clients of a spear that went away over the window instead of sending them all back at
// the same instant.

/** The delay before attempt `attempt` (0 for the first retry); `random` returns [0, 1). */
function backoffDelay(attempt, { minMs = 200, maxMs = 10000, random = Math.random } = {}) {
  const min = Math.max(0, minMs);
  const max = Math.max(min, maxMs);
  const n = Math.max(0, Math.floor(attempt));
  // 2^(n+1) overflows to Infinity for large n, which Math.min caps.
  const ceiling = Math.min(max, min * 2 ** (n + 1));
  const r = random();
  const unit = r >= 0 && r < 1 ? r : 0;
  return Math.round(min + unit * (Math.max(ceiling, min) - min));
}

/** Counts attempts and hands out their delays; reset() after a success. */
class Backoff {
  constructor(opts = {}) {
    this.opts = opts;
    this.attempt = 0;
  }

  /** The next delay; each call is one more attempt. */
  next() {
    const d = backoffDelay(this.attempt, this.opts);
    this.attempt += 1;
    return d;
  }

  reset() {
    this.attempt = 0;
  }
}

module.exports = { backoffDelay, Backoff };
