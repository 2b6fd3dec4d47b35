/**
 * Policy paths driven by a scripted server (harness/fake-server.ts): 4111, drain advice,
 * 4100, replays, recovered:false, the request queue and timeouts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import WebSocket from "ws";

import { TetherClient } from "../src/index.js";
import type { TetherClientOptions } from "../src/index.js";
import { record } from "./harness/client.js";
import type { FakeConn } from "./harness/fake-server.js";
import { startFake, welcome } from "./harness/fake-server.js";
import { deadline, waitFor } from "./harness/wait.js";

function client(urls: string[], extra: Partial<TetherClientOptions> = {}) {
  let calls = 0;
  const c = new TetherClient({
    urls,
    getToken: () => Promise.resolve(`tok-${++calls}`),
    WebSocket: WebSocket,
    reconnect: { minDelayMs: 2000, maxDelayMs: 30_000 },
    requestTimeoutMs: 3000,
    ...extra,
  });
  return { c, rec: record(c), calls: () => calls };
}

/** Answers the hello with a welcome: fresh, or resuming the session the hello names. */
function answerHello(conn: FakeConn, recovered = true): void {
  void conn.next("hello").then((h) => {
    const resume = h.resume as { session_id: string; last_seq: number } | undefined;
    conn.send(
      resume
        ? welcome({ session_id: resume.session_id, resume_token: "rt2", resumed: true, recovered, seq: resume.last_seq })
        : welcome(),
    );
  });
}

// Proves 4111 makes the SDK reconnect at once (delay 0, despite a 2 s minimum backoff) to
// the NEXT URL, resuming with the session and last seq it had.
test("4111 reconnects at once to the next URL and resumes", async () => {
  const s1 = await startFake((conn) => answerHello(conn));
  const s2 = await startFake((conn) => answerHello(conn));
  const { c, rec } = client([s1.url, s2.url]);
  try {
    await deadline(c.connect(), 5000, "connect");
    s1.conns[0]!.send({ type: "event", seq: 1, channel: "chat.a", data: 1 });
    await waitFor(() => rec.events.length === 1, 5000, "event 1");
    s1.conns[0]!.close(4111, "registry_unavailable");
    await waitFor(() => s2.conns.length === 1, 1500, "a connection to the second URL well before 2 s");
    assert.deepEqual(rec.reconnecting, [{ attempt: 1, delayMs: 0, code: 4111 }]);
    assert.deepEqual(rec.closed, [{ code: 4111, reason: "registry_unavailable", terminal: false }]);
    const hello = await s2.conns[0]!.next("hello");
    assert.deepEqual(hello.resume, { session_id: "s1", resume_token: "rt1", last_seq: 1 });
    await waitFor(() => rec.connected.length === 2, 5000, "resumed welcome");
    assert.equal(rec.connected[1]?.resumed, true);
    assert.equal(c.resumeState()?.resumeToken, "rt2");
  } finally {
    await c.close();
    await s1.close();
    await s2.close();
  }
});

// Proves only the first retry after a 4111 is immediate: when every node keeps answering
// 4111, later attempts back off (no tight reconnect loop) while still rotating URLs.
test("repeated 4111 backs off after the first immediate retry", async () => {
  let first = true;
  const refuse = (conn: FakeConn): void => {
    void conn.next("hello").then(() => {
      if (first) {
        first = false;
        conn.send(welcome());
        setTimeout(() => conn.close(4111, "registry_unavailable"), 20);
      } else {
        conn.close(4111, "registry_unavailable");
      }
    });
  };
  const s1 = await startFake(refuse);
  const s2 = await startFake(refuse);
  const { c, rec } = client([s1.url, s2.url], { reconnect: { minDelayMs: 20, maxDelayMs: 100 } });
  try {
    await deadline(c.connect(), 5000, "connect");
    await waitFor(() => rec.reconnecting.length >= 8, 5000, "8 reconnect attempts");
    assert.equal(rec.reconnecting[0]?.delayMs, 0);
    const later = rec.reconnecting.slice(1, 8);
    assert.ok(later.every((e) => e.code === 4111 && e.delayMs <= 100));
    assert.ok(later.reduce((a, e) => a + e.delayMs, 0) > 0, "later attempts wait");
    assert.ok(s1.conns.length >= 3 && s2.conns.length >= 3, "both URLs tried in turn");
  } finally {
    await c.close();
    await s1.close();
    await s2.close();
  }
});

