//! Commands that need no store: `decode` (validate raw records with core's
//! strict codec) and `keys` (show derived keys).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use authsession_core::{codec, DeviceSessionId, KeySpace, Session, UserId};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::output;

/// Opens `file`, or stdin when none is given.
fn open_input(file: Option<&Path>) -> Result<Box<dyn Read>, CliError> {
    match file {
        Some(path) => File::open(path)
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| CliError::io(&format!("opening {}", path.display()), &e)),
        None => Ok(Box::new(std::io::stdin().lock())),
    }
}

/// `decode --id ID [FILE]`: strict-decode one raw record; print the session.
pub(crate) fn decode_one(id: &str, file: Option<&Path>) -> Result<(), CliError> {
    let id = DeviceSessionId::parse(id)?;
    let mut bytes = Vec::new();
    open_input(file)?
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::io("reading the record", &e))?;
    let session = codec::decode(&id, &bytes)?;
    output::print(&session)
}

/// One input line of `decode --batch`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine {
    id: String,
    payload_b64: String,
}

/// One output line of `decode --batch`.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchResult {
    Ok {
        ok: bool,
        session: Session,
        reencoded_b64: String,
    },
    Err {
        ok: bool,
        kind: String,
        error: String,
    },
}

impl BatchResult {
    fn of(result: Result<Session, CliError>) -> Self {
        match result {
            Ok(session) => BatchResult::Ok {
                ok: true,
                reencoded_b64: STANDARD.encode(codec::encode(&session)),
                session,
            },
            Err(error) => BatchResult::Err {
                ok: false,
                kind: error.kind().to_owned(),
                error: error.message().to_owned(),
            },
        }
    }
}

/// Decodes one batch line; every failure is a per-line error.
fn decode_batch_line(line: &[u8]) -> Result<Session, CliError> {
    let line: BatchLine = serde_json::from_slice(line)
        .map_err(|e| CliError::new("invalid_batch_line", format!("invalid batch line: {e}")))?;
    let id = DeviceSessionId::parse(line.id)?;
    let payload = STANDARD.decode(line.payload_b64.as_bytes()).map_err(|e| {
        CliError::new(
            "invalid_payload_base64",
            format!("payload_b64 is not standard base64: {e}"),
        )
    })?;
    Ok(codec::decode(&id, &payload)?)
}

/// `decode --batch [FILE]`: JSON lines `{"id":…,"payload_b64":…}` in, one
/// result line out per input line, in order. A bad line never stops the
/// batch; only I/O failures do.
pub(crate) fn decode_batch(file: Option<&Path>) -> Result<(), CliError> {
    let mut input = BufReader::new(open_input(file)?);
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::io("reading batch input", &e))?;
        if read == 0 {
            break;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        output::write_line(&mut out, &BatchResult::of(decode_batch_line(content)))?;
        // Flush before the reader would block, so an interactive producer
        // sees each answer without waiting for the buffer to fill.
        if input.buffer().is_empty() {
            out.flush()
                .map_err(|e| CliError::io("writing output", &e))?;
        }
    }
    out.flush().map_err(|e| CliError::io("writing output", &e))
}

/// The keys derived for an id and/or a user. In the tagged layout the
/// record key needs both (it carries the user's hash tag); the id alone
/// gives its owner key.
#[derive(Serialize)]
struct DerivedKeys {
    #[serde(skip_serializing_if = "Option::is_none")]
    session_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_sessions_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_active_sessions_key: Option<String>,
}

/// `keys --id ID | --user USER`: print the derived keys.
pub(crate) fn keys(
    key_space: &KeySpace,
    id: Option<&str>,
    user: Option<&str>,
) -> Result<(), CliError> {
    let id = id.map(DeviceSessionId::parse).transpose()?;
    let user = user.map(UserId::parse).transpose()?;
    let session_key = match (&id, &user) {
        (Some(id), Some(user)) => Some(key_space.record_key(user, id)),
        (Some(id), None) => key_space.record_key_of_id(id),
        (None, _) => None,
    };
    output::print(&DerivedKeys {
        session_key,
        owner_key: id.as_ref().and_then(|id| key_space.owner_key(id)),
        user_sessions_key: user.as_ref().map(|u| key_space.user_sessions_key(u)),
        user_active_sessions_key: user.as_ref().map(|u| key_space.user_active_sessions_key(u)),
    })
}
