//! Page walks: following `next_cursor` to the end, and the checks that
//! pages concatenate to `list` and that a cursor is refused elsewhere.

use authsession_core::model::MemoryKv;
use authsession_core::op::{ListPage, Page, PageCursor, PageLimit, PageRequest, StatusFilter};
use authsession_core::{newest_first, op, Session};

use super::execute::{Ctx, Prepared, MAX_ATTEMPTS};
use super::input::{next_user, user, Walk};
use super::model::kind_of;
use super::world::World;

/// Pages a walk may take before it is declared endless (at most
/// `IDS.len()` sessions, each page makes progress).
pub(super) const MAX_PAGES: usize = 4 * 6 + 4;

pub(super) fn assert_strictly_newest_first(sessions: &[Session]) {
    assert!(
        sessions.windows(2).all(|pair| match pair {
            [a, b] => newest_first(a, b).is_lt(),
            _ => true,
        }),
        "not strictly newest first: {sessions:?}"
    );
}

pub(super) fn page_limit(walk: &Walk, page: usize) -> PageLimit {
    let l = walk.limits[page % walk.limits.len()];
    let n = if l % 5 == 4 {
        1000
    } else {
        1 + usize::from(l % 4)
    };
    PageLimit::new(n).expect("limit in range")
}

pub(super) fn status_of(walk: &Walk) -> StatusFilter {
    if walk.active {
        StatusFilter::Active
    } else {
        StatusFilter::All
    }
}

/// A page walk: the pages read (or the error that stopped it) and the last
/// cursor issued. `between_pages` runs after each page (with its index).
pub(super) struct Walked {
    pub(super) pages: Vec<Page>,
    pub(super) error: Option<&'static str>,
    pub(super) last_cursor: Option<PageCursor>,
}

/// Where a page walk calls its hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InWalk {
    /// At the `call`-th `between` point of page `page` (after one of its
    /// reads or applies).
    Inside { page: usize, call: usize },
    /// After page `page`, before the next.
    After { page: usize },
}

pub(super) fn walk_pages(
    ctx: &Ctx,
    kv: &mut MemoryKv,
    walk: &Walk,
    hook: &mut dyn FnMut(&mut MemoryKv, InWalk),
) -> Walked {
    let user = user(walk.user);
    let status = status_of(walk);
    let mut walked = Walked {
        pages: Vec::new(),
        error: None,
        last_cursor: None,
    };
    let mut cursor = None;
    for page_index in 0..MAX_PAGES {
        let limit = page_limit(walk, page_index);
        let request = PageRequest {
            limit,
            cursor: cursor.clone(),
            status,
        };
        let mut call = 0;
        let run = op::run_with(
            kv,
            ListPage::new(&ctx.keys, ctx.policy, ctx.now, user.clone(), request),
            MAX_ATTEMPTS,
            |kv, _| {
                hook(
                    kv,
                    InWalk::Inside {
                        page: page_index,
                        call,
                    },
                );
                call += 1;
            },
        );
        let page = match run {
            Ok(page) => page,
            Err(e) => {
                let kind = kind_of(&e);
                assert_ne!(kind, "contention_exhausted");
                walked.error = Some(kind);
                return walked;
            }
        };
        assert!(page.sessions.len() <= limit.get(), "page over its limit");
        assert_strictly_newest_first(&page.sessions);
        assert!(page.sessions.iter().all(|s| s.user_id() == &user));
        if status == StatusFilter::Active {
            assert!(page.sessions.iter().all(Session::is_active));
        }
        cursor.clone_from(&page.next_cursor);
        if let Some(c) = &page.next_cursor {
            // The text round-trips.
            assert_eq!(PageCursor::parse(c.as_str()).as_ref(), Ok(c));
            walked.last_cursor = Some(c.clone());
        }
        walked.pages.push(page);
        if cursor.is_none() {
            return walked;
        }
        hook(kv, InWalk::After { page: page_index });
    }
    panic!("page walk of {walk:?} does not end after {MAX_PAGES} pages");
}

impl World {
    pub(super) fn pages(&mut self, walk: &Walk) {
        let user = user(walk.user);
        let before = self.model.clone();
        let expected = self.model.visible(&self.ctx, &user, walk.active);
        let ctx = self.ctx.clone();
        let walked = walk_pages(&ctx, &mut self.kv, walk, &mut |_, _| {});
        assert_eq!(walked.error, None, "{walk:?}");
        let got: Vec<Session> = walked
            .pages
            .iter()
            .flat_map(|p| p.sessions.iter().cloned())
            .collect();
        assert_eq!(got, expected, "pages of {walk:?} at {}", self.ctx.now);
        if let Some(cursor) = walked.last_cursor {
            self.assert_cursor_refused(walk, &cursor);
        }
        // A walk of all sessions meets (and must remove) the expired
        // sessions a list does; an active walk meets none.
        let like = if walk.active {
            Prepared::Nothing
        } else {
            Prepared::List(user)
        };
        self.settle(&before, self.model.clone(), &like);
    }

    /// A cursor is only good for the user and status filter it was issued
    /// for.
    pub(super) fn assert_cursor_refused(&mut self, walk: &Walk, cursor: &PageCursor) {
        // Malformed text: cut short, another version byte, not base64.
        let text = cursor.as_str();
        let mut other_version = text.to_owned();
        other_version.replace_range(..1, if text.starts_with('B') { "C" } else { "B" });
        for bad in [
            &text[..text.len() / 2],
            &text[..text.len() - 1],
            other_version.as_str(),
            "",
            "!!",
        ] {
            let parsed = PageCursor::parse(bad);
            assert_eq!(
                parsed.as_ref().map_err(kind_of).err(),
                Some("invalid_cursor"),
                "{bad:?}: {parsed:?}"
            );
        }
        let this = user(walk.user);
        let other_user = user(next_user(walk.user));
        let other_status = if walk.active {
            StatusFilter::All
        } else {
            StatusFilter::Active
        };
        for (user, status) in [(other_user, status_of(walk)), (this, other_status)] {
            let request = PageRequest {
                limit: PageLimit::default(),
                cursor: Some(cursor.clone()),
                status,
            };
            let run = op::run(
                &mut self.kv,
                ListPage::new(
                    &self.ctx.keys,
                    self.ctx.policy,
                    self.ctx.now,
                    user.clone(),
                    request,
                ),
                MAX_ATTEMPTS,
            );
            assert_eq!(
                run.as_ref().map_err(kind_of).err(),
                Some("invalid_cursor"),
                "{user:?} {status:?} {cursor:?} {run:?}"
            );
        }
    }
}
