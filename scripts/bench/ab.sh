#!/bin/bash
# A/B: two authsession binaries (OLD, NEW) alternating op by op on one
# running server (U, default redis://127.0.0.1:6392), concurrency 64.
O=${OLD:?OLD=path/to/old/authsession}; N=${NEW:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/authsession}
U=${U:-redis://127.0.0.1:6392}
ops="${OPS:-get count create list revoke revoke_all mixed contention}"
for r in $(seq ${ROUNDS:-2}); do
 for op in $ops; do
  extra=; [ $op = list ] && extra="--sessions-per-user 20"; [ $op = revoke_all ] && extra="--sessions-per-user 5"
  for tag in old new; do
   b=$O; [ $tag = new ] && b=$N
   $b --redis-url $U bench --op $op --concurrency 64 --duration ${DUR:-4} $extra 2>/dev/null | python3 -c "
import json,sys
d=json.loads(sys.stdin.read())
print('$r','$op','$tag', d['ops_per_sec'], d.get('client_cpu_us_per_op'), d.get('server_cpu_us_per_op'), sum(d['errors'].values()) if d['errors'] else 0, sep='\t')"
  done
 done
done
