// requireActiveSession, the error adapter and argument checking of the nodejs package.
import { test } from "node:test";
import assert from "node:assert/strict";
import { wasm, valid, bytes, camel, thrownKind, declaredKinds, DEFAULT_PREFIXES } from "./helpers.mjs";

const active = valid.filter((v) => v.session.status === "active");
const revoked = valid.filter((v) => v.session.status === "revoked");
const OTHER_KEY = Buffer.alloc(32, 7).toString("base64");

test("requireActiveSession returns every active vector's session, with and without matching expectations", () => {
  assert.ok(active.length > 10);
  for (const v of active) {
    const expected = camel(v.session);
    assert.deepEqual(wasm.requireActiveSession(v.device_session_id, v.payload), expected, v.name);
    assert.deepEqual(wasm.requireActiveSession(v.device_session_id, bytes(v.payload_b64), {}), expected, v.name);
    assert.deepEqual(wasm.requireActiveSession(v.device_session_id, v.payload, null), expected, v.name);
    assert.deepEqual(
      wasm.requireActiveSession(v.device_session_id, v.payload, {
        userId: v.session.user_id,
        clientPublicKey: v.session.client_public_key_b64,
      }),
      expected,
      v.name,
    );
  }
});

test("requireActiveSession refuses every revoked vector with not_active", () => {
  assert.ok(revoked.length > 5);
  for (const v of revoked) {
    // The record itself is valid...
    assert.equal(wasm.decodeSessionRecord(v.device_session_id, v.payload).status, "revoked");
    // ...but not active, even when user and key match.
    const expect = { userId: v.session.user_id, clientPublicKey: v.session.client_public_key_b64 };
    assert.equal(thrownKind(() => wasm.requireActiveSession(v.device_session_id, v.payload, expect)), "not_active", v.name);
  }
});

test("requireActiveSession refuses a wrong user and a wrong key", () => {
  const v = active[0];
  const call = (expect) => thrownKind(() => wasm.requireActiveSession(v.device_session_id, v.payload, expect));
  assert.equal(call({ userId: v.session.user_id + "x" }), "user_mismatch");
  assert.equal(call({ clientPublicKey: OTHER_KEY }), "key_mismatch");
  assert.equal(call({ userId: "someone-else", clientPublicKey: OTHER_KEY }), "user_mismatch");
  // An expectation that is not a valid value is an error of that value's kind.
  assert.equal(call({ userId: "" }), "invalid_id");
  assert.equal(call({ clientPublicKey: "not base64" }), "invalid_public_key");
  // Misspelt, null or mistyped expectations never silently skip a check.
  assert.equal(call({ userID: v.session.user_id }), "invalid_argument");
  assert.equal(call({ userId: null }), "invalid_argument");
  assert.equal(call({ userId: 42 }), "invalid_argument");
  assert.equal(call("user-1"), "invalid_argument");
  assert.equal(call([v.session.user_id]), "invalid_argument");
});

test("requireActiveSession refuses a record stored under another id", () => {
  const [a, b] = active;
  assert.equal(thrownKind(() => wasm.requireActiveSession(b.device_session_id, a.payload)), "id_mismatch");
});

test("errors are Error instances named AuthsessionError with a declared kind and a message", () => {
  const declared = declaredKinds();
  for (const kind of ["not_active", "user_mismatch", "key_mismatch", "invalid_argument", "malformed_json", "id_mismatch"]) {
    assert.ok(declared.has(kind), kind);
  }
  try {
    wasm.decodeSessionRecord("dev-1", "{");
    assert.fail("did not throw");
  } catch (err) {
    assert.ok(err instanceof Error);
    assert.equal(err.name, "AuthsessionError");
    assert.equal(err.kind, "malformed_json");
    assert.match(err.message, /JSON/);
  }
});

test("arguments of the wrong JS type are invalid_argument", () => {
  const v = active[0];
  assert.equal(thrownKind(() => wasm.decodeSessionRecord(1, v.payload)), "invalid_argument");
  assert.equal(thrownKind(() => wasm.decodeSessionRecord(undefined, v.payload)), "invalid_argument");
  assert.equal(thrownKind(() => wasm.decodeSessionRecord(v.device_session_id, 7)), "invalid_argument");
  assert.equal(thrownKind(() => wasm.decodeSessionRecord(v.device_session_id, null)), "invalid_argument");
  assert.equal(thrownKind(() => wasm.decodeSessionRecord(v.device_session_id, new ArrayBuffer(4))), "invalid_argument");
  assert.equal(thrownKind(() => wasm.decodeSessionRecord(v.device_session_id, [123])), "invalid_argument");
  assert.equal(thrownKind(() => wasm.encodeSessionRecord("{}")), "invalid_argument");
  assert.equal(thrownKind(() => wasm.encodeSessionRecord(null)), "invalid_argument");
  assert.equal(thrownKind(() => wasm.sessionKey(DEFAULT_PREFIXES.session, 5)), "invalid_argument");
  assert.equal(thrownKind(() => wasm.userSessionsKey(null, "user-1")), "invalid_argument");
});

