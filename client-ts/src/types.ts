/** Public option and event types of `@tether/client` (the contract in SDK.md). */

/** Where the access token travels on connect. */
export type TokenCarrier = "subprotocol" | "header" | "hello";

/** Connection state, as exposed by `client.state`. */
export type ClientState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/**
 * A WebSocket constructor: the platform's (`globalThis.WebSocket`) or Node's `ws`. The
 * third argument is only used by the "header" carrier (`ws` and React Native accept
 * `{ headers }` there; browsers ignore it).
 */
export type WebSocketConstructor = new (
  url: string,
  protocols: string[],
  options?: { headers: Record<string, string> },
) => unknown;

/** What to persist so a restarted app can resume its session. */
export interface ResumeState {
  sessionId: string;
  resumeToken: string;
  lastSeq: number;
}

export interface ReconnectOptions {
  /** First backoff cap, ms (default 250). */
  minDelayMs?: number;
  /** Largest backoff cap, ms (default 30000). */
  maxDelayMs?: number;
  /** Consecutive failed attempts before giving up (default Infinity). */
  maxAttempts?: number;
}

export interface TetherClientOptions {
  urls: string[];
  getToken: () => Promise<string>;
  tokenCarrier?: TokenCarrier;
  WebSocket?: WebSocketConstructor;
  resumeState?: ResumeState | null;
  reconnect?: ReconnectOptions;
  client?: { name: string; version: string };
  requestTimeoutMs?: number;
}

export interface ConnectedEvent {
  sessionId: string;
  resumed: boolean;
  recovered: boolean;
  node: string;
  region: string;
}

export interface MessageEvent {
  seq: number;
  /** `null` for a direct message (to a user or a session). */
  channel: string | null;
  data: unknown;
}

export interface PermissionsEvent {
  seq: number;
  permissions: string[];
  dropped: string[];
  version: number;
}

export interface ReconnectingEvent {
  attempt: number;
  delayMs: number;
  /** The close code that caused the reconnect (1006 when the link dropped). */
  code: number;
}

export interface ClosedEvent {
  code: number;
  reason: string;
  terminal: boolean;
}

export interface ErrorEvent {
  code: string;
  message: string;
}

/** Events emitted by `TetherClient`, by name. */
export interface TetherEvents {
  connected: ConnectedEvent;
  event: MessageEvent;
  permissions: PermissionsEvent;
  reconnecting: ReconnectingEvent;
  closed: ClosedEvent;
  error: ErrorEvent;
}

/**
 * How a request (`subscribe`, `unsubscribe`, `publish`) or `connect()` fails: a plain
 * object, as the contract says. Server refusals carry the server's code (`forbidden`,
 * `bad_channel`, …); the SDK's own codes are `timeout`, `queue_full`, `connection_lost`,
 * `closed`, and `terminal_close` (with `closeCode`) from `connect()`.
 */
export interface TetherError {
  code: string;
  message: string;
  closeCode?: number;
}
