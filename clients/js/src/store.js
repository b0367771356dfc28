'use strict';
// Where positions survive the client: any object with getItem(key) and setItem(key, value)
// holding strings — window.localStorage, sessionStorage, or an async store (React Native's
// AsyncStorage, a wrapper around IndexedDB or a file) whose methods return promises.
// Writes are serialised and coalesced: at most one setItem runs at a time and, while it
// runs, only the latest snapshot waits behind it. With `flushMs` (the client's
// `storeFlushMs`), a save only marks the positions dirty: they are serialised and written at
// most once per `flushMs`, and at once on flush() (close, a page being hidden). Without it, a
// synchronous store is written at every save.

const FORMAT = 1;

/** A store that keeps strings in memory (the default: positions last as long as the client). */
function memoryStore() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => { items.set(key, String(value)); },
    removeItem: (key) => { items.delete(key); },
  };
}

/** The key a user's positions are kept under. */
function positionsKey(userId, prefix = 'gru-client') {
  return `${prefix}:${userId}:positions`;
}

function isThenable(x) {
  return x != null && typeof x.then === 'function';
}

class PositionStore {
  /**
   * `store`: a localStorage-like object (sync or async); `key`: where to keep the snapshot;
   * `onError(e)`: told when a read or write fails (positions then live in memory only).
   */
  constructor(store, key, onError = () => {}, { flushMs = 0 } = {}) {
    if (!store || typeof store.getItem !== 'function' || typeof store.setItem !== 'function') {
      throw new TypeError('store must have getItem(key) and setItem(key, value)');
    }
    if (typeof flushMs !== 'number' || !(flushMs >= 0)) throw new TypeError('storeFlushMs must be a number >= 0');
    this.store = store;
    this.key = key;
    this.onError = onError;
    this.flushMs = flushMs;
    this._writing = false;
    this._pending = undefined; // the serialised snapshot waiting for setItem
    this._source = undefined; // what save() was given last and flush() has not serialised yet
    this._timer = null;
    this._queued = undefined; // the last value handed on to be written: an equal one is skipped
    this._idle = [];
  }

  /** The stored snapshot (`{channel: {epoch, position}}`), or {} when none or unreadable. */
  async load() {
    let raw;
    try {
      raw = this.store.getItem(this.key);
      if (isThenable(raw)) raw = await raw;
    } catch (e) {
      this.onError(e);
      return {};
    }
    if (raw == null || raw === '') return {};
    try {
      const parsed = typeof raw === 'string' ? JSON.parse(raw) : raw;
      if (parsed && parsed.v === FORMAT && parsed.channels && typeof parsed.channels === 'object') {
        return parsed.channels;
      }
    } catch (e) {
      this.onError(e);
    }
    return {};
  }

  /**
   * Stores `snapshot` (`{channel: {epoch, position}}`, or a function returning it, called when
   * the write is due); returns at once. Without `flushMs` the write starts now, in order behind
   * earlier ones; with it, within `flushMs` (or at the next flush()).
   */
  save(snapshot) {
    this._source = snapshot;
    if (this.flushMs > 0) {
      if (this._timer === null) {
        this._timer = setTimeout(() => {
          this._timer = null;
          this.flush();
        }, this.flushMs);
      }
      return;
    }
    this.flush();
  }

  /** True when a save has not been handed to the store yet (waiting for its flush). */
  get dirty() {
    return this._source !== undefined;
  }

  /** Writes what save() was given last now (behind a write in flight), without waiting for `flushMs`. */
  flush() {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._source === undefined) return;
    const source = this._source;
    this._source = undefined;
    let value;
    try {
      value = JSON.stringify({ v: FORMAT, channels: typeof source === 'function' ? source() : source });
    } catch (e) {
      this.onError(e);
      return;
    }
    if (value === this._queued) return;
    this._queued = value;
    this._pending = value;
    if (!this._writing) this._drain();
  }

  /** Writes what waits (flush()) and resolves when every save so far has reached the store (or failed). */
  flushed() {
    this.flush();
    if (!this._writing && this._pending === undefined) return Promise.resolve();
    return new Promise((resolve) => this._idle.push(resolve));
  }

  _drain() {
    while (this._pending !== undefined) {
      const value = this._pending;
      this._pending = undefined;
      let result;
      try {
        result = this.store.setItem(this.key, value);
      } catch (e) {
        this._failed(value, e);
        continue;
      }
      if (isThenable(result)) {
        this._writing = true;
        result.then(
          () => { this._writing = false; this._drain(); },
          (e) => { this._writing = false; this._failed(value, e); this._drain(); },
        );
        return;
      }
    }
    const idle = this._idle;
    this._idle = [];
    for (const resolve of idle) resolve();
  }

  /** A write failed: the next save of the same positions is not skipped as already written. */
  _failed(value, e) {
    if (this._queued === value) this._queued = undefined;
    this.onError(e);
  }
}

module.exports = { PositionStore, memoryStore, positionsKey, FORMAT };
