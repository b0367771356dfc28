// The peer of `gru-bench relay` and `gru-bench connections`: one socket.io 4.8 server with the
// Redis adapter 8, serving the subset of gru's spear events the benchmarks drive, with gru's
// payloads (docs/api.md):
//
//   handshake auth {token}       -> with NODE_ID (below), the spear token is verified as a gru
//                                   spear does: HMAC-SHA256 with the spear secret, kind "t2",
//                                   not expired, listing this node; the connection is the
//                                   token's user. Without NODE_ID the token is not checked
//                                   and the user is `auth.uid` (`relay` measures messaging,
//                                   not authentication).
//   then                         -> room u:<uid>
//   join {groups: [10, 11]}      -> rooms g:<gid>, envelope reply
//   msg {type, target, content}  -> io.to(u:<uid> | g:<gid>).emit("msg", delivered) (the
//                                   sender's own connection included, as in gru), then the
//                                   envelope reply as ack and as `msg_result`, like gru
//
// Usage: node server.js PORT REDIS_URL [NODE_ID], the spear secret in GRU_PEER_SPEAR_SECRET when
// NODE_ID is given. Prints "listening <port>" once the adapter's Redis clients are connected,
// so the benchmark knows when messages can cross between servers.
'use strict';

const { createHmac, timingSafeEqual } = require('node:crypto');
const { createServer } = require('node:http');
const { Server } = require('socket.io');
const { createClient } = require('redis');
const { createAdapter } = require('@socket.io/redis-adapter');

const PARAM_ERROR = 1003;
const SYSTEM_ERROR = 1001;

function reply(success, errorCode, msg, data) {
  const r = { success, errorCode, msg };
  if (data !== undefined) r.data = data;
  return r;
}

// gru accepts a payload as a JSON object or as a JSON string (Gru's clients stringify).
function decode(data) {
  return typeof data === 'string' ? JSON.parse(data) : data;
}

// Replies the way gru does: as the acknowledgement when one was asked for, and as
// `<event>_result`.
function answer(socket, ack, event, r) {
  if (typeof ack === 'function') ack(r);
  socket.emit(`${event}_result`, r);
}

// The longest token gru accepts.
const MAX_TOKEN_LEN = 4096;

// gru's spear-token check (src/services/auth/token.rs, src/services/spear/session.rs):
// `v1.<payload>.<signature>`, base64url without padding, HMAC-SHA256 over `v1.<payload>`
// compared in constant time, then kind, expiry and this node among `spears`. Returns the
// claims, or throws with gru's reason.
function verifyToken(key, nodeId, token) {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LEN) throw new Error('malformed token');
  const dot = token.lastIndexOf('.');
  const signed = token.slice(0, dot);
  const first = signed.indexOf('.');
  if (dot < 0 || first < 0 || signed.slice(0, first) !== 'v1') throw new Error('malformed token');
  const sig = Buffer.from(token.slice(dot + 1), 'base64url');
  const want = createHmac('sha256', key).update(signed).digest();
  if (sig.length !== want.length || !timingSafeEqual(sig, want)) {
    throw new Error('bad token signature');
  }
  let claims;
  try {
    claims = JSON.parse(Buffer.from(signed.slice(first + 1), 'base64url').toString('utf8'));
  } catch (e) {
    throw new Error('malformed token');
  }
  if (!claims || !Number.isSafeInteger(claims.uid)) throw new Error('malformed token');
  if (claims.typ !== 't2') throw new Error('wrong kind of token');
  if (!(claims.exp > Math.floor(Date.now() / 1000))) throw new Error('token expired');
  if (!Array.isArray(claims.spears) || !claims.spears.includes(nodeId)) {
    throw new Error(`the token is not for spear ${nodeId}`);
  }
  return claims;
}

async function main() {
  const port = Number(process.argv[2]);
  const redisUrl = process.argv[3];
  const nodeId = process.argv[4] === undefined ? undefined : Number(process.argv[4]);
  const secret = process.env.GRU_PEER_SPEAR_SECRET;
  if (!Number.isInteger(port) || port <= 0 || !redisUrl) {
    console.error('usage: node server.js PORT REDIS_URL [NODE_ID]');
    process.exit(2);
  }
  if (nodeId !== undefined && (!Number.isSafeInteger(nodeId) || nodeId <= 0 || !secret)) {
    console.error('NODE_ID must be a node id, and GRU_PEER_SPEAR_SECRET set with it');
    process.exit(2);
  }
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  pubClient.on('error', (e) => console.error('redis pub:', e.message));
  subClient.on('error', (e) => console.error('redis sub:', e.message));
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const httpServer = createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pubClient, subClient),
    // gru's limit (spear.max_payload_bytes); ping timing is socket.io's default and gru's.
    maxHttpBufferSize: 64 * 1024,
    serveClient: false,
  });

  // Ids from a local counter: the peer has no cluster-wide id service; gru's ids come from
  // its Raft leader (strictly increasing), which costs gru more, not the peer.
  let nextId = 0;

  io.use((socket, next) => {
    const auth = socket.handshake.auth || {};
    let uid = Number(auth.uid);
    if (nodeId !== undefined) {
      try {
        uid = verifyToken(secret, nodeId, auth.token).uid;
      } catch (e) {
        return next(new Error(`${PARAM_ERROR}: invalid token: ${e.message}`));
      }
    }
    if (typeof auth.token !== 'string' || !Number.isSafeInteger(uid) || uid <= 0) {
      const err = new Error(`${PARAM_ERROR}: invalid token`);
      return next(err);
    }
    socket.data.uid = uid;
    socket.join(`u:${uid}`);
    next();
  });

  io.on('connection', (socket) => {
    socket.on('join', (data, ack) => {
      let p;
      try {
        p = decode(data);
      } catch (e) {
        return answer(socket, ack, 'join', reply(false, PARAM_ERROR, e.message));
      }
      if (!p || !Array.isArray(p.groups) || p.groups.length === 0) {
        return answer(socket, ack, 'join', reply(false, PARAM_ERROR, 'groups must not be empty'));
      }
      socket.join(p.groups.map((g) => `g:${g}`));
      answer(socket, ack, 'join', reply(true, 0, 'ok', { groups: p.groups }));
    });

    socket.on('msg', (data, ack) => {
      let p;
      try {
        p = decode(data);
      } catch (e) {
        return answer(socket, ack, 'msg', reply(false, PARAM_ERROR, e.message));
      }
      if (!p || (p.type !== 0 && p.type !== 1) || !p.target || typeof p.content !== 'string') {
        return answer(socket, ack, 'msg', reply(false, PARAM_ERROR, 'bad msg'));
      }
      const id = ++nextId;
      const createTime = Date.now();
      const room = p.type === 0 ? `u:${p.target.id}` : `g:${p.target.id}`;
      try {
        io.to(room).emit('msg', {
          id,
          createTime,
          fromId: socket.data.uid,
          msgType: p.type,
          target: { id: String(p.target.id), type: p.target.type ?? -1 },
          content: p.content,
          expireTime: 0,
        });
      } catch (e) {
        return answer(socket, ack, 'msg', reply(false, SYSTEM_ERROR, e.message));
      }
      answer(socket, ack, 'msg', reply(true, 0, 'received', { id, createTime }));
    });
  });

  httpServer.listen(port, '127.0.0.1', () => {
    console.log(`listening ${port}`);
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pubClient.quit(), subClient.quit()]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
