//! Walking HubSpot's changes in order, at any volume, with search: the queries to make, what
//! each page lets the pull deliver, and where its cursor then stands. Pure: no I/O.
//!
//! Search never returns more than 10,000 results for one query, sorts by one property only,
//! and orders records that share a timestamp arbitrarily. So a pull never pages with offsets:
//! every query starts from the cursor, and it alternates two kinds:
//!
//! - **forward**: modified at or after an instant (and no later than the run's start), oldest
//!   first, one page. The page is delivered up to, not including, its last instant, which may
//!   continue beyond the page; the next forward query starts at that instant, so its records
//!   all come first in the next page. Records changed meanwhile move past the run's start and
//!   shift nothing.
//! - **same instant**: when one instant fills a whole page (20,000 records after an import),
//!   its records are walked by object id, as many pages as there are.
//!
//! The cursor `(instant, object id)` means: every record modified before `instant` was
//! delivered, and at `instant`, every record up to `object id` (0: none yet). It only moves
//! forward, and only after a page was delivered, so a crash replays at most one page.

use super::CursorPosition;

/// Records per search page (HubSpot's maximum).
pub const PAGE_SIZE: usize = 200;

/// The next search to make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PullQuery {
    /// Modified exactly at `at_ms`, object id above `after_id`, sorted by object id.
    SameInstant { at_ms: i64, after_id: u64 },
    /// Modified from `from_ms` to `until_ms` (both included), sorted by last-modified time.
    Forward { from_ms: i64, until_ms: i64 },
}

/// One search result: its object id and last-modified time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub object_id: u64,
    pub modified_at_ms: i64,
}

/// What a page lets the pull do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Deliver these before the cursor moves.
    pub deliver: Vec<Hit>,
    /// The cursor once they are delivered.
    pub cursor: CursorPosition,
    /// The next query, or `None` when the pull has reached the run's end.
    pub next: Option<PullQuery>,
}

/// Where a pull starts: from the stored cursor, or `overlap_ms` before it (search's index lags
/// writes by a few seconds), up to `until_ms` (the run's start).
pub fn first_query(cursor: CursorPosition, overlap_ms: i64, until_ms: i64) -> PullQuery {
    if overlap_ms > 0 || cursor.object_id == 0 {
        let from_ms = cursor.modified_at_ms.saturating_sub(overlap_ms.max(0));
        return PullQuery::Forward { from_ms, until_ms };
    }
    PullQuery::SameInstant { at_ms: cursor.modified_at_ms, after_id: cursor.object_id }
}

/// Reads a page of results of `query` (at most [`PAGE_SIZE`]).
pub fn step(query: &PullQuery, hits: &[Hit]) -> Step {
    let full = hits.len() >= PAGE_SIZE;
    match *query {
        PullQuery::SameInstant { at_ms, after_id } => {
            let last_id = hits.iter().map(|h| h.object_id).max().unwrap_or(after_id);
            let next = if full {
                PullQuery::SameInstant { at_ms, after_id: last_id }
            } else {
                PullQuery::Forward { from_ms: at_ms.saturating_add(1), until_ms: i64::MAX }
            };
            Step {
                deliver: hits.to_vec(),
                cursor: CursorPosition { modified_at_ms: at_ms, object_id: last_id },
                next: Some(next),
            }
        }
        PullQuery::Forward { from_ms, until_ms } => {
            let last = hits.iter().map(|h| h.modified_at_ms).max();
            let Some(last) = last.filter(|_| full) else {
                // The window is exhausted: everything in it is delivered.
                let cursor = match last {
                    Some(last) => CursorPosition {
                        modified_at_ms: last,
                        object_id: hits
                            .iter()
                            .filter(|h| h.modified_at_ms == last)
                            .map(|h| h.object_id)
                            .max()
                            .unwrap_or(0),
                    },
                    None => CursorPosition { modified_at_ms: from_ms, object_id: 0 },
                };
                return Step { deliver: hits.to_vec(), cursor, next: None };
            };
            let earlier: Vec<Hit> = hits.iter().copied().filter(|h| h.modified_at_ms < last).collect();
            let next = if earlier.is_empty() {
                // One instant fills the page: walk it by id.
                PullQuery::SameInstant { at_ms: last, after_id: 0 }
            } else {
                PullQuery::Forward { from_ms: last, until_ms }
            };
            Step { deliver: earlier, cursor: CursorPosition { modified_at_ms: last, object_id: 0 }, next: Some(next) }
        }
    }
}

