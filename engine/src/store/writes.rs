//! The hot writes: creating a job (without an idempotency key), claiming an attempt,
//! and recording a success with its effect. Each is group-committed (see
//! [`super::group_commit`]): callers queue their row, and one statement carries every
//! row pending, its rows travelling as one JSON parameter so that the statement is
//! prepared once whatever the batch size. The statements differ between Postgres
//! (`json_to_recordset`) and SQLite (`json_each`) only in how they unpack that
//! parameter; the code path is the same.
//!
//! Successes are batched per kind: the batch's records turn `succeeded` in one
//! statement and the kind's [`Effect`] is applied, inside the same transaction, for
//! exactly the jobs that statement turned, so a duplicate delivery applies nothing.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use chrono::{SecondsFormat, Utc};
use entity::job;
use futures::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, Statement};
use serde::Serialize;
use serde_json::Value;

use super::group_commit::Batcher;
use super::{StoreError, Success, read, write_transaction};
use crate::job::{Effect, EffectError};
use crate::record::{JobRecord, JobStatus};
use crate::task::Envelope;

/// Most writes one batched statement carries.
pub(super) const MAX_BATCH: usize = 256;

/// A success batcher of some kind, behind `Any` (its type names the kind's effect).
type AnySuccesses = Arc<dyn Any + Send + Sync>;

/// The batchers of one store.
pub(super) struct Writes {
    db: DatabaseConnection,
    max_batch: usize,
    flushers: usize,
    create: Arc<Batcher<JobRecord, ()>>,
    start: Arc<Batcher<StartRow, Option<JobRecord>>>,
    /// One success batcher per kind, made on its first success.
    successes: Mutex<HashMap<&'static str, AnySuccesses>>,
}

impl std::fmt::Debug for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writes")
            .field("max_batch", &self.max_batch)
            .field("flushers", &self.flushers)
            .finish_non_exhaustive()
    }
}

impl Writes {
    /// Batches of at most `max_batch` rows. Postgres runs two flushes of each write at
    /// once (each holds a connection); SQLite has one writer, so one.
    pub(super) fn new(db: &DatabaseConnection, max_batch: usize) -> Self {
        let flushers = match db.get_database_backend() {
            DbBackend::Sqlite => 1,
            _ => 2,
        };
        Writes {
            create: batcher(db, max_batch, flushers, insert_records),
            start: batcher(db, max_batch, flushers, start_rows),
            successes: Mutex::default(),
            db: db.clone(),
            max_batch,
            flushers,
        }
    }

    pub(super) async fn create(&self, record: JobRecord) -> Result<(), StoreError> {
        self.create.run(record).await
    }

    pub(super) async fn start(
        &self,
        envelope: &Envelope,
        worker: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let row = StartRow {
            id: envelope.job_id.to_string(),
            task_id: envelope.task_id.to_string(),
            worker: worker.to_owned(),
        };
        self.start.run(row).await
    }

    pub(super) async fn succeed<E: Effect>(
        &self,
        kind: &'static str,
        success: Success<E>,
    ) -> Result<bool, StoreError> {
        self.successes_of::<E>(kind).run(success).await?
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
                batcher(&self.db, self.max_batch, self.flushers, succeed_rows::<E>);
            made
        });
        match entry.clone().downcast::<SuccessBatcher<E>>() {
            Ok(found) => found,
            Err(_) => {
                // Only two effect types under one kind name get here: a programming
                // error the registry already refuses. Serve this one unbatched.
                batcher(&self.db, 1, 1, succeed_rows::<E>)
            }
        }
    }
}

type SuccessBatcher<E> = Batcher<Success<E>, Result<bool, StoreError>>;

/// A batcher whose flushes run `write` over `db`.
fn batcher<Req, Res, Fut>(
    db: &DatabaseConnection,
    max_batch: usize,
    flushers: usize,
    write: fn(DatabaseConnection, Vec<Req>) -> Fut,
) -> Arc<Batcher<Req, Res>>
where
    Req: Send + 'static,
    Res: Send + 'static,
    Fut: Future<Output = Result<Vec<Res>, StoreError>> + Send + 'static,
{
    let db = db.clone();
    Batcher::new(
        max_batch,
        flushers,
        Arc::new(move |rows: Vec<Req>| -> BoxFuture<'static, _> {
            Box::pin(write(db.clone(), rows))
        }),
    )
}

/// One claim in a batched claim.
#[derive(Debug, Clone, Serialize)]
struct StartRow {
    id: String,
    task_id: String,
    worker: String,
}

/// One success in a batched success.
#[derive(Debug, Clone, Serialize)]
struct SucceedRow<'a> {
    id: String,
    task_id: String,
    result: &'a Value,
    elapsed_ms: i64,
}

