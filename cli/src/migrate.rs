//! `migrate`: copies the whole key space of the store the global flags
//! name into another server, prefix or layout, then verifies it.

use std::process::ExitCode;

use authsession_core::{KeySpace, Layout};
use authsession_driver::{Backend, Store};

use crate::args::{GlobalArgs, LayoutArg, MigrateArgs, DEFAULT_REDIS_URL};
use crate::dispatch::runtime;
use crate::error::CliError;
use crate::output;
use crate::progress::Progress;
use crate::target::StoreOptions;
use crate::target::{OnStore, StoreTarget};

/// Checks the target (another store, prefix or layout than the source),
/// opens both stores and copies.
pub(crate) fn run_migrate(global: &GlobalArgs, args: &MigrateArgs) -> Result<ExitCode, CliError> {
    let source = global.target(Some(DEFAULT_REDIS_URL));
    let source_options = global.options(&source)?;
    let target = match &args.to_url {
        Some(url) => StoreTarget::Redis(url.clone()),
        None => StoreTarget::Cluster(args.to_cluster_node.clone()),
    };
    let base = args.to_prefix.as_deref().unwrap_or(&global.prefix);
    if source == target && base == global.prefix {
        return Err(CliError::usage(
            "migrate: the target is the source; name another server, cluster or --to-prefix",
        ));
    }
    let layout = match (args.to_layout, &target) {
        (Some(LayoutArg::Reference), StoreTarget::Cluster(_)) => {
            return Err(CliError::usage(
                "--to-layout reference: a cluster needs the tagged layout",
            ))
        }
        (Some(layout), _) => layout.into(),
        (None, StoreTarget::Cluster(_)) => Layout::Tagged,
        (None, _) => source_options.keys.layout(),
    };
    let target_options = StoreOptions {
        keys: KeySpace::with_base_and_layout(base, layout)
            .map_err(|e| CliError::from(e).context("--to-prefix"))?,
        ..source_options.clone()
    };
    let migrate = Migrate {
        target: &target,
        options: &target_options,
    };
    runtime(false)?.block_on(source.open_and_run(&source_options, migrate))
}

/// `migrate` on its source: opens the target (`--to-url` or
/// `--to-cluster-node`, built with `options`).
struct Migrate<'a> {
    target: &'a StoreTarget,
    options: &'a StoreOptions,
}

impl OnStore for Migrate<'_> {
    type Output = ExitCode;

    async fn run<A: Backend>(self, source: Store<A>) -> Result<ExitCode, CliError> {
        let into = MigrateInto { source: &source };
        self.target
            .open_and_run_as(self.options, "--to-url", into)
            .await
    }
}

/// `migrate` with both stores open: copies `source` into the target,
/// prints the summary and fails when the verify pass found differences.
struct MigrateInto<'a, A> {
    source: &'a Store<A>,
}

impl<A: Backend> OnStore for MigrateInto<'_, A> {
    type Output = ExitCode;

    async fn run<B: Backend>(self, target: Store<B>) -> Result<ExitCode, CliError> {
        let progress = Progress::new("migrate");
        let update = |sessions| progress.update(sessions);
        let report = self
            .source
            .migrate_to_with_progress(&target, &update)
            .await
            .map_err(|e| CliError::from(e).context("migrate"))?;
        progress.finish(&format!(
            "{} users, {} sessions, {} copied, {} already present, {} difference(s); sessions copied then verified",
            report.users,
            report.sessions,
            report.copied,
            report.already_present,
            report.differences.len()
        ));
        output::print(&report)?;
        if report.differences.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            crate::error::report(
                "migrate",
                &format!(
                    "{} session(s) differ between source and target",
                    report.differences.len()
                ),
                "migrate_differences",
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
