//! Aborted attempts: the attempts this process runs, by job, so that an operator's
//! abort (`POST /jobs/{id}/abort`, made by the api, maybe in another process) reaches
//! them. Every `JOB_ABORT_POLL_MS`, while attempts run, one read asks the database
//! which of their jobs are now `cancelled`, and those attempts are told to stop.
//!
//! An attempt told to stop is dropped where it awaits: the executor records it and
//! acks its task, and its slot takes the next task. Work a kind runs on a blocking
//! thread (math) cannot be interrupted: it runs to its end there, and its result is
//! discarded.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use engine::{JobId, JobStore};
use tokio::sync::Notify;

/// The attempts under way in this process.
#[derive(Debug, Default)]
pub struct Running {
    next: AtomicU64,
    attempts: Mutex<HashMap<u64, (JobId, Arc<Notify>)>>,
}

/// One attempt under way: [`Abort::requested`] completes once its job is aborted. It
/// leaves [`Running`] when dropped.
#[derive(Debug)]
pub struct Abort<'a> {
    running: &'a Running,
    key: u64,
    notify: Arc<Notify>,
}

impl Running {
    /// Enters an attempt of `job`.
    pub fn enter(&self, job: JobId) -> Abort<'_> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        self.lock().insert(key, (job, notify.clone()));
        Abort {
            running: self,
            key,
            notify,
        }
    }

    /// The jobs of the attempts under way (each once).
    fn jobs(&self) -> Vec<JobId> {
        let mut jobs: Vec<JobId> = self.lock().values().map(|(job, _)| *job).collect();
        jobs.sort_unstable();
        jobs.dedup();
        jobs
    }

    /// Tells every attempt of a job in `aborted` to stop; how many were told.
    fn stop(&self, aborted: &HashSet<JobId>) -> usize {
        let mut told = 0;
        for (job, notify) in self.lock().values() {
            if aborted.contains(job) {
                // A permit is kept if the attempt is not awaiting it yet.
                notify.notify_one();
                told += 1;
            }
        }
        told
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (JobId, Arc<Notify>)>> {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads every `period`, while attempts run, which of their jobs were aborted, and
    /// stops those attempts. Runs until dropped; a failed read is retried next period.
    pub async fn watch(&self, store: &JobStore, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            let jobs = self.jobs();
            if jobs.is_empty() {
                continue;
            }
            match store.cancelled_among(&jobs).await {
                Ok(aborted) if !aborted.is_empty() => {
                    let told = self.stop(&aborted);
                    tracing::info!(
                        jobs = aborted.len(),
                        attempts = told,
                        "aborted by an operator; stopping"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "reading which running jobs were aborted failed"),
            }
        }
    }
}

impl Abort<'_> {
    /// Completes once the attempt's job has been aborted.
    pub async fn requested(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Abort<'_> {
    fn drop(&mut self) {
        self.running.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn only_the_attempts_of_aborted_jobs_are_stopped_and_a_finished_one_leaves() {
        let running = Running::default();
        let (one, two) = (JobId::generate(), JobId::generate());
        let first = running.enter(one);
        let again = running.enter(one);
        let other = running.enter(two);
        assert_eq!(running.jobs().len(), 2);
        assert_eq!(running.stop(&HashSet::from([one])), 2);
        assert!(first.requested().now_or_never().is_some());
        assert!(again.requested().now_or_never().is_some());
        assert!(other.requested().now_or_never().is_none());
        drop((first, again));
        assert_eq!(running.jobs(), [two]);
        drop(other);
        assert!(running.jobs().is_empty());
    }
}
