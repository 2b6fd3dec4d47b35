/**
 * In-band token refresh (`token_expiring` → `getToken()` → `refresh`), per connection,
 * retried on failure. Separate from the client because it is the only flow that awaits
 * the app while the connection keeps running, and must re-check the connection after.
 */
import type { Conn } from "./connection.js";
import type { RequestFrame } from "./requests.js";
import type { TetherError } from "./types.js";
import { describe, isTetherError, tetherError as err, withTimeout } from "./util.js";

/** Wait before retrying a refused or failed in-band refresh. */
const REFRESH_RETRY_MS = 10_000;

/** What the refresh needs from the client. */
export interface RefreshHost {
  readonly requestTimeoutMs: number;
  getToken(): Promise<string>;
  /** The token in use; replaced (`setToken`) once the server accepted a new one. */
  currentToken(): string | null;
  setToken(token: string): void;
  /** `true` once the client is closed for good. */
  isClosed(): boolean;
  sendTracked(conn: Conn, frame: RequestFrame): Promise<void>;
  reportError(e: TetherError): void;
}

/** Refreshes the token on `conn`; on failure emits an error and retries in 10 s. */
export async function refresh(host: RefreshHost, conn: Conn): Promise<void> {
  if (conn.refreshing || conn.closed) return;
  conn.refreshing = true;
  if (conn.refreshTimer) clearTimeout(conn.refreshTimer);
  conn.refreshTimer = null;
  let failure: TetherError | null = null;
  try {
    const token = await withTimeout(host.getToken(), host.requestTimeoutMs, "getToken timed out");
    if (conn.closed) return;
    if (token === host.currentToken()) {
      // The server would refuse it, and the same token would expire again at once.
      failure = err("refresh_failed", "getToken returned the token already in use");
    } else {
      await host.sendTracked(conn, { type: "refresh", token });
      host.setToken(token);
    }
  } catch (e) {
    failure = isTetherError(e) ? err("refresh_failed", `${e.code}: ${e.message}`) : err("token_provider", describe(e));
  } finally {
    conn.refreshing = false;
  }
  if (failure && !conn.closed && !host.isClosed()) {
    host.reportError(failure);
    conn.refreshTimer = setTimeout(() => void refresh(host, conn), REFRESH_RETRY_MS);
  }
}
