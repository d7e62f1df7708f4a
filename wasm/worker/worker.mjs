// A Worker (ES module) that validates a stored session record at the edge:
//   POST /validate  {"id": "...", "payload": "<record text>", "expect": {"userId"?, "clientPublicKey"?}}
// answers 200 {"valid": true, "session": {...}, "key": "<its Redis key>",
// "taggedKey": "<its key in the tagged layout>"} for a valid, active, matching
// session, and otherwise 403 {"valid": false, "kind", "error"} (400 for a
// malformed request). It imports the web package built by build.sh.
import { initSync, requireActiveSession, sessionKey, taggedSessionKey } from "./authsession_wasm.js";
// workerd hands a `wasm` module over as a compiled WebAssembly.Module.
import wasmModule from "./authsession_wasm_bg.wasm";

initSync({ module: wasmModule });

const SESSION_PREFIX = "authsession:session:";

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname !== "/validate") return Response.json({ error: "not found" }, { status: 404 });
    if (request.method !== "POST") return Response.json({ error: "use POST" }, { status: 405 });
    let body;
    try {
      body = await request.json();
    } catch {
      return Response.json({ valid: false, kind: "invalid_argument", error: "body must be JSON" }, { status: 400 });
    }
    const { id, payload, expect } = body ?? {};
    try {
      const session = requireActiveSession(id, payload, expect);
      // The reference layout's key depends on the id alone; the tagged
      // layout's (a cluster's) on the user too, here the session's own.
      const key = sessionKey(SESSION_PREFIX, id);
      const taggedKey = taggedSessionKey(SESSION_PREFIX, session.userId, id);
      return Response.json({ valid: true, session, key, taggedKey });
    } catch (err) {
      if (err?.name !== "AuthsessionError") throw err;
      const status = err.kind === "invalid_argument" ? 400 : 403;
      return Response.json({ valid: false, kind: err.kind, error: err.message }, { status });
    }
  },
};
