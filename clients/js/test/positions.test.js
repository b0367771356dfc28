'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { PositionBook } = require('../src/positions');

const msg = (channel, epoch, position) => ({ channel, epoch, position, content: `${channel}#${position}` });

test('a message at or below the known place in the same epoch is a duplicate', () => {
  const book = new PositionBook();
  assert.equal(book.accept(msg('u:1', '7', 1)), 'new');
  assert.equal(book.accept(msg('u:1', '7', 2)), 'new');
  assert.equal(book.accept(msg('u:1', '7', 2)), 'duplicate');
  assert.equal(book.accept(msg('u:1', '7', 1)), 'duplicate');
  assert.deepEqual(book.get('u:1'), { epoch: '7', position: 2 });
  // Channels are independent.
  assert.equal(book.accept(msg('g:10', '7', 1)), 'new');
});

test('a message of another epoch is taken, and its epoch becomes the known one', () => {
  const book = new PositionBook({ 'g:10': { epoch: '7', position: 40 } });
  assert.equal(book.accept(msg('g:10', '9', 1)), 'new');
  assert.deepEqual(book.get('g:10'), { epoch: '9', position: 1 });
  assert.equal(book.accept(msg('g:10', '9', 1)), 'duplicate');
});

test('a message without a place is delivered and changes nothing', () => {
  const book = new PositionBook();
  assert.equal(book.accept({ content: 'history off', channel: 'u:1' }), 'unplaced');
  assert.equal(book.accept({ content: 'no channel' }), 'unplaced');
  assert.deepEqual(book.snapshot(), {});
});

test('epochs are kept as decimal strings (64-bit ids do not fit a number)', () => {
  const book = new PositionBook();
  book.accept({ channel: 'u:1', epoch: '245444700438401000', position: 3 });
  assert.deepEqual(book.snapshot(), { 'u:1': { epoch: '245444700438401000', position: 3 } });
});

test('a resync sets the place, even behind the known one', () => {
  const book = new PositionBook({ 'g:10': { epoch: '7', position: 40 } });
  assert.equal(book.resync({ channel: 'g:10', epoch: '8', position: 0, reason: 'epoch' }), true);
  assert.deepEqual(book.get('g:10'), { epoch: '8', position: 0 });
  assert.equal(book.accept(msg('g:10', '8', 1)), 'new');
  assert.equal(book.resync({ channel: 'g:10' }), false, 'a resync without a place changes nothing');
});

test('answers seed channels without a place, and only those', () => {
  const book = new PositionBook({ 'u:1': { epoch: '7', position: 5 } });
  const outcome = book.fromAnswer({ 'u:1': { epoch: '7', position: 5 }, 'g:10': { epoch: '9', position: 3 } });
  assert.deepEqual(outcome, { 'u:1': 'same', 'g:10': 'seeded' });
  assert.deepEqual(book.snapshot(), { 'u:1': { epoch: '7', position: 5 }, 'g:10': { epoch: '9', position: 3 } });
});

test('an answer after a message of its channel on this connection is ignored', () => {
  const book = new PositionBook();
  book.newConnection();
  book.accept(msg('u:1', '7', 4)); // replayed before the answer
  assert.deepEqual(book.fromAnswer({ 'u:1': { epoch: '7', position: 3 } }), { 'u:1': 'ignored' });
  assert.deepEqual(book.get('u:1'), { epoch: '7', position: 4 });
  // On the next connection, answers count again.
  book.newConnection();
  assert.deepEqual(book.fromAnswer({ 'u:1': { epoch: '7', position: 4 } }), { 'u:1': 'same' });
});

test('an answer ahead of an unpresented place is a gap; behind it, ignored', () => {
  const book = new PositionBook({ 'g:10': { epoch: '7', position: 5 }, 'g:11': { epoch: '7', position: 9 } });
  assert.deepEqual(book.fromAnswer({ 'g:10': { epoch: '7', position: 8 }, 'g:11': { epoch: '7', position: 2 } }),
    { 'g:10': 'gap', 'g:11': 'ignored' });
  assert.deepEqual(book.get('g:10'), { epoch: '7', position: 8 });
  assert.deepEqual(book.get('g:11'), { epoch: '7', position: 9 });
  assert.deepEqual(book.fromAnswer({ 'g:11': { epoch: '8', position: 2 } }), { 'g:11': 'gap' }, 'another epoch');
});

test('the resume map names known places of the given channels only', () => {
  const book = new PositionBook({ 'u:1': { epoch: '7', position: 5 }, 'g:10': { epoch: '7', position: 2 }, 'g:11': { epoch: '7', position: 1 } });
  assert.deepEqual(book.resumeMap(['u:1', 'g:10', 'g:12']), { 'u:1': { epoch: '7', position: 5 }, 'g:10': { epoch: '7', position: 2 } });
  assert.equal(book.forget('g:10'), true);
  assert.deepEqual(book.resumeMap(['g:10']), {});
});

test('a snapshot round-trips and bad entries are skipped', () => {
  const book = new PositionBook({ 'u:1': { epoch: '7', position: 5 }, 'g:1': { epoch: '7' }, 'g:2': null });
  assert.deepEqual(new PositionBook(book.snapshot()).snapshot(), { 'u:1': { epoch: '7', position: 5 } });
});

test('a jump past the next position: a gap on a connection continuing from the place, else a jump', () => {
  const book = new PositionBook({ 'u:1': { epoch: '7', position: 5 }, 'g:10': { epoch: '7', position: 3 } });
  book.newConnection(['u:1']);
  // Presented: the server replays from 5, so 8 after 5 means 6 and 7 were dropped.
  assert.equal(book.accept(msg('u:1', '7', 8)), 'gap');
  assert.deepEqual(book.get('u:1'), { epoch: '7', position: 5 }, 'a gap does not move the place');
  assert.equal(book.accept(msg('u:1', '7', 6)), 'new');
  assert.equal(book.accept(msg('u:1', '7', 8)), 'gap');
  // Not presented (joined on a live connection): the first message may be anywhere further on.
  assert.equal(book.accept(msg('g:10', '7', 9)), 'jump');
  assert.deepEqual(book.get('g:10'), { epoch: '7', position: 9 });
  // From then on the connection continues from there.
  assert.equal(book.accept(msg('g:10', '7', 11)), 'gap');
  // Another epoch is not comparable: taken.
  assert.equal(book.accept(msg('g:10', '8', 5)), 'new');
  // An answer puts a channel live: continuity from its place.
  book.newConnection([]);
  book.fromAnswer({ 'g:10': { epoch: '8', position: 5 } });
  assert.equal(book.accept(msg('g:10', '8', 7)), 'gap');
  // So does a resync.
  book.resync({ channel: 'u:1', epoch: '9', position: 0, reason: 'epoch' });
  assert.equal(book.accept(msg('u:1', '9', 2)), 'gap');
  assert.equal(book.accept(msg('u:1', '9', 1)), 'new');
  // A channel first seen on this connection (no place) is seeded by its first message.
  assert.equal(book.accept(msg('g:20', '7', 40)), 'new');
  assert.equal(book.accept(msg('g:20', '7', 42)), 'gap');
});
