//! One delivered task, from start to recorded outcome.
//!
//! The executor never returns an error to the queue backend: every outcome is written
//! to the job record, and a task whose outcome could not be written (database down) is
//! pushed again, so that nothing is lost.
//!
//! An attempt whose job an operator aborts is dropped where it awaits (see
//! [`crate::aborts`]), recorded in the job's attempt log, and its task acked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::config::DeliveryConfig;
use engine::metrics::Metrics;
use engine::registry::Ran;
use engine::store::{AttemptRun, Failure, Start, StoreError};
use engine::throughput::Throughput;
use engine::{Envelope, JobRecord, JobStore, Load, Queue, Registry, Task};
use serde_json::Value;

use crate::aborts::Running;

/// What every delivery needs.
#[derive(Debug, Clone)]
pub struct Executor {
    store: JobStore,
    queue: Queue,
    registry: Registry,
    delivery: DeliveryConfig,
    metrics: Metrics,
    throughput: Throughput,
    running: Arc<Running>,
}

/// How one delivery ended, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The job succeeded and its effect was applied.
    Succeeded,
    /// The job had already been finished by another delivery: nothing applied.
    Duplicate,
    /// The attempt failed and another is scheduled.
    Retrying(Duration),
    /// The attempt failed and the job is dead (or its kind is unknown to this build).
    Dead,
    /// The task was not the job's to run (finished, cancelled or superseded).
    Skipped,
    /// An operator aborted the job while this attempt ran: the attempt was dropped.
    Aborted,
    /// The outcome could not be recorded; the task was pushed again.
    Redelivered(String),
}

/// How an attempt ended before its outcome is recorded.
enum Attempted {
    Ran(Ran),
    Failed(String),
    Aborted,
}

