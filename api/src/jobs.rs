//! `/jobs…` and `/queues…`: job records, operator actions, queue overview and
//! throughput history.

use chrono::{DateTime, Utc};
use engine::store::{JobFilter, Listed, OperatorOutcome};
use engine::throughput::{minute_of, window_start};
use engine::{FailedAttempt, JobId, JobRecord, JobStatus, Task};
use features::system::{Noop, NoopArgs};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use serde_json::Value;

use crate::auth::{CHALLENGE, Unauthorized, authorize, authorize_read};
use crate::enqueue::{EnqueueError, enqueue, idempotency_key};
use crate::error::{ErrorBody, UNSUPPORTED_MEDIA_TYPE, quote, wrong_media_type};
use crate::state::AppState;
use crate::text::Text;

#[derive(Tags)]
enum JobTags {
    /// Job records, operator actions and queues.
    Jobs,
}

/// A job record (SPEC §0). A field without a value is absent, as the schema says
/// (never `null`).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobView {
    /// ULID.
    pub id: String,
    /// Job kind, e.g. `system.noop`.
    pub kind: String,
    /// Logical queue.
    pub queue: String,
    /// Arguments as accepted.
    pub args: Value,
    /// `queued`, `running`, `succeeded`, `failed`, `dead` or `cancelled`.
    pub status: String,
    /// Attempts started.
    pub attempts: i32,
    /// Attempts allowed before the job is dead.
    pub max_attempts: i32,
    /// Result once succeeded.
    pub result: Option<Value>,
    /// Last error.
    pub error: Option<String>,
    /// Worker that ran the last attempt.
    pub worker: Option<String>,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Last attempt started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished (succeeded, dead or cancelled) at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Duration of the last attempt in ms.
    pub elapsed_ms: Option<i64>,
    /// Next attempt due at, while a retry is scheduled.
    pub run_at: Option<DateTime<Utc>>,
    /// Failed attempts, oldest first (`GET /jobs/{id}` only; absent before a first
    /// failure). The last attempt, whatever its outcome, is `worker`, `started_at`,
    /// `elapsed_ms` and `error` above.
    pub attempt_log: Option<Vec<AttemptView>>,
    /// In a list (`GET /jobs`): the fields left out because they are over 2 048
    /// characters (`args`, `result`), which `GET /jobs/{id}` has; there `args` is
    /// `null`. A listed `error` over 1 024 characters is cut and ends with `…`.
    pub omitted: Option<Vec<String>>,
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        JobView {
            id: r.id.to_string(),
            kind: r.kind,
            queue: r.queue,
            args: r.args,
            status: r.status.as_str().to_owned(),
            attempts: i32::try_from(r.attempts).unwrap_or(i32::MAX),
            max_attempts: i32::try_from(r.max_attempts).unwrap_or(i32::MAX),
            result: r.result,
            error: r.error,
            worker: r.worker,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            elapsed_ms: r.elapsed_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            run_at: r.run_at,
            attempt_log: (!r.attempt_log.is_empty())
                .then(|| r.attempt_log.into_iter().map(AttemptView::from).collect()),
            omitted: None,
        }
    }
}

/// A failed attempt of a job.
#[derive(Debug, Clone, Object)]
pub struct AttemptView {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// Started at.
    pub started_at: DateTime<Utc>,
    /// Failed at.
    pub finished_at: DateTime<Utc>,
    /// Why.
    pub error: String,
}

impl From<FailedAttempt> for AttemptView {
    fn from(a: FailedAttempt) -> Self {
        AttemptView {
            attempt: a.attempt,
            worker: a.worker,
            started_at: a.started_at,
            finished_at: a.finished_at,
            error: a.error,
        }
    }
}

