#!/usr/bin/env node
// A terminal chat on gru-client. Against `gru dev` (ticket on http://127.0.0.1:8080):
//
//   cargo run --release -- dev                              # in the repository, once
//   cd clients/js && npm install
//   node examples/chat.mjs --user 1 --name alice --group 10
//   node examples/chat.mjs --user 2 --name bob --group 10   # another terminal
//
// Type a line to send it to the group; `@2 hi` sends to user 2, `#11 hi` to group 11;
// `/join 11`, `/leave 11`, `/online 10`, `/stats`, `/quit`.
//
// token1: --token1 (or GRU_TOKEN1), e.g. from `gru token --dev --user 1 --name alice`; without
// it the example mints one from gru dev's playground route (POST /api/v1/dev/token, with gru
// dev's public admin key, or --admin-key / GRU_ADMIN_KEY) — only gru dev serves that route.
// Positions are kept in a file (--store), so a restarted chat resumes where it was.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { createClient } from 'gru-client';

const { values: args } = parseArgs({
  options: {
    ticket: { type: 'string', default: 'http://127.0.0.1:8080' },
    user: { type: 'string' },
    name: { type: 'string' },
    app: { type: 'string', default: 'web' },
    group: { type: 'string', multiple: true, default: [] },
    token1: { type: 'string', default: process.env.GRU_TOKEN1 },
    'admin-key': { type: 'string', default: process.env.GRU_ADMIN_KEY || 'INSECURE-dev-admin-key-000000000000001' },
    store: { type: 'string' },
    transport: { type: 'string' },
  },
});
if (!args.user || !args.name) {
  console.error('usage: node examples/chat.mjs --user ID --name NAME [--group GID]... [--ticket URL] [--token1 T] [--store FILE] [--transport websocket|polling]');
  process.exit(2);
}

// gru dev's playground route: a token1 for this user (development only).
async function mintDevToken1() {
  const r = await fetch(new URL('/api/v1/dev/token', args.ticket), {
    method: 'POST',
    headers: { authorization: `Bearer ${args['admin-key']}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: Number(args.user), user_name: args.name, app_type: args.app }),
  });
  if (!r.ok) throw new Error(`POST /api/v1/dev/token: ${r.status} ${await r.text()} (pass --token1)`);
  return (await r.json()).token;
}

// A localStorage-like store in a JSON file.
function fileStore(file) {
  const read = () => { try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch { return {}; } };
  return {
    getItem: (key) => read()[key] ?? null,
    setItem: (key, value) => {
      const all = read();
      all[key] = value;
      fs.writeFileSync(`${file}.tmp`, JSON.stringify(all));
      fs.renameSync(`${file}.tmp`, file);
    },
  };
}

const groups = args.group.map(Number);
const client = createClient({
  ticketUrl: args.ticket,
  userId: args.user,
  name: args.name,
  appType: args.app,
  ...(args.token1 ? { token1: args.token1 } : { getToken1: mintDevToken1 }),
  groups,
  store: fileStore(args.store || path.join(os.tmpdir(), `gru-chat-${args.user}.json`)),
  ...(args.transport ? { transports: [args.transport] } : {}),
});

const rl = readline.createInterface({ input: process.stdin, output: process.stdout, prompt: '> ' });
const print = (line) => {
  readline.clearLine(process.stdout, 0);
  readline.cursorTo(process.stdout, 0);
  console.log(line);
  rl.prompt(true);
};

client.on('state', ({ state, reason, msg }) => print(`* ${state}${reason ? ` (${reason}${msg ? `: ${msg}` : ''})` : ''}`));
client.on('connection', (c) => print(`* on ${c.name ?? c.url} over ${c.transport ?? '?'}${Object.keys(c.resume).length ? ', resumed' : ''}`));
client.on('notice', (n) => print(`* the spear says (${n.event}): ${n.msg ?? ''}`));
client.on('message', (m) => {
  const from = m.sender?.type === 'server' ? `[${m.sender.name}]` : `user ${m.fromId}`;
  print(`${m.channel ?? '?'}${m.position !== undefined ? ` #${m.position}` : ''}  ${from}: ${m.content}${m.replayed ? '  (while away)' : ''}`);
});
client.on('resync', (r) => print(`* ${r.channel}: resync (${r.reason}) — older messages must be reloaded from your own store`));
client.on('error', (e) => print(`! ${e.message}`));
client.on('state', ({ state }) => { if (state === 'closed') { rl.close(); } });

async function command(line) {
  const [word, ...rest] = line.split(' ');
  const arg = rest.join(' ');
  switch (word) {
    case '/quit': await client.close(); return;
    case '/stats': print(JSON.stringify(client.stats)); return;
    case '/join': print(`joined ${JSON.stringify(await client.join(arg.split(/[ ,]+/).map(Number)))}`); return;
    case '/leave': print(`left ${JSON.stringify(await client.leave(arg.split(/[ ,]+/).map(Number)))}`); return;
    case '/online': print(JSON.stringify(await client.online(Number(arg)))); return;
    default: print(`? ${word}`);
  }
}

async function send(line) {
  let to;
  let content = line;
  const m = /^([@#])(\d+)\s+(.*)$/.exec(line);
  if (m) {
    to = m[1] === '@' ? { user: Number(m[2]) } : { group: Number(m[2]) };
    content = m[3];
  } else if (groups.length > 0) {
    to = { group: groups[0] };
  } else {
    print('! no default group: use @USER text or #GROUP text');
    return;
  }
  const ack = await client.send({ to, content });
  print(`  ✓ ${ack.channel ?? ''}${ack.position !== undefined ? ` #${ack.position}` : ''} (id ${ack.id})`);
}

rl.on('line', (raw) => {
  const line = raw.trim();
  if (line) (line.startsWith('/') ? command(line) : send(line)).catch((e) => print(`! ${e.message}`));
  rl.prompt();
});
rl.on('close', () => client.close().then(() => process.exit(0)));
rl.prompt();
