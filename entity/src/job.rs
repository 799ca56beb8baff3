//! The `job_records` table (not `jobs`: apalis-sqlite owns `Jobs`, and SQLite names are case-insensitive): one row per job, written by the api (queued) and the workers.

use sea_orm::entity::prelude::*;

/// A job record.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_records")]
pub struct Model {
    /// ULID, so that ordering by id orders by creation time.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Job kind, e.g. `system.noop`.
    pub kind: String,
    /// Queue the job's tasks are pushed to.
    pub queue: String,
    /// Arguments as given by the producer.
    pub args: Json,
    /// `domain::job::JobStatus` wire name.
    pub status: String,
    /// Attempts started so far.
    pub attempts: i32,
    /// Attempts allowed before the job is dead.
    pub max_attempts: i32,
    /// Handler result once succeeded.
    pub result: Option<Json>,
    /// Last error, kept when the job is dead.
    pub error: Option<String>,
    /// Name of the worker that ran the last attempt.
    pub worker: Option<String>,
    /// The `Idempotency-Key` the job was created with, if any.
    pub idempotency_key: Option<String>,
    /// When the job was accepted.
    pub created_at: DateTimeUtc,
    /// When the last attempt started.
    pub started_at: Option<DateTimeUtc>,
    /// When the job reached succeeded, dead or cancelled.
    pub finished_at: Option<DateTimeUtc>,
    /// Duration of the last attempt in milliseconds.
    pub elapsed_ms: Option<i64>,
    /// When the next attempt is due, while a retry is scheduled.
    pub run_at: Option<DateTimeUtc>,
    /// Failed attempts, oldest first: a JSON array of `{attempt, worker, started_at,
    /// finished_at, error}`; null until the first failure.
    pub attempt_log: Option<Json>,
    /// The queue task currently entitled to run the job. A task carrying another id
    /// (a retry superseded by a manual one) is skipped.
    pub task_id: String,
}

/// No relations: jobs stand alone.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
