//! The argument definitions and what the global flags select.

use std::time::Duration;

use authsession_core::op::{OnLimit, Policy};
use clap::{CommandFactory as _, FromArgMatches as _};

use super::*;
use crate::clap_message;
use crate::target::StoreTarget;

#[test]
fn argument_definitions_are_consistent() {
    Cli::command().debug_assert();
}

fn global(args: &[&str]) -> GlobalArgs {
    let mut all = vec!["authsession"];
    all.extend_from_slice(args);
    all.push("demo");
    let matches = Cli::command().try_get_matches_from(all).unwrap();
    let mut cli = Cli::from_arg_matches(&matches).unwrap();
    cli.global.given = Given::from_matches(&matches);
    cli.global
}

#[test]
fn help_states_the_limits_from_their_constants() {
    let help = |args: &[&str]| {
        let mut all = vec!["authsession"];
        all.extend_from_slice(args);
        let error = Cli::command().try_get_matches_from(all).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::DisplayHelp);
        error.to_string()
    };
    let batch = format!(
        "(1..={}; default {})",
        BatchSize::MAX,
        BatchSize::default().get()
    );
    assert!(help(&["check", "-h"]).contains(&batch), "{batch}");
    let decode = help(&["decode", "--help"]);
    let cap = format!("at most {} bytes", offline::MAX_INPUT);
    assert!(decode.contains(&cap), "{decode}");
    let line = format!("a line over {} bytes", offline::MAX_INPUT);
    assert!(decode.contains(&line), "{decode}");
}

#[test]
fn clap_errors_become_one_usage_line() {
    let message = |args: &[&str]| {
        let mut all = vec!["authsession"];
        all.extend_from_slice(args);
        let error = Cli::command().try_get_matches_from(all).unwrap_err();
        clap_message(&error.to_string())
    };
    assert_eq!(
        message(&["get"]),
        "the following required arguments were not provided: <ID>; see --help"
    );
    assert_eq!(
        message(&["--bogus", "get", "x"]),
        "unexpected argument '--bogus' found; see --help"
    );
}

#[test]
fn backend_selection() {
    let redis = |url: &str| StoreTarget::Redis(url.to_owned());
    // Store commands default to the local server, demo to memory.
    assert_eq!(
        global(&[]).target(Some(DEFAULT_REDIS_URL)),
        redis(DEFAULT_REDIS_URL)
    );
    assert_eq!(global(&[]).target(None), StoreTarget::Memory);
    let url = ["--redis-url", "redis://h:1"];
    assert_eq!(global(&url).target(None), redis("redis://h:1"));
    assert_eq!(
        global(&["--redis-url", "redis://h:1", "--memory"]).target(Some(DEFAULT_REDIS_URL)),
        StoreTarget::Memory
    );
    let nodes = [
        "--cluster-node",
        "redis://a:1",
        "--cluster-node",
        "redis://b:2",
    ];
    let cluster = StoreTarget::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()]);
    assert_eq!(global(&nodes).target(None), cluster);
    assert_eq!(
        global(&nodes).layout(&cluster).unwrap(),
        Layout::Tagged,
        "a cluster defaults to the tagged layout"
    );
    assert_eq!(
        global(&[]).layout(&StoreTarget::Memory).unwrap(),
        Layout::Reference
    );
    assert_eq!(
        global(&["--layout", "tagged"])
            .layout(&StoreTarget::Memory)
            .unwrap(),
        Layout::Tagged
    );
    assert_eq!(
        global(&["--layout", "reference"])
            .layout(&cluster)
            .unwrap_err()
            .kind(),
        "usage"
    );
}

#[test]
fn cache_flags() {
    assert_eq!(global(&[]).cache_config().unwrap(), None);
    let config = global(&[
        "--cache",
        "--cache-max-entries",
        "50",
        "--cache-max-staleness",
        "5s",
    ])
    .cache_config()
    .unwrap()
    .unwrap();
    assert_eq!(config.max_entries, 50);
    assert_eq!(config.max_staleness, Duration::from_secs(5));
    assert_eq!(
        global(&["--cache"]).cache_config().unwrap(),
        Some(authsession_driver::CacheConfig::default())
    );
    let kind = |args: &[&str]| global(args).cache_config().unwrap_err().kind().to_owned();
    assert_eq!(kind(&["--cache-max-entries", "5"]), "usage");
    assert_eq!(
        kind(&["--cache", "--cache-max-entries", "0"]),
        "out_of_range"
    );
    assert_eq!(
        kind(&["--cache", "--cache-max-staleness", "soon"]),
        "invalid_duration"
    );
}

#[test]
fn policy_flags() {
    let policy = global(&[
        "--revoked-retention",
        "1h30m",
        "--max-active-sessions",
        "3",
        "--on-limit",
        "revoke-oldest",
        "--batch-size",
        "7",
    ])
    .policy()
    .unwrap();
    assert_eq!(policy.revoked_retention, Some(Duration::from_secs(5400)));
    let limit = policy.session_limit.unwrap();
    assert_eq!(limit.max_active(), 3);
    assert_eq!(limit.on_limit, OnLimit::RevokeOldest);
    assert_eq!(policy.batch_size.get(), 7);
    assert_eq!(global(&[]).policy().unwrap(), Policy::default());
    assert_eq!(
        global(&["--max-active-sessions", "2"])
            .policy()
            .unwrap()
            .session_limit
            .unwrap()
            .on_limit,
        OnLimit::Reject
    );
    let kind = |args: &[&str]| global(args).policy().unwrap_err().kind().to_owned();
    assert_eq!(kind(&["--revoked-retention", "1y"]), "invalid_duration");
    assert_eq!(kind(&["--max-active-sessions", "0"]), "out_of_range");
    assert_eq!(kind(&["--batch-size", "0"]), "out_of_range");
    assert_eq!(kind(&["--batch-size", "1001"]), "out_of_range");
    assert_eq!(kind(&["--on-limit", "reject"]), "usage");
}
