/**
 * Browser hooks: a page that comes back online or to the foreground should not wait out
 * a long backoff before reconnecting.
 */

/** The part of `TetherClient` the hooks use. */
export interface Reconnectable {
  reconnectNow(): void;
}

/** The part of `window`/`document` the hooks use (injectable for tests). */
export interface BrowserTargets {
  window: Pick<EventTarget, "addEventListener" | "removeEventListener">;
  document: Pick<EventTarget, "addEventListener" | "removeEventListener"> & {
    readonly visibilityState: string;
  };
}

/**
 * Calls `client.reconnectNow()` on the window's `online` event and when the document
 * becomes visible. Returns a function that removes both listeners.
 */
export function attachBrowserHooks(client: Reconnectable, targets?: BrowserTargets): () => void {
  const g = globalThis as unknown as Partial<BrowserTargets>;
  const win = targets?.window ?? g.window;
  const doc = targets?.document ?? g.document;
  if (!win || !doc) return () => undefined;
  const onOnline = (): void => client.reconnectNow();
  const onVisibility = (): void => {
    if (doc.visibilityState === "visible") client.reconnectNow();
  };
  win.addEventListener("online", onOnline);
  doc.addEventListener("visibilitychange", onVisibility);
  return () => {
    win.removeEventListener("online", onOnline);
    doc.removeEventListener("visibilitychange", onVisibility);
  };
}
