/** Small helpers shared by the SDK's modules. */
import type { TetherError } from "./types.js";

export const tetherError = (code: string, message: string): TetherError => ({ code, message });

export function isTetherError(e: unknown): e is TetherError {
  return typeof e === "object" && e !== null && typeof (e as TetherError).code === "string";
}

export function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (isTetherError(e)) return `${e.code}: ${e.message}`;
  return String(e);
}

/** `p`, or an Error with `message` after `ms` (the app's `getToken` must not hang us). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(message)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(describe(e)));
      },
    );
  });
}
