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

/// The most bytes `decode` reads as one record, and `decode --batch` as one
/// line (without its line break). A valid record is under 2 KiB; anything
/// longer is refused as `invalid_input` without being held in memory.
pub(crate) const MAX_INPUT: usize = 64 * 1024;

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
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::io("reading the record", &e))?;
    if bytes.len() > MAX_INPUT {
        return Err(too_long("the record"));
    }
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

/// `invalid_input` for input over [`MAX_INPUT`].
fn too_long(what: &str) -> CliError {
    CliError::new(
        "invalid_input",
        format!("{what} is longer than {MAX_INPUT} bytes"),
    )
}

/// What [`BoundedLines::next`] read.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (without its `\n`) is in the buffer.
    Complete,
    /// The line is longer than the limit. Nothing of it is kept; the rest
    /// of it is skipped by the next call, so this is known (and can be
    /// answered) before an endless line ends.
    TooLong,
    /// No more input.
    End,
}

/// Lines of at most `max` bytes from `input`, in memory bounded by `max`
/// whatever the input (`/dev/zero` included).
struct BoundedLines<R> {
    input: BufReader<R>,
    max: usize,
    /// In the middle of an over-long line: skip to its end first.
    skipping: bool,
}

impl<R: Read> BoundedLines<R> {
    fn new(input: BufReader<R>, max: usize) -> Self {
        Self {
            input,
            max,
            skipping: false,
        }
    }

    /// The next chunk of input (empty at the end), retrying interrupts.
    fn chunk(&mut self) -> std::io::Result<&[u8]> {
        loop {
            match self.input.fill_buf() {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
                Ok(_) => return Ok(self.input.buffer()),
            }
        }
    }

    /// Reads the next line into `line` (cleared first).
    fn next(&mut self, line: &mut Vec<u8>) -> std::io::Result<Line> {
        line.clear();
        while self.skipping {
            let chunk = self.chunk()?;
            if chunk.is_empty() {
                return Ok(Line::End);
            }
            let (used, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            self.input.consume(used);
            self.skipping = !ended;
        }
        let mut any = false;
        loop {
            let max = self.max;
            let chunk = self.chunk()?;
            if chunk.is_empty() {
                return Ok(if any { Line::Complete } else { Line::End });
            }
            any = true;
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = chunk
                .get(..newline.unwrap_or(chunk.len()))
                .unwrap_or_default();
            if line.len() + part.len() > max {
                line.clear();
                match newline {
                    Some(at) => self.input.consume(at + 1),
                    None => {
                        let all = chunk.len();
                        self.input.consume(all);
                        self.skipping = true;
                    }
                }
                return Ok(Line::TooLong);
            }
            line.extend_from_slice(part);
            match newline {
                Some(at) => {
                    self.input.consume(at + 1);
                    return Ok(Line::Complete);
                }
                None => {
                    let all = chunk.len();
                    self.input.consume(all);
                }
            }
        }
    }
}

/// `decode --batch [FILE]`: JSON lines `{"id":…,"payload_b64":…}` in, one
/// result line out per input line, in order. A bad line (over
/// [`MAX_INPUT`] bytes included) never stops the batch; only I/O failures
/// do.
pub(crate) fn decode_batch(file: Option<&Path>) -> Result<(), CliError> {
    // One byte more than the cap: room for a `\r` before the `\n`.
    let mut input = BoundedLines::new(BufReader::new(open_input(file)?), MAX_INPUT + 1);
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut line = Vec::new();
    loop {
        let read = input
            .next(&mut line)
            .map_err(|e| CliError::io("reading batch input", &e))?;
        let result = match read {
            Line::End => break,
            Line::TooLong => Err(too_long("the line")),
            Line::Complete => {
                // A `\r\n` line break counts as a line break, not content.
                let content = line.strip_suffix(b"\r").unwrap_or(&line);
                if content.len() > MAX_INPUT {
                    Err(too_long("the line"))
                } else {
                    decode_batch_line(content)
                }
            }
        };
        output::write_line(&mut out, &BatchResult::of(result))?;
        // Flush before the reader would block, so an interactive producer
        // sees each answer without waiting for the buffer to fill (and
        // before skipping an over-long line, which may never end).
        if read == Line::TooLong || input.input.buffer().is_empty() {
            out.flush().map_err(|e| CliError::output(&e))?;
        }
    }
    out.flush().map_err(|e| CliError::output(&e))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(Line, Vec<u8>)> {
        // A tiny buffer, so lines cross buffer boundaries.
        let mut reader = BoundedLines::new(BufReader::with_capacity(3, input), max);
        let mut line = Vec::new();
        let mut all = Vec::new();
        loop {
            match reader.next(&mut line).unwrap() {
                Line::End => return all,
                read => all.push((read, line.clone())),
            }
        }
    }

    #[test]
    fn lines_over_the_limit_are_dropped_whole_and_reading_goes_on() {
        let got = lines(b"abcd\nabcdefgh\n\nxy", 5);
        assert_eq!(
            got,
            [
                (Line::Complete, b"abcd".to_vec()),
                (Line::TooLong, Vec::new()),
                (Line::Complete, Vec::new()),
                (Line::Complete, b"xy".to_vec()),
            ]
        );
        assert_eq!(lines(b"abcdef", 5), [(Line::TooLong, Vec::new())]);
        assert_eq!(lines(b"abcdef\n", 5), [(Line::TooLong, Vec::new())]);
        assert_eq!(lines(b"abcde", 5), [(Line::Complete, b"abcde".to_vec())]);
        assert_eq!(
            lines(b"abcdefghijkl\nab\n", 5),
            [
                (Line::TooLong, Vec::new()),
                (Line::Complete, b"ab".to_vec())
            ]
        );
        assert!(lines(b"", 5).is_empty());
    }
}
