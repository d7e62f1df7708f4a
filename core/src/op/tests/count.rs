//! `count`: one read of the active index, and a wrong type named.

use super::*;

#[test]
fn count_reads_the_active_index() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    ten_sessions(&mut kv, &keys);
    revoke(&mut kv, &keys, "s3", t(20, 0));
    let (count, trace) = run_traced(&mut kv, Count::new(&keys, &user("user-1")));
    assert_eq!(count.unwrap(), 10);
    assert_eq!(
        trace,
        Trace {
            reads: 1,
            applies: 0
        }
    );
    kv.set_raw(keys.user_active_sessions_key(&user("user-1")), "x");
    assert_eq!(
        run(&mut kv, Count::new(&keys, &user("user-1")), 1)
            .unwrap_err()
            .kind(),
        "wrong_type"
    );
}
