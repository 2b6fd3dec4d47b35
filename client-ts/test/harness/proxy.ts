/** A TCP proxy between the client and a node that a test can cut at will (a flaky link). */
import { createConnection, createServer } from "node:net";
import type { Socket } from "node:net";

export interface Proxy {
  /** `ws://<proxy>/v1/connect` */
  url: string;
  /** Connections accepted so far. */
  accepted(): number;
  /** Drops every open connection at once, both sides, without a close frame. */
  cutAll(): number;
  /** While `true`, new connections are reset at once (the node looks unreachable). */
  refuse(on: boolean): void;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<Proxy> {
  const [host, port] = target.split(":");
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  let refusing = false;
  const server = createServer((inbound) => {
    if (refusing) {
      inbound.resetAndDestroy();
      return;
    }
    accepted += 1;
    const outbound = createConnection({ host: host!, port: Number(port) });
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", end).on("close", end);
    outbound.on("error", end).on("close", end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("proxy has no TCP address");
  return {
    url: `ws://127.0.0.1:${addr.port}/v1/connect`,
    accepted: () => accepted,
    cutAll: () => {
      const n = pairs.size;
      for (const [a, b] of [...pairs]) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
      return n;
    },
    refuse: (on) => {
      refusing = on;
    },
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
