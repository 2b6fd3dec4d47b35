/**
 * A scripted stand-in for a Tether node (a `ws` server speaking `tether.v1`), for the
 * policy paths a single real node cannot be made to take on demand: 4111, drain advice,
 * replays of already delivered frames, recovered:false.
 */
import { WebSocketServer } from "ws";
import type { WebSocket } from "ws";

import { waitFor } from "./wait.js";

export interface Frame {
  type: string;
  [k: string]: unknown;
}

export interface FakeConn {
  /** Frames received from the SDK, parsed. */
  frames: Frame[];
  /** Sub-protocols the SDK offered. */
  protocols: string[];
  send(frame: object): void;
  close(code: number, reason: string): void;
  /** Waits for the first received frame of `type` after index `from`. */
  next(type: string, timeoutMs?: number, from?: number): Promise<Frame>;
  closedWith: { code: number; reason: string } | null;
}

export interface FakeServer {
  url: string;
  conns: FakeConn[];
  close(): Promise<void>;
}

export function welcome(o: Partial<Record<string, unknown>> = {}): object {
  return {
    type: "welcome",
    session_id: "s1",
    resume_token: "rt1",
    resumed: false,
    recovered: false,
    seq: 0,
    expires_at: Math.floor(Date.now() / 1000) + 600,
    permissions: ["sub:chat.*"],
    node: "n9",
    region: "fake",
    heartbeat_ms: 25000,
    ...o,
  };
}

/** Starts a server; `onConn` scripts each accepted connection. */
export async function startFake(onConn: (c: FakeConn) => void): Promise<FakeServer> {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    handleProtocols: (protocols) => (protocols.has("tether.v1") ? "tether.v1" : false),
  });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const conns: FakeConn[] = [];
  wss.on("connection", (ws: WebSocket, req) => {
    const protocols = String(req.headers["sec-websocket-protocol"] ?? "")
      .split(",")
      .map((s) => s.trim());
    const c: FakeConn = {
      frames: [],
      protocols,
      closedWith: null,
      send: (f) => ws.send(JSON.stringify(f)),
      close: (code, reason) => ws.close(code, reason),
      next: async (type, timeoutMs = 5000, from = 0) => {
        let found: Frame | undefined;
        await waitFor(
          () => (found = c.frames.slice(from).find((f) => f.type === type)) !== undefined,
          timeoutMs,
          `a ${type} frame`,
        );
        return found!;
      },
    };
    ws.on("message", (data: Buffer) => c.frames.push(JSON.parse(data.toString()) as Frame));
    ws.on("close", (code: number, reason: Buffer) => {
      c.closedWith = { code, reason: reason.toString() };
    });
    conns.push(c);
    onConn(c);
  });
  const addr = wss.address();
  if (addr === null || typeof addr === "string") throw new Error("no TCP address");
  return {
    url: `ws://127.0.0.1:${addr.port}/v1/connect`,
    conns,
    close: () =>
      new Promise<void>((r) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => r());
      }),
  };
}
