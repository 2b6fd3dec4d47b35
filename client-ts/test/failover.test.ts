/** Node failover in a 3-node cluster: a drained node (SIGTERM) and a killed one (SIGKILL). */
import assert from "node:assert/strict";
import { test } from "node:test";

import { makeClient } from "./harness/client.js";
import { startCluster } from "./harness/node.js";
import type { TestNode } from "./harness/node.js";
import { failoverSummary as summary } from "./harness/summary.js";
import { deadline, waitFor } from "./harness/wait.js";

const publish = (via: TestNode, channel: string, n: number): Promise<unknown> =>
  via.admin("POST", "/v1/publish", { tenant: "acme", channel, data: { n } });

// Proves a drain moves the client without loss: node 3 (a follower, as in the Rust suite's
// drain.rs) gets SIGTERM while numbered events are published through node 1; the SDK
// follows the `reconnect` advice, resumes on another node (recovered:true) and the app
// sees every event exactly once, in order.
test("drained node: resume elsewhere, every event exactly once and in order", async (t) => {
  const nodes = await startCluster({ session: "drain_secs = 2" });
  const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
  const { client, rec } = makeClient([n3.url, n1.url, n2.url], "frank", {
    reconnect: { minDelayMs: 50, maxDelayMs: 500 },
  });
  try {
    await deadline(client.connect(), 10_000, "connect");
    assert.equal(rec.connected[0]?.node, "n3");
    await client.subscribe("chat.drain");
    const TOTAL = 200;
    const published = new Set<number>();
    let n = 0;
    for (; n < 50; n++) await publish(n1, "chat.drain", n).then(() => published.add(n));
    n3.signal("SIGTERM");
    // Keep publishing through the drain until the client has moved, then a bit more.
    while (n < TOTAL || rec.connected.length < 2) {
      if (n > 5000) throw new Error("the client never moved off the drained node");
      await publish(n1, "chat.drain", n).then(() => published.add(n));
      n++;
    }
    await waitFor(() => rec.events.length >= n, 20_000, `all ${n} events`).catch((e: Error) => {
      const last = rec.events.at(-1);
      throw new Error(
        `${e.message}: got ${rec.events.length}, last ${JSON.stringify(last)}; connected ${JSON.stringify(rec.connected)}; ` +
          `closed ${JSON.stringify(rec.closed)}; reconnecting ${JSON.stringify(rec.reconnecting)}; errors ${JSON.stringify(rec.errors)}`,
      );
    });
    const moved = rec.connected[1]!;
    t.diagnostic(summary("drain", published, rec.events.map((e) => (e.data as { n: number }).n), moved.recovered));
    assert.notEqual(moved.node, "n3");
    assert.equal(moved.resumed, true);
    assert.equal(moved.recovered, true);
    assert.equal(moved.sessionId, rec.connected[0].sessionId);
    assert.deepEqual(
      rec.events.map((e) => (e.data as { n: number }).n),
      Array.from({ length: n }, (_, i) => i),
    );
    assert.ok(rec.closed.every((c) => !c.terminal));
    await n3.exited(15_000);
  } finally {
    await client.close();
    await Promise.all(nodes.map((x) => x.stop()));
  }
});

// Proves failover from a dead node: node 1 is killed (no drain, no handover); the SDK
// moves to the next URL, resumes the session there, surfaces recovered:false, subscribes
// again on its own, and events flow again with no duplicate and no reordering.
test("killed node: resume on the next URL, recovered:false surfaced, re-subscribed", async (t) => {
  const nodes = await startCluster();
  const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
  const { client, rec } = makeClient([n1.url, n2.url, n3.url], "grace", {
    reconnect: { minDelayMs: 50, maxDelayMs: 500 },
  });
  try {
    await deadline(client.connect(), 10_000, "connect");
    assert.equal(rec.connected[0]?.node, "n1");
    await client.subscribe("chat.kill");
    const published = new Set<number>();
    for (let n = 0; n < 20; n++) await publish(n2, "chat.kill", n).then(() => published.add(n));
    await waitFor(() => rec.events.length === 20, 5000, "the first 20 events");
    await n1.stop();
    await waitFor(() => rec.connected.length >= 2 && client.state === "connected", 30_000, "resumed on another node");
    const moved = rec.connected[1]!;
    assert.notEqual(moved.node, "n1");
    assert.equal(moved.resumed, true);
    assert.equal(moved.recovered, false);
    assert.equal(moved.sessionId, rec.connected[0].sessionId);
    // The SDK re-subscribed by itself: new events arrive (publish until one does).
    let n = 1000;
    const target = n2;
    await waitFor(
      () => {
        const k = n++;
        void publish(target, "chat.kill", k).then(
          () => published.add(k),
          () => undefined,
        );
        return rec.events.some((e) => (e.data as { n: number }).n >= 1000);
      },
      15_000,
      "an event after the failover",
    );
    const seqs = rec.events.map((e) => e.seq);
    const ns = rec.events.map((e) => (e.data as { n: number }).n);
    t.diagnostic(summary("kill", published, ns, moved.recovered));
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `seq increasing at ${i}`);
    for (let i = 1; i < ns.length; i++) assert.ok(ns[i]! > ns[i - 1]!, `no duplicate or reorder at ${i}`);
    assert.deepEqual(ns.slice(0, 20), Array.from({ length: 20 }, (_, i) => i));
  } finally {
    await client.close();
    await Promise.all(nodes.map((x) => x.stop()));
  }
});