test("ids and prefixes are validated by the core", () => {
  assert.equal(thrownKind(() => wasm.decodeSessionRecord("", active[0].payload)), "invalid_id");
  assert.equal(thrownKind(() => wasm.decodeSessionRecord(" dev-1", active[0].payload)), "invalid_id");
  assert.equal(thrownKind(() => wasm.sessionKey(DEFAULT_PREFIXES.session, "a\u0000b")), "invalid_id");
  assert.equal(thrownKind(() => wasm.userSessionsKey(DEFAULT_PREFIXES.userSessions, "x".repeat(257))), "invalid_id");
  assert.equal(thrownKind(() => wasm.userActiveSessionsKey("", "user-1")), "invalid_key_prefix");
  assert.equal(thrownKind(() => wasm.sessionKey("  ", "dev-1")), "invalid_key_prefix");
  assert.equal(wasm.sessionKey("p:", "dev-1"), "p:ZGV2LTE");
});

test("unpaired UTF-16 surrogates are refused, never turned into U+FFFD", () => {
  const v = active[0];
  const lone = v.payload.replace(v.session.user_id, "user-\uD800");
  assert.equal(thrownKind(() => wasm.decodeSessionRecord(v.device_session_id, lone)), "malformed_json");
  assert.equal(thrownKind(() => wasm.sessionKey(DEFAULT_PREFIXES.session, "dev-\uDC00")), "invalid_argument");
  const session = camel(v.session);
  assert.equal(thrownKind(() => wasm.encodeSessionRecord({ ...session, userId: "user-\uD800" })), "invalid_argument");
  // A real U+FFFD is an ordinary character.
  assert.equal(wasm.sessionKey("p:", "\uFFFD"), "p:77-9");
});

test("string and Uint8Array payloads decode alike, whatever their size or characters", () => {
  const v = active[0];
  const outcome = (payload) => {
    try {
      return wasm.decodeSessionRecord(v.device_session_id, payload);
    } catch (err) {
      return thrownKind(() => {
        throw err;
      });
    }
  };
  const payloads = ["", v.payload, v.payload.replace(v.session.user_id, "usér-ü"), "é".repeat(5000)];
  // UTF-8 lengths around the 4096-byte buffer of the string fast path.
  for (let n = 4086; n <= 4100; n++) {
    payloads.push(" ".repeat(n - v.payload.length) + v.payload);
    payloads.push(v.payload.replace(v.session.user_id, "é".repeat((n - v.payload.length) >> 1)));
  }
  for (const payload of payloads) {
    assert.deepEqual(outcome(payload), outcome(new TextEncoder().encode(payload)), `${payload.length} chars`);
  }
  // Object arguments cross as JSON text by the same route, long or short.
  const session = camel(v.session);
  assert.deepEqual(wasm.requireActiveSession(v.device_session_id, v.payload, { userId: session.userId }), session);
  assert.equal(thrownKind(() => wasm.requireActiveSession(v.device_session_id, v.payload, { userId: "é".repeat(3000) })), "invalid_id");
  assert.equal(thrownKind(() => wasm.requireActiveSession(v.device_session_id, v.payload, { userId: "ü" })), "user_mismatch");
  assert.equal(thrownKind(() => wasm.encodeSessionRecord({ ...session, extra: "é".repeat(5000) })), "invalid_argument");
  const wide = { ...session, userId: "é".repeat(100) };
  assert.deepEqual(wasm.decodeSessionRecord(v.device_session_id, wasm.encodeSessionRecord(wide)), wide);
  // Growing the wasm memory (a large Uint8Array is copied in) must not break strings.
  assert.equal(typeof outcome(new Uint8Array(8 << 20)), "string");
  assert.deepEqual(wasm.decodeSessionRecord(v.device_session_id, v.payload), camel(v.session));
});

test("encodeSessionRecord validates through the core and refuses unknown fields", () => {
  const base = camel(revoked[0].session);
  const kind = (session) => thrownKind(() => wasm.encodeSessionRecord(session));
  assert.equal(kind({ ...base, extra: 1 }), "invalid_argument");
  assert.equal(kind({ ...base, revocation: { ...base.revocation, extra: 1 } }), "invalid_argument");
  assert.equal(kind({ ...base, userId: undefined }), "invalid_argument");
  assert.equal(kind({ ...base, createdAt: 1714979289 }), "invalid_argument");
  assert.equal(kind({ ...base, status: "active" }), "status_revocation_mismatch");
  assert.equal(kind({ ...base, revocation: null }), "status_revocation_mismatch");
  assert.equal(kind({ ...base, createdAt: "2024-05-06T07:08:09.10Z" }), "non_canonical_timestamp");
  assert.equal(kind({ ...base, revocation: { ...base.revocation, at: "0001-01-01T00:00:00Z" } }), "zero_timestamp");
  assert.equal(kind({ ...base, revocation: { ...base.revocation, at: "1970-01-01T00:00:00Z" } }), "revoked_before_created");
  assert.equal(kind({ ...base, revocation: { ...base.revocation, reasonCode: "Bad" } }), "invalid_reason_code");
  assert.equal(kind({ ...base, revocation: { ...base.revocation, actorType: "" } }), "invalid_actor_type");
  assert.equal(kind({ ...base, revocation: { ...base.revocation, actorId: " x" } }), "invalid_actor_id");
  assert.equal(kind({ ...base, clientPublicKey: OTHER_KEY.slice(0, -1) }), "invalid_public_key");
  assert.equal(kind({ ...base, status: "REVOKED" }), "invalid_status");
});
