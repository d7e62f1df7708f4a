//! The commands that talk to a store (`create`, `get`, `list`, `count`,
//! `revoke`, `revoke-all`, `check`, `sweep`), written once over
//! [`SessionStore`] / [`SessionAdmin`] and run against the in-memory, the
//! Redis or the cluster store. Every value is validated by core before the
//! store is touched.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use authsession_core::op::{PageRequest, RevokeAllReport};
use authsession_core::{
    ClientPublicKey, DeviceSessionId, Field, Revocation, RevokeActorId, RevokeActorType,
    RevokeReasonCode, RevokeSessionInput, RevokeUserSessionsInput, Session, Timestamp, UserId,
};
use authsession_driver::{
    Backend, CheckMode, ErrorKind, RevokeAllOptions, SessionAdmin, SessionStore, Store,
};

use crate::clock;
use crate::error::CliError;
use crate::output::{self, CountOut, CreatedOut, PageOut, RevokeAllOut, RevokeOut, UnrevocableOut};
use crate::progress::Progress;
use crate::target::OnStore;
use crate::timestamp;

/// A validated store command, ready to run.
#[derive(Debug)]
pub(crate) enum StoreCommand {
    /// `with_evicted`: print `{"session":…,"evicted":[…]}` (the limit may
    /// revoke sessions to make room) instead of the bare session.
    Create {
        session: Session,
        with_evicted: bool,
    },
    Get {
        id: DeviceSessionId,
        user: Option<UserId>,
    },
    List(UserId),
    ListPage(UserId, PageRequest),
    Count(UserId),
    /// `now`: no explicit time was given (a session dated after it, by a
    /// clock ahead, is revoked at its own creation time).
    Revoke {
        input: RevokeSessionInput,
        now: bool,
    },
    RevokeAll {
        input: RevokeUserSessionsInput,
        count_only: bool,
        max_failures: u32,
        deadline: Option<Duration>,
    },
    Check {
        repair: bool,
    },
    Sweep,
}

/// Raw `create` flags.
#[derive(Debug)]
pub(crate) struct CreateFlags<'a> {
    pub(crate) id: &'a str,
    pub(crate) user: &'a str,
    pub(crate) public_key: &'a str,
    pub(crate) created_at: Option<&'a str>,
}

/// Raw revocation flags shared by `revoke` and `revoke-all`.
#[derive(Debug)]
pub(crate) struct RevocationFlags<'a> {
    pub(crate) reason: &'a str,
    pub(crate) actor_type: &'a str,
    pub(crate) actor_id: Option<&'a str>,
    pub(crate) at: Option<&'a str>,
}

/// The instant given as `flag` (any RFC 3339 form), or now.
fn timestamp_or_now(text: Option<&str>, flag: &str, field: Field) -> Result<Timestamp, CliError> {
    match text {
        Some(text) => timestamp::parse(text, flag, field),
        None => clock::now(),
    }
}

impl CreateFlags<'_> {
    pub(crate) fn parse(&self) -> Result<Session, CliError> {
        let id = DeviceSessionId::parse(self.id).map_err(|e| CliError::from(e).context("--id"))?;
        let user = UserId::parse(self.user).map_err(|e| CliError::from(e).context("--user"))?;
        let key = ClientPublicKey::from_base64(self.public_key)
            .map_err(|e| CliError::from(e).context("--public-key"))?;
        let created_at = timestamp_or_now(self.created_at, "--created-at", Field::CreatedAt)?;
        Ok(Session::active(id, user, key, created_at)?)
    }
}

impl RevocationFlags<'_> {
    pub(crate) fn parse(&self) -> Result<Revocation, CliError> {
        let reason = RevokeReasonCode::parse(self.reason)
            .map_err(|e| CliError::from(e).context("--reason"))?;
        let actor_type = RevokeActorType::parse(self.actor_type)
            .map_err(|e| CliError::from(e).context("--actor-type"))?;
        let actor_id = match self.actor_id {
            Some(a) => {
                RevokeActorId::parse(a).map_err(|e| CliError::from(e).context("--actor-id"))?
            }
            None => RevokeActorId::empty(),
        };
        let at = timestamp_or_now(self.at, "--at", Field::RevokedAt)?;
        Ok(Revocation::new(at, reason, actor_type, actor_id)?)
    }
}

impl OnStore for StoreCommand {
    type Output = ExitCode;

    async fn run<B: Backend>(self, store: Store<B>) -> Result<ExitCode, CliError> {
        run(&store, self).await
    }
}

