// Types of the ES module entry (index.mjs): the same names, plus a default export holding them all.
import * as gru from './index.js';

export * from './index.js';
export default gru;
