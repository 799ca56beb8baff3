//! Job records: creation, lifecycle transitions and queries.
//!
//! Every transition is one conditional `UPDATE`, so concurrent workers, operators and
//! redelivered tasks cannot move a job backwards or finish it twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use domain::job::JobStatus;
use entity::{idempotency_key, job};
pub use sea_orm::DbErr;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use serde::Serialize;
use serde_json::Value;
use ulid::Ulid;

use crate::batch::Batcher;
use crate::envelope::Envelope;
use crate::kind::JobKind;

/// How long finished job records are kept before housekeeping deletes them; `None`
/// keeps them for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `succeeded` records.
    pub succeeded: Option<Duration>,
    /// `dead` and `cancelled` records: an operator may still look at or retry them.
    pub dead: Option<Duration>,
}

/// A job record as stored.
pub type JobRecord = job::Model;

/// What a producer asks for.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The kind to run.
    pub kind: JobKind,
    /// Its arguments, already validated by the producer.
    pub args: Value,
    /// Attempts before the job is dead.
    pub max_attempts: u32,
    /// The client's `Idempotency-Key`, already scoped by route.
    pub idempotency_key: Option<String>,
}

/// The outcome of [`JobStore::create`].
#[derive(Debug, Clone)]
pub enum Created {
    /// A new job; its first task must now be pushed.
    New(JobRecord),
    /// The idempotency key was seen within its window: the first job, nothing new.
    Existing(JobRecord),
}

/// The outcome of [`JobStore::start_attempt`].
#[derive(Debug, Clone)]
pub enum Start {
    /// Run it: the record now says `running`.
    Run(Box<JobRecord>),
    /// Do not run it: finished, cancelled, superseded by another task, or unknown.
    Skip,
}

/// The outcome of a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Another attempt is due after `delay`; push `envelope` with that delay.
    Retry {
        /// The task to push.
        envelope: Envelope,
        /// How long to wait.
        delay: Duration,
    },
    /// `max_attempts` is spent: the job is dead.
    Dead,
    /// The job was no longer this task's to fail (finished elsewhere, cancelled).
    Stale,
}

/// The outcome of an operator's cancel or retry.
#[derive(Debug, Clone)]
pub enum OperatorOutcome {
    /// Done; for a retry, push a task for the returned record.
    Done(Box<JobRecord>),
    /// No such job.
    NotFound,
    /// The job's status does not allow it.
    Conflict(JobStatus),
}

/// Filters of `GET /jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only ids below this one (the previous page's last id).
    pub before: Option<String>,
    /// Page size.
    pub limit: u64,
}

/// Number of job records by queue and status.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct QueueCount {
    /// Logical queue name.
    pub queue: String,
    /// Status wire name.
    pub status: String,
    /// How many.
    pub count: i64,
}

/// The effect of a job, applied in the transaction that marks it succeeded.
pub type Effect<'a> = Box<
    dyn for<'t> FnOnce(
            &'t DatabaseTransaction,
        ) -> Pin<Box<dyn Future<Output = Result<(), DbErr>> + Send + 't>>
        + Send
        + 'a,
>;

/// Job records in the database.
#[derive(Debug, Clone)]
pub struct JobStore {
    db: DatabaseConnection,
    idempotency_window: Duration,
    /// Group commit of the hot writes, on Postgres (see [`crate::batch`]).
    batches: Option<Arc<Batches>>,
}

/// The batched writes: creation without an idempotency key, the claim of an attempt,
/// and success without an effect. Each is one statement per batch.
#[derive(Debug)]
struct Batches {
    create: Arc<Batcher<JobRecord, ()>>,
    start: Arc<Batcher<StartRow, Option<JobRecord>>>,
    succeed: Arc<Batcher<SucceedRow, bool>>,
}

/// Most writes one batched statement carries.
const MAX_BATCH: usize = 256;
/// Batches of one kind in flight at once (each holds a connection while it runs).
const FLUSHERS: usize = 2;