/// A job and task id pair, as a batched success names the rows it turned.
#[derive(Debug, FromQueryResult)]
struct Turned {
    id: String,
    task_id: String,
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
async fn insert_records(
    db: DatabaseConnection,
    records: Vec<JobRecord>,
) -> Result<Vec<()>, StoreError> {
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id, "kind": r.kind, "queue": r.queue, "args": r.args,
                "status": r.status.as_str(), "max_attempts": r.max_attempts,
                "idempotency_key": r.idempotency_key, "created_at": timestamp(r.created_at),
                "task_id": r.task_id,
            })
        })
        .collect();
    let inserted = db
        .execute_raw(statement(&db, &INSERT, vec![json_param(&rows)?]))
        .await?;
    if inserted.rows_affected() as usize != records.len() {
        return Err(StoreError::Miscounted {
            asked: records.len(),
            answered: inserted.rows_affected() as usize,
        });
    }
    Ok(vec![(); records.len()])
}

/// The index of each row's first occurrence of its (job, task) pair: a task delivered
/// twice in one batch is claimed (or finished) once, by its first delivery.
fn first_of_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<bool> {
    let mut seen = HashSet::new();
    pairs.map(|pair| seen.insert(pair)).collect()
}

/// Claims the rows' jobs for an attempt in one statement; a job finished, cancelled
/// or owned by another task is not claimed (`None`).
async fn start_rows(
    db: DatabaseConnection,
    rows: Vec<StartRow>,
) -> Result<Vec<Option<JobRecord>>, StoreError> {
    let first = first_of_pairs(rows.iter().map(|r| (r.id.as_str(), r.task_id.as_str())));
    let unique: Vec<&StartRow> = rows
        .iter()
        .zip(&first)
        .filter(|(_, f)| **f)
        .map(|(r, _)| r)
        .collect();
    let claimed = job::Model::find_by_statement(statement(
        &db,
        &START,
        vec![json_param(&unique)?, Utc::now().into()],
    ))
    .all(&db)
    .await?;
    let mut by_pair: HashMap<(String, String), job::Model> = claimed
        .into_iter()
        .map(|r| ((r.id.clone(), r.task_id.clone()), r))
        .collect();
    rows.iter()
        .zip(first)
        .map(|(row, first)| {
            first
                .then(|| by_pair.remove(&(row.id.clone(), row.task_id.clone())))
                .flatten()
                .map(read)
                .transpose()
        })
        .collect()
}

/// Records a batch of successes of one kind. When the batch as a whole is refused
/// (an effect that does not fit), each success is tried alone, so that one job's
/// refusal fails only that job.
async fn succeed_rows<E: Effect>(
    db: DatabaseConnection,
    rows: Vec<Success<E>>,
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
    rows: &[Success<E>],
) -> Result<Vec<bool>, StoreError> {
    let pairs: Vec<(String, String)> = rows.iter().map(|r| pair(&r.envelope)).collect();
    let first = first_of_pairs(pairs.iter().map(|(j, t)| (j.as_str(), t.as_str())));
    let unique: Vec<SucceedRow<'_>> = rows
        .iter()
        .zip(&first)
        .filter(|(_, f)| **f)
        .map(|(r, _)| SucceedRow {
            id: r.envelope.job_id.to_string(),
            task_id: r.envelope.task_id.to_string(),
            result: &r.result,
            elapsed_ms: super::millis(r.elapsed),
        })
        .collect();
    let values = vec![json_param(&unique)?, Utc::now().into()];
    let turned: HashSet<(String, String)> = if E::NONE {
        Turned::find_by_statement(statement(db, &SUCCEED, values))
            .all(db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.task_id))
            .collect()
    } else {
        let tx = write_transaction(db).await?;
        let turned: HashSet<(String, String)> =
            Turned::find_by_statement(statement(db, &SUCCEED, values))
                .all(&tx)
                .await?
                .into_iter()
                .map(|t| (t.id, t.task_id))
                .collect();
        let effects: Vec<&E> = rows
            .iter()
            .zip(pairs.iter().zip(&first))
            .filter(|(_, (pair, first))| **first && turned.contains(*pair))
            .map(|(r, _)| &r.effect)
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
    Ok(pairs
        .iter()
        .zip(first)
        .map(|(pair, first)| first && turned.contains(pair))
        .collect())
}

fn pair(envelope: &Envelope) -> (String, String) {
    (envelope.job_id.to_string(), envelope.task_id.to_string())
}

/// One batched statement's text on each database. `$1`/`?1` is the rows as JSON;
/// `$2`/`?2`, where used, the batch's timestamp.
struct Sql {
    postgres: String,
    sqlite: String,
}

/// The columns a claim returns: the whole record.
const COLUMNS: &str = "id, kind, queue, args, status, attempts, max_attempts, result, error, \
    worker, idempotency_key, created_at, started_at, finished_at, elapsed_ms, run_at, task_id";

