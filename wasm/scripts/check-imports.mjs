// Fails unless the given .wasm imports nothing but wasm-bindgen's JS glue:
// no `env` (libc / unresolved symbols), no WASI, nothing else a worker would
// have to provide. Usage: node check-imports.mjs path/to/x_bg.wasm
import { readFileSync } from "node:fs";
import { basename } from "node:path";

const path = process.argv[2];
if (!path) {
  console.error("usage: node check-imports.mjs FILE.wasm");
  process.exit(2);
}
const module = new WebAssembly.Module(readFileSync(path));
const glue = `./${basename(path, ".wasm")}.js`;
const imports = WebAssembly.Module.imports(module);
const foreign = imports.filter(
  (i) => i.module !== glue || !/^__wbg|^__wbindgen/.test(i.name),
);
if (foreign.length > 0) {
  console.error(`${path}: imports outside wasm-bindgen's glue (${glue}):`);
  for (const i of foreign) console.error(`  ${i.module}.${i.name} (${i.kind})`);
  process.exit(1);
}
console.log(`${path}: ${imports.length} imports, all from ${glue}`);
