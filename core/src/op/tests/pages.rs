//! Pages: they concatenate to `list`, order ties exactly, bound their round
//! trips, and carry a cursor that rejects garbage.

use super::*;

/// 23 sessions of user-1, many sharing a microsecond (different
/// nanoseconds, or the same instant with different ids), some revoked.
fn tied_sessions(kv: &mut MemoryKv, keys: &KeySpace) {
    let mut n = 0;
    for micro in 0..5i64 {
        for (id_text, nanos) in [("m", 0), ("a", 300), ("z", 300), ("b", 999), ("é", 0)] {
            if micro == 3 && id_text == "é" {
                continue;
            }
            let s = session(
                &format!("{id_text}{micro}"),
                "user-1",
                t(0, micro * 1000 + nanos),
            );
            create(kv, keys, &s);
            n += 1;
        }
    }
    for i in 0..4 {
        create(
            kv,
            keys,
            &session(&format!("solo{i}"), "user-1", t(10 + i, 0)),
        );
        n += 1;
    }
    create(kv, keys, &session("other", "user-2", t(5, 0)));
    assert_eq!(n, 28);
    for revoked in ["a1", "z1", "m4", "solo2"] {
        revoke(kv, keys, revoked, t(20, 0));
    }
}

#[test]
fn pages_concatenate_to_list() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        tied_sessions(&mut kv, &keys);
        let list = run(
            &mut kv,
            List::new(&keys, Policy::default(), t(0, 0), user("user-1")),
            1,
        )
        .unwrap();
        assert_eq!(list.len(), 28);
        let active: Vec<Session> = list.iter().filter(|s| s.is_active()).cloned().collect();
        assert_eq!(active.len(), 24);
        for limit in [1, 2, 3, 4, 5, 6, 7, 10, 27, 28, 29, 50] {
            let walked = walk(
                &mut kv,
                &keys,
                Policy::default(),
                t(0, 0),
                "user-1",
                limit,
                StatusFilter::All,
            );
            assert_eq!(walked, list, "limit {limit}");
            let walked = walk(
                &mut kv,
                &keys,
                Policy::default(),
                t(0, 0),
                "user-1",
                limit,
                StatusFilter::Active,
            );
            assert_eq!(walked, active, "active, limit {limit}");
        }
    }
}

#[test]
fn pages_order_ties_within_a_microsecond_by_nanoseconds_then_id_bytes() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    for (id_text, nanos) in [("b", 100), ("a", 100), ("c", 900), ("Z", 100), ("d", 0)] {
        create(&mut kv, &keys, &session(id_text, "user-1", t(0, nanos)));
    }
    // One microsecond score, one group: c (900 ns), then Z, a, b (100 ns,
    // id bytes), then d (0 ns) — not the index's id order.
    for limit in 1..=5 {
        let walked = walk(
            &mut kv,
            &keys,
            Policy::default(),
            t(0, 0),
            "user-1",
            limit,
            StatusFilter::All,
        );
        assert_eq!(ids(&walked), ["c", "Z", "a", "b", "d"], "limit {limit}");
    }
}

#[test]
fn pages_cross_a_score_group_larger_than_the_limit() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    create(&mut kv, &keys, &session("newest", "user-1", t(1, 0)));
    for i in 0..12 {
        create(
            &mut kv,
            &keys,
            &session(&format!("g{i:02}"), "user-1", t(0, 500 + (i % 3))),
        );
    }
    create(&mut kv, &keys, &session("oldest", "user-1", t(-1, 0)));
    let list = run(
        &mut kv,
        List::new(&keys, Policy::default(), t(0, 0), user("user-1")),
        1,
    )
    .unwrap();
    for limit in [1, 2, 5, 11, 12, 13] {
        let walked = walk(
            &mut kv,
            &keys,
            Policy::default(),
            t(0, 0),
            "user-1",
            limit,
            StatusFilter::All,
        );
        assert_eq!(walked, list, "limit {limit}");
    }
    // The first page of 5 stops before the group (it cannot be cut in
    // index order); the next one is five of the group, in list order.
    let request = |cursor| PageRequest {
        limit: PageLimit::new(5).unwrap(),
        cursor,
        status: StatusFilter::All,
    };
    let (first, _) = page(
        &mut kv,
        &keys,
        Policy::default(),
        t(0, 0),
        "user-1",
        request(None),
    )
    .unwrap();
    assert_eq!(ids(&first.sessions), ["newest"]);
    let (second, _) = page(
        &mut kv,
        &keys,
        Policy::default(),
        t(0, 0),
        "user-1",
        request(first.next_cursor),
    )
    .unwrap();
    assert_eq!(second.sessions, list[1..6]);
}

