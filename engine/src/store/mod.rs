//! Job records: creation, lifecycle transitions and queries.
//!
//! Every transition is one conditional `UPDATE`, so concurrent workers, operators and
//! redelivered tasks cannot move a job backwards or finish it twice.
//!
//! # Layout
//! - here: [`JobStore`], one method per state change or query.
//! - `writes`: the hot writes (creation, claim, success with its effect), each one
//!   statement per batch of callers, on either database (batched by
//!   [`crate::batch`]).
//! - `retention`: deleting finished records past their retention.
//! - `pauses`: the queues an operator paused.
//! - `throughput`: the per-minute history of jobs succeeded and attempts failed.
//! - `aborts`: cancelling a running job, and what its worker reads and writes then.

mod aborts;
mod pauses;
mod retention;
mod throughput;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use entity::{idempotency_key, job};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set, SqlErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use serde_json::Value;

pub use aborts::ABORTED;
pub use retention::Retention;
pub use throughput::MinuteCounts;
#[doc(hidden)]
pub use writes::batched_statements;

use crate::config::BackendConfig;
use crate::ids::{JobId, TaskId};
use crate::job::Effect;
use crate::job::{NewJob, fingerprint};
use crate::record::{CorruptRecord, FailedAttempt, JobRecord, JobStatus};
use crate::task::{Envelope, Task};
use writes::Writes;

/// Why the store could not answer. Cheap to clone: one failed batch answers each of
/// its callers with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database refused the statement or could not be reached.
    #[error("{0}")]
    Database(Arc<DbErr>),
    /// A stored row is no job record this build can read.
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
    /// A job's effect does not fit what is stored; retrying cannot help.
    #[error("{0}")]
    Rejected(String),
    /// A batch's rows could not be encoded.
    #[error("encoding a batch: {0}")]
    Encode(Arc<serde_json::Error>),
    /// The flush carrying this write ended without answering (its task was aborted).
    #[error("the batch writing this record was lost")]
    Lost,
    /// A batched statement answered for a different number of rows than it carried.
    #[error("a batch of {asked} writes answered {answered}")]
    Miscounted {
        /// Rows the batch carried.
        asked: usize,
        /// Answers it gave.
        answered: usize,
    },
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        StoreError::Database(Arc::new(err))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        StoreError::Encode(Arc::new(err))
    }
}

impl crate::batch::BatchError for StoreError {
    fn lost() -> Self {
        StoreError::Lost
    }

    fn miscounted(asked: usize, answered: usize) -> Self {
        StoreError::Miscounted { asked, answered }
    }

    fn is_unreachable(&self) -> bool {
        StoreError::is_unreachable(self)
    }
}

impl StoreError {
    /// The database could not be reached (no connection, connection lost), as opposed
    /// to refusing a statement: nothing was written, and waiting is the only cure.
    pub fn is_unreachable(&self) -> bool {
        use sea_orm::RuntimeErr;
        use sea_orm::sqlx::Error;
        let StoreError::Database(err) = self else {
            return false;
        };
        match &**err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                matches!(
                    **e,
                    Error::Io(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed
                )
            }
            _ => false,
        }
    }
}

/// The outcome of [`JobStore::create`].
#[derive(Debug, Clone)]
pub enum Created {
    /// A new job; its first task must now be pushed.
    New(JobRecord),
    /// The idempotency key was seen within its window, with the same request: the
    /// first job, nothing new.
    Existing(JobRecord),
    /// The idempotency key was seen within its window with another request (another
    /// kind or other arguments): nothing new; the first job is not this request's.
    Conflict(JobRecord),
}

/// The outcome of [`JobStore::start_attempt`].
#[derive(Debug, Clone)]
pub enum Start {
    /// Run it. The record is as read: nothing is written until the attempt ends or
    /// has run for a while ([`JobStore::mark_running`]).
    Run {
        /// The job.
        record: Box<JobRecord>,
        /// The attempt this delivery makes.
        attempt: AttemptRun,
    },
    /// Do not run it: finished, cancelled, superseded by another task, or unknown.
    Skip,
}

/// One attempt as its worker runs it: which attempt, by whom, since when. What the
/// record says about the attempt is written from this, at its end (or by
/// [`JobStore::mark_running`] while it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRun {
    /// The attempt's number, from 1: one more than the record's attempts when read.
    pub number: u32,
    /// The worker running it.
    pub worker: String,
    /// When it started, to the microsecond: what both databases keep, so that the
    /// conditions that compare it with the record's find what was written (the store
    /// makes its attempts so; a success is recorded at that precision whatever it is
    /// given).
    pub started_at: DateTime<Utc>,
}

