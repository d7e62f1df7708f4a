//! The commands that talk to a store (`create`, `get`, `list`, `count`,
//! `revoke`, `revoke-all`, `check`), written once over [`SessionStore`] and
//! run against the in-memory or the Redis store. Every value is validated
//! by core before the store is touched.

use std::process::ExitCode;

use authsession_core::{
    ClientPublicKey, DeviceSessionId, Field, KeySpace, Revocation, RevokeActorId, RevokeActorType,
    RevokeReasonCode, RevokeSessionInput, RevokeUserSessionsInput, Session, Timestamp, UserId,
};
use authsession_driver::{CheckMode, RedisConfig, RedisSessionStore, SessionAdmin, SessionStore};

use crate::clock;
use crate::error::CliError;
use crate::output::{self, CountOut, RevokeAllOut, RevokeOut};
use crate::timestamp;

/// A validated store command, ready to run.
#[derive(Debug)]
pub(crate) enum StoreCommand {
    Create(Session),
    Get(DeviceSessionId),
    List(UserId),
    Count(UserId),
    Revoke(RevokeSessionInput),
    RevokeAll(RevokeUserSessionsInput),
    Check { repair: bool },
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

/// Connects to Redis at `url` with `keys` as the key space.
pub(crate) async fn connect_redis(
    url: &str,
    keys: KeySpace,
) -> Result<RedisSessionStore, CliError> {
    let mut config =
        RedisConfig::from_url(url).map_err(|e| CliError::from(e).context("--redis-url"))?;
    config.key_space = keys;
    RedisSessionStore::connect(config)
        .await
        .map_err(|e| CliError::from(e).context("connecting to redis"))
}

/// Runs `command` on `store`, printing its JSON result.
pub(crate) async fn run<S: SessionStore + SessionAdmin>(
    store: &S,
    command: StoreCommand,
) -> Result<ExitCode, CliError> {
    match command {
        StoreCommand::Create(session) => {
            store.create(&session).await?;
            output::print(&session)?;
        }
        StoreCommand::Get(id) => output::print(&store.get(&id).await?)?,
        StoreCommand::List(user) => output::print(&store.list_by_user_id(&user).await?)?,
        StoreCommand::Count(user) => {
            let active = store.count_active_by_user_id(&user).await?;
            output::print(&CountOut {
                user_id: &user,
                active,
            })?;
        }
        StoreCommand::Revoke(input) => {
            let outcome = store.revoke(&input).await?;
            output::print(&RevokeOut {
                outcome: outcome.as_str(),
                session: outcome.session(),
            })?;
        }
        StoreCommand::RevokeAll(input) => {
            let outcome = store.revoke_all_by_user_id(&input).await?;
            output::print(&RevokeAllOut {
                outcome: outcome.as_str(),
                sessions: outcome.sessions(),
            })?;
        }
        StoreCommand::Check { repair } => {
            let report = store
                .check(if repair {
                    CheckMode::Repair
                } else {
                    CheckMode::Report
                })
                .await?;
            output::print(&report)?;
            // Whatever was found and not fixed (corrupt records are never
            // changed by a repair) makes the check fail.
            let remaining = report.remaining();
            if remaining > 0 {
                eprintln!(
                    "authsession: check: {remaining} problem(s) remain{} (kind: check_failed)",
                    if repair { " after repair" } else { "" }
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
