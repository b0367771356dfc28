// The playground: Gru's front mock. Each panel is one user's client doing what a Gru client
// does (docs/api.md): a token1 (minted by `gru dev` itself, or pasted), a ticket from this
// node, the official socket.io client to the spear the ticket names, `auth` with token2,
// `subscribe`, then `msg` and `online`. Every event in and out is logged with its time.
'use strict';

(() => {
  const { el, clock, json } = gru;
  let players = 0;

  function player() {
    const n = ++players;
    const id = (name) => `p${n}-${name}`;
    const input = (name, attrs) => el('input', { id: id(name), 'data-testid': id(name), ...attrs });
    let socket = null;
    let user = null;

    const log = el('div', { class: 'log', 'data-testid': id('log') });
    const state = el('b', { 'data-testid': id('state') }, 'disconnected');
    const spear = el('span', { class: 'dim', 'data-testid': id('spear') }, '');
    const onlineResult = el('span', { 'data-testid': id('online-result') }, '');

    /** One line of the log: time, direction, event name, payload. */
    function note(dir, event, payload) {
      const text = payload === undefined ? '' : typeof payload === 'string' ? payload : JSON.stringify(payload);
      const line = el(
        'div',
        { 'data-event': event, 'data-dir': dir },
        el('span', { class: 't' }, clock(Date.now())),
        el('span', { class: dir }, `${dir === 'in' ? '←' : dir === 'out' ? '→' : '!'} ${event}`),
        ' ',
        text,
      );
      log.append(line);
      log.scrollTop = log.scrollHeight;
    }

    function setState(s, where) {
      state.textContent = s;
      state.className = s === 'connected' ? 'ok' : s === 'disconnected' || s === 'failed' ? 'bad' : 'warn';
      if (where !== undefined) spear.textContent = where;
      connectBtn.disabled = s !== 'disconnected' && s !== 'failed';
      disconnectBtn.disabled = !socket;
      for (const b of [sendBtn, onlineBtn, subscribeBtn]) b.disabled = s !== 'connected';
    }

    /** Emits `event` with a JSON-string payload (as Gru's clients do) and logs the ack. */
    function call(event, payload) {
      const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
      note('out', event, body);
      return new Promise((resolve) => {
        socket.timeout(10000).emit(event, body, (err, reply) => {
          if (err) {
            note('err', `${event} ack`, 'no acknowledgement within 10 s');
            resolve(null);
          } else {
            note('in', `${event} ack`, reply);
            resolve(reply);
          }
        });
      });
    }

    async function token1(uid, name, app) {
      const pasted = document.getElementById(id('token1')).value.trim();
      if (pasted) return pasted;
      try {
        const minted = await json('/api/v1/dev/token', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user_id: uid, user_name: name, app_type: app }),
        });
        note('sys', 'dev token', 'minted by gru dev');
        return minted.token;
      } catch (e) {
        throw new Error(e.status === 404 ? 'this node mints no dev tokens (not gru dev): paste a token1' : `dev token: ${e.message}`);
      }
    }

    function groupList() {
      return document
        .getElementById(id('groups'))
        .value.split(/[\s,]+/)
        .filter(Boolean)
        .map(Number)
        .filter((g) => Number.isSafeInteger(g) && g >= 0);
    }

    async function subscribe() {
      const groups = groupList();
      if (!groups.length) return;
      await call('subscribe', { userId: user.id, subscribeGroups: groups.map((g) => ({ id: g, name: `group ${g}` })) });
    }

    async function connect() {
      const uid = Number(document.getElementById(id('user')).value);
      const name = document.getElementById(id('name')).value.trim() || `user${uid}`;
      const app = document.getElementById(id('app')).value.trim() || 'web';
      if (!Number.isSafeInteger(uid) || uid < 0) {
        note('err', 'connect', 'the user id must be a whole number');
        return;
      }
      user = { id: uid, name, app };
      try {
        setState('ticket');
        const t1 = await token1(uid, name, app);
        const query = new URLSearchParams({ user_id: uid, user_name: name, app_type: app, token: t1 });
        note('out', 'GET /api/v1/ticket', `user ${uid}`);
        const ticket = await json(`/api/v1/ticket?${query}`);
        note('in', 'ticket', { spear: ticket.spear, backups: ticket.backups, expires_at: ticket.expires_at });
        setState('connecting', `spear ${ticket.spear.id} · ${ticket.spear.url}`);
        spear.dataset.spear = ticket.spear.id;
        // The client's default transports, as an application's page uses them: long-polling
        // first (the spear answers CORS for any origin), then the upgrade to WebSocket.
        socket = io(ticket.spear.url, { reconnection: false, forceNew: true });
        socket.onAny((event, ...args) => note('in', event, args.length === 1 ? args[0] : args));
        socket.on('connect_error', (e) => {
          note('err', 'connect_error', e.message);
          socket = null;
          setState('failed');
        });
        socket.on('disconnect', (reason) => {
          note('err', 'disconnect', reason);
          socket = null;
          setState('disconnected');
        });
        const engine = socket.io.engine;
        spear.dataset.transports = engine.transport.name;
        engine.on('upgrade', (transport) => {
          spear.dataset.transports += `,${transport.name}`;
          note('sys', 'transport', `upgraded to ${transport.name}`);
        });
        socket.on('connect', async () => {
          note('sys', 'connect', `socket.io id ${socket.id} over ${engine.transport.name}`);
          setState('authenticating');
          const reply = await call('auth', { id: uid, name, appType: app, token2: ticket.token });
          if (!reply || !reply.success) {
            setState('failed');
            return;
          }
          await subscribe();
          setState('connected');
        });
      } catch (e) {
        note('err', 'connect', e.message);
        setState('failed');
      }
    }

    async function send() {
      const type = Number(document.getElementById(id('msg-type')).value);
      const target = Number(document.getElementById(id('msg-target')).value);
      const content = document.getElementById(id('msg-content')).value;
      await call('msg', { type, target: { id: target, type: 1 }, content });
    }

    async function online() {
      const gid = document.getElementById(id('online-group')).value.trim();
      const reply = await call('online', gid);
      onlineResult.textContent = reply && reply.success ? `group ${gid}: ${reply.data.userIds.join(', ') || 'nobody'}` : 'failed';
      if (reply && reply.success) onlineResult.dataset.users = reply.data.userIds.join(',');
    }

    const connectBtn = el('button', { type: 'button', 'data-testid': id('connect'), onclick: connect }, 'connect');
    const disconnectBtn = el(
      'button',
      { type: 'button', 'data-testid': id('disconnect'), onclick: () => socket && socket.disconnect() },
      'disconnect',
    );
    const subscribeBtn = el('button', { type: 'button', 'data-testid': id('subscribe'), onclick: subscribe }, 'subscribe');
    const sendBtn = el('button', { type: 'button', 'data-testid': id('send'), onclick: send }, 'send');
    const onlineBtn = el('button', { type: 'button', 'data-testid': id('online'), onclick: online }, 'online?');
    const msgType = el(
      'select',
      { id: id('msg-type'), 'data-testid': id('msg-type') },
      el('option', { value: '0' }, 'unicast to user'),
      el('option', { value: '1' }, 'broadcast to group'),
    );

    const panel = el(
      'section',
      { 'data-testid': id('panel') },
      el('h2', {}, `client ${n}`),
      el(
        'div',
        { class: 'row' },
        el('label', { for: id('user') }, 'user id'),
        input('user', { type: 'number', min: 0, value: 1000 + n }),
        el('label', { for: id('name') }, 'name'),
        input('name', { value: `user${1000 + n}`, size: 10 }),
        el('label', { for: id('app') }, 'app'),
        input('app', { value: 'web', size: 5 }),
      ),
      el(
        'div',
        { class: 'row' },
        el('label', { for: id('token1') }, 'token1'),
        input('token1', { placeholder: 'empty: minted by gru dev', size: 34 }),
      ),
      el(
        'div',
        { class: 'row' },
        el('label', { for: id('groups') }, 'groups'),
        input('groups', { value: '10', placeholder: '10, 11', size: 12 }),
        connectBtn,
        subscribeBtn,
        disconnectBtn,
      ),
      el('div', { class: 'row' }, 'state: ', state, spear),
      el(
        'div',
        { class: 'row' },
        msgType,
        input('msg-target', { type: 'number', min: 0, value: 1000 + n, title: 'user or group id' }),
        input('msg-content', { value: 'hello', size: 18 }),
        sendBtn,
      ),
      el(
        'div',
        { class: 'row' },
        el('label', { for: id('online-group') }, 'who is online in group'),
        input('online-group', { type: 'number', min: 0, value: 10 }),
        onlineBtn,
        onlineResult,
      ),
      log,
    );
    msgType.addEventListener('change', () => {
      const target = document.getElementById(id('msg-target'));
      target.value = msgType.value === '1' ? groupList()[0] || 10 : user ? user.id : 1000 + n;
    });
    document.getElementById('players').append(panel);
    setState('disconnected');
  }

  document.getElementById('add-player').addEventListener('click', player);
  player();
})();
