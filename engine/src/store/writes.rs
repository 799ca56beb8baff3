//! The hot path of a job's record: creating it (without an idempotency key), reading
//! it when a worker starts an attempt, and recording a success with its effect. Each
//! is group-committed (see [`crate::batch`]): callers queue their row, and one
//! statement carries every row pending, its parameters shaped so that the statement
//! is prepared once whatever the batch size. On Postgres the rows travel as one typed
//! array per column, bound in binary (`unnest`): the database parses no JSON but the
//! one JSON column of a row (a creation's arguments, a success's result). On SQLite
//! they travel as one JSON parameter (`json_each`). The code path is the same on both.
//!
//! A job is written twice on this path, created and finished: an attempt's start is
//! a read (none at all for a first task that carries its job's arguments, see
//! [`super::JobStore::presume`]), and the success writes the attempt's number, worker
//! and start with the outcome. (A third write, `running`, comes only for an attempt
//! that runs long: [`super::JobStore::mark_running`].)
//!
//! Successes are batched per kind: the batch's records turn `succeeded` in one
//! statement and the kind's [`Effect`] is applied, inside the same transaction, for
//! exactly the jobs that statement turned, so a duplicate delivery applies nothing.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use entity::job;
use futures::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, Statement};
use serde::Serialize;
use serde_json::Value;

use super::{StoreError, Success, read, write_transaction};
use crate::batch::{Batcher, Limits, Weight};
use crate::ids::{JobId, TaskId};
use crate::job::{Effect, EffectError};
use crate::record::{JobRecord, JobStatus};

/// A success batcher of some kind, behind `Any` (its type names the kind's effect).
type AnySuccesses = Arc<dyn Any + Send + Sync>;

/// The batchers of one store.
pub(super) struct Writes {
    db: DatabaseConnection,
    limits: Limits,
    create: Arc<Batcher<Encoded<NewRow>, (), StoreError>>,
    read: Arc<Batcher<JobId, Option<JobRecord>, StoreError>>,
    /// One success batcher per kind, made on its first success.
    successes: Mutex<HashMap<&'static str, AnySuccesses>>,
}

impl std::fmt::Debug for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writes")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A row on its way into a batch, with the text its statement carries for it: on
/// SQLite the whole row as JSON; on Postgres, whose statements take one typed array
/// per column, its one JSON column alone (a creation's arguments, a success's result).
pub(super) struct Encoded<T> {
    text: String,
    item: T,
}

/// About what a row's other columns (ids, names, counts, times) add to a batch.
const OTHER_COLUMNS_BYTES: usize = 128;

fn weight<T>(encoded: &Encoded<T>) -> usize {
    encoded.text.len() + OTHER_COLUMNS_BYTES
}

/// The rows of a batch as one JSON array, the statement's parameter.
fn json_rows<'a>(rows: impl Iterator<Item = &'a str>) -> sea_orm::Value {
    let mut json = String::from("[");
    for (i, row) in rows.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(row);
    }
    json.push(']');
    json.into()
}

impl Writes {
    /// Batches of at most `rows` rows and `bytes` bytes of parameters. Postgres runs
    /// a second flush of a write beside the first when a backlog fills batches (each
    /// holds a connection); SQLite has one writer, so one.
    pub(super) fn new(db: &DatabaseConnection, rows: usize, bytes: usize) -> Self {
        let flushers = match db.get_database_backend() {
            DbBackend::Sqlite => 1,
            _ => 2,
        };
        let limits = Limits {
            rows,
            bytes,
            flushers,
        };
        Writes {
            create: batcher(db, limits, weight, insert_rows),
            read: batcher(db, limits, |_: &JobId| 30, read_rows),
            successes: Mutex::default(),
            db: db.clone(),
            limits,
        }
    }

    /// Creates `record`, which has no idempotency key (a record with one is created
    /// on its own, with its key).
    pub(super) async fn create(&self, record: &JobRecord) -> Result<(), StoreError> {
        debug_assert!(
            record.idempotency_key.is_none(),
            "a batched record has no key"
        );
        let text = match self.db.get_database_backend() {
            DbBackend::Postgres => serde_json::to_string(&record.args)?,
            _ => serde_json::to_string(&CreateRow {
                id: record.id,
                kind: &record.kind,
                queue: &record.queue,
                args: &record.args,
                status: record.status.as_str(),
                max_attempts: record.max_attempts,
                created_at: timestamp(record.created_at),
                task_id: record.task_id,
            })?,
        };
        let item = NewRow {
            id: record.id.to_string(),
            kind: record.kind.clone(),
            queue: record.queue.clone(),
            status: record.status.as_str(),
            max_attempts: super::count(record.max_attempts),
            created_at: record.created_at,
            task_id: record.task_id.to_string(),
        };
        self.create.run(Encoded { text, item }).await
    }

