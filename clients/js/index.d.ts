// Types of gru-client (hand-written; the implementation is src/*.js).

/** A user or group id: a whole number, or a decimal string (ids above 2^53 do not survive JavaScript numbers). */
export type Id = number | string;

/** A channel's place in its history. `epoch` is a decimal string (a 64-bit id). */
export interface Place {
  epoch: string;
  position: number;
}

/** Every known place, by channel (`u:<uid>`, `g:<gid>`). */
export type Positions = Record<string, Place>;

/** A localStorage-compatible store; its methods may return promises. */
export interface StoreLike {
  getItem(key: string): string | null | undefined | Promise<string | null | undefined>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** The socket.io-client `io()` function, or a compatible factory (a fake in tests). */
export type IoFactory = (url: string, options: Record<string, unknown>) => SocketLike;

/** What the client uses of a socket.io-client Socket. */
export interface SocketLike {
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event?: string, listener?: (...args: any[]) => void): unknown;
  emit(event: string, ...args: any[]): unknown;
  disconnect(): unknown;
}

export interface ClientOptions {
  /** gru's ticket: a base URL (`http://127.0.0.1:8080`, then `/api/v1/ticket` is used) or the full URL of `/api/v1/ticket` or Gru's `/ticket`. */
  ticketUrl: string;
  userId: Id;
  /** The user's name, as in token1. */
  name: string;
  /** The app type, as in token1. Default `web`. */
  appType?: string;
  /** The business token; or `getToken1`. */
  token1?: string;
  /** Called each time a ticket is needed (first connect, reconnect with a fresh ticket, renewal). */
  getToken1?: () => string | Promise<string>;
  /** Groups to join on every connection. */
  groups?: Id[];
  /** Where positions survive the client (localStorage, an async store). Default: memory. */
  store?: StoreLike;
  /** The key positions are kept under. Default `gru-client:<userId>:positions`. */
  storeKey?: string;
  /**
   * Positions reach the store at most this often, and at once on close() and (in a browser)
   * on `pagehide` or when the page is hidden. Default 250. 0: written at every message
   * (write-through). After a crash, a client may resume from up to this much earlier: those
   * messages come again (with `replayed: true`).
   */
  storeFlushMs?: number;
  /** socket.io-client's `io`. Default: `require('socket.io-client')`. */
  io?: IoFactory;
  /** More options for `io()`; `auth`, `reconnection` and `forceNew` are the client's own. */
  ioOptions?: Record<string, unknown>;
  /**
   * Rewrites each spear URL the ticket hands out before connecting to it (a gateway or proxy in
   * front of the spears, a test). Default: the ticket's URL as is.
   */
  mapUrl?: (url: string, node: SpearNode) => string;
  /** Default `['websocket', 'polling']` (WebSocket first, long-polling if it fails). */
  transports?: string[];
  /** The fetch() used for ticket. Default: the global one. */
  fetch?: typeof fetch;
  /** How long a send is retried before its promise rejects with `timeout`. Default 60000. */
  sendTimeoutMs?: number;
  /** An attempt with no ack within this is sent again (same clientMsgId). Default 15000. */
  ackTimeoutMs?: number;
  /** Sends awaiting an ack at once; 1 keeps sends in call order. Default 1. */
  maxInFlight?: number;
  /** Deadline of join/leave/online, waiting for a connection included. Default 20000. */
  requestTimeoutMs?: number;
  /** Deadline of one connection attempt, up to `auth_result`. Default 10000. */
  connectTimeoutMs?: number;
  /** Deadline of a ticket request. Default 10000. */
  ticketTimeoutMs?: number;
  /** Backoff floor. Default 200. */
  backoffMinMs?: number;
  /** Backoff ceiling. Default 10000. */
  backoffMaxMs?: number;
  /** Renew the token this long before it expires (at most half its remaining life). Default 60000. */
  renewBeforeMs?: number;
  /** Failed attempts in a row after which the state is `degraded`. Default 3. */
  degradedAfter?: number;
  /** A ticket whose token has less than this left is not used to connect (a fresh one is asked). Default 5000. */
  minTokenLifeMs?: number;
  /** Connect at once. Default true; otherwise call `connect()`. */
  autoConnect?: boolean;
  /** clientMsgId generator. Default: crypto.randomUUID(). */
  newClientMsgId?: () => string;
  /** Random source of the backoff jitter, [0, 1). Default Math.random. */
  random?: () => number;
}

/** A spear as the ticket named it. `id` comes with the modern ticket only. */
export interface SpearNode {
  url: string;
  name?: string;
  id?: number;
}

