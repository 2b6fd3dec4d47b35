/** Unit tests of the reconnect policy and the backoff, with injected randomness. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { attachBrowserHooks } from "../src/browser.js";
import { TetherClient } from "../src/index.js";
import type { ReconnectingEvent, WebSocketConstructor } from "../src/index.js";
import { Backoff, closeAction } from "../src/policy.js";
import { waitFor } from "./harness/wait.js";

// Proves the close-code classes of PROTOCOL.md: 40xx terminal, 4100 refresh, 4111 at once
// elsewhere, 1012/1013 elsewhere with backoff, other reconnectable codes with backoff.
test("close codes map to the documented actions", () => {
  for (const c of [4000, 4001, 4003, 4004, 4005, 4006, 4009, 1002, 1009]) assert.equal(closeAction(c), "stop", `${c}`);
  for (const c of [4101, 4102, 4108, 1000, 1001, 1006, 1011]) assert.equal(closeAction(c), "backoff", `${c}`);
  assert.equal(closeAction(1012), "backoff_elsewhere");
  assert.equal(closeAction(1013), "backoff_elsewhere");
  assert.equal(closeAction(4100), "refresh_token");
  assert.equal(closeAction(4111), "now_elsewhere");
});

// Proves the caps double from minDelayMs up to maxDelayMs and stay there, that delays
// cover the whole 0..=cap window (full jitter), and that reset starts over.
test("backoff caps double up to maxDelayMs; full jitter covers 0..=cap", () => {
  const top = new Backoff(250, 30_000, () => 0.999999);
  const caps = Array.from({ length: 10 }, () => top.nextDelay());
  assert.deepEqual(caps, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  const bottom = new Backoff(250, 30_000, () => 0);
  assert.deepEqual(Array.from({ length: 5 }, () => bottom.nextDelay()), [0, 0, 0, 0, 0]);
  const mid = new Backoff(250, 30_000, () => 0.5);
  assert.equal(mid.nextDelay(), 125);
  top.reset();
  assert.equal(top.attempt, 0);
  assert.equal(top.nextDelay(), 250);
  // A broken random source cannot push a delay past its cap.
  assert.equal(new Backoff(250, 1000, () => 7).nextDelay(), 250);
});

/** A WebSocket stand-in whose connection always fails (error + close 1006), asynchronously. */
const FailingWs = class {
  readyState = 0;
  protocol = "";
  private readonly listeners = new Map<string, ((ev: object) => void)[]>();
  constructor() {
    setTimeout(() => {
      this.readyState = 3;
      for (const f of this.listeners.get("error") ?? []) f({});
      for (const f of this.listeners.get("close") ?? []) f({ code: 1006, reason: "" });
    }, 1);
  }
  addEventListener(type: string, f: (ev: object) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), f]);
  }
  send(): void {}
  close(): void {}
} as unknown as WebSocketConstructor;

// Proves 1000 clients that lose their node spread their first reconnect uniformly over the
// whole 0..=minDelayMs window (no thundering herd), none beyond it.
test("1000 clients' first reconnect delays spread over the window", async () => {
  const N = 1000;
  const firsts: ReconnectingEvent[] = [];
  const clients = Array.from({ length: N }, (_, i) => {
    const c = new TetherClient({
      urls: [`ws://fake-${i}/v1/connect`],
      getToken: () => Promise.resolve("t"),
      WebSocket: FailingWs,
      reconnect: { minDelayMs: 1000, maxDelayMs: 30_000 },
    });
    const off = c.on("reconnecting", (e) => {
      firsts.push(e);
      off();
    });
    c.connect().catch(() => undefined);
    return c;
  });
  try {
    await waitFor(() => firsts.length === N, 10_000, "every client's first reconnecting event");
    const buckets = new Array<number>(10).fill(0);
    for (const e of firsts) {
      assert.equal(e.attempt, 1);
      assert.equal(e.code, 1006);
      assert.ok(e.delayMs >= 0 && e.delayMs <= 1000, `delay ${e.delayMs} within the first cap`);
      buckets[Math.min(9, Math.floor(e.delayMs / 100))]! += 1;
    }
    // Uniform: 100 per 100 ms bucket expected; 55..145 is beyond 4.5 standard deviations.
    for (const b of buckets) assert.ok(b >= 55 && b <= 145, `bucket counts ${buckets.join(",")}`);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

// Proves every delay stays under min(maxDelayMs, minDelayMs·2^(n-1)) as attempts grow, and
// that maxAttempts ends the retries with a terminal `closed`.
test("reconnect delays are capped at maxDelayMs and maxAttempts stops retrying", async () => {
  const N = 50;
  const seen: ReconnectingEvent[][] = [];
  const terminal: number[] = [];
  const clients = Array.from({ length: N }, () => {
    const mine: ReconnectingEvent[] = [];
    seen.push(mine);
    const c = new TetherClient({
      urls: ["ws://a/v1/connect", "ws://b/v1/connect"],
      getToken: () => Promise.resolve("t"),
      WebSocket: FailingWs,
      reconnect: { minDelayMs: 1, maxDelayMs: 8, maxAttempts: 7 },
    });
    c.on("reconnecting", (e) => mine.push(e));
    c.on("closed", (e) => {
      if (e.terminal) terminal.push(e.code);
    });
    c.connect().catch(() => undefined);
    return c;
  });
  try {
    await waitFor(() => terminal.length === N, 10_000, "every client to give up");
    for (const mine of seen) {
      assert.deepEqual(mine.map((e) => e.attempt), [1, 2, 3, 4, 5, 6, 7]);
      for (const e of mine) assert.ok(e.delayMs <= Math.min(8, 2 ** (e.attempt - 1)), `attempt ${e.attempt}: ${e.delayMs}`);
    }
    assert.ok(terminal.every((c) => c === 1006));
    assert.ok(clients.every((c) => c.state === "closed"));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

// Proves the browser hooks call reconnectNow on `online` and on becoming visible (not on
// hidden), and that the returned function detaches them.
test("browser hooks reconnect on online and visible, and detach", () => {
  let calls = 0;
  const win = new EventTarget();
  const doc = Object.assign(new EventTarget(), { visibilityState: "hidden" });
  const detach = attachBrowserHooks({ reconnectNow: () => (calls += 1) }, { window: win, document: doc });
  win.dispatchEvent(new Event("online"));
  assert.equal(calls, 1);
  doc.dispatchEvent(new Event("visibilitychange"));
  assert.equal(calls, 1, "hidden: no reconnect");
  doc.visibilityState = "visible";
  doc.dispatchEvent(new Event("visibilitychange"));
  assert.equal(calls, 2);
  detach();
  win.dispatchEvent(new Event("online"));
  doc.dispatchEvent(new Event("visibilitychange"));
  assert.equal(calls, 2);
});
