#!/bin/bash
# revoke_all (K = 5) of this binary, of an older one (OLD, optional) and
# the Go adapter's command sequence (revoke_all_reference), alternating on
# one running server (U, default redis://127.0.0.1:6491), N rounds at
# concurrency C (default 1, the bench's default), D seconds each.
# Prints: concurrency, which, ops/s, p50 µs, client CPU µs/op, server CPU
# µs/op, errors.
N_BIN=${NEW:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/authsession}
U=${U:-redis://127.0.0.1:6491}
tags="new ref"; [ -n "$OLD" ] && tags="old new ref"
for i in $(seq ${N:-3}); do
 for tag in $tags; do
  b=$N_BIN; op=revoke_all
  [ $tag = old ] && b=$OLD
  [ $tag = ref ] && op=revoke_all_reference
  $b --redis-url $U bench --op $op --sessions-per-user 5 --concurrency ${C:-1} --duration ${D:-5} 2>/dev/null | python3 -c "
import json,sys
d=json.loads(sys.stdin.read())
print('c=${C:-1}','$tag', d['ops_per_sec'], d['p50_us'], d.get('client_cpu_us_per_op'), d.get('server_cpu_us_per_op'), sum(d['errors'].values()) if d['errors'] else 0, sep='\t')"
 done
done
