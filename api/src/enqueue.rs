//! Enqueuing: a `queued` job record, then its first task on the queue, honouring
//! `Idempotency-Key`.

use engine::store::Created;
use engine::{Job, JobRecord, NewJob, SubmitError, submit};
use poem::Request;

use crate::error::ErrorBody;
use crate::state::AppState;

/// Longest accepted `Idempotency-Key`. A job keeps it as `<route> <key>` in a column of
/// `STORED_KEY_MAX` characters, and the longest route (`POST /process_reports`) takes
/// 22 of them; a longer key failed the insert on Postgres (503) after passing here.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// Length of the job record's idempotency key column.
const STORED_KEY_MAX: usize = 255;

/// Why a job could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The `Idempotency-Key` header is unusable.
    #[error("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters")]
    BadKey,
    /// The `Idempotency-Key` was used within its window with another request.
    #[error(
        "Idempotency-Key was used with a different request within its window \
         (job '{0}'); use a new key for a new request"
    )]
    KeyReused(String),
    /// The arguments could not be encoded.
    #[error("the job's arguments could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// The database or the queue did not take the job.
    #[error(transparent)]
    Unavailable(#[from] SubmitError),
}

impl EnqueueError {
    /// The status code and JSON body of this error.
    pub fn body(&self) -> (u16, ErrorBody) {
        match self {
            EnqueueError::BadKey | EnqueueError::Encode(_) => {
                (400, ErrorBody::new("bad_request", self.to_string()))
            }
            EnqueueError::KeyReused(_) => (422, ErrorBody::new("key_reused", self.to_string())),
            EnqueueError::Unavailable(_) => (503, ErrorBody::new("unavailable", self.to_string())),
        }
    }
}

/// Creates a job of `J` with `args` and pushes its first task; an `Idempotency-Key`
/// seen within its window returns the first job instead.
///
/// `scope` (the route) keeps the same key on two routes from colliding.
pub async fn enqueue<J: Job>(
    state: &AppState,
    args: &J::Args,
    idempotency_key: Option<&str>,
    scope: &str,
) -> Result<JobRecord, EnqueueError> {
    let job = NewJob::of::<J>(args, state.delivery.max_attempts)?;
    enqueue_job(state, job, idempotency_key, scope).await
}

/// [`enqueue`] for a job already made (its kind chosen at run time).
pub async fn enqueue_job(
    state: &AppState,
    job: NewJob,
    idempotency_key: Option<&str>,
    scope: &str,
) -> Result<JobRecord, EnqueueError> {
    debug_assert!(
        scope.len() + 1 + MAX_IDEMPOTENCY_KEY <= STORED_KEY_MAX,
        "scope '{scope}' leaves too little room for an Idempotency-Key"
    );
    let job = match idempotency_key {
        None => job,
        Some(key) if valid_key(key) => job.idempotency_key(format!("{scope} {key}")),
        Some(_) => return Err(EnqueueError::BadKey),
    };
    match submit(&state.store, &state.queue, job).await? {
        Created::New(job) | Created::Existing(job) => Ok(job),
        Created::Conflict(first) => Err(EnqueueError::KeyReused(first.id.to_string())),
    }
}

/// The request's `Idempotency-Key`, read from the raw header: a value that is not
/// visible ASCII is refused here rather than taken for no key at all.
pub fn idempotency_key(req: &Request) -> Result<Option<&str>, EnqueueError> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok(key) if valid_key(key) => Ok(Some(key)),
            _ => Err(EnqueueError::BadKey),
        },
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY && key.bytes().all(|b| b.is_ascii_graphic())
}
