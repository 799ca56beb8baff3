//! Housekeeping: queue vacuum, the stuck-job sweep, the retention of finished job
//! records and of the throughput history, and the bounds of the math feature's stored
//! values.

use std::future::Future;
use std::time::{Duration, Instant};

use engine::config::HousekeepingConfig;
use engine::queue::Pushed;
use engine::store::StoreError;
use engine::{JobStore, Queue};
use features::math::purge::{StoreBounds, purge_cache};

/// Runs housekeeping of `queues` every interval until `shutdown` completes, and keeps
/// the stored math values within `math`.
pub async fn run(
    store: JobStore,
    queue: Queue,
    queues: Vec<&'static str>,
    config: HousekeepingConfig,
    math: StoreBounds,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut ticker = tokio::time::interval(config.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticker.tick() => {
                once(&store, &queue, &queues, &config).await;
                match purge_cache(store.db(), math, chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(n, "deleted stored math values past their bounds"),
                    Err(err) => tracing::warn!(%err, "math store bounds failed; the next round tries again"),
                }
            }
        }
    }
}

/// Rows one retention statement deletes at most: small enough that no statement holds
/// its locks (or SQLite's write lock) for long.
const PURGE_CHUNK: u64 = 5_000;

/// One round of housekeeping over `queues`; errors are logged and the next round tries
/// again.
pub async fn once(
    store: &JobStore,
    queue: &Queue,
    queues: &[&'static str],
    config: &HousekeepingConfig,
) {
    vacuum(queue, queues).await;
    sweep(store, queue, config).await;
    // A backlog of expired records (retention just switched on) goes in chunks, for at
    // most half an interval per round, so that the next sweep is not held up.
    purge(store, config, config.interval() / 2).await;
    purge_throughput(store, config).await;
}

/// Deletes the throughput minutes older than `THROUGHPUT_HISTORY_MINUTES` (the current
/// minute and the ones before it that are kept make the whole window).
async fn purge_throughput(store: &JobStore, config: &HousekeepingConfig) {
    let oldest =
        engine::throughput::window_start(chrono::Utc::now(), config.throughput_history_minutes());
    match store.purge_throughput(oldest).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(n, "deleted throughput minutes past the history"),
        Err(err) => {
            tracing::warn!(%err, "throughput history purge failed; the next round tries again")
        }
    }
}

async fn vacuum(queue: &Queue, queues: &[&'static str]) {
    for &logical in queues {
        match queue.vacuum(logical).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, queue = logical, "vacuumed acknowledged tasks"),
            Err(err) => tracing::warn!(%err, queue = logical, "vacuum failed"),
        }
    }
}

async fn sweep(store: &JobStore, queue: &Queue, config: &HousekeepingConfig) {
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
    for task in stuck {
        let job = task.envelope.job_id;
        match queue.push(&task, std::time::Duration::ZERO).await {
            Ok(Pushed::Queued) => {
                tracing::warn!(%job, "pushed the task of a stuck job again");
            }
            // Still waiting on the queue (a deep backlog) or held by a worker whose
            // tasks apalis hands back when it is declared dead.
            Ok(Pushed::AlreadyQueued) => {
                tracing::debug!(%job, "stuck job's task is still queued");
            }
            Err(err) => tracing::warn!(%err, %job, "could not push a stuck job"),
        }
    }
}

/// Deletes finished job records past their retention, then idempotency keys past their
/// window, chunk by chunk until none is left or `budget` is spent.
async fn purge(store: &JobStore, config: &HousekeepingConfig, budget: Duration) {
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

/// A purge stopped by an error after deleting `deleted` rows.
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {deleted} rows)")]
struct PurgeError {
    error: StoreError,
    deleted: u64,
}

/// Runs `chunk` until it deletes fewer than a full chunk or `budget` (counted from
/// `started`) is spent; the rows deleted in all.
async fn in_chunks<F, Fut>(started: Instant, budget: Duration, chunk: F) -> Result<u64, PurgeError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    loop {
        let deleted = chunk().await.map_err(|error| PurgeError {
            error,
            deleted: total,
        })?;
        total += deleted;
        if deleted < PURGE_CHUNK || started.elapsed() >= budget {
            return Ok(total);
        }
    }
}
