// What the monitor's two pages share: element building without innerHTML, number formats,
// and SVG sparklines. No framework, no build step; loaded before each page's script.
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

  /**
   * An SVG sparkline of `values` (nulls are gaps drawn as zero); the scale runs from 0 to the
   * largest value, so a flat line at the bottom means idle.
   */
  function spark(values, opts) {
    const w = 120;
    const h = 26;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('class', `spark${opts && opts.big ? ' big' : ''}`);
    const vs = values.map((v) => (typeof v === 'number' && isFinite(v) ? v : 0));
    const max = Math.max(1e-9, ...vs);
    if (vs.length > 1) {
      const pts = vs.map((v, i) => {
        const x = (i / (vs.length - 1)) * w;
        const y = h - 1 - (v / max) * (h - 2);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('points', pts.join(' '));
      svg.append(line);
    }
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `max ${rate(max)}`;
    svg.append(title);
    return svg;
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

  return { el, fill, num, rate, ago, clock, spark, json };
})();