/** The `ticket` event: a ticket was obtained (first connection, a fresh ticket). */
export interface TicketEvent {
  /** The placement first, then the backups. */
  nodes: SpearNode[];
  /** When its token expires (ms since the epoch); null for a legacy token without expiry. */
  expiresAtMs: number | null;
  legacy: boolean;
}

/** A live connection: the `connection` event, `client.connection`. */
export interface ConnectionInfo {
  /** The address connected to (after `mapUrl`). */
  url: string;
  /** The ticket's URL of the spear, when `mapUrl` changed it. */
  spearUrl?: string;
  /** The spear's node id (modern ticket). */
  id?: number;
  /** The spear's node name. */
  name?: string;
  /** socket.io's transport now (`websocket`, `polling`); null when the socket has no engine. */
  transport: string | null;
  /** Every transport of this connection in order: `['polling', 'websocket']` after an upgrade. */
  transports: string[];
  /** The places presented in the handshake (empty: nothing resumed). */
  resume: Positions;
  /** The attempt that made it, counted from 1 since the last live connection ended. */
  attempt: number;
  /** When it went live (ms since the epoch). */
  since: number;
}

/** The `transport` event: socket.io upgraded the live connection's transport. */
export interface TransportEvent {
  transport: string;
  transports: string[];
  url: string;
}

/** The `notice` event: what the spear said before closing the connection. */
export interface Notice {
  event: 'server_shutdown' | 'server_disconnect';
  /** The server's message. */
  msg?: string;
  /** server_disconnect's `data.reason`: `token_expired`, `auth_timeout`, `by_server`. */
  reason?: string;
  /** Where to go: `ticket`. */
  reconnect?: string;
  /** server_disconnect's errorCode. */
  errorCode?: number;
  /** The payload as the server sent it. */
  payload: Record<string, unknown>;
  /** The connection's address. */
  url: string;
}

export type Target = { user: Id } | { group: Id };

export interface SendOptions {
  to: Target;
  content: string;
  /** 1–64 bytes, unique per user; generated when absent. Resending with the same id is answered with the first ack. */
  clientMsgId?: string;
}

/** The ack of a send. */
export interface SendAck {
  id: number;
  createTime: number;
  channel?: string;
  epoch?: string;
  position?: number;
  /** Present (true) when the server answered 1001 but the message is in its history and will be delivered. */
  stored?: boolean;
  [key: string]: unknown;
}

/** A delivered `msg`. */
export interface Message {
  id: number;
  createTime: number;
  fromId: number;
  msgType: number;
  target: { id: string; type: number };
  content: string;
  expireTime: number;
  channel?: string;
  epoch?: string;
  position?: number;
  sender?: { type: 'server'; name: string };
  /**
   * True when the message came by the resume's replay: on a connection not yet live, in a
   * channel whose place it presented, before the answer that put the channel live. Absent on
   * live messages.
   */
  replayed?: true;
  [key: string]: unknown;
}

/** A `resync`: reload the channel from your own store; live messages continue after this place. */
export interface Resync {
  channel: string;
  epoch: string;
  position: number;
  /** The server's `epoch` | `retention` | `unavailable`; `gap` (with `local: true`) when the client found a group joined on a live connection past its stored place (which it could not present). */
  reason: 'epoch' | 'retention' | 'unavailable' | 'gap' | string;
  local?: boolean;
}

export type State = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'degraded' | 'closed';

export interface StateEvent {
  state: State;
  /** Why: `server_shutdown`, `token_expired`, `auth_timeout`, `timeout`, `renewal_moved`, a socket.io disconnect reason; with `closed`: `closed`, `by_server`, `token1_invalid`, `ticket_refused`. */
  reason?: string;
  /** The server's message, with `closed`. */
  msg?: string;
}

export interface Stats {
  /** Send attempts after the first (same clientMsgId). */
  sendRetries: number;
  /** Messages dropped because their place was at or below the known one. */
  duplicatesDropped: number;
  /** Connections that went live after the first. */
  reconnects: number;
  /** Connections that went live. */
  connects: number;
  connectAttempts: number;
  ticketRequests: number;
  resyncs: number;
  renewals: number;
  /** Gaps found (a position jumped on a connection): each ended the connection and was resumed. */
  gaps: number;
}

export interface JoinResult {
  groups: number[];
  positions?: Positions;
}

export interface OnlineResult {
  groupId: number;
  userIds: number[];
}

