/**
 * `@tether/client`: the TypeScript SDK for Tether.
 *
 * # Layout
 * - `client.ts`  — `TetherClient`: the public API and the connection lifecycle
 * - `connection.ts` — one socket: token carriers, `hello`, per-connection timers
 * - `delivery.ts` — the session's resume state, seq de-duplication and batched acks
 * - `reconnect.ts` — after a close: stop, or when and where to reconnect
 * - `refresh.ts` — in-band token refresh on `token_expiring`
 * - `requests.ts` — requests from creation to reply: ids, deadline, bounded queue
 * - `policy.ts`  — close-code classes and the full-jitter backoff
 * - `frames.ts`  — defensive parsing of server frames
 * - `emitter.ts` — the typed `on`/`off` emitter
 * - `browser.ts` — `attachBrowserHooks`: reconnect on `online` / page visible
 * - `types.ts`   — public option and event types
 * - `util.ts`, `version.ts` — helpers; the default `hello.client`
 */
export { TetherClient } from "./client.js";
export { attachBrowserHooks } from "./browser.js";
export type { BrowserTargets, Reconnectable } from "./browser.js";
export type {
  ClientState,
  ClosedEvent,
  ConnectedEvent,
  ErrorEvent,
  MessageEvent,
  PermissionsEvent,
  ReconnectOptions,
  ReconnectingEvent,
  ResumeState,
  TetherClientOptions,
  TetherError,
  TetherEvents,
  TokenCarrier,
  WebSocketConstructor,
} from "./types.js";
