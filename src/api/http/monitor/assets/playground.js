// The playground: Gru's front mock on gru's JavaScript SDK (clients/js, `gru-client`, served as
// /assets/gru-client.js: window.gruClient). Each panel is one user's client: createClient with
// this node's ticket, a token1 minted by `gru dev` (or pasted), the groups typed in, positions
// kept in localStorage (a reload resumes where the page was) and the official socket.io client
// (window.io). The panel shows the connection's state and spear (the SDK's `connection` and
// `transport` events), the place of every channel, the SDK's counters, the conversation
// (`replayed` marks what the resume brought) and an event log (with the spear's `notice`s);
// "kill my connection" is the SDK's dropConnection(): the socket dies under the SDK without a
// goodbye so that its reconnection and resume can be watched.
//
// Both lists take thousands of rows a second (a server publishing to the user): they keep the
// last FEED_CAP entries, draw once per animation frame, and hold at most FEED_CAP rows.
'use strict';

(() => {
  const { el, clock, json } = gru;
  const { createClient, positionsKey } = gruClient;

  /** Entries each list keeps (and rows it draws); older ones are dropped and counted. */
  const FEED_CAP = 500;
  /** Where the panels' settings survive a reload of this tab. */
  const SAVED = 'gru-playground:players';

  /** localStorage when the page may use it, else nothing (the SDK then keeps places in memory). */
  const storage = (() => {
    try {
      const probe = 'gru-playground:probe';
      window.localStorage.setItem(probe, '1');
      window.localStorage.removeItem(probe);
      return window.localStorage;
    } catch (_) {
      return undefined;
    }
  })();

  /** `{channel: {epoch, position}}` as `u:1001 #5, g:10 #3`. */
  function places(map) {
    const parts = Object.entries(map || {}).map(([c, at]) => `${c} #${at.position}`);
    return parts.length ? parts.join(', ') : 'none';
  }

  /** A duration as `3 min`, `24 h`. */
  function inWords(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    return `${Math.round(s / 3600)} h`;
  }

  function short(v) {
    if (v === undefined) return '';
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    return s.length > 600 ? `${s.slice(0, 600)}…` : s;
  }

  /**
   * A list that takes thousands of rows a second. It keeps the last `cap` entries (older ones
   * are dropped and counted), draws what came since the last frame in one batch per animation
   * frame, and never holds more than `cap` rows. Paused — its button, or scrolled up away from
   * the bottom — it keeps collecting and draws nothing; its header says how many came since.
   */
  class Feed {
    constructor({ testid, title, rowTestid, render, cap = FEED_CAP }) {
      this.cap = cap;
      this.render = render;
      this.rowTestid = rowTestid;
      this.entries = [];
      this.seq = 0; // entries ever pushed
      this.drawn = 0; // seq of the last entry drawn
      this.base = 0; // seq at the last clear
      this.paused = false;
      this.held = false; // scrolled up
      this.frame = 0;
      this.rows = el('div', { class: 'rows', 'data-testid': testid });
      this.info = el('span', { class: 'info dim', 'data-testid': `${testid}-info` });
      this.pauseBtn = el('button', { type: 'button', class: 'small', 'data-testid': `${testid}-pause`, onclick: () => this.setPaused(!this.paused) }, 'pause');
      const clearBtn = el('button', { type: 'button', class: 'small', 'data-testid': `${testid}-clear`, onclick: () => this.clear() }, 'clear');
      this.node = el('div', { class: 'feed' }, el('div', { class: 'feed-head' }, el('b', {}, title), this.info, this.pauseBtn, clearBtn), this.rows);
      this.rows.addEventListener('scroll', () => {
        const bottom = this.rows.scrollHeight - this.rows.scrollTop - this.rows.clientHeight < 8;
        if (this.held === !bottom) return;
        this.held = !bottom;
        this.schedule();
      });
    }

    /** Adds `entry` (drawn with the next frame); returns it, for `update`. */
    push(entry) {
      this.seq += 1;
      entry.seq = this.seq;
      this.entries.push(entry);
      if (this.entries.length >= 2 * this.cap) this.entries.splice(0, this.entries.length - this.cap);
      this.schedule();
      return entry;
    }

    /** Draws `entry` again (its fields changed) if it is on screen. */
    update(entry) {
      if (!entry.row || !entry.row.isConnected) return;
      const row = this.draw1(entry);
      entry.row.replaceWith(row);
      entry.row = row;
    }

    clear() {
      this.entries = [];
      this.base = this.seq;
      this.drawn = this.seq;
      this.rows.replaceChildren();
      this.schedule();
    }

    setPaused(paused) {
      this.paused = paused;
      this.pauseBtn.textContent = paused ? 'resume' : 'pause';
      this.pauseBtn.classList.toggle('on', paused);
      this.node.classList.toggle('paused', paused);
      this.schedule();
    }

    schedule() {
      if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
    }

    draw1(entry) {
      const row = this.render(entry);
      row.setAttribute('data-testid', this.rowTestid);
      return row;
    }

    flush() {
      this.frame = 0;
      const waiting = this.seq - this.drawn;
      const kept = Math.min(this.entries.length, this.cap);
      if (this.paused || this.held) {
        this.info.textContent = `${this.paused ? 'paused' : 'scrolled up'} · ${waiting} new`;
        return;
      }
      if (waiting > 0) {
        const fresh = this.entries.slice(Math.max(0, this.entries.length - Math.min(waiting, this.cap)));
        const batch = document.createDocumentFragment();
        for (const entry of fresh) {
          entry.row = this.draw1(entry);
          batch.append(entry.row);
        }
        if (fresh.length >= this.cap) this.rows.replaceChildren(batch);
        else this.rows.append(batch);
        for (let extra = this.rows.childElementCount - this.cap; extra > 0; extra--) this.rows.firstElementChild.remove();
        this.drawn = this.seq;
        this.rows.scrollTop = this.rows.scrollHeight;
      }
      const dropped = this.seq - this.base - kept;
      this.info.textContent = `${kept} kept${dropped ? ` · ${dropped} older dropped` : ''}`;
    }
  }

  /** Settings of the panels (sessionStorage: this tab), so a reload brings them back. */
  const saved = {
    read() {
      try {
        return JSON.parse(sessionStorage.getItem(SAVED) || '[]');
      } catch (_) {
        return [];
      }
    },
    write(list) {
      try {
        sessionStorage.setItem(SAVED, JSON.stringify(list));
      } catch (_) {
        /* not kept */
      }
    },
  };
  const panels = [];
  /** Set when the page goes: the clients' closing must not be saved as the panels' settings. */
  let leaving = false;
  function saveAll() {
    if (!leaving) saved.write(panels.map((p) => p.settings()));
  }

  function player(init) {
    const n = panels.length + 1;
    const id = (name) => `p${n}-${name}`;
    const input = (name, attrs) => el('input', { id: id(name), 'data-testid': id(name), ...attrs });
    const value = (name) => document.getElementById(id(name)).value.trim();
    const preset = init || {};

    let client = null;
    /** Spear ids by URL, from the ticket answers (for the log's connection attempts). */
    const spearIds = new Map();
    let received = 0;
    let lastPositions = '';

    // --- the two lists --------------------------------------------------------------------

    const conversation = new Feed({
      testid: id('conversation'),
      rowTestid: id('conversation-row'),
      title: 'conversation',
      render(e) {
        if (e.kind === 'in') {
          const from = e.sender ? `${e.sender} (server)` : e.mine ? 'you' : `user ${e.from}`;
          return el(
            'div',
            {
              class: `msg in${e.replayed ? ' replayed' : ''}`,
              'data-dir': 'in',
              'data-channel': e.channel,
              'data-position': e.position,
              'data-content': e.content,
              'data-from': e.from,
              'data-replayed': e.replayed ? '1' : '0',
            },
            el('span', { class: 't' }, clock(e.t)),
            el('span', { class: 'place' }, `${e.channel || '–'} #${e.position ?? '–'}`),
            el('span', { class: 'who' }, from),
            e.replayed ? el('span', { class: 'tag', title: 'replayed by the resume, before the connection went live' }, 'resumed') : null,
            el('span', { class: 'text' }, e.content),
          );
        }
        if (e.kind === 'out') {
          const where = e.status === 'acked' ? `${e.ack.channel || e.to} #${e.ack.position ?? '–'}` : e.to;
          const status = e.status === 'failed' ? `✗ ${e.error}` : e.status === 'acked' ? '✓' : 'sending…';
          return el(
            'div',
            {
              class: `msg out ${e.status}`,
              'data-dir': 'out',
              'data-status': e.status,
              'data-channel': e.status === 'acked' ? e.ack.channel : e.to,
              'data-position': e.status === 'acked' ? e.ack.position : undefined,
              'data-content': e.content,
              title: `clientMsgId ${e.clientMsgId || '–'}; sent while ${e.stateAtSend}`,
            },
            el('span', { class: 't' }, clock(e.t)),
            el('span', { class: 'place' }, `→ ${where}`),
            el('span', { class: 'who' }, status),
            el('span', { class: 'text' }, e.content),
          );
        }
        if (e.kind === 'resync') {
          return el(
            'div',
            { class: 'msg err', 'data-dir': 'resync', 'data-channel': e.channel, 'data-position': e.position },
            el('span', { class: 't' }, clock(e.t)),
            `resync ${e.channel}: continues after epoch ${e.epoch} #${e.position} (${e.reason}): what came before is not replayed, reload it from your own store`,
          );
        }
        return el('div', { class: `mark ${e.bad ? 'err' : ''}`, 'data-dir': 'mark' }, el('span', { class: 't' }, clock(e.t)), `— ${e.text} —`);
      },
    });

    const log = new Feed({
      testid: id('log'),
      rowTestid: id('log-row'),
      title: 'event log',
      render(e) {
        const arrow = e.level === 'in' ? '←' : e.level === 'out' ? '→' : e.level === 'err' ? '!' : '·';
        return el(
          'div',
          { class: `ev ${e.level}`, 'data-event': e.event, 'data-level': e.level },
          el('span', { class: 't' }, clock(e.t)),
          el('span', { class: e.level }, `${arrow} ${e.event}`),
          ' ',
          e.text,
        );
      },
    });

    /** One line of the event log; level `in`, `out`, `sys` or `err` (drawn red). */
    function note(level, event, payload) {
      log.push({ t: Date.now(), level, event, text: short(payload) });
    }

    // --- status ---------------------------------------------------------------------------

    const stateEl = el('b', { class: 'state dim', 'data-testid': id('state') }, 'idle');
    const reasonEl = el('span', { class: 'dim', 'data-testid': id('state-reason') }, '');
    const spearEl = el('span', { 'data-testid': id('spear') }, '–');
    const groupsEl = el('span', { 'data-testid': id('groups-joined') }, '–');
    const positionsEl = el('div', { class: 'positions', 'data-testid': id('positions') }, el('span', { class: 'dim' }, 'no channel yet'));
    const counts = {};
    const countEl = (key, label, hint) => {
      counts[key] = el('b', { 'data-testid': id(`count-${key}`) }, '0');
      return el('span', { class: 'count', title: hint }, counts[key], ` ${label}`);
    };
    const countsRow = el(
      'div',
      { class: 'counts' },
      countEl('received', 'received', 'messages delivered to the application (each once)'),
      countEl('duplicates', 'duplicates dropped', 'stats.duplicatesDropped: at or below the known place of their channel'),
      countEl('retries', 'sends retried', 'stats.sendRetries: send attempts after the first, same clientMsgId'),
      countEl('reconnects', 'reconnects', 'stats.reconnects: connections that went live after the first'),
      countEl('resyncs', 'resyncs', 'stats.resyncs'),
    );

    let statusFrame = 0;
    function scheduleStatus() {
      if (!statusFrame) statusFrame = requestAnimationFrame(drawStatus);
    }
    function drawStatus() {
      statusFrame = 0;
      if (!client) return;
      const s = client.stats;
      const set = (key, v) => {
        const text = String(v);
        if (counts[key].textContent !== text) counts[key].textContent = text;
      };
      set('received', received);
      set('duplicates', s.duplicatesDropped);
      set('retries', s.sendRetries);
      set('reconnects', s.reconnects);
      set('resyncs', s.resyncs);
      const groups = client.groups.join(', ') || 'none';
      if (groupsEl.textContent !== groups) groupsEl.textContent = groups;
      const now = client.positions();
      const key = JSON.stringify(now);
      if (key === lastPositions) return;
      lastPositions = key;
      const rows = Object.entries(now)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([channel, at]) =>
          el(
            'tr',
            { 'data-testid': id('position'), 'data-channel': channel, 'data-epoch': at.epoch, 'data-position': at.position },
            el('td', {}, channel),
            el('td', { class: 'num' }, `#${at.position}`),
            el('td', { class: 'dim', title: 'epoch: changes when the history behind the channel was lost or reset' }, at.epoch),
          ),
        );
      positionsEl.replaceChildren(
        rows.length
          ? el('table', {}, el('tr', {}, el('th', {}, 'channel'), el('th', { class: 'num' }, 'position'), el('th', {}, 'epoch')), rows)
          : el('span', { class: 'dim' }, 'no channel yet'),
      );
    }

    function showState(state, reason) {
      stateEl.textContent = state;
      stateEl.dataset.state = state;
      stateEl.className = `state ${state === 'live' ? 'ok' : state === 'connecting' || state === 'reconnecting' ? 'warn' : state === 'idle' ? 'dim' : 'bad'}`;
      reasonEl.textContent = reason ? `(${reason})` : '';
      reasonEl.dataset.reason = reason || '';
      const open = client && state !== 'closed';
      connectBtn.disabled = !!open;
      closeBtn.disabled = !open;
      killBtn.disabled = state !== 'live';
      forgetBtn.disabled = !!open;
      for (const b of [sendBtn, joinBtn, leaveBtn, onlineBtn]) b.disabled = !open;
      for (const name of ['user', 'name', 'app', 'token1', 'groups', 'transports']) document.getElementById(id(name)).disabled = !!open;
      scheduleStatus();
    }

    /** The SDK's live connection (`client.connection`): its spear, address and transports. */
    function showSpear(info) {
      if (!info) return;
      const transports = info.transports.join(',');
      spearEl.textContent = `${info.id !== undefined ? `spear ${info.id}` : 'spear ?'} · ${info.url} · ${transports}`;
      spearEl.dataset.spear = info.id !== undefined ? String(info.id) : '';
      spearEl.dataset.url = info.url;
      spearEl.dataset.transports = transports;
    }

    /** `spear 2` for a connection, else its address. */
    function where(info) {
      if (!info) return '?';
      return info.id !== undefined ? `spear ${info.id}` : info.url;
    }

    // --- what the SDK is given: fetch and io, traced -------------------------------------

    /** The SDK's fetch (ticket), logged; learns the spears' ids from the answers. */
    async function tracedFetch(url, init) {
      const u = new URL(url, location.href);
      note('out', `GET ${u.pathname}`, `user ${u.searchParams.get('user_id') || u.searchParams.get('userId')}`);
      let resp;
      try {
        resp = await fetch(url, init);
      } catch (e) {
        note('err', 'ticket', e.message);
        throw e;
      }
      // Read before the SDK goes on, so that the connect line can name the spear.
      let body = null;
      try {
        body = await resp.clone().json();
      } catch (_) {
        /* not JSON */
      }
      if (resp.ok && body && body.spear) {
        for (const node of [body.spear, ...(body.backups || [])]) spearIds.set(node.url, node.id);
        const backups = (body.backups || []).map((b) => `spear ${b.id}`).join(', ') || 'none';
        const left = body.expires_at ? ` for ${inWords(body.expires_at * 1000 - Date.now())}` : '';
        note('in', 'ticket', `spear ${body.spear.id} (${body.spear.url}), backups: ${backups}; token good${left}`);
      } else {
        note('err', 'ticket', `${resp.status} ${body ? short(body.error || body) : 'not JSON'}`);
      }
      return resp;
    }

    /** The SDK's io(): socket.io's, each attempt and its answers logged (raw events too, when asked). */
    function tracedIo(url, opts) {
      const asked = (opts.transports || []).map(String).join(' then ');
      const socket = window.io(url, opts);
      const resume = opts.auth && opts.auth.resume;
      const spear = spearIds.get(url);
      note('out', 'connect', `${spear !== undefined ? `spear ${spear} ` : ''}${url} over ${asked}; resume ${places(resume)}`);
      socket.on('connect', () => note('sys', 'socket.io connect', `id ${socket.id}`));
      socket.on('auth_result', (r) => {
        const ok = r && r.success;
        note(ok ? 'in' : 'err', 'auth_result', ok ? `user ${r.data.userId}; went live at ${places(r.data.positions)}` : r);
      });
      socket.on('disconnect', (reason) => note('err', 'disconnect', reason));
      socket.onAny((event, ...args) => {
        if (rawBox.checked) note('in', event, args.length === 1 ? args[0] : args);
      });
      socket.onAnyOutgoing((event, ...args) => {
        if (rawBox.checked) note('out', event, args.filter((a) => typeof a !== 'function'));
      });
      return socket;
    }

    // --- the client -------------------------------------------------------------------------

    function groupList(name) {
      return value(name)
        .split(/[\s,]+/)
        .filter(Boolean)
        .map(Number)
        .filter((g) => Number.isSafeInteger(g) && g >= 0);
    }

    /** A token1 from `gru dev`'s route; `session` is the client asking (`{client, warned}`). */
    async function devToken(uid, name, app, session) {
      let minted;
      try {
        minted = await json('/api/v1/dev/token', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user_id: uid, user_name: name, app_type: app }),
        });
      } catch (e) {
        if (e.status === 404) {
          note('err', 'token1', 'this node mints no dev tokens (it is not gru dev): paste a token1');
          setTimeout(() => session.client.close(), 0);
        } else if (e.status === 401 && !session.warned) {
          session.warned = true;
          note('err', 'token1', 'the admin session is over (did the node restart?): sign in again at /login, then come back');
        }
        throw e;
      }
      note('sys', 'token1', 'minted by gru dev');
      return minted.token;
    }

    function connect() {
      const uid = Number(value('user'));
      if (!Number.isSafeInteger(uid) || uid < 0) {
        note('err', 'connect', 'the user id must be a whole number');
        return;
      }
      const name = value('name') || `user${uid}`;
      const app = value('app') || 'web';
      const pasted = value('token1');
      const groups = groupList('groups');
      received = 0;
      lastPositions = '';
      const stored = storage ? storage.getItem(positionsKey(uid)) : null;
      const options = {
        ticketUrl: location.origin,
        userId: uid,
        name,
        appType: app,
        groups,
        store: storage,
        io: tracedIo,
        fetch: tracedFetch,
        transports: value('transports').split(','),
        autoConnect: false,
      };
      const session = { client: null, warned: false };
      if (pasted) options.token1 = pasted;
      else options.getToken1 = () => devToken(uid, name, app, session);
      let self;
      try {
        self = createClient(options);
      } catch (e) {
        note('err', 'connect', e.message);
        return;
      }
      client = self;
      session.client = self;
      self.on('state', ({ state, reason, msg }) => {
        if (client !== self) return;
        showState(state, reason);
        const why = [reason, msg].filter(Boolean).join(': ');
        const bad = state === 'reconnecting' || state === 'degraded' || (state === 'closed' && reason !== 'closed');
        if (state === 'live') {
          const on = where(self.connection);
          const again = self.stats.reconnects > 0 ? ` (reconnect ${self.stats.reconnects})` : '';
          note('sys', 'state', `live on ${on}${again}`);
          conversation.push({ kind: 'mark', t: Date.now(), text: `live on ${on}${again}` });
        } else {
          note(bad ? 'err' : 'sys', 'state', `${state}${why ? ` (${why})` : ''}`);
          if (state !== 'connecting') conversation.push({ kind: 'mark', t: Date.now(), bad, text: `${state}${why ? `: ${why}` : ''}` });
        }
        saveAll();
      });
      self.on('message', (m) => {
        if (client !== self) return;
        received += 1;
        conversation.push({
          kind: 'in',
          t: Date.now(),
          channel: m.channel,
          position: m.position,
          epoch: m.epoch,
          from: m.fromId,
          mine: String(m.fromId) === String(uid),
          sender: m.sender && m.sender.name,
          content: m.content,
          replayed: !!m.replayed,
        });
        scheduleStatus();
      });
      self.on('connection', (info) => {
        if (client !== self) return;
        showSpear(info);
        const resumed = Object.keys(info.resume).length ? `resumed from ${places(info.resume)}` : 'nothing to resume';
        note('sys', 'connection', `${where(info)} (${info.name || info.url}) over ${info.transports.join(' → ') || '?'}; ${resumed}; attempt ${info.attempt}`);
      });
      self.on('transport', (e) => {
        if (client !== self) return;
        showSpear(self.connection);
        note('sys', 'transport', `upgraded to ${e.transport}`);
      });
      self.on('notice', (n) => {
        if (client !== self) return;
        note('err', n.event, n.payload);
      });
      self.on('resync', (r) => {
        if (client !== self) return;
        note('err', 'resync', `${r.channel}: ${r.reason}${r.local ? ' (found by the client)' : ''}; live messages continue after epoch ${r.epoch} #${r.position}`);
        conversation.push({ kind: 'resync', t: Date.now(), ...r });
        scheduleStatus();
      });
      self.on('error', (e) => {
        if (client !== self) return;
        note('err', `error ${e.code}`, e.message);
      });
      note('sys', 'client', `user ${uid} (${name}, ${app}), groups ${groups.join(', ') || 'none'}; stored places: ${stored ? places((JSON.parse(stored) || {}).channels) : 'none'}`);
      showState('connecting');
      self.connect();
      saveAll();
    }

    async function close() {
      if (!client) return;
      note('out', 'close', 'for good: pending sends are rejected, positions stay stored');
      await client.close();
      scheduleStatus();
      saveAll();
    }

    /** Drops the socket under the SDK (dropConnection), as a lost network would: no socket.io disconnect packet. */
    function kill() {
      const info = client && client.connection;
      if (!info) {
        note('err', 'kill', 'no open connection');
        return;
      }
      note('err', 'kill', `closing the ${info.transport || ''} transport under socket.io (no disconnect packet): the client sees a lost connection and resumes`);
      client.dropConnection();
    }

    function forget() {
      const uid = Number(value('user'));
      if (!storage || !Number.isSafeInteger(uid)) return;
      storage.removeItem(positionsKey(uid));
      note('sys', 'positions', `forgotten for user ${uid}: the next connection starts live, without a resume`);
    }

    function send() {
      if (!client) return;
      const group = value('msg-type') === '1';
      const target = value('msg-target');
      const content = document.getElementById(id('msg-content')).value;
      const repeat = Math.max(1, Math.min(1000, Number(value('msg-repeat')) || 1));
      for (let i = 1; i <= repeat; i++) {
        const text = repeat > 1 ? `${content} (${i}/${repeat})` : content;
        const entry = { kind: 'out', t: Date.now(), to: `${group ? 'g' : 'u'}:${target}`, content: text, status: 'pending', stateAtSend: client.state };
        const sent = client.send({ to: group ? { group: target } : { user: target }, content: text });
        entry.clientMsgId = sent.clientMsgId;
        conversation.push(entry);
        if (repeat <= 20 || i === 1 || i === repeat) note('out', 'msg', `${entry.to}: ${short(text)}${client.state === 'live' ? '' : ` (queued: ${client.state})`}`);
        sent.then(
          (ack) => {
            entry.status = 'acked';
            entry.ack = ack;
            conversation.update(entry);
            if (repeat <= 20 || i === repeat) note('in', 'msg ack', `${ack.channel || entry.to} #${ack.position ?? '–'}, id ${ack.id}${ack.stored ? ' (stored: will be delivered)' : ''}`);
          },
          (e) => {
            entry.status = 'failed';
            entry.error = e.code;
            conversation.update(entry);
            note('err', 'msg refused', `${entry.to}: ${e.code}${e.errorCode ? ` (${e.errorCode})` : ''}: ${e.message}`);
          },
        );
      }
      scheduleStatus();
    }

    async function request(what, call) {
      try {
        const answer = await call();
        scheduleStatus();
        return answer;
      } catch (e) {
        note('err', `${what} refused`, `${e.code}${e.errorCode ? ` (${e.errorCode})` : ''}: ${e.message}`);
        return null;
      }
    }

    async function join() {
      const groups = groupList('join-groups');
      if (!client || !groups.length) return;
      note('out', 'join', groups.join(', '));
      const answer = await request('join', () => client.join(groups));
      if (answer) note('in', 'join', `joined ${answer.groups.join(', ')}; live at ${places(answer.positions)}`);
    }

    async function leave() {
      const groups = groupList('join-groups');
      if (!client || !groups.length) return;
      note('out', 'leave', groups.join(', '));
      const answer = await request('leave', () => client.leave(groups));
      if (answer) note('in', 'leave', `left ${(answer.groups || groups).join(', ')}`);
    }

    async function online() {
      const gid = value('online-group');
      if (!client) return;
      note('out', 'online', `group ${gid}`);
      const answer = await request('online', () => client.online(gid));
      if (answer) {
        onlineResult.textContent = `group ${answer.groupId}: ${answer.userIds.join(', ') || 'nobody'}`;
        onlineResult.dataset.users = answer.userIds.join(',');
        note('in', 'online', `group ${answer.groupId}: ${answer.userIds.join(', ') || 'nobody'}`);
      } else {
        onlineResult.textContent = 'refused';
        delete onlineResult.dataset.users;
      }
    }

    // --- the panel --------------------------------------------------------------------------

    const button = (name, label, onclick, title) => el('button', { type: 'button', 'data-testid': id(name), onclick, title }, label);
    const connectBtn = button('connect', 'connect', connect);
    const closeBtn = button('close', 'close', close, 'client.close(): for good');
    const killBtn = button('kill', 'kill my connection', kill, "drops the socket without a goodbye (closes socket.io's transport): watch the reconnection and the resume");
    killBtn.classList.add('danger');
    const forgetBtn = button('forget', 'forget positions', forget, "removes this user's places from localStorage: the next connection resumes nothing");
    const sendBtn = button('send', 'send', send);
    const joinBtn = button('join', 'join', join);
    const leaveBtn = button('leave', 'leave', leave);
    const onlineBtn = button('online', 'online?', online);
    const onlineResult = el('span', { 'data-testid': id('online-result') }, '');
    const rawBox = el('input', { type: 'checkbox', id: id('raw'), 'data-testid': id('raw') });
    const msgType = el(
      'select',
      { id: id('msg-type'), 'data-testid': id('msg-type') },
      el('option', { value: '0' }, 'to user'),
      el('option', { value: '1' }, 'to group'),
    );
    const transports = el(
      'select',
      { id: id('transports'), 'data-testid': id('transports'), title: 'socket.io transports, in the order tried' },
      el('option', { value: 'websocket,polling' }, 'websocket, then polling'),
      el('option', { value: 'polling,websocket' }, 'polling, upgrade to websocket'),
      el('option', { value: 'polling' }, 'polling only'),
      el('option', { value: 'websocket' }, 'websocket only'),
    );
    const uid0 = preset.user ?? 1000 + n;

    const panel = el(
      'section',
      { class: 'player', 'data-testid': id('panel') },
      el('h2', {}, `client ${n} `, stateEl, ' ', reasonEl),
      el(
        'div',
        { class: 'row' },
        el('label', { for: id('user') }, 'user id'),
        input('user', { type: 'number', min: 0, value: uid0 }),
        el('label', { for: id('name') }, 'name'),
        input('name', { value: preset.name ?? `user${uid0}`, size: 10 }),
        el('label', { for: id('app') }, 'app'),
        input('app', { value: preset.app ?? 'web', size: 5 }),
        el('label', { for: id('groups') }, 'groups'),
        input('groups', { value: preset.groups ?? '10', placeholder: '10, 11', size: 8 }),
      ),
      el(
        'div',
        { class: 'row' },
        el('label', { for: id('token1') }, 'token1'),
        input('token1', { placeholder: 'empty: minted by gru dev', size: 28 }),
        transports,
        connectBtn,
        closeBtn,
        killBtn,
        forgetBtn,
      ),
      el(
        'dl',
        { class: 'kv' },
        el('dt', {}, 'on'),
        el('dd', {}, spearEl),
        el('dt', {}, 'groups'),
        el('dd', {}, groupsEl),
        el('dt', {}, 'counts'),
        el('dd', {}, countsRow),
        el('dt', {}, 'places'),
        el('dd', {}, positionsEl),
      ),
      el(
        'div',
        { class: 'row' },
        msgType,
        input('msg-target', { type: 'number', min: 0, value: uid0, title: 'user or group id' }),
        input('msg-content', { value: 'hello', size: 16 }),
        el('label', { for: id('msg-repeat'), title: 'sends that many, numbered' }, '×'),
        input('msg-repeat', { type: 'number', min: 1, max: 1000, value: 1, class: 'narrow' }),
        sendBtn,
      ),
      el(
        'div',
        { class: 'row' },
        input('join-groups', { value: '11', size: 6, title: 'groups to join or leave' }),
        joinBtn,
        leaveBtn,
        el('label', { for: id('online-group') }, 'online in group'),
        input('online-group', { type: 'number', min: 0, value: 10 }),
        onlineBtn,
        onlineResult,
      ),
      el('div', { class: 'panes' }, conversation.node, log.node),
      el('div', { class: 'row dim' }, rawBox, el('label', { for: id('raw') }, 'log every socket.io event (msg included)')),
    );
    msgType.addEventListener('change', () => {
      const target = document.getElementById(id('msg-target'));
      target.value = msgType.value === '1' ? groupList('groups')[0] ?? 10 : value('user');
    });
    if (preset.transports) transports.value = preset.transports;
    document.getElementById('players').append(panel);

    const me = {
      settings: () => ({
        user: value('user'),
        name: value('name'),
        app: value('app'),
        groups: value('groups'),
        transports: transports.value,
        // A pasted token is not kept: such a panel comes back disconnected.
        reconnect: !!client && client.state !== 'closed' && !value('token1'),
      }),
      close: () => client && client.close(),
    };
    panels.push(me);
    showState('idle');
    if (preset.reconnect) connect();
    return me;
  }

  document.getElementById('add-player').addEventListener('click', () => {
    player();
    saveAll();
  });
  // Positions are written to localStorage as messages come; closing flushes the last ones and
  // leaves the spear cleanly. The settings were saved before (a reload brings the panels back).
  window.addEventListener('pagehide', () => {
    saveAll();
    leaving = true;
    for (const p of panels) p.close();
  });
  // Back from the back-forward cache: the clients were closed on the way out.
  window.addEventListener('pageshow', (e) => {
    if (e.persisted) location.reload();
  });
  const restore = saved.read();
  if (restore.length) for (const s of restore) player(s);
  else player();
})();
