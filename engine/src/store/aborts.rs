//! Aborts: an operator cancels a job even while a worker runs it. The record turns
//! `cancelled` at once, in one conditional `UPDATE` like every transition; the worker
//! learns of it by reading which of its running jobs are cancelled every
//! `JOB_ABORT_POLL_MS`, drops the attempt and adds it to the job's attempt log.
//!
//! A success cannot come after: the success `UPDATE` turns only startable records, and
//! `cancelled` is not one, so an aborted job is never `succeeded` and its effect is
//! never applied, whichever of the two writes comes first.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use entity::job;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::{AttemptRun, JobStore, OperatorOutcome, StoreError, count, millis};
use crate::ids::JobId;
use crate::record::{FailedAttempt, JobRecord, JobStatus};
use crate::task::Envelope;

/// The error an aborted job records, and its aborted attempt in the attempt log.
pub const ABORTED: &str = "aborted by an operator";

/// Most ids one read of the cancelled jobs asks about: far below the bound on a
/// statement's parameters of either database.
const IDS_PER_READ: usize = 500;

impl JobStore {
    /// Cancels a job that has not finished, even a `running` one: `cancelled` at once,
    /// with its finish time and [`ABORTED`] as its error. Its worker, if any, abandons
    /// the attempt when it next reads [`JobStore::cancelled_among`].
    pub async fn abort(&self, id: JobId) -> Result<OperatorOutcome, StoreError> {
        self.cancel_where(id, JobStatus::can_abort, Some(ABORTED))
            .await
    }

    /// Those of `ids` whose job is now `cancelled`: what a worker asks about the jobs
    /// it runs. One primary-key search per 500 ids.
    pub async fn cancelled_among(&self, ids: &[JobId]) -> Result<HashSet<JobId>, StoreError> {
        let mut cancelled = HashSet::new();
        for chunk in ids.chunks(IDS_PER_READ) {
            let found: Vec<String> = job::Entity::find()
                .select_only()
                .column(job::Column::Id)
                .filter(job::Column::Id.is_in(chunk.iter().map(JobId::to_string)))
                .filter(job::Column::Status.eq(JobStatus::Cancelled.as_str()))
                .into_tuple()
                .all(self.db())
                .await?;
            cancelled.extend(found.iter().filter_map(|id| id.parse::<JobId>().ok()));
        }
        Ok(cancelled)
    }

    /// Records the attempt its worker abandoned because the job was aborted: its
    /// number, worker, start and duration, and an entry of the attempt log. False when
    /// the job is not this task's cancelled job (nothing is written then).
    pub async fn record_aborted(
        &self,
        envelope: &Envelope,
        record: &JobRecord,
        attempt: &AttemptRun,
        elapsed: Duration,
    ) -> Result<bool, StoreError> {
        let mut log = record.attempt_log.clone();
        log.push(FailedAttempt {
            attempt: attempt.number,
            worker: attempt.worker.clone(),
            started_at: attempt.started_at,
            finished_at: Utc::now().trunc_subsecs(6),
            error: ABORTED.to_owned(),
        });
        let updated = job::Entity::update_many()
            .col_expr(
                job::Column::AttemptLog,
                Expr::value(serde_json::to_value(&log)?),
            )
            .col_expr(job::Column::ElapsedMs, Expr::value(millis(elapsed)))
            .col_expr(job::Column::Attempts, Expr::value(count(attempt.number)))
            .col_expr(job::Column::Worker, Expr::value(attempt.worker.clone()))
            .col_expr(job::Column::StartedAt, Expr::value(attempt.started_at))
            .filter(job::Column::Id.eq(envelope.job_id.to_string()))
            .filter(job::Column::TaskId.eq(envelope.task_id.to_string()))
            .filter(job::Column::Status.eq(JobStatus::Cancelled.as_str()))
            .exec(self.db())
            .await?;
        Ok(updated.rows_affected > 0)
    }
}