/// A successful attempt to record: which task, its result and effect.
#[derive(Debug)]
pub struct Success<E> {
    /// The job that ran.
    pub job_id: JobId,
    /// The task that ran it: the record must still name it.
    pub task_id: TaskId,
    /// The attempt.
    pub attempt: AttemptRun,
    /// The record's result.
    pub result: Value,
    /// How long the attempt took.
    pub elapsed: Duration,
    /// Applied in the transaction that marks the job succeeded.
    pub effect: E,
}

/// The outcome of a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Another attempt is due after `delay`; push `task` with that delay.
    Retry {
        /// The task to push.
        task: Task,
        /// How long to wait.
        delay: Duration,
    },
    /// `max_attempts` is spent: the job is dead.
    Dead,
    /// The job was no longer this task's to fail (finished elsewhere, cancelled).
    Stale,
}

/// The outcome of an operator's cancel, abort or retry.
#[derive(Debug, Clone)]
pub enum OperatorOutcome {
    /// Done; for a retry, push a task for the returned record.
    Done(Box<JobRecord>),
    /// No such job.
    NotFound,
    /// The job's status does not allow it.
    Conflict(JobStatus),
}

/// Most characters of a job's `args` or `result` a listed record carries; a larger
/// value is left out (the record itself has it), so that a page of records is bounded
/// by its length in bytes as well as in rows.
pub const LISTED_VALUE_MAX_CHARS: i64 = 2048;

/// Most characters of a job's last error a listed record carries; a longer one is cut
/// and ends with `…`.
pub const LISTED_ERROR_MAX_CHARS: i64 = 1024;

/// A record as a list shows it: large values left out, a long error cut.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Listed {
    /// The record; `args` is JSON null and `result` `None` when left out.
    pub record: JobRecord,
    /// The fields left out for their size: `args`, `result`.
    pub omitted: Vec<&'static str>,
}

/// A row of [`JobStore::list`]: the record's columns with its large ones bounded, and
/// their full lengths (an `integer` on Postgres).
#[derive(Debug, FromQueryResult)]
struct ListRow {
    id: String,
    kind: String,
    queue: String,
    args: Option<sea_orm::prelude::Json>,
    args_chars: Option<i32>,
    status: String,
    attempts: i32,
    max_attempts: i32,
    result: Option<sea_orm::prelude::Json>,
    result_chars: Option<i32>,
    error: Option<String>,
    error_chars: Option<i32>,
    worker: Option<String>,
    idempotency_key: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    elapsed_ms: Option<i64>,
    run_at: Option<DateTime<Utc>>,
    task_id: String,
}

impl ListRow {
    fn listed(self) -> Result<Listed, StoreError> {
        let over = |chars: Option<i32>, max: i64| chars.is_some_and(|c| i64::from(c) > max);
        let mut omitted = Vec::new();
        if over(self.args_chars, LISTED_VALUE_MAX_CHARS) {
            omitted.push("args");
        }
        if over(self.result_chars, LISTED_VALUE_MAX_CHARS) {
            omitted.push("result");
        }
        let error = match self.error {
            Some(mut error) if over(self.error_chars, LISTED_ERROR_MAX_CHARS) => {
                error.push('…');
                Some(error)
            }
            error => error,
        };
        let record = read(job::Model {
            id: self.id,
            kind: self.kind,
            queue: self.queue,
            args: self.args.unwrap_or(Value::Null),
            status: self.status,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            result: self.result,
            error,
            worker: self.worker,
            idempotency_key: self.idempotency_key,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            elapsed_ms: self.elapsed_ms,
            run_at: self.run_at,
            // Lists leave the attempt log out; the record has it.
            attempt_log: None,
            task_id: self.task_id,
        })?;
        Ok(Listed { record, omitted })
    }
}

/// Filters of `GET /jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only these kinds (any of them; empty: no such filter).
    pub kinds: Vec<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only the ids that start with this, in upper case: a whole id, or the beginning
    /// of one (a ULID's first characters are its creation time, so a short beginning
    /// is a span of time).
    pub id_prefix: Option<String>,
    /// Only ids below this one (the previous page's last id).
    pub before: Option<JobId>,
    /// Page size.
    pub limit: u64,
}

/// The error of an attempt whose worker stopped before recording its outcome.
pub const ABANDONED: &str =
    "abandoned: the worker stopped (killed, or lost its database) before recording an outcome";

/// Number of job records in one queue and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCount {
    /// Logical queue name.
    pub queue: String,
    /// The status.
    pub status: JobStatus,
    /// How many.
    pub count: u64,
    /// The oldest of them (the smallest id: ids are made in creation order).
    pub oldest: Option<JobId>,
}

/// Job records in the database.
#[derive(Debug, Clone)]
pub struct JobStore {
    db: DatabaseConnection,
    idempotency_window: Duration,
    batch_max_bytes: usize,
    inline_args_max_bytes: usize,
    writes: Arc<Writes>,
}

