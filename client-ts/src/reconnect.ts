/**
 * Reconnect scheduling: after a connection (or a failed attempt) ends, whether to stop, how
 * long to wait, and which URL comes next. Pure decisions plus the one pending timer, so
 * that `TetherClient` only acts on the outcome.
 */
import { Backoff, closeAction } from "./policy.js";
import type { Action } from "./policy.js";

/** A `reconnect` advice is followed for at most this long. */
export const MAX_ADVICE_MS = 300_000;

export type Plan = { stop: true; reason: string } | { stop: false; attempt: number; delayMs: number };

export class Reconnector {
  private readonly backoff: Backoff;
  private urlIndex = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** `reconnect` advice: do not come back before this time (ms since epoch). */
  private advisedUntil = 0;

  constructor(
    private readonly urls: readonly string[],
    minDelayMs: number,
    maxDelayMs: number,
    private readonly maxAttempts: number,
  ) {
    this.backoff = new Backoff(minDelayMs, maxDelayMs);
  }

  /** The URL the next attempt uses. */
  get url(): string {
    return this.urls[this.urlIndex % this.urls.length] ?? "";
  }

  get pending(): boolean {
    return this.timer !== null;
  }

  /** A session was established: the next failure starts the backoff over. */
  reset(): void {
    this.backoff.reset();
  }

  /** A `reconnect` advice: stay away from the cluster's nodes for `afterMs` (capped). */
  advise(afterMs: number): number {
    const ms = Math.min(Math.max(afterMs, 0), MAX_ADVICE_MS);
    this.advisedUntil = Date.now() + ms;
    return ms;
  }

  /** Decides what follows a connection that ended with `code`; moves the URL if needed. */
  plan(code: number, reason: string, welcomed: boolean, advised: boolean): Plan {
    const action: Action = advised ? "now_elsewhere" : closeAction(code);
    if (action === "stop") return { stop: true, reason };
    const attempt = this.backoff.attempt + 1;
    if (attempt > this.maxAttempts) return { stop: true, reason: reason || "max_attempts" };
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
    return { stop: false, attempt, delayMs };
  }

  /** Runs `fn` after `delayMs`, replacing any pending run. */
  schedule(fn: () => void, delayMs: number): void {
    this.clear();
    this.timer = setTimeout(() => {
      this.timer = null;
      fn();
    }, delayMs);
  }

  /** Cancels the pending run; `true` if there was one. */
  clear(): boolean {
    const had = this.timer !== null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    return had;
  }
}
