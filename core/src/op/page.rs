//! Keyset pagination: `list_page`.

use std::cmp::Ordering;
use std::fmt;

use base64::Engine as _;

use crate::ids::{DeviceSessionId, UserId};
use crate::keys::{IndexScore, KeySpace};
use crate::op::expiry::{expire_plan, lazy_removals, OwnerRemovals};
use crate::op::list::{range_members, scored_members, values};
use crate::op::members::{check_members, confirmed, ids_and_keys, wrong_type};
use crate::op::{
    applied, best_effort_applied, out_of_sequence, replies, Input, Operation, Policy, Step,
    TransitionError,
};
use crate::order::{newest_first, sort_newest_first};
use crate::plan::{Applied, IndexRange, Member, Plan, Read, ScoreBound};
use crate::session::Session;
use crate::timestamp::Timestamp;

/// Which index a page walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StatusFilter {
    /// Every session (the all-sessions index).
    #[default]
    All,
    /// Active sessions only (the active index).
    Active,
}

impl StatusFilter {
    fn tag(self) -> u8 {
        match self {
            StatusFilter::All => 0,
            StatusFilter::Active => 1,
        }
    }
}

/// Sessions per page: 1..=1000 (default 50).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageLimit(usize);

impl PageLimit {
    /// The largest page.
    pub const MAX: usize = 1000;

    /// A limit in 1..=1000.
    pub fn new(n: usize) -> Result<Self, crate::ValidationError> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(crate::ValidationError::OutOfRange {
                what: "page limit",
                max: Self::MAX,
            })
        }
    }

    /// The limit.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(50)
    }
}

/// Where the previous page ended: opaque text issued by a page, valid only
/// for the same user and status filter. Holds the last session's creation
/// time (nanoseconds) and id, so the next page starts exactly after it in
/// list order even among sessions sharing a microsecond score.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PageCursor {
    text: String,
    status: StatusFilter,
    user_tag: u64,
    created_at: Timestamp,
    id: DeviceSessionId,
}

const CURSOR_VERSION: u8 = 1;

/// FNV-1a of the user id: enough to tell a cursor of another user (not a
/// secret; the cursor carries nothing a caller could not list anyway).
fn user_tag(user: &UserId) -> u64 {
    user.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl PageCursor {
    fn issue(status: StatusFilter, user: &UserId, session: &Session) -> Self {
        let mut bytes = Vec::with_capacity(26 + session.id().as_str().len());
        bytes.push(CURSOR_VERSION);
        bytes.push(status.tag());
        bytes.extend_from_slice(&user_tag(user).to_be_bytes());
        bytes.extend_from_slice(&session.created_at().unix_nanos().to_be_bytes());
        bytes.extend_from_slice(session.id().as_str().as_bytes());
        Self {
            text: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
            status,
            user_tag: user_tag(user),
            created_at: session.created_at(),
            id: session.id().clone(),
        }
    }

    /// Parses a cursor's text; `invalid_cursor` when it is not one.
    pub fn parse(text: &str) -> Result<Self, TransitionError> {
        let bad = |reason| TransitionError::InvalidCursor { reason };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad("not base64url"))?;
        let (head, id) = bytes.split_at_checked(26).ok_or(bad("too short"))?;
        let (version, rest) = head.split_first().ok_or(bad("too short"))?;
        if *version != CURSOR_VERSION {
            return Err(bad("unknown version"));
        }
        let (status, rest) = rest.split_first().ok_or(bad("too short"))?;
        let status = match status {
            0 => StatusFilter::All,
            1 => StatusFilter::Active,
            _ => return Err(bad("unknown status filter")),
        };
        let (tag, nanos) = rest.split_at_checked(8).ok_or(bad("too short"))?;
        let user_tag = u64::from_be_bytes(tag.try_into().map_err(|_| bad("too short"))?);
        let nanos = i128::from_be_bytes(nanos.try_into().map_err(|_| bad("too short"))?);
        let created_at = Timestamp::from_unix_nanos(nanos).map_err(|_| bad("bad time"))?;
        let id = std::str::from_utf8(id)
            .ok()
            .and_then(|t| DeviceSessionId::parse(t).ok())
            .ok_or(bad("bad id"))?;
        Ok(Self {
            text: text.to_owned(),
            status,
            user_tag,
            created_at,
            id,
        })
    }

    /// The cursor's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `session` comes after this cursor in list order.
    fn precedes(&self, session: &Session) -> bool {
        session
            .created_at()
            .cmp(&self.created_at)
            .reverse()
            .then_with(|| {
                session
                    .id()
                    .as_str()
                    .as_bytes()
                    .cmp(self.id.as_str().as_bytes())
            })
            == Ordering::Greater
    }
}

