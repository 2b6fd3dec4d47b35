/** The SDK.md TypeScript API, used exactly as the contract writes it. */
import assert from "node:assert/strict";
import { test } from "node:test";

import WsCtor from "ws";

import { TetherClient } from "../src/index.js";
import type { ResumeState, WebSocketConstructor } from "../src/index.js";
import { startFake, welcome } from "./harness/fake-server.js";
import { deadline, waitFor } from "./harness/wait.js";

// Compile-time: the browser's WebSocket constructor fits the `WebSocket` option too.
const domWebSocketFits: typeof globalThis.WebSocket extends WebSocketConstructor ? true : never = true;

// Proves the contract's snippet compiles and behaves as written: options, the six events
// with their payload shapes, `on` returning an unsubscribe function, `off`, state values,
// resumeState(), reconnectNow() and close().
test("SDK.md usage compiles and works as written", async () => {
  const s = await startFake((conn) => {
    void conn.next("hello").then(() => {
      conn.send(welcome({ session_id: "sid-1", resume_token: "rt-1" }));
    });
  });
  const saved: ResumeState | null = null;
  const fetchTokenFromMyBackend = (): Promise<string> => Promise.resolve("jwt");
  const client = new TetherClient({
    urls: [s.url, "ws://127.0.0.1:9/v1/connect"],
    getToken: async () => fetchTokenFromMyBackend(),
    tokenCarrier: "subprotocol",
    WebSocket: WsCtor,
    resumeState: saved ?? null,
    reconnect: { minDelayMs: 250, maxDelayMs: 30000, maxAttempts: Infinity },
    client: { name: "web", version: "1.4.0" },
    requestTimeoutMs: 10000,
  });
  const seen: string[] = [];
  client.on("connected", (e) => seen.push(`connected ${e.sessionId} ${e.resumed} ${e.recovered} ${e.node} ${e.region}`));
  const offEvent = client.on("event", (e) => seen.push(`event ${e.seq} ${e.channel} ${JSON.stringify(e.data)}`));
  client.on("permissions", (e) => seen.push(`permissions ${e.seq} ${e.permissions.join()} ${e.dropped.join()} ${e.version}`));
  client.on("reconnecting", (e) => seen.push(`reconnecting ${e.attempt} ${e.delayMs >= 0} ${e.code}`));
  const onClosed = (e: { code: number; reason: string; terminal: boolean }): void => {
    seen.push(`closed ${e.code} ${e.reason} ${e.terminal}`);
  };
  client.on("closed", onClosed);
  client.on("error", (e) => seen.push(`error ${e.code} ${e.message}`));
  try {
    assert.equal(domWebSocketFits, true);
    assert.equal(client.state, "idle");
    assert.equal(client.resumeState(), null);
    const connecting = client.connect();
    assert.equal(client.state, "connecting");
    await deadline(connecting, 5000, "connect");
    assert.equal(client.state, "connected");
    assert.deepEqual(client.resumeState(), { sessionId: "sid-1", resumeToken: "rt-1", lastSeq: 0 });
    const conn = s.conns[0]!;
    assert.equal(conn.protocols[0], "tether.v1");
    assert.equal(conn.protocols[1], "tether.bearer.jwt");
    conn.send({ type: "event", seq: 1, channel: "chat.room1", data: { text: "hi" } });
    conn.send({ type: "permissions", seq: 2, permissions: ["sub:chat.a"], version: 5, dropped: ["chat.room1"] });
    conn.send({ type: "error", code: "rate_limited", message: "slow down" });
    await waitFor(() => seen.length >= 4, 3000, "event, permissions, error");
    offEvent();
    conn.send({ type: "event", seq: 3, channel: "$direct", data: null });
    client.off("closed", onClosed);
    const published = client.publish("chat.room1", { text: "hi" });
    const f = await conn.next("publish");
    conn.send({ type: "reply", id: f.id, ok: false, error: { code: "forbidden", message: "no pub" } });
    await assert.rejects(published, (e) => {
      assert.deepEqual(e, { code: "forbidden", message: "no pub" });
      return true;
    });
    await waitFor(() => client.resumeState()?.lastSeq === 3, 3000, "the direct event to be consumed");
    client.reconnectNow(); // connected: nothing to do
    assert.equal(client.state, "connected");
    await client.close();
    assert.equal(client.state, "closed");
    assert.deepEqual(seen, [
      "connected sid-1 false false n9 fake",
      'event 1 chat.room1 {"text":"hi"}',
      "permissions 2 sub:chat.a chat.room1 5",
      "error rate_limited slow down",
    ]);
    assert.equal(s.conns[0]!.closedWith?.code, 1000);
  } finally {
    await client.close();
    await s.close();
  }
});

// Proves the default carrier rule: "header" when a WebSocket constructor is passed in,
// else "subprotocol" (with globalThis.WebSocket).
test("default token carrier: header with a constructor, subprotocol without", async () => {
  const s = await startFake((conn) => {
    void conn.next("hello").then(() => conn.send(welcome()));
  });
  const saved = (globalThis as { WebSocket?: unknown }).WebSocket;
  let headers: unknown;
  const withCtor = new TetherClient({
    urls: [s.url],
    getToken: () => Promise.resolve("jwt"),
    WebSocket: class extends WsCtor {
      constructor(url: string, protocols: string[], options?: { headers: Record<string, string> }) {
        super(url, protocols, options);
        headers = options?.headers;
      }
    },
  });
  (globalThis as { WebSocket?: unknown }).WebSocket = WsCtor;
  const withGlobal = new TetherClient({ urls: [s.url], getToken: () => Promise.resolve("jwt") });
  try {
    await deadline(withCtor.connect(), 5000, "connect with a constructor");
    assert.deepEqual(headers, { Authorization: "Bearer jwt" });
    assert.deepEqual(s.conns[0]!.protocols, ["tether.v1"]);
    await deadline(withGlobal.connect(), 5000, "connect with globalThis.WebSocket");
    assert.deepEqual(s.conns[1]!.protocols, ["tether.v1", "tether.bearer.jwt"]);
  } finally {
    (globalThis as { WebSocket?: unknown }).WebSocket = saved;
    await withCtor.close();
    await withGlobal.close();
    await s.close();
  }
});