    pub(super) async fn read(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.read.run(id).await
    }

    pub(super) async fn succeed<E: Effect>(
        &self,
        kind: &'static str,
        success: Success<E>,
    ) -> Result<bool, StoreError> {
        let attempt = Turned::of(&success);
        let text = match self.db.get_database_backend() {
            DbBackend::Postgres => serde_json::to_string(&success.result)?,
            _ => serde_json::to_string(&SucceedRow {
                id: &attempt.id,
                task_id: &attempt.task_id,
                result: &success.result,
                elapsed_ms: super::millis(success.elapsed),
                attempt: super::count(success.attempt.number),
                worker: &success.attempt.worker,
                // To the microsecond, as `Turned::of` names the attempt: the attempt is
                // known by what the statement returns.
                started_at: timestamp(attempt.started_at),
            })?,
        };
        let encoded = Encoded {
            text,
            item: Pending { attempt, success },
        };
        self.successes_of::<E>(kind).run(encoded).await?
    }

    /// The success batcher of `kind`. Each kind has one effect type (the registry
    /// refuses a kind twice), so the downcast finds the batcher made for it.
    fn successes_of<E: Effect>(&self, kind: &'static str) -> Arc<SuccessBatcher<E>> {
        let mut batchers = self
            .successes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = batchers.entry(kind).or_insert_with(|| {
            let made: Arc<SuccessBatcher<E>> =
                batcher(&self.db, self.limits, weight, succeed_rows::<E>);
            made
        });
        match entry.clone().downcast::<SuccessBatcher<E>>() {
            Ok(found) => found,
            Err(_) => {
                // Only two effect types under one kind name get here: a programming
                // error the registry already refuses. Serve this one unbatched.
                let alone = Limits {
                    rows: 1,
                    flushers: 1,
                    ..self.limits
                };
                batcher(&self.db, alone, weight, succeed_rows::<E>)
            }
        }
    }
}

type SuccessBatcher<E> = Batcher<Encoded<Pending<E>>, Result<bool, StoreError>, StoreError>;

/// A success waiting in its batch, with the attempt it names.
struct Pending<E> {
    attempt: Turned,
    success: Success<E>,
}

/// A batcher whose flushes run `write` over `db`.
fn batcher<Req, Res, Fut>(
    db: &DatabaseConnection,
    limits: Limits,
    weight: Weight<Req>,
    write: fn(DatabaseConnection, Vec<Req>) -> Fut,
) -> Arc<Batcher<Req, Res, StoreError>>
where
    Req: Send + 'static,
    Res: Send + 'static,
    Fut: Future<Output = Result<Vec<Res>, StoreError>> + Send + 'static,
{
    let db = db.clone();
    Batcher::new(
        limits,
        weight,
        Arc::new(move |rows: Vec<Req>| -> BoxFuture<'static, _> {
            Box::pin(write(db.clone(), rows))
        }),
    )
}

/// One record in a batched creation on SQLite, borrowed from it: written as it stands,
/// with no copy of its arguments.
#[derive(Debug, Serialize)]
struct CreateRow<'a> {
    id: JobId,
    kind: &'a str,
    queue: &'a str,
    args: &'a Value,
    status: &'a str,
    max_attempts: u32,
    created_at: String,
    task_id: TaskId,
}

/// One record in a batched creation, its columns as Postgres takes them (its arguments
/// are the text of its [`Encoded`]).
struct NewRow {
    id: String,
    kind: String,
    queue: String,
    status: &'static str,
    max_attempts: i32,
    created_at: DateTime<Utc>,
    task_id: String,
}

/// One success in a batched success on SQLite.
#[derive(Debug, Clone, Serialize)]
struct SucceedRow<'a> {
    id: &'a str,
    task_id: &'a str,
    result: &'a Value,
    elapsed_ms: i64,
    attempt: i32,
    worker: &'a str,
    started_at: String,
}

/// An attempt, as a batched success names the rows it turned: the job and task, and
/// the worker and start the row now holds. Two deliveries of one task may be in one
/// batch as two attempts; the record names the one that turned it.
#[derive(Debug, PartialEq, Eq, Hash, FromQueryResult)]
struct Turned {
    id: String,
    task_id: String,
    worker: String,
    started_at: DateTime<Utc>,
}

