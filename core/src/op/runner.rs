//! The loop's bookkeeping, stated once: [`Runner`] feeds an operation the
//! answers to its steps and keeps the accounting every driver needs —
//! attempts per batch, progress, exhaustion, empty plans — so a driver
//! does only I/O (and, if it wants, deadlines, pauses and telemetry).
//! Written only against the public [`Operation`] API, like rustls'
//! `complete_io`: [`super::run`] drives it over
//! [`MemoryKv`](crate::model::MemoryKv), the async driver over any store.

use crate::op::{Input, Operation, Step, TransitionError};
use crate::plan::{Applied, Plan, Read, Reply};

/// Consecutive failed attempts, started afresh by progress: at most `max`
/// in a row. The runner counts an operation's invalidated attempts per
/// batch with it; a driver that restarts a whole operation after a
/// failure (revoke all) counts its failures in a row the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    max: u32,
    failed: u32,
}

impl Attempts {
    /// At most `max` failed attempts in a row (at least 1).
    pub fn new(max: u32) -> Self {
        Self {
            max: max.max(1),
            failed: 0,
        }
    }

    /// Progress was made: the next failure is the first in a row again.
    pub fn progress(&mut self) {
        self.failed = 0;
    }

    /// One more failed attempt: whether another may follow (`false` once
    /// `max` have failed in a row).
    pub fn fail(&mut self) -> bool {
        self.failed = self.failed.saturating_add(1);
        self.failed < self.max
    }

    /// Failed attempts in a row so far.
    pub fn failed(&self) -> u32 {
        self.failed
    }
}

/// What the driver does next (a [`Step`] that needs it).
#[derive(Debug, Clone, PartialEq)]
#[must_use = "an action must be taken and answered"]
pub enum Action<T> {
    /// Answer these reads (one round trip; they may be pipelined) with
    /// [`Runner::replies`].
    Read(Vec<Read>),
    /// Apply this plan (never empty) atomically and answer with
    /// [`Runner::applied`], or [`Runner::skipped`] for a best-effort plan
    /// the store could not write.
    Apply(Plan),
    /// An invalidated attempt with attempts left: pause (or give up),
    /// then answer [`Runner::resumed`].
    Backoff(Backoff),
    /// The operation's result.
    Done(T),
}

/// An invalidated attempt the driver pauses after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    key: String,
    attempt: u32,
}

impl Backoff {
    /// The key whose change invalidated the attempt.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Failed attempts in a row so far, this one included (1 for the
    /// first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The error when the driver gives up here (its deadline leaves no
    /// room for the pause).
    pub fn give_up(self) -> TransitionError {
        TransitionError::ContentionExhausted {
            attempts: self.attempt,
            key: self.key,
        }
    }
}

/// What a run has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tally {
    /// Plans with writes applied (batches of progress).
    pub batches: u64,
    /// Invalidated attempts (backoffs asked for, the last one included
    /// when it exhausted the attempts).
    pub retries: u64,
}

/// Runs one operation: hand it each answer, act on each [`Action`].
///
/// ```text
/// loop:
///     match runner.advance()?:
///         Read(reads)     => runner.replies(one round trip answering reads)
///         Apply(plan)     => runner.applied(apply plan atomically)
///         Backoff(b)      => pause (or give up: b.give_up()); runner.resumed()
///         Done(output)    => return output
/// ```
///
/// A plan with writes that applied is progress: the attempts start afresh
/// ([`Runner::applied`] says so, for a driver's per-batch deadline). The
/// `max_attempts`-th invalidated attempt in a row ends the run with
/// `contention_exhausted`. An empty plan is answered as applied without
/// the driver. Calling [`Runner::advance`] before answering the last action
/// is `out_of_sequence`.
#[derive(Debug)]
pub struct Runner<O> {
    op: O,
    attempts: Attempts,
    answer: Option<Input>,
    /// The plan handed out has writes.
    writes: bool,
    tally: Tally,
}

impl<O: Operation> Runner<O> {
    /// Runs `op`, at most `max_attempts` invalidated attempts per batch.
    pub fn new(op: O, max_attempts: u32) -> Self {
        Self {
            op,
            attempts: Attempts::new(max_attempts),
            answer: Some(Input::Start),
            writes: false,
            tally: Tally::default(),
        }
    }

