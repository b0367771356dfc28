'use strict';
// gru-client: a socket.io client for gru with resume, exactly-once sends and reconnection.
// CommonJS source; index.mjs re-exports it for ES modules.

const { GruClient, createClient, DEFAULTS } = require('./client');
const { GruError } = require('./errors');
const { memoryStore, positionsKey } = require('./store');
const { PositionBook } = require('./positions');
const { backoffDelay } = require('./backoff');
const { newClientMsgId } = require('./sends');
const { tokenClaims } = require('./ticket');

module.exports = {
  createClient,
  GruClient,
  GruError,
  memoryStore,
  positionsKey,
  PositionBook,
  backoffDelay,
  newClientMsgId,
  tokenClaims,
  DEFAULTS,
};