impl JobStore {
    /// A store over `db`; an `Idempotency-Key` is honoured for `idempotency_window`.
    /// On Postgres the hot writes are group-committed.
    pub fn new(db: DatabaseConnection, idempotency_window: Duration) -> Self {
        let batches =
            (db.get_database_backend() == DbBackend::Postgres).then(|| Arc::new(Batches::new(&db)));
        JobStore {
            db,
            idempotency_window,
            batches,
        }
    }

    /// The same store with every write made on its own (no group commit): what the
    /// benchmarks compare against.
    pub fn unbatched(mut self) -> Self {
        self.batches = None;
        self
    }

    /// A transaction that will write. On SQLite it takes the write lock at `BEGIN`
    /// (`IMMEDIATE`), so that it waits for other writers (busy timeout) instead of
    /// failing when a read inside it has to be upgraded; Postgres ignores the mode.
    async fn write_transaction(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
    }

    /// The underlying connection.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Creates a `queued` job, or returns the first job made with the same
    /// idempotency key within its window.
    pub async fn create(&self, new: NewJob) -> Result<Created, DbErr> {
        if let (Some(batches), None) = (&self.batches, &new.idempotency_key) {
            let record = new_record(&new, Ulid::generate().to_string(), Utc::now());
            batches.create.run(record.clone()).await?;
            return Ok(Created::New(record));
        }
        // A unique violation means another request claimed the key between our read
        // and our insert; the next try finds its job. Bounded, so that a violation of
        // some other kind surfaces instead of spinning.
        let mut tries = 0;
        loop {
            match self.try_create(&new).await {
                Err(err)
                    if tries < 3
                        && matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn try_create(&self, new: &NewJob) -> Result<Created, DbErr> {
        let now = Utc::now();
        let id = Ulid::generate().to_string();
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
                    return Ok(Created::Existing(first));
                }
                idempotency_key::Entity::delete_by_id(key.clone())
                    .exec(&tx)
                    .await?;
            }
            idempotency_key::ActiveModel {
                key: Set(key.clone()),
                job_id: Set(id.clone()),
                created_at: Set(now),
            }
            .insert(&tx)
            .await?;
        }
        let record = job::ActiveModel::from(new_record(new, id, now))
            .reset_all()
            .insert(&tx)
            .await?;
        tx.commit().await?;
        Ok(Created::New(record))
    }

    /// Removes a job whose first task could not be pushed, so that nothing claims
    /// to be queued when it is not (and its idempotency key can be used again).
    pub async fn discard(&self, record: &JobRecord) -> Result<(), DbErr> {
        let tx = self.write_transaction().await?;
        if let Some(key) = &record.idempotency_key {
            idempotency_key::Entity::delete_many()
                .filter(idempotency_key::Column::Key.eq(key.clone()))
                .filter(idempotency_key::Column::JobId.eq(record.id.clone()))
                .exec(&tx)
                .await?;
        }
        job::Entity::delete_by_id(record.id.clone())
            .exec(&tx)
            .await?;
        tx.commit().await
    }