#[test]
fn pages_take_at_most_two_round_trips_without_oversized_groups() {
    let keys = KeySpace::default();
    // Distinct microseconds, then pairs sharing one.
    for (pairs, limits) in [(false, &[1usize, 2, 3, 7][..]), (true, &[2, 3, 7][..])] {
        let mut kv = MemoryKv::new();
        for i in 0..40i64 {
            let created = if pairs { t(i / 2, i % 2) } else { t(i, 0) };
            create(
                &mut kv,
                &keys,
                &session(&format!("s{i:02}"), "user-1", created),
            );
        }
        let list = run(
            &mut kv,
            List::new(&keys, Policy::default(), t(0, 0), user("user-1")),
            1,
        )
        .unwrap();
        for &limit in limits {
            let mut cursor = None;
            let mut walked = Vec::new();
            let mut pages = 0;
            loop {
                let request = PageRequest {
                    limit: PageLimit::new(limit).unwrap(),
                    cursor,
                    status: StatusFilter::All,
                };
                let (p, trace) = page(
                    &mut kv,
                    &keys,
                    Policy::default(),
                    t(0, 0),
                    "user-1",
                    request,
                )
                .unwrap();
                assert!(trace.reads <= 2, "pairs {pairs}, limit {limit}: {trace:?}");
                assert_eq!(trace.applies, 0);
                pages += 1;
                walked.extend(p.sessions);
                match p.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(walked, list);
            // Full pages, except where a pair would be cut.
            assert!(
                pages <= 40 / (limit - usize::from(pairs)) + 1,
                "{pages} pages of {limit}"
            );
        }
    }
}

#[test]
fn page_cursor_round_trips_as_text_and_json() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    tied_sessions(&mut kv, &keys);
    let request = PageRequest {
        limit: PageLimit::new(3).unwrap(),
        ..PageRequest::default()
    };
    let (first, _) = page(
        &mut kv,
        &keys,
        Policy::default(),
        t(0, 0),
        "user-1",
        request,
    )
    .unwrap();
    let cursor = first.next_cursor.unwrap();
    let text = cursor.to_string();
    assert_eq!(text, cursor.as_str());
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(PageCursor::parse(&text).unwrap(), cursor);
    let json = serde_json::to_string(&cursor).unwrap();
    assert_eq!(json, format!("\"{text}\""));
    assert_eq!(serde_json::from_str::<PageCursor>(&json).unwrap(), cursor);
    assert!(serde_json::from_str::<PageCursor>("\"!!\"").is_err());
    // The same position again gives the same next page.
    let next = |kv: &mut MemoryKv, c: PageCursor| {
        page(
            kv,
            &keys,
            Policy::default(),
            t(0, 0),
            "user-1",
            PageRequest {
                limit: PageLimit::new(3).unwrap(),
                cursor: Some(c),
                status: StatusFilter::All,
            },
        )
        .unwrap()
        .0
    };
    assert_eq!(
        next(&mut kv, cursor.clone()),
        next(&mut kv, PageCursor::parse(&text).unwrap())
    );
}

