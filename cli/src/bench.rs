//! `authsession bench`: the load generator (the lab crate) on the store
//! the flags select, under a fresh key space purged afterwards. Present
//! with the default `bench` feature.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use authsession_core::Layout;
use authsession_driver::{Backend, Store};
use authsession_lab::bench::{self, BenchOp, BenchParams, BenchReport, Server};
use clap::Args;

use crate::args::{GlobalArgs, DEFAULT_REDIS_URL};
use crate::dispatch::runtime;
use crate::error::{self, CliError};
use crate::output;
use crate::scratch::{fresh_options, purge_after};
use crate::target::StoreOptions;
use crate::target::{OnStore, StoreTarget};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Workload.
    #[arg(long, value_enum)]
    op: BenchOp,
    /// Concurrent workers (sharing one store; each `*_reference` worker has
    /// a connection of its own).
    #[arg(long, default_value_t = 1, value_name = "N")]
    concurrency: usize,
    /// Measured seconds (fractions allowed).
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    duration: f64,
    /// Sessions per user loaded for get/count/list/mixed/churn (churn: at
    /// most --max-active-sessions), and held by each user revoke_all
    /// revokes.
    #[arg(long, default_value_t = 5, value_name = "K")]
    sessions_per_user: usize,
    /// Users to spread sessions over.
    #[arg(long, default_value_t = 1000, value_name = "U")]
    users: usize,
    /// contention: workers that create (default N/2); the rest revoke.
    #[arg(long, value_name = "C")]
    creators: Option<usize>,
}

impl BenchArgs {
    fn params(&self, options: &StoreOptions) -> Result<BenchParams, CliError> {
        if self.concurrency == 0 || self.concurrency > 4096 {
            return Err(CliError::usage("--concurrency must be within 1..=4096"));
        }
        if !(self.duration.is_finite() && self.duration > 0.0 && self.duration <= 86_400.0) {
            return Err(CliError::usage(
                "--duration must be within (0, 86400] seconds",
            ));
        }
        if self.sessions_per_user == 0 || self.sessions_per_user > 10_000 {
            return Err(CliError::usage(
                "--sessions-per-user must be within 1..=10000",
            ));
        }
        if self.users == 0 || self.users.saturating_mul(self.sessions_per_user) > 10_000_000 {
            return Err(CliError::usage(
                "--users must be at least 1, with users × sessions-per-user ≤ 10000000",
            ));
        }
        let creators = self.creators.unwrap_or(self.concurrency / 2);
        if creators > self.concurrency {
            return Err(CliError::usage("--creators must not exceed --concurrency"));
        }
        Ok(BenchParams {
            op: self.op,
            concurrency: self.concurrency,
            duration: Duration::from_secs_f64(self.duration),
            sessions_per_user: self.sessions_per_user,
            users: self.users,
            creators,
            session_limit: options.policy.session_limit.map(|l| l.max_active()),
        })
    }
}

/// Validates the workload for the target, runs it and reports; a Ctrl-C
/// stops it early (exit 130) with its keys still purged.
pub(crate) fn run_bench(global: &GlobalArgs, args: &BenchArgs) -> Result<ExitCode, CliError> {
    let target = global.target(Some(DEFAULT_REDIS_URL));
    let options = fresh_options(global, &target, "bench")?;
    let params = args.params(&options)?;
    if params.op.is_reference() {
        if !matches!(target, StoreTarget::Redis(_)) {
            return Err(CliError::usage(format!(
                "bench --op {}: the Go adapter's command sequences need a standalone Redis server",
                params.op.name()
            )));
        }
        if options.keys.layout() != Layout::Reference {
            return Err(CliError::usage(format!(
                "bench --op {}: the Go adapter only knows the reference layout",
                params.op.name()
            )));
        }
    }
    let rt = runtime(true)?;
    stop_on_ctrl_c(&rt)?;
    let report = rt.block_on(target.open_and_run(
        &options,
        Bench {
            params: &params,
            target: &target,
        },
    ))?;
    output::print(&report)?;
    if bench::interrupted() {
        error::report("bench", "interrupted", "interrupted");
        Ok(ExitCode::from(130))
    } else if report.is_clean() {
        Ok(ExitCode::SUCCESS)
    } else {
        error::report("bench", "errors or broken invariants", "bench_failed");
        Ok(ExitCode::FAILURE)
    }
}

/// The bench on the store the flags select; its key space is purged
/// afterwards.
struct Bench<'a> {
    params: &'a BenchParams,
    target: &'a StoreTarget,
}

impl OnStore for Bench<'_> {
    type Output = BenchReport;

    async fn run<B: Backend>(self, store: Store<B>) -> Result<BenchReport, CliError> {
        let target = self.target;
        // The store validated the URL (without echoing it) first.
        let server = match target {
            StoreTarget::Redis(url) => Some(Server::open(url)?),
            _ => None,
        };
        let store = Arc::new(store);
        let result = bench::run(store.clone(), self.params, target.name(), server.as_ref()).await;
        let (mut report, _) = purge_after(&*store, result.map_err(CliError::from)).await?;
        report.set_cache(store.cache_stats());
        Ok(report)
    }
}

/// First Ctrl-C: the bench stops, reports and purges its keys; a second
/// one exits at once. The handler is registered before this returns, so
/// no early Ctrl-C can kill the process with its keys left behind.
#[cfg(unix)]
fn stop_on_ctrl_c(rt: &tokio::runtime::Runtime) -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let _context = rt.enter();
    let mut interrupts = signal(SignalKind::interrupt())
        .map_err(|e| CliError::io("installing the Ctrl-C handler", &e))?;
    rt.spawn(async move {
        if interrupts.recv().await.is_some() {
            error::stderr_line("bench: interrupted; stopping and purging its keys");
            bench::interrupt();
            if interrupts.recv().await.is_some() {
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn stop_on_ctrl_c(rt: &tokio::runtime::Runtime) -> Result<(), CliError> {
    rt.spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            bench::interrupt();
        }
    });
    Ok(())
}