export declare class GruError extends Error {
  /** `not_allowed` (1002), `bad_request` (1003 or bad arguments), `system_error` (1001), `timeout`, `closed`, `ticket`, `token1`, `connect`, `store`, `no_history`, `gap`, `refused`. */
  code: string;
  /** The server's numeric code, when it answered one. */
  errorCode?: number;
  /** The reply's data. */
  data?: any;
  /** HTTP status (ticket). */
  status?: number;
  retryAfterMs?: number;
  /** The group a join refused. */
  group?: number;
  constructor(code: string, message: string, details?: { errorCode?: number; data?: unknown; status?: number; retryAfterMs?: number; cause?: unknown });
}

export interface ClientEvents {
  message: (msg: Message) => void;
  resync: (r: Resync) => void;
  state: (e: StateEvent) => void;
  /** A connection went live (just before the `state` event `live`). */
  connection: (c: ConnectionInfo) => void;
  /** socket.io upgraded the live connection's transport. */
  transport: (e: TransportEvent) => void;
  /** The spear's `server_shutdown` or `server_disconnect`, before the client acts on it. */
  notice: (n: Notice) => void;
  /** A ticket was obtained. */
  ticket: (t: TicketEvent) => void;
  error: (e: GruError) => void;
}

export declare class GruClient {
  constructor(options: ClientOptions);
  readonly userId: Id;
  readonly name: string;
  readonly appType: string;
  readonly state: State;
  readonly groups: number[];
  readonly stats: Stats;
  /** The live connection, or null. */
  readonly connection: ConnectionInfo | null;
  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): this;
  once<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): this;
  off<E extends keyof ClientEvents>(event?: E, listener?: ClientEvents[E]): this;
  /** Starts connecting (createClient does, unless autoConnect is false). */
  connect(): Promise<void>;
  /** Resolves with the ack once the server acknowledged the message; the promise carries its clientMsgId. */
  send(options: SendOptions): Promise<SendAck> & { clientMsgId?: string };
  join(groups: Id | Id[]): Promise<JoinResult>;
  leave(groups: Id | Id[]): Promise<{ groups: number[] }>;
  online(groupId: Id): Promise<OnlineResult>;
  /** The known place of every channel. */
  positions(): Positions;
  /** Closes for good; resolves once positions are stored. */
  close(): Promise<void>;
  /**
   * Drops the connection abruptly (socket.io's transport closed under it, no disconnect packet):
   * the client reconnects and resumes as after a lost network. For tests and debugging; false
   * when there was no connection.
   */
  dropConnection(): boolean;
}

export declare function createClient(options: ClientOptions): GruClient;

/** A store in memory (the default). */
export declare function memoryStore(): StoreLike & { removeItem(key: string): void };
/** The default store key of a user's positions. */
export declare function positionsKey(userId: Id, prefix?: string): string;
/** Backoff delay of attempt n (0-based): uniform in [minMs, min(maxMs, minMs * 2^(n+1))]. */
export declare function backoffDelay(attempt: number, options?: { minMs?: number; maxMs?: number; random?: () => number }): number;
export declare function newClientMsgId(): string;
/** The unverified claims of a `v1.<payload>.<signature>` token. */
export declare function tokenClaims(token: string): { typ: string; uid: number; name: string; app: string; exp: number; groups?: number[]; spears?: number[] } | undefined;

export declare class PositionBook {
  constructor(initial?: Positions);
  get(channel: string): Place | undefined;
  snapshot(): Positions;
  resumeMap(channels: Iterable<string>): Positions;
  /** A new connection, presenting the places of `presented` (channels). */
  newConnection(presented?: Iterable<string>): void;
  accept(msg: { channel?: string; epoch?: string; position?: number }): 'new' | 'duplicate' | 'gap' | 'jump' | 'unplaced';
  resync(r: Resync): boolean;
  fromAnswer(positions: Positions | undefined): Record<string, 'seeded' | 'same' | 'ignored' | 'gap'>;
  forget(channel: string): boolean;
}

export declare const DEFAULTS: Readonly<Required<Pick<ClientOptions,
  'appType' | 'groups' | 'transports' | 'sendTimeoutMs' | 'ackTimeoutMs' | 'maxInFlight' | 'requestTimeoutMs'
  | 'connectTimeoutMs' | 'ticketTimeoutMs' | 'backoffMinMs' | 'backoffMaxMs' | 'renewBeforeMs' | 'degradedAfter' | 'minTokenLifeMs' | 'autoConnect'
  | 'storeFlushMs'>>>;
