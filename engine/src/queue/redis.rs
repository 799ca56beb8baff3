//! The Redis backend: apalis-redis fetches, acks and recovers orphans; Conveyor pushes.
//!
//! apalis-redis 1.0.0 pushes every task through its scheduled set and its fetch script
//! promotes all due tasks with one Lua `unpack`: past about 8 000 due tasks every fetch
//! fails and the worker stops. So Conveyor never writes that set: tasks due now go
//! straight onto the active list (`push.lua`), delayed tasks wait in a set of our own
//! and are promoted in bounded chunks (`promote.lua`), and handlers never return an
//! error to apalis (which would schedule an apalis retry in that set).
//!
//! Pushes are group-committed (`crate::batch`): the pushes that pile up while one is
//! on its way go together, one `push.lua` call per queue, with one wake message.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::ext::poll_strategy::{PollWith, StreamStrategy};
use apalis_core::error::WorkerError;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use apalis_redis::{Config, RedisStorage};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::Notify;

use super::drain::{after_drain, keep_alive_while_running};
use super::wake::wake_stream;
use super::{Consumer, QueueError, deliver};
use crate::batch::{BatchError, Batcher, Limits};
use crate::task::Envelope;

static PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/push.lua")));
static PROMOTE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/promote.lua")));
static VACUUM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/vacuum.lua")));

/// Tasks moved per promote or vacuum call: far below the ~8 000 that break a Lua `unpack`.
const PROMOTE_CHUNK: usize = 1_000;

/// How pushes are batched: up to 256 (or 1 MiB of payloads) per batch, a second batch
/// on its way beside the first (on the one multiplexed connection) when a backlog
/// fills batches.
const PUSH_LIMITS: Limits = Limits {
    rows: 256,
    bytes: 1 << 20,
    flushers: 2,
};

#[derive(Clone)]
pub(crate) struct RedisQueue {
    client: redis::Client,
    conn: ConnectionManager,
    pushes: Arc<Batcher<PushRow, bool, PushFailed>>,
}

/// One push in a batch of pushes.
struct PushRow {
    physical: String,
    delivery_id: String,
    payload: Vec<u8>,
    /// When it is due, in ms since the epoch; 0 for now.
    due: u64,
}

/// Why a batch of pushes failed, as each of its callers learns it.
#[derive(Debug, Clone)]
enum PushFailed {
    Redis(redis::RedisError),
    Lost,
    Miscounted { asked: usize, answered: usize },
}

impl BatchError for PushFailed {
    fn lost() -> Self {
        PushFailed::Lost
    }

    fn miscounted(asked: usize, answered: usize) -> Self {
        PushFailed::Miscounted { asked, answered }
    }

    fn is_unreachable(&self) -> bool {
        match self {
            PushFailed::Redis(err) => {
                err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_timeout()
            }
            PushFailed::Lost | PushFailed::Miscounted { .. } => false,
        }
    }
}

impl From<PushFailed> for QueueError {
    fn from(failed: PushFailed) -> Self {
        match failed {
            PushFailed::Redis(err) => QueueError::Redis(err),
            PushFailed::Lost => QueueError::Push("the batch pushing this task was lost".into()),
            PushFailed::Miscounted { asked, answered } => {
                QueueError::Push(format!("a batch of {asked} pushes answered {answered}"))
            }
        }
    }
}

