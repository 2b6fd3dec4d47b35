/**
 * Server frames, parsed defensively: network input is never trusted, so a frame with a
 * missing or wrongly typed field is ignored rather than crashing the SDK.
 */

export interface Welcome {
  type: "welcome";
  session_id: string;
  resume_token: string;
  resumed: boolean;
  recovered: boolean;
  seq: number;
  node: string;
  region: string;
}

export interface Reply {
  type: "reply";
  id: number;
  ok: boolean;
  error: { code: string; message: string } | null;
}

export interface EventFrame {
  type: "event";
  seq: number;
  channel: string;
  data: unknown;
}

export interface PermissionsFrame {
  type: "permissions";
  seq: number;
  permissions: string[];
  version: number;
  dropped: string[];
}

export interface TokenExpiring {
  type: "token_expiring";
  expires_at: number;
}

export interface ReconnectAdvice {
  type: "reconnect";
  after_ms: number;
  reason: string;
}

export interface ServerError {
  type: "error";
  code: string;
  message: string;
}

export type ServerFrame =
  | Welcome
  | Reply
  | EventFrame
  | PermissionsFrame
  | TokenExpiring
  | ReconnectAdvice
  | ServerError;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (o: Obj, k: string): string | undefined =>
  typeof o[k] === "string" ? o[k] : undefined;
const num = (o: Obj, k: string): number | undefined =>
  typeof o[k] === "number" && Number.isFinite(o[k]) ? o[k] : undefined;
const strs = (v: unknown): string[] | undefined =>
  Array.isArray(v) && v.every((x) => typeof x === "string") ? (v) : undefined;

/** Parses one text frame; `null` for anything malformed or unknown. */
export function parseFrame(text: string): ServerFrame | null {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObj(o)) return null;
  switch (o.type) {
    case "welcome": {
      const session_id = str(o, "session_id");
      const resume_token = str(o, "resume_token");
      const seq = num(o, "seq");
      if (session_id === undefined || resume_token === undefined || seq === undefined) return null;
      return {
        type: "welcome",
        session_id,
        resume_token,
        resumed: o.resumed === true,
        recovered: o.recovered === true,
        seq,
        node: str(o, "node") ?? "",
        region: str(o, "region") ?? "",
      };
    }
    case "reply": {
      const id = num(o, "id");
      if (id === undefined || typeof o.ok !== "boolean") return null;
      const e = isObj(o.error) ? o.error : null;
      return {
        type: "reply",
        id,
        ok: o.ok,
        error: e ? { code: str(e, "code") ?? "error", message: str(e, "message") ?? "" } : null,
      };
    }
    case "event": {
      const seq = num(o, "seq");
      const channel = str(o, "channel");
      if (seq === undefined || channel === undefined) return null;
      return { type: "event", seq, channel, data: o.data };
    }
    case "permissions": {
      const seq = num(o, "seq");
      const permissions = strs(o.permissions);
      if (seq === undefined || permissions === undefined) return null;
      return {
        type: "permissions",
        seq,
        permissions,
        version: num(o, "version") ?? 0,
        dropped: strs(o.dropped) ?? [],
      };
    }
    case "token_expiring":
      return { type: "token_expiring", expires_at: num(o, "expires_at") ?? 0 };
    case "reconnect": {
      const after_ms = num(o, "after_ms");
      if (after_ms === undefined) return null;
      return { type: "reconnect", after_ms, reason: str(o, "reason") ?? "" };
    }
    case "error":
      return { type: "error", code: str(o, "code") ?? "error", message: str(o, "message") ?? "" };
    default:
      return null;
  }
}
