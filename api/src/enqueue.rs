//! Enqueuing: a `queued` job record, then its first task on the queue.

use jobs::JobKind;
use jobs::envelope::Envelope;
use jobs::queue::QueueError;
use jobs::store::{Created, DbErr, JobRecord, NewJob};
use serde_json::Value;

use crate::error::ErrorBody;
use crate::state::AppState;

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Why a job could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The `Idempotency-Key` header is unusable.
    #[error("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters")]
    BadKey,
    /// The database did not answer.
    #[error("database unavailable: {0}")]
    Database(#[from] DbErr),
    /// The queue did not take the task.
    #[error("queue unavailable: {0}")]
    Queue(#[from] QueueError),
}

impl EnqueueError {
    /// The status code and JSON body of this error.
    pub fn body(&self) -> (u16, ErrorBody) {
        match self {
            EnqueueError::BadKey => (400, ErrorBody::new("bad_request", self.to_string())),
            EnqueueError::Database(_) | EnqueueError::Queue(_) => {
                (503, ErrorBody::new("unavailable", self.to_string()))
            }
        }
    }
}

/// Creates a job of `kind` and pushes its first task; an `Idempotency-Key` seen within
/// its window returns the first job instead.
///
/// `scope` (the route) keeps the same key on two routes from colliding. If the push
/// fails the record is removed again, so that no job claims to be queued when it is not.
pub async fn enqueue(
    state: &AppState,
    kind: JobKind,
    args: Value,
    idempotency_key: Option<&str>,
    scope: &str,
) -> Result<JobRecord, EnqueueError> {
    let idempotency_key = match idempotency_key {
        None => None,
        Some(key) if valid_key(key) => Some(format!("{scope} {key}")),
        Some(_) => return Err(EnqueueError::BadKey),
    };
    let created = state
        .store
        .create(NewJob {
            kind,
            args,
            max_attempts: state.delivery.max_attempts,
            idempotency_key,
        })
        .await?;
    let job = match created {
        Created::Existing(job) => return Ok(job),
        Created::New(job) => job,
    };
    if let Err(err) = state
        .queue
        .push(&Envelope::of(&job), std::time::Duration::ZERO)
        .await
    {
        if let Err(discard) = state.store.discard(&job).await {
            tracing::error!(job = %job.id, %discard, "could not discard a job whose push failed");
        }
        return Err(err.into());
    }
    Ok(job)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY && key.bytes().all(|b| b.is_ascii_graphic())
}
