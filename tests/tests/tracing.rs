//! Every store operation opens one span named `authsession.<op>` with the
//! OpenTelemetry database fields, attempts, round trips, batches and the
//! outcome — and no key material: no record bytes, public keys, ids or
//! credentials in any field at the default (info/debug) levels.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use authsession_driver::core::op::PageRequest;
use authsession_driver::{RedisConfig, RedisSessionStore, SessionStore};
use authsession_tests::fixtures::{
    active, fresh_key_space, id, revoke_all_input, revoke_input, ts, user,
};
use authsession_tests::RedisServer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// A finished span: its name and every field recorded on it.
#[derive(Debug, Clone, Default)]
struct Captured {
    name: String,
    fields: BTreeMap<String, String>,
}

#[derive(Default, Clone)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, Captured>>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut captured = Captured {
            name: attrs.metadata().name().to_owned(),
            ..Captured::default()
        };
        attrs.record(&mut Fields(&mut captured.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), captured);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let mut line = event.metadata().name().to_owned();
        for (k, v) in fields {
            let _ = write!(line, " {k}={v}");
        }
        self.events.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn every_operation_has_one_span_with_db_fields_and_no_key_material() {
    let server = RedisServer::start();
    let keys = fresh_key_space("tracing");
    let config = RedisConfig {
        ..server.config(keys)
    };
    let store = RedisSessionStore::connect(config).await.unwrap();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = active("trace-secret-id", "trace-user", ts(1, 0));
    let key_b64 = s.client_public_key().to_string();
    store.ping().await.unwrap();
    store.create(&s).await.unwrap();
    store.get(s.id()).await.unwrap();
    store
        .get_for_user(&user("trace-user"), s.id())
        .await
        .unwrap();
    store.list_by_user_id(&user("trace-user")).await.unwrap();
    store
        .list_page(&user("trace-user"), &PageRequest::default())
        .await
        .unwrap();
    store
        .count_active_by_user_id(&user("trace-user"))
        .await
        .unwrap();
    store
        .revoke(&revoke_input("trace-secret-id", ts(2, 0)))
        .await
        .unwrap();
    store
        .revoke_all_by_user_id(&revoke_all_input("trace-user", ts(3, 0)))
        .await
        .unwrap();
    let missing = store.get(&id("nope")).await.unwrap_err();
    assert_eq!(missing.kind().as_str(), "not_found");

    let spans: Vec<Captured> = capture.spans.lock().unwrap().values().cloned().collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "authsession.ping",
            "authsession.create",
            "authsession.get",
            "authsession.get_for_user",
            "authsession.list",
            "authsession.list_page",
            "authsession.count",
            "authsession.revoke",
            "authsession.revoke_all",
            "authsession.get",
        ]
    );
    for span in &spans {
        let f = &span.fields;
        assert_eq!(f["db.system.name"], "redis", "{span:?}");
        assert_eq!(
            f["db.operation.name"],
            span.name.trim_start_matches("authsession."),
            "{span:?}"
        );
        assert_eq!(f["db.namespace"], "0", "{span:?}");
        assert_eq!(f["server.address"], "127.0.0.1", "{span:?}");
        assert_eq!(f["server.port"], server.port().to_string(), "{span:?}");
        for field in ["attempts", "round_trips", "batches", "outcome"] {
            assert!(f.contains_key(field), "{field} missing in {span:?}");
        }
    }
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    assert_eq!(by_name("authsession.create").fields["round_trips"], "1");
    assert_eq!(by_name("authsession.revoke").fields["round_trips"], "2");
    assert_eq!(by_name("authsession.revoke_all").fields["batches"], "0");
    assert_eq!(by_name("authsession.list").fields["outcome"], "ok");
    let failed = spans.last().unwrap();
    assert_eq!(failed.fields["outcome"], "error");
    assert_eq!(failed.fields["error.type"], "not_found");

    // No key material anywhere: ids, the public key, record bytes.
    let everything = format!("{spans:?} {:?}", capture.events.lock().unwrap());
    for secret in [
        "trace-secret-id",
        key_b64.as_str(),
        "client_public_key",
        "trace-user",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
}

/// With the near cache: a `get` answered from memory has a span with
/// `cache = "hit"` and no round trip; one read from the server has
/// `cache = "miss"`; invalidations and flushes are debug events.
#[tokio::test]
async fn cached_gets_say_hit_or_miss() {
    let server = RedisServer::start();
    let mut config = server.config(fresh_key_space("tracing-cache"));
    config.settings.cache = Some(authsession_tests::cached::cache_config());
    let store = RedisSessionStore::connect(config).await.unwrap();
    let other = server.store(store.key_space().clone()).await;
    let s = active("trace-cached", "trace-user", ts(1, 0));
    store.create(&s).await.unwrap();

    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    store.get(s.id()).await.unwrap();
    store.get(s.id()).await.unwrap();
    other
        .revoke(&revoke_input("trace-cached", ts(2, 0)))
        .await
        .unwrap();
    store.sync().await.unwrap();

    let spans: Vec<Captured> = capture.spans.lock().unwrap().values().cloned().collect();
    let gets: Vec<(&str, &str)> = spans
        .iter()
        .filter(|s| s.name == "authsession.get")
        .map(|s| (s.fields["cache"].as_str(), s.fields["round_trips"].as_str()))
        .collect();
    assert_eq!(gets, [("miss", "1"), ("hit", "0")]);
    let events = capture.events.lock().unwrap().join("\n");
    assert!(
        events.contains("keys=1 message=authsession.cache.invalidate"),
        "{events}"
    );
}
