/** HS256 JWTs for the test node's tenant and admin keys, minted with node:crypto. */
import { createHmac, randomUUID } from "node:crypto";

export const TENANT = "acme";
export const ISSUER = "https://idp.acme.test/";
export const AUDIENCE = "tether";
export const TENANT_KID = "k1";
export const TENANT_SECRET = "acme-test-secret-0123456789abcdef0123456789";
export const ADMIN_KID = "test-admin";
export const ADMIN_SECRET = "admin-test-secret-0123456789abcdef012345678";
export const PERMS = ["sub:chat.*", "pub:chat.*"];

const b64url = (s: string | Buffer): string => Buffer.from(s).toString("base64url");

export function nowSecs(): number {
  return Math.floor(Date.now() / 1000);
}

export function signHs256(kid: string, secret: string, claims: object): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT", kid }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** A user token of tenant `acme`, valid for `ttlSecs`. */
export function userToken(sub: string, ttlSecs = 600, permissions: string[] = PERMS): string {
  const iat = nowSecs();
  return signHs256(TENANT_KID, TENANT_SECRET, {
    iss: ISSUER,
    aud: AUDIENCE,
    sub,
    tid: TENANT,
    iat,
    exp: iat + ttlSecs,
    jti: randomUUID(),
    permissions,
  });
}

export function adminToken(): string {
  const iat = nowSecs();
  return signHs256(ADMIN_KID, ADMIN_SECRET, {
    sub: "test",
    scope: "tether:admin",
    iat,
    exp: iat + 3600,
  });
}
