#!/bin/bash
# Ours against the Go adapter's command sequences (the `*_reference` ops),
# and optionally an older build (OLD=path/to/authsession), alternating op
# by op on one fresh server (port P, default 6491), N rounds (default 3)
# of D seconds (default 5) at concurrency C (default 64).
# Prints per run: op, which (new|old|ref), ops/s, p50 µs, client CPU
# µs/op, server CPU µs/op, errors; then per op the median ratios.
set -e
NEW=${NEW:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/authsession}
P=${P:-6491}; U=redis://127.0.0.1:$P
D=/tmp/bench/vs_go; rm -rf $D; mkdir -p $D
redis-server --port $P --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --pidfile $D/redis.pid --dir $D --logfile $D/redis.log
for i in $(seq 50); do redis-cli -p $P ping >/dev/null 2>&1 && break; sleep 0.1; done
trap 'redis-cli -p $P shutdown nosave >/dev/null 2>&1 || kill $(cat $D/redis.pid)' EXIT
tags="new ref"; [ -n "$OLD" ] && tags="old new ref"
for r in $(seq ${N:-3}); do
 for op in ${OPS:-get create list revoke revoke_all}; do
  extra=; [ $op = list ] && extra="--sessions-per-user 20"; [ $op = revoke_all ] && extra="--sessions-per-user 5"
  for tag in $tags; do
   b=$NEW; o=$op
   [ $tag = old ] && b=$OLD
   [ $tag = ref ] && o=${op}_reference
   $b --redis-url $U bench --op $o --concurrency ${C:-64} --duration ${DUR:-5} $extra 2>/dev/null | python3 -c "
import json,sys
d=json.loads(sys.stdin.read())
print('$op','$tag', d['ops_per_sec'], d['p50_us'], d.get('client_cpu_us_per_op'), d.get('server_cpu_us_per_op'), sum(d['errors'].values()) if d['errors'] else 0, sep='\t')"
  done
 done
done | tee $D/runs.tsv
python3 - $D/runs.tsv <<'PY'
import sys, statistics, collections
ops, cpu = collections.defaultdict(list), collections.defaultdict(list)
for line in open(sys.argv[1]):
    op, tag, rate, _, client, server, _ = line.rstrip('\n').split('\t')
    ops[(op, tag)].append(float(rate))
    if client != 'None' and server != 'None':
        cpu[(op, tag)].append(float(client) + float(server))
# Throughput moves with whatever else the machine runs; CPU per op
# (client + server) much less, so both are printed (medians).
for op in dict.fromkeys(k[0] for k in ops):
    med = {t: statistics.median(v) for (o, t), v in ops.items() if o == op}
    c = {t: statistics.median(v) for (o, t), v in cpu.items() if o == op}
    cols = [op, f"ops new/ref {med['new'] / med['ref']:.2f}"]
    if 'old' in med:
        cols.append(f"new/old {med['new'] / med['old']:.2f}")
    cols.append("cpu us/op " + " ".join(f"{t} {c[t]:.1f}" for t in c))
    print('\t'.join(cols))
PY
