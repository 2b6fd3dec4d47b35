/**
 * `startNode`: one real `tether serve --config` child on port 0 with a temp data dir,
 * the same config shape as the Rust harness (tests/src/node.rs).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { adminToken, ADMIN_KID, ADMIN_SECRET, AUDIENCE, ISSUER, TENANT, TENANT_KID, TENANT_SECRET } from "./tokens.js";

/** `$TETHER_BIN`, else `../target/debug/tether` relative to client-ts. */
export function tetherBin(): string {
  if (process.env.TETHER_BIN) return process.env.TETHER_BIN;
  // Compiled to build-test/test/harness/: the package root is three levels up.
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
  return join(root, "..", "target", "debug", "tether");
}

export interface NodeOptions {
  /** `[node] id` (default 1) and region (default "test-1"). */
  id?: number;
  region?: string;
  /** `[cluster]` lines (join list, insecure_peer). */
  cluster?: string;
  /** `[session]` lines. */
  session?: string;
  /** Extra `[limits]` lines. */
  limits?: string;
  /** Extra `[auth]` lines. */
  auth?: string;
}

export interface TestNode {
  clientAddr: string;
  adminAddr: string;
  peerAddr: string;
  /** `ws://<client>/v1/connect` */
  url: string;
  /** Admin API call with an admin token; the parsed JSON body. */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** Sends `sig` (e.g. SIGTERM: drain) to the process. */
  signal(sig: NodeJS.Signals): void;
  /** Resolves when the process has exited; rejects after `timeoutMs`. */
  exited(timeoutMs: number): Promise<void>;
  /** Kills the process and removes its data dir. Safe to call twice. */
  stop(): Promise<void>;
}

function config(dataDir: string, o: NodeOptions): string {
  return `
[node]
id = ${o.id ?? 1}
region = "${o.region ?? "test-1"}"
data_dir = "${dataDir}"

[listen]
client = "127.0.0.1:0"
admin = "127.0.0.1:0"
peer = "127.0.0.1:0"

[cluster]
${o.cluster ?? ""}

[session]
${o.session ?? ""}

[auth]
leeway_secs = 0
refresh_window_secs = 2
allow_http_jwks = true
${o.auth ?? ""}

[limits]
auth_timeout_secs = 2
idle_timeout_secs = 3
heartbeat_interval_secs = 1
max_connections = 10000
${o.limits ?? ""}

[[admin.keys]]
kid = "${ADMIN_KID}"
alg = "HS256"
secret = "${ADMIN_SECRET}"

[[tenants]]
id = "${TENANT}"
issuer = "${ISSUER}"
audiences = ["${AUDIENCE}"]

[[tenants.keys]]
kid = "${TENANT_KID}"
alg = "HS256"
secret = "${TENANT_SECRET}"
`;
}

export async function startNode(o: NodeOptions = {}): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), "tether-ts-"));
  const cfg = join(dir, "tether.toml");
  writeFileSync(cfg, config(join(dir, "data"), o));
  // Unknown TETHER_* variables are config errors: pass none but the log level.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("TETHER_")) env[k] = v;
  env.TETHER_LOG = "warn";
  // The node's log (stderr) goes to its temp dir, or to the test output with
  // CLIENT_TS_NODE_LOGS=1 (the cluster tests' Raft warnings would drown the TAP summary).
  const stderr = process.env.CLIENT_TS_NODE_LOGS === "1" ? "inherit" : openSync(join(dir, "node.log"), "a");
  const child: ChildProcess = spawn(tetherBin(), ["serve", "--config", cfg], {
    env,
    stdio: ["ignore", "pipe", stderr],
  });
  if (typeof stderr === "number") closeSync(stderr); // the child holds its own copy
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      const gone = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGKILL");
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const addrs = await new Promise<{ client: string; admin: string; peer: string }>((res, rej) => {
      const timer = setTimeout(() => rej(new Error("node printed no `tether listening` line in 20 s")), 20_000);
      child.once("exit", (code) => {
        clearTimeout(timer);
        rej(new Error(`tether exited early with ${code}`));
      });
      // Keep draining stdout (audit lines) for the node's whole life so it never blocks.
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (line) => {
        const m = /^tether listening client=(\S+) admin=(\S+) peer=(\S+)/.exec(line);
        if (m?.[1] && m[2] && m[3]) {
          clearTimeout(timer);
          res({ client: m[1], admin: m[2], peer: m[3] });
        }
      });
    });
    const node: TestNode = {
      clientAddr: addrs.client,
      adminAddr: addrs.admin,
      peerAddr: addrs.peer,
      url: `ws://${addrs.client}/v1/connect`,
      admin: async (method, path, body) => {
        const r = await fetch(`http://${addrs.admin}${path}`, {
          method,
          headers: { authorization: `Bearer ${adminToken()}`, "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(15_000),
        });
        const text = await r.text();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // Not JSON (axum's plain-text errors): keep the text.
        }
        if (r.status >= 300) throw new Error(`admin ${method} ${path}: ${r.status} ${text}`);
        return { status: r.status, body: parsed };
      },
      signal: (sig) => {
        if (!exited) child.kill(sig);
      },
      exited: (timeoutMs) =>
        exited
          ? Promise.resolve()
          : new Promise<void>((res, rej) => {
              const t = setTimeout(() => rej(new Error(`node still running after ${timeoutMs} ms`)), timeoutMs);
              child.once("exit", () => {
                clearTimeout(t);
                res();
              });
            }),
      stop,
    };
    const readyBy = Date.now() + 20_000;
    for (;;) {
      const status = await fetch(`http://${addrs.admin}/readyz`, { signal: AbortSignal.timeout(1000) })
        .then((r) => r.status)
        .catch(() => 0);
      if (status === 200) break;
      if (Date.now() > readyBy) throw new Error("GET /readyz did not answer 200 within 20 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    return node;
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Three nodes over plaintext peer links (`insecure_peer`, test only): node 1 bootstraps,
 * nodes 2 and 3 join it as voters. Each is ready (a leader known) when this returns.
 */
export async function startCluster(o: NodeOptions = {}): Promise<TestNode[]> {
  const nodes: TestNode[] = [];
  try {
    nodes.push(await startNode({ ...o, id: 1, region: "region-1", cluster: "insecure_peer = true" }));
    const seed = nodes[0]!.peerAddr;
    for (const id of [2, 3]) {
      nodes.push(
        await startNode({
          ...o,
          id,
          region: `region-${id}`,
          cluster: `insecure_peer = true\njoin = ["${seed}"]\nvoter = true`,
        }),
      );
    }
    return nodes;
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw e;
  }
}
