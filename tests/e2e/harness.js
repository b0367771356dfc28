// Starts `gru dev` or a cluster and offers the steps of the Gru client journey: token1 from
// `gru token`, ticket, socket.io connect with either official client over a chosen transport
// (TRANSPORTS), and promise wrappers around Gru's events. A cluster with two spears gets a
// private `redis-server` for its Redis relay and presence.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const net = require('node:net');
const dgram = require('node:dgram');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');

const GRU_BIN = process.env.GRU_BIN || path.join(__dirname, '..', '..', 'target', 'debug', 'gru');

// The admin keys: `gru dev`'s public one, and the one the harness's clusters are given.
const DEV_ADMIN_KEY = 'INSECURE-dev-admin-key-000000000000001';
const ADMIN_KEY = 'e2e-admin-key-0123456789abcdef0123456789ab';

// GETs `p` from the admin surface at `base` with `key`: its JSON, or an error naming the status.
async function admin(base, key, p) {
  const r = await fetch(`${base}${p}`, { headers: { authorization: `Bearer ${key}` } });
  const text = await r.text();
  if (!r.ok) throw new Error(`GET ${p}: ${r.status} ${text}`);
  return JSON.parse(text);
}

// Test ports come from below the kernel's ephemeral range (32768–60999 by default): a port
// from that range, found free and closed again, can become the source port of any outgoing
// connection (a node's own connection to Redis or to another node) before the node binds it.
// Each process walks the range from a random start and never hands out a port twice; a port
// is handed out only if TCP and UDP (gossip) can both bind it right now.
const PORTS = { first: 15000, count: 32768 - 15000 };
let cursor = Math.floor(Math.random() * PORTS.count);
const handedOut = new Set();

function bindable(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => {
      srv.close(() => {
        const udp = dgram.createSocket('udp4');
        udp.unref();
        udp.once('error', () => { udp.close(); resolve(false); });
        udp.bind(port, '127.0.0.1', () => udp.close(() => resolve(true)));
      });
    });
  });
}

