//! Group commit: many callers' writes of one shape carried by one statement (a
//! record write, a push of tasks).
//!
//! A caller adds its request to the pending list and awaits its own answer. If no
//! flush is running, it starts one: a task that takes pending requests, up to a number
//! of them and a number of bytes they weigh, runs them as one statement, answers each
//! caller, and goes on while requests are pending. Nothing waits on a timer: at light
//! load a request is flushed alone at once (one round trip, as without batching);
//! under load, requests pile up while a flush is in flight and the next flush takes
//! them all.
//!
//! A further flush (up to `flushers` at once) starts only when more requests are
//! pending than one batch takes. Below that, a second flush would only split the
//! pending requests into two smaller statements, each paying a statement's fixed cost
//! (a round trip, planning, a commit), and two flushes of one kind of success would
//! wait on each other's row locks (shared counters): under a route's load, which
//! keeps the machine busy with batches far below their limits, that cost more than it
//! saved. A backlog that fills batches still has them run side by side.
//!
//! Every write is still made, and made before its caller is answered: batching changes
//! how many statements carry the writes, not whether they are durable.

use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// What a failed batch answers each of its callers.
pub(crate) trait BatchError: Clone + Send + 'static {
    /// The flush carrying the write ended without answering.
    fn lost() -> Self;
    /// The flush answered for a different number of writes than it carried.
    fn miscounted(asked: usize, answered: usize) -> Self;
    /// The backend could not be reached: nothing was written, and the writes queued
    /// behind would wait for the same answer.
    fn is_unreachable(&self) -> bool;
}

/// Runs one batch; answers in the order of the requests, one per request.
pub(crate) type Flush<Req, Res, E> =
    Arc<dyn Fn(Vec<Req>) -> BoxFuture<'static, Result<Vec<Res>, E>> + Send + Sync>;

/// A request's weight: about how many bytes it adds to its batch's statement.
pub(crate) type Weight<Req> = fn(&Req) -> usize;

struct Pending<Req, Res, E> {
    request: Req,
    weight: usize,
    answer: oneshot::Sender<Result<Res, E>>,
}

/// How large a batch may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most requests in one batch.
    pub(crate) rows: usize,
    /// Most bytes (by the requests' weights) in one batch; a request heavier than
    /// that goes alone.
    pub(crate) bytes: usize,
    /// Most batches running at once: a second one starts only while more requests
    /// are pending than one batch takes.
    pub(crate) flushers: usize,
}

/// One kind of write, batched.
pub(crate) struct Batcher<Req, Res, E> {
    pending: Mutex<Vec<Pending<Req, Res, E>>>,
    flushers: Arc<Semaphore>,
    limits: Limits,
    weight: Weight<Req>,
    flush: Flush<Req, Res, E>,
}

impl<Req, Res, E> std::fmt::Debug for Batcher<Req, Res, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("limits", &self.limits)
            .field("flushers_free", &self.flushers.available_permits())
            .finish_non_exhaustive()
    }
}

impl<Req: Send + 'static, Res: Send + 'static, E: BatchError> Batcher<Req, Res, E> {
    /// Batches within `limits` (each running flush holds one connection), requests
    /// weighed by `weight`.
    pub(crate) fn new(limits: Limits, weight: Weight<Req>, flush: Flush<Req, Res, E>) -> Arc<Self> {
        Arc::new(Batcher {
            pending: Mutex::new(Vec::new()),
            flushers: Arc::new(Semaphore::new(limits.flushers.max(1))),
            limits: Limits {
                rows: limits.rows.max(1),
                flushers: limits.flushers.max(1),
                ..limits
            },
            weight,
            flush,
        })
    }

    /// Writes `request` in the next batch and returns its answer.
    pub(crate) async fn run(self: &Arc<Self>, request: Req) -> Result<Res, E> {
        let (answer, rx) = oneshot::channel();
        let weight = (self.weight)(&request);
        self.lock().push(Pending {
            request,
            weight,
            answer,
        });
        self.start_flusher();
        rx.await.unwrap_or_else(|_| Err(E::lost()))
    }

    /// How many of the oldest pending requests the next batch takes: at least one, and
    /// no more than the limits allow.
    fn next_batch(&self, pending: &[Pending<Req, Res, E>]) -> usize {
        let mut bytes = 0;
        let mut take = 0;
        for request in pending.iter().take(self.limits.rows) {
            bytes += request.weight;
            if take > 0 && bytes > self.limits.bytes {
                break;
            }
            take += 1;
        }
        take
    }

