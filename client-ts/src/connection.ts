/**
 * One WebSocket attempt: opening it with the chosen token carrier, the `hello` frame, and
 * the per-connection state and timers. Kept apart from `TetherClient` so that everything
 * tied to a single socket dies with it: the client only ever swaps whole `Conn`s.
 */
import type { ResumeState, TokenCarrier, WebSocketConstructor } from "./types.js";

/** The part of the WHATWG WebSocket interface the SDK uses (browsers and `ws` alike). */
export interface Socket {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (ev: SocketEvent) => void): void;
}

export interface SocketEvent {
  data?: unknown;
  code?: number;
  reason?: string;
}

export const OPEN = 1;
/** The subprotocol the server must select; anything else is not a Tether node. */
export const PROTOCOL = "tether.v1";

/** One WebSocket attempt and what belongs to it only. */
export interface Conn {
  ws: Socket;
  welcomed: boolean;
  /** The close was ours, to follow a `reconnect` advice: reconnect at once, elsewhere. */
  advised: boolean;
  handshakeTimer: ReturnType<typeof setTimeout> | null;
  adviceTimer: ReturnType<typeof setTimeout> | null;
  refreshTimer: ReturnType<typeof setTimeout> | null;
  refreshing: boolean;
  closed: boolean;
}

export function newConn(ws: Socket): Conn {
  return {
    ws,
    welcomed: false,
    advised: false,
    handshakeTimer: null,
    adviceTimer: null,
    refreshTimer: null,
    refreshing: false,
    closed: false,
  };
}

/**
 * Opens a socket to `url` carrying `token` as `carrier` says. Browsers cannot set headers
 * on a WebSocket, hence the subprotocol and in-band (`hello`) carriers.
 */
export function openSocket(
  Ctor: WebSocketConstructor | undefined,
  carrier: TokenCarrier,
  url: string,
  token: string,
): Socket {
  const C = Ctor ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!C) throw new Error("no WebSocket constructor: pass the `WebSocket` option (e.g. from `ws`)");
  switch (carrier) {
    case "header":
      return new C(url, [PROTOCOL], { headers: { Authorization: `Bearer ${token}` } }) as Socket;
    case "subprotocol":
      return new C(url, [PROTOCOL, `tether.bearer.${token}`]) as Socket;
    case "hello":
      return new C(url, [PROTOCOL]) as Socket;
  }
}

/** The `hello` frame: the token only with the `hello` carrier, `resume` when a session exists. */
export function helloFrame(
  client: { name: string; version: string },
  carrier: TokenCarrier,
  token: string,
  session: ResumeState | null,
): Record<string, unknown> {
  const hello: Record<string, unknown> = { type: "hello", client };
  if (carrier === "hello") hello.token = token;
  if (session) {
    hello.resume = {
      session_id: session.sessionId,
      resume_token: session.resumeToken,
      last_seq: session.lastSeq,
    };
  }
  return hello;
}

/** Sends `frame` if `conn` is open; `false` (never a throw) when it could not. */
export function sendRaw(conn: Conn, frame: object): boolean {
  if (conn.closed || conn.ws.readyState !== OPEN) return false;
  try {
    conn.ws.send(JSON.stringify(frame));
    return true;
  } catch {
    return false;
  }
}

export function clearConnTimers(conn: Conn): void {
  for (const t of [conn.handshakeTimer, conn.adviceTimer, conn.refreshTimer]) {
    if (t !== null) clearTimeout(t);
  }
  conn.handshakeTimer = conn.adviceTimer = conn.refreshTimer = null;
}
