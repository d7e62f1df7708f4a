//! `authsession demo`: a full session lifecycle, narrated as JSON lines.
//! Each step also checks the store answered what the contract says, so the
//! demo doubles as a smoke test of a deployment.

use authsession_core::{
    ClientPublicKey, DeviceSessionId, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode,
    RevokeSessionInput, RevokeUserSessionsInput, Session, UserId,
};
use std::process::ExitCode;

use authsession_driver::{
    Backend, CheckMode, CheckReport, RevokeAllOptions, SessionAdmin, SessionStore, Store,
};
use serde::Serialize;

use crate::args::GlobalArgs;
use crate::clock;
use crate::dispatch::runtime;
use crate::error::CliError;
use crate::output::{self, CountOut, RevokeAllOut, RevokeOut};
use crate::scratch::{fresh_options, purge_after};
use crate::target::{OnStore, StoreTarget};

const SESSIONS: u8 = 3;

fn expect(step: &str, ok: bool, detail: impl FnOnce() -> String) -> Result<(), CliError> {
    if ok {
        Ok(())
    } else {
        Err(CliError::new(
            "demo_mismatch",
            format!("demo step {step}: {}", detail()),
        ))
    }
}

/// One narrated line: `{"step": name, …body's fields}`.
#[derive(Serialize)]
struct Step<'a, T> {
    step: &'a str,
    #[serde(flatten)]
    body: T,
}

fn step(name: &str, body: impl Serialize) -> Result<(), CliError> {
    output::print(&Step { step: name, body })
}

#[derive(Serialize)]
struct Start<'a> {
    backend: &'a str,
    key_prefixes: [&'a str; 3],
}

#[derive(Serialize)]
struct One<'a> {
    session: &'a Session,
}

#[derive(Serialize)]
struct Listed<'a> {
    user_id: &'a UserId,
    sessions: &'a [Session],
}

#[derive(Serialize)]
struct Checked<'a> {
    report: &'a CheckReport,
}

fn revocation(reason: &str) -> Result<Revocation, CliError> {
    Ok(Revocation::new(
        clock::now()?,
        RevokeReasonCode::parse(reason)?,
        RevokeActorType::parse("operator")?,
        RevokeActorId::parse("authsession-demo")?,
    )?)
}

/// Runs the lifecycle on `store`: create, get, list, count, revoke, revoke
/// again, revoke all, count, check.
async fn run<S: SessionStore + SessionAdmin>(store: &S, backend: &str) -> Result<(), CliError> {
    step(
        "start",
        Start {
            backend,
            key_prefixes: store.key_space().reference_prefixes(),
        },
    )?;
    let user = UserId::parse("demo-user")?;
    let created = create(store, &user).await?;
    let (Some(first), Some(second)) = (created.first(), created.get(1)) else {
        return Err(CliError::new("demo_mismatch", "no sessions were created"));
    };
    read(store, &user, &created, second).await?;
    revoke(store, &user, first).await?;

    let report = store.check(CheckMode::Report).await?;
    expect("check", report.problems.is_empty(), || {
        format!("{} problems", report.problems.len())
    })?;
    step("check", Checked { report: &report })
}

/// `authsession demo`: in memory, or on a server under a fresh key space
/// (purged afterwards).
pub(crate) fn run_demo(global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let rt = runtime(false)?;
    let target = global.target(None);
    let options = match target {
        StoreTarget::Memory => global.options(&target)?,
        _ => fresh_options(global, &target, "demo")?,
    };
    rt.block_on(target.open_and_run(&options, Demo { target: &target }))?;
    Ok(ExitCode::SUCCESS)
}

/// The demo on the store the flags select.
struct Demo<'a> {
    target: &'a StoreTarget,
}

impl OnStore for Demo<'_> {
    type Output = ();

    async fn run<B: Backend>(self, store: Store<B>) -> Result<(), CliError> {
        let target = self.target;
        if *target == StoreTarget::Memory {
            return run(&store, target.name()).await;
        }
        let result = run(&store, target.name()).await;
        let ((), deleted) = purge_after(&store, result).await?;
        #[derive(serde::Serialize)]
        struct Purged {
            keys_deleted: u64,
        }
        step(
            "purge",
            Purged {
                keys_deleted: deleted,
            },
        )
    }
}

