// build.sh's import check (scripts/check-imports.mjs) passes the built
// modules and fails a module that imports from `env`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../scripts/check-imports.mjs", import.meta.url));
const check = (path) => spawnSync(process.execPath, [script, path], { encoding: "utf8" });

test("the built modules import only wasm-bindgen glue", () => {
  for (const target of ["node", "web"]) {
    const run = check(fileURLToPath(new URL(`../pkg/${target}/authsession_wasm_bg.wasm`, import.meta.url)));
    assert.equal(run.status, 0, run.stderr);
  }
});

test("a module importing env.f is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "authsession-imports-"));
  try {
    // (module (import "env" "f" (func)))
    const bytes = Uint8Array.from([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
      0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
      0x02, 0x09, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x01, 0x66, 0x00, 0x00, // import "env" "f" func 0
    ]);
    const path = join(dir, "bad_bg.wasm");
    writeFileSync(path, bytes);
    const run = check(path);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /env\.f/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
