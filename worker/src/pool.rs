//! The worker pool: one consumer per queue, stopped gracefully.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use jobs::Queue;
use jobs::queue::{ConsumerConfig, Handler, QueueError, worker_name};

use crate::config::WorkerConfig;
use crate::executor::Executor;

/// Consumes the configured queues until `shutdown` completes, then gives in-flight
/// tasks the grace period to finish. Tasks still running after it are not lost: their
/// worker stops heartbeating and another worker runs them again.
pub async fn run(
    queue: Queue,
    executor: Arc<Executor>,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QueueError> {
    let shutdown = shutdown.shared();
    let mut consumers = tokio::task::JoinSet::new();
    for logical in config.queues() {
        let name = worker_name(&logical);
        tracing::info!(queue = %logical, worker = %name, backend = queue.backend_name(), "consuming");
        let handler: Handler = {
            let executor = executor.clone();
            let name = name.clone();
            Arc::new(move |envelope| {
                let executor = executor.clone();
                let name = name.clone();
                async move {
                    executor.execute(envelope, &name).await;
                }
                .boxed()
            })
        };
        let consumer = ConsumerConfig {
            worker_name: name,
            concurrency: config.concurrency,
        };
        let queue = queue.clone();
        let shutdown = shutdown.clone();
        consumers.spawn(async move { queue.consume(&logical, consumer, handler, shutdown).await });
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
    tokio::select! {
        result = &mut drained => result,
        () = async { shutdown.clone().await; tokio::time::sleep(config.shutdown_grace()).await } => {
            tracing::warn!("shutdown grace elapsed with tasks still running; they will be redelivered");
            Ok(())
        }
    }
}
