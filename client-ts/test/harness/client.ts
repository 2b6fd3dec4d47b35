/** Test-side helpers around `TetherClient`: an instrumented `ws` constructor and a recorder. */
import WebSocket from "ws";

import { TetherClient } from "../../src/index.js";
import type {
  ClosedEvent,
  ConnectedEvent,
  ErrorEvent,
  MessageEvent,
  PermissionsEvent,
  ReconnectingEvent,
  TetherClientOptions,
  WebSocketConstructor,
} from "../../src/index.js";
import { userToken } from "./tokens.js";

export interface Opened {
  url: string;
  protocols: string[];
  options: { headers: Record<string, string> } | undefined;
  ws: WebSocket;
  /** Text frames the SDK sent on this socket. */
  sent: string[];
}

/**
 * A `ws` constructor that records every socket the SDK opens and what it sends. `kill()`
 * cuts the open sockets without a close frame and makes later connects fail, which is how
 * a test "kills the app" without the SDK sending a close.
 */
export function trackedWs(): { Ctor: WebSocketConstructor; opened: Opened[]; kill: () => void } {
  const opened: Opened[] = [];
  let dead = false;
  const Ctor = function (url: string, protocols: string[], options?: { headers: Record<string, string> }) {
    if (dead) throw new Error("app killed");
    const ws = new WebSocket(url, protocols, options);
    const rec: Opened = { url, protocols, options, ws, sent: [] };
    const send = ws.send.bind(ws);
    ws.send = ((data: string) => {
      rec.sent.push(data);
      send(data);
    }) as typeof ws.send;
    opened.push(rec);
    return ws;
  } as unknown as WebSocketConstructor;
  const kill = (): void => {
    dead = true;
    for (const o of opened) o.ws.terminate();
  };
  return { Ctor, opened, kill };
}

export interface Recorded {
  connected: ConnectedEvent[];
  events: MessageEvent[];
  permissions: PermissionsEvent[];
  reconnecting: ReconnectingEvent[];
  closed: ClosedEvent[];
  errors: ErrorEvent[];
}

export function record(c: TetherClient): Recorded {
  const r: Recorded = { connected: [], events: [], permissions: [], reconnecting: [], closed: [], errors: [] };
  c.on("connected", (e) => r.connected.push(e));
  c.on("event", (e) => r.events.push(e));
  c.on("permissions", (e) => r.permissions.push(e));
  c.on("reconnecting", (e) => r.reconnecting.push(e));
  c.on("closed", (e) => r.closed.push(e));
  c.on("error", (e) => r.errors.push(e));
  return r;
}

/** A client for user `sub` on `urls` with the `ws` constructor; counts `getToken` calls. */
export function makeClient(
  urls: string[],
  sub: string,
  extra: Partial<TetherClientOptions> = {},
): { client: TetherClient; rec: Recorded; tokenCalls: () => number } {
  let calls = 0;
  const client = new TetherClient({
    urls,
    getToken: () => {
      calls += 1;
      return Promise.resolve(userToken(sub));
    },
    WebSocket: WebSocket,
    reconnect: { minDelayMs: 50, maxDelayMs: 1000 },
    requestTimeoutMs: 5000,
    ...extra,
  });
  return { client, rec: record(client), tokenCalls: () => calls };
}
