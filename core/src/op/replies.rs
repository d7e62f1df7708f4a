//! Reading the store's answers: the replies to a step's reads and the
//! outcome of an applied plan, each checked against the step the
//! operation is waiting on.

use crate::ids::UserId;
use crate::op::decode;
use crate::op::{Input, Step, TransitionError};
use crate::plan::{Applied, KeyType, Outline, Plan, Precondition, Reply};

/// An input that does not answer the step the operation is waiting on: a
/// driver bug, reported as one (never retryable; nothing is written).
pub(crate) fn out_of_sequence<T>(op: &'static str) -> Result<T, TransitionError> {
    Err(TransitionError::OutOfSequence { op })
}

/// The replies of `input`, or an out-of-sequence error.
pub(crate) fn replies(input: Input, op: &'static str) -> Result<Vec<Reply>, TransitionError> {
    match input {
        Input::Replies(replies) => Ok(replies),
        _ => out_of_sequence(op),
    }
}

/// The outcome of a best-effort plan's apply: `None` when the driver
/// skipped it ([`Input::Skipped`]), or an out-of-sequence error.
pub(crate) fn best_effort_applied(
    input: Input,
    op: &'static str,
) -> Result<Option<Applied>, TransitionError> {
    match input {
        Input::Skipped => Ok(None),
        input => applied(input, op).map(Some),
    }
}

/// The outcome of an apply, or an out-of-sequence error.
pub(crate) fn applied(input: Input, op: &'static str) -> Result<Applied, TransitionError> {
    match input {
        Input::Applied(applied) => Ok(applied),
        _ => out_of_sequence(op),
    }
}

/// The single reply of a one-read step (a string value), type-checked.
pub(crate) fn single_value(
    replies: Vec<Reply>,
    key: &str,
    op: &'static str,
) -> Result<Option<Vec<u8>>, TransitionError> {
    match replies.into_iter().next() {
        Some(Reply::Value(value)) => Ok(value),
        Some(Reply::WrongType) => Err(TransitionError::WrongType {
            key: key.to_owned(),
            expected: KeyType::String,
        }),
        _ => out_of_sequence(op),
    }
}

/// The user an owner key names (tagged layout), from the answer to its
/// read: `not_found` when the key is absent, `corrupt_owner` when it does
/// not hold a user id.
pub(crate) fn owner(
    input: Input,
    owner_key: String,
    op: &'static str,
) -> Result<UserId, TransitionError> {
    let Some(bytes) = single_value(replies(input, op)?, &owner_key, op)? else {
        return Err(TransitionError::NotFound { key: owner_key });
    };
    decode::user_id(&bytes).ok_or(TransitionError::CorruptOwner { key: owner_key })
}

/// The members of a range reply.
pub(crate) fn range_members(
    reply: Option<Reply>,
    key: &str,
    op: &'static str,
) -> Result<Vec<Vec<u8>>, TransitionError> {
    match reply {
        Some(Reply::Names(members)) => Ok(members),
        Some(Reply::Members(members)) => Ok(members.into_iter().map(|(m, _)| m).collect()),
        Some(Reply::WrongType) => Err(index_wrong_type(key)),
        _ => out_of_sequence(op),
    }
}

/// The members with scores of a `Members` reply (a range read with
/// scores), or the index's wrong type.
pub(crate) fn scored_members(
    reply: Option<Reply>,
    key: &str,
    op: &'static str,
) -> Result<Vec<(Vec<u8>, f64)>, TransitionError> {
    match reply {
        Some(Reply::Members(members)) => Ok(members),
        Some(Reply::WrongType) => Err(index_wrong_type(key)),
        _ => out_of_sequence(op),
    }
}

/// The length of an index (`IndexLen` reply), or its wrong type.
pub(crate) fn index_len(
    reply: Option<Reply>,
    key: &str,
    op: &'static str,
) -> Result<u64, TransitionError> {
    match reply {
        Some(Reply::Len(n)) => Ok(n),
        Some(Reply::WrongType) => Err(index_wrong_type(key)),
        _ => out_of_sequence(op),
    }
}

fn index_wrong_type(key: &str) -> TransitionError {
    TransitionError::WrongType {
        key: key.to_owned(),
        expected: KeyType::SortedSet,
    }
}

/// The values of a `Values` reply.
pub(crate) fn values(
    reply: Option<Reply>,
    op: &'static str,
) -> Result<Vec<Option<Vec<u8>>>, TransitionError> {
    match reply {
        Some(Reply::Values(values)) => Ok(values),
        _ => out_of_sequence(op),
    }
}

/// What reading a plan's answer needs of it: a [`Plan`] itself, or the
/// [`Outline`] an operation kept instead.
pub(crate) trait Explain {
    /// The key of the precondition at `index`.
    fn precondition_key(&self, index: usize) -> Option<&str>;
    /// The type the plan used `key` as.
    fn key_type(&self, key: &str) -> KeyType;
}

impl Explain for Plan {
    fn precondition_key(&self, index: usize) -> Option<&str> {
        self.precondition(index).map(Precondition::key)
    }

    fn key_type(&self, key: &str) -> KeyType {
        Plan::key_type(self, key)
    }
}

impl Explain for Outline {
    fn precondition_key(&self, index: usize) -> Option<&str> {
        Outline::precondition_key(self, index)
    }

    fn key_type(&self, key: &str) -> KeyType {
        Outline::key_type(self, key)
    }
}

/// The key of the precondition at `index`.
pub(crate) fn violated_key(plan: &impl Explain, index: usize) -> String {
    plan.precondition_key(index)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The wrong-type error for `key` of `plan`.
pub(crate) fn wrong_type(plan: &impl Explain, key: String) -> TransitionError {
    let expected = plan.key_type(&key);
    TransitionError::WrongType { key, expected }
}

/// The answer to a plan whose violation means "changed since read": the
/// backoff that reads again, or the plan's wrong type. `None` when it
/// applied.
pub(crate) fn retry_unless_done<T>(
    plan: &impl Explain,
    applied: Applied,
) -> Result<Option<Step<T>>, TransitionError> {
    match applied {
        Applied::Done => Ok(None),
        Applied::Violated { index } => Ok(Some(Step::Backoff {
            key: violated_key(plan, index),
        })),
        Applied::WrongType { key } => Err(wrong_type(plan, key)),
    }
}
