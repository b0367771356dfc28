// What the monitor's two pages share: element building without innerHTML, number formats,
// and SVG charts on a time axis. No framework, no build step; loaded before each page's script.
'use strict';

const gru = (() => {
  const SVG = 'http://www.w3.org/2000/svg';

  /** An element with attributes (class, data-testid, …) and children (strings or nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  /** Replaces the children of the element with id `id`. */
  function fill(id, ...children) {
    const node = document.getElementById(id);
    node.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null));
    return node;
  }

  /** A count, or a dash when unknown. */
  function num(v) {
    return v === undefined || v === null ? '–' : String(v);
  }

  /** A rate with one decimal under 10, whole above. */
  function rate(v) {
    if (v === undefined || v === null) return '–';
    return v < 10 ? v.toFixed(1) : Math.round(v).toString();
  }

  /** How long ago `ms` (Unix ms) was, in words. */
  function ago(ms, now) {
    if (!ms) return '–';
    const s = Math.max(0, Math.round(((now || Date.now()) - ms) / 1000));
    if (s < 90) return `${s} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    return `${Math.round(s / 3600)} h ago`;
  }

  /** The time of day of `ms` with milliseconds. */
  function clock(ms) {
    const d = new Date(ms);
    const p = (n, w) => String(n).padStart(w || 2, '0');
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }

  /** The smallest of 1, 2, 2.5, 5 × a power of ten that is at least `v` (1 for nothing). */
  function roundUp(v) {
    if (!(v > 0)) return 1;
    const e = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * e * (1 + 1e-9)) return m * e;
    return 10 * e;
  }

  /**
   * `points` ({t: Unix ms, v: number or null}, in time order) cut into the pieces a line is
   * drawn through: a piece ends at a missing value (null: the node was down) and where two
   * samples are more than `gapMs` apart (nothing was gathered in between).
   */
  function segments(points, gapMs) {
    const pieces = [];
    let piece = null;
    let prev = null;
    for (const p of points) {
      const known = typeof p.v === 'number' && isFinite(p.v);
      if (!known) {
        piece = null;
      } else {
        if (piece && prev !== null && p.t - prev > gapMs) piece = null;
        if (!piece) {
          piece = [];
          pieces.push(piece);
        }
        piece.push(p);
      }
      prev = p.t;
    }
    return pieces;
  }

  /** "−4 min", "−30 s": how far before the end of a window `ms` is. */
  function before(ms) {
    return ms >= 60000 ? `−${+(ms / 60000).toFixed(1)} min` : `−${Math.round(ms / 1000)} s`;
  }

  /**
   * A chart of `points` on a real time axis, from `opts.from` to `opts.to` (Unix ms): each
   * sample sits at its own time, so a window holds the samples it holds and no more; the line
   * breaks at gaps (see `segments`). The value axis runs from 0 to a round number above the
   * largest value in the window. `opts.big` adds the axes' labels (value: top, middle, 0;
   * time: a tick a minute); a small chart carries its top value in its top left corner, away
   * from the newest samples. The element says what it drew in data-segments, data-points,
   * data-max, data-from and data-to.
   */
  function chart(points, opts) {
    const { from, to, gapMs, big } = opts;
    const fmt = opts.fmt || rate;
    const w = big ? 600 : 160;
    const h = big ? 60 : 26;
    const shown = points.filter((p) => p.t >= from - gapMs && p.t <= to);
    const pieces = segments(shown, gapMs);
    const values = pieces.flat().filter((p) => p.t >= from).map((p) => p.v);
    const max = roundUp(Math.max(0, ...values));
    const x = (t) => (((t - from) / (to - from)) * w).toFixed(1);
    const y = (v) => (h - 1 - (v / max) * (h - 2)).toFixed(1);

    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    const line = (x1, y1, x2, y2, cls) => {
      const l = document.createElementNS(SVG, 'line');
      for (const [k, v] of Object.entries({ x1, y1, x2, y2, class: cls })) l.setAttribute(k, v);
      return l;
    };
    if (big) {
      svg.append(line(0, y(max), w, y(max), 'grid'), line(0, y(max / 2), w, y(max / 2), 'grid'));
      for (let t = to - 60000; t > from; t -= 60000) svg.append(line(x(t), 0, x(t), h, 'grid'));
    }
    for (const piece of pieces) {
      const pl = document.createElementNS(SVG, 'polyline');
      // A lone sample is drawn as a short dash, so that it shows.
      const pts = piece.length === 1 ? [{ t: piece[0].t - 400, v: piece[0].v }, { t: piece[0].t + 400, v: piece[0].v }] : piece;
      pl.setAttribute('points', pts.map((p) => `${x(p.t)},${y(p.v)}`).join(' '));
      pl.setAttribute('class', 'segment');
      svg.append(pl);
    }
    const title = document.createElementNS(SVG, 'title');
    title.textContent = values.length
      ? `${values.length} samples over the last ${before(to - from).slice(1)}; ` +
        `min ${fmt(Math.min(...values))}, max ${fmt(Math.max(...values))}` +
        (pieces.length > 1 ? `; ${pieces.length - 1} gap${pieces.length > 2 ? 's' : ''}` : '')
      : 'no samples in this window';
    svg.append(title);

    const box = el('div', {
      class: `tchart${big ? ' big' : ''}`,
      'data-segments': pieces.length,
      'data-points': values.length,
      'data-max': max,
      'data-from': Math.round(from),
      'data-to': Math.round(to),
    });
    if (!big) {
      box.append(svg, el('span', { class: 'ymax' }, fmt(max)));
      return box;
    }
    // Minutes before now, short enough for a narrow chart; the clock times are in the title.
    const ticks = [];
    for (let t = to - 60000; t > from; t -= 60000) {
      const tick = el('span', {}, `−${Math.round((to - t) / 60000)}`);
      // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
      tick.style.left = `${((t - from) / (to - from)) * 100}%`;
      ticks.push(tick);
    }
    box.append(
      el('div', { class: 'yaxis' }, el('span', {}, fmt(max)), el('span', {}, fmt(max / 2)), el('span', {}, '0')),
      svg,
      el(
        'div',
        { class: 'xaxis', title: `${hm(from)} to ${hm(to)}` },
        el('span', { class: 'from' }, before(to - from)),
        ticks,
        el('span', { class: 'to' }, 'now'),
      ),
    );
    return box;
  }

  /** The time of day of `ms`, to the second. */
  function hm(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  /** GET or POST JSON; throws an Error with the API's message on a non-2xx answer. */
  async function json(url, init) {
    const resp = await fetch(url, init);
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      /* not JSON */
    }
    if (!resp.ok) {
      const msg = body && body.error ? `${body.error.code}: ${body.error.message}` : resp.statusText;
      const err = new Error(`${resp.status} ${msg}`);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  return { el, fill, num, rate, ago, clock, hm, chart, segments, json };
})();
