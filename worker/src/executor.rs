//! One delivered task, from start to recorded outcome.
//!
//! The executor never returns an error to the queue backend: every outcome is written
//! to the job record, and a task whose outcome could not be written (database down) is
//! pushed again, so that nothing is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::config::DeliveryConfig;
use jobs::metrics::Metrics;
use jobs::store::{DbErr, Failure, JobRecord, Start};
use jobs::{Envelope, JobKind, JobStore, Queue};

use crate::handlers;

/// What every delivery needs.
#[derive(Debug, Clone)]
pub struct Executor {
    store: JobStore,
    queue: Queue,
    delivery: DeliveryConfig,
    metrics: Metrics,
    context: handlers::Context,
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
    /// The attempt failed and the job is dead.
    Dead,
    /// The task was not the job's to run (finished, cancelled or superseded).
    Skipped,
    /// The outcome could not be recorded; the task was pushed again.
    Redelivered(String),
}

impl Executor {
    /// An executor over these backends.
    pub fn new(
        store: JobStore,
        queue: Queue,
        delivery: DeliveryConfig,
        context: handlers::Context,
    ) -> Arc<Self> {
        Arc::new(Executor {
            store,
            queue,
            delivery,
            metrics: context.metrics.clone(),
            context,
        })
    }

    /// Runs one delivery as `worker`.
    pub async fn execute(&self, envelope: Envelope, worker: &str) -> Outcome {
        let mut ran = None;
        let outcome = match self.try_execute(&envelope, worker, &mut ran).await {
            Ok(outcome) => outcome,
            Err(err) => self.redeliver(&envelope, err.to_string()).await,
        };
        tracing::debug!(job = %envelope.job_id, kind = %envelope.kind, ?outcome, "task done");
        self.metrics.job(&envelope.kind, outcome.label(), ran);
        outcome
    }

    async fn try_execute(
        &self,
        envelope: &Envelope,
        worker: &str,
        ran: &mut Option<Duration>,
    ) -> Result<Outcome, DbErr> {
        let Start::Run(record) = self.store.start_attempt(envelope, worker).await? else {
            return Ok(Outcome::Skipped);
        };
        let started = Instant::now();
        let attempt = self.attempt(envelope, &record).await;
        *ran = Some(started.elapsed());
        let error = match attempt {
            Ok(output) => {
                let applied = self
                    .store
                    .succeed(envelope, output.result, started.elapsed(), output.effect)
                    .await?;
                return Ok(if applied {
                    Outcome::Succeeded
                } else {
                    Outcome::Duplicate
                });
            }
            Err(error) => error,
        };
        let backoff = self.delivery.backoff();
        let failure = self
            .store
            .fail(envelope, &error, started.elapsed(), |failed| {
                backoff.delay(failed, rand::random::<f64>())
            })
            .await?;
        Ok(match failure {
            Failure::Retry {
                envelope: next,
                delay,
            } => {
                if let Err(err) = self.queue.push(&next, delay).await {
                    // The record says `failed` with its due time; the scheduler's sweep
                    // pushes overdue retries again.
                    tracing::error!(job = %next.job_id, %err, "could not push a retry");
                }
                Outcome::Retrying(delay)
            }
            Failure::Dead => Outcome::Dead,
            Failure::Stale => Outcome::Skipped,
        })
    }

    /// Runs the kind's handler under the attempt timeout; every failure becomes the
    /// message recorded on the job.
    async fn attempt(
        &self,
        envelope: &Envelope,
        record: &JobRecord,
    ) -> Result<handlers::Output, String> {
        let kind = envelope
            .kind
            .parse::<JobKind>()
            .map_err(|e| e.to_string())?;
        let timeout = self.delivery.timeout();
        match tokio::time::timeout(timeout, handlers::run(kind, record, &self.context)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
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
    async fn redeliver(&self, envelope: &Envelope, error: String) -> Outcome {
        tracing::warn!(job = %envelope.job_id, %error, "recording failed; redelivering");
        let pause = self.delivery.backoff().delay(1, rand::random::<f64>());
        if let Err(err) = self.queue.push_again(envelope, pause).await {
            tracing::error!(job = %envelope.job_id, %err, "could not redeliver; the stuck-job sweep will");
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
            Outcome::Redelivered(_) => "redelivered",
        }
    }
}