    /// One job by id.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, DbErr> {
        job::Entity::find_by_id(id.to_owned()).one(&self.db).await
    }

    /// Jobs newest first, keyset-paginated by id.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, DbErr> {
        let mut query = job::Entity::find().order_by_desc(job::Column::Id);
        if let Some(status) = filter.status {
            query = query.filter(job::Column::Status.eq(status.as_str()));
        }
        if let Some(kind) = &filter.kind {
            query = query.filter(job::Column::Kind.eq(kind.clone()));
        }
        if let Some(before) = &filter.before {
            query = query.filter(job::Column::Id.lt(before.clone()));
        }
        query.limit(filter.limit).all(&self.db).await
    }

    /// Claims a delivered task's job for an attempt, unless the job is finished,
    /// cancelled, or belongs to another task now.
    pub async fn start_attempt(&self, envelope: &Envelope, worker: &str) -> Result<Start, DbErr> {
        if let Some(batches) = &self.batches {
            let row = StartRow {
                id: envelope.job_id.clone(),
                task_id: envelope.task_id.clone(),
                worker: worker.to_owned(),
            };
            return Ok(match batches.start.run(row).await? {
                Some(record) => Start::Run(Box::new(record)),
                None => Start::Skip,
            });
        }
        let startable = statuses(JobStatus::can_start);
        let mut updated = job::Entity::update_many()
            .col_expr(
                job::Column::Status,
                Expr::value(JobStatus::Running.as_str()),
            )
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).add(1),
            )
            .col_expr(job::Column::Worker, Expr::value(worker))
            .col_expr(job::Column::StartedAt, Expr::value(Utc::now()))
            .col_expr(
                job::Column::RunAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(job::Column::Id.eq(envelope.job_id.clone()))
            .filter(job::Column::TaskId.eq(envelope.task_id.clone()))
            .filter(job::Column::Status.is_in(startable))
            .exec_with_returning(&self.db)
            .await?;
        Ok(match updated.pop() {
            Some(record) => Start::Run(Box::new(record)),
            None => Start::Skip,
        })
    }

    /// Marks the attempt succeeded and applies `effect` in the same transaction.
    ///
    /// Returns false, applying nothing, when the job was already finished by another
    /// delivery of the same task: this is what makes effects exactly-once.
    pub async fn succeed(
        &self,
        envelope: &Envelope,
        result: Value,
        elapsed: Duration,
        effect: Option<Effect<'_>>,
    ) -> Result<bool, DbErr> {
        if let (Some(batches), None) = (&self.batches, &effect) {
            let row = SucceedRow {
                id: envelope.job_id.clone(),
                task_id: envelope.task_id.clone(),
                result,
                elapsed_ms: millis(elapsed),
            };
            return batches.succeed.run(row).await;
        }
        let tx = self.write_transaction().await?;
        // The conditional update comes first: it takes the row lock, so a concurrent
        // duplicate waits here and then finds the job no longer running.
        let updated = job::Entity::update_many()
            .col_expr(
                job::Column::Status,
                Expr::value(JobStatus::Succeeded.as_str()),
            )
            .col_expr(job::Column::Result, Expr::value(result))
            .col_expr(job::Column::Error, Expr::value(Option::<String>::None))
            .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
            .col_expr(job::Column::ElapsedMs, Expr::value(millis(elapsed)))
            .filter(job::Column::Id.eq(envelope.job_id.clone()))
            .filter(job::Column::TaskId.eq(envelope.task_id.clone()))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
            .exec(&tx)
            .await?;
        if updated.rows_affected == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(effect) = effect {
            effect(&tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a failed attempt: schedules the next one or declares the job dead.
    pub async fn fail(
        &self,
        envelope: &Envelope,
        error: &str,
        elapsed: Duration,
        delay: impl FnOnce(u32) -> Duration,
    ) -> Result<Failure, DbErr> {
        let Some(record) = self.get(&envelope.job_id).await? else {
            return Ok(Failure::Stale);
        };
        let attempts = u32::try_from(record.attempts).unwrap_or(0);
        let dead = record.attempts >= record.max_attempts;
        let now = Utc::now();
        let mut update = job::Entity::update_many()
            .col_expr(job::Column::Error, Expr::value(error))
            .col_expr(job::Column::ElapsedMs, Expr::value(millis(elapsed)))
            .filter(job::Column::Id.eq(envelope.job_id.clone()))
            .filter(job::Column::TaskId.eq(envelope.task_id.clone()))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()));
        let outcome = if dead {
            update = update
                .col_expr(job::Column::Status, Expr::value(JobStatus::Dead.as_str()))
                .col_expr(job::Column::FinishedAt, Expr::value(now));
            Failure::Dead
        } else {
            let wait = delay(attempts);
            let next = Envelope {
                task_id: Ulid::generate().to_string(),
                ..envelope.clone()
            };
            let due = now + chrono::Duration::from_std(wait).unwrap_or_default();
            update = update
                .col_expr(job::Column::Status, Expr::value(JobStatus::Failed.as_str()))
                .col_expr(job::Column::RunAt, Expr::value(due))
                .col_expr(job::Column::TaskId, Expr::value(next.task_id.clone()));
            Failure::Retry {
                envelope: next,
                delay: wait,
            }
        };
        let updated = update.exec(&self.db).await?;
        Ok(if updated.rows_affected == 0 {
            Failure::Stale
        } else {
            outcome
        })
    }

    /// Cancels a job that has not started.
    pub async fn cancel(&self, id: &str) -> Result<OperatorOutcome, DbErr> {
        let cancellable = statuses(JobStatus::can_cancel);
        let mut updated = job::Entity::update_many()
            .col_expr(
                job::Column::Status,
                Expr::value(JobStatus::Cancelled.as_str()),
            )
            .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
            .col_expr(
                job::Column::RunAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(job::Column::Id.eq(id.to_owned()))
            .filter(job::Column::Status.is_in(cancellable))
            .exec_with_returning(&self.db)
            .await?;
        self.operator_outcome(id, updated.pop()).await
    }

    /// Gives a failed or dead job `extra_attempts` more attempts under a new task id;
    /// the caller pushes that task. `attempts` keeps counting (it is history); a retry
    /// already scheduled is superseded.
    pub async fn retry_by_hand(
        &self,
        id: &str,
        extra_attempts: u32,
    ) -> Result<OperatorOutcome, DbErr> {
        let extra = i32::try_from(Ord::max(extra_attempts, 1)).unwrap_or(i32::MAX);
        let retriable = statuses(JobStatus::can_retry);
        let mut updated = job::Entity::update_many()
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
                Expr::value(Ulid::generate().to_string()),
            )
            .filter(job::Column::Id.eq(id.to_owned()))
            .filter(job::Column::Status.is_in(retriable))
            .exec_with_returning(&self.db)
            .await?;
        self.operator_outcome(id, updated.pop()).await
    }

    /// `updated` is the row the operator's conditional update returned, if it matched;
    /// otherwise the job is missing or in the wrong status, and a read tells which.
    async fn operator_outcome(
        &self,
        id: &str,
        updated: Option<JobRecord>,
    ) -> Result<OperatorOutcome, DbErr> {
        if let Some(record) = updated {
            return Ok(OperatorOutcome::Done(Box::new(record)));
        }
        Ok(match self.get(id).await? {
            None => OperatorOutcome::NotFound,
            Some(record) => {
                OperatorOutcome::Conflict(record.status.parse().unwrap_or(JobStatus::Running))
            }
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
    ) -> Result<Vec<Envelope>, DbErr> {
        let now = Utc::now();
        let cutoff = now - chrono::Duration::from_std(older_than).unwrap_or_default();
        let queued = sea_orm::Condition::all()
            .add(job::Column::Status.eq(JobStatus::Queued.as_str()))
            .add(job::Column::CreatedAt.lt(cutoff));
        let overdue = sea_orm::Condition::all()
            .add(job::Column::Status.eq(JobStatus::Failed.as_str()))
            .add(job::Column::RunAt.lt(cutoff));
        let abandoned = sea_orm::Condition::all()
            .add(job::Column::Status.eq(JobStatus::Running.as_str()))
            .add(
                job::Column::StartedAt
                    .lt(now - chrono::Duration::from_std(running_longer_than).unwrap_or_default()),
            );
        let records = job::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(queued)
                    .add(overdue)
                    .add(abandoned),
            )
            .order_by_asc(job::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(records.into_iter().map(|r| Envelope::of(&r)).collect())
    }

    /// Deletes at most `limit` finished job records past their retention at `now`,
    /// oldest first, and returns how many. A record whose `Idempotency-Key` is still
    /// within its window is kept whatever the retention: without it a repeated request
    /// would make a second job.
    ///
    /// Records are found by the `(status, id)` index: ids are ULIDs, made when the job
    /// was created, so a record finished before the cutoff has an id below the cutoff's
    /// and the scan never reads the records that are younger.
    pub async fn purge_finished(
        &self,
        retention: &Retention,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, DbErr> {
        let classes = [
            (retention.succeeded, &[JobStatus::Succeeded][..]),
            (retention.dead, &[JobStatus::Dead, JobStatus::Cancelled][..]),
        ];
        let key_expired = before(now, self.idempotency_window);
        let mut expired = sea_orm::Condition::any();
        let mut below = None;
        for (keep, statuses) in classes {
            let Some(keep) = keep else { continue };
            let cutoff = before(now, keep);
            let cutoff_id =
                Ulid::from_parts(u64::try_from(cutoff.timestamp_millis()).unwrap_or(0), 0)
                    .to_string();
            expired = expired.add(
                sea_orm::Condition::all()
                    .add(job::Column::Status.is_in(statuses.iter().map(|s| s.as_str())))
                    .add(job::Column::Id.lt(cutoff_id.clone()))
                    .add(job::Column::FinishedAt.lt(cutoff)),
            );
            below = Ord::max(below, Some(cutoff_id));
        }
        let Some(below) = below else { return Ok(0) };
        let ids = sea_orm::sea_query::Query::select()
            .column(job::Column::Id)
            .from(job::Entity)
            .cond_where(
                sea_orm::Condition::all()
                    // Also outside the OR: whichever index the planner walks, the
                    // scan ends at the newest cutoff.
                    .add(job::Column::Id.lt(below))
                    .add(expired)
                    .add(
                        sea_orm::Condition::any()
                            .add(job::Column::IdempotencyKey.is_null())
                            .add(job::Column::CreatedAt.lt(key_expired)),
                    ),
            )
            .order_by(job::Column::Id, sea_orm::Order::Asc)
            .limit(limit)
            .to_owned();
        self.delete_chosen::<job::Entity>(job::Column::Id, ids)
            .await
    }

    /// Deletes at most `limit` idempotency keys older than their window at `now` (they
    /// no longer match anything) and returns how many.
    pub async fn purge_idempotency_keys(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, DbErr> {
        let expired = before(now, self.idempotency_window);
        let keys = sea_orm::sea_query::Query::select()
            .column(idempotency_key::Column::Key)
            .from(idempotency_key::Entity)
            .and_where(idempotency_key::Column::CreatedAt.lt(expired))
            .order_by(idempotency_key::Column::CreatedAt, sea_orm::Order::Asc)
            .limit(limit)
            .to_owned();
        self.delete_chosen::<idempotency_key::Entity>(idempotency_key::Column::Key, keys)
            .await
    }

    /// Deletes the rows of `E` whose `key` is among those `chosen` selects (a bounded,
    /// ordered subquery: one chunk of a purge); returns how many.
    async fn delete_chosen<E: EntityTrait>(
        &self,
        key: E::Column,
        chosen: sea_orm::sea_query::SelectStatement,
    ) -> Result<u64, DbErr> {
        let deleted = E::delete_many()
            .filter(key.in_subquery(chosen))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }

    /// Job records by queue and status, for `GET /queues`.
    pub async fn queue_counts(&self) -> Result<Vec<QueueCount>, DbErr> {
        job::Entity::find()
            .select_only()
            .column(job::Column::Queue)
            .column(job::Column::Status)
            .column_as(job::Column::Id.count(), "count")
            .group_by(job::Column::Queue)
            .group_by(job::Column::Status)
            .into_model::<QueueCount>()
            .all(&self.db)
            .await
    }

    /// Answers when the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.execute_unprepared("SELECT 1").await.map(|_| ())
    }
}

/// The wire names of the statuses for which `allowed` holds.
/// A `queued` record for `new`. Its times are cut to microseconds, as the database
/// keeps them, so that the record handed back equals the one read later.
fn new_record(new: &NewJob, id: String, now: DateTime<Utc>) -> JobRecord {
    JobRecord {
        id,
        kind: new.kind.as_str().to_owned(),
        queue: new.kind.queue().to_owned(),
        args: new.args.clone(),
        status: JobStatus::Queued.as_str().to_owned(),
        attempts: 0,
        max_attempts: i32::try_from(Ord::max(new.max_attempts, 1)).unwrap_or(i32::MAX),
        result: None,
        error: None,
        worker: None,
        idempotency_key: new.idempotency_key.clone(),
        created_at: now.trunc_subsecs(6),
        started_at: None,
        finished_at: None,
        elapsed_ms: None,
        run_at: None,
        task_id: Ulid::generate().to_string(),
    }
}

/// One claim in a batched `start_attempt`.
#[derive(Debug, Clone, Serialize)]
struct StartRow {
    id: String,
    task_id: String,
    worker: String,
}

/// One success in a batched `succeed` (jobs without an effect).
#[derive(Debug, Clone, Serialize)]
struct SucceedRow {
    id: String,
    task_id: String,
    result: Value,
    elapsed_ms: i64,
}

/// A job and task id pair, as a batch's `RETURNING` names its rows.
#[derive(Debug, FromQueryResult)]
struct Claimed {
    id: String,
    task_id: String,
}

impl Batches {
    /// The three batched writes over `db` (Postgres: the rows travel as one JSON
    /// parameter, unpacked by `json_to_recordset`, so each statement is prepared once
    /// whatever the batch size).
    fn new(db: &DatabaseConnection) -> Self {
        Batches {
            create: batcher(db, insert_records),
            start: batcher(db, start_rows),
            succeed: batcher(db, succeed_rows),
        }
    }
}

/// A batcher whose flushes run `write` over `db`.
fn batcher<Req, Res, Fut>(
    db: &DatabaseConnection,
    write: fn(DatabaseConnection, Vec<Req>) -> Fut,
) -> Arc<Batcher<Req, Res>>
where
    Req: Send + 'static,
    Res: Send + 'static,
    Fut: Future<Output = Result<Vec<Res>, DbErr>> + Send + 'static,
{
    let db = db.clone();
    Batcher::new(
        MAX_BATCH,
        FLUSHERS,
        Arc::new(move |rows: Vec<Req>| Box::pin(write(db.clone(), rows))),
    )
}

fn json_param(rows: &impl Serialize) -> Result<sea_orm::Value, DbErr> {
    serde_json::to_string(rows)
        .map(Into::into)
        .map_err(|e| DbErr::Custom(format!("encoding a batch: {e}")))
}

/// The statuses `allowed` admits, as a SQL list of literals (they are constants).
fn sql_list(allowed: fn(JobStatus) -> bool) -> String {
    statuses(allowed)
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts `queued` records in one statement.
async fn insert_records(db: DatabaseConnection, records: Vec<JobRecord>) -> Result<Vec<()>, DbErr> {
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id, "kind": r.kind, "queue": r.queue, "args": r.args,
                "status": r.status, "max_attempts": r.max_attempts,
                "idempotency_key": r.idempotency_key, "created_at": r.created_at,
                "task_id": r.task_id,
            })
        })
        .collect();
    let sql = "INSERT INTO job_records \
        (id, kind, queue, args, status, attempts, max_attempts, idempotency_key, created_at, task_id) \
        SELECT id, kind, queue, args, status, 0, max_attempts, idempotency_key, created_at, task_id \
        FROM json_to_recordset($1::json) AS v(id text, kind text, queue text, args json, \
        status text, max_attempts integer, idempotency_key text, created_at timestamptz, task_id text)";
    let inserted = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [json_param(&rows)?],
        ))
        .await?;
    if inserted.rows_affected() as usize != records.len() {
        return Err(DbErr::Custom(format!(
            "inserted {} of {} job records",
            inserted.rows_affected(),
            records.len()
        )));
    }
    Ok(vec![(); records.len()])
}