#[test]
fn page_cursor_of_garbage_or_another_user_or_status_is_invalid() {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    tied_sessions(&mut kv, &keys);
    let first = |kv: &mut MemoryKv, user_text: &str, status| {
        let request = PageRequest {
            limit: PageLimit::new(2).unwrap(),
            cursor: None,
            status,
        };
        page(kv, &keys, Policy::default(), t(0, 0), user_text, request)
            .unwrap()
            .0
    };
    let all_cursor = first(&mut kv, "user-1", StatusFilter::All)
        .next_cursor
        .unwrap();
    let active_cursor = first(&mut kv, "user-1", StatusFilter::Active)
        .next_cursor
        .unwrap();

    let text = all_cursor.as_str().to_owned();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&text)
        .unwrap();
    let mut wrong_version = raw.clone();
    wrong_version[0] = 2;
    let mut wrong_status = raw.clone();
    wrong_status[1] = 7;
    let mut bad_id = raw[..26].to_vec();
    bad_id.extend_from_slice(b" padded ");
    let mut huge_time = raw.clone();
    huge_time[10..26].copy_from_slice(&i128::MAX.to_be_bytes());
    for garbage in [
        String::new(),
        "!!!".to_owned(),
        "a".to_owned(),
        format!("{text}="),
        b64(&raw[..20]),
        b64(&raw[..26]),
        b64(&wrong_version),
        b64(&wrong_status),
        b64(&bad_id),
        b64(&huge_time),
        b64(&[0xff; 40]),
    ] {
        let err = PageCursor::parse(&garbage).unwrap_err();
        assert_eq!(err.kind(), "invalid_cursor", "{garbage:?}");
        assert!(!err.is_corruption());
    }

    let with_cursor = |kv: &mut MemoryKv, user_text: &str, cursor: &PageCursor, status| {
        let request = PageRequest {
            limit: PageLimit::new(2).unwrap(),
            cursor: Some(cursor.clone()),
            status,
        };
        page(kv, &keys, Policy::default(), t(0, 0), user_text, request)
    };
    let before = kv.clone();
    for (user_text, cursor, status) in [
        ("user-2", &all_cursor, StatusFilter::All),
        ("user-1", &all_cursor, StatusFilter::Active),
        ("user-1", &active_cursor, StatusFilter::All),
        ("user-2", &active_cursor, StatusFilter::Active),
    ] {
        let err = with_cursor(&mut kv, user_text, cursor, status).unwrap_err();
        assert_eq!(err.kind(), "invalid_cursor", "{user_text} {status:?}");
    }
    assert_eq!(kv, before);
    assert!(with_cursor(&mut kv, "user-1", &all_cursor, StatusFilter::All).is_ok());
    assert!(with_cursor(&mut kv, "user-1", &active_cursor, StatusFilter::Active).is_ok());
}

#[test]
fn page_limit_bounds() {
    assert!(PageLimit::new(0).is_err());
    assert_eq!(PageLimit::new(1).unwrap().get(), 1);
    assert_eq!(PageLimit::new(1000).unwrap().get(), 1000);
    assert_eq!(PageLimit::new(1001).unwrap_err().kind(), "out_of_range");
    assert_eq!(PageLimit::default().get(), 50);
    assert!(BatchSize::new(0).is_none());
    assert!(BatchSize::new(1001).is_none());
    assert_eq!(BatchSize::default().get(), 100);
    assert!(SessionLimit::new(0, OnLimit::Reject).is_none());
    assert_eq!(
        "revoke-oldest".parse::<OnLimit>(),
        Ok(OnLimit::RevokeOldest)
    );
    assert_eq!("reject".parse::<OnLimit>(), Ok(OnLimit::Reject));
    assert!("drop".parse::<OnLimit>().is_err());
}

#[test]
fn pages_of_an_unknown_user_are_empty() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let (p, trace) = page(
        &mut kv,
        &keys,
        Policy::default(),
        t(0, 0),
        "nobody",
        PageRequest::default(),
    )
    .unwrap();
    assert!(p.sessions.is_empty());
    assert_eq!(p.next_cursor, None);
    assert_eq!(trace.reads, 1);
}

#[test]
fn pages_report_index_corruption_after_confirming() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    tied_sessions(&mut kv, &keys);
    let index = keys.user_active_sessions_key(&user("user-1"));
    // A revoked session planted in the active index.
    kv.index_add_raw(&index, b"a1".to_vec(), IndexScore::of(t(0, 1300)).as_f64());
    let before = kv.clone();
    let err = run(
        &mut kv,
        ListPage::new(
            &keys,
            Policy::default(),
            t(0, 0),
            user("user-1"),
            PageRequest {
                limit: PageLimit::new(50).unwrap(),
                cursor: None,
                status: StatusFilter::Active,
            },
        ),
        ATTEMPTS,
    )
    .unwrap_err();
    assert_eq!(
        (err.kind(), err.key()),
        ("inactive_index_member", Some(index.as_str()))
    );
    assert_eq!(kv, before);
}
