/** Session lifecycle against a real node: refresh, revocation, logout, permission changes. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { TetherClient } from "../src/index.js";
import { makeClient, record, trackedWs } from "./harness/client.js";
import { startNode } from "./harness/node.js";
import { nowSecs, userToken } from "./harness/tokens.js";
import { deadline, waitFor } from "./harness/wait.js";

// Proves token_expiring makes the SDK call getToken and send `refresh`, so the connection
// outlives its first token's exp (no 4100, no reconnect) and still works afterwards.
test("refresh before expiry keeps the connection past the first token's exp", async () => {
  const node = await startNode();
  const { Ctor, opened } = trackedWs();
  const issued: { exp: number }[] = [];
  const client = new TetherClient({
    urls: [node.url],
    // First token lives 5 s (refresh_window_secs = 2 → token_expiring at ~3 s); later ones 60 s.
    getToken: () => {
      const ttl = issued.length === 0 ? 5 : 60;
      issued.push({ exp: nowSecs() + ttl });
      return Promise.resolve(userToken("alice", ttl));
    },
    WebSocket: Ctor,
    requestTimeoutMs: 5000,
  });
  const rec = record(client);
  try {
    await deadline(client.connect(), 10_000, "connect");
    await client.subscribe("chat.refresh");
    const firstExp = issued[0]!.exp;
    await waitFor(() => issued.length >= 2, 8000, "getToken called again for the refresh");
    await waitFor(
      () => opened[0]!.sent.some((s) => (JSON.parse(s) as { type: string }).type === "refresh"),
      5000,
      "a refresh frame",
    );
    // Past the first token's exp (+1 s so a 4100 at exp would have arrived).
    await waitFor(() => Date.now() / 1000 > firstExp + 1.5, 10_000, "the first token's exp to pass");
    assert.equal(client.state, "connected");
    assert.deepEqual(rec.closed, []);
    assert.deepEqual(rec.reconnecting, []);
    assert.deepEqual(rec.errors, []);
    assert.equal(opened.length, 1, "one socket: no reconnect");
    await client.publish("chat.refresh", { after: "exp" });
    await waitFor(() => rec.events.length === 1, 5000, "event after the first exp");
  } finally {
    await client.close();
    await node.stop();
  }
});

// Proves an admin revoke is terminal: closed {4004, terminal:true}, state "closed", no
// reconnect attempt, and connect-level calls fail afterwards.
test("revocation 4004 is terminal", async () => {
  const node = await startNode();
  const { Ctor, opened } = trackedWs();
  const { client, rec, tokenCalls } = makeClient([node.url], "alice", { WebSocket: Ctor });
  try {
    await deadline(client.connect(), 10_000, "connect");
    const sid = rec.connected[0]!.sessionId;
    await node.admin("POST", `/v1/sessions/${sid}/revoke?wait=closed`, { reason: "test" });
    await waitFor(() => rec.closed.length === 1, 5000, "closed event");
    assert.deepEqual(rec.closed[0], { code: 4004, reason: "session_revoked", terminal: true });
    assert.equal(client.state, "closed");
    // Give a wrongly scheduled reconnect (min delay 50 ms) ample time to show itself.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(rec.reconnecting.length, 0);
    assert.equal(opened.length, 1);
    assert.equal(tokenCalls(), 1);
    await assert.rejects(client.publish("chat.x", 1), { code: "closed" });
    await assert.rejects(client.connect(), { code: "closed" });
  } finally {
    await client.close();
    await node.stop();
  }
});

// Proves a user logout is terminal: closed {4005, terminal:true}, no reconnect.
test("logout 4005 is terminal", async () => {
  const node = await startNode();
  const { Ctor, opened } = trackedWs();
  const { client, rec } = makeClient([node.url], "bob", { WebSocket: Ctor });
  try {
    await deadline(client.connect(), 10_000, "connect");
    await node.admin("POST", "/v1/tenants/acme/users/bob/logout?wait=closed", {});
    await waitFor(() => rec.closed.length === 1, 5000, "closed event");
    assert.deepEqual(rec.closed[0], { code: 4005, reason: "logged_out", terminal: true });
    assert.equal(client.state, "closed");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(rec.reconnecting.length, 0);
    assert.equal(opened.length, 1);
  } finally {
    await client.close();
    await node.stop();
  }
});

// Proves a live permission change reaches the app as a `permissions` event listing the
// dropped subscription, and that the dropped channel's events stop while others flow.
test("permission change drops a subscription", async () => {
  const node = await startNode();
  const { client, rec } = makeClient([node.url], "carol");
  try {
    await deadline(client.connect(), 10_000, "connect");
    await client.subscribe("chat.keep");
    await client.subscribe("chat.drop");
    await node.admin("PUT", "/v1/tenants/acme/users/carol/permissions?wait=closed", {
      permissions: ["sub:chat.keep", "pub:chat.*"],
    });
    await waitFor(() => rec.permissions.length === 1, 5000, "permissions event");
    const p = rec.permissions[0]!;
    assert.deepEqual(p.dropped, ["chat.drop"]);
    assert.deepEqual(p.permissions, ["sub:chat.keep", "pub:chat.*"]);
    assert.ok(p.version > 0);
    assert.equal(p.seq, 1);
    await node.admin("POST", "/v1/publish", { tenant: "acme", channel: "chat.drop", data: { n: 1 } });
    await node.admin("POST", "/v1/publish", { tenant: "acme", channel: "chat.keep", data: { n: 2 } });
    await waitFor(() => rec.events.length >= 1, 5000, "chat.keep event");
    assert.deepEqual(rec.events, [{ seq: 2, channel: "chat.keep", data: { n: 2 } }]);
    await assert.rejects(client.subscribe("chat.drop"), { code: "forbidden" });
  } finally {
    await client.close();
    await node.stop();
  }
});
