/** Connect, subscribe, publish and direct messages over each token carrier. */
import assert from "node:assert/strict";
import { test } from "node:test";

import type { TokenCarrier } from "../src/index.js";
import { TetherClient } from "../src/index.js";
import { record, trackedWs } from "./harness/client.js";
import { startNode } from "./harness/node.js";
import { userToken } from "./harness/tokens.js";
import { deadline, waitFor } from "./harness/wait.js";

async function roundTrip(carrier: TokenCarrier): Promise<void> {
  const node = await startNode();
  const { Ctor, opened } = trackedWs();
  const client = new TetherClient({
    urls: [node.url],
    getToken: () => Promise.resolve(userToken("alice")),
    tokenCarrier: carrier,
    WebSocket: Ctor,
    client: { name: "ts-test", version: "1.0.0" },
    requestTimeoutMs: 5000,
  });
  const rec = record(client);
  try {
    assert.equal(client.state, "idle");
    await deadline(client.connect(), 10_000, "connect");
    assert.equal(client.state, "connected");
    assert.equal(rec.connected.length, 1);
    assert.equal(rec.connected[0]?.resumed, false);
    assert.equal(rec.connected[0]?.node, "n1");
    assert.equal(rec.connected[0]?.region, "test-1");

    // The token went where the carrier says, and only there.
    const o = opened[0]!;
    const hello = JSON.parse(o.sent[0]!) as { type: string; token?: string; client?: unknown };
    assert.equal(hello.type, "hello");
    assert.deepEqual(hello.client, { name: "ts-test", version: "1.0.0" });
    assert.equal(o.protocols[0], "tether.v1");
    if (carrier === "header") {
      assert.match(o.options?.headers.Authorization ?? "", /^Bearer ey/);
      assert.equal(o.protocols.length, 1);
      assert.equal(hello.token, undefined);
    } else if (carrier === "subprotocol") {
      assert.match(o.protocols[1] ?? "", /^tether\.bearer\.ey/);
      assert.equal(o.options, undefined);
      assert.equal(hello.token, undefined);
    } else {
      assert.equal(o.protocols.length, 1);
      assert.equal(o.options, undefined);
      assert.match(hello.token ?? "", /^ey/);
    }

    await deadline(client.subscribe("chat.room1"), 5000, "subscribe");
    await deadline(client.publish("chat.room1", { text: "hi", carrier }), 5000, "publish");
    await waitFor(() => rec.events.length >= 1, 5000, "own event");
    assert.deepEqual(rec.events[0], { seq: 1, channel: "chat.room1", data: { text: "hi", carrier } });

    // A direct message (admin publish to the user) arrives with channel null.
    await node.admin("POST", "/v1/publish", { tenant: "acme", user: "alice", data: { direct: true } });
    await waitFor(() => rec.events.length >= 2, 5000, "direct event");
    assert.deepEqual(rec.events[1], { seq: 2, channel: null, data: { direct: true } });

    // A refused request rejects with the server's { code, message }.
    await assert.rejects(client.subscribe("other.room"), (e: { code: string; message: string }) => {
      assert.equal(e.code, "forbidden");
      assert.equal(typeof e.message, "string");
      return true;
    });
    await client.unsubscribe("chat.room1");

    await deadline(client.close(), 5000, "close");
    assert.equal(client.state, "closed");
    assert.deepEqual(rec.closed, [{ code: 1000, reason: "client_close", terminal: true }]);
    assert.equal(rec.reconnecting.length, 0);
  } finally {
    await client.close();
    await node.stop();
  }
}

// Proves the Authorization-header carrier admits the client and requests/events work.
test("header carrier: connect, subscribe, publish round trip", () => roundTrip("header"));

// Proves the `tether.bearer.<jwt>` subprotocol carrier (the browser path) works end to end.
test("subprotocol carrier: connect, subscribe, publish round trip", () => roundTrip("subprotocol"));

// Proves the hello-frame carrier works end to end.
test("hello carrier: connect, subscribe, publish round trip", () => roundTrip("hello"));
