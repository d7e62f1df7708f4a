//! `-v` / `RUST_LOG`: the driver's spans on stderr.
//!
//! Each store operation is one span (`authsession.get`, …) carrying the
//! OpenTelemetry database fields (`db.system.name`, `db.operation.name`,
//! `db.namespace`, `server.address`, `server.port`) and, once it ends,
//! `attempts`, `round_trips`, `batches`, `outcome` (and `error.type`). The
//! fmt layer prints a span when it closes, with those fields; `-vv` adds
//! the driver's debug events (retries, confirms), `-vvv` its trace events.
//!
//! Nothing here adds a field: what is printed is what the library put in
//! its spans and events, which never hold record bytes, public keys or
//! credentials. The `log` records of the Redis client (which can name
//! keys and arguments) are not bridged into `tracing`, so they never
//! appear, whatever `RUST_LOG` says.

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber: `RUST_LOG` when set (any
/// `tracing-subscriber` filter), else the level `-v` repeated `verbose`
/// times selects for the library and the CLI. Nothing without either.
pub(crate) fn install(verbose: u8) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = match (from_env, verbose) {
        (Some(directives), _) => EnvFilter::builder().parse_lossy(directives),
        (None, 0) => return,
        (None, n) => {
            let level = match n {
                1 => "info",
                2 => "debug",
                _ => "trace",
            };
            EnvFilter::builder()
                .parse_lossy(format!("authsession_driver={level},authsession={level}"))
        }
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        // A write that fails (a closed stderr) is dropped; reporting it
        // would go to the same stderr, by `eprintln!`, which panics.
        .log_internal_errors(false)
        .finish();
    // Only fails when a subscriber is already set (never, in this binary).
    let _ = tracing::subscriber::set_global_default(subscriber);
}
