/**
 * `TetherClient`: one logical Tether session kept alive across dropped links, resumes,
 * token refreshes and node changes. Mirrors the Rust SDK (`client/`, docs/client.md).
 */

import { Emitter } from "./emitter.js";
import { parseFrame } from "./frames.js";
import type { EventFrame, PermissionsFrame, Reply, Welcome } from "./frames.js";
import { Backoff, closeAction } from "./policy.js";
import type { Action } from "./policy.js";
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

/** The part of the WHATWG WebSocket interface the SDK uses (browsers and `ws` alike). */
interface Socket {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (ev: SocketEvent) => void): void;
}

interface SocketEvent {
  data?: unknown;
  code?: number;
  reason?: string;
}

const OPEN = 1;
const PROTOCOL = "tether.v1";
/** Requests made while no connection is up, waiting for the next `welcome`. */
const MAX_QUEUED = 256;
/** Send an `ack` after this many delivered frames, or this long after the first. */
const ACK_EVERY = 64;
const ACK_DELAY_MS = 250;
/** Wait before retrying a refused or failed in-band refresh. */
const REFRESH_RETRY_MS = 10_000;
/** A `reconnect` advice is followed for at most this long. */
const MAX_ADVICE_MS = 300_000;
/** How long `close()` waits for the server's close frame. */
const CLOSE_WAIT_MS = 2_000;

/** One WebSocket attempt and what belongs to it only. */
interface Conn {
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

export class TetherClient extends Emitter<TetherEvents> {
  private readonly urls: string[];
  private readonly getToken: () => Promise<string>;
  private readonly carrier: TokenCarrier;
  private readonly Ctor: WebSocketConstructor | undefined;
  private readonly backoff: Backoff;
  private readonly maxAttempts: number;
  private readonly clientInfo: { name: string; version: string };
  private readonly requestTimeoutMs: number;

  private st: ClientState = "idle";
  private urlIndex = 0;
  private conn: Conn | null = null;
  /** Bumped for every attempt: callbacks of an older attempt see a stale value and stop. */
  private gen = 0;
  private session: ResumeState | null;
  private lastAcked: number;
  private unacked = 0;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  /** Channels the server confirmed: re-subscribed when a session did not keep them. */
  private readonly subscriptions = new Set<string>();
  private readonly requests: Requests;
  private token: string | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  /** `reconnect` advice: do not come back before this time (ms since epoch). */
  private advisedUntil = 0;
  private connectWaiters: { resolve: () => void; reject: (e: TetherError) => void }[] = [];

  constructor(options: TetherClientOptions) {
    super();
    if (!Array.isArray(options.urls) || options.urls.length === 0) {
      throw new TypeError("TetherClient: `urls` must list at least one URL");
    }
    if (typeof options.getToken !== "function") {
      throw new TypeError("TetherClient: `getToken` must be a function");
    }
    this.urls = [...options.urls];
    this.getToken = options.getToken;
    this.Ctor = options.WebSocket;
    this.carrier = options.tokenCarrier ?? (options.WebSocket ? "header" : "subprotocol");
    const r = options.reconnect ?? {};
    const min = Math.max(0, r.minDelayMs ?? 250);
    this.backoff = new Backoff(min, Math.max(min, r.maxDelayMs ?? 30_000));
    this.maxAttempts = r.maxAttempts ?? Infinity;
    this.clientInfo = options.client ?? { name: SDK_NAME, version: SDK_VERSION };
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.requests = new Requests(this.requestTimeoutMs, MAX_QUEUED);
    const rs = options.resumeState;
    this.session = rs ? { sessionId: rs.sessionId, resumeToken: rs.resumeToken, lastSeq: rs.lastSeq } : null;
    this.lastAcked = this.session?.lastSeq ?? 0;
  }

  get state(): ClientState {
    return this.st;
  }

  /** What to persist to resume this session after an app restart; `null` before a welcome. */
  resumeState(): ResumeState | null {
    return this.session ? { ...this.session } : null;
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
    if (this.st !== "reconnecting" || this.reconnectTimer === null) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    void this.attempt();
  }

