// The dashboard: renders each snapshot of /api/v1/monitor/stream (one a second) and keeps the
// last five minutes of samples in memory for the charts, each at the time it was gathered. The
// numbers on the page are the snapshot's, unchanged; elements carry data-testid so tests can
// read them. When the stream is lost the panels it feeds are dimmed and marked stale until it
// comes back. The user lookup asks the admin routes of the node itself.
'use strict';

(() => {
  const { el, fill, num, rate, ago, hm, chart, json } = gru;
  const WINDOW = 5 * 60 * 1000; // what the charts show, ms
  const KEEP = 2000; // most samples a series keeps, whatever the interval
  const series = new Map();
  let drillGroup = null;
  let last = null;
  // The stream's state: when the last snapshot arrived (this browser's clock), the server's
  // clock minus this one's, and the snapshot interval.
  let receivedAt = 0;
  let skew = 0;
  let interval = 1000;
  let stale = true;
  let signedOut = false;

  /** The server's time now, as far as this page can tell. */
  function serverNow() {
    return Date.now() + skew;
  }

  /** Records `value` (a number, or null: unknown then) at `t` in series `name`. */
  function record(name, t, value) {
    let s = series.get(name);
    if (!s) {
      s = [];
      series.set(name, s);
    }
    s.push({ t, v: typeof value === 'number' && isFinite(value) ? value : null });
    const old = s.findIndex((p) => p.t >= t - WINDOW - 60000);
    if (old > 0) s.splice(0, old);
    if (s.length > KEEP) s.splice(0, s.length - KEEP);
  }

  /** An empty place for series `name`'s chart; `drawCharts` fills every such place. */
  function slot(name, testid, fmt, big) {
    return el('div', { 'data-series': name, 'data-testid': testid, 'data-fmt': fmt, 'data-big': big || null });
  }

  /** Draws every chart of the page for the window ending now (also between snapshots, so a
   * lost stream shows as the line ending before the right edge). */
  function drawCharts() {
    const to = serverNow();
    const opts = { from: to - WINDOW, to, gapMs: Math.max(4 * interval, 4000) };
    for (const place of document.querySelectorAll('[data-series]')) {
      const big = place.dataset.big !== undefined;
      const drawn = chart(series.get(place.dataset.series) || [], { ...opts, big, fmt: place.dataset.fmt === 'num' ? num : rate });
      place.replaceChildren(drawn);
      place.dataset.segments = drawn.dataset.segments;
      place.dataset.points = drawn.dataset.points;
    }
  }

  function sum(values) {
    let total = null;
    for (const v of values) if (typeof v === 'number') total = (total || 0) + v;
    return total;
  }

  function renderRaft(raft) {
    fill('raft-leader', raft.leader_id === null || raft.leader_id === undefined ? 'none' : `node ${raft.leader_id}`);
    document.getElementById('raft-leader').dataset.value = num(raft.leader_id);
    fill('raft-term', num(raft.term));
    fill('raft-last', num(raft.leader_last_log_index));
    fill('raft-served', raft.served_by ? `node ${raft.served_by}` : '–');
    fill(
      'members',
      raft.members.map((m) => {
        const leader = m.id === raft.leader_id;
        return el(
          'tr',
          { 'data-testid': `member-${m.id}`, class: m.healthy ? '' : 'down' },
          el('td', {}, `node ${m.id}`, leader ? ' ★' : ''),
          el('td', {}, m.raft),
          el('td', { 'data-testid': `member-${m.id}-state` }, m.state || '–'),
          el(
            'td',
            { 'data-testid': `member-${m.id}-health`, title: m.error || '' },
            el('span', { class: `pill ${m.healthy ? 'ok' : 'bad'}` }, m.healthy ? 'healthy' : 'unreachable'),
          ),
          el('td', { class: 'num' }, num(m.term)),
          el('td', { class: 'num', 'data-testid': `member-${m.id}-applied` }, num(m.applied_index)),
          el('td', { class: `num ${m.lag > 100 ? 'warn' : ''}`, 'data-testid': `member-${m.id}-lag` }, num(m.lag)),
        );
      }),
    );
  }

  function renderNodes(nodes) {
    fill(
      'nodes',
      nodes.length
        ? nodes.map((n) => {
            const state = n.up === true ? 'up' : n.up === false ? 'down' : 'unknown';
            return el(
              'tr',
              { 'data-testid': `node-${n.id}`, 'data-state': state, 'data-roles': n.roles.join(','), class: n.up === false ? 'down' : '' },
              el('td', {}, `node ${n.id}`),
              el('td', { 'data-testid': `node-${n.id}-roles` }, n.roles.join(', ') || '–'),
              el('td', { class: 'dim' }, n.raft === 'none' ? '–' : n.raft),
              el('td', { class: 'dim' }, n.admin || '–'),
              el(
                'td',
                { 'data-testid': `node-${n.id}-state`, title: n.error || '' },
                el('span', { class: `pill ${{ up: 'ok', down: 'bad', unknown: 'dim' }[state]}` }, state),
                n.in_view ? '' : el('span', { class: 'dim' }, ' left the view'),
              ),
            );
          })
        : el('tr', {}, el('td', { class: 'dim', colspan: 5 }, 'no cluster view yet')),
    );
  }

  function relayText(relay) {
    if (!relay) return el('span', { class: 'dim' }, '–');
    const ok = relay.connected !== false;
    return el(
      'span',
      { class: ok ? 'ok' : 'bad', title: JSON.stringify(relay) },
      `${relay.kind || 'relay'} ${ok ? 'connected' : 'down'}`,
      relay.outages ? ` · ${relay.outages} outages` : '',
    );
  }

  // A spear is green "up" only while it serves with a live lease.
  const STATE_PILL = { up: 'ok', draining: 'warn', degraded: 'warn', 'lease expired': 'warn', joining: 'dim', fenced: 'bad', down: 'bad' };
  function spearState(s) {
    if (!s.up) return 'down';
    if (s.draining) return 'draining';
    if (s.standing === 'degraded' || s.standing === 'fenced' || s.standing === 'joining') return s.standing;
    if (typeof s.lease_left_ms === 'number' && s.lease_left_ms <= 0) return 'lease expired';
    return 'up';
  }

  function renderBanner(raft) {
    const banner = document.getElementById('no-leader');
    // Only a view some core served can say there is no leader.
    banner.hidden = !raft || !raft.served_by || (raft.leader_id !== null && raft.leader_id !== undefined);
  }

  function renderSpears(snap) {
    fill(
      'spears',
      snap.spears.map((s) => {
        // A spear that is down has no rate: its charts break there.
        record(`spear-${s.id}-in`, snap.at_ms, s.up ? s.in_per_sec : null);
        record(`spear-${s.id}-out`, snap.at_ms, s.up ? s.out_per_sec : null);
        const state = spearState(s);
        return el(
          'tr',
          { 'data-testid': `spear-${s.id}`, 'data-state': state, class: s.up ? '' : 'down' },
          el('td', {}, `node ${s.id}`),
          el('td', { class: 'dim' }, s.sio || s.http || '–'),
          el(
            'td',
            { 'data-testid': `spear-${s.id}-state`, title: s.error || s.standing_reason || '' },
            el('span', { class: `pill ${STATE_PILL[state]}` }, state),
            s.registered ? '' : el('span', { class: 'dim' }, ' unregistered'),
          ),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-connections` }, num(s.connections)),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-users` }, num(s.users)),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-groups` }, num(s.groups)),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-in` }, rate(s.in_per_sec)),
          el('td', {}, slot(`spear-${s.id}-in`, `spear-${s.id}-in-chart`, 'rate')),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-out` }, rate(s.out_per_sec)),
          el('td', {}, slot(`spear-${s.id}-out`, `spear-${s.id}-out-chart`, 'rate')),
          el('td', { 'data-testid': `spear-${s.id}-relay` }, relayText(s.relay)),
          el('td', { class: 'num dim' }, s.lease_left_ms === null || s.lease_left_ms === undefined ? '–' : `${(s.lease_left_ms / 1000).toFixed(1)} s`),
        );
      }),
    );
  }

  function renderTraffic(snap) {
    const up = snap.spears.filter((s) => s.up);
    const charts = [
      ['messages in/s', 'total-in', sum(up.map((s) => s.in_per_sec)), rate, 'rate'],
      ['messages out/s', 'total-out', sum(up.map((s) => s.out_per_sec)), rate, 'rate'],
      ['connections', 'total-connections', sum(up.map((s) => s.connections)), num, 'num'],
      ['users (stat)', 'total-users', sum(snap.spears.map((s) => (s.stat ? s.stat.users : null))), num, 'num'],
    ];
    fill(
      'charts',
      charts.map(([label, key, value, format, fmt]) => {
        record(key, snap.at_ms, value);
        return el(
          'div',
          { class: 'chart' },
          el('div', { class: 'label' }, label, ' ', el('b', { 'data-testid': key }, format(value))),
          slot(key, `${key}-chart`, fmt, true),
        );
      }),
    );
  }

  function renderIdgen(snap) {
    const idgen = snap.idgen;
    fill('idgen-mode', idgen.mode);
    fill('idgen-issuers', idgen.issuers.length ? idgen.issuers.map((n) => `node ${n}`).join(', ') : '–');
    fill('idgen-rate', rate(idgen.ids_per_sec));
    fill('idgen-issued', num(idgen.ids_issued));
    fill('idgen-changes', num(idgen.leader_changes));
    fill('idgen-since', idgen.issuer_since_ms ? `${ago(idgen.issuer_since_ms)} (${new Date(idgen.issuer_since_ms).toLocaleTimeString()})` : '–');
    record('ids', snap.at_ms, idgen.ids_per_sec);
  }

  function renderGroups(groups) {
    fill(
      'groups',
      groups.length
        ? groups.map((g) =>
            el(
              'tr',
              {
                'data-testid': `group-${g.group_id}`,
                class: `clickable${g.group_id === drillGroup ? ' selected' : ''}`,
                onclick: () => drill(g.group_id),
              },
              el('td', {}, `group ${g.group_id}`),
              el('td', { class: 'num', 'data-testid': `group-${g.group_id}-users` }, num(g.users)),
              el('td', { class: 'dim' }, Object.entries(g.by_spear).map(([s, n]) => `node ${s}: ${n}`).join(' · ')),
            ),
          )
        : el('tr', {}, el('td', { class: 'dim', colspan: 3 }, 'no group has online members')),
    );
  }

  /** Shows group `gid`'s online users per spear, from stat (refreshed with each snapshot). */
  async function drill(gid) {
    drillGroup = gid;
    fill('drill-title', `Group ${gid}: online members`);
    try {
      const online = await json(`/api/v1/groups/${gid}/online`);
      if (drillGroup !== gid) return;
      const rows = Object.entries(online.by_spear).map(([sid, users]) =>
        el(
          'tr',
          { 'data-testid': `drill-spear-${sid}` },
          el('td', {}, `node ${sid}`),
          el('td', { class: 'num', 'data-testid': `drill-spear-${sid}-count` }, users.length),
          el('td', { 'data-testid': `drill-spear-${sid}-users` }, users.join(', ')),
        ),
      );
      fill(
        'drill',
        el(
          'p',
          { 'data-testid': 'drill-group', 'data-group': gid },
          el('b', { 'data-testid': 'drill-total' }, online.user_ids.length),
          ` user${online.user_ids.length === 1 ? '' : 's'} online: `,
          el('span', { class: 'dim' }, online.user_ids.join(', ') || 'nobody'),
        ),
        el(
          'table',
          {},
          el('thead', {}, el('tr', {}, el('th', {}, 'spear'), el('th', { class: 'num' }, 'users'), el('th', {}, 'who'))),
          el('tbody', {}, rows),
        ),
      );
    } catch (e) {
      fill('drill', el('p', { class: 'bad' }, `cannot read group ${gid}: ${e.message}`));
    }
    if (last) renderGroups(last.groups);
  }

  // ---- the user lookup: GET /api/v1/admin/users/{id}/connections, POST …/disconnect ----

  /** The connections of a lookup's answer, by the spear holding them. */
  function bySpear(connections) {
    const spears = new Map();
    for (const c of connections) {
      const s = spears.get(c.spear) || { count: 0, groups: new Set() };
      s.count += 1;
      for (const g of c.groups) s.groups.add(g);
      spears.set(c.spear, s);
    }
    return spears;
  }

  const ascending = (set) => [...set].sort((a, b) => a - b);

  function renderUser(uid, answer) {
    const spears = bySpear(answer.connections);
    const groups = ascending(new Set(answer.connections.flatMap((c) => c.groups)));
    const holders = ascending(spears.keys());
    const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
    const summary = el(
      'p',
      { 'data-testid': 'user-summary', 'data-user': uid, 'data-count': answer.count, 'data-spears': holders.join(','), 'data-groups': groups.join(',') },
      el('b', {}, `user ${uid}`),
      answer.count
        ? `: ${plural(answer.count, 'connection')} on ${holders.map((s) => `node ${s}`).join(', ')}; groups ${groups.join(', ') || 'none'}`
        : ' has no connection',
    );
    const missing = answer.unreachable.length
      ? el(
          'p',
          { class: 'warn', 'data-testid': 'user-incomplete' },
          `⚠ incomplete: ${answer.unreachable.map((u) => `node ${u.spear} did not answer (${u.error})`).join('; ')}`,
        )
      : null;
    const perSpear = el(
      'table',
      {},
      el('thead', {}, el('tr', {}, el('th', {}, 'spear'), el('th', { class: 'num' }, 'connections'), el('th', {}, 'groups'))),
      el(
        'tbody',
        {},
        holders.map((s) =>
          el(
            'tr',
            { 'data-testid': `user-spear-${s}` },
            el('td', {}, `node ${s}`),
            el('td', { class: 'num', 'data-testid': `user-spear-${s}-count` }, spears.get(s).count),
            el('td', { 'data-testid': `user-spear-${s}-groups` }, ascending(spears.get(s).groups).join(', ') || '–'),
          ),
        ),
      ),
    );
    const details = el(
      'details',
      {},
      el('summary', { class: 'dim' }, 'each connection'),
      el(
        'table',
        {},
        el('thead', {}, el('tr', {}, el('th', {}, 'spear'), el('th', {}, 'transport'), el('th', {}, 'since'), el('th', {}, 'groups'), el('th', {}, 'peer'), el('th', {}, 'session'))),
        el(
          'tbody',
          {},
          answer.connections.map((c) =>
            el(
              'tr',
              {},
              el('td', {}, `node ${c.spear}`),
              el('td', {}, c.transport),
              el('td', { title: new Date(c.connected_at_ms).toISOString() }, ago(c.connected_at_ms)),
              el('td', {}, c.groups.join(', ') || '–'),
              el('td', { class: 'dim' }, c.peer || '–'),
              el('td', { class: 'dim' }, c.id),
            ),
          ),
        ),
      ),
    );
    const controls = answer.count
      ? el(
          'form',
          { 'data-testid': 'user-disconnect-form', onsubmit: (e) => e.preventDefault() },
          el('input', { id: 'user-reason', maxlength: 256, placeholder: 'reason the client sees', 'data-testid': 'user-reason' }),
          el('button', { type: 'button', 'data-testid': 'user-disconnect', onclick: () => arm(uid, answer.count) }, `disconnect ${plural(answer.count, 'connection')}`),
        )
      : null;
    fill('user', summary, missing, answer.count ? perSpear : null, answer.count ? details : null, controls);
  }

  /** The disconnect asks once more before it closes anything. */
  function arm(uid, count) {
    fill(
      'user-action',
      el(
        'p',
        { class: 'warn' },
        `Close every connection of user ${uid} (${count} now, on every spear)? `,
        el('button', { type: 'button', 'data-testid': 'user-disconnect-confirm', onclick: () => disconnect(uid) }, 'yes, disconnect'),
        ' ',
        el('button', { type: 'button', onclick: () => fill('user-action') }, 'cancel'),
      ),
    );
  }

  async function disconnect(uid) {
    const reason = (document.getElementById('user-reason') || { value: '' }).value.trim();
    fill('user-action', el('p', { class: 'dim' }, 'disconnecting…'));
    try {
      const done = await json(`/api/v1/admin/users/${uid}/disconnect`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(reason ? { reason } : {}),
      });
      fill(
        'user-action',
        el(
          'p',
          { class: 'ok', 'data-testid': 'user-disconnected', 'data-count': done.disconnected },
          `closed ${done.disconnected} connection${done.disconnected === 1 ? '' : 's'} of user ${uid}`,
          done.unreachable.length ? el('span', { class: 'warn' }, ` (not asked: ${done.unreachable.map((u) => `node ${u.spear}`).join(', ')})`) : '',
        ),
      );
    } catch (e) {
      const why = e.status === 403 ? `not allowed: ${e.message}` : e.message;
      fill('user-action', el('p', { class: 'bad', 'data-testid': 'user-disconnect-error' }, `cannot disconnect user ${uid}: ${why}`));
    }
    lookup(uid);
  }

  async function lookup(uid) {
    try {
      renderUser(uid, await json(`/api/v1/admin/users/${uid}/connections`));
    } catch (e) {
      fill('user', el('p', { class: 'bad', 'data-testid': 'user-error' }, `cannot look up user ${uid}: ${e.message}`));
    }
  }

  document.getElementById('user-form').addEventListener('submit', (e) => {
    e.preventDefault();
    // Kept as text: a user id may be above what a JavaScript number holds exactly.
    const uid = document.getElementById('user-id').value.trim();
    if (!/^[0-9]{1,20}$/.test(uid)) return;
    fill('user-action');
    lookup(uid);
  });

  // ---- the stream, and what the page says when it is lost ----

  /** Dims the panels the stream feeds (and says why in the header), or lights them again. */
  function setStale(on, why) {
    stale = on;
    document.body.dataset.stale = String(on);
    for (const panel of document.querySelectorAll('section.live')) {
      panel.classList.toggle('stale', on);
      panel.dataset.stale = String(on);
    }
    if (!on) return;
    const since = receivedAt ? `last snapshot ${hm(receivedAt + skew)}, ${ago(receivedAt)}` : 'no snapshot yet';
    fill(
      'status',
      el('span', { class: 'bad', 'data-testid': 'status-stale' }, '● stale'),
      ` · ${why} · ${since}`,
      signedOut ? [' · ', el('a', { href: '/login?next=%2Fdashboard', 'data-testid': 'sign-in-again' }, 'sign in again')] : '',
    );
  }

  function render(snap) {
    last = snap;
    receivedAt = Date.now();
    skew = snap.at_ms - receivedAt;
    interval = snap.interval_ms || 1000;
    signedOut = false;
    renderBanner(snap.raft);
    renderRaft(snap.raft);
    renderNodes(snap.nodes || []);
    renderIdgen(snap);
    renderSpears(snap);
    renderTraffic(snap);
    renderGroups(snap.groups);
    drawCharts();
    if (drillGroup !== null) drill(drillGroup);
    const errors = document.getElementById('errors');
    errors.hidden = snap.errors.length === 0;
    errors.replaceChildren(...snap.errors.map((e) => el('div', {}, `⚠ ${e}`)));
    document.body.dataset.at = snap.at_ms;
    setStale(false);
    fill('status', el('span', { class: 'ok' }, '● live'), ` · node ${snap.gathered_by} · ${hm(snap.at_ms)}`);
  }

  let source = null;

  function follow() {
    source = new EventSource('/api/v1/monitor/stream');
    source.addEventListener('snapshot', (e) => render(JSON.parse(e.data)));
    source.addEventListener('error', () => {
      setStale(true, 'stream lost, reconnecting…');
      // The browser retries a dropped stream by itself, but not one that was refused (the
      // node restarted and forgot the session, or answered an error): then ask why, and
      // retry unless the session is gone.
      if (source.readyState === EventSource.CLOSED) setTimeout(retry, 2000);
    });
  }

  async function retry() {
    try {
      const resp = await fetch('/api/v1/monitor/snapshot', { headers: { accept: 'application/json' } });
      if (resp.status === 401) {
        signedOut = true;
        setStale(true, 'the session ended');
        return;
      }
    } catch (_) {
      /* the node is still away: retry the stream all the same */
    }
    follow();
  }

  // Between snapshots: slide the charts' window, and notice a stream that went silent without
  // an error (a node that stopped answering but kept its connection).
  setInterval(() => {
    drawCharts();
    const silent = Date.now() - receivedAt;
    if (receivedAt && silent > Math.max(4 * interval, 4000)) setStale(true, `no snapshot for ${Math.round(silent / 1000)} s`);
    else if (stale && !receivedAt) setStale(true, 'waiting for the first snapshot');
  }, 1000);

  document.getElementById('group-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const gid = Number(document.getElementById('group-id').value);
    if (Number.isSafeInteger(gid) && gid >= 0) drill(gid);
  });

  setStale(true, 'connecting');
  follow();
})();
