// ES module entry: the CommonJS implementation, re-exported by name.
import gru from './src/index.js';

export const {
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
} = gru;
export default gru;
