// The SDK under faults: `tests/faults/sdk_faults.rs` starts this script beside a cluster it
// breaks, and checks what it prints. Each user is one `gru-client` (clients/js) over the
// official socket.io-client 4; they send to each other and to their groups while the Rust
// test kills spears, restarts the cluster and Redis, drains and lets tokens expire.
//
// Environment: TICKET_URL, USERS ("uid:group,uid:group,..."), GRU_BIN, GRU_CONFIG (token1s come
// from `gru token`), TOKEN_TTL_SECS, SEND_EVERY_MS.
//
// Out (JSON lines on stdout): {ev: "state"|"message"|"resync"|"error", uid, ...} as they
// happen; {ev: "positions", uid, positions} for each client, then {ev: "ready"}, once every
// client is live (where its channels went live); {ev: "ack", uid, content, to, data} or
// {ev: "refused", uid, content, to, code, errorCode, message} for every send that settled;
// {ev: "settled", sends} once every send settled after "stop"; {ev: "stats", uid, stats} for
// each client and {ev: "closed"} after "close".
// In (lines on stdin): "send" starts sending, "stop" stops and waits for every send to
// settle, "close" closes the clients and ends the script.
'use strict';

const { execFileSync } = require('node:child_process');
const readline = require('node:readline');
const { io } = require('sio4');
const { createClient } = require('../../clients/js');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const ticketUrl = env('TICKET_URL');
const users = env('USERS').split(',').map((pair) => {
  const [uid, group] = pair.split(':').map(Number);
  return { uid, group };
});
const ttl = env('TOKEN_TTL_SECS');
const every = Number(env('SEND_EVERY_MS'));

const out = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const clients = new Map();
for (const { uid, group } of users) {
  const client = createClient({
    ticketUrl,
    userId: uid,
    name: `sdk${uid}`,
    appType: 'web',
    getToken1: async () => execFileSync(env('GRU_BIN'), ['token', '--config', env('GRU_CONFIG'),
      '--user', String(uid), '--name', `sdk${uid}`, '--ttl-secs', ttl]).toString().trim(),
    groups: [group],
    io,
    // Renew well before a short token's end (the test's tokens live TOKEN_TTL_SECS).
    renewBeforeMs: 5000,
    backoffMaxMs: 2000,
    sendTimeoutMs: 120000,
  });
  client.on('state', (s) => out({ ev: 'state', uid, ...s }));
  client.on('message', (m) => out({ ev: 'message', uid, data: m }));
  client.on('resync', (r) => out({ ev: 'resync', uid, data: r }));
  client.on('error', (e) => out({ ev: 'error', uid, code: e.code, message: e.message }));
  clients.set(uid, { client, group });
}

let sending = null;
const pending = new Set();
let sends = 0;

// A small deterministic generator (mulberry32): the run can be told again from its output.
let seed = 12345;
const next = (below) => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) % below;
};

function sendOne() {
  const from = users[next(users.length)];
  const { client, group } = clients.get(from.uid);
  const content = `${from.uid}/${sends}`;
  sends += 1;
  const to = next(2) === 0 ? { group } : { user: users[next(users.length)].uid };
  const p = client.send({ to, content }).then(
    (data) => out({ ev: 'ack', uid: from.uid, content, to, data }),
    (e) => out({ ev: 'refused', uid: from.uid, content, to, code: e.code, errorCode: e.errorCode, message: e.message }),
  );
  pending.add(p);
  p.finally(() => pending.delete(p));
}

async function waitLive() {
  for (;;) {
    if ([...clients.values()].every(({ client }) => client.state === 'live')) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Where each client's channels went live (the answers' places), then ready.
waitLive().then(() => {
  for (const [uid, { client }] of clients) out({ ev: 'positions', uid, positions: client.positions() });
  out({ ev: 'ready' });
});

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const command = line.trim();
  if (command === 'send' && !sending) {
    sending = setInterval(sendOne, every);
  } else if (command === 'stop') {
    clearInterval(sending);
    while (pending.size > 0) await Promise.allSettled([...pending]);
    out({ ev: 'settled', sends });
  } else if (command === 'close') {
    for (const [uid, { client }] of clients) {
      await client.close();
      out({ ev: 'stats', uid, stats: client.stats });
    }
    out({ ev: 'closed' });
    process.exit(0);
  }
});

// The test's end closes stdin: nothing may outlive it.
process.stdin.on('end', () => process.exit(0));
