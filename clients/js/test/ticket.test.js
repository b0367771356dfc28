'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { fetchTicket, ticketEndpoint, tokenClaims } = require('../src/ticket');
const { jsonResponse } = require('./fake');

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

test('a base URL gets /api/v1/ticket; a URL ending in /ticket is Gru\'s', () => {
  assert.equal(ticketEndpoint('http://127.0.0.1:8080').url.toString(), 'http://127.0.0.1:8080/api/v1/ticket');
  assert.equal(ticketEndpoint('http://h/gru/').url.toString(), 'http://h/gru/api/v1/ticket');
  assert.equal(ticketEndpoint('http://h/api/v1/ticket').legacy, false);
  assert.equal(ticketEndpoint('http://h/ticket').legacy, true);
});

test('the modern ticket: query, nodes in order, expiry', async () => {
  let asked;
  const fetch = async (url) => {
    asked = new URL(url);
    return jsonResponse(200, {
      spear: { id: 4, name: 'node_4', url: 'http://a:31001' },
      backups: [{ id: 5, name: 'node_5', url: 'http://b:31002' }],
      token: 'v1.x.y', issued_at: 1000, expires_at: 2000,
    });
  };
  const t = await fetchTicket({ ticketUrl: 'http://h:8080', userId: 123, name: 'Zhang', appType: 'web', token1: 'T1', fetch });
  assert.equal(asked.pathname, '/api/v1/ticket');
  assert.deepEqual(Object.fromEntries(asked.searchParams), { user_id: '123', user_name: 'Zhang', app_type: 'web', token: 'T1' });
  assert.deepEqual(t, { token: 'v1.x.y', expiresAtMs: 2000000, nodes: [{ url: 'http://a:31001', name: 'node_4', id: 4 }, { url: 'http://b:31002', name: 'node_5', id: 5 }], legacy: false });
});

test('Gru\'s ticket: the envelope, and the expiry read from the token', async () => {
  const token = `v1.${b64({ typ: 't2', uid: 1, name: 'a', app: 'web', exp: 3000, spears: [4, 5] })}.sig`;
  let asked;
  const fetch = async (url) => {
    asked = new URL(url);
    return jsonResponse(200, { success: true, errorCode: 0, msg: null, data: { time: 1, addr: 'http://a', name: 'node_4', token, backupNodes: [{ addr: 'http://b', name: 'node_5' }] } });
  };
  const t = await fetchTicket({ ticketUrl: 'http://h/ticket', userId: 1, name: 'a', appType: 'web', token1: 'T1', fetch });
  assert.deepEqual(Object.fromEntries(asked.searchParams), { userId: '1', userName: 'a', appType: 'web', token1: 'T1' });
  assert.equal(t.expiresAtMs, 3000000);
  assert.deepEqual(t.nodes.map((n) => n.url), ['http://a', 'http://b']);
  assert.equal(tokenClaims(token).uid, 1);
  assert.equal(tokenClaims('0123abcd'), undefined, 'an MD5 token has no claims');
});

test('ticket errors say whether a new token1 or time can help', async () => {
  const cases = [
    [jsonResponse(401, { error: { code: 'bad_token', legacy_code: 711, message: 'token1 invalid' } }), 'token1'],
    [jsonResponse(400, { error: { code: 'bad_request', legacy_code: 710, message: 'user_id' } }), 'bad_request'],
    [jsonResponse(503, { error: { code: 'no_spear', legacy_code: 701, message: 'no spear' } }), 'ticket'],
  ];
  for (const [response, code] of cases) {
    await assert.rejects(fetchTicket({ ticketUrl: 'http://h', userId: 1, name: 'a', appType: 'web', token1: 'T', fetch: async () => response }),
      (e) => e.code === code, code);
  }
  await assert.rejects(
    fetchTicket({ ticketUrl: 'http://h', userId: 1, name: 'a', appType: 'web', token1: 'T',
      fetch: async () => jsonResponse(429, { error: { code: 'rate_limited', message: 'slow down', retry_after_ms: 1500 } }, { 'retry-after': '2' }) }),
    (e) => e.code === 'ticket' && e.retryAfterMs === 1500 && e.status === 429);
  await assert.rejects(
    fetchTicket({ ticketUrl: 'http://h/ticket', userId: 1, name: 'a', appType: 'web', token1: 'T',
      fetch: async () => jsonResponse(200, { success: false, errorCode: 711, msg: 'token1 invalid' }) }),
    (e) => e.code === 'token1' && e.errorCode === 711);
  await assert.rejects(
    fetchTicket({ ticketUrl: 'http://h', userId: 1, name: 'a', appType: 'web', token1: 'T', fetch: async () => { throw new Error('ECONNREFUSED'); } }),
    (e) => e.code === 'ticket' && /ECONNREFUSED/.test(e.message));
});