impl From<Listed> for JobView {
    fn from(listed: Listed) -> Self {
        let omitted = (!listed.omitted.is_empty())
            .then(|| listed.omitted.iter().map(|f| (*f).to_owned()).collect());
        JobView {
            omitted,
            ..listed.record.into()
        }
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<JobView>,
    /// Pass as `before` to get the next page; absent on the last page.
    pub next_before: Option<String>,
}

/// Counts of one queue.
#[derive(Debug, Clone, Default, Object)]
pub struct QueueView {
    /// Logical queue name.
    pub queue: String,
    /// The job kinds of this build that run on this queue, by name, sorted (none for
    /// a queue that only old records name).
    pub kinds: Vec<String>,
    /// Jobs waiting for their first attempt.
    pub queued: i64,
    /// Jobs a worker holds.
    pub running: i64,
    /// Jobs finished with a result.
    pub succeeded: i64,
    /// Jobs whose last attempt failed, with a retry scheduled.
    pub failed: i64,
    /// Jobs that spent every attempt.
    pub dead: i64,
    /// Jobs cancelled before they started.
    pub cancelled: i64,
    /// Tasks waiting on the queue backend (ready and delayed).
    pub depth: u64,
    /// Names of the workers alive on this queue.
    pub workers: Vec<String>,
    /// Paused by an operator: workers take none of its tasks until it is resumed.
    pub paused: bool,
    /// Latency: how long the oldest `queued` job has waited, in ms (0 when none waits).
    pub latency_ms: u64,
    /// Failed attempts / (succeeded jobs + failed attempts) over the last
    /// `FAILURE_RATE_MINUTES` (this minute included), from 0 to 1; `null` when nothing
    /// finished or failed then. A failed attempt is one that errored or timed out,
    /// whether it is retried or the job is dead. Counts arrive within
    /// `THROUGHPUT_FLUSH_MS` of the outcome.
    pub failure_rate: Option<f64>,
}

/// One minute of a queue: what its workers recorded in it.
#[derive(Debug, Clone, Object)]
pub struct MinuteView {
    /// The minute's start (RFC 3339, seconds zero).
    pub minute: DateTime<Utc>,
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Attempts that failed (errored or timed out), whether retried or dead.
    pub failed: u64,
}

/// One queue's throughput history.
#[derive(Debug, Clone, Object)]
pub struct QueueHistory {
    /// Logical queue name.
    pub queue: String,
    /// Oldest first; a minute in which nothing succeeded or failed is left out.
    pub minutes: Vec<MinuteView>,
}

/// Throughput history of every queue, at minute resolution.
#[derive(Debug, Clone, Object)]
pub struct History {
    /// The window's first minute.
    pub from: DateTime<Utc>,
    /// The window's last minute: the current one, still counting.
    pub to: DateTime<Utc>,
    /// One entry per queue of this build (and any other queue with counts).
    pub queues: Vec<QueueHistory>,
}

/// Answers of `GET /queues/history`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "history_bad_request")]
pub enum HistoryAnswer {
    /// The history.
    #[oai(status = 200)]
    Ok(Json<History>),
    /// `minutes` is not an integer from 1 to `THROUGHPUT_HISTORY_MINUTES`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request carries neither it nor `READ_TOKEN` as a
    /// bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn history_bad_request(err: poem::Error) -> HistoryAnswer {
    HistoryAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// A queue's pause state, as `POST /queues/{queue}/pause` and `…/resume` leave it.
#[derive(Debug, Clone, Object)]
pub struct PauseState {
    /// The queue.
    pub queue: String,
    /// Whether workers now leave its tasks waiting (within `QUEUE_PAUSE_POLL_MS`).
    pub paused: bool,
}

/// Answers of `POST /queues/{queue}/pause` and `…/resume`.
#[derive(ApiResponse)]
pub enum PauseAnswer {
    /// The queue's state now; repeating the call changes nothing.
    #[oai(status = 200)]
    Done(Json<PauseState>),
    /// `ADMIN_TOKEN` is set and the request does not carry it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No job kind of this build uses that queue.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The database is unavailable; nothing changed.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// The answer to an enqueue.
#[derive(Debug, Clone, Object)]
pub struct Accepted {
    /// Id of the job; follow it at `/jobs/{job_id}`.
    pub job_id: String,
}

/// Status filter of `GET /jobs`.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum StatusParam {
    /// Waiting.
    Queued,
    /// Held by a worker.
    Running,
    /// Finished.
    Succeeded,
    /// Retry scheduled.
    Failed,
    /// Out of attempts.
    Dead,
    /// Cancelled.
    Cancelled,
}

impl From<StatusParam> for JobStatus {
    fn from(s: StatusParam) -> Self {
        match s {
            StatusParam::Queued => JobStatus::Queued,
            StatusParam::Running => JobStatus::Running,
            StatusParam::Succeeded => JobStatus::Succeeded,
            StatusParam::Failed => JobStatus::Failed,
            StatusParam::Dead => JobStatus::Dead,
            StatusParam::Cancelled => JobStatus::Cancelled,
        }
    }
}

/// Answers of `GET /jobs/{id}`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "job_bad_request")]
pub enum JobAnswer {
    /// The job.
    #[oai(status = 200)]
    Ok(Json<Box<JobView>>),
    /// Bad request.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request carries neither it nor `READ_TOKEN` as a
    /// bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No such job.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn job_bad_request(err: poem::Error) -> JobAnswer {
    JobAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of `GET /jobs`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "page_bad_request")]
pub enum PageAnswer {
    /// A page of jobs.
    #[oai(status = 200)]
    Ok(Json<JobPage>),
    /// Bad filter or limit.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request carries neither it nor `READ_TOKEN` as a
    /// bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn page_bad_request(err: poem::Error) -> PageAnswer {
    PageAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of `DELETE /jobs/{id}`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "cancel_bad_request")]
pub enum CancelAnswer {
    /// Cancelled; the job as it is now.
    #[oai(status = 200)]
    Cancelled(Json<Box<JobView>>),
    /// Bad request.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request does not carry it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No such job.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The job is running or finished.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn cancel_bad_request(err: poem::Error) -> CancelAnswer {
    CancelAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of `POST /jobs/{id}/abort`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "abort_bad_request")]