impl Turned {
    fn of<E>(success: &Success<E>) -> Self {
        Turned {
            id: success.job_id.to_string(),
            task_id: success.task_id.to_string(),
            worker: success.attempt.worker.clone(),
            started_at: success.attempt.started_at.trunc_subsecs(6),
        }
    }
}

/// The text of a timestamp in a batch's JSON: what sqlx writes for SQLite (where the
/// column is text and compared as text), and what Postgres reads as `timestamptz`.
fn timestamp(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn statement(db: &DatabaseConnection, sql: &Sql, values: Vec<sea_orm::Value>) -> Statement {
    let backend = db.get_database_backend();
    let text = match backend {
        DbBackend::Postgres => &sql.postgres,
        _ => &sql.sqlite,
    };
    Statement::from_sql_and_values(backend, text.as_str(), values)
}

fn json_param(rows: &impl Serialize) -> Result<sea_orm::Value, StoreError> {
    Ok(serde_json::to_string(rows)?.into())
}

/// Inserts `queued` records in one statement.
async fn insert_rows(
    db: DatabaseConnection,
    rows: Vec<Encoded<NewRow>>,
) -> Result<Vec<()>, StoreError> {
    let asked = rows.len();
    let values = match db.get_database_backend() {
        DbBackend::Postgres => new_columns(rows),
        _ => vec![json_rows(rows.iter().map(|r| r.text.as_str()))],
    };
    let inserted = db.execute_raw(statement(&db, &INSERT, values)).await?;
    if inserted.rows_affected() as usize != asked {
        return Err(StoreError::Miscounted {
            asked,
            answered: inserted.rows_affected() as usize,
        });
    }
    Ok(vec![(); asked])
}

/// Whether each attempt is the first of its batch to be named so. Two rows of one
/// attempt could not be told apart in what the statement returns: only the first is
/// sent.
fn first_of_attempts(attempts: &[&Turned]) -> Vec<bool> {
    let mut seen = HashSet::new();
    attempts
        .iter()
        .map(|attempt| seen.insert(attempt))
        .collect()
}

/// Reads the records of `ids` in one statement; `None` for an id with no record.
async fn read_rows(
    db: DatabaseConnection,
    ids: Vec<JobId>,
) -> Result<Vec<Option<JobRecord>>, StoreError> {
    let texts: Vec<String> = ids.iter().map(JobId::to_string).collect();
    let param = match db.get_database_backend() {
        DbBackend::Postgres => texts.clone().into(),
        _ => json_param(&texts)?,
    };
    let rows = job::Model::find_by_statement(statement(&db, &READ, vec![param]))
        .all(&db)
        .await?;
    // An id may be asked for more than once in a batch (a task delivered twice).
    let by_id: HashMap<String, job::Model> = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    texts
        .iter()
        .map(|id| by_id.get(id).cloned().map(read).transpose())
        .collect()
}

/// Records a batch of successes of one kind. When the batch as a whole is refused
/// (an effect that does not fit), each success is tried alone, so that one job's
/// refusal fails only that job.
async fn succeed_rows<E: Effect>(
    db: DatabaseConnection,
    rows: Vec<Encoded<Pending<E>>>,
) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
    match succeed_together(&db, &rows).await {
        Ok(turned) => Ok(turned.into_iter().map(Ok).collect()),
        Err(err) if err.is_unreachable() || rows.len() == 1 => Err(err),
        Err(_) => {
            let mut answers = Vec::with_capacity(rows.len());
            for row in &rows {
                answers.push(
                    succeed_together(&db, std::slice::from_ref(row))
                        .await
                        .map(|turned| turned.first().copied().unwrap_or(false)),
                );
            }
            Ok(answers)
        }
    }
}

