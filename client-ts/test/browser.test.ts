/**
 * The built package in a real browser (headless Chromium via puppeteer-core): a page loads
 * dist/, connects with the subprotocol carrier, gets events, survives the loss of its node,
 * and is revoked.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import type { Browser, Page } from "puppeteer-core";

import type * as Sdk from "../src/index.js";
import { BROWSER_SKIP, launchChromium, PACKAGE_ROOT, serveStatic } from "./harness/browser.js";
import { startCluster, startNode } from "./harness/node.js";
import { failoverSummary } from "./harness/summary.js";
import type { TestNode } from "./harness/node.js";
import { userToken } from "./harness/tokens.js";
import { waitForAsync } from "./harness/wait.js";

interface PageReport {
  state: string;
  connected: { sessionId: string; resumed: boolean; recovered: boolean; node: string }[];
  events: { seq: number; channel: string | null; data: unknown }[];
  closed: { code: number; reason: string; terminal: boolean }[];
  reconnecting: unknown[];
}

/** Opens an empty page, makes a client there on `urls` and subscribes it to `channel`. */
async function pageClient(browser: Browser, origin: string, urls: string[], jwt: string, channel: string): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${origin}/`);
  await page.evaluate(
    async (urls: string[], jwt: string, channel: string) => {
      const modulePath = "/dist/index.js";
      const mod = (await import(modulePath)) as typeof Sdk;
      const report: PageReport = { state: "", connected: [], events: [], closed: [], reconnecting: [] };
      const w = window as unknown as { report: PageReport };
      w.report = report;
      const client = new mod.TetherClient({
        urls,
        getToken: () => Promise.resolve(jwt),
        tokenCarrier: "subprotocol",
        client: { name: "web", version: "1.0.0" },
        reconnect: { minDelayMs: 50, maxDelayMs: 500 },
      });
      client.on("connected", (e) =>
        report.connected.push({ sessionId: e.sessionId, resumed: e.resumed, recovered: e.recovered, node: e.node }),
      );
      client.on("event", (e) => report.events.push(e));
      client.on("closed", (e) => report.closed.push(e));
      client.on("reconnecting", (e) => report.reconnecting.push(e));
      // The state after every lifecycle event, so the test reads it without a handle.
      for (const ev of ["connected", "closed", "reconnecting"] as const) client.on(ev, () => (report.state = client.state));
      await client.connect();
      await client.subscribe(channel);
      report.state = client.state;
    },
    urls,
    jwt,
    channel,
  );
  return page;
}

/** Reads the page's report; `poll` waits until `cond` holds on a fresh one. */
function reader(page: Page): { read: () => Promise<PageReport>; poll: (cond: (r: PageReport) => boolean, what: string, ms?: number) => Promise<PageReport> } {
  const read = (): Promise<PageReport> => page.evaluate(() => (window as unknown as { report: PageReport }).report);
  const poll = async (cond: (r: PageReport) => boolean, what: string, ms = 10_000): Promise<PageReport> => {
    let last: PageReport | null = null;
    await waitForAsync(
      async () => {
        last = await read();
        return cond(last);
      },
      ms,
      what,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; page report ${JSON.stringify(last)}`);
    });
    return last!;
  };
  return { read, poll };
}

const publish = (via: TestNode, channel: string, data: unknown): Promise<unknown> =>
  via.admin("POST", "/v1/publish", { tenant: "acme", channel, data });

