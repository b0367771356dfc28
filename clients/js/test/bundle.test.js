'use strict';
// The browser build (dist/gru-client.browser.js, made by scripts/bundle.js): the checked-in
// file is what the script makes from the sources now (a stale one fails here, so CI catches
// it), and it works as a browser loads it: a script that sets window.gruClient, taking
// socket.io's `io` from the page.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { build, OUT } = require('../scripts/bundle');
const gru = require('../src/index');
const { gruServer, fakeTicket, waitFor } = require('./fake');

/** The checked-in bundle, line endings as the script writes them (a CRLF checkout is not stale). */
function checkedIn() {
  return fs.readFileSync(OUT, 'utf8').replace(/\r\n/g, '\n');
}

/** Runs the bundle as a <script> would, in a fresh global with `globals`; returns that global. */
function loadInBrowserLike(globals = {}) {
  const sandbox = { setTimeout, clearTimeout, console, URL, AbortController, TextEncoder, TextDecoder, atob, ...globals };
  sandbox.window = sandbox;
  vm.createContext(sandbox);
  vm.runInContext(checkedIn(), sandbox, { filename: 'gru-client.browser.js' });
  return sandbox;
}

test('the checked-in browser bundle is what scripts/bundle.js makes from src/ now', () => {
  const fresh = build();
  const current = checkedIn();
  assert.ok(
    current === fresh,
    `${path.relative(process.cwd(), OUT)} is stale: run \`npm run bundle\` in clients/js and commit it`,
  );
});

test('the bundle sets window.gruClient with every export of src/index.js, and nothing of socket.io', () => {
  const window = loadInBrowserLike();
  assert.deepEqual(Object.keys(window.gruClient), Object.keys(gru));
  assert.equal(typeof window.gruClient.createClient, 'function');
  assert.equal(window.gruClient.positionsKey(7), 'gru-client:7:positions');
  assert.ok(!/engine\.io|socket\.io-parser/.test(checkedIn()), 'socket.io-client is not bundled');
});

test('in the bundle, a client runs on the io it is given, or on the page\'s global io', async () => {
  for (const how of ['option', 'global']) {
    const server = gruServer();
    const window = loadInBrowserLike(how === 'global' ? { io: server.io } : {});
    const client = window.gruClient.createClient({
      ticketUrl: 'http://ticket.test:8080',
      userId: 1,
      name: 'alice',
      token1: 'T1',
      fetch: fakeTicket(),
      ...(how === 'option' ? { io: server.io } : {}),
    });
    const messages = [];
    client.on('message', (m) => messages.push(m.content));
    await waitFor(`live (io from the ${how})`, () => client.state === 'live');
    server.io.sockets[0].fire('msg', { channel: 'u:1', epoch: '100', position: 1, content: 'hi', fromId: 2 });
    assert.deepEqual(messages, ['hi']);
    await client.close();
  }
});

test('without socket.io on the page or in the options, the bundled client closes and says why', async () => {
  const window = loadInBrowserLike();
  const client = window.gruClient.createClient({
    ticketUrl: 'http://ticket.test:8080', userId: 1, name: 'alice', token1: 'T1', fetch: fakeTicket(),
  });
  const errors = [];
  client.on('error', (e) => errors.push(e.message));
  await waitFor('closed', () => client.state === 'closed');
  assert.match(errors.join('\n'), /socket\.io-client is not installed/);
});
