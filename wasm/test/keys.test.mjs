// The tagged layout's key functions (a Redis Cluster deployment's keys): the
// exact text of test/tagged-keys.json, which the wasm crate's unit tests
// check against the core's KeySpace, so an edge worker and the driver name
// the same keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { wasm, valid, thrownKind, DEFAULT_PREFIXES } from "./helpers.mjs";

const fixtures = JSON.parse(readFileSync(new URL("./tagged-keys.json", import.meta.url), "utf8")).cases;
const OWNER_PREFIX = "authsession:session_owner:";

test("tagged keys are the core's, byte for byte", () => {
  assert.ok(fixtures.length >= 5);
  for (const c of fixtures) {
    const p = (name) => `${c.base}${name}:`;
    const name = `${c.base} ${c.user_id} ${c.device_session_id}`;
    assert.equal(wasm.taggedSessionKey(p("session"), c.user_id, c.device_session_id), c.session, name);
    assert.equal(wasm.taggedUserSessionsKey(p("user_sessions"), c.user_id), c.user_sessions, name);
    assert.equal(wasm.taggedUserActiveSessionsKey(p("user_active_sessions"), c.user_id), c.user_active_sessions, name);
    assert.equal(wasm.sessionOwnerKey(p("session_owner"), c.device_session_id), c.session_owner, name);
  }
});

test("every key of a user carries the hash tag {b64url(user)}; the owner key the id's", () => {
  for (const v of valid) {
    const tag = `{${v.user_key_component}}`;
    const keys = [
      wasm.taggedSessionKey(DEFAULT_PREFIXES.session, v.session.user_id, v.device_session_id),
      wasm.taggedUserSessionsKey(DEFAULT_PREFIXES.userSessions, v.session.user_id),
      wasm.taggedUserActiveSessionsKey(DEFAULT_PREFIXES.userActiveSessions, v.session.user_id),
    ];
    assert.deepEqual(keys, [
      `${DEFAULT_PREFIXES.session}${tag}${v.session_key_component}`,
      `${DEFAULT_PREFIXES.userSessions}${tag}`,
      `${DEFAULT_PREFIXES.userActiveSessions}${tag}`,
    ], v.name);
    // Redis Cluster hashes only what is between the first { and the next }:
    // base64url has neither, so all three land in one slot.
    for (const key of keys) assert.equal(key.slice(key.indexOf("{"), key.indexOf("}") + 1), tag, v.name);
    assert.equal(wasm.sessionOwnerKey(OWNER_PREFIX, v.device_session_id), `${OWNER_PREFIX}{${v.session_key_component}}`, v.name);
  }
});

test("tagged keys differ from the reference layout's only by the tag", () => {
  const v = valid.find((c) => c.name === "active_basic");
  const reference = wasm.sessionKey(DEFAULT_PREFIXES.session, v.device_session_id);
  const tagged = wasm.taggedSessionKey(DEFAULT_PREFIXES.session, v.session.user_id, v.device_session_id);
  assert.equal(tagged.replace(`{${v.user_key_component}}`, ""), reference);
  assert.equal(
    wasm.taggedUserSessionsKey(DEFAULT_PREFIXES.userSessions, v.session.user_id),
    wasm.userSessionsKey(DEFAULT_PREFIXES.userSessions, v.session.user_id).replace(
      v.user_key_component,
      `{${v.user_key_component}}`,
    ),
  );
});

test("tagged key arguments are validated by the core", () => {
  const [s, u] = [DEFAULT_PREFIXES.session, DEFAULT_PREFIXES.userSessions];
  // A prefix may not carry a tag of its own: the tag must be the user's.
  assert.equal(thrownKind(() => wasm.taggedSessionKey("a{b}:", "user-1", "dev-1")), "invalid_key_prefix");
  assert.equal(thrownKind(() => wasm.taggedUserSessionsKey("a}:", "user-1")), "invalid_key_prefix");
  assert.equal(thrownKind(() => wasm.taggedUserActiveSessionsKey(" ", "user-1")), "invalid_key_prefix");
  assert.equal(thrownKind(() => wasm.sessionOwnerKey("", "dev-1")), "invalid_key_prefix");
  assert.equal(thrownKind(() => wasm.taggedSessionKey(s, "", "dev-1")), "invalid_id");
  assert.equal(thrownKind(() => wasm.taggedSessionKey(s, "user-1", " dev-1")), "invalid_id");
  assert.equal(thrownKind(() => wasm.taggedUserSessionsKey(u, "x".repeat(257))), "invalid_id");
  assert.equal(thrownKind(() => wasm.sessionOwnerKey(OWNER_PREFIX, "a\u0000b")), "invalid_id");
  assert.equal(thrownKind(() => wasm.taggedSessionKey(s, 1, "dev-1")), "invalid_argument");
  assert.equal(thrownKind(() => wasm.taggedSessionKey(s, "user-1")), "invalid_argument");
  assert.equal(thrownKind(() => wasm.taggedUserActiveSessionsKey(null, "user-1")), "invalid_argument");
  assert.equal(thrownKind(() => wasm.sessionOwnerKey(OWNER_PREFIX, "dev-\uD800")), "invalid_argument");
  // Braces inside ids are only base64url text: they never form a tag.
  assert.equal(wasm.taggedSessionKey("p:", "{u}", "{d}"), "p:{e3V9}e2R9");
});

test("the one-round-trip check: the record fetched by user and id, then requireActiveSession", () => {
  // What an edge worker does against a cluster deployment: derive the key
  // from the request's user and id, GET it, check it is that user's.
  const v = valid.find((c) => c.name === "active_basic");
  const store = new Map([[wasm.taggedSessionKey(DEFAULT_PREFIXES.session, v.session.user_id, v.device_session_id), v.payload]]);
  const lookup = (user, id) => store.get(wasm.taggedSessionKey(DEFAULT_PREFIXES.session, user, id));
  const payload = lookup(v.session.user_id, v.device_session_id);
  assert.equal(wasm.requireActiveSession(v.device_session_id, payload, { userId: v.session.user_id }).userId, v.session.user_id);
  // Another user asking for the same id names another key: nothing there.
  assert.equal(lookup("mallory", v.device_session_id), undefined);
  // A record planted under another user's tag is still refused.
  assert.equal(thrownKind(() => wasm.requireActiveSession(v.device_session_id, payload, { userId: "mallory" })), "user_mismatch");
});
