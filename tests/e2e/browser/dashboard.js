// dashboard_browser's browser half (tests/monitor/dashboard.rs runs it). Opens the dashboard
// of $GRU_HTTP in Chromium without a session (it must send the page to its login), signs in,
// and checks that what the page shows equals the monitor snapshot, and the snapshot the /api/v1
// answers it was built from (the cluster view, stat's nodes and groups, each spear's
// /api/v1/spear) — read back to back and retried until they agree, since the cluster moves on
// between reads. Then: every node listed; the charts' time and value axes; the user lookup of
// $LOOKUP_USER and its disconnect; spear $KILL killed (timed until shown down) and restarted (a gap in
// its chart); two cores killed (the no-leader banner, the spears degraded) and restarted; the
// dashboard's node frozen, thawed, stopped and restarted (panels dimmed, lit,
// dimmed, lit after a new login). Each step that needs the test to act waits for its reply.
'use strict';

const assert = require('node:assert/strict');
const { launch, say, hear, until, get, screenshot, run } = require('./browser');

const base = `http://${process.env.GRU_HTTP}`;
const spears = process.env.SPEARS.split(',').map(Number);
const nodes = process.env.NODES.split(',').map(Number);
const group = Number(process.env.GROUP);
const user = process.env.LOOKUP_USER;
const reason = process.env.REASON;
const kill = Number(process.env.KILL);
const adminKey = process.env.GRU_ADMIN_KEY || '';

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
  const stat = (await get(base, '/api/v1/nodes')).nodes;
  assert.equal(snap.raft.leader_id, view.leader_id, 'leader: snapshot vs /api/v1/cluster');
  assert.equal(snap.raft.term, view.term, 'term: snapshot vs /api/v1/cluster');
  for (const id of spears) {
    const s = snap.spears.find((x) => x.id === id);
    const own = await get(`http://${view.spears.find((v) => v.id === id).admin}`, '/api/v1/spear');
    const presence = stat.find((n) => n.node_id === id);
    assert.equal(s.connections, own.connections, `spear ${id} connections: snapshot vs its /api/v1/spear`);
    assert.equal(s.users, own.users, `spear ${id} users: snapshot vs its /api/v1/spear`);
    assert.equal(s.groups, own.groups, `spear ${id} groups: snapshot vs its /api/v1/spear`);
    assert.deepEqual(s.stat, { users: presence.users, groups: presence.groups }, `spear ${id}: snapshot vs /api/v1/nodes`);
  }
  for (const n of view.nodes) {
    const listed = snap.nodes.find((x) => x.id === n.id);
    assert.ok(listed, `node ${n.id} of /api/v1/cluster in the snapshot's nodes`);
    assert.deepEqual(listed.roles, n.roles, `node ${n.id}'s roles: snapshot vs /api/v1/cluster`);
  }
  return true;
}

/** The node list as the page shows it. */
async function nodeList(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('[data-testid^="node-"][data-state]')].map((row) => [
        row.dataset.testid.slice('node-'.length),
        { state: row.dataset.state, roles: row.dataset.roles },
      ]),
    ),
  );
}

/** How many stream-fed panels there are and how many are dimmed and marked stale. */
async function dimming(page) {
  return page.evaluate(() => {
    const panels = [...document.querySelectorAll('section.live')];
    const dimmed = panels.filter((p) => p.classList.contains('stale') && p.dataset.stale === 'true' && getComputedStyle(p).opacity < 0.9);
    return {
      panels: panels.length,
      dimmed: dimmed.length,
      status_stale: !!document.querySelector('[data-testid="status-stale"]'),
      status: document.querySelector('[data-testid="status"]').textContent,
    };
  });
}

/** What spear `id`'s out/s chart drew: its segments, said and counted. */
async function spearChart(page, id) {
  return page.evaluate((sid) => {
    const box = document.querySelector(`[data-testid="spear-${sid}-out-chart"] .tchart`);
    return box ? { segments: Number(box.dataset.segments), polylines: box.querySelectorAll('polyline').length } : null;
  }, id);
}

/** Fills the login form the page is on and submits it; resolves on the page it leads to. */
async function signIn(page) {
  await page.fill('[data-testid="login-key"]', adminKey);
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.click('[data-testid="login-submit"]')]);
}

