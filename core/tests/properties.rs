//! Property tests: codec round trips, fixed points and key injectivity.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use authsession_core::{
    decode, encode, ClientPublicKey, DeviceSessionId, Index, KeySpace, Revocation, RevokeActorId,
    RevokeActorType, RevokeReasonCode, Session, Timestamp, UserId,
};
use proptest::prelude::*;

/// Free text biased toward the characters the codec treats specially.
fn text(max_chars: usize) -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '<', '>', '&', '"', '\\', '/', '\u{2028}', '\u{2029}', ' ', '\u{a0}', 'é', '日', '😀',
        '\u{ffff}', '\u{fffd}', '\u{feff}', '\u{3000}',
    ]);
    let ch = prop_oneof![3 => any::<char>(), 2 => special, 3 => prop::char::range('a', 'z')];
    // Controls are dropped here rather than rejected by a filter: proptest
    // favours them, and rejecting whole strings would make generation slow.
    prop::collection::vec(ch, 0..max_chars)
        .prop_map(|chars| chars.into_iter().filter(|c| !c.is_control()).collect())
}

fn id() -> impl Strategy<Value = DeviceSessionId> {
    text(80).prop_filter_map("invalid id", |t| DeviceSessionId::parse(t.trim()).ok())
}

fn user() -> impl Strategy<Value = UserId> {
    text(80).prop_filter_map("invalid user", |t| UserId::parse(t.trim()).ok())
}

fn code(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z][a-z0-9_]{{0,{}}}", max - 1)).unwrap()
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    // Years 0000..=9999, nanosecond precision.
    (-62_167_219_200_000_000_000i128..=253_402_300_799_999_999_999i128)
        .prop_filter_map("out of range", |n| Timestamp::from_unix_nanos(n).ok())
}

prop_compose! {
    fn revocation_after(created: Timestamp)(
        delta in prop_oneof![Just(0i128), 0i128..1_000_000_000_000_000i128],
        reason in code(64),
        actor in code(32),
        actor_id in text(40),
    ) -> Option<Revocation> {
        let at = created.checked_add_nanos(delta).ok()?;
        let actor_id = RevokeActorId::parse(actor_id.trim()).ok()?;
        Revocation::new(at, RevokeReasonCode::parse(reason).ok()?, RevokeActorType::parse(actor).ok()?, actor_id).ok()
    }
}

fn session() -> impl Strategy<Value = Session> {
    (id(), user(), any::<[u8; 32]>(), timestamp(), any::<bool>())
        .prop_filter_map("zero time", |(id, user, key, created, revoked)| {
            Session::active(id, user, ClientPublicKey::from(key), created)
                .ok()
                .map(|s| (s, revoked))
        })
        .prop_flat_map(|(s, revoked)| {
            let created = s.created_at();
            (
                Just(s),
                if revoked {
                    revocation_after(created).boxed()
                } else {
                    Just(None).boxed()
                },
            )
        })
        .prop_map(|(s, revocation)| match revocation {
            Some(r) => s.revoked(r).unwrap(),
            None => s,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(s in session()) {
        let bytes = encode(&s);
        prop_assert_eq!(decode(s.id(), &bytes).unwrap(), s);
        let text = std::str::from_utf8(&bytes).unwrap();
        for raw in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
            prop_assert!(!text.contains(raw));
        }
    }

    #[test]
    fn decode_then_encode_is_a_fixed_point(s in session(), pretty in any::<bool>()) {
        // Any JSON-equivalent spelling decodes to the same session and
        // re-encodes to the canonical bytes.
        let canonical = encode(&s);
        let value: serde_json::Value = serde_json::from_slice(&canonical).unwrap();
        let respelled = if pretty { serde_json::to_vec_pretty(&value).unwrap() } else { serde_json::to_vec(&value).unwrap() };
        let decoded = decode(s.id(), &respelled).unwrap();
        prop_assert_eq!(encode(&decoded), canonical);
    }

    #[test]
    fn session_serde_round_trip(s in session()) {
        let json = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), s);
    }

    #[test]
    fn decode_with_another_id_is_id_mismatch(s in session(), other in id()) {
        prop_assume!(&other != s.id());
        prop_assert_eq!(decode(&other, &encode(&s)).unwrap_err().kind(), "id_mismatch");
    }

    #[test]
    fn key_derivation_is_injective(a in id(), b in id(), u in user(), v in user()) {
        let keys = KeySpace::default();
        prop_assert_eq!(a == b, keys.reference_record_key(&a) == keys.reference_record_key(&b));
        prop_assert_eq!(u == v, keys.user_sessions_key(&u) == keys.user_sessions_key(&v));
        prop_assert_eq!(u == v, keys.user_active_sessions_key(&u) == keys.user_active_sessions_key(&v));
        // Kinds never collide, and every key parses back to what made it.
        prop_assert_ne!(keys.reference_record_key(&a), keys.user_sessions_key(&u));
        prop_assert_ne!(keys.user_sessions_key(&u), keys.user_active_sessions_key(&u));
        prop_assert_eq!(keys.parse_reference_record_key(&keys.reference_record_key(&a)), Some(a));
        prop_assert_eq!(keys.parse_index_key(Index::Active, &keys.user_active_sessions_key(&u)), Some(u));
    }

    #[test]
    fn timestamps_round_trip_through_text(t in timestamp()) {
        prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), s in session()) {
        let _ = decode(s.id(), &bytes);
        // Mutations of a valid record: either rejected or still valid.
        let mut mutated = encode(&s);
        if !mutated.is_empty() && !bytes.is_empty() {
            let at = usize::from(bytes[0]) * mutated.len() / 256;
            mutated[at] = bytes[bytes.len() - 1];
        }
        if let Ok(back) = decode(s.id(), &mutated) {
            prop_assert_eq!(decode(s.id(), &encode(&back)).unwrap(), back);
        }
    }
}
