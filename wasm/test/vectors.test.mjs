// The nodejs package against every golden vector of the core.
import { test } from "node:test";
import assert from "node:assert/strict";
import { wasm, valid, invalid, bytes, camel, thrownKind, declaredKinds, DEFAULT_PREFIXES } from "./helpers.mjs";

test("vector files are complete", () => {
  assert.ok(valid.length >= 50, `${valid.length} valid vectors`);
  assert.ok(invalid.length >= 190, `${invalid.length} invalid vectors`);
});

test("every valid vector decodes from a string and from bytes to its session", () => {
  for (const v of valid) {
    const expected = camel(v.session);
    assert.deepEqual(wasm.decodeSessionRecord(v.device_session_id, v.payload), expected, v.name);
    assert.deepEqual(wasm.decodeSessionRecord(v.device_session_id, bytes(v.payload_b64)), expected, v.name);
    // A Node Buffer is a Uint8Array too.
    assert.deepEqual(wasm.decodeSessionRecord(v.device_session_id, Buffer.from(v.payload_b64, "base64")), expected, v.name);
  }
});

test("decoded sessions are plain JSON-shaped objects", () => {
  const s = wasm.decodeSessionRecord(valid[0].device_session_id, valid[0].payload);
  assert.equal(Object.getPrototypeOf(s), Object.prototype);
  assert.deepEqual(Object.keys(s), ["deviceSessionId", "userId", "clientPublicKey", "status", "createdAt", "revocation"]);
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
});

test("encoding every valid vector's session reproduces its payload bytes exactly", () => {
  for (const v of valid) {
    const encoded = wasm.encodeSessionRecord(camel(v.session));
    assert.ok(encoded instanceof Uint8Array, v.name);
    assert.equal(Buffer.from(encoded).toString("base64"), v.payload_b64, v.name);
  }
});

test("decode then encode is the identity on every valid payload", () => {
  for (const v of valid) {
    const session = wasm.decodeSessionRecord(v.device_session_id, bytes(v.payload_b64));
    assert.deepEqual(wasm.encodeSessionRecord(session), bytes(v.payload_b64), v.name);
  }
});

test("keys match the vectors' components under the default prefixes", () => {
  for (const v of valid) {
    assert.equal(wasm.sessionKey(DEFAULT_PREFIXES.session, v.device_session_id), DEFAULT_PREFIXES.session + v.session_key_component, v.name);
    assert.equal(wasm.userSessionsKey(DEFAULT_PREFIXES.userSessions, v.session.user_id), DEFAULT_PREFIXES.userSessions + v.user_key_component, v.name);
    assert.equal(
      wasm.userActiveSessionsKey(DEFAULT_PREFIXES.userActiveSessions, v.session.user_id),
      DEFAULT_PREFIXES.userActiveSessions + v.user_key_component,
      v.name,
    );
  }
});

test("every invalid vector is rejected with a declared kind, from bytes and from text", () => {
  const declared = declaredKinds();
  let checked = 0;
  for (const v of invalid) {
    // Its requested id is not valid UTF-8: a JS string cannot name it.
    if (v.name === "id_mismatch_invalid_utf8_requested") continue;
    const fromBytes = thrownKind(() => wasm.decodeSessionRecord(v.device_session_id, bytes(v.payload_b64)));
    assert.ok(declared.has(fromBytes), `${v.name}: ${fromBytes} not declared in ErrorKind`);
    assert.notEqual(fromBytes, "invalid_argument", v.name);
    if (v.payload !== undefined) {
      // The text form is the same bytes (checked by the vectors), so the same verdict.
      assert.equal(thrownKind(() => wasm.decodeSessionRecord(v.device_session_id, v.payload)), fromBytes, v.name);
    }
    assert.equal(thrownKind(() => wasm.requireActiveSession(v.device_session_id, bytes(v.payload_b64))), fromBytes, v.name);
    checked += 1;
  }
  assert.equal(checked, invalid.length - 1);
});
