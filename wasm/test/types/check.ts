// Type-checked (never run) by types.test.mjs with `tsc --noEmit`: the shipped
// declarations describe the real shapes, not `any`. Each @ts-expect-error
// line must be an error, which it would not be if a type were `any`.
import {
  decodeSessionRecord,
  encodeSessionRecord,
  requireActiveSession,
  sessionKey,
  sessionOwnerKey,
  taggedSessionKey,
  taggedUserActiveSessionsKey,
  taggedUserSessionsKey,
  userActiveSessionsKey,
  userSessionsKey,
  type AuthsessionError,
  type ErrorKind,
  type Expectation,
  type Revocation,
  type Session,
} from "../../pkg/node/authsession_wasm.js";
import init, { initSync, requireActiveSession as requireOnTheEdge } from "../../pkg/web/authsession_wasm.js";

const fromText: Session = decodeSessionRecord("dev-1", "{}");
const fromBytes: Session = decodeSessionRecord("dev-1", new Uint8Array(0));
const id: string = fromText.deviceSessionId;
const user: string = fromText.userId;
const key: string = fromBytes.clientPublicKey;
const status: "active" | "revoked" = fromText.status;
const created: string = fromText.createdAt;
const revocation: Revocation | null = fromText.revocation;
if (revocation !== null) {
  const parts: string[] = [revocation.at, revocation.reasonCode, revocation.actorType, revocation.actorId];
  void parts;
}
const record: Uint8Array = encodeSessionRecord(fromText);
const keys: string[] = [sessionKey("p:", id), userSessionsKey("p:", user), userActiveSessionsKey("p:", user)];
const tagged: string[] = [
  taggedSessionKey("p:", user, id),
  taggedUserSessionsKey("p:", user),
  taggedUserActiveSessionsKey("p:", user),
  sessionOwnerKey("o:", id),
];
const expect: Expectation = { userId: user, clientPublicKey: key };
const checked: Session = requireActiveSession(id, record, expect);
requireActiveSession(id, "{}");
requireActiveSession(id, "{}", {});
requireActiveSession(id, "{}", { userId: user });
requireOnTheEdge(id, "{}", { clientPublicKey: key });
initSync({ module: new WebAssembly.Module(new Uint8Array(0)) });
void init;

function kindOf(err: unknown): ErrorKind {
  const kind: ErrorKind = (err as AuthsessionError).kind;
  const named: "AuthsessionError" = (err as AuthsessionError).name;
  void named;
  return kind;
}
const notActive: ErrorKind = "not_active";
const mismatch: ErrorKind[] = ["user_mismatch", "key_mismatch", "invalid_argument", "id_mismatch", "malformed_json"];

// @ts-expect-error a payload is a string or bytes
decodeSessionRecord("dev-1", 42);
// @ts-expect-error ids are strings
sessionKey("p:", 1);
// @ts-expect-error a tagged record key needs the user and the id
taggedSessionKey("p:", user);
// @ts-expect-error user ids are strings
taggedUserSessionsKey("p:", 7);
// @ts-expect-error expectations are spelt userId / clientPublicKey
requireActiveSession(id, "{}", { userID: user });
// @ts-expect-error the fields are camelCase
void fromText.user_id;
// @ts-expect-error timestamps are strings
const asNumber: number = fromText.createdAt;
// @ts-expect-error status is one of two strings
const other: typeof fromText.status = "deleted";
// @ts-expect-error a session needs all its fields
encodeSessionRecord({ deviceSessionId: id });
// @ts-expect-error encode returns bytes
const asString: string = encodeSessionRecord(fromText);
// @ts-expect-error kinds are a closed set
const unknownKind: ErrorKind = "nope";

void [fromText, fromBytes, status, created, keys, tagged, checked, kindOf, notActive, mismatch, asNumber, other, asString, unknownKind];
