/** Resume across an app restart and across a link that keeps dropping. */
import assert from "node:assert/strict";
import { test } from "node:test";

import type { ResumeState } from "../src/index.js";
import { makeClient, trackedWs } from "./harness/client.js";
import { startNode } from "./harness/node.js";
import { startProxy } from "./harness/proxy.js";
import { deadline, waitFor } from "./harness/wait.js";

// Proves resume state survives an app restart: client A dies without a close, events are
// published meanwhile, and a new client B given A's persisted resumeState resumes the
// same session (resumed:true, recovered:true) and gets exactly the missed events, in order.
test("app restart resumes from persisted resumeState", async () => {
  const node = await startNode();
  const a = trackedWs();
  const A = makeClient([node.url], "dave", { WebSocket: a.Ctor });
  let saved: ResumeState | null = null;
  // The app persists after every event it processed (the resume token rotates per resume).
  A.client.on("event", () => {
    saved = A.client.resumeState();
  });
  A.client.on("connected", () => {
    saved = A.client.resumeState();
  });
  try {
    await deadline(A.client.connect(), 10_000, "A connect");
    await A.client.subscribe("chat.restart");
    for (let n = 1; n <= 3; n++) {
      await node.admin("POST", "/v1/publish", { tenant: "acme", channel: "chat.restart", data: { n } });
    }
    await waitFor(() => A.rec.events.length === 3, 5000, "A's 3 events");
    const sid = A.rec.connected[0]!.sessionId;
    assert.deepEqual(saved, { sessionId: sid, resumeToken: (saved as ResumeState | null)?.resumeToken, lastSeq: 3 });

    // The app is killed: its socket drops without a close frame and it never comes back.
    a.kill();
    await waitFor(() => A.rec.reconnecting.length >= 1, 5000, "A to notice the drop");
    await A.client.close();
    const persisted = JSON.parse(JSON.stringify(saved)) as ResumeState;

    for (let n = 4; n <= 8; n++) {
      await node.admin("POST", "/v1/publish", { tenant: "acme", channel: "chat.restart", data: { n } });
    }

    const B = makeClient([node.url], "dave", { resumeState: persisted });
    try {
      await deadline(B.client.connect(), 10_000, "B connect");
      assert.equal(B.rec.connected.length, 1);
      const c = B.rec.connected[0]!;
      assert.equal(c.sessionId, sid);
      assert.equal(c.resumed, true);
      assert.equal(c.recovered, true);
      await waitFor(() => B.rec.events.length >= 5, 5000, "B's 5 missed events");
      assert.deepEqual(
        B.rec.events.map((e) => [e.seq, e.channel, (e.data as { n: number }).n]),
        [4, 5, 6, 7, 8].map((n) => [n, "chat.restart", n]),
      );
      // Live events still flow to B (the subscription came with the session).
      await node.admin("POST", "/v1/publish", { tenant: "acme", channel: "chat.restart", data: { n: 9 } });
      await waitFor(() => B.rec.events.length === 6, 5000, "B's live event");
      assert.equal(B.rec.events[5]?.seq, 9);
      assert.equal(B.client.resumeState()?.lastSeq, 9);
      assert.notEqual(B.client.resumeState()?.resumeToken, persisted.resumeToken, "resume token rotates");
    } finally {
      await B.client.close();
    }
  } finally {
    await A.client.close();
    await node.stop();
  }
});

// Proves exactly-once, in-order delivery across repeated link cuts: a proxy between the
// client and the node drops every connection several times while numbered events are
// published; the app sees each event once and in order (or, if a resume reported
// recovered:false, still no duplicate and no reordering).
test("flaky link: every event exactly once and in order across cuts", async () => {
  const node = await startNode();
  const proxy = await startProxy(node.clientAddr);
  const { client, rec } = makeClient([proxy.url], "erin", {
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
  });
  const TOTAL = 300;
  const CUTS = 6;
  try {
    await deadline(client.connect(), 10_000, "connect");
    await client.subscribe("chat.flaky");
    let cuts = 0;
    for (let n = 0; n < TOTAL; n++) {
      await node.admin("POST", "/v1/publish", { tenant: "acme", channel: "chat.flaky", data: { n } });
      if (n % Math.floor(TOTAL / (CUTS + 1)) === 25 && cuts < CUTS) {
        // Cut only a live link, so every cut really interrupts a connected session.
        await waitFor(() => client.state === "connected", 10_000, "reconnected before the next cut");
        if (proxy.cutAll() > 0) cuts += 1;
      }
    }
    await waitFor(() => rec.events.length >= TOTAL, 20_000, `all ${TOTAL} events (got ${rec.events.length})`);
    assert.equal(cuts, CUTS);
    assert.ok(rec.connected.length >= CUTS + 1, `a resume per cut (${rec.connected.length} welcomes)`);
    const ns = rec.events.map((e) => (e.data as { n: number }).n);
    const seqs = rec.events.map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `seq increasing at ${i}`);
    const lossy = rec.connected.some((c) => c.resumed && !c.recovered);
    if (!lossy) {
      assert.deepEqual(ns, Array.from({ length: TOTAL }, (_, i) => i));
      assert.ok(rec.connected.slice(1).every((c) => c.resumed && c.recovered));
    } else {
      for (let i = 1; i < ns.length; i++) assert.ok(ns[i]! > ns[i - 1]!, `data in order at ${i}`);
    }
    assert.equal(new Set(rec.connected.map((c) => c.sessionId)).size, 1, "one session throughout");
  } finally {
    await client.close();
    await proxy.close();
    await node.stop();
  }
});