pub enum AbortAnswer {
    /// Cancelled; the job as it is now. A worker running it drops the attempt within
    /// `JOB_ABORT_POLL_MS`.
    #[oai(status = 200)]
    Aborted(Json<Box<JobView>>),
    /// Bad request.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request does not carry it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No such job.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The job has finished (succeeded, dead or cancelled).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The database is unavailable; nothing changed.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn abort_bad_request(err: poem::Error) -> AbortAnswer {
    AbortAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of `POST /jobs/{id}/retry`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "retry_bad_request")]
pub enum RetryAnswer {
    /// Re-enqueued; the job as it is now.
    #[oai(status = 202)]
    Requeued(Json<Box<JobView>>),
    /// Bad request.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request does not carry it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No such job.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The job is neither failed nor dead.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The database or the queue is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn retry_bad_request(err: poem::Error) -> RetryAnswer {
    RetryAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of `GET /queues`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "queues_bad_request")]
pub enum QueuesAnswer {
    /// One entry per queue.
    #[oai(status = 200)]
    Ok(Json<Vec<QueueView>>),
    /// Bad request.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request carries neither it nor `READ_TOKEN` as a
    /// bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The database or the queue is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn queues_bad_request(err: poem::Error) -> QueuesAnswer {
    QueuesAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// Answers of an enqueuing route.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "enqueue_bad_request")]
pub enum EnqueueAnswer {
    /// Accepted; follow the job at `Location`. An `Idempotency-Key` seen within its
    /// window answers the first job again.
    #[oai(status = 202)]
    Accepted(Json<Accepted>, #[oai(header = "Location")] String),
    /// Malformed body or header.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The `Idempotency-Key` was used within its window with another request.
    #[oai(status = 422)]
    KeyReused(Json<ErrorBody>),
    /// The database or the queue is unavailable; nothing was enqueued.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// Answers of `POST /jobs/noop`: those of an enqueue, and 401 (a test kind whose jobs
/// can hold a queue's workers, so an operator's when `ADMIN_TOKEN` is set).
#[derive(ApiResponse)]
#[oai(bad_request_handler = "noop_bad_request")]
pub enum NoopAnswer {
    /// Accepted; follow the job at `Location`.
    #[oai(status = 202)]
    Accepted(Json<Accepted>, #[oai(header = "Location")] String),
    /// Malformed body or header.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request does not carry it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The `Idempotency-Key` was used within its window with another request.
    #[oai(status = 422)]
    KeyReused(Json<ErrorBody>),
    /// The database or the queue is unavailable; nothing was enqueued.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn noop_bad_request(err: poem::Error) -> NoopAnswer {
    enqueue_bad_request(err).into()
}

impl From<EnqueueAnswer> for NoopAnswer {
    fn from(answer: EnqueueAnswer) -> Self {
        match answer {
            EnqueueAnswer::Accepted(body, location) => NoopAnswer::Accepted(body, location),
            EnqueueAnswer::BadRequest(body) => NoopAnswer::BadRequest(body),
            EnqueueAnswer::UnsupportedMediaType(body) => NoopAnswer::UnsupportedMediaType(body),
            EnqueueAnswer::KeyReused(body) => NoopAnswer::KeyReused(body),
            EnqueueAnswer::Unavailable(body) => NoopAnswer::Unavailable(body),
        }
    }
}

fn enqueue_bad_request(err: poem::Error) -> EnqueueAnswer {
    if wrong_media_type(&err) {
        return EnqueueAnswer::UnsupportedMediaType(Json(ErrorBody::new(
            "unsupported_media_type",
            UNSUPPORTED_MEDIA_TYPE,
        )));
    }
    EnqueueAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

impl From<Result<JobRecord, EnqueueError>> for EnqueueAnswer {
    fn from(result: Result<JobRecord, EnqueueError>) -> Self {
        match result {
            Ok(job) => {
                let location = format!("/jobs/{}", job.id);
                EnqueueAnswer::Accepted(
                    Json(Accepted {
                        job_id: job.id.to_string(),
                    }),
                    location,
                )
            }
            Err(err) => err.into(),
        }
    }
}

impl From<EnqueueError> for EnqueueAnswer {
    fn from(err: EnqueueError) -> Self {
        match err.body() {
            (400, body) => EnqueueAnswer::BadRequest(Json(body)),
            (422, body) => EnqueueAnswer::KeyReused(Json(body)),
            (_, body) => EnqueueAnswer::Unavailable(Json(body)),
        }
    }
}

/// Arguments of `system.noop`.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct NoopRequest {
    /// Milliseconds of simulated work.
    #[oai(default, validator(maximum(value = "3600000")))]
    pub sleep_ms: u64,
    /// Attempts that fail on purpose before one succeeds.
    #[oai(default, validator(maximum(value = "1000")))]
    pub fail_times: u32,
}

/// What `POST /jobs/bulk` does to the jobs it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum BulkAction {
    /// Retry every `dead` job, with a fresh budget of attempts.
    Retry,
    /// Cancel every `queued` job.
    Cancel,
    /// Delete every `dead` job's record (and its `Idempotency-Key`: a dead job applied
    /// nothing, so a repeated request may make a new job).
    Discard,
}

/// Body of `POST /jobs/bulk`: an action over the jobs of a queue and/or kind.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct BulkRequest {
    /// `retry` or `discard` (the `dead` jobs), or `cancel` (the `queued` ones).
    pub action: BulkAction,
    /// Only the jobs of this queue.
    pub queue: Option<Text>,
    /// Only the jobs of kinds whose name contains this, ignoring case (as `GET /jobs`).
    pub kind: Option<Text>,
    /// Most jobs acted on by this call (newest first); call again while `more`.
    #[oai(
        default = "bulk_limit_default",
        validator(minimum(value = "1"), maximum(value = "1000"))
    )]
    pub limit: u64,
}