// Proves the browser build works as shipped: ESM from dist/ with the platform WebSocket
// and the `tether.bearer.<jwt>` subprotocol; an event arrives; an admin revoke ends the
// session with a terminal 4004 and the page's client stays closed.
test("headless Chromium: subprotocol connect, event, revocation", { skip: BROWSER_SKIP }, async () => {
  const node = await startNode();
  const web = await serveStatic(PACKAGE_ROOT, ["/dist/"]);
  let browser: Browser | null = null;
  try {
    browser = await launchChromium();
    const page = await pageClient(browser, web.origin, [node.url], userToken("webuser"), "chat.web");
    const { read, poll } = reader(page);
    let report = await read();
    assert.equal(report.state, "connected");
    assert.equal(report.connected.length, 1);
    const sid = report.connected[0]!.sessionId;

    await publish(node, "chat.web", { hello: "browser" });
    report = await poll((r) => r.events.length === 1, "the event in the page");
    assert.deepEqual(report.events[0], { seq: 1, channel: "chat.web", data: { hello: "browser" } });

    await node.admin("POST", `/v1/sessions/${sid}/revoke?wait=closed`, {});
    report = await poll((r) => r.closed.length === 1, "the page's closed event");
    assert.deepEqual(report.closed[0], { code: 4004, reason: "session_revoked", terminal: true });
    assert.equal(report.state, "closed");
    assert.deepEqual(report.reconnecting, []);
  } finally {
    await browser?.close();
    await web.close();
    await node.stop();
  }
});

// Proves a browser client survives the loss of its node: the page's node is SIGKILLed; the
// page reconnects to its other URL, resumes the same session (resumed:true; recovered may
// be false), keeps receiving new events with strictly increasing seq (no duplicate), and an
// admin revoke there still ends it with a terminal 4004.
test("headless Chromium: resume on the other URL after the node is killed, then revocation", { skip: BROWSER_SKIP }, async (t) => {
  const nodes = await startCluster();
  const [n1, n2] = nodes as [TestNode, TestNode, TestNode];
  const web = await serveStatic(PACKAGE_ROOT, ["/dist/"]);
  let browser: Browser | null = null;
  try {
    browser = await launchChromium();
    const page = await pageClient(browser, web.origin, [n1.url, n2.url], userToken("webkill"), "chat.webkill");
    const { read, poll } = reader(page);
    let report = await read();
    assert.equal(report.state, "connected");
    assert.equal(report.connected[0]?.node, "n1");
    const sid = report.connected[0].sessionId;

    const published = new Set<number>();
    for (let n = 0; n < 20; n++) await publish(n2, "chat.webkill", { n }).then(() => published.add(n));
    await poll((r) => r.events.length === 20, "the first 20 events in the page");

    await n1.stop(); // SIGKILL: no drain, no close frame
    report = await poll((r) => r.connected.length >= 2 && r.state === "connected", "the page resumed elsewhere", 30_000);
    const moved = report.connected[1]!;
    assert.equal(moved.node, "n2");
    assert.equal(moved.resumed, true);
    assert.equal(moved.sessionId, sid);
    assert.ok(report.closed.every((c) => !c.terminal), "only non-terminal closes before the revoke");

    // New events reach the page (the SDK re-subscribed if the session was not recovered).
    let n = 1000;
    report = await poll(
      (r) => {
        const k = n++;
        void publish(n2, "chat.webkill", { n: k }).then(
          () => published.add(k),
          () => undefined,
        );
        return r.events.filter((e) => (e.data as { n: number }).n >= 1000).length >= 5;
      },
      "new events after the failover",
      15_000,
    );
    const seqs = report.events.map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `seq strictly increasing at ${i}: ${seqs.join(",")}`);
    const ns = report.events.map((e) => (e.data as { n: number }).n);
    t.diagnostic(failoverSummary("browser kill", published, ns, moved.recovered));
    assert.deepEqual(ns.slice(0, 20), Array.from({ length: 20 }, (_, i) => i));
    assert.equal(new Set(ns).size, ns.length, "no event delivered twice");

    await n2.admin("POST", `/v1/sessions/${sid}/revoke?wait=closed`, {});
    report = await poll((r) => r.closed.some((c) => c.terminal), "the page's terminal close");
    assert.deepEqual(report.closed.at(-1), { code: 4004, reason: "session_revoked", terminal: true });
    assert.equal(report.state, "closed");
    const after = report.reconnecting.length;
    // Terminal means no reconnect: nothing is scheduled after it (checked over one more poll round).
    report = await read();
    assert.equal(report.reconnecting.length, after);
  } finally {
    await browser?.close();
    await web.close();
    await Promise.all(nodes.map((x) => x.stop()));
  }
});
