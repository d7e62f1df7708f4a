// End to end in the real Cloudflare runtime: workerd (npm, pinned in
// package-lock.json) serves worker/worker.mjs, which imports the web package,
// on an ephemeral loopback port; real HTTP requests check its verdicts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { valid } from "./helpers.mjs";

const require = createRequire(import.meta.url);
const workerdBin = join(dirname(require.resolve("workerd/package.json")), "bin", "workerd");
const config = fileURLToPath(new URL("../worker/config.capnp", import.meta.url));

let child;
let base;
let stderr = "";

/** The port workerd reports on its control fd once the socket listens. */
function listenedPort(proc) {
  return new Promise((resolve, reject) => {
    let buffered = "";
    proc.stdio[3].on("data", (chunk) => {
      buffered += chunk;
      for (const line of buffered.split("\n").slice(0, -1)) {
        const event = JSON.parse(line);
        if (event.event === "listen" && event.socket === "http") resolve(event.port);
      }
      buffered = buffered.slice(buffered.lastIndexOf("\n") + 1);
    });
    proc.once("exit", (code, signal) => reject(new Error(`workerd exited (${code ?? signal}): ${stderr}`)));
    proc.once("error", reject);
  });
}

before(async () => {
  child = spawn(workerdBin, ["serve", config, "--socket-addr", "http=127.0.0.1:0", "--control-fd", "3"], {
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  });
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const port = await listenedPort(child);
  base = `http://127.0.0.1:${port}`;
  // Listening is not the same as serving: poll until the Worker answers
  // (bounded; each attempt waits for a real response or refusal).
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(`${base}/health`);
      await res.arrayBuffer();
      // Any HTTP answer means the Worker is up; a broken one fails the tests.
      assert.equal(res.status, 404, `unexpected answer from the Worker: ${stderr}`);
      break;
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      if (attempt >= 250) throw new Error(`workerd never answered: ${err}; ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
});

after(async () => {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(child.pid, "SIGTERM");
  await exited;
});

async function validate(body) {
  const res = await fetch(`${base}/validate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, verdict: await res.json() };
}

const active = valid.find((v) => v.name === "active_basic");
const revoked = valid.find((v) => v.session.status === "revoked");

test("workerd accepts a valid active session and answers its session and key", async () => {
  const { status, verdict } = await validate({
    id: active.device_session_id,
    payload: active.payload,
    expect: { userId: active.session.user_id, clientPublicKey: active.session.client_public_key_b64 },
  });
  assert.equal(status, 200);
  assert.equal(verdict.valid, true);
  assert.equal(verdict.session.deviceSessionId, active.device_session_id);
  assert.equal(verdict.session.userId, active.session.user_id);
  assert.equal(verdict.session.status, "active");
  assert.equal(verdict.session.revocation, null);
  assert.equal(verdict.key, `authsession:session:${active.session_key_component}`);
  assert.equal(verdict.taggedKey, `authsession:session:{${active.user_key_component}}${active.session_key_component}`);
});

test("workerd accepts every active vector (non-ASCII ids included)", async () => {
  for (const v of valid.filter((v) => v.session.status === "active")) {
    const { status, verdict } = await validate({ id: v.device_session_id, payload: v.payload });
    assert.equal(status, 200, v.name);
    assert.equal(verdict.session.createdAt, v.session.created_at, v.name);
    assert.equal(verdict.taggedKey, `authsession:session:{${v.user_key_component}}${v.session_key_component}`, v.name);
  }
});

test("workerd refuses a revoked session", async () => {
  const { status, verdict } = await validate({ id: revoked.device_session_id, payload: revoked.payload });
  assert.equal(status, 403);
  assert.deepEqual([verdict.valid, verdict.kind], [false, "not_active"]);
});

test("workerd refuses corrupt records with the decoder's kind", async () => {
  const corrupt = [
    [active.payload.slice(0, -1), "malformed_json"],
    [active.payload.replace('"status":"active"', '"status":"ACTIVE"'), "invalid_status"],
    [active.payload.replace("}", ',"extra":1}'), "unknown_field"],
    [active.payload + "{}", "trailing_data"],
  ];
  for (const [payload, kind] of corrupt) {
    const { status, verdict } = await validate({ id: active.device_session_id, payload });
    assert.equal(status, 403, kind);
    assert.deepEqual([verdict.valid, verdict.kind], [false, kind]);
  }
});

test("workerd refuses a wrong user, a wrong key and a record under another id", async () => {
  let r = await validate({ id: active.device_session_id, payload: active.payload, expect: { userId: "mallory" } });
  assert.deepEqual([r.status, r.verdict.kind], [403, "user_mismatch"]);
  r = await validate({
    id: active.device_session_id,
    payload: active.payload,
    expect: { clientPublicKey: Buffer.alloc(32, 9).toString("base64") },
  });
  assert.deepEqual([r.status, r.verdict.kind], [403, "key_mismatch"]);
  r = await validate({ id: "dev-someone-else", payload: active.payload });
  assert.deepEqual([r.status, r.verdict.kind], [403, "id_mismatch"]);
});

test("workerd answers malformed requests with 400", async () => {
  let r = await validate("not json");
  assert.deepEqual([r.status, r.verdict.kind], [400, "invalid_argument"]);
  r = await validate({ id: active.device_session_id, payload: 12 });
  assert.deepEqual([r.status, r.verdict.kind], [400, "invalid_argument"]);
});