fn bulk_limit_default() -> u64 {
    1_000
}

/// What a bulk action did.
#[derive(Debug, Clone, Object)]
pub struct BulkDone {
    /// The action.
    pub action: BulkAction,
    /// Jobs that matched (at most `limit`).
    pub matched: u64,
    /// Of those, jobs acted on; the others changed meanwhile (another operator, a
    /// worker) and were left as they are.
    pub done: u64,
    /// `limit` jobs matched: there may be more; the same call acts on them.
    pub more: bool,
}

/// Answers of `POST /jobs/bulk`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "bulk_bad_request")]
pub enum BulkAnswer {
    /// Done.
    #[oai(status = 200)]
    Done(Json<BulkDone>),
    /// Malformed body.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `ADMIN_TOKEN` is set and the request does not carry it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The database or the queue is unavailable; what `done` would have counted may
    /// be partly done (the same call finishes it).
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn bulk_bad_request(err: poem::Error) -> BulkAnswer {
    if wrong_media_type(&err) {
        return BulkAnswer::UnsupportedMediaType(Json(ErrorBody::new(
            "unsupported_media_type",
            UNSUPPORTED_MEDIA_TYPE,
        )));
    }
    BulkAnswer::BadRequest(Json(ErrorBody::bad_request(&err)))
}

/// The job routes.
#[derive(Debug, Clone)]
pub struct JobsApi {
    state: AppState,
}

impl JobsApi {
    /// The routes over `state`.
    pub fn new(state: AppState) -> Self {
        JobsApi { state }
    }

    /// The kinds a `kind` filter names: itself (a kind this build may not run still
    /// has records), and every kind of the build whose name contains it, ignoring
    /// case. An `IN` over names keeps the query on the (kind, id) index.
    fn kinds_matching(&self, wanted: &str) -> Vec<String> {
        let needle = wanted.to_lowercase();
        let mut kinds = vec![wanted.to_owned()];
        kinds.extend(
            self.state
                .kinds
                .iter()
                .map(|kind| kind.name)
                .filter(|name| name.to_lowercase().contains(&needle) && *name != wanted)
                .map(str::to_owned),
        );
        kinds
    }

