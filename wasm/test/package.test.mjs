// The publishable package: `npm pack` ships both builds, their types and the
// README, and the package.json `exports` resolve for require, import and the
// ./web entry. Unpacked into a temporary node_modules (no registry needed).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const wasmDir = fileURLToPath(new URL("..", import.meta.url));
let dir;
let packed;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "authsession-wasm-pack-"));
  const out = execFileSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: wasmDir, encoding: "utf8" });
  packed = JSON.parse(out)[0];
  const target = join(dir, "node_modules", "@authsession", "wasm");
  mkdirSync(target, { recursive: true });
  execFileSync("tar", ["-xzf", join(dir, packed.filename), "-C", target, "--strip-components=1"]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

const node = (args) => execFileSync(process.execPath, args, { cwd: dir, encoding: "utf8" }).trim();

test("npm pack ships both builds with types, and nothing from the sources", () => {
  const files = packed.files.map((f) => f.path).sort();
  for (const target of ["node", "web"]) {
    for (const file of ["authsession_wasm.js", "authsession_wasm.d.ts", "authsession_wasm_bg.wasm", "package.json"]) {
      assert.ok(files.includes(`pkg/${target}/${file}`), `pkg/${target}/${file} in ${files}`);
    }
  }
  assert.ok(files.includes("README.md"));
  assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/") || f.startsWith("node_modules/")), files.join(" "));
});

test("require and import resolve to the nodejs build", () => {
  assert.equal(node(["-e", 'console.log(require("@authsession/wasm").sessionKey("p:", "dev-1"))']), "p:ZGV2LTE");
  assert.equal(
    node(["--input-type=module", "-e", 'import { userSessionsKey } from "@authsession/wasm"; console.log(userSessionsKey("u:", "user-1"))']),
    "u:dXNlci0x",
  );
});

test("the ./web entry initialises from the shipped module with initSync", () => {
  const script = `
    import { readFileSync } from "node:fs";
    import { createRequire } from "node:module";
    import { initSync, sessionKey } from "@authsession/wasm/web";
    const require = createRequire(import.meta.url);
    const bytes = readFileSync(require.resolve("@authsession/wasm/authsession_wasm_bg.wasm"));
    initSync({ module: new WebAssembly.Module(bytes) });
    console.log(sessionKey("s:", "dev-1"));`;
  assert.equal(node(["--input-type=module", "-e", script]), "s:ZGV2LTE");
});

test("package.json names its types and version", () => {
  const pkg = JSON.parse(readFileSync(join(dir, "node_modules/@authsession/wasm/package.json"), "utf8"));
  assert.equal(pkg.name, "@authsession/wasm");
  assert.match(pkg.version, /^\d+\.\d+\.\d+$/);
  assert.equal(pkg.types, "./pkg/node/authsession_wasm.d.ts");
  assert.equal(pkg.exports["./web"].types, "./pkg/web/authsession_wasm.d.ts");
});
