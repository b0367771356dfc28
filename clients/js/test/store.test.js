'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { PositionStore, memoryStore, positionsKey } = require('../src/store');

test('the key names the user', () => {
  assert.equal(positionsKey(123), 'gru-client:123:positions');
  assert.notEqual(positionsKey(1), positionsKey(2));
});

test('a synchronous store is written at once and read back', async () => {
  const mem = memoryStore();
  const s = new PositionStore(mem, 'k');
  s.save({ 'u:1': { epoch: '7', position: 3 } });
  assert.deepEqual(JSON.parse(mem.getItem('k')), { v: 1, channels: { 'u:1': { epoch: '7', position: 3 } } });
  assert.deepEqual(await new PositionStore(mem, 'k').load(), { 'u:1': { epoch: '7', position: 3 } });
});

test('an async store gets one write at a time, the latest snapshot last', async () => {
  const writes = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const data = new Map();
  const store = {
    getItem: async (k) => data.get(k) ?? null,
    setItem: (k, v) => new Promise((resolve) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => { data.set(k, v); writes.push(JSON.parse(v).channels['u:1'].position); inFlight -= 1; resolve(); }, 5);
    }),
  };
  const s = new PositionStore(store, 'k');
  for (let p = 1; p <= 10; p += 1) s.save({ 'u:1': { epoch: '7', position: p } });
  await s.flushed();
  assert.equal(maxInFlight, 1);
  assert.deepEqual(writes, [1, 10], 'the first, then only the latest of those that waited');
  assert.deepEqual(await new PositionStore(store, 'k').load(), { 'u:1': { epoch: '7', position: 10 } });
});

test('unreadable or foreign contents load as nothing, and failures are reported', async () => {
  const errors = [];
  const mem = memoryStore();
  mem.setItem('k', '{not json');
  assert.deepEqual(await new PositionStore(mem, 'k', (e) => errors.push(e)).load(), {});
  mem.setItem('k', JSON.stringify({ v: 99, channels: { x: 1 } }));
  assert.deepEqual(await new PositionStore(mem, 'k').load(), {});
  const broken = { getItem: () => { throw new Error('denied'); }, setItem: () => Promise.reject(new Error('quota')) };
  const s = new PositionStore(broken, 'k', (e) => errors.push(e.message));
  assert.deepEqual(await s.load(), {});
  s.save({});
  await s.flushed();
  assert.deepEqual(errors.slice(1), ['denied', 'quota']);
  assert.throws(() => new PositionStore({}, 'k'), /getItem/);
});

test('with flushMs, saves are coalesced: one write per flushMs, of the latest positions', async () => {
  const writes = [];
  const data = new Map();
  const store = { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => { data.set(k, v); writes.push(JSON.parse(v).channels['u:1'].position); } };
  const s = new PositionStore(store, 'k', undefined, { flushMs: 30 });
  let snapshots = 0;
  let position = 0;
  const source = () => { snapshots += 1; return { 'u:1': { epoch: '7', position } }; };
  for (position = 1; position <= 1000; position += 1) s.save(source);
  position = 1000;
  assert.equal(writes.length, 0, 'nothing written at save time');
  assert.equal(s.dirty, true);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(writes, [1000], 'one write, the latest');
  assert.equal(snapshots, 1, 'the snapshot is taken once, when the write is due');
  assert.equal(s.dirty, false);

  // The same positions again: nothing to write.
  s.save(source);
  s.flush();
  assert.deepEqual(writes, [1000]);

  // flush() and flushed() write at once, without waiting for flushMs.
  position = 1001;
  s.save(source);
  s.flush();
  assert.deepEqual(writes, [1000, 1001]);
  position = 1002;
  s.save(source);
  await s.flushed();
  assert.deepEqual(writes, [1000, 1001, 1002]);
  assert.throws(() => new PositionStore(store, 'k', undefined, { flushMs: -1 }), /storeFlushMs/);
});

test('a failed write is not taken for written: the same positions are written again', async () => {
  let fail = true;
  const writes = [];
  const errors = [];
  const store = { getItem: () => null, setItem: (k, v) => { if (fail) throw new Error('quota'); writes.push(v); } };
  const s = new PositionStore(store, 'k', (e) => errors.push(e.message));
  s.save({ 'u:1': { epoch: '7', position: 3 } });
  fail = false;
  s.save({ 'u:1': { epoch: '7', position: 3 } });
  assert.deepEqual(errors, ['quota']);
  assert.equal(writes.length, 1);
});