/// The index of each row's first occurrence of its (job, task) pair: a task delivered
/// twice in one batch is claimed (or finished) once, by its first delivery.
fn first_of_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    pairs.map(|pair| seen.insert(pair)).collect()
}

/// The rows a batched `UPDATE` may touch: its own ids (`$1`), as an array the primary
/// key is searched with.
///
/// Joining `json_to_recordset` on `id` alone leaves the plan to estimates: the
/// function is guessed at 100 rows and a fresh table has no statistics, so Postgres
/// (cached generic plans included) picked a bitmap scan of every row in the wanted
/// status plus a hash join: each batch read the whole backlog. This condition gives
/// the primary key a search of its own, and [`status_in`] keeps the status out of
/// reach of the index: every plan starts from the primary key, whatever the
/// statistics say.
const ONLY_ITS_OWN_IDS: &str =
    "j.id = ANY(ARRAY(SELECT x.id FROM json_to_recordset($1::json) AS x(id text)))";

/// `j.status IN (…)` as a filter that no index can serve (`IS TRUE`; status is never
/// null), so that it is checked on the rows the primary key found.
fn status_in(allowed: &str) -> String {
    format!("(j.status IN ({allowed})) IS TRUE")
}

/// The batched claim: `$1` the rows (id, task_id, worker) as JSON, `$2` the start time.
#[doc(hidden)]
pub fn start_sql() -> String {
    format!(
        "UPDATE job_records AS j SET status = '{running}', attempts = j.attempts + 1, \
         worker = v.worker, started_at = $2, run_at = NULL \
         FROM json_to_recordset($1::json) AS v(id text, task_id text, worker text) \
         WHERE {ONLY_ITS_OWN_IDS} AND j.id = v.id AND j.task_id = v.task_id \
         AND {startable} \
         RETURNING j.*",
        running = JobStatus::Running.as_str(),
        startable = status_in(&sql_list(JobStatus::can_start)),
    )
}