/// The run's end applies to every forward query, including those a same-instant walk starts.
pub fn bounded(query: PullQuery, until_ms: i64) -> Option<PullQuery> {
    match query {
        PullQuery::Forward { from_ms, .. } if from_ms > until_ms => None,
        PullQuery::Forward { from_ms, .. } => Some(PullQuery::Forward { from_ms, until_ms }),
        same_instant => Some(same_instant),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A portal's search, as HubSpot answers it: sorted by one property, ties in no useful
    /// order, and a 400 past 10,000 results.
    struct Portal {
        records: Vec<Hit>,
    }

    impl Portal {
        fn search(&self, query: &PullQuery) -> Vec<Hit> {
            match *query {
                PullQuery::SameInstant { at_ms, after_id } => {
                    let mut hits: Vec<Hit> = self
                        .records
                        .iter()
                        .copied()
                        .filter(|h| h.modified_at_ms == at_ms && h.object_id > after_id)
                        .collect();
                    hits.sort_by_key(|h| h.object_id);
                    hits.truncate(PAGE_SIZE);
                    hits
                }
                PullQuery::Forward { from_ms, until_ms } => {
                    let mut hits: Vec<Hit> = self
                        .records
                        .iter()
                        .copied()
                        .filter(|h| h.modified_at_ms >= from_ms && h.modified_at_ms <= until_ms)
                        .collect();
                    // Ties come back in an order unrelated to ids.
                    hits.sort_by_key(|h| (h.modified_at_ms, h.object_id.wrapping_mul(2_654_435_761) % 1_000_003));
                    hits.truncate(PAGE_SIZE);
                    hits
                }
            }
        }

        /// Runs a whole pull; returns what was delivered and how many searches it took.
        fn pull(&self, from: CursorPosition, until_ms: i64) -> (Vec<Hit>, usize) {
            let mut delivered = Vec::new();
            let mut query = Some(first_query(from, 0, until_ms));
            let mut cursor = from;
            let mut calls = 0;
            while let Some(q) = query {
                calls += 1;
                let step = step(&q, &self.search(&q));
                delivered.extend(step.deliver);
                assert!(step.cursor >= cursor, "the cursor never moves back");
                cursor = step.cursor;
                query = step.next.and_then(|next| bounded(next, until_ms));
                assert!(calls < 100_000, "the pull ends");
            }
            (delivered, calls)
        }
    }

    fn hits(records: impl IntoIterator<Item = (u64, i64)>) -> Vec<Hit> {
        records.into_iter().map(|(object_id, modified_at_ms)| Hit { object_id, modified_at_ms }).collect()
    }

    fn assert_complete(portal: &Portal, delivered: &[Hit], until_ms: i64) {
        let wanted: BTreeSet<u64> =
            portal.records.iter().filter(|h| h.modified_at_ms <= until_ms).map(|h| h.object_id).collect();
        let got: BTreeSet<u64> = delivered.iter().map(|h| h.object_id).collect();
        assert_eq!(got, wanted, "every record in the window is delivered");
    }

    #[test]
    fn twenty_thousand_records_sharing_one_instant_are_all_delivered() {
        let mut records = hits((1..=20_000).map(|id| (id, 5_000)));
        records.extend(hits((20_001..=20_500).map(|id| (id, 4_000 + id as i64))));
        let portal = Portal { records };
        let (delivered, calls) = portal.pull(CursorPosition { modified_at_ms: 0, object_id: 0 }, 1_000_000);
        assert_complete(&portal, &delivered, 1_000_000);
        assert!(calls < 120, "{calls} searches for 20,500 records");
    }

    #[test]
    fn fifty_thousand_changes_with_ties_everywhere_take_one_search_a_page() {
        // Four changes per millisecond: ties everywhere, in no id order.
        let portal = Portal { records: hits((1..=50_000).map(|id| (id, 1_000 + (id as i64) / 4))) };
        let (delivered, calls) = portal.pull(CursorPosition { modified_at_ms: 0, object_id: 0 }, i64::MAX);
        assert_complete(&portal, &delivered, i64::MAX);
        // About one search per page: the walk stays near search's ceiling.
        assert!(calls <= 50_000 / (PAGE_SIZE - 4) + 2, "{calls} searches: about one a page");
        let unique: BTreeSet<u64> = delivered.iter().map(|h| h.object_id).collect();
        assert_eq!(delivered.len(), unique.len(), "nothing is delivered twice");
    }

    #[test]
    fn nothing_after_the_runs_start_is_delivered_and_the_cursor_stays_before_it() {
        let portal = Portal { records: hits((1..=1_000).map(|id| (id, id as i64 * 10))) };
        let (delivered, _) = portal.pull(CursorPosition { modified_at_ms: 0, object_id: 0 }, 5_000);
        assert!(delivered.iter().all(|h| h.modified_at_ms <= 5_000));
        assert_complete(&portal, &delivered, 5_000);
    }

    #[test]
    fn a_pull_resumes_from_its_cursor_without_skipping() {
        let portal = Portal { records: hits((1..=3_000).map(|id| (id, 100 + (id as i64) / 7))) };
        let until = i64::MAX;
        // Stop after three pages, as a crash or a job's page budget would, and resume.
        let mut delivered = Vec::new();
        let mut query = first_query(CursorPosition { modified_at_ms: 0, object_id: 0 }, 0, until);
        let mut cursor = CursorPosition { modified_at_ms: 0, object_id: 0 };
        for _ in 0..3 {
            let step = step(&query, &portal.search(&query));
            delivered.extend(step.deliver);
            cursor = step.cursor;
            query = step.next.and_then(|next| bounded(next, until)).expect("more to come");
        }
        let (rest, _) = portal.pull(cursor, until);
        delivered.extend(rest);
        assert_complete(&portal, &delivered, until);
    }

    #[test]
    fn an_overlap_goes_back_in_time() {
        let cursor = CursorPosition { modified_at_ms: 10_000, object_id: 77 };
        assert_eq!(first_query(cursor, 0, 20_000), PullQuery::SameInstant { at_ms: 10_000, after_id: 77 });
        assert_eq!(first_query(cursor, 3_000, 20_000), PullQuery::Forward { from_ms: 7_000, until_ms: 20_000 });
    }
}
