'use strict';
// Where positions survive the client: any object with getItem(key) and setItem(key, value)
// holding strings — window.localStorage, sessionStorage, or an async store (React Native's
// AsyncStorage, a wrapper around IndexedDB or a file) whose methods return promises.
// Writes are serialised and coalesced: at most one setItem runs at a time and, while it
// runs, only the latest snapshot waits behind it. A synchronous store is written at once.

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
  constructor(store, key, onError = () => {}) {
    if (!store || typeof store.getItem !== 'function' || typeof store.setItem !== 'function') {
      throw new TypeError('store must have getItem(key) and setItem(key, value)');
    }
    this.store = store;
    this.key = key;
    this.onError = onError;
    this._writing = false;
    this._pending = undefined;
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

  /** Stores `snapshot`; returns at once, the write completes in order behind earlier ones. */
  save(snapshot) {
    this._pending = JSON.stringify({ v: FORMAT, channels: snapshot });
    if (!this._writing) this._drain();
  }

  /** Resolves when every save so far has reached the store (or failed). */
  flushed() {
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
        this.onError(e);
        continue;
      }
      if (isThenable(result)) {
        this._writing = true;
        result.then(
          () => { this._writing = false; this._drain(); },
          (e) => { this._writing = false; this.onError(e); this._drain(); },
        );
        return;
      }
    }
    const idle = this._idle;
    this._idle = [];
    for (const resolve of idle) resolve();
  }
}

module.exports = { PositionStore, memoryStore, positionsKey, FORMAT };