/// The statuses `allowed` admits, as a SQL list of literals (they are constants).
fn sql_list(allowed: fn(JobStatus) -> bool) -> String {
    super::statuses(allowed)
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows a batched `UPDATE` may touch on Postgres: its own ids (`$1`), as an array
/// the primary key is searched with.
///
/// Joining `json_to_recordset` on `id` alone leaves the plan to estimates: the
/// function is guessed at 100 rows and a fresh table has no statistics, so Postgres
/// (cached generic plans included) picked a bitmap scan of every row in the wanted
/// status plus a hash join: each batch read the whole backlog. This condition gives
/// the primary key a search of its own, and the status is checked with `IS TRUE`, a
/// filter no index can serve: every plan starts from the primary key, whatever the
/// statistics say.
const ONLY_ITS_OWN_IDS: &str =
    "j.id = ANY(ARRAY(SELECT x.id FROM json_to_recordset($1::json) AS x(id text)))";

static INSERT: LazyLock<Sql> = LazyLock::new(|| {
    Sql {
    postgres: "INSERT INTO job_records \
        (id, kind, queue, args, status, attempts, max_attempts, idempotency_key, created_at, task_id) \
        SELECT id, kind, queue, args, status, 0, max_attempts, idempotency_key, created_at, task_id \
        FROM json_to_recordset($1::json) AS v(id text, kind text, queue text, args json, \
        status text, max_attempts integer, idempotency_key text, created_at timestamptz, task_id text)"
        .to_owned(),
    sqlite: "INSERT INTO job_records \
        (id, kind, queue, args, status, attempts, max_attempts, idempotency_key, created_at, task_id) \
        SELECT value ->> '$.id', value ->> '$.kind', value ->> '$.queue', value -> '$.args', \
        value ->> '$.status', 0, value ->> '$.max_attempts', value ->> '$.idempotency_key', \
        value ->> '$.created_at', value ->> '$.task_id' FROM json_each(?1)"
        .to_owned(),
}
});

/// The batched claim: `$1` the rows (id, task_id, worker), `$2` the start time.
static START: LazyLock<Sql> = LazyLock::new(|| {
    let running = JobStatus::Running.as_str();
    let startable = sql_list(JobStatus::can_start);
    Sql {
        postgres: format!(
            "UPDATE job_records AS j SET status = '{running}', attempts = j.attempts + 1, \
             worker = v.worker, started_at = $2, run_at = NULL \
             FROM json_to_recordset($1::json) AS v(id text, task_id text, worker text) \
             WHERE {ONLY_ITS_OWN_IDS} AND j.id = v.id AND j.task_id = v.task_id \
             AND (j.status IN ({startable})) IS TRUE \
             RETURNING {}",
            prefixed("j")
        ),
        sqlite: format!(
            "UPDATE job_records SET status = '{running}', attempts = attempts + 1, \
             worker = v.worker, started_at = ?2, run_at = NULL \
             FROM (SELECT value ->> '$.id' AS id, value ->> '$.task_id' AS task_id, \
             value ->> '$.worker' AS worker FROM json_each(?1)) AS v \
             WHERE job_records.id = v.id AND job_records.task_id = v.task_id \
             AND job_records.status IN ({startable}) \
             RETURNING {COLUMNS}"
        ),
    }
});

/// The batched success: `$1` the rows (id, task_id, result, elapsed_ms), `$2` the
/// finish time.
static SUCCEED: LazyLock<Sql> = LazyLock::new(|| {
    let succeeded = JobStatus::Succeeded.as_str();
    let running = JobStatus::Running.as_str();
    Sql {
        postgres: format!(
            "UPDATE job_records AS j SET status = '{succeeded}', result = v.result, error = NULL, \
             finished_at = $2, elapsed_ms = v.elapsed_ms \
             FROM json_to_recordset($1::json) AS v(id text, task_id text, result json, elapsed_ms bigint) \
             WHERE {ONLY_ITS_OWN_IDS} AND j.id = v.id AND j.task_id = v.task_id \
             AND (j.status IN ('{running}')) IS TRUE \
             RETURNING j.id, j.task_id"
        ),
        sqlite: format!(
            "UPDATE job_records SET status = '{succeeded}', result = v.result, error = NULL, \
             finished_at = ?2, elapsed_ms = v.elapsed_ms \
             FROM (SELECT value ->> '$.id' AS id, value ->> '$.task_id' AS task_id, \
             value -> '$.result' AS result, value ->> '$.elapsed_ms' AS elapsed_ms \
             FROM json_each(?1)) AS v \
             WHERE job_records.id = v.id AND job_records.task_id = v.task_id \
             AND job_records.status = '{running}' \
             RETURNING id, task_id"
        ),
    }
});

/// [`COLUMNS`], each prefixed with `alias.`.
fn prefixed(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The texts of the batched claim and success on `backend`, for the tests that read
/// their plans.
#[doc(hidden)]
pub fn batched_updates(backend: DbBackend) -> [&'static str; 2] {
    let pick = |sql: &'static Sql| match backend {
        DbBackend::Postgres => sql.postgres.as_str(),
        _ => sql.sqlite.as_str(),
    };
    [pick(&START), pick(&SUCCEED)]
}
