// The dashboard: renders each snapshot of /api/v1/monitor/stream (one a second) and keeps the
// last five minutes of rates in memory for the sparklines. The numbers on the page are the
// snapshot's, unchanged; elements carry data-testid so tests can read them.
'use strict';

(() => {
  const { el, fill, num, rate, ago, spark, json } = gru;
  const KEEP = 300; // points per series: five minutes at one snapshot a second
  const series = new Map();
  let drillGroup = null;
  let last = null;

  function push(name, value) {
    let s = series.get(name);
    if (!s) {
      s = [];
      series.set(name, s);
    }
    s.push(value);
    if (s.length > KEEP) s.splice(0, s.length - KEEP);
    return s;
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

  function renderSpears(spears) {
    fill(
      'spears',
      spears.map((s) => {
        const ins = push(`spear-${s.id}-in`, s.in_per_sec);
        const outs = push(`spear-${s.id}-out`, s.out_per_sec);
        const state = s.up ? (s.draining ? 'draining' : 'up') : 'down';
        return el(
          'tr',
          { 'data-testid': `spear-${s.id}`, 'data-state': state, class: s.up ? '' : 'down' },
          el('td', {}, `node ${s.id}`),
          el('td', { class: 'dim' }, s.sio || s.http || '–'),
          el(
            'td',
            { 'data-testid': `spear-${s.id}-state`, title: s.error || '' },
            el('span', { class: `pill ${s.up ? (s.draining ? 'warn' : 'ok') : 'bad'}` }, state),
            s.registered ? '' : el('span', { class: 'dim' }, ' unregistered'),
          ),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-connections` }, num(s.connections)),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-users` }, num(s.users)),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-groups` }, num(s.groups)),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-in` }, rate(s.in_per_sec)),
          el('td', {}, spark(ins)),
          el('td', { class: 'num', 'data-testid': `spear-${s.id}-out` }, rate(s.out_per_sec)),
          el('td', {}, spark(outs)),
          el('td', { 'data-testid': `spear-${s.id}-relay` }, relayText(s.relay)),
          el('td', { class: 'num dim' }, s.lease_left_ms === null || s.lease_left_ms === undefined ? '–' : `${(s.lease_left_ms / 1000).toFixed(1)} s`),
        );
      }),
    );
  }

  function renderCharts(snap) {
    const up = snap.spears.filter((s) => s.up);
    const charts = [
      ['messages in/s', 'total-in', sum(up.map((s) => s.in_per_sec)), rate],
      ['messages out/s', 'total-out', sum(up.map((s) => s.out_per_sec)), rate],
      ['connections', 'total-connections', sum(up.map((s) => s.connections)), num],
      ['users (stat)', 'total-users', sum(snap.spears.map((s) => (s.stat ? s.stat.users : null))), num],
    ];
    fill(
      'charts',
      charts.map(([label, key, value, fmt]) =>
        el(
          'div',
          { class: 'chart' },
          el('div', { class: 'label' }, label, ' ', el('b', { 'data-testid': key }, fmt(value))),
          spark(push(key, value), { big: true }),
        ),
      ),
    );
  }

  function renderIdgen(idgen) {
    fill('idgen-mode', idgen.mode);
    fill('idgen-issuers', idgen.issuers.length ? idgen.issuers.map((n) => `node ${n}`).join(', ') : '–');
    fill('idgen-rate', rate(idgen.ids_per_sec));
    fill('idgen-issued', num(idgen.ids_issued));
    fill('idgen-changes', num(idgen.leader_changes));
    fill('idgen-since', idgen.issuer_since_ms ? `${ago(idgen.issuer_since_ms)} (${new Date(idgen.issuer_since_ms).toLocaleTimeString()})` : '–');
    fill('idgen-chart', spark(push('ids', idgen.ids_per_sec), { big: true }));
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

  function render(snap) {
    last = snap;
    renderRaft(snap.raft);
    renderIdgen(snap.idgen);
    renderSpears(snap.spears);
    renderCharts(snap);
    renderGroups(snap.groups);
    if (drillGroup !== null) drill(drillGroup);
    const errors = document.getElementById('errors');
    errors.hidden = snap.errors.length === 0;
    errors.replaceChildren(...snap.errors.map((e) => el('div', {}, `⚠ ${e}`)));
    document.body.dataset.at = snap.at_ms;
    fill('status', el('span', { class: 'ok' }, '● live'), ` · node ${snap.gathered_by} · ${new Date(snap.at_ms).toLocaleTimeString()}`);
  }

  document.getElementById('group-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const gid = Number(document.getElementById('group-id').value);
    if (Number.isSafeInteger(gid) && gid >= 0) drill(gid);
  });

  const source = new EventSource('/api/v1/monitor/stream');
  source.addEventListener('snapshot', (e) => render(JSON.parse(e.data)));
  source.addEventListener('error', () => {
    fill('status', el('span', { class: 'bad' }, '● disconnected'), ' · reconnecting…');
  });
})();
