// playground_resume's browser half (tests/monitor/playground_resume.rs runs it). Two pages of
// the playground on $GRU_HTTP (each its own browser context), users A and B on two different
// spears, chatting: unicasts both ways and a group.
//
// 1. The Rust test kills A's spear (step `kill`). A's page also goes offline until B has sent
//    what it sends meanwhile, so that those messages are sent while A has no connection at all
//    (without it A could be back on the other spear before B's first send): they can reach A
//    only through its resume. A writes meanwhile too; its client keeps those until it is live.
//    Back online, A resumes on the surviving spear; both go on chatting. Each page's
//    conversation must hold every content sent to it exactly once, in the order sent, and the
//    messages sent to A during the outage must have come by the replay.
// 2. The Rust test publishes 3,000 messages to A within a second through the server API (step
//    `flood`); meanwhile the test clicks the conversation's pause button in A's page, and each
//    click must be answered — its handler run — within 200 ms of the browser receiving it
//    (measured in the page: performance.now() in a listener that runs after the button's own,
//    minus the event's timeStamp). All 3,000 must arrive: A's counter and its place in u:A
//    move by exactly 3,000.
'use strict';

const assert = require('node:assert/strict');
const { launch, say, hear, until, screenshot, run } = require('./browser');
const { tid, openPlayground, userElsewhere, connect, send, copies, conversation, count, place, finishPages } = require('./playground_page');

const group = Number(process.env.GROUP);
const FLOOD = Number(process.env.FLOOD || 3000);
/** The longest a click may wait for its handler during the flood. */
const CLICK_BUDGET_MS = 200;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