impl JobStore {
    /// A store over `db` with `config`'s idempotency window and batch limits. The
    /// hot writes are group-committed.
    pub fn new(db: DatabaseConnection, config: &BackendConfig) -> Self {
        JobStore {
            writes: Arc::new(Writes::new(
                &db,
                config.database_batch_max_rows,
                config.database_batch_max_bytes,
            )),
            db,
            idempotency_window: config.idempotency_window(),
            batch_max_bytes: config.database_batch_max_bytes,
            inline_args_max_bytes: config.task_inline_args_max_bytes,
        }
    }

    /// The same store with every write made on its own (batches of one): what the
    /// benchmarks compare against.
    pub fn unbatched(mut self) -> Self {
        self.writes = Arc::new(Writes::new(&self.db, 1, self.batch_max_bytes));
        self
    }

    /// A transaction that will write. On SQLite it takes the write lock at `BEGIN`
    /// (`IMMEDIATE`), so that it waits for other writers (busy timeout) instead of
    /// failing when a read inside it has to be upgraded; Postgres ignores the mode.
    async fn write_transaction(&self) -> Result<DatabaseTransaction, DbErr> {
        write_transaction(&self.db).await
    }

    /// The underlying connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// How long an `Idempotency-Key` returns the first job.
    pub fn idempotency_window(&self) -> Duration {
        self.idempotency_window
    }

