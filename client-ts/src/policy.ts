/**
 * Reconnect policy: what a close code means for the SDK (mirrors the Rust SDK's
 * `policy.rs`), and the full-jitter exponential backoff.
 */

/** What to do after a connection ended. */
export type Action =
  /** Stop for good (40xx, client-side protocol faults): a terminal `closed`. */
  | "stop"
  /** Reconnect and resume after a full-jitter backoff, same URL. */
  | "backoff"
  /** Reconnect and resume after a full-jitter backoff, next URL (1012, 1013). */
  | "backoff_elsewhere"
  /** Reconnect at once to the next URL and resume (4111: node cut off from quorum). */
  | "now_elsewhere"
  /** Get a new token, reconnect at once and resume (4100). */
  | "refresh_token";

/** The SDK's reaction to a close `code` (1006: the link dropped without a close frame). */
export function closeAction(code: number): Action {
  if (code === 4100) return "refresh_token";
  if (code === 4111) return "now_elsewhere";
  if (code === 1012 || code === 1013) return "backoff_elsewhere";
  if (code >= 4000 && code <= 4099) return "stop";
  // Other 41xx and unknown application codes: reconnect; the backoff bounds the cost and
  // a newer server may add reconnectable codes.
  if (code >= 4100 && code <= 4999) return "backoff";
  // The client is at fault (protocol error, bad data, policy, too big, extension):
  // reconnecting would repeat it.
  if ([1002, 1003, 1007, 1008, 1009, 1010].includes(code)) return "stop";
  // 1000/1001 from the server, 1006, 1011 and anything else: try again.
  return "backoff";
}

/**
 * Full-jitter exponential backoff: attempt `n` (from 1) waits a uniformly random whole
 * number of ms in `0..=min(maxDelayMs, minDelayMs * 2^(n-1))`. Spreading over the whole
 * window (not "cap ± jitter") is what keeps a fleet of clients that lost the same node
 * from coming back in one wave.
 */
export class Backoff {
  private attempts = 0;

  constructor(
    private readonly minDelayMs: number,
    private readonly maxDelayMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** Attempts since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  /** Counts an attempt that does not wait (an immediate or advised reconnect). */
  bump(): number {
    this.attempts += 1;
    return this.attempts;
  }

  /** The cap for attempt `n`. */
  cap(n: number): number {
    const shift = Math.min(Math.max(n - 1, 0), 30);
    return Math.min(this.maxDelayMs, this.minDelayMs * 2 ** shift);
  }

  /** Counts the next attempt and returns its delay. */
  nextDelay(): number {
    const cap = this.cap(this.bump());
    const r = Math.min(Math.max(this.random(), 0), 1);
    return Math.min(cap, Math.floor(r * (cap + 1)));
  }

  /** A session was established: start over. */
  reset(): void {
    this.attempts = 0;
  }
}
