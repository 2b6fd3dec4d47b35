/** Headless Chromium (puppeteer-core) and a static HTTP server for the browser tests. */
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, extname, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

import puppeteer from "puppeteer-core";
import type { Browser } from "puppeteer-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** The `skip` option of a browser test: skipped without Chromium unless CI requires it. */
export const BROWSER_SKIP: string | false =
  !existsSync(CHROMIUM) && !process.env.CLIENT_TS_REQUIRE_BROWSER ? `no ${CHROMIUM}` : false;

// Compiled to build-test/test/harness/: the package root is three levels up.
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const REPO_ROOT = resolve(PACKAGE_ROOT, "..");

export function launchChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--headless=new"],
    timeout: 30_000,
  });
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".map": "application/json",
  ".css": "text/css",
};

export interface StaticServer {
  origin: string;
  close: () => Promise<void>;
}

/**
 * Serves the files of `root` whose URL path starts with one of the `allow`ed prefixes
 * (e.g. "/dist/"), plus an empty page at `/`. Paths are resolved and must stay inside
 * `root`, so nothing else of the machine is reachable from the page.
 */
export async function serveStatic(root: string, allow: string[]): Promise<StaticServer> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? "/").split(/[?#]/)[0]!));
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>tether</title>");
      return;
    }
    const file = resolve(root, `.${path}`);
    if (!file.startsWith(root + sep) || !allow.some((a) => path.startsWith(a)) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
