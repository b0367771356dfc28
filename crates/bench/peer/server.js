// The peer of `gru bench relay`: one socket.io 4.8 server with the Redis adapter 8, serving the
// subset of gru's spear events the benchmark drives, with gru's payloads (docs/api.md):
//
//   handshake auth {token, uid}  -> the connection is user `uid` (the token is not checked:
//                                   the peer measures messaging, not authentication)
//   join {groups: [10]}          -> rooms g:<gid>, envelope reply
//   msg {type, target, content}  -> io.to(u:<uid> | g:<gid>).emit("msg", delivered), then the
//                                   envelope reply as ack and as `msg_result`, like gru
//
// Usage: node server.js PORT REDIS_URL. Prints "listening <port>" once the adapter's Redis
// clients are connected, so the benchmark knows when messages can cross between servers.
'use strict';

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

async function main() {
  const port = Number(process.argv[2]);
  const redisUrl = process.argv[3];
  if (!Number.isInteger(port) || port <= 0 || !redisUrl) {
    console.error('usage: node server.js PORT REDIS_URL');
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
    const uid = Number(auth.uid);
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
