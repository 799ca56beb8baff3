//! The job record as the rest of Conveyor sees it: typed, and made by the store alone
//! (from a row it read or wrote).

use chrono::{DateTime, Utc};
pub use domain::job::JobStatus;
use entity::job;
use serde_json::Value;

use crate::ids::{JobId, TaskId};

/// A job record (SPEC §0): the truth about one job.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// Its kind's wire name, as stored: a build may not know it (its workers then
    /// record the job `dead`).
    pub kind: String,
    /// The logical queue its tasks go to.
    pub queue: String,
    /// Arguments as submitted.
    pub args: Value,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed before it is dead.
    pub max_attempts: u32,
    /// Result once succeeded.
    pub result: Option<Value>,
    /// Last error.
    pub error: Option<String>,
    /// Worker that ran the last attempt.
    pub worker: Option<String>,
    /// The `Idempotency-Key` it was made with, scoped by route.
    pub idempotency_key: Option<String>,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Last attempt started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached `succeeded`, `dead` or `cancelled` at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Duration of the last attempt in milliseconds.
    pub elapsed_ms: Option<u64>,
    /// Next attempt due at, while a retry is scheduled.
    pub run_at: Option<DateTime<Utc>>,
    /// Its failed attempts, oldest first (the last attempt is described by `worker`,
    /// `started_at`, `elapsed_ms` and `error` above, whatever its outcome).
    pub attempt_log: Vec<FailedAttempt>,
    /// The task entitled to run it.
    pub task_id: TaskId,
}

/// One failed attempt of a job, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailedAttempt {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it failed.
    pub finished_at: DateTime<Utc>,
    /// Why.
    pub error: String,
}

/// A stored row that is no job record (a status or id this build cannot read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job record '{id}' is corrupt: {reason}")]
pub struct CorruptRecord {
    /// The row's id, as stored.
    pub id: String,
    /// What is wrong with it.
    pub reason: String,
}

impl TryFrom<job::Model> for JobRecord {
    type Error = CorruptRecord;

    fn try_from(row: job::Model) -> Result<Self, Self::Error> {
        let corrupt = |reason: String| CorruptRecord {
            id: row.id.chars().take(40).collect(),
            reason,
        };
        let count = |n: i32, what: &str| {
            u32::try_from(n).map_err(|_| corrupt(format!("{what} is negative ({n})")))
        };
        let attempt_log = match row.attempt_log {
            None | Some(Value::Null) => Vec::new(),
            Some(log) => {
                serde_json::from_value(log).map_err(|e| corrupt(format!("attempt log: {e}")))?
            }
        };
        Ok(JobRecord {
            attempt_log,
            id: row.id.parse().map_err(|e| corrupt(format!("id: {e}")))?,
            task_id: row
                .task_id
                .parse()
                .map_err(|e| corrupt(format!("task id: {e}")))?,
            status: row.status.parse().map_err(|e| corrupt(format!("{e}")))?,
            attempts: count(row.attempts, "attempts")?,
            max_attempts: count(row.max_attempts, "max_attempts")?,
            elapsed_ms: row.elapsed_ms.map(|ms| u64::try_from(ms).unwrap_or(0)),
            kind: row.kind,
            queue: row.queue,
            args: row.args,
            result: row.result,
            error: row.error,
            worker: row.worker,
            idempotency_key: row.idempotency_key,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            run_at: row.run_at,
        })
    }
}
