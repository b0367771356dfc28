'use strict';
// The client's place in each channel's history: `{epoch, position}` per channel (`u:<uid>`,
// `g:<gid>`), as docs/api.md "Resume: nothing acknowledged is lost" asks a client to keep it.
// Pure bookkeeping, no I/O: the client feeds it messages, resyncs and answers, and persists
// its snapshot.

/** A channel's place as the server spells it: epoch a decimal string, position a whole number. */
function place(epoch, position) {
  return { epoch: String(epoch), position: Number(position) };
}

/** True when `x` carries a usable place. */
function hasPlace(x) {
  return x != null && x.epoch !== undefined && x.epoch !== null
    && x.position !== undefined && x.position !== null && Number.isFinite(Number(x.position));
}

class PositionBook {
  /** `initial`: a snapshot from `snapshot()` (e.g. read back from a store). */
  constructor(initial) {
    this._places = new Map();
    // Channels that received a message or a resync on the current connection: for them an
    // answer's `positions` is no starting point any more (what came is further on).
    this._seen = new Set();
    // Channels whose known place the current connection continues from: presented in its
    // resume (the server replays from there), or put live by an answer, a message or a resync
    // on it. For them the next message must be at the next position: one further on is a gap.
    this._continued = new Set();
    if (initial && typeof initial === 'object') {
      for (const [channel, at] of Object.entries(initial)) {
        if (hasPlace(at)) this._places.set(channel, place(at.epoch, at.position));
      }
    }
  }

  /** The known place of `channel`, or undefined. */
  get(channel) {
    const at = this._places.get(channel);
    return at ? { ...at } : undefined;
  }

  /** Every known place, `{channel: {epoch, position}}`: what a store keeps. */
  snapshot() {
    const out = {};
    for (const [channel, at] of this._places) out[channel] = { ...at };
    return out;
  }

  /** The map to present on (re)connect: the known places of `channels` only. */
  resumeMap(channels) {
    const out = {};
    for (const channel of channels) {
      const at = this._places.get(channel);
      if (at) out[channel] = { ...at };
    }
    return out;
  }

  /**
   * A new connection starts: answers may again name starting points. `presented`: the
   * channels whose places it presents in its resume (from `resumeMap`).
   */
  newConnection(presented = []) {
    this._seen.clear();
    this._continued = new Set(presented);
  }

  /**
   * A delivered message. Returns:
   * - 'new': its place is now the channel's;
   * - 'duplicate': at or below the known place in the same epoch: drop it;
   * - 'gap': more than one past the known place in the same epoch, on a connection that
   *   continues from that place: messages in between were not delivered to this connection
   *   (e.g. dropped for a slow consumer). The place is NOT moved: drop the message and resume
   *   from the known place, which replays the gap and this message;
   * - 'jump': the same, for a channel this connection does not continue from (a group joined
   *   on a live connection, its stored place not presented, and a message before the join's
   *   answer): the place moves to the message's; the caller reports the jump as a local resync
   *   (the server cannot replay it on this connection);
   * - 'unplaced': no channel/position (history off, or the message went out without one):
   *   deliver it, nothing to remember.
   */
  accept(msg) {
    if (!msg || typeof msg.channel !== 'string' || !hasPlace(msg)) return 'unplaced';
    const at = place(msg.epoch, msg.position);
    const known = this._places.get(msg.channel);
    if (known && known.epoch === at.epoch && at.position <= known.position) {
      this._seen.add(msg.channel);
      return 'duplicate';
    }
    if (known && known.epoch === at.epoch && at.position > known.position + 1
      && this._continued.has(msg.channel)) {
      return 'gap';
    }
    const jumped = known !== undefined && known.epoch === at.epoch && at.position > known.position + 1;
    this._seen.add(msg.channel);
    this._continued.add(msg.channel);
    // Another epoch than the known one is taken as it comes: the server announces every epoch
    // change with a resync first, and a place from a lost history cannot be compared.
    this._places.set(msg.channel, at);
    return jumped ? 'jump' : 'new';
  }

  /** A `resync` event: its place is where the channel's live messages continue after. */
  resync(r) {
    if (!r || typeof r.channel !== 'string' || !hasPlace(r)) return false;
    this._places.set(r.channel, place(r.epoch, r.position));
    this._seen.add(r.channel);
    this._continued.add(r.channel);
    return true;
  }

  /**
   * `positions` of an answer (auth/auth_result/join/subscribe): where each channel went live.
   * For each channel returns one of:
   * - 'seeded': no place was known; the answer's is the starting point;
   * - 'same': the answer names the known place (nothing missed);
   * - 'ignored': a message or resync of the channel came on this connection already, or the
   *   known place is further on in the same epoch;
   * - 'gap': a place was known but the channel went live elsewhere without a replay or a
   *   resync (the place was not presented, e.g. a group joined on a live connection): the
   *   answer's place is taken and the caller should tell the application, as for a resync.
   */
  fromAnswer(positions) {
    const outcome = {};
    if (!positions || typeof positions !== 'object') return outcome;
    for (const [channel, raw] of Object.entries(positions)) {
      if (!hasPlace(raw)) continue;
      const at = place(raw.epoch, raw.position);
      const known = this._places.get(channel);
      this._continued.add(channel);
      if (this._seen.has(channel)) {
        outcome[channel] = 'ignored';
      } else if (!known) {
        this._places.set(channel, at);
        outcome[channel] = 'seeded';
      } else if (known.epoch === at.epoch && known.position === at.position) {
        outcome[channel] = 'same';
      } else if (known.epoch === at.epoch && known.position > at.position) {
        outcome[channel] = 'ignored';
      } else {
        this._places.set(channel, at);
        outcome[channel] = 'gap';
      }
    }
    return outcome;
  }

  /** Forgets `channel` (a group the client left). Returns true when a place was known. */
  forget(channel) {
    this._seen.delete(channel);
    this._continued.delete(channel);
    return this._places.delete(channel);
  }
}

module.exports = { PositionBook, place, hasPlace };
