/**
 * Delivery state of the logical session: the resume credentials, the last delivered `seq`
 * (the de-duplication point across reconnects) and the batched `ack`. It outlives any one
 * connection, which is why it is not part of `Conn`.
 */
import type { Welcome } from "./frames.js";
import type { ResumeState } from "./types.js";

/** Send an `ack` after this many delivered frames, or this long after the first. */
const ACK_EVERY = 64;
const ACK_DELAY_MS = 250;

/** Sends a frame on the current connection; `false` if there is none or it is not open. */
export type Send = (frame: object) => boolean;

export class Delivery {
  private session: ResumeState | null;
  private lastAcked: number;
  private unacked = 0;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;

  /** `current` gives the send function of the connection up at the time, for timed acks. */
  constructor(
    resume: ResumeState | undefined | null,
    private readonly current: () => Send | null,
  ) {
    this.session = resume ? { sessionId: resume.sessionId, resumeToken: resume.resumeToken, lastSeq: resume.lastSeq } : null;
    this.lastAcked = this.session?.lastSeq ?? 0;
  }

  /** The session to resume in `hello` (not a copy: read only). */
  get resume(): ResumeState | null {
    return this.session;
  }

  /** A copy for the app to persist. */
  snapshot(): ResumeState | null {
    return this.session ? { ...this.session } : null;
  }

  /**
   * Adopts a `welcome`. Returns `true` if it starts a fresh session (not a resume of ours),
   * whose frames are numbered from `welcome.seq` again.
   */
  onWelcome(w: Welcome): boolean {
    const fresh = !w.resumed || this.session?.sessionId !== w.session_id;
    if (fresh) {
      this.session = { sessionId: w.session_id, resumeToken: w.resume_token, lastSeq: w.seq };
      this.lastAcked = w.seq;
      this.unacked = 0;
    } else if (this.session) {
      // The resume token rotates at every resume.
      this.session.resumeToken = w.resume_token;
    }
    return fresh;
  }

  /** `true` if `seq` is new for this session (and records it); `false` for a replay. */
  accept(seq: number): boolean {
    if (!this.session || seq <= this.session.lastSeq) return false;
    this.session.lastSeq = seq;
    return true;
  }

  /** Counts a delivered frame; acks at once every `ACK_EVERY`, else within `ACK_DELAY_MS`. */
  noteDelivered(send: Send): void {
    this.unacked += 1;
    if (this.unacked >= ACK_EVERY) {
      this.flush(send);
    } else if (this.ackTimer === null) {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = null;
        const s = this.current();
        if (s) this.flush(s);
      }, ACK_DELAY_MS);
    }
  }

  /** Acknowledges everything delivered so far: the server trims its outbox. */
  flush(send: Send): void {
    this.clearTimer();
    const seq = this.session?.lastSeq ?? 0;
    if (seq <= this.lastAcked) return;
    if (send({ type: "ack", seq })) {
      this.lastAcked = seq;
      this.unacked = 0;
    }
  }

  /** Stops a pending timed ack (the connection is gone; the next `welcome` flushes). */
  clearTimer(): void {
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
  }
}
