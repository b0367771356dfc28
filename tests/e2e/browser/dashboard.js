// dashboard_browser's browser half (tests/monitor/dashboard.rs runs it). Opens the dashboard
// of $GRU_HTTP in Chromium and checks that what the page shows equals the monitor snapshot,
// and the snapshot the /api/v1 answers it was built from (the cluster view, stat's nodes and
// groups, each spear's /api/v1/spear) — read back to back and retried until they agree, since
// the cluster moves on between reads. Then asks the test to kill spear $KILL and times how
// long the page takes to show it down.
'use strict';

const assert = require('node:assert/strict');
const { launch, say, hear, until, get, screenshot, run } = require('./browser');

const base = `http://${process.env.GRU_HTTP}`;
const spears = process.env.SPEARS.split(',').map(Number);
const group = Number(process.env.GROUP);
const kill = Number(process.env.KILL);

/** The numbers the page shows now. */
async function pageNumbers(page) {
  return page.evaluate((ids) => {
    const text = (id) => {
      const node = document.querySelector(`[data-testid="${id}"]`);
      return node ? node.textContent.trim() : null;
    };
    const n = (id) => {
      const t = text(id);
      return t === null || t === '–' ? null : Number(t);
    };
    return {
      at: Number(document.body.dataset.at),
      leader: (() => {
        const v = document.querySelector('[data-testid="raft-leader"]').dataset.value;
        return v === undefined || v === '–' ? null : Number(v);
      })(),
      term: n('raft-term'),
      mode: text('idgen-mode'),
      spears: Object.fromEntries(
        ids.map((id) => [
          id,
          {
            state: document.querySelector(`[data-testid="spear-${id}"]`)?.dataset.state ?? null,
            connections: n(`spear-${id}-connections`),
            users: n(`spear-${id}-users`),
            groups: n(`spear-${id}-groups`),
          },
        ]),
      ),
    };
  }, spears);
}

/** The same numbers from the snapshot. */
function snapshotNumbers(snap) {
  return {
    leader: snap.raft.leader_id,
    term: snap.raft.term,
    mode: snap.idgen.mode,
    spears: Object.fromEntries(
      spears.map((id) => {
        const s = snap.spears.find((x) => x.id === id);
        return [id, s ? { state: s.up ? 'up' : 'down', connections: s.connections, users: s.users, groups: s.groups } : null];
      }),
    ),
  };
}

/** The snapshot agrees with the answers of the nodes themselves. */
async function snapshotMatchesApi(snap) {
  const view = await get(base, '/api/v1/cluster');
  const nodes = (await get(base, '/api/v1/nodes')).nodes;
  assert.equal(snap.raft.leader_id, view.leader_id, 'leader: snapshot vs /api/v1/cluster');
  assert.equal(snap.raft.term, view.term, 'term: snapshot vs /api/v1/cluster');
  for (const id of spears) {
    const s = snap.spears.find((x) => x.id === id);
    const own = await get(`http://${view.spears.find((v) => v.id === id).http}`, '/api/v1/spear');
    const stat = nodes.find((n) => n.node_id === id);
    assert.equal(s.connections, own.connections, `spear ${id} connections: snapshot vs its /api/v1/spear`);
    assert.equal(s.users, own.users, `spear ${id} users: snapshot vs its /api/v1/spear`);
    assert.equal(s.groups, own.groups, `spear ${id} groups: snapshot vs its /api/v1/spear`);
    assert.deepEqual(s.stat, { users: stat.users, groups: stat.groups }, `spear ${id}: snapshot vs /api/v1/nodes`);
  }
  return true;
}

run(async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.on('pageerror', (e) => say('page_error', { error: String(e) }));
    await page.goto(`${base}/dashboard`);
    await until('the first snapshot on the page', 20000, () => page.evaluate(() => document.body.dataset.at));

    // Page = snapshot = /api/v1, read back to back until the cluster holds still for one round.
    const agreed = await until('page, snapshot and /api/v1 agree', 30000, async () => {
      const snap = await get(base, '/api/v1/monitor/snapshot');
      const shown = await pageNumbers(page);
      const wanted = snapshotNumbers(snap);
      const { at, ...numbers } = shown;
      try {
        assert.deepEqual(numbers, wanted);
        await snapshotMatchesApi(snap);
      } catch (e) {
        say('not_yet', { why: e.message.split('\n')[0] });
        return null;
      }
      return { page: numbers, snapshot_at: snap.at_ms, page_at: at };
    });
    say('agreed', agreed);

    // The drill-down of a group: its members per spear, as stat answers them.
    await page.click(`[data-testid="group-${group}"]`);
    const drill = await until(`group ${group}'s drill-down`, 10000, async () => {
      const online = await get(base, `/api/v1/groups/${group}/online`);
      const shown = await page.evaluate(() => {
        const total = document.querySelector('[data-testid="drill-total"]');
        const rows = [...document.querySelectorAll('[data-testid^="drill-spear-"][data-testid$="-count"]')];
        return total
          ? { total: Number(total.textContent), by_spear: Object.fromEntries(rows.map((r) => [r.dataset.testid.split('-')[2], Number(r.textContent)])) }
          : null;
      });
      const expected = {
        total: online.user_ids.length,
        by_spear: Object.fromEntries(Object.entries(online.by_spear).map(([s, users]) => [s, users.length])),
      };
      return shown && JSON.stringify(shown) === JSON.stringify(expected) ? shown : null;
    });
    say('drill', { group, ...drill });
    // Let the sparklines gather a few points before the picture.
    await until('a few points on the charts', 20000, async () => {
      const at = Number(await page.evaluate(() => document.body.dataset.at));
      return at - agreed.snapshot_at >= 8000;
    });
    say('screenshot', { path: await screenshot(page, 'dashboard.png') });

    say('kill', { spear: kill });
    await hear();
    const killedAt = Date.now();
    await until(`spear ${kill} shown down`, 15000, () =>
      page.evaluate((id) => {
        const row = document.querySelector(`[data-testid="spear-${id}"]`);
        return !row || row.dataset.state === 'down';
      }, kill),
    );
    const took = Date.now() - killedAt;
    const others = await pageNumbers(page);
    say('down', { spear: kill, after_ms: took, spears: others.spears });
    say('screenshot', { path: await screenshot(page, 'dashboard-spear-down.png') });
  } finally {
    await browser.close();
  }
});
