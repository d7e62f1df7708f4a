#!/bin/bash
# The Driver table loop of BENCHMARKS.md on a fresh server (port 6393):
# one redis-benchmark GET run just before each op. B=path/to/authsession
# (default: the release build of this checkout).
set -e
D=/tmp/bench/srv; rm -rf $D; mkdir -p $D
redis-server --port 6393 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --pidfile $D/redis.pid --dir $D --logfile $D/redis.log
for i in $(seq 50); do redis-cli -p 6393 ping >/dev/null 2>&1 && break; sleep 0.1; done
U=redis://127.0.0.1:6393; B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/authsession}
for c in 64; do
  for op in get count create list revoke revoke_all mixed; do
    extra=; [ $op = list ] && extra="--sessions-per-user 20"; [ $op = revoke_all ] && extra="--sessions-per-user 5"
    rb=$(redis-benchmark -p 6393 -t get -c 64 -n 300000 -q | tr '\r' '\n' | grep -o "[0-9.]* requests per second" | tail -1 | cut -d' ' -f1)
    $B --redis-url $U bench --op $op --concurrency $c --duration 5 $extra | python3 -c "
import json,sys
d=json.loads(sys.stdin.read()); rb=float('$rb')
print('$op', $c, d['ops_per_sec'], d['p50_us'], d['p99_us'], sum(d['errors'].values()), d['client_cpu_us_per_op'], rb, round(d['ops_per_sec']/rb,2), sep='\t')"
  done
done
rb=$(redis-benchmark -p 6393 -t get -c 64 -n 300000 -q | tr '\r' '\n' | grep -o "[0-9.]* requests per second" | tail -1 | cut -d' ' -f1)
$B --redis-url $U bench --op contention --concurrency 64 --duration 5 | python3 -c "
import json,sys
d=json.loads(sys.stdin.read()); rb=float('$rb')
print('contention', 64, d['ops_per_sec'], d['p50_us'], d['p99_us'], sum(d['errors'].values()), d['client_cpu_us_per_op'], rb, round(d['ops_per_sec']/rb,2), sep='\t')"
redis-cli -p 6393 shutdown nosave >/dev/null 2>&1 || kill $(cat $D/redis.pid)
