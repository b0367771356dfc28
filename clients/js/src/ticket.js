'use strict';
// Asking ticket for a spear (docs/api.md "ticket"). The modern endpoint, GET /api/v1/ticket,
// is the default: it says when the spear token expires. Gru's GET /ticket is used when the
// configured URL ends in /ticket (its token's expiry is read from the token itself).

const { GruError } = require('./errors');

/** The endpoint for `ticketUrl`: a URL ending in /ticket is taken as is; a base gets /api/v1/ticket. */
function ticketEndpoint(ticketUrl) {
  const url = new URL(ticketUrl);
  const path = url.pathname.replace(/\/+$/, '');
  if (path.endsWith('/api/v1/ticket')) return { url, legacy: false };
  if (path.endsWith('/ticket')) return { url, legacy: true };
  url.pathname = `${path}/api/v1/ticket`;
  return { url, legacy: false };
}

function base64UrlDecode(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  if (typeof atob === 'function') {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  }
  return Buffer.from(b64, 'base64').toString('utf8');
}

/** The claims of a signed token (`v1.<payload>.<signature>`), unverified; undefined otherwise. */
function tokenClaims(token) {
  if (typeof token !== 'string') return undefined;
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== 'v1') return undefined;
  try {
    return JSON.parse(base64UrlDecode(parts[1]));
  } catch (_) {
    return undefined;
  }
}

/**
 * A ticket, normalised: `{token, expiresAtMs (null: never, a legacy MD5 token), nodes: [{url,
 * name, id?}] (the placement first, then the backups; `id` from the modern ticket), legacy}`.
 */
async function fetchTicket({ ticketUrl, userId, name, appType, token1, fetch: fetchFn, timeoutMs = 10000 }) {
  const doFetch = fetchFn || globalThis.fetch;
  if (typeof doFetch !== 'function') throw new GruError('ticket', 'no fetch(): pass options.fetch');
  const { url, legacy } = ticketEndpoint(ticketUrl);
  const params = legacy
    ? { userId: String(userId), userName: name, appType, token1 }
    : { user_id: String(userId), user_name: name, app_type: appType, token: token1 };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);

  const abort = typeof AbortController === 'function' ? new AbortController() : null;
  const timer = abort ? setTimeout(() => abort.abort(), timeoutMs) : null;
  let status;
  let body;
  let retryAfterHeader;
  try {
    const r = await doFetch(url.toString(), { method: 'GET', signal: abort ? abort.signal : undefined });
    status = r.status;
    retryAfterHeader = r.headers && typeof r.headers.get === 'function' ? r.headers.get('retry-after') : null;
    const text = await r.text();
    try {
      body = JSON.parse(text);
    } catch (_) {
      throw new GruError('ticket', `ticket: HTTP ${status}, not JSON: ${text.slice(0, 200)}`, { status });
    }
  } catch (e) {
    if (e instanceof GruError) throw e;
    throw new GruError('ticket', `ticket: ${e && e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : (e && e.message) || e}`, { cause: e });
  } finally {
    if (timer) clearTimeout(timer);
  }
  const retryAfterMs = retryAfterHeader && Number.isFinite(Number(retryAfterHeader)) ? Number(retryAfterHeader) * 1000 : undefined;
  return legacy ? legacyTicket(status, body, retryAfterMs) : modernTicket(status, body, retryAfterMs);
}

// The error kinds: 'token1' (token1 refused: a fresh one may help), 'bad_request' (the
// parameters: nothing will help), 'ticket' (no spear, rate limited, unreachable: later).
function ticketError(kind, message, details) {
  return new GruError(kind, `ticket: ${message}`, details);
}

function modernTicket(status, body, retryAfterMs) {
  if (status === 200 && body && typeof body.token === 'string' && body.spear && body.spear.url) {
    const nodes = [body.spear, ...(Array.isArray(body.backups) ? body.backups : [])]
      .filter((n) => n && typeof n.url === 'string')
      .map((n) => (n.id === undefined ? { url: n.url, name: n.name } : { url: n.url, name: n.name, id: n.id }));
    const exp = typeof body.expires_at === 'number' ? body.expires_at : (tokenClaims(body.token) || {}).exp;
    return { token: body.token, expiresAtMs: typeof exp === 'number' ? exp * 1000 : null, nodes, legacy: false };
  }
  const err = (body && body.error) || {};
  const details = {
    status,
    errorCode: err.legacy_code,
    data: err,
    retryAfterMs: typeof err.retry_after_ms === 'number' ? err.retry_after_ms : retryAfterMs,
  };
  const message = `${status} ${err.code || 'error'}: ${err.message || JSON.stringify(body)}`;
  if (status === 401 || err.code === 'bad_token') throw ticketError('token1', message, details);
  if (status === 400 || err.code === 'bad_request') throw ticketError('bad_request', message, details);
  throw ticketError('ticket', message, details);
}

function legacyTicket(status, body, retryAfterMs) {
  const data = body && body.data;
  if (body && body.success === true && data && typeof data.token === 'string' && data.addr) {
    const nodes = [{ url: data.addr, name: data.name },
      ...(Array.isArray(data.backupNodes) ? data.backupNodes : []).map((n) => ({ url: n.addr, name: n.name }))]
      .filter((n) => typeof n.url === 'string');
    const exp = (tokenClaims(data.token) || {}).exp;
    return { token: data.token, expiresAtMs: typeof exp === 'number' ? exp * 1000 : null, nodes, legacy: true };
  }
  const code = body && body.errorCode;
  const details = { status, errorCode: code, data: body, retryAfterMs };
  const message = `${code ?? status}: ${(body && body.msg) || JSON.stringify(body)}`;
  if (code === 711) throw ticketError('token1', message, details);
  if (code === 710) throw ticketError('bad_request', message, details);
  throw ticketError('ticket', message, details);
}

module.exports = { fetchTicket, ticketEndpoint, tokenClaims };
