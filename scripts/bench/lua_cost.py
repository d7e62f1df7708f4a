#!/usr/bin/env python3
"""What one revoke-all script call costs Redis, and where it goes.

Runs the apply script on the plan a revoke-all of five sessions sends
(type check of the active index, its range unchanged, ZREM of the five
members, MSET of five revoked records of 330 bytes), restoring the keys
before each call, then the same call with variants of the script: the
bare call (`return 0`, same arguments) and its four commands written out
by hand. Prints Redis's own execution time per call (INFO commandstats,
usec_per_call) and the inner commands' times.

    redis-server --port 6491 --save "" --appendonly no --daemonize yes
    python3 scripts/bench/lua_cost.py 6491

Python standard library only; the server should be otherwise idle.
"""
import os
import re
import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 6491
CALLS = int(os.environ.get("CALLS", "3000"))
SCRIPT = os.path.join(os.path.dirname(__file__), "../../driver/src/backend/apply_plan.lua")


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def reply(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            return [self.reply() for _ in range(max(int(rest), 0))]
        raise RuntimeError(line)

    def run(self, *commands):
        self.sock.sendall(b"".join(encode(c) for c in commands))
        return [self.reply() for _ in commands]


BASE = b"authsession:luacost:"
ACTIVE = BASE + b"user_active_sessions:dXNlci0x"
MEMBERS = [b"r0-u128-s%d" % i for i in range(5)]
RECORDS = [BASE + b"session:" + m for m in MEMBERS]
KEYS = [ACTIVE] + RECORDS
MAX_SCORE = b"1796133365555103"
VALUE = b"{" + b"x" * 328 + b"}"
# The plan's encoding (driver/src/backend/script.rs): type table, one
# range-equality precondition, then the grouped writes in fail-safe order
# (the revoked records, then their removal from the active index).
ARGV = (
    [b"1", b"1", b"z", b"1", b"R", b"1", MAX_SCORE, b"5"]
    + MEMBERS
    + [b"M", b"5"]
    + sum(([str(i + 2).encode(), VALUE] for i in range(5)), [])
    + [b"X", b"1", b"5"]
    + MEMBERS
)
BY_HAND = """
redis.call('TYPE', KEYS[1])
redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[7], 'LIMIT', 0, 6)
redis.call('MSET', KEYS[2], ARGV[17], KEYS[3], ARGV[19], KEYS[4], ARGV[21],
  KEYS[5], ARGV[23], KEYS[6], ARGV[25])
redis.call('ZREM', KEYS[1], ARGV[29], ARGV[30], ARGV[31], ARGV[32], ARGV[33])
return 0
"""


def main():
    conn = Conn(PORT)
    variants = [
        ("apply_plan.lua", open(SCRIPT).read()),
        ("return 0 (same arguments)", "return 0"),
        ("the four calls by hand", BY_HAND),
    ]
    # More scripts to compare (paths, colon-separated), e.g. a candidate
    # rewrite of the apply script.
    for path in filter(None, os.environ.get("LUA_VARIANTS", "").split(":")):
        variants.append((path, open(path).read()))
    restore = [
        ["DEL"] + KEYS,
        ["ZADD", ACTIVE] + sum(([b"1796133365021558", m] for m in MEMBERS), []),
    ]
    for name, source in variants:
        sha = conn.run(["SCRIPT", "LOAD", source])[0]
        conn.run(["CONFIG", "RESETSTAT"])
        for _ in range(CALLS):
            result = conn.run(*restore, ["EVALSHA", sha, len(KEYS)] + KEYS + ARGV)[-1]
            if result != b"0":
                raise SystemExit(f"{name}: the script answered {result!r}")
        stats = conn.run(["INFO", "commandstats"])[0].decode()
        per_call = dict(re.findall(r"cmdstat_([\w|]+):calls=\d+,usec=\d+,usec_per_call=([\d.]+)", stats))
        inner = {c: per_call[c] for c in ("type", "zrangebyscore", "zrem", "mset") if c in per_call}
        print(f"{name}: EVALSHA {per_call['evalsha']} µs/call; inside: {inner}")
    conn.run(["DEL"] + KEYS)


if __name__ == "__main__":
    main()
