//! Throughput counted where jobs finish, at almost no cost: a worker process adds each
//! outcome to a map in memory (a mutex held for a map lookup), keyed by minute and
//! queue, and [`Throughput::flush`] adds the map to the stored history every
//! `THROUGHPUT_FLUSH_MS`, one upsert row per (minute, queue), so that the database
//! sees a statement every few seconds however many jobs run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::store::{JobStore, MinuteCounts, StoreError};

/// Counts of one queue in one minute, not yet stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    succeeded: u64,
    failed: u64,
}

/// Counts by minute (Unix seconds of its start), then by queue.
type Pending = BTreeMap<i64, HashMap<String, Counts>>;

/// The counts a process has not stored yet. Cheap to clone: clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pending: Arc<Mutex<Pending>>,
}

/// The start of the minute `at` is in.
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp();
    DateTime::from_timestamp(seconds - seconds.rem_euclid(60), 0).unwrap_or(at)
}

/// The first minute of the window of `minutes` minutes that ends with the minute
/// `now` is in (that one included); the start of time for a window longer than that.
pub fn window_start(now: DateTime<Utc>, minutes: u64) -> DateTime<Utc> {
    let back = i64::try_from(minutes.saturating_sub(1)).unwrap_or(i64::MAX);
    chrono::Duration::try_minutes(back)
        .and_then(|back| minute_of(now).checked_sub_signed(back))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Throughput {
    /// A job of `queue` succeeded now.
    pub fn succeeded(&self, queue: &str) {
        self.add(
            queue,
            Utc::now(),
            Counts {
                succeeded: 1,
                failed: 0,
            },
        );
    }

    /// An attempt of a job of `queue` failed now (retried or dead).
    pub fn failed(&self, queue: &str) {
        self.add(
            queue,
            Utc::now(),
            Counts {
                succeeded: 0,
                failed: 1,
            },
        );
    }

    fn add(&self, queue: &str, at: DateTime<Utc>, counts: Counts) {
        let minute = minute_of(at).timestamp();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let queues = pending.entry(minute).or_default();
        // Looked up by `&str` first: the hot path allocates only for a new minute.
        let sum = match queues.get_mut(queue) {
            Some(sum) => sum,
            None => queues.entry(queue.to_owned()).or_default(),
        };
        sum.succeeded += counts.succeeded;
        sum.failed += counts.failed;
    }

    /// Adds the pending counts to the stored history and forgets them. When the write
    /// fails they are kept, added to whatever was counted meanwhile, for the next flush.
    /// (A write that failed after the database committed it counts twice: these are
    /// figures for a chart, not records.)
    pub async fn flush(&self, store: &JobStore) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.lock());
        let rows: Vec<MinuteCounts> = taken
            .iter()
            .flat_map(|(minute, queues)| {
                let minute = DateTime::from_timestamp(*minute, 0).unwrap_or_default();
                queues.iter().map(move |(queue, counts)| MinuteCounts {
                    minute,
                    queue: queue.clone(),
                    succeeded: counts.succeeded,
                    failed: counts.failed,
                })
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let written = store.add_throughput(&rows).await;
        if written.is_err() {
            let mut pending = self.lock();
            for (minute, queues) in taken {
                let kept = pending.entry(minute).or_default();
                for (queue, counts) in queues {
                    let sum = kept.entry(queue).or_default();
                    sum.succeeded += counts.succeeded;
                    sum.failed += counts.failed;
                }
            }
        }
        written
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_minute_and_queue() {
        let throughput = Throughput::default();
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("a time");
        let one = Counts {
            succeeded: 1,
            failed: 0,
        };
        let bad = Counts {
            succeeded: 0,
            failed: 1,
        };
        throughput.add("default", at("2026-12-01T10:00:05Z"), one);
        throughput.add("default", at("2026-12-01T10:00:59.999Z"), one);
        throughput.add("default", at("2026-12-01T10:00:30Z"), bad);
        throughput.add("math", at("2026-12-01T10:00:30Z"), bad);
        throughput.add("default", at("2026-12-01T10:01:00Z"), one);
        let pending = throughput.lock().clone();
        let ten = at("2026-12-01T10:00:00Z").timestamp();
        assert_eq!(pending.len(), 2);
        assert_eq!(
            pending[&ten]["default"],
            Counts {
                succeeded: 2,
                failed: 1
            }
        );
        assert_eq!(
            pending[&ten]["math"],
            Counts {
                succeeded: 0,
                failed: 1
            }
        );
        assert_eq!(
            pending[&(ten + 60)]["default"],
            Counts {
                succeeded: 1,
                failed: 0
            }
        );
    }

    #[test]
    fn a_window_ends_with_the_current_minute() {
        let now = "2026-12-01T10:17:42Z"
            .parse::<DateTime<Utc>>()
            .expect("a time");
        assert_eq!(
            window_start(now, 1).to_rfc3339(),
            "2026-12-01T10:17:00+00:00"
        );
        assert_eq!(
            window_start(now, 60).to_rfc3339(),
            "2026-12-01T09:18:00+00:00"
        );
        assert_eq!(window_start(now, u64::MAX), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn a_minute_starts_at_second_zero() {
        let at = "2026-12-01T10:17:42.5Z"
            .parse::<DateTime<Utc>>()
            .expect("a time");
        assert_eq!(minute_of(at).to_rfc3339(), "2026-12-01T10:17:00+00:00");
        let before_1970 = "1969-12-31T23:59:30Z"
            .parse::<DateTime<Utc>>()
            .expect("a time");
        assert_eq!(
            minute_of(before_1970).to_rfc3339(),
            "1969-12-31T23:59:00+00:00"
        );
    }
}