    /// Whether more requests are pending than the next batch would take.
    fn fills_a_batch(&self) -> bool {
        let pending = self.lock();
        self.next_batch(&pending) < pending.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending<Req, Res, E>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a flush task if a flusher is free and either none is running or more
    /// requests are pending than one batch takes. The task is spawned, not run by the
    /// caller, so that a caller that stops waiting cannot drop other callers' writes.
    fn start_flusher(self: &Arc<Self>) {
        let running = self.limits.flushers - self.flushers.available_permits();
        if running > 0 && !self.fills_a_batch() {
            return;
        }
        if let Ok(permit) = self.flushers.clone().try_acquire_owned() {
            let this = self.clone();
            tokio::spawn(async move { this.flush_while_pending(permit).await });
        }
    }

    async fn flush_while_pending(self: Arc<Self>, permit: OwnedSemaphorePermit) {
        loop {
            let batch: Vec<Pending<Req, Res, E>> = {
                let mut pending = self.lock();
                let take = self.next_batch(&pending);
                pending.drain(..take).collect()
            };
            if batch.is_empty() {
                break;
            }
            let (requests, answers): (Vec<Req>, Vec<_>) =
                batch.into_iter().map(|p| (p.request, p.answer)).collect();
            let count = requests.len();
            match (self.flush)(requests).await {
                Ok(results) if results.len() == count => {
                    for (answer, result) in answers.into_iter().zip(results) {
                        let _ = answer.send(Ok(result));
                    }
                }
                Ok(results) => {
                    let err = E::miscounted(count, results.len());
                    for answer in answers {
                        let _ = answer.send(Err(err.clone()));
                    }
                }
                Err(err) => {
                    let mut answers = answers;
                    if err.is_unreachable() {
                        // Requests queued behind this flush would wait a whole acquire
                        // timeout more for the same answer (the api would hang past its
                        // timeout while the database is down): they get it now. None of
                        // them was written, so failing them is safe.
                        answers.extend(self.lock().drain(..).map(|p| p.answer));
                    }
                    for answer in answers {
                        let _ = answer.send(Err(err.clone()));
                    }
                }
            }
        }
        drop(permit);
        // A request added after the last take, while this flusher still held its
        // permit, found no free flusher: look once more now that one is free.
        if !self.lock().is_empty() {
            self.start_flusher();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use sea_orm::DbErr;

    use super::*;
    use crate::store::StoreError;

    fn limits(rows: usize, flushers: usize) -> Limits {
        Limits {
            rows,
            bytes: usize::MAX,
            flushers,
        }
    }

    fn doubling(batches: Arc<Mutex<Vec<usize>>>, delay: Duration) -> Flush<u32, u32, StoreError> {
        Arc::new(move |requests: Vec<u32>| {
            let batches = batches.clone();
            Box::pin(async move {
                batches.lock().unwrap().push(requests.len());
                tokio::time::sleep(delay).await;
                Ok(requests.into_iter().map(|r| r * 2).collect())
            })
        })
    }

    #[tokio::test]
    async fn a_lone_request_is_flushed_at_once() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let batcher = Batcher::new(
            limits(64, 2),
            |_: &u32| 1,
            doubling(batches.clone(), Duration::ZERO),
        );
        assert_eq!(batcher.run(21).await.unwrap(), 42);
        assert_eq!(*batches.lock().unwrap(), vec![1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_caller_gets_its_own_answer_and_requests_share_batches() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let batcher = Batcher::new(
            limits(50, 2),
            |_: &u32| 1,
            doubling(batches.clone(), Duration::from_millis(5)),
        );
        let calls = (0..1_000u32).map(|i| {
            let batcher = batcher.clone();
            tokio::spawn(async move { (i, batcher.run(i).await.unwrap()) })
        });
        for call in futures::future::join_all(calls).await {
            let (i, answer) = call.unwrap();
            assert_eq!(answer, i * 2);
        }
        let batches = batches.lock().unwrap();
        assert_eq!(batches.iter().sum::<usize>(), 1_000);
        assert!(batches.iter().all(|&n| n <= 50), "{batches:?}");
        assert!(
            batches.len() < 1_000,
            "no request shared a batch: {batches:?}"
        );
    }

    /// A flush that takes `delay`, and the most flushes of it that ran at once.
    fn counting_flush(delay: Duration) -> (Flush<u32, u32, StoreError>, Arc<AtomicUsize>) {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let flush: Flush<u32, u32, StoreError> = {
            let (running, most) = (running.clone(), most.clone());
            Arc::new(move |requests: Vec<u32>| {
                let (running, most) = (running.clone(), most.clone());
                Box::pin(async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(requests)
                })
            })
        };
        (flush, most)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_flushes_at_once_than_flushers() {
        let (flush, most) = counting_flush(Duration::from_millis(2));
        let batcher = Batcher::new(limits(4, 3), |_: &u32| 1, flush);
        let calls = (0..400u32).map(|i| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.run(i).await.unwrap() })
        });
        futures::future::join_all(calls).await;
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} flushes ran at once");
    }

