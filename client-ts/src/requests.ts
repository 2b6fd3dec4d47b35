/**
 * `Requests`: the client's requests (`subscribe`, `unsubscribe`, `publish`, `refresh`) from
 * creation to reply. Each has one deadline for its whole life; those made while no
 * connection is up wait in a bounded queue for the next `welcome`.
 */
import type { Reply } from "./frames.js";
import type { TetherError } from "./types.js";
import { tetherError } from "./util.js";

export type RequestFrame =
  | { type: "subscribe"; channel: string }
  | { type: "unsubscribe"; channel: string }
  | { type: "publish"; channel: string; data: unknown }
  | { type: "refresh"; token: string };

export interface Request {
  frame: RequestFrame;
  resolve: () => void;
  reject: (e: TetherError) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

export class Requests {
  private readonly queue: Request[] = [];
  private readonly inflight = new Map<number, Request>();
  private nextId = 1;

  constructor(
    private readonly timeoutMs: number,
    private readonly maxQueued: number,
  ) {}

  /** A new request whose timeout is armed: it fails with `timeout`, queued or sent. */
  create(frame: RequestFrame): { req: Request; done: Promise<void> } {
    let req!: Request;
    const done = new Promise<void>((resolve, reject) => {
      req = { frame, resolve, reject, timer: null };
    });
    req.timer = setTimeout(() => {
      this.forget(req);
      req.reject(tetherError("timeout", `no reply within ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    return { req, done };
  }

  /** Queues `req` for the next connection, or fails it with `queue_full`. */
  enqueue(req: Request): void {
    if (this.queue.length >= this.maxQueued) {
      this.settle(req, tetherError("queue_full", `more than ${this.maxQueued} requests wait for a connection`));
      return;
    }
    this.queue.push(req);
  }

  /** Takes every queued request (to send them on a new connection). */
  takeQueued(): Request[] {
    return this.queue.splice(0);
  }

  /** Sends `req` with a fresh id through `send`; fails it if the socket refused. */
  send(req: Request, send: (frame: object) => boolean): void {
    const id = this.nextId++;
    this.inflight.set(id, req);
    if (!send({ ...req.frame, id })) {
      this.inflight.delete(id);
      this.settle(req, tetherError("connection_lost", "the connection is not open"));
    }
  }

  /** Settles the request `r` answers; returns its frame when it succeeded. */
  onReply(r: Reply): RequestFrame | null {
    const req = this.inflight.get(r.id);
    if (!req) return null;
    this.inflight.delete(r.id);
    if (r.ok) {
      this.settle(req, null);
      return req.frame;
    }
    this.settle(req, r.error ?? tetherError("error", "request refused"));
    return null;
  }

  /** Fails the requests awaiting a reply (their connection is gone). */
  failInflight(e: TetherError): void {
    const reqs = [...this.inflight.values()];
    this.inflight.clear();
    for (const r of reqs) this.settle(r, e);
  }

  /** Fails every request, queued or sent. */
  failAll(e: TetherError): void {
    this.failInflight(e);
    for (const r of this.queue.splice(0)) this.settle(r, e);
  }

  private forget(req: Request): void {
    const i = this.queue.indexOf(req);
    if (i >= 0) this.queue.splice(i, 1);
    for (const [id, r] of this.inflight) if (r === req) this.inflight.delete(id);
  }

  private settle(req: Request, e: TetherError | null): void {
    if (req.timer !== null) clearTimeout(req.timer);
    req.timer = null;
    if (e) req.reject(e);
    else req.resolve();
  }
}