    /// Creates a `queued` job, or returns the first job made with the same
    /// idempotency key within its window.
    pub async fn create(&self, new: NewJob) -> Result<Created, StoreError> {
        if new.idempotency_key.is_none() {
            let record = new_record(&new, JobId::generate(), Utc::now());
            self.writes.create(&record).await?;
            return Ok(Created::New(record));
        }
        // A unique violation means another request claimed the key between our read
        // and our insert; the next try finds its job. Bounded, so that a violation of
        // some other kind surfaces instead of spinning.
        let mut tries = 0;
        loop {
            match self.try_create(&new).await {
                Err(StoreError::Database(err))
                    if tries < 3
                        && matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn try_create(&self, new: &NewJob) -> Result<Created, StoreError> {
        let now = Utc::now();
        let id = JobId::generate();
        let tx = self.write_transaction().await?;
        if let Some(key) = &new.idempotency_key {
            if let Some(claimed) = idempotency_key::Entity::find_by_id(key.clone())
                .one(&tx)
                .await?
            {
                let age = now.signed_duration_since(claimed.created_at);
                let fresh = age
                    .to_std()
                    .map(|age| age < self.idempotency_window)
                    .unwrap_or(true);
                if fresh
                    && let Some(first) = job::Entity::find_by_id(claimed.job_id).one(&tx).await?
                {
                    tx.commit().await?;
                    let first = read(first)?;
                    let same = claimed
                        .fingerprint
                        .is_none_or(|print| print == fingerprint(new.kind, &new.args));
                    return Ok(if same {
                        Created::Existing(first)
                    } else {
                        Created::Conflict(first)
                    });
                }
                idempotency_key::Entity::delete_by_id(key.clone())
                    .exec(&tx)
                    .await?;
            }
            idempotency_key::ActiveModel {
                key: Set(key.clone()),
                job_id: Set(id.to_string()),
                created_at: Set(now),
                fingerprint: Set(Some(fingerprint(new.kind, &new.args))),
            }
            .insert(&tx)
            .await?;
        }
        let record = new_record(new, id, now);
        job::ActiveModel::from(row_of(&record))
            .reset_all()
            .insert(&tx)
            .await?;
        tx.commit().await?;
        Ok(Created::New(record))
    }

    /// Removes a job whose first task could not be pushed, so that nothing claims
    /// to be queued when it is not (and its idempotency key can be used again).
    pub async fn discard(&self, record: &JobRecord) -> Result<(), StoreError> {
        let tx = self.write_transaction().await?;
        if let Some(key) = &record.idempotency_key {
            idempotency_key::Entity::delete_many()
                .filter(idempotency_key::Column::Key.eq(key.clone()))
                .filter(idempotency_key::Column::JobId.eq(record.id.to_string()))
                .exec(&tx)
                .await?;
        }
        job::Entity::delete_by_id(record.id.to_string())
            .exec(&tx)
            .await?;
        Ok(tx.commit().await?)
    }

    /// Deletes a `dead` job's record, and its `Idempotency-Key`: a dead job applied
    /// no effect, so a client repeating the request may make a new job. Whether it
    /// was deleted (false: gone already, or no longer dead).
    pub async fn discard_dead(&self, id: JobId) -> Result<bool, StoreError> {
        let tx = self.write_transaction().await?;
        let deleted = job::Entity::delete_many()
            .filter(job::Column::Id.eq(id.to_string()))
            .filter(job::Column::Status.eq(JobStatus::Dead.as_str()))
            .exec(&tx)
            .await?
            .rows_affected;
        if deleted > 0 {
            idempotency_key::Entity::delete_many()
                .filter(idempotency_key::Column::JobId.eq(id.to_string()))
                .exec(&tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// One job by id.
    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        job::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(read)
            .transpose()
    }

    /// Jobs newest first, keyset-paginated by id, as a list shows them ([`Listed`]):
    /// the database sends no value over [`LISTED_VALUE_MAX_CHARS`], so that a page's
    /// memory is bounded whatever the jobs carry.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<Listed>, StoreError> {
        list_query(filter)
            .into_model::<ListRow>()
            .all(&self.db)
            .await?
            .into_iter()
            .map(ListRow::listed)
            .collect()
    }

    /// The statement of [`JobStore::list`] on `backend`, for the tests that read its
    /// plan.
    #[doc(hidden)]
    pub fn list_statement(backend: DbBackend, filter: &JobFilter) -> sea_orm::Statement {
        list_query(filter).build(backend)
    }

    /// The statement of [`JobStore::stuck`] on `backend`, for the tests that read its
    /// plan.
    #[doc(hidden)]
    pub fn stuck_statement(
        backend: DbBackend,
        older_than: Duration,
        running_longer_than: Duration,
        limit: u64,
    ) -> sea_orm::Statement {
        stuck_query(Utc::now(), older_than, running_longer_than, limit).build(backend)
    }

    /// The first task of a job just created: it carries the job's arguments when they
    /// fit `TASK_INLINE_ARGS_MAX_BYTES`, so that its worker can [`JobStore::presume`]
    /// the record instead of reading it.
    pub fn first_task(&self, record: &JobRecord) -> Task {
        let mut task = Task::of(record);
        let fresh = record.status == JobStatus::Queued && record.attempts == 0;
        let fits = || {
            serde_json::to_vec(&record.args)
                .is_ok_and(|json| json.len() <= self.inline_args_max_bytes)
        };
        if fresh && self.inline_args_max_bytes > 0 && fits() {
            task.envelope.args = Some(record.args.clone());
        }
        task
    }

    /// The attempt a delivered task runs without reading its job's record: the first
    /// attempt, when the task carries the job's arguments (a job's first task, see
    /// [`JobStore::first_task`]). `None`: read it ([`JobStore::start_attempt`]).
    ///
    /// The record is presumed as submitted, `queued` with no attempt. Every write of
    /// the attempt's outcome is conditional on the attempt owning the job
    /// (`owned_by`), so a presumption that no longer holds (the job was cancelled,
    /// finished by another delivery, or left `running` by a killed worker) writes
    /// nothing, and the caller then reads the record and decides as
    /// [`JobStore::start_attempt`] does. Such a job's work may thus run once in vain;
    /// its effect is still applied once. (Two deliveries of one first task at once,
    /// both past the running mark, may each find the other's attempt `running` and
    /// log it as abandoned, as a read at the start does: the job then runs up to four
    /// times, and its effect is still applied once.)
    pub fn presume(&self, envelope: &Envelope, worker: &str) -> Option<AttemptRun> {
        (self.inline_args_max_bytes > 0 && envelope.args.is_some()).then(|| AttemptRun {
            number: 1,
            worker: worker.to_owned(),
            started_at: Utc::now().trunc_subsecs(6),
        })
    }

    /// Reads the record of a presumed attempt (see [`JobStore::presume`]) to record
    /// its failure: the record if the attempt still owns the job (the condition its
    /// writes have), `None` if not (the caller then starts over with
    /// [`JobStore::start_attempt`]).
    pub async fn confirm(
        &self,
        envelope: &Envelope,
        attempt: &AttemptRun,
    ) -> Result<Option<JobRecord>, StoreError> {
        job::Entity::find()
            .filter(owned_by(envelope, attempt))
            .one(&self.db)
            .await?
            .map(read)
            .transpose()
    }

    /// Reads a delivered task's job to run an attempt of it, unless the job is
    /// finished, cancelled, or belongs to another task now. It writes nothing: a job
    /// that finishes quickly is written once, when its outcome is recorded, and a
    /// longer one is marked `running` by [`JobStore::mark_running`] meanwhile.
    ///
    /// A job already `running` starts again: that is what its record looks like after
    /// the worker that held it was killed, and its redelivered task must run it.
    pub async fn start_attempt(
        &self,
        envelope: &Envelope,
        worker: &str,
    ) -> Result<Start, StoreError> {
        let Some(record) = self.writes.read(envelope.job_id).await? else {
            return Ok(Start::Skip);
        };
        if record.task_id != envelope.task_id || !record.status.can_start() {
            return Ok(Start::Skip);
        }
        let mut record = record;
        let attempt = AttemptRun {
            number: record.attempts.saturating_add(1),
            worker: worker.to_owned(),
            started_at: Utc::now().trunc_subsecs(6),
        };
        if record.status == JobStatus::Running && !self.log_abandoned(&mut record, &attempt).await?
        {
            return Ok(Start::Skip);
        }
        Ok(Start::Run {
            record: Box::new(record),
            attempt,
        })
    }

    /// A job read `running` by a delivery of its own task: the attempt that marked it
    /// so never recorded an outcome (its worker was killed or lost its backends), so
    /// this delivery runs it again. Before it does, that attempt goes into the job's
    /// attempt log and this one is marked `running` in its place, in one conditional
    /// update: of two deliveries that both read the abandoned attempt, only the one
    /// whose update finds the attempt count unchanged runs (false for the other).
    async fn log_abandoned(
        &self,
        record: &mut JobRecord,
        attempt: &AttemptRun,
    ) -> Result<bool, StoreError> {
        let mut log = record.attempt_log.clone();
        log.push(FailedAttempt {
            attempt: record.attempts,
            worker: record.worker.clone().unwrap_or_default(),
            started_at: record.started_at.unwrap_or(attempt.started_at),
            finished_at: attempt.started_at,
            error: ABANDONED.to_owned(),
        });
        let updated = job::Entity::update_many()
            .col_expr(
                job::Column::AttemptLog,
                Expr::value(serde_json::to_value(&log)?),
            )
            .col_expr(job::Column::Attempts, Expr::value(count(attempt.number)))
            .col_expr(job::Column::Worker, Expr::value(attempt.worker.clone()))
            .col_expr(job::Column::StartedAt, Expr::value(attempt.started_at))
            .filter(job::Column::Id.eq(record.id.to_string()))
            .filter(job::Column::TaskId.eq(record.task_id.to_string()))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
            .filter(job::Column::Attempts.eq(count(record.attempts)))
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Ok(false);
        }
        record.attempt_log = log;
        record.attempts = attempt.number;
        Ok(true)
    }

    /// Records that `attempt` of `envelope`'s job is under way (`running`, its number,
    /// worker and start); false when the task is no longer the job's to run.
    pub async fn mark_running(
        &self,
        envelope: &Envelope,
        attempt: &AttemptRun,
    ) -> Result<bool, StoreError> {
        let updated = job::Entity::update_many()
            .col_expr(
                job::Column::Status,
                Expr::value(JobStatus::Running.as_str()),
            )
            .col_expr(job::Column::Attempts, Expr::value(count(attempt.number)))
            .col_expr(job::Column::Worker, Expr::value(attempt.worker.clone()))
            .col_expr(job::Column::StartedAt, Expr::value(attempt.started_at))
            .col_expr(
                job::Column::RunAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(owned_by(envelope, attempt))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected > 0)
    }

    /// Marks a job of `kind` succeeded and applies its effect in the same transaction,
    /// together with other successes of the same kind.
    ///
    /// Returns false, applying nothing, when the job was already finished by another
    /// delivery of the same task: this is what makes effects exactly-once.
    pub async fn succeed<E: Effect>(
        &self,
        kind: &'static str,
        success: Success<E>,
    ) -> Result<bool, StoreError> {
        self.writes.succeed(kind, success).await
    }

    /// Records a failed attempt of `record` (as [`JobStore::start_attempt`] or
    /// [`JobStore::confirm`] read it):
    /// schedules the next one after `delay(attempt number)`, or declares the job dead
    /// once its attempts are spent.
    pub async fn fail(
        &self,
        envelope: &Envelope,
        record: &JobRecord,
        attempt: &AttemptRun,
        error: &str,
        elapsed: Duration,
        delay: impl FnOnce(u32) -> Duration,
    ) -> Result<Failure, StoreError> {
        let dead = attempt.number >= record.max_attempts;
        let now = Utc::now();
        // The log as read, plus this attempt. The update is conditional on the
        // attempt still owning the job, and every failure changes the task or ends
        // the job, so no other write can have appended meanwhile.
        let mut log = record.attempt_log.clone();
        log.push(FailedAttempt {
            attempt: attempt.number,
            worker: attempt.worker.clone(),
            started_at: attempt.started_at,
            finished_at: now.trunc_subsecs(6),
            error: error.to_owned(),
        });
        let log = serde_json::to_value(&log)?;
        let mut update = job::Entity::update_many()
            .col_expr(job::Column::Error, Expr::value(error))
            .col_expr(job::Column::AttemptLog, Expr::value(log))
            .col_expr(job::Column::ElapsedMs, Expr::value(millis(elapsed)))
            .col_expr(job::Column::Attempts, Expr::value(count(attempt.number)))
            .col_expr(job::Column::Worker, Expr::value(attempt.worker.clone()))
            .col_expr(job::Column::StartedAt, Expr::value(attempt.started_at))
            .filter(owned_by(envelope, attempt));
        let outcome = if dead {
            update = update
                .col_expr(job::Column::Status, Expr::value(JobStatus::Dead.as_str()))
                .col_expr(job::Column::FinishedAt, Expr::value(now));
            Failure::Dead
        } else {
            let wait = delay(attempt.number);
            let next = TaskId::generate();
            let due = now + chrono::Duration::from_std(wait).unwrap_or_default();
            update = update
                .col_expr(job::Column::Status, Expr::value(JobStatus::Failed.as_str()))
                .col_expr(job::Column::RunAt, Expr::value(due))
                .col_expr(job::Column::TaskId, Expr::value(next.to_string()));
            // The retry reads its record (only a job's first task presumes it).
            let mut task = Task::of(record);
            task.envelope.task_id = next;
            Failure::Retry { task, delay: wait }
        };
        let updated = update.exec(&self.db).await?;
        Ok(if updated.rows_affected == 0 {
            Failure::Stale
        } else {
            outcome
        })
    }

    /// Records a delivered task's job `dead` at once with `error`, without an attempt
    /// (its kind is one this build cannot run); false when the task was no longer the
    /// job's to run.
    pub async fn bury(&self, envelope: &Envelope, error: &str) -> Result<bool, StoreError> {
        let updated = job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Dead.as_str()))
            .col_expr(job::Column::Error, Expr::value(error))
            .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
            .col_expr(
                job::Column::RunAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(job::Column::Id.eq(envelope.job_id.to_string()))
            .filter(job::Column::TaskId.eq(envelope.task_id.to_string()))
            .filter(job::Column::Status.is_in(statuses(JobStatus::can_start)))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected > 0)
    }

    /// Cancels a job that has not started.
    pub async fn cancel(&self, id: JobId) -> Result<OperatorOutcome, StoreError> {
        self.cancel_where(id, JobStatus::can_cancel, None).await
    }

    /// Makes a job `cancelled` at once, with its finish time (and `error`, when given),
    /// if its status is one `allowed` admits.
    async fn cancel_where(
        &self,
        id: JobId,
        allowed: fn(JobStatus) -> bool,
        error: Option<&str>,
    ) -> Result<OperatorOutcome, StoreError> {
        let mut update = job::Entity::update_many()
            .col_expr(
                job::Column::Status,
                Expr::value(JobStatus::Cancelled.as_str()),
            )
            .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
            .col_expr(
                job::Column::RunAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            );
        if let Some(error) = error {
            update = update.col_expr(job::Column::Error, Expr::value(error));
        }
        let updated = update
            .filter(job::Column::Id.eq(id.to_string()))
            .filter(job::Column::Status.is_in(statuses(allowed)))
            .exec_with_returning(&self.db)
            .await?;
        self.operator_outcome(id, updated).await
    }

    /// Gives a failed or dead job `extra_attempts` more attempts under a new task id;
    /// the caller pushes that task. `attempts` keeps counting (it is history); a retry
    /// already scheduled is superseded.
    pub async fn retry_by_hand(
        &self,
        id: JobId,
        extra_attempts: u32,
    ) -> Result<OperatorOutcome, StoreError> {
        let extra = i32::try_from(Ord::max(extra_attempts, 1)).unwrap_or(i32::MAX);
        let updated = job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Queued.as_str()))
            .col_expr(
                job::Column::MaxAttempts,
                Expr::col(job::Column::Attempts).add(extra),
            )
            .col_expr(
                job::Column::FinishedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                job::Column::RunAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                job::Column::TaskId,
                Expr::value(TaskId::generate().to_string()),
            )
            .filter(job::Column::Id.eq(id.to_string()))
            .filter(job::Column::Status.is_in(statuses(JobStatus::can_retry)))
            .exec_with_returning(&self.db)
            .await?;
        self.operator_outcome(id, updated).await
    }

    /// `updated` are the rows the operator's conditional update returned; when it
    /// matched none the job is missing or in the wrong status, and a read tells which.
    async fn operator_outcome(
        &self,
        id: JobId,
        mut updated: Vec<job::Model>,
    ) -> Result<OperatorOutcome, StoreError> {
        if let Some(row) = updated.pop() {
            return Ok(OperatorOutcome::Done(Box::new(read(row)?)));
        }
        Ok(match self.get(id).await? {
            None => OperatorOutcome::NotFound,
            Some(record) => OperatorOutcome::Conflict(record.status),
        })
    }

    /// Tasks of jobs that waited far too long: `queued` since before `older_than`, or
    /// `failed` with a retry overdue by `older_than`. Their push was probably lost.
    ///
    /// Also jobs `running` since before `running_longer_than`: an attempt is bounded by
    /// its timeout, so such a job's outcome was never recorded and nothing is left to
    /// run it (its worker could neither record nor push it again).
    pub async fn stuck(
        &self,
        older_than: Duration,
        running_longer_than: Duration,
        limit: u64,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = stuck_query(Utc::now(), older_than, running_longer_than, limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| Ok(Task::of(&read(row)?)))
            .collect()
    }

    /// Job records by queue and status, for `GET /queues`.
    pub async fn queue_counts(&self) -> Result<Vec<QueueCount>, StoreError> {
        #[derive(FromQueryResult)]
        struct Row {
            queue: String,
            status: String,
            count: i64,
            oldest: Option<String>,
        }
        let rows = job::Entity::find()
            .select_only()
            .column(job::Column::Queue)
            .column(job::Column::Status)
            .column_as(job::Column::Id.count(), "count")
            .column_as(job::Column::Id.min(), "oldest")
            .group_by(job::Column::Queue)
            .group_by(job::Column::Status)
            .into_model::<Row>()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                let status = row.status.parse().map_err(|e| CorruptRecord {
                    id: format!("(one of the {} in queue '{}')", row.count, row.queue),
                    reason: format!("{e}"),
                })?;
                let oldest = match row.oldest.as_deref().map(str::parse::<JobId>) {
                    None => None,
                    Some(Ok(id)) => Some(id),
                    Some(Err(e)) => {
                        return Err(CorruptRecord {
                            id: row.oldest.unwrap_or_default(),
                            reason: e.to_string(),
                        }
                        .into());
                    }
                };
                Ok(QueueCount {
                    queue: row.queue,
                    status,
                    count: u64::try_from(row.count).unwrap_or(0),
                    oldest,
                })
            })
            .collect()
    }

    /// Answers when the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }
}

