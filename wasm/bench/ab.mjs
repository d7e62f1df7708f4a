// Interleaved A/B of nodejs packages in one process, so each sees the same
// machine load: node wasm/bench/ab.mjs ROUNDS PKG_DIR... (e.g. a copy of an
// older wasm/pkg/node, then wasm/pkg/node). Prints the median CPU ns per
// call of each case, per package. A benchmark, not a test: no assertion on
// speed here.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(import.meta.url);
const [rounds = "7", ...dirs] = process.argv.slice(2);
const valid = JSON.parse(readFileSync(new URL("../../core/tests/data/valid.json", import.meta.url), "utf8")).cases;
const active = valid.find((v) => v.name === "active_basic");
const revoked = valid.find((v) => v.session.status === "revoked" && v.session.revocation.actor_id !== "");
const bytes = new Uint8Array(Buffer.from(active.payload_b64, "base64"));
const id = active.device_session_id;
const expect = { userId: active.session.user_id, clientPublicKey: active.session.client_public_key_b64 };
const mods = dirs.map((d) => require(resolve(d, "authsession_wasm.js")));
const session = mods[0].decodeSessionRecord(id, active.payload);
const cases = {
  string: (w) => w.decodeSessionRecord(id, active.payload),
  bytes: (w) => w.decodeSessionRecord(id, bytes),
  revoked: (w) => w.decodeSessionRecord(revoked.device_session_id, revoked.payload),
  require: (w) => w.requireActiveSession(id, active.payload),
  requireExpect: (w) => w.requireActiveSession(id, active.payload, expect),
  encode: (w) => w.encodeSessionRecord(session),
};
const N = 100_000;
const res = dirs.map(() => Object.fromEntries(Object.keys(cases).map((c) => [c, []])));
// Warm up (JIT, allocator) before timing.
for (const w of mods) for (const f of Object.values(cases)) for (let i = 0; i < 20_000; i++) f(w);
for (let r = 0; r < Number(rounds); r++)
  for (const [c, f] of Object.entries(cases))
    for (let m = 0; m < mods.length; m++) {
      const w = mods[m];
      const cpu = process.cpuUsage();
      for (let i = 0; i < N; i++) f(w);
      const d = process.cpuUsage(cpu);
      res[m][c].push(((d.user + d.system) * 1000) / N);
    }
const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];
dirs.forEach((d, m) => {
  const size = readFileSync(resolve(d, "authsession_wasm_bg.wasm")).length;
  const cols = Object.entries(res[m]).map(([c, a]) => `${c} ${median(a).toFixed(0)} ns`);
  console.log(JSON.stringify(d), `${size} B`, cols.join("  "));
});
