//! From parsed arguments to a running command: the offline commands run
//! at once; a store command is validated whole (every value through core's
//! constructors) before any connection is made, then run on the store the
//! flags select.

use std::process::ExitCode;

use authsession_core::op::{PageCursor, PageLimit, PageRequest, StatusFilter};
use authsession_core::{DeviceSessionId, RevokeSessionInput, RevokeUserSessionsInput, UserId};

use crate::args::{Cli, Command, DEFAULT_REDIS_URL};
use crate::demo::run_demo;
use crate::error::CliError;
use crate::migrate::run_migrate;
use crate::store::{CreateFlags, StoreCommand};
use crate::watch::run_watch;
use crate::{duration, offline};

pub(crate) fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let global = cli.global;
    let command = match cli.command {
        Command::Decode(args) => {
            match (args.batch, args.id) {
                (true, _) => offline::decode_batch(args.file.as_deref())?,
                (false, Some(id)) => offline::decode_one(&id, args.file.as_deref())?,
                (false, None) => return Err(CliError::usage("decode needs --id or --batch")),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Keys(args) => {
            let target = global.target(None);
            offline::keys(
                &global.options(&target)?.keys,
                args.id.as_deref(),
                args.user.as_deref(),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Demo => return run_demo(&global),
        #[cfg(feature = "bench")]
        Command::Bench(args) => return crate::bench::run_bench(&global, &args),
        Command::Migrate(args) => return run_migrate(&global, &args),
        Command::Watch { ids, timeout } => return run_watch(&global, &ids, timeout.as_deref()),
        // Every value is validated before any connection is made.
        Command::Create(args) => StoreCommand::Create {
            session: CreateFlags {
                id: &args.id,
                user: &args.user,
                public_key: &args.public_key,
                created_at: args.created_at.as_deref(),
            }
            .parse()?,
            with_evicted: global.create_reports_evictions(),
        },
        Command::Get { id, user } => StoreCommand::Get {
            id: parse_id(&id)?,
            user: user.as_deref().map(parse_user).transpose()?,
        },
        Command::List {
            user,
            limit,
            cursor,
            active,
        } => {
            let user = parse_user(&user)?;
            match page_request(limit, cursor.as_deref(), active)? {
                Some(request) => StoreCommand::ListPage(user, request),
                None => StoreCommand::List(user),
            }
        }
        Command::Count { user } => StoreCommand::Count(parse_user(&user)?),
        Command::Revoke { id, revocation } => StoreCommand::Revoke {
            input: RevokeSessionInput {
                device_session_id: parse_id(&id)?,
                revocation: revocation.flags().parse()?,
            },
            now: revocation.at.is_none(),
        },
        Command::RevokeAll {
            user,
            revocation,
            count,
            max_failures,
            deadline,
        } => StoreCommand::RevokeAll {
            input: RevokeUserSessionsInput {
                user_id: parse_user(&user)?,
                revocation: revocation.flags().parse()?,
            },
            count_only: count,
            max_failures,
            deadline: deadline
                .map(|text| duration::parse(&text, "--deadline"))
                .transpose()?,
        },
        Command::Check { repair } => StoreCommand::Check { repair },
        Command::Sweep => StoreCommand::Sweep,
    };
    let target = global.target(Some(DEFAULT_REDIS_URL));
    let options = global.options(&target)?;
    runtime(false)?.block_on(target.open_and_run(&options, command))
}

pub(crate) fn parse_id(text: &str) -> Result<DeviceSessionId, CliError> {
    DeviceSessionId::parse(text).map_err(|e| CliError::from(e).context("device session id"))
}

fn parse_user(text: &str) -> Result<UserId, CliError> {
    UserId::parse(text).map_err(|e| CliError::from(e).context("user id"))
}

/// `list`'s page request, when --limit, --cursor or --active asks for one.
fn page_request(
    limit: Option<usize>,
    cursor: Option<&str>,
    active: bool,
) -> Result<Option<PageRequest>, CliError> {
    if limit.is_none() && cursor.is_none() && !active {
        return Ok(None);
    }
    let limit = match limit {
        Some(n) => PageLimit::new(n).map_err(|e| CliError::from(e).context("--limit"))?,
        None => PageLimit::default(),
    };
    let cursor = cursor
        .map(|text| {
            PageCursor::parse(text)
                .map_err(|e| CliError::new(e.kind(), e.to_string()).context("--cursor"))
        })
        .transpose()?;
    Ok(Some(PageRequest {
        limit,
        cursor,
        status: if active {
            StatusFilter::Active
        } else {
            StatusFilter::All
        },
    }))
}

/// The async runtime a command runs on (`multi_thread`: the bench's
/// workers).
pub(crate) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, CliError> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", &e))
}