/// Runs `command` on `store`, printing its JSON result.
async fn run<S: SessionStore + SessionAdmin>(
    store: &S,
    command: StoreCommand,
) -> Result<ExitCode, CliError> {
    match command {
        StoreCommand::Create {
            session,
            with_evicted,
        } => {
            let created = store.create(&session).await?;
            if with_evicted {
                output::print(&CreatedOut {
                    session: &created.session,
                    evicted: &created.evicted,
                })?;
            } else {
                output::print(&created.session)?;
            }
        }
        StoreCommand::Get { id, user: None } => output::print(&store.get(&id).await?)?,
        StoreCommand::Get {
            id,
            user: Some(user),
        } => {
            output::print(&store.get_for_user(&user, &id).await?)?;
        }
        StoreCommand::List(user) => output::print(&store.list_by_user_id(&user).await?)?,
        StoreCommand::ListPage(user, request) => {
            let page = store.list_page(&user, &request).await?;
            output::print(&PageOut {
                sessions: &page.sessions,
                next_cursor: page.next_cursor.as_ref().map(|c| c.as_str()),
            })?;
        }
        StoreCommand::Count(user) => {
            let active = store.count_active_by_user_id(&user).await?;
            output::print(&CountOut {
                user_id: &user,
                active,
            })?;
        }
        StoreCommand::Revoke { input, now } => {
            let outcome = if now {
                store.revoke_now(&input).await?
            } else {
                store.revoke(&input).await?
            };
            output::print(&RevokeOut {
                outcome: outcome.as_str(),
                session: outcome.session(),
            })?;
        }
        StoreCommand::RevokeAll {
            input,
            count_only,
            max_failures,
            deadline,
        } => return revoke_all(store, &input, count_only, max_failures, deadline).await,
        StoreCommand::Check { repair } => return check(store, repair).await,
        StoreCommand::Sweep => {
            let progress = Progress::new("sweep");
            let report = store
                .sweep_with_progress(&|keys| progress.update(keys))
                .await?;
            progress.finish(&format!(
                "{} users, {} sessions removed in {} batches; keys visited",
                report.users, report.sessions_removed, report.batches
            ));
            output::print(&output::SweepOut {
                users: report.users,
                sessions_removed: report.sessions_removed,
                batches: report.batches,
                owner_keys_removed: report.owner_keys_removed,
                skipped: report.skipped,
                retention_seconds: report.retention.map(|r| r.as_secs_f64()),
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `revoke-all`: prints the outcome first (also when something could not
/// be revoked: then it fails with `partially_revoked` after printing),
/// progress and one summary line on stderr; when it gives up retrying, an
/// honest count and the last failure's kind.
async fn revoke_all<S: SessionStore>(
    store: &S,
    input: &RevokeUserSessionsInput,
    count_only: bool,
    max_failures: u32,
    deadline: Option<Duration>,
) -> Result<ExitCode, CliError> {
    let progress = Arc::new(Progress::new("revoke-all"));
    let mut options = RevokeAllOptions::new()
        .collect(!count_only)
        .max_failures(max_failures);
    if let Some(deadline) = deadline {
        options = options.deadline(deadline);
    }
    let updates = Arc::clone(&progress);
    let options = options.on_progress(move |done| updates.update(done));
    let error = match store.revoke_all_with(input, &options).await {
        Ok(report) => {
            print_revoke_all(&report, count_only)?;
            progress.finish(&report.summary());
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => error,
    };
    match error.revoke_all_report() {
        Some(report) if error.kind() == ErrorKind::PartiallyRevoked => {
            print_revoke_all(report, count_only)?;
            progress.finish(&report.summary());
        }
        Some(report) => progress.finish(&format!(
            "gave up: revoked {} session(s); run it again to finish the rest",
            report.count
        )),
        None => {}
    }
    Err(error.into())
}

fn print_revoke_all(report: &RevokeAllReport, count_only: bool) -> Result<(), CliError> {
    let outcome = if !report.unrevocable.is_empty() {
        "partially_revoked"
    } else if report.count == 0 {
        "no_active_sessions"
    } else {
        "revoked"
    };
    output::print(&RevokeAllOut {
        outcome,
        sessions: (!count_only).then_some(report.revoked.as_slice()),
        revoked: report.count,
        batches: report.batches,
        drift_repaired: report.drift_repaired,
        unrevocable: report
            .unrevocable
            .iter()
            .map(|u| UnrevocableOut {
                key: &u.key,
                member: u.member.as_deref(),
                reason: u.reason,
                message: &u.message,
            })
            .collect(),
    })
}

/// `check [--repair]`: prints the report; fails when problems remain. What
/// remains after a repair is what a fresh check finds, not what the repair
/// claims: anything it could not fix (a corrupt record, an index member it
/// cannot name) makes the command fail.
async fn check<S: SessionAdmin>(store: &S, repair: bool) -> Result<ExitCode, CliError> {
    let mode = if repair {
        CheckMode::Repair
    } else {
        CheckMode::Report
    };
    let progress = Progress::new("check");
    let report = store
        .check_with_progress(mode, &|keys| progress.update(keys))
        .await?;
    progress.finish(&format!(
        "{} records, {} index entries, {} problem(s), {} repaired; keys visited",
        report.records,
        report.index_entries,
        report.problems.len(),
        report.repaired.len()
    ));
    output::print(&report)?;
    let remaining = if !repair || report.problems.is_empty() {
        report.problems.len()
    } else {
        store
            .check(CheckMode::Report)
            .await
            .map_err(|e| CliError::from(e).context("checking after the repair"))?
            .problems
            .len()
    };
    if remaining > 0 {
        let after = if repair { " after repair" } else { "" };
        crate::error::report(
            "check",
            &format!("{remaining} problem(s) remain{after}"),
            "check_failed",
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