/// Runs one batch of pushes: one `push.lua` call per queue, all on their way at once.
async fn push_batch(conn: ConnectionManager, rows: Vec<PushRow>) -> Result<Vec<bool>, PushFailed> {
    let now = now_ms();
    // The rows of each queue, by index, queues in order of first appearance.
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match groups.iter_mut().find(|(queue, _)| *queue == row.physical) {
            Some((_, members)) => members.push(i),
            None => groups.push((&row.physical, vec![i])),
        }
    }
    let calls = groups.iter().map(|(physical, members)| {
        let keys = Keys::new(physical);
        let mut invocation = PUSH.prepare_invoke();
        invocation
            .key(keys.config.job_data_hash())
            .key(keys.config.job_meta_hash())
            .key(keys.config.active_jobs_list())
            .key(keys.config.signal_list())
            .key(keys.delayed())
            .arg(keys.wake_channel())
            .arg(now);
        for &i in members {
            let row = &rows[i];
            invocation
                .arg(&row.delivery_id)
                .arg(&row.payload)
                .arg(row.due);
        }
        let mut conn = conn.clone();
        async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await }
    });
    let answers = futures::future::try_join_all(calls)
        .await
        .map_err(PushFailed::Redis)?;
    let mut queued = vec![false; rows.len()];
    for ((_, members), answer) in groups.iter().zip(answers) {
        if answer.len() != members.len() {
            return Err(PushFailed::Miscounted {
                asked: members.len(),
                answered: answer.len(),
            });
        }
        for (&i, one) in members.iter().zip(answer) {
            queued[i] = one == 1;
        }
    }
    Ok(queued)
}

/// Keys of one physical queue, named by apalis-redis's own configuration.
struct Keys {
    config: Config,
}

impl Keys {
    fn new(physical: &str) -> Self {
        Keys {
            config: Config::default().queue(physical),
        }
    }

    fn delayed(&self) -> String {
        format!("{}:conveyor-delayed", self.config.queue)
    }

    fn wake_channel(&self) -> String {
        format!("{}:conveyor-wake", self.config.queue)
    }
}

