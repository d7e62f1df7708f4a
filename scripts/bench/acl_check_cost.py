#!/usr/bin/env python3
"""What the apply script's ACL pre-check (redis.acl_check_cmd, Redis 7.0+
and Valkey) costs per call.

Runs two plans — a revoke (one record's bytes checked, MSET of the revoked
record, ZREM from the active index, ZADD to the revoked index) and
lua_cost.py's revoke-all batch of five — with the apply script as it is
and with its pre-check turned off, interleaved over ROUNDS rounds of
CALLS calls each, restoring the keys before every call. Prints Redis's own
EVALSHA time per call (INFO commandstats usec_per_call): median and
minimum over the rounds (a shared machine makes single rounds noisy).

    redis-server --port 6491 --save "" --appendonly no --daemonize yes
    python3 scripts/bench/acl_check_cost.py 6491

Python standard library only.
"""
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
import lua_cost  # noqa: E402

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 6491
CALLS = int(os.environ.get("CALLS", "10000"))
ROUNDS = int(os.environ.get("ROUNDS", "8"))

SOURCE = open(lua_cost.SCRIPT).read()
UNCHECKED = SOURCE.replace("\nif redis.acl_check_cmd then\n", "\nif false then\n")
assert UNCHECKED != SOURCE, "the script's pre-check block was not found"

REC = b"authsession:aclcost:session:czE"
ACT = b"authsession:aclcost:user_active_sessions:dQ"
REV = b"authsession:aclcost:user_revoked_sessions:dQ"
OLD = b"{" + b"a" * 200 + b"}"
NEW = b"{" + b"r" * 328 + b"}"
REVOKE = (
    [REC, ACT, REV],
    # type table, ValueEquals on the record, then the writes in fail-safe
    # order: the record, out of the active index, into the revoked one.
    [b"3", b"1", b"s", b"2", b"z", b"3", b"z", b"1", b"V", b"1", OLD,
     b"M", b"1", b"1", NEW, b"X", b"2", b"1", b"s1",
     b"Z", b"3", b"1", b"1796133365555103", b"s1"],
    [["DEL", REC, ACT, REV], ["SET", REC, OLD], ["ZADD", ACT, b"1796133365021558", b"s1"]],
)
BATCH = (
    lua_cost.KEYS,
    lua_cost.ARGV,
    [["DEL"] + lua_cost.KEYS,
     ["ZADD", lua_cost.ACTIVE] + sum(([b"1796133365021558", m] for m in lua_cost.MEMBERS), [])],
)


def main():
    conn = lua_cost.Conn(PORT)
    scripts = {"checked": SOURCE, "unchecked": UNCHECKED}
    shas = {name: conn.run(["SCRIPT", "LOAD", src])[0] for name, src in scripts.items()}
    for plan_name, (keys, argv, restore) in (("revoke", REVOKE), ("revoke-all batch of 5", BATCH)):
        times = {name: [] for name in scripts}
        for _ in range(ROUNDS):
            for name, sha in shas.items():
                conn.run(["CONFIG", "RESETSTAT"])
                for _ in range(CALLS):
                    result = conn.run(*restore, ["EVALSHA", sha, len(keys)] + keys + argv)[-1]
                    if result != b"0":
                        raise SystemExit(f"{plan_name}/{name}: the script answered {result!r}")
                stats = conn.run(["INFO", "commandstats"])[0].decode()
                per_call = re.search(r"cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)", stats)
                times[name].append(float(per_call.group(1)))
        conn.run(restore[0])
        line = ", ".join(
            f"{name} median {statistics.median(t):.1f} µs (min {min(t):.1f})" for name, t in times.items()
        )
        print(f"{plan_name}: {line}")


if __name__ == "__main__":
    main()