// Proves a `reconnect` advice is followed: the SDK keeps the link for after_ms, then
// closes it with 1001 (not 1000, so the session stays resumable) and resumes on the next
// URL; and that replayed frames with seq <= last seq are dropped after the resume.
test("reconnect advice: close 1001 after after_ms, resume elsewhere, replays deduped", async () => {
  const s1 = await startFake((conn) => answerHello(conn));
  const s2 = await startFake((conn) => answerHello(conn));
  const { c, rec } = client([s1.url, s2.url]);
  try {
    await deadline(c.connect(), 5000, "connect");
    const c1 = s1.conns[0]!;
    for (const seq of [1, 2]) c1.send({ type: "event", seq, channel: "chat.a", data: seq });
    const advisedAt = Date.now();
    c1.send({ type: "reconnect", after_ms: 300, reason: "drain" });
    c1.send({ type: "event", seq: 3, channel: "chat.a", data: 3 });
    await waitFor(() => c1.closedWith !== null, 3000, "the SDK to close the advised link");
    assert.ok(Date.now() - advisedAt >= 290, "kept the link for after_ms");
    assert.deepEqual(c1.closedWith, { code: 1001, reason: "reconnect" });
    await waitFor(() => s2.conns.length === 1, 1500, "a connection to the next URL at once");
    const hello = await s2.conns[0]!.next("hello");
    assert.equal((hello.resume as { last_seq: number }).last_seq, 3);
    await waitFor(() => rec.connected.length === 2, 5000, "resumed welcome");
    // The new node replays from an older point: 2 and 3 are duplicates, 4 is new.
    for (const seq of [2, 3, 4]) s2.conns[0]!.send({ type: "event", seq, channel: "chat.a", data: seq });
    await waitFor(() => rec.events.length >= 4, 5000, "event 4");
    assert.deepEqual(rec.events.map((e) => e.seq), [1, 2, 3, 4]);
    const ack = await s2.conns[0]!.next("ack");
    assert.equal(ack.seq, 4);
  } finally {
    await c.close();
    await s1.close();
    await s2.close();
  }
});

// Proves 4100 makes the SDK get a NEW token and reconnect at once, resuming.
test("4100 gets a new token and resumes at once", async () => {
  const s = await startFake((conn) => answerHello(conn));
  const { c, rec, calls } = client([s.url], { tokenCarrier: "hello" });
  try {
    await deadline(c.connect(), 5000, "connect");
    assert.equal((await s.conns[0]!.next("hello")).token, "tok-1");
    s.conns[0]!.close(4100, "token_expired");
    await waitFor(() => s.conns.length === 2, 1500, "an immediate reconnect");
    const hello = await s.conns[1]!.next("hello");
    assert.equal(hello.token, "tok-2");
    assert.equal(calls(), 2);
    assert.ok(hello.resume);
    assert.deepEqual(rec.reconnecting, [{ attempt: 1, delayMs: 0, code: 4100 }]);
  } finally {
    await c.close();
    await s.close();
  }
});