impl RedisQueue {
    pub(crate) async fn connect(url: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        let pushes = {
            let conn = conn.clone();
            Batcher::new(
                PUSH_LIMITS,
                |row: &PushRow| row.payload.len() + row.delivery_id.len(),
                Arc::new(move |rows: Vec<PushRow>| -> BoxFuture<'static, _> {
                    Box::pin(push_batch(conn.clone(), rows))
                }),
            )
        };
        Ok(RedisQueue {
            client,
            conn,
            pushes,
        })
    }

    /// Pushes `envelope` as the delivery `delivery_id`; false when a delivery of that
    /// id is already known (queued, in flight, or acknowledged and not yet vacuumed).
    pub(crate) async fn push(
        &self,
        physical: &str,
        delivery_id: &str,
        envelope: &Envelope,
        delay: Duration,
    ) -> Result<bool, QueueError> {
        let due = if delay.is_zero() {
            0
        } else {
            now_ms() + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX / 2)
        };
        let row = PushRow {
            physical: physical.to_owned(),
            delivery_id: delivery_id.to_owned(),
            payload: serde_json::to_vec(envelope)?,
            due,
        };
        self.pushes.run(row).await.map_err(QueueError::from)
    }

    pub(crate) async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    pub(crate) async fn depth(&self, physical: &str) -> Result<u64, QueueError> {
        let keys = Keys::new(physical);
        let mut conn = self.conn.clone();
        let (ready, delayed): (u64, u64) = redis::pipe()
            .llen(keys.config.active_jobs_list())
            .zcard(keys.delayed())
            .query_async(&mut conn)
            .await?;
        Ok(ready + delayed)
    }

    pub(crate) async fn workers_alive(
        &self,
        physical: &str,
        within: Duration,
    ) -> Result<Vec<String>, QueueError> {
        let keys = Keys::new(physical);
        let since = now_ms() / 1000 - within.as_secs();
        let mut conn = self.conn.clone();
        let names: Vec<String> = conn
            .zrangebyscore(keys.config.workers_set(), since, "+inf")
            .await?;
        Ok(names)
    }

    /// Moves every due delayed task onto the active list, a chunk at a time.
    pub(crate) async fn promote_due(&self, physical: &str) -> Result<u64, QueueError> {
        let keys = Keys::new(physical);
        let mut conn = self.conn.clone();
        let mut moved = 0;
        loop {
            let n: u64 = PROMOTE
                .key(keys.delayed())
                .key(keys.config.active_jobs_list())
                .key(keys.config.signal_list())
                .arg(now_ms())
                .arg(PROMOTE_CHUNK)
                .arg(keys.wake_channel())
                .invoke_async(&mut conn)
                .await?;
            moved += n;
            if n < PROMOTE_CHUNK as u64 {
                return Ok(moved);
            }
        }
    }

    /// Forgets acknowledged tasks, a chunk per script call.
    pub(crate) async fn vacuum(&self, physical: &str) -> Result<u64, QueueError> {
        let keys = Keys::new(physical);
        let mut conn = self.conn.clone();
        let mut forgotten = 0;
        loop {
            let n: u64 = VACUUM
                .key(keys.config.done_jobs_set())
                .key(keys.config.job_data_hash())
                .key(keys.config.job_meta_hash())
                .arg(PROMOTE_CHUNK)
                .invoke_async(&mut conn)
                .await?;
            forgotten += n;
            if n < PROMOTE_CHUNK as u64 {
                return Ok(forgotten);
            }
        }
    }

    pub(crate) fn consume(&self, consumer: Consumer) -> BoxFuture<'static, Result<(), QueueError>> {
        let keys = Keys::new(&consumer.physical);
        let signal = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(
            self.client.clone(),
            keys.wake_channel(),
            signal.clone(),
        ));
        let promoter = tokio::spawn(promote_forever(
            self.clone(),
            consumer.physical.clone(),
            consumer.delivery.promote_interval(),
        ));

        let config = Config::default()
            .queue(&consumer.physical)
            .batch_size(consumer.delivery.fetch_batch.max(1))
            .heartbeat_interval(consumer.delivery.heartbeat())
            .missed_heartbeats(consumer.delivery.missed_heartbeats.max(1))
            // apalis acks through its "results": without them a finished task stays
            // in flight and runs again when its worker goes away.
            .persist_results(true)
            // apalis's task leases cost an `LREM` over the whole active list per task
            // (quadratic on a backlog: 100 000 tasks took minutes) and add nothing here:
            // a fetched task is already in the worker's in-flight set, which is what
            // orphan recovery uses.
            .lock_tasks(false);
        let storage =
            RedisStorage::<Envelope, ConnectionManager>::new(self.conn.clone()).with_config(config);
        let backend = PollWith::new(
            storage,
            StreamStrategy::new(wake_stream(signal, consumer.delivery.poll_interval())),
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
            let conn = self.conn.clone();
            let workers = keys.config.workers_set();
            let name = consumer.config.worker_name.clone();
            move || keep_alive(conn.clone(), workers.clone(), name.clone()).boxed()
        };
        let run = keep_alive_while_running(run, consumer.delivery.heartbeat(), beat);
        async move {
            let result = run.await;
            listener.abort();
            promoter.abort();
            result
        }
        .boxed()
    }
}

/// Refreshes the worker's heartbeat as apalis-redis's `keep_alive.lua` does (seconds
/// in the workers set), but only if the worker is still registered: one declared dead
/// has had its tasks handed to others and must not come back.
async fn keep_alive(
    mut conn: ConnectionManager,
    workers: String,
    name: String,
) -> Result<(), QueueError> {
    redis::cmd("ZADD")
        .arg(workers)
        .arg("XX")
        .arg(now_ms() / 1000)
        .arg(name)
        .query_async::<u64>(&mut conn)
        .await?;
    Ok(())
}

/// Turns pushes announced on the wake channel into worker wake-ups, reconnecting
/// after errors. Missed messages are covered by the poll interval.
async fn listen(client: redis::Client, channel: String, signal: Arc<Notify>) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(err) = pubsub.subscribe(&channel).await {
                    tracing::warn!(%err, %channel, "wake channel subscribe failed");
                } else {
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        signal.notify_one();
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "wake channel connection failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn promote_forever(queue: RedisQueue, physical: String, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match queue.promote_due(&physical).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, queue = %physical, "promoted delayed tasks"),
            Err(err) => tracing::warn!(%err, queue = %physical, "promoting delayed tasks failed"),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