impl fmt::Debug for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PageCursor").field(&self.text).finish()
    }
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for PageCursor {
    type Error = TransitionError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl TryFrom<&str> for PageCursor {
    type Error = TransitionError;
    fn try_from(text: &str) -> Result<Self, Self::Error> {
        Self::parse(text)
    }
}

impl From<PageCursor> for String {
    fn from(cursor: PageCursor) -> Self {
        cursor.text
    }
}

/// What page to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// At most this many sessions.
    pub limit: PageLimit,
    /// Continue after this cursor (`None`: the first page).
    pub cursor: Option<PageCursor>,
    /// Which sessions.
    pub status: StatusFilter,
}

/// One page of a user's sessions, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The sessions (at most the limit).
    pub sessions: Vec<Session>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<PageCursor>,
}

/// Reads one page: ≤ 2 round trips (the index ranges, then the records)
/// and O(limit) work, whatever the number of sessions. The window read is
/// cut between score groups so a page never splits a group of sessions
/// sharing one microsecond score in the wrong order; only a single group
/// larger than the limit costs a third read (the whole group).
#[derive(Debug)]
pub struct ListPage {
    keys: KeySpace,
    policy: Policy,
    now: Timestamp,
    user: UserId,
    request: PageRequest,
    state: PageState,
}

#[derive(Debug)]
enum PageState {
    Start,
    Ranges,
    WholeGroup {
        ties: Vec<Member>,
        more: bool,
    },
    Records {
        ids: Vec<DeviceSessionId>,
        record_keys: Vec<String>,
        more: bool,
    },
    Confirm(Plan, TransitionError),
    Expiring(Plan, OwnerRemovals, Page),
    /// The removed sessions' owner keys (tagged layout), one by one.
    RemovingOwners(OwnerRemovals, Page),
    Finished,
}

impl ListPage {
    /// Reads the page `request` of `user`'s sessions as of `now`.
    pub fn new(
        keys: &KeySpace,
        policy: Policy,
        now: Timestamp,
        user: UserId,
        request: PageRequest,
    ) -> Self {
        Self {
            keys: keys.clone(),
            policy,
            now,
            user,
            request,
            state: PageState::Start,
        }
    }

    fn index_key(&self) -> String {
        match self.request.status {
            StatusFilter::All => self.keys.user_sessions_key(&self.user),
            StatusFilter::Active => self.keys.user_active_sessions_key(&self.user),
        }
    }

    fn read_records(
        &mut self,
        members: Vec<Member>,
        more: bool,
    ) -> Result<Step<Page>, TransitionError> {
        let (ids, record_keys) = ids_and_keys(&self.keys, &self.user, &self.index_key(), &members)?;
        if ids.is_empty() {
            return Ok(Step::Done(Page {
                sessions: Vec::new(),
                next_cursor: None,
            }));
        }
        let read = Read::Values {
            keys: record_keys.clone(),
        };
        self.state = PageState::Records {
            ids,
            record_keys,
            more,
        };
        Ok(Step::Read(vec![read]))
    }

    /// The removed sessions' owner keys (tagged layout), then the answer
    /// (which stands whether or not the store can write them).
    fn remove_owners(
        &mut self,
        mut owners: OwnerRemovals,
        input: Option<Input>,
        page: Page,
    ) -> Result<Step<Page>, TransitionError> {
        match owners.step(input, "list_page")?.into_step() {
            Some(step) => {
                self.state = PageState::RemovingOwners(owners, page);
                Ok(step)
            }
            None => Ok(Step::Done(page)),
        }
    }

    fn assemble(
        &self,
        mut sessions: Vec<(Session, Vec<u8>)>,
        more: bool,
    ) -> (Page, Vec<(Session, Vec<u8>)>) {
        if let Some(cursor) = &self.request.cursor {
            sessions.retain(|(s, _)| cursor.precedes(s));
        }
        sessions.sort_unstable_by(|a, b| newest_first(&a.0, &b.0));
        let limit = self.request.limit.get();
        let mut page = Vec::with_capacity(limit.min(sessions.len()));
        let mut expired = Vec::new();
        let mut last = None;
        let mut cut = false;
        for (session, bytes) in sessions {
            if page.len() == limit {
                cut = true;
                break;
            }
            last = Some(session.clone());
            if self.policy.is_expired(&session, self.now) {
                expired.push((session, bytes));
            } else {
                page.push(session);
            }
        }
        let next_cursor = match last {
            Some(last) if cut || more => {
                Some(PageCursor::issue(self.request.status, &self.user, &last))
            }
            _ => None,
        };
        sort_newest_first(&mut page);
        (
            Page {
                sessions: page,
                next_cursor,
            },
            expired,
        )
    }
}

impl Operation for ListPage {
    type Output = Page;