/// Marks `rows`' jobs succeeded in one statement and applies the effects of those it
/// turned, in one transaction (none for a kind without effect); false for a job that
/// was no longer this task's running attempt.
async fn succeed_together<E: Effect>(
    db: &DatabaseConnection,
    rows: &[Encoded<Pending<E>>],
) -> Result<Vec<bool>, StoreError> {
    let attempts: Vec<&Turned> = rows.iter().map(|r| &r.item.attempt).collect();
    let first = first_of_attempts(&attempts);
    let unique = rows.iter().zip(&first).filter(|(_, f)| **f).map(|(r, _)| r);
    let finished_at = Utc::now().into();
    let values = match db.get_database_backend() {
        DbBackend::Postgres => success_columns(unique, finished_at),
        _ => vec![json_rows(unique.map(|r| r.text.as_str())), finished_at],
    };
    let turned: HashSet<Turned> = if E::NONE {
        Turned::find_by_statement(statement(db, &SUCCEED, values))
            .all(db)
            .await?
            .into_iter()
            .collect()
    } else {
        let tx = write_transaction(db).await?;
        let turned: HashSet<Turned> = Turned::find_by_statement(statement(db, &SUCCEED, values))
            .all(&tx)
            .await?
            .into_iter()
            .collect();
        let effects: Vec<&E> = rows
            .iter()
            .zip(attempts.iter().zip(&first))
            .filter(|(_, (attempt, first))| **first && turned.contains(*attempt))
            .map(|(r, _)| &r.item.success.effect)
            .collect();
        if !effects.is_empty() {
            E::apply(&tx, &effects).await.map_err(|err| match err {
                EffectError::Database(err) => StoreError::from(err),
                EffectError::Rejected(reason) => StoreError::Rejected(reason),
            })?;
        }
        tx.commit().await?;
        turned
    };
    Ok(attempts
        .iter()
        .zip(first)
        .map(|(attempt, first)| first && turned.contains(*attempt))
        .collect())
}

/// A batch of records to create as the Postgres statement takes them: one array per
/// column, bound in binary, the rows moved into them.
fn new_columns(rows: Vec<Encoded<NewRow>>) -> Vec<sea_orm::Value> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    let mut queues = Vec::with_capacity(rows.len());
    let mut args = Vec::with_capacity(rows.len());
    let mut statuses = Vec::with_capacity(rows.len());
    let mut max_attempts = Vec::with_capacity(rows.len());
    let mut created_at = Vec::with_capacity(rows.len());
    let mut task_ids = Vec::with_capacity(rows.len());
    for Encoded { text, item } in rows {
        ids.push(item.id);
        kinds.push(item.kind);
        queues.push(item.queue);
        args.push(text);
        statuses.push(item.status.to_owned());
        max_attempts.push(item.max_attempts);
        created_at.push(item.created_at);
        task_ids.push(item.task_id);
    }
    vec![
        ids.into(),
        kinds.into(),
        queues.into(),
        args.into(),
        statuses.into(),
        max_attempts.into(),
        created_at.into(),
        task_ids.into(),
    ]
}

/// A batch of successes as the Postgres statement takes them: one array per column
/// (bound in binary, so that the database parses nothing but the results' JSON), then
/// the finish time.
fn success_columns<'a, E: 'a>(
    rows: impl Iterator<Item = &'a Encoded<Pending<E>>>,
    finished_at: sea_orm::Value,
) -> Vec<sea_orm::Value> {
    let mut ids = Vec::new();
    let mut task_ids = Vec::new();
    let mut results = Vec::new();
    let mut elapsed_ms = Vec::new();
    let mut attempts = Vec::new();
    let mut workers = Vec::new();
    let mut started_at = Vec::new();
    for row in rows {
        let Pending { attempt, success } = &row.item;
        ids.push(attempt.id.clone());
        task_ids.push(attempt.task_id.clone());
        results.push(row.text.clone());
        elapsed_ms.push(super::millis(success.elapsed));
        attempts.push(super::count(success.attempt.number));
        workers.push(attempt.worker.clone());
        started_at.push(attempt.started_at);
    }
    vec![
        ids.into(),
        task_ids.into(),
        results.into(),
        elapsed_ms.into(),
        attempts.into(),
        workers.into(),
        started_at.into(),
        finished_at,
    ]
}

/// One batched statement's text on each database (each statement's doc gives its
/// parameters).
struct Sql {
    postgres: String,
    sqlite: String,
}

/// The columns of a record, as a read returns them.
const COLUMNS: &str = "id, kind, queue, args, status, attempts, max_attempts, result, error, \
    worker, idempotency_key, created_at, started_at, finished_at, elapsed_ms, run_at, \
    attempt_log, task_id";

