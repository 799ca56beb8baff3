//! Housekeeping: queue vacuum, the stuck-job sweep and the retention of finished job
//! records.

use std::future::Future;
use std::time::{Duration, Instant};

use jobs::kind::all_queues;
use jobs::queue::Pushed;
use jobs::{JobStore, Queue};

use crate::config::SchedulerConfig;

/// Runs housekeeping every interval until `shutdown` completes.
pub async fn run(
    store: JobStore,
    queue: Queue,
    config: SchedulerConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut ticker = tokio::time::interval(config.housekeeping_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticker.tick() => once(&store, &queue, &config).await,
        }
    }
}

/// Rows one retention statement deletes at most: small enough that no statement holds
/// its locks (or SQLite's write lock) for long.
const PURGE_CHUNK: u64 = 5_000;

/// One round of housekeeping; errors are logged and the next round tries again.
pub async fn once(store: &JobStore, queue: &Queue, config: &SchedulerConfig) {
    vacuum(queue).await;
    sweep(store, queue, config).await;
    // A backlog of expired records (retention just switched on) goes in chunks, for at
    // most half an interval per round, so that the next sweep is not held up.
    purge(store, config, config.housekeeping_interval() / 2).await;
}

async fn vacuum(queue: &Queue) {
    for logical in all_queues() {
        match queue.vacuum(logical).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, queue = logical, "vacuumed acknowledged tasks"),
            Err(err) => tracing::warn!(%err, queue = logical, "vacuum failed"),
        }
    }
}

async fn sweep(store: &JobStore, queue: &Queue, config: &SchedulerConfig) {
    // An attempt ends within its timeout, and its outcome is written right after.
    let running_longer_than = queue.delivery().timeout() + config.stuck_after();
    let stuck = match store
        .stuck(config.stuck_after(), running_longer_than, 1_000)
        .await
    {
        Ok(stuck) => stuck,
        Err(err) => {
            tracing::warn!(%err, "stuck-job sweep failed");
            return;
        }
    };
    for envelope in stuck {
        match queue.push(&envelope, std::time::Duration::ZERO).await {
            Ok(Pushed::Queued) => {
                tracing::warn!(job = %envelope.job_id, "pushed the task of a stuck job again");
            }
            // Still waiting on the queue (a deep backlog) or held by a worker whose
            // tasks apalis hands back when it is declared dead.
            Ok(Pushed::AlreadyQueued) => {
                tracing::debug!(job = %envelope.job_id, "stuck job's task is still queued");
            }
            Err(err) => tracing::warn!(%err, job = %envelope.job_id, "could not push a stuck job"),
        }
    }
}

/// Deletes finished job records past their retention, then idempotency keys past their
/// window, chunk by chunk until none is left or `budget` is spent.
async fn purge(store: &JobStore, config: &SchedulerConfig, budget: Duration) {
    let started = Instant::now();
    let now = chrono::Utc::now();
    let retention = config.retention();
    let records = in_chunks(started, budget, || {
        store.purge_finished(&retention, now, PURGE_CHUNK)
    })
    .await;
    let keys = in_chunks(started, budget, || {
        store.purge_idempotency_keys(now, PURGE_CHUNK)
    })
    .await;
    match (records, keys) {
        (Ok(0), Ok(0)) => {}
        (Ok(records), Ok(keys)) => {
            tracing::info!(
                records,
                keys,
                "deleted job records past their retention and expired idempotency keys"
            );
        }
        (records, keys) => {
            tracing::warn!(
                ?records,
                ?keys,
                "retention failed; the next round tries again"
            );
        }
    }
}

/// Runs `chunk` until it deletes fewer than a full chunk or `budget` (counted from
/// `started`) is spent; the rows deleted in all.
async fn in_chunks<F, Fut>(started: Instant, budget: Duration, chunk: F) -> Result<u64, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u64, jobs::store::DbErr>>,
{
    let mut total = 0;
    loop {
        let deleted = chunk()
            .await
            .map_err(|e| format!("{e} (after {total} rows)"))?;
        total += deleted;
        if deleted < PURGE_CHUNK || started.elapsed() >= budget {
            return Ok(total);
        }
    }
}