impl Executor {
    /// An executor running `registry`'s kinds over these backends.
    pub fn new(
        store: JobStore,
        queue: Queue,
        registry: Registry,
        delivery: DeliveryConfig,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Executor {
            store,
            queue,
            registry,
            delivery,
            metrics,
            throughput: Throughput::default(),
            running: Arc::default(),
        })
    }

    /// The attempts under way, which [`Running::watch`] stops when their job is
    /// aborted.
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// The job records this executor writes to (and the queue pauses it obeys).
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// The outcomes counted for the throughput history and not stored yet; the pool
    /// flushes them.
    pub fn throughput(&self) -> &Throughput {
        &self.throughput
    }

    /// Every queue some kind of the registry uses.
    pub fn queues(&self) -> Vec<&'static str> {
        self.registry.queues()
    }

    /// What the attempts on `queue` mostly do.
    pub fn load_of(&self, queue: &str) -> Load {
        self.registry.load_of(queue)
    }

    /// Runs one delivery as `worker`.
    pub async fn execute(&self, task: Task, worker: &str) -> Outcome {
        let mut ran = None;
        let outcome = match self.try_execute(&task, worker, &mut ran).await {
            Ok(outcome) => outcome,
            Err(err) => self.redeliver(&task, err.to_string()).await,
        };
        let envelope = &task.envelope;
        tracing::debug!(job = %envelope.job_id, kind = %envelope.kind, ?outcome, "task done");
        self.metrics.job(&envelope.kind, outcome.label(), ran);
        match outcome {
            Outcome::Succeeded => self.throughput.succeeded(&task.queue),
            Outcome::Retrying(_) | Outcome::Dead => self.throughput.failed(&task.queue),
            // Nothing ran to an outcome here: another delivery counts the job.
            Outcome::Duplicate | Outcome::Skipped | Outcome::Redelivered(_) => {}
            // An operator's decision, not a failure of the job.
            Outcome::Aborted => {}
        }
        outcome
    }

    async fn try_execute(
        &self,
        task: &Task,
        worker: &str,
        ran: &mut Option<Duration>,
    ) -> Result<Outcome, StoreError> {
        let envelope = &task.envelope;
        if self.registry.get(&envelope.kind).is_none() {
            let error = format!(
                "unknown job kind '{}': no worker of this build runs it",
                envelope.kind.chars().take(64).collect::<String>()
            );
            tracing::error!(job = %envelope.job_id, %error, "burying a task");
            return Ok(if self.store.bury(envelope, &error).await? {
                Outcome::Dead
            } else {
                Outcome::Skipped
            });
        }
        // A first task runs without a read. If the job was not as it presumed (see
        // `JobStore::presume`), nothing was recorded: read it, and run it again if it
        // is still this task's to run.
        if let Some(attempt) = self.store.presume(envelope, worker)
            && let Some(outcome) = self.run_attempt(envelope, None, attempt, ran).await?
        {
            return Ok(outcome);
        }
        let Start::Run { record, attempt } = self.store.start_attempt(envelope, worker).await?
        else {
            return Ok(Outcome::Skipped);
        };
        let outcome = self
            .run_attempt(envelope, Some(*record), attempt, ran)
            .await?;
        // Only a presumed attempt comes back without an outcome.
        Ok(outcome.unwrap_or(Outcome::Skipped))
    }

    /// Runs `attempt` and records its outcome. `record` is the job as read at the
    /// attempt's start, or `None` for an attempt presumed from its task
    /// ([`JobStore::presume`]): then `None` comes back when the job turned out not to
    /// be the attempt's (nothing was recorded) and the caller must read it.
    async fn run_attempt(
        &self,
        envelope: &Envelope,
        record: Option<JobRecord>,
        attempt: AttemptRun,
        ran: &mut Option<Duration>,
    ) -> Result<Option<Outcome>, StoreError> {
        let Some(args) = record.as_ref().map(|r| &r.args).or(envelope.args.as_ref()) else {
            return Ok(None);
        };
        let presumed = record.is_none();
        let started = Instant::now();
        let outcome = self.attempt(envelope, args, &attempt).await;
        *ran = Some(started.elapsed());
        let error = match outcome {
            Attempted::Aborted => {
                // Best effort: the record says `cancelled` already; this adds the
                // attempt to its log.
                let elapsed = started.elapsed();
                if let Err(err) = self.log_aborted(envelope, record, &attempt, elapsed).await {
                    tracing::warn!(job = %envelope.job_id, %err, "could not log the aborted attempt");
                }
                return Ok(Some(Outcome::Aborted));
            }
            Attempted::Ran(success) => {
                match success
                    .record(&self.store, envelope, attempt.clone(), started.elapsed())
                    .await
                {
                    Ok(true) => return Ok(Some(Outcome::Succeeded)),
                    Ok(false) if presumed => return Ok(None),
                    Ok(false) => return Ok(Some(Outcome::Duplicate)),
                    // The effect cannot be stored however often it is tried: the
                    // attempt fails (and is retried, then dead) with the reason.
                    Err(StoreError::Rejected(reason)) => reason,
                    Err(err) => return Err(err),
                }
            }
            Attempted::Failed(error) => error,
        };
        let record = match record {
            Some(record) => record,
            None => match self.store.confirm(envelope, &attempt).await? {
                Some(record) => record,
                None => return Ok(None),
            },
        };
        let backoff = self.delivery.backoff();
        let failure = self
            .store
            .fail(
                envelope,
                &record,
                &attempt,
                &error,
                started.elapsed(),
                |failed| backoff.delay(failed, rand::random::<f64>()),
            )
            .await?;
        Ok(Some(match failure {
            Failure::Retry { task: next, delay } => {
                if let Err(err) = self.queue.push(&next, delay).await {
                    // The record says `failed` with its due time; the scheduler's sweep
                    // pushes overdue retries again.
                    tracing::error!(job = %next.envelope.job_id, %err, "could not push a retry");
                }
                Outcome::Retrying(delay)
            }
            Failure::Dead => Outcome::Dead,
            Failure::Stale => Outcome::Skipped,
        }))
    }

    /// Adds an aborted attempt to its job's log: `record` as read at the attempt's
    /// start, or read now for a presumed attempt.
    async fn log_aborted(
        &self,
        envelope: &Envelope,
        record: Option<JobRecord>,
        attempt: &AttemptRun,
        elapsed: Duration,
    ) -> Result<(), StoreError> {
        let record = match record {
            Some(record) => record,
            None => match self.store.get(envelope.job_id).await? {
                Some(record) => record,
                None => return Ok(()),
            },
        };
        self.store
            .record_aborted(envelope, &record, attempt, elapsed)
            .await?;
        Ok(())
    }

    /// Runs the task's kind with `args` under the attempt timeout; every failure
    /// becomes the message recorded on the job. An attempt still running after
    /// `JOB_RUNNING_MARK_MS` is marked `running` meanwhile; one whose job is aborted
    /// is dropped.
    async fn attempt(&self, envelope: &Envelope, args: &Value, attempt: &AttemptRun) -> Attempted {
        let Some(runner) = self.registry.get(&envelope.kind) else {
            return Attempted::Failed(format!("unknown job kind '{}'", envelope.kind));
        };
        let timeout = self.delivery.timeout();
        let abort = self.running.enter(envelope.job_id);
        let run = tokio::time::timeout(timeout, runner.run(envelope.job_id, args, attempt.number));
        tokio::pin!(run);
        let marked = async {
            tokio::select! {
                outcome = &mut run => outcome,
                () = tokio::time::sleep(self.delivery.running_mark()) => {
                    // Best effort: the outcome is written whether or not this is. (After
                    // an abort it writes nothing: `cancelled` is not startable.)
                    if let Err(err) = self.store.mark_running(envelope, attempt).await {
                        tracing::warn!(job = %envelope.job_id, %err, "could not mark the job running");
                    }
                    run.await
                }
            }
        };
        // Dropping the attempt's future stops it at its next await; work on a
        // blocking thread finishes there, unseen.
        let outcome = tokio::select! {
            outcome = marked => outcome,
            () = abort.requested() => return Attempted::Aborted,
        };
        match outcome {
            Ok(Ok(success)) => Attempted::Ran(success),
            Ok(Err(err)) => Attempted::Failed(err.to_string()),
            Err(_) => Attempted::Failed(format!("timed out after {} ms", timeout.as_millis())),
        }
    }

    /// The database could not record an outcome: push the same task again after a
    /// pause, so that a later delivery finishes the job.
    ///
    /// This delivery is still known to the queue (it is acked once this returns), so
    /// the task goes out under a new delivery id: a plain push would be refused as a
    /// duplicate and the job would stay `running` with nothing left to run it. If even
    /// that push fails, the scheduler's sweep finds the job once it has been `running`
    /// for longer than an attempt can take.
    async fn redeliver(&self, task: &Task, error: String) -> Outcome {
        let job = task.envelope.job_id;
        tracing::warn!(%job, %error, "recording failed; redelivering");
        let pause = self.delivery.backoff().delay(1, rand::random::<f64>());
        if let Err(err) = self.queue.push_again(task, pause).await {
            tracing::error!(%job, %err, "could not redeliver; the stuck-job sweep will");
        }
        Outcome::Redelivered(error)
    }
}

impl Outcome {
    /// The metric label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Duplicate => "duplicate",
            Outcome::Retrying(_) => "retrying",
            Outcome::Dead => "dead",
            Outcome::Skipped => "skipped",
            Outcome::Aborted => "aborted",
            Outcome::Redelivered(_) => "redelivered",
        }
    }
}
