'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { SendQueue, classifyAck, newClientMsgId, validClientMsgId } = require('../src/sends');
const { sleep, waitFor } = require('./fake');

const ok = (position) => ({ success: true, errorCode: 0, msg: 'received', data: { id: 100 + position, createTime: 1, channel: 'u:2', epoch: '7', position } });
const e1001 = (msg, data) => ({ success: false, errorCode: 1001, msg, ...(data ? { data } : {}) });

// A transport that records emits and leaves the answer to the test.
function recorder() {
  const sent = [];
  return { sent, emit: (payload, ack) => sent.push({ payload, ack }) };
}

function queue(opts = {}) {
  const retries = [];
  const q = new SendQueue({ sendTimeoutMs: 2000, ackTimeoutMs: 1000, retryDelay: () => 1, onRetry: (e) => retries.push(e.clientMsgId), ...opts });
  q.retries = retries;
  return q;
}

test('clientMsgIds are fresh, and 1 to 64 bytes', () => {
  const a = newClientMsgId();
  assert.notEqual(a, newClientMsgId());
  assert.ok(validClientMsgId(a));
  assert.ok(!validClientMsgId(''));
  assert.ok(!validClientMsgId('x'.repeat(65)));
  assert.ok(validClientMsgId('é'.repeat(32)));
  assert.ok(!validClientMsgId('é'.repeat(33)), '66 bytes');
});

test('the payload is gru\'s msg with the clientMsgId', async () => {
  const q = queue();
  const t = recorder();
  q.setTransport(t);
  q.add({ to: { user: 2 }, content: 'hi', clientMsgId: 'c1' });
  q.add({ to: { group: 10 }, content: 'all', clientMsgId: 'c2' });
  assert.deepEqual(t.sent[0].payload, { type: 0, target: { id: 2 }, content: 'hi', clientMsgId: 'c1' });
  t.sent[0].ack(ok(1));
  await sleep(1);
  assert.deepEqual(t.sent[1].payload, { type: 1, target: { id: 10 }, content: 'all', clientMsgId: 'c2' });
  assert.throws(() => q.add({ to: { user: 1, group: 2 }, content: 'x' }), /exactly one/);
  assert.throws(() => q.add({ to: { user: 1 }, content: 5 }), /content/);
  assert.throws(() => q.add({ to: { user: 1 }, content: 'x', clientMsgId: '' }), /clientMsgId/);
  t.sent[1].ack(ok(2));
});

test('sends wait for a transport, and go in call order, one at a time by default', async () => {
  const q = queue();
  const p1 = q.add({ to: { user: 2 }, content: 'one' }).promise;
  const p2 = q.add({ to: { user: 2 }, content: 'two' }).promise;
  const t = recorder();
  q.setTransport(t);
  assert.equal(t.sent.length, 1);
  t.sent[0].ack(ok(1));
  assert.deepEqual(await p1, ok(1).data);
  assert.equal(t.sent.length, 2);
  assert.equal(t.sent[1].payload.content, 'two');
  t.sent[1].ack(ok(2));
  assert.equal((await p2).position, 2);
  assert.equal(q.size, 0);
});

test('maxInFlight lets several go at once', () => {
  const q = queue({ maxInFlight: 3 });
  const t = recorder();
  q.setTransport(t);
  for (let i = 0; i < 5; i += 1) q.add({ to: { user: 2 }, content: `m${i}` }).promise.catch(() => {});
  assert.equal(t.sent.length, 3);
  q.rejectAll(new Error('end'));
});

test('1001 answers are retried with the same clientMsgId until acknowledged', async () => {
  const q = queue();
  const t = recorder();
  q.setTransport(t);
  const { clientMsgId, promise } = q.add({ to: { user: 2 }, content: 'hi' });
  t.sent[0].ack(e1001('no message id: ids unavailable: the id leader is unavailable; retry later'));
  await waitFor('a second attempt', () => t.sent.length === 2);
  t.sent[1].ack(e1001('history unavailable, the message may be stored all the same', { id: 5, createTime: 1, localOnly: false, uncertain: true }));
  await waitFor('a third attempt', () => t.sent.length === 3);
  t.sent[2].ack(e1001('relay unavailable: Redis is unreachable', { id: 6, createTime: 1, localOnly: true }));
  await waitFor('a fourth attempt', () => t.sent.length === 4);
  t.sent[3].ack(ok(1));
  assert.equal((await promise).position, 1);
  assert.deepEqual(t.sent.map((s) => s.payload.clientMsgId), [clientMsgId, clientMsgId, clientMsgId, clientMsgId]);
  assert.equal(q.retries.length, 3);
});

test('a rate limit (1002 "too many messages per second") is retried too', async () => {
  const q = queue();
  const t = recorder();
  q.setTransport(t);
  const { promise } = q.add({ to: { user: 2 }, content: 'hi' });
  t.sent[0].ack({ success: false, errorCode: 1002, msg: 'too many messages per second' });
  await waitFor('a second attempt', () => t.sent.length === 2);
  t.sent[1].ack(ok(1));
  await promise;
});

