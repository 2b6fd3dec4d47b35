/**
 * The examples at the repo root (examples/): the browser chat page is served over HTTP
 * as a user would serve it and driven through its UI in headless Chromium.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import type { Browser } from "puppeteer-core";

import { BROWSER_SKIP, launchChromium, REPO_ROOT, serveStatic } from "./harness/browser.js";
import { startNode } from "./harness/node.js";
import { startProxy } from "./harness/proxy.js";
import { userToken } from "./harness/tokens.js";
import { waitForAsync } from "./harness/wait.js";

// Proves examples/browser-chat works against a real node: loaded from the repo root (its
// import of ../../client-ts/dist resolves), it connects with the token from the URL
// fragment, a message typed into its form comes back into its list, a lost link shows the
// yellow reconnecting banner until it resumes, and an admin revoke shows the red
// "Your session was revoked" banner.
test("examples/browser-chat: connect, send through the UI, reconnecting and revoked banners", { skip: BROWSER_SKIP }, async () => {
  const node = await startNode();
  const proxy = await startProxy(node.clientAddr);
  const web = await serveStatic(REPO_ROOT, ["/examples/browser-chat/", "/client-ts/dist/"]);
  let browser: Browser | null = null;
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    const fragment = new URLSearchParams({ token: userToken("chatuser"), urls: proxy.url, channel: "chat.example" });
    await page.goto(`${web.origin}/examples/browser-chat/index.html#${fragment.toString()}`, { waitUntil: "load" });
    const text = (sel: string): Promise<string> => page.$eval(sel, (el) => el.textContent ?? "");
    const until = async (cond: () => Promise<boolean>, what: string): Promise<void> =>
      waitForAsync(cond, 10_000, what).catch(async (e: Error) => {
        throw new Error(`${e.message}; status "${await text("#status")}", banner "${await text("#banner")}", errors ${JSON.stringify(pageErrors)}`);
      });

    // The fragment filled the form (and was removed from the address bar).
    await until(async () => (await page.$eval("#token", (el) => (el as HTMLTextAreaElement).value)) !== "", "the token field filled");
    assert.equal(new URL(page.url()).hash, "");
    await page.click("#connect");
    await until(async () => (await text("#status")).includes("subscribed to chat.example"), "connected and subscribed");

    await page.type("#text", "hello from the example");
    await page.click("#publish");
    await until(
      async () => (await page.$$eval("#messages li", (lis) => lis.map((li) => li.textContent ?? ""))).some((t) => t.includes("hello from the example")),
      "the sent message in the list",
    );

    const sid = await page.evaluate(() => document.body.dataset.session ?? "");
    assert.notEqual(sid, "");

    // The link drops and the node is unreachable: yellow banner; reachable again: resumed.
    proxy.refuse(true);
    proxy.cutAll();
    await until(async () => (await page.$eval("#banner", (el) => el.className)) === "reconnecting", "the reconnecting banner");
    assert.match(await text("#banner"), /^Reconnecting…/);
    proxy.refuse(false);
    await until(async () => (await text("#status")).includes("(resumed)"), "the resumed status");
    assert.equal(await page.$eval("#banner", (el) => el.className), "");
    assert.equal(await page.evaluate(() => document.body.dataset.session ?? ""), sid);
    await node.admin("POST", `/v1/sessions/${sid}/revoke?wait=closed`, {});
    await until(async () => (await page.$eval("#banner", (el) => el.className)) === "terminal", "the terminal banner");
    assert.equal(await text("#banner"), "Your session was revoked");
    assert.equal(await page.$eval("#text", (el) => (el as HTMLInputElement).disabled), true);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser?.close();
    await web.close();
    await proxy.close();
    await node.stop();
  }
});
