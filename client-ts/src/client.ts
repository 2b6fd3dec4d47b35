/**
 * `TetherClient`: one logical Tether session kept alive across dropped links, resumes,
 * token refreshes and node changes. Mirrors the Rust SDK (`client/`, docs/client.md).
 *
 * This file holds the lifecycle (connect → welcome → frames → close → what next) and the
 * public API; the parts with their own state live beside it: `connection.ts` (one socket),
 * `delivery.ts` (seq, de-duplication, acks), `reconnect.ts` (backoff and URL choice),
 * `refresh.ts` (in-band token refresh) and `requests.ts` (request ids, deadlines, queue).
 */

import { clearConnTimers, helloFrame, newConn, OPEN, openSocket, PROTOCOL, sendRaw } from "./connection.js";
import type { Conn, Socket } from "./connection.js";
import { Delivery } from "./delivery.js";
import { Emitter } from "./emitter.js";
import { parseFrame } from "./frames.js";
import type { EventFrame, PermissionsFrame, Reply, Welcome } from "./frames.js";
import { Reconnector } from "./reconnect.js";
import { refresh } from "./refresh.js";
import type { RefreshHost } from "./refresh.js";
import { Requests } from "./requests.js";
import type { RequestFrame } from "./requests.js";
import type {
  ClientState,
  ResumeState,
  TetherClientOptions,
  TetherError,
  TetherEvents,
  TokenCarrier,
  WebSocketConstructor,
} from "./types.js";
import { describe, isTetherError, tetherError as err, withTimeout } from "./util.js";
import { SDK_NAME, SDK_VERSION } from "./version.js";

/** Requests made while no connection is up, waiting for the next `welcome`. */
const MAX_QUEUED = 256;
/** How long `close()` waits for the server's close frame. */
const CLOSE_WAIT_MS = 2_000;

export class TetherClient extends Emitter<TetherEvents> {
  private readonly getToken: () => Promise<string>;
  private readonly carrier: TokenCarrier;
  private readonly Ctor: WebSocketConstructor | undefined;
  private readonly clientInfo: { name: string; version: string };
  private readonly requestTimeoutMs: number;

  private st: ClientState = "idle";
  private conn: Conn | null = null;
  /** Bumped for every attempt: callbacks of an older attempt see a stale value and stop. */
  private gen = 0;
  private readonly delivery: Delivery;
  private readonly reconnector: Reconnector;
  /** Channels the server confirmed: re-subscribed when a session did not keep them. */
  private readonly subscriptions = new Set<string>();
  private readonly requests: Requests;
  private token: string | null = null;
  private readonly refreshHost: RefreshHost;
  private connectWaiters: { resolve: () => void; reject: (e: TetherError) => void }[] = [];

  constructor(options: TetherClientOptions) {
    super();
    if (!Array.isArray(options.urls) || options.urls.length === 0) {
      throw new TypeError("TetherClient: `urls` must list at least one URL");
    }
    if (typeof options.getToken !== "function") {
      throw new TypeError("TetherClient: `getToken` must be a function");
    }
    this.getToken = options.getToken;
    this.Ctor = options.WebSocket;
    this.carrier = options.tokenCarrier ?? (options.WebSocket ? "header" : "subprotocol");
    const r = options.reconnect ?? {};
    const min = Math.max(0, r.minDelayMs ?? 250);
    this.reconnector = new Reconnector([...options.urls], min, Math.max(min, r.maxDelayMs ?? 30_000), r.maxAttempts ?? Infinity);
    this.clientInfo = options.client ?? { name: SDK_NAME, version: SDK_VERSION };
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.requests = new Requests(this.requestTimeoutMs, MAX_QUEUED);
    this.delivery = new Delivery(options.resumeState, () => {
      const conn = this.conn;
      return conn ? (f) => sendRaw(conn, f) : null;
    });
    // The refresh flow sees only what it needs; closures keep the fields private.
    this.refreshHost = {
      requestTimeoutMs: this.requestTimeoutMs,
      getToken: () => this.getToken(),
      currentToken: () => this.token,
      setToken: (t) => (this.token = t),
      isClosed: () => this.st === "closed",
      sendTracked: (conn, frame) => this.sendTracked(conn, frame),
      reportError: (e) => this.emit("error", e),
    };
  }

  get state(): ClientState {
    return this.st;
  }

  /** What to persist to resume this session after an app restart; `null` before a welcome. */
  resumeState(): ResumeState | null {
    return this.delivery.snapshot();
  }

