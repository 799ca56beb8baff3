//! The worker pool: one consumer per queue, stopped gracefully, holding back while
//! an operator has paused its queue, and dropping the attempts an operator aborts;
//! it stores the throughput its executor counted every `THROUGHPUT_FLUSH_MS` and
//! once more when it stops.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use engine::queue::{ConsumerConfig, Handler, QueueError, worker_name};
use engine::{JobStore, Queue};
use futures::FutureExt;
use tokio::sync::watch;

use crate::config::WorkerConfig;
use crate::executor::Executor;

/// The handler of one consumer: every delivery runs through the executor as `name`.
fn handler(executor: Arc<Executor>, name: String) -> Handler {
    Arc::new(move |task| {
        let executor = executor.clone();
        let name = name.clone();
        async move {
            executor.execute(task, &name).await;
        }
        .boxed()
    })
}

/// Consumes the configured queues (by default every queue of the executor's kinds)
/// until `shutdown` completes, then gives in-flight tasks the grace period to finish.
/// Tasks still running after it are not lost: their worker stops heartbeating and
/// another worker runs them again.
pub async fn run(
    queue: Queue,
    executor: Arc<Executor>,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QueueError> {
    let shutdown = shutdown.shared();
    let (stop_flushing, flushing_stopped) = tokio::sync::oneshot::channel::<()>();
    // Beside the consumers in this future rather than spawned, so that a pool dropped
    // (its process aborting) leaves no flusher behind.
    let flushing = flush_throughput(
        executor.clone(),
        config.throughput_flush(),
        flushing_stopped,
    );
    let consuming = async {
        let result = consume(queue, executor.clone(), &config, shutdown).await;
        let _ = stop_flushing.send(());
        result
    };
    let (result, ()) = tokio::join!(consuming, flushing);
    // The last counts, once nothing runs any more (or the grace is spent): a graceful
    // stop loses none.
    if let Err(err) = executor.throughput().flush(executor.store()).await {
        tracing::warn!(%err, "the last throughput counts could not be stored");
    }
    result
}

/// Adds the executor's counts to the throughput history every `period` until `stop`.
/// A stop waits for a flush under way, so that no count is dropped halfway.
async fn flush_throughput(
    executor: Arc<Executor>,
    period: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(period) => {}
        }
        if let Err(err) = executor.throughput().flush(executor.store()).await {
            tracing::warn!(%err, "storing the throughput counts failed; the next flush tries again");
        }
    }
}

/// Runs the consumers until `shutdown`, then waits for their in-flight tasks within
/// the grace period.
async fn consume(
    queue: Queue,
    executor: Arc<Executor>,
    config: &WorkerConfig,
    shutdown: futures::future::Shared<impl Future<Output = ()> + Send + 'static>,
) -> Result<(), QueueError> {
    let queues = config.queues(&executor.queues());
    let mut paused = watch_pauses(
        executor.store().clone(),
        &queues,
        config.pause_poll(),
        shutdown.clone(),
    )
    .await;
    let mut consumers = tokio::task::JoinSet::new();
    for logical in queues {
        let paused = paused.remove(&logical);
        let queue = queue.clone();
        let executor = executor.clone();
        let shutdown = shutdown.clone();
        let concurrency = config.concurrency_for(executor.load_of(&logical));
        let restart_after = config.restart_delay();
        consumers.spawn(async move {
            // Supervision: a consumer that stops on an error (Redis restarted, or a
            // late heartbeat that got this worker declared dead and its tasks handed
            // to others) comes back under a new name until shutdown.
            loop {
                let name = worker_name(&logical);
                tracing::info!(queue = %logical, worker = %name, backend = queue.backend_name(), "consuming");
                let consumer = ConsumerConfig {
                    worker_name: name.clone(),
                    concurrency,
                    paused: paused.clone(),
                };
                let result = queue
                    .consume(&logical, consumer, handler(executor.clone(), name), shutdown.clone())
                    .await;
                let stopping = shutdown.clone().now_or_never().is_some();
                match result {
                    Ok(()) if stopping => return Ok(()),
                    Ok(()) => tracing::warn!(queue = %logical, "consumer ended early; restarting"),
                    Err(err) if stopping => return Err(err),
                    Err(err) => tracing::error!(queue = %logical, %err, "consumer failed; restarting"),
                }
                tokio::select! {
                    () = shutdown.clone() => return Ok(()),
                    () = tokio::time::sleep(restart_after) => {}
                }
            }
        });
    }
    let drained = async {
        let mut first_error = None;
        while let Some(joined) = consumers.join_next().await {
            let result = joined
                .map_err(|e| QueueError::Worker(e.to_string()))
                .and_then(|r| r);
            if let Err(err) = result {
                tracing::error!(%err, "consumer stopped");
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    };
    tokio::pin!(drained);
    // The aborts are watched as long as the pool runs, through the shutdown grace: it
    // is a branch that never ends, so it is dropped with the pool.
    let aborts = executor
        .running()
        .watch(executor.store(), config.abort_poll());
    tokio::select! {
        result = &mut drained => result,
        () = aborts => Ok(()),
        () = async { shutdown.clone().await; tokio::time::sleep(config.shutdown_grace()).await } => {
            tracing::warn!("shutdown grace elapsed with tasks still running; they will be redelivered");
            Ok(())
        }
    }
}

/// Whether each of `queues` is paused, read before any consumer starts and then every
/// `period` until `shutdown`. A failed read keeps what was last known: a pause is not
/// lifted because the database is away.
async fn watch_pauses(
    store: JobStore,
    queues: &[String],
    period: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> BTreeMap<String, watch::Receiver<bool>> {
    let first = store.paused_queues().await.unwrap_or_else(|err| {
        tracing::warn!(%err, "paused queues unknown; consuming every queue until they are read");
        Default::default()
    });
    let mut senders = BTreeMap::new();
    let mut receivers = BTreeMap::new();
    for queue in queues {
        let paused = first.contains(queue);
        if paused {
            tracing::info!(%queue, "paused: its tasks wait until it is resumed");
        }
        let (sender, receiver) = watch::channel(paused);
        senders.insert(queue.clone(), sender);
        receivers.insert(queue.clone(), receiver);
    }
    tokio::spawn(async move {
        let poll = async {
            loop {
                tokio::time::sleep(period).await;
                let now = match store.paused_queues().await {
                    Ok(now) => now,
                    Err(err) => {
                        tracing::warn!(%err, "reading the paused queues failed");
                        continue;
                    }
                };
                for (queue, sender) in &senders {
                    let paused = now.contains(queue);
                    if sender.send_if_modified(|was| std::mem::replace(was, paused) != paused) {
                        tracing::info!(%queue, paused, "queue paused or resumed by an operator");
                    }
                }
            }
        };
        tokio::select! {
            () = poll => {}
            () = shutdown => {}
        }
    });
    receivers
}