/// The batched success: `$1` the rows (id, task_id, result, elapsed_ms) as JSON, `$2`
/// the finish time.
#[doc(hidden)]
pub fn succeed_sql() -> String {
    format!(
        "UPDATE job_records AS j SET status = '{succeeded}', result = v.result, error = NULL, \
         finished_at = $2, elapsed_ms = v.elapsed_ms \
         FROM json_to_recordset($1::json) AS v(id text, task_id text, result json, elapsed_ms bigint) \
         WHERE {ONLY_ITS_OWN_IDS} AND j.id = v.id AND j.task_id = v.task_id \
         AND {running} \
         RETURNING j.id, j.task_id",
        succeeded = JobStatus::Succeeded.as_str(),
        running = status_in(&format!("'{}'", JobStatus::Running.as_str())),
    )
}

/// Claims the rows' jobs for an attempt in one statement; a job finished, cancelled
/// or owned by another task is not claimed (`None`).
async fn start_rows(
    db: DatabaseConnection,
    rows: Vec<StartRow>,
) -> Result<Vec<Option<JobRecord>>, DbErr> {
    let first = first_of_pairs(rows.iter().map(|r| (r.id.as_str(), r.task_id.as_str())));
    let unique: Vec<&StartRow> = rows
        .iter()
        .zip(&first)
        .filter(|(_, f)| **f)
        .map(|(r, _)| r)
        .collect();
    let claimed = JobRecord::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        start_sql(),
        [json_param(&unique)?, Utc::now().into()],
    ))
    .all(&db)
    .await?;
    let mut by_pair: std::collections::HashMap<(String, String), JobRecord> = claimed
        .into_iter()
        .map(|r| ((r.id.clone(), r.task_id.clone()), r))
        .collect();
    Ok(rows
        .iter()
        .zip(first)
        .map(|(row, first)| {
            first
                .then(|| by_pair.remove(&(row.id.clone(), row.task_id.clone())))
                .flatten()
        })
        .collect())
}

/// Marks the rows' jobs succeeded in one statement; `false` for a job that was no
/// longer this task's running attempt (finished by another delivery).
async fn succeed_rows(db: DatabaseConnection, rows: Vec<SucceedRow>) -> Result<Vec<bool>, DbErr> {
    let first = first_of_pairs(rows.iter().map(|r| (r.id.as_str(), r.task_id.as_str())));
    let unique: Vec<&SucceedRow> = rows
        .iter()
        .zip(&first)
        .filter(|(_, f)| **f)
        .map(|(r, _)| r)
        .collect();
    let done: std::collections::HashSet<(String, String)> =
        Claimed::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            succeed_sql(),
            [json_param(&unique)?, Utc::now().into()],
        ))
        .all(&db)
        .await?
        .into_iter()
        .map(|c| (c.id, c.task_id))
        .collect();
    Ok(rows
        .iter()
        .zip(first)
        .map(|(row, first)| first && done.contains(&(row.id.clone(), row.task_id.clone())))
        .collect())
}

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

/// `duration` before `now`; the start of time for a duration longer than that (a
/// setting of centuries means "for good", not a crash).
fn before(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