/// The statuses `allowed` admits, as a SQL list of literals (they are constants).
fn sql_list(allowed: fn(JobStatus) -> bool) -> String {
    super::statuses(allowed)
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The batched creation of records without an idempotency key: on Postgres one array
/// per column (`$1`…`$8`, the arguments as JSON text), on SQLite one JSON array (`?1`).
static INSERT: LazyLock<Sql> = LazyLock::new(|| Sql {
    postgres: "INSERT INTO job_records \
        (id, kind, queue, args, status, attempts, max_attempts, created_at, task_id) \
        SELECT id, kind, queue, CAST(args AS json), status, 0, max_attempts, created_at, task_id \
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::integer[], \
        $7::timestamptz[], $8::text[]) \
        AS v(id, kind, queue, args, status, max_attempts, created_at, task_id)"
        .to_owned(),
    sqlite: "INSERT INTO job_records \
        (id, kind, queue, args, status, attempts, max_attempts, created_at, task_id) \
        SELECT value ->> '$.id', value ->> '$.kind', value ->> '$.queue', value -> '$.args', \
        value ->> '$.status', 0, value ->> '$.max_attempts', \
        value ->> '$.created_at', value ->> '$.task_id' FROM json_each(?1)"
        .to_owned(),
});

/// The batched read: `$1` the ids, an array on Postgres and a JSON array on SQLite.
static READ: LazyLock<Sql> = LazyLock::new(|| Sql {
    postgres: format!("SELECT {COLUMNS} FROM job_records WHERE id = ANY($1::text[])"),
    sqlite: format!(
        "SELECT {COLUMNS} FROM job_records WHERE id IN (SELECT value FROM json_each(?1))"
    ),
});

/// The batched success: the rows (id, task_id, result, elapsed_ms, and the attempt's
/// number, worker and start), on Postgres as one array per column (`$1`…`$7`, the
/// result as JSON text, `null` for none) and on SQLite as one JSON array (`?1`); then
/// the finish time. A job the attempt does not own (finished, cancelled, superseded,
/// or `running` under another attempt; see `owned_by` in the store) is left alone. Of
/// two attempts of one job in a batch, both may own it while it waits: the database
/// turns it once, for one of them, and returns the worker and start it wrote, which
/// name the attempt that won.
///
/// On Postgres, joining the rows on `id` alone would leave the plan to estimates, and
/// on a fresh table with no statistics Postgres picked a scan of every row in the
/// wanted status plus a hash join: each batch read the whole backlog. `j.id = ANY($1)`
/// gives the primary key a search of its own, and the status is checked with `IS
/// TRUE`, a filter no index can serve: every plan starts from the primary key,
/// whatever the statistics say.
static SUCCEED: LazyLock<Sql> = LazyLock::new(|| {
    let succeeded = JobStatus::Succeeded.as_str();
    let running = JobStatus::Running.as_str();
    let waiting = sql_list(JobStatus::waits);
    Sql {
        postgres: format!(
            "UPDATE job_records AS j SET status = '{succeeded}', \
             result = CAST(NULLIF(v.result, 'null') AS json), error = NULL, \
             finished_at = $8, elapsed_ms = v.elapsed_ms, attempts = v.attempt, \
             worker = v.worker, started_at = v.started_at, run_at = NULL \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::integer[], \
             $6::text[], $7::timestamptz[]) \
             AS v(id, task_id, result, elapsed_ms, attempt, worker, started_at) \
             WHERE j.id = ANY($1) AND j.id = v.id AND j.task_id = v.task_id \
             AND (j.status IN ({waiting}) OR (j.status = '{running}' \
             AND j.worker = v.worker AND j.started_at = v.started_at)) IS TRUE \
             RETURNING j.id, j.task_id, j.worker, j.started_at"
        ),
        sqlite: format!(
            "UPDATE job_records SET status = '{succeeded}', result = v.result, error = NULL, \
             finished_at = ?2, elapsed_ms = v.elapsed_ms, attempts = v.attempt, \
             worker = v.worker, started_at = v.started_at, run_at = NULL \
             FROM (SELECT value ->> '$.id' AS id, value ->> '$.task_id' AS task_id, \
             value -> '$.result' AS result, value ->> '$.elapsed_ms' AS elapsed_ms, \
             value ->> '$.attempt' AS attempt, value ->> '$.worker' AS worker, \
             value ->> '$.started_at' AS started_at FROM json_each(?1)) AS v \
             WHERE job_records.id = v.id AND job_records.task_id = v.task_id \
             AND (job_records.status IN ({waiting}) OR (job_records.status = '{running}' \
             AND job_records.worker = v.worker AND job_records.started_at = v.started_at)) \
             RETURNING id, task_id, worker, started_at"
        ),
    }
});

/// The texts of the batched read and success on `backend`, for the tests that read
/// their plans.
#[doc(hidden)]
pub fn batched_statements(backend: DbBackend) -> [&'static str; 2] {
    let pick = |sql: &'static Sql| match backend {
        DbBackend::Postgres => sql.postgres.as_str(),
        _ => sql.sqlite.as_str(),
    };
    [pick(&READ), pick(&SUCCEED)]
}
