// Records decoded per second by the nodejs package, and the .wasm's size.
// Usage (after wasm/build.sh): node wasm/bench/decode.mjs [seconds-per-case]
// Prints one JSON line per measurement. A benchmark, not a test: no
// assertion on speed here.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const wasm = require("../pkg/node/authsession_wasm.js");
const seconds = Number(process.argv[2] ?? 2);

const valid = JSON.parse(readFileSync(new URL("../../core/tests/data/valid.json", import.meta.url), "utf8")).cases;
const pick = (name) => valid.find((v) => v.name === name);
const active = pick("active_basic");
const revoked = valid.find((v) => v.session.status === "revoked" && v.session.revocation.actor_id !== "");

for (const target of ["node", "web"]) {
  const bytes = readFileSync(new URL(`../pkg/${target}/authsession_wasm_bg.wasm`, import.meta.url));
  console.log(JSON.stringify({ wasm: `pkg/${target}/authsession_wasm_bg.wasm`, raw_bytes: bytes.length, gzip9_bytes: gzipSync(bytes, { level: 9 }).length }));
}

function measure(label, payloadBytes, fn) {
  // Warm up (JIT, allocator) before timing.
  for (let i = 0; i < 20_000; i++) fn();
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  let count = 0;
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 1000; i++) fn();
    count += 1000;
    now = process.hrtime.bigint();
  }
  const elapsed = Number(now - start) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  // CPU seconds of this process (all its threads, GC included): on a
  // shared, busy machine this is the steadier figure; wall time is what
  // one otherwise idle core delivers.
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  console.log(
    JSON.stringify({
      op: label,
      payload_bytes: payloadBytes,
      records: count,
      seconds: +elapsed.toFixed(3),
      per_sec: Math.round(count / elapsed),
      cpu_seconds: +cpuSeconds.toFixed(3),
      per_cpu_sec: Math.round(count / cpuSeconds),
      ns_per_record: Math.round((elapsed * 1e9) / count),
    }),
  );
}

const activeBytes = new Uint8Array(Buffer.from(active.payload_b64, "base64"));
const revokedBytes = new Uint8Array(Buffer.from(revoked.payload_b64, "base64"));
const session = wasm.decodeSessionRecord(active.device_session_id, active.payload);

measure("decodeSessionRecord(string) active", activeBytes.length, () => wasm.decodeSessionRecord(active.device_session_id, active.payload));
measure("decodeSessionRecord(Uint8Array) active", activeBytes.length, () => wasm.decodeSessionRecord(active.device_session_id, activeBytes));
measure("decodeSessionRecord(string) revoked", revokedBytes.length, () => wasm.decodeSessionRecord(revoked.device_session_id, revoked.payload));
measure("requireActiveSession(string, expect) active", activeBytes.length, () =>
  wasm.requireActiveSession(active.device_session_id, active.payload, { userId: active.session.user_id, clientPublicKey: active.session.client_public_key_b64 }),
);
measure("encodeSessionRecord active", activeBytes.length, () => wasm.encodeSessionRecord(session));
