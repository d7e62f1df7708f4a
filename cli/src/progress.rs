//! Progress of a long command on stderr: a live line (count and rate) when
//! stderr is a terminal, and one summary line always. Writes that fail (a
//! closed stderr) are ignored: progress is never a reason to stop.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the live line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(200);

/// One long command's progress.
pub(crate) struct Progress {
    what: &'static str,
    started: Instant,
    live: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    done: u64,
    drawn: Option<Instant>,
}

impl Progress {
    /// Progress of `what` (e.g. `revoke-all`); a live line only when
    /// stderr is a terminal.
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            started: Instant::now(),
            live: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
        }
    }

    /// `done` items so far: redraws the live line (count and rate).
    pub(crate) fn update(&self, done: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.done = done;
        if !self.live || state.drawn.is_some_and(|at| at.elapsed() < REDRAW) {
            return;
        }
        state.drawn = Some(Instant::now());
        let _ = write!(
            std::io::stderr(),
            "\r\x1b[2K{}: {done} ({:.0}/s)",
            self.what,
            rate(done, self.started.elapsed())
        );
    }

    /// Ends the live line and prints one summary line, with the count and
    /// rate so far.
    pub(crate) fn finish(&self, summary: &str) {
        let done = self.state.lock().map(|s| s.done).unwrap_or(0);
        let elapsed = self.started.elapsed();
        let mut err = std::io::stderr().lock();
        if self.live {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(
            err,
            "authsession: {}: {summary} ({done} in {:.1} s, {:.0}/s)",
            self.what,
            elapsed.as_secs_f64(),
            rate(done, elapsed)
        );
    }
}

fn rate(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        done as f64 / secs
    } else {
        0.0
    }
}