  /** Closes with 1000: the session ends on the server. Pending requests fail with `closed`. */
  async close(): Promise<void> {
    if (this.st === "closed") return;
    this.st = "closed";
    this.clearReconnect();
    this.clearAck();
    const conn = this.conn;
    this.conn = null;
    this.gen += 1;
    this.requests.failAll(err("closed", "the client was closed"));
    this.settleConnect(err("closed", "the client was closed"));
    if (conn) {
      this.clearConnTimers(conn);
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
    const url = this.urls[this.urlIndex % this.urls.length] ?? "";
    let ws: Socket;
    try {
      ws = this.open(url, token);
    } catch (e) {
      this.emit("error", { code: "connect_failed", message: describe(e) });
      this.afterConnection(1006, "connect_failed", false, false);
      return;
    }
    const conn: Conn = {
      ws,
      welcomed: false,
      advised: false,
      handshakeTimer: null,
      adviceTimer: null,
      refreshTimer: null,
      refreshing: false,
      closed: false,
    };
    this.conn = conn;
    // The upgrade and the welcome each within the request timeout, like the Rust SDK.
    conn.handshakeTimer = setTimeout(() => this.drop(conn, gen, "handshake_timeout"), this.requestTimeoutMs);
    ws.addEventListener("open", () => {
      if (gen !== this.gen) return;
      if (ws.protocol !== PROTOCOL) {
        this.drop(conn, gen, "no_subprotocol");
        return;
      }
      this.sendHello(conn, token);
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

  private open(url: string, token: string): Socket {
    const Ctor = this.Ctor ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) throw new Error("no WebSocket constructor: pass the `WebSocket` option (e.g. from `ws`)");
    switch (this.carrier) {
      case "header":
        return new Ctor(url, [PROTOCOL], { headers: { Authorization: `Bearer ${token}` } }) as Socket;
      case "subprotocol":
        return new Ctor(url, [PROTOCOL, `tether.bearer.${token}`]) as Socket;
      case "hello":
        return new Ctor(url, [PROTOCOL]) as Socket;
    }
  }

  private sendHello(conn: Conn, token: string): void {
    const hello: Record<string, unknown> = { type: "hello", client: this.clientInfo };
    if (this.carrier === "hello") hello.token = token;
    if (this.session) {
      hello.resume = {
        session_id: this.session.sessionId,
        resume_token: this.session.resumeToken,
        last_seq: this.session.lastSeq,
      };
    }
    this.sendRaw(conn, hello);
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
    this.clearConnTimers(conn);
    if (this.conn === conn) this.conn = null;
    this.clearAck();
    this.requests.failInflight(err("connection_lost", `the connection closed (${code})`));
    if (this.st === "closed") return;
    this.afterConnection(code, reason, conn.welcomed, conn.advised);
  }

  /** Decides what follows a connection (or a failed attempt) that ended with `code`. */
  private afterConnection(code: number, reason: string, welcomed: boolean, advised: boolean): void {
    const action: Action = advised ? "now_elsewhere" : closeAction(code);
    if (action === "stop") {
      this.terminate(code, reason);
      return;
    }
    const attempt = this.backoff.attempt + 1;
    if (attempt > this.maxAttempts) {
      this.terminate(code, reason || "max_attempts");
      return;
    }
    if (welcomed) this.emit("closed", { code, reason, terminal: false });
    let delayMs: number;
    // 4111 and 4100 retry at once only first: if that fails too, back off like any other
    // failure, so a cluster that keeps refusing is not hammered in a tight loop.
    if (advised || ((action === "now_elsewhere" || action === "refresh_token") && attempt === 1)) {
      this.backoff.bump();
      delayMs = 0;
    } else {
      delayMs = this.backoff.nextDelay();
    }
    // Another node is a better bet after a failed attempt, a drain, overload or isolation.
    if (!welcomed || action === "now_elsewhere" || action === "backoff_elsewhere") {
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    }
    const advisedLeft = this.advisedUntil - Date.now();
    if (advisedLeft > 0 && !advised) delayMs = Math.max(delayMs, advisedLeft);
    this.st = "reconnecting";
    this.emit("reconnecting", { attempt, delayMs, code });
    if (this.st !== "reconnecting") return; // a listener closed the client
    this.clearReconnect();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.attempt();
    }, delayMs);
  }

  private terminate(code: number, reason: string): void {
    this.st = "closed";
    this.clearReconnect();
    this.clearAck();
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
        void this.refresh(conn);
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
    const fresh = !w.resumed || this.session?.sessionId !== w.session_id;
    if (fresh) {
      // A new session numbers its frames from `welcome.seq` again.
      this.session = { sessionId: w.session_id, resumeToken: w.resume_token, lastSeq: w.seq };
      this.lastAcked = w.seq;
      this.unacked = 0;
    } else if (this.session) {
      this.session.resumeToken = w.resume_token;
    }
    this.backoff.reset();
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
    // Frames delivered on the previous connection but not acknowledged yet.
    this.flushAck(conn);
    // The server kept the subscriptions only on a full recovery of the same session.
    if (fresh || !w.recovered) this.resubscribe(conn);
    const send = (frame: object): boolean => this.sendRaw(conn, frame);
    for (const req of this.requests.takeQueued()) this.requests.send(req, send);
  }

  private onReply(r: Reply): void {
    const done = this.requests.onReply(r);
    if (done?.type === "subscribe") this.subscriptions.add(done.channel);
    if (done?.type === "unsubscribe") this.subscriptions.delete(done.channel);
  }

  /** `true` if `seq` is new for this session (and records it); `false` for a replay. */
  private accept(seq: number): boolean {
    if (!this.session || seq <= this.session.lastSeq) return false;
    this.session.lastSeq = seq;
    return true;
  }

  private onEvent(conn: Conn, f: EventFrame): void {
    if (!this.accept(f.seq)) return;
    const channel = f.channel === "$direct" ? null : f.channel;
    this.emit("event", { seq: f.seq, channel, data: f.data });
    this.noteDelivered(conn);
  }

  private onPermissions(conn: Conn, f: PermissionsFrame): void {
    if (!this.accept(f.seq)) return;
    for (const ch of f.dropped) this.subscriptions.delete(ch);
    this.emit("permissions", {
      seq: f.seq,
      permissions: f.permissions,
      dropped: f.dropped,
      version: f.version,
    });
    this.noteDelivered(conn);
  }

  /** Follow a drain advice: keep delivering for `afterMs`, then move elsewhere and resume. */
  private onAdvice(conn: Conn, afterMs: number): void {
    const ms = Math.min(Math.max(afterMs, 0), MAX_ADVICE_MS);
    this.advisedUntil = Date.now() + ms;
    if (conn.adviceTimer) clearTimeout(conn.adviceTimer);
    conn.adviceTimer = setTimeout(() => {
      conn.adviceTimer = null;
      if (conn.closed || this.conn !== conn) return;
      conn.advised = true;
      this.flushAck(conn);
      // Not 1000: the server detaches the session and hands it to the next node.
      try {
        conn.ws.close(1001, "reconnect");
      } catch {
        // Already closing; the close event follows.
      }
    }, ms);
  }

  // ---- acks ---------------------------------------------------------------------------

  private noteDelivered(conn: Conn): void {
    this.unacked += 1;
    if (this.unacked >= ACK_EVERY) {
      this.flushAck(conn);
    } else if (this.ackTimer === null) {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = null;
        if (this.conn) this.flushAck(this.conn);
      }, ACK_DELAY_MS);
    }
  }