/// The demo's sessions, created in the recent past.
async fn create<S: SessionStore>(store: &S, user: &UserId) -> Result<Vec<Session>, CliError> {
    let now = clock::now()?;
    let mut created = Vec::new();
    for n in 1..=SESSIONS {
        // Created in the recent past, a millisecond apart, so the revocations
        // below (at "now") come after every creation.
        let created_at = now.checked_add_nanos(-i128::from(SESSIONS + 1 - n) * 1_000_000)?;
        let session = Session::active(
            DeviceSessionId::parse(format!("demo-session-{n}"))?,
            user.clone(),
            ClientPublicKey::from([n; ClientPublicKey::LEN]),
            created_at,
        )?;
        store.create(&session).await?;
        step("create", One { session: &session })?;
        created.push(session);
    }
    Ok(created)
}

/// `get`, `list` and `count` answer what was created.
async fn read<S: SessionStore>(
    store: &S,
    user: &UserId,
    created: &[Session],
    second: &Session,
) -> Result<(), CliError> {
    let got = store.get(second.id()).await?;
    expect("get", &got == second, || format!("got {got:?}"))?;
    step("get", One { session: &got })?;

    let listed = store.list_by_user_id(user).await?;
    let newest_first: Vec<&Session> = created.iter().rev().collect();
    expect("list", listed.iter().eq(newest_first), || {
        format!("listed {listed:?}")
    })?;
    step(
        "list",
        Listed {
            user_id: user,
            sessions: &listed,
        },
    )?;

    let active = store.count_active_by_user_id(user).await?;
    expect("count", active == u64::from(SESSIONS), || {
        format!("{active}")
    })?;
    step(
        "count",
        CountOut {
            user_id: user,
            active,
        },
    )?;
    Ok(())
}

/// `revoke` (twice: the second finds it already revoked), `revoke-all` of
/// the rest, and a count of none left.
async fn revoke<S: SessionStore>(
    store: &S,
    user: &UserId,
    first: &Session,
) -> Result<(), CliError> {
    let input = RevokeSessionInput {
        device_session_id: first.id().clone(),
        revocation: revocation("user_logout")?,
    };
    let outcome = store.revoke(&input).await?;
    expect("revoke", outcome.as_str() == "revoked", || {
        outcome.as_str().to_owned()
    })?;
    step(
        "revoke",
        RevokeOut {
            outcome: outcome.as_str(),
            session: outcome.session(),
        },
    )?;

    let again = store.revoke(&input).await?;
    expect("revoke_again", again.as_str() == "already_revoked", || {
        again.as_str().to_owned()
    })?;
    step(
        "revoke_again",
        RevokeOut {
            outcome: again.as_str(),
            session: again.session(),
        },
    )?;

    let all = RevokeUserSessionsInput {
        user_id: user.clone(),
        revocation: revocation("security_event")?,
    };
    let report = store
        .revoke_all_with(&all, &RevokeAllOptions::new().collect(true))
        .await?;
    expect(
        "revoke_all",
        report.revoked.len() == usize::from(SESSIONS) - 1,
        || format!("{} sessions", report.revoked.len()),
    )?;
    step(
        "revoke_all",
        RevokeAllOut {
            outcome: if report.count == 0 {
                "no_active_sessions"
            } else {
                "revoked"
            },
            sessions: Some(&report.revoked),
            revoked: report.count,
            batches: report.batches,
            drift_repaired: report.drift_repaired,
            unrevocable: Vec::new(),
        },
    )?;

    let active = store.count_active_by_user_id(user).await?;
    expect("count_after", active == 0, || format!("{active}"))?;
    step(
        "count_after",
        CountOut {
            user_id: user,
            active,
        },
    )?;
    Ok(())
}