/// The query of [`JobStore::list`].
fn list_query(filter: &JobFilter) -> sea_orm::Select<job::Entity> {
    let text = |column: job::Column| Func::char_length(Func::cast_as(Expr::col(column), "text"));
    let bounded = |column: job::Column| {
        Expr::case(
            Expr::expr(text(column)).lte(LISTED_VALUE_MAX_CHARS),
            Expr::col(column),
        )
    };
    let mut query = job::Entity::find()
        .select_only()
        .columns([
            job::Column::Id,
            job::Column::Kind,
            job::Column::Queue,
            job::Column::Status,
            job::Column::Attempts,
            job::Column::MaxAttempts,
            job::Column::Worker,
            job::Column::IdempotencyKey,
            job::Column::CreatedAt,
            job::Column::StartedAt,
            job::Column::FinishedAt,
            job::Column::ElapsedMs,
            job::Column::RunAt,
            job::Column::TaskId,
        ])
        .expr_as(bounded(job::Column::Args), "args")
        .expr_as(text(job::Column::Args), "args_chars")
        .expr_as(bounded(job::Column::Result), "result")
        .expr_as(text(job::Column::Result), "result_chars")
        .expr_as(
            Func::cust("substr")
                .arg(Expr::col(job::Column::Error))
                .arg(1)
                // An `integer`: Postgres has no substr(text, integer, bigint).
                .arg(LISTED_ERROR_MAX_CHARS as i32),
            "error",
        )
        .expr_as(
            Func::char_length(Expr::col(job::Column::Error)),
            "error_chars",
        )
        .order_by_desc(job::Column::Id);
    match filter.status {
        // The same rows as `= 'succeeded'` (a record is in one of the statuses), asked
        // as "none of the others": no index holds the succeeded records on Postgres,
        // and a condition its planner takes to match most of the table, as this one
        // does, has it walk the primary key from the newest end, statistics or none.
        // Asked with `=` before any ANALYZE, it guesses a handful of rows and sorts
        // the whole table for them.
        Some(JobStatus::Succeeded) => {
            query = query
                .filter(job::Column::Status.is_not_in(statuses(|s| s != JobStatus::Succeeded)));
        }
        Some(status) => query = query.filter(job::Column::Status.eq(status.as_str())),
        None => {}
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(job::Column::Kind.eq(kind.clone()));
    }
    if !filter.kinds.is_empty() {
        query = query.filter(job::Column::Kind.is_in(filter.kinds.clone()));
    }
    if let Some(queue) = &filter.queue {
        query = query.filter(job::Column::Queue.eq(queue.clone()));
    }
    if let Some(prefix) = &filter.id_prefix {
        // A range of the primary key, not `LIKE`, which a non-C collation keeps
        // from using the index: the ids from the prefix itself up to the prefix
        // followed by the highest digit, `Z`.
        let highest = format!("{prefix:Z<width$}", width = crate::ids::ID_CHARS);
        query = query
            .filter(job::Column::Id.gte(prefix.clone()))
            .filter(job::Column::Id.lte(highest));
    }
    if let Some(before) = filter.before {
        query = query.filter(job::Column::Id.lt(before.to_string()));
    }
    query.limit(filter.limit)
}