    /// Pauses (`paused`) or resumes a queue of this build.
    async fn set_paused(&self, req: &Request, queue: &str, paused: bool) -> PauseAnswer {
        if let Err(Unauthorized(body)) = authorize(&self.state.config, req) {
            return PauseAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        if !self.state.queues.contains(&queue) {
            return PauseAnswer::NotFound(Json(ErrorBody::new(
                "not_found",
                format!(
                    "no job kind uses queue '{}'; the queues are {}",
                    quote(queue),
                    self.state.queues.join(", ")
                ),
            )));
        }
        let done = if paused {
            self.state.store.pause_queue(queue).await
        } else {
            self.state.store.resume_queue(queue).await
        };
        match done {
            Ok(()) => {
                tracing::info!(queue, paused, "queue pause changed by an operator");
                PauseAnswer::Done(Json(PauseState {
                    queue: queue.to_owned(),
                    paused,
                }))
            }
            Err(err) => PauseAnswer::Unavailable(unavailable(err)),
        }
    }
}

fn unavailable(err: impl std::fmt::Display) -> Json<ErrorBody> {
    Json(ErrorBody::new(
        "unavailable",
        format!("database unavailable: {err}"),
    ))
}

/// What a `before` that is no job id is told.
const BEFORE_IS_AN_ID: &str =
    "before must be a job id (a 26-character ULID), as next_before hands out";

/// The job `id` names, if it can name one: ids are ULIDs, and any other text
/// names no job (and never reaches the database).
fn job_id(id: &str) -> Result<JobId, Json<ErrorBody>> {
    id.parse().map_err(|_| not_found(id))
}

fn not_found(id: &str) -> Json<ErrorBody> {
    let shown: String = id.chars().take(40).collect();
    Json(ErrorBody::new(
        "not_found",
        format!("no job with id '{shown}'"),
    ))
}

#[OpenApi(tag = "JobTags::Jobs")]
impl JobsApi {
    /// One job record.
    #[oai(path = "/jobs/:id", method = "get")]
    async fn get_job(&self, req: &Request, id: Path<String>) -> JobAnswer {
        if let Err(Unauthorized(body)) = authorize_read(&self.state.config, req) {
            return JobAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let job = match job_id(&id) {
            Ok(job) => job,
            Err(missing) => return JobAnswer::NotFound(missing),
        };
        match self.state.store.get(job).await {
            Ok(Some(job)) => JobAnswer::Ok(Json(Box::new(job.into()))),
            Ok(None) => JobAnswer::NotFound(not_found(&id)),
            Err(err) => JobAnswer::Unavailable(unavailable(err)),
        }
    }

    /// Job records, newest first. Pass the previous page's `next_before` as `before`.
    #[oai(path = "/jobs", method = "get")]
    #[allow(
        clippy::too_many_arguments,
        reason = "poem-openapi takes each query parameter as an argument of its own"
    )]
    async fn list_jobs(
        &self,
        req: &Request,
        status: Query<Option<StatusParam>>,
        /// A kind's name (`system.noop`), or part of one (`noop`, `math.`): the jobs of
        /// every kind of this build whose name contains it, ignoring case.
        kind: Query<Option<String>>,
        /// Only the jobs of this queue (`default`, `math`, …).
        queue: Query<Option<String>>,
        /// A job's id, or its beginning (any case): the jobs whose id starts with it.
        id: Query<Option<String>>,
        limit: Query<Option<u64>>,
        before: Query<Option<String>>,
    ) -> PageAnswer {
        if let Err(Unauthorized(body)) = authorize_read(&self.state.config, req) {
            return PageAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let max = self.state.config.jobs_page_max;
        let limit = limit.0.unwrap_or(50.min(max));
        if limit == 0 || limit > max {
            return PageAnswer::BadRequest(Json(ErrorBody::new(
                "bad_request",
                format!("limit must be between 1 and {max}"),
            )));
        }
        // A cursor is an id we handed out, so anything else is a mistake.
        let before = match before.0.as_deref().map(str::parse::<JobId>).transpose() {
            Ok(before) => before,
            Err(_) => {
                return PageAnswer::BadRequest(Json(ErrorBody::new(
                    "bad_request",
                    BEFORE_IS_AN_ID,
                )));
            }
        };
        let id_prefix = match id.0.as_deref().map(engine::ids::id_prefix) {
            None => None,
            Some(Some(prefix)) => Some(prefix),
            Some(None) => {
                return PageAnswer::BadRequest(Json(ErrorBody::new(
                    "bad_request",
                    "id must be a job id or its beginning: 1 to 26 characters of 0-9 and \
                     A-Z without I, L, O and U",
                )));
            }
        };
        // NUL, which Postgres text refuses (the query would fail as if the database
        // were down), is in no kind or queue: such a filter matches nothing.
        if [&kind.0, &queue.0]
            .iter()
            .any(|f| f.as_deref().is_some_and(|f| f.contains('\0')))
        {
            return PageAnswer::Ok(Json(JobPage {
                jobs: Vec::new(),
                next_before: None,
            }));
        }
        let filter = JobFilter {
            status: status.0.map(Into::into),
            // An empty filter filters nothing.
            kinds: kind
                .0
                .filter(|k| !k.is_empty())
                .map(|k| self.kinds_matching(&k))
                .unwrap_or_default(),
            queue: queue.0.filter(|q| !q.is_empty()),
            id_prefix,
            before,
            limit,
            ..JobFilter::default()
        };
        match self.state.store.list(&filter).await {
            Ok(jobs) => {
                let next_before = if jobs.len() as u64 == limit {
                    jobs.last().map(|j| j.record.id.to_string())
                } else {
                    None
                };
                PageAnswer::Ok(Json(JobPage {
                    jobs: jobs.into_iter().map(Into::into).collect(),
                    next_before,
                }))
            }
            Err(err) => PageAnswer::Unavailable(unavailable(err)),
        }
    }

    /// Cancels a job that has not started (`queued`, or `failed` awaiting a retry).
    /// Needs `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set.
    #[oai(path = "/jobs/:id", method = "delete")]
    async fn cancel_job(&self, req: &Request, id: Path<String>) -> CancelAnswer {
        if let Err(Unauthorized(body)) = authorize(&self.state.config, req) {
            return CancelAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let job = match job_id(&id) {
            Ok(job) => job,
            Err(missing) => return CancelAnswer::NotFound(missing),
        };
        match self.state.store.cancel(job).await {
            Ok(OperatorOutcome::Done(job)) => {
                CancelAnswer::Cancelled(Json(Box::new((*job).into())))
            }
            Ok(OperatorOutcome::NotFound) => CancelAnswer::NotFound(not_found(&id)),
            Ok(OperatorOutcome::Conflict(status)) => CancelAnswer::Conflict(Json(ErrorBody::new(
                "conflict",
                format!(
                    "job '{}' is {status}; only queued or failed jobs can be cancelled",
                    &*id
                ),
            ))),
            Err(err) => CancelAnswer::Unavailable(unavailable(err)),
        }
    }

    /// Aborts a job that has not finished, even a `running` one: it is `cancelled` at
    /// once (its error says it was aborted), can no longer succeed nor apply its
    /// effect, and the worker running it drops the attempt within `JOB_ABORT_POLL_MS`
    /// and takes its next task. A computation on a blocking thread (math) runs to its
    /// end unseen: its result is discarded. For a `queued` or `failed` job this is a
    /// cancel. Needs `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set.
    #[oai(path = "/jobs/:id/abort", method = "post")]
    async fn abort_job(&self, req: &Request, id: Path<String>) -> AbortAnswer {
        if let Err(Unauthorized(body)) = authorize(&self.state.config, req) {
            return AbortAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let job = match job_id(&id) {
            Ok(job) => job,
            Err(missing) => return AbortAnswer::NotFound(missing),
        };
        match self.state.store.abort(job).await {
            Ok(OperatorOutcome::Done(job)) => AbortAnswer::Aborted(Json(Box::new((*job).into()))),
            Ok(OperatorOutcome::NotFound) => AbortAnswer::NotFound(not_found(&id)),
            Ok(OperatorOutcome::Conflict(status)) => AbortAnswer::Conflict(Json(ErrorBody::new(
                "conflict",
                format!(
                    "job '{}' is {status}; only queued, running or failed jobs can be aborted",
                    &*id
                ),
            ))),
            Err(err) => AbortAnswer::Unavailable(unavailable(err)),
        }
    }

    /// Re-enqueues a `failed` or `dead` job with a fresh budget of `JOB_MAX_ATTEMPTS`
    /// attempts (its attempt count goes on). Needs `Authorization: Bearer <ADMIN_TOKEN>`
    /// when `ADMIN_TOKEN` is set.
    #[oai(path = "/jobs/:id/retry", method = "post")]
    async fn retry_job(&self, req: &Request, id: Path<String>) -> RetryAnswer {
        if let Err(Unauthorized(body)) = authorize(&self.state.config, req) {
            return RetryAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let job = match job_id(&id) {
            Ok(job) => job,
            Err(missing) => return RetryAnswer::NotFound(missing),
        };
        let extra = self.state.delivery.max_attempts;
        let job = match self.state.store.retry_by_hand(job, extra).await {
            Ok(OperatorOutcome::Done(job)) => *job,
            Ok(OperatorOutcome::NotFound) => return RetryAnswer::NotFound(not_found(&id)),
            Ok(OperatorOutcome::Conflict(status)) => {
                return RetryAnswer::Conflict(Json(ErrorBody::new(
                    "conflict",
                    format!(
                        "job '{}' is {status}; only failed or dead jobs can be retried",
                        &*id
                    ),
                )));
            }
            Err(err) => return RetryAnswer::Unavailable(unavailable(err)),
        };
        match self
            .state
            .queue
            .push(&Task::of(&job), std::time::Duration::ZERO)
            .await
        {
            Ok(_) => RetryAnswer::Requeued(Json(Box::new(job.into()))),
            Err(err) => RetryAnswer::Unavailable(Json(ErrorBody::new(
                "unavailable",
                format!(
                    "queue unavailable: {err}; the job is queued and will be pushed by the scheduler's sweep"
                ),
            ))),
        }
    }

    /// Retries every `dead` job, cancels every `queued` one, or discards (deletes)
    /// every `dead` one, of a queue and/or kind: at most `limit` per call, newest
    /// first. Repeating the call is safe: a retried job is no longer dead, a cancelled
    /// one no longer queued, a discarded one gone. Needs
    /// `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set.
    #[oai(path = "/jobs/bulk", method = "post")]
    async fn bulk(&self, req: &Request, body: Json<BulkRequest>) -> BulkAnswer {
        if let Err(Unauthorized(body)) = authorize(&self.state.config, req) {
            return BulkAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let field = |name, value: &Option<Text>| {
            value
                .as_ref()
                .map(|text| text.as_str(name).map(str::to_owned))
                .transpose()
        };
        let (queue, kind) = match (field("queue", &body.queue), field("kind", &body.kind)) {
            (Ok(queue), Ok(kind)) => (queue, kind),
            (Err(message), _) | (_, Err(message)) => {
                return BulkAnswer::BadRequest(Json(ErrorBody::new("bad_request", message)));
            }
        };
        let nul = |f: &Option<String>| f.as_deref().is_some_and(|f| f.contains('\0'));
        let matched = if nul(&queue) || nul(&kind) {
            Vec::new()
        } else {
            let filter = JobFilter {
                status: Some(match body.action {
                    BulkAction::Retry | BulkAction::Discard => JobStatus::Dead,
                    BulkAction::Cancel => JobStatus::Queued,
                }),
                kinds: kind
                    .as_deref()
                    .filter(|k| !k.is_empty())
                    .map(|k| self.kinds_matching(k))
                    .unwrap_or_default(),
                queue: queue.filter(|q| !q.is_empty()),
                limit: body.limit,
                ..JobFilter::default()
            };
            match self.state.store.list(&filter).await {
                Ok(jobs) => jobs,
                Err(err) => return BulkAnswer::Unavailable(unavailable(err)),
            }
        };
        let mut done = 0;
        for listed in &matched {
            let id = listed.record.id;
            let outcome = match body.action {
                BulkAction::Retry => {
                    let extra = self.state.delivery.max_attempts;
                    self.state.store.retry_by_hand(id, extra).await
                }
                BulkAction::Cancel => self.state.store.cancel(id).await,
                BulkAction::Discard => match self.state.store.discard_dead(id).await {
                    Ok(true) => {
                        done += 1;
                        continue;
                    }
                    Ok(false) => continue,
                    Err(err) => return BulkAnswer::Unavailable(unavailable(err)),
                },
            };
            match outcome {
                Ok(OperatorOutcome::Done(job)) => {
                    if body.action == BulkAction::Retry
                        && let Err(err) = self
                            .state
                            .queue
                            .push(&Task::of(&job), std::time::Duration::ZERO)
                            .await
                    {
                        return BulkAnswer::Unavailable(Json(ErrorBody::new(
                            "unavailable",
                            format!(
                                "queue unavailable: {err}; {done} jobs retried, the last one \
                                 queued for the scheduler's sweep to push"
                            ),
                        )));
                    }
                    done += 1;
                }
                Ok(OperatorOutcome::NotFound | OperatorOutcome::Conflict(_)) => {}
                Err(err) => return BulkAnswer::Unavailable(unavailable(err)),
            }
        }
        BulkAnswer::Done(Json(BulkDone {
            action: body.action,
            matched: matched.len() as u64,
            done,
            more: matched.len() as u64 == body.limit,
        }))
    }

    /// Per queue: job records by status, tasks waiting, workers alive, and the
    /// failure rate of the last `FAILURE_RATE_MINUTES`.
    #[oai(path = "/queues", method = "get")]
    async fn queues(&self, req: &Request) -> QueuesAnswer {
        if let Err(Unauthorized(body)) = authorize_read(&self.state.config, req) {
            return QueuesAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let counts = match self.state.store.queue_counts().await {
            Ok(counts) => counts,
            Err(err) => return QueuesAnswer::Unavailable(unavailable(err)),
        };
        let paused = match self.state.store.paused_queues().await {
            Ok(paused) => paused,
            Err(err) => return QueuesAnswer::Unavailable(unavailable(err)),
        };
        let since = window_start(Utc::now(), self.state.config.failure_rate_minutes);
        let recent = match self.state.store.throughput_since(since).await {
            Ok(recent) => recent,
            Err(err) => return QueuesAnswer::Unavailable(unavailable(err)),
        };
        let mut views: Vec<QueueView> = self
            .state
            .queues
            .iter()
            .map(|q| QueueView {
                queue: (*q).to_owned(),
                kinds: (self.state.kinds.iter())
                    .filter(|kind| kind.queue == *q)
                    .map(|kind| kind.name.to_owned())
                    .collect(),
                paused: paused.contains(*q),
                ..QueueView::default()
            })
            .collect();
        for count in counts {
            let index = match views.iter().position(|v| v.queue == count.queue) {
                Some(i) => i,
                None => {
                    views.push(QueueView {
                        queue: count.queue.clone(),
                        ..QueueView::default()
                    });
                    views.len() - 1
                }
            };
            let view = &mut views[index];
            let n = i64::try_from(count.count).unwrap_or(i64::MAX);
            match count.status {
                JobStatus::Queued => {
                    view.queued = n;
                    view.latency_ms = count.oldest.map_or(0, |oldest| {
                        let now = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
                        now.saturating_sub(oldest.created_ms())
                    });
                }
                JobStatus::Running => view.running = n,
                JobStatus::Succeeded => view.succeeded = n,
                JobStatus::Failed => view.failed = n,
                JobStatus::Dead => view.dead = n,
                JobStatus::Cancelled => view.cancelled = n,
            }
        }
        for view in &mut views {
            let (succeeded, failed) = recent.iter().filter(|row| row.queue == view.queue).fold(
                (0u64, 0u64),
                |(s, f), row| {
                    (
                        s.saturating_add(row.succeeded),
                        f.saturating_add(row.failed),
                    )
                },
            );
            let finished = succeeded.saturating_add(failed);
            view.failure_rate = (finished > 0).then(|| failed as f64 / finished as f64);
        }
        for view in &mut views {
            let depth = self.state.queue.depth(&view.queue).await;
            let workers = self.state.queue.workers_alive(&view.queue).await;
            match (depth, workers) {
                (Ok(depth), Ok(workers)) => {
                    view.depth = depth;
                    view.workers = workers;
                }
                (Err(err), _) | (_, Err(err)) => {
                    return QueuesAnswer::Unavailable(Json(ErrorBody::new(
                        "unavailable",
                        format!("queue unavailable: {err}"),
                    )));
                }
            }
        }
        QueuesAnswer::Ok(Json(views))
    }

    /// Throughput history per queue, at minute resolution: jobs succeeded and attempts
    /// failed in each of the last `minutes` minutes (this one included, still
    /// counting). Minutes in which nothing succeeded or failed are left out. Workers
    /// store their counts every `THROUGHPUT_FLUSH_MS`; housekeeping keeps
    /// `THROUGHPUT_HISTORY_MINUTES`.
    #[oai(path = "/queues/history", method = "get")]
    async fn queue_history(
        &self,
        req: &Request,
        /// Minutes up to now, 1 to `THROUGHPUT_HISTORY_MINUTES` (its value by default:
        /// the whole history).
        minutes: Query<Option<u64>>,
    ) -> HistoryAnswer {
        if let Err(Unauthorized(body)) = authorize_read(&self.state.config, req) {
            return HistoryAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let max = self.state.housekeeping.throughput_history_minutes();
        let minutes = minutes.0.unwrap_or(max);
        if minutes == 0 || minutes > max {
            return HistoryAnswer::BadRequest(Json(ErrorBody::new(
                "bad_request",
                format!("minutes must be between 1 and {max} (THROUGHPUT_HISTORY_MINUTES)"),
            )));
        }
        let now = Utc::now();
        let from = window_start(now, minutes);
        let rows = match self.state.store.throughput_since(from).await {
            Ok(rows) => rows,
            Err(err) => return HistoryAnswer::Unavailable(unavailable(err)),
        };
        let mut queues: Vec<QueueHistory> = self
            .state
            .queues
            .iter()
            .map(|q| QueueHistory {
                queue: (*q).to_owned(),
                minutes: Vec::new(),
            })
            .collect();
        // Rows come oldest first, so each queue's minutes do too.
        for row in rows {
            let index = match queues.iter().position(|q| q.queue == row.queue) {
                Some(i) => i,
                None => {
                    queues.push(QueueHistory {
                        queue: row.queue.clone(),
                        minutes: Vec::new(),
                    });
                    queues.len() - 1
                }
            };
            queues[index].minutes.push(MinuteView {
                minute: row.minute,
                succeeded: row.succeeded,
                failed: row.failed,
            });
        }
        HistoryAnswer::Ok(Json(History {
            from,
            to: minute_of(now),
            queues,
        }))
    }

    /// Pauses a queue: every worker process stops taking its tasks within
    /// `QUEUE_PAUSE_POLL_MS` (running ones finish), and jobs keep being accepted and
    /// wait. The pause is stored, so it outlasts restarts. Needs
    /// `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set.
    #[oai(path = "/queues/:queue/pause", method = "post")]
    async fn pause_queue(&self, req: &Request, queue: Path<String>) -> PauseAnswer {
        self.set_paused(req, &queue.0, true).await
    }

    /// Resumes a paused queue: workers take its waiting tasks again. Needs
    /// `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set.
    #[oai(path = "/queues/:queue/resume", method = "post")]
    async fn resume_queue(&self, req: &Request, queue: Path<String>) -> PauseAnswer {
        self.set_paused(req, &queue.0, false).await
    }

    /// Enqueues a `system.noop` job: no effect but its record. It can simulate work
    /// (`sleep_ms`) and failures (`fail_times`), for smoke tests and benchmarks. Its
    /// jobs hold a worker slot while they sleep, so it needs
    /// `Authorization: Bearer <ADMIN_TOKEN>` when `ADMIN_TOKEN` is set.
    #[oai(path = "/jobs/noop", method = "post")]
    async fn enqueue_noop(
        &self,
        req: &Request,
        body: Json<NoopRequest>,
        /// The same key within `IDEMPOTENCY_WINDOW_SECS` returns the first job; 1 to
        /// 200 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _key: Header<Option<String>>,
    ) -> NoopAnswer {
        if let Err(Unauthorized(body)) = authorize(&self.state.config, req) {
            return NoopAnswer::Unauthorized(body, CHALLENGE.to_owned());
        }
        let key = match idempotency_key(req) {
            Ok(key) => key,
            Err(err) => return EnqueueAnswer::from(err).into(),
        };
        let args = NoopArgs {
            sleep_ms: body.sleep_ms,
            fail_times: body.fail_times,
        };
        EnqueueAnswer::from(enqueue::<Noop>(&self.state, &args, key, "POST /jobs/noop").await)
            .into()
    }
}
