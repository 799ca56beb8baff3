//! Housekeeping: queue vacuum and the stuck-job sweep.

use std::future::Future;

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

/// One round of housekeeping; errors are logged and the next round tries again.
pub async fn once(store: &JobStore, queue: &Queue, config: &SchedulerConfig) {
    for logical in all_queues() {
        match queue.vacuum(logical).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, queue = logical, "vacuumed acknowledged tasks"),
            Err(err) => tracing::warn!(%err, queue = logical, "vacuum failed"),
        }
    }
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