// Proves that after a resume with recovered:false the SDK subscribes again to every
// channel the server had confirmed (minus unsubscribed ones), and that requests made
// while reconnecting are queued and sent after the welcome.
test("recovered:false re-subscribes; requests made while reconnecting are queued", async () => {
  const replyOk = (conn: FakeConn): void => {
    let seen = 0;
    const t = setInterval(() => {
      for (; seen < conn.frames.length; seen++) {
        const f = conn.frames[seen]!;
        if (typeof f.id === "number") conn.send({ type: "reply", id: f.id, ok: true });
      }
    }, 5);
    t.unref();
  };
  const s = await startFake((conn) => {
    answerHello(conn, false);
    replyOk(conn);
  });
  const { c, rec } = client([s.url], { reconnect: { minDelayMs: 300, maxDelayMs: 300 } });
  try {
    await deadline(c.connect(), 5000, "connect");
    await c.subscribe("chat.a");
    await c.subscribe("chat.b");
    await c.unsubscribe("chat.b");
    s.conns[0]!.close(4102, "idle_timeout");
    await waitFor(() => c.state === "reconnecting", 2000, "reconnecting");
    const queued = c.publish("chat.a", { queued: true });
    await deadline(queued, 5000, "the queued publish to be answered");
    const c2 = s.conns[1]!;
    const subs = c2.frames.filter((f) => f.type === "subscribe").map((f) => f.channel);
    assert.deepEqual(subs, ["chat.a"]);
    const pub = c2.frames.find((f) => f.type === "publish");
    assert.deepEqual(pub?.data, { queued: true });
    assert.equal(rec.connected[1]?.recovered, false);
  } finally {
    await c.close();
    await s.close();
  }
});

// Proves requests are bounded: an unanswered request fails with `timeout` within
// requestTimeoutMs, and a request on a terminally closed client fails with `closed`.
test("requests time out and fail after a terminal close", async () => {
  const s = await startFake((conn) => answerHello(conn));
  const { c, rec } = client([s.url], { requestTimeoutMs: 300 });
  try {
    await deadline(c.connect(), 5000, "connect");
    const started = Date.now();
    await assert.rejects(c.subscribe("chat.silent"), { code: "timeout" });
    assert.ok(Date.now() - started < 2000);
    s.conns[0]!.close(4006, "tenant_disabled");
    await waitFor(() => rec.closed.length === 1, 2000, "terminal close");
    assert.deepEqual(rec.closed[0], { code: 4006, reason: "tenant_disabled", terminal: true });
    await assert.rejects(c.subscribe("chat.a"), { code: "closed" });
  } finally {
    await c.close();
    await s.close();
  }
});

// Proves connect() rejects on a terminal refusal during the handshake (4001), without
// retrying.
test("connect() rejects on a terminal refusal", async () => {
  const s = await startFake((conn) => {
    void conn.next("hello").then(() => conn.close(4001, "unauthorized"));
  });
  const { c, rec } = client([s.url]);
  try {
    await assert.rejects(deadline(c.connect(), 5000, "connect"), { code: "terminal_close", closeCode: 4001 });
    assert.equal(c.state, "closed");
    assert.deepEqual(rec.closed, [{ code: 4001, reason: "unauthorized", terminal: true }]);
    assert.equal(s.conns.length, 1);
  } finally {
    await c.close();
    await s.close();
  }
});

// Proves a token_expiring triggers getToken and a `refresh` frame with the new token, and
// that getToken returning the same token surfaces an error instead of a useless refresh.
test("token_expiring sends refresh with a new token; same token → error", async () => {
  const s = await startFake((conn) => answerHello(conn));
  let token = "tok-a";
  const { c, rec } = client([s.url], { getToken: () => Promise.resolve(token) });
  try {
    await deadline(c.connect(), 5000, "connect");
    const conn = s.conns[0]!;
    conn.send({ type: "token_expiring", expires_at: 1 });
    await waitFor(() => rec.errors.length === 1, 3000, "refresh_failed error");
    assert.equal(rec.errors[0]?.code, "refresh_failed");
    assert.equal(conn.frames.filter((f) => f.type === "refresh").length, 0);
    token = "tok-b";
    // The retry comes after 10 s; a new token_expiring is not deduplicated away.
    conn.send({ type: "token_expiring", expires_at: 1 });
    const r = await conn.next("refresh");
    assert.equal(r.token, "tok-b");
    conn.send({ type: "reply", id: r.id, ok: true });
  } finally {
    await c.close();
    await s.close();
  }
});
