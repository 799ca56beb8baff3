//! The embedded backend: apalis-sqlite tables in the same SQLite file as the job
//! records, sharing sea-orm's pool, so that nothing needs installing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::backend::ext::poll_strategy::{PollWith, StreamStrategy};
use apalis_core::error::WorkerError;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use apalis_sqlite::{Config, SqliteStorage};
use futures::FutureExt;
use futures::future::BoxFuture;
use sea_orm::sqlx::{self, SqlitePool};
use tokio::sync::Notify;

use super::drain::{after_drain, keep_alive_while_running};
use super::wake::wake_stream;
use super::{Consumer, QueueError, deliver};
use crate::task::Envelope;

#[derive(Clone)]
pub(crate) struct SqliteQueue {
    pool: SqlitePool,
    /// Wakes this process's consumers on a push from this process; consumers in other
    /// processes find the task at their next poll.
    signals: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl SqliteQueue {
    pub(crate) async fn setup(pool: SqlitePool) -> Result<Self, QueueError> {
        SqliteStorage::setup(&pool)
            .await
            .map_err(|e| QueueError::Worker(format!("apalis-sqlite setup: {e}")))?;
        Ok(SqliteQueue {
            pool,
            signals: Arc::default(),
        })
    }

    fn signal(&self, physical: &str) -> Arc<Notify> {
        let mut signals = self
            .signals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        signals.entry(physical.to_owned()).or_default().clone()
    }

    fn storage(&self, physical: &str) -> SqliteStorage<Envelope> {
        SqliteStorage::new(&self.pool).with_config(Config::default().queue(physical))
    }

    pub(crate) async fn push(
        &self,
        physical: &str,
        envelope: &Envelope,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let mut task = TaskBuilder::new(envelope.clone()).max_attempts(1);
        if !delay.is_zero() {
            // apalis-sqlite keeps due times in whole seconds: round up, so that a
            // retry never runs before its backoff is over.
            let due = SystemTime::now() + delay;
            let since_epoch = due.duration_since(UNIX_EPOCH).unwrap_or_default();
            let secs = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
            task = task.run_at_timestamp(secs);
        }
        self.storage(physical)
            .push_task(task.build())
            .await
            .map_err(|e| QueueError::Worker(format!("apalis-sqlite push: {e}")))?;
        self.signal(physical).notify_one();
        Ok(())
    }

    pub(crate) async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn depth(&self, physical: &str) -> Result<u64, QueueError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM Jobs WHERE job_type = ?1 AND status = 'Pending'",
        )
        .bind(physical)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub(crate) async fn workers_alive(
        &self,
        physical: &str,
        within: Duration,
    ) -> Result<Vec<String>, QueueError> {
        let within = i64::try_from(within.as_secs()).unwrap_or(i64::MAX);
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM Workers WHERE worker_type = ?1 \
             AND last_seen >= strftime('%s', 'now') - ?2 ORDER BY id",
        )
        .bind(physical)
        .bind(within)
        .fetch_all(&self.pool)
        .await?;
        Ok(names)
    }

    /// Deletes acknowledged tasks, a chunk per statement.
    pub(crate) async fn vacuum(&self, physical: &str) -> Result<u64, QueueError> {
        let mut forgotten = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM Jobs WHERE rowid IN \
                 (SELECT rowid FROM Jobs WHERE job_type = ?1 AND status = 'Done' LIMIT 1000)",
            )
            .bind(physical)
            .execute(&self.pool)
            .await?
            .rows_affected();
            forgotten += done;
            if done < 1000 {
                return Ok(forgotten);
            }
        }
    }

    pub(crate) fn consume(&self, consumer: Consumer) -> BoxFuture<'static, Result<(), QueueError>> {
        let config = Config::default()
            .queue(&consumer.physical)
            .batch_size(consumer.delivery.fetch_batch.max(1))
            .heartbeat_interval(consumer.delivery.heartbeat())
            .missed_heartbeats(consumer.delivery.missed_heartbeats.max(1))
            // apalis acks through its "results": without them a finished task stays
            // in flight and runs again when its worker goes away.
            .persist_results(true);
        let storage = SqliteStorage::<Envelope>::new(&self.pool).with_config(config);
        let backend = PollWith::new(
            storage,
            StreamStrategy::new(wake_stream(
                self.signal(&consumer.physical),
                consumer.delivery.poll_interval(),
            )),
        );
        let worker = WorkerBuilder::new(consumer.config.worker_name.as_str())
            .backend(backend)
            .layer(consumer.gate.clone())
            .concurrency(consumer.config.concurrency.max(1))
            .parallelize(tokio::spawn)
            .build(deliver(consumer.handler));
        let run = worker
            .run_until(after_drain(consumer.shutdown, consumer.gate).map(Ok::<(), WorkerError>))
            .map(|result| result.map_err(|e| QueueError::Worker(e.to_string())))
            .boxed();
        let beat = {
            let pool = self.pool.clone();
            let name = consumer.config.worker_name.clone();
            let queue = consumer.physical.clone();
            move || keep_alive(pool.clone(), name.clone(), queue.clone()).boxed()
        };
        keep_alive_while_running(run, consumer.delivery.heartbeat(), beat).boxed()
    }
}

/// Refreshes the worker's heartbeat as apalis-sqlite's `keep_alive.sql` does.
async fn keep_alive(pool: SqlitePool, name: String, queue: String) -> Result<(), QueueError> {
    sqlx::query(
        "UPDATE Workers SET last_seen = strftime('%s', 'now') WHERE id = ?1 AND worker_type = ?2",
    )
    .bind(name)
    .bind(queue)
    .execute(&pool)
    .await?;
    Ok(())
}
