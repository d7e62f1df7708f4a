//! Spans (and, with the `metrics` feature, measurements) of store
//! operations, named by the OpenTelemetry database semantic conventions.
//! Never records bytes, public keys or credentials; keys and ids only at
//! trace level.

use std::time::Duration;

use tracing::field::Empty;
use tracing::Span;

use crate::backend::BackendInfo;
use crate::error::Error;

/// What one operation cost.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) round_trips: u64,
    pub(crate) retries: u64,
    pub(crate) batches: u64,
}

macro_rules! op_span {
    ($name:literal, $op:expr, $info:expr) => {
        tracing::info_span!(
            $name,
            "db.system.name" = $info.system,
            "db.operation.name" = $op,
            "db.namespace" = $info.namespace.as_deref().unwrap_or(""),
            "server.address" = $info.address.as_deref().unwrap_or(""),
            "server.port" = $info.port.unwrap_or(0),
            attempts = Empty,
            round_trips = Empty,
            batches = Empty,
            outcome = Empty,
            "error.type" = Empty,
            cache = Empty,
        )
    };
}

/// The span of one operation (`authsession.get`, …).
pub(crate) fn operation_span(op: &'static str, info: &BackendInfo) -> Span {
    // Span names are static in `tracing`: one arm per operation.
    match op {
        "ping" => op_span!("authsession.ping", op, info),
        "get" => op_span!("authsession.get", op, info),
        "get_for_user" => op_span!("authsession.get_for_user", op, info),
        "list" => op_span!("authsession.list", op, info),
        "list_page" => op_span!("authsession.list_page", op, info),
        "count" => op_span!("authsession.count", op, info),
        "create" => op_span!("authsession.create", op, info),
        "revoke" => op_span!("authsession.revoke", op, info),
        "revoke_all" => op_span!("authsession.revoke_all", op, info),
        "check" => op_span!("authsession.check", op, info),
        "sweep" => op_span!("authsession.sweep", op, info),
        "purge" => op_span!("authsession.purge", op, info),
        "migrate" => op_span!("authsession.migrate", op, info),
        _ => op_span!("authsession.operation", op, info),
    }
}

/// Records the outcome on `span` (and the metrics).
pub(crate) fn finish(
    span: &Span,
    op: &'static str,
    stats: &Stats,
    elapsed: Duration,
    error: Option<&Error>,
) {
    span.record("attempts", stats.retries + 1);
    span.record("round_trips", stats.round_trips);
    span.record("batches", stats.batches);
    let outcome = match error {
        None => "ok",
        Some(e) => {
            span.record("error.type", e.kind().as_str());
            "error"
        }
    };
    span.record("outcome", outcome);
    #[cfg(feature = "metrics")]
    {
        let error_type = error.map_or("", |e| e.kind().as_str());
        metrics::histogram!(
            "db.client.operation.duration",
            "db.operation.name" => op,
            "outcome" => outcome,
            "error.type" => error_type,
        )
        .record(elapsed.as_secs_f64());
        if stats.retries > 0 {
            metrics::counter!("authsession.retries", "db.operation.name" => op)
                .increment(stats.retries);
        }
        if let Some(e) = error {
            match e.kind() {
                crate::ErrorKind::ContentionExhausted => {
                    metrics::counter!("authsession.contention_exhausted", "db.operation.name" => op)
                        .increment(1);
                }
                crate::ErrorKind::Corrupt => {
                    metrics::counter!("authsession.corrupt", "db.operation.name" => op)
                        .increment(1);
                }
                _ => {}
            }
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (op, elapsed);
}
