/**
 * The built package in a real browser (headless Chromium via puppeteer-core): a page loads
 * dist/, connects with the subprotocol carrier, gets an event, and is revoked.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join, normalize } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import puppeteer from "puppeteer-core";

import type * as Sdk from "../src/index.js";
import { startNode } from "./harness/node.js";
import { userToken } from "./harness/tokens.js";
import { waitForAsync } from "./harness/wait.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// build-test/test/ → the package root.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

interface PageReport {
  state: string;
  connected: { sessionId: string; resumed: boolean }[];
  events: { seq: number; channel: string | null; data: unknown }[];
  closed: { code: number; reason: string; terminal: boolean }[];
  reconnecting: unknown[];
}

/** Serves an empty page and the package's dist/ folder. */
async function serveDist(): Promise<{ origin: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? "/").split("?")[0]!));
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>tether</title>");
      return;
    }
    const file = join(ROOT, path);
    if (!path.startsWith("/dist/") || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// Proves the browser build works as shipped: ESM from dist/ with the platform WebSocket
// and the `tether.bearer.<jwt>` subprotocol; an event arrives; an admin revoke ends the
// session with a terminal 4004 and the page's client stays closed.
test("headless Chromium: subprotocol connect, event, revocation", { skip: !existsSync(CHROMIUM) && !process.env.CLIENT_TS_REQUIRE_BROWSER && `no ${CHROMIUM}` }, async () => {
  const node = await startNode();
  const web = await serveDist();
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--headless=new"],
    timeout: 30_000,
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(`${web.origin}/`);
    const token = userToken("webuser");
    await page.evaluate(
      async (url: string, jwt: string) => {
        const modulePath = "/dist/index.js";
        const mod = (await import(modulePath)) as typeof Sdk;
        const report: PageReport = { state: "", connected: [], events: [], closed: [], reconnecting: [] };
        const w = window as unknown as { report: PageReport; client: InstanceType<typeof mod.TetherClient> };
        w.report = report;
        const client = new mod.TetherClient({
          urls: [url],
          getToken: () => Promise.resolve(jwt),
          tokenCarrier: "subprotocol",
          client: { name: "web", version: "1.0.0" },
        });
        w.client = client;
        client.on("connected", (e) => report.connected.push({ sessionId: e.sessionId, resumed: e.resumed }));
        client.on("event", (e) => report.events.push(e));
        client.on("closed", (e) => {
          report.closed.push(e);
          report.state = client.state;
        });
        client.on("reconnecting", (e) => report.reconnecting.push(e));
        await client.connect();
        await client.subscribe("chat.web");
        report.state = client.state;
      },
      node.url,
      token,
    );
    const read = (): Promise<PageReport> =>
      page.evaluate(() => (window as unknown as { report: PageReport }).report);
    let report = await read();
    assert.equal(report.state, "connected");
    assert.equal(report.connected.length, 1);
    const sid = report.connected[0]!.sessionId;

    await node.admin("POST", "/v1/publish", { tenant: "acme", channel: "chat.web", data: { hello: "browser" } });
    const poll = (cond: (r: PageReport) => boolean, what: string): Promise<void> =>
      waitForAsync(
        async () => {
          report = await read();
          return cond(report);
        },
        10_000,
        what,
      );
    await poll((r) => r.events.length === 1, "the event in the page");
    assert.deepEqual(report.events[0], { seq: 1, channel: "chat.web", data: { hello: "browser" } });

    await node.admin("POST", `/v1/sessions/${sid}/revoke?wait=closed`, {});
    await poll((r) => r.closed.length === 1, "the page's closed event");
    assert.deepEqual(report.closed[0], { code: 4004, reason: "session_revoked", terminal: true });
    assert.equal(report.state, "closed");
    assert.deepEqual(report.reconnecting, []);
  } finally {
    await browser.close();
    await web.close();
    await node.stop();
  }
});
