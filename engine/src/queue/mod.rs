//! [`Queue`]: the one handle producers and consumers use. It alone knows whether the
//! queues live in Redis (apalis-redis) or in the embedded SQLite store (apalis-sqlite).

mod drain;
mod redis;
mod sqlite;
mod wake;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use sea_orm::DatabaseConnection;

use crate::config::{BackendConfig, DeliveryConfig};
use crate::task::{Envelope, Task};
use drain::DrainGate;

/// A queue operation failed; the backend is named, the cause kept.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis refused or is unreachable.
    #[error("redis queue: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The embedded SQLite queue failed.
    #[error("sqlite queue: {0}")]
    Sqlite(#[from] sea_orm::sqlx::Error),
    /// A task could not be encoded.
    #[error("task encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The worker loop stopped with an error.
    #[error("worker: {0}")]
    Worker(String),
    /// A batch of pushes ended without a proper answer.
    #[error("redis push: {0}")]
    Push(String),
    /// The configuration cannot work.
    #[error("configuration: {0}")]
    Config(String),
}

/// Runs one delivered task to its end. It never fails: every outcome, errors included,
/// is recorded in the job record by the handler itself, so the backend always acks.
pub type Handler = Arc<dyn Fn(Task) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a backend's worker calls with each task it fetched from one queue.
type Deliver = Arc<dyn Fn(Envelope) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a [`Queue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The task was queued.
    Queued,
    /// A delivery of this task was already known to the backend; nothing was queued.
    AlreadyQueued,
}

/// Settings of one consumer loop.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Unique worker name (host, pid and a sequence number).
    pub worker_name: String,
    /// Tasks run at once.
    pub concurrency: usize,
    /// Whether the queue is paused, when it can be: while `true` the consumer takes no
    /// task (running ones finish; one a fetch under way brings goes back to the queue),
    /// and it takes tasks again as soon as it turns `false`.
    pub paused: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What a backend needs to run one consumer loop, built once by [`Queue::consume`]
/// for either backend.
pub(crate) struct Consumer {
    /// The backend's queue name.
    physical: String,
    config: ConsumerConfig,
    delivery: DeliveryConfig,
    /// The caller's handler, wrapped so that a task arriving after the stop began
    /// goes back to its queue.
    handler: Deliver,
    /// Closed by the stop; shared with the worker's service layer.
    gate: DrainGate,
    shutdown: BoxFuture<'static, ()>,
}

/// The queue backends behind one handle.
#[derive(Clone)]
pub struct Queue {
    backend: Backend,
    prefix: String,
    delivery: DeliveryConfig,
}

#[derive(Clone)]
enum Backend {
    Redis(redis::RedisQueue),
    Sqlite(sqlite::SqliteQueue),
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("backend", &self.backend_name())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Queue {
    /// Connects to Redis when `REDIS_URL` is set, else uses the SQLite database `db`.
    pub async fn connect(
        backends: &BackendConfig,
        delivery: &DeliveryConfig,
        db: &DatabaseConnection,
    ) -> Result<Queue, QueueError> {
        validate_prefix(&backends.queue_prefix)?;
        let backend = match &backends.redis_url {
            Some(url) => Backend::Redis(redis::RedisQueue::connect(url).await?),
            None if crate::db::is_sqlite(db) => Backend::Sqlite(
                sqlite::SqliteQueue::setup(db.get_sqlite_connection_pool().clone()).await?,
            ),
            None => {
                return Err(QueueError::Config(
                    "DATABASE_URL is not SQLite, so the embedded queue is unavailable: set REDIS_URL".into(),
                ));
            }
        };
        Ok(Queue {
            backend,
            prefix: backends.queue_prefix.clone(),
            delivery: delivery.clone(),
        })
    }

    /// `redis` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Redis(_) => "redis",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// The backend's name for a logical queue: the deployment prefix and the name.
    pub fn physical(&self, logical: &str) -> String {
        format!("{}-{}", self.prefix, logical)
    }

    /// Pushes a task onto its queue, to run after `delay`.
    ///
    /// On Redis the task id is the delivery's id, so pushing a task that is already
    /// queued or in flight queues nothing ([`Pushed::AlreadyQueued`]): a sweep may push
    /// a waiting job again without doubling it. SQLite queues every push.
    pub async fn push(&self, task: &Task, delay: Duration) -> Result<Pushed, QueueError> {
        let physical = self.physical(&task.queue);
        let envelope = &task.envelope;
        match &self.backend {
            Backend::Redis(q) => Ok(
                if q.push(&physical, &envelope.task_id.to_string(), envelope, delay)
                    .await?
                {
                    Pushed::Queued
                } else {
                    Pushed::AlreadyQueued
                },
            ),
            Backend::Sqlite(q) => q
                .push(&physical, envelope, delay)
                .await
                .map(|()| Pushed::Queued),
        }
    }

    /// Pushes a task again while its current delivery is still known to the backend
    /// (the worker running it could not record the outcome): it goes out under a new
    /// delivery id, so it is always queued. The job record still names the task, so
    /// whichever delivery runs first is entitled to it.
    pub async fn push_again(&self, task: &Task, delay: Duration) -> Result<(), QueueError> {
        let physical = self.physical(&task.queue);
        match &self.backend {
            Backend::Redis(q) => {
                let delivery = ulid::Ulid::generate().to_string();
                q.push(&physical, &delivery, &task.envelope, delay).await?;
                Ok(())
            }
            Backend::Sqlite(q) => q.push(&physical, &task.envelope, delay).await,
        }
    }

    /// The delivery settings this handle was made with.
    pub fn delivery(&self) -> &DeliveryConfig {
        &self.delivery
    }

    /// Answers when the backend answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Redis(q) => q.ping().await,
            Backend::Sqlite(q) => q.ping().await,
        }
    }

    /// Tasks waiting on a logical queue (ready and delayed).
    pub async fn depth(&self, logical: &str) -> Result<u64, QueueError> {
        let physical = self.physical(logical);
        match &self.backend {
            Backend::Redis(q) => q.depth(&physical).await,
            Backend::Sqlite(q) => q.depth(&physical).await,
        }
    }

    /// Forgets acknowledged tasks of a logical queue (job records keep the history).
    pub async fn vacuum(&self, logical: &str) -> Result<u64, QueueError> {
        let physical = self.physical(logical);
        match &self.backend {
            Backend::Redis(q) => q.vacuum(&physical).await,
            Backend::Sqlite(q) => q.vacuum(&physical).await,
        }
    }

    /// Workers that sent a heartbeat on a logical queue recently.
    pub async fn workers_alive(&self, logical: &str) -> Result<Vec<String>, QueueError> {
        let physical = self.physical(logical);
        let within = self.orphaned_after();
        match &self.backend {
            Backend::Redis(q) => q.workers_alive(&physical, within).await,
            Backend::Sqlite(q) => q.workers_alive(&physical, within).await,
        }
    }

    /// Consumes a logical queue until `shutdown` completes, then lets in-flight tasks
    /// finish. The caller bounds that grace period.
    pub async fn consume(
        &self,
        logical: &str,
        consumer: ConsumerConfig,
        handler: Handler,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), QueueError> {
        let gate = DrainGate::default();
        // The pause is known before the first fetch, then followed while this runs.
        let follower = consumer.paused.clone().map(|mut paused| {
            gate.set_paused(*paused.borrow_and_update());
            let gate = gate.clone();
            tokio::spawn(async move {
                while paused.changed().await.is_ok() {
                    gate.set_paused(*paused.borrow_and_update());
                }
            })
        });
        let handler = drain::requeue_once_closed(handler, gate.clone(), self.clone());
        let queue = logical.to_owned();
        let deliver: Deliver = Arc::new(move |envelope| {
            handler(Task {
                queue: queue.clone(),
                envelope,
            })
        });
        let run = Consumer {
            physical: self.physical(logical),
            config: consumer,
            delivery: self.delivery.clone(),
            handler: deliver,
            gate,
            shutdown: shutdown.boxed(),
        };
        let run = match &self.backend {
            Backend::Redis(q) => q.consume(run),
            Backend::Sqlite(q) => q.consume(run),
        };
        let result = run.await;
        if let Some(follower) = follower {
            follower.abort();
        }
        result
    }

    fn orphaned_after(&self) -> Duration {
        self.delivery.heartbeat() * u32::try_from(self.delivery.missed_heartbeats).unwrap_or(1)
    }
}

/// A worker name unique per process and per consumer: host, pid and a sequence number.
pub fn worker_name(logical_queue: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{host}-{}-{seq}-{logical_queue}", std::process::id())
}

fn validate_prefix(prefix: &str) -> Result<(), QueueError> {
    let valid = !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(QueueError::Config(format!(
            "QUEUE_PREFIX '{prefix}' must be letters, digits, '-' or '_' (':' would split apalis keys)"
        )))
    }
}

/// What the worker service returns for one task: the handler's run, always `Ok`.
type Delivered = futures::future::Map<
    BoxFuture<'static, ()>,
    fn(()) -> Result<(), apalis_core::error::BoxDynError>,
>;

/// The worker service of a consumer: each fetched envelope goes to `handler`, which is
/// captured here rather than handed to apalis as task data (that would copy it into
/// every task's extension map, an allocation and a clone per task).
fn deliver(handler: Deliver) -> impl Fn(Envelope) -> Delivered + Clone + Send + Sync + 'static {
    move |envelope| handler(envelope).map(Ok as fn(()) -> _)
}
