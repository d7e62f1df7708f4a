//! Core bugs the fuzz targets found, each as a test of the behaviour the
//! core should have: ignored while open (the targets avoid the inputs that
//! reach them, so fuzzing can go on meanwhile), run as plain tests once
//! fixed. See `fuzz/regressions/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authsession_core::model::MemoryKv;
use authsession_core::op::{self, BatchSize, Create, OnLimit, Policy, SessionLimit};
use authsession_core::{ClientPublicKey, DeviceSessionId, KeySpace, Session, Timestamp, UserId};

/// `revoke-oldest` with "now" at Go's zero time: the eviction's revocation
/// (at the later of the old session's creation and now) is the zero time,
/// which no revocation may carry; `Create` skipped that eviction but still
/// applied the plan, so the user ended up above the limit. Fixed: the
/// eviction is revoked one nanosecond after the zero time.
#[test]
fn revoke_oldest_with_now_at_go_zero_time_keeps_the_limit() {
    let keys = KeySpace::default();
    let policy = Policy {
        session_limit: SessionLimit::new(1, OnLimit::RevokeOldest),
        batch_size: BatchSize::new(2).unwrap(),
        ..Policy::default()
    };
    let go_zero = Timestamp::parse("0001-01-01T00:00:00Z").unwrap();
    let earlier = Timestamp::parse("0000-12-31T23:59:59.999999Z").unwrap();
    let user = UserId::parse("u").unwrap();
    let session = |id: &str| {
        Session::active(
            DeviceSessionId::parse(id).unwrap(),
            user.clone(),
            ClientPublicKey::from([1; 32]),
            earlier,
        )
        .unwrap()
    };
    let mut kv = MemoryKv::new();
    op::run(
        &mut kv,
        Create::new(&keys, policy, go_zero, session("old")),
        4,
    )
    .unwrap();
    let second = op::run(
        &mut kv,
        Create::new(&keys, policy, go_zero, session("new")),
        4,
    );
    let active = kv.index_len(&keys.user_active_sessions_key(&user));
    assert!(
        active <= 1,
        "{active} active sessions with a limit of 1 (create returned {second:?})"
    );
}