  /** Acknowledges everything delivered so far: the server trims its outbox. */
  private flushAck(conn: Conn): void {
    this.clearAck();
    const seq = this.session?.lastSeq ?? 0;
    if (seq <= this.lastAcked) return;
    if (this.sendRaw(conn, { type: "ack", seq })) {
      this.lastAcked = seq;
      this.unacked = 0;
    }
  }

  private clearAck(): void {
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
  }

  // ---- refresh ------------------------------------------------------------------------

  /** In-band refresh: a new token from the app, sent as `refresh`; retried on failure. */
  private async refresh(conn: Conn): Promise<void> {
    if (conn.refreshing || conn.closed) return;
    conn.refreshing = true;
    if (conn.refreshTimer) clearTimeout(conn.refreshTimer);
    conn.refreshTimer = null;
    let failure: TetherError | null = null;
    try {
      const token = await withTimeout(this.getToken(), this.requestTimeoutMs, "getToken timed out");
      if (conn.closed) return;
      if (token === this.token) {
        failure = err("refresh_failed", "getToken returned the token already in use");
      } else {
        await this.sendTracked(conn, { type: "refresh", token });
        this.token = token;
      }
    } catch (e) {
      failure = isTetherError(e)
        ? err("refresh_failed", `${e.code}: ${e.message}`)
        : err("token_provider", describe(e));
    } finally {
      conn.refreshing = false;
    }
    if (failure && !conn.closed && this.st !== "closed") {
      this.emit("error", failure);
      conn.refreshTimer = setTimeout(() => void this.refresh(conn), REFRESH_RETRY_MS);
    }
  }

  // ---- requests -----------------------------------------------------------------------

  private request(frame: RequestFrame): Promise<void> {
    if (this.st === "closed") return Promise.reject(err("closed", "the client is closed"));
    const { req, done } = this.requests.create(frame);
    const conn = this.conn;
    if (conn && conn.welcomed && this.st === "connected") {
      this.requests.send(req, (f) => this.sendRaw(conn, f));
    } else {
      this.requests.enqueue(req);
    }
    return done;
  }

  /** Sends an SDK-internal request on `conn` (refresh, re-subscribe), never queued. */
  private sendTracked(conn: Conn, frame: RequestFrame): Promise<void> {
    const { req, done } = this.requests.create(frame);
    this.requests.send(req, (f) => this.sendRaw(conn, f));
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

  private sendRaw(conn: Conn, frame: object): boolean {
    if (conn.closed || conn.ws.readyState !== OPEN) return false;
    try {
      conn.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
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

  private clearReconnect(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  private clearConnTimers(conn: Conn): void {
    for (const t of [conn.handshakeTimer, conn.adviceTimer, conn.refreshTimer]) {
      if (t !== null) clearTimeout(t);
    }
    conn.handshakeTimer = conn.adviceTimer = conn.refreshTimer = null;
  }
}