async function freePort() {
  for (let tried = 0; tried < PORTS.count; tried++) {
    const port = PORTS.first + (cursor++ % PORTS.count);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${PORTS.first}..${PORTS.first + PORTS.count}`);
}

// Every process the harness spawned and has not seen exit; killed if this process exits
// before stop() (a failed before hook), so no gru or redis outlives the test run.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch (_) { /* gone */ }
  }
});
// A test run stopped by a signal exits through the handler above too.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => process.exit(128 + os.constants.signals[signal]));
}
function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

async function waitFor(what, deadlineMs, probe) {
  const start = Date.now();
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      if (e && e.fatal) throw e;
      /* not yet */
    }
    if (Date.now() - start > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// One `gru dev` process with every role; killed by stop().
async function startDev() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gru-e2e-'));
  const [http, grpc, sio, gossip] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const log = fs.openSync(path.join(dir, 'dev.log'), 'w');
  const child = track(spawn(GRU_BIN, ['dev', '--data-dir', path.join(dir, 'data'),
    '--http', `127.0.0.1:${http}`, '--grpc', `127.0.0.1:${grpc}`,
    '--sio', `127.0.0.1:${sio}`, '--gossip', `127.0.0.1:${gossip}`], { stdio: ['ignore', log, log] }));
  const base = `http://127.0.0.1:${http}`;
  try {
    await waitFor('gru dev to serve tickets', 20000, async () => {
      if (child.exitCode !== null) {
        throw Object.assign(new Error(`gru dev exited while starting; see ${dir}/dev.log`), { fatal: true });
      }
      const v = await admin(base, DEV_ADMIN_KEY, '/api/v1/cluster');
      return v.spears && v.spears.length === 1;
    });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    base,
    dir,
    // gru dev serves its admin surface on the same address, behind its public dev key.
    admin: (p) => admin(base, DEV_ADMIN_KEY, p),
    token1: (user, name, extra = []) => execFileSync(GRU_BIN, ['token', '--dev', '--user', String(user), '--name', name, ...extra]).toString().trim(),
    stop: async () => {
      const code = await new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (c) => resolve(c));
        child.kill('SIGTERM');
      });
      // Kept when it failed, or when GRU_E2E_KEEP is set (to read the node logs).
      if (code === 0 && !process.env.GRU_E2E_KEEP) fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

// Answers true when a Redis on `port` replies +PONG to PING.
function redisPing(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok) => { sock.destroy(); resolve(ok); };
    sock.setTimeout(500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      got += d.toString();
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

// A private `redis-server` on a free port without persistence, its files in `dir`; stop()
// kills it (SIGKILL) and waits for the exit.
async function startRedis(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', path.join(dir, 'redis.log')],
  { stdio: 'ignore' }));
  let spawnError = null;
  child.once('error', (e) => { spawnError = e; });
  const start = Date.now();
  for (;;) {
    if (spawnError) {
      throw new Error(`cannot run redis-server (${spawnError.message}); .ci/run installs it (apt-get install -y redis-server redis-tools)`);
    }
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}; see ${dir}/redis.log`);
    if (await redisPing(port)) break;
    if (Date.now() - start > 10000) {
      child.kill('SIGKILL');
      throw new Error(`redis-server on ${port} did not answer PING within 10 s; see ${dir}/redis.log`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    }),
  };
}

// A cluster of `gru run` processes from a generated cluster.toml: three core nodes (node 1
// also serves ticket) and one spear (node 4). With `spears: 2`, node 5 is a second spear, the
// relay is Redis (a private redis-server; RocketMQ with GRU_E2E_ROCKETMQ) and node 1 also
// serves stat.
async function startCluster({ spears = 1 } = {}) {
  if (spears !== 1 && spears !== 2) throw new Error(`startCluster: spears must be 1 or 2, not ${spears}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gru-e2e-cluster-'));
  const nodes = [
    { id: 1, roles: spears > 1 ? ['core', 'ticket', 'stat'] : ['core', 'ticket'] }, { id: 2, roles: ['core'] },
    { id: 3, roles: ['core'] }, { id: 4, roles: ['spear'] },
  ];
  if (spears > 1) nodes.push({ id: 5, roles: ['spear'] });
  // A name of its own: with RocketMQ the spears' topics are named after the cluster, and a
  // broker shared by several clusters of one run would hand a new cluster's spear what an
  // earlier cluster's spear of the same id left unread (a killed spear commits nothing).
  const name = `e2e-${path.basename(dir).replace(/[^A-Za-z0-9]/g, '')}`;
  let toml = `[cluster]\nname = "${name}"\n\n`;
  toml += '[auth]\nbusiness_secret = "e2e-business-secret-0123456789"\nspear_secret = "e2e-spear-secret-0123456789abc"\n';
  toml += 'gossip_keys = ["e2e-gossip-key-0123456789abcdef0123456789ab"]\n';
  toml += `[[auth.admin_keys]]\nname = "e2e"\nsecret = "${ADMIN_KEY}"\n`;
  let redis = null;
  if (spears > 1) {
    redis = await startRedis(path.join(dir, 'redis'));
    // Cluster-wide tables, so before the first [[nodes]]. With GRU_E2E_ROCKETMQ (a name
    // server's address, given by the Rust test that started it) the relay is RocketMQ, which
    // keeps its routes in the same Redis.
    const namesrv = process.env.GRU_E2E_ROCKETMQ;
    toml += `\n[relay]\nkind = "${namesrv ? 'rocketmq' : 'redis'}"\n\n[redis]\nurl = "${redis.url}"\n`;
    if (namesrv) toml += `\n[rocketmq]\nname_server = "${namesrv}"\n`;
  }
  for (const n of nodes) {
    n.http = await freePort();
    const ports = { grpc: await freePort(), gossip: await freePort(), sio: await freePort() };
    toml += `\n[[nodes]]\nid = ${n.id}\nroles = [${n.roles.map((r) => `"${r}"`).join(', ')}]\ndata_dir = "data${n.id}"\n`;
    // The admin surface and the server API share the public address (loopback: allowed).
    toml += `[nodes.listen]\ngrpc = "127.0.0.1:${ports.grpc}"\nhttp = "127.0.0.1:${n.http}"\ngossip = "127.0.0.1:${ports.gossip}"\n`;
    toml += `admin = "127.0.0.1:${n.http}"\n`;
    if (n.roles.includes('spear')) toml += `sio = "127.0.0.1:${ports.sio}"\nserver_api = "127.0.0.1:${n.http}"\n`;
  }
  const config = path.join(dir, 'cluster.toml');
  fs.writeFileSync(config, toml);
  // Mutual TLS on the internal port, as the README's cluster: the one `gru certs` line.
  execFileSync(GRU_BIN, ['certs', '--config', config], { stdio: 'ignore' });
  const children = nodes.map((n) => {
    const log = fs.openSync(path.join(dir, `node${n.id}.log`), 'w');
    return track(spawn(GRU_BIN, ['run', '--config', config, '--node', String(n.id)], { stdio: ['ignore', log, log] }));
  });
  const base = `http://127.0.0.1:${nodes[0].http}`;
  try {
    await waitFor(`the cluster to serve tickets (${spears} spear(s))`, 30000, async () => {
      const dead = nodes.find((n, i) => children[i].exitCode !== null);
      if (dead) {
        const log = fs.readFileSync(path.join(dir, `node${dead.id}.log`), 'utf8').trim().split('\n').slice(-5).join('\n');
        throw Object.assign(new Error(`node ${dead.id} exited while starting (${dir}):\n${log}`), { fatal: true });
      }
      const v = await admin(base, ADMIN_KEY, '/api/v1/cluster');
      return v.leader_id && v.spears && v.spears.length === spears;
    });
  } catch (e) {
    // Nothing started may outlive a failed start: a live child keeps this process (and the
    // test run waiting for it) alive.
    for (const child of children) child.kill('SIGKILL');
    if (redis) await redis.stop();
    throw e;
  }
  const stopOne = (child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
  return {
    base,
    dir,
    redis,
    // Node 1's admin surface (its HTTP address: test nodes share it, on loopback).
    admin: (p) => admin(base, ADMIN_KEY, p),
    // Kills node `id` (-9), as a crash would.
    kill: (id) => {
      const child = children[nodes.findIndex((n) => n.id === id)];
      child.kill('SIGKILL');
      return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null
        ? resolve() : child.once('exit', () => resolve())));
    },
    token1: (user, name, extra = []) => execFileSync(GRU_BIN, ['token', '--config', config, '--user', String(user), '--name', name, ...extra]).toString().trim(),
    // Spears first (they deregister through the cores), then the cores, then Redis; 0 when
    // every gru process exits cleanly.
    stop: async () => {
      const first = await Promise.all(children.slice(3).map(stopOne));
      const rest = await Promise.all(children.slice(0, 3).map(stopOne));
      if (redis) await redis.stop();
      // A node the test killed has no exit code to report.
      const code = [...first, ...rest].find((c) => c !== 0 && c !== null) ?? 0;
      // Kept when it failed, or when GRU_E2E_KEEP is set (to read the node logs).
      if (code === 0 && !process.env.GRU_E2E_KEEP) fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

async function ticket(base, user, name, token1) {
  const q = new URLSearchParams({ userId: String(user), userName: name, appType: 'web', token1 });
  const r = await fetch(`${base}/ticket?${q}`);
  return r.json();
}

// The transports a test can choose: 'websocket' (WebSocket only), 'polling' (HTTP
// long-polling only) and 'default' (the client's default: long-polling first, then the upgrade
// to WebSocket).
const TRANSPORTS = ['websocket', 'polling', 'default'];
const TRANSPORT_OPTS = {
  websocket: { transports: ['websocket'] },
  polling: { transports: ['polling'] },
  default: {},
};

// Connects with socket.io-client v4 (protocol v5) or v2 (protocol v4) over `opts.transport`
// (one of TRANSPORTS; 'websocket' when not given); the other options go to the client. The
// socket records the engine's transports in order in `s.transports` (the first, then one per
// upgrade): assertTransport() checks the connection took the path it claims.
function connect(version, addr, opts = {}) {
  const { transport = 'websocket', ...rest } = opts;
  if (!TRANSPORT_OPTS[transport]) throw new Error(`connect: transport must be one of ${TRANSPORTS}, not ${transport}`);
  const io = require(version === 2 ? 'sio2' : 'sio4');
  const socket = io(addr, { forceNew: true, reconnection: false, ...TRANSPORT_OPTS[transport], ...rest });
  socket.transport = transport;
  // Both clients open their engine and its first transport synchronously.
  const engine = socket.io.engine;
  socket.transports = [engine.transport.name];
  engine.on('upgrade', (t) => socket.transports.push(t.name));
  return socket;
}

// The transport a connection of `transport` starts on.
function firstTransport(transport) {
  return transport === 'websocket' ? 'websocket' : 'polling';
}

// Asserts that `s` (from connect()) took the path its transport claims: WebSocket only, or
// long-polling only and still polling, or (default) long-polling and then the upgrade to
// WebSocket, waited for until `deadlineMs`.
async function assertTransport(s, deadlineMs = 20000) {
  const engine = () => s.io.engine.transport.name;
  if (s.transport === 'default') {
    await waitFor(`the upgrade from polling to websocket (transports so far ${s.transports})`, deadlineMs,
      async () => s.transports.length > 1);
    assert.deepEqual(s.transports, ['polling', 'websocket'], 'default: started on polling, upgraded to websocket');
    assert.equal(engine(), 'websocket');
  } else {
    assert.deepEqual(s.transports, [s.transport], `${s.transport}: no other transport, no upgrade`);
    assert.equal(engine(), s.transport);
  }
}

// Deadlines (`ms`) are generous on purpose: they end a test that would hang, they are not
// what a test measures. Their timers are unref'd: one left by a failed test (the event never
// came, the test ended on another error) does not hold the test file's process for its length.
function once(socket, event, ms = 20000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    t.unref();
    socket.once(event, (v) => { clearTimeout(t); resolve(v); });
  });
}

// Emits Gru's way (a JSON string) and waits for the acknowledgement.
function call(socket, event, payload, ms = 20000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ack for ${event} within ${ms} ms`)), ms);
    t.unref();
    socket.emit(event, typeof payload === 'string' ? payload : JSON.stringify(payload), (reply) => {
      clearTimeout(t);
      resolve(reply);
    });
  });
}

module.exports = {
  TRANSPORTS, startDev, startCluster, ticket, connect, firstTransport, assertTransport, once, call, waitFor,
};
