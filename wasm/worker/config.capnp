# workerd config for the end-to-end test (wasm/test/workerd.test.mjs):
# the validator Worker with the web package's glue and .wasm as modules.
# The socket's address is overridden at run time
# (`--socket-addr http=127.0.0.1:0`, the chosen port read from --control-fd).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "validator", worker = .validator) ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "validator") ],
);

const validator :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    (name = "authsession_wasm.js", esModule = embed "../pkg/web/authsession_wasm.js"),
    (name = "authsession_wasm_bg.wasm", wasm = embed "../pkg/web/authsession_wasm_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
);
