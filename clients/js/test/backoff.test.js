'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { backoffDelay, Backoff } = require('../src/backoff');

test('each delay is within [min, min(max, min * 2^(n+1))]', () => {
  const opts = { minMs: 200, maxMs: 10000 };
  for (let n = 0; n < 40; n += 1) {
    const ceiling = Math.min(10000, 200 * 2 ** (n + 1));
    assert.equal(backoffDelay(n, { ...opts, random: () => 0 }), 200, `attempt ${n}: the floor`);
    assert.equal(backoffDelay(n, { ...opts, random: () => 0.999999999 }), ceiling, `attempt ${n}: the window's top`);
  }
  assert.equal(backoffDelay(1e6, { ...opts, random: () => 0.999999999 }), 10000, 'never past max, however many attempts');
});

test('the window doubles until it reaches max', () => {
  const tops = [0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, { minMs: 200, maxMs: 10000, random: () => 0.999999999 }));
  assert.deepEqual(tops, [400, 800, 1600, 3200, 6400, 10000, 10000]);
});

test('the jitter spreads delays over the whole window', () => {
  const samples = Array.from({ length: 2000 }, () => backoffDelay(3, { minMs: 200, maxMs: 10000 }));
  assert.ok(samples.every((d) => d >= 200 && d <= 3200), 'within the window');
  const low = samples.filter((d) => d < 1700).length;
  assert.ok(low > 800 && low < 1200, `about half below the middle: ${low}`);
  assert.ok(new Set(samples).size > 500, 'many distinct delays');
});

test('defaults are 200 ms and 10 s; a broken random source stays in bounds', () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 200);
  assert.equal(backoffDelay(99, { random: () => 0.999999999 }), 10000);
  assert.equal(backoffDelay(2, { random: () => NaN }), 200);
  assert.equal(backoffDelay(2, { random: () => 7 }), 200);
  assert.equal(backoffDelay(2, { minMs: 0, maxMs: 0 }), 0);
  assert.equal(backoffDelay(2, { minMs: 500, maxMs: 100, random: () => 0.9 }), 500, 'max below min is min');
});

test('Backoff counts attempts and starts over after reset()', () => {
  const b = new Backoff({ minMs: 10, maxMs: 1000, random: () => 0.999999999 });
  assert.deepEqual([b.next(), b.next(), b.next()], [20, 40, 80]);
  b.reset();
  assert.equal(b.next(), 20);
});