test('1001 with stored: true is done: it will be delivered from the history', async () => {
  const q = queue();
  const t = recorder();
  q.setTransport(t);
  const { promise } = q.add({ to: { user: 2 }, content: 'hi' });
  const data = { id: 5, createTime: 1, localOnly: false, stored: true, channel: 'u:2', epoch: '7', position: 9 };
  t.sent[0].ack(e1001('relay unavailable: Redis did not answer within 500 ms', data));
  assert.deepEqual(await promise, data);
  await sleep(5);
  assert.equal(t.sent.length, 1, 'not sent again');
});

test('1002 and 1003 reject the send', async () => {
  const q = queue();
  const t = recorder();
  q.setTransport(t);
  const a = q.add({ to: { group: 99 }, content: 'x' }).promise;
  t.sent[0].ack({ success: false, errorCode: 1002, msg: 'group 99 is not allowed for this user' });
  await assert.rejects(a, (e) => e.code === 'not_allowed' && e.errorCode === 1002 && /not allowed/.test(e.message));
  const b = q.add({ to: { user: 2 }, content: 'x' }).promise;
  t.sent[1].ack({ success: false, errorCode: 1003, msg: 'clientMsgId reused with another message' });
  await assert.rejects(b, (e) => e.code === 'bad_request' && e.errorCode === 1003);
  assert.equal(q.retries.length, 0);
});

test('attempts in flight on a lost connection go again, same clientMsgId, on the next', async () => {
  const q = queue({ maxInFlight: 2 });
  const t1 = recorder();
  q.setTransport(t1);
  const a = q.add({ to: { user: 2 }, content: 'a' });
  const b = q.add({ to: { user: 2 }, content: 'b' });
  assert.equal(t1.sent.length, 2);
  q.setTransport(null);
  const t2 = recorder();
  q.setTransport(t2);
  assert.deepEqual(t2.sent.map((s) => s.payload.clientMsgId), [a.clientMsgId, b.clientMsgId]);
  // A late answer from the first attempt still counts: same message.
  t1.sent[0].ack(ok(1));
  t2.sent[1].ack(ok(2));
  assert.equal((await a.promise).position, 1);
  assert.equal((await b.promise).position, 2);
  assert.equal(q.retries.length, 2);
});

test('an attempt with no answer in time is sent again', async () => {
  const q = queue({ ackTimeoutMs: 10 });
  const t = recorder();
  q.setTransport(t);
  const { clientMsgId, promise } = q.add({ to: { user: 2 }, content: 'a' });
  await waitFor('a resend', () => t.sent.length >= 2);
  assert.equal(t.sent[1].payload.clientMsgId, clientMsgId);
  t.sent[1].ack(ok(1));
  await promise;
});

test('past its deadline a send rejects with timeout, naming its clientMsgId', async () => {
  const q = queue({ sendTimeoutMs: 20 });
  const { clientMsgId, promise } = q.add({ to: { user: 2 }, content: 'a' });
  await assert.rejects(promise, (e) => e.code === 'timeout' && e.data.clientMsgId === clientMsgId);
  assert.equal(q.size, 0);
});

test('classifyAck', () => {
  assert.equal(classifyAck(ok(1)), 'done');
  assert.equal(classifyAck(e1001('x', { stored: true })), 'done');
  assert.equal(classifyAck(e1001('x', { uncertain: true })), 'retry');
  assert.equal(classifyAck(e1001('no message id')), 'retry');
  assert.equal(classifyAck({ success: false, errorCode: 1003, msg: 'bad payload' }), 'fail');
  assert.equal(classifyAck(undefined), 'retry');
});

test('a cluster without history refuses clientMsgIds: the message goes again without one, and so do later ones', async () => {
  const told = [];
  const q = queue({ onWithoutIds: (r) => told.push(r.msg) });
  const t = recorder();
  q.setTransport(t);
  const a = q.add({ to: { user: 2 }, content: 'a' });
  t.sent[0].ack({ success: false, errorCode: 1003, msg: 'clientMsgId needs the message history, which is off on this cluster (history.enabled)' });
  await waitFor('a resend', () => t.sent.length === 2);
  assert.deepEqual(t.sent[1].payload, { type: 0, target: { id: 2 }, content: 'a' });
  t.sent[1].ack({ success: true, errorCode: 0, msg: 'received', data: { id: 1, createTime: 1 } });
  assert.deepEqual(await a.promise, { id: 1, createTime: 1 });
  const b = q.add({ to: { user: 2 }, content: 'b' });
  assert.equal(t.sent[2].payload.clientMsgId, undefined);
  t.sent[2].ack(ok(2));
  await b.promise;
  assert.equal(told.length, 1);
  // A reused id is a final error, not this.
  assert.equal(classifyAck({ success: false, errorCode: 1003, msg: 'clientMsgId "x" was already used for another message to this target' }), 'fail');
});