    /// The operation's name.
    pub fn name(&self) -> &'static str {
        self.op.name()
    }

    /// What the run has done so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// The operation.
    pub fn operation(&self) -> &O {
        &self.op
    }

    /// Advances the operation with the answer to the last action and says
    /// what to do next.
    pub fn advance(&mut self) -> Result<Action<O::Output>, TransitionError> {
        let Some(mut input) = self.answer.take() else {
            return Err(TransitionError::OutOfSequence { op: self.op.name() });
        };
        loop {
            match self.op.resume(input)? {
                Step::Read(reads) => return Ok(Action::Read(reads)),
                // Nothing to apply: no round trip.
                Step::Apply(plan) if plan.is_empty() => input = Input::Applied(Applied::Done),
                Step::Apply(plan) => {
                    self.writes = !plan.writes().is_empty();
                    return Ok(Action::Apply(plan));
                }
                Step::Backoff { key } => {
                    self.tally.retries = self.tally.retries.saturating_add(1);
                    let more = self.attempts.fail();
                    let backoff = Backoff {
                        key,
                        attempt: self.attempts.failed(),
                    };
                    return if more {
                        Ok(Action::Backoff(backoff))
                    } else {
                        Err(backoff.give_up())
                    };
                }
                Step::Done(output) => return Ok(Action::Done(output)),
            }
        }
    }

    /// The answer to [`Action::Read`], in order.
    pub fn replies(&mut self, replies: Vec<Reply>) {
        self.answer = Some(Input::Replies(replies));
    }

    /// The answer to [`Action::Apply`]; `true` when it was progress (a
    /// plan with writes applied): the attempts start afresh.
    pub fn applied(&mut self, applied: Applied) -> bool {
        let progress = applied == Applied::Done && self.writes;
        if progress {
            self.attempts.progress();
            self.tally.batches = self.tally.batches.saturating_add(1);
        }
        self.answer = Some(Input::Applied(applied));
        progress
    }

    /// The answer to [`Action::Apply`] of a best-effort plan the store
    /// could not write ([`Input::Skipped`]).
    pub fn skipped(&mut self) {
        self.answer = Some(Input::Skipped);
    }

    /// The answer to [`Action::Backoff`]: the pause is over.
    pub fn resumed(&mut self) {
        self.answer = Some(Input::Resumed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{OnViolation, Write};

    /// An operation that takes the steps it is given, in order, and
    /// records the inputs it was handed.
    struct Scripted {
        steps: std::vec::IntoIter<Step<u8>>,
        inputs: Vec<Input>,
    }

    fn scripted(steps: Vec<Step<u8>>) -> Scripted {
        Scripted {
            steps: steps.into_iter(),
            inputs: Vec::new(),
        }
    }

    impl Operation for Scripted {
        type Output = u8;
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn resume(&mut self, input: Input) -> Result<Step<u8>, TransitionError> {
            self.inputs.push(input);
            Ok(self.steps.next().unwrap_or(Step::Done(0)))
        }
    }

    fn backoff() -> Step<u8> {
        Step::Backoff { key: "k".into() }
    }

    fn writing() -> Plan {
        let write = Write::Delete { key: "k".into() };
        Plan::new(Vec::new(), vec![write], OnViolation::Retry)
    }

    #[test]
    fn an_empty_plan_is_answered_without_the_driver() {
        let mut op = scripted(vec![
            Step::Apply(Plan::new(Vec::new(), Vec::new(), OnViolation::Retry)),
            Step::Done(7),
        ]);
        let mut runner = Runner::new(&mut op, 3);
        assert_eq!(runner.advance(), Ok(Action::Done(7)));
        assert_eq!(op.inputs, [Input::Start, Input::Applied(Applied::Done)]);
    }

    #[test]
    fn attempts_run_out_in_a_row_and_progress_starts_them_afresh() {
        let steps = vec![
            backoff(),
            backoff(),
            Step::Apply(writing()),
            backoff(),
            backoff(),
            backoff(),
        ];
        let mut op = scripted(steps);
        let mut runner = Runner::new(&mut op, 3);
        for attempt in [1, 2] {
            let Ok(Action::Backoff(b)) = runner.advance() else {
                panic!("a backoff")
            };
            assert_eq!((b.key(), b.attempt()), ("k", attempt));
            runner.resumed();
        }
        assert!(matches!(runner.advance(), Ok(Action::Apply(_))));
        assert!(runner.applied(Applied::Done), "writes applied: progress");
        for attempt in [1, 2] {
            let Ok(Action::Backoff(b)) = runner.advance() else {
                panic!("a backoff")
            };
            assert_eq!(b.attempt(), attempt);
            runner.resumed();
        }
        let exhausted = TransitionError::ContentionExhausted {
            attempts: 3,
            key: "k".into(),
        };
        assert_eq!(runner.advance(), Err(exhausted));
        assert_eq!(
            runner.tally(),
            Tally {
                batches: 1,
                retries: 5
            }
        );
    }

    #[test]
    fn a_violated_or_skipped_plan_is_no_progress() {
        let mut op = scripted(vec![Step::Apply(writing()), Step::Apply(writing())]);
        let mut runner = Runner::new(&mut op, 3);
        assert!(matches!(runner.advance(), Ok(Action::Apply(_))));
        assert!(!runner.applied(Applied::Violated { index: 0 }));
        assert!(matches!(runner.advance(), Ok(Action::Apply(_))));
        runner.skipped();
        assert_eq!(runner.advance(), Ok(Action::Done(0)));
        assert_eq!(runner.tally().batches, 0);
        assert_eq!(op.inputs.last(), Some(&Input::Skipped));
    }

    #[test]
    fn next_before_an_answer_is_out_of_sequence() {
        let mut op = scripted(vec![Step::Read(Vec::new())]);
        let mut runner = Runner::new(&mut op, 3);
        assert_eq!(runner.advance(), Ok(Action::Read(Vec::new())));
        let error = runner.advance().unwrap_err();
        assert_eq!(error, TransitionError::OutOfSequence { op: "scripted" });
    }

    #[test]
    fn one_failure_in_a_row_at_most_one() {
        let mut attempts = Attempts::new(0);
        assert!(!attempts.fail());
        let mut attempts = Attempts::new(2);
        assert!(attempts.fail());
        attempts.progress();
        assert!(attempts.fail());
        assert!(!attempts.fail());
        assert_eq!(attempts.failed(), 2);
    }
}
