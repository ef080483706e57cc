// Type declarations for ringcast.js (the ringcast.v1 browser client). See README.md.

/** A topic's position: the epoch of its history and the last sequence number delivered. */
export interface Position {
  epoch: string;
  /** Decimal u64 on the wire; exact here up to Number.MAX_SAFE_INTEGER (2^53 - 1). */
  seq: number;
}

/** A token, or a function returning one (or a Promise of one); called again to renew it. */
export type TokenSource = string | (() => string | Promise<string>);

/** Connection state. */
export type State =
  /** First connection (or its retries) under way; no connection has been open yet. */
  | 'connecting'
  /** Connected and subscribed. */
  | 'open'
  /** A connection was lost; waiting for the backoff delay or reconnecting. */
  | 'reconnecting'
  /** close() was called, or the client gave up for good (see the `error` event). */
  | 'closed';

export interface SubscribeOptions {
  /**
   * JWT sent as `?token=` on every connection (browsers cannot set headers on a WebSocket).
   * A function is called for the first connection, again when the token has less than
   * `refreshBefore` left (then sent on the open connection as `auth <jwt>`), and after any
   * 1008 close. A plain string is never renewed: once it has expired, the client closes.
   */
  token?: TokenSource;
  /** Milliseconds before `exp` to renew the token (capped at half its remaining life). Default 30000. */
  refreshBefore?: number;
  /** Positions to resume from on the first connection (e.g. saved from `positions()`). */
  positions?: Record<string, Position>;
  /** First connection only: each topic without a position first gets its last N retained messages. */
  last?: number;
  /**
   * Reconnect delay after a close (other than 1001): uniform random in
   * [0, min(max, initial * 2^attempt)) ms ("full jitter"). attempt counts closes since
   * the last connection that stayed open 5 s. Defaults: initial 500, max 30000.
   */
  backoff?: { initial?: number; max?: number };
  /** After 1001 (server going away): reconnect after uniform random [0, goingAwayJitter) ms. Default 1000. */
  goingAwayJitter?: number;
  /** WebSocket constructor to use (default: globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
}

/** A published message and its position. `data`: text messages as string, binary as bytes. */
export interface Message extends Position {
  topic: string;
  data: string | Uint8Array;
}

/** Messages of `topic` after position `after` and before the next message may be missing. */
export interface Gap {
  topic: string;
  epoch: string;
  after: number;
}

/**
 * The topic's history starts over in `epoch` (server restart, wiped history, or a position
 * the client never learned): what follows is this epoch's retained history, then live.
 * `previous`: the position the client had, or null if it had none.
 */
export interface Reset {
  topic: string;
  epoch: string;
  previous: Position | null;
}

export interface StateChange {
  state: State;
  previous: State;
}

/** A connection closed (or failed to open). `retryIn`: ms until the next attempt, null if none. */
export interface Disconnect {
  code: number;
  reason: string;
  wasClean: boolean;
  retryIn: number | null;
}

/** The token function failed, an event could not be parsed, or the client gave up. */
export interface ClientError {
  error: unknown;
}

/** Each event's payload, by event name (for `on`). */
export interface EventMap {
  message: Message;
  gap: Gap;
  reset: Reset;
  state: StateChange;
  disconnect: Disconnect;
  error: ClientError;
}

export declare class Subscription {
  constructor(url: string, topics: string[], options?: SubscribeOptions);
  /** The base URL given. */
  readonly url: string;
  readonly topics: readonly string[];
  /** The current connection state. */
  readonly state: State;
  /** Messages dropped because their seq was not after the topic's position (should stay 0). */
  readonly duplicates: number;
  /** Add a listener; returns a function that removes it. */
  on<K extends keyof EventMap>(type: K, listener: (event: EventMap[K]) => void): () => void;
  /** The last position delivered for `topic`. */
  position(topic: string): Position | undefined;
  /** Every known position (to persist, then pass back as `options.positions`). */
  positions(): Record<string, Position>;
  /** Close for good. */
  close(): void;
}

/**
 * Subscribe to `topics` over ringcast.v1. `url`: the server's base URL (ws://, wss://,
 * http:// or https://; a path prefix is kept). Throws a TypeError for an invalid topic.
 */
export declare function subscribe(url: string, topics: string[], options?: SubscribeOptions): Subscription;

/**
 * `POST /pub/{topic}`: a string is published as a text message, bytes or a Blob as binary.
 * Resolves to the message's position; rejects on an HTTP error.
 */
export declare function publish(
  url: string,
  topic: string,
  data: string | ArrayBuffer | ArrayBufferView | Blob,
  options?: { token?: TokenSource; signal?: AbortSignal },
): Promise<{ topic: string; epoch: string; seq: number }>;

/** The `exp` claim of a JWT (seconds since 1970), decoded without verification. */
export declare function jwtExp(token: string): number | undefined;