run(async () => {
  const browser = await launch();
  const events = [];
  try {
    const a = await openPlayground(browser, 'a', events);
    const b = await openPlayground(browser, 'b', events);
    const userA = 1101;
    const spearA = await connect(a.page, { uid: userA, groups: [group] });
    say('connected', { user: userA, spear: spearA });
    const { uid: userB, token: tokenB } = await userElsewhere(spearA, 2101);
    const spearB = await connect(b.page, { uid: userB, token1: tokenB, groups: [group] });
    say('connected', { user: userB, spear: spearB });
    assert.notEqual(spearA, spearB, 'the two users are on different spears');

    // What each sent, in the order sent: the receivers' conversations must show exactly this.
    const sent = { toA: [], toB: [], groupA: [], groupB: [] };
    const stamp = Date.now();
    async function write(from, to, what, repeat, list) {
      const content = `${what} #${stamp}`;
      await send(from.page, to, content, { repeat });
      list.push(...copies(content, repeat));
    }
    /** Waits until every content of `list` arrived in `page`'s conversation on `channel`. */
    async function arrived(page, channel, list, what) {
      await until(what, 30000, async () => {
        const got = new Set((await conversation(page)).filter((m) => m.channel === channel).map((m) => m.content));
        return list.every((c) => got.has(c));
      });
    }
    async function allArrived(when) {
      await arrived(b.page, `u:${userB}`, sent.toB, `B has A's unicasts (${when})`);
      await arrived(a.page, `u:${userA}`, sent.toA, `A has B's unicasts (${when})`);
      for (const [page, name] of [[a.page, 'A'], [b.page, 'B']]) {
        await arrived(page, `g:${group}`, [...sent.groupA, ...sent.groupB], `${name} has the group's messages (${when})`);
      }
    }

    await write(a, { user: userB }, 'A to B before', 3, sent.toB);
    await write(b, { user: userA }, 'B to A before', 3, sent.toA);
    await write(a, { group }, 'A to the group before', 2, sent.groupA);
    await write(b, { group }, 'B to the group before', 2, sent.groupB);
    await allArrived('before the kill');
    say('chatted', { unicasts: sent.toA.length + sent.toB.length, group: sent.groupA.length + sent.groupB.length });

    // --- A's spear dies ----------------------------------------------------------------
    say('kill', { spear: spearA, user: userA });
    await hear();
    await a.context.setOffline(true);
    const killedAt = Date.now();
    await until("A's client sees the connection lost", 10000, async () => (await a.page.textContent(tid('state'))) !== 'live');
    await write(a, { user: userB }, 'A to B while away', 2, sent.toB);
    await write(a, { group }, 'A to the group while away', 1, sent.groupA);
    const outageToA = sent.toA.length;
    await write(b, { user: userA }, 'B to A while A is away', 3, sent.toA);
    await write(b, { group }, 'B to the group while A is away', 2, sent.groupB);
    const whileAway = sent.toA.slice(outageToA);
    await until("B's messages acknowledged", 20000, async () => {
      const out = await conversation(b.page, 'out');
      return out.filter((m) => m.status === 'acked').length === sent.toA.length + sent.groupB.length;
    });
    const pendingAtA = (await conversation(a.page, 'out')).filter((m) => m.status === 'pending').length;
    assert.equal(pendingAtA, 3, "A's three sends wait for a connection");
    const stateAway = await a.page.textContent(tid('state'));
    assert.notEqual(stateAway, 'live', 'A is not connected while B sends');
    await a.context.setOffline(false);
    await until('A live again', 30000, async () => (await a.page.textContent(tid('state'))) === 'live' && (await count(a.page, 'reconnects')) >= 1);
    const spearAfter = Number(await a.page.getAttribute(tid('spear'), 'data-spear'));
    assert.equal(spearAfter, spearB, "A resumed on the surviving spear");
    const away = Date.now() - killedAt;

    await write(a, { user: userB }, 'A to B after', 2, sent.toB);
    await write(b, { user: userA }, 'B to A after', 2, sent.toA);
    await write(b, { group }, 'B to the group after', 1, sent.groupB);
    await write(a, { group }, 'A to the group after', 1, sent.groupA);
    await allArrived('after the resume');

    // Exactly once, in the order sent: per receiver and channel, the test's contents as they
    // appear in the conversation (each row is one delivery) are the sent list itself; and the
    // places only go up.
    async function exactlyOnce(page, name, channel, lists) {
      const rows = (await conversation(page)).filter((m) => m.channel === channel);
      for (let i = 1; i < rows.length; i++) {
        assert.ok(rows[i].position > rows[i - 1].position, `${name} ${channel}: places go up: ${JSON.stringify(rows.slice(i - 1, i + 1))}`);
      }
      for (const [who, list] of lists) {
        const mine = new Set(list);
        const shown = rows.map((m) => m.content).filter((c) => mine.has(c));
        assert.deepEqual(shown, list, `${name} ${channel}: ${who}'s messages, each once, in order`);
      }
      return rows;
    }
    const atA = await exactlyOnce(a.page, 'A', `u:${userA}`, [['B', sent.toA]]);
    await exactlyOnce(b.page, 'B', `u:${userB}`, [['A', sent.toB]]);
    for (const [page, name] of [[a.page, 'A'], [b.page, 'B']]) {
      await exactlyOnce(page, name, `g:${group}`, [['A', sent.groupA], ['B', sent.groupB]]);
    }
    const replayed = atA.filter((m) => whileAway.includes(m.content));
    assert.ok(replayed.every((m) => m.replayed), `what B sent A while away came by the resume: ${JSON.stringify(replayed)}`);
    const acked = (await conversation(a.page, 'out')).filter((m) => m.status === 'acked').length;
    assert.equal(acked, sent.toB.length + sent.groupA.length, "every one of A's sends acknowledged");
    say('resumed', {
      spear_before: spearA,
      spear_after: spearAfter,
      away_ms: away,
      state_while_away: stateAway,
      replayed: replayed.length,
      reconnects: await count(a.page, 'reconnects'),
      duplicates_dropped: [await count(a.page, 'duplicates'), await count(b.page, 'duplicates')],
      sends_retried: [await count(a.page, 'retries'), await count(b.page, 'retries')],
    });
    say('screenshot', { path: await screenshot(a.page, 'playground-resume.png') });

    // --- 3,000 messages in a second --------------------------------------------------------
    const before = await count(a.page, 'received');
    const at = await place(a.page, `u:${userA}`);
    await a.page.evaluate(() => {
      window.testClicks = [];
      window.testLongTasks = [];
      // The longest wait between two animation frames (the page's rendering), from now on.
      window.testFrameGap = 0;
      let last = performance.now();
      const frame = (t) => {
        window.testFrameGap = Math.max(window.testFrameGap, t - last);
        last = t;
        if (!window.testStopFrames) requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.testLongTasks.push(Math.round(e.duration));
      }).observe({ type: 'longtask' });
      // Bubbling to the window: runs after the button's own handler.
      window.addEventListener('click', (e) => {
        const handled = performance.now();
        window.testClicks.push({
          latency: handled - e.timeStamp,
          trusted: e.isTrusted,
          button: e.target.textContent,
          received: Number(document.querySelector('[data-testid="p1-count-received"]').textContent),
        });
      });
    });
    // Clicks through the flood: for 1.6 s from its start, a plain mouse click where the button
    // is every 40 ms (playwright's input, without its actionability checks: they, like any
    // script run in the page, queue behind the messages; input does not). The box is taken
    // before: nothing above the button changes size; the clicks' targets are checked below.
    const pause = a.page.locator(tid('conversation-pause'));
    const box = await pause.boundingBox();
    say('flood', { user: userA, position: at.position, received: before });
    await hear();
    const roundTrips = [];
    const clickUntil = Date.now() + 1600;
    while (Date.now() < clickUntil) {
      const t0 = Date.now();
      await a.page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      roundTrips.push(Date.now() - t0);
      await sleep(40);
    }
    await until(`A receives the ${FLOOD} messages`, 60000, async () => (await count(a.page, 'received')) >= before + FLOOD);
    if ((await pause.textContent()) === 'resume') await pause.click();
    await sleep(500); // nothing more comes
    const received = (await count(a.page, 'received')) - before;
    const after = await place(a.page, `u:${userA}`);
    const clicks = await a.page.evaluate(() => window.testClicks);
    const longTasks = await a.page.evaluate(() => window.testLongTasks);
    const frameGap = await a.page.evaluate(() => {
      window.testStopFrames = true;
      return Math.round(window.testFrameGap);
    });
    const rows = await a.page.locator(`${tid('conversation')} > div`).count();
    assert.equal(received, FLOOD, `all ${FLOOD} arrive, once`);
    assert.equal(after.epoch, at.epoch, 'same epoch');
    assert.equal(after.position - at.position, FLOOD, `u:${userA} moved by ${FLOOD}`);
    assert.ok(rows <= 500, `the conversation holds at most 500 rows (${rows})`);
    assert.ok(clicks.length >= roundTrips.length && clicks.every((c) => c.trusted), `every click reached the page: ${JSON.stringify(clicks)}`);
    // The button's handler ran: pause and resume alternate.
    clicks.forEach((c, i) => assert.equal(c.button, i % 2 === 0 ? 'resume' : 'pause', `click ${i} toggled the pause`));
    const during = clicks.filter((c) => c.received > before && c.received < before + FLOOD);
    assert.ok(during.length >= 3, `clicks while the messages poured in: ${JSON.stringify(clicks)}`);
    const worst = Math.max(...clicks.map((c) => c.latency));
    assert.ok(worst < CLICK_BUDGET_MS, `every click answered within ${CLICK_BUDGET_MS} ms: ${JSON.stringify(clicks)}`);
    say('flooded', {
      received,
      position: after.position,
      rows,
      clicks: clicks.length,
      clicks_during_flood: during.length,
      click_latency_ms: clicks.map((c) => Math.round(c.latency * 10) / 10),
      worst_click_ms: Math.round(worst * 10) / 10,
      mouse_click_round_trip_ms: roundTrips,
      long_tasks_ms: longTasks,
      longest_frame_gap_ms: frameGap,
      duplicates_dropped: await count(a.page, 'duplicates'),
    });

    await finishPages(events, { a: a.page, b: b.page }, 'playground-resume');
  } finally {
    await browser.close();
  }
});