run(async () => {
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1200 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => say('page_error', { error: String(e) }));

    // Without a session the page is the login, which leads back to the dashboard.
    await page.goto(`${base}/dashboard`);
    const redirected = new URL(page.url());
    await signIn(page);
    const json = await fetch(`${base}/api/v1/monitor/snapshot`);
    say('login', {
      redirected_to: redirected.pathname + redirected.search,
      after_login: new URL(page.url()).pathname,
      json_without_session: json.status,
    });
    const firstAt = Number(await until('the first snapshot on the page', 20000, () => page.evaluate(() => document.body.dataset.at)));

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

    // Every node, with its roles and whether it is up.
    const listed = await until('every node listed, up', 20000, async () => {
      const shown = await nodeList(page);
      return nodes.every((id) => shown[id] && shown[id].state === 'up') ? shown : null;
    });
    say('nodes', { nodes: listed });

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

    // The charts' axes, once half a minute of samples is in: where the first sample sits on
    // the five-minute window, and the value axis's labels.
    await until('half a minute of samples', 60000, async () => Number(await page.evaluate(() => document.body.dataset.at)) - firstAt >= 30000);
    const axis = await page.evaluate(() => {
      const box = document.querySelector('[data-testid="total-connections-chart"] .tchart');
      const width = box.querySelector('svg').viewBox.baseVal.width;
      const xs = [...box.querySelectorAll('polyline')].flatMap((l) => [...l.points].map((p) => p.x));
      return {
        from: Number(box.dataset.from),
        to: Number(box.dataset.to),
        first_x: Math.min(...xs) / width,
        segments: Number(box.dataset.segments),
        y_labels: [...box.querySelectorAll('.yaxis span')].map((s) => s.textContent),
        x_labels: [...box.querySelectorAll('.xaxis span')].map((s) => s.textContent),
      };
    });
    say('axis', { ...axis, watched_ms: axis.to - firstAt });

    // The user lookup, once the test has connected the user.
    say('connect_user', { user });
    await hear();
    await page.fill('[data-testid="user-input"]', user);
    await page.click('[data-testid="user-find"]');
    const found = await until(`user ${user} looked up`, 15000, async () => {
      const shown = await page.evaluate(() => {
        const summary = document.querySelector('[data-testid="user-summary"]');
        if (!summary) return null;
        const rows = [...document.querySelectorAll('[data-testid^="user-spear-"][data-testid$="-count"]')];
        return {
          user: summary.dataset.user,
          count: Number(summary.dataset.count),
          spears: summary.dataset.spears,
          groups: summary.dataset.groups,
          by_spear: Object.fromEntries(
            rows.map((r) => {
              const sid = r.dataset.testid.split('-')[2];
              const groups = document.querySelector(`[data-testid="user-spear-${sid}-groups"]`).textContent;
              return [sid, { count: Number(r.textContent), groups }];
            }),
          ),
        };
      });
      return shown && shown.user === user && shown.count > 0 ? shown : null;
    });
    say('user', found);

    // The session cookie, for the test to forge a request from another origin with.
    const cookie = (await context.cookies(base)).find((c) => c.name === 'gru_admin');
    assert.ok(cookie, 'the session cookie');
    assert.equal(cookie.httpOnly, true, 'HttpOnly');
    assert.equal(cookie.sameSite, 'Strict', 'SameSite=Strict');
    say('session', { cookie: cookie.value });
    await hear();

    // The disconnect: a reason, the button, its confirmation.
    await page.fill('[data-testid="user-reason"]', reason);
    await page.click('[data-testid="user-disconnect"]');
    await page.click('[data-testid="user-disconnect-confirm"]');
    const closed = await until('the disconnect answered', 15000, () =>
      page.evaluate(() => {
        const done = document.querySelector('[data-testid="user-disconnected"]');
        const error = document.querySelector('[data-testid="user-disconnect-error"]');
        if (error) throw new Error(error.textContent);
        return done ? { count: Number(done.dataset.count), text: done.textContent } : null;
      }),
    );
    say('disconnected', closed);
    // Looked up again: nobody left (the spears may take a moment to forget the connections).
    const gone = await until(`user ${user} gone`, 15000, async () => {
      await page.click('[data-testid="user-find"]');
      await new Promise((r) => setTimeout(r, 300));
      const count = await page.evaluate(() => Number(document.querySelector('[data-testid="user-summary"]')?.dataset.count));
      return count === 0 ? { count } : null;
    });
    say('user_after', gone);
    say('screenshot', { path: await screenshot(page, 'dashboard.png') });

    // A spear killed, shown down, restarted: a gap in its chart.
    const before = await spearChart(page, kill);
    say('kill', { spear: kill, ...before });
    await hear();
    const killedAt = Date.now();
    await until(`spear ${kill} shown down`, 15000, () =>
      page.evaluate((id) => {
        const row = document.querySelector(`[data-testid="spear-${id}"]`);
        const node = document.querySelector(`[data-testid="node-${id}"]`);
        return (!row || row.dataset.state === 'down') && node && node.dataset.state === 'down';
      }, kill),
    );
    const took = Date.now() - killedAt;
    const others = await pageNumbers(page);
    const nodeState = (await nodeList(page))[kill].state;
    say('down', { spear: kill, after_ms: took, spears: others.spears, node_state: nodeState });
    say('screenshot', { path: await screenshot(page, 'dashboard-spear-down.png') });
    say('restart', { spear: kill });
    await hear();
    const gap = await until(`spear ${kill} up again, its chart with a gap`, 60000, async () => {
      const up = await page.evaluate((id) => document.querySelector(`[data-testid="spear-${id}"]`)?.dataset.state === 'up', kill);
      const drawn = await spearChart(page, kill);
      // Up, and drawn again after the gap: one piece more than before the kill.
      return up && drawn && drawn.segments > before.segments ? drawn : null;
    });
    await new Promise((r) => setTimeout(r, 3000));
    say('gap', { spear: kill, ...(await spearChart(page, kill)), first_seen: gap });
    say('screenshot', { path: await screenshot(page, 'dashboard-restart-gap.png') });

    // The core without its quorum: a banner, and every spear degraded (neither up nor down);
    // with the cores back, the banner goes and the spears are up again.
    const quorum = (ids) => {
      const banner = document.querySelector('[data-testid="no-leader"]');
      const shown = !!banner && !banner.hidden && getComputedStyle(banner).display !== 'none';
      const states = ids.map((id) => document.querySelector(`[data-testid="spear-${id}"]`)?.dataset.state);
      const pills = ids.map((id) => document.querySelector(`[data-testid="spear-${id}-state"] .pill`)?.className);
      return { shown, text: shown ? banner.textContent.trim() : '', states, pills };
    };
    say('quorum_loss', {});
    await hear();
    const lost = await until('the no-leader banner and degraded spears', 30000, async () => {
      const q = await page.evaluate(quorum, spears);
      return q.shown && q.states.every((s) => s === 'degraded') ? q : null;
    });
    say('no_quorum', lost);
    say('screenshot', { path: await screenshot(page, 'dashboard-no-quorum.png') });
    say('quorum_back', {});
    await hear();
    const healed = await until('the banner gone and the spears up', 60000, async () => {
      const q = await page.evaluate(quorum, spears);
      return !q.shown && q.states.every((s) => s === 'up') ? q : null;
    });
    say('quorum_healed', healed);

    // The dashboard's node frozen: its stream goes silent and the panels dim; thawed, lit.
    say('freeze', {});
    await hear();
    const frozen = await until('panels dimmed while the node is frozen', 20000, async () => {
      const d = await dimming(page);
      return d.panels > 0 && d.dimmed === d.panels ? d : null;
    });
    say('stale', frozen);
    say('thaw', {});
    await hear();
    const lit = await until('panels lit once the stream is back', 20000, async () => {
      const d = await dimming(page);
      return d.panels > 0 && d.dimmed === 0 ? d : null;
    });
    say('live', lit);

    // Stopped: dimmed. Restarted, the node forgot the session: the page says so; signed in
    // again, it is live.
    say('stop', {});
    await hear();
    const stopped = await until('panels dimmed with the node stopped', 20000, async () => {
      const d = await dimming(page);
      return d.panels > 0 && d.dimmed === d.panels ? d : null;
    });
    say('stopped', stopped);
    say('screenshot', { path: await screenshot(page, 'dashboard-stale.png') });
    say('restart_dashboard', {});
    await hear();
    await until('the page asks to sign in again', 60000, () => page.evaluate(() => !!document.querySelector('[data-testid="sign-in-again"]')));
    await page.click('[data-testid="sign-in-again"]');
    await page.waitForURL((url) => url.pathname === '/login');
    await signIn(page);
    const back = await until('the dashboard live after a new login', 30000, async () => {
      const d = await dimming(page);
      const at = await page.evaluate(() => document.body.dataset.at);
      return at && d.panels > 0 && d.dimmed === 0 ? d : null;
    });
    say('back', { ...back, asked_to_sign_in: true });
  } finally {
    await browser.close();
  }
});