    fn name(&self) -> &'static str {
        "list_page"
    }

    fn resume(&mut self, input: Input) -> Result<Step<Page>, TransitionError> {
        let index_key = self.index_key();
        match std::mem::replace(&mut self.state, PageState::Finished) {
            PageState::Start => {
                let limit = self.request.limit.get();
                let mut reads = Vec::with_capacity(2);
                let below = match &self.request.cursor {
                    None => ScoreBound::Unbounded,
                    Some(cursor) => {
                        if cursor.status != self.request.status
                            || cursor.user_tag != user_tag(&self.user)
                        {
                            return Err(TransitionError::InvalidCursor {
                                reason: "issued for another user or status filter",
                            });
                        }
                        let score = IndexScore::of(cursor.created_at);
                        // The cursor's own score group, whole: its order
                        // (nanoseconds, then id) is not the index's.
                        reads.push(Read::IndexRange(IndexRange {
                            key: index_key.clone(),
                            min: ScoreBound::Inclusive(score),
                            max: ScoreBound::Inclusive(score),
                            newest_first: false,
                            limit: None,
                            with_scores: false,
                        }));
                        ScoreBound::Exclusive(score)
                    }
                };
                // One member more than a page: when the window is full,
                // its lowest score group may be cut and is left to the
                // next page, and only a group larger than the page fills
                // the whole window.
                reads.push(Read::IndexRange(IndexRange {
                    key: index_key,
                    min: ScoreBound::Unbounded,
                    max: below,
                    newest_first: true,
                    limit: Some(limit.saturating_add(1)),
                    with_scores: true,
                }));
                self.state = PageState::Ranges;
                Ok(Step::Read(reads))
            }
            PageState::Ranges => {
                let mut replies = replies(input, "list_page")?.into_iter();
                let mut members: Vec<Member> = Vec::new();
                if self.request.cursor.is_some() {
                    let ties = range_members(replies.next(), &index_key, "list_page")?;
                    members.extend(ties);
                }
                let mut window = scored_members(replies.next(), &index_key, "list_page")?;
                let limit = self.request.limit.get();
                let mut more = false;
                if window.len() > limit {
                    more = true;
                    let last_score = window.last().map_or(0.0, |(_, s)| *s);
                    if window.iter().all(|(_, s)| *s == last_score) {
                        // One group fills the window: read all of it.
                        self.state = PageState::WholeGroup {
                            ties: members,
                            more,
                        };
                        let score = IndexScore::from_f64(last_score);
                        return Ok(Step::Read(vec![Read::IndexRange(IndexRange {
                            key: index_key,
                            min: ScoreBound::Inclusive(score),
                            max: ScoreBound::Inclusive(score),
                            newest_first: false,
                            limit: None,
                            with_scores: false,
                        })]));
                    }
                    // The lowest score group may be cut: leave it to the
                    // next page.
                    window.retain(|(_, s)| *s != last_score);
                }
                members.extend(window.into_iter().map(|(m, _)| m));
                self.read_records(members, more)
            }
            PageState::WholeGroup { mut ties, more } => {
                let group = range_members(
                    replies(input, "list_page")?.into_iter().next(),
                    &index_key,
                    "list_page",
                )?;
                ties.extend(group);
                self.read_records(ties, more)
            }
            PageState::Records {
                ids,
                record_keys,
                more,
            } => {
                let records = values(replies(input, "list_page")?.into_iter().next(), "list_page")?;
                let active = self.request.status == StatusFilter::Active;
                match check_members(&self.user, &index_key, &ids, &record_keys, records, active)? {
                    Ok(sessions) => {
                        let (page, expired) = self.assemble(sessions, more);
                        if expired.is_empty() {
                            return Ok(Step::Done(page));
                        }
                        let mut expired = expired;
                        expired.truncate(lazy_removals(&self.keys, self.policy.batch_size.get()));
                        let plan =
                            expire_plan(&self.keys, expired.iter().map(|(s, b)| (s, &b[..])))
                                .best_effort();
                        let owners = OwnerRemovals::lazy(
                            &self.keys,
                            expired.iter().map(|(s, _)| (s.user_id(), s.id())),
                        );
                        self.state = PageState::Expiring(plan.clone(), owners, page);
                        Ok(Step::Apply(plan))
                    }
                    Err((plan, error)) => {
                        self.state = PageState::Confirm(plan.clone(), error);
                        Ok(Step::Apply(plan))
                    }
                }
            }
            PageState::Confirm(plan, error) => {
                let step = confirmed(&plan, applied(input, "list_page")?, error)?;
                self.state = PageState::Start;
                Ok(step)
            }
            PageState::Expiring(plan, owners, page) => {
                match best_effort_applied(input, "list_page")? {
                    Some(Applied::WrongType { key }) => Err(wrong_type(&plan, key)),
                    // Removed by us: their owner keys go with them.
                    Some(Applied::Done) => self.remove_owners(owners, None, page),
                    // Removed (or changed) by someone else meanwhile, or
                    // skipped (the store could not write).
                    _ => Ok(Step::Done(page)),
                }
            }
            PageState::RemovingOwners(owners, page) => {
                self.remove_owners(owners, Some(input), page)
            }
            PageState::Finished => out_of_sequence("list_page"),
        }
    }
}