  /** Connects; resolves at the first `welcome`, rejects on a terminal refusal. */
  connect(): Promise<void> {
    if (this.st === "connected") return Promise.resolve();
    if (this.st === "closed") return Promise.reject(err("closed", "the client is closed"));
    const p = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this.st === "idle") {
      this.st = "connecting";
      void this.attempt();
    }
    return p;
  }

  subscribe(channel: string): Promise<void> {
    return this.request({ type: "subscribe", channel });
  }

  unsubscribe(channel: string): Promise<void> {
    return this.request({ type: "unsubscribe", channel });
  }

  publish(channel: string, data: unknown): Promise<void> {
    return this.request({ type: "publish", channel, data });
  }

  /**
   * Skips the backoff wait and reconnects at once (on a network change, or when the app
   * comes to the foreground). Does nothing while connected, connecting or closed.
   */
  reconnectNow(): void {
    if (this.st !== "reconnecting" || !this.reconnector.clear()) return;
    void this.attempt();
  }

  /** Closes with 1000: the session ends on the server. Pending requests fail with `closed`. */
  async close(): Promise<void> {
    if (this.st === "closed") return;
    this.st = "closed";
    this.reconnector.clear();
    this.delivery.clearTimer();
    const conn = this.conn;
    this.conn = null;
    this.gen += 1;
    this.requests.failAll(err("closed", "the client was closed"));
    this.settleConnect(err("closed", "the client was closed"));
    if (conn) {
      clearConnTimers(conn);
      await new Promise<void>((resolve) => {
        if (conn.ws.readyState > OPEN) return resolve();
        const t = setTimeout(resolve, CLOSE_WAIT_MS);
        conn.ws.addEventListener("close", () => {
          clearTimeout(t);
          resolve();
        });
        try {
          conn.ws.close(1000, "client_close");
        } catch {
          clearTimeout(t);
          resolve();
        }
      });
    }
    this.emit("closed", { code: 1000, reason: "client_close", terminal: true });
  }

  // ---- connection attempts ------------------------------------------------------------

  private async attempt(): Promise<void> {
    this.gen += 1;
    const gen = this.gen;
    let token: string;
    try {
      token = await withTimeout(this.getToken(), this.requestTimeoutMs, "getToken timed out");
    } catch (e) {
      if (gen !== this.gen || this.st === "closed") return;
      this.emit("error", { code: "token_provider", message: describe(e) });
      this.afterConnection(1006, "token_provider", false, false);
      return;
    }
    if (gen !== this.gen || this.st === "closed") return;
    if (typeof token !== "string" || token === "") {
      this.emit("error", { code: "token_provider", message: "getToken returned no token" });
      this.afterConnection(1006, "token_provider", false, false);
      return;
    }
    this.token = token;
    let ws: Socket;
    try {
      ws = openSocket(this.Ctor, this.carrier, this.reconnector.url, token);
    } catch (e) {
      this.emit("error", { code: "connect_failed", message: describe(e) });
      this.afterConnection(1006, "connect_failed", false, false);
      return;
    }
    const conn = newConn(ws);
    this.conn = conn;
    // The upgrade and the welcome each within the request timeout, like the Rust SDK.
    conn.handshakeTimer = setTimeout(() => this.drop(conn, gen, "handshake_timeout"), this.requestTimeoutMs);
    ws.addEventListener("open", () => {
      if (gen !== this.gen) return;
      if (ws.protocol !== PROTOCOL) {
        this.drop(conn, gen, "no_subprotocol");
        return;
      }
      sendRaw(conn, helloFrame(this.clientInfo, this.carrier, token, this.delivery.resume));
    });
    ws.addEventListener("message", (ev) => {
      if (gen !== this.gen || typeof ev.data !== "string") return;
      this.onFrame(conn, ev.data);
    });
    ws.addEventListener("close", (ev) => {
      if (gen !== this.gen || conn.closed) return;
      this.onClosed(conn, ev.code ?? 1006, ev.reason ?? "");
    });
    // An `error` is always followed by `close`, which carries what the SDK acts on.
    ws.addEventListener("error", () => undefined);
  }

  /** Gives up on `conn` from our side (timeout, wrong server) as if the link dropped. */
  private drop(conn: Conn, gen: number, reason: string): void {
    if (gen !== this.gen || conn.closed) return;
    try {
      conn.ws.close(1001, reason);
    } catch {
      // Closing a socket that is still connecting may throw on some platforms; it is gone.
    }
    this.onClosed(conn, 1006, reason);
  }

  private onClosed(conn: Conn, code: number, reason: string): void {
    conn.closed = true;
    clearConnTimers(conn);
    if (this.conn === conn) this.conn = null;
    this.delivery.clearTimer();
    this.requests.failInflight(err("connection_lost", `the connection closed (${code})`));
    if (this.st === "closed") return;
    this.afterConnection(code, reason, conn.welcomed, conn.advised);
  }

  /** Acts on the reconnect plan for a connection (or a failed attempt) that ended with `code`. */
  private afterConnection(code: number, reason: string, welcomed: boolean, advised: boolean): void {
    const plan = this.reconnector.plan(code, reason, welcomed, advised);
    if (plan.stop) {
      this.terminate(code, plan.reason);
      return;
    }
    if (welcomed) this.emit("closed", { code, reason, terminal: false });
    this.st = "reconnecting";
    this.emit("reconnecting", { attempt: plan.attempt, delayMs: plan.delayMs, code });
    if (this.st !== "reconnecting") return; // a listener closed the client
    this.reconnector.schedule(() => void this.attempt(), plan.delayMs);
  }

  private terminate(code: number, reason: string): void {
    this.st = "closed";
    this.reconnector.clear();
    this.delivery.clearTimer();
    this.requests.failAll(err("closed", `the connection closed for good (${code} ${reason})`));
    this.settleConnect({ code: "terminal_close", message: `${code} ${reason}`, closeCode: code });
    this.emit("closed", { code, reason, terminal: true });
  }

  // ---- frames -------------------------------------------------------------------------

  private onFrame(conn: Conn, text: string): void {
    const f = parseFrame(text);
    if (!f) return;
    switch (f.type) {
      case "welcome":
        this.onWelcome(conn, f);
        break;
      case "reply":
        this.onReply(f);
        break;
      case "event":
        this.onEvent(conn, f);
        break;
      case "permissions":
        this.onPermissions(conn, f);
        break;
      case "token_expiring":
        void refresh(this.refreshHost, conn);
        break;
      case "reconnect":
        this.onAdvice(conn, f.after_ms);
        break;
      case "error":
        this.emit("error", { code: f.code, message: f.message });
        break;
    }
  }

  private onWelcome(conn: Conn, w: Welcome): void {
    if (conn.welcomed) return;
    conn.welcomed = true;
    if (conn.handshakeTimer) clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = null;
    const fresh = this.delivery.onWelcome(w);
    this.reconnector.reset();
    this.st = "connected";
    this.emit("connected", {
      sessionId: w.session_id,
      resumed: w.resumed,
      recovered: w.recovered,
      node: w.node,
      region: w.region,
    });
    if (this.conn !== conn || this.st !== "connected") return; // a listener closed the client
    this.settleConnect(null);
    const send = (frame: object): boolean => sendRaw(conn, frame);
    // Frames delivered on the previous connection but not acknowledged yet.
    this.delivery.flush(send);
    // The server kept the subscriptions only on a full recovery of the same session.
    if (fresh || !w.recovered) this.resubscribe(conn);
    for (const req of this.requests.takeQueued()) this.requests.send(req, send);
  }

  private onReply(r: Reply): void {
    const done = this.requests.onReply(r);
    if (done?.type === "subscribe") this.subscriptions.add(done.channel);
    if (done?.type === "unsubscribe") this.subscriptions.delete(done.channel);
  }

  private onEvent(conn: Conn, f: EventFrame): void {
    if (!this.delivery.accept(f.seq)) return;
    const channel = f.channel === "$direct" ? null : f.channel;
    this.emit("event", { seq: f.seq, channel, data: f.data });
    this.delivery.noteDelivered((frame) => sendRaw(conn, frame));
  }

  private onPermissions(conn: Conn, f: PermissionsFrame): void {
    if (!this.delivery.accept(f.seq)) return;
    for (const ch of f.dropped) this.subscriptions.delete(ch);
    this.emit("permissions", {
      seq: f.seq,
      permissions: f.permissions,
      dropped: f.dropped,
      version: f.version,
    });
    this.delivery.noteDelivered((frame) => sendRaw(conn, frame));
  }

  /** Follow a drain advice: keep delivering for `afterMs`, then move elsewhere and resume. */
  private onAdvice(conn: Conn, afterMs: number): void {
    const ms = this.reconnector.advise(afterMs);
    if (conn.adviceTimer) clearTimeout(conn.adviceTimer);
    conn.adviceTimer = setTimeout(() => {
      conn.adviceTimer = null;
      if (conn.closed || this.conn !== conn) return;
      conn.advised = true;
      this.delivery.flush((frame) => sendRaw(conn, frame));
      // Not 1000: the server detaches the session and hands it to the next node.
      try {
        conn.ws.close(1001, "reconnect");
      } catch {
        // Already closing; the close event follows.
      }
    }, ms);
  }

  // ---- requests -----------------------------------------------------------------------

  private request(frame: RequestFrame): Promise<void> {
    if (this.st === "closed") return Promise.reject(err("closed", "the client is closed"));
    const { req, done } = this.requests.create(frame);
    const conn = this.conn;
    if (conn && conn.welcomed && this.st === "connected") {
      this.requests.send(req, (f) => sendRaw(conn, f));
    } else {
      this.requests.enqueue(req);
    }
    return done;
  }

  /** Sends an SDK-internal request on `conn` (refresh, re-subscribe), never queued. */
  private sendTracked(conn: Conn, frame: RequestFrame): Promise<void> {
    const { req, done } = this.requests.create(frame);
    this.requests.send(req, (f) => sendRaw(conn, f));
    return done;
  }

  private resubscribe(conn: Conn): void {
    for (const channel of this.subscriptions) {
      this.sendTracked(conn, { type: "subscribe", channel }).catch((e: unknown) => {
        if (!isTetherError(e) || e.code === "connection_lost" || e.code === "closed") return;
        // Refused (e.g. the permission is gone): forget it, and tell the app.
        this.subscriptions.delete(channel);
        this.emit("error", { code: "resubscribe_failed", message: `${channel}: ${e.code}: ${e.message}` });
      });
    }
  }

  private settleConnect(e: TetherError | null): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) {
      if (e) w.reject(e);
      else w.resolve();
    }
  }
}
