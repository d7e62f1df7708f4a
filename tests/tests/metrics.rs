//! With the `metrics` feature, every operation records
//! `db.client.operation.duration` (seconds) labelled by operation and
//! outcome; contention and corruption have counters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, Mutex};

use authsession_driver::{MemorySessionStore, SessionStore};
use authsession_tests::fixtures::{active, fresh_key_space, id, ts};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// One histogram value: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

#[derive(Default)]
struct Recorded {
    histograms: Mutex<Vec<Sample>>,
}

struct Values {
    key: Key,
    recorded: Arc<Recorded>,
}

impl metrics::HistogramFn for Values {
    fn record(&self, value: f64) {
        let labels = self
            .key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        self.recorded
            .histograms
            .lock()
            .unwrap()
            .push((self.key.name().to_owned(), labels, value));
    }
}

struct TestRecorder(Arc<Recorded>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Values {
            key: key.clone(),
            recorded: Arc::clone(&self.0),
        }))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn operations_record_their_duration_by_operation_and_outcome() {
    let recorded = Arc::new(Recorded::default());
    let recorder = TestRecorder(Arc::clone(&recorded));
    // Thread-local: the current-thread runtime polls everything here.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let store = MemorySessionStore::new(fresh_key_space("metrics"));
    store.create(&active("m-1", "u", ts(1, 0))).await.unwrap();
    store.get(&id("m-1")).await.unwrap();
    store.get(&id("missing")).await.unwrap_err();

    let seen = recorded.histograms.lock().unwrap().clone();
    let ops: Vec<(&str, &str)> = seen
        .iter()
        .map(|(name, labels, value)| {
            assert_eq!(name, "db.client.operation.duration");
            assert!(*value >= 0.0);
            let label = |k: &str| {
                labels
                    .iter()
                    .find(|(lk, _)| lk == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap()
            };
            (label("db.operation.name"), label("outcome"))
        })
        .collect();
    assert_eq!(ops, [("create", "ok"), ("get", "ok"), ("get", "error")]);
    let error_type = &seen[2].1;
    assert!(error_type.contains(&("error.type".to_owned(), "not_found".to_owned())));
}
