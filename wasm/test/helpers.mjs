// Shared by the node --test suites: the nodejs package and the golden
// vectors (read from the core's test data, never from ../shared).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** The nodejs package built by build.sh. */
export const wasm = require("../pkg/node/authsession_wasm.js");

const data = (name) =>
  JSON.parse(readFileSync(new URL(`../../core/tests/data/${name}`, import.meta.url), "utf8"));

export const valid = data("valid.json").cases;
export const invalid = data("invalid.json").cases;

export const DEFAULT_PREFIXES = {
  session: "authsession:session:",
  userSessions: "authsession:user_sessions:",
  userActiveSessions: "authsession:user_active_sessions:",
};

export const bytes = (b64) => new Uint8Array(Buffer.from(b64, "base64"));

/** The vectors' snake_case `session` object as the JS API's camelCase one. */
export function camel(session) {
  const r = session.revocation;
  return {
    deviceSessionId: session.id,
    userId: session.user_id,
    clientPublicKey: session.client_public_key_b64,
    status: session.status,
    createdAt: session.created_at,
    revocation:
      r === null
        ? null
        : { at: r.at, reasonCode: r.reason_code, actorType: r.actor_type, actorId: r.actor_id ?? "" },
  };
}

/** The kind of what `fn` throws; fails when it does not throw an AuthsessionError. */
export function thrownKind(fn) {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof Error)) throw new Error(`threw a non-Error: ${String(err)}`);
    if (err.name !== "AuthsessionError" || typeof err.kind !== "string") throw err;
    return err.kind;
  }
  throw new Error("did not throw");
}

/** Every kind the TypeScript declarations list in `ErrorKind`. */
export function declaredKinds() {
  const dts = readFileSync(new URL("../pkg/node/authsession_wasm.d.ts", import.meta.url), "utf8");
  const union = /export type ErrorKind =([^;]*);/.exec(dts);
  if (!union) throw new Error("ErrorKind missing from the .d.ts");
  return new Set([...union[1].matchAll(/"([a-z_]+)"/g)].map((m) => m[1]));
}