/// The query of [`JobStore::stuck`] at `now`.
fn stuck_query(
    now: DateTime<Utc>,
    older_than: Duration,
    running_longer_than: Duration,
    limit: u64,
) -> sea_orm::Select<job::Entity> {
    let cutoff = retention::before(now, older_than);
    let queued = sea_orm::Condition::all()
        .add(job::Column::Status.eq(JobStatus::Queued.as_str()))
        .add(job::Column::CreatedAt.lt(cutoff));
    let overdue = sea_orm::Condition::all()
        .add(job::Column::Status.eq(JobStatus::Failed.as_str()))
        .add(job::Column::RunAt.lt(cutoff));
    let abandoned = sea_orm::Condition::all()
        .add(job::Column::Status.eq(JobStatus::Running.as_str()))
        .add(job::Column::StartedAt.lt(retention::before(now, running_longer_than)));
    job::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(queued)
                .add(overdue)
                .add(abandoned),
        )
        .order_by_asc(job::Column::Id)
        .limit(limit)
}

/// A write transaction on `db` (see [`JobStore::write_transaction`]).
async fn write_transaction(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// A stored row as a record.
fn read(row: job::Model) -> Result<JobRecord, StoreError> {
    Ok(JobRecord::try_from(row)?)
}

/// A `queued` record for `new`. Its times are cut to microseconds, as the database
/// keeps them, so that the record handed back equals the one read later.
fn new_record(new: &NewJob, id: JobId, now: DateTime<Utc>) -> JobRecord {
    JobRecord {
        id,
        kind: new.kind.name.to_owned(),
        queue: new.kind.queue.to_owned(),
        args: new.args.clone(),
        status: JobStatus::Queued,
        attempts: 0,
        max_attempts: Ord::max(new.max_attempts, 1),
        result: None,
        error: None,
        worker: None,
        idempotency_key: new.idempotency_key.clone(),
        created_at: now.trunc_subsecs(6),
        started_at: None,
        finished_at: None,
        elapsed_ms: None,
        run_at: None,
        attempt_log: Vec::new(),
        task_id: TaskId::generate(),
    }
}

/// The row of a new record, to insert.
fn row_of(record: &JobRecord) -> job::Model {
    job::Model {
        id: record.id.to_string(),
        kind: record.kind.clone(),
        queue: record.queue.clone(),
        args: record.args.clone(),
        status: record.status.as_str().to_owned(),
        attempts: count(record.attempts),
        max_attempts: count(record.max_attempts),
        result: record.result.clone(),
        error: record.error.clone(),
        worker: record.worker.clone(),
        idempotency_key: record.idempotency_key.clone(),
        created_at: record.created_at,
        started_at: record.started_at,
        finished_at: record.finished_at,
        elapsed_ms: record
            .elapsed_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        run_at: record.run_at,
        attempt_log: None,
        task_id: record.task_id.to_string(),
    }
}

/// The record `attempt` of `envelope`'s task owns, and may write its outcome or mark
/// to: the task's job, waiting for it, or `running` under this very attempt (its own
/// mark, or the abandoned attempt it logged). A job `running` under another attempt
/// is not this one's: that attempt is alive, or is logged as abandoned first (see
/// [`JobStore::start_attempt`]). The batched success states the same rule in SQL
/// (`writes::SUCCEED`).
fn owned_by(envelope: &Envelope, attempt: &AttemptRun) -> Condition {
    Condition::all()
        .add(job::Column::Id.eq(envelope.job_id.to_string()))
        .add(job::Column::TaskId.eq(envelope.task_id.to_string()))
        .add(
            Condition::any()
                .add(job::Column::Status.is_in(statuses(JobStatus::waits)))
                .add(
                    Condition::all()
                        .add(job::Column::Status.eq(JobStatus::Running.as_str()))
                        .add(job::Column::Worker.eq(attempt.worker.clone()))
                        .add(job::Column::StartedAt.eq(attempt.started_at)),
                ),
        )
}

/// The wire names of the statuses for which `allowed` holds.
fn statuses(allowed: fn(JobStatus) -> bool) -> Vec<&'static str> {
    JobStatus::ALL
        .into_iter()
        .filter(|s| allowed(*s))
        .map(JobStatus::as_str)
        .collect()
}

fn millis(elapsed: Duration) -> i64 {
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// A count as its column holds it.
fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
