'use strict';
// A small event emitter that works the same in Node and in browsers. Unlike Node's
// EventEmitter, an `error` event with no listener is dropped rather than thrown: a client
// library must not crash its host because nobody subscribed to its diagnostics.

class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Adds `fn` for `event`; returns this. */
  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    const list = this._listeners.get(event) || [];
    list.push(fn);
    this._listeners.set(event, list);
    return this;
  }

  /** Adds `fn` for the next `event` only; returns this. */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn.apply(this, args);
    };
    wrapper.listener = fn;
    return this.on(event, wrapper);
  }

  /** Removes `fn` from `event` (every listener of `event` without `fn`); returns this. */
  off(event, fn) {
    if (event === undefined) {
      this._listeners.clear();
      return this;
    }
    if (fn === undefined) {
      this._listeners.delete(event);
      return this;
    }
    const list = this._listeners.get(event);
    if (!list) return this;
    const i = list.findIndex((l) => l === fn || l.listener === fn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this._listeners.delete(event);
    return this;
  }

  /** Calls every listener of `event` with `args`; a listener that throws does not stop the others. */
  emit(event, ...args) {
    const list = this._listeners.get(event);
    if (!list) return false;
    for (const fn of [...list]) {
      try {
        fn.apply(this, args);
      } catch (e) {
        // A listener's bug is reported asynchronously, as an uncaught error would be, without
        // breaking the client's own bookkeeping in the middle of a delivery.
        setTimeout(() => { throw e; }, 0);
      }
    }
    return true;
  }

  listenerCount(event) {
    const list = this._listeners.get(event);
    return list ? list.length : 0;
  }
}

module.exports = { Emitter };
