//! Progress of a long command (`check`, `sweep`, `migrate`, `revoke-all`)
//! on stderr: a live line, rewritten in place, only when stderr is a
//! terminal; one summary line always. stdout stays the command's JSON.
//!
//! Writing is best effort: a closed or full stderr never fails or slows
//! the command (errors are ignored, the live line is throttled).

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the live line is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

/// One long command's progress.
#[derive(Debug)]
pub(crate) struct Progress {
    what: &'static str,
    started: Instant,
    /// Whether stderr is a terminal (the live line is drawn).
    live: bool,
    done: AtomicU64,
    /// When the live line was last drawn (`None`: never).
    drawn: Mutex<Option<Instant>>,
    finished: AtomicBool,
}

impl Progress {
    /// Progress of `what` (the command's name, e.g. `"check"`), starting now.
    pub(crate) fn new(what: &'static str) -> Self {
        Self::with_live(what, std::io::stderr().is_terminal())
    }

    fn with_live(what: &'static str, live: bool) -> Self {
        Self {
            what,
            started: Instant::now(),
            live,
            done: AtomicU64::new(0),
            drawn: Mutex::new(None),
            finished: AtomicBool::new(false),
        }
    }

    /// `done` items so far (monotonic in practice; the largest seen wins).
    /// Redraws the live line at most every 200 ms, and only on a terminal.
    pub(crate) fn update(&self, done: u64) {
        self.done.fetch_max(done, Ordering::Relaxed);
        if !self.live {
            return;
        }
        // Another thread drawing right now: skip, the next update draws.
        let Ok(mut drawn) = self.drawn.try_lock() else {
            return;
        };
        let now = Instant::now();
        if drawn.is_some_and(|at| now.duration_since(at) < REDRAW_EVERY) {
            return;
        }
        *drawn = Some(now);
        let done = self.done.load(Ordering::Relaxed);
        let line = format!(
            "\r\x1b[Kauthsession: {}: {done} ({})",
            self.what,
            rate(done, now.duration_since(self.started))
        );
        write_stderr(&line);
    }

    /// Ends the progress: clears the live line and prints one summary line
    /// (`summary`, then the count, the time taken and the rate).
    pub(crate) fn finish(&self, summary: &str) {
        self.finished.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let done = self.done.load(Ordering::Relaxed);
        let line = format!(
            "{}authsession: {}: {} ({done} in {:.1} s, {})\n",
            self.clear(),
            self.what,
            one_line(summary),
            elapsed.as_secs_f64(),
            rate(done, elapsed)
        );
        write_stderr(&line);
    }

    /// What erases the live line, if one was drawn.
    fn clear(&self) -> &'static str {
        let drawn = self.drawn.lock().map(|d| d.is_some()).unwrap_or(true);
        if self.live && drawn {
            "\r\x1b[K"
        } else {
            ""
        }
    }
}

impl Drop for Progress {
    /// A command that fails before `finish` leaves no half-drawn line in
    /// front of its error message.
    fn drop(&mut self) {
        if !self.finished.load(Ordering::Relaxed) {
            write_stderr(self.clear());
        }
    }
}

/// `N/s`, rounded.
fn rate(done: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return "-/s".to_owned();
    }
    // A display figure: f64's precision is plenty.
    let per_sec = done as f64 / secs;
    format!("{per_sec:.0}/s")
}

/// `text` with every line break replaced by a space: one line on stderr.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn write_stderr(text: &str) {
    if text.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_keep_the_largest_and_only_a_terminal_gets_a_live_line() {
        let progress = Progress::with_live("check", false);
        progress.update(5);
        progress.update(3);
        assert_eq!(progress.done.load(Ordering::Relaxed), 5);
        assert!(progress.drawn.lock().unwrap().is_none(), "no live line");
        assert_eq!(progress.clear(), "");
    }

    #[test]
    fn summaries_stay_on_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
        assert_eq!(rate(10, Duration::from_secs(2)), "5/s");
        assert_eq!(rate(10, Duration::ZERO), "-/s");
    }
}
