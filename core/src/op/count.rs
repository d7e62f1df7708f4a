//! `count`: how many active sessions a user has.

use crate::ids::UserId;
use crate::keys::KeySpace;
use crate::op::replies::index_len;
use crate::op::{replies, Input, Operation, Step, TransitionError};
use crate::plan::Read;

/// `count`: the cardinality of the user's active index (1 round trip).
#[derive(Debug)]
pub struct Count {
    key: String,
    started: bool,
}

impl Count {
    /// Counts `user`'s active sessions.
    pub fn new(keys: &KeySpace, user: &UserId) -> Self {
        Self {
            key: keys.user_active_sessions_key(user),
            started: false,
        }
    }
}

impl Operation for Count {
    type Output = u64;

    fn name(&self) -> &'static str {
        "count"
    }

    fn resume(&mut self, input: Input) -> Result<Step<u64>, TransitionError> {
        if !self.started {
            self.started = true;
            return Ok(Step::Read(vec![Read::IndexLen {
                key: self.key.clone(),
            }]));
        }
        let reply = replies(input, "count")?.into_iter().next();
        index_len(reply, &self.key, "count").map(Step::Done)
    }
}