    /// Runs `callers` requests at once through a batcher of batches of 10 and two
    /// flushers whose flushes take 20 ms; returns the most flushes that ran at once.
    async fn most_flushes_at_once(callers: u32) -> usize {
        let (flush, most) = counting_flush(Duration::from_millis(20));
        let batcher = Batcher::new(limits(10, 2), |_: &u32| 1, flush);
        let first = batcher.clone();
        let first = tokio::spawn(async move { first.run(0).await.unwrap() });
        // The others arrive while the first flush is in flight.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let calls = (1..callers).map(|i| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.run(i).await.unwrap() })
        });
        futures::future::join_all(calls).await;
        first.await.unwrap();
        most.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_second_flush_starts_only_for_more_than_a_batch() {
        // 9 requests behind the first flush fit one batch: they wait for it.
        assert_eq!(most_flushes_at_once(10).await, 1);
        // 99 fill ten batches: a second flush runs beside the first.
        assert_eq!(most_flushes_at_once(100).await, 2);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_callers_with_the_cause() {
        let flush: Flush<u32, u32, StoreError> = Arc::new(|_requests: Vec<u32>| {
            Box::pin(async { Err(StoreError::from(DbErr::Custom("connection refused".into()))) })
        });
        let batcher = Batcher::new(limits(8, 1), |_: &u32| 1, flush);
        let (a, b) = tokio::join!(batcher.run(1), batcher.run(2));
        for result in [a, b] {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("connection refused"), "{err}");
        }
    }

    /// One flusher whose flushes take 100 ms and fail with `error()`; returns the
    /// answers of three callers (the second and third queued behind the first flush)
    /// and the number of flushes.
    async fn three_callers_behind_a_failing_flush(error: fn() -> DbErr) -> (Vec<String>, usize) {
        let flushes = Arc::new(AtomicUsize::new(0));
        let flush: Flush<u32, u32, StoreError> = {
            let flushes = flushes.clone();
            Arc::new(move |_requests: Vec<u32>| {
                flushes.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(StoreError::from(error()))
                })
            })
        };
        let batcher = Batcher::new(limits(8, 1), |_: &u32| 1, flush);
        let first = batcher.run(1);
        let later = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tokio::join!(batcher.run(2), batcher.run(3))
        };
        let (a, (b, c)) = tokio::join!(first, later);
        let answers = [a, b, c]
            .into_iter()
            .map(|r| r.unwrap_err().to_string())
            .collect();
        (answers, flushes.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn callers_queued_behind_a_flush_that_found_no_database_fail_with_it() {
        let (answers, flushes) = three_callers_behind_a_failing_flush(|| {
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout)
        })
        .await;
        assert_eq!(
            flushes, 1,
            "the queued callers were not tried again: {answers:?}"
        );
        assert!(
            answers.iter().all(|a| a.contains("timed out")),
            "{answers:?}"
        );
    }

    #[tokio::test]
    async fn callers_queued_behind_a_flush_whose_rows_were_refused_are_flushed_on_their_own() {
        let (answers, flushes) =
            three_callers_behind_a_failing_flush(|| DbErr::Custom("row refused".into())).await;
        assert_eq!(flushes, 2, "{answers:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_batch_stays_within_its_bytes_and_a_heavy_request_goes_alone() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let limits = Limits {
            rows: 100,
            bytes: 10,
            flushers: 1,
        };
        // Each request weighs its own value.
        let batcher = Batcher::new(
            limits,
            |r: &u32| *r as usize,
            doubling(batches.clone(), Duration::from_millis(20)),
        );
        let mut calls = vec![{
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.run(1).await.unwrap() })
        }];
        // Queued behind the first flush: 3 + 3 + 3 fit in 10 bytes, 3 more do not;
        // 25 weighs more than a batch may and still goes, alone.
        tokio::time::sleep(Duration::from_millis(5)).await;
        for r in [3, 3, 3, 3, 25] {
            let batcher = batcher.clone();
            calls.push(tokio::spawn(async move { batcher.run(r).await.unwrap() }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        futures::future::join_all(calls).await;
        assert_eq!(*batches.lock().unwrap(), vec![1, 3, 1, 1]);
    }

    #[tokio::test]
    async fn a_batch_answering_the_wrong_number_of_results_is_an_error() {
        let flush: Flush<u32, u32, StoreError> =
            Arc::new(|_requests: Vec<u32>| Box::pin(async { Ok(Vec::new()) }));
        let batcher = Batcher::new(limits(8, 1), |_: &u32| 1, flush);
        let err = batcher.run(1).await.unwrap_err().to_string();
        assert!(err.contains("answered 0"), "{err}");
    }
}
